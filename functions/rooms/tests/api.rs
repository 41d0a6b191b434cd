//! The rooms routes against DynamoDB Local: a fresh table and app per test.

use chat_core::item::ItemExt;
use chat_core::keys;
use chat_testkit::{HttpEvent, load_event, response_json, to_request, token};
use rooms::App;
use serde_json::{Value, json};
use std::sync::Arc;

/// The rooms app, and the messages app on the same table.
type Env = chat_testkit::FunctionTest<App, messages::App>;

async fn env() -> Env {
    Env::with(App::new, messages::App::new).await
}

/// The calls these tests make.
trait Calls {
    async fn start(&self, tok: &str, body: Value) -> (u16, Value);

    async fn started(&self, tok: &str, body: Value) -> String;

    fn on_room(&self, method: &str, tail: &str, tok: &str, id: &str) -> HttpEvent;

    async fn list(&self, tok: &str, query: &[(&str, &str)]) -> (u16, Value);

    async fn post_message(&self, tok: &str, id: &str, content: &str) -> u16;

    async fn read_messages(&self, tok: &str, id: &str) -> u16;
}

impl Calls for Env {
    async fn start(&self, tok: &str, body: Value) -> (u16, Value) {
        self.send(
            HttpEvent::new("POST /rooms", "/rooms")
                .bearer(tok)
                .json(&body),
        )
        .await
    }

    async fn started(&self, tok: &str, body: Value) -> String {
        let (status, resp) = self.start(tok, body).await;
        assert_eq!(status, 201, "{resp}");
        resp["data"]["id"].as_str().unwrap().to_owned()
    }

    fn on_room(&self, method: &str, tail: &str, tok: &str, id: &str) -> HttpEvent {
        HttpEvent::new(
            &format!("{method} /rooms/{{room_id}}{tail}"),
            &format!("/rooms/{id}{tail}"),
        )
        .param("room_id", id)
        .bearer(tok)
    }

    async fn list(&self, tok: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let mut event = HttpEvent::new("GET /rooms", "/rooms").bearer(tok);
        for (k, v) in query {
            event = event.query(k, v);
        }
        self.send(event).await
    }

    async fn post_message(&self, tok: &str, id: &str, content: &str) -> u16 {
        let event = HttpEvent::new(
            "POST /rooms/{room_id}/messages",
            &format!("/rooms/{id}/messages"),
        )
        .param("room_id", id)
        .bearer(tok)
        .json(&json!({"content": content}));
        response_json(&self.extra.handle(event.request()).await).0
    }

    async fn read_messages(&self, tok: &str, id: &str) -> u16 {
        let event = HttpEvent::new(
            "GET /rooms/{room_id}/messages",
            &format!("/rooms/{id}/messages"),
        )
        .param("room_id", id)
        .bearer(tok);
        response_json(&self.extra.handle(event.request()).await).0
    }
}

fn customer() -> String {
    token("u-100", "acme", "customer")
}

fn order_chat() -> Value {
    json!({"type": "vendor_to_user", "order_id": "10", "vendor_id": "7", "agent_id": "141", "participant_ids": ["u-200"], "product": "shop"})
}

#[tokio::test]
async fn order_chats_are_started_once() {
    let env = env().await;
    let (status, first) = env.start(&customer(), order_chat()).await;
    assert_eq!(status, 201, "{first}");
    let room = &first["data"];
    assert_eq!(room["type"], "vendor_to_user");
    assert_eq!(room["order_id"], "10");
    assert_eq!(
        room["member_count"], 3,
        "owner, participant and agent: {room}"
    );
    let (status, again) = env.start(&customer(), order_chat()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["data"]["id"], room["id"]);
    // Another order, or another agent, is another chat.
    let mut other = order_chat();
    other["order_id"] = json!("11");
    assert_eq!(env.start(&customer(), other).await.0, 201);
}

#[tokio::test]
async fn concurrent_starts_create_one_room() {
    let env = Arc::new(env().await);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let env = env.clone();
        tasks.push(tokio::spawn(async move {
            env.start(&customer(), order_chat()).await
        }));
    }
    let mut ids = Vec::new();
    let mut created = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert!(status == 200 || status == 201, "{status} {body}");
        created += usize::from(status == 201);
        ids.push(body["data"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(created, 1);
    assert!(ids.iter().all(|i| *i == ids[0]));
    let rooms = env
        .table
        .items()
        .await
        .iter()
        .filter(|i| i.str(keys::ENTITY) == Some(keys::entity::ROOM))
        .count();
    assert_eq!(rooms, 1);
}

#[tokio::test]
async fn every_room_type_starts() {
    let env = env().await;
    let agent = token("a-1", "acme", "agent");
    for (tok, body) in [
        (
            agent.clone(),
            json!({"type": "agent_to_user", "order_id": "5", "participant_ids": ["u-100"]}),
        ),
        (
            customer(),
            json!({"type": "support", "product": "shop", "detail": "my parcel"}),
        ),
        (
            customer(),
            json!({"type": "group", "name": "Team", "participant_ids": ["u-2", "u-3"], "metadata": {"channel": "web"}}),
        ),
        (
            customer(),
            json!({"type": "direct", "participant_ids": ["u-2"]}),
        ),
    ] {
        let (status, body) = env.start(&tok, body.clone()).await;
        assert_eq!(status, 201, "{body}");
    }
    // A direct chat between the same two users exists once, whoever starts it.
    let (status, _) = env
        .start(
            &token("u-2", "acme", "customer"),
            json!({"type": "direct", "participant_ids": ["u-100"]}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_starts_are_refused_and_write_nothing() {
    let env = env().await;
    let cases = [
        (
            json!({"type": "vendor_to_user", "order_id": "1"}),
            422,
            "invalid_field",
        ),
        (json!({"type": "agent_to_user"}), 422, "invalid_field"),
        (json!({"type": "group"}), 422, "invalid_field"),
        (
            json!({"type": "chatroom", "name": "x"}),
            422,
            "invalid_field",
        ),
        (
            json!({"type": "group", "name": "x", "owner_id": "me"}),
            422,
            "unknown_field",
        ),
        (
            json!({"type": "group", "name": "x", "participant_ids": ["a#b"]}),
            422,
            "invalid_field",
        ),
        (
            json!({"type": "direct", "participant_ids": ["u-2", "u-3"]}),
            422,
            "invalid_field",
        ),
        (
            json!({"type": "support", "metadata": {"blob": "x".repeat(3000)}}),
            422,
            "invalid_field",
        ),
        (
            json!({"type": "group", "name": "big", "participant_ids": (0..45).map(|i| format!("u{i}")).collect::<Vec<_>>()}),
            422,
            "invalid_field",
        ),
    ];
    for (body, status, code) in cases {
        let (got, resp) = env.start(&customer(), body.clone()).await;
        assert_eq!(
            (got, resp["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {resp}"
        );
    }
    let malformed = env
        .send(
            HttpEvent::new("POST /rooms", "/rooms")
                .bearer(&customer())
                .raw_body("{\"type\":"),
        )
        .await;
    assert_eq!(malformed.0, 400);
    let big = env
        .send(
            HttpEvent::new("POST /rooms", "/rooms")
                .bearer(&customer())
                .raw_body(&json!({"type": "group", "name": "x".repeat(70_000)}).to_string()),
        )
        .await;
    assert_eq!(big.0, 413);
    assert!(env.table.items().await.is_empty(), "nothing was written");
}

#[tokio::test]
async fn listing_shows_members_profiles_and_last_messages_within_budget() {
    let env = env().await;
    let put = HttpEvent::new("PUT /profiles/me", "/profiles/me")
        .bearer(&token("u-200", "acme", "customer"));
    let (status, _) = env.send(put.json(&json!({"username": "Jane", "email": "jane@example.com", "phone": "+1 555 0100", "display_image": "https://example.com/j.png"}))).await;
    assert_eq!(status, 200);
    let order = env.started(&customer(), order_chat()).await;
    let support = env
        .started(&customer(), json!({"type": "support", "product": "shop"}))
        .await;
    let group = env
        .started(
            &customer(),
            json!({"type": "group", "name": "Team", "participant_ids": ["u-200"]}),
        )
        .await;
    assert_eq!(
        env.post_message(&customer(), &order, "where is my parcel?")
            .await,
        201
    );

    let store = &env.table.runtime.store;
    let before = store.requests();
    let (status, body) = env.list(&customer(), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        store.requests() - before <= 2,
        "a page is a Query and a BatchGetItem"
    );
    let rooms = body["data"]["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 3);
    assert_eq!(rooms[0]["id"], order.as_str(), "newest activity first");
    assert_eq!(
        rooms[0]["last_messages"][0]["preview"],
        "where is my parcel?"
    );
    let jane = rooms[0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == "u-200")
        .unwrap();
    assert_eq!(
        (jane["username"].as_str(), jane["email"].as_str()),
        (Some("Jane"), Some("jane@example.com"))
    );
    assert_eq!(jane["display_image"], "https://example.com/j.png");

    // Filters, and pages.
    let (_, only_support) = env.list(&customer(), &[("type", "support")]).await;
    assert_eq!(only_support["data"]["rooms"][0]["id"], support.as_str());
    let (_, by_product) = env.list(&customer(), &[("product", "shop")]).await;
    assert_eq!(by_product["data"]["rooms"].as_array().unwrap().len(), 2);
    let (_, page) = env.list(&customer(), &[("limit", "2")]).await;
    let first: Vec<&str> = page["data"]["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(first, [order.as_str(), group.as_str()], "a full first page");
    let cursor = page["data"]["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = env
        .list(&customer(), &[("limit", "2"), ("cursor", &cursor)])
        .await;
    assert_eq!(rest["data"]["rooms"][0]["id"], support.as_str());
    assert_eq!(rest["data"]["has_more"], false, "{rest}");

    // A profile change shows at once.
    let put = HttpEvent::new("PUT /profiles/me", "/profiles/me")
        .bearer(&token("u-200", "acme", "customer"));
    env.send(put.json(&json!({"username": "Jane D."}))).await;
    let (_, body) = env.send(env.on_room("GET", "", &customer(), &group)).await;
    assert!(
        body["data"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["username"] == "Jane D.")
    );

    // Agents may list a member's rooms; customers may not.
    let (status, body) = env
        .list(&token("a-1", "acme", "agent"), &[("member", "u-100")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["rooms"].as_array().unwrap().len(),
        1,
        "an agent sees that member's support rooms only: {body}"
    );
    let (status, body) = env
        .list(&token("adm", "acme", "admin"), &[("member", "u-100")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["rooms"].as_array().unwrap().len(),
        2,
        "admins see what GET /rooms/{{id}} shows them: the support room and the order chat, not the team room: {body}"
    );
    let (_, body) = env
        .list(&token("141", "acme", "agent"), &[("member", "u-100")])
        .await;
    assert_eq!(
        body["data"]["rooms"].as_array().unwrap().len(),
        2,
        "the order chat's agent sees it and the support room: {body}"
    );
    let (status, body) = env
        .list(&token("u-200", "acme", "customer"), &[("member", "u-100")])
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    assert_eq!(env.list(&customer(), &[("type", "nope")]).await.0, 422);
    assert_eq!(env.list(&customer(), &[("cursor", "forged")]).await.0, 400);
    let (_, other) = env.list(&token("u-100", "globex", "customer"), &[]).await;
    assert_eq!(other["data"]["rooms"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn get_update_and_delete_follow_the_roles() {
    let env = env().await;
    let id = env
        .started(
            &customer(),
            json!({"type": "group", "name": "Team", "participant_ids": ["u-200"]}),
        )
        .await;
    let participant = token("u-200", "acme", "customer");
    assert_eq!(
        env.send(env.on_room("GET", "", &participant, &id)).await.0,
        200
    );
    for tok in [
        token("u-300", "acme", "customer"),
        token("u-100", "globex", "customer"),
        token("a-1", "acme", "agent"),
    ] {
        assert_eq!(
            env.send(env.on_room("GET", "", &tok, &id)).await.0,
            404,
            "strangers, other tenants and staff outside a team room"
        );
    }
    let before = env.table.items().await;
    let (status, body) = env
        .send(
            env.on_room("PATCH", "", &participant, &id)
                .json(&json!({"name": "Mine"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    assert_eq!(
        env.send(
            env.on_room("PATCH", "", &customer(), &id)
                .json(&json!({"status": "weird"}))
        )
        .await
        .0,
        422
    );
    assert_eq!(
        env.send(
            env.on_room("PATCH", "", &customer(), &id)
                .json(&json!({"colour": "red"}))
        )
        .await
        .0,
        422
    );
    assert_eq!(
        env.send(env.on_room("PATCH", "", &customer(), &id).json(&json!({})))
            .await
            .0,
        422
    );
    assert_eq!(
        env.send(env.on_room("DELETE", "", &participant, &id))
            .await
            .0,
        403
    );
    assert_eq!(env.table.items().await, before, "nothing was written");

    let (status, body) = env
        .send(
            env.on_room("PATCH", "", &customer(), &id)
                .json(&json!({"name": "Renamed", "detail": "d", "status": "closed"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["data"]["name"].as_str(),
            body["data"]["status"].as_str()
        ),
        (Some("Renamed"), Some("closed"))
    );

    assert_eq!(env.post_message(&participant, &id, "before").await, 201);
    assert_eq!(
        env.send(env.on_room("DELETE", "", &customer(), &id))
            .await
            .0,
        200
    );
    assert_eq!(
        env.send(env.on_room("GET", "", &customer(), &id)).await.0,
        404
    );
    assert_eq!(
        env.read_messages(&participant, &id).await,
        404,
        "its messages are no longer served"
    );
    assert_eq!(env.post_message(&participant, &id, "after").await, 404);
}

#[tokio::test]
async fn members_come_and_go() {
    let env = env().await;
    let id = env
        .started(&customer(), json!({"type": "group", "name": "Team"}))
        .await;
    let newcomer = token("u-200", "acme", "customer");
    assert_eq!(env.read_messages(&newcomer, &id).await, 404);
    let add = |tok: &str, body: Value| env.on_room("POST", "/members", tok, &id).json(&body);
    let (status, body) = env.send(add(&newcomer, json!({"user_id": "u-200"}))).await;
    assert_eq!(status, 404, "a stranger cannot add themself: {body}");
    let (status, body) = env
        .send(add(&customer(), json!({"user_id": "u-200"})))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["member_count"], 2);
    assert_eq!(
        env.send(add(&customer(), json!({"user_id": "u-200"})))
            .await
            .0,
        409
    );
    assert_eq!(
        env.send(add(
            &customer(),
            json!({"user_id": "u-201", "role": "boss"})
        ))
        .await
        .0,
        422
    );
    assert_eq!(
        env.send(add(&customer(), json!({"user": "u-201"}))).await.0,
        422
    );
    assert_eq!(env.post_message(&newcomer, &id, "hi all").await, 201);
    let (_, inbox) = env.list(&newcomer, &[]).await;
    assert_eq!(inbox["data"]["rooms"][0]["member_count"], 2);

    // A participant cannot remove the owner; removing takes access at once.
    let remove = |tok: &str, user: &str| {
        HttpEvent::new(
            "DELETE /rooms/{room_id}/members/{user_id}",
            &format!("/rooms/{id}/members/{user}"),
        )
        .param("room_id", &id)
        .param("user_id", user)
        .bearer(tok)
    };
    assert_eq!(env.send(remove(&newcomer, "u-100")).await.0, 403);
    assert_eq!(env.send(remove(&customer(), "u-200")).await.0, 200);
    assert_eq!(env.read_messages(&newcomer, &id).await, 404);
    assert_eq!(env.post_message(&newcomer, &id, "still here?").await, 404);
    assert_eq!(
        env.send(remove(&customer(), "u-200")).await.0,
        404,
        "no longer a member"
    );
    let (status, body) = env.send(remove(&customer(), "u-100")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("last_member"))
    );
    assert_eq!(
        env.send(remove(&token("x", "globex", "admin"), "u-100"))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn products_are_written_by_admins() {
    let env = env().await;
    let create = |tok: &str, body: Value| {
        HttpEvent::new("POST /products", "/products")
            .bearer(tok)
            .json(&body)
    };
    for tok in [customer(), token("a-1", "acme", "agent")] {
        let (status, body) = env
            .send(create(&tok, json!({"product_id": "shop", "name": "Shop"})))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden"))
        );
    }
    assert!(env.table.items().await.is_empty());
    let admin = token("adm", "acme", "admin");
    assert_eq!(
        env.send(create(
            &admin,
            json!({"product_id": "shop", "name": "Shop"})
        ))
        .await
        .0,
        201
    );
    assert_eq!(
        env.send(create(
            &admin,
            json!({"product_id": "shop", "name": "Again"})
        ))
        .await
        .0,
        409
    );
    assert_eq!(
        env.send(create(&admin, json!({"product_id": "a#b", "name": "x"})))
            .await
            .0,
        422
    );
    assert_eq!(
        env.send(create(
            &admin,
            json!({"product_id": "p", "name": "x", "price": 1})
        ))
        .await
        .0,
        422
    );
    let (status, body) = env
        .send(HttpEvent::new("GET /products", "/products").bearer(&customer()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["products"][0]["name"], "Shop");
    let (_, other) = env
        .send(HttpEvent::new("GET /products", "/products").bearer(&token("x", "globex", "admin")))
        .await;
    assert_eq!(other["data"]["products"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn profiles_are_per_tenant_and_validated() {
    let env = env().await;
    let put = |body: Value| {
        HttpEvent::new("PUT /profiles/me", "/profiles/me")
            .bearer(&customer())
            .json(&body)
    };
    for body in [
        json!({"email": "not-an-email"}),
        json!({"phone": "call me"}),
        json!({"display_image": "javascript:x"}),
        json!({"nickname": "x"}),
    ] {
        assert_eq!(env.send(put(body.clone())).await.0, 422, "{body}");
    }
    assert!(env.table.items().await.is_empty());
    assert_eq!(
        env.send(put(json!({"username": "Sam", "email": "sam@example.com"})))
            .await
            .0,
        200
    );
    let get = |tok: &str, user: &str| {
        HttpEvent::new("GET /profiles/{user_id}", &format!("/profiles/{user}"))
            .param("user_id", user)
            .bearer(tok)
    };
    let (status, body) = env.send(get(&token("a-1", "acme", "agent"), "u-100")).await;
    assert_eq!(
        (status, body["data"]["username"].as_str()),
        (200, Some("Sam"))
    );
    assert_eq!(
        env.send(get(&token("a-1", "globex", "agent"), "u-100"))
            .await
            .0,
        404
    );
    assert_eq!(env.send(get(&customer(), "nobody")).await.0, 404);
    // One's own profile before it is written: empty, not another tenant's namesake's.
    let (status, own) = env
        .send(get(&token("u-100", "globex", "customer"), "u-100"))
        .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["data"]["username"], Value::Null);
    assert_eq!(own["data"]["email"], Value::Null);
}

/// An events/ fixture with its room id replaced by a real one.
fn fixture_on(name: &str, room: &str) -> Value {
    let event = load_event(name);
    let text = event.to_string();
    match event["pathParameters"]["room_id"].as_str() {
        Some(fixture) => serde_json::from_str(&text.replace(fixture, room)).unwrap(),
        None => event,
    }
}

#[tokio::test]
async fn event_fixtures_drive_the_handlers() {
    let env = env().await;
    let env = &env;
    let call =
        |event: Value| async move { response_json(&env.app.handle(to_request(&event)).await) };
    // The fixtures' other user has a profile (GET /profiles/u-200 finds it).
    let put = HttpEvent::new("PUT /profiles/me", "/profiles/me")
        .bearer(&token("u-200", "acme", "customer"))
        .json(&json!({"username": "Jane"}));
    assert_eq!(env.send(put).await.0, 200);
    for (name, want) in [
        ("post-rooms.json", 201),
        ("put-profiles-me.json", 200),
        ("get-profiles-user.json", 200),
        ("post-products.json", 201),
        ("get-products.json", 200),
    ] {
        let (status, body) = call(load_event(name)).await;
        assert_eq!(status, want, "{name}: {body}");
    }
    let (status, rooms) = call(load_event("get-rooms.json")).await;
    assert_eq!(status, 200, "{rooms}");
    let id = rooms["data"]["rooms"][0]["id"].as_str().unwrap().to_owned();
    // In order: the fixture room's participant u-200 is removed, added back, and
    // the room renamed, then deleted by its owner.
    for (name, want) in [
        ("get-rooms-id.json", 200),
        ("delete-rooms-id-members-user.json", 200),
        ("post-rooms-id-members.json", 201),
        ("patch-rooms-id.json", 200),
        ("delete-rooms-id.json", 200),
        ("get-rooms-id.json", 404),
    ] {
        let (status, body) = call(fixture_on(name, &id)).await;
        assert_eq!(status, want, "{name}: {body}");
    }
}

/// Sends `event` and asserts the refusal and that nothing was written.
async fn refused(env: &Env, event: HttpEvent, status: u16, code: &str, what: &str) {
    let before = env.table.items().await;
    let (got, body) = env.send(event).await;
    assert_eq!(
        (got, body["error"]["code"].as_str()),
        (status, Some(code)),
        "{what}: {body}"
    );
    assert_eq!(
        env.table.items().await,
        before,
        "{what}: nothing was written"
    );
}

#[tokio::test]
async fn body_routes_refuse_bad_input_and_write_nothing() {
    let env = env().await;
    let id = env
        .started(&customer(), json!({"type": "group", "name": "Team"}))
        .await;
    let admin = token("adm", "acme", "admin");
    let oversized = format!("{{\"name\": \"{}\"}}", "x".repeat(70_000));
    let routes: Vec<(&str, HttpEvent, Vec<(Value, &str)>)> = vec![
        (
            "PATCH /rooms/{room_id}",
            env.on_room("PATCH", "", &customer(), &id),
            vec![
                (json!({"name": ""}), "invalid_field"),
                (json!({"name": "x".repeat(201)}), "invalid_field"),
                (json!({"detail": "x".repeat(2001)}), "invalid_field"),
                (json!({"status": "snoozed"}), "invalid_field"),
                (json!({"name": 5}), "invalid_field"),
                (json!({"members": []}), "unknown_field"),
            ],
        ),
        (
            "POST /rooms/{room_id}/members",
            env.on_room("POST", "/members", &customer(), &id),
            vec![
                (json!({}), "invalid_field"),
                (json!({"user_id": "a#b"}), "invalid_field"),
                (json!({"user_id": -1}), "invalid_field"),
                (json!({"user_id": "u-2", "role": "agent"}), "unknown_field"),
            ],
        ),
        (
            "POST /products",
            HttpEvent::new("POST /products", "/products").bearer(&admin),
            vec![
                (json!({"name": "x"}), "invalid_field"),
                (json!({"product_id": "p", "name": " "}), "invalid_field"),
                (
                    json!({"product_id": "p", "name": "x", "description": "x".repeat(2001)}),
                    "invalid_field",
                ),
                (
                    json!({"product_id": "p", "name": "x", "sku": 1}),
                    "unknown_field",
                ),
            ],
        ),
        (
            "PUT /profiles/me",
            HttpEvent::new("PUT /profiles/me", "/profiles/me").bearer(&customer()),
            vec![
                (json!({"username": "x".repeat(101)}), "invalid_field"),
                (json!({"phone": "1".repeat(33)}), "invalid_field"),
                (json!({"email": "a@b"}), "invalid_field"),
                (json!({"user_id": "someone-else"}), "unknown_field"),
            ],
        ),
    ];
    for (route, event, cases) in routes {
        for (body, code) in cases {
            let what = format!("{route} {body}");
            refused(&env, event.clone().json(&body), 422, code, &what).await;
        }
        for (raw, status, code) in [
            ("{,}", 400, "malformed_request"),
            ("", 400, "malformed_request"),
            ("[1]", 422, "invalid_field"),
            (oversized.as_str(), 413, "payload_too_large"),
        ] {
            let what = format!("{route} {}", &raw[..raw.len().min(20)]);
            refused(&env, event.clone().raw_body(raw), status, code, &what).await;
        }
    }
}

#[tokio::test]
async fn roles_and_tenants_that_must_be_refused_write_nothing() {
    let env = env().await;
    let group = env
        .started(
            &customer(),
            json!({"type": "group", "name": "Team", "participant_ids": ["u-200"]}),
        )
        .await;
    let support = env
        .started(&customer(), json!({"type": "support", "detail": "help"}))
        .await;
    let participant = token("u-200", "acme", "customer");
    let stranger = token("u-300", "acme", "customer");
    let agent = token("a-1", "acme", "agent");
    let elsewhere = token("u-100", "globex", "admin");
    let remove = |tok: &str, room: &str, user: &str| {
        HttpEvent::new(
            "DELETE /rooms/{room_id}/members/{user_id}",
            &format!("/rooms/{room}/members/{user}"),
        )
        .param("room_id", room)
        .param("user_id", user)
        .bearer(tok)
    };
    let rename = json!({"name": "Mine"});
    let newcomer = json!({"user_id": "u-400"});
    let cases: Vec<(HttpEvent, u16, &str, &str)> = vec![
        // Members who do not own the room manage nothing but their own membership.
        (
            env.on_room("PATCH", "", &participant, &group).json(&rename),
            403,
            "forbidden",
            "participant renames",
        ),
        (
            env.on_room("DELETE", "", &participant, &group),
            403,
            "forbidden",
            "participant deletes",
        ),
        (
            env.on_room("POST", "/members", &participant, &group)
                .json(&newcomer),
            403,
            "forbidden",
            "participant adds",
        ),
        (
            remove(&participant, &group, "u-100"),
            403,
            "forbidden",
            "participant removes the owner",
        ),
        // Staff see support rooms; deleting one is for its owner or an admin.
        (
            env.on_room("DELETE", "", &agent, &support),
            403,
            "forbidden",
            "agent deletes",
        ),
        // Whoever may not see a room learns nothing about it.
        (
            env.on_room("GET", "", &agent, &group),
            404,
            "not_found",
            "agent reads a team room",
        ),
        (
            env.on_room("PATCH", "", &agent, &group).json(&rename),
            404,
            "not_found",
            "agent renames a team room",
        ),
        (
            env.on_room("POST", "/members", &stranger, &group)
                .json(&newcomer),
            404,
            "not_found",
            "stranger adds",
        ),
        (
            remove(&stranger, &group, "u-200"),
            404,
            "not_found",
            "stranger removes",
        ),
        (
            env.on_room("DELETE", "", &stranger, &support),
            404,
            "not_found",
            "stranger deletes",
        ),
        // Another tenant, even its admin, finds nothing.
        (
            env.on_room("GET", "", &elsewhere, &group),
            404,
            "not_found",
            "other tenant reads",
        ),
        (
            env.on_room("PATCH", "", &elsewhere, &support).json(&rename),
            404,
            "not_found",
            "other tenant renames",
        ),
        (
            env.on_room("DELETE", "", &elsewhere, &support),
            404,
            "not_found",
            "other tenant deletes",
        ),
        (
            env.on_room("POST", "/members", &elsewhere, &group)
                .json(&newcomer),
            404,
            "not_found",
            "other tenant adds",
        ),
        (
            remove(&elsewhere, &group, "u-200"),
            404,
            "not_found",
            "other tenant removes",
        ),
        (
            // (Their own id in their own tenant is their own, empty profile.)
            HttpEvent::new("GET /profiles/{user_id}", "/profiles/u-200")
                .param("user_id", "u-200")
                .bearer(&elsewhere),
            404,
            "not_found",
            "other tenant's profile",
        ),
        (
            HttpEvent::new("GET /rooms", "/rooms")
                .query("member", "u-100")
                .bearer(&participant),
            403,
            "forbidden",
            "a customer lists another member's rooms",
        ),
        (
            HttpEvent::new("POST /products", "/products")
                .bearer(&agent)
                .json(&json!({"product_id": "p", "name": "P"})),
            403,
            "forbidden",
            "an agent writes the catalogue",
        ),
    ];
    for (event, status, code, what) in cases {
        refused(&env, event, status, code, what).await;
    }
    // What staff may do: an agent manages a support room it is not in, an admin
    // deletes it; a participant leaves.
    let (status, body) = env
        .send(
            env.on_room("PATCH", "", &agent, &support)
                .json(&json!({"status": "pending"})),
        )
        .await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (200, Some("pending")),
        "{body}"
    );
    assert_eq!(
        env.send(remove(&participant, &group, "u-200")).await.0,
        200,
        "leave"
    );
    assert_eq!(
        env.send(env.on_room("GET", "", &participant, &group))
            .await
            .0,
        404
    );
    let (status, body) = env
        .send(env.on_room("DELETE", "", &token("adm", "acme", "admin"), &support))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_page_is_two_requests_whatever_the_rooms_hold() {
    let env = env().await;
    // 25 rooms of 10 members, 9 of them in no other room: a full page would need
    // 25 rooms + 226 profiles, more than one BatchGetItem takes.
    let mut created = Vec::new();
    for r in 0..25 {
        let others: Vec<String> = (0..9).map(|m| format!("u-{r}-{m}")).collect();
        created.push(
            env.started(
                &customer(),
                json!({"type": "group", "name": format!("Room {r}"), "participant_ids": others}),
            )
            .await,
        );
    }
    created.reverse();
    let store = &env.table.runtime.store;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![("limit", "25")];
        if let Some(c) = &cursor {
            query.push(("cursor", c));
        }
        let before = store.requests();
        let (status, body) = env.list(&customer(), &query).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            store.requests() - before <= 2,
            "a Query and one BatchGetItem"
        );
        pages += 1;
        for room in body["data"]["rooms"].as_array().unwrap() {
            assert_eq!(room["members"].as_array().unwrap().len(), 10);
            seen.push(room["id"].as_str().unwrap().to_owned());
        }
        match body["data"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pages move on");
    }
    assert_eq!(seen, created, "every room once, newest first");
    assert!(pages >= 3, "{pages} pages");
}

#[tokio::test]
async fn budgets_requests_per_route() {
    let env = env().await;
    let env = &env;
    let store = &env.table.runtime.store;
    let admin = token("adm", "acme", "admin");
    let count = |event: HttpEvent| async move {
        let before = store.requests();
        let (status, body) = env.send(event).await;
        assert!(status < 300, "{status} {body}");
        (store.requests() - before, body)
    };
    let (n, body) = count(
        HttpEvent::new("POST /rooms", "/rooms")
            .bearer(&customer())
            .json(&order_chat()),
    )
    .await;
    assert_eq!(n, 1, "start: one TransactWriteItems");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    let (n, _) = count(
        HttpEvent::new("POST /rooms", "/rooms")
            .bearer(&customer())
            .json(&order_chat()),
    )
    .await;
    assert_eq!(
        n, 2,
        "started again: the refused transaction names the room, one GetItem reads it"
    );
    let steps: Vec<(HttpEvent, u64, &str)> = vec![
        (
            env.on_room("GET", "", &customer(), &id),
            2,
            "room: GetItem + BatchGetItem of profiles",
        ),
        (
            env.on_room("PATCH", "", &customer(), &id)
                .json(&json!({"name": "n"})),
            2,
            "update: GetItem + TransactWriteItems",
        ),
        (
            env.on_room("POST", "/members", &customer(), &id)
                .json(&json!({"user_id": "u-9"})),
            2,
            "add member: GetItem + TransactWriteItems",
        ),
        (
            HttpEvent::new(
                "DELETE /rooms/{room_id}/members/{user_id}",
                &format!("/rooms/{id}/members/u-9"),
            )
            .param("room_id", &id)
            .param("user_id", "u-9")
            .bearer(&customer()),
            2,
            "remove member: GetItem + TransactWriteItems",
        ),
        (
            HttpEvent::new("PUT /profiles/me", "/profiles/me")
                .bearer(&customer())
                .json(&json!({"username": "Sam"})),
            1,
            "profile: one PutItem",
        ),
        (
            HttpEvent::new("GET /profiles/{user_id}", "/profiles/u-100")
                .param("user_id", "u-100")
                .bearer(&customer()),
            1,
            "profile: one GetItem",
        ),
        (
            HttpEvent::new("POST /products", "/products")
                .bearer(&admin)
                .json(&json!({"product_id": "shop", "name": "Shop"})),
            1,
            "product: one conditional PutItem",
        ),
        (
            HttpEvent::new("GET /products", "/products").bearer(&customer()),
            1,
            "catalogue page: one Query",
        ),
        (
            env.on_room("DELETE", "", &customer(), &id),
            2,
            "delete: GetItem + TransactWriteItems",
        ),
    ];
    for (event, want, what) in steps {
        assert_eq!(count(event).await.0, want, "{what}");
    }
}

#[tokio::test]
async fn a_deleted_order_chat_can_be_started_again() {
    let env = env().await;
    let first = env.started(&customer(), order_chat()).await;
    let (status, _) = env
        .send(env.on_room("DELETE", "", &customer(), &first))
        .await;
    assert_eq!(status, 200);
    let (status, body) = env.start(&customer(), order_chat()).await;
    assert_eq!(status, 201, "a new chat for the order: {body}");
    let second = body["data"]["id"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let (status, body) = env.start(&customer(), order_chat()).await;
    assert_eq!(
        (status, body["data"]["id"].as_str()),
        (200, Some(second.as_str()))
    );
    // Another customer naming the same order starts a chat of their own: neither
    // the room nor a seat in it, nor that it exists.
    let (status, body) = env
        .start(&token("u-999", "acme", "customer"), order_chat())
        .await;
    assert_eq!(status, 201, "{body}");
    assert_ne!(body["data"]["id"], second.as_str());
    assert!(!body.to_string().contains("u-100"), "{body}");
    // Staff outside the chat naming its customer learn it exists (409), no more.
    let mut same = order_chat();
    same["customer_id"] = json!("u-100");
    let (status, body) = env.start(&token("a-2", "acme", "agent"), same).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("room_exists")),
        "{body}"
    );
    assert!(body.get("data").is_none());
}

#[tokio::test]
async fn seed_clients_start_order_chats_as_they_spell_them() {
    let env = env().await;
    // The order-chat platform's body: hyphenated type, integer ids.
    let (status, body) = env
        .start(
            &token("133", "acme", "agent"),
            json!({"type": "agent-to-user", "order_id": 5, "vendor_id": 3, "participant_ids": [1]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let room = &body["data"];
    assert_eq!(
        (
            room["type"].as_str(),
            room["order_id"].as_str(),
            room["agent_id"].as_str()
        ),
        (Some("agent_to_user"), Some("5"), Some("133"))
    );
    assert_eq!(room["room_name"], room["name"]);
    let (status, body) = env
        .list(
            &token("1", "acme", "customer"),
            &[("type", "agent-to-user")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["rooms"][0]["id"], room["id"]);
}

#[tokio::test]
async fn direct_chats_stay_between_two() {
    let env = env().await;
    let id = env
        .started(
            &customer(),
            json!({"type": "direct", "participant_ids": ["u-2"]}),
        )
        .await;
    refused(
        &env,
        env.on_room("POST", "/members", &customer(), &id)
            .json(&json!({"user_id": "u-3"})),
        409,
        "direct_chat",
        "a third member",
    )
    .await;
}

#[tokio::test]
async fn the_catalogue_pages() {
    let env = env().await;
    let admin = token("adm", "acme", "admin");
    for p in ["a", "b", "c"] {
        let event = HttpEvent::new("POST /products", "/products")
            .bearer(&admin)
            .json(&json!({"product_id": p, "name": p.to_uppercase()}));
        assert_eq!(env.send(event).await.0, 201);
    }
    let list = |query: &[(&str, &str)]| {
        let mut event = HttpEvent::new("GET /products", "/products").bearer(&customer());
        for (k, v) in query {
            event = event.query(k, v);
        }
        env.send(event)
    };
    let (_, page) = list(&[("limit", "2")]).await;
    assert_eq!(page["data"]["products"].as_array().unwrap().len(), 2);
    let cursor = page["data"]["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = list(&[("limit", "2"), ("cursor", &cursor)]).await;
    assert_eq!(rest["data"]["products"][0]["product_id"], "c");
    assert_eq!(list(&[("limit", "0")]).await.0, 422);
    assert_eq!(list(&[("cursor", "forged")]).await.0, 400);
    let (_, other) = env
        .send(HttpEvent::new("GET /products", "/products").bearer(&token("x", "globex", "admin")))
        .await;
    let (status, _) = env
        .send(
            HttpEvent::new("GET /products", "/products")
                .bearer(&token("x", "globex", "admin"))
                .query("cursor", &cursor),
        )
        .await;
    assert_eq!(status, 400, "a cursor names its tenant's catalogue");
    assert_eq!(other["data"]["products"].as_array().unwrap().len(), 0);
}

/// The room item, its member rows and every inbox head, straight from the table.
async fn membership_state(
    env: &Env,
    id: &str,
) -> (
    Vec<String>,
    u64,
    Vec<(String, Vec<String>)>,
    Vec<(String, i64)>,
) {
    let items = env.table.items().await;
    let room_pk = items
        .iter()
        .find(|i| i.str("room_id") == Some(id) && i.str(keys::ENTITY) == Some(keys::entity::ROOM))
        .and_then(|i| i.string(keys::PK))
        .unwrap();
    let room = items
        .iter()
        .find(|i| {
            i.str(keys::PK) == Some(room_pk.as_str()) && i.str(keys::SK) == Some(keys::ROOM_SK)
        })
        .unwrap();
    let mut members = room.string_set("members");
    members.sort();
    let mut rows: Vec<(String, Vec<String>)> = items
        .iter()
        .filter(|i| {
            i.str(keys::PK) == Some(room_pk.as_str())
                && i.str(keys::ENTITY) == Some(keys::entity::MEMBER)
        })
        .map(|i| {
            let mut copy = i.string_set("members");
            copy.sort();
            (i.string("user_id").unwrap(), copy)
        })
        .collect();
    rows.sort();
    let mut heads: Vec<(String, i64)> = items
        .iter()
        .filter(|i| i.str(keys::ENTITY) == Some(keys::entity::INBOX_HEAD))
        .map(|i| {
            (
                i.string("user_id").unwrap(),
                i.num("conversation_count").unwrap(),
            )
        })
        .collect();
    heads.sort();
    (members, room.num("member_version").unwrap(), rows, heads)
}

#[tokio::test]
async fn concurrent_member_changes_keep_rows_copies_and_counts_right() {
    let env = Arc::new(env().await);
    let id = env
        .started(&customer(), json!({"type": "group", "name": "Team"}))
        .await;
    let newcomers: Vec<String> = (1..=5).map(|i| format!("u-{i}")).collect();
    let mut tasks = Vec::new();
    for user in newcomers.clone() {
        let (env, id) = (env.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            env.send(
                env.on_room("POST", "/members", &customer(), &id)
                    .json(&json!({"user_id": user})),
            )
            .await
        }));
    }
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let (members, version, rows, heads) = membership_state(&env, &id).await;
    let mut everyone = newcomers.clone();
    everyone.push("u-100".into());
    everyone.sort();
    assert_eq!(members, everyone);
    assert_eq!(version, 6, "one bump per change");
    assert_eq!(
        rows,
        everyone
            .iter()
            .map(|u| (u.clone(), everyone.clone()))
            .collect::<Vec<_>>(),
        "a row per member, each with the whole member list"
    );
    assert!(heads.iter().all(|(_, n)| *n == 1), "{heads:?}");

    // Two leave at once (one removed by the owner, one leaving).
    let remove = |tok: String, user: &str| {
        let (env, id, user) = (env.clone(), id.clone(), user.to_owned());
        tokio::spawn(async move {
            let event = HttpEvent::new(
                "DELETE /rooms/{room_id}/members/{user_id}",
                &format!("/rooms/{id}/members/{user}"),
            )
            .param("room_id", &id)
            .param("user_id", &user)
            .bearer(&tok);
            env.send(event).await.0
        })
    };
    let a = remove(customer(), "u-1");
    let b = remove(token("u-2", "acme", "customer"), "u-2");
    assert_eq!((a.await.unwrap(), b.await.unwrap()), (200, 200));
    let (members, version, rows, heads) = membership_state(&env, &id).await;
    let stayed = ["u-100", "u-3", "u-4", "u-5"].map(String::from).to_vec();
    assert_eq!(members, stayed);
    assert_eq!(version, 8);
    assert_eq!(
        rows,
        stayed
            .iter()
            .map(|u| (u.clone(), stayed.clone()))
            .collect::<Vec<_>>()
    );
    for (user, n) in &heads {
        let want = i64::from(stayed.contains(user));
        assert_eq!(*n, want, "{user}'s inbox count");
    }
    let (_, gone) = env.list(&token("u-1", "acme", "customer"), &[]).await;
    assert_eq!(gone["data"]["rooms"].as_array().unwrap().len(), 0);

    // Deleting the room empties every inbox.
    assert_eq!(
        env.send(env.on_room("DELETE", "", &customer(), &id))
            .await
            .0,
        200
    );
    let items = env.table.items().await;
    assert!(
        !items
            .iter()
            .any(|i| i.str(keys::ENTITY) == Some(keys::entity::MEMBER))
    );
    assert!(
        items
            .iter()
            .filter(|i| i.str(keys::ENTITY) == Some(keys::entity::INBOX_HEAD))
            .all(|i| i.num::<i64>("conversation_count") == Some(0))
    );
}

#[tokio::test]
async fn concurrent_restarts_of_a_deleted_order_chat_create_one_room() {
    let env = Arc::new(env().await);
    let first = env.started(&customer(), order_chat()).await;
    assert_eq!(
        env.send(env.on_room("DELETE", "", &customer(), &first))
            .await
            .0,
        200
    );
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let env = env.clone();
        tasks.push(tokio::spawn(async move {
            env.start(&customer(), order_chat()).await
        }));
    }
    let mut ids = Vec::new();
    let mut created = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert!(status == 200 || status == 201, "{status} {body}");
        created += usize::from(status == 201);
        ids.push(body["data"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(created, 1);
    assert!(ids.iter().all(|i| *i == ids[0] && *i != first));
    let live = env
        .table
        .items()
        .await
        .iter()
        .filter(|i| {
            i.str(keys::ENTITY) == Some(keys::entity::ROOM) && i.str("deleted_at").is_none()
        })
        .count();
    assert_eq!(live, 1);
}

#[tokio::test]
async fn list_parameters_are_validated() {
    let env = env().await;
    let agent = token("a-1", "acme", "agent");
    for (tok, query, code) in [
        (customer(), ("type", "chatroom"), "invalid_field"),
        (customer(), ("status", "weird"), "invalid_field"),
        (customer(), ("product", "a#b"), "invalid_field"),
        (customer(), ("limit", "26"), "invalid_field"),
        (customer(), ("limit", "0"), "invalid_field"),
        (customer(), ("limit", "ten"), "invalid_field"),
        (agent.clone(), ("member", "a#b"), "invalid_field"),
        (customer(), ("cursor", "forged"), "invalid_cursor"),
    ] {
        let (status, body) = env.list(&tok, &[query]).await;
        let want = if code == "invalid_cursor" { 400 } else { 422 };
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (want, Some(code)),
            "{query:?}: {body}"
        );
        if code == "invalid_field" {
            assert_eq!(body["error"]["details"]["field"], query.0, "{body}");
        }
    }
    // A cursor of one member's listing does not open another's.
    for r in 0..2 {
        env.started(
            &customer(),
            json!({"type": "support", "detail": format!("{r}")}),
        )
        .await;
    }
    let (_, page) = env.list(&customer(), &[("limit", "1")]).await;
    let cursor = page["data"]["next_cursor"].as_str().unwrap().to_owned();
    let (status, _) = env
        .list(&agent, &[("member", "u-200"), ("cursor", &cursor)])
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_removed_member_retrying_an_old_idempotency_key_gets_what_any_call_of_theirs_gets() {
    let env = env().await;
    let owner = token("u-100", "acme", "customer");
    let member = token("u-200", "acme", "customer");
    let room = env
        .started(
            &owner,
            json!({"type": "group", "name": "Team", "participant_ids": ["u-200"]}),
        )
        .await;
    let post = || {
        HttpEvent::new(
            "POST /rooms/{room_id}/messages",
            &format!("/rooms/{room}/messages"),
        )
        .param("room_id", &room)
        .bearer(&member)
        .header("idempotency-key", "retry-1")
        .json(&json!({"content": "before I was removed"}))
    };
    let (status, first) = response_json(&env.extra.handle(post().request()).await);
    assert_eq!(status, 201, "{first}");
    // Removed through the rooms function: the messages function's copy of the room
    // (its per-instance cache) still lists them.
    let (status, body) = env
        .send(
            HttpEvent::new(
                "DELETE /rooms/{room_id}/members/{user_id}",
                &format!("/rooms/{room}/members/u-200"),
            )
            .param("room_id", &room)
            .param("user_id", "u-200")
            .bearer(&owner),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let before = env.table.items().await;
    let (status, retried) = response_json(&env.extra.handle(post().request()).await);
    let list = HttpEvent::new(
        "GET /rooms/{room_id}/messages",
        &format!("/rooms/{room}/messages"),
    )
    .param("room_id", &room)
    .bearer(&member);
    let (list_status, listed) = response_json(&env.extra.handle(list.request()).await);
    assert_eq!((status, list_status), (404, 404), "{retried} {listed}");
    assert_eq!(retried["error"], listed["error"]);
    assert_eq!(env.table.items().await, before, "nothing was written");
}

#[tokio::test]
async fn admins_open_and_delete_any_order_chat_of_their_tenant_but_not_private_rooms() {
    let env = env().await;
    let order = env
        .started(
            &customer(),
            json!({"type": "vendor_to_user", "order_id": "77", "vendor_id": "7"}),
        )
        .await;
    let group = env
        .started(
            &customer(),
            json!({"type": "group", "name": "Private", "participant_ids": ["u-200"]}),
        )
        .await;
    let admin = token("adm", "acme", "admin");
    let agent = token("a-1", "acme", "agent");
    let (status, body) = env.send(env.on_room("GET", "", &admin, &order)).await;
    assert_eq!(status, 200, "an operator opens a dispute's chat: {body}");
    for (who, room) in [(&agent, &order), (&admin, &group)] {
        let (status, _) = env.send(env.on_room("GET", "", who, room)).await;
        assert_eq!(
            status, 404,
            "order chats are the admins', team rooms the members'"
        );
    }
    let globex = token("adm", "globex", "admin");
    assert_eq!(
        env.send(env.on_room("GET", "", &globex, &order)).await.0,
        404
    );
    let (status, body) = env.send(env.on_room("DELETE", "", &admin, &order)).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = env.send(env.on_room("GET", "", &customer(), &order)).await;
    assert_eq!(status, 404, "deleted for everyone");
}

#[tokio::test]
async fn a_start_never_answers_a_room_with_other_members_than_asked() {
    let env = env().await;
    let order =
        json!({"type": "vendor_to_user", "order_id": "10", "vendor_id": "v-7", "agent_id": "a-1"});
    // The customer starts the order chat with only themself (and the named agent).
    let id = env.started(&customer(), order.clone()).await;
    // The agent starts the same order naming the real customer and the vendor: the
    // same room, now with them, not the first room as it was.
    let mut with_vendor = order.clone();
    with_vendor["participant_ids"] = json!(["u-100", "v-7"]);
    let (status, body) = env.start(&token("a-1", "acme", "agent"), with_vendor).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["id"], id.as_str());
    let members: Vec<&str> = body["data"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert!(
        members.contains(&"v-7"),
        "the vendor was added: {members:?}"
    );
    // The customer of a chat staff started, a member who may not add members,
    // naming someone else: refused, naming who is missing, and nothing written.
    let by_staff = json!({"type": "agent_to_user", "order_id": "12", "participant_ids": ["u-100"]});
    env.started(&token("a-1", "acme", "agent"), by_staff).await;
    let before = env.table.items().await;
    let (status, body) = env
        .start(
            &customer(),
            json!({"type": "agent_to_user", "order_id": "12", "agent_id": "a-1", "participant_ids": ["u-900"]}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("room_members_differ")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("u-900"),
        "{body}"
    );
    assert_eq!(env.table.items().await, before, "nothing was written");
    // The vendor, a member with a customer's token, starting the same order starts
    // their own chat of it: never a way into the customer's.
    let (status, body) = env
        .start(&token("v-7", "acme", "customer"), order.clone())
        .await;
    assert_eq!(status, 201, "{body}");
    assert_ne!(body["data"]["id"], id.as_str());
    // Asking for exactly the members it has is the room, unchanged.
    let (status, _) = env.start(&customer(), order).await;
    assert_eq!(status, 200);
}

/// Review #21.10: an order chat's natural key names its customer, so a customer who
/// starts an order's chat first gets a room of their own, never the real customer's;
/// a customer cannot start one for someone else.
#[tokio::test]
async fn a_customer_cannot_squat_the_order_chat_of_another() {
    let env = env().await;
    let put = HttpEvent::new("PUT /profiles/me", "/profiles/me")
        .bearer(&customer())
        .json(&json!({"username": "Jane", "email": "jane@example.com", "phone": "+15550100"}));
    assert_eq!(env.send(put).await.0, 200);
    let squatter = token("u-666", "acme", "customer");
    let squat = env
        .started(
            &squatter,
            json!({"type": "agent_to_user", "order_id": "77", "vendor_id": "7", "agent_id": "ag-1", "participant_ids": ["u-666"]}),
        )
        .await;
    // Naming the real customer, in either spelling, is refused and writes nothing.
    let before = env.table.items().await;
    for field in ["customer_id", "order_user_id"] {
        let mut body = json!({"type": "agent_to_user", "order_id": "77", "vendor_id": "7", "agent_id": "ag-1"});
        body[field] = json!("u-100");
        let (status, answer) = env.start(&squatter, body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{field}: {answer}"
        );
    }
    assert_eq!(env.table.items().await, before, "nothing was written");

    // The agent starts the order's chat for its customer: a room of its own.
    let agent = token("ag-1", "acme", "agent");
    let (status, body) = env
        .start(
            &agent,
            json!({"type": "agent_to_user", "order_id": "77", "vendor_id": "7", "participant_ids": ["u-100"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let real = body["data"]["id"].as_str().unwrap().to_owned();
    assert_ne!(real, squat, "the squatter's room is another room");
    assert_eq!(body["data"]["customer_id"], "u-100");
    let mut members: Vec<&str> = body["data"]["participant_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    members.sort_unstable();
    assert_eq!(members, ["ag-1", "u-100"]);
    // The real customer opening their order's chat gets that room.
    let (status, body) = env
        .start(
            &customer(),
            json!({"type": "agent_to_user", "order_id": "77", "vendor_id": "7", "agent_id": "ag-1"}),
        )
        .await;
    assert_eq!(
        (status, body["data"]["id"].as_str()),
        (200, Some(real.as_str())),
        "{body}"
    );
    // The squatter sees neither the room nor the customer's contact details.
    assert_eq!(
        env.send(env.on_room("GET", "", &squatter, &real)).await.0,
        404
    );
    let (_, squatted) = env.send(env.on_room("GET", "", &squatter, &squat)).await;
    assert!(
        !squatted.to_string().contains("u-100"),
        "the customer is not in the squatter's room: {squatted}"
    );
    let profile = HttpEvent::new("GET /profiles/{user_id}", "/profiles/u-100")
        .param("user_id", "u-100")
        .bearer(&squatter);
    let (status, shown) = env.send(profile).await;
    assert_eq!(status, 200, "{shown}");
    assert!(
        !shown.to_string().contains("jane@example.com") && !shown.to_string().contains("+15550100"),
        "{shown}"
    );
    // Staff must say whose order chat it is.
    let before = env.table.items().await;
    let (status, answer) = env
        .start(&agent, json!({"type": "agent_to_user", "order_id": "78"}))
        .await;
    assert_eq!(
        (status, answer["error"]["details"]["field"].as_str()),
        (422, Some("customer_id")),
        "{answer}"
    );
    assert_eq!(env.table.items().await, before, "nothing was written");
}

#[tokio::test]
async fn contact_details_are_for_their_user_staff_and_who_shares_a_room() {
    let env = env().await;
    let put = HttpEvent::new("PUT /profiles/me", "/profiles/me")
        .bearer(&customer())
        .json(&json!({"username": "Jane", "email": "jane@example.com", "phone": "+15550100"}));
    assert_eq!(env.send(put).await.0, 200);
    env.started(
        &customer(),
        json!({"type": "group", "name": "Team", "participant_ids": ["u-200"]}),
    )
    .await;
    let get = |tok: &str| {
        HttpEvent::new("GET /profiles/{user_id}", "/profiles/u-100")
            .param("user_id", "u-100")
            .bearer(tok)
    };
    for (who, sees) in [
        (customer(), true),
        (token("u-200", "acme", "customer"), true),
        (token("a-1", "acme", "agent"), true),
        (token("u-300", "acme", "customer"), false),
    ] {
        let (status, body) = env.send(get(&who)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["username"], "Jane", "the name is for everyone");
        assert_eq!(
            (
                body["data"]["email"].is_string(),
                body["data"]["phone"].is_string()
            ),
            (sees, sees),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_rooms_page_that_ends_the_list_says_so() {
    let env = env().await;
    for name in ["one", "two", "three"] {
        env.started(&customer(), json!({"type": "group", "name": name}))
            .await;
    }
    let (status, page) = env.list(&customer(), &[("limit", "3")]).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"]["rooms"].as_array().unwrap().len(), 3);
    assert_eq!(page["data"]["has_more"], false, "{page}");
    assert!(page["data"]["next_cursor"].is_null());
    let (_, first) = env.list(&customer(), &[("limit", "2")]).await;
    assert_eq!(first["data"]["has_more"], true);
    let cursor = first["data"]["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = env
        .list(&customer(), &[("limit", "2"), ("cursor", &cursor)])
        .await;
    assert_eq!(rest["data"]["rooms"].as_array().unwrap().len(), 1, "{rest}");
    assert_eq!(rest["data"]["has_more"], false);
}
