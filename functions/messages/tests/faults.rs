//! Storage faults: throttling, errors and an unreachable DynamoDB answer 503 with
//! Retry-After (never 500, never a hang), and a failed post leaves nothing behind.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::get_item::{GetItemError, GetItemOutput};
use aws_sdk_dynamodb::operation::query::QueryError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::error::{InternalServerError, ProvisionedThroughputExceededException};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use chat_core::Runtime;
use chat_core::dynamo::RequestCounter;
use chat_core::item::ItemExt;
use chat_core::keys;
use chat_core::model::{Room, RoomType};
use chat_core::store::Store;
use chat_testkit::{HttpEvent, TestTable, local_config, response_json, token};
use serde_json::json;

const ROOM: &str = "01HZX3K7Q8R9S0T1V2W3X4Y5Z6";

fn app(client: Client) -> messages::App {
    let config = local_config("http://127.0.0.1:1", "mocked");
    messages::App::new(Runtime {
        store: Store::new(client, "mocked", RequestCounter::default()),
        config,
    })
}

fn room() -> Room {
    chat_testkit::room_fixture(ROOM, RoomType::Support, "Help")
}

fn post() -> HttpEvent {
    HttpEvent::new(
        "POST /chat/conversations/{conversation_id}/messages",
        &format!("/chat/conversations/{ROOM}/messages"),
    )
    .param("conversation_id", ROOM)
    .bearer(&token("u-100", "acme", "customer"))
    .json(&json!({"content": "hello there"}))
}

fn list() -> HttpEvent {
    HttpEvent::new(
        "GET /chat/conversations/{conversation_id}/messages",
        &format!("/chat/conversations/{ROOM}/messages"),
    )
    .param("conversation_id", ROOM)
    .bearer(&token("u-100", "acme", "customer"))
}

fn assert_unavailable(status: u16, body: &serde_json::Value, retry_after: Option<&str>) {
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["success"], false);
    assert!(
        body["error"]["code"]
            .as_str()
            .unwrap()
            .starts_with("storage_"),
        "{body}"
    );
    assert!(retry_after.is_some(), "Retry-After is set");
    assert!(
        !body.to_string().contains("Exception"),
        "no internals leak: {body}"
    );
}

#[tokio::test]
async fn throttled_reads_answer_503_with_retry_after() {
    let throttled = mock!(Client::query).then_error(|| {
        QueryError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("slow down")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&throttled]);
    let response = app(client).handle(list().request()).await;
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = response_json(&response);
    assert_unavailable(status, &body, retry_after.as_deref());
    assert!(throttled.num_calls() >= 1);
}

#[tokio::test]
async fn a_failing_transaction_answers_503_and_the_post_is_not_half_done() {
    let org = chat_core::ids::OrgId::parse("acme").unwrap();
    let item = room().to_item(&org);
    let get = mock!(Client::get_item).then_output(move || {
        GetItemOutput::builder()
            .set_item(Some(item.clone()))
            .build()
    });
    let transact = mock!(Client::transact_write_items).then_error(|| {
        TransactWriteItemsError::InternalServerError(
            InternalServerError::builder().message("boom").build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get, &transact]);
    let response = app(client).handle(post().request()).await;
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = response_json(&response);
    assert_unavailable(status, &body, retry_after.as_deref());
    // Everything a post writes is in that one transaction: nothing else was sent.
    assert_eq!(get.num_calls(), 1);
    assert!(transact.num_calls() >= 1);
}

#[tokio::test]
async fn a_throttled_room_read_writes_nothing() {
    let get = mock!(Client::get_item).then_error(|| {
        GetItemError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder().build(),
        )
    });
    let transact = mock!(Client::transact_write_items).then_output(|| {
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput::builder()
            .build()
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get, &transact]);
    let (status, _) = response_json(&app(client).handle(post().request()).await);
    assert_eq!(status, 503);
    assert_eq!(transact.num_calls(), 0, "no write after a failed read");
}

#[tokio::test]
async fn dynamodb_stopped_mid_run_is_503_not_500_and_nothing_half_written() {
    // A real table on DynamoDB Local for the setup, then the same app pointed at a
    // port where nothing answers (DynamoDB Local stopped).
    let table = TestTable::new().await;
    let conversations = conversations::App::new(table.runtime.clone());
    let event = HttpEvent::new("POST /chat/conversations", "/chat/conversations")
        .bearer(&token("u-100", "acme", "customer"))
        .json(&json!({"title": "Help"}));
    let (_, created) = response_json(&conversations.handle(event.request()).await);
    let id = created["data"]["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = table.items().await;

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = Runtime::from_config(local_config(
        &format!("http://127.0.0.1:{closed}"),
        &table.name,
    ))
    .await;
    let app = messages::App::new(down);
    let event = HttpEvent::new(
        "POST /chat/conversations/{conversation_id}/messages",
        &format!("/chat/conversations/{id}/messages"),
    )
    .param("conversation_id", &id)
    .bearer(&token("u-100", "acme", "customer"))
    .json(&json!({"content": "anyone?"}));
    let response = app.handle(event.request()).await;
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = response_json(&response);
    assert_unavailable(status, &body, retry_after.as_deref());
    // It returned at all: the SDK's timeouts (connect 2 s, attempt 2 s, operation
    // 6 s, shared/src/dynamo.rs) end inside the function timeout of 10 s.
    let after = table.items().await;
    assert_eq!(after.len(), before.len(), "nothing half-written");
    assert!(
        after
            .iter()
            .all(|i| i.str(keys::ENTITY) != Some(keys::entity::MESSAGE))
    );
}
