//! Bad input on every route that takes a body, generated from the route table and
//! the events/ fixtures: malformed JSON → 400, an unknown field → 422, a body over
//! the limit → 413, each with the envelope and nothing written.

use chat_core::request::MAX_BODY_BYTES;
use chat_testkit::{TestTable, load_event, template, template_routes, to_request};
use devserver::Apps;
use serde_json::{Value, json};

#[tokio::test]
async fn every_body_route_refuses_bad_input_and_writes_nothing() {
    let table = TestTable::new().await;
    let apps = Apps::new(table.runtime.clone());
    let routes = template_routes(&template());
    let dir = chat_testkit::repo_root().join("events");
    let before = table.items().await;
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".json") {
            continue;
        }
        let event = load_event(&name);
        let Some(key) = event["routeKey"].as_str() else {
            continue;
        };
        let Some(body) = event["body"].as_str().filter(|b| b.starts_with('{')) else {
            continue;
        };
        let route = routes.iter().find(|r| r.key() == key).unwrap();
        let mut unknown: Value = serde_json::from_str(body).unwrap();
        unknown["definitely_not_a_field"] = json!(true);
        let cases = [
            (
                "malformed",
                body[..body.len() / 2].to_owned(),
                400,
                "malformed_request",
            ),
            ("unknown field", unknown.to_string(), 422, "unknown_field"),
            (
                "oversized",
                format!("{{\"x\": \"{}\"}}", "x".repeat(MAX_BODY_BYTES)),
                413,
                "payload_too_large",
            ),
        ];
        for (case, bad, status, code) in cases {
            let mut event = event.clone();
            event["body"] = json!(bad);
            let response = apps
                .call(&route.function, to_request(&event))
                .await
                .unwrap();
            let (got, body) = chat_testkit::response_json(&response);
            // Ids in fixtures name nothing in this empty table: a route may answer 404
            // before it reads the body, which writes nothing either.
            if got == 404 {
                assert_eq!(body["error"]["code"], "not_found", "{name} {case}");
            } else {
                assert_eq!(
                    (got, body["error"]["code"].as_str()),
                    (status, Some(code)),
                    "{name} {case}: {body}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 3 * 12, "checked {checked}");
    assert_eq!(table.items().await, before, "nothing was written");
}
