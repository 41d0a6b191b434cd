//! Canned responses (docs/support.md): the tenant's are admins' to keep, each agent's
//! own are theirs alone; staff find both by short-code prefix, filled in from a
//! conversation (the customer's and the agent's profiles); customers and other
//! tenants see none, and every other spelling is refused with nothing written.

use chat_testkit::token;
use devserver::TestApp;
use serde_json::{Value, json};

fn admin() -> String {
    token("boss", "acme", "admin")
}

fn agent(id: &str) -> String {
    token(id, "acme", "agent")
}

async fn put(app: &TestApp, key: &str, code: &str, who: &str, content: &str) -> (u16, Value) {
    app.send(
        key,
        &[("short_code", code)],
        who,
        Some(json!({ "content": content })),
        &[],
    )
    .await
}

async fn find(app: &TestApp, who: &str, query: &[(&str, &str)]) -> Vec<Value> {
    let (status, body) = app
        .send("GET /canned-responses", &[], who, None, query)
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["canned_responses"].as_array().unwrap().clone()
}

const TENANT: &str = "PUT /canned-responses/{short_code}";
const OWN: &str = "PUT /me/canned-responses/{short_code}";

#[tokio::test]
async fn staff_find_theirs_and_the_tenants_by_prefix_filled_in_from_the_conversation() {
    let app = TestApp::new().await;
    let (status, _) = put(
        &app,
        TENANT,
        "thanks",
        &admin(),
        "Thanks {{customer.name}}, {{ agent.name }} here about {{conversation.title}}.",
    )
    .await;
    assert_eq!(status, 201);
    put(&app, TENANT, "refund", &admin(), "Refunds take 5 days.").await;
    let (status, replaced) = put(&app, TENANT, "refund", &admin(), "Refunds take 3 days.").await;
    assert_eq!(status, 200, "a second put replaces: {replaced}");
    put(
        &app,
        OWN,
        "thanks",
        &agent("a-1"),
        "Cheers {{customer.name}}!",
    )
    .await;
    put(&app, OWN, "thx", &agent("a-2"), "a-2's own").await;
    // Profiles fill the variables.
    app.expect(
        200,
        "PUT /profiles/me",
        &[],
        &token("u-1", "acme", "customer"),
        json!({"username": "Ada Lovelace", "email": "ada@example.com"}),
    )
    .await;
    app.expect(
        200,
        "PUT /profiles/me",
        &[],
        &agent("a-1"),
        json!({"username": "Sam"}),
    )
    .await;
    let conversation = app
        .conversation(
            &token("u-1", "acme", "customer"),
            json!({"title": "Broken kettle", "agent_id": "a-1"}),
        )
        .await;
    let found = find(
        &app,
        &agent("a-1"),
        &[("prefix", "th"), ("conversation_id", &conversation)],
    )
    .await;
    let summary: Vec<(&str, &str, &str)> = found
        .iter()
        .map(|r| {
            (
                r["short_code"].as_str().unwrap(),
                r["scope"].as_str().unwrap(),
                r["rendered"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("thanks", "personal", "Cheers Ada Lovelace!"),
            (
                "thanks",
                "tenant",
                "Thanks Ada Lovelace, Sam here about Broken kettle."
            ),
        ],
        "a-2's own `thx` is a-2's alone"
    );
    // Without a prefix: all the caller may use; without a conversation: not filled.
    let all = find(&app, &agent("a-1"), &[]).await;
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|r| r.get("rendered").is_none()));
    assert_eq!(
        find(&app, &agent("a-1"), &[("prefix", "refund")]).await[0]["content"],
        "Refunds take 3 days."
    );
    // A variable with nothing to fill it is left empty and named.
    let found = find(
        &app,
        &agent("a-2"),
        &[("prefix", "thanks"), ("conversation_id", &conversation)],
    )
    .await;
    assert_eq!(
        found[0]["rendered"],
        "Thanks Ada Lovelace,  here about Broken kettle."
    );
    assert_eq!(found[0]["missing"], json!(["agent.name"]));
    // Deleted: gone from the list; deleting again is 404.
    app.expect(
        200,
        "DELETE /me/canned-responses/{short_code}",
        &[("short_code", "thanks")],
        &agent("a-1"),
        json!(null),
    )
    .await;
    assert_eq!(
        find(&app, &agent("a-1"), &[("prefix", "thanks")])
            .await
            .len(),
        1
    );
    let (status, _) = app
        .send(
            "DELETE /me/canned-responses/{short_code}",
            &[("short_code", "thanks")],
            &agent("a-1"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn canned_responses_refuse_customers_other_tenants_and_every_other_spelling() {
    let app = TestApp::new().await;
    put(&app, TENANT, "thanks", &admin(), "Thanks!").await;
    put(&app, OWN, "mine", &agent("a-1"), "Mine").await;
    put(
        &app,
        TENANT,
        "gold",
        &token("boss", "globex", "admin"),
        "Globex's",
    )
    .await;
    let conversation = app
        .conversation(
            &token("u-1", "acme", "customer"),
            json!({"title": "Help", "agent_id": "a-1"}),
        )
        .await;
    let globex_room = app
        .conversation(
            &token("u-1", "globex", "customer"),
            json!({"title": "Theirs"}),
        )
        .await;
    let before = app.table.items().await;
    let customer = token("u-1", "acme", "customer");
    // Customers: refused, before any body is read.
    for (key, body) in [
        ("GET /canned-responses", None),
        (TENANT, Some(json!({"content": 5}))),
        (OWN, Some(json!({"content": "x"}))),
        ("DELETE /canned-responses/{short_code}", None),
        ("DELETE /me/canned-responses/{short_code}", None),
    ] {
        let (status, _) = app
            .send(key, &[("short_code", "thanks")], &customer, body, &[])
            .await;
        assert_eq!(status, 403, "{key}");
    }
    // Agents keep their own, not the tenant's.
    let (status, _) = put(&app, TENANT, "thanks", &agent("a-1"), "Hijacked").await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send(
            "DELETE /canned-responses/{short_code}",
            &[("short_code", "thanks")],
            &agent("a-1"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 403);
    // Every other spelling: 422 naming the field.
    for (code, body, field) in [
        (
            "thanks",
            json!({"content": "Hi {{customer.nmae}}"}),
            "content",
        ),
        (
            "thanks",
            json!({"content": "Hi {{customer.name}"}),
            "content",
        ),
        ("thanks", json!({"content": "   "}), "content"),
        ("thanks", json!({"content": "x".repeat(5001)}), "content"),
        (
            "thanks",
            json!({"content": "ok", "scope": "tenant"}),
            "scope",
        ),
        ("thanks", json!({}), "content"),
    ] {
        let (status, answer) = app
            .send(
                TENANT,
                &[("short_code", code)],
                &admin(),
                Some(body.clone()),
                &[],
            )
            .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"]["details"]["field"], field, "{answer}");
    }
    // A short code that could not be one names nothing.
    for code in ["Thanks", "th%20anks", "thanks!"] {
        let (status, _) = put(&app, TENANT, code, &admin(), "ok").await;
        assert_eq!(status, 404, "{code}");
    }
    for query in [
        [("prefix", "TH"), ("conversation_id", conversation.as_str())],
        [("prefix", "th"), ("conversation_id", "not-an-id")],
    ] {
        let (status, _) = app
            .send("GET /canned-responses", &[], &agent("a-1"), None, &query)
            .await;
        assert_eq!(status, 422, "{query:?}");
    }
    // Another tenant's conversation does not exist here.
    let (status, _) = app
        .send(
            "GET /canned-responses",
            &[],
            &agent("a-1"),
            None,
            &[("conversation_id", &globex_room)],
        )
        .await;
    assert_eq!(status, 404);
    // Another tenant's response is not acme's to delete.
    let (status, _) = app
        .send(
            "DELETE /canned-responses/{short_code}",
            &[("short_code", "gold")],
            &admin(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(app.table.items().await, before, "nothing was written");
    // Each tenant and agent sees theirs.
    let codes = |list: Vec<Value>| -> Vec<String> {
        list.iter()
            .map(|r| r["short_code"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        codes(find(&app, &agent("a-1"), &[]).await),
        ["mine", "thanks"]
    );
    assert_eq!(codes(find(&app, &agent("a-2"), &[]).await), ["thanks"]);
    assert_eq!(
        codes(find(&app, &token("a-1", "globex", "agent"), &[]).await),
        ["gold"]
    );
}
