//! Notifications to people who are away (docs/notifications.md), end to end: the
//! dev server's `notify` consumer on DynamoDB Local's stream, Web Push through the
//! guarded client to `web-push-testing` (a push service on loopback that checks the
//! VAPID signature and decrypts), the preferences and subscription routes. Each
//! "nothing is sent" case is followed by a message that is sent, in the same room:
//! the stream takes a room's messages in order, so when the second arrives the first
//! was decided.

use chat_core::ids::{OrgId, UserId};
use chat_testkit::{BrowserSubscription, PushService, token};
use devserver::TestApp;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// How long a test waits for a push it expects (loopback; a bound, not a measurement).
const PATIENCE: Duration = Duration::from_secs(30);

struct Stack {
    app: TestApp,
    push: PushService,
    notifications: std::sync::Arc<devserver::notify::Notifications>,
    ws_port: u16,
}

impl Stack {
    async fn new() -> Stack {
        Self::with_grace(30).await
    }

    /// With the looking grace period shortened (the default is 30 s).
    async fn with_grace(secs: i64) -> Stack {
        let app = TestApp::new().await;
        let mut runtime = app.table.runtime.clone();
        runtime.config.notify.grace_secs = secs;
        let notifications = devserver::notify::serve_notifications(&runtime)
            .await
            .expect("notifications on");
        let (ws_port, _) = devserver::realtime::serve_realtime(&app.table.runtime, 0)
            .await
            .unwrap();
        Stack {
            app,
            push: PushService::start().await,
            notifications,
            ws_port,
        }
    }

    /// A browser of `tok`'s user, subscribed with the stack's VAPID key.
    async fn browser(&self, tok: &str) -> BrowserSubscription {
        let settings = self
            .app
            .expect_get("GET /me/notification-settings", &[], tok)
            .await;
        let key = settings["web_push"]["vapid_public_key"]
            .as_str()
            .expect("the stack has a VAPID key (scripts/local.env)");
        let browser = self.push.subscribe(key).await;
        self.app
            .expect(
                201,
                "POST /me/push-subscriptions",
                &[],
                tok,
                browser.json.clone(),
            )
            .await;
        browser
    }

    async fn conversation(&self, customer: &str, agent: &str) -> String {
        let body = json!({"title": "Where is my order", "agent_id": agent});
        let made = self
            .app
            .expect(201, "POST /chat/conversations", &[], customer, body)
            .await;
        made["conversation_id"].as_str().unwrap().to_owned()
    }

    async fn post(&self, room: &str, tok: &str, body: Value) -> Value {
        let key = "POST /rooms/{room_id}/messages";
        self.app
            .expect(201, key, &[("room_id", room)], tok, body)
            .await
    }

    /// Waits until `browser` has received `count` pushes: them.
    async fn pushes(&self, browser: &BrowserSubscription, count: usize) -> Vec<Value> {
        self.pushes_of("pushes", browser, count).await
    }

    async fn pushes_of(
        &self,
        what: &str,
        browser: &BrowserSubscription,
        count: usize,
    ) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let got = self.push.received(browser).await;
            if got.len() >= count || started.elapsed() > PATIENCE {
                assert_eq!(got.len(), count, "{what}: {got:?}");
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn customer() -> String {
    token("u-100", "acme", "customer")
}

fn agent() -> String {
    token("a-1", "acme", "agent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_away_customer_gets_the_agents_answer_as_an_encrypted_push_once_per_burst() {
    let stack = Stack::new().await;
    let browser = stack.browser(&customer()).await;
    let room = stack.conversation(&customer(), "a-1").await;
    stack
        .post(
            &room,
            &customer(),
            json!({"content": "Where is parcel 4242?"}),
        )
        .await;
    stack
        .post(&room, &agent(), json!({"content": "It ships today"}))
        .await;
    let first = stack.pushes(&browser, 1).await;
    assert_eq!(first[0]["room_id"], room.as_str());
    assert_eq!(first[0]["body"], "It ships today");
    assert_eq!(first[0]["count"], 1);
    assert_eq!(first[0]["path"], format!("/chat/conversations/{room}"));

    // A burst in the window is counted, not sent: two more, then nothing new.
    for text in ["Tracking: 1Z999", "Anything else?"] {
        stack.post(&room, &agent(), json!({"content": text})).await;
    }
    let org = OrgId::parse("acme").unwrap();
    let window = wait_for_pending(&stack, &org, "u-100", &room, 2).await;
    assert_eq!(window, 2);
    assert_eq!(stack.push.received(&browser).await.len(), 1, "collapsed");

    // A stream record handled again (a retried batch) notifies nobody twice.
    let events = stack
        .app
        .table
        .runtime
        .store
        .room_events(
            &chat_core::Principal {
                user: UserId::parse("a-1").unwrap(),
                org: org.clone(),
                role: chat_core::ids::Role::Agent,
            },
            &chat_core::ids::RoomId::parse(&room).unwrap(),
            0,
            100,
        )
        .await
        .unwrap();
    let answer = events
        .events
        .iter()
        .find(|e| e.data.contains("It ships today"))
        .unwrap();
    let outcomes = stack
        .notifications
        .notifier()
        .notify(&org, answer)
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![("u-100".to_owned(), webhooks::notify::Outcome::Duplicate)]
    );
    assert_eq!(stack.push.received(&browser).await.len(), 1);
}

/// The collapse window's count of messages not yet told, once it reaches `at_least`.
async fn wait_for_pending(
    stack: &Stack,
    org: &OrgId,
    user: &str,
    room: &str,
    at_least: u64,
) -> u64 {
    use chat_core::item::ItemExt;
    let started = Instant::now();
    loop {
        let key = (format!("T#{org}#USER#{user}"), format!("NOTE#{room}"));
        let item = stack
            .app
            .table
            .runtime
            .store
            .table()
            .get(key, "test")
            .await
            .unwrap();
        let pending = item.and_then(|i| i.num::<u64>("pending")).unwrap_or(0);
        if pending >= at_least || started.elapsed() > PATIENCE {
            return pending;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_mutes_quiet_hours_and_a_closed_channel_each_keep_a_push_away() {
    let stack = Stack::new().await;
    let browser = stack.browser(&customer()).await;

    // An internal note never reaches the customer; the answer after it does.
    let room = stack.conversation(&customer(), "a-1").await;
    let note = json!({"content": "VIP, refund approved", "message_type": "note"});
    stack.post(&room, &agent(), note).await;
    stack
        .post(&room, &agent(), json!({"content": "Refund on its way"}))
        .await;
    let got = stack.pushes(&browser, 1).await;
    assert_eq!(got[0]["body"], "Refund on its way");
    assert!(!got[0].to_string().contains("VIP"));

    // The agent away too: a customer's message after a skipped one, in the same room,
    // reaches the agent once the skipped one was decided (a room's messages are
    // decided in order), so the state can change after it.
    let agents = stack.browser(&agent()).await;
    let mut synced = 0;
    let mut sync = async |room: &str| {
        stack
            .post(room, &customer(), json!({"content": "thanks"}))
            .await;
        synced += 1;
        stack.pushes_of("the agent's", &agents, synced).await;
    };

    // Muted: nothing; unmuted: the next one.
    let room = stack.conversation(&customer(), "a-1").await;
    let mute = json!({"muted_until": crate_time_in(3600)});
    let key = "PUT /rooms/{room_id}/notifications";
    let muted = stack
        .app
        .expect(200, key, &[("room_id", &room)], &customer(), mute)
        .await;
    assert!(muted["muted_until"].is_string());
    stack
        .post(&room, &agent(), json!({"content": "while muted"}))
        .await;
    sync(&room).await;
    stack
        .app
        .expect(
            200,
            key,
            &[("room_id", &room)],
            &customer(),
            json!({"muted_until": null}),
        )
        .await;
    stack
        .post(&room, &agent(), json!({"content": "after unmuting"}))
        .await;
    let got = stack.pushes(&browser, 2).await;
    assert_eq!(got[1]["body"], "after unmuting");

    // Quiet hours around now (in UTC), then push off: nothing; back on: the next.
    let now = time::OffsetDateTime::now_utc();
    let hhmm = |t: time::OffsetDateTime| format!("{:02}:{:02}", t.hour(), t.minute());
    let quiet = json!({"quiet_hours": {
        "start": hhmm(now - time::Duration::hours(1)),
        "end": hhmm(now + time::Duration::hours(1)),
        "time_zone": "UTC"
    }});
    let settings = "PUT /me/notification-settings";
    stack
        .app
        .expect(200, settings, &[], &customer(), quiet)
        .await;
    let room = stack.conversation(&customer(), "a-1").await;
    stack
        .post(&room, &agent(), json!({"content": "in quiet hours"}))
        .await;
    sync(&room).await;
    let off = json!({"channels": {"push": false, "email": true, "mobile": true}});
    stack.app.expect(200, settings, &[], &customer(), off).await;
    let room = stack.conversation(&customer(), "a-1").await;
    stack
        .post(&room, &agent(), json!({"content": "with push off"}))
        .await;
    sync(&room).await;
    stack
        .app
        .expect(200, settings, &[], &customer(), json!({}))
        .await;
    stack
        .post(&room, &agent(), json!({"content": "push back on"}))
        .await;
    let got = stack.pushes(&browser, 3).await;
    assert_eq!(got[2]["body"], "push back on");
    assert_eq!(got[2]["count"], 1, "skipped messages are not counted");
}

fn crate_time_in(secs: i64) -> String {
    chat_core::time::format(time::OffsetDateTime::now_utc() + time::Duration::seconds(secs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_looking_is_not_notified_and_a_removed_member_or_another_tenant_never_is() {
    let stack = Stack::with_grace(5).await;
    let browser = stack.browser(&customer()).await;
    let room = stack.conversation(&customer(), "a-1").await;

    // Connected and reading: looking, not notified; past the grace period (5 s
    // here), notified though still connected.
    let (_, ticket) = stack
        .app
        .send("POST /realtime/tickets", &[], &customer(), None, &[])
        .await;
    let url = format!(
        "ws://127.0.0.1:{}/?ticket={}",
        stack.ws_port,
        ticket["data"]["ticket"].as_str().unwrap()
    );
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    read(&stack, &room).await;
    stack
        .post(&room, &agent(), json!({"content": "seen live"}))
        .await;
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    stack
        .post(
            &room,
            &agent(),
            json!({"content": "after the grace period"}),
        )
        .await;
    let got = stack.pushes_of("past the grace", &browser, 1).await;
    assert_eq!(got[0]["body"], "after the grace period");

    // Read just now, but the tab is closed (no connection): notified.
    drop(socket);
    wait_until_disconnected(&stack, "u-100").await;
    let room = stack.conversation(&customer(), "a-1").await;
    read(&stack, &room).await;
    stack
        .post(&room, &agent(), json!({"content": "after closing the tab"}))
        .await;
    let got = stack.pushes_of("tab closed", &browser, 2).await;
    assert_eq!(got[1]["body"], "after closing the tab");

    // Removed from a group: nothing of it; a group they are in: that one.
    let teammate = token("u-300", "acme", "customer");
    let theirs = stack.browser(&teammate).await;
    let body = json!({"type": "group", "name": "Team", "participant_ids": ["u-300"]});
    let group = stack
        .app
        .expect(201, "POST /rooms", &[], &customer(), body)
        .await;
    let group = group["id"].as_str().unwrap().to_owned();
    let (status, _) = stack
        .app
        .send(
            "DELETE /rooms/{room_id}/members/{user_id}",
            &[("room_id", &group), ("user_id", "u-300")],
            &customer(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);
    stack
        .post(&group, &customer(), json!({"content": "after the removal"}))
        .await;
    let body = json!({"type": "group", "name": "Team 2", "participant_ids": ["u-300"]});
    let second = stack
        .app
        .expect(201, "POST /rooms", &[], &customer(), body)
        .await;
    let second = second["id"].as_str().unwrap().to_owned();
    stack
        .post(&second, &customer(), json!({"content": "in the new team"}))
        .await;
    let got = stack.pushes_of("the new team's", &theirs, 1).await;
    assert_eq!(got[0]["room_id"], second.as_str());

    // The same user id in another tenant hears none of acme's.
    let namesake = stack.browser(&token("u-100", "globex", "customer")).await;
    let room = stack.conversation(&customer(), "a-1").await;
    stack
        .post(&room, &agent(), json!({"content": "acme only"}))
        .await;
    let _ = stack.pushes(&browser, 3).await;
    assert_eq!(stack.push.received(&namesake).await, Vec::<Value>::new());
}

/// `key` refuses `body` with `status`, and nothing is written.
async fn refused(
    stack: &Stack,
    key: &str,
    params: &[(&str, &str)],
    tok: &str,
    body: Value,
    status: u16,
) {
    let before = written_by_requests(stack).await;
    let (got, answer) = stack
        .app
        .send(key, params, tok, Some(body.clone()), &[])
        .await;
    assert_eq!(got, status, "{key} {body}: {answer}");
    assert_eq!(
        written_by_requests(stack).await,
        before,
        "{key} {body}: nothing written"
    );
}

/// The table but for what the stream's consumers write meanwhile on their own (users'
/// inbox feeds, collapse windows).
async fn written_by_requests(stack: &Stack) -> Vec<chat_core::item::Item> {
    use chat_core::item::ItemExt;
    let by_consumers = [
        "inbox_feed",
        "inbox_event",
        "inbox_change",
        "notification_window",
    ];
    let mut items = stack.app.table.items().await;
    items.retain(|i| !by_consumers.contains(&i.str("entity").unwrap_or_default()));
    items
}

/// The customer reads the room (their marker moves; `read_at` is now).
async fn read(stack: &Stack, room: &str) {
    let key = "POST /rooms/{room_id}/read";
    let (status, _) = stack
        .app
        .send(key, &[("room_id", room)], &customer(), Some(json!({})), &[])
        .await;
    assert_eq!(status, 200);
}

/// Until the user's connection is gone from their partition ($disconnect ran).
async fn wait_until_disconnected(stack: &Stack, user: &str) {
    let store = &stack.app.table.runtime.store;
    let (org, user) = (OrgId::parse("acme").unwrap(), UserId::parse(user).unwrap());
    let started = Instant::now();
    while !store
        .inbox_listeners(&org, &user)
        .await
        .unwrap()
        .connections
        .is_empty()
    {
        assert!(started.elapsed() < PATIENCE, "the connection never closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_the_push_service_forgot_is_forgotten_here_too() {
    let stack = Stack::new().await;
    let browser = stack.browser(&customer()).await;
    stack.push.expire(&browser).await;
    let room = stack.conversation(&customer(), "a-1").await;
    stack
        .post(&room, &agent(), json!({"content": "to a gone browser"}))
        .await;
    let store = &stack.app.table.runtime.store;
    let (org, user) = (
        OrgId::parse("acme").unwrap(),
        UserId::parse("u-100").unwrap(),
    );
    let started = Instant::now();
    while !store
        .push_subscriptions(&org, &user)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(started.elapsed() < PATIENCE, "the 410 never removed it");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Counted out too: ten new ones fit again.
    for n in 0..10 {
        let other = stack.push.subscribe(&vapid(&stack).await).await;
        let (status, body) = stack
            .app
            .send(
                "POST /me/push-subscriptions",
                &[],
                &customer(),
                Some(other.json),
                &[],
            )
            .await;
        assert_eq!(status, 201, "{n}: {body}");
    }
}

async fn vapid(stack: &Stack) -> String {
    let settings = stack
        .app
        .expect_get("GET /me/notification-settings", &[], &customer())
        .await;
    settings["web_push"]["vapid_public_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_and_subscriptions_refuse_bad_input_and_write_nothing() {
    let stack = Stack::new().await;
    let settings = "PUT /me/notification-settings";
    for bad in [
        json!({"quiet_hours": {"start": "25:00", "end": "07:00", "time_zone": "UTC"}}),
        json!({"quiet_hours": {"start": "22:00", "end": "07:00", "time_zone": "Mars/Base"}}),
        json!({"quiet_hours": {"start": "22:00", "end": "22:00", "time_zone": "UTC"}}),
        json!({"email_digest_minutes": 0}),
        json!({"channels": {"push": false}}),
    ] {
        refused(&stack, settings, &[], &customer(), bad, 422).await;
    }
    let defaults = stack
        .app
        .expect_get("GET /me/notification-settings", &[], &customer())
        .await;
    assert_eq!(
        defaults["channels"],
        json!({"push": true, "email": true, "mobile": true})
    );
    assert_eq!(defaults["quiet_hours"], Value::Null);

    // Endpoints: a browser push service's, or the local one; nothing else.
    let key = vapid(&stack).await;
    let browser = stack.push.subscribe(&key).await;
    let with_endpoint = |endpoint: &str| {
        let mut body = browser.json.clone();
        body["endpoint"] = json!(endpoint);
        body
    };
    for endpoint in [
        "https://internal.example.com/push",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:8090/notify/x",
        "https://fcm.googleapis.com.attacker.example/x",
        "ftp://fcm.googleapis.com/x",
    ] {
        let key = "POST /me/push-subscriptions";
        refused(&stack, key, &[], &customer(), with_endpoint(endpoint), 422).await;
    }

    // Another member's subscription cannot be deleted: it is not theirs to name.
    let made = stack
        .app
        .expect(
            201,
            "POST /me/push-subscriptions",
            &[],
            &customer(),
            browser.json.clone(),
        )
        .await;
    let id = made["subscription_id"].as_str().unwrap().to_owned();
    let again = stack
        .app
        .send(
            "POST /me/push-subscriptions",
            &[],
            &customer(),
            Some(browser.json.clone()),
            &[],
        )
        .await;
    assert_eq!(again.0, 200, "the same browser again renews it");
    let delete = "DELETE /me/push-subscriptions/{subscription_id}";
    for (tok, id) in [
        (token("u-200", "acme", "customer"), id.as_str()),
        (token("u-100", "globex", "customer"), id.as_str()),
        (customer(), "0123456789ABCDEF0123456789ABCDEF"),
        (customer(), "../../PROFILE"),
    ] {
        let (status, _) = stack
            .app
            .send(delete, &[("subscription_id", id)], &tok, None, &[])
            .await;
        assert_eq!(status, 404, "{id}");
    }
    let (status, _) = stack
        .app
        .send(delete, &[("subscription_id", &id)], &customer(), None, &[])
        .await;
    assert_eq!(status, 200);

    // Muting: members only (staff who merely see a support conversation: 403).
    let room = stack.conversation(&customer(), "a-1").await;
    let key = "PUT /rooms/{room_id}/notifications";
    let params = [("room_id", room.as_str())];
    // Who may not mute it is refused before the body is read (it is not a time).
    let not_a_time = json!({"muted_until": "tomorrow"});
    for (tok, status) in [
        (token("a-2", "acme", "agent"), 403),
        (token("u-200", "acme", "customer"), 404),
        (token("u-100", "globex", "customer"), 404),
    ] {
        refused(&stack, key, &params, &tok, not_a_time.clone(), status).await;
    }
    for bad in [
        json!("tomorrow"),
        json!("2001-01-01T00:00:00Z"),
        json!(crate_time_in(400 * 86_400)),
    ] {
        let body = json!({"muted_until": bad});
        refused(&stack, key, &params, &customer(), body, 422).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_new_subscriptions_keeps_the_limit() {
    let stack = Stack::new().await;
    let key = vapid(&stack).await;
    let mut browsers = Vec::new();
    for _ in 0..16 {
        browsers.push(stack.push.subscribe(&key).await);
    }
    let app = &stack.app;
    let answers: Vec<u16> = futures_util::future::join_all(browsers.iter().map(|b| async move {
        app.send(
            "POST /me/push-subscriptions",
            &[],
            &customer(),
            Some(b.json.clone()),
            &[],
        )
        .await
        .0
    }))
    .await;
    assert_eq!(
        answers.iter().filter(|s| **s == 201).count(),
        10,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|s| **s == 409).count(),
        6,
        "{answers:?}"
    );
    let (org, user) = (
        OrgId::parse("acme").unwrap(),
        UserId::parse("u-100").unwrap(),
    );
    let kept = app
        .table
        .runtime
        .store
        .push_subscriptions(&org, &user)
        .await
        .unwrap();
    assert_eq!(kept.len(), 10);
}
