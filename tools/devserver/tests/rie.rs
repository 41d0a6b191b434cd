//! Runtime fidelity: each function's real `bootstrap`, run under the AWS Lambda
//! Runtime Interface Emulator against DynamoDB Local, gets EVERY file in `events/`
//! that targets it, and must answer as API Gateway expects (status and envelope).
//! Run by `make test` after the workspace build (the bootstraps are its binaries):
//! `cargo test -p devserver --test rie -- --ignored`.

use chat_core::store::Delivery;
use chat_testkit::{
    HttpEvent, Rie, TestTable, load_event, local_env, response_json, template, template_routes,
    test_endpoint, token,
};
use devserver::Apps;
use devserver::receiver::Receiver;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;

const FIXTURE_ROOM: &str = "01HZX3K7Q8R9S0T1V2W3X4Y5Z6";
const FIXTURE_MESSAGE: &str = "01HZX3K7Q8R9S0T1V2W3X4Y5Z7";
const FIXTURE_WEBHOOK: &str = "01HZX3K7Q8R9S0T1V2W3X4Y5Z9";
const FIXTURE_UPLOAD: &str = "01HZX3K7Q8R9S0T1V2W3X4Y5Z8";
const FIXTURE_DELIVERY: &str = "01HZX3K7Q8R9S0T1V2W3XAAAAA";
const FIXTURE_EXPORT: &str = "01HZX3K7Q8R9S0T1V2W3XEXPRT";
const FIXTURE_ERASURE: &str = "01HZX3K7Q8R9S0T1V2W3XERASE";
const FIXTURE_TEAM: &str = "01HZX3K7Q8R9S0T1V2W3XTEAMS";

fn bootstrap(name: &str) -> PathBuf {
    // This test runs from <target>/debug/deps/, whatever CARGO_TARGET_DIR says;
    // the workspace's binaries sit one level up.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in <target>/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` (make test does) first",
        path.display()
    );
    path
}

fn binary_of(function: &str) -> &'static str {
    match function {
        "RoomsFunction" => "rooms",
        "ConversationsFunction" => "conversations",
        "MessagesFunction" => "messages",
        "AnalyticsFunction" => "analytics",
        "AnalyticsRollupFunction" => "analytics-rollup",
        "RealtimeFunction" => "realtime",
        "FanoutFunction" => "fanout",
        "WebhooksFunction" => "webhooks",
        "PrivacyFunction" => "privacy",
        "WebhookDeliveryFunction" => "deliver",
        "NotifyFunction" => "notify",
        "UnsubscribeFunction" => "unsubscribe",
        "InboundEmailFunction" => "inbound-email",
        "PrivacyJobsFunction" => "privacy-jobs",
        "SupportJobsFunction" => "support-jobs",
        other => panic!("no binary for {other}"),
    }
}

async fn call(apps: &Apps, function: &str, event: HttpEvent) -> Value {
    let (status, body) = response_json(&apps.call(function, event.request()).await.unwrap());
    assert!(status < 300, "seeding: {status} {body}");
    body["data"].clone()
}

/// Seeds what the fixtures name: a support conversation and a group room of u-100
/// (with agent 5), a message of u-100 in each, u-200's profile, and a webhook
/// endpoint (to `receiver`) with one delivery waiting.
async fn seed(
    apps: &Apps,
    store: &chat_core::store::Store,
    receiver: &Receiver,
) -> BTreeMap<&'static str, String> {
    let customer = token("u-100", "acme", "customer");
    let conversation = call(
        apps,
        "ConversationsFunction",
        HttpEvent::new("POST /chat/conversations", "/chat/conversations")
            .bearer(&customer)
            .json(&json!({"title": "Help", "agent_id": 5})),
    )
    .await;
    let conversation = conversation["conversation_id"].as_str().unwrap().to_owned();
    let room = call(
        apps,
        "RoomsFunction",
        HttpEvent::new("POST /rooms", "/rooms")
            .bearer(&customer)
            .json(&json!({"type": "group", "name": "Team", "participant_ids": ["5"]})),
    )
    .await;
    let room = room["id"].as_str().unwrap().to_owned();
    let mut ids = BTreeMap::new();
    for (key, id, route) in [
        (
            "conversation",
            &conversation,
            "/chat/conversations/{conversation_id}",
        ),
        ("room", &room, "/rooms/{room_id}"),
    ] {
        let param = if key == "room" {
            "room_id"
        } else {
            "conversation_id"
        };
        let path = route.replace(&format!("{{{param}}}"), id);
        let message = call(
            apps,
            "MessagesFunction",
            HttpEvent::new(
                &format!("POST {route}/messages"),
                &format!("{path}/messages"),
            )
            .param(param, id)
            .bearer(&customer)
            .json(&json!({"content": "order 12345"})),
        )
        .await;
        ids.insert(
            if key == "room" {
                "room_message"
            } else {
                "conversation_message"
            },
            message["id"].as_str().unwrap().to_owned(),
        );
        // A file uploaded through the presigned form and attached to a message, for
        // the download fixtures.
        let form = call(
            apps,
            "MessagesFunction",
            HttpEvent::new(&format!("POST {route}/uploads"), &format!("{path}/uploads"))
                .param(param, id)
                .bearer(&customer)
                .json(&json!({"name": "r.pdf", "content_type": "application/pdf", "size": 5})),
        )
        .await;
        let fields = form["fields"].as_object().unwrap();
        let posted = chat_testkit::post_form(
            form["url"].as_str().unwrap(),
            fields,
            b"%PDF-",
            "application/pdf",
        )
        .await;
        assert!((200..300).contains(&posted), "upload: {posted}");
        let upload = form["upload_id"].as_str().unwrap().to_owned();
        call(
            apps,
            "MessagesFunction",
            HttpEvent::new(&format!("POST {route}/messages"), &format!("{path}/messages"))
                .param(param, id)
                .bearer(&customer)
                .json(&json!({"content": "receipt", "attachments": [{"name": "r.pdf", "upload_id": upload}]})),
        )
        .await;
        ids.insert(
            if key == "room" {
                "room_upload"
            } else {
                "conversation_upload"
            },
            upload,
        );
    }
    call(
        apps,
        "RoomsFunction",
        HttpEvent::new("PUT /profiles/me", "/profiles/me")
            .bearer(&token("u-200", "acme", "customer"))
            .json(&json!({"username": "Jane"})),
    )
    .await;
    let webhook = call(
        apps,
        "WebhooksFunction",
        HttpEvent::new("POST /webhooks", "/webhooks")
            .bearer(&token("admin-1", "acme", "admin"))
            .json(&json!({"url": receiver.url("/hooks"), "event_types": ["message.new"]})),
    )
    .await;
    let webhook_id = chat_core::ids::WebhookId::parse(webhook["id"].as_str().unwrap()).unwrap();
    // The change the conversation's first message made (its delivery, as the stream
    // would have made it, waits for the schedule).
    let event = chat_testkit::first_change(chat_core::ids::RoomId::parse(&conversation).unwrap());
    let org = chat_core::ids::OrgId::parse("acme").unwrap();
    let delivery = Delivery::of_event(&org, &webhook_id, &event, false);
    assert!(store.add_delivery(&delivery).await.unwrap());
    // u-100's export, queued: the stream fixture runs it through the export
    // bootstrap (before the GET fixtures read it and the POSTs start new ones).
    let export = call(
        apps,
        "PrivacyFunction",
        HttpEvent::new("POST /me/export", "/me/export").bearer(&customer),
    )
    .await;
    ids.insert("export", export["export_id"].as_str().unwrap().to_owned());
    // An erasure of u-200, recorded (no job runs it here: its status route reads it).
    let erasure = chat_core::store::Erasure::new(
        &chat_core::ids::OrgId::parse("acme").unwrap(),
        &chat_core::ids::UserId::parse("u-200").unwrap(),
        &chat_core::ids::UserId::parse("admin-1").unwrap(),
    );
    store.start_erasure(&erasure).await.unwrap();
    ids.insert("erasure", erasure.id.to_string());
    // A support team (its routes' fixtures name it).
    let team = call(
        apps,
        "ConversationsFunction",
        HttpEvent::new("POST /teams", "/teams")
            .bearer(&token("admin-1", "acme", "admin"))
            .json(&json!({"name": "Billing"})),
    )
    .await;
    ids.insert("team", team["team_id"].as_str().unwrap().to_owned());
    // The label the conversation label fixtures name.
    call(
        apps,
        "ConversationsFunction",
        HttpEvent::new("POST /labels", "/labels")
            .bearer(&token("admin-1", "acme", "admin"))
            .json(&json!({"name": "vip"})),
    )
    .await;
    ids.insert("delivery", delivery.id.to_string());
    ids.insert("webhook", webhook_id.to_string());
    ids.insert("conversation", conversation);
    ids.insert("room", room);
    ids
}

/// The fixture with its ids pointed at the seeded items: `/rooms/…` files at the
/// group room, `/chat/…` files at the conversation.
fn retarget(name: &str, event: &Value, ids: &BTreeMap<&str, String>) -> Value {
    let (room, message, upload) = if event["routeKey"]
        .as_str()
        .unwrap_or_default()
        .contains(" /rooms/")
    {
        (&ids["room"], &ids["room_message"], &ids["room_upload"])
    } else {
        (
            &ids["conversation"],
            &ids["conversation_message"],
            &ids["conversation_upload"],
        )
    };
    let text = event
        .to_string()
        .replace(FIXTURE_ROOM, room)
        .replace(FIXTURE_MESSAGE, message)
        .replace(FIXTURE_UPLOAD, upload)
        .replace(FIXTURE_WEBHOOK, &ids["webhook"])
        .replace(FIXTURE_DELIVERY, &ids["delivery"])
        .replace(FIXTURE_EXPORT, &ids["export"])
        .replace(FIXTURE_ERASURE, &ids["erasure"])
        .replace(FIXTURE_TEAM, &ids["team"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// What a rating request's mail carries: the seeded conversation resolved anew (a
/// resolution of its own, whatever was rated before) and a link for it, signed with
/// the stack's key, in place of the fixture's.
async fn rating_link_for(apps: &Apps, table: &TestTable, conversation: &str, event: &mut Value) {
    for status in ["open", "resolved"] {
        call(
            apps,
            "ConversationsFunction",
            HttpEvent::new(
                "PUT /chat/conversations/{conversation_id}",
                "/chat/conversations/x",
            )
            .param("conversation_id", conversation)
            .bearer(&token("5", "acme", "agent"))
            .json(&json!({ "status": status })),
        )
        .await;
    }
    let org = chat_core::ids::OrgId::parse("acme").unwrap();
    let room_id = chat_core::ids::RoomId::parse(conversation).unwrap();
    let room = table
        .runtime
        .store
        .get_room(&org, &room_id)
        .await
        .unwrap()
        .unwrap();
    let secret = &table
        .runtime
        .config
        .notify
        .email
        .as_ref()
        .unwrap()
        .link_secret;
    let link = chat_core::unsubscribe::RatingLink {
        org,
        user: chat_core::ids::UserId::parse("u-100").unwrap(),
        room: room_id,
        resolution: room.closed_at.expect("resolved"),
    };
    let signed = link.sign(secret);
    let old = event["queryStringParameters"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    event["queryStringParameters"]["token"] = json!(signed);
    let raw = event["rawQueryString"]
        .as_str()
        .unwrap()
        .replace(&old, &signed);
    event["rawQueryString"] = json!(raw);
}

/// What SES does before it invokes the inbound-email function with the receipt
/// event: the customer's reply (the Gmail fixture) stored under `inbound/`, addressed
/// to the seeded conversation's reply address, which its mails gave out (u-100's
/// address on their profile).
async fn inbound_mail_for(apps: &Apps, table: &TestTable, conversation: &str, event: &mut Value) {
    let config = &table.runtime.config;
    let email = config.notify.email.as_ref().expect("email is on locally");
    let domain = email.inbound_domain.as_deref().expect("an inbound domain");
    let org = chat_core::ids::OrgId::parse("acme").unwrap();
    let room = chat_core::ids::RoomId::parse(conversation).unwrap();
    assert!(
        table
            .runtime
            .store
            .remember_reply_room(&org, &room)
            .await
            .unwrap()
    );
    let address = chat_core::reply::address(&email.link_secret, domain, &org, &room);
    let mail = &mut event["Records"][0]["ses"];
    mail["receipt"]["recipients"] = json!([address]);
    mail["mail"]["destination"] = json!([address]);
    let customer = mail["mail"]["source"].as_str().unwrap().to_owned();
    call(
        apps,
        "RoomsFunction",
        HttpEvent::new("PUT /profiles/me", "/profiles/me")
            .bearer(&token("u-100", "acme", "customer"))
            .json(&json!({"email": customer})),
    )
    .await;
    let raw = std::fs::read_to_string(
        chat_testkit::repo_root().join("functions/webhooks/fixtures/mail/gmail.eml"),
    )
    .unwrap()
    .replace("{{FROM}}", &customer)
    .replace("{{TO}}", &address)
    .replace("{{ROOM}}", &conversation.to_ascii_lowercase())
    .replace("{{DOMAIN}}", domain);
    let uploads = chat_core::uploads::Uploads::new(
        config.uploads.clone().expect("uploads are on"),
        config.aws.clone(),
    );
    let key = format!(
        "{}{}",
        webhooks::inbound::INBOUND_PREFIX,
        mail["mail"]["messageId"].as_str().unwrap()
    );
    uploads
        .put(&key, raw.into_bytes().into(), "message/rfc822")
        .await
        .unwrap();
}

/// The socket connects first and disconnects late; deletes run last (the room delete
/// very last), so every other fixture finds its items.
fn order(name: &str) -> (u8, String) {
    let rank = match name {
        "websocket-connect.json" => 0,
        "websocket-disconnect.json" => 2,
        n if n.starts_with("delete-rooms-id.")
            || n.starts_with("delete-chat-conversations-id.") =>
        {
            3
        }
        n if n.starts_with("delete-") => 2,
        _ => 1,
    };
    (rank, name.to_owned())
}

#[tokio::test]
#[ignore = "needs the workspace's debug bootstraps: run by `make test`"]
async fn every_event_through_every_bootstrap_under_the_emulator() {
    let table = TestTable::new().await;
    let apps = Apps::new(table.runtime.clone());
    let receiver = Receiver::start().await;
    let ids = seed(&apps, &table.runtime.store, &receiver).await;
    let routes = template_routes(&template());
    // The sockets' Management API: the dev server's, on this table (without its own
    // fan-out: the fan-out here is the bootstrap's, and the dev server's would find
    // the fixture's connection, which no socket holds, gone).
    let (ws_port, _) = devserver::realtime::serve_gateway(&table.runtime, 0)
        .await
        .unwrap();
    let mut env = local_env(&test_endpoint(), &table.name);
    env.push((
        realtime::MANAGEMENT_URL_VAR,
        format!("http://127.0.0.1:{ws_port}"),
    ));
    // A first retention sweep walks back from its last day: a few days here.
    env.push(("RETENTION_LOOKBACK_DAYS", "3".into()));
    let mut emulators: BTreeMap<String, Rie> = BTreeMap::new();
    let mut names: Vec<String> = std::fs::read_dir(chat_testkit::repo_root().join("events"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort_by_key(|n| order(n));
    let mut checked = 0;
    for name in names {
        let event = load_event(&name);
        let function = match event["routeKey"].as_str() {
            None if event["requestContext"]["eventType"].is_string() => "RealtimeFunction".into(),
            None if event["Records"][0]["eventSource"] == "aws:ses" => {
                "InboundEmailFunction".into()
            }
            None if event["Records"].is_array() && name.contains("webhooks") => {
                "WebhookDeliveryFunction".into()
            }
            None if event["Records"].is_array() && name.contains("export") => {
                "PrivacyJobsFunction".into()
            }
            None if event["Records"].is_array() && name.contains("support") => {
                "SupportJobsFunction".into()
            }
            None if event["Records"].is_array() && name.contains("notify") => {
                "NotifyFunction".into()
            }
            None if event["Records"].is_array() => "FanoutFunction".into(),
            None if event["resources"].to_string().contains("WebhookDelivery") => {
                "WebhookDeliveryFunction".into()
            }
            None if event["resources"].to_string().contains("NotifyFunction") => {
                "NotifyFunction".into()
            }
            None if event["resources"]
                .to_string()
                .contains("SupportJobsFunction") =>
            {
                "SupportJobsFunction".into()
            }
            None if event["resources"]
                .to_string()
                .contains("PrivacyJobsFunction") =>
            {
                "PrivacyJobsFunction".into()
            }
            Some(key) => routes
                .iter()
                .find(|r| r.key() == key)
                .unwrap_or_else(|| panic!("{name}: no route {key}"))
                .function
                .clone(),
            None => "AnalyticsRollupFunction".to_owned(),
        };
        let rie = emulators.entry(function.clone()).or_insert_with(|| {
            Rie::start(&bootstrap(binary_of(&function)), binary_of(&function), &env)
        });
        let mut event = retarget(&name, &event, &ids);
        if name == "websocket-connect.json" {
            // A real ticket, as POST /realtime/tickets gives one.
            let ticket = call(
                &apps,
                "RoomsFunction",
                HttpEvent::new("POST /realtime/tickets", "/realtime/tickets")
                    .bearer(&token("u-100", "acme", "customer")),
            )
            .await;
            event["queryStringParameters"]["ticket"] = ticket["ticket"].clone();
        }
        if name == "post-chat-conversations-id-rating.json" {
            // A rating is of a resolution: the agent resolves first.
            call(
                &apps,
                "ConversationsFunction",
                HttpEvent::new(
                    "PUT /chat/conversations/{conversation_id}",
                    "/chat/conversations/x",
                )
                .param("conversation_id", &ids["conversation"])
                .bearer(&token("5", "acme", "agent"))
                .json(&json!({"status": "resolved"})),
            )
            .await;
        }
        if name.contains("email-rating") {
            rating_link_for(&apps, &table, &ids["conversation"], &mut event).await;
        }
        if function == "InboundEmailFunction" {
            inbound_mail_for(&apps, &table, &ids["conversation"], &mut event).await;
        }
        let answer = rie.invoke(&event).await;
        if function == "InboundEmailFunction" {
            // The reply SES stored landed in the seeded conversation.
            assert_eq!(answer["mails"][0]["outcome"], "posted", "{name}: {answer}");
            assert_eq!(answer["mails"][0]["room_id"], ids["conversation"].as_str());
            checked += 1;
            continue;
        }
        if function == "WebhookDeliveryFunction" {
            if event["Records"].is_array() {
                assert_eq!(answer, json!({"batchItemFailures": []}), "{name}");
            } else {
                assert!(
                    answer["attempted"].as_u64().is_some_and(|n| n >= 1),
                    "{name}: {answer}"
                );
                let got = receiver.received("/hooks");
                assert!(
                    got.iter()
                        .any(|r| r.id == ids["delivery"] && r.signature.starts_with("v1,")),
                    "{name}: the seeded delivery reached the receiver, signed: {got:?}"
                );
            }
            checked += 1;
            continue;
        }
        if function == "NotifyFunction" && !event["Records"].is_array() {
            // The schedule: the due windows told (none seeded).
            assert_eq!(answer, json!({"told": 0}), "{name}");
            checked += 1;
            continue;
        }
        if function == "PrivacyJobsFunction" && !event["Records"].is_array() {
            // The schedule: a retention sweep of every tenant with a policy (acme's,
            // when its PUT ran first), up to date in one run.
            assert_eq!(answer["retention"]["caught_up"], true, "{name}: {answer}");
            checked += 1;
            continue;
        }
        if function == "PrivacyJobsFunction" {
            assert_eq!(answer, json!({"batchItemFailures": []}), "{name}");
            let export = call(
                &apps,
                "PrivacyFunction",
                HttpEvent::new("GET /me/exports/{export_id}", "/me/exports/x")
                    .bearer(&token("u-100", "acme", "customer"))
                    .param("export_id", &ids["export"]),
            )
            .await;
            assert_eq!(export["status"], "done", "{name}: {export}");
            checked += 1;
            continue;
        }
        if function == "SupportJobsFunction" && !event["Records"].is_array() {
            // The minute's schedule: the SLA timers due (none seeded).
            assert!(answer["sla"]["timers"].is_u64(), "{name}: {answer}");
            checked += 1;
            continue;
        }
        if function == "FanoutFunction"
            || function == "NotifyFunction"
            || function == "SupportJobsFunction"
        {
            assert_eq!(answer, json!({"batchItemFailures": []}), "{name}");
            checked += 1;
            continue;
        }
        if function == "RealtimeFunction" {
            assert_eq!(answer["statusCode"], 200, "{name}: {answer}");
            if let Some(body) = answer["body"].as_str() {
                let frame: Value = serde_json::from_str(body).unwrap();
                assert_ne!(frame["type"], "error", "{name}: {frame}");
            }
            checked += 1;
            continue;
        }
        if function == "AnalyticsRollupFunction" {
            assert!(
                answer["days"].as_u64().is_some_and(|d| d >= 1),
                "{name}: {answer}"
            );
            checked += 1;
            continue;
        }
        let status = answer["statusCode"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: not an API Gateway response: {answer}"));
        let body: Value = serde_json::from_str(answer["body"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{name}: body is not JSON ({e}): {answer}"));
        assert!(
            body["success"].is_boolean() && body["message"].is_string(),
            "{name}: not the envelope: {body}"
        );
        assert_eq!(
            answer["headers"]["content-type"], "application/json",
            "{name}"
        );
        // AI replies are off in the local configuration: 503 ai_unavailable is the answer.
        let expected_ok = !name.contains("ai-response");
        if expected_ok {
            assert!((200..300).contains(&status), "{name}: {status} {body}");
            assert_eq!(body["success"], true, "{name}");
        } else {
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (503, Some("ai_unavailable")),
                "{name}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 47, "checked {checked} events");
}
