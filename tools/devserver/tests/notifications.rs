//! Notifications to people who are away (docs/notifications.md), end to end: the
//! dev server's `notify` consumer on DynamoDB Local's stream, Web Push through the
//! guarded client to `web-push-testing` (a push service on loopback that checks the
//! VAPID signature and decrypts), the preferences and subscription routes. Each
//! "nothing is sent" case is followed by a message that is sent, in the same room:
//! the stream takes a room's messages in order, so when the second arrives the first
//! was decided.

use chat_core::ids::{OrgId, UserId};
use chat_testkit::{BrowserSubscription, MailService, PushService, SnsService, token};
use devserver::TestApp;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// How long a test waits for a push it expects (loopback; a bound, not a measurement).
const PATIENCE: Duration = Duration::from_secs(30);

struct Stack {
    app: TestApp,
    push: PushService,
    mail: MailService,
    sns: SnsService,
    notifications: std::sync::Arc<devserver::notify::Notifications>,
    ws_port: u16,
}

impl Stack {
    async fn new() -> Stack {
        Self::with_grace(30).await
    }

    /// With the looking grace period shortened (the default is 30 s).
    async fn with_grace(secs: i64) -> Stack {
        Self::with(secs, 120).await
    }

    /// With this grace period and collapse window (seconds).
    async fn with(grace_secs: i64, window_secs: i64) -> Stack {
        let app = TestApp::new().await;
        let mail = MailService::start().await;
        let mut runtime = app.table.runtime.clone();
        runtime.config.notify.grace_secs = grace_secs;
        runtime.config.notify.window_secs = window_secs;
        let email = runtime
            .config
            .notify
            .email
            .as_mut()
            .expect("email is on in scripts/local.env");
        email.ses_endpoint = Some(mail.url());
        let sns = SnsService::start().await;
        runtime.config.notify.sns_endpoint = Some(sns.url());
        runtime.config.notify.sns_ios_application = Some(SnsService::application_arn("APNS"));
        runtime.config.notify.sns_android_application = Some(SnsService::application_arn("GCM"));
        let notifications = devserver::notify::serve_notifications(&runtime)
            .await
            .expect("notifications on");
        let (ws_port, _) = devserver::realtime::serve_realtime(&app.table.runtime, 0)
            .await
            .unwrap();
        Stack {
            app,
            push: PushService::start().await,
            mail,
            sns,
            notifications,
            ws_port,
        }
    }

    /// Gives the tenant the name its mails go out under.
    async fn name_tenant(&self, name: &str) {
        let admin = token("u-900", "acme", "admin");
        self.app
            .expect(
                200,
                "PUT /org/settings",
                &[],
                &admin,
                json!({ "name": name }),
            )
            .await;
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
        vec![webhooks::notify::Notified {
            user: "u-100".to_owned(),
            push: webhooks::notify::Outcome::Duplicate,
            // No address on their profile.
            email: webhooks::notify::Outcome::None,
            // No phone registered.
            mobile: webhooks::notify::Outcome::Skipped(chat_core::store::notify::Skip::NoTarget),
        }]
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

/// `user`'s profile names `address`.
async fn address(stack: &Stack, tok: &str, address: &str) {
    stack
        .app
        .expect(200, "PUT /profiles/me", &[], tok, json!({"email": address}))
        .await;
}

/// Waits until `address` has `count` mails: them.
async fn mails(stack: &Stack, address: &str, count: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let got = stack.mail.mails_to(address).await;
        if got.len() >= count || started.elapsed() > PATIENCE {
            assert_eq!(got.len(), count, "mails to {address}: {got:#?}");
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn header<'a>(mail: &'a Value, name: &str) -> Option<&'a str> {
    mail["headers"].as_array()?.iter().find(|h| {
        h["name"]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })?["value"]
        .as_str()
}

/// The one event of `room` whose data holds `text`.
async fn event_with(stack: &Stack, room: &str, text: &str) -> chat_core::store::Event {
    let store = &stack.app.table.runtime.store;
    let events = store
        .room_events(
            &chat_core::Principal {
                user: UserId::parse("a-1").unwrap(),
                org: OrgId::parse("acme").unwrap(),
                role: chat_core::ids::Role::Agent,
            },
            &chat_core::ids::RoomId::parse(room).unwrap(),
            0,
            100,
        )
        .await
        .unwrap();
    events
        .events
        .into_iter()
        .find(|e| e.data.contains(text))
        .unwrap_or_else(|| panic!("no event with {text}"))
}

/// The unsubscribe link's answer: status and body (a page when `html`, as a browser
/// asks, else the JSON envelope).
async fn unsubscribe(
    stack: &Stack,
    method: &str,
    query: &str,
    body: Option<&str>,
    html: bool,
) -> (u16, String) {
    email_link(stack, "unsubscribe", method, query, body, html).await
}

/// A signed email link's answer (`/email/{link}`), as [`unsubscribe`]'s.
async fn email_link(
    stack: &Stack,
    link: &str,
    method: &str,
    query: &str,
    body: Option<&str>,
    html: bool,
) -> (u16, String) {
    let key = format!("{method} /email/{link}");
    let route = stack.app.route(&key);
    let mut event =
        chat_testkit::load_event(&format!("{}-email-{link}.json", method.to_lowercase()));
    event["rawQueryString"] = json!(query);
    let params: serde_json::Map<String, Value> = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    event["queryStringParameters"] = Value::Object(params);
    if html {
        event["headers"]["accept"] = json!("text/html,application/xhtml+xml");
    }
    match body {
        Some(body) => event["body"] = json!(body),
        None => {
            event.as_object_mut().unwrap().remove("body");
        }
    }
    let response = stack
        .app
        .apps
        .call(&route.function, chat_testkit::to_request(&event))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let page = String::from_utf8_lossy(response.body().as_ref()).into_owned();
    (status, page)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_away_customer_is_mailed_the_answer_and_its_link_turns_email_off_without_signing_in() {
    let stack = Stack::new().await;
    stack.name_tenant("Acme Shop").await;
    address(&stack, &customer(), "sam@example.com").await;
    address(&stack, &agent(), "agent-1@example.com").await;
    let room = stack.conversation(&customer(), "a-1").await;
    stack
        .post(
            &room,
            &customer(),
            json!({"content": "Where is parcel 4242?"}),
        )
        .await;
    // The agent hears of a customer waiting in a conversation assigned to them.
    let waiting = mails(&stack, "agent-1@example.com", 1).await;
    assert_eq!(waiting[0]["subject"], "Waiting for you: Where is my order");
    assert!(
        waiting[0]["body"]["text"]
            .as_str()
            .unwrap()
            .contains("Customer:\nWhere is parcel 4242?")
    );

    stack
        .post(&room, &agent(), json!({"content": "It ships <b>today</b>"}))
        .await;
    let got = mails(&stack, "sam@example.com", 1).await;
    let mail = &got[0];
    assert_eq!(mail["from"], "\"Acme Shop\" <notifications@chat.localhost>");
    assert_eq!(mail["subject"], "New reply: Where is my order");
    let text = mail["body"]["text"].as_str().unwrap();
    assert!(text.contains("You:\nWhere is parcel 4242?"), "{text}");
    assert!(text.contains("Acme Shop:\nIt ships <b>today</b>"), "{text}");
    let html = mail["body"]["html"].as_str().unwrap();
    assert!(html.contains("It ships &lt;b&gt;today&lt;/b&gt;"), "{html}");
    assert_eq!(
        header(mail, "List-Unsubscribe-Post"),
        Some("List-Unsubscribe=One-Click")
    );
    let link = header(mail, "List-Unsubscribe")
        .unwrap()
        .trim_matches(|c| c == '<' || c == '>')
        .to_owned();
    assert!(text.contains(&link));
    let query = link.split_once('?').unwrap().1.to_owned();
    assert!(link.starts_with("http://127.0.0.1:3000/email/unsubscribe?token="));

    // A note never reaches the customer's mailbox; a second answer within the digest
    // window is gathered into the next mail, not sent.
    let note = json!({"content": "Customer seems upset", "message_type": "note"});
    stack.post(&room, &agent(), note).await;
    stack
        .post(&room, &agent(), json!({"content": "Tracking: 1Z999"}))
        .await;
    let org = OrgId::parse("acme").unwrap();
    let notifier = stack.notifications.notifier();
    let of = |all: Vec<webhooks::notify::Notified>, user: &str| {
        all.into_iter().find(|n| n.user == user).unwrap().email
    };
    let note_event = event_with(&stack, &room, "Customer seems upset").await;
    assert_eq!(
        of(notifier.notify(&org, &note_event).await.unwrap(), "u-100"),
        webhooks::notify::Outcome::None
    );
    let second = event_with(&stack, &room, "Tracking: 1Z999").await;
    let outcome = of(notifier.notify(&org, &second).await.unwrap(), "u-100");
    assert!(
        matches!(
            outcome,
            webhooks::notify::Outcome::Collapsed | webhooks::notify::Outcome::Duplicate
        ),
        "{outcome:?}"
    );
    assert_eq!(stack.mail.mails_to("sam@example.com").await.len(), 1);
    // At the digest's end (15 minutes, reached by the sweep's clock), one more mail
    // quotes what it gathered: the second answer, never the note.
    let digest_end = chat_core::time::now_millis() + 16 * 60_000;
    assert!(notifier.sweep_at(digest_end).await >= 1);
    let got = mails(&stack, "sam@example.com", 2).await;
    let gathered = got[1]["body"]["text"].as_str().unwrap();
    assert!(gathered.contains("Tracking: 1Z999"), "{gathered}");
    assert!(!gathered.contains("Customer seems upset"), "{gathered}");
    assert_eq!(notifier.sweep_at(digest_end).await, 0, "told once");

    // The link: a page on GET (scanners fetch links), nothing changed; forged or
    // altered links and a POST that is not one-click change nothing either.
    let settings = || async {
        stack
            .app
            .expect_get("GET /me/notification-settings", &[], &customer())
            .await["channels"]
            .clone()
    };
    let before = stack.app.table.items().await;
    let (status, page) = unsubscribe(&stack, "GET", &query, None, true).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Stop emails from Acme Shop?"), "{page}");
    assert!(
        page.contains("name=\"List-Unsubscribe\" value=\"One-Click\""),
        "{page}"
    );
    let (status, answer) = unsubscribe(&stack, "GET", &query, None, false).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""email":true"#), "{answer}");
    let token = query.strip_prefix("token=").unwrap();
    let (payload, tag) = token.split_once('.').unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let forged = [
        String::new(),
        "token=".to_owned(),
        format!("token={}.{tag}", b64.encode("v1:acme:a-1")),
        format!("token={}.{tag}", b64.encode("v1:globex:u-100")),
        format!("token={payload}.{}", &tag[1..]),
        format!("token={payload}"),
        format!("token={}", token.to_uppercase()),
        format!(
            "token={}",
            chat_core::unsubscribe::sign(
                "another-key-of-thirty-two-bytes!!",
                &org,
                &UserId::parse("u-100").unwrap()
            )
        ),
    ];
    for query in &forged {
        for html in [false, true] {
            let one_click = Some("List-Unsubscribe=One-Click");
            let (status, answer) = unsubscribe(&stack, "POST", query, one_click, html).await;
            assert_eq!(status, 403, "{query}: {answer}");
            assert!(
                answer.contains("this unsubscribe link is not valid"),
                "{answer}"
            );
        }
    }
    let not_one_click = Some("unsubscribe=yes");
    let (status, answer) = unsubscribe(&stack, "POST", &query, not_one_click, false).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(stack.app.table.items().await, before, "nothing written");
    assert_eq!(settings().await["email"], true);

    // One click: email is off, the other channels stay.
    let (status, page) = unsubscribe(
        &stack,
        "POST",
        &query,
        Some("List-Unsubscribe=One-Click"),
        true,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Acme Shop will no longer send you notification emails"));
    assert_eq!(
        settings().await,
        json!({"push": true, "email": false, "mobile": true})
    );
    let (status, answer) = unsubscribe(
        &stack,
        "POST",
        &query,
        Some("List-Unsubscribe=One-Click"),
        false,
    )
    .await;
    assert_eq!(status, 200, "clicking twice is fine");
    assert!(answer.contains(r#""email":false"#), "{answer}");
    let outcome = of(notifier.notify(&org, &second).await.unwrap(), "u-100");
    assert_eq!(
        outcome,
        webhooks::notify::Outcome::Skipped(chat_core::store::notify::Skip::ChannelOff)
    );
    // The agent's mail was theirs alone; the customer got the answer and the digest.
    assert_eq!(stack.mail.mails_to("sam@example.com").await.len(), 2);
    assert_eq!(stack.mail.mails_to("agent-1@example.com").await.len(), 1);
}

/// The rating page's links in a rating request, score 1 to 5: their query strings.
fn rating_links(mail: &Value) -> Vec<String> {
    let text = mail["body"]["text"].as_str().unwrap();
    let links: Vec<String> = text
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("http://127.0.0.1:3000/email/rating?"))
        .map(str::to_owned)
        .collect();
    assert_eq!(links.len(), 5, "{text}");
    links
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_conversation_asks_its_customer_for_a_rating_by_email_once_and_the_link_rates_that_resolution()
 {
    let stack = Stack::new().await;
    stack.name_tenant("Acme Shop").await;
    address(&stack, &customer(), "sam@example.com").await;
    let room = stack.conversation(&customer(), "a-1").await;
    stack
        .post(&room, &customer(), json!({"content": "My parcel is late"}))
        .await;
    let set_status = |status: &'static str| {
        let room = room.clone();
        let stack = &stack;
        async move {
            stack
                .app
                .expect(
                    200,
                    "PUT /chat/conversations/{conversation_id}",
                    &[("conversation_id", &room)],
                    &agent(),
                    json!({ "status": status }),
                )
                .await;
        }
    };
    set_status("resolved").await;
    let got = mails(&stack, "sam@example.com", 1).await;
    let mail = &got[0];
    assert_eq!(mail["subject"], "How did we do? Where is my order");
    assert_eq!(mail["from"], "\"Acme Shop\" <notifications@chat.localhost>");
    assert_eq!(
        header(mail, "List-Unsubscribe-Post"),
        Some("List-Unsubscribe=One-Click")
    );
    let links = rating_links(mail);
    assert!(links[3].ends_with("&rating=4"), "{links:?}");
    let token_query = links[3].split('&').next().unwrap().to_owned();

    // Once per resolution: the stream's retry of the resolution, and closing the
    // resolved conversation, ask nobody again.
    let org = OrgId::parse("acme").unwrap();
    let notifier = stack.notifications.notifier();
    let resolved = event_with(&stack, &room, r#""status":"resolved""#).await;
    assert_eq!(
        notifier.ask_rating(&org, &resolved).await.unwrap(),
        webhooks::notify::Outcome::Duplicate
    );
    set_status("closed").await;
    let closed = event_with(&stack, &room, r#""status":"closed""#).await;
    assert_eq!(
        notifier.ask_rating(&org, &closed).await.unwrap(),
        webhooks::notify::Outcome::Duplicate
    );

    // The page (GET) rates nothing: a mail scanner fetching every link changes nothing.
    let before = stack.app.table.items().await;
    let (status, page) = email_link(&stack, "rating", "GET", &links[3], None, true).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("How did Acme Shop do?"), "{page}");
    assert!(
        page.contains(r#"value="4" required checked"#),
        "the score clicked is chosen: {page}"
    );
    assert!(page.contains(r#"name="comment""#));
    let (status, answer) = email_link(&stack, "rating", "GET", &links[0], None, false).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""rating":null"#), "{answer}");

    // Links that are not this resolution's, or not the customer's: refused, nothing
    // written. Forged or altered ones are 403 whatever the method; a link signed for
    // someone who is not the customer is theirs to use only as the API lets them.
    let token = token_query.strip_prefix("token=").unwrap();
    let (payload, tag) = token.split_once('.').unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let secret = stack
        .app
        .table
        .runtime
        .config
        .notify
        .email
        .as_ref()
        .unwrap()
        .link_secret
        .clone();
    let text = String::from_utf8(b64.decode(payload).unwrap()).unwrap();
    let unsubscribe_token =
        chat_core::unsubscribe::sign(&secret, &org, &UserId::parse("u-100").unwrap());
    let signed_for = |user: &str, org: &str| {
        let link = chat_core::unsubscribe::RatingLink::verify(&secret, token).unwrap();
        chat_core::unsubscribe::RatingLink {
            user: UserId::parse(user).unwrap(),
            org: OrgId::parse(org).unwrap(),
            ..link
        }
        .sign(&secret)
    };
    let refused: Vec<(String, u16)> = vec![
        (String::new(), 403),
        ("token=".into(), 403),
        (format!("token={unsubscribe_token}"), 403),
        (
            format!("token={}.{tag}", b64.encode(text.replace("u-100", "u-200"))),
            403,
        ),
        (format!("token={payload}.{}", &tag[1..]), 403),
        (format!("token={}", token.to_uppercase()), 403),
        (
            format!(
                "token={}",
                chat_core::unsubscribe::RatingLink::verify(&secret, token)
                    .unwrap()
                    .sign("another-key-of-thirty-two-bytes!!")
            ),
            403,
        ),
        // Signed right: the agent is no customer of it; u-999 and globex are not in it.
        (format!("token={}", signed_for("a-1", "acme")), 403),
        (format!("token={}", signed_for("u-999", "acme")), 404),
        (format!("token={}", signed_for("u-100", "globex")), 404),
    ];
    for (query, expected) in &refused {
        for method in ["GET", "POST"] {
            let (status, answer) =
                email_link(&stack, "rating", method, query, Some("rating=5"), false).await;
            assert_eq!(status, *expected, "{method} {query}: {answer}");
        }
    }
    // Scores of every other spelling, and a comment past the limit.
    let long = format!("rating=4&comment={}", "x".repeat(1001));
    for body in [
        "",
        "rating=",
        "rating=0",
        "rating=6",
        "rating=05",
        "rating=%2B5",
        "rating=5.0",
        "rating=five",
        "score=5",
        long.as_str(),
    ] {
        let (status, answer) =
            email_link(&stack, "rating", "POST", &token_query, Some(body), false).await;
        assert_eq!(status, 422, "{body}: {answer}");
    }
    assert_eq!(stack.app.table.items().await, before, "nothing was written");

    // The page's form rates the resolution as its customer; once.
    let (status, page) = email_link(
        &stack,
        "rating",
        "POST",
        &token_query,
        Some("rating=4&comment=Quick+and+kind"),
        true,
    )
    .await;
    assert_eq!(status, 201, "{page}");
    assert!(page.contains("Thanks for your rating"), "{page}");
    let conversation = stack
        .app
        .expect_get(
            "GET /chat/conversations/{conversation_id}",
            &[("conversation_id", &room)],
            &customer(),
        )
        .await;
    assert_eq!(conversation["rating"]["score"], 4, "{conversation}");
    assert_eq!(conversation["rating"]["comment"], "Quick and kind");
    let (status, answer) = email_link(
        &stack,
        "rating",
        "POST",
        &token_query,
        Some("rating=1"),
        false,
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer.contains("already_rated"), "{answer}");
    let (status, page) = email_link(&stack, "rating", "GET", &links[0], None, true).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("You rated") && !page.contains("<form"),
        "{page}"
    );

    // Reopened: the old link is past; resolved again, a new request with its own
    // link, which the old one cannot use.
    set_status("open").await;
    let (status, answer) = email_link(
        &stack,
        "rating",
        "POST",
        &token_query,
        Some("rating=3"),
        false,
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer.contains("not_resolved"), "{answer}");
    // Its own resolution's rating still shows on its page.
    let (status, answer) = email_link(&stack, "rating", "GET", &links[4], None, false).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""score":4"#), "{answer}");
    set_status("resolved").await;
    let got = mails(&stack, "sam@example.com", 2).await;
    let newer = rating_links(&got[1]);
    assert_ne!(newer[0], links[0]);
    let (status, answer) = email_link(
        &stack,
        "rating",
        "POST",
        &token_query,
        Some("rating=2"),
        false,
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer.contains("resolution_passed"), "{answer}");
    // The page of an unrated resolution's link says what the POST would: reopened
    // since, `not_resolved`; resolved again since, `resolution_passed`.
    let (status, page) = email_link(&stack, "rating", "GET", &newer[0], None, true).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<form"), "{page}");
    set_status("open").await;
    let (status, answer) = email_link(&stack, "rating", "GET", &newer[0], None, false).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer.contains("not_resolved"), "{answer}");
    set_status("resolved").await;
    let got = mails(&stack, "sam@example.com", 3).await;
    let newest = rating_links(&got[2]);
    let (status, answer) = email_link(&stack, "rating", "GET", &newer[0], None, false).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer.contains("resolution_passed"), "{answer}");
    let newest_token = newest[0].split('&').next().unwrap();
    let (status, answer) = email_link(
        &stack,
        "rating",
        "POST",
        newest_token,
        Some("rating=5"),
        false,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert!(answer.contains(r#""score":5"#), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_name_is_for_admins_to_set_and_refuses_what_would_forge_a_sender() {
    let stack = Stack::new().await;
    let admin = token("u-900", "acme", "admin");
    for tok in [customer(), agent()] {
        refused(
            &stack,
            "PUT /org/settings",
            &[],
            &tok,
            json!({"name": "Evil"}),
            403,
        )
        .await;
    }
    let bad = [
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "Acme\r\nBcc: everyone@example.com"}),
        json!({"name": "Acme\" <ceo@example.com>"}),
        json!({"name": "Acme <ceo@example.com>"}),
        json!({"name": "Acme\u{202E}pohS"}),
        json!({"name": "Ac\u{200B}me"}),
        json!({"name": "Acme\\"}),
        json!({"name": 7}),
        json!({"name": "Acme", "from": "ceo@example.com"}),
        json!({}),
    ];
    for body in bad {
        refused(&stack, "PUT /org/settings", &[], &admin, body, 422).await;
    }
    let saved = stack
        .app
        .expect(
            200,
            "PUT /org/settings",
            &[],
            &admin,
            json!({"name": "  Acme Shop  "}),
        )
        .await;
    assert_eq!(saved["name"], "Acme Shop");
    let read = stack
        .app
        .expect_get("GET /org/settings", &[], &customer())
        .await;
    assert_eq!(
        read,
        json!({"org": "acme", "name": "Acme Shop", "email_inbox_address": null})
    );
    let other = stack
        .app
        .expect_get("GET /org/settings", &[], &token("u-100", "globex", "admin"))
        .await;
    assert_eq!(
        other,
        json!({"org": "globex", "name": null, "email_inbox_address": null, "email_inbox": null}),
        "another tenant's own"
    );
}

/// Waits until the endpoint of `token` has `count` messages: them, each the payload
/// of its platform (`APNS` or `GCM`).
async fn phone_pushes(stack: &Stack, token: &str, key: &str, count: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let got = stack.sns.published_to(token).await;
        if got.len() >= count || started.elapsed() > PATIENCE {
            assert_eq!(got.len(), count, "pushes to {token}: {got:#?}");
            return got
                .iter()
                .map(|m| serde_json::from_str(m[key].as_str().expect(key)).unwrap())
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn devices(stack: &Stack, user: &str) -> Vec<chat_core::store::notify::Device> {
    let (org, user) = (OrgId::parse("acme").unwrap(), UserId::parse(user).unwrap());
    stack
        .app
        .table
        .runtime
        .store
        .devices(&org, &user)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_get_the_answer_with_the_unread_badge_and_an_invalid_token_turns_one_off() {
    let stack = Stack::new().await;
    let iphone = "0f".repeat(32);
    let android = format!("fcm-{}:APA91b{}", "a1".repeat(10), "Zz_-".repeat(30));
    let add = |platform: &'static str, token: String, tok: String, status: u16| {
        let stack = &stack;
        async move {
            stack
                .app
                .expect(
                    status,
                    "POST /me/devices",
                    &[],
                    &tok,
                    json!({"platform": platform, "token": token}),
                )
                .await
        }
    };
    let made = add("ios", iphone.clone(), customer(), 201).await;
    assert_eq!(made["enabled"], true);
    assert!(
        made.get("token").is_none(),
        "a token is never answered back"
    );
    add("ios", iphone.clone(), customer(), 200).await;
    add("android", android.clone(), customer(), 201).await;
    for body in [
        json!({"platform": "ios", "token": iphone.to_uppercase()}),
        json!({"platform": "ios", "token": android}),
        json!({"platform": "blackberry", "token": iphone}),
        json!({"platform": "ios", "token": iphone, "user_id": "u-200"}),
    ] {
        refused(&stack, "POST /me/devices", &[], &customer(), body, 422).await;
    }

    // The answer reaches both phones, each in its platform's shape, with the badge.
    let room = stack.conversation(&customer(), "a-1").await;
    stack
        .post(&room, &agent(), json!({"content": "It ships today"}))
        .await;
    let apns = phone_pushes(&stack, &iphone, "APNS", 1).await;
    assert_eq!(apns[0]["aps"]["alert"]["body"], "It ships today");
    assert_eq!(apns[0]["aps"]["badge"], 1);
    assert_eq!(apns[0]["room_id"], room.as_str());
    let fcm = phone_pushes(&stack, &android, "GCM", 1).await;
    let message = &fcm[0]["fcmV1Message"]["message"];
    assert_eq!(message["notification"]["body"], "It ships today");
    assert_eq!(message["android"]["notification"]["notification_count"], 1);

    // The iPhone is handed on: u-200 registers it, and it is theirs alone.
    let other = token("u-200", "acme", "customer");
    add("ios", iphone.clone(), other.clone(), 201).await;
    assert_eq!(
        devices(&stack, "u-100").await.len(),
        1,
        "only the Android left"
    );
    assert_eq!(devices(&stack, "u-200").await.len(), 1);
    let second = stack.conversation(&customer(), "a-1").await;
    stack
        .post(&second, &agent(), json!({"content": "Second parcel too"}))
        .await;
    let fcm = phone_pushes(&stack, &android, "GCM", 2).await;
    let count = &fcm[1]["fcmV1Message"]["message"]["android"]["notification"]["notification_count"];
    assert_eq!(*count, 2, "two conversations with one unread each");
    assert_eq!(
        stack.sns.published_to(&iphone).await.len(),
        1,
        "u-100's messages no longer reach the phone they gave away"
    );

    // FCM calls the Android token invalid (SNS disables its endpoint): the device is
    // turned off at the next notification, and nothing more is published to it.
    stack.sns.disable(&android).await;
    let third = stack.conversation(&customer(), "a-1").await;
    stack
        .post(&third, &agent(), json!({"content": "Third"}))
        .await;
    let started = Instant::now();
    while devices(&stack, "u-100").await[0].enabled {
        assert!(
            started.elapsed() < PATIENCE,
            "the device was never turned off"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stack.sns.published_to(&android).await.len(), 2);
    // The app registers its token again (a fresh start): it is on again and reached.
    let renewed = add("android", android.clone(), customer(), 200).await;
    assert_eq!(renewed["enabled"], true);
    let fourth = stack.conversation(&customer(), "a-1").await;
    stack
        .post(&fourth, &agent(), json!({"content": "Fourth"}))
        .await;
    let fcm = phone_pushes(&stack, &android, "GCM", 3).await;
    assert_eq!(
        fcm[2]["fcmV1Message"]["message"]["notification"]["body"],
        "Fourth"
    );

    // Deleting: another user's device or an unknown id is 404; one's own is gone.
    let id = devices(&stack, "u-100").await[0].device_id.clone();
    let key = "DELETE /me/devices/{device_id}";
    let (status, _) = stack
        .app
        .send(key, &[("device_id", &id)], &other, None, &[])
        .await;
    assert_eq!(status, 404);
    for bad in ["x", &id.to_uppercase(), "0123456789abcdef0123456789abcdef"] {
        let (status, _) = stack
            .app
            .send(key, &[("device_id", bad)], &customer(), None, &[])
            .await;
        assert_eq!(status, 404, "{bad}");
    }
    stack
        .app
        .expect(200, key, &[("device_id", &id)], &customer(), Value::Null)
        .await;
    assert!(devices(&stack, "u-100").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_told_at_the_end_of_its_window_unless_it_was_read() {
    // A 2 s window; the dev server's sweep runs every second.
    let stack = Stack::with(30, 2).await;
    let browser = stack.browser(&customer()).await;
    let room = stack.conversation(&customer(), "a-1").await;
    for text in ["one", "two", "three"] {
        stack.post(&room, &agent(), json!({"content": text})).await;
    }
    let first = stack.pushes(&browser, 1).await;
    assert_eq!(first[0]["body"], "one");
    // No later message comes: the window's end tells what it gathered, once.
    let told = stack.pushes_of("the window's end", &browser, 2).await;
    assert_eq!(told[1]["body"], "2 new messages");
    assert_eq!(told[1]["count"], 2);
    assert_eq!(told[1]["room_id"], room.as_str());
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(stack.push.received(&browser).await.len(), 2, "told once");

    // Read before the window ends: nothing is left to tell.
    let second = stack.conversation(&customer(), "a-1").await;
    stack.post(&second, &agent(), json!({"content": "a"})).await;
    stack.pushes(&browser, 3).await;
    stack.post(&second, &agent(), json!({"content": "b"})).await;
    let org = OrgId::parse("acme").unwrap();
    wait_for_pending(&stack, &org, "u-100", &second, 1).await;
    read(&stack, &second).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        stack.push.received(&browser).await.len(),
        3,
        "read: not told"
    );
    // Nothing stays due.
    let due = stack
        .app
        .table
        .runtime
        .store
        .due_windows(chat_core::time::now_millis(), 100)
        .await
        .unwrap();
    assert!(due.is_empty(), "{due:?}");
}
