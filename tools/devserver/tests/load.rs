//! A bounded load on 127.0.0.1: many concurrent senders and readers over HTTP against
//! several dev-server instances (each its own handlers and room cache, as separate
//! Lambda instances are), sharing one table. Senders retry (503/429/connection
//! errors) and deliberately duplicate requests under one idempotency key, both
//! concurrently and after the first answer. At the end: zero 5xx, every message
//! stored exactly once in every room, unread counts and the analytics figures equal
//! to what was written.
//!
//! `cargo test -p devserver --test load` runs a short version (a few hundred
//! requests); `make load` runs the long one (LOAD_SCALE=10) and prints its figures.

use chat_testkit::{TestTable, template, template_routes, token};
use devserver::Apps;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Counts of what the clients saw.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    server_errors: AtomicU64,
    retries: AtomicU64,
    replays: AtomicU64,
    latencies_us: std::sync::Mutex<Vec<u64>>,
}

struct Client {
    ports: Vec<u16>,
    tally: Arc<Tally>,
}

impl Client {
    /// One HTTP/1.1 request on a fresh connection to one of the instances.
    async fn once(
        &self,
        pick: usize,
        method: &str,
        path: &str,
        tok: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> std::io::Result<(u16, Vec<(String, String)>, Value)> {
        let port = self.ports[pick % self.ports.len()];
        let started = Instant::now();
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {tok}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(raw.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let (head, json) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not HTTP: {head}")))?;
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
            .collect();
        self.tally.requests.fetch_add(1, Ordering::Relaxed);
        self.tally
            .latencies_us
            .lock()
            .unwrap()
            .push(started.elapsed().as_micros() as u64);
        if status >= 500 {
            self.tally.server_errors.fetch_add(1, Ordering::Relaxed);
        }
        Ok((
            status,
            headers,
            serde_json::from_str(json).unwrap_or(Value::Null),
        ))
    }

    /// With retries, as a well-behaved client: on a connection error, 429 or 503
    /// (after Retry-After, capped), at most 5 attempts.
    async fn send(
        &self,
        pick: usize,
        method: &str,
        path: &str,
        tok: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, Vec<(String, String)>, Value) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .once(pick + attempt, method, path, tok, headers, body)
                .await;
            let mut wait = Duration::from_millis(20 * attempt as u64);
            match result {
                Ok((status, headers, _)) if (status == 429 || status == 503) && attempt < 5 => {
                    // Retry-After, capped: the test stays bounded.
                    let after = headers
                        .iter()
                        .find(|(k, _)| k == "retry-after")
                        .and_then(|(_, v)| v.parse::<u64>().ok())
                        .unwrap_or(0);
                    wait = wait.max(Duration::from_secs(after.min(1)));
                }
                Ok(answer) => return answer,
                Err(e) if attempt >= 5 => panic!("{method} {path}: {e}"),
                Err(_) => {}
            }
            self.tally.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }
}

struct Scale {
    rooms: usize,
    senders: usize,
    per_sender: usize,
    readers: usize,
    instances: usize,
}

fn scale() -> Scale {
    let n: usize = std::env::var("LOAD_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .clamp(1, 50);
    Scale {
        rooms: 4 * n,
        senders: 8 * n.min(4),
        per_sender: 20 * n,
        readers: 2 * n.min(4),
        instances: 3,
    }
}

struct Room {
    id: String,
    /// (user, role) of each member; the owner customer first.
    members: Vec<(String, &'static str)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_senders_and_readers_lose_and_duplicate_nothing() {
    let scale = scale();
    let table = TestTable::new().await;
    let routes = Arc::new(template_routes(&template()));
    let mut ports = Vec::new();
    for _ in 0..scale.instances {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        ports.push(listener.local_addr().unwrap().port());
        let apps = Arc::new(Apps::new(table.runtime.clone()));
        tokio::spawn(devserver::serve(listener, routes.clone(), apps));
    }
    let tally = Arc::new(Tally::default());
    let client = Arc::new(Client {
        ports,
        tally: tally.clone(),
    });
    let started = Instant::now();

    // Rooms: a customer's support conversation with an agent, plus a third member.
    let mut rooms = Vec::new();
    for i in 0..scale.rooms {
        let (customer, agent, other) = (format!("c-{i}"), format!("a-{}", i % 3), format!("p-{i}"));
        let tok = token(&customer, "acme", "customer");
        let (status, _, body) = client
            .send(
                i,
                "POST",
                "/chat/conversations",
                &tok,
                &[],
                Some(&json!({"title": format!("Load {i}"), "agent_id": agent})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["data"]["conversation_id"].as_str().unwrap().to_owned();
        let (status, _, body) = client
            .send(
                i,
                "POST",
                &format!("/rooms/{id}/members"),
                &tok,
                &[],
                Some(&json!({"user_id": other})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        rooms.push(Room {
            id,
            members: vec![
                (customer, "customer"),
                (agent, "agent"),
                (other, "customer"),
            ],
        });
    }
    let rooms = Arc::new(rooms);

    // Senders: each posts its messages into rooms it is a member of, some twice.
    let mut tasks = Vec::new();
    for s in 0..scale.senders {
        let (client, rooms) = (client.clone(), rooms.clone());
        let per_sender = scale.per_sender;
        tasks.push(tokio::spawn(async move {
            // (room, content) of every message this sender meant to write.
            let mut written: Vec<(usize, String, String)> = Vec::new();
            for k in 0..per_sender {
                let r = (s * 7 + k * 3) % rooms.len();
                let room = &rooms[r];
                // The customer and the agent write; the third member only receives.
                let (user, role) = &room.members[(s + k) % 2];
                let tok = token(user, "acme", role);
                let content = format!("load s{s} k{k} from {user}");
                let key = format!("load-{s}-{k}");
                let path = format!("/chat/conversations/{}/messages", room.id);
                let body = json!({"content": content});
                let headers = [("Idempotency-Key", key.as_str())];
                let pick = s + k;
                let answers = match k % 5 {
                    // The same request twice at once (a client's retry racing the first).
                    0 => {
                        let (a, b) = tokio::join!(
                            client.send(pick, "POST", &path, &tok, &headers, Some(&body)),
                            client.send(pick + 1, "POST", &path, &tok, &headers, Some(&body)),
                        );
                        vec![a, b]
                    }
                    // A retry after a lost answer: the same key again, later.
                    1 => {
                        let a = client
                            .send(pick, "POST", &path, &tok, &headers, Some(&body))
                            .await;
                        let b = client
                            .send(pick + 1, "POST", &path, &tok, &headers, Some(&body))
                            .await;
                        vec![a, b]
                    }
                    _ => vec![
                        client
                            .send(pick, "POST", &path, &tok, &headers, Some(&body))
                            .await,
                    ],
                };
                let mut ids = Vec::new();
                for (status, headers, body) in &answers {
                    assert_eq!(*status, 201, "{body}");
                    if headers
                        .iter()
                        .any(|(k, v)| k == "idempotent-replayed" && v == "true")
                    {
                        client.tally.replays.fetch_add(1, Ordering::Relaxed);
                    }
                    ids.push(body["data"]["id"].as_str().unwrap().to_owned());
                }
                ids.dedup();
                assert_eq!(ids.len(), 1, "one key, one message: {ids:?}");
                written.push((r, content, user.clone()));
            }
            written
        }));
    }
    // Readers: page messages and inboxes while the senders write.
    let mut readers = Vec::new();
    for r in 0..scale.readers {
        let (client, rooms) = (client.clone(), rooms.clone());
        let rounds = scale.per_sender;
        readers.push(tokio::spawn(async move {
            for k in 0..rounds {
                let room = &rooms[(r + k) % rooms.len()];
                let (user, role) = &room.members[k % room.members.len()];
                let tok = token(user, "acme", role);
                let path = format!("/chat/conversations/{}/messages?limit=20", room.id);
                let (status, _, body) = client.send(r + k, "GET", &path, &tok, &[], None).await;
                assert_eq!(status, 200, "{body}");
                let (status, _, body) = client
                    .send(
                        r + k,
                        "GET",
                        "/chat/conversations?limit=20",
                        &tok,
                        &[],
                        None,
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
            }
        }));
    }
    let mut written = Vec::new();
    for task in tasks {
        written.extend(task.await.unwrap());
    }
    for reader in readers {
        reader.await.unwrap();
    }
    let load_time = started.elapsed();

    // Every room holds exactly what was written into it, once.
    let mut expected: BTreeMap<usize, Vec<(String, String)>> = BTreeMap::new();
    for (r, content, user) in &written {
        expected
            .entry(*r)
            .or_default()
            .push((content.clone(), user.clone()));
    }
    for (r, room) in rooms.iter().enumerate() {
        let (owner, _) = &room.members[0];
        let tok = token(owner, "acme", "customer");
        let mut stored: Vec<(String, String)> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/chat/conversations/{}/messages?limit=100", room.id);
            if let Some(c) = &cursor {
                path.push_str(&format!("&before={c}"));
            }
            let (status, _, body) = client.send(r, "GET", &path, &tok, &[], None).await;
            assert_eq!(status, 200, "{body}");
            for m in body["data"]["messages"].as_array().unwrap() {
                stored.push((
                    m["content"].as_str().unwrap().to_owned(),
                    m["sender_id"].as_str().unwrap().to_owned(),
                ));
            }
            cursor = body["data"]["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        let mut want = expected.remove(&r).unwrap_or_default();
        want.sort();
        stored.sort();
        assert_eq!(stored, want, "room {r}: every message once, none lost");

        // The third member never writes and never reads: their unread count is every
        // message. (Sending reads everything before it, so a sender's count depends
        // on commit order; theirs is checked against the read marker instead.)
        for (user, role) in &room.members {
            let tok = token(user, "acme", role);
            let path = format!("/chat/conversations/{}", room.id);
            let (status, _, body) = client.send(r, "GET", &path, &tok, &[], None).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(
                body["data"]["total_messages"],
                json!(want.len()),
                "room {r}"
            );
            let unread = body["data"]["unread_count"].as_u64().unwrap() as usize;
            let from_others = want.iter().filter(|(_, sender)| sender != user).count();
            if want.iter().any(|(_, sender)| sender == user) {
                assert!(unread <= from_others, "room {r}, {user}: {unread}");
            } else {
                assert_eq!(unread, want.len(), "room {r}, {user}: every message unread");
            }
            // Reading up to the latest clears it, whatever the order of commits was.
            let read = format!("/chat/conversations/{}/read", room.id);
            let (status, _, body) = client.send(r, "POST", &read, &tok, &[], None).await;
            assert_eq!(
                (status, body["data"]["unread_count"].as_u64()),
                (200, Some(0)),
                "{body}"
            );
            let (_, _, body) = client.send(r, "GET", &path, &tok, &[], None).await;
            assert_eq!(
                body["data"]["unread_count"],
                json!(0),
                "room {r}, {user} after reading"
            );
        }
    }

    // Analytics: the rollup of today (and yesterday, should the run cross midnight)
    // counts exactly the conversations and messages written.
    let rollup = analytics_rollup::Rollup::new(table.runtime.store.clone(), 2);
    rollup
        .run(json!({"source": "aws.events", "detail-type": "Scheduled Event"}))
        .await
        .unwrap();
    let today = chat_core::time::now().date();
    let day = |d: time::Date| analytics_rollup::format_day(d);
    let path = format!(
        "/chat/analytics/dashboard?from={}&to={}",
        day(today.previous_day().unwrap()),
        day(today)
    );
    let (status, _, body) = client
        .send(0, "GET", &path, &token("a-0", "acme", "agent"), &[], None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["total_conversations"],
        json!(rooms.len()),
        "{body}"
    );
    assert_eq!(
        body["data"]["total_messages"],
        json!(written.len()),
        "{body}"
    );

    let server_errors = tally.server_errors.load(Ordering::Relaxed);
    let mut latencies = tally.latencies_us.lock().unwrap().clone();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    println!(
        "load: {} instances, {} rooms, {} senders x {} posts, {} readers; {} requests ({} retries, {} idempotent replays) in {:.2} s; {} messages stored, 0 lost, 0 duplicated; {} 5xx; latency p50 {:.1} ms, p99 {:.1} ms",
        scale.instances,
        scale.rooms,
        scale.senders,
        scale.per_sender,
        scale.readers,
        tally.requests.load(Ordering::Relaxed),
        tally.retries.load(Ordering::Relaxed),
        tally.replays.load(Ordering::Relaxed),
        load_time.as_secs_f64(),
        written.len(),
        server_errors,
        pct(0.5),
        pct(0.99),
    );
    assert_eq!(server_errors, 0, "no 5xx");
}
