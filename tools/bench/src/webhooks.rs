//! Webhook figures: one endpoint on a local receiver, a bounded series of posts through
//! the dev server, one at a time; per event, the delivery side's DynamoDB requests, and
//! commit-to-receipt latency (the post's answer to the signed POST's arrival).

use crate::{Http, api, percentile, token};
use chat_core::webhooks::DeliverySettings;
use devserver::receiver::Receiver;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

pub const POSTS: usize = 40;
pub const WARMUP: usize = 3;

pub struct WebhookReport {
    /// The delivery side's DynamoDB requests per event (stream handler and schedule).
    pub requests_per_event: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub async fn measure(table: &chat_testkit::TestTable) -> WebhookReport {
    // The delivery side on its own counted client; the API on another.
    let (delivery_runtime, delivery_counter, _) = crate::instrumented_runtime(table);
    let (api_runtime, _, _) = crate::instrumented_runtime(table);
    devserver::delivery::serve_webhook_delivery(&delivery_runtime, DeliverySettings::default())
        .await;
    let receiver = Receiver::start().await;
    let port = crate::serve_api(api_runtime).await;
    let http = crate::http_client();
    let admin = token("wh-admin", "bench-hooks", "admin");
    let (status, made) = api(
        &http,
        port,
        "POST",
        "/webhooks",
        &admin,
        Some(&json!({"url": receiver.url("/in"), "event_types": ["message.new"]})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let room = bench_room(&http, port).await;
    let tok = token("wh-1", "bench-hooks", "customer");
    let (mut latencies, mut requests) = (Vec::new(), 0);
    for i in 0..WARMUP + POSTS {
        let before = delivery_counter.get();
        let (status, posted) = api(
            &http,
            port,
            "POST",
            &format!("/rooms/{room}/messages"),
            &tok,
            Some(&json!({"content": format!("hook {i}")})),
        )
        .await;
        let committed = Instant::now();
        assert_eq!(status, 201, "{posted}");
        let seq = posted["data"]["seq"].as_u64().expect("a seq");
        let arrived = receipt(&receiver, seq).await;
        // The attempt's result is written after the answer: let it land.
        tokio::time::sleep(Duration::from_millis(60)).await;
        if i < WARMUP {
            continue;
        }
        requests += delivery_counter.get() - before;
        latencies.push(arrived.saturating_duration_since(committed).as_secs_f64() * 1000.0);
    }
    WebhookReport {
        requests_per_event: requests as f64 / POSTS as f64,
        p50_ms: percentile(&mut latencies, 0.5),
        p99_ms: percentile(&mut latencies, 0.99),
    }
}

/// A support conversation: the rooms whose changes reach the tenant's systems (a team
/// room's never do).
async fn bench_room(http: &Http, port: u16) -> String {
    let tok = token("wh-1", "bench-hooks", "customer");
    let (status, room) = api(
        http,
        port,
        "POST",
        "/chat/conversations",
        &tok,
        Some(&json!({"title": "Bench hooks", "agent_id": "wh-2"})),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    room["data"]["conversation_id"]
        .as_str()
        .expect("conversation id")
        .to_owned()
}

/// When the receiver got the event numbered `seq` (bounded wait).
async fn receipt(receiver: &Receiver, seq: u64) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = receiver.received("/in").into_iter().find(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap_or_default()["seq"].as_u64()
                == Some(seq)
        });
        if let Some(got) = got {
            return got.at;
        }
        assert!(
            Instant::now() < deadline,
            "delivery of seq {seq} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The report's section.
pub fn write_section(md: &mut String, report: &WebhookReport) {
    let _ = writeln!(
        md,
        "## Webhooks (delivery from the stream to a receiver on loopback)\n\n| delivery-side DynamoDB requests / event | commit-to-receipt p50 ms | p99 ms |\n|---|---|---|\n| {:.2} | {:.1} | {:.1} |\n\nHow it is measured: one endpoint (`message.new`) on a local receiver that answers 204; {} posts through the dev server after {} warm-up posts, one at a time, each delivered by the `deliver` handler from DynamoDB Local's stream (polled every 20 ms as the event source mapping would). Commit-to-receipt runs from the post's answer to the signed POST's arrival. Requests per event: the tenant's endpoints (one Query per stream batch), the delivery stored before the attempt (one conditional PutItem) and its result (one conditional PutItem); a healthy endpoint's item is not written. The rest is the schedule's tick with nothing due (one Query per due shard, 4), here every second, on AWS every minute.\n",
        report.requests_per_event, report.p50_ms, report.p99_ms, POSTS, WARMUP
    );
}
