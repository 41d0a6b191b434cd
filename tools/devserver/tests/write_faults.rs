//! The fault matrix, generated from the route table: every route of template.yaml
//! that writes (every method but GET) meets, at its write, a throttled write, a
//! conflicting write and a write that never answers (faults DynamoDB Local never
//! produces, injected at the SDK's HTTP client seam; reads reach the real table).
//! Each answers 503 with Retry-After and the storage code of its cause, and nothing
//! is written. A route added to the template later is covered without editing this
//! file: it is called with its events/ fixture on real ids, by the first of the
//! room's owner, a staff member and an admin that it does not refuse.

use chat_testkit::faults::{Fault, Faults};
use chat_testkit::{HttpDouble, TestTable, token};
use devserver::TestApp;
use messages::ai::{Ai, Provider};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

struct World {
    app: TestApp,
    faults: Faults,
    /// The AI provider's double (kept alive for the AI reply route).
    _ai: HttpDouble,
    /// acme support conversation of u-100 (customer) with agent a-1, and its message.
    conversation: String,
    message: String,
    /// acme group room of u-100 (owner) with u-300, and u-100's message.
    group: String,
    group_message: String,
    webhook: String,
    delivery: String,
    /// u-100's push subscription (the fixture's).
    subscription: String,
    device: String,
    /// A support team with u-300 in it.
    team: String,
}

/// Who may be calling: the rooms' owner, the conversation's agent, an admin.
fn callers() -> [String; 3] {
    [
        token("u-100", "acme", "customer"),
        token("a-1", "acme", "agent"),
        token("a-9", "acme", "admin"),
    ]
}

async fn ai_double() -> HttpDouble {
    HttpDouble::start(|_| {
        let answer = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "local-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "On its way."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30},
        });
        (200, answer.to_string(), Duration::ZERO)
    })
    .await
}

impl World {
    async fn new() -> World {
        let (table, faults) = TestTable::with_faults().await;
        let double = ai_double().await;
        let ai = Ai {
            provider: Provider::openai(&format!("{}/v1", double.url()), "local-model", None)
                .expect("provider"),
            price_per_1k_tokens: 0.002,
            timeout: Duration::from_secs(2),
        };
        let app = TestApp::on(table, ai);
        let [owner, _, _] = callers();
        let support = created(
            app.send(
                "POST /chat/conversations",
                &[],
                &owner,
                Some(json!({"title": "Order 4242", "agent_id": "a-1"})),
                &[],
            )
            .await,
        );
        let group = created(
            app.send(
                "POST /rooms",
                &[],
                &owner,
                Some(json!({"type": "group", "name": "Team", "participant_ids": ["u-300"]})),
                &[],
            )
            .await,
        );
        let (conversation, group) = (
            support["data"]["conversation_id"]
                .as_str()
                .unwrap()
                .to_owned(),
            group["data"]["id"].as_str().unwrap().to_owned(),
        );
        let mut ids = Vec::new();
        for room in [&conversation, &group] {
            let posted = created(
                app.send(
                    "POST /chat/conversations/{conversation_id}/messages",
                    &[("conversation_id", room)],
                    &owner,
                    Some(json!({"content": "where is my parcel"})),
                    &[],
                )
                .await,
            );
            ids.push(posted["data"]["id"].as_str().unwrap().to_owned());
        }
        let (webhook, delivery) = app.webhook_with_delivery().await;
        let key = "POST /me/push-subscriptions";
        let body = serde_json::from_str(app.fixtures[key]["body"].as_str().unwrap()).unwrap();
        let subscribed = created(app.send(key, &[], &owner, Some(body), &[]).await);
        let subscription = subscribed["data"]["subscription_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let key = "POST /me/devices";
        let body = serde_json::from_str(app.fixtures[key]["body"].as_str().unwrap()).unwrap();
        let registered = created(app.send(key, &[], &owner, Some(body), &[]).await);
        let device = registered["data"]["device_id"].as_str().unwrap().to_owned();
        let admin = &callers()[2];
        let made = created(
            app.send(
                "POST /teams",
                &[],
                admin,
                Some(json!({"name": "Desk"})),
                &[],
            )
            .await,
        );
        let team = made["data"]["team_id"].as_str().unwrap().to_owned();
        let (status, _) = app
            .send(
                "PUT /teams/{team_id}/agents/{user_id}",
                &[("team_id", &team), ("user_id", "u-300")],
                admin,
                Some(json!({"capacity": 2})),
                &[],
            )
            .await;
        assert_eq!(status, 200);
        // The fixtures' label, on the conversation (its DELETE takes it off).
        created(
            app.send(
                "POST /labels",
                &[],
                admin,
                Some(json!({"name": "vip"})),
                &[],
            )
            .await,
        );
        created(
            app.send(
                "POST /chat/conversations/{conversation_id}/labels",
                &[("conversation_id", &conversation)],
                admin,
                Some(json!({"labels": ["vip"]})),
                &[],
            )
            .await,
        );
        // Resolved, so that its customer may rate it.
        created(
            app.send(
                "PUT /chat/conversations/{conversation_id}",
                &[("conversation_id", &conversation)],
                admin,
                Some(json!({"status": "resolved"})),
                &[],
            )
            .await,
        );
        World {
            team,
            subscription,
            device,
            app,
            faults,
            _ai: double,
            webhook,
            delivery,
            conversation,
            message: ids[0].clone(),
            group,
            group_message: ids[1].clone(),
        }
    }

    /// Real ids for `route`'s path: conversation routes on the conversation, room
    /// routes on the group; the member is the group's other member. The tenant's
    /// systems (webhook replays) reach only rooms open to the tenant: the conversation.
    fn params(&self, path: &str) -> Vec<(&'static str, String)> {
        let (room, message) = if path.starts_with("/chat/") || path.starts_with("/webhooks/") {
            (&self.conversation, &self.message)
        } else {
            (&self.group, &self.group_message)
        };
        vec![
            ("room_id", room.clone()),
            ("conversation_id", room.clone()),
            ("message_id", message.clone()),
            ("user_id", "u-300".to_owned()),
            ("webhook_id", self.webhook.clone()),
            ("delivery_id", self.delivery.clone()),
            ("subscription_id", self.subscription.clone()),
            ("device_id", self.device.clone()),
            ("team_id", self.team.clone()),
            ("label_name", "vip".to_owned()),
            ("short_code", "thanks".to_owned()),
        ]
    }

    /// The route's fixture body with any `message_id`, `room_id` and team naming the
    /// real message, room and team.
    fn body(&self, key: &str, room: &str, message: &str) -> Option<Value> {
        // The fixtures' team is this world's.
        let text = self.app.fixtures[key]["body"]
            .as_str()?
            .replace("01HZX3K7Q8R9S0T1V2W3XTEAMS", &self.team);
        let mut body: Value = serde_json::from_str(&text).ok()?;
        if body.get("message_id").is_some() {
            body["message_id"] = json!(message);
        }
        if body.get("room_id").is_some() {
            body["room_id"] = json!(room);
        }
        body.as_object_mut()?.remove("sender_type");
        Some(body)
    }
}

impl World {
    /// The template's writing routes: key and path.
    fn writes(&self) -> Vec<(String, String)> {
        self.app
            .routes
            .iter()
            .filter(|r| r.method != "GET")
            // An upload's POST reads the room and signs a form: it writes no item
            // (the client's file goes to S3, tests/uploads.rs).
            .filter(|r| !r.path.ends_with("/uploads"))
            // A rating request's link rates through the same transaction as
            // `POST …/rating` (`Store::rate_conversation`), which is called here; its
            // own faults are the link's signature (tests/notifications.rs).
            .filter(|r| r.key() != "POST /email/rating")
            .map(|r| (r.key(), r.path.clone()))
            .collect()
    }

    /// Calls `key` on real ids with its fixture body, as each caller in turn until one
    /// is not refused (403 or 404): every answer, with whether it set Retry-After.
    async fn call(&self, key: &str, path: &str) -> Vec<(u16, Value, bool)> {
        let params = self.params(path);
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let find = |name: &str| params.iter().find(|(k, _)| *k == name).unwrap().1;
        let body = self.body(key, find("room_id"), find("message_id"));
        let mut answers = Vec::new();
        for caller in callers() {
            let response = self
                .app
                .respond(key, &params, &caller, body.clone(), &[])
                .await;
            let retry_after = response.headers().get("retry-after").is_some();
            let (status, answer) = chat_testkit::response_json(&response);
            answers.push((status, answer, retry_after));
            if !matches!(status, 403 | 404) {
                break;
            }
        }
        answers
    }
}

fn created((status, body): (u16, Value)) -> Value {
    assert!(status == 201 || status == 200, "{status} {body}");
    body
}

/// Calls every writing route with `fault` armed; see the module's comment.
async fn every_write_meets(fault: Fault, expected_code: &str) {
    let world = Arc::new(World::new().await);
    let before = world.app.table.items().await;
    world.faults.arm(fault);
    let mut calls = tokio::task::JoinSet::new();
    let writes = world.writes();
    assert!(
        writes.len() >= 17,
        "the template's writing routes: {writes:?}"
    );
    for (key, path) in writes {
        let world = world.clone();
        calls.spawn(async move {
            let answers = world.call(&key, &path).await;
            let (status, answer, retry_after) = answers.last().cloned().unwrap();
            (key, status, answer, retry_after)
        });
    }
    while let Some(done) = calls.join_next().await {
        let (key, status, body, retry_after) = done.expect("call");
        assert_eq!(status, 503, "{fault:?} {key}: {body}");
        assert_eq!(
            body["error"]["code"], expected_code,
            "{fault:?} {key}: the write was reached and its cause named: {body}"
        );
        assert!(retry_after, "{fault:?} {key}: Retry-After is set");
        assert!(
            !body.to_string().contains("Exception"),
            "{key}: no internals leak: {body}"
        );
    }
    world.faults.disarm();
    assert!(world.faults.injected() > 0);
    assert_eq!(
        world.app.table.items().await,
        before,
        "{fault:?}: nothing was written"
    );
}

#[tokio::test]
async fn every_write_that_is_throttled_answers_503_and_writes_nothing() {
    every_write_meets(Fault::Throttled, "storage_unavailable").await;
}

#[tokio::test]
async fn every_write_that_keeps_conflicting_answers_503_and_writes_nothing() {
    every_write_meets(Fault::Conflict, "storage_busy").await;
}

#[tokio::test]
async fn every_write_that_never_answers_is_503_within_the_timeouts_and_writes_nothing() {
    every_write_meets(Fault::Timeout, "storage_unavailable").await;
}

#[tokio::test]
async fn without_a_fault_the_same_calls_succeed() {
    // The matrix's calls are real ones: unarmed, each route's call as above succeeds.
    let world = World::new().await;
    // Deletions last, so the other calls still find what they act on.
    let (mut deletes, others): (Vec<_>, Vec<_>) = world
        .writes()
        .into_iter()
        .partition(|(k, _)| k.starts_with("DELETE"));
    // A message or a member before its room.
    deletes.sort_by_key(|(_, path)| std::cmp::Reverse(path.matches('/').count()));
    for (key, path) in others.into_iter().chain(deletes) {
        if key.ends_with("/rating") {
            // The calls before may have reopened it: a rating needs a resolution.
            created(
                world
                    .app
                    .send(
                        "PUT /chat/conversations/{conversation_id}",
                        &[("conversation_id", &world.conversation)],
                        &callers()[2],
                        Some(json!({"status": "resolved"})),
                        &[],
                    )
                    .await,
            );
        }
        let logged_before = world.audit().await;
        let answers = world.call(&key, &path).await;
        let (status, answer, _) = answers.last().unwrap();
        assert!(
            (200..300).contains(status),
            "{key}: {status} {answer} after {answers:?}"
        );
        // The audit log, from the same route table: an audited route's success wrote
        // exactly one entry (its write carries it: with a fault above, neither the
        // action nor the entry was written); an exempt route's wrote none.
        let logged = world.audit().await;
        let new: Vec<&Value> = logged
            .iter()
            .filter(|e| !logged_before.iter().any(|b| b["id"] == e["id"]))
            .collect();
        let caller = ["u-100", "a-1", "a-9"][answers.len() - 1];
        let kind = chat_core::audit::classify(&key).expect("classified (tests/routes.rs)");
        let principal = chat_core::Principal {
            user: chat_core::ids::UserId::parse(caller).unwrap(),
            org: chat_core::ids::OrgId::parse("acme").unwrap(),
            role: chat_core::ids::Role::parse(["customer", "agent", "admin"][answers.len() - 1])
                .unwrap(),
        };
        let params = world.params(&path);
        let target = params
            .iter()
            .filter(|(name, _)| path.contains(&format!("{{{name}}}")))
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let body = world
            .body(&key, &params[0].1, &params[2].1)
            .map(|b| b.to_string())
            .unwrap_or_default();
        let expected = match kind {
            chat_core::audit::Kind::Audited(action) => Some(action),
            chat_core::audit::Kind::AuditedIf(action, when) => {
                when(&principal, &target, body.as_bytes()).then_some(action)
            }
            chat_core::audit::Kind::Exempt(_) => None,
        };
        match expected {
            Some(action) => {
                assert_eq!(new.len(), 1, "{key}: one entry: {new:?}");
                let entry = new[0];
                assert_eq!(entry["action"], action, "{key}");
                assert_eq!(entry["route"], key.as_str());
                assert_eq!(entry["actor"]["user_id"], caller, "{key}");
                assert!(!entry["request_id"].as_str().unwrap().is_empty());
                let named: Vec<&str> = entry["target"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                let in_path: Vec<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                let mut in_path = in_path;
                in_path.sort_unstable();
                assert_eq!(named, in_path, "{key}: the target is the path's ids");
            }
            None => assert!(new.is_empty(), "{key} is not recorded here: {new:?}"),
        }
    }
    assert_eq!(world.faults.injected(), 0);
}

impl World {
    /// The tenant's audit log as its admin reads it, newest first (all of it).
    async fn audit(&self) -> Vec<Value> {
        let admin = token("a-9", "acme", "admin");
        let mut entries = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("limit", "100".to_owned())];
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, page) = self
                .app
                .send("GET /admin/audit", &[], &admin, None, &query)
                .await;
            assert_eq!(status, 200, "{page}");
            entries.extend(page["data"]["entries"].as_array().unwrap().iter().cloned());
            match page["data"]["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return entries,
            }
        }
    }
}
