//! #22: rooms of any size. A room of 10,000 members made with bulk adds: a post writes
//! the same few items whatever the room holds, unread counts and read markers stay
//! exact for every member (computed from the room's count and each row's position),
//! inbox pages mix large and small rooms, a removed member loses the room at once,
//! and concurrent posters and readers lose and double nothing. Each test runs on a
//! DynamoDB Local of its own: tens of thousands of items slow the shared one down for
//! the tests after them.

use chat_core::model::MAX_MEMBERS;
use chat_testkit::{OwnDynamo, TestTable, token};
use devserver::TestApp;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

fn member(i: usize) -> String {
    format!("m-{i}")
}

fn tok(i: usize) -> String {
    token(&member(i), "acme", "customer")
}

async fn post(app: &TestApp, room: &str, who: usize, text: &str) -> Value {
    app.expect(
        201,
        "POST /rooms/{room_id}/messages",
        &[("room_id", room)],
        &tok(who),
        json!({"content": text}),
    )
    .await
}

/// `who`'s inbox row of `room` (conversations list of all room types).
async fn row(app: &TestApp, who: usize, room: &str) -> Option<Value> {
    let (status, body) = app
        .send(
            "GET /chat/conversations",
            &[],
            &tok(who),
            None,
            &[("limit", "100")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == room)
        .cloned()
}

async fn unread(app: &TestApp, who: usize, room: &str) -> u64 {
    row(app, who, room)
        .await
        .unwrap_or_else(|| panic!("{} lists the room", member(who)))["unread_count"]
        .as_u64()
        .unwrap()
}

/// A group of `size` members: m-0 starts it with 9 others, the rest come in bulk
/// adds of 100 (the first of which makes it large).
async fn room_of(app: &TestApp, size: usize) -> String {
    let first: Vec<String> = (1..10.min(size)).map(member).collect();
    let made = app
        .expect(
            201,
            "POST /rooms",
            &[],
            &tok(0),
            json!({"type": "group", "name": format!("{size} members"), "participant_ids": first}),
        )
        .await;
    let room = made["id"].as_str().unwrap().to_owned();
    let mut next = 10.min(size);
    while next < size {
        let batch: Vec<String> = (next..(next + 100).min(size)).map(member).collect();
        let added = app
            .expect(
                201,
                "POST /rooms/{room_id}/members",
                &[("room_id", &room)],
                &tok(0),
                json!({"user_ids": batch}),
            )
            .await;
        assert_eq!(added["added"].as_array().unwrap().len(), batch.len());
        next += batch.len();
    }
    room
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_room_of_ten_thousand_members_works_end_to_end() {
    let dynamo = OwnDynamo::start(None);
    let app = TestApp::on(
        TestTable::at(&dynamo.endpoint()).await,
        messages::ai::Ai::off(),
    );
    let room = room_of(&app, MAX_MEMBERS).await;
    let shown = app
        .expect_get("GET /rooms/{room_id}", &[("room_id", &room)], &tok(9_999))
        .await;
    assert_eq!(
        (shown["member_count"].as_u64(), shown["large"].as_bool()),
        (Some(10_000), Some(true))
    );

    // The limit holds: refused, and the would-be member has no row.
    let (status, body) = app
        .send(
            "POST /rooms/{room_id}/members",
            &[("room_id", &room)],
            &tok(0),
            Some(json!({"user_id": "m-10000"})),
            &[],
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("room_full")),
        "{body}"
    );
    let (status, _) = app
        .send(
            "GET /rooms/{room_id}",
            &[("room_id", &room)],
            &token("m-10000", "acme", "customer"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404, "nothing written: no row");

    // A post writes the same few items as in a room of two: no other member's row.
    let items_before = app.table.items().await;
    post(&app, &room, 5, "hello ten thousand").await;
    let items_after = app.table.items().await;
    let changed = items_after
        .iter()
        .filter(|item| !items_before.contains(item))
        .count();
    assert!(changed <= 8, "a post wrote {changed} items");

    // Unread counts of a sample of members, exact; the sender's own is 0.
    post(&app, &room, 7_000, "and another").await;
    for who in [0, 1, 39, 40, 41, 4_321, 9_999] {
        assert_eq!(unread(&app, who, &room).await, 2, "{}", member(who));
    }
    assert_eq!(unread(&app, 5, &room).await, 1, "m-5 sent the first");
    assert_eq!(unread(&app, 7_000, &room).await, 0, "m-7000 sent the last");

    // A read marker, then one more message.
    let read = app
        .expect(
            200,
            "POST /rooms/{room_id}/read",
            &[("room_id", &room)],
            &tok(4_321),
            json!({}),
        )
        .await;
    assert_eq!(read["unread_count"], 0);
    post(&app, &room, 9_999, "third").await;
    assert_eq!(unread(&app, 4_321, &room).await, 1);
    assert_eq!(unread(&app, 41, &room).await, 3);

    // A member of a small room too: the inbox page has both, each counted right.
    let small = app
        .expect(
            201,
            "POST /rooms",
            &[],
            &tok(41),
            json!({"type": "group", "name": "Small", "participant_ids": ["m-42"]}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    post(&app, &small, 42, "in the small room").await;
    assert_eq!(unread(&app, 41, &small).await, 1);
    assert_eq!(unread(&app, 41, &room).await, 3);

    // Members are listed a page at a time, all of them once.
    let mut listed = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "100".to_owned())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, page) = app
            .send(
                "GET /rooms/{room_id}/members",
                &[("room_id", &room)],
                &tok(3),
                None,
                &query,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        for m in page["data"]["members"].as_array().unwrap() {
            assert!(listed.insert(m["user_id"].as_str().unwrap().to_owned()));
        }
        match page["data"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(listed.len(), 10_000);

    // A removed member loses the room at once, everywhere.
    let (status, _) = app
        .send(
            "DELETE /rooms/{room_id}/members/{user_id}",
            &[("room_id", &room), ("user_id", "m-9998")],
            &tok(0),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let gone = app
        .send(
            "GET /rooms/{room_id}",
            &[("room_id", &room)],
            &tok(9_998),
            None,
            &[],
        )
        .await;
    assert_eq!(gone.0, 404);
    let (status, _) = app
        .send(
            "POST /rooms/{room_id}/messages",
            &[("room_id", &room)],
            &tok(9_998),
            Some(json!({"content": "still here?"})),
            &[],
        )
        .await;
    assert_eq!(status, 404);
    assert!(row(&app, 9_998, &room).await.is_none());
    let shown = app
        .expect_get("GET /rooms/{room_id}", &[("room_id", &room)], &tok(0))
        .await;
    assert_eq!(shown["member_count"], 9_999);
    // Someone who never was a member sees nothing of it.
    let (status, _) = app
        .send(
            "GET /rooms/{room_id}/messages",
            &[("room_id", &room)],
            &token("m-20000", "acme", "customer"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_posters_and_readers_in_a_large_room_lose_and_double_nothing() {
    let dynamo = OwnDynamo::start(None);
    let app = Arc::new(TestApp::on(
        TestTable::at(&dynamo.endpoint()).await,
        messages::ai::Ai::off(),
    ));
    let room = room_of(&app, 300).await;
    let posters = [10usize, 120, 250, 299];
    let per_poster = 10;
    let mut tasks = Vec::new();
    for poster in posters {
        let (app, room) = (app.clone(), room.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_poster {
                let mut answer = app
                    .send(
                        "POST /rooms/{room_id}/messages",
                        &[("room_id", &room)],
                        &tok(poster),
                        Some(json!({"content": format!("{poster} says {i}")})),
                        &[],
                    )
                    .await;
                // Posts into one room go one after another; a client retries a 503.
                for _ in 0..5 {
                    if answer.0 != 503 {
                        break;
                    }
                    answer = app
                        .send(
                            "POST /rooms/{room_id}/messages",
                            &[("room_id", &room)],
                            &tok(poster),
                            Some(json!({"content": format!("{poster} says {i}")})),
                            &[],
                        )
                        .await;
                }
                assert_eq!(answer.0, 201, "{}", answer.1);
            }
        }));
    }
    for reader in [50usize, 51] {
        let (app, room) = (app.clone(), room.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                let (status, _) = app
                    .send(
                        "POST /rooms/{room_id}/read",
                        &[("room_id", &room)],
                        &tok(reader),
                        Some(json!({})),
                        &[],
                    )
                    .await;
                assert!(status == 200 || status == 503, "{status}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = posters.len() * per_poster;
    let (_, page) = app
        .send(
            "GET /rooms/{room_id}/messages",
            &[("room_id", &room)],
            &tok(1),
            None,
            &[("limit", "100")],
        )
        .await;
    let texts: BTreeSet<String> = page["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts.len(), total, "each message once");
    // Who read nothing has every message unread; each poster none after their last
    // but the others' later ones — at most all but their own.
    assert_eq!(unread(&app, 1, &room).await, total as u64);
    assert_eq!(unread(&app, 200, &room).await, total as u64);
    for poster in posters {
        assert!(unread(&app, poster, &room).await < total as u64);
    }
    // A reader who reads after the last post has none.
    app.expect(
        200,
        "POST /rooms/{room_id}/read",
        &[("room_id", &room)],
        &tok(50),
        json!({}),
    )
    .await;
    assert_eq!(unread(&app, 50, &room).await, 0);
}
