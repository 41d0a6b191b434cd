//! The per-room change feed over REST: every visible change gets the next `seq` (dense,
//! commit order) in the same transaction, `GET …/events` returns them after a `seq`,
//! notes are only numbers to customers, and positions past retention answer 410.

use chat_core::keys;
use chat_testkit::token;
use devserver::TestApp;
use serde_json::{Value, json};
use std::sync::Arc;

const EVENTS: &str = "GET /chat/conversations/{conversation_id}/events";

fn customer() -> String {
    token("u-100", "acme", "customer")
}

fn agent() -> String {
    token("a-1", "acme", "agent")
}

async fn conversation(app: &TestApp) -> String {
    let created = app
        .expect(
            201,
            "POST /chat/conversations",
            &[],
            &customer(),
            json!({"title": "Broken kettle", "agent_id": "a-1"}),
        )
        .await;
    created["conversation_id"].as_str().unwrap().to_owned()
}

async fn events(app: &TestApp, id: &str, tok: &str, after: u64) -> (u16, Value) {
    app.send(
        EVENTS,
        &[("conversation_id", id)],
        tok,
        None,
        &[("after", &after.to_string()), ("limit", "100")],
    )
    .await
}

async fn post(app: &TestApp, id: &str, tok: &str, body: Value) -> Value {
    let key = "POST /chat/conversations/{conversation_id}/messages";
    app.expect(201, key, &[("conversation_id", id)], tok, body)
        .await
}

fn types(page: &Value) -> Vec<(u64, String)> {
    page["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["type"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_change_is_numbered_densely_and_notes_are_only_numbers_to_customers() {
    let app = TestApp::new().await;
    let id = conversation(&app).await;
    let first = post(&app, &id, &customer(), json!({"content": "it leaks"})).await;
    assert_eq!(first["seq"], 1);
    post(
        &app,
        &id,
        &agent(),
        json!({"content": "refund approved by Dana", "message_type": "note"}),
    )
    .await;
    let reply = post(&app, &id, &agent(), json!({"content": "sorry to hear"})).await;
    let reply_id = reply["id"].as_str().unwrap();
    let (status, _) = app
        .send(
            "PATCH /chat/conversations/{conversation_id}/messages/{message_id}",
            &[("conversation_id", &id), ("message_id", reply_id)],
            &agent(),
            Some(json!({"content": "so sorry to hear"})),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .send(
            "PUT /chat/conversations/{conversation_id}",
            &[("conversation_id", &id)],
            &agent(),
            Some(json!({"status": "resolved"})),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .send(
            "POST /rooms/{room_id}/members",
            &[("room_id", &id)],
            &customer(),
            Some(json!({"user_id": "u-300"})),
            &[],
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = app
        .send(
            "DELETE /chat/conversations/{conversation_id}/messages/{message_id}",
            &[("conversation_id", &id), ("message_id", reply_id)],
            &agent(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);

    let (status, staff) = events(&app, &id, &agent(), 0).await;
    assert_eq!(status, 200, "{staff}");
    let expected = [
        "message.new",
        "message.new",
        "message.new",
        "message.updated",
        "room.updated",
        "member.added",
        "message.deleted",
    ];
    let seen = types(&staff);
    assert_eq!(
        seen,
        expected
            .iter()
            .enumerate()
            .map(|(i, t)| (i as u64 + 1, t.to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(staff["data"]["last_seq"], 7);
    assert_eq!(
        staff["data"]["events"][1]["data"]["content"],
        "refund approved by Dana"
    );
    assert_eq!(staff["data"]["events"][4]["data"]["status"], "resolved");
    assert_eq!(staff["data"]["events"][5]["data"]["user_id"], "u-300");
    assert_eq!(staff["data"]["events"][6]["data"]["is_deleted"], true);
    assert_eq!(staff["data"]["events"][6]["data"]["content"], "");

    // The customer sees the same numbers; the note is a number without content.
    let (_, theirs) = events(&app, &id, &customer(), 0).await;
    let seen = types(&theirs);
    assert_eq!(seen.len(), 7);
    assert_eq!(seen[1], (2, "hidden".to_owned()));
    assert!(!theirs.to_string().contains("Dana"), "{theirs}");

    // From a seq: only what came after; pages carry where the next one starts.
    let (_, tail) = events(&app, &id, &customer(), 5).await;
    assert_eq!(
        types(&tail).iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![6, 7]
    );
    let (_, page) = app
        .send(
            EVENTS,
            &[("conversation_id", &id)],
            &agent(),
            None,
            &[("after", "0"), ("limit", "3")],
        )
        .await;
    assert_eq!(
        (
            page["data"]["has_more"].clone(),
            page["data"]["next_after"].clone()
        ),
        (json!(true), json!(3))
    );

    // Every response about the room carries its last_seq.
    let (_, room) = app
        .send(
            "GET /rooms/{room_id}",
            &[("room_id", &id)],
            &customer(),
            None,
            &[],
        )
        .await;
    assert_eq!(room["data"]["last_seq"], 7);
    let (_, list) = app
        .send(
            "GET /chat/conversations/{conversation_id}/messages",
            &[("conversation_id", &id)],
            &customer(),
            None,
            &[],
        )
        .await;
    assert_eq!(list["data"]["last_seq"], 7);
    let (_, inbox) = app
        .send("GET /chat/conversations", &[], &customer(), None, &[])
        .await;
    assert_eq!(inbox["data"]["conversations"][0]["last_seq"], 7, "{inbox}");
    let (_, inbox) = app
        .send(
            "GET /chat/conversations",
            &[],
            &token("u-300", "acme", "customer"),
            None,
            &[],
        )
        .await;
    assert_eq!(
        inbox["data"]["conversations"][0]["last_seq"], 7,
        "the new member's row too"
    );
}

#[tokio::test]
async fn concurrent_posters_on_two_instances_take_every_number_once() {
    let app = Arc::new(TestApp::new().await);
    let id = conversation(&app).await;
    let second = Arc::new(app.instance());
    const POSTERS: usize = 6;
    const POSTS: usize = 5;
    let mut tasks = Vec::new();
    for p in 0..POSTERS {
        let (app, second, id) = (app.clone(), second.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let tok = if p % 2 == 0 { customer() } else { agent() };
            let mut seqs = Vec::new();
            for k in 0..POSTS {
                let body = json!({"content": format!("p{p} k{k}")});
                let key = "POST /chat/conversations/{conversation_id}/messages";
                let (status, body) = match (p + k) % 2 {
                    0 => {
                        app.send(key, &[("conversation_id", &id)], &tok, Some(body), &[])
                            .await
                    }
                    _ => {
                        app.send_on(&second, key, &[("conversation_id", &id)], &tok, Some(body))
                            .await
                    }
                };
                assert_eq!(status, 201, "{body}");
                seqs.push(body["data"]["seq"].as_u64().unwrap());
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.unwrap());
    }
    seqs.sort_unstable();
    let total = (POSTERS * POSTS) as u64;
    assert_eq!(
        seqs,
        (1..=total).collect::<Vec<_>>(),
        "each post its own number"
    );
    let (_, page) = events(&app, &id, &agent(), 0).await;
    let numbers: Vec<u64> = types(&page).iter().map(|(s, _)| *s).collect();
    assert_eq!(
        numbers,
        (1..=total).collect::<Vec<_>>(),
        "no hole, in order"
    );
    // Each event is the message that took its number.
    for event in page["data"]["events"].as_array().unwrap() {
        assert_eq!(event["seq"], event["data"]["seq"]);
    }
}

#[tokio::test]
async fn a_position_past_retention_or_ahead_of_the_room_is_refused() {
    let app = TestApp::new().await;
    let id = conversation(&app).await;
    for k in 0..3 {
        post(&app, &id, &customer(), json!({"content": format!("m{k}")})).await;
    }
    let (status, body) = events(&app, &id, &customer(), 4).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_field"))
    );
    let (status, body) = app
        .send(
            EVENTS,
            &[("conversation_id", &id)],
            &customer(),
            None,
            &[("after", "-1")],
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_field"))
    );

    // The first change expires (TTL has passed; DynamoDB has not swept it yet).
    let pk = keys::room_pk(
        &chat_core::ids::OrgId::parse("acme").unwrap(),
        &chat_core::ids::RoomId::parse(&id).unwrap(),
    );
    app.table
        .client
        .update_item()
        .table_name(&app.table.name)
        .key(keys::PK, chat_core::item::s(&pk))
        .key(keys::SK, chat_core::item::s(keys::event_sk(1)))
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(":past", chat_core::item::n(1))
        .send()
        .await
        .unwrap();
    let (status, body) = events(&app, &id, &customer(), 0).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("cursor_expired")),
        "{body}"
    );
    let (status, body) = events(&app, &id, &customer(), 1).await;
    assert_eq!(status, 200, "later positions still work: {body}");
    assert_eq!(types(&body).len(), 2);
    let (status, body) = events(&app, &id, &customer(), 3).await;
    assert_eq!((status, types(&body).len()), (200, 0), "up to date");
}

#[tokio::test]
async fn a_customer_reply_that_reopens_the_room_is_a_change_of_its_status_too() {
    let app = TestApp::new().await;
    let id = conversation(&app).await;
    post(&app, &id, &customer(), json!({"content": "it leaks"})).await;
    let (status, _) = app
        .send(
            "PUT /chat/conversations/{conversation_id}",
            &[("conversation_id", &id)],
            &agent(),
            Some(json!({"status": "resolved"})),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let reply = post(&app, &id, &customer(), json!({"content": "still leaks"})).await;
    assert_eq!(reply["seq"], 3, "the message takes the next number");
    // An agent's message does not reopen (the room is open): no change of status.
    post(&app, &id, &agent(), json!({"content": "on it"})).await;

    let (_, page) = events(&app, &id, &customer(), 0).await;
    assert_eq!(
        types(&page),
        vec![
            (1, "message.new".to_owned()),
            (2, "room.updated".to_owned()),
            (3, "message.new".to_owned()),
            (4, "room.updated".to_owned()),
            (5, "message.new".to_owned()),
        ]
    );
    assert_eq!(
        page["data"]["events"][3]["data"],
        json!({"status": "open", "snoozed_until": null})
    );
    let room = app
        .expect_get(
            "GET /chat/conversations/{conversation_id}",
            &[("conversation_id", &id)],
            &customer(),
        )
        .await;
    assert_eq!(
        (room["status"].clone(), room["last_seq"].clone()),
        (json!("open"), json!(5))
    );
}
