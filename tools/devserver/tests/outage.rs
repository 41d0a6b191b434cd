//! DynamoDB failing under a running API: a DynamoDB Local of this test's own is
//! stopped mid-run (and started again on its data), and a DynamoDB that accepts
//! connections but never answers. Each call answers 503 with Retry-After within the
//! SDK's timeouts (never 500, never a hang), and nothing is half-written.

use chat_core::Runtime;
use chat_testkit::{HttpEvent, OwnDynamo, local_config, response_json, token};
use devserver::Apps;
use serde_json::{Value, json};

fn post(id: &str, text: &str) -> HttpEvent {
    HttpEvent::new(
        "POST /chat/conversations/{conversation_id}/messages",
        &format!("/chat/conversations/{id}/messages"),
    )
    .param("conversation_id", id)
    .bearer(&token("u-100", "acme", "customer"))
    .json(&json!({"content": text}))
}

fn assert_unavailable(response: &lambda_http::Response<lambda_http::Body>) -> Value {
    let (status, body) = response_json(response);
    assert_eq!(status, 503, "{body}");
    assert!(
        response.headers().contains_key("retry-after"),
        "Retry-After"
    );
    assert_eq!(body["success"], false);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_local_stopped_mid_run_then_back() {
    let dir = std::env::temp_dir().join(format!(
        "chat-outage-{}",
        chat_core::ids::Ulid::generate().as_str()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let ddb = OwnDynamo::start(Some(&dir));
    let (port, endpoint) = (ddb.port, ddb.endpoint());
    let client = chat_testkit::local_client(&endpoint).await;
    chat_testkit::create_table(&client, "outage").await.unwrap();
    // One set of apps (one warm instance) for the whole run, as on Lambda.
    let apps = Apps::new(Runtime::from_config(local_config(&endpoint, "outage")).await);
    let event = HttpEvent::new("POST /chat/conversations", "/chat/conversations")
        .bearer(&token("u-100", "acme", "customer"))
        .json(&json!({"title": "Outage", "agent_id": "a-1"}));
    let (status, created) = response_json(
        &apps
            .call("ConversationsFunction", event.request())
            .await
            .unwrap(),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = apps
        .call("MessagesFunction", post(&id, "before").request())
        .await;
    assert_eq!(response_json(&response.unwrap()).0, 201);
    let before = chat_testkit::dump_table(&client, "outage").await;

    ddb.stop();
    // A warm instance (room cached) and reads both fail cleanly.
    let response = apps
        .call("MessagesFunction", post(&id, "during").request())
        .await
        .unwrap();
    assert_unavailable(&response);
    let list = HttpEvent::new("GET /chat/conversations", "/chat/conversations")
        .bearer(&token("u-100", "acme", "customer"));
    let response = apps
        .call("ConversationsFunction", list.request())
        .await
        .unwrap();
    assert_unavailable(&response);

    // Back on the same data: the failed post left nothing, and posting works again.
    let ddb = OwnDynamo::start_on(port, Some(&dir));
    assert_eq!(
        chat_testkit::dump_table(&client, "outage").await,
        before,
        "nothing half-written"
    );
    let response = apps
        .call("MessagesFunction", post(&id, "after").request())
        .await
        .unwrap();
    let (status, body) = response_json(&response);
    assert_eq!(status, 201, "{body}");
    drop(ddb);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_dynamodb_that_never_answers_is_a_503_within_the_sdk_timeouts() {
    // Accepts connections, reads, never answers: every attempt times out (2 s), the
    // operation gives up at 6 s, well inside the function's 10 s.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let runtime =
        Runtime::from_config(local_config(&format!("http://127.0.0.1:{port}"), "stalled")).await;
    let apps = Apps::new(runtime);
    let response = apps
        .call(
            "MessagesFunction",
            post("01HZX3K7Q8R9S0T1V2W3X4Y5Z6", "anyone?").request(),
        )
        .await
        .unwrap();
    let body = assert_unavailable(&response);
    assert_eq!(body["error"]["code"], "storage_unavailable");
}
