//! Object-level isolation, generated from the route table: every route that takes
//! an id, with the ids of items seeded in tenant acme, called by a globex token (and
//! by an acme customer who is not a member) → 404 with exactly the body a missing id
//! gets, and the table unchanged.

use chat_testkit::{
    HttpEvent, TestTable, load_event, response_json, template, template_routes, to_request, token,
};
use devserver::Apps;
use serde_json::{Value, json};

const FIXTURE_ROOM: &str = "01HZX3K7Q8R9S0T1V2W3X4Y5Z6";
const FIXTURE_MESSAGE: &str = "01HZX3K7Q8R9S0T1V2W3X4Y5Z7";
const MISSING_ROOM: &str = "01HZX3K7Q8R9S0T1V2W3X4Y500";

async fn data(apps: &Apps, function: &str, event: HttpEvent) -> Value {
    let (status, body) = response_json(&apps.call(function, event.request()).await.unwrap());
    assert!(status < 300, "seeding: {status} {body}");
    body["data"].clone()
}

fn with_caller(event: &Value, tok: &str, room: &str, message: &str) -> Value {
    let text = event
        .to_string()
        .replace(FIXTURE_ROOM, room)
        .replace(FIXTURE_MESSAGE, message);
    let mut event: Value = serde_json::from_str(&text).unwrap();
    event["headers"]["authorization"] = json!(format!("Bearer {tok}"));
    event
}

#[tokio::test]
async fn other_tenants_and_strangers_learn_nothing_from_ids() {
    let table = TestTable::new().await;
    let apps = Apps::new(table.runtime.clone());
    let owner = token("u-100", "acme", "customer");
    // A team room (not a support room: staff of acme who are not members cannot see
    // it either) with a message.
    let room = data(
        &apps,
        "RoomsFunction",
        HttpEvent::new("POST /rooms", "/rooms")
            .bearer(&owner)
            .json(&json!({"type": "group", "name": "Team"})),
    )
    .await;
    let room = room["id"].as_str().unwrap().to_owned();
    let message = data(
        &apps,
        "MessagesFunction",
        HttpEvent::new(
            "POST /rooms/{room_id}/messages",
            &format!("/rooms/{room}/messages"),
        )
        .param("room_id", &room)
        .bearer(&owner)
        .json(&json!({"content": "private plans"})),
    )
    .await;
    let message = message["id"].as_str().unwrap().to_owned();
    let before = table.items().await;

    let routes = template_routes(&template());
    let mut checked = 0;
    for entry in std::fs::read_dir(chat_testkit::repo_root().join("events")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".json") {
            continue;
        }
        let event = load_event(&name);
        let Some(key) = event["routeKey"].as_str() else {
            continue;
        };
        if !(key.contains("{room_id}") || key.contains("{conversation_id}")) {
            continue;
        }
        let route = routes.iter().find(|r| r.key() == key).unwrap();
        for caller in [
            token("u-100", "globex", "admin"),
            token("u-100", "globex", "customer"),
            token("u-999", "acme", "customer"),
            token("a-1", "acme", "agent"),
        ] {
            // What this caller gets for an id that does not exist...
            let missing = with_caller(&event, &caller, MISSING_ROOM, &message);
            let (missing_status, missing_body) = response_json(
                &apps
                    .call(&route.function, to_request(&missing))
                    .await
                    .unwrap(),
            );
            // ...is exactly what they get for the room they may not see.
            let event = with_caller(&event, &caller, &room, &message);
            let (status, body) = response_json(
                &apps
                    .call(&route.function, to_request(&event))
                    .await
                    .unwrap(),
            );
            assert_eq!((status, &body), (missing_status, &missing_body), "{name}");
            assert!(status == 404 || status == 422, "{name}: {status} {body}");
            checked += 1;
        }
    }
    assert!(checked >= 4 * 15, "checked {checked}");
    assert_eq!(table.items().await, before, "nothing was written");
}
