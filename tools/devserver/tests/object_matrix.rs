//! Object-level access, generated from the route table: every route that takes an id
//! is called with the ids of real objects by a caller of another tenant and by a
//! member of the same tenant who may not see them. Each gets exactly the answer a
//! missing id gets (404, same body), and the table is unchanged. A route added to the
//! template later is covered without editing this file. Then the rows that need a
//! role (403) and cursors carried to another listing (400).

use chat_testkit::token;
use devserver::TestApp;
use devserver::test_app::path_names;
use serde_json::{Value, json};

/// Words that exist only in tenant acme's data: no answer to anyone else may hold them.
const SECRETS: &[&str] = &["zebracorn", "Zelda", "Quokka"];

struct World {
    app: TestApp,
    /// acme support conversation of u-100 (customer) with agent a-1, and its message.
    conversation: String,
    message: String,
    /// acme group room of u-100 (owner) with participant u-200, and u-100's message.
    group: String,
    group_message: String,
    /// A file attached to a message in each: the conversation's, the group's.
    uploads: [String; 2],
    /// acme's webhook endpoint.
    webhook: String,
    /// One delivery of that endpoint.
    delivery: String,
}

impl std::ops::Deref for World {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl World {
    async fn new() -> World {
        let mut world = World {
            app: TestApp::new().await,
            conversation: String::new(),
            message: String::new(),
            group: String::new(),
            group_message: String::new(),
            uploads: Default::default(),
            webhook: String::new(),
            delivery: String::new(),
        };
        let owner = token("u-100", "acme", "customer");
        let (_, created) = world
            .send(
                "POST /chat/conversations",
                &[],
                &owner,
                Some(json!({"title": "Zebracorn order 4242", "agent_id": "a-1"})),
                &[],
            )
            .await;
        world.conversation = created["data"]["conversation_id"].as_str().unwrap().into();
        let (_, room) = world
            .send(
                "POST /rooms",
                &[],
                &owner,
                Some(json!({"type": "group", "name": "Quokka team", "participant_ids": ["u-200"]})),
                &[],
            )
            .await;
        world.group = room["data"]["id"].as_str().unwrap().into();
        for (room, slot) in [(world.conversation.clone(), 0), (world.group.clone(), 1)] {
            let mut first = String::new();
            for text in ["zebracorn secret one", "zebracorn secret two"] {
                let (status, posted) = world
                    .send(
                        "POST /chat/conversations/{conversation_id}/messages",
                        &[("conversation_id", &room)],
                        &owner,
                        Some(json!({"content": text})),
                        &[],
                    )
                    .await;
                assert_eq!(status, 201, "{posted}");
                if first.is_empty() {
                    first = posted["data"]["id"]
                        .as_str()
                        .or(posted["data"]["message_id"].as_str())
                        .unwrap()
                        .into();
                }
            }
            if slot == 0 {
                world.message = first;
            } else {
                world.group_message = first;
            }
            world.uploads[slot] = world.attach(&room, &owner).await;
        }
        (world.webhook, world.delivery) = world.app.webhook_with_delivery().await;
        let (status, _) = world
            .send(
                "PUT /profiles/me",
                &[],
                &owner,
                Some(json!({"username": "Zelda Zebracorn"})),
                &[],
            )
            .await;
        assert_eq!(status, 200);
        let (status, _) = world
            .send(
                "POST /products",
                &[],
                &token("a-9", "acme", "admin"),
                Some(json!({"product_id": "zebracorn-kit", "name": "Zebracorn kit"})),
                &[],
            )
            .await;
        assert_eq!(status, 201);
        world
    }

    /// A file uploaded into `room` and attached to a message there: its upload id.
    async fn attach(&self, room: &str, owner: &str) -> String {
        let ask = json!({"name": "zebracorn.pdf", "content_type": "application/pdf", "size": 5});
        let key = "POST /chat/conversations/{conversation_id}/uploads";
        let form = self
            .expect(201, key, &[("conversation_id", room)], owner, ask)
            .await;
        let fields = form["fields"].as_object().unwrap();
        let status = chat_testkit::post_form(
            form["url"].as_str().unwrap(),
            fields,
            b"%PDF-",
            "application/pdf",
        )
        .await;
        assert!((200..300).contains(&status), "upload: {status}");
        let upload = form["upload_id"].as_str().unwrap().to_owned();
        let body = json!({"content": "zebracorn file", "attachments": [{"name": "zebracorn.pdf", "upload_id": upload}]});
        let key = "POST /chat/conversations/{conversation_id}/messages";
        self.expect(201, key, &[("conversation_id", room)], owner, body)
            .await;
        upload
    }

    /// Path parameters naming real objects: the conversation (or group), its message
    /// and its attached file.
    fn real_ids<'a>(&'a self, room: &'a str, message: &'a str) -> Vec<(&'a str, &'a str)> {
        let upload = match room == self.conversation {
            true => &self.uploads[0],
            false => &self.uploads[1],
        };
        vec![
            ("room_id", room),
            ("conversation_id", room),
            ("message_id", message),
            ("user_id", "u-100"),
            ("upload_id", upload),
            ("webhook_id", &self.webhook),
            ("delivery_id", &self.delivery),
        ]
    }
}

/// Ids that name nothing (well-formed, so the answer is "not found", not "invalid").
const MISSING: &[(&str, &str)] = &[
    ("room_id", "01J0000000000000000000000Z"),
    ("conversation_id", "01J0000000000000000000000Z"),
    ("message_id", "01J0000000000000000000000Y"),
    ("user_id", "u-nobody"),
    ("upload_id", "01J0000000000000000000000X"),
    ("webhook_id", "01J0000000000000000000000W"),
    ("delivery_id", "01J0000000000000000000000V"),
];

fn assert_no_secret(what: &str, body: &Value) {
    let text = body.to_string();
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} leaks {secret}: {text}");
    }
}

#[tokio::test]
async fn another_tenant_gets_what_a_missing_id_gets_and_sees_nothing() {
    let world = World::new().await;
    let before = world.table.items().await;
    // The same user id and the strongest role, in another tenant.
    let intruder = token("u-100", "globex", "admin");
    let mut checked = 0;
    for route in &world.routes {
        let key = route.key();
        if devserver::PUBLIC_ROUTES.contains(&key.as_str()) {
            // A signed email link's authority is its signature, not the bearer: what
            // a link of another tenant's or a forged one gets is tests/notifications.rs'.
            continue;
        }
        if path_names(route).is_empty() {
            // Listings and searches: answered, but from the caller's own tenant only.
            if route.method == "GET" {
                let (status, body) = world.send(&key, &[], &intruder, None, &[]).await;
                assert_eq!(status, 200, "{key}: {body}");
                assert_no_secret(&key, &body);
                // Naming acme's words and users: a search for them, another member's
                // rooms (the intruder is an admin, who may ask for them).
                let probes = [("query", "zebracorn"), ("member", "u-100")];
                for probe in probes {
                    let (_, mut body) = world.send(&key, &[], &intruder, None, &[probe]).await;
                    // A search echoes its own query; only what it found counts.
                    body["data"].as_object_mut().map(|d| d.remove("query"));
                    assert_no_secret(&key, &body);
                }
                checked += 1;
            }
            continue;
        }
        let ids = world.real_ids(&world.conversation, &world.message);
        let (status, existing) = world.send(&key, &ids, &intruder, None, &[]).await;
        if key == "GET /profiles/{user_id}" {
            // The namesake's own id is their own profile, empty in their tenant:
            // nothing of acme's u-100 comes with it.
            assert_eq!(status, 200, "{key}: {existing}");
            assert_eq!(existing["data"]["email"], Value::Null, "{existing}");
            assert_no_secret(&key, &existing);
            checked += 1;
            continue;
        }
        let (_, missing) = world.send(&key, MISSING, &intruder, None, &[]).await;
        assert_eq!(status, 404, "{key}: {existing}");
        assert_eq!(existing, missing, "{key}: same answer as a missing id");
        checked += 1;
    }
    assert!(checked >= 25, "checked {checked} routes");
    assert_eq!(world.table.items().await, before, "nothing was written");
}

#[tokio::test]
async fn a_member_of_the_tenant_who_may_not_see_a_room_gets_what_a_missing_id_gets() {
    let world = World::new().await;
    let before = world.table.items().await;
    // A customer outside the support conversation; an agent outside the group room
    // (agents see their tenant's support rooms, not its private rooms).
    let callers = [
        (
            "customer",
            token("u-300", "acme", "customer"),
            &world.conversation,
            &world.message,
        ),
        (
            "agent",
            token("a-7", "acme", "agent"),
            &world.group,
            &world.group_message,
        ),
    ];
    let mut checked = 0;
    for (who, caller, room, message) in &callers {
        for route in &world.routes {
            let names = path_names(route);
            if !names
                .iter()
                .any(|n| n == "room_id" || n == "conversation_id")
            {
                continue;
            }
            let key = route.key();
            let ids = world.real_ids(room, message);
            let (status, existing) = world.send(&key, &ids, caller, None, &[]).await;
            let (_, missing) = world.send(&key, MISSING, caller, None, &[]).await;
            assert_eq!(
                existing, missing,
                "{who} on {key}: same answer as a missing id"
            );
            // A role refusal that comes before any read (a customer asking for a staff
            // change) says nothing about the id either; everything else is 404.
            let refused_for_role =
                status == 403 && key == "PUT /chat/conversations/{conversation_id}";
            assert!(
                status == 404 || refused_for_role,
                "{who} on {key}: {existing}"
            );
            // Control: the same read by the room's owner finds it, so the 404 above
            // is about the caller, not the ids.
            if route.method == "GET" {
                let owner = token("u-100", "acme", "customer");
                let (status, body) = world.send(&key, &ids, &owner, None, &[]).await;
                assert_eq!(status, 200, "owner on {key}: {body}");
            }
            checked += 1;
        }
        // The per-member part of PUT needs no role: the outsider gets 404 there too.
        let key = "PUT /chat/conversations/{conversation_id}";
        let ids = world.real_ids(room, message);
        let pin = Some(json!({"is_pinned": true}));
        let (status, body) = world.send(key, &ids, caller, pin, &[]).await;
        assert_eq!(status, 404, "{who} pins a room they are not in: {body}");
    }
    assert!(checked >= 2 * 15, "checked {checked}");
    assert_eq!(world.table.items().await, before, "nothing was written");
}

#[tokio::test]
async fn a_role_without_the_right_is_refused_and_writes_nothing() {
    let world = World::new().await;
    let (c, g) = (world.conversation.clone(), world.group.clone());
    let (m, gm) = (world.message.clone(), world.group_message.clone());
    let owner = token("u-100", "acme", "customer");
    let participant = token("u-200", "acme", "customer");
    let agent = token("a-1", "acme", "agent");
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Option<Value>,
        Vec<(&'a str, &'a str)>,
    );
    let cases: Vec<Case> = vec![
        ("customer", "POST /products", vec![], None, vec![]),
        ("agent", "POST /products", vec![], None, vec![]),
        (
            "customer",
            "GET /chat/analytics/global",
            vec![],
            None,
            vec![],
        ),
        ("agent", "GET /chat/analytics/global", vec![], None, vec![]),
        (
            "customer",
            "GET /rooms",
            vec![],
            None,
            vec![("member", "u-200")],
        ),
        (
            "customer",
            "PUT /chat/conversations/{conversation_id}",
            vec![("conversation_id", &c)],
            Some(json!({"assignee_id": "u-100"})),
            vec![],
        ),
        (
            "customer",
            "POST /chat/conversations/{conversation_id}/messages",
            vec![("conversation_id", &c)],
            Some(json!({"content": "psst", "message_type": "note"})),
            vec![],
        ),
        (
            "participant",
            "PATCH /rooms/{room_id}",
            vec![("room_id", &g)],
            Some(json!({"name": "Mine now"})),
            vec![],
        ),
        (
            "participant",
            "DELETE /rooms/{room_id}",
            vec![("room_id", &g)],
            None,
            vec![],
        ),
        (
            "participant",
            "POST /rooms/{room_id}/members",
            vec![("room_id", &g)],
            Some(json!({"user_id": "u-400"})),
            vec![],
        ),
        (
            "participant",
            "DELETE /rooms/{room_id}/members/{user_id}",
            vec![("room_id", &g), ("user_id", "u-100")],
            None,
            vec![],
        ),
        (
            "participant",
            "PATCH /rooms/{room_id}/messages/{message_id}",
            vec![("room_id", &g), ("message_id", &gm)],
            Some(json!({"content": "not my words"})),
            vec![],
        ),
        (
            "participant",
            "DELETE /rooms/{room_id}/messages/{message_id}",
            vec![("room_id", &g), ("message_id", &gm)],
            None,
            vec![],
        ),
        (
            "agent",
            "PATCH /chat/conversations/{conversation_id}/messages/{message_id}",
            vec![("conversation_id", &c), ("message_id", &m)],
            Some(json!({"content": "agent rewrites the customer"})),
            vec![],
        ),
        (
            "agent",
            "DELETE /chat/conversations/{conversation_id}/messages/{message_id}",
            vec![("conversation_id", &c), ("message_id", &m)],
            None,
            vec![],
        ),
    ];
    let before = world.table.items().await;
    for (who, key, params, body, query) in &cases {
        let tok = match *who {
            "customer" => &owner,
            "participant" => &participant,
            _ => &agent,
        };
        let (status, response) = world.send(key, params, tok, body.clone(), query).await;
        assert_eq!(status, 403, "{who} on {key}: {response}");
        assert_eq!(response["error"]["code"], "forbidden", "{who} on {key}");
        assert_eq!(response["success"], false);
        // Authorization before validation: the same refusal with values that would
        // not pass (each text blanked), so a role without the right learns no rules.
        if let Some(Value::Object(fields)) = body {
            let blanked: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("message_type" | "user_id" | "assignee_id", _) => (k.clone(), v.clone()),
                    (_, Value::String(_)) => (k.clone(), json!("")),
                    _ => (k.clone(), v.clone()),
                })
                .collect();
            let (status, response) = world
                .send(
                    key,
                    params,
                    tok,
                    Some(Value::Object(blanked.clone())),
                    query,
                )
                .await;
            assert_eq!(status, 403, "{who} on {key} with {blanked:?}: {response}");
        }
    }
    // The catalogue's write with an incomplete body, by a role without the right.
    for tok in [&owner, &agent] {
        let (status, response) = world
            .send("POST /products", &[], tok, Some(json!({"name": ""})), &[])
            .await;
        assert_eq!(status, 403, "{response}");
    }
    assert_eq!(world.table.items().await, before, "nothing was written");
}

#[tokio::test]
async fn a_cursor_from_another_listing_is_refused() {
    let world = World::new().await;
    let owner = token("u-100", "acme", "customer");
    let stranger = token("u-300", "acme", "customer");
    let intruder = token("u-100", "globex", "customer");
    let next = |body: &Value| body["data"]["next_cursor"].as_str().unwrap().to_owned();

    // The owner's inbox page, replayed by another user of the tenant and another tenant.
    let (_, page) = world
        .send(
            "GET /chat/conversations",
            &[],
            &owner,
            None,
            &[("limit", "1")],
        )
        .await;
    let inbox_cursor = next(&page);
    for caller in [&stranger, &intruder] {
        let (status, body) = world
            .send(
                "GET /chat/conversations",
                &[],
                caller,
                None,
                &[("cursor", &inbox_cursor)],
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_cursor")),
            "{body}"
        );
    }

    // The owner's rooms page, replayed by a participant of one of those rooms.
    let (_, page) = world
        .send("GET /rooms", &[], &owner, None, &[("limit", "1")])
        .await;
    let cursor = next(&page);
    // The two listings of one's own memberships do not take each other's cursors.
    for (key, other) in [
        ("GET /chat/conversations", &cursor),
        ("GET /rooms", &inbox_cursor),
    ] {
        let (status, body) = world
            .send(key, &[], &owner, None, &[("cursor", other)])
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_cursor")),
            "{key} with the other listing's cursor: {body}"
        );
    }
    let participant = token("u-200", "acme", "customer");
    let (status, body) = world
        .send(
            "GET /rooms",
            &[],
            &participant,
            None,
            &[("cursor", &cursor)],
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_cursor")),
        "{body}"
    );

    // A page of one room's messages, carried to another room the caller may read.
    let key = "GET /chat/conversations/{conversation_id}/messages";
    let (_, page) = world
        .send(
            key,
            &[("conversation_id", &world.conversation)],
            &owner,
            None,
            &[("limit", "1")],
        )
        .await;
    let cursor = next(&page);
    for direction in ["before", "after"] {
        let (status, body) = world
            .send(
                key,
                &[("conversation_id", &world.group)],
                &owner,
                None,
                &[(direction, &cursor)],
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_cursor")),
            "{direction}: {body}"
        );
    }

    // A search page of one tenant, replayed in another.
    let (_, page) = world
        .send(
            "GET /chat/search",
            &[],
            &owner,
            None,
            &[("query", "zebracorn"), ("limit", "1")],
        )
        .await;
    let cursor = next(&page);
    let (status, body) = world
        .send(
            "GET /chat/search",
            &[],
            &intruder,
            None,
            &[("query", "zebracorn"), ("cursor", &cursor)],
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_cursor")),
        "{body}"
    );
}
