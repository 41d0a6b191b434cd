//! Analytics end to end against DynamoDB Local: messages written at controlled times
//! (across midnight, UTC), the rollup, and the dashboards — whose figures must equal
//! what the test computes itself from the messages it wrote.

use analytics::App;
use analytics_rollup::Rollup;
use chat_core::item::ItemExt;
use chat_core::keys;
use chat_testkit::{HttpEvent, TestTable, response_json, token};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

struct Env {
    table: TestTable,
    app: App,
    conversations: conversations::App,
    messages: messages::App,
    rollup: Rollup,
}

impl Env {
    async fn new() -> Env {
        let table = TestTable::new().await;
        Env {
            app: App::new(table.runtime.clone()),
            conversations: conversations::App::new(table.runtime.clone()),
            messages: messages::App::new(table.runtime.clone()),
            rollup: Rollup::new(table.runtime.store.clone(), 2),
            table,
        }
    }

    async fn at<F: std::future::Future>(&self, when: OffsetDateTime, work: F) -> F::Output {
        chat_core::time::at(when, work).await
    }

    async fn conversation(&self, when: OffsetDateTime, tok: &str, agent: u32) -> String {
        let event = HttpEvent::new("POST /chat/conversations", "/chat/conversations")
            .bearer(tok)
            .json(&json!({"title": "Help", "agent_id": agent}));
        let (status, body) = self
            .at(when, async {
                response_json(&self.conversations.handle(event.request()).await)
            })
            .await;
        assert_eq!(status, 201, "{body}");
        body["data"]["conversation_id"].as_str().unwrap().to_owned()
    }

    async fn say(&self, when: OffsetDateTime, tok: &str, id: &str, content: &str) {
        let event = HttpEvent::new(
            "POST /chat/conversations/{conversation_id}/messages",
            &format!("/chat/conversations/{id}/messages"),
        )
        .param("conversation_id", id)
        .bearer(tok)
        .json(&json!({"content": content}));
        let (status, body) = self
            .at(when, async {
                response_json(&self.messages.handle(event.request()).await)
            })
            .await;
        assert_eq!(status, 201, "{body}");
    }

    async fn resolve(&self, when: OffsetDateTime, tok: &str, id: &str) {
        let event = HttpEvent::new(
            "PUT /chat/conversations/{conversation_id}",
            &format!("/chat/conversations/{id}"),
        )
        .param("conversation_id", id)
        .bearer(tok)
        .json(&json!({"status": "resolved"}));
        let (status, body) = self
            .at(when, async {
                response_json(&self.conversations.handle(event.request()).await)
            })
            .await;
        assert_eq!(status, 200, "{body}");
    }

    async fn get(&self, route: &str, tok: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let path = route.split(' ').nth(1).unwrap();
        let mut event = HttpEvent::new(route, path).bearer(tok);
        for (k, v) in query {
            event = event.query(k, v);
        }
        response_json(&self.app.handle(event.request()).await)
    }
}

const DASHBOARD: &str = "GET /chat/analytics/dashboard";
const GLOBAL: &str = "GET /chat/analytics/global";

fn customer() -> String {
    token("u-100", "acme", "customer")
}

/// What the rollup must find, computed here from the stored messages alone: per UTC
/// day the messages, and the response times (a staff message answering the oldest
/// unanswered customer message).
fn expected(
    items: &[chat_core::item::Item],
) -> (std::collections::BTreeMap<String, i64>, Vec<i64>) {
    let mut messages: Vec<_> = items
        .iter()
        .filter(|i| i.str(keys::ENTITY) == Some(keys::entity::MESSAGE))
        .collect();
    messages.sort_by_key(|m| (m.string("room_id"), m.string("message_id")));
    let mut per_day = std::collections::BTreeMap::new();
    let mut responses = Vec::new();
    let mut waiting: std::collections::HashMap<String, String> = Default::default();
    for m in messages {
        let at = m.string("created_at").unwrap();
        *per_day.entry(at[..10].to_owned()).or_insert(0) += 1;
        let room = m.string("room_id").unwrap();
        if m.str("sender") == Some("user") {
            waiting.entry(room).or_insert(at);
        } else if let Some(since) = waiting.remove(&room) {
            responses.push(chat_core::store::analytics::seconds_between(&since, &at));
        }
    }
    (per_day, responses)
}

#[tokio::test]
async fn rollup_figures_equal_the_messages_written_across_midnight() {
    let env = Env::new().await;
    let agent5 = token("5", "acme", "agent");
    let agent6 = token("6", "acme", "agent");
    let id = env
        .conversation(datetime!(2024-06-29 23:59:00 UTC), &customer(), 5)
        .await;
    env.say(
        datetime!(2024-06-29 23:59:30 UTC),
        &customer(),
        &id,
        "my order is late",
    )
    .await;
    env.say(datetime!(2024-06-30 00:00:45 UTC), &agent5, &id, "checking")
        .await;
    env.say(
        datetime!(2024-06-30 00:01:00 UTC),
        &customer(),
        &id,
        "thanks, and the invoice?",
    )
    .await;
    env.say(
        datetime!(2024-06-30 00:01:30 UTC),
        &customer(),
        &id,
        "hello?",
    )
    .await;
    env.say(datetime!(2024-06-30 00:03:00 UTC), &agent6, &id, "attached")
        .await;
    env.resolve(datetime!(2024-06-30 00:05:00 UTC), &agent6, &id)
        .await;
    // Another tenant's traffic the same day stays out of acme's figures.
    let other = env
        .conversation(
            datetime!(2024-06-30 08:00:00 UTC),
            &token("u-1", "globex", "customer"),
            9,
        )
        .await;
    env.say(
        datetime!(2024-06-30 08:00:01 UTC),
        &token("u-1", "globex", "customer"),
        &other,
        "hi there",
    )
    .await;

    let summary = env
        .rollup
        .run(json!({"from": "2024-06-29", "to": "2024-06-30"}))
        .await
        .unwrap();
    assert_eq!(summary["written"], 3, "acme twice, globex once: {summary}");

    let (per_day, responses) = expected(&env.table.items().await);
    let acme_per_day = [("2024-06-29", 1), ("2024-06-30", 4)];
    assert_eq!(per_day.get("2024-06-29"), Some(&1));
    assert_eq!(responses, vec![75, 120], "computed from the messages");

    let (status, body) = env
        .get(
            DASHBOARD,
            &agent5,
            &[("from", "2024-06-29"), ("to", "2024-06-30")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["total_conversations"], 1);
    assert_eq!(data["total_messages"], 5);
    assert_eq!(data["average_response_time"], (75.0 + 120.0) / 2.0);
    assert_eq!(data["average_first_response_time"], 75.0);
    assert_eq!(data["resolutions"], 1);
    assert_eq!(
        data["most_active_agent"]["agent_id"], "5",
        "a tie goes to the smaller id"
    );
    assert_eq!(data["me"]["assigned"], 1);
    assert_eq!(
        data["me"]["resolved"], 1,
        "resolutions count for the assignee"
    );
    let daily = data["daily_stats"].as_array().unwrap();
    for (i, (day, count)) in acme_per_day.iter().enumerate() {
        assert_eq!(daily[i]["date"], *day);
        assert_eq!(daily[i]["messages"], *count);
    }
    assert_eq!(daily[0]["conversations"], 1);

    let (status, body) = env
        .get(
            GLOBAL,
            &token("adm", "acme", "admin"),
            &[("from", "2024-06-01"), ("to", "2024-06-30")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["total_conversations_all_users"], 1);
    assert_eq!(data["total_messages_all_users"], 5);
    assert_eq!(data["average_conversations_per_user"], 1.0);
    let top = &data["top_performing_agents"][0];
    assert_eq!(
        (top["agent_id"].as_str(), top["success_rate"].as_f64()),
        (Some("5"), Some(100.0))
    );

    // The rollup is idempotent: a second run changes nothing.
    let before = env.table.items().await;
    let again = env
        .rollup
        .run(json!({"from": "2024-06-29", "to": "2024-06-30"}))
        .await
        .unwrap();
    assert_eq!(
        (again["written"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(env.table.items().await, before);
}

#[tokio::test]
async fn a_scheduled_run_updates_what_the_dashboard_shows() {
    let env = Env::new().await;
    let now = OffsetDateTime::now_utc();
    let id = env.conversation(now, &customer(), 5).await;
    env.say(now, &customer(), &id, "first").await;
    let agent = token("5", "acme", "agent");
    let (_, before) = env.get(DASHBOARD, &agent, &[]).await;
    assert_eq!(before["data"]["total_messages"], 0, "nothing folded yet");
    let event = chat_testkit::load_event("schedule-analytics-rollup.json");
    env.rollup.run(event).await.unwrap();
    let (_, after) = env.get(DASHBOARD, &agent, &[]).await;
    assert_eq!(after["data"]["total_messages"], 1);
    assert_eq!(
        after["data"]["daily_stats"].as_array().unwrap().len(),
        7,
        "default: the last 7 days"
    );
}

#[tokio::test]
async fn roles_tenants_ranges_and_budget() {
    let env = Env::new().await;
    let id = env
        .conversation(datetime!(2024-06-29 10:00:00 UTC), &customer(), 5)
        .await;
    env.say(
        datetime!(2024-06-29 10:00:01 UTC),
        &customer(),
        &id,
        "hi there",
    )
    .await;
    env.rollup
        .run(json!({"from": "2024-06-29", "to": "2024-06-29"}))
        .await
        .unwrap();
    let range = [("from", "2024-06-01"), ("to", "2024-06-30")];
    for tok in [customer(), token("5", "acme", "agent")] {
        let (status, body) = env.get(GLOBAL, &tok, &range).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden"))
        );
    }
    let (_, other) = env
        .get(GLOBAL, &token("adm", "globex", "admin"), &range)
        .await;
    assert_eq!(other["data"]["total_messages_all_users"], 0);
    let (_, other) = env
        .get(DASHBOARD, &token("5", "globex", "agent"), &range)
        .await;
    assert_eq!(other["data"]["total_messages"], 0);
    // A customer sees their own conversations only.
    let (status, mine) = env.get(DASHBOARD, &customer(), &range).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(
        (
            mine["data"]["total_conversations"].as_i64(),
            mine["data"]["total_messages"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let (_, stranger) = env
        .get(DASHBOARD, &token("u-7", "acme", "customer"), &range)
        .await;
    assert_eq!(stranger["data"]["total_conversations"], 0);

    for query in [
        vec![("from", "2024-01-01"), ("to", "2024-06-30")],
        vec![("from", "2024-06-30"), ("to", "2024-06-01")],
        vec![("from", "29/06/2024")],
    ] {
        assert_eq!(
            env.get(DASHBOARD, &token("5", "acme", "agent"), &query)
                .await
                .0,
            422,
            "{query:?}"
        );
    }
    let store = &env.table.runtime.store;
    let before = store.requests();
    env.get(
        DASHBOARD,
        &token("5", "acme", "agent"),
        &[("from", "2024-04-01"), ("to", "2024-06-30")],
    )
    .await;
    assert_eq!(store.requests() - before, 1, "one Query whatever the range");
    let before = store.requests();
    env.get(GLOBAL, &token("adm", "acme", "admin"), &range)
        .await;
    assert!(store.requests() - before <= 2);
}
