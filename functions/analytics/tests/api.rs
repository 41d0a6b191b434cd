//! Analytics end to end against DynamoDB Local: messages written at controlled times
//! (across midnight, UTC), the rollup, and the dashboards — whose figures must equal
//! what the test computes itself from the messages it wrote.

use analytics::App;
use analytics_rollup::Rollup;
use chat_core::ids::{OrgId, UserId};
use chat_core::item::ItemExt;
use chat_core::keys;
use chat_core::store::Profile;
use chat_core::store::analytics::{fold_day, seconds_between};
use chat_testkit::{HttpEvent, load_event, response_json, to_request, token};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use time::OffsetDateTime;
use time::macros::datetime;

/// The analytics app, and beside it on the same table the functions that write what
/// it reads.
type Env = chat_testkit::FunctionTest<App, Writers>;

struct Writers {
    conversations: conversations::App,
    messages: messages::App,
    rollup: Rollup,
}

async fn env() -> Env {
    Env::with(App::new, |runtime| Writers {
        conversations: conversations::App::new(runtime.clone()),
        messages: messages::App::new(runtime.clone()),
        rollup: Rollup::new(runtime.store, 2),
    })
    .await
}

/// The calls these tests make.
trait Calls {
    async fn at<F: std::future::Future>(&self, when: OffsetDateTime, work: F) -> F::Output;

    async fn conversation(&self, when: OffsetDateTime, tok: &str, agent: u32) -> String;

    async fn say(&self, when: OffsetDateTime, tok: &str, id: &str, content: &str);

    async fn note(&self, when: OffsetDateTime, tok: &str, id: &str, content: &str);

    async fn resolve(&self, when: OffsetDateTime, tok: &str, id: &str);

    async fn get(&self, route: &str, tok: &str, query: &[(&str, &str)]) -> (u16, Value);
}

impl Calls for Env {
    async fn at<F: std::future::Future>(&self, when: OffsetDateTime, work: F) -> F::Output {
        chat_core::time::at(when, work).await
    }

    async fn conversation(&self, when: OffsetDateTime, tok: &str, agent: u32) -> String {
        let event = HttpEvent::new("POST /chat/conversations", "/chat/conversations")
            .bearer(tok)
            .json(&json!({"title": "Help", "agent_id": agent}));
        let (status, body) = self
            .at(when, async {
                response_json(&self.extra.conversations.handle(event.request()).await)
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
                response_json(&self.extra.messages.handle(event.request()).await)
            })
            .await;
        assert_eq!(status, 201, "{body}");
    }

    async fn note(&self, when: OffsetDateTime, tok: &str, id: &str, content: &str) {
        let event = HttpEvent::new(
            "POST /chat/conversations/{conversation_id}/messages",
            &format!("/chat/conversations/{id}/messages"),
        )
        .param("conversation_id", id)
        .bearer(tok)
        .json(&json!({"content": content, "message_type": "note"}));
        let (status, body) = self
            .at(when, async {
                response_json(&self.extra.messages.handle(event.request()).await)
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
                response_json(&self.extra.conversations.handle(event.request()).await)
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

/// What the rollup must find, computed here from one tenant's stored messages alone
/// (not from any counter): per UTC day the messages and the response times (a staff
/// or bot message answering the customer's oldest unanswered message, credited to the
/// answer's day), the first response of each conversation, messages by sender type
/// and per agent. Internal notes count for none of them.
#[derive(Debug, Default)]
struct Expected {
    per_day: BTreeMap<String, (i64, Vec<i64>)>,
    responses: Vec<i64>,
    first_responses: Vec<i64>,
    by_sender: BTreeMap<String, i64>,
    per_agent: BTreeMap<String, i64>,
    per_room: BTreeMap<String, Vec<i64>>,
}

fn expected(items: &[chat_core::item::Item], org: &str) -> Expected {
    let prefix = format!("T#{org}#");
    let mut messages: Vec<_> = items
        .iter()
        .filter(|i| i.str(keys::ENTITY) == Some(keys::entity::MESSAGE))
        .filter(|i| i.str(keys::PK).is_some_and(|pk| pk.starts_with(&prefix)))
        .filter(|i| i.str("message_type") != Some("note"))
        .collect();
    messages.sort_by_key(|m| (m.string("room_id"), m.string("message_id")));
    let mut out = Expected::default();
    let mut waiting: HashMap<String, String> = HashMap::new();
    let mut answered: BTreeSet<String> = BTreeSet::new();
    for m in messages {
        let at = m.string("created_at").unwrap();
        let day = out.per_day.entry(at[..10].to_owned()).or_default();
        day.0 += 1;
        let room = m.string("room_id").unwrap();
        let sender = m.string("sender").unwrap();
        *out.by_sender.entry(sender.clone()).or_default() += 1;
        if sender == "user" {
            waiting.entry(room).or_insert(at);
            continue;
        }
        *out.per_agent
            .entry(m.string("sender_id").unwrap())
            .or_default() += 1;
        if let Some(since) = waiting.remove(&room) {
            let secs = seconds_between(&since, &at);
            day.1.push(secs);
            out.responses.push(secs);
            out.per_room.entry(room.clone()).or_default().push(secs);
            if answered.insert(room) {
                out.first_responses.push(secs);
            }
        }
    }
    out
}

fn mean(values: &[i64]) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    let avg = values.iter().sum::<i64>() as f64 / values.len() as f64;
    json!((avg * 100.0).round() / 100.0)
}

#[tokio::test]
async fn rollup_figures_equal_the_messages_written_across_midnight() {
    let env = env().await;
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
    // An internal note does not answer the customer.
    env.note(datetime!(2024-06-29 23:59:50 UTC), &agent6, &id, "VIP")
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
    // A second customer, answered the next morning; then a third, never answered.
    let other_customer = token("u-101", "acme", "customer");
    let second = env
        .conversation(datetime!(2024-06-30 22:00:00 UTC), &other_customer, 6)
        .await;
    env.say(
        datetime!(2024-06-30 22:00:10 UTC),
        &other_customer,
        &second,
        "is anyone there",
    )
    .await;
    env.say(
        datetime!(2024-07-01 08:00:10 UTC),
        &agent6,
        &second,
        "good morning",
    )
    .await;
    let third = env
        .conversation(datetime!(2024-07-01 09:00:00 UTC), &other_customer, 5)
        .await;
    env.say(
        datetime!(2024-07-01 09:00:01 UTC),
        &other_customer,
        &third,
        "another question",
    )
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

    let range = json!({"from": "2024-06-29", "to": "2024-07-01"});
    let summary = env.extra.rollup.run(range.clone()).await.unwrap();
    assert_eq!(
        summary["written"], 4,
        "acme three days, globex one: {summary}"
    );

    let want = expected(&env.table.items().await, "acme");
    // The computation itself, checked by hand once: 23:59:30 → 00:00:45 is 75 s,
    // 00:01:00 → 00:03:00 is 120 s, 22:00:10 → 08:00:10 the next day is 36,000 s.
    assert_eq!(want.responses, vec![75, 120, 36_000]);
    assert_eq!(want.first_responses, vec![75, 36_000]);

    let store = &env.table.runtime.store;
    store
        .put_profile(
            &OrgId::parse("acme").unwrap(),
            &UserId::parse("5").unwrap(),
            &Profile {
                user_id: "5".into(),
                username: Some("Customer Service Agent".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let requests = store.requests();
    let (status, body) = env
        .get(
            DASHBOARD,
            &agent5,
            &[("from", "2024-06-29"), ("to", "2024-07-01")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        store.requests() - requests,
        2,
        "the rollups' Query and the most active agent's profile"
    );
    let data = &body["data"];
    let total: i64 = want.per_day.values().map(|d| d.0).sum();
    assert_eq!(data["total_conversations"], 3);
    assert_eq!(data["total_messages"], total);
    assert_eq!(data["messages_by_sender"], json!(want.by_sender));
    assert_eq!(data["average_response_time"], mean(&want.responses));
    assert_eq!(
        data["average_first_response_time"],
        mean(&want.first_responses)
    );
    assert_eq!(data["resolutions"], 1);
    let (top_id, top_count) = want
        .per_agent
        .iter()
        .max_by_key(|(id, n)| (**n, std::cmp::Reverse((*id).clone())))
        .unwrap();
    assert_eq!(data["most_active_agent"]["agent_id"], json!(top_id));
    assert_eq!(data["most_active_agent"]["message_count"], json!(top_count));
    assert_eq!(
        data["me"],
        json!({
            "agent_id": "5", "messages": want.per_agent["5"], "assigned": 2, "resolved": 1,
            "csat": {"average": null, "ratings": 0},
        }),
        "resolutions count for the assignee"
    );
    let daily = data["daily_stats"].as_array().unwrap();
    assert_eq!(daily.len(), 3);
    for row in daily {
        let (messages, responses) = &want.per_day[row["date"].as_str().unwrap()];
        assert_eq!(row["messages"], *messages, "{row}");
        assert_eq!(row["average_response_time"], mean(responses), "{row}");
    }
    assert_eq!(
        daily
            .iter()
            .map(|d| d["conversations"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 1, 1]
    );

    let (status, body) = env
        .get(
            GLOBAL,
            &token("adm", "acme", "admin"),
            &[("from", "2024-06-01"), ("to", "2024-07-01")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["total_conversations_all_users"], 3);
    assert_eq!(data["total_messages_all_users"], total);
    assert_eq!(data["active_customers"], 2);
    assert_eq!(data["active_customers_estimated"], false);
    assert_eq!(data["average_conversations_per_user"], 1.5);
    assert_eq!(data["average_response_time"], mean(&want.responses));
    let top: BTreeMap<String, (i64, Option<f64>)> = data["top_performing_agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["agent_id"].as_str().unwrap().to_owned(),
                (a["messages"].as_i64().unwrap(), a["success_rate"].as_f64()),
            )
        })
        .collect();
    assert_eq!(
        top["5"],
        (want.per_agent["5"], Some(50.0)),
        "1 of 2 assigned resolved"
    );
    assert_eq!(top["6"], (want.per_agent["6"], Some(0.0)), "{top:?}");

    // Customers see their own conversations' figures (no rollup needed): the inbox
    // and those rooms, two requests.
    for (tok, rooms) in [
        (customer(), vec![id.clone()]),
        (other_customer.clone(), vec![second.clone(), third.clone()]),
    ] {
        let requests = store.requests();
        let (status, body) = env
            .get(
                DASHBOARD,
                &tok,
                &[("from", "2024-06-29"), ("to", "2024-07-01")],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(store.requests() - requests, 2);
        let answered: Vec<i64> = rooms
            .iter()
            .flat_map(|r| want.per_room.get(r).cloned().unwrap_or_default())
            .collect();
        assert_eq!(body["data"]["total_conversations"], rooms.len());
        assert_eq!(
            body["data"]["average_response_time"],
            mean(&answered),
            "{body}"
        );
    }

    // The rollup is idempotent: a second run changes nothing.
    let before = env.table.items().await;
    let again = env.extra.rollup.run(range).await.unwrap();
    assert_eq!(
        (again["written"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(4))
    );
    assert_eq!(env.table.items().await, before);
}

#[tokio::test]
async fn a_scheduled_run_updates_what_the_dashboard_shows() {
    let env = env().await;
    let now = OffsetDateTime::now_utc();
    let id = env.conversation(now, &customer(), 5).await;
    env.say(now, &customer(), &id, "first").await;
    let agent = token("5", "acme", "agent");
    let (_, before) = env.get(DASHBOARD, &agent, &[]).await;
    assert_eq!(before["data"]["total_messages"], 0, "nothing folded yet");
    let event = chat_testkit::load_event("schedule-analytics-rollup.json");
    env.extra.rollup.run(event).await.unwrap();
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
    let env = env().await;
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
    env.extra
        .rollup
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

#[tokio::test]
async fn concurrent_and_lagging_runs_never_move_figures_back() {
    let env = env().await;
    let store = &env.table.runtime.store;
    let id = env
        .conversation(datetime!(2024-06-29 10:00:00 UTC), &customer(), 5)
        .await;
    env.say(
        datetime!(2024-06-29 10:00:01 UTC),
        &customer(),
        &id,
        "hello there",
    )
    .await;
    // What a run that read the day just before the agent's answer would write.
    let stale = fold_day(
        "2024-06-29",
        &store.stats_of_day("2024-06-29").await.unwrap(),
    )
    .remove("acme")
    .unwrap();
    let agent = token("5", "acme", "agent");
    env.say(datetime!(2024-06-29 10:05:00 UTC), &agent, &id, "on it")
        .await;

    // Two runs at once: one writes, the other finds the figures already there.
    let range = json!({"from": "2024-06-29", "to": "2024-06-29"});
    let before = env.table.items().await;
    let (a, b) = tokio::join!(
        env.extra.rollup.run(range.clone()),
        env.extra.rollup.run(range.clone())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let count = |k: &str| a[k].as_u64().unwrap() + b[k].as_u64().unwrap();
    assert_eq!((count("written"), count("unchanged")), (1, 1), "{a} {b}");
    // The rollup wrote its item and nothing else.
    let after = env.table.items().await;
    let not_rollups = |items: &[chat_core::item::Item]| -> Vec<chat_core::item::Item> {
        items
            .iter()
            .filter(|i| i.str(keys::ENTITY) != Some(keys::entity::ROLLUP))
            .cloned()
            .collect()
    };
    assert_eq!(not_rollups(&after), not_rollups(&before));
    assert_eq!(after.len(), before.len() + 1);

    // The rollup found the rooms through a keys-only index (message posts never
    // write it) and read the counters by key.
    let described = store
        .client()
        .describe_table()
        .table_name(store.table().name())
        .send()
        .await
        .unwrap();
    let gsi2 = described
        .table
        .and_then(|t| t.global_secondary_indexes)
        .unwrap_or_default()
        .into_iter()
        .find(|g| g.index_name.as_deref() == Some(keys::GSI2))
        .unwrap();
    assert_eq!(
        gsi2.projection.and_then(|p| p.projection_type),
        Some(aws_sdk_dynamodb::types::ProjectionType::KeysOnly)
    );

    // A lagging run (older view of the day) cannot put its figures over newer ones.
    assert!(!store.put_rollup("acme", &stale).await.unwrap());
    assert_eq!(env.table.items().await, after);
    let range_q = [("from", "2024-06-29"), ("to", "2024-06-29")];
    let (_, body) = env.get(DASHBOARD, &agent, &range_q).await;
    assert_eq!(body["data"]["total_messages"], 2);
    assert_eq!(body["data"]["average_response_time"], 299.0);

    // Later traffic the same day: the next run folds it in.
    env.say(
        datetime!(2024-06-29 23:59:59 UTC),
        &customer(),
        &id,
        "thanks",
    )
    .await;
    let again = env.extra.rollup.run(range).await.unwrap();
    assert_eq!(again["written"], 1, "{again}");
    let (_, body) = env.get(DASHBOARD, &agent, &range_q).await;
    assert_eq!(body["data"]["total_messages"], 3);
}

#[tokio::test]
async fn the_events_files_drive_the_handlers() {
    let env = env().await;
    for name in [
        "get-chat-analytics-dashboard.json",
        "get-chat-analytics-global.json",
    ] {
        let (status, body) = response_json(&env.app.handle(to_request(&load_event(name))).await);
        assert_eq!(status, 200, "{name}: {body}");
        assert!(
            body["data"]["daily_stats"].is_array()
                || body["data"]["top_performing_agents"].is_array(),
            "{name}: {body}"
        );
    }
    let summary = env
        .extra
        .rollup
        .run(load_event("schedule-analytics-rollup.json"))
        .await
        .unwrap();
    assert_eq!(summary["days"], 2, "today and yesterday: {summary}");
}
