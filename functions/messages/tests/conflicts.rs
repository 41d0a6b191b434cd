//! More storage faults through the SDK's test tooling: every kind of throttling and
//! server error on a read answers 503 with Retry-After; transaction conflicts that
//! persist are retried a bounded number of times, then 503 `storage_busy`, and no
//! other write is ever sent. (DynamoDB Local raises neither.)

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::query::QueryError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::CancellationReason;
use aws_sdk_dynamodb::types::error::{
    InternalServerError, ProvisionedThroughputExceededException, RequestLimitExceeded,
    TransactionCanceledException,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use chat_core::Runtime;
use chat_core::dynamo::RequestCounter;
use chat_core::ids::OrgId;
use chat_core::model::{Room, RoomType};
use chat_core::store::Store;
use chat_testkit::{HttpEvent, local_config, response_json, token};
use serde_json::json;

const ROOM: &str = "01HZX3K7Q8R9S0T1V2W3X4Y5Z6";

fn app(client: Client) -> messages::App {
    messages::App::new(Runtime {
        store: Store::new(client, "mocked", RequestCounter::default()),
        config: local_config("http://127.0.0.1:1", "mocked"),
    })
}

fn room() -> Room {
    chat_testkit::room_fixture(ROOM, RoomType::Support, "Help")
}

fn event(method: &str) -> HttpEvent {
    let event = HttpEvent::new(
        &format!("{method} /chat/conversations/{{conversation_id}}/messages"),
        &format!("/chat/conversations/{ROOM}/messages"),
    )
    .param("conversation_id", ROOM)
    .bearer(&token("u-100", "acme", "customer"));
    if method == "POST" {
        event.json(&json!({"content": "hello"}))
    } else {
        event
    }
}

fn unavailable(response: &lambda_http::Response<lambda_http::Body>) -> String {
    let (status, body) = response_json(response);
    assert_eq!(status, 503, "{body}");
    assert!(
        response.headers().contains_key("retry-after"),
        "Retry-After"
    );
    assert!(
        !body.to_string().contains("Exception"),
        "no internals: {body}"
    );
    body["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_kind_of_throttling_and_server_error_on_a_read_is_a_503() {
    type Fault = (&'static str, fn() -> QueryError);
    let faults: Vec<Fault> = vec![
        ("provisioned throughput", || {
            QueryError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder().build(),
            )
        }),
        ("request limit", || {
            QueryError::RequestLimitExceeded(RequestLimitExceeded::builder().build())
        }),
        ("internal server error", || {
            QueryError::InternalServerError(InternalServerError::builder().build())
        }),
    ];
    for (name, fault) in faults {
        let rule = mock!(Client::query).then_error(fault);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule]);
        let response = app(client).handle(event("GET").request()).await;
        assert_eq!(unavailable(&response), "storage_unavailable", "{name}");
    }
}

#[tokio::test]
async fn persistent_transaction_conflicts_are_retried_then_503_busy_and_nothing_else_is_written() {
    let item = room().to_item(&OrgId::parse("acme").unwrap());
    let get = mock!(Client::get_item).then_output(move || {
        GetItemOutput::builder()
            .set_item(Some(item.clone()))
            .build()
    });
    let conflict = mock!(Client::transact_write_items).then_error(|| {
        let reason = |code: &str| CancellationReason::builder().code(code).build();
        TransactWriteItemsError::TransactionCanceledException(
            TransactionCanceledException::builder()
                .cancellation_reasons(reason("None"))
                .cancellation_reasons(reason("TransactionConflict"))
                .build(),
        )
    });
    let put = mock!(Client::put_item).then_error(|| unreachable!("no single-item write"));
    let update = mock!(Client::update_item).then_error(|| unreachable!("no single-item write"));
    let client = mock_client!(
        aws_sdk_dynamodb,
        RuleMode::MatchAny,
        [&get, &conflict, &put, &update]
    );
    let response = app(client).handle(event("POST").request()).await;
    assert_eq!(unavailable(&response), "storage_busy");
    // Bounded: a few attempts, each the one transaction of the whole post.
    let attempts = conflict.num_calls();
    assert!((2..=8).contains(&attempts), "{attempts} attempts");
    assert_eq!(put.num_calls() + update.num_calls(), 0);
}
