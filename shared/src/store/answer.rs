//! The table layer's read path for pages of items: the SDK sends the Query (signing,
//! retries, errors, interceptors all as usual), but the body of a successful answer is
//! taken from it as it arrives and read into [`Row`]s that borrow from its text,
//! instead of the SDK building an attribute map per item (docs/performance-notes.md).
//! The SDK is left an empty object to parse. Any answer but a 200 is the SDK's,
//! untouched, so its error mapping and retry classification see what they always did.

use crate::error::{ApiError, ApiResult};
use crate::item::{Item, ItemExt};
use crate::wire::Row;
use aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_types::body::SdkBody;
use hyper::body::{Body, Bytes, Frame};
use serde::Deserialize;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// A per-call interceptor: holds the body of the call's successful answer.
#[derive(Debug, Clone, Default)]
pub struct TakenAnswer(Arc<Mutex<Vec<u8>>>);

impl TakenAnswer {
    /// The answer's body, once the call has returned successfully.
    pub fn body(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("answer lock"))
    }
}

impl Intercept for TakenAnswer {
    fn name(&self) -> &'static str {
        "TakenAnswer"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response_mut();
        if response.status().as_u16() != 200 {
            return Ok(());
        }
        // A retried attempt starts from nothing.
        self.0.lock().expect("answer lock").clear();
        let inner = response.take_body();
        *response.body_mut() = SdkBody::from_body_1_x(Taking {
            inner,
            sink: self.0.clone(),
            ended: false,
        });
        Ok(())
    }
}

/// The answer's body as the SDK reads it: every frame goes to the sink, and the SDK
/// gets `{}` once the body has ended.
struct Taking {
    inner: SdkBody,
    sink: Arc<Mutex<Vec<u8>>>,
    ended: bool,
}

impl Body for Taking {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        self.sink
                            .lock()
                            .expect("answer lock")
                            .extend_from_slice(data);
                    }
                }
                Poll::Ready(None) => {
                    self.ended = true;
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"{}")))));
                }
            }
        }
    }
}

/// A Query's answer as received: its text (read into [`Row`]s borrowing from it), or,
/// when no answer came over HTTP (the SDK's test tooling hands outputs over), the
/// SDK's own output.
pub enum Answer {
    Text(Vec<u8>),
    Output(Vec<Item>, Option<Item>),
}

/// One page of rows and where the next page starts.
pub struct Page<'a> {
    pub rows: Vec<Row<'a>>,
    pub last_key: Option<Item>,
}

#[derive(Deserialize)]
struct QueryText<'a> {
    #[serde(borrow, default, rename = "Items")]
    items: Vec<Row<'a>>,
    #[serde(borrow, rename = "LastEvaluatedKey")]
    last_key: Option<Row<'a>>,
}

/// Only where the next page starts: the items are skipped, not read.
#[derive(Deserialize)]
struct QueryTail<'a> {
    #[serde(borrow, rename = "LastEvaluatedKey")]
    last_key: Option<Row<'a>>,
}

impl Answer {
    /// Where the next page starts, without reading the page's rows.
    pub fn last_key(&self) -> ApiResult<Option<Item>> {
        match self {
            Answer::Text(text) => {
                let tail: QueryTail = serde_json::from_slice(text).map_err(unreadable)?;
                Ok(tail.last_key.map(|key| key.to_item()))
            }
            Answer::Output(_, last_key) => Ok(last_key.clone()),
        }
    }

    pub fn page(&self) -> ApiResult<Page<'_>> {
        Ok(match self {
            Answer::Text(text) => {
                let page: QueryText = serde_json::from_slice(text).map_err(unreadable)?;
                Page {
                    rows: page.items,
                    last_key: page.last_key.map(|key| key.to_item()),
                }
            }
            Answer::Output(items, last_key) => Page {
                rows: items.iter().map(Row::of_item).collect(),
                last_key: last_key.clone(),
            },
        })
    }
}

/// The answers of one batch get: its first BatchGetItem and those that asked again
/// for unprocessed keys, read into rows on demand.
#[derive(Default)]
pub struct Found {
    table: String,
    texts: Vec<Vec<u8>>,
    /// What came without HTTP (the SDK's test tooling hands outputs over).
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct BatchText<'a> {
    #[serde(borrow, default, rename = "Responses")]
    responses: HashMap<String, Vec<Row<'a>>>,
}

/// Only the keys to ask for again: the responses are skipped, not read.
#[derive(Deserialize)]
struct BatchTail<'a> {
    #[serde(borrow, default, rename = "UnprocessedKeys")]
    unprocessed: HashMap<String, Unprocessed<'a>>,
}

#[derive(Deserialize)]
struct Unprocessed<'a> {
    #[serde(borrow, default, rename = "Keys")]
    keys: Vec<Row<'a>>,
}

impl Found {
    pub fn new(table: &str) -> Self {
        Found {
            table: table.to_owned(),
            ..Found::default()
        }
    }

    /// Keeps one answer's text; returns the keys it left unprocessed.
    pub fn add_text(&mut self, text: Vec<u8>) -> ApiResult<Vec<Item>> {
        let tail: BatchTail = serde_json::from_slice(&text).map_err(unreadable)?;
        let unprocessed = tail
            .unprocessed
            .get(&self.table)
            .map(|u| u.keys.iter().map(ItemExt::to_item).collect())
            .unwrap_or_default();
        self.texts.push(text);
        Ok(unprocessed)
    }

    pub fn add_items(&mut self, items: Vec<Item>) {
        self.items.extend(items);
    }

    /// Every item found, as rows borrowing from the answers.
    pub fn rows(&self) -> ApiResult<Vec<Row<'_>>> {
        let mut rows: Vec<Row> = self.items.iter().map(Row::of_item).collect();
        for text in &self.texts {
            let mut answer: BatchText = serde_json::from_slice(text).map_err(unreadable)?;
            rows.extend(answer.responses.remove(&self.table).unwrap_or_default());
        }
        Ok(rows)
    }

    /// Every item found, owned.
    pub fn items(&self) -> ApiResult<Vec<Item>> {
        Ok(self.rows()?.iter().map(ItemExt::to_item).collect())
    }
}

fn unreadable(e: serde_json::Error) -> ApiError {
    tracing::error!(error = %e, "unreadable Query answer");
    ApiError::Internal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::ItemExt;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn the_sdk_reads_an_empty_object_and_the_sink_holds_the_body() {
        let sink = Arc::new(Mutex::new(Vec::new()));
        let body = SdkBody::from_body_1_x(Taking {
            inner: SdkBody::from(r#"{"Items":[{"a":{"S":"b"}}],"Count":1}"#),
            sink: sink.clone(),
            ended: false,
        });
        let read = body.collect().await.unwrap().to_bytes();
        assert_eq!(&read[..], b"{}");
        let answer = Answer::Text(sink.lock().unwrap().clone());
        let page = answer.page().unwrap();
        assert_eq!(page.rows.len(), 1);
        assert_eq!(page.rows[0].str("a"), Some("b"));
        assert!(page.last_key.is_none());
    }

    #[test]
    fn a_page_with_a_next_key_says_where_to_start() {
        let text = br#"{"Count":0,"Items":[],"LastEvaluatedKey":{"PK":{"S":"p"},"SK":{"S":"s"}},"ScannedCount":3}"#;
        let answer = Answer::Text(text.to_vec());
        assert_eq!(answer.last_key().unwrap().unwrap().str("SK"), Some("s"));
        let page = answer.page().unwrap();
        assert!(page.rows.is_empty());
        assert_eq!(page.last_key.unwrap().str("SK"), Some("s"));
    }

    #[test]
    fn a_batch_answer_reads_its_table_rows_and_the_keys_left_over() {
        let mut found = Found::new("t");
        let text = br#"{"Responses":{"t":[{"PK":{"S":"a"},"n":{"N":"1"}},{"PK":{"S":"b"}}],"other":[{"PK":{"S":"x"}}]},
            "UnprocessedKeys":{"t":{"Keys":[{"PK":{"S":"c"},"SK":{"S":"d"}}],"ConsistentRead":true}}}"#;
        let left = found.add_text(text.to_vec()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].str("SK"), Some("d"));
        assert!(
            found
                .add_text(br#"{"Responses":{"t":[]},"UnprocessedKeys":{}}"#.to_vec())
                .unwrap()
                .is_empty()
        );
        found.add_items(vec![[("PK".to_owned(), crate::item::s("e"))].into()]);
        let rows = found.rows().unwrap();
        let pks: Vec<_> = rows.iter().filter_map(|r| r.str("PK")).collect();
        assert_eq!(pks, ["e", "a", "b"]);
        assert_eq!(rows[1].num::<u32>("n"), Some(1));
        assert_eq!(found.items().unwrap().len(), 3);
        assert!(found.add_text(b"not json".to_vec()).is_err());
    }

    #[test]
    fn an_output_handed_over_reads_as_the_same_rows() {
        let item: Item = [("a".to_owned(), crate::item::s("b"))].into();
        let answer = Answer::Output(vec![item.clone()], Some(item));
        let page = answer.page().unwrap();
        assert_eq!(page.rows[0].str("a"), Some("b"));
        assert_eq!(page.last_key.unwrap().str("a"), Some("b"));
    }
}
