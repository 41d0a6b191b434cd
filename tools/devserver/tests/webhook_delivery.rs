//! Webhook delivery end to end: the table's stream → the `deliver` function's handler
//! (as the event source mapping and the schedule run it) → signed POSTs to a local
//! receiver on 127.0.0.1 that fails, hangs, throttles, redirects, says 410, and
//! recovers. Every change arrives, verified, with no duplicates beyond retries of the
//! same `webhook-id`; operators see the log, retry and replay; other tenants see none
//! of it.

use chat_core::webhooks::{DeliverySettings, verify};
use chat_testkit::token;
use devserver::TestApp;
use devserver::receiver::{Answer, Received, Receiver};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

fn admin() -> String {
    token("a-9", "acme", "admin")
}

fn other_admin() -> String {
    token("a-9", "globex", "admin")
}

/// A short schedule so that a test sees many retries in seconds.
fn quick(schedule: &str, disable_after: i64) -> DeliverySettings {
    DeliverySettings::from_values(Some(schedule), Some("2"), Some(&disable_after.to_string()))
        .unwrap()
}

async fn start(settings: DeliverySettings) -> TestApp {
    let app = TestApp::new().await;
    devserver::delivery::serve_webhook_delivery(&app.table.runtime, settings).await;
    app
}

/// A new endpoint of acme for every event type: (id, secret).
async fn endpoint(app: &TestApp, url: &str) -> (String, String) {
    let types: Vec<&str> = chat_core::store::EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    let made = app
        .expect(
            201,
            "POST /webhooks",
            &[],
            &admin(),
            json!({"url": url, "event_types": types}),
        )
        .await;
    (
        made["id"].as_str().unwrap().into(),
        made["secret"].as_str().unwrap().into(),
    )
}

async fn conversation(app: &TestApp, customer: &str, agent: &str) -> String {
    let created = app
        .expect(
            201,
            "POST /chat/conversations",
            &[],
            &token(customer, "acme", "customer"),
            json!({"title": "Order 1042", "agent_id": agent}),
        )
        .await;
    created["conversation_id"].as_str().unwrap().to_owned()
}

async fn post(app: &TestApp, room: &str, tok: &str, body: Value) {
    let key = "POST /chat/conversations/{conversation_id}/messages";
    app.expect(201, key, &[("conversation_id", room)], tok, body)
        .await;
}

/// Every (room, seq) of the rooms, from each room's last_seq.
async fn changes(app: &TestApp, rooms: &[String]) -> BTreeSet<(String, u64)> {
    let mut all = BTreeSet::new();
    for room in rooms {
        let got = app
            .expect_get("GET /rooms/{room_id}", &[("room_id", room)], &admin())
            .await;
        let last = got["last_seq"].as_u64().unwrap();
        all.extend((1..=last).map(|seq| (room.clone(), seq)));
    }
    all
}

fn event_of(received: &Received) -> (String, u64) {
    let body: Value = serde_json::from_slice(&received.body).unwrap();
    (
        body["room_id"].as_str().unwrap().to_owned(),
        body["seq"].as_u64().unwrap(),
    )
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn eventually_answer(
    what: &str,
    mut ask: impl AsyncFnMut() -> Value,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = ask().await;
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn webhook(app: &TestApp, id: &str) -> Value {
    app.expect_get(
        "GET /webhooks/{webhook_id}",
        &[("webhook_id", id)],
        &admin(),
    )
    .await
}

async fn deliveries(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, body) = app
        .send(
            "GET /webhooks/{webhook_id}/deliveries",
            &[("webhook_id", id)],
            &admin(),
            None,
            &[("limit", "100")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["deliveries"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_arrives_verified_through_failures_timeouts_throttling_and_redirects() {
    let app = start(quick("1,1,1,1,1,1,1,1", 3600)).await;
    let receiver = Receiver::start().await;
    receiver.queue(
        "/hook",
        &[
            Answer::Status(500),
            Answer::Hang(Duration::from_secs(4)),
            Answer::Throttle(429, 3),
            Answer::Redirect("/elsewhere"),
            Answer::Throttle(503, 1),
            Answer::Status(502),
        ],
    );
    let (id, secret) = endpoint(&app, &receiver.url("/hook")).await;

    let first = conversation(&app, "u-100", "a-1").await;
    let second = conversation(&app, "u-101", "a-1").await;
    let agent = token("a-1", "acme", "agent");
    for (room, customer) in [(&first, "u-100"), (&second, "u-101")] {
        let tok = token(customer, "acme", "customer");
        post(&app, room, &tok, json!({"content": "where is my parcel"})).await;
        post(
            &app,
            room,
            &agent,
            json!({"content": "refund approved", "message_type": "note"}),
        )
        .await;
        post(&app, room, &agent, json!({"content": "it ships today"})).await;
        post(&app, room, &tok, json!({"content": "thanks"})).await;
    }
    let expected = changes(&app, &[first.clone(), second.clone()]).await;
    assert_eq!(expected.len(), 8);

    eventually("every change delivered", || {
        let delivered: BTreeSet<_> = receiver
            .received("/hook")
            .iter()
            .filter(|r| (200..300).contains(&r.answered))
            .map(event_of)
            .collect();
        delivered == expected
    })
    .await;
    // Let stragglers of the schedule land before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = receiver.received("/hook");

    // Verified, each event under one id, each id one event.
    let mut ids_of: BTreeMap<(String, u64), BTreeSet<String>> = BTreeMap::new();
    let mut by_id: BTreeMap<String, Vec<&Received>> = BTreeMap::new();
    for r in &received {
        let now = chat_core::time::now().unix_timestamp();
        assert!(
            verify(&secret, &r.id, r.timestamp, now, &r.body, &r.signature),
            "signature of {}",
            r.id
        );
        ids_of.entry(event_of(r)).or_default().insert(r.id.clone());
        by_id.entry(r.id.clone()).or_default().push(r);
    }
    for attempts in by_id.values_mut() {
        attempts.sort_by_key(|r| r.at);
    }
    assert_eq!(
        ids_of.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "nothing else"
    );
    for (event, ids) in &ids_of {
        assert_eq!(ids.len(), 1, "{event:?} came under several ids: {ids:?}");
    }
    for (id, attempts) in &by_id {
        let delivered = attempts
            .iter()
            .filter(|r| (200..300).contains(&r.answered))
            .count();
        assert_eq!(delivered, 1, "{id} accepted {delivered} times");
        // Retries stop at the first success.
        assert!(
            attempts
                .last()
                .is_some_and(|r| (200..300).contains(&r.answered)),
            "{id}"
        );
    }
    assert!(
        received.len() >= expected.len() + 6,
        "the six refusals were retried"
    );

    // Retry-After honoured: the next attempt of a 429'd delivery waited ≥ 3 s.
    let throttled = received.iter().find(|r| r.answered == 429).unwrap();
    let next = by_id[&throttled.id]
        .iter()
        .find(|r| r.at > throttled.at)
        .unwrap();
    assert!(
        next.at - throttled.at >= Duration::from_millis(2900),
        "{:?}",
        next.at - throttled.at
    );
    // The hung attempt was given up on and retried under its id; redirects not followed.
    let hung = received.iter().find(|r| r.answered == 0).unwrap();
    assert!(by_id[&hung.id].len() >= 2);
    assert!(receiver.received("/elsewhere").is_empty());

    // The log: every delivery delivered, the retried ones with their attempts.
    let log = deliveries(&app, &id).await;
    assert_eq!(log.len(), expected.len());
    for d in &log {
        assert_eq!(d["status"], "delivered", "{d}");
        let attempts = by_id[d["id"].as_str().unwrap()].len() as u64;
        assert_eq!(d["attempts"].as_u64(), Some(attempts), "{d}");
        assert!(d["next_attempt_at"].is_null());
    }
    assert!(
        log.iter()
            .any(|d| d["last_error"].is_null() && d["attempts"].as_u64() > Some(1))
    );
    assert_eq!(webhook(&app, &id).await["disabled_reason"], Value::Null);

    // Another tenant's admin: none of it exists.
    let delivery = log[0]["id"].as_str().unwrap();
    for (key, params, body) in [
        (
            "GET /webhooks/{webhook_id}/deliveries",
            vec![("webhook_id", id.as_str())],
            None,
        ),
        (
            "POST /webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
            vec![("webhook_id", id.as_str()), ("delivery_id", delivery)],
            None,
        ),
        (
            "POST /webhooks/{webhook_id}/replay",
            vec![("webhook_id", id.as_str())],
            Some(json!({"room_id": first})),
        ),
    ] {
        let (status, answer) = app.send(key, &params, &other_admin(), body, &[]).await;
        assert_eq!(status, 404, "{key}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_endpoint_and_an_operator_recovers_by_retry_and_replay() {
    let app = start(quick("1,1,1", 3600)).await;
    let receiver = Receiver::start().await;
    receiver.set_default("/gone", Answer::Status(410));
    let (id, secret) = endpoint(&app, &receiver.url("/gone")).await;
    // A healthy endpoint beside it: once it has an event, the stream's handling of that
    // event (for every endpoint) is done.
    endpoint(&app, &receiver.url("/control")).await;
    let handled = |seq: u64| {
        let receiver = receiver.clone();
        move || {
            receiver
                .received("/control")
                .iter()
                .any(|r| event_of(r).1 == seq)
        }
    };
    let room = conversation(&app, "u-100", "a-1").await;
    let customer = token("u-100", "acme", "customer");
    post(&app, &room, &customer, json!({"content": "hello"})).await;

    let disabled = eventually_answer(
        "disabled by 410",
        async || webhook(&app, &id).await,
        |w| w["enabled"] == false,
    )
    .await;
    assert_eq!(disabled["disabled_reason"], "gone");
    let log = eventually_answer(
        "the delivery failed",
        async || json!(deliveries(&app, &id).await),
        |l| l[0]["status"] == "failed",
    )
    .await;
    let failed = log[0].clone();
    assert_eq!(
        (
            failed["last_status_code"].clone(),
            failed["attempts"].clone()
        ),
        (json!(410), json!(1))
    );
    assert_eq!(receiver.received("/gone").len(), 1, "410 is not retried");
    // Nothing is made for a disabled endpoint meanwhile.
    post(&app, &room, &customer, json!({"content": "anyone?"})).await;
    eventually("the second message handled", handled(2)).await;

    let retry = "POST /webhooks/{webhook_id}/deliveries/{delivery_id}/retry";
    let params = [
        ("webhook_id", id.as_str()),
        ("delivery_id", failed["id"].as_str().unwrap()),
    ];
    let (status, answer) = app.send(retry, &params, &admin(), None, &[]).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (409, json!("webhook_disabled"))
    );

    // The receiver is back; the admin switches the endpoint on and retries.
    receiver.set_default("/gone", Answer::Status(200));
    let on = app
        .expect(
            200,
            "PATCH /webhooks/{webhook_id}",
            &[("webhook_id", &id)],
            &admin(),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(on["disabled_reason"], Value::Null);
    let (status, answer) = app.send(retry, &params, &admin(), None, &[]).await;
    assert_eq!(status, 202, "{answer}");
    eventually("the retry, under the same id", || {
        receiver
            .received("/gone")
            .iter()
            .any(|r| r.id == failed["id"].as_str().unwrap() && r.answered == 200)
    })
    .await;
    assert_eq!(
        deliveries(&app, &id).await.len(),
        1,
        "the second message came while disabled"
    );

    // Replay the room from its start: every change again, new ids, the same seqs.
    let (status, answer) = app
        .send(
            "POST /webhooks/{webhook_id}/replay",
            &[("webhook_id", &id)],
            &admin(),
            Some(json!({"room_id": room, "after_seq": 0})),
            &[],
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        (
            answer["data"]["deliveries"].clone(),
            answer["data"]["has_more"].clone()
        ),
        (json!(2), json!(false))
    );
    eventually("the replay", || {
        receiver
            .received("/gone")
            .iter()
            .filter(|r| r.answered == 200)
            .count()
            == 3
    })
    .await;
    let replayed: Vec<Received> = receiver.received("/gone").into_iter().skip(2).collect();
    let seqs: BTreeSet<u64> = replayed.iter().map(|r| event_of(r).1).collect();
    assert_eq!(seqs, BTreeSet::from([1, 2]));
    assert!(
        replayed
            .iter()
            .all(|r| r.id != failed["id"].as_str().unwrap())
    );
    let now = chat_core::time::now().unix_timestamp();
    assert!(replayed.iter().all(|r| verify(
        &secret,
        &r.id,
        r.timestamp,
        now,
        &r.body,
        &r.signature
    )));

    // From a time: the tenant's changes since then (after the 2 s settle window).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let since = chat_core::time::format(chat_core::time::now() - time::Duration::minutes(5));
    let (status, answer) = app
        .send(
            "POST /webhooks/{webhook_id}/replay",
            &[("webhook_id", &id)],
            &admin(),
            Some(json!({"since": since})),
            &[],
        )
        .await;
    assert_eq!(
        (status, answer["data"]["deliveries"].clone()),
        (202, json!(2)),
        "{answer}"
    );
    let (status, answer) = app
        .send(
            "POST /webhooks/{webhook_id}/replay",
            &[("webhook_id", &id)],
            &admin(),
            Some(json!({"room_id": room, "since": since})),
            &[],
        )
        .await;
    assert_eq!(status, 422, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_for_the_configured_period_is_disabled_and_marked() {
    let app = start(quick("1,1,1,1,1,1,1,1,1,1", 3)).await;
    let receiver = Receiver::start().await;
    receiver.set_default("/down", Answer::Status(500));
    let (id, _) = endpoint(&app, &receiver.url("/down")).await;
    let room = conversation(&app, "u-100", "a-1").await;
    post(
        &app,
        &room,
        &token("u-100", "acme", "customer"),
        json!({"content": "hello"}),
    )
    .await;

    let disabled = eventually_answer(
        "disabled after failing 3 s",
        async || webhook(&app, &id).await,
        |w| w["enabled"] == false,
    )
    .await;
    assert_eq!(disabled["disabled_reason"], "failing");
    assert!(disabled["failing_since"].is_string());
    let log = eventually_answer(
        "the delivery given up",
        async || json!(deliveries(&app, &id).await),
        |l| l[0]["status"] == "failed",
    )
    .await;
    let attempts = log[0]["attempts"].as_u64().unwrap();
    assert!(attempts >= 3, "{log}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        receiver.received("/down").len() as u64,
        attempts,
        "nothing after disabling"
    );
}
