//! Erasing a person end to end, then proving it: after the job (on the table's
//! stream, as the privacy-jobs function's mapping delivers it), a scan of the whole
//! table and of the bucket finds neither the person's id (but in the tombstones'
//! anonymous reference), nor their email or phone, nor any text they wrote, nor
//! their files; what others wrote stays, and the rooms' counts and numbering hold.

use chat_testkit::{local_s3, token};
use devserver::TestApp;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The person: an id no other id contains.
const ANN: &str = "ann-7f3k";
const EMAIL: &str = "ann.7f3k@example.com";
const PHONE: &str = "+15550177";

fn ann() -> String {
    token(ANN, "acme", "customer")
}

fn admin() -> String {
    token("a-9", "acme", "admin")
}

/// What Ann writes: words nobody else uses.
fn ann_text(n: usize) -> String {
    format!("annwrote{n} zebrafinch{n}")
}

struct World {
    app: TestApp,
    group: String,
    support: String,
    photo: Vec<u8>,
}

async fn post(app: &TestApp, who: &str, room: &str, body: Value) -> (u16, Value) {
    app.send(
        "POST /rooms/{room_id}/messages",
        &[("room_id", room)],
        who,
        Some(body),
        &[],
    )
    .await
}

async fn world() -> World {
    let app = TestApp::new().await;
    devserver::privacy_jobs::serve_privacy_jobs(&app.table.runtime).await;
    app.expect(
        200,
        "PUT /profiles/me",
        &[],
        &ann(),
        json!({"username": "Ann", "email": EMAIL, "phone": PHONE}),
    )
    .await;
    let support = app
        .conversation(&ann(), json!({"title": "Order 99", "agent_id": "a-1"}))
        .await;
    let group = app
        .room(
            &ann(),
            json!({"type": "group", "name": "Book club", "participant_ids": ["u-200"]}),
        )
        .await;
    let agent = token("a-1", "acme", "agent");
    let bob = token("u-200", "acme", "customer");
    assert_eq!(
        post(&app, &ann(), &support, json!({"content": ann_text(1)}))
            .await
            .0,
        201
    );
    assert_eq!(
        post(&app, &agent, &support, json!({"content": "agentreply one"}))
            .await
            .0,
        201
    );
    assert_eq!(
        post(&app, &bob, &group, json!({"content": "bobsays hello"}))
            .await
            .0,
        201
    );
    // Ann's message, edited (its earlier text is kept for moderation until erased).
    let (_, posted) = post(&app, &ann(), &group, json!({"content": ann_text(2)})).await;
    let edited = posted["data"]["id"].as_str().unwrap().to_owned();
    app.expect(
        200,
        "PATCH /rooms/{room_id}/messages/{message_id}",
        &[("room_id", &group), ("message_id", &edited)],
        &ann(),
        json!({"content": ann_text(3)}),
    )
    .await;
    // A photo attached, and one uploaded but never attached.
    let photo: Vec<u8> = (0..2000u32).map(|i| (i * 7 % 253) as u8).collect();
    let mut uploads = Vec::new();
    for _ in 0..2 {
        uploads.push(app.upload(&ann(), &group, "passport.png", &photo).await);
    }
    let (status, _) = post(
        &app,
        &ann(),
        &group,
        json!({"content": ann_text(4), "attachments": [{"name": "passport.png", "upload_id": uploads[0]}]}),
    )
    .await;
    assert_eq!(status, 201);
    // Her settings, a browser, a phone, an export's archive.
    app.expect(
        200,
        "PUT /me/notification-settings",
        &[],
        &ann(),
        json!({"channels": {"push": true, "email": true, "mobile": true}}),
    )
    .await;
    for (key, fixture) in [
        ("POST /me/push-subscriptions", "POST /me/push-subscriptions"),
        ("POST /me/devices", "POST /me/devices"),
    ] {
        let body: Value =
            serde_json::from_str(app.fixtures[fixture]["body"].as_str().unwrap()).unwrap();
        let (status, answer) = app.send(key, &[], &ann(), Some(body), &[]).await;
        assert!((200..300).contains(&status), "{key}: {answer}");
    }
    let (status, _) = post(&app, &ann(), &group, json!({"content": ann_text(5)})).await;
    assert_eq!(status, 201);
    let export = app
        .expect(202, "POST /me/export", &[], &ann(), json!({}))
        .await;
    let id = export["export_id"].as_str().unwrap().to_owned();
    wait_for(
        &app,
        "GET /me/exports/{export_id}",
        &[("export_id", &id)],
        &ann(),
        "done",
    )
    .await;
    // Bob's export holds her words from their room (withdrawn by the erasure).
    let bob = token("u-200", "acme", "customer");
    let export = app
        .expect(202, "POST /me/export", &[], &bob, json!({}))
        .await;
    let id = export["export_id"].as_str().unwrap().to_owned();
    wait_for(
        &app,
        "GET /me/exports/{export_id}",
        &[("export_id", &id)],
        &bob,
        "done",
    )
    .await;
    // An admin's action on her, in the audit log.
    app.expect(
        200,
        "PUT /chat/conversations/{conversation_id}",
        &[("conversation_id", &support)],
        &admin(),
        json!({"status": "pending"}),
    )
    .await;
    World {
        app,
        group,
        support,
        photo,
    }
}

/// Waits (bounded) for a job's status.
async fn wait_for(
    app: &TestApp,
    route: &str,
    params: &[(&str, &str)],
    who: &str,
    status: &str,
) -> Value {
    app.job_ended(route, params, who, &[status]).await
}

/// Ann erased by an admin, waited for: the erasure when done.
async fn erase_ann(app: &TestApp) -> Value {
    let route = "POST /admin/users/{user_id}/erase";
    let started = app
        .expect(202, route, &[("user_id", ANN)], &admin(), json!({}))
        .await;
    let id = started["erasure_id"].as_str().unwrap().to_owned();
    let status = "GET /admin/users/{user_id}/erasures/{erasure_id}";
    let params = [("user_id", ANN), ("erasure_id", id.as_str())];
    wait_for(app, status, &params, &admin(), "done").await
}

/// The proof: every item of the table (tenant acme's partitions and the stack's own
/// ones) and every object of the bucket, as text, searched for Ann.
async fn proof(app: &TestApp, texts: &[String]) {
    let items = app.table.items().await;
    let mut found = Vec::new();
    for item in &items {
        let text = format!("{item:?}");
        for needle in [ANN, EMAIL, PHONE]
            .iter()
            .map(|s| s.to_string())
            .chain(texts.iter().cloned())
        {
            if text.contains(&needle) {
                found.push(format!("{needle} in {text}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "left behind in the table:\n{}",
        found.join("\n")
    );
    let bucket = local_s3().1.join(&app.table.name);
    for entry in walk(&bucket) {
        let name = entry.to_string_lossy().into_owned();
        assert!(!name.contains(ANN), "an object named by her: {name}");
        let bytes = std::fs::read(&entry).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for needle in [ANN, EMAIL, PHONE]
            .iter()
            .map(|s| s.to_string())
            .chain(texts.iter().cloned())
        {
            assert!(!text.contains(&needle), "{needle} in the object {name}");
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_person_is_found_nowhere_and_what_others_wrote_stays() {
    let World {
        app,
        group,
        support,
        photo,
    } = world().await;
    let before = app
        .expect_get(
            "GET /rooms/{room_id}",
            &[("room_id", &group)],
            &token("u-200", "acme", "customer"),
        )
        .await;
    let done = erase_ann(&app).await;
    assert!(done["progress"]["messages_erased"] == 4, "{done}");
    assert!(
        done["progress"]["files_deleted"].as_u64().unwrap() >= 2,
        "{done}"
    );
    let texts: Vec<String> = (1..=5).map(ann_text).collect();
    proof(&app, &texts).await;
    // Her photo's bytes are nowhere in the bucket.
    let bucket = local_s3().1.join(&app.table.name);
    assert!(
        walk(&bucket)
            .iter()
            .all(|f| std::fs::read(f).unwrap() != photo)
    );

    // What others wrote stays; her messages are tombstones, numbered as before.
    let bob = token("u-200", "acme", "customer");
    let after = app
        .expect_get("GET /rooms/{room_id}", &[("room_id", &group)], &bob)
        .await;
    assert_eq!(after["total_messages"], before["total_messages"], "{after}");
    let page = app
        .expect_get(
            "GET /rooms/{room_id}/messages",
            &[("room_id", &group)],
            &bob,
        )
        .await;
    let messages = page["messages"].as_array().unwrap();
    assert!(messages.iter().any(|m| m["content"] == "bobsays hello"));
    let reference = done["reference"].as_str().unwrap();
    let hers: Vec<&Value> = messages
        .iter()
        .filter(|m| m["sender_id"] == reference)
        .collect();
    assert_eq!(hers.len(), 3, "{page}");
    assert!(
        hers.iter()
            .all(|m| m["content"] == "" && m["is_deleted"] == true && m["seq"].is_u64())
    );
    let agent = token("a-1", "acme", "agent");
    let conversation = app
        .expect_get(
            "GET /chat/conversations/{conversation_id}/messages",
            &[("conversation_id", &support)],
            &agent,
        )
        .await;
    assert!(conversation.to_string().contains("agentreply one"));
    // She is in no room; her profile is gone.
    let (status, _) = app
        .send(
            "GET /profiles/{user_id}",
            &[("user_id", ANN)],
            &admin(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404);
    // The audit log says an admin erased someone, and no more.
    let (_, log) = app
        .send(
            "GET /admin/audit",
            &[],
            &admin(),
            None,
            &[("action", "user.erase")],
        )
        .await;
    assert_eq!(
        log["data"]["entries"][0]["target"]["user_id"], reference,
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posting_during_the_erasure_leaves_nothing_behind() {
    let World {
        app,
        group,
        support,
        ..
    } = world().await;
    let app = Arc::new(app);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut posters = tokio::task::JoinSet::new();
    for (n, room) in [group.clone(), support.clone()].into_iter().enumerate() {
        let (app, stop) = (app.clone(), stop.clone());
        posters.spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (status, body) = post(
                    &app,
                    &ann(),
                    &room,
                    json!({"content": ann_text(100 + n * 1000 + i)}),
                )
                .await;
                assert!(matches!(status, 201 | 403 | 404), "{status} {body}");
                i += 1;
                // As fast as a busy person types, not a tight loop.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            i
        });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    erase_ann(&app).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut sent = 0;
    while let Some(n) = posters.join_next().await {
        sent += n.unwrap();
    }
    assert!(sent > 2, "she kept posting during the erasure");
    let texts: Vec<String> = (1..=5)
        .chain((100..100 + sent).chain(1100..1100 + sent))
        .map(ann_text)
        .collect();
    proof(&app, &texts).await;
}

#[tokio::test]
async fn only_admins_erase_and_only_their_tenants_people() {
    let app = TestApp::new().await;
    app.expect(
        200,
        "PUT /profiles/me",
        &[],
        &ann(),
        json!({"username": "Ann"}),
    )
    .await;
    // The admin is someone here too (so their own id is not a 404).
    app.expect(
        200,
        "PUT /profiles/me",
        &[],
        &admin(),
        json!({"username": "Ada"}),
    )
    .await;
    let route = "POST /admin/users/{user_id}/erase";
    let before = app.table.items().await;
    for who in [ann(), token("a-1", "acme", "agent")] {
        let (status, _) = app.send(route, &[("user_id", ANN)], &who, None, &[]).await;
        assert_eq!(status, 403);
    }
    let (status, body) = app
        .send(route, &[("user_id", "a-9")], &admin(), None, &[])
        .await;
    assert_eq!(status, 403, "an admin does not erase themselves: {body}");
    for (who, user) in [
        (token("g-9", "globex", "admin"), ANN),
        (admin(), "nobody-here"),
    ] {
        let (status, _) = app.send(route, &[("user_id", user)], &who, None, &[]).await;
        assert_eq!(status, 404);
    }
    assert_eq!(app.table.items().await, before, "nothing written");
    // An erasure's status is read by the person it erases: another's path is 404.
    let started = app
        .expect(202, route, &[("user_id", ANN)], &admin(), json!({}))
        .await;
    let id = started["erasure_id"].as_str().unwrap();
    let status_route = "GET /admin/users/{user_id}/erasures/{erasure_id}";
    for (who, user) in [(admin(), "u-200"), (token("g-9", "globex", "admin"), ANN)] {
        let (status, _) = app
            .send(
                status_route,
                &[("user_id", user), ("erasure_id", id)],
                &who,
                None,
                &[],
            )
            .await;
        assert_eq!(status, 404);
    }
}
