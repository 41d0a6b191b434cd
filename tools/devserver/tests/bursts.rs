//! Every counted limit against a burst: more concurrent attempts than the limit,
//! all sent at once, are accepted exactly up to the limit, the rest refused with the
//! limit's answer, and what is stored is exactly the limit. A check followed by a
//! separate write would let a burst through; each limit is the condition of its write.
//!
//! Generated from [`Limit::ALL`]: a new counted limit is one more row.

use chat_core::auth::Principal;
use chat_core::ids::{OrgId, Role, RoomId, UserId};
use chat_core::store::{MAX_REPLAYS_PER_HOUR, MAX_SUBSCRIPTIONS};
use chat_core::webhooks::MAX_WEBHOOKS;
use chat_testkit::token;
use devserver::TestApp;
use futures_util::future::join_all;
use serde_json::json;

fn admin() -> String {
    token("a-9", "acme", "admin")
}

fn customer() -> String {
    token("u-1", "acme", "customer")
}

#[derive(Debug, Clone, Copy)]
enum Limit {
    WebhookEndpoints,
    ReplaysPerHour,
    RoomsPerConnection,
    /// A user's phones (`POST /me/devices`).
    Devices,
}

/// What one attempt got: accepted, or refused with status, code and `Retry-After`.
#[derive(Debug, PartialEq)]
enum Answer {
    Accepted,
    Refused(u16, String, Option<String>),
}

impl Limit {
    const ALL: [Limit; 4] = [
        Limit::WebhookEndpoints,
        Limit::ReplaysPerHour,
        Limit::RoomsPerConnection,
        Limit::Devices,
    ];

    fn max(self) -> usize {
        match self {
            Limit::WebhookEndpoints => MAX_WEBHOOKS,
            Limit::ReplaysPerHour => MAX_REPLAYS_PER_HOUR as usize,
            Limit::RoomsPerConnection => MAX_SUBSCRIPTIONS,
            Limit::Devices => chat_core::commands::notify::MAX_DEVICES as usize,
        }
    }

    /// The refusal past the limit: status, code, whether it says when to retry.
    fn refusal(self) -> (u16, &'static str, bool) {
        match self {
            Limit::WebhookEndpoints => (409, "too_many_webhooks", false),
            Limit::ReplaysPerHour => (429, "throttled", true),
            Limit::RoomsPerConnection => (409, "too_many_subscriptions", false),
            Limit::Devices => (409, "too_many_devices", false),
        }
    }

    /// What the attempts act on (an endpoint's id, or the rooms to follow).
    async fn prepare(self, app: &TestApp, attempts: usize) -> Vec<String> {
        match self {
            Limit::WebhookEndpoints | Limit::Devices => Vec::new(),
            Limit::ReplaysPerHour => vec![endpoint(app).await],
            Limit::RoomsPerConnection => {
                let mut rooms = Vec::new();
                for i in 0..attempts {
                    let made = app
                        .expect(
                            201,
                            "POST /chat/conversations",
                            &[],
                            &customer(),
                            json!({"title": format!("Room {i}"), "agent_id": "a-1"}),
                        )
                        .await;
                    rooms.push(made["conversation_id"].as_str().unwrap().to_owned());
                }
                rooms
            }
        }
    }

    async fn attempt(self, app: &TestApp, on: &[String], i: usize) -> Answer {
        let response = match self {
            Limit::WebhookEndpoints => {
                let body = json!({"url": format!("https://crm.example.com/hooks/{i}"), "event_types": ["message.new"]});
                app.respond("POST /webhooks", &[], &admin(), Some(body), &[])
                    .await
            }
            Limit::Devices => {
                let body = json!({"platform": "ios", "token": format!("{i:064x}")});
                app.respond("POST /me/devices", &[], &customer(), Some(body), &[])
                    .await
            }
            Limit::ReplaysPerHour => {
                app.respond(
                    "POST /webhooks/{webhook_id}/replay",
                    &[("webhook_id", &on[0])],
                    &admin(),
                    Some(json!({"since": "2026-01-01T00:00:00Z"})),
                    &[],
                )
                .await
            }
            Limit::RoomsPerConnection => {
                let store = &app.table.runtime.store;
                let connection = store.connection("burst-connection").await.unwrap().unwrap();
                let room = RoomId::parse(&on[i]).unwrap();
                return match store.subscribe(&connection, &room).await {
                    Ok(_) => Answer::Accepted,
                    Err(err) => Answer::Refused(
                        err.status().as_u16(),
                        err.code().to_owned(),
                        err.retry_after_secs().map(|s| s.to_string()),
                    ),
                };
            }
        };
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let (status, body) = chat_testkit::response_json(&response);
        if status < 300 {
            Answer::Accepted
        } else {
            let code = body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            Answer::Refused(status, code, retry_after)
        }
    }

    /// What is stored of the limited thing after the burst.
    async fn kept(self, app: &TestApp, on: &[String]) -> usize {
        let store = &app.table.runtime.store;
        let org = OrgId::parse("acme").unwrap();
        match self {
            Limit::WebhookEndpoints => store.list_webhooks(&org).await.unwrap().len(),
            Limit::Devices => {
                let user = UserId::parse("u-1").unwrap();
                store.devices(&org, &user).await.unwrap().len()
            }
            Limit::ReplaysPerHour => {
                // Each replay of an empty feed makes no delivery; what it leaves is the
                // count of this hour.
                let items = app.table.items().await;
                items
                    .iter()
                    .filter(|i| {
                        i.get("SK")
                            .and_then(|v| v.as_s().ok())
                            .is_some_and(|sk| sk.starts_with("REPLAYS#"))
                    })
                    .map(|i| {
                        i["count"]
                            .as_n()
                            .unwrap()
                            .parse::<usize>()
                            .expect("a count")
                    })
                    .sum()
            }
            Limit::RoomsPerConnection => {
                let connection = store.connection("burst-connection").await.unwrap().unwrap();
                let mut following = 0;
                for room in on {
                    let audience = store
                        .audience(&org, &RoomId::parse(room).unwrap())
                        .await
                        .unwrap();
                    following += audience.subscriptions.len();
                }
                assert_eq!(
                    following,
                    connection.rooms.len(),
                    "subscriptions and the connection's rooms agree"
                );
                following
            }
        }
    }
}

async fn endpoint(app: &TestApp) -> String {
    let made = app
        .expect(
            201,
            "POST /webhooks",
            &[],
            &admin(),
            json!({"url": "https://crm.example.com/hooks", "event_types": ["message.new"]}),
        )
        .await;
    made["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_never_passes_a_counted_limit() {
    for limit in Limit::ALL {
        let app = TestApp::new().await;
        let attempts = limit.max() + 30;
        let on = limit.prepare(&app, attempts).await;
        if matches!(limit, Limit::RoomsPerConnection) {
            let who = Principal {
                user: UserId::parse("u-1").unwrap(),
                org: OrgId::parse("acme").unwrap(),
                role: Role::Customer,
            };
            app.table
                .runtime
                .store
                .open_connection("burst-connection", &who)
                .await
                .unwrap();
        }
        // Every attempt is sent at once; a 503 (the writes contend for one item, which
        // DynamoDB Local commits one at a time) is sent again as a client would.
        let answers = join_all((0..attempts).map(|i| {
            let (app, on) = (&app, &on);
            async move {
                let mut answer = limit.attempt(app, on, i).await;
                for retry in 1..=10u64 {
                    match &answer {
                        Answer::Refused(503, ..) => {
                            // As a client would: after a pause, spread out.
                            let pause = 100 * retry + (i as u64 * 37) % 200;
                            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                            answer = limit.attempt(app, on, i).await;
                        }
                        _ => break,
                    }
                }
                answer
            }
        }))
        .await;
        let accepted = answers.iter().filter(|a| **a == Answer::Accepted).count();
        assert_eq!(accepted, limit.max(), "{limit:?}: accepted {answers:?}");
        let (status, code, says_when) = limit.refusal();
        for answer in answers.iter().filter(|a| **a != Answer::Accepted) {
            let Answer::Refused(got, got_code, retry_after) = answer else {
                unreachable!()
            };
            assert_eq!((*got, got_code.as_str()), (status, code), "{limit:?}");
            assert_eq!(retry_after.is_some(), says_when, "{limit:?}: {answer:?}");
            if let Some(secs) = retry_after {
                let secs: u32 = secs.parse().unwrap();
                assert!((1..=3600).contains(&secs), "{limit:?}: Retry-After {secs}");
            }
        }
        assert_eq!(limit.kept(&app, &on).await, limit.max(), "{limit:?}: kept");

        // Past the limit, a refused attempt sent again is refused and writes nothing.
        let refused = answers.iter().position(|a| *a != Answer::Accepted).unwrap();
        let before = app.table.items().await;
        let answer = limit.attempt(&app, &on, refused).await;
        assert_ne!(answer, Answer::Accepted, "{limit:?}");
        assert_eq!(
            app.table.items().await,
            before,
            "{limit:?}: a refusal writes nothing"
        );
    }
}

#[tokio::test]
async fn a_deleted_endpoint_frees_its_place() {
    let app = TestApp::new().await;
    let mut ids = Vec::new();
    for _ in 0..MAX_WEBHOOKS {
        ids.push(endpoint(&app).await);
    }
    let body = json!({"url": "https://crm.example.com/one-more", "event_types": ["message.new"]});
    let (status, answer) = app
        .send("POST /webhooks", &[], &admin(), Some(body.clone()), &[])
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("too_many_webhooks"))
    );
    let (status, _) = app
        .send(
            "DELETE /webhooks/{webhook_id}",
            &[("webhook_id", &ids[0])],
            &admin(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);
    app.expect(201, "POST /webhooks", &[], &admin(), body).await;
    // Deleting what is gone counts nothing off.
    let (status, _) = app
        .send(
            "DELETE /webhooks/{webhook_id}",
            &[("webhook_id", &ids[0])],
            &admin(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .send(
            "POST /webhooks",
            &[],
            &admin(),
            Some(
                json!({"url": "https://crm.example.com/too-many", "event_types": ["message.new"]}),
            ),
            &[],
        )
        .await;
    assert_eq!(status, 409);
}
