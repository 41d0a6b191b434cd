//! Webhook deliveries: one item per (event, endpoint) in the endpoint's partition
//! (`T#{org}#WEBHOOKS#{webhook}`, `D#{delivery}`), kept 14 days. The schedule is the
//! table itself: a pending delivery carries GSI1 keys (`WEBHOOKS#DUE#{shard}`, its next
//! attempt's time), so restarts lose nothing and the due ones are one Query per shard.
//! Its life is a pure state machine (claimed → attempted → delivered | waiting |
//! failed), each step one put conditioned on the version it was read at.

use crate::error::{ApiError, ApiResult};
use crate::ids::{DeliveryId, OrgId, RoomId, WebhookId};
use crate::item::{Item, ItemBuilder, ItemExt, n, s, values};
use crate::keys;
use crate::store::{Event, Page, Store, WriteError, WriteResultExt, count_up};
use crate::store::{EventPage, TenantEvents, Webhook};
use crate::time::{millis, now_millis};
use crate::webhooks::{AttemptOutcome, DeliverySettings, ReplayFrom};
use aws_sdk_dynamodb::types::Put;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Partitions of the due index (each takes a share of the pending deliveries).
pub const DUE_SHARDS: u32 = 4;
/// A claimed delivery is not due again for this long: an attempt takes at most 10 s,
/// and an instance that dies mid-attempt leaves it to a later pass.
pub const LEASE_MS: i64 = 60_000;
/// The delivery log operators read is kept this long.
pub const DELIVERY_RETENTION_SECS: i64 = 14 * 24 * 3600;
pub const MAX_DELIVERIES_PAGE: u32 = 100;
/// Events one replay call goes through; the answer says where to continue.
pub const MAX_REPLAY_EVENTS: u32 = 200;

/// Replay calls one endpoint takes per clock hour (each up to [`MAX_REPLAY_EVENTS`]
/// events): a bound on what one call can make the system send.
pub const MAX_REPLAYS_PER_HOUR: i64 = 60;

/// What a replay did.
#[derive(Debug)]
pub struct Replayed {
    /// Deliveries made (events of the endpoint's types).
    pub deliveries: usize,
    /// Where the next call continues, when this one stopped before the feed's end.
    pub next: Option<ReplayFrom>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or being attempted).
    Pending,
    Delivered,
    /// Given up: schedule used up, endpoint gone, disabled or deleted.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub org: OrgId,
    pub webhook_id: WebhookId,
    pub event_type: String,
    pub room_id: RoomId,
    pub seq: u64,
    /// The body an attempt sends: the feed event as staff read it, read from the
    /// event item when the delivery is attempted or listed ([`Store::with_events`]),
    /// never stored with the delivery, so an edit or delete that redacts the event
    /// redacts every delivery of it too. Empty: not read, or the event is gone.
    pub payload: String,
    pub status: DeliveryStatus,
    /// Every attempt made.
    pub attempts: u32,
    /// Attempts since the schedule (re)started: at creation or a manual retry.
    pub round: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<String>,
    /// While pending: when it is due (while claimed: when the claim lapses).
    pub next_attempt_ms: Option<i64>,
    pub created_at: String,
    /// Made by a replay (a new id; the event and its `seq` are the original's).
    pub replay: bool,
    /// Bumped by every write; each write is conditioned on the one it read.
    pub version: u64,
    pub expires_at: i64,
}

fn time_of_millis(ms: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .map(crate::time::format)
}

impl Delivery {
    /// The delivery of `event` to `webhook`, due at once. Its id comes from the
    /// event's time and a hash of (endpoint, room, seq), so a stream record handled
    /// twice makes the same delivery, sent once; a replay gets a fresh id.
    pub fn of_event(org: &OrgId, webhook: &WebhookId, event: &Event, replay: bool) -> Delivery {
        let now = crate::time::now();
        let id = if replay {
            DeliveryId::generate()
        } else {
            let event_ms = crate::time::parse(&event.at).map_or(millis(now), millis);
            let digest = Sha256::digest(format!("{webhook}#{}#{}", event.room_id, event.seq));
            let random = digest[..10]
                .iter()
                .fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
            DeliveryId::from_parts(event_ms.max(0) as u64, random)
        };
        Delivery {
            id,
            org: org.clone(),
            webhook_id: webhook.clone(),
            event_type: event.kind.as_str().to_owned(),
            room_id: event.room_id.clone(),
            seq: event.seq,
            payload: event.json_for(true),
            status: DeliveryStatus::Pending,
            attempts: 0,
            round: 0,
            last_status: None,
            last_error: None,
            last_attempt_at: None,
            next_attempt_ms: Some(millis(now)),
            created_at: crate::time::format(now),
            replay,
            version: 0,
            expires_at: now.unix_timestamp() + DELIVERY_RETENTION_SECS,
        }
    }

    fn shard(&self) -> u32 {
        let digest = Sha256::digest(self.id.as_str());
        u32::from(digest[0]) % DUE_SHARDS
    }

    pub fn key(&self) -> (String, String) {
        (
            keys::deliveries_pk(&self.org, &self.webhook_id),
            keys::delivery_sk(&self.id),
        )
    }

    fn item(&self) -> Item {
        let (pk, sk) = self.key();
        let mut item = ItemBuilder::new()
            .str(keys::PK, pk)
            .str(keys::SK, sk)
            .str(keys::ENTITY, keys::entity::DELIVERY)
            .str("delivery_id", self.id.as_str())
            .str("org", self.org.as_str())
            .str("webhook_id", self.webhook_id.as_str())
            .str("type", &self.event_type)
            .str("room_id", self.room_id.as_str())
            .num("seq", self.seq)
            .str("status", self.status.as_str())
            .num("attempts", self.attempts)
            .num("round", self.round)
            .opt_num("last_status", self.last_status)
            .opt_str("last_error", self.last_error.clone())
            .opt_str("last_attempt_at", self.last_attempt_at.clone())
            .opt_num("next_attempt_ms", self.next_attempt_ms)
            .str("created_at", &self.created_at)
            .flag("replay", self.replay)
            .num("version", self.version)
            .num(keys::TTL, self.expires_at);
        if let (DeliveryStatus::Pending, Some(at)) = (self.status, self.next_attempt_ms) {
            item = item
                .str(keys::GSI1PK, keys::due_gsi1pk(self.shard()))
                .str(keys::GSI1SK, keys::due_gsi1sk(at, &self.id));
        }
        item.build()
    }

    pub fn from_item(item: &Item) -> Option<Delivery> {
        (item.str(keys::ENTITY) == Some(keys::entity::DELIVERY)).then_some(())?;
        Some(Delivery {
            id: DeliveryId::parse(item.str("delivery_id")?).ok()?,
            org: OrgId::parse(item.str("org")?).ok()?,
            webhook_id: WebhookId::parse(item.str("webhook_id")?).ok()?,
            event_type: item.string("type")?,
            room_id: RoomId::parse(item.str("room_id")?).ok()?,
            seq: item.num("seq")?,
            // Deliveries stored before payloads were read from events kept a copy:
            // ignored, the event is read instead.
            payload: String::new(),
            status: DeliveryStatus::parse(item.str("status")?)?,
            attempts: item.num("attempts").unwrap_or(0),
            round: item.num("round").unwrap_or(0),
            last_status: item.num("last_status"),
            last_error: item.string("last_error"),
            last_attempt_at: item.string("last_attempt_at"),
            next_attempt_ms: item.num("next_attempt_ms"),
            created_at: item.string("created_at").unwrap_or_default(),
            replay: item.flag("replay"),
            version: item.num("version").unwrap_or(0),
            expires_at: item.num(keys::TTL).unwrap_or(i64::MAX),
        })
    }

    /// The delivery as operators see it.
    pub fn json(&self) -> serde_json::Value {
        let event: serde_json::Value =
            serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null);
        serde_json::json!({
            "id": self.id,
            "webhook_id": self.webhook_id,
            "event_type": self.event_type,
            "room_id": self.room_id,
            "seq": self.seq,
            "status": self.status.as_str(),
            "attempts": self.attempts,
            "last_status_code": self.last_status,
            "last_error": self.last_error,
            "last_attempt_at": self.last_attempt_at,
            "next_attempt_at": self.next_attempt_ms.and_then(time_of_millis),
            "created_at": self.created_at,
            "replay": self.replay,
            "event": event,
        })
    }

    /// Whether it is due at `now_ms`.
    pub fn is_due(&self, now_ms: i64) -> bool {
        self.status == DeliveryStatus::Pending && self.next_attempt_ms.is_some_and(|t| t <= now_ms)
    }

    fn next_version(&self) -> Delivery {
        Delivery {
            version: self.version + 1,
            ..self.clone()
        }
    }

    /// Taken for an attempt: not due again until the claim lapses.
    pub fn claimed(&self, now_ms: i64) -> Delivery {
        Delivery {
            next_attempt_ms: Some(now_ms + LEASE_MS),
            ..self.next_version()
        }
    }

    /// After an attempt at `now` with `outcome`: delivered, waiting for the next
    /// attempt of the schedule (never sooner than a `Retry-After`), or failed.
    pub fn after_attempt(
        &self,
        outcome: &AttemptOutcome,
        settings: &DeliverySettings,
        now: time::OffsetDateTime,
        jitter: f64,
    ) -> Delivery {
        let mut next = Delivery {
            attempts: self.attempts + 1,
            round: self.round + 1,
            last_attempt_at: Some(crate::time::format(now)),
            ..self.next_version()
        };
        match outcome {
            AttemptOutcome::Delivered { status } => {
                next.status = DeliveryStatus::Delivered;
                next.last_status = Some(*status);
                next.last_error = None;
                next.next_attempt_ms = None;
            }
            AttemptOutcome::Gone => {
                next.status = DeliveryStatus::Failed;
                next.last_status = Some(410);
                next.last_error = Some("410 Gone: the endpoint is disabled".into());
                next.next_attempt_ms = None;
            }
            AttemptOutcome::Failed {
                status,
                error,
                retry_after,
            } => {
                next.last_status = *status;
                next.last_error = Some(error.clone());
                match settings.wait_after(next.round, *retry_after, jitter) {
                    Some(wait) => next.next_attempt_ms = Some(millis(now) + wait * 1000),
                    None => {
                        next.status = DeliveryStatus::Failed;
                        next.next_attempt_ms = None;
                    }
                }
            }
        }
        next
    }

    /// Not attempted: its endpoint was disabled or deleted meanwhile.
    pub fn abandoned(&self, why: &str) -> Delivery {
        Delivery {
            status: DeliveryStatus::Failed,
            last_error: Some(why.to_owned()),
            next_attempt_ms: None,
            ..self.next_version()
        }
    }

    /// Due at once, on a fresh schedule (an operator asked).
    pub fn retried(&self, now_ms: i64) -> Delivery {
        Delivery {
            status: DeliveryStatus::Pending,
            round: 0,
            next_attempt_ms: Some(now_ms),
            ..self.next_version()
        }
    }
}

impl Store {
    /// Adds a new delivery; false when it already exists (a stream record again).
    pub async fn add_delivery(&self, delivery: &Delivery) -> ApiResult<bool> {
        let put = Put::builder()
            .table_name(self.name())
            .set_item(Some(delivery.item()))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .expect("put has item");
        written(self.table.put(put, "add delivery").await)
    }

    /// Writes `delivery` (a state after `seen_version`) if nobody wrote it since;
    /// false when someone did (their write stands).
    pub async fn save_delivery(&self, delivery: &Delivery, seen_version: u64) -> ApiResult<bool> {
        let put = Put::builder()
            .table_name(self.name())
            .set_item(Some(delivery.item()))
            .condition_expression("version = :seen")
            .expression_attribute_values(":seen", n(seen_version))
            .build()
            .expect("put has item");
        written(self.table.put(put, "save delivery").await)
    }

    /// Pending deliveries of one shard due by `now_ms`, oldest first (the index is
    /// eventually consistent: claiming checks the item itself).
    pub async fn due_deliveries(
        &self,
        shard: u32,
        now_ms: i64,
        limit: u32,
    ) -> ApiResult<Vec<Delivery>> {
        let (items, _) = self
            .table
            .query("due deliveries", None, |query| {
                query
                    .index_name(keys::GSI1)
                    .key_condition_expression("#pk = :pk AND #sk < :until")
                    .expression_attribute_names("#pk", keys::GSI1PK)
                    .expression_attribute_names("#sk", keys::GSI1SK)
                    .set_expression_attribute_values(Some(values([
                        (":pk", s(keys::due_gsi1pk(shard))),
                        (":until", s(format!("{now_ms:013}~"))),
                    ])))
                    .limit(limit as i32)
            })
            .await?;
        Ok(items.iter().filter_map(Delivery::from_item).collect())
    }

    /// An endpoint's deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        org: &OrgId,
        webhook: &WebhookId,
        status: Option<DeliveryStatus>,
        cursor: Option<&str>,
        limit: u32,
    ) -> ApiResult<Page<Delivery>> {
        let pk = keys::deliveries_pk(org, webhook);
        let page = self
            .table
            .query_page(
                "list deliveries",
                cursor,
                crate::cursor::Partition::pk(&pk),
                crate::cursor::TABLE_KEYS,
                |query| {
                    let query = query
                        .key_condition_expression("PK = :pk AND begins_with(SK, :d)")
                        .expression_attribute_values(":pk", s(&pk))
                        .expression_attribute_values(":d", s(keys::DELIVERY_SK_PREFIX))
                        .scan_index_forward(false)
                        .limit(limit as i32);
                    match status {
                        Some(status) => query
                            .filter_expression("#status = :status")
                            .expression_attribute_names("#status", "status")
                            .expression_attribute_values(":status", s(status.as_str())),
                        None => query,
                    }
                },
            )
            .await?;
        let mut items: Vec<Delivery> = page.items.iter().filter_map(Delivery::from_item).collect();
        self.with_events(&mut items).await?;
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }

    /// Fills each delivery's payload from its event (one BatchGetItem, consistent):
    /// what the event says now, redactions included. An event no longer kept (or
    /// no longer for the tenant) leaves the payload empty.
    pub async fn with_events(&self, deliveries: &mut [Delivery]) -> ApiResult<()> {
        let mut item_keys: Vec<(String, String)> = deliveries
            .iter()
            .map(|d| (keys::room_pk(&d.org, &d.room_id), keys::event_sk(d.seq)))
            .collect();
        item_keys.sort();
        item_keys.dedup();
        let now = crate::time::now().unix_timestamp();
        let mut events: HashMap<(String, u64), Event> = HashMap::new();
        for chunk in item_keys.chunks(super::table::BATCH_KEYS) {
            let found = self.batch_get(chunk, "delivery events").await?;
            events.extend(
                found
                    .rows()?
                    .iter()
                    .filter_map(Event::from_item)
                    .filter(|e| e.to_tenant && e.expires_at > now)
                    .map(|e| ((e.room_id.to_string(), e.seq), e)),
            );
        }
        for delivery in deliveries {
            delivery.payload = events
                .get(&(delivery.room_id.to_string(), delivery.seq))
                .map(|e| e.json_for(true))
                .unwrap_or_default();
        }
        Ok(())
    }

    /// Whether one of the endpoint's latest deliveries succeeded at or after `since`
    /// (unix seconds).
    pub(crate) async fn delivered_since(
        &self,
        org: &OrgId,
        webhook: &WebhookId,
        since: i64,
    ) -> ApiResult<bool> {
        let page = self
            .list_deliveries(org, webhook, Some(DeliveryStatus::Delivered), None, 50)
            .await?;
        Ok(page.items.iter().any(|d| {
            d.last_attempt_at
                .as_deref()
                .and_then(crate::time::parse)
                .is_some_and(|at| at.unix_timestamp() >= since)
        }))
    }

    pub async fn get_delivery(
        &self,
        org: &OrgId,
        webhook: &WebhookId,
        id: &DeliveryId,
    ) -> ApiResult<Delivery> {
        let mut delivery = self.delivery_item(org, webhook, id).await?;
        self.with_events(std::slice::from_mut(&mut delivery))
            .await?;
        Ok(delivery)
    }

    async fn delivery_item(
        &self,
        org: &OrgId,
        webhook: &WebhookId,
        id: &DeliveryId,
    ) -> ApiResult<Delivery> {
        self.table
            .get(
                (keys::deliveries_pk(org, webhook), keys::delivery_sk(id)),
                "get delivery",
            )
            .await?
            .as_ref()
            .and_then(Delivery::from_item)
            .ok_or(ApiError::NotFound("delivery"))
    }
}

impl Store {
    /// Makes a new delivery to `webhook` of each event from `from` that it takes,
    /// due at once (the schedule sends them), up to [`MAX_REPLAY_EVENTS`] events.
    pub async fn replay(
        &self,
        webhook: &Webhook,
        org: &OrgId,
        from: &ReplayFrom,
    ) -> ApiResult<Replayed> {
        let (events, next) = match from {
            ReplayFrom::Room { room, after_seq } => {
                let EventPage {
                    events, has_more, ..
                } = self
                    .tenant_room_events(org, room, *after_seq, MAX_REPLAY_EVENTS)
                    .await?;
                let next = has_more.then(|| ReplayFrom::Room {
                    room: room.clone(),
                    after_seq: events.last().map_or(*after_seq, |e| e.seq),
                });
                (events, next)
            }
            ReplayFrom::Since(at) => {
                let TenantEvents { events, next_after } = self
                    .tenant_events_since(org, *at, MAX_REPLAY_EVENTS)
                    .await?;
                (events, next_after.map(ReplayFrom::After))
            }
            ReplayFrom::After(cursor) => {
                let TenantEvents { events, next_after } = self
                    .tenant_events(org, Some(cursor), MAX_REPLAY_EVENTS)
                    .await?;
                (events, next_after.map(ReplayFrom::After))
            }
        };
        self.take_replay(org, &webhook.id).await?;
        let mut deliveries = 0;
        for event in events.iter().filter(|e| webhook.wants(e.kind.as_str())) {
            if self
                .add_delivery(&Delivery::of_event(org, &webhook.id, event, true))
                .await?
            {
                deliveries += 1;
            }
        }
        Ok(Replayed { deliveries, next })
    }

    /// One replay from the endpoint's budget of this hour, or `429` with the seconds
    /// until the next hour.
    async fn take_replay(&self, org: &OrgId, webhook: &WebhookId) -> ApiResult<()> {
        let now = crate::time::now().unix_timestamp();
        let hour = now / 3600;
        let next_hour = (hour + 1) * 3600;
        let budget = count_up(
            self.name(),
            (
                keys::deliveries_pk(org, webhook),
                keys::replay_budget_sk(hour),
            ),
            MAX_REPLAYS_PER_HOUR,
            0,
            Some(next_hour + 3600),
        );
        self.table
            .update(budget, None, "take a replay")
            .await
            .map(drop)
            .or_condition(|_| ApiError::Throttled {
                retry_after_secs: u32::try_from(next_hour - now).unwrap_or(3600).max(1),
            })
    }

    /// An operator's retry: due at once on a fresh schedule, with the same id.
    pub async fn retry_delivery(
        &self,
        webhook: &Webhook,
        org: &OrgId,
        id: &DeliveryId,
    ) -> ApiResult<Delivery> {
        // Its event is read when it is attempted (one no longer kept fails the
        // attempt, which the log shows).
        let delivery = self.delivery_item(org, &webhook.id, id).await?;
        let mut retried = delivery.retried(now_millis());
        if !self.save_delivery(&retried, delivery.version).await? {
            return Err(ApiError::Conflict {
                code: "concurrent_change",
                message: "the delivery is being attempted; ask again".into(),
            });
        }
        self.with_events(std::slice::from_mut(&mut retried)).await?;
        Ok(retried)
    }
}

/// A conditional write's result: written, or not because the condition failed.
fn written(result: Result<(), WriteError>) -> ApiResult<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(WriteError::ConditionFailed(_)) => Ok(false),
        Err(other) => Err(other.into_api()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventKind;

    fn event() -> Event {
        Event {
            room_id: RoomId::parse("01HZX3K7Q8R9S0T1V2W3X4Y5Z6").unwrap(),
            seq: 7,
            kind: EventKind::MessageNew,
            at: "2026-11-30T10:00:00.000Z".into(),
            actor_id: "u-1".into(),
            staff_only: true,
            to_tenant: true,
            data: r#"{"text":"a note"}"#.into(),
            expires_at: i64::MAX,
        }
    }

    fn delivery() -> Delivery {
        let org = OrgId::parse("acme").unwrap();
        let webhook = WebhookId::parse("01J00000000000000000000000").unwrap();
        Delivery::of_event(&org, &webhook, &event(), false)
    }

    #[test]
    fn a_delivery_round_trips_and_is_indexed_only_while_pending() {
        let pending = delivery();
        let item = pending.item();
        assert!(pending.payload.contains("a note"), "staff see notes");
        // The payload is the event's, read when needed: never stored with it.
        assert!(!item.contains_key("payload"));
        let unread = |d: &Delivery| Delivery {
            payload: String::new(),
            ..d.clone()
        };
        assert_eq!(Delivery::from_item(&item), Some(unread(&pending)));
        assert!(item.contains_key(keys::GSI1PK));
        let done = pending.after_attempt(
            &AttemptOutcome::Delivered { status: 200 },
            &DeliverySettings::default(),
            crate::time::now(),
            0.5,
        );
        assert!(!done.item().contains_key(keys::GSI1PK));
        assert_eq!(Delivery::from_item(&done.item()), Some(unread(&done)));
    }

    #[test]
    fn the_same_event_and_endpoint_make_the_same_delivery_unless_replayed() {
        let (a, b) = (delivery(), delivery());
        assert_eq!(a.id, b.id);
        let org = OrgId::parse("acme").unwrap();
        let other = WebhookId::parse("01J00000000000000000000001").unwrap();
        assert_ne!(Delivery::of_event(&org, &other, &event(), false).id, a.id);
        let replayed = Delivery::of_event(&org, &a.webhook_id, &event(), true);
        assert_ne!(replayed.id, a.id);
        assert!(replayed.replay);
    }

    #[test]
    fn failures_follow_the_schedule_then_give_up() {
        let settings = DeliverySettings::from_values(Some("5,60"), None, None).unwrap();
        let now = crate::time::now();
        let failed = AttemptOutcome::Failed {
            status: Some(500),
            error: "answered 500".into(),
            retry_after: None,
        };
        let first = delivery()
            .claimed(millis(now))
            .after_attempt(&failed, &settings, now, 0.5);
        assert_eq!(
            (first.status, first.attempts, first.version),
            (DeliveryStatus::Pending, 1, 2)
        );
        assert_eq!(first.next_attempt_ms, Some(millis(now) + 5_000));
        let second = first.after_attempt(&failed, &settings, now, 0.5);
        assert_eq!(second.next_attempt_ms, Some(millis(now) + 60_000));
        let third = second.after_attempt(&failed, &settings, now, 0.5);
        assert_eq!(
            (third.status, third.next_attempt_ms),
            (DeliveryStatus::Failed, None)
        );
        // An operator's retry starts a new round, same id.
        let again = third.retried(millis(now));
        assert_eq!(
            (again.status, again.round, again.attempts),
            (DeliveryStatus::Pending, 0, 3)
        );
        assert!(again.is_due(millis(now)));
        let gone = again.after_attempt(&AttemptOutcome::Gone, &settings, now, 0.5);
        assert_eq!(
            (gone.status, gone.last_status),
            (DeliveryStatus::Failed, Some(410))
        );
    }
}
