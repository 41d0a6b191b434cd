//! The local WebSocket API and stream fan-out, run as AWS runs them, around the same
//! handlers the `realtime` and `fanout` functions run:
//! - a WebSocket endpoint that turns `$connect`, each text frame and the close into
//!   API Gateway WebSocket events (routes selected by `$request.body.action` among
//!   template.yaml's routes) and sends an action's answer back on the socket;
//! - API Gateway's Management API on the same port (`POST|GET|DELETE
//!   /@connections/{id}`), which the functions reach through the AWS SDK;
//! - DynamoDB Local's stream polled as Lambda's event source mapping polls it: records
//!   in Lambda's event shape, the template's filter patterns applied, partial batch
//!   failures retried from the failed record, a bounded number of times.
//!
//! One process serves the sockets of a table: the fan-out posts to its own port.

use aws_sdk_dynamodbstreams::types::{AttributeValue as StreamValue, Record, ShardIteratorType};
use base64::Engine;
use chat_core::Runtime;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Deliveries of one batch after its first failure (Lambda: MaximumRetryAttempts).
const STREAM_RETRIES: u32 = 5;

/// The WebSocket API on `port` (0: any free one) of 127.0.0.1 and the fan-out from the
/// table's stream, both running until the process ends: the port and the gateway.
pub async fn serve_realtime(runtime: &Runtime, port: u16) -> std::io::Result<(u16, Arc<Realtime>)> {
    let (port, realtime) = serve_gateway(runtime, port).await?;
    match StreamReader::open(realtime.clone(), runtime).await {
        Some(reader) => {
            tokio::spawn(reader.run());
        }
        None => tracing::error!("the table has no stream: realtime delivery is off"),
    }
    Ok((port, realtime))
}

/// The WebSocket API and its Management API alone, without the fan-out on the
/// table's stream (for a test that runs the fan-out's bootstrap itself).
pub async fn serve_gateway(runtime: &Runtime, port: u16) -> std::io::Result<(u16, Arc<Realtime>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    let realtime = Realtime::new(runtime, port).await;
    tokio::spawn(serve_websocket(listener, realtime.clone()));
    Ok((port, realtime))
}

/// What the gateway writes to one socket.
enum Outgoing {
    Text(String),
    Close,
}

pub struct Realtime {
    socket: realtime::Socket,
    fanout: realtime::Fanout,
    routes: Vec<String>,
    filters: Vec<Value>,
    connections: Mutex<HashMap<String, mpsc::UnboundedSender<Outgoing>>>,
}

impl Realtime {
    /// The gateway for sockets on `port` (already bound: its Management API is there).
    pub async fn new(runtime: &Runtime, port: u16) -> Arc<Realtime> {
        let template = chat_testkit::template();
        let url = format!("http://127.0.0.1:{port}");
        let gateway = realtime::Gateway::new(&runtime.config.aws, &url).await;
        Arc::new(Realtime {
            socket: realtime::Socket::new(runtime.store.clone(), gateway.clone()),
            fanout: realtime::Fanout::new(runtime.store.clone(), gateway),
            routes: chat_testkit::websocket_routes(&template),
            filters: chat_testkit::stream_filters(&template, "FanoutFunction"),
            connections: Mutex::default(),
        })
    }

    /// `PostToConnection` calls the fan-out and typing made so far.
    pub fn posts(&self) -> u64 {
        self.fanout.gateway().posts()
    }

    fn route_for(&self, body: &str) -> String {
        let action = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v["action"].as_str().map(str::to_owned));
        match action {
            Some(action) if self.routes.contains(&action) && !action.starts_with('$') => action,
            _ => "$default".to_owned(),
        }
    }

    async fn invoke(&self, event: Value) -> Value {
        match serde_json::from_value(event) {
            Ok(event) => self.socket.handle(event).await,
            Err(err) => json!({ "statusCode": 500, "body": err.to_string() }),
        }
    }

    fn sender(&self, connection: &str) -> Option<mpsc::UnboundedSender<Outgoing>> {
        self.connections.lock().ok()?.get(connection).cloned()
    }
}

/// An API Gateway WebSocket event for `route` on `connection`.
pub fn socket_event(
    route: &str,
    connection: &str,
    query: &HashMap<String, String>,
    body: Option<&str>,
) -> Value {
    let now = time::OffsetDateTime::now_utc();
    let event_type = match route {
        "$connect" => "CONNECT",
        "$disconnect" => "DISCONNECT",
        _ => "MESSAGE",
    };
    let mut context = json!({
        "routeKey": route,
        "eventType": event_type,
        "messageDirection": "IN",
        "connectionId": connection,
        "connectedAt": now.unix_timestamp() * 1000,
        "requestTimeEpoch": now.unix_timestamp() * 1000,
        "requestId": format!("local-{}", rand::random::<u64>()),
        "extendedRequestId": format!("local-{}", rand::random::<u64>()),
        "apiId": "local",
        "domainName": "127.0.0.1",
        "stage": "live",
        "identity": { "sourceIp": "127.0.0.1" },
    });
    if event_type == "MESSAGE" {
        context["messageId"] = json!(format!("m-{}", rand::random::<u64>()));
    }
    if event_type == "DISCONNECT" {
        context["disconnectStatusCode"] = json!(1001);
        context["disconnectReason"] = json!("Client closed the connection");
    }
    let mut event = json!({ "requestContext": context, "isBase64Encoded": false });
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
        event["multiValueQueryStringParameters"] = json!(
            query
                .iter()
                .map(|(k, v)| (k, vec![v]))
                .collect::<HashMap<_, _>>()
        );
    }
    if let Some(body) = body {
        event["body"] = json!(body);
    }
    event
}

/// Serves the WebSocket API and its Management API on `listener` until the process ends.
pub async fn serve_websocket(
    listener: tokio::net::TcpListener,
    realtime: Arc<Realtime>,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let realtime = realtime.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let realtime = realtime.clone();
                async move { Ok::<_, Infallible>(route(realtime, req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

async fn route(
    realtime: Arc<Realtime>,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if let Some(connection) = path.strip_prefix("/@connections/") {
        let connection = chat_testkit::percent_decode(connection);
        return management(&realtime, req, &connection).await;
    }
    if req.headers().get("upgrade").and_then(|v| v.to_str().ok()) == Some("websocket") {
        return upgrade(realtime, req).await;
    }
    answer(426, "a WebSocket upgrade or /@connections/{id}")
}

/// `$connect`: the handler decides; on 2xx the socket opens and is served.
async fn upgrade(
    realtime: Arc<Realtime>,
    mut req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return answer(400, "no Sec-WebSocket-Key");
    };
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), chat_testkit::percent_decode(v)))
        .collect();
    let connection = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 10]>());
    let answered = realtime
        .invoke(socket_event("$connect", &connection, &query, None))
        .await;
    let status = answered["statusCode"].as_u64().unwrap_or(500) as u16;
    if !(200..300).contains(&status) {
        return answer(status, "connection refused");
    }
    let (sender, receiver) = mpsc::unbounded_channel();
    if let Ok(mut connections) = realtime.connections.lock() {
        connections.insert(connection.clone(), sender);
    }
    let upgraded = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(io) = upgraded.await {
            let socket =
                WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
            serve_socket(&realtime, &connection, socket, receiver).await;
        }
        if let Ok(mut connections) = realtime.connections.lock() {
            connections.remove(&connection);
        }
        realtime
            .invoke(socket_event(
                "$disconnect",
                &connection,
                &HashMap::new(),
                None,
            ))
            .await;
    });
    let mut response = hyper::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(
        "upgrade",
        hyper::header::HeaderValue::from_static("websocket"),
    );
    headers.insert(
        "connection",
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(accept) = derive_accept_key(key.as_bytes()).parse() {
        headers.insert("sec-websocket-accept", accept);
    }
    response
}

/// Frames in (each one invocation of its route) and posts out, until either side closes.
async fn serve_socket<S>(
    realtime: &Realtime,
    connection: &str,
    socket: WebSocketStream<S>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut write, mut read) = socket.split();
    loop {
        tokio::select! {
            frame = read.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text.to_string(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Ok(Message::Binary(_))) => continue,
                    _ => break,
                };
                let route = realtime.route_for(&text);
                let answered = realtime
                    .invoke(socket_event(&route, connection, &HashMap::new(), Some(&text)))
                    .await;
                if let Some(body) = answered["body"].as_str()
                    && write.send(Message::text(body)).await.is_err()
                {
                    break;
                }
            }
            post = outgoing.recv() => match post {
                Some(Outgoing::Text(text)) => {
                    if write.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Close) | None => {
                    let _ = write.send(Message::Close(None)).await;
                    break;
                }
            },
        }
    }
}

/// API Gateway's Management API for one connection.
async fn management(
    realtime: &Realtime,
    req: hyper::Request<Incoming>,
    connection: &str,
) -> hyper::Response<Full<Bytes>> {
    let method = req.method().clone();
    let Some(sender) = realtime.sender(connection) else {
        let mut gone = answer(410, "");
        *gone.body_mut() = Full::new(Bytes::from(r#"{"message":"Gone"}"#));
        gone.headers_mut().insert(
            "x-amzn-errortype",
            hyper::header::HeaderValue::from_static("GoneException"),
        );
        return gone;
    };
    match method.as_str() {
        "POST" => {
            let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
                return answer(400, "unreadable body");
            };
            let _ = sender.send(Outgoing::Text(String::from_utf8_lossy(&body).into_owned()));
            answer(200, "")
        }
        "DELETE" => {
            let _ = sender.send(Outgoing::Close);
            answer(204, "")
        }
        _ => {
            let mut info = answer(200, "");
            *info.body_mut() = Full::new(Bytes::from(
                json!({"identity": {"sourceIp": "127.0.0.1"}}).to_string(),
            ));
            info
        }
    }
}

fn answer(status: u16, message: &str) -> hyper::Response<Full<Bytes>> {
    let body = match message.is_empty() {
        true => String::new(),
        false => json!({ "message": message }).to_string(),
    };
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A function the table's stream triggers: its event source mapping's filter patterns
/// and its handler.
pub trait StreamConsumer: Send + Sync + 'static {
    fn filters(&self) -> &[Value];
    fn handle(&self, batch: Value) -> impl std::future::Future<Output = Value> + Send;
}

impl StreamConsumer for Realtime {
    fn filters(&self) -> &[Value] {
        &self.filters
    }

    async fn handle(&self, batch: Value) -> Value {
        self.fanout.handle(batch).await
    }
}

/// The table's stream, read as Lambda's event source mapping reads it (starting
/// position LATEST: from when it was opened), for one consumer.
pub struct StreamReader<C> {
    consumer: Arc<C>,
    streams: aws_sdk_dynamodbstreams::Client,
    arn: String,
    iterators: HashMap<String, Position>,
}

/// Where the reader is in one shard.
#[derive(Debug, Clone)]
struct Position {
    iterator: Option<String>,
    /// The sequence number of the last record read.
    last: Option<String>,
}

impl<C: StreamConsumer> StreamReader<C> {
    /// Positions at the stream's end; None when the table has no stream.
    pub async fn open(consumer: Arc<C>, runtime: &Runtime) -> Option<StreamReader<C>> {
        let endpoint = runtime.config.dynamodb_endpoint.clone()?;
        let arn = stream_arn(runtime, &runtime.config.table_name).await?;
        let shared =
            chat_core::aws::sdk_config(&runtime.config.aws, chat_core::aws::Endpoint::Local).await;
        let streams = aws_sdk_dynamodbstreams::Client::from_conf(
            aws_sdk_dynamodbstreams::config::Builder::from(&shared)
                .endpoint_url(&endpoint)
                .build(),
        );
        let mut reader = StreamReader {
            consumer,
            streams,
            arn,
            iterators: HashMap::new(),
        };
        reader.refresh_shards(ShardIteratorType::Latest).await;
        Some(reader)
    }

    /// Polls and delivers until the process ends; shards that appear later are read
    /// from their first record.
    pub async fn run(mut self) {
        let mut since_refresh = Duration::ZERO;
        loop {
            if since_refresh >= Duration::from_secs(1) {
                self.refresh_shards(ShardIteratorType::TrimHorizon).await;
                since_refresh = Duration::ZERO;
            }
            let mut idle = true;
            let shards: Vec<String> = self.iterators.keys().cloned().collect();
            for shard in shards {
                if self.read_shard(&shard).await {
                    idle = false;
                }
            }
            if idle {
                tokio::time::sleep(Duration::from_millis(20)).await;
                since_refresh += Duration::from_millis(20);
            }
        }
    }

    /// One GetRecords of a shard, delivered; whether it had records. An iterator that
    /// fails (DynamoDB Local trims its streams) is replaced from the last record read.
    async fn read_shard(&mut self, shard: &str) -> bool {
        let Some(position) = self.iterators.get(shard).cloned() else {
            return false;
        };
        let Some(iterator) = position.iterator.clone() else {
            return false;
        };
        let read = self
            .streams
            .get_records()
            .shard_iterator(iterator)
            .limit(100)
            .send()
            .await;
        match read {
            Ok(out) => {
                let last = out
                    .records()
                    .last()
                    .and_then(|r| r.dynamodb()?.sequence_number().map(str::to_owned))
                    .or(position.last);
                let next = out.next_shard_iterator().map(str::to_owned);
                self.iterators.insert(
                    shard.to_owned(),
                    Position {
                        iterator: next,
                        last,
                    },
                );
                if out.records().is_empty() {
                    return false;
                }
                deliver(self.consumer.as_ref(), out.records()).await;
                true
            }
            Err(err) => {
                tracing::debug!(shard, error = %aws_sdk_dynamodbstreams::error::DisplayErrorContext(&err), "get records; repositioning");
                let (at, after) = match &position.last {
                    Some(last) => (ShardIteratorType::AfterSequenceNumber, Some(last.clone())),
                    None => (ShardIteratorType::TrimHorizon, None),
                };
                let iterator = self.iterator(shard, at, after).await;
                self.iterators.insert(
                    shard.to_owned(),
                    Position {
                        iterator,
                        last: position.last,
                    },
                );
                false
            }
        }
    }

    async fn iterator(
        &self,
        shard: &str,
        at: ShardIteratorType,
        after: Option<String>,
    ) -> Option<String> {
        self.streams
            .get_shard_iterator()
            .stream_arn(&self.arn)
            .shard_id(shard)
            .shard_iterator_type(at)
            .set_sequence_number(after)
            .send()
            .await
            .ok()
            .and_then(|o| o.shard_iterator().map(str::to_owned))
    }

    async fn refresh_shards(&mut self, at: ShardIteratorType) {
        let Ok(described) = self
            .streams
            .describe_stream()
            .stream_arn(&self.arn)
            .send()
            .await
        else {
            return;
        };
        let shards = described
            .stream_description()
            .map(|d| d.shards().to_vec())
            .unwrap_or_default();
        for shard in shards {
            let Some(id) = shard.shard_id() else { continue };
            if self.iterators.contains_key(id) {
                continue;
            }
            let iterator = self.iterator(id, at.clone(), None).await;
            self.iterators.insert(
                id.to_owned(),
                Position {
                    iterator,
                    last: None,
                },
            );
        }
    }
}

async fn stream_arn(runtime: &Runtime, table: &str) -> Option<String> {
    let described = runtime
        .store
        .client()
        .describe_table()
        .table_name(table)
        .send()
        .await
        .ok()?;
    described.table()?.latest_stream_arn().map(str::to_owned)
}

/// One batch through the filters and the fan-out; a failed record and those after it
/// are delivered again, at most [`STREAM_RETRIES`] times, then dropped with an error
/// (where Lambda would send them to the on-failure destination).
async fn deliver<C: StreamConsumer>(consumer: &C, records: &[Record]) {
    let mut batch: Vec<Value> = records
        .iter()
        .map(lambda_record)
        .filter(|r| {
            consumer
                .filters()
                .iter()
                .any(|p| chat_testkit::matches_pattern(p, r))
        })
        .collect();
    for attempt in 0..=STREAM_RETRIES {
        if batch.is_empty() {
            return;
        }
        let answer = consumer.handle(json!({ "Records": batch })).await;
        let failed: Vec<&str> = answer["batchItemFailures"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|i| i["itemIdentifier"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let Some(first) = batch.iter().position(|r| {
            failed.contains(&r["dynamodb"]["SequenceNumber"].as_str().unwrap_or_default())
        }) else {
            return;
        };
        tracing::warn!(
            attempt,
            "a stream consumer reported a failed record; retrying from it"
        );
        batch.drain(..first);
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    }
    tracing::error!(
        records = batch.len(),
        "a stream consumer gave up on records (on-failure destination)"
    );
}

/// A stream record as Lambda's DynamoDB event carries it.
pub fn lambda_record(record: &Record) -> Value {
    let stream = record.dynamodb();
    let image = |image: Option<&HashMap<String, StreamValue>>| {
        image.map(|i| {
            Value::Object(
                i.iter()
                    .map(|(k, v)| (k.clone(), dynamodb_json(v)))
                    .collect(),
            )
        })
    };
    let mut dynamodb = Map::new();
    if let Some(stream) = stream {
        dynamodb.insert(
            "Keys".into(),
            image(stream.keys.as_ref()).unwrap_or(Value::Null),
        );
        if let Some(new) = image(stream.new_image.as_ref()) {
            dynamodb.insert("NewImage".into(), new);
        }
        if let Some(old) = image(stream.old_image.as_ref()) {
            dynamodb.insert("OldImage".into(), old);
        }
        dynamodb.insert("SequenceNumber".into(), json!(stream.sequence_number()));
        dynamodb.insert("SizeBytes".into(), json!(stream.size_bytes()));
        dynamodb.insert("StreamViewType".into(), json!("NEW_AND_OLD_IMAGES"));
    }
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
    })
}

fn dynamodb_json(value: &StreamValue) -> Value {
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| {
        json!(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
    };
    match value {
        StreamValue::S(s) => json!({ "S": s }),
        StreamValue::N(n) => json!({ "N": n }),
        StreamValue::Bool(b) => json!({ "BOOL": b }),
        StreamValue::Null(_) => json!({ "NULL": true }),
        StreamValue::Ss(v) => json!({ "SS": v }),
        StreamValue::Ns(v) => json!({ "NS": v }),
        StreamValue::B(b) => json!({ "B": b64(b) }),
        StreamValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        StreamValue::L(v) => json!({ "L": v.iter().map(dynamodb_json).collect::<Vec<_>>() }),
        StreamValue::M(m) => {
            json!({ "M": m.iter().map(|(k, v)| (k.clone(), dynamodb_json(v))).collect::<Map<_, _>>() })
        }
        _ => Value::Null,
    }
}
