//! The conversations routes against DynamoDB Local: a fresh table and app per test.

use chat_testkit::{HttpEvent, TokenSpec, load_event, response_json, to_request, token};
use conversations::App;
use serde_json::{Value, json};

type Env = chat_testkit::FunctionTest<App>;

async fn env() -> Env {
    Env::new(App::new).await
}

/// The calls these tests make.
trait Calls {
    async fn create(&self, tok: &str, body: Value) -> String;

    async fn get(&self, tok: &str, id: &str) -> (u16, Value);

    async fn list(&self, tok: &str, query: &[(&str, &str)]) -> (u16, Value);
}

impl Calls for Env {
    async fn create(&self, tok: &str, body: Value) -> String {
        let (status, body) = self
            .send(
                HttpEvent::new("POST /chat/conversations", "/chat/conversations")
                    .bearer(tok)
                    .json(&body),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["data"]["conversation_id"].as_str().unwrap().to_owned()
    }

    async fn get(&self, tok: &str, id: &str) -> (u16, Value) {
        self.send(
            HttpEvent::new(
                "GET /chat/conversations/{conversation_id}",
                &format!("/chat/conversations/{id}"),
            )
            .param("conversation_id", id)
            .bearer(tok),
        )
        .await
    }

    async fn list(&self, tok: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let mut event =
            HttpEvent::new("GET /chat/conversations", "/chat/conversations").bearer(tok);
        for (k, v) in query {
            event = event.query(k, v);
        }
        self.send(event).await
    }
}

fn customer() -> String {
    token("u-100", "acme", "customer")
}

#[tokio::test]
async fn the_seed_client_creates_gets_and_lists_a_conversation() {
    let env = env().await;
    let id = env
        .create(
            &customer(),
            json!({"title": "New Customer Inquiry", "agent_id": 5}),
        )
        .await;

    let (status, body) = env.get(&customer(), &id).await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["id"], id.as_str());
    assert_eq!(data["title"], "New Customer Inquiry");
    assert_eq!(data["user_id"], "u-100");
    assert_eq!(
        data["agent_id"], "5",
        "integer agent ids are stored as strings"
    );
    assert_eq!(data["conversation_type"], "chat");
    assert_eq!(data["status"], "open");
    assert_eq!(data["total_messages"], 0);
    assert!(data["created_at"].is_string());

    let (status, body) = env
        .list(&customer(), &[("limit", "20"), ("offset", "0")])
        .await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data["total"], 1);
    assert_eq!(data["limit"], 20);
    assert_eq!(data["offset"], 0);
    let first = &data["conversations"][0];
    for field in [
        "id",
        "title",
        "user_id",
        "agent_id",
        "conversation_type",
        "status",
        "is_archived",
        "is_pinned",
        "total_messages",
        "unread_count",
        "last_message_at",
        "created_at",
    ] {
        assert!(first.get(field).is_some(), "missing {field} in {first}");
    }

    // The agent named in the conversation has it in their inbox too.
    let (_, agent_inbox) = env.list(&token("5", "acme", "agent"), &[]).await;
    assert_eq!(agent_inbox["data"]["conversations"][0]["id"], id.as_str());
}

#[tokio::test]
async fn inbox_pages_by_cursor_and_by_offset() {
    let env = env().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            env.create(&customer(), json!({"title": format!("c{i}")}))
                .await,
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "2")];
        if let Some(c) = cursor.as_deref() {
            query.push(("cursor", c));
        }
        let (status, body) = env.list(&customer(), &query).await;
        assert_eq!(status, 200, "{body}");
        for c in body["data"]["conversations"].as_array().unwrap() {
            seen.push(c["id"].as_str().unwrap().to_owned());
        }
        match body["data"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");

    let (_, body) = env
        .list(&customer(), &[("limit", "2"), ("offset", "2")])
        .await;
    let page: Vec<&str> = body["data"]["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(page, vec![ids[2].as_str(), ids[3].as_str()]);
    assert_eq!(body["data"]["total"], 5);
}

#[tokio::test]
async fn other_tenants_and_non_members_get_404() {
    let env = env().await;
    let id = env.create(&customer(), json!({"title": "Mine"})).await;
    let (status, body) = env.get(&token("u-100", "globex", "customer"), &id).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = env.get(&token("u-101", "acme", "customer"), &id).await;
    assert_eq!(status, 404, "another customer of the same tenant");
    let (status, _) = env.get(&token("a-9", "globex", "admin"), &id).await;
    assert_eq!(status, 404, "an admin of another tenant");
    let (status, _) = env.get(&token("a-9", "acme", "agent"), &id).await;
    assert_eq!(
        status, 200,
        "agents of the tenant see its support conversations"
    );
    let (status, _) = env.get(&customer(), "not-an-id").await;
    assert_eq!(status, 404);
    let (_, other_inbox) = env.list(&token("u-100", "globex", "customer"), &[]).await;
    assert_eq!(other_inbox["data"]["total"], 0);
}

#[tokio::test]
async fn bad_tokens_are_401_and_write_nothing() {
    let env = env().await;
    let body = json!({"title": "x"});
    let expired = TokenSpec {
        expires_in_secs: -3600,
        ..TokenSpec::new("u-100", "acme", "customer")
    }
    .mint();
    let wrong_aud = TokenSpec {
        audience: "other-api".into(),
        ..TokenSpec::new("u-100", "acme", "customer")
    }
    .mint();
    let alg_none = {
        use base64::Engine;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let claims = TokenSpec::new("u-100", "acme", "admin").claims();
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&claims)
        )
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("expired", Some(expired)),
        ("wrong audience", Some(wrong_aud)),
        ("alg none", Some(alg_none)),
    ];
    for (name, tok) in cases {
        let mut event =
            HttpEvent::new("POST /chat/conversations", "/chat/conversations").json(&body);
        if let Some(t) = &tok {
            event = event.bearer(t);
        }
        let (status, body) = env.send(event).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["code"], "unauthenticated", "{name}");
    }
    assert!(env.table.items().await.is_empty(), "nothing was written");
}

#[tokio::test]
async fn bad_input_is_refused_and_writes_nothing() {
    let env = env().await;
    let post = |raw: String| {
        HttpEvent::new("POST /chat/conversations", "/chat/conversations")
            .bearer(&customer())
            .raw_body(&raw)
    };
    let cases = [
        (r#"{"title": "#.to_owned(), 400, "malformed_request"),
        (
            r#"{"title": "x", "owner": "u-1"}"#.to_owned(),
            422,
            "unknown_field",
        ),
        (r#"{"title": "   "}"#.to_owned(), 422, "invalid_field"),
        (r#"{"agent_id": 5}"#.to_owned(), 422, "invalid_field"),
        (
            r#"{"title": "x", "agent_id": "a#b"}"#.to_owned(),
            422,
            "invalid_field",
        ),
        (
            r#"{"title": "x", "agent_id": 1.5}"#.to_owned(),
            422,
            "invalid_field",
        ),
        (
            r#"{"title": "x", "conversation_type": "Bad Type"}"#.to_owned(),
            422,
            "invalid_field",
        ),
        (
            json!({"title": "x".repeat(70_000)}).to_string(),
            413,
            "payload_too_large",
        ),
    ];
    for (raw, status, code) in cases {
        let (got, body) = env.send(post(raw.clone())).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{}: {body}",
            &raw[..raw.len().min(60)]
        );
    }
    assert!(env.table.items().await.is_empty(), "nothing was written");

    let (status, body) = env.list(&customer(), &[("limit", "0")]).await;
    assert_eq!(
        (status, body["error"]["details"]["field"].as_str()),
        (422, Some("limit"))
    );
    let (status, _) = env.list(&customer(), &[("status", "weird")]).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn forged_cursors_are_refused() {
    use base64::Engine;
    let env = env().await;
    env.create(&customer(), json!({"title": "a"})).await;
    env.create(&customer(), json!({"title": "b"})).await;
    // A real cursor from another user's inbox, and a hand-made one for another tenant.
    let (_, page) = env.list(&customer(), &[("limit", "1")]).await;
    let theirs = page["data"]["next_cursor"].as_str().unwrap().to_owned();
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        json!({"v": "1", "GSI1PK": "T#globex#INBOX#u-100", "GSI1SK": "A#", "PK": "x", "SK": "y"})
            .to_string(),
    );
    for cursor in [theirs.as_str(), forged.as_str(), "garbage"] {
        let (status, body) = env
            .list(&token("u-101", "acme", "customer"), &[("cursor", cursor)])
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_cursor")),
            "{cursor}"
        );
    }
}

#[tokio::test]
async fn event_fixtures_drive_the_handlers() {
    let env = env().await;
    let (status, body) = response_json(
        &env.app
            .handle(to_request(&load_event("post-chat-conversations.json")))
            .await,
    );
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["conversation_id"].as_str().unwrap().to_owned();

    let (status, body) = response_json(
        &env.app
            .handle(to_request(&load_event("get-chat-conversations.json")))
            .await,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["conversations"][0]["id"], id.as_str());

    let mut get = load_event("get-chat-conversations-id.json");
    let fixture_id = get["pathParameters"]["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let retarget = get.to_string().replace(&fixture_id, &id);
    get = serde_json::from_str(&retarget).unwrap();
    let (status, body) = response_json(&env.app.handle(to_request(&get)).await);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["id"], id.as_str());

    // PUT (agent 5, a member: title and pin), then DELETE (the owner: for everyone).
    for (name, want) in [
        (
            "put-chat-conversations-id.json",
            "Updated Conversation Title",
        ),
        ("delete-chat-conversations-id.json", "everyone"),
    ] {
        let raw = load_event(name).to_string().replace(&fixture_id, &id);
        let event: Value = serde_json::from_str(&raw).unwrap();
        let (status, body) = response_json(&env.app.handle(to_request(&event)).await);
        assert_eq!(status, 200, "{name}: {body}");
        let got = body["data"]["conversation"]["title"]
            .as_str()
            .or(body["data"]["deleted_for"].as_str());
        assert_eq!(got, Some(want), "{name}: {body}");
    }
}

#[tokio::test]
async fn budgets_one_request_per_read_list_and_write() {
    let env = env().await;
    let store = &env.table.runtime.store;
    let before = store.requests();
    let id = env
        .create(&customer(), json!({"title": "a", "agent_id": 5}))
        .await;
    assert_eq!(
        store.requests() - before,
        1,
        "create is one TransactWriteItems"
    );
    let before = store.requests();
    env.get(&customer(), &id).await;
    assert_eq!(store.requests() - before, 1, "details are one BatchGetItem");
    let before = store.requests();
    env.list(&customer(), &[]).await;
    assert_eq!(store.requests() - before, 1, "an inbox page is one Query");

    let steps = [
        (
            customer(),
            json!({"is_pinned": true}),
            1,
            "pin: one UpdateItem that answers",
        ),
        (
            agent(),
            json!({"status": "pending"}),
            2,
            "shared fields: room + caller's row in one BatchGetItem, one TransactWriteItems",
        ),
        (
            agent(),
            json!({"title": "t", "is_archived": true}),
            2,
            "shared fields and the caller's view: the same two",
        ),
    ];
    for (tok, body, want, what) in steps {
        let before = store.requests();
        let (status, resp) = env.put(&tok, &id, body).await;
        assert_eq!(status, 200, "{what}: {resp}");
        assert_eq!(store.requests() - before, want, "{what}");
    }
    let before = store.requests();
    let (_, left) = env.delete(&agent(), &id).await;
    assert_eq!(left["data"]["deleted_for"], "me");
    assert_eq!(
        store.requests() - before,
        2,
        "leave: GetItem + TransactWriteItems"
    );
    let before = store.requests();
    let (_, deleted) = env.delete(&customer(), &id).await;
    assert_eq!(deleted["data"]["deleted_for"], "everyone");
    assert_eq!(
        store.requests() - before,
        2,
        "delete for all: GetItem + TransactWriteItems"
    );
}

/// The calls these tests make.
trait MoreCalls {
    async fn put(&self, tok: &str, id: &str, body: Value) -> (u16, Value);

    async fn delete(&self, tok: &str, id: &str) -> (u16, Value);
}

impl MoreCalls for Env {
    async fn put(&self, tok: &str, id: &str, body: Value) -> (u16, Value) {
        self.send(
            HttpEvent::new(
                "PUT /chat/conversations/{conversation_id}",
                &format!("/chat/conversations/{id}"),
            )
            .param("conversation_id", id)
            .bearer(tok)
            .json(&body),
        )
        .await
    }

    async fn delete(&self, tok: &str, id: &str) -> (u16, Value) {
        self.send(
            HttpEvent::new(
                "DELETE /chat/conversations/{conversation_id}",
                &format!("/chat/conversations/{id}"),
            )
            .param("conversation_id", id)
            .bearer(tok),
        )
        .await
    }
}

fn agent() -> String {
    token("5", "acme", "agent")
}

#[tokio::test]
async fn pin_and_archive_change_only_the_callers_view() {
    let env = env().await;
    let id = env
        .create(&customer(), json!({"title": "Help", "agent_id": 5}))
        .await;
    let (status, body) = env
        .put(
            &customer(),
            &id,
            json!({"is_pinned": true, "is_archived": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["conversation"]["is_pinned"], true);
    let (_, mine) = env.list(&customer(), &[("pinned", "true")]).await;
    assert_eq!(mine["data"]["conversations"][0]["is_pinned"], true);
    assert_eq!(mine["data"]["conversations"][0]["is_archived"], true);
    let (_, theirs) = env.list(&agent(), &[]).await;
    assert_eq!(
        theirs["data"]["conversations"][0]["is_pinned"], false,
        "the agent's view is unchanged"
    );
    let (_, unpinned) = env.list(&customer(), &[("pinned", "false")]).await;
    assert_eq!(
        unpinned["data"]["conversations"].as_array().unwrap().len(),
        0
    );
}

#[tokio::test]
async fn shared_fields_follow_the_rooms_rule_and_reach_every_inbox() {
    let env = env().await;
    let id = env
        .create(&customer(), json!({"title": "Help", "agent_id": 5}))
        .await;
    let before = env.table.items().await;
    // Assigning is staff's, with or without other changes.
    for body in [
        json!({"assignee_id": "u-100"}),
        json!({"title": "Mine now", "assignee_id": null}),
    ] {
        let (status, resp) = env.put(&customer(), &id, body.clone()).await;
        assert_eq!(
            (status, resp["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{body}"
        );
    }
    // Another customer of the tenant finds nothing to change.
    let stranger = token("u-999", "acme", "customer");
    let (status, _) = env.put(&stranger, &id, json!({"title": "Mine"})).await;
    assert_eq!(status, 404);
    assert_eq!(env.table.items().await, before, "nothing was written");
    // The owner renames and resolves it, as PATCH /rooms lets them: exactly the
    // call of the conversations API's own client.
    let (status, resp) = env
        .put(
            &customer(),
            &id,
            json!({"title": "Updated Conversation Title", "is_pinned": true}),
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp["data"]["conversation"]["title"],
        "Updated Conversation Title"
    );
    assert_eq!(resp["data"]["conversation"]["is_pinned"], true);
    let (status, resp) = env
        .put(&customer(), &id, json!({"status": "resolved"}))
        .await;
    assert_eq!(
        (status, resp["data"]["conversation"]["status"].as_str()),
        (200, Some("resolved"))
    );

    let (status, body) = env
        .put(
            &agent(),
            &id,
            json!({"title": "Order #12345", "status": "pending", "assignee_id": 7}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["conversation"]["status"], "pending");
    assert_eq!(body["data"]["conversation"]["assignee_id"], "7");
    let (_, inbox) = env.list(&customer(), &[("status", "pending")]).await;
    assert_eq!(
        inbox["data"]["conversations"][0]["title"], "Order #12345",
        "the customer's inbox row follows"
    );

    let until = (time::OffsetDateTime::now_utc() + time::Duration::hours(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (status, body) = env
        .put(
            &agent(),
            &id,
            json!({"status": "snoozed", "snoozed_until": until}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["conversation"]["snoozed_until"].is_string());
    let (_, got) = env.get(&customer(), &id).await;
    assert_eq!(got["data"]["status"], "snoozed");
    assert!(got["data"]["snoozed_until"].is_string());
    let (status, _) = env.put(&agent(), &id, json!({"status": "resolved"})).await;
    assert_eq!(status, 200);
    let (_, got) = env.get(&customer(), &id).await;
    assert!(
        got["data"]["snoozed_until"].is_null(),
        "leaving snoozed clears the deadline"
    );
}

#[tokio::test]
async fn bad_updates_are_refused_and_write_nothing() {
    let env = env().await;
    let id = env
        .create(&customer(), json!({"title": "Help", "agent_id": 5}))
        .await;
    let before = env.table.items().await;
    let past = "2001-01-01T00:00:00Z";
    let cases = [
        (json!({}), 422, "invalid_field"),
        (json!({"status": "archived"}), 422, "invalid_field"),
        (json!({"status": "snoozed"}), 422, "invalid_field"),
        (
            json!({"status": "snoozed", "snoozed_until": past}),
            422,
            "invalid_field",
        ),
        (
            json!({"status": "open", "snoozed_until": "2999-01-01T00:00:00Z"}),
            422,
            "invalid_field",
        ),
        (json!({"title": ""}), 422, "invalid_field"),
        (json!({"is_pinned": "yes"}), 422, "invalid_field"),
        (json!({"owner_id": "me"}), 422, "unknown_field"),
        (json!({"assignee_id": "a#b"}), 422, "invalid_field"),
        (json!({"title": "x".repeat(201)}), 422, "invalid_field"),
    ];
    for (body, status, code) in cases {
        let (got, resp) = env.put(&agent(), &id, body.clone()).await;
        assert_eq!(
            (got, resp["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {resp}"
        );
    }
    let raw_put = |raw: String| {
        HttpEvent::new(
            "PUT /chat/conversations/{conversation_id}",
            &format!("/chat/conversations/{id}"),
        )
        .param("conversation_id", &id)
        .bearer(&agent())
        .raw_body(&raw)
    };
    for (raw, status, code) in [
        ("{\"title\": ".to_owned(), 400, "malformed_request"),
        (
            json!({"title": "x".repeat(70_000)}).to_string(),
            413,
            "payload_too_large",
        ),
    ] {
        let (got, resp) = env.send(raw_put(raw)).await;
        assert_eq!((got, resp["error"]["code"].as_str()), (status, Some(code)));
    }
    // Staff see the conversation but have no view of it unless they are in it.
    let (status, resp) = env
        .put(
            &token("6", "acme", "agent"),
            &id,
            json!({"is_pinned": true}),
        )
        .await;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _) = env.delete(&token("6", "acme", "agent"), &id).await;
    assert_eq!(status, 403, "a non-member agent neither leaves nor deletes");
    let (status, _) = env
        .put(
            &token("x", "globex", "admin"),
            &id,
            json!({"status": "closed"}),
        )
        .await;
    assert_eq!(status, 404, "another tenant");
    let (status, _) = env
        .put(
            &token("u-101", "acme", "customer"),
            &id,
            json!({"is_pinned": true}),
        )
        .await;
    assert_eq!(status, 404, "a stranger");
    assert_eq!(env.table.items().await, before, "nothing was written");
}

#[tokio::test]
async fn delete_leaves_for_members_and_deletes_for_the_owner() {
    let env = env().await;
    let id = env
        .create(&customer(), json!({"title": "Help", "agent_id": 5}))
        .await;
    // The agent removes it from their own inbox: they leave; the customer keeps it.
    let (status, body) = env.delete(&agent(), &id).await;
    assert_eq!(
        (status, body["data"]["deleted_for"].as_str()),
        (200, Some("me")),
        "{body}"
    );
    let (_, agent_inbox) = env.list(&agent(), &[]).await;
    assert_eq!(agent_inbox["data"]["total"], 0);
    assert_eq!(
        agent_inbox["data"]["conversations"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let (status, _) = env.get(&customer(), &id).await;
    assert_eq!(status, 200);

    // Strangers and other tenants cannot delete it.
    let before = env.table.items().await;
    for tok in [
        token("u-101", "acme", "customer"),
        token("u-100", "globex", "admin"),
    ] {
        assert_eq!(env.delete(&tok, &id).await.0, 404);
    }
    assert_eq!(env.table.items().await, before);

    // The owner deletes it for everyone.
    let (status, body) = env.delete(&customer(), &id).await;
    assert_eq!(
        (status, body["data"]["deleted_for"].as_str()),
        (200, Some("everyone"))
    );
    assert_eq!(env.get(&customer(), &id).await.0, 404);
    assert_eq!(
        env.get(&agent(), &id).await.0,
        404,
        "staff no longer see a deleted support room"
    );
    let (_, inbox) = env.list(&customer(), &[]).await;
    assert_eq!(
        (
            inbox["data"]["total"].as_u64(),
            inbox["data"]["conversations"].as_array().unwrap().len()
        ),
        (Some(0), 0)
    );
}

#[tokio::test]
async fn inbox_pages_tell_the_truth_about_the_total_and_the_end() {
    let env = env().await;
    for title in ["one", "two", "three"] {
        env.create(&customer(), json!({ "title": title })).await;
    }
    // Exactly the inbox: the page ends it.
    let (status, page) = env.list(&customer(), &[("limit", "3")]).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"]["conversations"].as_array().unwrap().len(), 3);
    assert_eq!(page["data"]["has_more"], false, "{page}");
    assert!(page["data"]["next_cursor"].is_null());
    assert_eq!(page["data"]["total"], 3);
    // Two pages: both carry the total; the last one says it is the last.
    let (_, first) = env.list(&customer(), &[("limit", "2")]).await;
    assert_eq!(
        (
            first["data"]["total"].as_u64(),
            first["data"]["has_more"].as_bool()
        ),
        (Some(3), Some(true))
    );
    let cursor = first["data"]["next_cursor"].as_str().unwrap().to_owned();
    let (status, second) = env
        .list(&customer(), &[("limit", "2"), ("cursor", &cursor)])
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["data"]["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(
        second["data"]["total"], 3,
        "the total on every page: {second}"
    );
    assert_eq!(second["data"]["has_more"], false);
}

#[tokio::test]
async fn the_inbox_lists_what_is_assigned_to_a_user_and_follows_reassignment() {
    let env = env().await;
    let agent = token("5", "acme", "agent");
    let first = env
        .create(&customer(), json!({"title": "Kettle", "agent_id": 5}))
        .await;
    env.create(&customer(), json!({"title": "Toaster"})).await;
    let assigned = |(status, body): (u16, Value)| {
        assert_eq!(status, 200, "{body}");
        body["data"]["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["title"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    // The agent given at the start is the assignee, on every member's row.
    assert_eq!(
        assigned(env.list(&agent, &[("assignee_id", "me")]).await),
        ["Kettle"]
    );
    assert_eq!(
        assigned(env.list(&customer(), &[("assignee_id", "5")]).await),
        ["Kettle"]
    );
    let (_, listed) = env.list(&customer(), &[]).await;
    let row = &listed["data"]["conversations"].as_array().unwrap()[1];
    assert_eq!(
        (row["title"].clone(), row["assignee_id"].clone()),
        (json!("Kettle"), json!("5"))
    );

    // Unassigned: gone from the filter, on the customer's row too.
    let (status, body) = env.put(&agent, &first, json!({"assignee_id": null})).await;
    assert_eq!(status, 200, "{body}");
    assert!(assigned(env.list(&agent, &[("assignee_id", "me")]).await).is_empty());
    assert!(assigned(env.list(&customer(), &[("assignee_id", "5")]).await).is_empty());
    let (status, body) = env.put(&agent, &first, json!({"assignee_id": "5"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        assigned(env.list(&agent, &[("assignee_id", "me")]).await),
        ["Kettle"]
    );

    let (status, body) = env.list(&agent, &[("assignee_id", "not an id!")]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_field"))
    );
}
