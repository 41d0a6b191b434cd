//! The table layer: the only code that sends requests to DynamoDB. Every read and
//! write of the store goes through one of these calls, so the table name, the error
//! mapping and ONE retry rule for writes live here and nowhere else.
//!
//! The write rule ([`Table::transact`], [`Table::put`], [`Table::update`]):
//! - a condition that failed is the caller's business: it comes back as
//!   [`WriteError::ConditionFailed`] (with each write's old item when the write asked
//!   for it), to be turned into a domain error or a rebuild from fresh state;
//! - contention (`TransactionConflict`) and throttling (`ThrottlingError`,
//!   `ProvisionedThroughputExceeded`, `RequestLimitExceeded`) cancel nothing that was
//!   written, so the same plan is sent again, at most [`WRITE_ATTEMPTS`] times with
//!   jittered exponential backoff; after that the call answers 503 with Retry-After:
//!   `storage_busy` for contention, `storage_unavailable` for throttling;
//! - an unreachable or timed-out DynamoDB is 503 `storage_unavailable` (the SDK has
//!   already retried within its timeouts, shared/src/dynamo.rs);
//! - anything else is an internal error, logged with its context.

use super::answer::TakenAnswer;
pub use super::answer::{Answer, Found};
use crate::cursor::{self, Partition};
use crate::dynamo::{RequestCounter, sdk_error};
use crate::error::{ApiError, ApiResult};
use crate::item::ItemExt as _;
use crate::item::{Item, s};
use crate::keys;
use crate::wire::Row;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::get_item::builders::GetItemFluentBuilder;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    CancellationReason, Delete, KeysAndAttributes, Put, ReturnValue, TransactWriteItem, Update,
};
use std::time::Duration;

/// Sends of one write plan that lost to contention or throttling, and rebuilds of a
/// plan whose conditions failed on state that moved (see [`rebuilds`]).
pub const WRITE_ATTEMPTS: u32 = 6;
/// What a 503 of the store tells the client to wait.
const RETRY_AFTER_SECS: u32 = 1;
/// Keys one BatchGetItem takes.
pub const BATCH_KEYS: usize = 100;

/// A primary key: partition and sort key strings (built by `keys.rs`).
pub type ItemKey = (String, String);

fn item_key(
    key: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> Option<ItemKey> {
    let part = |name: &str| key.get(name)?.as_s().ok().cloned();
    Some((part(keys::PK)?, part(keys::SK)?))
}

#[derive(Clone, Debug)]
pub struct Table {
    client: Client,
    name: String,
    counter: RequestCounter,
}

/// A page of a Query with the opaque cursor to the next one.
#[derive(Debug)]
pub struct QueryPage {
    pub items: Vec<Item>,
    pub next_cursor: Option<String>,
}

/// A page read with one item more than it shows (the probe). If the probe came, the
/// page ends after its `limit`th item and continues there; if not, the listing ended,
/// unless DynamoDB stopped early (a filter left the read short), then it continues
/// where DynamoDB stopped. So `has_more` is never true on a page that ends the list.
pub fn probed_page<T>(
    mut items: Vec<T>,
    limit: usize,
    stopped_at: Option<Item>,
    key_of: impl Fn(&T) -> Item,
) -> (Vec<T>, Option<Item>) {
    if items.len() > limit {
        items.truncate(limit);
        let next = items.last().map(key_of);
        (items, next)
    } else {
        (items, stopped_at)
    }
}

/// Why a write did not happen.
#[derive(Debug)]
pub enum WriteError {
    /// One or more conditions of the plan failed: nothing was written.
    ConditionFailed(Cancellation),
    /// Any other failure, already mapped (503 after the retry bound, or 500).
    Api(ApiError),
}

impl WriteError {
    /// For writes whose condition cannot fail but by a bug: that is an internal error.
    pub fn into_api(self) -> ApiError {
        match self {
            WriteError::Api(err) => err,
            WriteError::ConditionFailed(c) => {
                ApiError::internal("write", format!("unexpected condition failure: {c:?}"))
            }
        }
    }
}

impl From<ApiError> for WriteError {
    fn from(err: ApiError) -> Self {
        WriteError::Api(err)
    }
}

/// The per-write reasons of a cancelled plan, in plan order.
#[derive(Debug, Clone, Default)]
pub struct Cancellation {
    reasons: Vec<CancellationReason>,
    /// A single-item write's old item (it has no reasons list).
    single_old: Option<Item>,
}

impl Cancellation {
    /// Whether write `index` of the plan failed its condition.
    pub fn failed(&self, index: usize) -> bool {
        if self.reasons.is_empty() {
            return index == 0;
        }
        self.reasons.get(index).and_then(CancellationReason::code) == Some(CONDITION_FAILED)
    }

    /// Write `index`'s item as it was, when the write asked for `ALL_OLD` on failure.
    pub fn old_item(&self, index: usize) -> Option<&Item> {
        if self.reasons.is_empty() {
            return self.single_old.as_ref().filter(|_| index == 0);
        }
        self.reasons.get(index).and_then(CancellationReason::item)
    }
}

/// "A failed condition means this domain error" on a write's result.
pub trait WriteResultExt<T> {
    fn or_condition(self, on_failed: impl FnOnce(&Cancellation) -> ApiError) -> ApiResult<T>;
}

impl<T> WriteResultExt<T> for Result<T, WriteError> {
    fn or_condition(self, on_failed: impl FnOnce(&Cancellation) -> ApiError) -> ApiResult<T> {
        match self {
            Ok(value) => Ok(value),
            Err(WriteError::ConditionFailed(c)) => Err(on_failed(&c)),
            Err(WriteError::Api(err)) => Err(err),
        }
    }
}

const CONDITION_FAILED: &str = "ConditionalCheckFailed";

/// What one cancelled send means under the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Condition,
    Contention,
    Throttled,
    Invalid,
}

/// The rule's reading of a plan's cancellation reasons: a failed condition wins (a
/// resend cannot pass it), then contention, then throttling; any other code (a
/// validation error, an item collection over its size) is a defect of the plan.
fn verdict(codes: &[Option<&str>]) -> Verdict {
    let any = |wanted: &[&str]| codes.iter().flatten().any(|c| wanted.contains(c));
    if any(&[CONDITION_FAILED]) {
        Verdict::Condition
    } else if any(&["TransactionConflict"]) {
        Verdict::Contention
    } else if any(&[
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "RequestLimitExceeded",
    ]) {
        Verdict::Throttled
    } else {
        Verdict::Invalid
    }
}

/// 503 for a write that kept losing to other writes of the same items.
pub fn storage_busy() -> ApiError {
    ApiError::Unavailable {
        code: "storage_busy",
        message: "the conversation is busy, retry shortly".into(),
        retry_after_secs: RETRY_AFTER_SECS,
    }
}

/// 503 for a DynamoDB that throttles, fails or does not answer.
pub fn storage_unavailable() -> ApiError {
    ApiError::Unavailable {
        code: "storage_unavailable",
        message: "storage is temporarily unavailable, retry shortly".into(),
        retry_after_secs: RETRY_AFTER_SECS,
    }
}

/// Jittered exponential backoff before send `attempt + 1` (10 ms, 20 ms, … 320 ms,
/// plus up to as much again).
async fn backoff(attempt: u32) {
    let base = 10u64 << attempt.min(5);
    let jitter = rand::random::<u64>() % base;
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

/// Rebuilds of a plan whose conditions failed. More than blind resends: a failed
/// condition means another write committed (the room's feed moved), so every lost
/// race is someone's progress and the next plan starts from the state it returned.
/// A room's writes commit one after another (about one per transaction's latency),
/// so a burst of N writers into one room needs up to N rounds.
pub const REBUILD_ATTEMPTS: u32 = 32;

/// The attempts of an optimistic write whose plan is rebuilt from fresh state when
/// its conditions fail: `for attempt in rebuilds() { … }`, then [`storage_busy`].
/// Before every attempt but the first it waits a short, fully jittered time (up to
/// 2 ms, 4 ms, … 32 ms): writers that lost the same race spread out instead of
/// colliding again.
pub fn rebuilds() -> impl Iterator<Item = Rebuild> {
    (0..REBUILD_ATTEMPTS).map(Rebuild)
}

/// One attempt of [`rebuilds`].
#[derive(Debug, Clone, Copy)]
pub struct Rebuild(u32);

impl Rebuild {
    /// Waits before a rebuild (not before the first attempt).
    pub async fn pause(self) {
        if self.0 > 0 {
            let ceiling = 2u64 << (self.0 - 1).min(4);
            let wait = rand::random::<u64>() % ceiling;
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

impl Table {
    pub fn new(client: Client, name: impl Into<String>, counter: RequestCounter) -> Self {
        Table {
            client,
            name: name.into(),
            counter,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SDK client, for tests and tools that inspect the table directly.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// DynamoDB requests sent so far by this table's client.
    pub fn requests(&self) -> u64 {
        self.counter.get()
    }

    /// One item by key, strongly consistent.
    pub async fn get(&self, key: ItemKey, context: &str) -> ApiResult<Option<Item>> {
        self.get_with(key, context, |get| get).await
    }

    /// One item by key, strongly consistent, with a projection or other options.
    pub async fn get_with(
        &self,
        (pk, sk): ItemKey,
        context: &str,
        options: impl FnOnce(GetItemFluentBuilder) -> GetItemFluentBuilder,
    ) -> ApiResult<Option<Item>> {
        let request = self
            .client
            .get_item()
            .table_name(&self.name)
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .consistent_read(true);
        let out = options(request)
            .send()
            .await
            .map_err(|e| sdk_error(context, e))?;
        Ok(out.item)
    }

    /// Items by key (at most [`BATCH_KEYS`]) in one BatchGetItem, strongly
    /// consistent; unprocessed keys are asked for again briefly, and still
    /// unprocessed after that is a 503. The answers are kept as received and read
    /// into rows by [`Found::rows`] (no attribute map per item).
    pub async fn batch_get(&self, item_keys: &[ItemKey], context: &str) -> ApiResult<Found> {
        let mut found = Found::new(&self.name);
        if item_keys.is_empty() {
            return Ok(found);
        }
        let mut pending: Vec<Item> = item_keys
            .iter()
            .take(BATCH_KEYS)
            .map(|(pk, sk)| [(keys::PK.to_owned(), s(pk)), (keys::SK.to_owned(), s(sk))].into())
            .collect();
        for attempt in 0..3 {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                backoff(attempt).await;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .expect("keys set");
            let taken = TakenAnswer::default();
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.name, request)
                .customize()
                .interceptor(taken.clone())
                .send()
                .await
                .map_err(|e| sdk_error(context, e))?;
            let text = taken.body();
            pending = if text.is_empty() {
                // No answer came over HTTP (the SDK's test tooling hands outputs over).
                found.add_items(
                    out.responses
                        .and_then(|mut r| r.remove(&self.name))
                        .unwrap_or_default(),
                );
                out.unprocessed_keys
                    .and_then(|mut u| u.remove(&self.name))
                    .map(|k| k.keys)
                    .unwrap_or_default()
            } else {
                found.add_text(text)?
            };
        }
        if !pending.is_empty() {
            return Err(storage_unavailable());
        }
        Ok(found)
    }

    /// One Query request as `build` describes it (key condition, filter, index…),
    /// starting after `start` when given: its items and where the next page starts.
    pub async fn query(
        &self,
        context: &str,
        start: Option<Item>,
        build: impl FnOnce(QueryFluentBuilder) -> QueryFluentBuilder,
    ) -> ApiResult<(Vec<Item>, Option<Item>)> {
        let answer = self.query_answer(context, start, build).await?;
        let page = answer.page()?;
        Ok((page.rows.iter().map(Row::to_item).collect(), page.last_key))
    }

    /// [`Self::query`]'s answer as received, for reading its rows without building
    /// an item per row (the per-item path of listings, [`Answer::page`]).
    pub async fn query_answer(
        &self,
        context: &str,
        start: Option<Item>,
        build: impl FnOnce(QueryFluentBuilder) -> QueryFluentBuilder,
    ) -> ApiResult<Answer> {
        let request = self
            .client
            .query()
            .table_name(&self.name)
            .set_exclusive_start_key(start);
        let taken = TakenAnswer::default();
        let out = build(request)
            .customize()
            .interceptor(taken.clone())
            .send()
            .await
            .map_err(|e| sdk_error(context, e))?;
        let text = taken.body();
        Ok(if text.is_empty() {
            Answer::Output(out.items.unwrap_or_default(), out.last_evaluated_key)
        } else {
            Answer::Text(text)
        })
    }

    /// Every item a Query matches, following its pages (for bounded partitions only).
    pub async fn query_all(
        &self,
        context: &str,
        build: impl Fn(QueryFluentBuilder) -> QueryFluentBuilder,
    ) -> ApiResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let (page, next) = self.query(context, start, &build).await?;
            items.extend(page);
            start = next;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// One page of a listing: the client's cursor is checked to be one of this
    /// listing's (`context`), to name `partition` and only the key attributes
    /// `cursor_keys` (a forged or borrowed cursor is refused), and the page's last key
    /// goes back out as the next cursor.
    pub async fn query_page(
        &self,
        context: &str,
        cursor: Option<&str>,
        partition: Partition<'_>,
        cursor_keys: &[&str],
        build: impl FnOnce(QueryFluentBuilder) -> QueryFluentBuilder,
    ) -> ApiResult<QueryPage> {
        // The context names the listing: its cursors continue it and nothing else.
        let start = cursor
            .map(|raw| cursor::decode_tagged(raw, context, partition, cursor_keys))
            .transpose()?
            .map(|c| c.key);
        let (items, last) = self.query(context, start, build).await?;
        Ok(QueryPage {
            items,
            next_cursor: last.map(|key| cursor::encode_tagged(context, &key, None)),
        })
    }

    /// Sends one write plan as a TransactWriteItems under the rule of this module.
    /// The request's pending audit entry (crate::audit), if any, is one more write of
    /// the plan: recorded if and only if the plan is.
    pub async fn transact(
        &self,
        mut plan: Vec<TransactWriteItem>,
        context: &str,
    ) -> Result<(), WriteError> {
        let audited = match crate::audit::pending_write(&self.name) {
            Some(entry) => {
                plan.push(entry);
                true
            }
            None => false,
        };
        let sent = Box::pin(self.send_plan(plan, context)).await;
        if audited && sent.is_ok() {
            crate::audit::recorded();
        }
        sent
    }

    /// A single write of a request with a pending audit entry: a transaction of the
    /// write and the entry.
    async fn with_entry(
        &self,
        write: TransactWriteItem,
        entry: TransactWriteItem,
        context: &str,
    ) -> Result<(), WriteError> {
        let sent = self.send_plan(vec![write, entry], context).await;
        if sent.is_ok() {
            crate::audit::recorded();
        }
        sent
    }

    async fn send_plan(
        &self,
        plan: Vec<TransactWriteItem>,
        context: &str,
    ) -> Result<(), WriteError> {
        self.under_rule(context, || {
            let request = self
                .client
                .transact_write_items()
                .set_transact_items(Some(plan.clone()));
            async move {
                let err = match request.send().await {
                    Ok(_) => return Sent::Done(()),
                    Err(err) => err,
                };
                let reasons = match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                        c.cancellation_reasons().to_vec()
                    }
                    Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                        return Sent::Again(Verdict::Contention);
                    }
                    _ => return Sent::Failed(sdk_error(context, err).into()),
                };
                let codes: Vec<Option<&str>> =
                    reasons.iter().map(CancellationReason::code).collect();
                match verdict(&codes) {
                    Verdict::Condition => Sent::Failed(WriteError::ConditionFailed(Cancellation {
                        reasons,
                        single_old: None,
                    })),
                    Verdict::Invalid => Sent::Failed(
                        ApiError::internal(context, format!("transaction cancelled: {codes:?}"))
                            .into(),
                    ),
                    again => Sent::Again(again),
                }
            }
        })
        .await
    }

    /// One PutItem under the rule of this module.
    pub async fn put(&self, put: Put, context: &str) -> Result<(), WriteError> {
        if let Some(entry) = crate::audit::pending_write(&self.name) {
            let write = TransactWriteItem::builder().put(put).build();
            return Box::pin(self.with_entry(write, entry, context)).await;
        }
        self.under_rule(context, || {
            let request = self
                .client
                .put_item()
                .table_name(&self.name)
                .set_item(Some(put.item().clone()))
                .set_condition_expression(put.condition_expression().map(str::to_owned))
                .set_expression_attribute_names(put.expression_attribute_names().cloned())
                .set_expression_attribute_values(put.expression_attribute_values().cloned());
            async move {
                match request.send().await {
                    Ok(_) => Sent::Done(()),
                    Err(err) => match err.as_service_error() {
                        Some(PutItemError::ConditionalCheckFailedException(e)) => {
                            Sent::Failed(condition_failed(e.item().cloned()))
                        }
                        Some(PutItemError::TransactionConflictException(_)) => {
                            Sent::Again(Verdict::Contention)
                        }
                        // Throttling was already retried by the SDK within its own bound.
                        _ => Sent::Failed(sdk_error(context, err).into()),
                    },
                }
            }
        })
        .await
    }

    /// One UpdateItem under the rule of this module; returns the item as written
    /// when `returns` asks for it.
    pub async fn update(
        &self,
        update: Update,
        returns: Option<ReturnValue>,
        context: &str,
    ) -> Result<Option<Item>, WriteError> {
        if let Some(entry) = crate::audit::pending_write(&self.name) {
            // A transaction returns no item: the old one is read before, the new one
            // after.
            let key = item_key(update.key());
            let old = match (&returns, &key) {
                (Some(ReturnValue::AllOld), Some(key)) => {
                    Box::pin(self.get(key.clone(), context)).await?
                }
                _ => None,
            };
            let write = TransactWriteItem::builder().update(update).build();
            Box::pin(self.with_entry(write, entry, context)).await?;
            return match (returns, key) {
                (Some(ReturnValue::AllOld), _) => Ok(old),
                (Some(_), Some(key)) => Ok(Box::pin(self.get(key, context)).await?),
                _ => Ok(None),
            };
        }
        self.under_rule(context, || {
            let request = self
                .client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(update.key().clone()))
                .update_expression(update.update_expression())
                .set_condition_expression(update.condition_expression().map(str::to_owned))
                .set_expression_attribute_names(update.expression_attribute_names().cloned())
                .set_expression_attribute_values(update.expression_attribute_values().cloned())
                .set_return_values(returns.clone());
            async move {
                match request.send().await {
                    Ok(out) => Sent::Done(out.attributes),
                    Err(err) => match err.as_service_error() {
                        Some(UpdateItemError::ConditionalCheckFailedException(e)) => {
                            Sent::Failed(condition_failed(e.item().cloned()))
                        }
                        Some(UpdateItemError::TransactionConflictException(_)) => {
                            Sent::Again(Verdict::Contention)
                        }
                        _ => Sent::Failed(sdk_error(context, err).into()),
                    },
                }
            }
        })
        .await
    }

    /// One DeleteItem under the rule of this module; returns the item as it was.
    /// [`Self::delete`] of the item at `key`, unconditionally.
    pub async fn delete_key(
        &self,
        (pk, sk): ItemKey,
        context: &str,
    ) -> Result<Option<Item>, WriteError> {
        let delete = Delete::builder()
            .table_name(&self.name)
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .build()
            .expect("delete has key");
        self.delete(delete, context).await
    }

    pub async fn delete(&self, delete: Delete, context: &str) -> Result<Option<Item>, WriteError> {
        if let Some(entry) = crate::audit::pending_write(&self.name) {
            // A transaction returns no old item: it is read first.
            let old = match item_key(delete.key()) {
                Some(key) => Box::pin(self.get(key, context)).await?,
                None => None,
            };
            let write = TransactWriteItem::builder().delete(delete).build();
            Box::pin(self.with_entry(write, entry, context)).await?;
            return Ok(old);
        }
        self.under_rule(context, || {
            let request = self
                .client
                .delete_item()
                .table_name(&self.name)
                .set_key(Some(delete.key().clone()))
                .set_condition_expression(delete.condition_expression().map(str::to_owned))
                .set_expression_attribute_names(delete.expression_attribute_names().cloned())
                .set_expression_attribute_values(delete.expression_attribute_values().cloned())
                .return_values(ReturnValue::AllOld);
            async move {
                match request.send().await {
                    Ok(out) => Sent::Done(out.attributes),
                    Err(err) => match err.as_service_error() {
                        Some(DeleteItemError::ConditionalCheckFailedException(e)) => {
                            Sent::Failed(condition_failed(e.item().cloned()))
                        }
                        Some(DeleteItemError::TransactionConflictException(_)) => {
                            Sent::Again(Verdict::Contention)
                        }
                        _ => Sent::Failed(sdk_error(context, err).into()),
                    },
                }
            }
        })
        .await
    }

    /// The rule's loop: sends while the answer is contention or throttling, at most
    /// [`WRITE_ATTEMPTS`] times with backoff, then answers 503.
    async fn under_rule<T, F, Fut>(&self, context: &str, mut send: F) -> Result<T, WriteError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Sent<T>>,
    {
        let mut last = Verdict::Contention;
        for attempt in 0..WRITE_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt - 1).await;
            }
            match send().await {
                Sent::Done(value) => return Ok(value),
                Sent::Failed(err) => return Err(err),
                Sent::Again(verdict) => {
                    tracing::debug!(context, attempt, ?verdict, "write cancelled, resending");
                    last = verdict;
                }
            }
        }
        Err(exhausted(context, last).into())
    }
}

/// One send's outcome under the rule.
enum Sent<T> {
    Done(T),
    Failed(WriteError),
    /// Contention or throttling: nothing was written, the same request may go again.
    Again(Verdict),
}

fn condition_failed(old: Option<Item>) -> WriteError {
    WriteError::ConditionFailed(Cancellation {
        reasons: Vec::new(),
        single_old: old,
    })
}

/// The answer once the rule's attempts are spent.
fn exhausted(context: &str, last: Verdict) -> ApiError {
    tracing::warn!(context, ?last, attempts = WRITE_ATTEMPTS, "write gave up");
    match last {
        Verdict::Throttled => storage_unavailable(),
        _ => storage_busy(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_that_ends_the_list_says_so() {
        let key = |i: &u32| -> Item { [("SK".to_owned(), s(i.to_string()))].into() };
        let stopped: Item = [("SK".to_owned(), s("3"))].into();
        // Exactly `limit` items, and DynamoDB stopped at its Limit (limit + 1): the end.
        let (items, next) = probed_page(vec![1, 2, 3], 3, None, key);
        assert_eq!((items.len(), next), (3, None));
        // The probe came: three shown, continuing after the third.
        let (items, next) = probed_page(vec![1, 2, 3, 4], 3, Some(stopped.clone()), key);
        assert_eq!(items, vec![1, 2, 3]);
        assert_eq!(next, Some(key(&3)));
        // A filter left the read short: continue where DynamoDB stopped.
        let (_, next) = probed_page(vec![1], 3, Some(stopped.clone()), key);
        assert_eq!(next, Some(stopped));
    }

    #[test]
    fn a_failed_condition_wins_over_contention_and_throttling() {
        let codes = [Some("TransactionConflict"), Some(CONDITION_FAILED), None];
        assert_eq!(verdict(&codes), Verdict::Condition);
    }

    #[test]
    fn contention_and_throttling_are_resent_and_anything_else_is_a_defect() {
        assert_eq!(
            verdict(&[Some("None"), Some("TransactionConflict")]),
            Verdict::Contention
        );
        assert_eq!(
            verdict(&[Some("ThrottlingError"), Some("None")]),
            Verdict::Throttled
        );
        assert_eq!(
            verdict(&[Some("ProvisionedThroughputExceeded")]),
            Verdict::Throttled
        );
        assert_eq!(verdict(&[Some("ValidationError")]), Verdict::Invalid);
        assert_eq!(verdict(&[]), Verdict::Invalid);
    }

    #[test]
    fn spent_attempts_answer_503_naming_the_cause() {
        for (last, code) in [
            (Verdict::Contention, "storage_busy"),
            (Verdict::Throttled, "storage_unavailable"),
        ] {
            let err = exhausted("test", last);
            assert_eq!(err.status(), 503);
            assert_eq!(err.code(), code);
            assert_eq!(err.retry_after_secs(), Some(RETRY_AFTER_SECS));
        }
    }

    #[test]
    fn a_cancellation_tells_which_write_failed_and_its_old_item() {
        let old: Item = [("PK".to_owned(), s("R#1"))].into();
        let c = Cancellation {
            reasons: vec![
                CancellationReason::builder().code("None").build(),
                CancellationReason::builder()
                    .code(CONDITION_FAILED)
                    .set_item(Some(old.clone()))
                    .build(),
            ],
            single_old: None,
        };
        assert!(!c.failed(0));
        assert!(c.failed(1));
        assert_eq!(c.old_item(1), Some(&old));
        let single = Cancellation {
            reasons: Vec::new(),
            single_old: Some(old.clone()),
        };
        assert!(single.failed(0));
        assert_eq!(single.old_item(0), Some(&old));
    }

    #[test]
    fn or_condition_maps_only_failed_conditions() {
        let failed: Result<(), WriteError> =
            Err(WriteError::ConditionFailed(Cancellation::default()));
        let err = failed
            .or_condition(|_| ApiError::NotFound("message"))
            .unwrap_err();
        assert_eq!(err.status(), 404);
        let other: Result<(), WriteError> = Err(WriteError::Api(storage_busy()));
        let err = other
            .or_condition(|_| ApiError::NotFound("message"))
            .unwrap_err();
        assert_eq!(err.code(), "storage_busy");
    }
}
