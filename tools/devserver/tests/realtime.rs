//! The WebSocket API end to end, with real WebSocket clients against the dev server's
//! gateway, the `realtime` and `fanout` handlers, and DynamoDB Local's stream: who
//! receives what, exactly once and in `seq` order; resuming after a gap; removal;
//! tickets; typing; tenancy.

use chat_testkit::token;
use devserver::TestApp;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a test waits for frames it expects (loopback; a bound, not a measurement).
const PATIENCE: Duration = Duration::from_secs(15);

struct Stack {
    app: Arc<TestApp>,
    ws_port: u16,
}

impl Stack {
    async fn new() -> Stack {
        let app = Arc::new(TestApp::new().await);
        let (ws_port, _) = devserver::realtime::serve_realtime(&app.table.runtime, 0)
            .await
            .unwrap();
        Stack { app, ws_port }
    }

    async fn ticket(&self, tok: &str) -> String {
        let (status, body) = self
            .app
            .send("POST /realtime/tickets", &[], tok, None, &[])
            .await;
        assert_eq!(status, 201, "{body}");
        body["data"]["ticket"].as_str().unwrap().to_owned()
    }

    /// Opens a socket with `ticket`: the socket, or the HTTP status of the refusal.
    async fn open(&self, ticket: &str) -> Result<Ws, u16> {
        let url = format!("ws://127.0.0.1:{}/?ticket={ticket}", self.ws_port);
        match tokio_tungstenite::connect_async(url).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(err) => panic!("connect: {err}"),
        }
    }

    async fn client(&self, tok: &str) -> Client {
        let ticket = self.ticket(tok).await;
        Client {
            ws: self.open(&ticket).await.expect("a fresh ticket connects"),
            pushed: Vec::new(),
            next_id: 0,
        }
    }

    async fn post(&self, room: &str, tok: &str, body: Value) -> Value {
        let key = "POST /rooms/{room_id}/messages";
        self.app
            .expect(201, key, &[("room_id", room)], tok, body)
            .await
    }

    async fn conversation(&self, tok: &str, agent: &str) -> String {
        let body = json!({"title": "Where is my order", "agent_id": agent});
        let created = self
            .app
            .expect(201, "POST /chat/conversations", &[], tok, body)
            .await;
        created["conversation_id"].as_str().unwrap().to_owned()
    }

    /// The room's latest `seq`, as its feed says to `tok`.
    async fn last_seq(&self, room: &str, tok: &str) -> u64 {
        let (_, body) = self
            .app
            .send(
                "GET /rooms/{room_id}/events",
                &[("room_id", room)],
                tok,
                None,
                &[("after", "0")],
            )
            .await;
        body["data"]["last_seq"].as_u64().unwrap_or(0)
    }

    async fn group(&self, tok: &str, others: &[&str]) -> String {
        let body = json!({"type": "group", "name": "Team", "participant_ids": others});
        let created = self.app.expect(201, "POST /rooms", &[], tok, body).await;
        created["id"].as_str().unwrap().to_owned()
    }
}

struct Client {
    ws: Ws,
    /// Frames the server pushed (not answers to this client's actions).
    pushed: Vec<Value>,
    next_id: u64,
}

impl Client {
    /// Sends an action and waits for its answer (pushed frames meanwhile are kept).
    async fn ask(&mut self, mut frame: Value) -> Value {
        self.next_id += 1;
        frame["id"] = json!(self.next_id);
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
        let id = json!(self.next_id);
        loop {
            let frame = self.next_frame().await.expect("an answer");
            if frame["id"] == id {
                return frame;
            }
            self.pushed.push(frame);
        }
    }

    async fn next_frame(&mut self) -> Option<Value> {
        match tokio::time::timeout(PATIENCE, self.ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => Some(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(_))) => Box::pin(self.next_frame()).await,
            _ => None,
        }
    }

    async fn subscribe(&mut self, room: &str) -> Value {
        let answer = self
            .ask(json!({"action": "subscribe", "room_id": room}))
            .await;
        assert_eq!(answer["type"], "subscribed", "{answer}");
        answer
    }

    /// Waits until the room's pushed changes reach `seq`.
    async fn until_seq(&mut self, room: &str, seq: u64) {
        while !self
            .pushed
            .iter()
            .any(|f| f["room_id"] == room && f["seq"].as_u64() == Some(seq))
        {
            let frame = self
                .next_frame()
                .await
                .unwrap_or_else(|| panic!("seq {seq} of {room} never came; got {:?}", self.pushed));
            self.pushed.push(frame);
        }
    }

    /// Any frames that arrive within `wait`.
    async fn drain(&mut self, wait: Duration) {
        while let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(wait, self.ws.next()).await
        {
            self.pushed.push(serde_json::from_str(&text).unwrap());
        }
    }

    /// The pushed changes of each room, as (seq, type), in arrival order.
    fn changes(&self) -> BTreeMap<String, Vec<(u64, String)>> {
        let mut rooms: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
        for frame in self.pushed.iter().filter(|f| f["seq"].is_u64()) {
            rooms
                .entry(frame["room_id"].as_str().unwrap().to_owned())
                .or_default()
                .push((
                    frame["seq"].as_u64().unwrap(),
                    frame["type"].as_str().unwrap().to_owned(),
                ));
        }
        rooms
    }
}

fn customer() -> String {
    token("u-100", "acme", "customer")
}

fn agent() -> String {
    token("a-1", "acme", "agent")
}

fn seqs(changes: &[(u64, String)]) -> Vec<u64> {
    changes.iter().map(|(s, _)| *s).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_follower_gets_every_change_of_its_rooms_once_in_order_and_nothing_else() {
    let stack = Stack::new().await;
    let support = stack.conversation(&customer(), "a-1").await;
    let team = stack.group(&customer(), &["u-200"]).await;
    let theirs = stack
        .conversation(&token("u-100", "globex", "customer"), "a-9")
        .await;

    let mut owner = stack.client(&customer()).await;
    owner.subscribe(&support).await;
    owner.subscribe(&team).await;
    let mut agent_socket = stack.client(&agent()).await;
    agent_socket.subscribe(&support).await;
    let mut teammate = stack.client(&token("u-200", "acme", "customer")).await;
    teammate.subscribe(&team).await;
    // A follower in another tenant: the same user id, nothing shared.
    let mut other_tenant = stack.client(&token("u-100", "globex", "customer")).await;
    other_tenant.subscribe(&theirs).await;
    // Rooms one may not read cannot be followed: another tenant's, another's group.
    for room in [&theirs, &team] {
        let refused = agent_socket
            .ask(json!({"action": "subscribe", "room_id": room}))
            .await;
        assert_eq!(
            (refused["type"].as_str(), refused["code"].as_str()),
            (Some("error"), Some("not_found")),
            "{refused}"
        );
    }

    // Concurrent posters on two instances, into both rooms, and a note.
    let second = Arc::new(stack.app.instance());
    let mut tasks = Vec::new();
    for p in 0..4 {
        let (app, second) = (stack.app.clone(), second.clone());
        let (support, team) = (support.clone(), team.clone());
        tasks.push(tokio::spawn(async move {
            for k in 0..4 {
                let (room, tok) = match (p + k) % 3 {
                    0 => (&support, agent()),
                    1 => (&support, customer()),
                    _ => (&team, token("u-200", "acme", "customer")),
                };
                let key = "POST /rooms/{room_id}/messages";
                let body = json!({"content": format!("p{p} k{k}")});
                let (status, body) = match k % 2 {
                    0 => {
                        app.send(key, &[("room_id", room)], &tok, Some(body), &[])
                            .await
                    }
                    _ => {
                        app.send_on(&second, key, &[("room_id", room)], &tok, Some(body))
                            .await
                    }
                };
                assert_eq!(status, 201, "{body}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    stack
        .post(
            &support,
            &agent(),
            json!({"content": "customer is a VIP", "message_type": "note"}),
        )
        .await;
    stack
        .post(
            &theirs,
            &token("u-100", "globex", "customer"),
            json!({"content": "globex only"}),
        )
        .await;

    let (support_last, team_last) = (
        stack.last_seq(&support, &customer()).await,
        stack.last_seq(&team, &customer()).await,
    );
    assert_eq!(support_last + team_last, 17);
    owner.until_seq(&support, support_last).await;
    owner.until_seq(&team, team_last).await;
    agent_socket.until_seq(&support, support_last).await;
    teammate.until_seq(&team, team_last).await;
    other_tenant.until_seq(&theirs, 1).await;
    for client in [
        &mut owner,
        &mut agent_socket,
        &mut teammate,
        &mut other_tenant,
    ] {
        client.drain(Duration::from_millis(300)).await;
    }

    let owner_changes = owner.changes();
    assert_eq!(
        seqs(&owner_changes[&support]),
        (1..=support_last).collect::<Vec<_>>(),
        "once, in order"
    );
    assert_eq!(
        seqs(&owner_changes[&team]),
        (1..=team_last).collect::<Vec<_>>()
    );
    assert_eq!(owner_changes.len(), 2, "nothing of other rooms");
    // The note: the agent reads it, the customer gets its number only.
    let note = owner_changes[&support].last().unwrap();
    assert_eq!(note.1, "hidden");
    assert!(!owner.pushed.iter().any(|f| f.to_string().contains("VIP")));
    let agent_changes = agent_socket.changes();
    assert_eq!(
        seqs(&agent_changes[&support]),
        (1..=support_last).collect::<Vec<_>>()
    );
    assert_eq!(agent_changes.len(), 1);
    assert!(
        agent_socket
            .pushed
            .iter()
            .any(|f| f["data"]["content"] == "customer is a VIP")
    );
    assert_eq!(teammate.changes().keys().collect::<Vec<_>>(), vec![&team]);
    let theirs_only = other_tenant.changes();
    assert_eq!(theirs_only.len(), 1);
    assert_eq!(seqs(&theirs_only[&theirs]), vec![1]);
    assert!(
        !other_tenant
            .pushed
            .iter()
            .any(|f| f.to_string().contains("p0 k0"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_back_from_a_gap_resumes_with_exactly_what_it_missed() {
    let stack = Stack::new().await;
    let room = stack.conversation(&customer(), "a-1").await;
    let mut socket = stack.client(&customer()).await;
    socket.subscribe(&room).await;
    for k in 0..2 {
        stack
            .post(&room, &agent(), json!({"content": format!("before {k}")}))
            .await;
    }
    socket.until_seq(&room, 2).await;
    socket.ws.close(None).await.unwrap();
    drop(socket);
    for k in 0..3 {
        stack
            .post(&room, &agent(), json!({"content": format!("missed {k}")}))
            .await;
    }
    // Reconnect: subscribe first (live from now), then resume from the last applied.
    let mut socket = stack.client(&customer()).await;
    socket.subscribe(&room).await;
    let resumed = socket
        .ask(json!({"action": "resume", "room_id": &room, "after": 2}))
        .await;
    assert_eq!(resumed["type"], "resumed", "{resumed}");
    let missed: Vec<u64> = resumed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(missed, vec![3, 4, 5]);
    assert_eq!(
        (resumed["last_seq"].clone(), resumed["has_more"].clone()),
        (json!(5), json!(false))
    );
    assert!(resumed["events"][0]["data"]["content"] == "missed 0");
    // Live again from there; `subscribe` with `after` does both at once.
    stack
        .post(&room, &agent(), json!({"content": "live"}))
        .await;
    socket.until_seq(&room, 6).await;
    let both = socket
        .ask(json!({"action": "subscribe", "room_id": &room, "after": 4}))
        .await;
    assert_eq!(both["events"].as_array().unwrap().len(), 2, "{both}");
    let pong = socket.ask(json!({"action": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    let unknown = socket.ask(json!({"action": "shout"})).await;
    assert_eq!(
        (unknown["type"].as_str(), unknown["code"].as_str()),
        (Some("error"), Some("malformed_request"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_hears_of_the_removal_and_then_nothing() {
    let stack = Stack::new().await;
    let room = stack.group(&customer(), &["u-200"]).await;
    let mut member = stack.client(&token("u-200", "acme", "customer")).await;
    member.subscribe(&room).await;
    let mut owner = stack.client(&customer()).await;
    owner.subscribe(&room).await;
    stack
        .post(&room, &customer(), json!({"content": "hello team"}))
        .await;
    member.until_seq(&room, 1).await;
    let (status, _) = stack
        .app
        .send(
            "DELETE /rooms/{room_id}/members/{user_id}",
            &[("room_id", &room), ("user_id", "u-200")],
            &customer(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);
    member.until_seq(&room, 2).await;
    for k in 0..3 {
        stack
            .post(
                &room,
                &customer(),
                json!({"content": format!("after removal {k}")}),
            )
            .await;
    }
    owner.until_seq(&room, 5).await;
    member.drain(Duration::from_millis(500)).await;
    let theirs = member.changes();
    assert_eq!(
        theirs[&room],
        vec![(1, "message.new".into()), (2, "member.removed".into())]
    );
    assert!(
        !member
            .pushed
            .iter()
            .any(|f| f.to_string().contains("after removal"))
    );
    // Following again is refused: the room is not theirs any more.
    let refused = member
        .ask(json!({"action": "subscribe", "room_id": &room}))
        .await;
    assert_eq!(refused["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_opens_one_socket_once_before_it_expires_for_its_own_tenant() {
    let stack = Stack::new().await;
    let ticket = stack.ticket(&customer()).await;
    assert!(ticket.starts_with("acme."));
    let socket = stack.open(&ticket).await.expect("first use");
    drop(socket);
    assert_eq!(stack.open(&ticket).await.err(), Some(401), "reused");
    let forged = ticket.replacen("acme.", "globex.", 1);
    assert_eq!(
        stack
            .open(
                &stack
                    .ticket(&customer())
                    .await
                    .replacen("acme.", "globex.", 1)
            )
            .await
            .err(),
        Some(401),
        "another tenant"
    );
    assert_eq!(stack.open(&forged).await.err(), Some(401));
    assert_eq!(stack.open("").await.err(), Some(401), "none");
    // An expired ticket (its TTL passed; DynamoDB's sweep may lag, the check does not).
    let expired = stack.ticket(&customer()).await;
    let secret = expired.split_once('.').unwrap().1;
    stack
        .app
        .table
        .client
        .update_item()
        .table_name(&stack.app.table.name)
        .key("PK", chat_core::item::s(format!("T#acme#TICKET#{secret}")))
        .key("SK", chat_core::item::s("TICKET"))
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(":past", chat_core::item::n(1))
        .send()
        .await
        .unwrap();
    assert_eq!(stack.open(&expired).await.err(), Some(401), "expired");
    // Tickets are for signed-in callers only.
    let (status, _) = stack
        .app
        .send("POST /realtime/tickets", &[], "not-a-token", None, &[])
        .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_the_others_only_at_most_once_per_interval() {
    let stack = Stack::new().await;
    let room = stack.conversation(&customer(), "a-1").await;
    let mut typist = stack.client(&customer()).await;
    typist.subscribe(&room).await;
    let mut other_device = stack.client(&customer()).await;
    other_device.subscribe(&room).await;
    let mut agent_socket = stack.client(&agent()).await;
    agent_socket.subscribe(&room).await;
    for _ in 0..3 {
        typist
            .ws
            .send(Message::text(
                json!({"action": "typing", "room_id": &room}).to_string(),
            ))
            .await
            .unwrap();
    }
    let pong = typist.ask(json!({"action": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    agent_socket.drain(Duration::from_millis(500)).await;
    other_device.drain(Duration::from_millis(100)).await;
    let typing: Vec<&Value> = agent_socket
        .pushed
        .iter()
        .filter(|f| f["type"] == "typing")
        .collect();
    assert_eq!(typing.len(), 1, "rate-limited: {:?}", agent_socket.pushed);
    assert_eq!(typing[0]["user_id"], "u-100");
    assert!(typing[0].get("seq").is_none(), "not numbered");
    assert!(
        !typist
            .pushed
            .iter()
            .chain(&other_device.pushed)
            .any(|f| f["type"] == "typing")
    );
    // Not stored: the feed has no trace of it.
    let (_, events) = stack
        .app
        .send(
            "GET /rooms/{room_id}/events",
            &[("room_id", &room)],
            &agent(),
            None,
            &[],
        )
        .await;
    assert_eq!(events["data"]["last_seq"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_marker_reaches_the_readers_other_devices_only() {
    let stack = Stack::new().await;
    let room = stack.conversation(&customer(), "a-1").await;
    let mut phone = stack.client(&customer()).await;
    phone.subscribe(&room).await;
    let mut agent_socket = stack.client(&agent()).await;
    agent_socket.subscribe(&room).await;
    let message = stack
        .post(&room, &agent(), json!({"content": "shipped"}))
        .await;
    phone.until_seq(&room, 1).await;
    let (status, body) = stack
        .app
        .send(
            "POST /rooms/{room_id}/read",
            &[("room_id", &room)],
            &customer(),
            Some(json!({})),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    loop {
        let frame = phone.next_frame().await.expect("a read frame");
        if frame["type"] == "read" {
            assert_eq!(frame["last_read_message_id"], message["id"]);
            assert_eq!(frame["unread_count"], 0);
            break;
        }
    }
    agent_socket.drain(Duration::from_millis(400)).await;
    assert!(
        !agent_socket
            .pushed
            .iter()
            .any(|f| f["type"] == "read" && f["user_id"] == "u-100"),
        "{:?}",
        agent_socket.pushed
    );
}

/// #22.4: one change reaches hundreds of sockets (the fan-out posts to a room's
/// connections concurrently, [`realtime::fanout::FANOUT_CONCURRENCY`] at a time, each
/// its frames in order), and connections the gateway no longer knows are forgotten
/// without holding back the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_reaches_hundreds_of_sockets_and_gone_ones_are_forgotten() {
    const SOCKETS: usize = 200;
    const GONE: usize = 20;
    let stack = Stack::new().await;
    let room = stack.conversation(&customer(), "a-1").await;
    let mut clients = Vec::new();
    for i in 0..SOCKETS {
        // Agents follow support conversations without being members.
        let mut client = stack
            .client(&token(&format!("a-{}", 100 + i), "acme", "agent"))
            .await;
        client.subscribe(&room).await;
        clients.push(client);
    }
    let store = &stack.app.table.runtime.store;
    let room_id = chat_core::ids::RoomId::parse(&room).unwrap();
    let who = chat_core::auth::Principal {
        user: chat_core::ids::UserId::parse("a-99").unwrap(),
        org: chat_core::ids::OrgId::parse("acme").unwrap(),
        role: chat_core::ids::Role::Agent,
    };
    for i in 0..GONE {
        let connection = store
            .open_connection(&format!("gone-{i}"), &who)
            .await
            .unwrap();
        store.subscribe(&connection, &room_id).await.unwrap();
    }
    stack
        .post(&room, &customer(), json!({"content": "to everyone"}))
        .await;
    let seq = stack.last_seq(&room, &customer()).await;
    let received = futures_util::future::join_all(clients.iter_mut().map(|client| {
        let room = room.clone();
        async move {
            client.until_seq(&room, seq).await;
            client.drain(Duration::from_millis(200)).await;
            client
                .pushed
                .iter()
                .filter(|f| f["room_id"] == room.as_str() && f["seq"].as_u64() == Some(seq))
                .count()
        }
    }))
    .await;
    assert_eq!(
        received,
        vec![1; SOCKETS],
        "each socket got the change once"
    );
    // The fan-out forgets them as it goes; the sockets may have their frame first.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for i in 0..GONE {
        while store
            .connection(&format!("gone-{i}"))
            .await
            .unwrap()
            .is_some()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "gone-{i} is forgotten"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let audience = store
        .audience(&who.org, &room_id)
        .await
        .unwrap()
        .subscriptions;
    assert_eq!(audience.len(), SOCKETS, "only live sockets still follow");
}

impl Client {
    /// Waits for a pushed frame that `wanted` picks (kept with the others).
    async fn until(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(found) = self.pushed.iter().find(|f| wanted(f)) {
            return found.clone();
        }
        loop {
            let frame = self
                .next_frame()
                .await
                .unwrap_or_else(|| panic!("{what} never came; got {:?}", self.pushed));
            self.pushed.push(frame.clone());
            if wanted(&frame) {
                return frame;
            }
        }
    }

    fn inbox_frames(&self) -> Vec<&Value> {
        self.pushed
            .iter()
            .filter(|f| f["type"].as_str().is_some_and(|t| t.starts_with("inbox.")))
            .collect()
    }
}

/// #22.5: a connection hears of its own inbox without following rooms — rooms it was
/// added to or removed from (numbered per user), rows that moved (live) — and a
/// reconnect catches up on the numbers like a room's feed; nobody else hears any of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_feed_reaches_the_users_connections_and_a_reconnect_catches_up() {
    let stack = Stack::new().await;
    let carol = token("u-300", "acme", "customer");
    let mut phone = stack.client(&carol).await;
    let standing = phone.ask(json!({"action": "sync_inbox"})).await;
    assert_eq!(
        (standing["type"].as_str(), standing["last_seq"].as_u64()),
        (Some("inbox_synced"), Some(0)),
        "{standing}"
    );
    assert!(
        standing.get("events").is_none(),
        "where it stands, no events"
    );
    let empty = phone.ask(json!({"action": "sync_inbox", "after": 0})).await;
    assert_eq!(empty["events"], json!([]), "{empty}");
    // Bystanders: another member of the tenant, and a user of the same id in another.
    let mut neighbour = stack.client(&token("u-301", "acme", "customer")).await;
    let mut namesake = stack.client(&token("u-300", "globex", "customer")).await;
    let mut agent_socket = stack.client(&token("a-2", "acme", "agent")).await;

    let room = stack.group(&customer(), &["u-300"]).await;
    let added = phone
        .until("inbox.added", |f| f["type"] == "inbox.added")
        .await;
    assert_eq!(added["inbox_seq"], 1);
    assert_eq!(added["room_id"], room.as_str());
    assert_eq!(added["data"]["id"], room.as_str());
    assert!(added.get("seq").is_none(), "not a room's number: {added}");

    stack
        .post(&room, &customer(), json!({"content": "welcome"}))
        .await;
    let moved = phone
        .until("inbox.updated", |f| {
            f["type"] == "inbox.updated" && f["data"]["unread_count"] == 1
        })
        .await;
    assert_eq!(moved["room_id"], room.as_str());
    assert!(moved.get("inbox_seq").is_none(), "a state, not numbered");

    // A new support conversation reaches the agent it names, live.
    let support = stack
        .conversation(&token("u-302", "acme", "customer"), "a-2")
        .await;
    let new_conversation = agent_socket
        .until("the agent's inbox.added", |f| f["type"] == "inbox.added")
        .await;
    assert_eq!(new_conversation["room_id"], support.as_str());
    assert_eq!(
        new_conversation["data"]["room_type"], "support",
        "{new_conversation}"
    );

    let (status, _) = stack
        .app
        .send(
            "DELETE /rooms/{room_id}/members/{user_id}",
            &[("room_id", &room), ("user_id", "u-300")],
            &customer(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let removed = phone
        .until("inbox.removed", |f| f["type"] == "inbox.removed")
        .await;
    assert_eq!(
        (removed["inbox_seq"].as_u64(), removed["room_id"].as_str()),
        (Some(2), Some(room.as_str()))
    );

    // Away: added to another room meanwhile; back, one ask brings exactly that.
    drop(phone);
    let second = stack.group(&customer(), &["u-300"]).await;
    let mut laptop = stack.client(&carol).await;
    let mut caught_up = Value::Null;
    for _ in 0..100 {
        caught_up = laptop
            .ask(json!({"action": "sync_inbox", "after": 2}))
            .await;
        if caught_up["last_seq"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = caught_up["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{caught_up}");
    assert_eq!(
        (
            events[0]["type"].as_str(),
            events[0]["inbox_seq"].as_u64(),
            events[0]["room_id"].as_str()
        ),
        (Some("inbox.added"), Some(3), Some(second.as_str()))
    );
    assert_eq!(caught_up["has_more"], false);
    let whole = laptop
        .ask(json!({"action": "sync_inbox", "after": 0}))
        .await;
    let numbers: Vec<u64> = whole["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["inbox_seq"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 2, 3], "dense, once each");
    let ahead = laptop
        .ask(json!({"action": "sync_inbox", "after": 9}))
        .await;
    assert_eq!(
        (ahead["status"].as_u64(), ahead["code"].as_str()),
        (Some(422), Some("invalid_field"))
    );

    // Handled twice (a retried stream batch), a change keeps its one number.
    let store = &stack.app.table.runtime.store;
    let (org, user) = (
        chat_core::ids::OrgId::parse("acme").unwrap(),
        chat_core::ids::UserId::parse("u-300").unwrap(),
    );
    let change = chat_core::store::InboxChange {
        kind: chat_core::store::InboxEventKind::Added,
        room_id: second.clone(),
        joined_at: "2026-12-04T00:00:00Z".into(),
        data: json!({}),
    };
    let first = store
        .append_inbox_event(&org, &user, &change, None)
        .await
        .unwrap();
    let again = store
        .append_inbox_event(&org, &user, &change, Some(0))
        .await
        .unwrap();
    assert_eq!((first.seq, again.seq), (4, 4));
    assert_eq!(
        store.inbox_listeners(&org, &user).await.unwrap().last_seq,
        4
    );

    for bystander in [&mut neighbour, &mut namesake] {
        bystander.drain(Duration::from_millis(300)).await;
        assert_eq!(
            bystander.inbox_frames(),
            Vec::<&Value>::new(),
            "nothing of u-300's inbox"
        );
    }
    agent_socket.drain(Duration::from_millis(100)).await;
    assert!(
        !agent_socket
            .pushed
            .iter()
            .any(|f| f["room_id"] == room.as_str()),
        "the agent is not in the group"
    );
}
