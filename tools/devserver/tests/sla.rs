//! SLA policies (docs/support.md): a team's targets become each conversation's due
//! times, counted in its business hours; the minute's sweep raises a staff-only
//! `sla.breached` exactly once per missed target, at the first run past its due time,
//! never for a target met, and never outside business hours; analytics report the
//! attainment.

use chat_testkit::token;
use devserver::TestApp;
use serde_json::{Value, json};

fn admin() -> String {
    token("boss", "acme", "admin")
}

fn agent() -> String {
    token("a-1", "acme", "agent")
}

/// `minutes` from now, as the store writes times.
fn later(minutes: i64) -> String {
    chat_core::time::format(chat_core::time::now() + time::Duration::minutes(minutes))
}

async fn team_with_sla(app: &TestApp, extra: Value) -> String {
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
    let mut body = json!({"sla": {"first_response_minutes": 30, "resolution_minutes": 120}});
    if let Value::Object(more) = extra {
        body.as_object_mut().unwrap().extend(more);
    }
    app.expect(
        200,
        "PATCH /teams/{team_id}",
        &[("team_id", &team)],
        &admin(),
        body,
    )
    .await;
    team
}

/// A customer's new conversation: the creation's answer, its `conversation` as the
/// desk sees it (the SLA clock is staff-only; the customer's answer has none).
async fn conversation(app: &TestApp, who: &str, team: &str) -> Value {
    let mut made = app
        .expect(
            201,
            "POST /chat/conversations",
            &[],
            &token(who, "acme", "customer"),
            json!({"title": "Leaky kettle", "team_id": team, "agent_id": "a-1"}),
        )
        .await;
    assert!(made["conversation"]["sla"].is_null(), "{made}");
    let id = made["conversation_id"].as_str().unwrap().to_owned();
    made["conversation"] = app
        .expect_get(
            "GET /chat/conversations/{conversation_id}",
            &[("conversation_id", &id)],
            &agent(),
        )
        .await;
    made
}

async fn breaches(app: &TestApp, conversation: &str, who: &str) -> Vec<Value> {
    let feed = app.events(conversation, who).await;
    feed.into_iter()
        .filter(|e| e["type"] == "sla.breached")
        .collect()
}

#[tokio::test]
async fn a_missed_target_is_raised_once_at_the_first_sweep_past_it_and_a_met_one_never() {
    let app = TestApp::new().await;
    let store = &app.table.runtime.store;
    let team = team_with_sla(&app, json!({})).await;
    let waiting = conversation(&app, "u-1", &team).await;
    let answered = conversation(&app, "u-2", &team).await;
    let sla = &waiting["conversation"]["sla"];
    assert!(sla["first_response_due_at"].as_str().unwrap() > later(29).as_str());
    assert!(sla["resolution_due_at"].as_str().unwrap() > later(119).as_str());
    let (waiting, answered) = (
        waiting["conversation_id"].as_str().unwrap().to_owned(),
        answered["conversation_id"].as_str().unwrap().to_owned(),
    );
    for id in [&waiting, &answered] {
        app.expect(
            201,
            "POST /chat/conversations/{conversation_id}/messages",
            &[("conversation_id", id)],
            &token(
                if *id == waiting { "u-1" } else { "u-2" },
                "acme",
                "customer",
            ),
            json!({"content": "Hello?"}),
        )
        .await;
    }
    app.expect(
        201,
        "POST /chat/conversations/{conversation_id}/messages",
        &[("conversation_id", &answered)],
        &agent(),
        json!({"content": "On it"}),
    )
    .await;

    // Before the due time: nothing.
    let sweep = store.sla_sweep(&later(29)).await.unwrap();
    assert_eq!(sweep.breached, 0, "{sweep:?}");
    // Past it: the waiting one's first response is missed, the answered one met.
    let sweep = store.sla_sweep(&later(31)).await.unwrap();
    assert_eq!((sweep.breached, sweep.met), (1, 1), "{sweep:?}");
    let raised = breaches(&app, &waiting, &agent()).await;
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0]["data"]["target"], "first_response");
    assert_eq!(raised[0]["actor_id"], "system:sla");
    // Exactly once: later sweeps, and sweeps at once, raise nothing more.
    let at = later(32);
    let again = futures_util::future::join_all((0..3).map(|_| store.sla_sweep(&at))).await;
    assert!(
        again.iter().all(|s| s.as_ref().unwrap().breached == 0),
        "{again:?}"
    );
    assert_eq!(breaches(&app, &waiting, &agent()).await.len(), 1);
    // Staff only: the customer's feed shows no breach.
    assert!(
        breaches(&app, &waiting, &token("u-1", "acme", "customer"))
            .await
            .is_empty()
    );

    // Resolution: the answered one is resolved in time, the waiting one is not.
    app.expect(
        200,
        "PUT /chat/conversations/{conversation_id}",
        &[("conversation_id", &answered)],
        &agent(),
        json!({"status": "resolved"}),
    )
    .await;
    let sweep = store.sla_sweep(&later(121)).await.unwrap();
    assert_eq!((sweep.breached, sweep.met), (1, 1), "{sweep:?}");
    let raised = breaches(&app, &waiting, &agent()).await;
    assert_eq!(raised.len(), 2);
    assert_eq!(raised[1]["data"]["target"], "resolution");
    assert!(breaches(&app, &answered, &agent()).await.is_empty());
    // Every timer is done: nothing is left to sweep.
    assert_eq!(store.sla_sweep(&later(100_000)).await.unwrap().timers, 0);

    // Attainment: 2 conversations per target; 1 first response and 1 resolution missed.
    analytics_rollup::Rollup::new(store.clone(), 1)
        .run(json!({"source": "aws.events", "detail-type": "Scheduled Event"}))
        .await
        .unwrap();
    let global = app
        .expect_get("GET /chat/analytics/global", &[], &admin())
        .await;
    assert_eq!(
        global["sla"],
        json!({
            "first_response": {"due": 2, "breached": 1, "attainment": 50.0},
            "resolution": {"due": 2, "breached": 1, "attainment": 50.0},
        }),
        "{global}"
    );
}

#[tokio::test]
async fn targets_count_in_business_hours_and_bad_policies_are_refused() {
    let app = TestApp::new().await;
    let store = &app.table.runtime.store;
    let (hours, _) = devserver::test_app::hours_closed_now();
    let team = team_with_sla(&app, json!({ "business_hours": hours })).await;
    let made = conversation(&app, "u-1", &team).await;
    let id = made["conversation_id"].as_str().unwrap();
    // 30 business minutes: half an hour after the team opens (in 60 to 120 minutes),
    // not from now.
    let due = made["conversation"]["sla"]["first_response_due_at"]
        .as_str()
        .unwrap();
    assert!(
        due > later(89).as_str() && due <= later(151).as_str(),
        "{due}"
    );
    // Outside business hours nothing is raised, though 31 clock minutes passed.
    assert_eq!(store.sla_sweep(&later(31)).await.unwrap().breached, 0);
    assert!(breaches(&app, id, &agent()).await.is_empty());
    assert_eq!(store.sla_sweep(&later(151)).await.unwrap().breached, 1);

    // Bad policies: 422 naming the field, nothing written.
    let before = app.table.items().await;
    for (sla, field) in [
        (
            json!({"first_response_minutes": 0}),
            "sla.first_response_minutes",
        ),
        (
            json!({"resolution_minutes": 43201}),
            "sla.resolution_minutes",
        ),
        (
            json!({"first_response_minutes": "30"}),
            "sla.first_response_minutes",
        ),
        (json!({}), "sla"),
        (
            json!({"first_response_minutes": 30, "breach_after": 5}),
            "sla.breach_after",
        ),
    ] {
        let (status, answer) = app
            .send(
                "PATCH /teams/{team_id}",
                &[("team_id", &team)],
                &admin(),
                Some(json!({ "sla": sla })),
                &[],
            )
            .await;
        assert_eq!(status, 422, "{sla}: {answer}");
        assert_eq!(answer["error"]["details"]["field"], field, "{answer}");
    }
    assert_eq!(app.table.items().await, before, "nothing was written");
}

#[tokio::test]
async fn the_inbox_shows_the_clock_and_the_last_message_to_the_desk_and_only_the_message_to_the_customer()
 {
    let app = TestApp::new().await;
    let team = team_with_sla(&app, json!({})).await;
    let made = conversation(&app, "u-1", &team).await;
    let id = made["conversation_id"].as_str().unwrap().to_owned();
    app.expect(
        201,
        "POST /chat/conversations/{conversation_id}/messages",
        &[("conversation_id", &id)],
        &token("u-1", "acme", "customer"),
        json!({"content": "The kettle leaks"}),
    )
    .await;
    app.expect(
        201,
        "POST /chat/conversations/{conversation_id}/messages",
        &[("conversation_id", &id)],
        &agent(),
        json!({"content": "internal: check the seal", "message_type": "note"}),
    )
    .await;
    let row = |page: Value| page["data"]["conversations"][0].clone();
    let listed = |tok: String, include: Option<&'static str>| {
        let app = &app;
        async move {
            let query: Vec<(&str, &str)> = include.map(|i| ("include", i)).into_iter().collect();
            app.send("GET /chat/conversations", &[], &tok, None, &query)
                .await
        }
    };
    let (status, page) = listed(agent(), Some("last_message")).await;
    assert_eq!(status, 200, "{page}");
    let desk = row(page);
    assert_eq!(
        desk["last_message"]["preview"], "The kettle leaks",
        "{desk}"
    );
    assert_eq!(desk["last_message"]["sender_id"], "u-1");
    assert_eq!(desk["sla"], made["conversation"]["sla"], "{desk}");
    assert_eq!(desk["unread_count"], 1);

    let (_, page) = listed(token("u-1", "acme", "customer"), Some("last_message")).await;
    let customers = row(page);
    // The note is nobody's preview; the clock is the desk's.
    assert_eq!(customers["last_message"]["preview"], "The kettle leaks");
    assert!(customers.get("sla").is_none(), "{customers}");
    assert!(customers.get("labels").is_none(), "{customers}");
    // Not asked: the row as before, one Query.
    let (_, page) = listed(agent(), None).await;
    assert!(row(page).get("last_message").is_none());

    for bad in ["messages", "LAST_MESSAGE", "last_message,sla"] {
        let (status, answer) = app
            .send(
                "GET /chat/conversations",
                &[],
                &agent(),
                None,
                &[("include", bad)],
            )
            .await;
        assert_eq!(status, 422, "{bad:?}: {answer}");
        assert_eq!(answer["error"]["details"]["field"], "include", "{answer}");
    }
}

#[tokio::test]
async fn a_label_with_targets_tightens_a_conversations_clock_and_gives_one_to_a_conversation_without()
 {
    let app = TestApp::new().await;
    let store = &app.table.runtime.store;
    let team = team_with_sla(&app, json!({})).await;
    app.expect(201, "POST /labels", &[], &admin(), json!({"name": "vip"}))
        .await;
    let vip = app
        .expect(
            200,
            "PATCH /labels/{label_name}",
            &[("label_name", "vip")],
            &admin(),
            json!({"sla": {"first_response_minutes": 10, "resolution_minutes": 60}}),
        )
        .await;
    assert_eq!(vip["sla"]["first_response_minutes"], 10, "{vip}");
    let teamed = conversation(&app, "u-1", &team).await;
    let teamed = teamed["conversation_id"].as_str().unwrap().to_owned();
    let alone = app
        .expect(
            201,
            "POST /chat/conversations",
            &[],
            &token("u-2", "acme", "customer"),
            json!({"title": "No team", "agent_id": "a-1"}),
        )
        .await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for id in [&teamed, &alone] {
        let labelled = app
            .expect(
                200,
                "POST /chat/conversations/{conversation_id}/labels",
                &[("conversation_id", id)],
                &agent(),
                json!({"labels": ["vip"]}),
            )
            .await;
        let sla = &labelled["conversation"]["sla"];
        let due = sla["first_response_due_at"].as_str().unwrap();
        assert!(
            due > later(9).as_str() && due <= later(11).as_str(),
            "{sla}"
        );
        let resolution = sla["resolution_due_at"].as_str().unwrap();
        assert!(resolution <= later(61).as_str(), "{sla}");
        // The console hears it with the labels.
        let feed = app.events(id, &agent()).await;
        let updated = feed
            .iter()
            .rev()
            .find(|e| e["type"] == "room.updated")
            .unwrap();
        assert_eq!(
            updated["data"]["sla"]["first_response_due_at"], due,
            "{updated}"
        );
        // Taken off, the label leaves the clock as it is.
        app.expect(
            200,
            "DELETE /chat/conversations/{conversation_id}/labels/{label_name}",
            &[("conversation_id", id), ("label_name", "vip")],
            &agent(),
            json!({}),
        )
        .await;
        let after = app
            .expect_get(
                "GET /chat/conversations/{conversation_id}",
                &[("conversation_id", id)],
                &agent(),
            )
            .await;
        assert_eq!(after["sla"]["first_response_due_at"], due);
    }
    // Both miss their ten minutes: one breach each, at the first sweep past it.
    assert_eq!(store.sla_sweep(&later(9)).await.unwrap().breached, 0);
    assert_eq!(store.sla_sweep(&later(11)).await.unwrap().breached, 2);
    assert_eq!(store.sla_sweep(&later(12)).await.unwrap().breached, 0);
    for id in [&teamed, &alone] {
        assert_eq!(breaches(&app, id, &agent()).await.len(), 1);
    }
    // Put on again after its breach: nothing is raised twice.
    app.expect(
        200,
        "POST /chat/conversations/{conversation_id}/labels",
        &[("conversation_id", &teamed)],
        &agent(),
        json!({"labels": ["vip"]}),
    )
    .await;
    assert_eq!(store.sla_sweep(&later(13)).await.unwrap().breached, 0);

    // Bad changes of a label: 422 naming the field (404 for no such label), nothing
    // written.
    let before = app.table.items().await;
    for (label, body, status, field) in [
        (
            "vip",
            json!({"sla": {"first_response_minutes": 0}}),
            422,
            "sla.first_response_minutes",
        ),
        ("vip", json!({"sla": {}}), 422, "sla"),
        ("vip", json!({"color": "red"}), 422, "color"),
        ("vip", json!({}), 422, "body"),
        ("vip", json!({"name": "other"}), 422, "name"),
        ("nope", json!({"color": "#ffffff"}), 404, ""),
        ("VIP", json!({"color": "#ffffff"}), 404, ""),
    ] {
        let (got, answer) = app
            .send(
                "PATCH /labels/{label_name}",
                &[("label_name", label)],
                &admin(),
                Some(body.clone()),
                &[],
            )
            .await;
        assert_eq!(got, status, "{body}: {answer}");
        if !field.is_empty() {
            assert_eq!(answer["error"]["details"]["field"], field, "{answer}");
        }
    }
    assert_eq!(app.table.items().await, before, "nothing was written");
}
