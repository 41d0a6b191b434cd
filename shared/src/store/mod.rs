//! The DynamoDB store: every read and write of the table goes through here, one
//! request per call where the budgets say so. Split by what it stores.

pub mod analytics;
mod catalog;
mod conversations;
mod inbox;
mod message_edits;
mod messages;
mod rooms;
mod search;

pub use catalog::{MAX_PRODUCTS_PAGE, Product, Profile};
pub use conversations::{MemberView, SharedChanges};
pub use inbox::{Inbox, InboxQuery};
pub use message_edits::MessageChange;
pub use messages::{Direction, MessageList, MessageQuery, NewMessage, Posted, RoomCache};
pub use rooms::{RoomPage, RoomQuery, Started};
pub use search::{MAX_INDEXED_WORDS, MAX_QUERY_CHARS, index_words};

use crate::dynamo::{RequestCounter, sdk_error};
use crate::error::{ApiError, ApiResult};
use crate::item::{Item, s};
use crate::keys;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{KeysAndAttributes, Put, TransactWriteItem};
use std::time::Duration;

/// Idempotency records are kept this long; a retry after that is a new message.
pub const IDEMPOTENCY_TTL_SECS: i64 = 24 * 3600;
/// Attempts for a transaction that loses a race (conflict or stale member list).
const WRITE_ATTEMPTS: u32 = 6;

#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
    counter: RequestCounter,
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
            client,
            table: table.into(),
            counter,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// DynamoDB requests sent so far by this store's client.
    pub fn requests(&self) -> u64 {
        self.counter.get()
    }
}

impl Store {
    /// Items by key in one BatchGetItem (at most 100 keys), retrying unprocessed keys
    /// briefly; still unprocessed after that is a 503.
    pub(crate) async fn batch_get(
        &self,
        item_keys: &[(String, String)],
        context: &str,
    ) -> ApiResult<Vec<Item>> {
        if item_keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut request = KeysAndAttributes::builder().consistent_read(true);
        for (pk, sk) in item_keys.iter().take(100) {
            request =
                request.keys([(keys::PK.to_owned(), s(pk)), (keys::SK.to_owned(), s(sk))].into());
        }
        let mut pending = Some(request.build().expect("keys set"));
        let mut found = Vec::new();
        for attempt in 0..3 {
            let Some(request) = pending.take() else { break };
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
            }
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| sdk_error(context, e))?;
            if let Some(items) = out.responses.and_then(|mut r| r.remove(&self.table)) {
                found.extend(items);
            }
            pending = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table));
        }
        if pending.is_some() {
            return Err(storage_busy());
        }
        Ok(found)
    }
}

pub(crate) fn put(table: &str, item: Item, must_be_new: bool) -> TransactWriteItem {
    let mut put = Put::builder().table_name(table).set_item(Some(item));
    if must_be_new {
        put = put.condition_expression("attribute_not_exists(PK)");
    }
    TransactWriteItem::builder()
        .put(put.build().expect("put has item"))
        .build()
}

pub(crate) fn storage_busy() -> ApiError {
    ApiError::Unavailable {
        code: "storage_busy",
        message: "the conversation is busy, retry shortly".into(),
        retry_after_secs: 1,
    }
}

pub(crate) async fn backoff(attempt: u32) {
    let base = 10u64 << attempt.min(5);
    let jitter = rand::random::<u64>() % base.max(1);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}
