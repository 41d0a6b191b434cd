//! The audit log as its readers meet it: admins only, one tenant's entries only,
//! filtered and paged as asked, bad filters refused. That every audited route writes
//! its entry in its action's transaction is tests/write_faults.rs (from the route
//! table); that every writing route is classified is tests/routes.rs.

use chat_testkit::token;
use devserver::TestApp;
use serde_json::{Value, json};

async fn audit(app: &TestApp, who: &str, query: &[(&str, &str)]) -> (u16, Value) {
    app.send("GET /admin/audit", &[], who, None, query).await
}

fn actions(page: &Value) -> Vec<String> {
    page["data"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn admins_read_their_tenants_log_filtered_and_paged() {
    let app = TestApp::new().await;
    let admin = token("a-9", "acme", "admin");
    let other_admin = token("a-8", "acme", "admin");
    // Three webhook changes by a-9, a settings change by a-8.
    let hook = app.webhook().await;
    for enabled in [false, true] {
        app.expect(
            200,
            "PATCH /webhooks/{webhook_id}",
            &[("webhook_id", &hook)],
            &admin,
            json!({"enabled": enabled}),
        )
        .await;
    }
    app.expect(
        200,
        "PUT /org/settings",
        &[],
        &other_admin,
        json!({"name": "Acme"}),
    )
    .await;
    // Nothing of globex shows in acme's log, nor acme's in globex's.
    app.expect(
        200,
        "PUT /org/settings",
        &[],
        &token("g-1", "globex", "admin"),
        json!({"name": "Globex"}),
    )
    .await;

    let (status, all) = audit(&app, &admin, &[]).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        actions(&all),
        [
            "org_settings.update",
            "webhook.update",
            "webhook.update",
            "webhook.create"
        ],
        "newest first, acme's only"
    );
    let newest = &all["data"]["entries"][0];
    assert_eq!(newest["actor"], json!({"user_id": "a-8", "role": "admin"}));
    assert_eq!(newest["fields"], json!(["name"]));
    assert_eq!(newest["route"], "PUT /org/settings");
    let update = &all["data"]["entries"][1];
    assert_eq!(update["target"], json!({"webhook_id": hook}));
    assert!(
        !all.to_string().contains("crm.example.com"),
        "values are never logged: {all}"
    );
    let (_, globex) = audit(&app, &token("g-1", "globex", "admin"), &[]).await;
    assert_eq!(actions(&globex), ["org_settings.update"]);

    // Filters.
    let (_, by_actor) = audit(&app, &admin, &[("actor", "a-8")]).await;
    assert_eq!(actions(&by_actor), ["org_settings.update"]);
    let (_, by_action) = audit(&app, &admin, &[("action", "webhook.update")]).await;
    assert_eq!(actions(&by_action).len(), 2);
    let created_at = all["data"]["entries"][3]["at"].as_str().unwrap().to_owned();
    let (_, until_created) = audit(&app, &admin, &[("to", &created_at)]).await;
    assert_eq!(actions(&until_created), ["webhook.create"]);
    let (_, after_created) =
        audit(&app, &admin, &[("from", &newest["at"].as_str().unwrap())]).await;
    assert_eq!(actions(&after_created)[0], "org_settings.update");
    let today = &created_at[..10];
    let (_, today_only) = audit(&app, &admin, &[("from", today), ("to", today)]).await;
    assert_eq!(actions(&today_only).len(), 4);
    let (_, before) = audit(&app, &admin, &[("to", "2020-01-01")]).await;
    assert!(actions(&before).is_empty());

    // Pages: two of two, then none; a cursor of acme's log is nothing to globex.
    let (_, first) = audit(&app, &admin, &[("limit", "2")]).await;
    assert_eq!(actions(&first).len(), 2);
    let cursor = first["data"]["next_cursor"]
        .as_str()
        .expect("more")
        .to_owned();
    let (_, second) = audit(&app, &admin, &[("limit", "2"), ("cursor", &cursor)]).await;
    assert_eq!(
        actions(&second),
        ["webhook.update", "webhook.create"],
        "{second}"
    );
    let (status, borrowed) = audit(
        &app,
        &token("g-1", "globex", "admin"),
        &[("cursor", &cursor)],
    )
    .await;
    assert_eq!(status, 400, "{borrowed}");
}

#[tokio::test]
async fn bad_filters_are_refused_by_name_and_only_admins_read() {
    let app = TestApp::new().await;
    let admin = token("a-9", "acme", "admin");
    let long_actor = "u".repeat(129);
    for (field, value) in [
        ("action", "webhook.DELETE"),
        ("action", "Webhook.delete"),
        ("action", "anything"),
        ("from", "yesterday"),
        ("from", "2026-13-01"),
        ("to", "2026-01-01T25:00:00Z"),
        ("actor", long_actor.as_str()),
        ("limit", "0"),
        ("limit", "101"),
    ] {
        let (status, body) = audit(&app, &admin, &[(field, value)]).await;
        assert!(
            matches!(status, 400 | 422),
            "{field}={value}: {status} {body}"
        );
        assert!(
            body["error"]["details"].to_string().contains(field)
                || body["error"]["message"].to_string().contains(field),
            "{field}={value}: {body}"
        );
    }
    let (status, body) = audit(
        &app,
        &admin,
        &[("from", "2026-02-01"), ("to", "2026-01-01")],
    )
    .await;
    assert_eq!(status, 422, "{body}");
    // Refused before the query is looked at: a customer's and an agent's bad filters
    // are 403 too.
    for who in [
        token("u-100", "acme", "customer"),
        token("a-1", "acme", "agent"),
    ] {
        let (status, body) = audit(&app, &who, &[("action", "nope")]).await;
        assert_eq!(status, 403, "{body}");
    }
}
