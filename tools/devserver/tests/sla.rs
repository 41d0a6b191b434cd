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

async fn conversation(app: &TestApp, who: &str, team: &str) -> Value {
    app.expect(
        201,
        "POST /chat/conversations",
        &[],
        &token(who, "acme", "customer"),
        json!({"title": "Leaky kettle", "team_id": team, "agent_id": "a-1"}),
    )
    .await
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
