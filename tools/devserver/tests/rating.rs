//! Customer satisfaction (CSAT, docs/support.md): the customer rates a resolution once,
//! 1 to 5 with a comment; every other spelling, anyone else and an unresolved
//! conversation are refused with nothing written; a reopened and resolved again
//! conversation is rated again; analytics report it per day, agent and team.

use chat_testkit::token;
use devserver::TestApp;
use serde_json::{Value, json};

fn customer() -> String {
    token("u-1", "acme", "customer")
}

fn agent() -> String {
    token("a-1", "acme", "agent")
}

async fn rate(app: &TestApp, conversation: &str, who: &str, body: Value) -> (u16, Value) {
    app.send(
        "POST /chat/conversations/{conversation_id}/rating",
        &[("conversation_id", conversation)],
        who,
        Some(body),
        &[],
    )
    .await
}

async fn set_status(app: &TestApp, conversation: &str, status: &str) {
    app.expect(
        200,
        "PUT /chat/conversations/{conversation_id}",
        &[("conversation_id", conversation)],
        &agent(),
        json!({ "status": status }),
    )
    .await;
}

#[tokio::test]
async fn a_resolution_is_rated_once_by_its_customer_and_counted_per_day_agent_and_team() {
    let app = TestApp::new().await;
    let admin = token("boss", "acme", "admin");
    let team = app.team(&admin, "Kettles").await;
    app.expect(
        200,
        "PUT /teams/{team_id}/agents/{user_id}",
        &[("team_id", &team), ("user_id", "a-1")],
        &admin,
        json!({"capacity": 5}),
    )
    .await;
    app.expect(
        200,
        "PUT /agents/me/availability",
        &[],
        &agent(),
        json!({"availability": "online"}),
    )
    .await;
    let conversation = app
        .conversation(
            &customer(),
            json!({"title": "Leaky kettle", "team_id": team}),
        )
        .await;
    // Not resolved yet: refused, nothing written.
    let before = app.table.items().await;
    let (status, answer) = rate(&app, &conversation, &customer(), json!({"rating": 5})).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "not_resolved");
    assert_eq!(app.table.items().await, before);

    set_status(&app, &conversation, "resolved").await;
    let before = app.table.items().await;
    // Every other spelling of a rating, and a comment too long: 422, nothing written.
    for body in [
        json!({"rating": 0}),
        json!({"rating": 6}),
        json!({"rating": "5"}),
        json!({"rating": 4.5}),
        json!({"rating": 5.0}),
        json!({"rating": true}),
        json!({"rating": null}),
        json!({"rating": -1}),
        json!({}),
        json!({"rating": 5, "stars": 5}),
        json!({"rating": 5, "comment": "x".repeat(1001)}),
    ] {
        let (status, answer) = rate(&app, &conversation, &customer(), body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
    }
    // Anyone but its customer: the agent is refused; another customer and another
    // tenant do not see it.
    let (status, _) = rate(&app, &conversation, &agent(), json!({"rating": 5})).await;
    assert_eq!(status, 403);
    for stranger in [
        token("u-2", "acme", "customer"),
        token("u-1", "globex", "customer"),
    ] {
        let (status, _) = rate(&app, &conversation, &stranger, json!({"rating": 5})).await;
        assert_eq!(status, 404);
    }
    assert_eq!(app.table.items().await, before, "nothing was written");

    // Once per resolution, whatever the burst: one of six at once is taken.
    let who = customer();
    let burst: Vec<(u16, Value)> = futures_util::future::join_all((0..6).map(|_| {
        rate(
            &app,
            &conversation,
            &who,
            json!({"rating": 5, "comment": "  Quick and kind  "}),
        )
    }))
    .await;
    let taken: Vec<&Value> = burst
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, a)| a)
        .collect();
    assert_eq!(taken.len(), 1, "{burst:?}");
    assert_eq!(taken[0]["data"]["rating"]["score"], 5);
    assert_eq!(taken[0]["data"]["rating"]["comment"], "Quick and kind");
    for (status, answer) in burst.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(*status, 409, "{answer}");
        assert_eq!(answer["error"]["code"], "already_rated");
    }
    let shown = app
        .expect_get(
            "GET /chat/conversations/{conversation_id}",
            &[("conversation_id", &conversation)],
            &customer(),
        )
        .await;
    assert_eq!(shown["rating"]["score"], 5, "{shown}");

    // Reopened by the customer and resolved again: a new resolution to rate.
    app.expect(
        201,
        "POST /chat/conversations/{conversation_id}/messages",
        &[("conversation_id", &conversation)],
        &customer(),
        json!({"content": "It leaks again"}),
    )
    .await;
    let (status, _) = rate(&app, &conversation, &customer(), json!({"rating": 2})).await;
    assert_eq!(status, 409, "open again: nothing to rate");
    set_status(&app, &conversation, "resolved").await;
    let (status, _) = rate(&app, &conversation, &customer(), json!({"rating": 3})).await;
    assert_eq!(status, 201);

    // The feed carries each rating.
    let feed = app.events(&conversation, &customer()).await;
    let scores: Vec<&Value> = feed
        .iter()
        .filter_map(|e| e["data"].get("rating").map(|r| &r["score"]))
        .collect();
    assert_eq!(scores, [&json!(5), &json!(3)]);

    // Analytics: 2 ratings averaging 4, for the day, the agent and the team.
    analytics_rollup::Rollup::new(app.table.runtime.store.clone(), 1)
        .run(json!({"source": "aws.events", "detail-type": "Scheduled Event"}))
        .await
        .unwrap();
    let global = app
        .expect_get("GET /chat/analytics/global", &[], &admin)
        .await;
    assert_eq!(
        global["csat"],
        json!({"average": 4.0, "ratings": 2}),
        "{global}"
    );
    assert_eq!(
        global["csat_by_team"][&team],
        json!({"average": 4.0, "ratings": 2})
    );
    let a1 = global["top_performing_agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent_id"] == "a-1")
        .unwrap();
    assert_eq!(a1["csat"], json!({"average": 4.0, "ratings": 2}));
    let today = analytics_rollup::format_day(chat_core::time::now().date());
    let (_, dashboard) = app
        .send(
            "GET /chat/analytics/dashboard",
            &[],
            &agent(),
            None,
            &[("from", &today), ("to", &today)],
        )
        .await;
    let dashboard = &dashboard["data"];
    assert_eq!(dashboard["me"]["csat"]["ratings"], 2, "{dashboard}");
    let today = dashboard["daily_stats"].as_array().unwrap().last().unwrap();
    assert_eq!(today["csat_average"], 4.0, "{today}");
}
