//! Business hours and the auto-reply (docs/support.md): a team's hours in its time
//! zone; a conversation routed to it outside them gets one auto-reply from the
//! system, numbered in its feed, that says when the team is back and answers nobody
//! (no response time, no first response); everyone of the tenant may ask whether the
//! team is open; the hours are admins' to set and every other spelling is refused.

use chat_testkit::token;
use devserver::TestApp;
use serde_json::{Value, json};

fn admin() -> String {
    token("boss", "acme", "admin")
}

fn customer() -> String {
    token("u-1", "acme", "customer")
}

fn always_open() -> Value {
    let span = json!([["00:00", "24:00"]]);
    let week: serde_json::Map<String, Value> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| ((*d).to_owned(), span.clone()))
        .collect();
    json!({"time_zone": "Europe/Berlin", "week": week})
}

async fn set_hours(app: &TestApp, team: &str, hours: Value) -> (u16, Value) {
    app.send(
        "PATCH /teams/{team_id}",
        &[("team_id", team)],
        &admin(),
        Some(json!({ "business_hours": hours })),
        &[],
    )
    .await
}

async fn messages(app: &TestApp, conversation: &str) -> Vec<Value> {
    let (_, page) = app
        .send(
            "GET /chat/conversations/{conversation_id}/messages",
            &[("conversation_id", conversation)],
            &customer(),
            None,
            &[],
        )
        .await;
    page["data"]["messages"].as_array().unwrap().clone()
}

#[tokio::test]
async fn outside_its_hours_a_team_answers_once_with_when_it_is_back() {
    let app = TestApp::new().await;
    let team = app
        .expect(
            201,
            "POST /teams",
            &[],
            &admin(),
            json!({"name": "Kettles"}),
        )
        .await["team_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (hours, opens) = devserver::test_app::hours_closed_now();
    let (status, body) = set_hours(&app, &team, hours).await;
    assert_eq!(status, 200, "{body}");
    // Anyone of the tenant may ask; the answer says when it is back.
    let asked = app
        .expect_get(
            "GET /teams/{team_id}/hours",
            &[("team_id", &team)],
            &customer(),
        )
        .await;
    assert_eq!(asked["open"], false, "{asked}");
    let back_at = asked["back_at"].as_str().unwrap().to_owned();
    assert!(
        back_at.contains(&format!("T{opens}")),
        "{back_at} opens at {opens}"
    );
    assert!(
        asked.get("agents").is_none(),
        "only its name and hours: {asked}"
    );
    let (status, _) = app
        .send(
            "GET /teams/{team_id}/hours",
            &[("team_id", &team)],
            &token("u-1", "globex", "customer"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404, "another tenant's team");

    let made = app
        .expect(
            201,
            "POST /chat/conversations",
            &[],
            &customer(),
            json!({"title": "Kettle", "team_id": team}),
        )
        .await;
    assert_eq!(made["routing"]["team_open"], false);
    assert_eq!(made["routing"]["back_at"], back_at.as_str());
    let conversation = made["conversation_id"].as_str().unwrap().to_owned();
    let posted = messages(&app, &conversation).await;
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0]["sender"], "system");
    assert_eq!(posted[0]["sender_id"], "system:auto-reply");
    let text = posted[0]["content"].as_str().unwrap();
    assert!(
        text.contains("Kettles is away") && text.contains(&opens),
        "{text}"
    );
    // Numbered in the feed like any message.
    let feed = app.events(&conversation, &customer()).await;
    assert_eq!(feed[0]["type"], "message.new");
    assert_eq!(feed[0]["seq"], 1);
    // Once: the customer writes, no second auto-reply; and it answered nobody: the
    // customer is still waiting, with no first response.
    app.expect(
        201,
        "POST /chat/conversations/{conversation_id}/messages",
        &[("conversation_id", &conversation)],
        &customer(),
        json!({"content": "Hello?"}),
    )
    .await;
    assert_eq!(messages(&app, &conversation).await.len(), 2);
    let room = app
        .table
        .runtime
        .store
        .get_room(
            &chat_core::ids::OrgId::parse("acme").unwrap(),
            &chat_core::ids::RoomId::parse(&conversation).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(room.awaiting_since.is_some());
    assert!(room.first_response_at.is_none());

    // Open: no auto-reply. No hours at all: always open.
    for hours in [always_open(), Value::Null] {
        let (status, _) = set_hours(&app, &team, hours).await;
        assert_eq!(status, 200);
        let made = app
            .expect(
                201,
                "POST /chat/conversations",
                &[],
                &customer(),
                json!({"title": "Kettle", "team_id": team}),
            )
            .await;
        assert_eq!(made["routing"]["team_open"], true);
        assert!(made["routing"]["back_at"].is_null());
        let id = made["conversation_id"].as_str().unwrap();
        assert!(messages(&app, id).await.is_empty());
    }
}

#[tokio::test]
async fn hours_are_admins_to_set_and_every_other_spelling_is_refused() {
    let app = TestApp::new().await;
    let team = app
        .expect(
            201,
            "POST /teams",
            &[],
            &admin(),
            json!({"name": "Kettles"}),
        )
        .await["team_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = app.table.items().await;
    let (status, _) = app
        .send(
            "PATCH /teams/{team_id}",
            &[("team_id", &team)],
            &token("a-1", "acme", "agent"),
            Some(json!({"business_hours": always_open()})),
            &[],
        )
        .await;
    assert_eq!(status, 403);
    let week = |spans: Value| json!({"time_zone": "UTC", "week": {"mon": spans}});
    for (hours, field) in [
        (
            json!({"time_zone": "Mars/Olympus", "week": {}}),
            "business_hours.time_zone",
        ),
        (
            json!({"time_zone": "utc ", "week": {}}),
            "business_hours.time_zone",
        ),
        (
            json!({"time_zone": "UTC", "week": {"monday": []}}),
            "business_hours.week",
        ),
        (week(json!([["9:00", "17:00"]])), "business_hours.week.mon"),
        (week(json!([["17:00", "09:00"]])), "business_hours.week.mon"),
        (
            week(json!([["09:00", "12:00"], ["11:00", "13:00"]])),
            "business_hours.week.mon",
        ),
        (week(json!([["09:00", "24:30"]])), "business_hours.week.mon"),
        (
            json!({"time_zone": "UTC", "week": {}, "holidays": ["2026-02-30"]}),
            "business_hours.holidays",
        ),
    ] {
        let (status, answer) = set_hours(&app, &team, hours.clone()).await;
        assert_eq!(status, 422, "{hours}: {answer}");
        assert_eq!(answer["error"]["details"]["field"], field, "{answer}");
    }
    for body in [
        json!({}),
        json!({"business_hours": always_open(), "open": true}),
    ] {
        let (status, _) = app
            .send(
                "PATCH /teams/{team_id}",
                &[("team_id", &team)],
                &admin(),
                Some(body),
                &[],
            )
            .await;
        assert_eq!(status, 422);
    }
    assert_eq!(app.table.items().await, before, "nothing was written");
}
