//! Replies by email: a bounded series of customer replies (the Gmail fixture, each with
//! its own Message-ID, DKIM-signed) over SMTP to the local inbound mail server, which
//! checks them as SES does, stores them in the local S3 and invokes the inbound-email
//! function through the dev server's Lambda Invoke API; per reply, the function's
//! DynamoDB requests, and the time from the SMTP connection to the reply posted.

use crate::{api, percentile, token};
use chat_testkit::{DkimKey, InboundMail};
use serde_json::json;
use std::fmt::Write as _;
use std::time::Instant;

pub const REPLIES: usize = 20;
pub const WARMUP: usize = 3;

pub struct InboundRow {
    pub requests_per_reply: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub async fn measure(table: &chat_testkit::TestTable) -> InboundRow {
    let (inbound_runtime, counter, _) = crate::instrumented_runtime(table);
    let (api_runtime, _, _) = crate::instrumented_runtime(table);
    let config = &table.runtime.config;
    let email = config
        .notify
        .email
        .clone()
        .expect("email (scripts/local.env)");
    let domain = email.inbound_domain.clone().expect("INBOUND_EMAIL_DOMAIN");
    let uploads = config.uploads.clone().expect("uploads");
    let lambda = devserver::lambda::serve_lambda(&inbound_runtime, 0)
        .await
        .expect("the Invoke API");
    let server = InboundMail::start(
        &domain,
        uploads.endpoint.as_deref().expect("the local S3"),
        &uploads.bucket,
        &format!("http://127.0.0.1:{lambda}"),
    )
    .await;
    let key = DkimKey::generate("customer.example", "bench");
    server.dns.publish(&key.name(), &key.record);

    let port = crate::serve_api(api_runtime).await;
    let http = crate::http_client();
    let org = "bench-inbound";
    let customer = token("c-1", org, "customer");
    let address = "sam@customer.example";
    let (status, body) = api(
        &http,
        port,
        "PUT",
        "/profiles/me",
        &customer,
        Some(&json!({"email": address})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, made) = api(
        &http,
        port,
        "POST",
        "/chat/conversations",
        &customer,
        Some(&json!({"title": "Bench replies", "agent_id": "a-1"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let room = made["data"]["conversation_id"]
        .as_str()
        .expect("conversation id")
        .to_owned();
    let org_id = chat_core::ids::OrgId::parse(org).unwrap();
    let room_id = chat_core::ids::RoomId::parse(&room).unwrap();
    // What its first mail would have done.
    assert!(
        table
            .runtime
            .store
            .remember_reply_room(&org_id, &room_id)
            .await
            .unwrap()
    );
    let reply_to = chat_core::reply::address(&email.link_secret, &domain, &org_id, &room_id);
    let fixture = std::fs::read_to_string(
        chat_testkit::repo_root().join("functions/webhooks/fixtures/mail/gmail.eml"),
    )
    .expect("the Gmail fixture")
    .replace("{{FROM}}", address)
    .replace("{{TO}}", &reply_to)
    .replace("{{ROOM}}", &room.to_ascii_lowercase())
    .replace("{{DOMAIN}}", &domain);
    let mails: Vec<Vec<u8>> = (0..WARMUP + REPLIES)
        .map(|i| {
            key.sign(
                fixture
                    .replace("<CAKx9b3q7", &format!("<bench{i}x"))
                    .as_bytes(),
            )
        })
        .collect();
    let (mut latencies, mut requests) = (Vec::new(), 0);
    for (i, mail) in mails.iter().enumerate() {
        let before = counter.get();
        let started = Instant::now();
        let reply = server.send(address, &[&reply_to], mail).await;
        let done = started.elapsed();
        assert!(reply.contains("\"posted\""), "reply {i}: {reply}");
        if i < WARMUP {
            continue;
        }
        requests += counter.get() - before;
        latencies.push(done.as_secs_f64() * 1000.0);
    }
    InboundRow {
        requests_per_reply: requests as f64 / REPLIES as f64,
        p50_ms: percentile(&mut latencies, 0.5),
        p99_ms: percentile(&mut latencies, 0.99),
    }
}

/// The report's section.
pub fn write_section(md: &mut String, row: &InboundRow) {
    let _ = writeln!(
        md,
        "## Replies by email (SMTP on loopback to the reply posted)\n\n| inbound-side DynamoDB requests / reply | SMTP connection to reply posted p50 ms | p99 ms |\n|---|---|---|\n| {:.2} | {:.1} | {:.1} |",
        row.requests_per_reply, row.p50_ms, row.p99_ms
    );
    let _ = writeln!(
        md,
        "\nHow it is measured: {REPLIES} replies after {WARMUP} warm-up ones, one at a time, each the Gmail fixture (text and HTML, a quoted history) with its own Message-ID, DKIM-signed (RSA 2048) by the customer's domain, sent over SMTP to the local inbound mail server (`scripts/smtp-inbound.py`), which verifies SPF and DKIM and computes DMARC as SES's receipt does, stores the raw mail in the local S3 and invokes the `inbound-email` function through the dev server's Lambda Invoke API, waiting for its answer. The time runs from the SMTP connection to the server's `250` (the reply committed in its conversation); it includes the Python server's checks, which SES does on its side before invoking. Requests, all the function's: the reply address's room (GetItem), the room (GetItem), its people's profiles (BatchGetItem) and the post's transaction (TransactWriteItems, one request). On AWS the function is invoked asynchronously after SES answers the sender.\n"
    );
}
