//! The DynamoDB store: every read and write of the table goes through here, one
//! request per call where the budgets say so. Split by what it stores.

mod conversations;
mod inbox;
mod message_edits;
mod messages;
mod rooms;
mod search;

pub use conversations::{MemberView, SharedChanges};
pub use inbox::{Inbox, InboxQuery};
pub use message_edits::MessageChange;
pub use messages::{Direction, MessageList, MessageQuery, NewMessage, Posted, RoomCache};
pub use search::{MAX_INDEXED_WORDS, MAX_QUERY_CHARS, index_words};

use crate::dynamo::RequestCounter;
use crate::error::ApiError;
use crate::item::Item;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
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
