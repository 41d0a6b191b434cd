//! Retention sweep figures: on a fresh table, messages written 40 days ago in rooms
//! of a tenant whose policy keeps messages 30 days, and resolved conversations of 70
//! days ago under a 60-day policy; one sweep run each (the privacy-jobs function's
//! handler, in process), its DynamoDB requests per thing removed and its time; then a
//! run with nothing left to do.

use devserver::TestApp;
use serde_json::json;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

pub const ROOMS: usize = 4;
pub const MESSAGES_PER_ROOM: usize = 50;
pub const CONVERSATIONS: usize = 10;
pub const CONVERSATION_MESSAGES: usize = 20;

pub struct RetentionReport {
    pub messages: u64,
    pub requests_per_message: f64,
    pub ms_per_message: f64,
    pub conversations: u64,
    pub requests_per_conversation: f64,
    pub ms_per_conversation: f64,
    pub idle_requests: u64,
    pub idle_ms: f64,
}

fn sweeper(app: &TestApp) -> privacy::Sweeper {
    privacy::Sweeper::new(
        app.table.runtime.store.clone(),
        privacy::uploads_of(&app.table.runtime),
        privacy::SweepLimits {
            removals: 100_000,
            // The first run walks back this far: both data sets are within it.
            lookback_days: 45,
            deadline: Duration::from_secs(600),
        },
    )
}

async fn at<F: std::future::Future>(days_ago: i64, work: F) -> F::Output {
    let when = OffsetDateTime::now_utc() - time::Duration::days(days_ago);
    Box::pin(chat_core::time::at(when, work)).await
}

async fn say(app: &TestApp, tok: &str, room: &str, n: usize, days_ago: i64) {
    let body = json!({ "content": format!("retained message {n} of the bench") });
    at(
        days_ago,
        app.expect(
            201,
            "POST /rooms/{room_id}/messages",
            &[("room_id", room)],
            tok,
            body,
        ),
    )
    .await;
}

/// One sweep run: (what it removed of the kind, requests, elapsed).
async fn run(app: &TestApp) -> (privacy::SweepSummary, u64, Duration) {
    let before = app.table.runtime.store.requests();
    let started = Instant::now();
    let summary = sweeper(app).run().await.expect("sweep");
    let elapsed = started.elapsed();
    assert!(summary.caught_up, "{summary:?}");
    (
        summary,
        app.table.runtime.store.requests() - before,
        elapsed,
    )
}

pub async fn measure() -> RetentionReport {
    let app = TestApp::new().await;
    let customer = chat_testkit::token("u-100", "acme", "customer");
    let agent = chat_testkit::token("a-1", "acme", "agent");
    let admin = chat_testkit::token("a-9", "acme", "admin");
    for _ in 0..ROOMS {
        let room = app
            .room(
                &customer,
                json!({"type": "group", "name": "Bench", "participant_ids": ["u-200"]}),
            )
            .await;
        for n in 0..MESSAGES_PER_ROOM {
            say(&app, &customer, &room, n, 40).await;
        }
    }
    // Messages first: a policy of 30 days.
    app.expect(
        200,
        "PUT /admin/settings/retention",
        &[],
        &admin,
        json!({"messages_days": 30}),
    )
    .await;
    let (swept, message_requests, message_time) = run(&app).await;
    assert_eq!(swept.messages, (ROOMS * MESSAGES_PER_ROOM) as u64);
    // Then conversations resolved 70 days ago, under 60 days (their messages too old
    // for the message rule as well: the conversation goes first, whole).
    for _ in 0..CONVERSATIONS {
        let room = at(
            90,
            app.conversation(&customer, json!({"title": "Help", "agent_id": "a-1"})),
        )
        .await;
        for n in 0..CONVERSATION_MESSAGES {
            say(&app, &customer, &room, n, 90).await;
        }
        at(
            70,
            app.expect(
                200,
                "PUT /chat/conversations/{conversation_id}",
                &[("conversation_id", &room)],
                &agent,
                json!({"status": "resolved"}),
            ),
        )
        .await;
    }
    app.expect(
        200,
        "PUT /admin/settings/retention",
        &[],
        &admin,
        json!({"messages_days": 30, "closed_conversations_days": 60}),
    )
    .await;
    // The closed-conversation walk starts 45 days before its last day (no rollups).
    let (purged, conversation_requests, conversation_time) = run(&app).await;
    assert_eq!(purged.conversations, CONVERSATIONS as u64, "{purged:?}");
    // Nothing left: what an hourly run costs a tenant that is up to date.
    let (_, idle_requests, idle_time) = run(&app).await;
    RetentionReport {
        messages: swept.messages,
        requests_per_message: message_requests as f64 / swept.messages as f64,
        ms_per_message: message_time.as_secs_f64() * 1000.0 / swept.messages as f64,
        conversations: purged.conversations,
        requests_per_conversation: conversation_requests as f64 / purged.conversations as f64,
        ms_per_conversation: conversation_time.as_secs_f64() * 1000.0 / purged.conversations as f64,
        idle_requests,
        idle_ms: idle_time.as_secs_f64() * 1000.0,
    }
}

pub fn write_section(md: &mut String, r: &RetentionReport) {
    let _ = writeln!(
        md,
        "## Retention sweep (the privacy-jobs function's schedule, in process)\n\n| what it removed | DynamoDB requests each | ms each |\n|---|---|---|\n| {} messages (tombstoned) | {:.2} | {:.2} |\n| {} resolved conversations of {CONVERSATION_MESSAGES} messages (deleted whole) | {:.1} | {:.1} |\n| nothing (a run with every tenant up to date) | {} in all | {:.1} in all |",
        r.messages,
        r.requests_per_message,
        r.ms_per_message,
        r.conversations,
        r.requests_per_conversation,
        r.ms_per_conversation,
        r.idle_requests,
        r.idle_ms,
    );
    let _ = writeln!(
        md,
        "\nHow it is measured: a fresh table; {ROOMS} team rooms of {MESSAGES_PER_ROOM} messages written 40 days ago, swept under `messages_days: 30`; then {CONVERSATIONS} support conversations of {CONVERSATION_MESSAGES} messages, resolved 70 days ago, swept under `closed_conversations_days: 60`; then a third run with nothing to do. Each is one run of the sweep's handler against DynamoDB Local, counted by the store's request counter and timed end to end. The runs include walking the days (16 Queries of GSI2 per kind and day, concurrently, 45 days back on a first run here) and saving progress. A message removed costs the delete path's read (BatchGetItem) and its transaction (message, room, search entries, the feed event), after the day's Query of its room; a conversation costs its delete (read and transaction), one Query page of its items and one DeleteItem per item and search entry. The idle run reads the tenants' policies (a Query of GSI2 and a BatchGetItem) and, per kind, the one new day's 16 shard Queries.\n"
    );
}
