//! Notification figures: for rooms of 2, 10 and 40 members, every member but the
//! sender away with one browser subscribed at a local Web Push service
//! (web-push-testing, which checks VAPID and decrypts), a bounded series of posts
//! through the dev server, one at a time, each notifying every recipient (the collapse
//! window set to 0, the worst case); per message, the notify function's DynamoDB
//! requests, and commit-to-push latency (the post's answer to the push service holding
//! the decrypted payload of one recipient, the last member).

use crate::{Http, api, percentile, token};
use chat_testkit::{BrowserSubscription, PushService};
use serde_json::json;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

pub const POSTS: usize = 10;
pub const WARMUP: usize = 2;
pub const SIZES: [usize; 3] = [2, 10, 40];

pub struct NotifyRow {
    pub members: usize,
    pub requests_per_message: f64,
    pub pushes_per_message: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub async fn measure(table: &chat_testkit::TestTable) -> Vec<NotifyRow> {
    // The pipeline on its own counted client; the API on another.
    let (mut notify_runtime, counter, _) = crate::instrumented_runtime(table);
    notify_runtime.config.notify.window_secs = 0;
    // Pushes only: the phones and mails of the local stack are not running here.
    notify_runtime.config.notify.email = None;
    notify_runtime.config.notify.sns_ios_application = None;
    notify_runtime.config.notify.sns_android_application = None;
    let (api_runtime, _, _) = crate::instrumented_runtime(table);
    devserver::notify::serve_notifications(&notify_runtime)
        .await
        .expect("the table has a stream");
    let push = PushService::start().await;
    let port = crate::serve_api(api_runtime).await;
    let http = crate::http_client();
    let mut rows = Vec::new();
    for members in SIZES {
        rows.push(room_size(&http, port, &push, &counter, members).await);
    }
    rows
}

async fn room_size(
    http: &Http,
    port: u16,
    push: &PushService,
    counter: &chat_core::dynamo::RequestCounter,
    members: usize,
) -> NotifyRow {
    let org = format!("bench-notify-{members}");
    let sender = token("n-0", &org, "agent");
    let others: Vec<String> = (1..members).map(|i| format!("n-{i}")).collect();
    let (status, made) = api(
        http,
        port,
        "POST",
        "/rooms",
        &sender,
        Some(&json!({"type": "group", "name": "Bench notify", "participant_ids": others})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let room = made["data"]["id"].as_str().expect("room id").to_owned();
    let (status, settings) = api(
        http,
        port,
        "GET",
        "/me/notification-settings",
        &sender,
        None,
    )
    .await;
    assert_eq!(status, 200, "{settings}");
    let key = settings["data"]["web_push"]["vapid_public_key"]
        .as_str()
        .expect("a VAPID key (scripts/local.env)")
        .to_owned();
    let mut browsers: Vec<BrowserSubscription> = Vec::new();
    for user in &others {
        let browser = push.subscribe(&key).await;
        let tok = token(user, &org, "customer");
        let (status, body) = api(
            http,
            port,
            "POST",
            "/me/push-subscriptions",
            &tok,
            Some(&browser.json),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        browsers.push(browser);
    }
    let watched = browsers.last().expect("a recipient");
    let (mut latencies, mut requests) = (Vec::new(), 0);
    for i in 0..WARMUP + POSTS {
        // The stream's consumer is idle between posts: what it counts is this post's.
        let before = counter.get();
        let (status, posted) = api(
            http,
            port,
            "POST",
            &format!("/rooms/{room}/messages"),
            &sender,
            Some(&json!({"content": format!("notify {i}")})),
        )
        .await;
        let committed = Instant::now();
        assert_eq!(status, 201, "{posted}");
        let arrived = arrival(push, watched, i + 1).await;
        // The other recipients' pushes finish after the watched one's.
        tokio::time::sleep(Duration::from_millis(100 + 10 * members as u64)).await;
        if i < WARMUP {
            continue;
        }
        requests += counter.get() - before;
        latencies.push(arrived.saturating_duration_since(committed).as_secs_f64() * 1000.0);
    }
    let mut pushed = 0;
    for browser in &browsers {
        pushed += push.received(browser).await.len();
    }
    NotifyRow {
        members,
        requests_per_message: requests as f64 / POSTS as f64,
        pushes_per_message: pushed as f64 / (WARMUP + POSTS) as f64,
        p50_ms: percentile(&mut latencies, 0.5),
        p99_ms: percentile(&mut latencies, 0.99),
    }
}

/// When `browser` held its `count`th push (bounded wait; the push service is asked
/// every 2 ms).
async fn arrival(push: &PushService, browser: &BrowserSubscription, count: usize) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if push.received(browser).await.len() >= count {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "push {count} within 10 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The report's section.
pub fn write_section(md: &mut String, rows: &[NotifyRow]) {
    let _ = writeln!(
        md,
        "## Notifications (Web Push from the stream to a push service on loopback)\n\n| room members | notify-side DynamoDB requests / message | pushes / message | commit-to-push p50 ms | p99 ms |\n|---|---|---|---|---|"
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {:.2} | {:.2} | {:.1} | {:.1} |",
            r.members, r.requests_per_message, r.pushes_per_message, r.p50_ms, r.p99_ms
        );
    }
    let _ = writeln!(
        md,
        "\nHow it is measured: a team room of N members, each but the sender away (no socket) with one browser subscribed at `web-push-testing`, which checks each push's VAPID signature and decrypts it; {POSTS} posts through the dev server after {WARMUP} warm-up posts, one at a time, each notifying every recipient (the collapse window set to 0 — with the default 2 minutes a burst costs one window UpdateItem per recipient and no Query or push). Requests per message, all in the `notify` function: the room (GetItem), the recipients' rows, settings and browser and phone counts (BatchGetItem, 4 keys each: one request up to 25 recipients), and per recipient the window (UpdateItem) and their subscriptions (Query); the rest is the schedule's sweep of due windows (4 Queries a tick, here every second, on AWS every minute). Commit-to-push runs from the post's answer to the push service holding the last member's decrypted payload (asked every 2 ms), so it includes the stream's polling (20 ms, as the event source mapping's), the encryption and the push service's decryption. Large rooms (past 40 members) notify nobody per message (docs/notifications.md).\n"
    );
}
