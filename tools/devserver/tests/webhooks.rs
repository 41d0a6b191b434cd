//! The tenant's webhook endpoints: admins only; the secret is shown once (made or
//! rotated) and never listed; a rotation keeps the previous secret signing for the
//! grace period; URLs must be https to public hosts; tenants never see each other's.

use chat_core::webhooks::{signature_header, verify};
use chat_testkit::token;
use devserver::TestApp;
use serde_json::json;

fn admin() -> String {
    token("a-9", "acme", "admin")
}

#[tokio::test]
async fn an_admin_manages_endpoints_and_sees_each_secret_once() {
    let app = TestApp::new().await;
    let body = json!({"url": "https://crm.example.com/hooks", "event_types": ["message.new", "room.updated"], "description": "CRM"});
    let made = app.expect(201, "POST /webhooks", &[], &admin(), body).await;
    let id = made["id"].as_str().unwrap().to_owned();
    let secret = made["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{made}");
    assert_eq!(made["enabled"], true);

    let listed = app.expect_get("GET /webhooks", &[], &admin()).await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 1);
    let one = app
        .expect_get(
            "GET /webhooks/{webhook_id}",
            &[("webhook_id", &id)],
            &admin(),
        )
        .await;
    for shown in [&listed, &one] {
        assert!(
            !shown.to_string().contains("whsec_"),
            "never listed: {shown}"
        );
    }

    let changed = app
        .send(
            "PATCH /webhooks/{webhook_id}",
            &[("webhook_id", &id)],
            &admin(),
            Some(json!({"enabled": false, "event_types": ["member.added"]})),
            &[],
        )
        .await;
    assert_eq!(changed.0, 200, "{}", changed.1);
    assert_eq!(
        (
            changed.1["data"]["enabled"].clone(),
            changed.1["data"]["event_types"].clone()
        ),
        (json!(false), json!(["member.added"]))
    );

    // Rotation: a new secret, the previous one still signs during the grace period.
    let rotated = app
        .send(
            "POST /webhooks/{webhook_id}/rotate-secret",
            &[("webhook_id", &id)],
            &admin(),
            None,
            &[],
        )
        .await;
    assert_eq!(rotated.0, 200, "{}", rotated.1);
    let fresh = rotated.1["data"]["secret"].as_str().unwrap().to_owned();
    assert_ne!(fresh, secret);
    assert!(
        rotated.1["data"]["previous_secret_expires_at"]
            .as_i64()
            .unwrap()
            > chat_core::time::now().unix_timestamp()
    );
    let stored = app
        .table
        .runtime
        .store
        .get_webhook(
            &chat_core::ids::OrgId::parse("acme").unwrap(),
            &chat_core::ids::WebhookId::parse(&id).unwrap(),
        )
        .await
        .unwrap();
    let now = chat_core::time::now().unix_timestamp();
    let header = signature_header(&stored.active_secrets(now), "msg_1", now, b"{}");
    assert!(
        verify(&fresh, "msg_1", now, now, b"{}", &header),
        "the new secret signs"
    );
    assert!(
        verify(&secret, "msg_1", now, now, b"{}", &header),
        "and the previous, meanwhile"
    );

    let (status, _) = app
        .send(
            "DELETE /webhooks/{webhook_id}",
            &[("webhook_id", &id)],
            &admin(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .send(
            "GET /webhooks/{webhook_id}",
            &[("webhook_id", &id)],
            &admin(),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test]
async fn only_admins_of_the_tenant_reach_its_endpoints_and_urls_must_be_public_https() {
    let app = TestApp::new().await;
    let id = app.webhook().await;
    for who in [
        token("a-1", "acme", "agent"),
        token("u-100", "acme", "customer"),
    ] {
        let (status, body) = app.send("GET /webhooks", &[], &who, None, &[]).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden"))
        );
        let bad = json!({"url": "ftp://x", "event_types": []});
        let (status, _) = app.send("POST /webhooks", &[], &who, Some(bad), &[]).await;
        assert_eq!(status, 403, "refused before the body is read");
    }
    let other = token("a-9", "globex", "admin");
    let (status, _) = app
        .send(
            "GET /webhooks/{webhook_id}",
            &[("webhook_id", &id)],
            &other,
            None,
            &[],
        )
        .await;
    assert_eq!(
        status, 404,
        "another tenant's endpoint does not exist for them"
    );
    let listed = app.expect_get("GET /webhooks", &[], &other).await;
    assert_eq!(listed["webhooks"], json!([]));

    let before = app.table.items().await;
    for (url, field) in [
        ("http://crm.example.com/hooks", "url"),
        ("https://169.254.169.254/latest/meta-data/", "url"),
        ("https://10.0.0.5/hook", "url"),
        ("https://[::1]/hook", "url"),
        ("https://localhost/hook", "url"),
    ] {
        let body = json!({"url": url, "event_types": ["message.new"]});
        let (status, answer) = app
            .send("POST /webhooks", &[], &admin(), Some(body), &[])
            .await;
        assert_eq!(
            (status, answer["error"]["details"]["field"].as_str()),
            (422, Some(field)),
            "{url}"
        );
    }
    let body = json!({"url": "https://crm.example.com/x", "event_types": ["message.sent"]});
    let (status, answer) = app
        .send("POST /webhooks", &[], &admin(), Some(body), &[])
        .await;
    assert_eq!(
        (status, answer["error"]["details"]["field"].as_str()),
        (422, Some("event_types"))
    );
    assert_eq!(app.table.items().await, before, "nothing written");
    // The local stack's own receivers (its tests) may listen on loopback.
    let body = json!({"url": "http://127.0.0.1:9999/hook", "event_types": ["message.new"]});
    app.expect(201, "POST /webhooks", &[], &admin(), body).await;
}

#[tokio::test]
async fn the_tenant_feed_pages_every_rooms_changes_of_its_own_tenant_only() {
    let app = TestApp::new().await;
    let mut rooms = Vec::new();
    for (org, title) in [
        ("acme", "Acme one"),
        ("acme", "Acme two"),
        ("globex", "Globex"),
    ] {
        let customer = token("u-100", org, "customer");
        let made = app
            .expect(
                201,
                "POST /chat/conversations",
                &[],
                &customer,
                json!({"title": title, "agent_id": "a-1"}),
            )
            .await;
        let id = made["conversation_id"].as_str().unwrap().to_owned();
        for k in 0..3 {
            let body = json!({"content": format!("{title} {k}")});
            app.expect(
                201,
                "POST /chat/conversations/{conversation_id}/messages",
                &[("conversation_id", &id)],
                &customer,
                body,
            )
            .await;
        }
        rooms.push(id);
    }
    // Past the settle window, everything has landed.
    tokio::time::sleep(std::time::Duration::from_millis(
        chat_core::store::TENANT_FEED_SETTLE_MS as u64 + 300,
    ))
    .await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let mut query = vec![("limit", "2".to_owned())];
        if let Some(cursor) = &after {
            query.push(("after", cursor.clone()));
        }
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, page) = app.send("GET /events", &[], &admin(), None, &query).await;
        assert_eq!(status, 200, "{page}");
        for event in page["data"]["events"].as_array().unwrap() {
            seen.push((
                event["room_id"].as_str().unwrap().to_owned(),
                event["seq"].as_u64().unwrap(),
            ));
        }
        match page["data"]["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let mut expected: Vec<(String, u64)> = rooms[..2]
        .iter()
        .flat_map(|r| (1..=3).map(move |s| (r.clone(), s)))
        .collect();
    let mut got = seen.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "every acme change once, nothing of globex");
    let (status, body) = app
        .send(
            "GET /events",
            &[],
            &admin(),
            None,
            &[("after", "not-a-cursor")],
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
}
