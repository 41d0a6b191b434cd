//! The dev server over real HTTP on 127.0.0.1, against DynamoDB Local.

use chat_testkit::{TestTable, token};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn request(
    port: u16,
    method: &str,
    path: &str,
    tok: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = tok
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status: u16 = response[9..12].parse().unwrap();
    let json = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_slice_works_end_to_end_over_http() {
    let table = TestTable::new().await;
    let port = devserver::test_app::serve_locally(&table).await;

    let customer = token("u-100", "acme", "customer");
    let (status, body) = request(
        port,
        "POST",
        "/chat/conversations",
        Some(&customer),
        Some(&json!({"title": "Order help", "agent_id": 5})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["conversation_id"].as_str().unwrap().to_owned();

    let path = format!("/chat/conversations/{id}/messages");
    let (status, _) = request(
        port,
        "POST",
        &path,
        Some(&customer),
        Some(&json!({"content": "My order number is #12345", "sender_type": "user"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = request(
        port,
        "GET",
        &format!("{path}?limit=50&offset=0"),
        Some(&customer),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["messages"][0]["content"],
        "My order number is #12345"
    );

    let (status, body) = request(
        port,
        "GET",
        "/chat/conversations?limit=20&offset=0",
        None,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (status, _) = request(port, "GET", "/no/such/route", Some(&customer), None).await;
    assert_eq!(status, 404);
}
