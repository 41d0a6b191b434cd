//! Realtime figures: for rooms of 2, 10 and 40 members, each member following the room
//! on its own socket, a bounded series of posts through the dev server; per message,
//! the post's DynamoDB requests and transaction size, the fan-out's DynamoDB requests
//! and `PostToConnection` calls, and commit-to-delivery latency on every socket. Also
//! what a post costs when another instance wrote the room last (its cached `last_seq`
//! is stale).

use crate::{Http, api, percentile, token};
use chat_core::dynamo::RequestCounter;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Posts measured per room size (after warm-up).
const POSTS: usize = 40;
const WARMUP_POSTS: usize = 3;
pub const POSTS_MEASURED: usize = POSTS;
pub const WARMUP: usize = WARMUP_POSTS;
pub const SIZES: [usize; 3] = [2, 10, 40];

pub struct RealtimeRow {
    pub members: usize,
    pub post_requests: f64,
    pub post_items: f64,
    pub fanout_requests: f64,
    pub posts_to_connections: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub struct RealtimeReport {
    pub rows: Vec<RealtimeRow>,
    /// Requests of a post whose instance did not write the room last.
    pub stale_post_requests: f64,
    /// One room's changes to many sockets (#22).
    pub at_size: Vec<SocketsRow>,
}

/// Sockets one support conversation's changes are measured to, each an agent's.
pub const FANOUT_SOCKETS: [usize; 3] = [10, 100, 1_000];
/// Posts measured per socket count (after warm-up).
pub const FANOUT_POSTS: usize = 20;

pub struct SocketsRow {
    pub sockets: usize,
    pub posts_to_connections: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

struct Stack {
    http: Http,
    ports: [u16; 2],
    counter: RequestCounter,
    recorder: crate::Recorder,
    realtime: Arc<devserver::realtime::Realtime>,
    ws_port: u16,
}

pub async fn measure(table: &chat_testkit::TestTable) -> RealtimeReport {
    let stack = stack(table).await;
    let mut rows = Vec::new();
    for members in SIZES {
        rows.push(room_size(&stack, members).await);
    }
    let stale_post_requests = stale_posts(&stack).await;
    let mut at_size = Vec::new();
    for sockets in FANOUT_SOCKETS {
        at_size.push(sockets_of_one_room(&stack, sockets).await);
    }
    RealtimeReport {
        rows,
        stale_post_requests,
        at_size,
    }
}

async fn stack(table: &chat_testkit::TestTable) -> Stack {
    let (runtime, counter, recorder) = crate::instrumented_runtime(table);
    let (ws_port, realtime) = devserver::realtime::serve_realtime(&runtime, 0)
        .await
        .expect("bind the WebSocket API on loopback");
    // Two instances: their own handlers and room caches, one table.
    let ports = [
        crate::serve_api(runtime.clone()).await,
        crate::serve_api(runtime.clone()).await,
    ];
    Stack {
        http: crate::http_client(),
        ports,
        counter,
        recorder,
        realtime,
        ws_port,
    }
}

/// A socket following `room` whose pushed feed events arrive on `arrivals` as
/// (seq, when).
async fn follower(
    stack: &Stack,
    user: &str,
    room: &str,
    arrivals: mpsc::UnboundedSender<(u64, Instant)>,
) {
    follower_as(stack, &token(user, "acme", "customer"), room, arrivals).await;
}

/// One support conversation followed by `sockets` agents' sockets (agents follow
/// support conversations without being members): commit-to-delivery over all of them.
async fn sockets_of_one_room(stack: &Stack, sockets: usize) -> SocketsRow {
    let tok = token(&format!("s{sockets}-customer"), "acme", "customer");
    let (status, made) = api(
        &stack.http,
        stack.ports[0],
        "POST",
        "/chat/conversations",
        &tok,
        Some(&json!({"title": format!("{sockets} sockets"), "agent_id": "s-agent"})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let room = made["data"]["conversation_id"]
        .as_str()
        .expect("conversation id")
        .to_owned();
    let (arrivals, mut arrived) = mpsc::unbounded_channel();
    for i in 0..sockets {
        let agent = token(&format!("s{sockets}-agent-{i}"), "acme", "agent");
        follower_as(stack, &agent, &room, arrivals.clone()).await;
    }
    let mut latencies = Vec::new();
    let posts_before = stack.realtime.posts();
    for i in 0..WARMUP_POSTS + FANOUT_POSTS {
        let (status, posted) = api(
            &stack.http,
            stack.ports[0],
            "POST",
            &format!("/rooms/{room}/messages"),
            &tok,
            Some(&json!({"content": format!("to {sockets} sockets, {i}")})),
        )
        .await;
        let committed = Instant::now();
        assert_eq!(status, 201, "{posted}");
        let seq = posted["data"]["seq"].as_u64().expect("a seq");
        let mut delivered = 0;
        while delivered < sockets {
            let (got, at) = tokio::time::timeout(Duration::from_secs(30), arrived.recv())
                .await
                .expect("delivery within 30 s")
                .expect("followers alive");
            if got == seq {
                delivered += 1;
                if i >= WARMUP_POSTS {
                    latencies.push(at.saturating_duration_since(committed).as_secs_f64() * 1e3);
                }
            }
        }
    }
    let posts =
        (stack.realtime.posts() - posts_before) as f64 / (WARMUP_POSTS + FANOUT_POSTS) as f64;
    SocketsRow {
        sockets,
        posts_to_connections: posts,
        p50_ms: percentile(&mut latencies, 0.50),
        p99_ms: percentile(&mut latencies, 0.99),
    }
}

/// [`follower`] with any token.
async fn follower_as(
    stack: &Stack,
    tok: &str,
    room: &str,
    arrivals: mpsc::UnboundedSender<(u64, Instant)>,
) {
    let (_, ticket) = api(
        &stack.http,
        stack.ports[0],
        "POST",
        "/realtime/tickets",
        tok,
        None,
    )
    .await;
    let ticket = ticket["data"]["ticket"]
        .as_str()
        .expect("a ticket")
        .to_owned();
    let url = format!("ws://127.0.0.1:{}/?ticket={ticket}", stack.ws_port);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("socket opens");
    ws.send(Message::text(
        json!({"action": "subscribe", "room_id": room}).to_string(),
    ))
    .await
    .expect("subscribe");
    // Following once the answer is back: no post is sent before that.
    while let Some(Ok(frame)) = ws.next().await {
        if let Message::Text(text) = frame
            && text.contains("\"subscribed\"")
        {
            break;
        }
    }
    tokio::spawn(async move {
        while let Some(Ok(frame)) = ws.next().await {
            let Message::Text(text) = frame else { continue };
            let frame: Value = serde_json::from_str(&text).unwrap_or_default();
            if frame["type"] == "message.new"
                && let Some(seq) = frame["seq"].as_u64()
            {
                let _ = arrivals.send((seq, Instant::now()));
            }
        }
    });
}

async fn room_size(stack: &Stack, members: usize) -> RealtimeRow {
    let owner = format!("b{members}-0");
    let others: Vec<String> = (1..members).map(|i| format!("b{members}-{i}")).collect();
    let tok = token(&owner, "acme", "customer");
    let (status, room) = api(
        &stack.http,
        stack.ports[0],
        "POST",
        "/rooms",
        &tok,
        Some(&json!({"type": "group", "name": format!("Bench {members}"), "participant_ids": others})),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    let room = room["data"]["id"].as_str().expect("room id").to_owned();
    let (arrivals, mut arrived) = mpsc::unbounded_channel();
    follower(stack, &owner, &room, arrivals.clone()).await;
    for other in &others {
        follower(stack, other, &room, arrivals.clone()).await;
    }
    let mut latencies = Vec::new();
    let (mut post_requests, mut post_items, mut fanout_requests, mut connection_posts) =
        (0, 0, 0, 0);
    for i in 0..WARMUP_POSTS + POSTS {
        let requests_before = stack.counter.get();
        let posts_before = stack.realtime.posts();
        stack.recorder.take();
        let (status, posted) = api(
            &stack.http,
            stack.ports[0],
            "POST",
            &format!("/rooms/{room}/messages"),
            &tok,
            Some(&json!({"content": format!("bench message {i}")})),
        )
        .await;
        let committed = Instant::now();
        assert_eq!(status, 201, "{posted}");
        let seq = posted["data"]["seq"].as_u64().expect("a seq");
        let requests_of_post = stack.counter.get() - requests_before;
        let items = stack.recorder.transaction_items();
        let mut delivered = Vec::new();
        while delivered.len() < members {
            let (got, at) = tokio::time::timeout(Duration::from_secs(10), arrived.recv())
                .await
                .expect("delivery within 10 s")
                .expect("followers alive");
            if got == seq {
                delivered.push(at.saturating_duration_since(committed));
            }
        }
        // The fan-out's last requests (the sender's read marker) settle.
        tokio::time::sleep(Duration::from_millis(60)).await;
        if i < WARMUP_POSTS {
            continue;
        }
        post_requests += requests_of_post;
        post_items += items;
        fanout_requests += stack.counter.get() - requests_before - requests_of_post;
        connection_posts += stack.realtime.posts() - posts_before;
        latencies.extend(delivered.iter().map(|d| d.as_secs_f64() * 1000.0));
    }
    let per = |total: u64| total as f64 / POSTS as f64;
    RealtimeRow {
        members,
        post_requests: per(post_requests),
        post_items: post_items as f64 / POSTS as f64,
        fanout_requests: per(fanout_requests),
        posts_to_connections: per(connection_posts),
        p50_ms: percentile(&mut latencies, 0.5),
        p99_ms: percentile(&mut latencies, 0.99),
    }
}

/// Posts alternating between the two instances: each finds its cached `last_seq`
/// moved by the other and rebuilds once from the room the failure returns.
async fn stale_posts(stack: &Stack) -> f64 {
    let tok = token("b-stale", "acme", "customer");
    let (_, room) = api(
        &stack.http,
        stack.ports[0],
        "POST",
        "/rooms",
        &tok,
        Some(&json!({"type": "group", "name": "Bench stale", "participant_ids": ["b-stale-2"]})),
    )
    .await;
    let room = room["data"]["id"].as_str().expect("room id").to_owned();
    let mut requests = 0;
    for i in 0..WARMUP_POSTS + POSTS {
        let before = stack.counter.get();
        let (status, _) = api(
            &stack.http,
            stack.ports[i % 2],
            "POST",
            &format!("/rooms/{room}/messages"),
            &tok,
            Some(&json!({"content": format!("stale {i}")})),
        )
        .await;
        assert_eq!(status, 201);
        if i >= WARMUP_POSTS {
            requests += stack.counter.get() - before;
        }
        // Let the fan-out's reads pass so they are not counted as the next post's.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    requests as f64 / POSTS as f64
}
