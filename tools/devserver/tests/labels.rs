//! Labels (docs/support.md): admins keep the tenant's list, staff put them on support
//! conversations and filter the inbox by them, analytics count them; customers never
//! see one (answers, inbox rows, the feed), and another tenant's labels do not exist.

use chat_testkit::token;
use devserver::TestApp;
use serde_json::{Value, json};

fn admin() -> String {
    token("boss", "acme", "admin")
}

fn agent() -> String {
    token("a-1", "acme", "agent")
}

fn customer() -> String {
    token("u-1", "acme", "customer")
}

async fn label(app: &TestApp, conversation: &str, labels: Value) -> (u16, Value) {
    app.send(
        "POST /chat/conversations/{conversation_id}/labels",
        &[("conversation_id", conversation)],
        &agent(),
        Some(json!({ "labels": labels })),
        &[],
    )
    .await
}

async fn inbox(app: &TestApp, who: &str, label: &str) -> Vec<Value> {
    let (status, body) = app
        .send(
            "GET /chat/conversations",
            &[],
            who,
            None,
            &[("label", label), ("limit", "50")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["conversations"].as_array().unwrap().clone()
}

#[tokio::test]
async fn staff_label_conversations_and_filter_by_them_customers_never_see_them() {
    let app = TestApp::new().await;
    for name in ["vip", "billing", "refund"] {
        app.expect(201, "POST /labels", &[], &admin(), json!({ "name": name }))
            .await;
    }
    let (status, _) = app
        .send(
            "POST /labels",
            &[],
            &admin(),
            Some(json!({"name": "vip"})),
            &[],
        )
        .await;
    assert_eq!(status, 409, "a label exists once");
    let first = app
        .conversation(&customer(), json!({"title": "Invoice", "agent_id": "a-1"}))
        .await;
    let second = app
        .conversation(&customer(), json!({"title": "Refund", "agent_id": "a-1"}))
        .await;
    let (status, done) = label(&app, &first, json!(["vip", "billing", "vip"])).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["data"]["labels"], json!(["billing", "vip"]));
    label(&app, &second, json!(["refund"])).await;
    // The agent's inbox by label; the row says its labels.
    let vip = inbox(&app, &agent(), "vip").await;
    assert_eq!(vip.len(), 1);
    assert_eq!(vip[0]["conversation_id"], first.as_str());
    assert_eq!(vip[0]["labels"], json!(["billing", "vip"]));
    assert_eq!(inbox(&app, &agent(), "refund").await.len(), 1);
    assert!(inbox(&app, &agent(), "nothing-here").await.is_empty());
    // The customer: not in their rows, not in the conversation, not a filter.
    let (_, rows) = app
        .send("GET /chat/conversations", &[], &customer(), None, &[])
        .await;
    for row in rows["data"]["conversations"].as_array().unwrap() {
        assert!(row.get("labels").is_none(), "{row}");
    }
    let mine = app
        .expect_get(
            "GET /chat/conversations/{conversation_id}",
            &[("conversation_id", &first)],
            &customer(),
        )
        .await;
    assert!(mine["labels"].is_null(), "{mine}");
    let (status, _) = app
        .send(
            "GET /chat/conversations",
            &[],
            &customer(),
            None,
            &[("label", "vip")],
        )
        .await;
    assert_eq!(status, 403);
    // The feed: staff see the labels change; the customer's feed skips it.
    let staff_events = app.events(&first, &agent()).await;
    assert!(
        staff_events.iter().any(
            |e| e["type"] == "room.updated" && e["data"]["labels"] == json!(["billing", "vip"])
        ),
        "{staff_events:?}"
    );
    let customer_events = app.events(&first, &customer()).await;
    assert!(
        !serde_json::to_string(&customer_events)
            .unwrap()
            .contains("billing"),
        "{customer_events:?}"
    );
    // Taken off: the filter no longer finds it; taking off what is not there is 404.
    app.expect(
        200,
        "DELETE /chat/conversations/{conversation_id}/labels/{label_name}",
        &[("conversation_id", &first), ("label_name", "vip")],
        &agent(),
        json!(null),
    )
    .await;
    assert!(inbox(&app, &agent(), "vip").await.is_empty());
    assert_eq!(inbox(&app, &agent(), "billing").await.len(), 1);
    let (status, _) = app
        .send(
            "DELETE /chat/conversations/{conversation_id}/labels/{label_name}",
            &[("conversation_id", &first), ("label_name", "vip")],
            &agent(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404);
    // Analytics: conversations given each label today, after the rollup.
    analytics_rollup::Rollup::new(app.table.runtime.store.clone(), 1)
        .run(json!({"source": "aws.events", "detail-type": "Scheduled Event"}))
        .await
        .unwrap();
    let global = app
        .expect_get("GET /chat/analytics/global", &[], &admin())
        .await;
    assert_eq!(
        global["conversations_by_label"],
        json!({"billing": 1, "refund": 1, "vip": 1}),
        "{global}"
    );
}

#[tokio::test]
async fn labels_refuse_every_other_spelling_other_tenants_and_customers_and_write_nothing() {
    let app = TestApp::new().await;
    app.expect(201, "POST /labels", &[], &admin(), json!({"name": "vip"}))
        .await;
    app.expect(
        201,
        "POST /labels",
        &[],
        &token("boss", "globex", "admin"),
        json!({"name": "gold"}),
    )
    .await;
    let conversation = app
        .conversation(&customer(), json!({"title": "Invoice", "agent_id": "a-1"}))
        .await;
    let group = app
        .room(
            &customer(),
            json!({"type": "group", "name": "Team", "participant_ids": ["u-2"]}),
        )
        .await;
    let before = app.table.items().await;
    // Customers: refused before any body is read, also a bad one.
    for (key, params, body) in [
        ("POST /labels", vec![], json!({"name": "NOPE"})),
        (
            "POST /chat/conversations/{conversation_id}/labels",
            vec![("conversation_id", conversation.as_str())],
            json!({"labels": 5}),
        ),
    ] {
        let (status, _) = app.send(key, &params, &customer(), Some(body), &[]).await;
        assert_eq!(status, 403, "{key}");
    }
    for (key, params) in [
        ("GET /labels", vec![]),
        (
            "DELETE /chat/conversations/{conversation_id}/labels/{label_name}",
            vec![
                ("conversation_id", conversation.as_str()),
                ("label_name", "vip"),
            ],
        ),
        ("DELETE /labels/{label_name}", vec![("label_name", "vip")]),
    ] {
        let (status, _) = app.send(key, &params, &customer(), None, &[]).await;
        assert_eq!(status, 403, "{key}");
    }
    // Agents do not change the list.
    let (status, _) = app
        .send(
            "POST /labels",
            &[],
            &agent(),
            Some(json!({"name": "mine"})),
            &[],
        )
        .await;
    assert_eq!(status, 403);
    // Every other spelling of a label's name or color.
    for body in [
        json!({"name": "VIP2"}),
        json!({"name": "v i p"}),
        json!({"name": ""}),
        json!({"name": "x".repeat(41)}),
        json!({"name": "étiquette"}),
        json!({"name": "ok", "color": "red"}),
        json!({"name": "ok", "color": "#12345"}),
        json!({"name": "ok", "colour": "#123456"}),
        json!({"name": 7}),
    ] {
        let (status, answer) = app
            .send("POST /labels", &[], &admin(), Some(body.clone()), &[])
            .await;
        assert_eq!(status, 422, "{body}: {answer}");
    }
    // Labels a conversation may not take: unknown, another tenant's, misspelt, too
    // many at once, none; and a team room is not a conversation to label.
    for labels in [
        json!(["nope"]),
        json!(["gold"]),
        json!(["VIP"]),
        json!(["vip "]),
        json!([]),
        json!(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"]),
        json!("vip"),
    ] {
        let (status, answer) = label(&app, &conversation, labels.clone()).await;
        assert_eq!(status, 422, "{labels}: {answer}");
    }
    let (status, answer) = label(&app, &group, json!(["vip"])).await;
    assert!(status == 404 || status == 422, "{answer}");
    // Another tenant's staff: the conversation does not exist for them.
    let (status, _) = app
        .send(
            "POST /chat/conversations/{conversation_id}/labels",
            &[("conversation_id", &conversation)],
            &token("a-1", "globex", "agent"),
            Some(json!({"labels": ["gold"]})),
            &[],
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .send(
            "DELETE /labels/{label_name}",
            &[("label_name", "gold")],
            &admin(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404, "globex's label is not acme's to delete");
    assert_eq!(app.table.items().await, before, "nothing was written");
    // Only acme's list, to acme.
    let listed = app.expect_get("GET /labels", &[], &agent()).await;
    assert_eq!(listed["labels"].as_array().unwrap().len(), 1);
    assert_eq!(listed["labels"][0]["name"], "vip");
}

#[tokio::test]
async fn a_burst_of_labellings_never_puts_more_than_twenty_on_a_conversation() {
    let app = TestApp::new().await;
    let names: Vec<String> = (0..24).map(|i| format!("l{i:02}")).collect();
    for name in &names {
        app.expect(201, "POST /labels", &[], &admin(), json!({ "name": name }))
            .await;
    }
    let conversation = app
        .conversation(&customer(), json!({"title": "Invoice", "agent_id": "a-1"}))
        .await;
    for chunk in [&names[0..10], &names[10..18]] {
        let (status, _) = label(&app, &conversation, json!(chunk)).await;
        assert_eq!(status, 200);
    }
    // Three at once, each adding two different labels to 18: one fits.
    let pairs = [&names[18..20], &names[20..22], &names[22..24]];
    let answers = futures_util::future::join_all(
        pairs
            .iter()
            .map(|pair| label(&app, &conversation, json!(pair))),
    )
    .await;
    let fitted = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(fitted, 1, "{answers:?}");
    assert!(
        answers.iter().all(|(s, _)| *s == 200 || *s == 422),
        "{answers:?}"
    );
    let shown = app
        .expect_get(
            "GET /chat/conversations/{conversation_id}",
            &[("conversation_id", &conversation)],
            &agent(),
        )
        .await;
    assert_eq!(shown["labels"].as_array().unwrap().len(), 20, "{shown}");
}
