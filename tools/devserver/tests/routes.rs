//! One route table, checked both ways: template.yaml's HttpApi routes, the routes
//! each function declares, the dev server's routing and the events/ fixtures.

use chat_testkit::{Route, load_event, template, template_routes, websocket_routes};
use devserver::{declared_routes, find_route};
use std::collections::BTreeSet;

fn routes() -> Vec<Route> {
    template_routes(&template())
}

#[test]
fn every_websocket_route_has_an_event_and_the_realtime_function_answers_it() {
    let declared: BTreeSet<String> = websocket_routes(&template()).into_iter().collect();
    let expected: BTreeSet<String> = [
        "$connect",
        "$disconnect",
        "$default",
        "subscribe",
        "unsubscribe",
        "resume",
        "sync_inbox",
        "typing",
        "ping",
    ]
    .map(String::from)
    .into();
    assert_eq!(declared, expected);
    for route in [
        "$connect",
        "$disconnect",
        "subscribe",
        "resume",
        "sync_inbox",
        "typing",
        "ping",
    ] {
        let file = format!("websocket-{}.json", route.trim_start_matches('$'));
        assert_eq!(
            load_event(&file)["requestContext"]["routeKey"],
            route,
            "{file}"
        );
    }
}

#[test]
fn template_routes_and_function_routes_are_the_same_table() {
    let from_template: BTreeSet<(String, String)> = routes()
        .iter()
        .map(|r| (r.function.clone(), r.key()))
        .collect();
    let from_functions: BTreeSet<(String, String)> = declared_routes()
        .into_iter()
        .flat_map(|(function, keys)| {
            keys.iter()
                .map(move |k| (function.to_owned(), (*k).to_owned()))
        })
        .collect();
    let missing: Vec<_> = from_template.difference(&from_functions).collect();
    let extra: Vec<_> = from_functions.difference(&from_template).collect();
    assert!(
        missing.is_empty(),
        "template routes no function serves: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "function routes the template lacks: {extra:?}"
    );
    assert!(from_template.len() >= 30, "every route of the brief");
}

#[test]
fn every_route_has_an_event_and_every_event_a_route() {
    let routes = routes();
    let mut covered = BTreeSet::new();
    let dir = chat_testkit::repo_root().join("events");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".json") {
            continue;
        }
        let event = load_event(&name);
        if let Some(socket_route) = event["requestContext"]["routeKey"]
            .as_str()
            .filter(|_| event.get("routeKey").is_none())
        {
            // A WebSocket API event: its route is one the template declares.
            assert!(
                websocket_routes(&template())
                    .iter()
                    .any(|r| r == socket_route),
                "{name}: no WebSocket route {socket_route}"
            );
            continue;
        }
        if event.get("routeKey").is_none() {
            let stream = event["Records"][0]["eventSource"] == "aws:dynamodb";
            let mail = event["Records"][0]["eventSource"] == "aws:ses";
            assert!(
                event["source"] == "aws.events" || stream || mail,
                "{name} is neither an HTTP API, a WebSocket, a stream, an SES receipt nor a schedule event"
            );
            continue;
        }
        let key = event["routeKey"].as_str().unwrap();
        let route = routes
            .iter()
            .find(|r| r.key() == key)
            .unwrap_or_else(|| panic!("{name}: no route {key}"));
        let path = event["rawPath"].as_str().unwrap();
        let (found, params) = find_route(
            &routes,
            event["requestContext"]["http"]["method"].as_str().unwrap(),
            path,
        )
        .unwrap_or_else(|| panic!("{name}: {path} routes nowhere"));
        assert_eq!(
            found.key(),
            route.key(),
            "{name}: the dev server routes {path} elsewhere"
        );
        for (k, v) in params {
            assert_eq!(
                event["pathParameters"][&k],
                v.as_str(),
                "{name}: path parameter {k}"
            );
        }
        covered.insert(key.to_owned());
    }
    let uncovered: Vec<String> = routes
        .iter()
        .map(Route::key)
        .filter(|k| !covered.contains(k))
        .collect();
    assert!(
        uncovered.is_empty(),
        "routes without an event file: {uncovered:?}"
    );
}

#[test]
fn literal_segments_win_over_parameters() {
    let routes = routes();
    let (route, _) = find_route(&routes, "PUT", "/profiles/me").unwrap();
    assert_eq!(route.path, "/profiles/me");
    let (route, params) = find_route(&routes, "GET", "/profiles/u-7").unwrap();
    assert_eq!(
        (route.path.as_str(), params["user_id"].as_str()),
        ("/profiles/{user_id}", "u-7")
    );
    assert!(find_route(&routes, "GET", "/nope").is_none());
}

#[test]
fn every_writing_route_is_classified_for_the_audit_log_and_nothing_else_is() {
    // A route added to the template that writes fails here until chat_core::audit
    // says whether it is recorded (and under which action) or why not.
    let writing: BTreeSet<String> = routes()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| r.key())
        .collect();
    let classified: BTreeSet<String> = chat_core::audit::ROUTES
        .iter()
        .map(|(key, _)| (*key).to_owned())
        .collect();
    let unclassified: Vec<_> = writing.difference(&classified).collect();
    let stale: Vec<_> = classified.difference(&writing).collect();
    assert!(
        unclassified.is_empty(),
        "classify in chat_core::audit::ROUTES: {unclassified:?}"
    );
    assert!(stale.is_empty(), "no such routes: {stale:?}");
}
