//! Limits against resource abuse, each at its boundary: the largest accepted value
//! works, one more is refused with 413 (body) or 422 naming the field, and a refusal
//! writes nothing. The figures are the README's "Limits" list; the API stage's
//! throttling and the timeouts are checked in the template.

use chat_core::request::MAX_BODY_BYTES;
use chat_testkit::{HttpEvent, TestTable, response_json, template, token};
use devserver::Apps;
use serde_json::{Value, json};

struct Env {
    table: TestTable,
    apps: Apps,
}

impl Env {
    async fn new() -> Env {
        let table = TestTable::new().await;
        let apps = Apps::new(table.runtime.clone());
        Env { table, apps }
    }

    async fn call(&self, function: &str, event: HttpEvent) -> (u16, Value) {
        response_json(&self.apps.call(function, event.request()).await.unwrap())
    }

    /// `ok` is accepted; `over` is refused with `status`/`code` naming `field`, and
    /// writes nothing.
    async fn boundary(
        &self,
        function: &str,
        ok: HttpEvent,
        over: HttpEvent,
        (status, code, field): (u16, &str, Option<&str>),
    ) {
        // A 503 is retried as a client would: on a loaded machine DynamoDB Local can
        // take longer than the 2 s attempt timeout for a 40-member room's transaction.
        let mut answer = self.call(function, ok.clone()).await;
        for _ in 0..3 {
            if answer.0 != 503 {
                break;
            }
            answer = self.call(function, ok.clone()).await;
        }
        let (got, body) = answer;
        assert!(got < 300, "{} at the limit: {got} {body}", ok.route_key);
        let before = self.table.items().await;
        let (got, body) = self.call(function, over.clone()).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{} over the limit: {body}",
            over.route_key
        );
        if let Some(field) = field {
            assert_eq!(body["error"]["details"]["field"], field, "{body}");
        }
        assert_eq!(self.table.items().await, before, "a refusal writes nothing");
    }

    async fn conversation(&self, tok: &str) -> String {
        let (status, body) = self
            .call(
                "ConversationsFunction",
                HttpEvent::new("POST /chat/conversations", "/chat/conversations")
                    .bearer(tok)
                    .json(&json!({"title": "Limits", "agent_id": "a-1"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["data"]["conversation_id"].as_str().unwrap().to_owned()
    }
}

fn post_message(id: &str, tok: &str, body: &Value) -> HttpEvent {
    HttpEvent::new(
        "POST /chat/conversations/{conversation_id}/messages",
        &format!("/chat/conversations/{id}/messages"),
    )
    .param("conversation_id", id)
    .bearer(tok)
    .json(body)
}

fn get(route: &str, path: &str, tok: &str, query: &[(&str, &str)]) -> HttpEvent {
    let mut event = HttpEvent::new(route, path).bearer(tok);
    for (k, v) in query {
        event = event.query(k, v);
    }
    event
}

fn attachment(size: u64) -> Value {
    json!({"name": "a.png", "type": "image/png", "size": size, "url": "https://files.example.com/a.png"})
}

#[tokio::test]
async fn message_limits_body_content_and_attachments() {
    let env = Env::new().await;
    let tok = token("u-100", "acme", "customer");
    let id = env.conversation(&tok).await;
    // Body: 64 KiB. A body under the limit with a field too long is the field's 422.
    let padded = |n: usize| {
        let mut event = post_message(&id, &tok, &json!({}));
        let filler = "x".repeat(n - r#"{"content":""}"#.len());
        event.body = Some(format!(r#"{{"content":"{filler}"}}"#));
        event
    };
    let (status, body) = env.call("MessagesFunction", padded(MAX_BODY_BYTES)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_field"))
    );
    env.boundary(
        "MessagesFunction",
        post_message(&id, &tok, &json!({"content": "fits"})),
        padded(MAX_BODY_BYTES + 1),
        (413, "payload_too_large", None),
    )
    .await;
    // Content: 4,000 characters (multi-byte characters count once).
    env.boundary(
        "MessagesFunction",
        post_message(&id, &tok, &json!({"content": "é".repeat(4000)})),
        post_message(&id, &tok, &json!({"content": "é".repeat(4001)})),
        (422, "invalid_field", Some("content")),
    )
    .await;
    // Attachments: 10 per message, each at most 100 MB.
    let many = |n: usize| json!({"content": "files", "attachments": vec![attachment(1); n]});
    env.boundary(
        "MessagesFunction",
        post_message(&id, &tok, &many(10)),
        post_message(&id, &tok, &many(11)),
        (422, "invalid_field", Some("attachments")),
    )
    .await;
    let max = 100 * 1024 * 1024;
    env.boundary(
        "MessagesFunction",
        post_message(
            &id,
            &tok,
            &json!({"content": "big", "attachments": [attachment(max)]}),
        ),
        post_message(
            &id,
            &tok,
            &json!({"content": "big", "attachments": [attachment(max + 1)]}),
        ),
        (422, "invalid_field", Some("attachments[0].size")),
    )
    .await;
}

/// (function, route, path, token, accepted query, refused query, field named).
type PageCase<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    [(&'a str, &'a str); 1],
    [(&'a str, &'a str); 1],
    &'a str,
);

#[tokio::test]
async fn page_sizes_offsets_search_and_date_ranges() {
    let env = Env::new().await;
    let tok = token("u-100", "acme", "customer");
    let admin = token("a-9", "acme", "admin");
    let id = env.conversation(&tok).await;
    let messages = format!("/chat/conversations/{id}/messages");
    let list_messages = "GET /chat/conversations/{conversation_id}/messages";
    let with_id = |e: HttpEvent| e.param("conversation_id", &id);
    let cases: Vec<PageCase> = vec![
        // (function, route, path, token, ok query, over query, field)
        (
            "MessagesFunction",
            list_messages,
            &messages,
            &tok,
            [("limit", "100")],
            [("limit", "101")],
            "limit",
        ),
        (
            "MessagesFunction",
            list_messages,
            &messages,
            &tok,
            [("offset", "500")],
            [("offset", "501")],
            "offset",
        ),
        (
            "ConversationsFunction",
            "GET /chat/conversations",
            "/chat/conversations",
            &tok,
            [("limit", "100")],
            [("limit", "101")],
            "limit",
        ),
        (
            "ConversationsFunction",
            "GET /chat/conversations",
            "/chat/conversations",
            &tok,
            [("offset", "500")],
            [("offset", "501")],
            "offset",
        ),
        (
            "RoomsFunction",
            "GET /rooms",
            "/rooms",
            &tok,
            [("limit", "25")],
            [("limit", "26")],
            "limit",
        ),
    ];
    for (function, route, path, t, ok, over, field) in cases {
        let mut ok_event = get(route, path, t, &ok);
        let mut over_event = get(route, path, t, &over);
        if route.contains("{conversation_id}") {
            ok_event = with_id(ok_event);
            over_event = with_id(over_event);
        }
        env.boundary(
            function,
            ok_event,
            over_event,
            (422, "invalid_field", Some(field)),
        )
        .await;
    }
    // Search: page size 100, query 200 characters.
    let search = |q: &[(&str, &str)]| get("GET /chat/search", "/chat/search", &tok, q);
    // Words the index keeps (2 to 32 characters), 200 characters in all.
    let long = "order ".repeat(34)[..200].to_owned();
    let longer = format!("{long}s");
    env.boundary(
        "MessagesFunction",
        search(&[("query", "order"), ("limit", "100")]),
        search(&[("query", "order"), ("limit", "101")]),
        (422, "invalid_field", Some("limit")),
    )
    .await;
    env.boundary(
        "MessagesFunction",
        search(&[("query", &long)]),
        search(&[("query", &longer)]),
        (422, "invalid_field", Some("query")),
    )
    .await;
    // Dashboards: at most 92 days, inclusive.
    for (route, path, t) in [
        (
            "GET /chat/analytics/dashboard",
            "/chat/analytics/dashboard",
            &admin,
        ),
        (
            "GET /chat/analytics/dashboard",
            "/chat/analytics/dashboard",
            &tok,
        ),
        (
            "GET /chat/analytics/global",
            "/chat/analytics/global",
            &admin,
        ),
    ] {
        env.boundary(
            "AnalyticsFunction",
            get(
                route,
                path,
                t,
                &[("from", "2024-01-01"), ("to", "2024-04-01")],
            ),
            get(
                route,
                path,
                t,
                &[("from", "2024-01-01"), ("to", "2024-04-02")],
            ),
            (422, "invalid_field", Some("to")),
        )
        .await;
    }
}

#[tokio::test]
async fn rooms_members_and_metadata() {
    let env = Env::new().await;
    let tok = token("u-100", "acme", "customer");
    let start = |body: Value| {
        HttpEvent::new("POST /rooms", "/rooms")
            .bearer(&tok)
            .json(&body)
    };
    // 40 members: the caller and 39 participants.
    let people = |n: usize| {
        (1..=n)
            .map(|i| format!("u-{}", 1000 + i))
            .collect::<Vec<_>>()
    };
    env.boundary(
        "RoomsFunction",
        start(json!({"type": "group", "name": "Full", "participant_ids": people(39)})),
        start(json!({"type": "group", "name": "Over", "participant_ids": people(40)})),
        (422, "invalid_field", Some("participant_ids")),
    )
    .await;
    // Metadata: 2 KiB of JSON.
    let meta = |n: usize| json!({"type": "group", "name": "Meta", "metadata": {"k": "x".repeat(n - r#"{"k":""}"#.len())}});
    env.boundary(
        "RoomsFunction",
        start(meta(2048)),
        start(meta(2049)),
        (422, "invalid_field", Some("metadata")),
    )
    .await;
    // Members added per call: 100 (the room grows large on the way); the room's
    // limit of 10,000 is met in large_rooms.rs.
    let (_, room) = env
        .call(
            "RoomsFunction",
            start(json!({"type": "group", "name": "Growing"})),
        )
        .await;
    let id = room["data"]["id"].as_str().unwrap().to_owned();
    let add = |n: usize| {
        HttpEvent::new(
            "POST /rooms/{room_id}/members",
            &format!("/rooms/{id}/members"),
        )
        .param("room_id", &id)
        .bearer(&tok)
        .json(&json!({"user_ids": people(n)}))
    };
    env.boundary(
        "RoomsFunction",
        add(100),
        add(101),
        (422, "invalid_field", Some("user_ids")),
    )
    .await;
}

#[test]
fn the_api_stage_is_throttled_and_timeouts_nest() {
    let template = template();
    let api = &template["Resources"]["ChatApi"];
    assert_eq!(api["Type"], "AWS::Serverless::HttpApi");
    // DefaultRouteSettings is the $default stage's: every route is throttled.
    let settings = &api["Properties"]["DefaultRouteSettings"];
    for (setting, parameter) in [
        ("ThrottlingRateLimit", "ThrottleRateLimit"),
        ("ThrottlingBurstLimit", "ThrottleBurstLimit"),
    ] {
        assert_eq!(settings[setting], parameter, "{setting}");
        let default = template["Parameters"][parameter]["Default"]
            .as_f64()
            .unwrap();
        assert!(default > 0.0, "{parameter} has a positive default");
    }
    // The SDK gives up (operation timeout) well inside every function's timeout, so
    // a stalled DynamoDB is a 503, never a Lambda timeout.
    let operation_secs = chat_core::dynamo::OPERATION_TIMEOUT.as_secs_f64();
    let global = template["Globals"]["Function"]["Timeout"].as_f64().unwrap();
    assert!(
        operation_secs * 1.5 <= global,
        "{operation_secs} s vs {global} s"
    );
    let messages = &template["Resources"]["MessagesFunction"]["Properties"];
    let timeout = messages["Timeout"].as_f64().unwrap_or(global);
    let ai_secs: f64 = messages["Environment"]["Variables"]["AI_TIMEOUT_MS"]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap()
        / 1000.0;
    // An AI reply: context read, the model, then the room read and the post.
    assert!(
        3.0 * operation_secs + ai_secs <= timeout,
        "ai-response worst case {} s in a {timeout} s function",
        3.0 * operation_secs + ai_secs
    );
}
