//! The DynamoDB store: every read and write of the table goes through here, one
//! request per call where the budgets say so. Split by what it stores.

pub mod analytics;
mod answer;
mod audit;
pub mod canned;
mod catalog;
mod deliveries;
mod erasures;
mod exports;
mod feed;
pub mod hours;
mod inbox;
mod inbox_feed;
pub mod labels;
mod mail;
mod message;
pub mod notify;
pub mod presence;
mod rating;
mod realtime;
pub mod retention;
mod room;
pub mod routing;
mod search;
pub mod sla;
mod table;
pub mod teams;
mod webhooks;

pub use audit::{AuditQuery, MAX_AUDIT_PAGE};
pub use canned::{CannedResponse, Scope};
pub use catalog::{MAX_PRODUCTS_PAGE, Product, Profile};
pub use deliveries::{
    DUE_SHARDS, Delivery, DeliveryStatus, MAX_DELIVERIES_PAGE, MAX_REPLAYS_PER_HOUR, Replayed,
};
pub use erasures::{Erasure, ErasureStatus, user_digest};
pub use exports::{EXPORT_LOCK_SECS, EXPORT_RECORD_TTL_SECS, Export, ExportStatus};
pub(crate) use feed::Plan;
pub use feed::{
    Change, Event, EventKind, EventPage, FEED_RETENTION_SECS, MAX_EVENT_DATA_BYTES,
    MAX_EVENTS_PAGE, TENANT_FEED_SETTLE_MS, TenantEvents,
};
pub use inbox::{Inbox, InboxQuery};
pub use inbox_feed::{InboxChange, InboxEvent, InboxEventKind, InboxEventPage, InboxListeners};
pub use labels::{Label, LabelChange, Labelling};
pub use message::{
    Direction, MessageChange, MessageList, MessageQuery, NewMessage, Posted, RETENTION_ACTOR,
    RoomCache,
};
pub use notify::PushSubscription;
pub use realtime::{
    Audience, CONNECTION_TTL_SECS, Connection, MAX_SUBSCRIPTIONS, Subscription, TICKET_TTL_SECS,
    TYPING_INTERVAL_MS,
};
pub use retention::{MAX_RETENTION_DAYS, Retention, RetentionKind, RetentionPolicy};
pub use room::{
    MAX_ADD_MEMBERS, MAX_MEMBERS_PAGE, MemberView, RoomPage, RoomQuery, SharedChanges, Started,
};
pub use search::{MAX_INDEXED_WORDS, MAX_QUERY_CHARS, SearchHit, index_words};
pub use teams::{AgentLoad, Availability, Routed, Team};
pub use webhooks::{DisabledReason, Health, Webhook, WebhookSecret};

use crate::dynamo::RequestCounter;
use crate::error::{ApiError, ApiResult};
use crate::item::Item;
use crate::keys;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
pub use table::{
    Cancellation, Found, ItemKey, Table, WriteError, WriteResultExt, rebuilds, storage_busy,
    storage_unavailable,
};

/// Idempotency records are kept this long; a retry after that is a new message.
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;

#[derive(Clone, Debug)]
pub struct Store {
    table: Table,
    /// Teams as routed creations read them (checked by each creation's transaction).
    teams: std::sync::Arc<teams::TeamCache>,
}

/// A page of results with the cursor to the next one.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>, counter: RequestCounter) -> Self {
        Store {
            table: Table::new(client, table, counter),
            teams: std::sync::Arc::default(),
        }
    }

    /// The table layer every request of the store goes through.
    pub fn table(&self) -> &Table {
        &self.table
    }

    pub fn client(&self) -> &Client {
        self.table.client()
    }

    /// DynamoDB requests sent so far by this store's client.
    pub fn requests(&self) -> u64 {
        self.table.requests()
    }

    /// Items by key in one BatchGetItem (see [`Table::batch_get`]).
    pub(crate) async fn batch_get(&self, item_keys: &[ItemKey], context: &str) -> ApiResult<Found> {
        self.table.batch_get(item_keys, context).await
    }

    /// The table's name, for the write builders of the plans.
    fn name(&self) -> &str {
        self.table.name()
    }
}

/// A Put of `item`; with `must_be_new`, it fails if the key exists.
pub(crate) fn put_of(table: &str, item: Item, must_be_new: bool) -> Put {
    let mut put = Put::builder().table_name(table).set_item(Some(item));
    if must_be_new {
        put = put.condition_expression("attribute_not_exists(PK)");
    }
    put.build().expect("put has item")
}

/// [`put_of`] as a write of a transaction.
pub(crate) fn put(table: &str, item: Item, must_be_new: bool) -> TransactWriteItem {
    TransactWriteItem::builder()
        .put(put_of(table, item, must_be_new))
        .build()
}

/// One more use of a count kept in one item, refused (a failed condition) when it
/// has reached `max`: the check and the increment are one write, so a burst of
/// concurrent callers cannot pass the limit together. An absent count is `start`; a
/// count for a period carries the time it may be forgotten (`expires_at`).
pub(crate) fn count_up(
    table: &str,
    (pk, sk): ItemKey,
    max: i64,
    start: i64,
    expires_at: Option<i64>,
) -> Update {
    let mut update = Update::builder()
        .table_name(table)
        .key(keys::PK, AttributeValue::S(pk))
        .key(keys::SK, AttributeValue::S(sk))
        .update_expression("SET #n = if_not_exists(#n, :start) + :one, #e = :entity")
        .condition_expression("(attribute_not_exists(#n) AND :start < :max) OR #n < :max")
        .expression_attribute_names("#n", COUNT)
        .expression_attribute_names("#e", keys::ENTITY)
        .expression_attribute_values(":start", AttributeValue::N(start.to_string()))
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .expression_attribute_values(":max", AttributeValue::N(max.to_string()))
        .expression_attribute_values(":entity", AttributeValue::S(keys::entity::COUNTER.into()));
    if let Some(at) = expires_at {
        update = update
            .update_expression(
                "SET #n = if_not_exists(#n, :start) + :one, #e = :entity, #ttl = :ttl",
            )
            .expression_attribute_names("#ttl", keys::TTL)
            .expression_attribute_values(":ttl", AttributeValue::N(at.to_string()));
    }
    update.build().expect("update has key and expression")
}

/// A new item of one of a tenant's bounded lists (webhooks, teams, labels): its Put
/// (must be new) and its count up, conditioned on `max` (`listed`: the items there
/// are, for a count kept before the counter existed), in one transaction. A full list
/// is `too_many`; an item already there is `exists`.
pub(crate) fn counted_put(
    table: &str,
    count: ItemKey,
    max: usize,
    listed: usize,
    item: Item,
) -> Vec<TransactWriteItem> {
    vec![
        TransactWriteItem::builder()
            .update(count_up(table, count, max as i64, listed as i64, None))
            .build(),
        put(table, item, true),
    ]
}

impl Store {
    /// Sends a [`counted_put`]: `too_many` when the count is at its limit, `exists`
    /// when the item is there already.
    pub(crate) async fn put_counted(
        &self,
        writes: Vec<TransactWriteItem>,
        context: &str,
        too_many: impl FnOnce() -> ApiError,
        exists: impl FnOnce() -> ApiError,
    ) -> ApiResult<()> {
        match self.table.transact(writes, context).await {
            Ok(()) => Ok(()),
            Err(WriteError::ConditionFailed(c)) if c.failed(0) => Err(too_many()),
            Err(WriteError::ConditionFailed(_)) => Err(exists()),
            Err(err) => Err(err.into_api()),
        }
    }

    /// Deletes an item of a bounded list (it must exist: else `missing`) and counts
    /// it off, with `more` writes, in one transaction.
    pub(crate) async fn delete_counted(
        &self,
        (pk, sk): ItemKey,
        count: ItemKey,
        more: Vec<TransactWriteItem>,
        context: &str,
        missing: ApiError,
    ) -> ApiResult<()> {
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(self.name())
            .key(keys::PK, AttributeValue::S(pk))
            .key(keys::SK, AttributeValue::S(sk))
            .condition_expression("attribute_exists(PK)")
            .build()
            .expect("delete has key");
        let mut writes = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder()
                .update(count_down(self.name(), count))
                .build(),
        ];
        writes.extend(more);
        match self.table.transact(writes, context).await {
            Ok(()) => Ok(()),
            Err(WriteError::ConditionFailed(c)) if c.failed(0) => Err(missing),
            Err(err) => Err(err.into_api()),
        }
    }
}

/// One use fewer of a [`count_up`] count; fails its condition when there is no count.
pub(crate) fn count_down(table: &str, (pk, sk): ItemKey) -> Update {
    Update::builder()
        .table_name(table)
        .key(keys::PK, AttributeValue::S(pk))
        .key(keys::SK, AttributeValue::S(sk))
        .update_expression("SET #n = #n - :one")
        .condition_expression("#n > :zero")
        .expression_attribute_names("#n", COUNT)
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .expression_attribute_values(":zero", AttributeValue::N("0".into()))
        .build()
        .expect("update has key and expression")
}

/// The attribute of a [`count_up`] count.
const COUNT: &str = "count";

#[cfg(test)]
pub(crate) mod tests {
    /// A store whose client is never sent anything: for plans built without DynamoDB.
    pub(crate) fn offline_store() -> super::Store {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        super::Store::new(
            aws_sdk_dynamodb::Client::from_conf(config),
            "chat",
            crate::dynamo::RequestCounter::default(),
        )
    }
}
