//! Races and faults DynamoDB Local never produces (transaction conflicts, throttled
//! transactions), injected with the SDK's mocks: the rooms store retries what may be
//! retried and otherwise answers 503 with Retry-After.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::types::CancellationReason;
use aws_sdk_dynamodb::types::error::TransactionCanceledException;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use chat_core::Runtime;
use chat_core::dynamo::RequestCounter;
use chat_core::ids::OrgId;
use chat_core::model::RoomType;
use chat_core::store::Store;
use chat_testkit::{HttpEvent, local_config, response_json, token};
use serde_json::json;

const ROOM: &str = "01HZX3K7Q8R9S0T1V2W3X4Y5Z6";

fn app(client: Client) -> rooms::App {
    rooms::App::new(Runtime {
        store: Store::new(client, "mocked", RequestCounter::default()),
        config: local_config("http://127.0.0.1:1", "mocked"),
    })
}

/// A cancelled transaction whose first item lost to `code` (and the rest did not run).
fn cancelled(code: &str) -> TransactWriteItemsError {
    TransactWriteItemsError::TransactionCanceledException(
        TransactionCanceledException::builder()
            .message("cancelled")
            .cancellation_reasons(CancellationReason::builder().code(code).build())
            .cancellation_reasons(CancellationReason::builder().code("None").build())
            .build(),
    )
}

fn start_order_chat() -> HttpEvent {
    HttpEvent::new("POST /rooms", "/rooms")
        .bearer(&token("u-100", "acme", "customer"))
        .json(&json!({"type": "vendor_to_user", "order_id": "10", "vendor_id": "7"}))
}

#[tokio::test]
async fn a_start_that_meets_a_conflict_is_retried() {
    let transact = mock!(Client::transact_write_items)
        .sequence()
        .error(|| cancelled("TransactionConflict"))
        .output(|| TransactWriteItemsOutput::builder().build())
        .build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&transact]);
    let (status, body) = response_json(&app(client).handle(start_order_chat().request()).await);
    assert_eq!(status, 201, "{body}");
    assert_eq!(transact.num_calls(), 2);
}

#[tokio::test]
async fn a_start_that_keeps_conflicting_answers_503_with_retry_after() {
    let transact =
        mock!(Client::transact_write_items).then_error(|| cancelled("TransactionConflict"));
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&transact]);
    let response = app(client).handle(start_order_chat().request()).await;
    assert!(response.headers().get("retry-after").is_some());
    let (status, body) = response_json(&response);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("storage_busy")),
        "{body}"
    );
    assert!(transact.num_calls() > 1, "retried before giving up");
}

#[tokio::test]
async fn a_throttled_member_change_is_retried() {
    let room = chat_testkit::room_fixture(ROOM, RoomType::Group, "Team");
    let item = room.to_item(&OrgId::parse("acme").unwrap());
    let get = mock!(Client::get_item).then_output(move || {
        GetItemOutput::builder()
            .set_item(Some(item.clone()))
            .build()
    });
    let transact = mock!(Client::transact_write_items)
        .sequence()
        .error(|| cancelled("ThrottlingError"))
        .output(|| TransactWriteItemsOutput::builder().build())
        .build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get, &transact]);
    let event = HttpEvent::new(
        "POST /rooms/{room_id}/members",
        &format!("/rooms/{ROOM}/members"),
    )
    .param("room_id", ROOM)
    .bearer(&token("u-100", "acme", "customer"))
    .json(&json!({"user_id": "u-200"}));
    let (status, body) = response_json(&app(client).handle(event.request()).await);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["member_count"], 2);
    assert_eq!((get.num_calls(), transact.num_calls()), (1, 2));
}
