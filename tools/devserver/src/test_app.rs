//! The test app of the integration suites: a fresh table, every function's handlers
//! behind the template's routes, and each route's events/ fixture, so a test calls a
//! route by its key the way API Gateway would.

use crate::Apps;
use chat_testkit::{Route, TestTable, load_event, template, template_routes, to_request};
use serde_json::{Value, json};
use std::collections::HashMap;

pub struct TestApp {
    pub table: TestTable,
    pub apps: Apps,
    pub routes: Vec<Route>,
    /// The events/ fixture of each route key.
    pub fixtures: HashMap<String, Value>,
}

impl TestApp {
    /// On a fresh table, with AI replies off.
    pub async fn new() -> TestApp {
        Self::on(TestTable::new().await, messages::ai::Ai::off())
    }

    /// On `table`, with `ai` for AI replies.
    pub fn on(table: TestTable, ai: messages::ai::Ai) -> TestApp {
        let apps = Apps::with_ai(table.runtime.clone(), ai);
        TestApp {
            table,
            apps,
            routes: template_routes(&template()),
            fixtures: fixtures(),
        }
    }

    pub fn route(&self, key: &str) -> &Route {
        self.routes
            .iter()
            .find(|r| r.key() == key)
            .unwrap_or_else(|| panic!("no route {key} in template.yaml"))
    }

    /// Calls `key` with its events/ fixture (query, body), these path parameters (those
    /// the route has), this token, and optionally another body and extra query
    /// parameters.
    pub async fn send(
        &self,
        key: &str,
        params: &[(&str, &str)],
        token: &str,
        body: Option<Value>,
        query: &[(&str, &str)],
    ) -> (u16, Value) {
        let response = self.respond(key, params, token, body, query).await;
        chat_testkit::response_json(&response)
    }

    /// [`Self::send`], answering the whole response (status, headers, body).
    pub async fn respond(
        &self,
        key: &str,
        params: &[(&str, &str)],
        token: &str,
        body: Option<Value>,
        query: &[(&str, &str)],
    ) -> lambda_http::Response<lambda_http::Body> {
        self.respond_on(&self.apps, key, params, token, body, query)
            .await
    }

    /// [`Self::send`] of a call that must succeed with `status`: its `data`.
    pub async fn expect(
        &self,
        status: u16,
        key: &str,
        params: &[(&str, &str)],
        token: &str,
        body: Value,
    ) -> Value {
        self.expect_answer(status, key, params, token, Some(body))
            .await
    }

    async fn expect_answer(
        &self,
        status: u16,
        key: &str,
        params: &[(&str, &str)],
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let (got, answer) = self.send(key, params, token, body, &[]).await;
        assert_eq!(got, status, "{key}: {answer}");
        answer["data"].clone()
    }

    /// A support conversation started by `who` with `body` (`POST
    /// /chat/conversations`): its id.
    pub async fn conversation(&self, who: &str, body: Value) -> String {
        let made = self
            .expect(201, "POST /chat/conversations", &[], who, body)
            .await;
        made["conversation_id"]
            .as_str()
            .expect("conversation id")
            .to_owned()
    }

    /// Waits (bounded, 90 s) until the job `route` shows (an export's or an
    /// erasure's status) is in one of `statuses`: its `data` then.
    pub async fn job_ended(
        &self,
        route: &str,
        params: &[(&str, &str)],
        who: &str,
        statuses: &[&str],
    ) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            let (code, body) = self.send(route, params, who, None, &[]).await;
            assert_eq!(code, 200, "{route}: {body}");
            if statuses.iter().any(|s| body["data"]["status"] == *s) {
                return body["data"].clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{route}: still {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// A support team named `name`, made by the admin `admin` (`POST /teams`): its id.
    pub async fn team(&self, admin: &str, name: &str) -> String {
        let made = self
            .expect(201, "POST /teams", &[], admin, json!({ "name": name }))
            .await;
        made["team_id"].as_str().expect("team id").to_owned()
    }

    /// The conversation's feed as `who` reads it, from the start.
    pub async fn events(&self, conversation: &str, who: &str) -> Vec<Value> {
        let (status, feed) = self
            .send(
                "GET /chat/conversations/{conversation_id}/events",
                &[("conversation_id", conversation)],
                who,
                None,
                &[("after", "0")],
            )
            .await;
        assert_eq!(status, 200, "{feed}");
        feed["data"]["events"].as_array().expect("events").clone()
    }

    /// A room started by `who` with `body` (`POST /rooms`): its id.
    pub async fn room(&self, who: &str, body: Value) -> String {
        let made = self.expect(201, "POST /rooms", &[], who, body).await;
        made["id"].as_str().expect("room id").to_owned()
    }

    /// `bytes` uploaded by `who` into a room (`POST /rooms/{room_id}/uploads`, then
    /// the form posted to the local S3), not attached yet: its upload id.
    pub async fn upload(&self, who: &str, room: &str, name: &str, bytes: &[u8]) -> String {
        let ask = json!({"name": name, "content_type": "image/png", "size": bytes.len()});
        let form = self
            .expect(
                201,
                "POST /rooms/{room_id}/uploads",
                &[("room_id", room)],
                who,
                ask,
            )
            .await;
        let status = chat_testkit::post_form(
            form["url"].as_str().expect("form url"),
            form["fields"].as_object().expect("form fields"),
            bytes,
            "image/png",
        )
        .await;
        assert!((200..300).contains(&status), "upload: {status}");
        form["upload_id"].as_str().expect("upload id").to_owned()
    }

    /// A webhook endpoint of tenant acme, made by one of its admins: its id.
    pub async fn webhook(&self) -> String {
        let body = json!({"url": "https://crm.example.com/hooks", "event_types": ["message.new"]});
        let admin = chat_testkit::token("a-9", "acme", "admin");
        let made = self.expect(201, "POST /webhooks", &[], &admin, body).await;
        made["id"].as_str().expect("webhook id").to_owned()
    }

    /// [`Self::webhook`] with one stored delivery (of a change in a room of acme),
    /// waiting for its attempt: (webhook id, delivery id).
    pub async fn webhook_with_delivery(&self) -> (String, String) {
        use chat_core::store::Delivery;
        let webhook = self.webhook().await;
        let org = chat_core::ids::OrgId::parse("acme").expect("org");
        let id = chat_core::ids::WebhookId::parse(&webhook).expect("webhook id");
        let event = chat_testkit::first_change(chat_core::ids::RoomId::generate());
        let delivery = Delivery::of_event(&org, &id, &event, false);
        let store = &self.table.runtime.store;
        assert!(store.add_delivery(&delivery).await.expect("add delivery"));
        (webhook, delivery.id.to_string())
    }

    /// A GET that must succeed: its `data`.
    pub async fn expect_get(&self, key: &str, params: &[(&str, &str)], token: &str) -> Value {
        self.expect_answer(200, key, params, token, None).await
    }

    /// Another instance of every function on the same table: its own handlers and
    /// caches, as a second Lambda instance (or dev server) has.
    pub fn instance(&self) -> Apps {
        Apps::new(self.table.runtime.clone())
    }

    /// [`Self::send`] through `apps` (see [`Self::instance`]).
    pub async fn send_on(
        &self,
        apps: &Apps,
        key: &str,
        params: &[(&str, &str)],
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let response = self.respond_on(apps, key, params, token, body, &[]).await;
        chat_testkit::response_json(&response)
    }

    async fn respond_on(
        &self,
        apps: &Apps,
        key: &str,
        params: &[(&str, &str)],
        token: &str,
        body: Option<Value>,
        query: &[(&str, &str)],
    ) -> lambda_http::Response<lambda_http::Body> {
        let route = self.route(key).clone();
        let event = fixture_event(&self.fixtures[key], &route, params, token, body, query);
        apps.call(&route.function, to_request(&event))
            .await
            .expect("known function")
    }
}

/// The dev server for `table` on a free port of 127.0.0.1, serving until the process
/// ends (AI replies off): the port.
/// Business hours (UTC) open one hour a day, every day, starting two hours from now:
/// closed now. With the opening's "HH:00".
pub fn hours_closed_now() -> (Value, String) {
    let now = chat_core::time::now();
    let start = (u32::from(now.hour()) + 2) % 24;
    let end = match start {
        23 => "24:00".to_owned(),
        s => format!("{:02}:00", s + 1),
    };
    let span = json!([[format!("{start:02}:00"), end]]);
    let week: serde_json::Map<String, Value> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| ((*d).to_owned(), span.clone()))
        .collect();
    (
        json!({"time_zone": "UTC", "week": week}),
        format!("{start:02}:00"),
    )
}

pub async fn serve_locally(table: &TestTable) -> u16 {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("local address").port();
    let routes = std::sync::Arc::new(template_routes(&template()));
    let apps = std::sync::Arc::new(Apps::new(table.runtime.clone()));
    tokio::spawn(crate::serve(listener, routes, apps));
    port
}

/// Every events/ fixture of a route, by route key.
pub fn fixtures() -> HashMap<String, Value> {
    let mut fixtures = HashMap::new();
    for entry in std::fs::read_dir(chat_testkit::repo_root().join("events")).expect("events/") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8");
        if name.ends_with(".json") {
            let event = load_event(&name);
            if let Some(key) = event["routeKey"].as_str() {
                fixtures.insert(key.to_owned(), event);
            }
        }
    }
    fixtures
}

/// The path parameters a route's path names.
pub fn path_names(route: &Route) -> Vec<String> {
    route
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_owned)
        .collect()
}

/// `fixture` with these path parameters, token, body and extra query parameters.
fn fixture_event(
    fixture: &Value,
    route: &Route,
    params: &[(&str, &str)],
    token: &str,
    body: Option<Value>,
    query: &[(&str, &str)],
) -> Value {
    let mut event = fixture.clone();
    let mut path = route.path.clone();
    let mut path_params = serde_json::Map::new();
    for (name, value) in params {
        let slot = format!("{{{name}}}");
        if path.contains(&slot) {
            path = path.replace(&slot, value);
            path_params.insert((*name).into(), json!(value));
        }
    }
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    if path_params.is_empty() {
        event
            .as_object_mut()
            .expect("event")
            .remove("pathParameters");
    } else {
        event["pathParameters"] = Value::Object(path_params);
    }
    event["headers"]["authorization"] = json!(format!("Bearer {token}"));
    // A fixture's idempotency key would make every post after the first a replay.
    event["headers"]
        .as_object_mut()
        .expect("headers")
        .remove("idempotency-key");
    match body {
        Some(body) => event["body"] = json!(body.to_string()),
        // `sender_type` only asserts the caller's role (the fixtures' is a customer).
        None => {
            if let Some(mut fixture) = event["body"]
                .as_str()
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
                .filter(|b| b.get("sender_type").is_some())
            {
                fixture.as_object_mut().expect("body").remove("sender_type");
                event["body"] = json!(fixture.to_string());
            }
        }
    }
    if !query.is_empty() {
        let mut q = event["queryStringParameters"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (k, v) in query {
            q.insert((*k).into(), json!(v));
        }
        event["rawQueryString"] = json!(
            q.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("&")
        );
        event["queryStringParameters"] = Value::Object(q);
    }
    event
}
