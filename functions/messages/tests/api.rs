//! The messages routes against DynamoDB Local: a fresh table and app per test.

use chat_core::item::ItemExt;
use chat_core::keys;
use chat_testkit::{HttpEvent, load_event, response_json, to_request, token};
use messages::App;
use serde_json::{Value, json};
use std::sync::Arc;

/// The messages app, and the conversations app on the same table.
type Env = chat_testkit::FunctionTest<App, conversations::App>;

async fn env() -> Env {
    Env::with(App::new, conversations::App::new).await
}

const CONV: &str = "/chat/conversations/{conversation_id}";

/// The calls these tests make.
trait Calls {
    /// A support conversation of customer u-100 with agent 5.
    async fn conversation(&self) -> String;

    fn post_event(&self, tok: &str, id: &str, body: Value) -> HttpEvent;

    async fn post(&self, tok: &str, id: &str, body: Value) -> (u16, Value);

    async fn list(&self, tok: &str, id: &str, query: &[(&str, &str)]) -> (u16, Value);

    async fn count(&self, entity: &str) -> usize;

    async fn inbox_row(&self, tok: &str) -> Value;
}

impl Calls for Env {
    async fn conversation(&self) -> String {
        let event = HttpEvent::new("POST /chat/conversations", "/chat/conversations")
            .bearer(&customer())
            .json(&json!({"title": "Help", "agent_id": 5}));
        let (status, body) = response_json(&self.extra.handle(event.request()).await);
        assert_eq!(status, 201, "{body}");
        body["data"]["conversation_id"].as_str().unwrap().to_owned()
    }

    fn post_event(&self, tok: &str, id: &str, body: Value) -> HttpEvent {
        HttpEvent::new(
            &format!("POST {CONV}/messages"),
            &format!("/chat/conversations/{id}/messages"),
        )
        .param("conversation_id", id)
        .bearer(tok)
        .json(&body)
    }

    async fn post(&self, tok: &str, id: &str, body: Value) -> (u16, Value) {
        self.send(self.post_event(tok, id, body)).await
    }

    async fn list(&self, tok: &str, id: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let mut event = HttpEvent::new(
            &format!("GET {CONV}/messages"),
            &format!("/chat/conversations/{id}/messages"),
        )
        .param("conversation_id", id)
        .bearer(tok);
        for (k, v) in query {
            event = event.query(k, v);
        }
        self.send(event).await
    }

    async fn count(&self, entity: &str) -> usize {
        self.table
            .items()
            .await
            .iter()
            .filter(|i| i.str(keys::ENTITY) == Some(entity))
            .count()
    }

    async fn inbox_row(&self, tok: &str) -> Value {
        let event = HttpEvent::new("GET /chat/conversations", "/chat/conversations").bearer(tok);
        let (_, body) = response_json(&self.extra.handle(event.request()).await);
        body["data"]["conversations"][0].clone()
    }
}

fn customer() -> String {
    token("u-100", "acme", "customer")
}

fn agent() -> String {
    token("5", "acme", "agent")
}

fn ids(body: &Value) -> Vec<String> {
    body["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_seed_client_sends_and_reads_messages() {
    let env = env().await;
    let id = env.conversation().await;
    let (status, body) = env
        .post(
            &customer(),
            &id,
            json!({"content": "My order number is #12345", "sender_type": "user"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let data = &body["data"];
    assert!(data["message_id"].is_string());
    assert_eq!(data["conversation_id"], id.as_str());
    assert_eq!(data["content"], "My order number is #12345");
    assert_eq!(data["sender"], "user");
    assert!(data["created_at"].is_string());

    let (status, body) = env
        .post(
            &agent(),
            &id,
            json!({"content": "Let me check", "sender_type": "agent"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let (status, body) = env
        .list(&customer(), &id, &[("limit", "50"), ("offset", "0")])
        .await;
    assert_eq!(status, 200, "{body}");
    let messages = body["data"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["content"], "Let me check", "newest first");
    assert_eq!(messages[0]["sender"], "agent");
    for field in [
        "id",
        "conversation_id",
        "content",
        "content_type",
        "sender",
        "message_type",
        "status",
        "tokens_used",
        "processing_time",
        "created_at",
    ] {
        assert!(messages[0].get(field).is_some(), "missing {field}");
    }
    assert_eq!(body["data"]["total"], 2);

    // The agent's reply is unread for the customer; their own message is not.
    let row = env.inbox_row(&customer()).await;
    assert_eq!(row["unread_count"], 1);
    assert_eq!(row["total_messages"], 2);
    assert!(row["last_message_at"].is_string());
    let row = env.inbox_row(&agent()).await;
    assert_eq!(row["unread_count"], 0);
}

#[tokio::test]
async fn pages_walk_the_whole_room_in_a_stable_order() {
    let env = env().await;
    let id = env.conversation().await;
    let mut sent = Vec::new();
    for i in 0..7 {
        let (_, body) = env
            .post(&customer(), &id, json!({"content": format!("m{i}")}))
            .await;
        sent.push(body["data"]["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("limit", "3")];
        if let Some(c) = cursor.as_deref() {
            q.push(("before", c));
        }
        let (status, body) = env.list(&customer(), &id, &q).await;
        assert_eq!(status, 200, "{body}");
        seen.extend(ids(&body));
        match body["data"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut newest_first = sent.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    // `after` walks forward from an older page's cursor, oldest first.
    let (_, oldest_page) = env.list(&customer(), &id, &[("limit", "6")]).await;
    let from_sixth = oldest_page["data"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = env
        .list(&customer(), &id, &[("after", &from_sixth), ("limit", "10")])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), sent[2..].to_vec());
    assert_eq!(body["data"]["order"], "oldest_first");
}

#[tokio::test]
async fn a_retried_post_returns_the_first_message() {
    let env = env().await;
    let id = env.conversation().await;
    let event = env
        .post_event(&customer(), &id, json!({"content": "once"}))
        .header("idempotency-key", "k-1");
    let (s1, first) = env.send(event.clone()).await;
    let (s2, second) = env.send(event).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(
        first["data"], second["data"],
        "the retry answers the first result"
    );
    assert_eq!(env.count(keys::entity::MESSAGE).await, 1);

    // client_message_id works the same way.
    let body = json!({"content": "twice?", "client_message_id": "c-1"});
    let (_, a) = env.post(&customer(), &id, body.clone()).await;
    let (_, b) = env.post(&customer(), &id, body).await;
    assert_eq!(a["data"]["id"], b["data"]["id"]);
    assert_eq!(env.count(keys::entity::MESSAGE).await, 2);

    // The same key for a different message is a conflict, and writes nothing.
    let reuse = env
        .post_event(&customer(), &id, json!({"content": "other"}))
        .header("idempotency-key", "k-1");
    let (status, body) = env.send(reuse).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );
    assert_eq!(env.count(keys::entity::MESSAGE).await, 2);
}

#[tokio::test]
async fn concurrent_senders_and_retries_store_each_message_once() {
    // Staff send (the agent member and an admin who is not a member) while the
    // customer only receives, so every counter has one right answer.
    const SENDERS: usize = 6;
    const RETRIES: usize = 3;
    let env = Arc::new(env().await);
    let id = env.conversation().await;
    let mut tasks = Vec::new();
    for sender in 0..SENDERS {
        let tok = if sender % 2 == 0 {
            agent()
        } else {
            token("adm", "acme", "admin")
        };
        // The same keyed request sent RETRIES times at once (a client retrying on a
        // timeout), and one unkeyed message.
        for _ in 0..RETRIES {
            let (env, id, tok) = (env.clone(), id.clone(), tok.clone());
            tasks.push(tokio::spawn(async move {
                let event = env
                    .post_event(&tok, &id, json!({"content": format!("keyed {sender}")}))
                    .header("idempotency-key", &format!("key-{sender}"));
                env.send(event).await
            }));
        }
        let (env, id) = (env.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            env.post(&tok, &id, json!({"content": format!("plain {sender}")}))
                .await
        }));
    }
    let mut by_content: std::collections::HashMap<String, Vec<String>> = Default::default();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 201, "{body}");
        by_content
            .entry(body["data"]["content"].as_str().unwrap().to_owned())
            .or_default()
            .push(body["data"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(by_content.len(), 2 * SENDERS);
    for (content, ids) in &by_content {
        assert!(
            ids.iter().all(|i| i == &ids[0]),
            "{content}: one message per key, got {ids:?}"
        );
    }
    let stored = env.count(keys::entity::MESSAGE).await;
    assert_eq!(stored, 2 * SENDERS, "one per key + the plain ones");
    assert_eq!(env.count(keys::entity::IDEMPOTENCY).await, SENDERS);
    let (_, body) = env.list(&agent(), &id, &[("limit", "100")]).await;
    assert_eq!(ids(&body).len(), stored);
    assert_eq!(body["data"]["total"], stored, "the room counter");
    let customer_row = env.inbox_row(&customer()).await;
    assert_eq!(customer_row["total_messages"], stored);
    assert_eq!(
        customer_row["unread_count"], stored,
        "the customer has read none of them"
    );
    assert_eq!(env.inbox_row(&agent()).await["total_messages"], stored);
}

#[tokio::test]
async fn strangers_and_other_tenants_get_404_and_write_nothing() {
    let env = env().await;
    let id = env.conversation().await;
    let before = env.table.items().await;
    for tok in [
        token("u-101", "acme", "customer"),
        token("u-100", "globex", "customer"),
        token("x", "globex", "admin"),
    ] {
        let (status, body) = env.post(&tok, &id, json!({"content": "let me in"})).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{body}"
        );
        let (status, _) = env.list(&tok, &id, &[]).await;
        assert_eq!(status, 404);
    }
    assert_eq!(env.table.items().await, before, "nothing was written");
    // Same room id through the rooms path family: same rules.
    let event = HttpEvent::new(
        "GET /rooms/{room_id}/messages",
        &format!("/rooms/{id}/messages"),
    )
    .param("room_id", &id)
    .bearer(&token("u-101", "acme", "customer"));
    assert_eq!(env.send(event).await.0, 404);
}

#[tokio::test]
async fn notes_are_internal() {
    let env = env().await;
    let id = env.conversation().await;
    let (status, body) = env
        .post(
            &customer(),
            &id,
            json!({"content": "psst", "message_type": "note"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    assert_eq!(env.count(keys::entity::MESSAGE).await, 0);

    let (status, _) = env
        .post(
            &agent(),
            &id,
            json!({"content": "customer is VIP", "message_type": "note"}),
        )
        .await;
    assert_eq!(status, 201);
    env.post(&agent(), &id, json!({"content": "hello"})).await;
    let (_, seen_by_customer) = env.list(&customer(), &id, &[]).await;
    assert_eq!(ids(&seen_by_customer).len(), 1);
    assert_eq!(seen_by_customer["data"]["messages"][0]["content"], "hello");
    let (_, seen_by_agent) = env.list(&agent(), &id, &[]).await;
    assert_eq!(ids(&seen_by_agent).len(), 2);
    assert_eq!(
        env.inbox_row(&customer()).await["unread_count"],
        1,
        "a note does not count as unread"
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_writes_nothing() {
    let env = env().await;
    let id = env.conversation().await;
    let before = env.table.items().await;
    let cases = [
        (json!({"content": "x", "sender_type": "agent"}).to_string(), 422, "invalid_field"),
        (json!({"content": "x", "color": "red"}).to_string(), 422, "unknown_field"),
        (json!({"content": ""}).to_string(), 422, "invalid_field"),
        (json!({"content": "x".repeat(4001)}).to_string(), 422, "invalid_field"),
        (json!({"content": "x", "content_type": "exe"}).to_string(), 422, "invalid_field"),
        (json!({"content": "x", "message_type": "system"}).to_string(), 422, "invalid_field"),
        (json!({"content": "x", "attachments": [{"name": "a", "type": "image/png", "size": 1, "url": "ftp://x"}]}).to_string(), 422, "invalid_field"),
        (json!({"content": "x", "attachments": [{"name": "a", "type": "image/png", "size": 1, "url": "https://x", "owner": "me"}]}).to_string(), 422, "unknown_field"),
        (json!({"content": "x", "client_message_id": "has space"}).to_string(), 422, "invalid_field"),
        ("{\"content\": ".to_owned(), 400, "malformed_request"),
        (json!({"content": "x".repeat(70_000)}).to_string(), 413, "payload_too_large"),
    ];
    for (raw, status, code) in cases {
        let event = HttpEvent::new(
            &format!("POST {CONV}/messages"),
            &format!("/chat/conversations/{id}/messages"),
        )
        .param("conversation_id", &id)
        .bearer(&customer())
        .raw_body(&raw);
        let (got, body) = env.send(event).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{}: {body}",
            &raw[..raw.len().min(80)]
        );
    }
    let bad_key = env
        .post_event(&customer(), &id, json!({"content": "x"}))
        .header("idempotency-key", "a#b");
    assert_eq!(env.send(bad_key).await.0, 422);
    assert_eq!(env.table.items().await, before, "nothing was written");

    let (status, _) = env.list(&customer(), &id, &[("limit", "101")]).await;
    assert_eq!(status, 422);
    let (status, _) = env
        .list(&customer(), &id, &[("before", "a"), ("after", "b")])
        .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn cursors_of_another_room_are_refused() {
    let env = env().await;
    let mine = env.conversation().await;
    let other = env.conversation().await;
    for i in 0..3 {
        env.post(&customer(), &other, json!({"content": format!("{i}")}))
            .await;
    }
    let (_, page) = env.list(&customer(), &other, &[("limit", "1")]).await;
    let cursor = page["data"]["next_cursor"].as_str().unwrap().to_owned();
    for c in [cursor.as_str(), "garbage"] {
        let (status, body) = env.list(&customer(), &mine, &[("before", c)]).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_cursor"))
        );
    }
}

#[tokio::test]
async fn budgets_requests_per_call() {
    let env = env().await;
    let id = env.conversation().await;
    let store = &env.table.runtime.store;
    let before = store.requests();
    env.post(&customer(), &id, json!({"content": "hi"})).await;
    assert_eq!(
        store.requests() - before,
        2,
        "cold: read the room's members, then one TransactWriteItems"
    );
    let before = store.requests();
    env.post(&agent(), &id, json!({"content": "hello"})).await;
    assert_eq!(store.requests() - before, 1, "warm: one TransactWriteItems");
    let before = store.requests();
    let (_, page) = env.list(&customer(), &id, &[("limit", "1")]).await;
    assert_eq!(
        store.requests() - before,
        1,
        "the newest page and the room come in one Query"
    );
    let cursor = page["data"]["next_cursor"].as_str().unwrap().to_owned();
    let before = store.requests();
    env.list(&customer(), &id, &[("before", &cursor)]).await;
    assert_eq!(
        store.requests() - before,
        2,
        "a later page: the room (access) and one Query"
    );
    let mid = ids(&page)[0].clone();
    let steps: [(&str, HttpEvent); 3] = [
        (
            "edit: room + message in one BatchGetItem, one TransactWriteItems",
            env.message_event("PATCH", &agent(), &id, &mid)
                .json(&json!({"content": "hello again"})),
        ),
        (
            "read marker: one BatchGetItem (room, row), one TransactWriteItems",
            HttpEvent::new(
                &format!("POST {CONV}/read"),
                &format!("/chat/conversations/{id}/read"),
            )
            .param("conversation_id", &id)
            .bearer(&customer()),
        ),
        (
            "delete: one BatchGetItem, one TransactWriteItems",
            env.message_event("DELETE", &agent(), &id, &mid),
        ),
    ];
    for (what, event) in steps {
        let before = store.requests();
        let (status, body) = env.send(event).await;
        assert_eq!(status, 200, "{what}: {body}");
        assert_eq!(store.requests() - before, 2, "{what}");
    }
    let before = store.requests();
    let (status, _) = env.search(&customer(), "hi").await;
    assert_eq!(
        status, 422,
        "a stop word alone is refused before any request"
    );
    assert_eq!(store.requests() - before, 0);
    env.post(&customer(), &id, json!({"content": "parcel tracking"}))
        .await;
    let before = store.requests();
    let (_, found) = env.search(&customer(), "parcel").await;
    assert_eq!(found["data"]["results"].as_array().unwrap().len(), 1);
    assert_eq!(
        store.requests() - before,
        2,
        "search: one Query of the word's entries, one BatchGetItem of their rooms"
    );
}

#[tokio::test]
async fn edits_and_read_markers_refuse_bad_input_and_write_nothing() {
    let env = env().await;
    let id = env.conversation().await;
    let (_, sent) = env
        .post(&customer(), &id, json!({"content": "first"}))
        .await;
    let mid = message_id(&sent);
    let before = env.table.items().await;
    let read_event = |raw: &str| {
        HttpEvent::new(
            &format!("POST {CONV}/read"),
            &format!("/chat/conversations/{id}/read"),
        )
        .param("conversation_id", &id)
        .bearer(&customer())
        .raw_body(raw)
    };
    let cases = [
        (
            env.message_event("PATCH", &customer(), &id, &mid)
                .raw_body("{\"content\": "),
            400,
            "malformed_request",
        ),
        (
            env.message_event("PATCH", &customer(), &id, &mid)
                .raw_body(r#"["an array is not an object"]"#),
            422,
            "invalid_field",
        ),
        (
            env.message_event("PATCH", &customer(), &id, &mid)
                .json(&json!({"content": "x", "pinned": true})),
            422,
            "unknown_field",
        ),
        (
            env.message_event("PATCH", &customer(), &id, &mid)
                .json(&json!({"content": "  "})),
            422,
            "invalid_field",
        ),
        (
            env.message_event("PATCH", &customer(), &id, &mid)
                .json(&json!({"content": "x".repeat(4001)})),
            422,
            "invalid_field",
        ),
        (
            env.message_event("PATCH", &customer(), &id, &mid)
                .json(&json!({"content": "x".repeat(70_000)})),
            413,
            "payload_too_large",
        ),
        // A path id that cannot exist names nothing: 404, as for a missing one.
        (
            env.message_event("PATCH", &customer(), &id, "not-an-id")
                .json(&json!({"content": "x"})),
            404,
            "not_found",
        ),
        (
            env.message_event("DELETE", &customer(), &id, "not-an-id"),
            404,
            "not_found",
        ),
        (read_event("{"), 400, "malformed_request"),
        (
            read_event(&json!({"message_id": mid, "all": true}).to_string()),
            422,
            "unknown_field",
        ),
        (
            read_event(&json!({"message_id": 7}).to_string()),
            422,
            "invalid_field",
        ),
        (
            read_event(&json!({"message_id": "x".repeat(70_000)}).to_string()),
            413,
            "payload_too_large",
        ),
    ];
    for (i, (event, status, code)) in cases.into_iter().enumerate() {
        let (got, body) = env.send(event).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "case {i}: {body}"
        );
    }
    // Strangers and other tenants learn nothing about the message.
    for tok in [
        token("u-101", "acme", "customer"),
        token("u-100", "globex", "admin"),
    ] {
        let (status, _) = env
            .send(
                env.message_event("PATCH", &tok, &id, &mid)
                    .json(&json!({"content": "x"})),
            )
            .await;
        assert_eq!(status, 404);
        assert_eq!(
            env.send(env.message_event("DELETE", &tok, &id, &mid))
                .await
                .0,
            404
        );
        assert_eq!(env.read(&tok, &id, None).await.0, 404);
    }
    assert_eq!(env.table.items().await, before, "nothing was written");
    // A customer cannot even address an internal note.
    let (_, note) = env
        .post(
            &agent(),
            &id,
            json!({"content": "vip", "message_type": "note"}),
        )
        .await;
    let before_note = env.table.items().await;
    assert_eq!(
        env.send(env.message_event("DELETE", &customer(), &id, &message_id(&note)))
            .await
            .0,
        404
    );
    assert_eq!(env.table.items().await, before_note);
}

#[tokio::test]
async fn event_fixtures_drive_the_handlers() {
    // Every messages route's events/ file, pointed at a real conversation and
    // messages (the fixtures name fixed ids).
    const FIXTURE_ROOM: &str = "01HZX3K7Q8R9S0T1V2W3X4Y5Z6";
    const FIXTURE_MESSAGE: &str = "01HZX3K7Q8R9S0T1V2W3X4Y5Z7";
    let env = env().await;
    let id = env.conversation().await;
    let (_, one) = env
        .post(&customer(), &id, json!({"content": "order 12345 question"}))
        .await;
    let (_, two) = env
        .post(
            &customer(),
            &id,
            json!({"content": "another order question"}),
        )
        .await;
    let (one, two) = (message_id(&one), message_id(&two));
    let cases: [(&str, &str, u16); 12] = [
        ("post-chat-conversations-id-messages.json", &one, 201),
        ("post-rooms-id-messages.json", &one, 201),
        ("get-chat-conversations-id-messages.json", &one, 200),
        ("get-rooms-id-messages.json", &one, 200),
        ("get-chat-search.json", &one, 200),
        ("post-chat-conversations-id-read.json", &one, 200),
        ("post-rooms-id-read.json", &two, 200),
        ("patch-chat-conversations-id-messages-id.json", &one, 200),
        ("patch-rooms-id-messages-id.json", &two, 200),
        ("delete-chat-conversations-id-messages-id.json", &one, 200),
        ("delete-rooms-id-messages-id.json", &two, 200),
        // AI replies are off in this app: the route answers, and says so.
        ("post-chat-conversations-id-ai-response.json", &one, 503),
    ];
    for (name, message, want) in cases {
        let raw = load_event(name)
            .to_string()
            .replace(FIXTURE_ROOM, &id)
            .replace(FIXTURE_MESSAGE, message);
        let event: Value = serde_json::from_str(&raw).unwrap();
        let (status, body) = response_json(&env.app.handle(to_request(&event)).await);
        assert_eq!(status, want, "{name}: {body}");
        assert_eq!(body["success"], want < 300, "{name}: {body}");
    }
    assert_eq!(env.count(keys::entity::MESSAGE).await, 4);
}

#[tokio::test]
async fn a_customer_reply_reopens_a_resolved_conversation() {
    let env = env().await;
    let id = env.conversation().await;
    let put = HttpEvent::new(
        "PUT /chat/conversations/{conversation_id}",
        &format!("/chat/conversations/{id}"),
    )
    .param("conversation_id", &id)
    .bearer(&agent())
    .json(&json!({"status": "resolved"}));
    assert_eq!(response_json(&env.extra.handle(put.request()).await).0, 200);
    env.post(&agent(), &id, json!({"content": "anything else?"}))
        .await;
    assert_eq!(
        env.inbox_row(&customer()).await["status"],
        "resolved",
        "an agent's message does not reopen"
    );
    env.post(&customer(), &id, json!({"content": "yes, one more thing"}))
        .await;
    assert_eq!(env.inbox_row(&customer()).await["status"], "open");
    assert_eq!(env.inbox_row(&agent()).await["status"], "open");

    // A snoozed conversation wakes up the same way, and its deadline goes.
    let until = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let snooze = HttpEvent::new(
        "PUT /chat/conversations/{conversation_id}",
        &format!("/chat/conversations/{id}"),
    )
    .param("conversation_id", &id)
    .bearer(&agent())
    .json(&json!({"status": "snoozed", "snoozed_until": until}));
    assert_eq!(
        response_json(&env.extra.handle(snooze.request()).await).0,
        200
    );
    env.post(&customer(), &id, json!({"content": "still there?"}))
        .await;
    assert_eq!(env.inbox_row(&agent()).await["status"], "open");
    let get = HttpEvent::new(
        "GET /chat/conversations/{conversation_id}",
        &format!("/chat/conversations/{id}"),
    )
    .param("conversation_id", &id)
    .bearer(&agent());
    let (_, got) = response_json(&env.extra.handle(get.request()).await);
    assert_eq!(
        (
            got["data"]["status"].as_str(),
            got["data"]["snoozed_until"].is_null()
        ),
        (Some("open"), true),
        "{got}"
    );
}

/// The calls these tests make.
trait MoreCalls {
    fn message_event(&self, method: &str, tok: &str, id: &str, message: &str) -> HttpEvent;

    async fn read(&self, tok: &str, id: &str, body: Option<Value>) -> (u16, Value);

    async fn search(&self, tok: &str, query: &str) -> (u16, Value);
}

impl MoreCalls for Env {
    fn message_event(&self, method: &str, tok: &str, id: &str, message: &str) -> HttpEvent {
        HttpEvent::new(
            &format!("{method} {CONV}/messages/{{message_id}}"),
            &format!("/chat/conversations/{id}/messages/{message}"),
        )
        .param("conversation_id", id)
        .param("message_id", message)
        .bearer(tok)
    }

    async fn read(&self, tok: &str, id: &str, body: Option<Value>) -> (u16, Value) {
        let mut event = HttpEvent::new(
            &format!("POST {CONV}/read"),
            &format!("/chat/conversations/{id}/read"),
        )
        .param("conversation_id", id)
        .bearer(tok);
        if let Some(body) = body {
            event = event.json(&body);
        }
        self.send(event).await
    }

    async fn search(&self, tok: &str, query: &str) -> (u16, Value) {
        self.send(
            HttpEvent::new("GET /chat/search", "/chat/search")
                .query("query", query)
                .query("limit", "20")
                .bearer(tok),
        )
        .await
    }
}

fn message_id(body: &Value) -> String {
    body["data"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn edit_keeps_the_previous_text_and_only_the_sender_edits() {
    let env = env().await;
    let id = env.conversation().await;
    let (_, sent) = env
        .post(&customer(), &id, json!({"content": "order 123"}))
        .await;
    let mid = message_id(&sent);
    let before = env.table.items().await;
    let (status, body) = env
        .send(
            env.message_event("PATCH", &agent(), &id, &mid)
                .json(&json!({"content": "hijack"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _) = env
        .send(
            env.message_event("PATCH", &token("u-9", "globex", "customer"), &id, &mid)
                .json(&json!({"content": "x"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = env
        .send(
            env.message_event("PATCH", &customer(), &id, &mid)
                .json(&json!({"content": "x", "pin": true})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(env.table.items().await, before, "nothing was written");

    let (status, body) = env
        .send(
            env.message_event("PATCH", &customer(), &id, &mid)
                .json(&json!({"content": "order 124"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["content"], "order 124");
    assert!(body["data"]["edited_at"].is_string());
    assert_eq!(body["data"]["edit_count"], 1);
    let stored = env
        .table
        .items()
        .await
        .into_iter()
        .find(|i| {
            i.str("message_id") == Some(mid.as_str())
                && i.str(keys::ENTITY) == Some(keys::entity::MESSAGE)
        })
        .unwrap();
    assert!(
        stored
            .str("previous_versions")
            .unwrap()
            .contains("order 123"),
        "the earlier text is kept"
    );
    // The index follows the edit.
    assert_eq!(
        env.search(&customer(), "124").await.1["data"]["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        env.search(&customer(), "123").await.1["data"]["results"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn delete_leaves_a_tombstone_in_order() {
    let env = env().await;
    let id = env.conversation().await;
    let (_, first) = env
        .post(&customer(), &id, json!({"content": "secret plan"}))
        .await;
    env.post(&agent(), &id, json!({"content": "reply"})).await;
    let mid = message_id(&first);
    assert_eq!(
        env.send(env.message_event("DELETE", &agent(), &id, &mid))
            .await
            .0,
        403,
        "agents do not delete others' messages"
    );
    let (status, body) = env
        .send(env.message_event("DELETE", &customer(), &id, &mid))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, list) = env.list(&customer(), &id, &[]).await;
    let messages = list["data"]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "the tombstone keeps its place");
    assert_eq!(messages[1]["id"], mid.as_str());
    assert_eq!(messages[1]["is_deleted"], true);
    assert_eq!(messages[1]["content"], "");
    assert_eq!(
        env.search(&customer(), "secret").await.1["data"]["results"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        env.send(env.message_event("DELETE", &customer(), &id, &mid))
            .await
            .0,
        404,
        "already deleted"
    );
    assert_eq!(
        env.send(
            env.message_event("PATCH", &customer(), &id, &mid)
                .json(&json!({"content": "back"}))
        )
        .await
        .0,
        404
    );
    // Admins moderate.
    let (_, reply) = env.list(&customer(), &id, &[]).await;
    let reply_id = reply["data"]["messages"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        env.send(env.message_event("DELETE", &token("adm", "acme", "admin"), &id, &reply_id))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn read_markers_make_unread_counts_exact() {
    let env = env().await;
    let id = env.conversation().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let (_, body) = env
            .post(&agent(), &id, json!({"content": format!("a{i}")}))
            .await;
        ids.push(message_id(&body));
    }
    env.post(
        &agent(),
        &id,
        json!({"content": "internal", "message_type": "note"}),
    )
    .await;
    assert_eq!(env.inbox_row(&customer()).await["unread_count"], 4);
    let (status, body) = env
        .read(&customer(), &id, Some(json!({"message_id": ids[1]})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["unread_count"], 2);
    assert_eq!(env.inbox_row(&customer()).await["unread_count"], 2);
    let (_, body) = env.read(&customer(), &id, None).await;
    assert_eq!(body["data"]["unread_count"], 0);
    assert_eq!(body["data"]["last_read_message_id"], ids[3].as_str());
    assert_eq!(env.inbox_row(&customer()).await["unread_count"], 0);

    let before = env.table.items().await;
    assert_eq!(
        env.read(&token("u-9", "acme", "customer"), &id, None)
            .await
            .0,
        404
    );
    assert_eq!(
        env.read(
            &customer(),
            &id,
            Some(json!({"message_id": "01HZX3K7Q8R9S0T1V2W3X4Y5Z7"}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        env.read(&customer(), &id, Some(json!({"message_id": "nope"})))
            .await
            .0,
        422
    );
    assert_eq!(
        env.read(&customer(), &id, Some(json!({"upto": "x"})))
            .await
            .0,
        422
    );
    assert_eq!(env.table.items().await, before, "nothing was written");
}

/// #22.2: a read marker is counted from positions — the room's public-message count
/// and the marker message's place — so it costs the same two requests whatever the
/// unread count, and stays exact (notes and one's own messages never count). Moving
/// one's marker back before one's own message counts the messages instead, exactly.
#[tokio::test]
async fn a_read_marker_costs_the_same_whatever_is_unread() {
    let env = env().await;
    let id = env.conversation().await;
    let store = &env.table.runtime.store;
    let (_, first) = env
        .post(&customer(), &id, json!({"content": "first"}))
        .await;
    let first = message_id(&first);
    let mut unread = 0;
    for i in 0..150 {
        env.post(&agent(), &id, json!({"content": format!("answer {i}")}))
            .await;
        unread += 1;
        if i % 50 == 0 {
            env.post(
                &agent(),
                &id,
                json!({"content": "internal", "message_type": "note"}),
            )
            .await;
        }
    }
    // Up to their own first message, with 150 later: two requests.
    let before = store.requests();
    let (_, answer) = env
        .read(&customer(), &id, Some(json!({"message_id": first})))
        .await;
    assert_eq!(store.requests() - before, 2);
    assert_eq!(answer["data"]["unread_count"], unread, "not the notes");
    let (_, own) = env.post(&customer(), &id, json!({"content": "mine"})).await;
    let own = message_id(&own);
    let (_, last) = env.post(&agent(), &id, json!({"content": "last"})).await;
    let last = message_id(&last);
    for (what, body, expected) in [
        ("up to the latest", None, 0),
        (
            "up to the last message",
            Some(json!({"message_id": last})),
            0,
        ),
        (
            "up to one's own message",
            Some(json!({"message_id": own})),
            1,
        ),
    ] {
        let before = store.requests();
        let (status, answer) = env.read(&customer(), &id, body).await;
        assert_eq!(status, 200, "{what}: {answer}");
        assert_eq!(answer["data"]["unread_count"], expected, "{what}");
        assert_eq!(
            store.requests() - before,
            2,
            "{what}: one BatchGetItem, one TransactWriteItems"
        );
        assert_eq!(env.inbox_row(&customer()).await["unread_count"], expected);
    }
    // Back before one's own message: counted from the messages, still exact (the
    // 150 answers and the last; not the notes, not their own).
    let (_, answer) = env
        .read(&customer(), &id, Some(json!({"message_id": first})))
        .await;
    assert_eq!(answer["data"]["unread_count"], unread + 1);
    let (_, answer) = env
        .read(&agent(), &id, Some(json!({"message_id": first})))
        .await;
    assert_eq!(answer["data"]["unread_count"], 1, "the customer's 'mine'");
}

#[tokio::test]
async fn unread_counts_stay_exact_under_concurrent_senders_and_readers() {
    let env = Arc::new(env().await);
    let id = env.conversation().await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (env, id) = (env.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            if i % 3 == 0 {
                env.read(&customer(), &id, None).await.0
            } else {
                env.post(&agent(), &id, json!({"content": format!("m{i}")}))
                    .await
                    .0
            }
        }));
    }
    for task in tasks {
        assert!(matches!(task.await.unwrap(), 200 | 201));
    }
    // Whatever the interleaving, the count equals the messages after the marker.
    let (_, list) = env.list(&customer(), &id, &[("limit", "100")]).await;
    let marker = env
        .table
        .items()
        .await
        .into_iter()
        .find(|i| {
            i.str("user_id") == Some("u-100") && i.str(keys::ENTITY) == Some(keys::entity::MEMBER)
        })
        .unwrap();
    let last_read = marker.string("last_read_message_id");
    let after_marker = list["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .take_while(|m| Some(m["id"].as_str().unwrap().to_owned()) != last_read)
        .count();
    assert_eq!(
        env.inbox_row(&customer()).await["unread_count"]
            .as_u64()
            .unwrap() as usize,
        after_marker
    );
}

#[tokio::test]
async fn search_pages_continue_after_the_last_hit_returned() {
    let env = env().await;
    let id = env.conversation().await;
    for i in 0..5 {
        env.post(&customer(), &id, json!({"content": format!("parcel {i}")}))
            .await;
    }
    let page = |cursor: Option<String>| {
        let mut event = HttpEvent::new("GET /chat/search", "/chat/search")
            .query("query", "parcel")
            .query("limit", "2")
            .bearer(&customer());
        if let Some(cursor) = cursor {
            event = event.query("cursor", &cursor);
        }
        env.send(event)
    };
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None, 0);
    loop {
        let (status, body) = page(cursor.take()).await;
        assert_eq!(status, 200, "{body}");
        let results = body["data"]["results"].as_array().unwrap();
        assert!(results.len() <= 2, "{body}");
        seen.extend(
            results
                .iter()
                .map(|r| r["content"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        match body["data"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 5, "the pages end");
    }
    assert_eq!(
        seen,
        ["parcel 4", "parcel 3", "parcel 2", "parcel 1", "parcel 0"],
        "newest first, each hit once"
    );
}

#[tokio::test]
async fn search_finds_words_in_rooms_the_caller_may_read() {
    let env = env().await;
    let mine = env.conversation().await;
    env.post(
        &customer(),
        &mine,
        json!({"content": "My order number is #12345"}),
    )
    .await;
    env.post(
        &agent(),
        &mine,
        json!({"content": "Order 12345 shipped", "message_type": "note"}),
    )
    .await;
    // Someone else's conversation in the same tenant, and another tenant's.
    let theirs = HttpEvent::new("POST /chat/conversations", "/chat/conversations")
        .bearer(&token("u-7", "acme", "customer"))
        .json(&json!({"title": "x"}));
    let (_, body) = response_json(&env.extra.handle(theirs.request()).await);
    let theirs = body["data"]["conversation_id"].as_str().unwrap().to_owned();
    env.post(
        &token("u-7", "acme", "customer"),
        &theirs,
        json!({"content": "my order is late"}),
    )
    .await;

    let (status, body) = env.search(&customer(), "order").await;
    assert_eq!(status, 200, "{body}");
    let results = body["data"]["results"].as_array().unwrap();
    assert_eq!(
        results.len(),
        1,
        "not the note, not another customer's room: {body}"
    );
    assert_eq!(results[0]["conversation_id"], mine.as_str());
    assert_eq!(body["data"]["query"], "order");
    for field in [
        "message_id",
        "conversation_id",
        "content",
        "sender",
        "created_at",
    ] {
        assert!(results[0].get(field).is_some(), "{field}");
    }
    // Staff see notes and the tenant's support rooms; every word must match.
    let (_, staff) = env.search(&agent(), "order 12345").await;
    assert_eq!(staff["data"]["results"].as_array().unwrap().len(), 2);
    let (_, other_tenant) = env
        .search(&token("u-100", "globex", "admin"), "order")
        .await;
    assert_eq!(other_tenant["data"]["results"].as_array().unwrap().len(), 0);

    assert_eq!(
        env.search(&customer(), "the").await.0,
        422,
        "stop words only"
    );
    assert_eq!(env.search(&customer(), &"x".repeat(201)).await.0, 422);
    let (status, body) = env
        .send(HttpEvent::new("GET /chat/search", "/chat/search").bearer(&customer()))
        .await;
    assert_eq!(
        (status, body["error"]["details"]["field"].as_str()),
        (422, Some("query"))
    );
    let (status, _) = env
        .send(
            HttpEvent::new("GET /chat/search", "/chat/search")
                .query("query", "order")
                .query("cursor", "forged")
                .bearer(&customer()),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_warm_room_cache_never_lets_a_write_past_a_change() {
    let env = env().await;
    let id = env.conversation().await;
    assert_eq!(
        env.post(&customer(), &id, json!({"content": "one"}))
            .await
            .0,
        201
    );
    // The owner deletes the conversation through another instance (the conversations
    // function): this instance's cached room is now stale.
    let delete = HttpEvent::new(
        "DELETE /chat/conversations/{conversation_id}",
        &format!("/chat/conversations/{id}"),
    )
    .param("conversation_id", &id)
    .bearer(&customer());
    assert_eq!(
        response_json(&env.extra.handle(delete.request()).await).0,
        200
    );
    let messages_before = env.count(keys::entity::MESSAGE).await;
    let (status, body) = env
        .post(&agent(), &id, json!({"content": "too late"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    assert_eq!(env.count(keys::entity::MESSAGE).await, messages_before);
}

#[tokio::test]
async fn the_rooms_last_message_preview_follows_edits_and_deletes() {
    let env = env().await;
    let id = env.conversation().await;
    let (_, sent) = env
        .post(&customer(), &id, json!({"content": "my card is 4111"}))
        .await;
    let mid = message_id(&sent);
    let preview = || async {
        env.table
            .items()
            .await
            .into_iter()
            .find(|i| i.str(keys::ENTITY) == Some(keys::entity::ROOM))
            .and_then(|room| room.string("last_message_preview"))
    };
    assert_eq!(preview().await.as_deref(), Some("my card is 4111"));
    let (status, _) = env
        .send(
            env.message_event("PATCH", &customer(), &id, &mid)
                .json(&json!({"content": "my card is on file"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(preview().await.as_deref(), Some("my card is on file"));
    let (status, _) = env
        .send(env.message_event("DELETE", &customer(), &id, &mid))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        preview().await.as_deref(),
        Some(""),
        "a deleted text does not live on in room lists"
    );
}

#[tokio::test]
async fn edit_count_counts_every_edit_not_the_kept_texts() {
    let env = env().await;
    let id = env.conversation().await;
    let (_, posted) = env.post(&customer(), &id, json!({"content": "v0"})).await;
    let mid = message_id(&posted);
    for i in 1..=12 {
        let (status, body) = env
            .send(
                env.message_event("PATCH", &customer(), &id, &mid)
                    .json(&json!({ "content": format!("v{i}") })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["edit_count"], i, "after edit {i}");
    }
    let (_, page) = env.list(&customer(), &id, &[]).await;
    let listed = &page["data"]["messages"][0];
    assert_eq!(
        (listed["content"].as_str(), listed["edit_count"].as_u64()),
        (Some("v12"), Some(12))
    );
}

#[tokio::test]
async fn a_customer_cannot_read_up_to_an_internal_note() {
    let env = env().await;
    let id = env.conversation().await;
    env.post(&customer(), &id, json!({"content": "hello"}))
        .await;
    let (status, note) = env
        .post(
            &agent(),
            &id,
            json!({"content": "vip", "message_type": "note"}),
        )
        .await;
    assert_eq!(status, 201, "{note}");
    let note_id = message_id(&note);
    let before = env.table.items().await;
    let (status, body) = env
        .read(&customer(), &id, Some(json!({ "message_id": note_id })))
        .await;
    let (missing, missing_body) = env
        .read(
            &customer(),
            &id,
            Some(json!({"message_id": "01J0000000000000000000000Y"})),
        )
        .await;
    assert_eq!(
        (status, &body),
        (missing, &missing_body),
        "a note's id is a missing id"
    );
    assert_eq!(status, 404);
    assert_eq!(env.table.items().await, before, "nothing was written");
    let (status, body) = env
        .read(&agent(), &id, Some(json!({ "message_id": note_id })))
        .await;
    assert_eq!(status, 200, "staff read up to a note: {body}");
}

#[tokio::test]
async fn a_page_that_ends_the_room_says_so() {
    let env = env().await;
    let id = env.conversation().await;
    for i in 0..20 {
        env.post(&customer(), &id, json!({ "content": format!("m{i}") }))
            .await;
    }
    let (status, page) = env.list(&customer(), &id, &[("limit", "20")]).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"]["messages"].as_array().unwrap().len(), 20);
    assert_eq!(page["data"]["has_more"], false, "{page}");
    assert!(page["data"]["next_cursor"].is_null());
    let (_, page) = env.list(&customer(), &id, &[("limit", "19")]).await;
    assert_eq!(page["data"]["has_more"], true);
    let cursor = page["data"]["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = env
        .list(&customer(), &id, &[("limit", "19"), ("before", &cursor)])
        .await;
    let rest_messages = rest["data"]["messages"].as_array().unwrap();
    assert_eq!(rest_messages.len(), 1, "{rest}");
    assert_eq!(rest_messages[0]["content"], "m0");
    assert_eq!(rest["data"]["has_more"], false);
}

#[tokio::test]
async fn the_inbox_lists_only_conversations_with_unread_messages_when_asked() {
    let env = env().await;
    let answered = env.conversation().await;
    let quiet = env.conversation().await;
    let (status, _) = env
        .post(
            &token("5", "acme", "agent"),
            &answered,
            json!({"content": "it ships today"}),
        )
        .await;
    assert_eq!(status, 201);
    let unread = || async {
        let event = HttpEvent::new("GET /chat/conversations", "/chat/conversations")
            .bearer(&customer())
            .query("unread", "true");
        let (status, body) = response_json(&env.extra.handle(event.request()).await);
        assert_eq!(status, 200, "{body}");
        body["data"]["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(unread().await, vec![answered.clone()]);
    assert_ne!(answered, quiet);
    let (status, body) = env.read(&customer(), &answered, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(unread().await.is_empty(), "read: nothing unread");
}
