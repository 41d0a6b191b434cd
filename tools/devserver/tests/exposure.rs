//! What leaves a room for the tenant's own systems, generated over every room type:
//! the tenant feed (`GET /events`), live webhook deliveries (the stream → `deliver`
//! → a receiver on 127.0.0.1), replays and the delivery log carry a room's changes
//! exactly when its type is open to the tenant (`RoomType::open_to_tenant`, the
//! rule that also decides whether a non-member admin sees the room): team rooms and
//! direct chats stay members-only on every path.

use chat_core::model::RoomType;
use chat_core::webhooks::DeliverySettings;
use chat_testkit::token;
use devserver::TestApp;
use devserver::receiver::Receiver;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn admin() -> String {
    token("a-9", "acme", "admin")
}

fn customer() -> String {
    token("u-100", "acme", "customer")
}

/// A body that starts a room of `room_type` between u-100 and u-200.
fn room_body(room_type: RoomType) -> Value {
    let mut body =
        json!({"type": room_type.as_str(), "name": "Room", "participant_ids": ["u-200"]});
    if matches!(room_type, RoomType::AgentToUser | RoomType::VendorToUser) {
        body["order_id"] = json!("77");
        body["vendor_id"] = json!("7");
    }
    body
}

/// The words only this room's message holds.
fn secret(room_type: RoomType) -> String {
    format!("secret-words-of-a-{}-room", room_type.as_str())
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every page of the tenant feed, as text.
async fn tenant_feed(app: &TestApp) -> String {
    let mut all = String::new();
    let mut after: Option<String> = None;
    for _ in 0..50 {
        let mut query = vec![("limit", "100".to_owned())];
        if let Some(cursor) = &after {
            query.push(("after", cursor.clone()));
        }
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, page) = app.send("GET /events", &[], &admin(), None, &query).await;
        assert_eq!(status, 200, "{page}");
        all.push_str(&page["data"]["events"].to_string());
        match page["data"]["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return all,
        }
    }
    panic!("the tenant feed did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_only_rooms_never_reach_the_tenants_systems() {
    let app = TestApp::new().await;
    devserver::delivery::serve_webhook_delivery(&app.table.runtime, DeliverySettings::default())
        .await;
    let receiver = Receiver::start().await;
    let types: Vec<&str> = chat_core::store::EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    let hook = app
        .expect(
            201,
            "POST /webhooks",
            &[],
            &admin(),
            json!({"url": receiver.url("/in"), "event_types": types}),
        )
        .await;
    let hook = hook["id"].as_str().unwrap().to_owned();

    let mut rooms = Vec::new();
    for room_type in RoomType::ALL {
        let made = app
            .expect(201, "POST /rooms", &[], &customer(), room_body(room_type))
            .await;
        let room = made["id"].as_str().unwrap().to_owned();
        app.expect(
            201,
            "POST /rooms/{room_id}/messages",
            &[("room_id", &room)],
            &customer(),
            json!({"content": secret(room_type)}),
        )
        .await;
        rooms.push((room_type, room));
    }
    let open: Vec<RoomType> = RoomType::ALL
        .into_iter()
        .filter(|t| t.open_to_tenant())
        .collect();
    assert!(!open.is_empty() && open.len() < RoomType::ALL.len());

    // Live: every open room's message arrives; then a marker posted last arrives
    // too, after which nothing of a members-only room can still be on its way.
    eventually("the open rooms' messages", || {
        let got = String::from_utf8_lossy(
            &receiver
                .received("/in")
                .iter()
                .flat_map(|r| r.body.clone())
                .collect::<Vec<u8>>(),
        )
        .into_owned();
        open.iter().all(|t| got.contains(&secret(*t)))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(
        chat_core::store::TENANT_FEED_SETTLE_MS as u64 + 300,
    ))
    .await;
    let live: String = receiver
        .received("/in")
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    let feed = tenant_feed(&app).await;

    for (room_type, room) in &rooms {
        let exposed = room_type.open_to_tenant();
        let words = secret(*room_type);
        let what = room_type.as_str();
        // The admin's own view decides it, and every path agrees with it.
        let (status, _) = app
            .send(
                "GET /rooms/{room_id}",
                &[("room_id", room)],
                &admin(),
                None,
                &[],
            )
            .await;
        assert_eq!(status == 200, exposed, "{what}: admin GET {status}");
        assert_eq!(live.contains(&words), exposed, "{what}: live delivery");
        assert_eq!(feed.contains(&words), exposed, "{what}: GET /events");
        assert_eq!(
            feed.contains(room.as_str()),
            exposed,
            "{what}: GET /events ids"
        );
        let (status, answer) = app
            .send(
                "POST /webhooks/{webhook_id}/replay",
                &[("webhook_id", &hook)],
                &admin(),
                Some(json!({"room_id": room})),
                &[],
            )
            .await;
        if exposed {
            assert_eq!(status, 202, "{what}: replay {answer}");
        } else {
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (404, Some("not_found")),
                "{what}: replay of a members-only room"
            );
        }
    }
    let (status, log) = app
        .send(
            "GET /webhooks/{webhook_id}/deliveries",
            &[("webhook_id", &hook)],
            &admin(),
            None,
            &[("limit", "100")],
        )
        .await;
    assert_eq!(status, 200);
    let log = log.to_string();
    for (room_type, room) in &rooms {
        let exposed = room_type.open_to_tenant();
        assert_eq!(
            log.contains(&secret(*room_type)),
            exposed,
            "{room_type:?}: log"
        );
        assert_eq!(
            log.contains(room.as_str()),
            exposed,
            "{room_type:?}: log ids"
        );
    }
}

/// A `resume` over a real WebSocket from `after`: the answer frame.
async fn resume_over_socket(app: &TestApp, ws_port: u16, tok: &str, room: &str) -> Value {
    use futures_util::{SinkExt, StreamExt};
    let (status, body) = app
        .send("POST /realtime/tickets", &[], tok, None, &[])
        .await;
    assert_eq!(status, 201, "{body}");
    let url = format!(
        "ws://127.0.0.1:{ws_port}/?ticket={}",
        body["data"]["ticket"].as_str().unwrap()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let ask = json!({"action": "resume", "room_id": room, "after": 0, "id": 1});
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        ask.to_string(),
    ))
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "no answer to resume");
        let frame = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a frame")
            .expect("open")
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame["id"] == 1 {
                assert_eq!(frame["type"], "resumed", "{frame}");
                return frame;
            }
        }
    }
}

/// Edited, then deleted: no earlier text of a message is readable afterwards through
/// any path that serves stored events — the room feed (customer and staff), a
/// WebSocket `resume`, the tenant feed, the delivery log, a replay and what the
/// replay sends. Its deletion's own event and the tombstone stay, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_message_leaves_no_text_on_any_path() {
    let app = TestApp::new().await;
    devserver::delivery::serve_webhook_delivery(&app.table.runtime, DeliverySettings::default())
        .await;
    let (ws_port, _) = devserver::realtime::serve_realtime(&app.table.runtime, 0)
        .await
        .unwrap();
    let receiver = Receiver::start().await;
    let hook = app
        .expect(
            201,
            "POST /webhooks",
            &[],
            &admin(),
            json!({"url": receiver.url("/in"), "event_types": ["message.new", "message.updated", "message.deleted"]}),
        )
        .await;
    let hook = hook["id"].as_str().unwrap().to_owned();
    let agent = token("a-1", "acme", "agent");
    let made = app
        .expect(
            201,
            "POST /chat/conversations",
            &[],
            &customer(),
            json!({"title": "Card", "agent_id": "a-1"}),
        )
        .await;
    let room = made["conversation_id"].as_str().unwrap().to_owned();
    let at = [("conversation_id", room.as_str())];
    let posted = app
        .expect(
            201,
            "POST /chat/conversations/{conversation_id}/messages",
            &at,
            &customer(),
            json!({"content": "first-version-card-4111"}),
        )
        .await;
    let message = posted["id"].as_str().unwrap().to_owned();
    let at_message = [
        ("conversation_id", room.as_str()),
        ("message_id", message.as_str()),
    ];
    app.expect(
        200,
        "PATCH /chat/conversations/{conversation_id}/messages/{message_id}",
        &at_message,
        &customer(),
        json!({"content": "second-version-card-4111"}),
    )
    .await;
    // Live deliveries of both versions went out before the delete (that is live).
    eventually("both versions delivered", || {
        receiver.received("/in").len() >= 2
    })
    .await;

    // An edit already leaves no older text in the feed.
    let (_, feed) = app
        .send(
            "GET /chat/conversations/{conversation_id}/events",
            &at,
            &customer(),
            None,
            &[("after", "0")],
        )
        .await;
    let feed = feed.to_string();
    assert!(!feed.contains("first-version"), "edit: {feed}");
    assert!(
        feed.contains("second-version"),
        "edit: the current text stays: {feed}"
    );

    // The inbox's preview shows the current text (a path the delete must empty).
    let inbox_with_preview = |tok: String| {
        let app = &app;
        async move {
            let (status, page) = app
                .send(
                    "GET /chat/conversations",
                    &[],
                    &tok,
                    None,
                    &[("include", "last_message")],
                )
                .await;
            assert_eq!(status, 200, "{page}");
            page.to_string()
        }
    };
    let before = inbox_with_preview(customer()).await;
    assert!(before.contains("second-version-card-4111"), "{before}");

    let deleted_at = Instant::now();
    let (status, _) = app
        .send(
            "DELETE /chat/conversations/{conversation_id}/messages/{message_id}",
            &at_message,
            &customer(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(
        chat_core::store::TENANT_FEED_SETTLE_MS as u64 + 300,
    ))
    .await;
    let (status, replay) = app
        .send(
            "POST /webhooks/{webhook_id}/replay",
            &[("webhook_id", &hook)],
            &admin(),
            Some(json!({"room_id": room})),
            &[],
        )
        .await;
    assert_eq!(status, 202, "{replay}");
    eventually("the replay sent", || {
        receiver.received("/in").len() >= 3 + 3
    })
    .await;

    let mut paths: Vec<(String, String)> = Vec::new();
    for (who, tok) in [("customer", customer()), ("agent", agent.clone())] {
        let (status, body) = app
            .send(
                "GET /chat/conversations/{conversation_id}/events",
                &at,
                &tok,
                None,
                &[("after", "0")],
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            body["data"]["events"].as_array().unwrap().len(),
            3,
            "{body}"
        );
        paths.push((format!("room feed ({who})"), body.to_string()));
        let resumed = resume_over_socket(&app, ws_port, &tok, &room).await;
        assert_eq!(resumed["events"].as_array().unwrap().len(), 3, "{resumed}");
        paths.push((format!("resume ({who})"), resumed.to_string()));
    }
    paths.push(("tenant feed".into(), tenant_feed(&app).await));
    let (_, log) = app
        .send(
            "GET /webhooks/{webhook_id}/deliveries",
            &[("webhook_id", &hook)],
            &admin(),
            None,
            &[("limit", "100")],
        )
        .await;
    assert!(
        log["data"]["deliveries"].as_array().unwrap().len() >= 6,
        "{log}"
    );
    paths.push(("delivery log".into(), log.to_string()));
    let replayed: String = receiver
        .received("/in")
        .iter()
        .filter(|r| r.at > deleted_at)
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    paths.push(("what was sent after the delete".into(), replayed));
    let (_, page) = app
        .send(
            "GET /chat/conversations/{conversation_id}/messages",
            &at,
            &agent,
            None,
            &[],
        )
        .await;
    paths.push(("messages".into(), page.to_string()));
    for (who, tok) in [("customer", customer()), ("agent", agent.clone())] {
        paths.push((
            format!("inbox preview ({who})"),
            inbox_with_preview(tok).await,
        ));
    }
    let (_, customers_rooms) = app
        .send(
            "GET /rooms",
            &[],
            &agent,
            None,
            &[("member", "u-100"), ("type", "support")],
        )
        .await;
    assert_eq!(
        customers_rooms["data"]["rooms"].as_array().unwrap().len(),
        1
    );
    paths.push(("the customer's rooms".into(), customers_rooms.to_string()));
    for (path, text) in &paths {
        for words in ["first-version", "second-version", "card-4111"] {
            assert!(
                !text.contains(words),
                "{path} still serves {words:?}: {text}"
            );
        }
    }
}
