//! A tenant's retention policy: set by its admins only (validated, audited, its own),
//! and enforced by the privacy-jobs function's sweep: messages older than the policy
//! become tombstones (feed, search and counts agree), files are deleted while their
//! messages stay, closed conversations go whole; nothing younger, nothing of
//! another tenant; a run is bounded and the next resumes; a second run finds nothing.

use chat_testkit::{local_s3, token};
use devserver::TestApp;
use serde_json::{Value, json};
use std::time::Duration as StdDuration;
use time::{Duration, OffsetDateTime};

const ROUTE: &str = "/admin/settings/retention";

fn admin() -> String {
    token("a-9", "acme", "admin")
}

fn customer() -> String {
    token("u-100", "acme", "customer")
}

fn agent() -> String {
    token("a-1", "acme", "agent")
}

fn sweeper(app: &TestApp, removals: u64) -> privacy::Sweeper {
    let runtime = &app.table.runtime;
    privacy::Sweeper::new(
        runtime.store.clone(),
        privacy::uploads_of(runtime),
        privacy::SweepLimits {
            removals,
            lookback_days: 120,
            deadline: StdDuration::from_secs(120),
        },
    )
}

fn days_ago(days: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() - Duration::days(days)
}

async fn set_policy(app: &TestApp, policy: Value) -> Value {
    app.expect(200, &format!("PUT {ROUTE}"), &[], &admin(), policy)
        .await
}

/// `content` said in `room` by `who`, `days` days ago: the message's id.
async fn say(app: &TestApp, who: &str, room: &str, content: &str, days: i64) -> String {
    let posted = Box::pin(chat_core::time::at(
        days_ago(days),
        app.expect(
            201,
            "POST /rooms/{room_id}/messages",
            &[("room_id", room)],
            who,
            json!({ "content": content }),
        ),
    ))
    .await;
    posted["id"].as_str().unwrap().to_owned()
}

/// A support conversation the customer started `days` days ago, with their message.
async fn conversation(app: &TestApp, days: i64, words: &str) -> String {
    let id = Box::pin(chat_core::time::at(
        days_ago(days),
        app.conversation(&customer(), json!({"title": "Help", "agent_id": "a-1"})),
    ))
    .await;
    say(app, &customer(), &id, words, days).await;
    id
}

/// A team room of the customer and u-200.
async fn club(app: &TestApp) -> String {
    app.room(
        &customer(),
        json!({"type": "group", "name": "Club", "participant_ids": ["u-200"]}),
    )
    .await
}

async fn set_status(app: &TestApp, room: &str, status: &str, days: i64) {
    Box::pin(chat_core::time::at(
        days_ago(days),
        app.expect(
            200,
            "PUT /chat/conversations/{conversation_id}",
            &[("conversation_id", room)],
            &agent(),
            json!({ "status": status }),
        ),
    ))
    .await;
}

async fn messages(app: &TestApp, room: &str, who: &str) -> Vec<Value> {
    let page = app
        .expect_get("GET /rooms/{room_id}/messages", &[("room_id", room)], who)
        .await;
    page["messages"].as_array().unwrap().clone()
}

async fn search_hits(app: &TestApp, who: &str, words: &str) -> usize {
    let (status, body) = app
        .send("GET /chat/search", &[], who, None, &[("query", words)])
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["results"]
        .as_array()
        .or(body["data"]["messages"].as_array())
        .map_or(0, Vec::len)
}

/// The room's feed after `after`, as the customer reads it.
async fn feed_after(app: &TestApp, room: &str, after: &str) -> Value {
    let (_, feed) = app
        .send(
            "GET /rooms/{room_id}/events",
            &[("room_id", room)],
            &customer(),
            None,
            &[("after", after)],
        )
        .await;
    feed
}

/// Every item of the table, as text, but those past their time to live (feed events
/// a week after their change: readers skip them, DynamoDB's TTL deletes them; the
/// local one keeps them).
async fn table_text(app: &TestApp) -> Vec<String> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    app.table
        .items()
        .await
        .iter()
        .filter(|i| {
            i.get("expires_at")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
                .is_none_or(|at| at > now)
        })
        // In key order, so that two reads of an item read the same.
        .map(|i| {
            format!(
                "{:?}",
                i.iter().collect::<std::collections::BTreeMap<_, _>>()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_is_for_admins_checked_audited_and_the_tenants_own() {
    let app = TestApp::new().await;
    let get = format!("GET {ROUTE}");
    let put = format!("PUT {ROUTE}");
    let default = app.expect_get(&get, &[], &admin()).await;
    for field in ["messages_days", "files_days", "closed_conversations_days"] {
        assert_eq!(default[field], Value::Null, "everything kept: {default}");
    }
    assert_eq!(default["sweep"]["messages"]["through_day"], Value::Null);

    // Agents and customers: 403 before their body is looked at.
    for who in [agent(), customer()] {
        assert_eq!(app.send(&get, &[], &who, None, &[]).await.0, 403);
        for body in [json!({"messages_days": 30}), json!({"messages_days": "x"})] {
            assert_eq!(app.send(&put, &[], &who, Some(body), &[]).await.0, 403);
        }
    }
    // Every other spelling of a number of days is refused by name, nothing written.
    for (body, field) in [
        (json!({"messages_days": 0}), "messages_days"),
        (json!({"messages_days": -30}), "messages_days"),
        (json!({"messages_days": 30.5}), "messages_days"),
        (json!({"files_days": "30"}), "files_days"),
        (json!({"files_days": 3651}), "files_days"),
        (json!({"files_days": [30]}), "files_days"),
        (
            json!({"closed_conversations_days": true}),
            "closed_conversations_days",
        ),
        (
            json!({"closed_conversations_days": {"days": 1}}),
            "closed_conversations_days",
        ),
    ] {
        let (status, answer) = app.send(&put, &[], &admin(), Some(body.clone()), &[]).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(
            answer["error"]["details"]["field"], field,
            "{body}: {answer}"
        );
    }
    let (status, answer) = app
        .send(&put, &[], &admin(), Some(json!({"message_days": 30})), &[])
        .await;
    assert_eq!(
        status, 422,
        "a misspelt field is not 'keep forever': {answer}"
    );
    assert_eq!(app.expect_get(&get, &[], &admin()).await, default);
    let audit = app.expect_get("GET /admin/audit", &[], &admin()).await;
    assert!(!audit.to_string().contains("retention.update"), "{audit}");
    assert!(
        app.table
            .runtime
            .store
            .retention_tenants()
            .await
            .unwrap()
            .is_empty(),
        "refused policies are not swept"
    );

    // An admin sets it: answered, kept, audited once with its caller.
    let policy = json!({"messages_days": 30, "files_days": null, "closed_conversations_days": 60});
    let saved = set_policy(&app, policy).await;
    assert_eq!(saved["messages_days"], 30);
    assert_eq!(saved["files_days"], Value::Null);
    assert_eq!(saved["closed_conversations_days"], 60);
    assert_eq!(saved["updated_by"], "a-9");
    assert_eq!(app.expect_get(&get, &[], &admin()).await, saved);
    let audit = app.expect_get("GET /admin/audit", &[], &admin()).await;
    let entries: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "retention.update")
        .collect();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["actor"]["user_id"], "a-9", "{audit}");
    let tenants = app.table.runtime.store.retention_tenants().await.unwrap();
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0].0.as_str(), "acme");

    // Another tenant's admin sees their own (none), and changes only theirs.
    let globex = token("a-9", "globex", "admin");
    let theirs = app.expect_get(&get, &[], &globex).await;
    assert_eq!(theirs["messages_days"], Value::Null, "{theirs}");
    app.expect(200, &put, &[], &globex, json!({"files_days": 7}))
        .await;
    assert_eq!(
        app.expect_get(&get, &[], &admin()).await["files_days"],
        Value::Null
    );

    // Keeping everything again takes the tenant off the sweep's list.
    set_policy(&app, json!({})).await;
    let tenants = app.table.runtime.store.retention_tenants().await.unwrap();
    assert_eq!(
        tenants.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(),
        ["globex"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_removes_what_the_policy_says_and_nothing_else() {
    let app = TestApp::new().await;
    // A conversation resolved 70 days ago: older than the 60 days closed ones are kept.
    let gone = conversation(&app, 90, "oldclosed walrus").await;
    set_status(&app, &gone, "resolved", 70).await;
    // Resolved 30 days ago, and open since 90: both stay (their old messages do not).
    let recent = conversation(&app, 90, "recentclosed heron").await;
    set_status(&app, &recent, "resolved", 30).await;
    let open = conversation(&app, 90, "stillopen otter").await;
    // Resolved 70 days ago too, but the customer wrote again today (it reopened), or
    // an agent noted something yesterday: both stay.
    let replied = conversation(&app, 90, "repliedto puffin").await;
    set_status(&app, &replied, "resolved", 70).await;
    say(&app, &customer(), &replied, "back again today", 0).await;
    let noted = conversation(&app, 90, "notedon gannet").await;
    set_status(&app, &noted, "resolved", 70).await;
    Box::pin(chat_core::time::at(
        days_ago(1),
        app.expect(
            201,
            "POST /rooms/{room_id}/messages",
            &[("room_id", &noted)],
            &agent(),
            json!({"content": "check the refund", "message_type": "note"}),
        ),
    ))
    .await;
    // A file of the conversation that goes, in the bucket.
    let bucket = local_s3().1.join(&app.table.name);
    let object = bucket.join(format!("files/acme/{gone}/01HZX3K7Q8R9S0T1V2W3XFILE0"));
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::write(&object, b"old scan").unwrap();
    // A group's messages 40, 20 and 1 days old.
    let group = club(&app).await;
    let forty = say(&app, &customer(), &group, "fortydays alpha", 40).await;
    say(&app, &customer(), &group, "twentydays beta", 20).await;
    say(&app, &customer(), &group, "yesterday gamma", 1).await;
    // Another tenant's old message, under no policy.
    let theirs = token("u-100", "globex", "customer");
    let their_room = app
        .room(
            &theirs,
            json!({"type": "group", "name": "Club", "participant_ids": ["u-200"]}),
        )
        .await;
    say(&app, &theirs, &their_room, "globexold delta", 40).await;
    let before = app
        .expect_get("GET /rooms/{room_id}", &[("room_id", &group)], &customer())
        .await;
    set_policy(
        &app,
        json!({"messages_days": 30, "closed_conversations_days": 60}),
    )
    .await;

    let summary = sweeper(&app, 1000).run().await.unwrap();
    assert!(summary.caught_up, "{summary:?}");
    assert_eq!(
        (
            summary.tenants,
            summary.conversations,
            summary.messages,
            summary.files
        ),
        (1, 1, 5, 0),
        "the resolved conversation; the 90-day messages of the four that stay and the 40-day one: {summary:?}"
    );

    // The closed conversation is gone: for its members, search, the table, the bucket.
    let (status, _) = app
        .send(
            "GET /chat/conversations/{conversation_id}",
            &[("conversation_id", &gone)],
            &customer(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404);
    assert!(!object.exists(), "its files are deleted");
    let items = table_text(&app).await;
    for words in [
        "oldclosed",
        "walrus",
        "recentclosed",
        "stillopen",
        "repliedto",
        "notedon",
        "fortydays",
    ] {
        let left: Vec<&String> = items.iter().filter(|i| i.contains(words)).collect();
        assert!(left.is_empty(), "{words} left in {left:?}");
    }
    let partition = format!("T#acme#R#{gone}");
    let kept: Vec<&String> = items.iter().filter(|i| i.contains(&partition)).collect();
    assert!(
        kept.iter()
            .all(|i| i.contains("\"META\"") || i.contains("STATS#") || i.contains("room.deleted")),
        "only its deletion marker, its deletion's event and its day stats: {kept:#?}"
    );
    let inbox = app
        .expect_get("GET /chat/conversations", &[], &customer())
        .await;
    assert!(!inbox.to_string().contains(&gone), "{inbox}");

    // Old messages are tombstones in their place; younger ones and counts stay.
    let listed = messages(&app, &group, &customer()).await;
    let old = listed.iter().find(|m| m["id"] == forty.as_str()).unwrap();
    assert_eq!(
        (old["is_deleted"].clone(), old["content"].clone()),
        (json!(true), json!("")),
        "{old}"
    );
    assert!(old["seq"].is_u64());
    let text = Value::Array(listed.clone()).to_string();
    assert!(text.contains("twentydays beta") && text.contains("yesterday gamma"));
    let after = app
        .expect_get("GET /rooms/{room_id}", &[("room_id", &group)], &customer())
        .await;
    assert_eq!(after["total_messages"], before["total_messages"]);
    assert_eq!(search_hits(&app, &customer(), "fortydays").await, 0);
    assert_eq!(search_hits(&app, &customer(), "twentydays").await, 1);
    // Its members' feed says so, as an admin's delete would (from where they were:
    // the changes of 40 days ago are past the feed's week).
    let seen = before["last_seq"]
        .as_u64()
        .expect("the room's last seq")
        .to_string();
    let feed = feed_after(&app, &group, &seen).await;
    let deleted: Vec<&Value> = feed["data"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{feed}"))
        .iter()
        .filter(|e| e["type"] == "message.deleted")
        .collect();
    assert_eq!(deleted.len(), 1, "{feed}");
    assert_eq!(deleted[0]["actor_id"], "system:retention", "{feed}");
    assert!(!feed.to_string().contains("fortydays"), "{feed}");
    // The conversations that stay: their old messages are tombstones, their new
    // ones are there.
    for room in [&recent, &open, &replied, &noted] {
        // Newest first.
        let listed = messages(&app, room, &agent()).await;
        let (oldest, newer) = listed.split_last().unwrap();
        assert_eq!(oldest["is_deleted"], true, "{listed:?}");
        assert!(newer.iter().all(|m| m["is_deleted"] == false), "{listed:?}");
    }
    // Another tenant's old message is untouched.
    let listed = messages(&app, &their_room, &theirs).await;
    assert_eq!(listed[0]["content"], "globexold delta");

    // The policy shows the progress; a second run finds nothing and changes nothing.
    let progress = app.expect_get(&format!("GET {ROUTE}"), &[], &admin()).await;
    assert_eq!(progress["sweep"]["messages"]["removed"], 5, "{progress}");
    assert_eq!(progress["sweep"]["closed_conversations"]["removed"], 1);
    let expected = chat_core::store::retention::last_expired_day(OffsetDateTime::now_utc(), 30);
    assert_eq!(
        progress["sweep"]["messages"]["through_day"],
        chat_core::store::retention::day_string(expected)
    );
    let items = table_text(&app).await;
    let again = sweeper(&app, 1000).run().await.unwrap();
    assert_eq!(
        (again.messages, again.conversations, again.files),
        (0, 0, 0)
    );
    assert!(again.caught_up);
    let mut after = table_text(&app).await;
    let mut items = items;
    // Only the policy's own record of the run moves.
    items.retain(|i| !i.contains("RETENTION"));
    after.retain(|i| !i.contains("RETENTION"));
    items.sort();
    after.sort();
    assert_eq!(items, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stops_at_its_budget_and_the_next_resumes() {
    let app = TestApp::new().await;
    let group = club(&app).await;
    for n in 0..5 {
        say(&app, &customer(), &group, &format!("budgeted{n}"), 40).await;
    }
    set_policy(&app, json!({"messages_days": 30})).await;
    let mut removed = Vec::new();
    loop {
        let summary = sweeper(&app, 2).run().await.unwrap();
        removed.push(summary.messages);
        let progress = app.expect_get(&format!("GET {ROUTE}"), &[], &admin()).await;
        match summary.caught_up {
            false => assert!(
                progress["sweep"]["messages"]["through_day"]
                    .as_str()
                    .is_none_or(|d| d < chat_core::time::format(days_ago(40)).as_str()),
                "an unfinished day is not recorded as swept: {progress}"
            ),
            true => break,
        }
        assert!(removed.len() < 10, "{removed:?}");
    }
    assert_eq!(removed, [2, 2, 1], "two per run, the rest in the last");
    let listed = messages(&app, &group, &customer()).await;
    assert!(listed.iter().all(|m| m["is_deleted"] == true), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_go_after_their_days_and_their_messages_stay() {
    let app = TestApp::new().await;
    let group = club(&app).await;
    let bytes: Vec<u8> = (0..1500u32).map(|i| (i * 11 % 251) as u8).collect();
    let upload = app.upload(&customer(), &group, "scan.png", &bytes).await;
    let posted = app
        .expect(
            201,
            "POST /rooms/{room_id}/messages",
            &[("room_id", &group)],
            &customer(),
            json!({"content": "my scan", "attachments": [
                {"name": "scan.png", "upload_id": upload},
                {"name": "guide", "type": "text/html", "url": "https://example.com/guide"}
            ]}),
        )
        .await;
    let message = posted["id"].as_str().unwrap().to_owned();
    let object = local_s3()
        .1
        .join(&app.table.name)
        .join(format!("files/acme/{group}/{upload}"));
    assert!(object.exists());
    set_policy(&app, json!({"files_days": 12})).await;
    let now = OffsetDateTime::now_utc();
    // Eleven days on, the file is younger than its twelve.
    let early = sweeper(&app, 100)
        .run_at(now + Duration::days(11))
        .await
        .unwrap();
    assert_eq!(early.files, 0, "{early:?}");
    assert!(object.exists());
    // Thirteen days on, it goes; the message, its text and its link stay.
    let due = sweeper(&app, 100)
        .run_at(now + Duration::days(13))
        .await
        .unwrap();
    assert_eq!(due.files, 1, "{due:?}");
    assert!(!object.exists(), "the object is deleted");
    let listed = messages(&app, &group, &customer()).await;
    let kept = listed.iter().find(|m| m["id"] == message.as_str()).unwrap();
    assert_eq!(kept["content"], "my scan");
    assert_eq!(kept["is_deleted"], false);
    assert!(kept["files_expired_at"].is_string(), "{kept}");
    let attachments = kept["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1, "{kept}");
    assert_eq!(attachments[0]["url"], "https://example.com/guide");
    let (status, _) = app
        .send(
            "GET /rooms/{room_id}/attachments/{upload_id}",
            &[("room_id", &group), ("upload_id", &upload)],
            &customer(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404, "its download link is gone with it");
    // The members' feed carries the message as it is now (its earlier event redacted).
    let feed = feed_after(&app, &group, "0").await;
    assert!(!feed.to_string().contains(&upload), "{feed}");
    let again = sweeper(&app, 100)
        .run_at(now + Duration::days(14))
        .await
        .unwrap();
    assert_eq!(again.files, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_written_to_after_the_sweep_read_it_is_not_deleted() {
    let app = TestApp::new().await;
    let room = conversation(&app, 90, "racing kittiwake").await;
    set_status(&app, &room, "resolved", 70).await;
    let store = &app.table.runtime.store;
    let org = chat_core::ids::OrgId::parse("acme").unwrap();
    let id = chat_core::ids::RoomId::parse(&room).unwrap();
    let read = store.get_room(&org, &id).await.unwrap().unwrap();
    // The agent writes (no reopening, no wait started) after the sweep's read.
    say(&app, &agent(), &room, "one more thing", 0).await;
    let system = chat_core::auth::Principal::retention(&org);
    let seen = read.last_message_at.clone();
    let outcome =
        Box::pin(store.delete_room_while(&system, read, |r| r.last_message_at == seen)).await;
    assert!(
        matches!(outcome, Err(chat_core::ApiError::NotFound(_))),
        "the delete is built again from the room as it is, and declined: {outcome:?}"
    );
    let listed = messages(&app, &room, &agent()).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
}
