//! Webhook delivery: the `deliver` function. Two triggers, one job:
//! - the table's stream (feed events): each event becomes one delivery per endpoint
//!   of its tenant that takes its type, stored first (so a crash loses nothing), then
//!   attempted at once;
//! - a schedule (every minute): the deliveries that are due (a retry's time came, or
//!   a claim lapsed) are claimed and attempted.
//!
//! Attempts are signed POSTs (Standard Webhooks) with one deadline of at most 10 s,
//! no redirects followed, and only to public addresses — checked on the URL and
//! again on every address its host resolves to, at connection time.

use chat_core::Runtime;
use chat_core::egress::may_connect;
use chat_core::ids::OrgId;
use chat_core::item::ItemExt;
use chat_core::keys;
use chat_core::store::{DUE_SHARDS, Delivery, Event, Health, Store, Webhook};
use chat_core::time::now_millis;
use chat_core::webhooks::{
    AttemptOutcome, DeliverySettings, check_url, is_public, signature_header,
};
use chat_core::wire::item_of;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Attempts in flight at once, per invocation.
const CONCURRENT_ATTEMPTS: usize = 16;
/// An invocation starts no attempt after this long (the function's timeout is 60 s
/// and an attempt takes at most 10 s): what is left keeps its claim, which lapses
/// into the schedule.
const INVOCATION_BUDGET: Duration = Duration::from_secs(45);
/// Due deliveries read per shard and pass.
const DUE_PAGE: u32 = 50;
/// Of a response, at most this much is read (and dropped).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

pub type Https = Client<hyper_rustls::HttpsConnector<Guarded>, Full<Bytes>>;

/// The client every request of our own to the outside goes through (webhook
/// deliveries, pushes): public addresses only, checked on the URL and on every address
/// a name resolves to; `http://127.0.0.1` too with `allow_loopback` (the local stack).
pub fn guarded_client(connect_timeout: Duration, allow_loopback: bool) -> Result<Https, String> {
    let mut http = HttpConnector::new_with_resolver(PublicOnly);
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    let http = Guarded {
        inner: http,
        allow_loopback,
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

pub struct Deliverer {
    store: Store,
    settings: DeliverySettings,
    /// The local stack's own tests may deliver to http://127.0.0.1.
    allow_loopback: bool,
    client: std::sync::OnceLock<Result<Https, String>>,
}

impl Deliverer {
    pub fn new(store: Store, settings: DeliverySettings, allow_loopback: bool) -> Deliverer {
        Deliverer {
            store,
            settings,
            allow_loopback,
            client: std::sync::OnceLock::new(),
        }
    }

    /// The HTTPS client, built at the first attempt: loading the system's roots would
    /// otherwise double the cold start of invocations that attempt nothing.
    fn client(&self) -> Result<&Https, String> {
        self.client
            .get_or_init(|| {
                guarded_client(
                    Duration::from_secs(self.settings.attempt_timeout_secs),
                    self.allow_loopback,
                )
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    pub fn from_runtime(runtime: Runtime) -> Deliverer {
        Deliverer::new(
            runtime.store,
            runtime.config.webhooks.clone(),
            runtime.config.local,
        )
    }

    /// One invocation: a stream batch (Lambda's DynamoDB event, answered with the
    /// partial batch response) or the schedule's tick (any other event).
    pub async fn handle(&self, event: Value) -> Value {
        match event.get("Records") {
            Some(_) => self.on_stream(&event).await,
            None => {
                let attempted = self.run_due(INVOCATION_BUDGET).await;
                json!({ "attempted": attempted })
            }
        }
    }

    /// New feed events → stored deliveries, then attempted. A record whose deliveries
    /// could not be stored is reported (with those after it the event source
    /// mapping sends it again; ids made from the event keep that from duplicating).
    pub async fn on_stream(&self, batch: &Value) -> Value {
        let deadline = Instant::now() + INVOCATION_BUDGET;
        let mut endpoints = Endpoints::default();
        let mut made = Vec::new();
        for record in batch["Records"].as_array().into_iter().flatten() {
            let Some((org, event)) = event_of(record) else {
                continue;
            };
            if let Err(err) = self
                .deliveries_of(&org, &event, &mut endpoints, &mut made)
                .await
            {
                tracing::error!(%err, org = %org, room = %event.room_id, seq = event.seq, "storing deliveries failed; the batch is retried from this record");
                let id = record["dynamodb"]["SequenceNumber"].clone();
                self.attempt_all(made, &endpoints, deadline).await;
                return json!({ "batchItemFailures": [{ "itemIdentifier": id }] });
            }
        }
        self.attempt_all(made, &endpoints, deadline).await;
        json!({ "batchItemFailures": [] })
    }

    async fn deliveries_of(
        &self,
        org: &OrgId,
        event: &Event,
        endpoints: &mut Endpoints,
        made: &mut Vec<Delivery>,
    ) -> chat_core::ApiResult<()> {
        for webhook in endpoints.of(&self.store, org).await? {
            if !webhook.wants(event.kind.as_str()) {
                continue;
            }
            // Stored already claimed: attempted right below, by this instance.
            let delivery = Delivery::of_event(org, &webhook.id, event, false).claimed(now_millis());
            if self.store.add_delivery(&delivery).await? {
                made.push(delivery);
            }
        }
        Ok(())
    }

    /// Attempts what is due until nothing is or `budget` is spent: how many.
    pub async fn run_due(&self, budget: Duration) -> usize {
        let started = Instant::now();
        let deadline = started + budget;
        let mut attempted = 0;
        while started.elapsed() < budget {
            let claimed = match self.claim_due().await {
                Ok(claimed) if !claimed.is_empty() => claimed,
                Ok(_) => break,
                Err(err) => {
                    tracing::error!(%err, "reading due deliveries failed");
                    break;
                }
            };
            attempted += claimed.len();
            let mut endpoints = Endpoints::default();
            for delivery in &claimed {
                if let Err(err) = endpoints.of(&self.store, &delivery.org).await {
                    tracing::error!(%err, "reading endpoints failed");
                    return attempted;
                }
            }
            self.attempt_all(claimed, &endpoints, deadline).await;
        }
        attempted
    }

    /// The due deliveries of every shard that this instance could claim.
    async fn claim_due(&self) -> chat_core::ApiResult<Vec<Delivery>> {
        let now = now_millis();
        let mut claimed = Vec::new();
        for shard in 0..DUE_SHARDS {
            for due in self.store.due_deliveries(shard, now, DUE_PAGE).await? {
                // The index lags the table: the claim is checked on the item.
                let mine = due.claimed(now);
                if due.is_due(now) && self.store.save_delivery(&mine, due.version).await? {
                    claimed.push(mine);
                }
            }
        }
        Ok(claimed)
    }

    /// Attempts the claimed deliveries, none started after `deadline`.
    async fn attempt_all(
        &self,
        mut claimed: Vec<Delivery>,
        endpoints: &Endpoints,
        deadline: Instant,
    ) {
        // What each sends is its event as it is now (a delete or edit since redacted
        // it), not the stream's image of it.
        if let Err(err) = self.store.with_events(&mut claimed).await {
            tracing::error!(%err, "reading the deliveries' events failed; their claims lapse and they are attempted again");
            return;
        }
        futures_util::stream::iter(claimed)
            .for_each_concurrent(CONCURRENT_ATTEMPTS, |delivery| async move {
                if Instant::now() >= deadline {
                    return;
                }
                let webhook = endpoints.find(&delivery);
                if let Err(err) = self.attempt(delivery, webhook).await {
                    tracing::error!(%err, "recording an attempt failed; its claim lapses and it is attempted again");
                }
            })
            .await;
    }

    /// One attempt of a claimed delivery, recorded; the endpoint's health noted.
    async fn attempt(
        &self,
        claimed: Delivery,
        webhook: Option<&Webhook>,
    ) -> chat_core::ApiResult<()> {
        let webhook = match webhook {
            Some(w) if w.enabled => w,
            other => {
                let why = if other.is_some() {
                    "not attempted: the endpoint is disabled"
                } else {
                    "not attempted: the endpoint was deleted"
                };
                self.store
                    .save_delivery(&claimed.abandoned(why), claimed.version)
                    .await?;
                return Ok(());
            }
        };
        let outcome = self.send(webhook, &claimed).await;
        let now = chat_core::time::now();
        let next = claimed.after_attempt(&outcome, &self.settings, now, rand::random());
        if !self.store.save_delivery(&next, claimed.version).await? {
            tracing::warn!(delivery = %claimed.id, "the claim lapsed during the attempt; the later write stands");
        }
        let health = match outcome {
            AttemptOutcome::Delivered { .. } => Health::Answered,
            AttemptOutcome::Gone => Health::Gone,
            AttemptOutcome::Failed { .. } => Health::Failed,
        };
        self.store
            .note_endpoint_health(
                &claimed.org,
                webhook,
                health,
                now.unix_timestamp(),
                self.settings.disable_after_secs,
            )
            .await
    }

    /// Sends one attempt: the stored body, signed with every active secret.
    async fn send(&self, webhook: &Webhook, delivery: &Delivery) -> AttemptOutcome {
        let failed = |status, error: String| AttemptOutcome::Failed {
            status,
            error,
            retry_after: None,
        };
        // Endpoints stored before the URL rule's parsed form are sent to that form.
        let Ok(url) = check_url(&webhook.url, self.allow_loopback) else {
            return failed(None, "the URL is not one deliveries may reach".into());
        };
        if delivery.payload.is_empty() {
            return failed(None, "the event is no longer kept".into());
        }
        let timestamp = chat_core::time::now().unix_timestamp();
        let id = delivery.id.as_str();
        let body = delivery.payload.clone().into_bytes();
        let signature = signature_header(&webhook.active_secrets(timestamp), id, timestamp, &body);
        let request = hyper::Request::post(url.as_str())
            .header("content-type", "application/json")
            .header("user-agent", "chat-webhooks/1")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(Full::new(Bytes::from(body)));
        let request = match request {
            Ok(request) => request,
            Err(err) => return failed(None, format!("bad request: {err}")),
        };
        let client = match self.client() {
            Ok(client) => client,
            Err(err) => return failed(None, err),
        };
        let exchange = async {
            let response = client.request(request).await?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            // Read (a bounded part of) the answer so the connection can be reused.
            let _ = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await;
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after))
        };
        let limit = Duration::from_secs(self.settings.attempt_timeout_secs);
        match tokio::time::timeout(limit, exchange).await {
            Err(_) => failed(None, format!("no answer within {} s", limit.as_secs())),
            Ok(Err(err)) => failed(None, error_chain(&err)),
            Ok(Ok((status, retry_after))) => {
                AttemptOutcome::of_answer(status, retry_after.as_deref(), timestamp)
            }
        }
    }
}

/// An error with its causes, for the delivery log (never a secret in there).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(300).collect()
}

/// The event and tenant of a stream record, if it is a new feed event.
fn event_of(record: &Value) -> Option<(OrgId, Event)> {
    if record["eventName"].as_str()? != "INSERT" {
        return None;
    }
    let item = item_of(&record["dynamodb"]["NewImage"])?;
    (item.str(keys::ENTITY) == Some(keys::entity::EVENT)).then_some(())?;
    // Members-only rooms' changes never leave for the tenant's systems.
    let event = Event::from_item(&item).filter(|e| e.to_tenant)?;
    Some((OrgId::parse(item.str("org")?).ok()?, event))
}

/// The endpoints of the tenants one invocation touches, each read once.
#[derive(Default)]
struct Endpoints(HashMap<OrgId, Vec<Webhook>>);

impl Endpoints {
    async fn of(&mut self, store: &Store, org: &OrgId) -> chat_core::ApiResult<Vec<Webhook>> {
        if let Some(known) = self.0.get(org) {
            return Ok(known.clone());
        }
        let webhooks = store.list_webhooks(org).await?;
        self.0.insert(org.clone(), webhooks.clone());
        Ok(webhooks)
    }

    fn find(&self, delivery: &Delivery) -> Option<&Webhook> {
        self.0
            .get(&delivery.org)?
            .iter()
            .find(|w| w.id == delivery.webhook_id)
    }
}

/// Every connection of a delivery passes [`may_connect`]: a literal address in the
/// URL before connecting (the HTTP connector does not resolve literals, so the
/// resolver below never sees them), and the address actually connected to after.
#[derive(Clone, Debug)]
pub struct Guarded {
    inner: HttpConnector<PublicOnly>,
    allow_loopback: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn refused(what: String) -> BoxError {
    Box::new(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        what,
    ))
}

impl tower_service::Service<hyper::Uri> for Guarded {
    type Response = <HttpConnector<PublicOnly> as tower_service::Service<hyper::Uri>>::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let allow_loopback = self.allow_loopback;
        let literal = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<std::net::IpAddr>().ok());
        if let Some(ip) = literal
            && !may_connect(ip, allow_loopback)
        {
            return Box::pin(async move { Err(refused(format!("{ip} is not a public address"))) });
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let stream = connecting.await?;
            let peer = stream.inner().peer_addr()?;
            if !may_connect(peer.ip(), allow_loopback) {
                return Err(refused(format!(
                    "connected to {peer}, not a public address"
                )));
            }
            Ok(stream)
        })
    }
}

/// Name resolution that keeps only public addresses: a host name that resolves to
/// loopback, private, link-local or metadata addresses is refused at connection
/// time, so a name re-pointed after registration (DNS rebinding) reaches nothing.
#[derive(Clone, Copy, Debug)]
pub struct PublicOnly;

impl tower_service::Service<Name> for PublicOnly {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| is_public(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{} resolves to no public address", name.as_str()),
                ));
            }
            Ok(public.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service;

    #[tokio::test]
    async fn names_that_resolve_to_private_addresses_reach_nothing() {
        let refused = PublicOnly
            .call("localhost".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
    }

    #[tokio::test]
    async fn literal_addresses_pass_the_same_guard_without_a_connection() {
        // A listener on loopback that would accept: the guard must refuse before it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let guarded = |allow_loopback| {
            let mut http = HttpConnector::new_with_resolver(PublicOnly);
            http.enforce_http(false);
            Guarded {
                inner: http,
                allow_loopback,
            }
        };
        for host in [
            "127.0.0.1".to_owned(),
            "[::1]".to_owned(),
            "[::127.0.0.1]".to_owned(),
            "[::ffff:127.0.0.1]".to_owned(),
            "[2002:a9fe:a9fe::]".to_owned(),
            "[fec0::1]".to_owned(),
            "198.18.0.1".to_owned(),
            "0.0.0.0".to_owned(),
        ] {
            let uri: hyper::Uri = format!("http://{host}:{port}/").parse().unwrap();
            let err = guarded(false).call(uri).await.unwrap_err();
            assert!(
                err.to_string().contains("not a public address"),
                "{host}: {err}"
            );
        }
        // The local stack's allowance is 127.0.0.1 exactly.
        let uri: hyper::Uri = format!("http://127.0.0.1:{port}/").parse().unwrap();
        assert!(guarded(true).call(uri).await.is_ok());
        let uri: hyper::Uri = format!("http://[::ffff:127.0.0.1]:{port}/")
            .parse()
            .unwrap();
        assert!(guarded(true).call(uri).await.is_err());
    }

    #[test]
    fn only_new_feed_events_make_deliveries() {
        let image = json!({
            "PK": {"S": "T#acme#R#01HZX3K7Q8R9S0T1V2W3X4Y5Z6"}, "SK": {"S": "E#000000000003"},
            "entity": {"S": "event"}, "org": {"S": "acme"}, "room_id": {"S": "01HZX3K7Q8R9S0T1V2W3X4Y5Z6"},
            "seq": {"N": "3"}, "type": {"S": "message.new"}, "at": {"S": "2026-11-30T10:00:00.000Z"},
            "actor_id": {"S": "a-1"}, "staff_only": {"BOOL": false}, "to_tenant": {"BOOL": true},
            "data": {"S": "{}"}
        });
        let record = |name: &str| json!({"eventName": name, "dynamodb": {"NewImage": image}});
        let (org, event) = event_of(&record("INSERT")).unwrap();
        assert_eq!((org.as_str(), event.seq), ("acme", 3));
        assert!(event_of(&record("MODIFY")).is_none());
        // A members-only room's change (or one from before the flag) never leaves.
        let mut members_only = record("INSERT");
        members_only["dynamodb"]["NewImage"]["to_tenant"] = json!({"BOOL": false});
        assert!(event_of(&members_only).is_none());
        members_only["dynamodb"]["NewImage"]
            .as_object_mut()
            .unwrap()
            .remove("to_tenant");
        assert!(event_of(&members_only).is_none());
    }
}
