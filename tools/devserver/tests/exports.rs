//! A person's data export end to end: the request, the job on the table's stream (as
//! the export function's mapping delivers it), the archive in the local S3 and its
//! presigned link. The archive holds exactly what the person may read: their rooms'
//! messages without staff notes (for a customer), their own files byte-exact, their
//! profile and settings; nothing of rooms they are not in, nor of another tenant.

use chat_testkit::{http_get_bytes, token};
use devserver::TestApp;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn customer() -> String {
    token("u-100", "acme", "customer")
}

fn admin() -> String {
    token("a-9", "acme", "admin")
}

/// The files of a ustar archive, by name (read here, not by the writer's code).
fn untar(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut at = 0;
    while at + 512 <= bytes.len() {
        let header = &bytes[at..at + 512];
        if header.iter().all(|b| *b == 0) {
            break;
        }
        assert_eq!(&header[257..262], b"ustar", "a ustar header");
        let name =
            String::from_utf8(header[..100].split(|b| *b == 0).next().unwrap().to_vec()).unwrap();
        let size_field = std::str::from_utf8(&header[124..135]).unwrap();
        let size = usize::from_str_radix(size_field.trim_matches(char::from(0)), 8).unwrap();
        let sum: u32 = header
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u32::from(*b)
                }
            })
            .sum();
        let stored = std::str::from_utf8(&header[148..154]).unwrap();
        assert_eq!(
            u32::from_str_radix(stored, 8).unwrap(),
            sum,
            "{name}: checksum"
        );
        files.insert(name, bytes[at + 512..at + 512 + size].to_vec());
        at += 512 + size.div_ceil(512) * 512;
    }
    files
}

async fn post(app: &TestApp, who: &str, room: &str, body: Value) -> Value {
    app.expect(
        201,
        "POST /rooms/{room_id}/messages",
        &[("room_id", room)],
        who,
        body,
    )
    .await
}

/// Waits (bounded) for the export to end; its status.
async fn finished(app: &TestApp, route: &str, params: &[(&str, &str)], who: &str) -> Value {
    app.job_ended(route, params, who, &["done", "failed"]).await
}

struct World {
    app: TestApp,
    rooms: Vec<String>,
    photo: Vec<u8>,
}

/// u-100 (customer) in three rooms: a support conversation with agent a-1 (who
/// leaves a note), a team room with u-200, a direct chat with u-300 (where u-100
/// attaches a photo). u-200 and u-300 share a room u-100 is not in; globex has a
/// u-100 of its own.
async fn world() -> World {
    let app = TestApp::new().await;
    devserver::privacy_jobs::serve_privacy_jobs(&app.table.runtime).await;
    app.expect(
        200,
        "PUT /profiles/me",
        &[],
        &customer(),
        json!({"username": "Ann", "email": "ann@example.com", "phone": "+15550100"}),
    )
    .await;
    let support = app
        .conversation(
            &customer(),
            json!({"title": "Order 4242", "agent_id": "a-1"}),
        )
        .await;
    let agent = token("a-1", "acme", "agent");
    post(
        &app,
        &customer(),
        &support,
        json!({"content": "ann-asks-about-4242"}),
    )
    .await;
    post(
        &app,
        &agent,
        &support,
        json!({"content": "agent-answers-4242"}),
    )
    .await;
    post(
        &app,
        &agent,
        &support,
        json!({"content": "staff-note-do-not-export", "message_type": "note"}),
    )
    .await;
    let team = app
        .room(
            &customer(),
            json!({"type": "group", "name": "Team", "participant_ids": ["u-200"]}),
        )
        .await;
    post(
        &app,
        &token("u-200", "acme", "customer"),
        &team,
        json!({"content": "bob-says-hello"}),
    )
    .await;
    let direct = app
        .room(
            &customer(),
            json!({"type": "direct", "participant_ids": ["u-300"]}),
        )
        .await;
    let photo: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let upload = app
        .upload(&customer(), &direct, "receipt.png", &photo)
        .await;
    post(
        &app,
        &customer(),
        &direct,
        json!({"content": "ann-sends-receipt", "attachments": [{"name": "receipt.png", "upload_id": upload}]}),
    )
    .await;
    // Not u-100's: a room of u-200 and u-300, and globex's u-100.
    let others = app
        .room(
            &token("u-200", "acme", "customer"),
            json!({"type": "group", "name": "Others", "participant_ids": ["u-300"]}),
        )
        .await;
    post(
        &app,
        &token("u-300", "acme", "customer"),
        &others,
        json!({"content": "not-for-ann"}),
    )
    .await;
    let globex = token("u-100", "globex", "customer");
    let theirs = app
        .room(
            &globex,
            json!({"type": "group", "name": "Globex", "participant_ids": ["u-200"]}),
        )
        .await;
    post(
        &app,
        &globex,
        &theirs,
        json!({"content": "globex-tenant-secret"}),
    )
    .await;
    let mut rooms = vec![support, team, direct];
    rooms.sort();
    World { app, rooms, photo }
}

/// The archive behind a finished export's link.
async fn archive(export: &Value) -> BTreeMap<String, Vec<u8>> {
    assert_eq!(export["status"], "done", "{export}");
    let url = export["download"]["url"].as_str().expect("a download link");
    let (status, bytes) = http_get_bytes(url).await;
    assert_eq!(status, 200);
    untar(&bytes)
}

fn text(files: &BTreeMap<String, Vec<u8>>) -> String {
    files
        .values()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_export_holds_exactly_what_they_may_read() {
    let World { app, rooms, photo } = world().await;
    let started = app
        .expect(202, "POST /me/export", &[], &customer(), json!({}))
        .await;
    let id = started["export_id"].as_str().unwrap().to_owned();
    assert_eq!(started["status"], "queued");
    let done = finished(
        &app,
        "GET /me/exports/{export_id}",
        &[("export_id", &id)],
        &customer(),
    )
    .await;
    assert_eq!(done["progress"]["rooms"], 3, "{done}");
    assert_eq!(done["progress"]["files"], 1, "{done}");
    let files = archive(&done).await;

    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    let mut expected = vec![
        "export.json".to_owned(),
        "notifications.json".to_owned(),
        "profile.json".to_owned(),
    ];
    expected.extend(rooms.iter().map(|r| format!("rooms/{r}.json")));
    let upload = files
        .keys()
        .find(|n| n.starts_with("files/"))
        .expect("the photo")
        .clone();
    expected.push(upload.clone());
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(files[&upload], photo, "the file, byte-exact");

    let manifest: Value = serde_json::from_slice(&files["export.json"]).unwrap();
    assert_eq!(manifest["format"], "chat-export/1");
    assert_eq!(manifest["user_id"], "u-100");
    assert_eq!(manifest["files"][0]["name"], "receipt.png");
    assert_eq!(manifest["files"][0]["path"], upload.as_str());
    let profile: Value = serde_json::from_slice(&files["profile.json"]).unwrap();
    assert_eq!(
        (profile["email"].as_str(), profile["phone"].as_str()),
        (Some("ann@example.com"), Some("+15550100"))
    );
    let notifications: Value = serde_json::from_slice(&files["notifications.json"]).unwrap();
    assert!(notifications["settings"].is_object(), "{notifications}");

    let all = text(&files);
    for present in [
        "ann-asks-about-4242",
        "agent-answers-4242",
        "bob-says-hello",
        "ann-sends-receipt",
    ] {
        assert!(all.contains(present), "{present} is in the export");
    }
    for absent in [
        "staff-note-do-not-export",
        "not-for-ann",
        "globex-tenant-secret",
    ] {
        assert!(!all.contains(absent), "{absent} must not be in the export");
    }
    // Each room: the membership (read position) and its messages, oldest first, the
    // person's own marked.
    let team: Value = serde_json::from_slice(
        &files[&format!(
            "rooms/{}.json",
            rooms
                .iter()
                .find(|r| all_room_type(&files, r) == "group")
                .unwrap()
        )],
    )
    .unwrap();
    assert!(team["membership"]["joined_at"].is_string(), "{team}");
    let messages = team["messages"].as_array().unwrap();
    assert!(messages.iter().all(|m| m["written_by_you"] == false));

    // The agent's own export of the conversation holds the note: staff read notes.
    let agent = token("a-1", "acme", "agent");
    let started = app
        .expect(202, "POST /me/export", &[], &agent, json!({}))
        .await;
    let id = started["export_id"].as_str().unwrap().to_owned();
    let done = finished(
        &app,
        "GET /me/exports/{export_id}",
        &[("export_id", &id)],
        &agent,
    )
    .await;
    assert!(text(&archive(&done).await).contains("staff-note-do-not-export"));
}

fn all_room_type(files: &BTreeMap<String, Vec<u8>>, room: &str) -> String {
    let part: Value = serde_json::from_slice(&files[&format!("rooms/{room}.json")]).unwrap();
    part["room"]["type"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_export_their_tenants_people_one_at_a_time_and_nobody_else_may() {
    let World { app, .. } = world().await;
    let route = "POST /admin/users/{user_id}/export";
    // Refused before anything is read: agents and customers, even for themselves.
    for who in [customer(), token("a-1", "acme", "agent")] {
        let (status, body) = app
            .send(route, &[("user_id", "u-100")], &who, None, &[])
            .await;
        assert_eq!(status, 403, "{body}");
    }
    // Another tenant's admin: acme's people are nobody there.
    let (status, body) = app
        .send(
            route,
            &[("user_id", "u-300")],
            &token("g-9", "globex", "admin"),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, _) = app
        .send(route, &[("user_id", "u-999")], &admin(), None, &[])
        .await;
    assert_eq!(status, 404, "a person the tenant does not know");

    // A burst: one export runs per person, whoever asks.
    let mut calls = tokio::task::JoinSet::new();
    let app = std::sync::Arc::new(app);
    for i in 0..6 {
        let app = app.clone();
        calls.spawn(async move {
            if i % 2 == 0 {
                app.send(route, &[("user_id", "u-100")], &admin(), None, &[])
                    .await
            } else {
                app.send("POST /me/export", &[], &customer(), None, &[])
                    .await
            }
        });
    }
    let mut started = Vec::new();
    while let Some(done) = calls.join_next().await {
        let (status, body) = done.unwrap();
        match status {
            202 => started.push(body["data"]["export_id"].as_str().unwrap().to_owned()),
            409 => assert_eq!(body["error"]["code"], "export_in_progress"),
            other => panic!("{other} {body}"),
        }
    }
    assert_eq!(started.len(), 1, "one export per person at a time");
    let id = &started[0];
    let status_route = "GET /admin/users/{user_id}/exports/{export_id}";
    let params = [("user_id", "u-100"), ("export_id", id.as_str())];
    let done = finished(&app, status_route, &params, &admin()).await;
    let files = archive(&done).await;
    assert!(
        !text(&files).contains("staff-note-do-not-export"),
        "a customer's export, asked by an admin"
    );
    // Done: the next one may start.
    app.expect(202, "POST /me/export", &[], &customer(), json!({}))
        .await;

    // The status is the person's and their admins': nobody else's, no other tenant's.
    for (who, user) in [
        (token("u-200", "acme", "customer"), "u-100"),
        (token("g-9", "globex", "admin"), "u-100"),
    ] {
        let (status, _) = app
            .send(
                status_route,
                &[("user_id", user), ("export_id", id)],
                &who,
                None,
                &[],
            )
            .await;
        assert!(matches!(status, 403 | 404), "{status}");
    }
    let (status, _) = app
        .send(
            "GET /me/exports/{export_id}",
            &[("export_id", id)],
            &token("u-200", "acme", "customer"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404, "another person's export is not theirs");
    let (status, _) = app
        .send(
            "GET /me/exports/{export_id}",
            &[("export_id", id)],
            &token("u-100", "globex", "customer"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404, "the same user id in another tenant");

    // The link is signed: altered, the storage refuses it.
    let url = done["download"]["url"].as_str().unwrap();
    let signature = url.split("X-Amz-Signature=").nth(1).unwrap();
    let signature = &signature[..64];
    let forged = url.replace(signature, &"0".repeat(64));
    let (status, _) = http_get_bytes(&forged).await;
    assert_eq!(status, 403, "a forged link");
    let other_key = url.replace(id.as_str(), "01HZX3K7Q8R9S0T1V2W3X4Y5Z6");
    let (status, _) = http_get_bytes(&other_key).await;
    assert_eq!(status, 403, "another archive with this link's signature");

    // Both exports are in the audit log, with who asked.
    let (_, log) = app
        .send(
            "GET /admin/audit",
            &[],
            &admin(),
            None,
            &[("action", "user.export")],
        )
        .await;
    let actors: Vec<&str> = log["data"]["entries"]
        .as_array()
        .map(|_| &log["data"]["entries"])
        .unwrap_or_else(|| panic!("{log}"))
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"]["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(actors.len(), 2, "{log}");
    assert!(actors.contains(&"a-9") || actors.contains(&"u-100"));
}
