//! AI replies against local doubles of the providers' protocols (OpenAI chat
//! completions and Bedrock Converse), with DynamoDB Local for storage.

use chat_core::item::ItemExt;
use chat_core::keys;
use chat_testkit::{HttpDouble, HttpEvent, response_json, token};
use messages::App;
use messages::ai::{Ai, Provider};
use serde_json::{Value, json};
use std::time::Duration;

const ROUTE: &str = "POST /chat/conversations/{conversation_id}/ai-response";

/// The messages app (with `ai`), and the id of a support conversation of u-100's.
type Env = chat_testkit::FunctionTest<App, String>;

async fn with_ai(ai: Ai) -> Env {
    let mut env = Env::with(|runtime| App::with_ai(runtime, ai), |_| String::new()).await;
    let conversations = conversations::App::new(env.table.runtime.clone());
    let event = HttpEvent::new("POST /chat/conversations", "/chat/conversations")
        .bearer(&token("u-100", "acme", "customer"))
        .json(&json!({"title": "Order help", "agent_id": 5}));
    let (_, body) = response_json(&conversations.handle(event.request()).await);
    env.extra = body["data"]["conversation_id"].as_str().unwrap().to_owned();
    env
}

/// The calls these tests make.
trait Calls {
    async fn post(&self, content: &str);

    fn ask(&self, tok: &str, body: Value) -> HttpEvent;

    async fn messages(&self) -> usize;
}

impl Calls for Env {
    async fn post(&self, content: &str) {
        let event = HttpEvent::new(
            "POST /chat/conversations/{conversation_id}/messages",
            &format!("/chat/conversations/{}/messages", self.extra),
        )
        .param("conversation_id", &self.extra)
        .bearer(&token("u-100", "acme", "customer"))
        .json(&json!({"content": content}));
        assert_eq!(self.send(event).await.0, 201);
    }

    fn ask(&self, tok: &str, body: Value) -> HttpEvent {
        HttpEvent::new(
            ROUTE,
            &format!("/chat/conversations/{}/ai-response", self.extra),
        )
        .param("conversation_id", &self.extra)
        .bearer(tok)
        .json(&body)
    }

    async fn messages(&self) -> usize {
        self.table
            .items()
            .await
            .iter()
            .filter(|i| i.str(keys::ENTITY) == Some(keys::entity::MESSAGE))
            .count()
    }
}

fn customer() -> String {
    token("u-100", "acme", "customer")
}

fn openai_answer(text: &str, tokens: u64) -> String {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "local-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": tokens - 10, "completion_tokens": 10, "total_tokens": tokens},
    })
    .to_string()
}

fn openai(double: &HttpDouble) -> Ai {
    Ai {
        provider: Provider::openai(
            &format!("{}/v1", double.url()),
            "local-model",
            Some("sk-test"),
        )
        .unwrap(),
        price_per_1k_tokens: 0.002,
        timeout: Duration::from_millis(1500),
    }
}

#[tokio::test]
async fn openai_compatible_reply_is_stored_as_the_bot_agents_message() {
    let double = HttpDouble::start(|_| {
        (
            200,
            openai_answer("Thank you for providing your order number #12345.", 1000),
            Duration::ZERO,
        )
    })
    .await;
    let env = with_ai(openai(&double)).await;
    env.post("Hello, I need help with my order").await;
    let (status, body) = env
        .send(env.ask(
            &customer(),
            json!({"message": "My order number is #12345", "agent_id": 5, "include_context": true}),
        ))
        .await;
    assert_eq!(status, 201, "{body}");
    let data = &body["data"];
    assert_eq!(
        data["ai_response"],
        "Thank you for providing your order number #12345."
    );
    assert_eq!(data["tokens_used"], 1000);
    assert_eq!(data["cost"], 0.002);
    assert!(data["processing_time"].as_f64().unwrap() >= 0.0);
    assert!(data["message_id"].is_string() && data["created_at"].is_string());

    let sent = double.recorded();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/v1/chat/completions");
    assert!(
        sent[0]
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer sk-test")
    );
    let request: Value = serde_json::from_str(&sent[0].body).unwrap();
    let turns = request["messages"].as_array().unwrap();
    assert_eq!(turns[0]["role"], "system");
    assert_eq!(
        turns[1]["content"], "Hello, I need help with my order",
        "context comes first"
    );
    assert_eq!(
        turns.last().unwrap()["content"],
        "My order number is #12345"
    );

    let stored = env
        .table
        .items()
        .await
        .into_iter()
        .find(|i| i.str("sender") == Some("bot"))
        .expect("the reply is stored");
    assert_eq!(stored.str("sender_id"), Some("5"));
    assert_eq!(stored.num::<u64>("tokens_used"), Some(1000));

    // Without context only the question goes.
    env.send(env.ask(
        &customer(),
        json!({"message": "Where is it?", "include_context": false}),
    ))
    .await;
    let request: Value = serde_json::from_str(&double.recorded()[1].body).unwrap();
    assert_eq!(request["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn provider_failures_store_nothing() {
    let cases: Vec<(u16, &str, Duration, u16, &str)> = vec![
        (500, "{}", Duration::ZERO, 503, "ai_unavailable"),
        (429, "{}", Duration::ZERO, 503, "ai_unavailable"),
        (
            400,
            r#"{"error": "bad"}"#,
            Duration::ZERO,
            502,
            "ai_provider_error",
        ),
        (
            200,
            r#"{"choices": []}"#,
            Duration::ZERO,
            502,
            "ai_provider_error",
        ),
        (200, "not json", Duration::ZERO, 502, "ai_provider_error"),
        (200, "{}", Duration::from_secs(5), 503, "ai_timeout"),
    ];
    for (status, body, delay, want, code) in cases {
        let double = HttpDouble::start(move |_| (status, body.to_owned(), delay)).await;
        let env = with_ai(openai(&double)).await;
        let before = env.messages().await;
        let (got, resp) = env
            .send(env.ask(&customer(), json!({"message": "hi there"})))
            .await;
        assert_eq!(
            (got, resp["error"]["code"].as_str()),
            (want, Some(code)),
            "provider {status} after {delay:?}: {resp}"
        );
        assert_eq!(env.messages().await, before, "nothing half-stored");
    }
}

#[tokio::test]
async fn off_answers_503_and_strangers_404_without_calling_the_provider() {
    let env = with_ai(Ai::off()).await;
    let (status, body) = env
        .send(env.ask(&customer(), json!({"message": "hi"})))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("ai_unavailable"))
    );

    let double = HttpDouble::start(|_| (200, openai_answer("x", 20), Duration::ZERO)).await;
    let env = with_ai(openai(&double)).await;
    let before = env.table.items().await;
    for tok in [
        token("u-9", "acme", "customer"),
        token("u-100", "globex", "admin"),
    ] {
        assert_eq!(
            env.send(env.ask(&tok, json!({"message": "hi"}))).await.0,
            404
        );
    }
    for body in [
        json!({}),
        json!({"message": ""}),
        json!({"message": "x", "temperature": 2}),
        json!({"message": "x", "agent_id": "a#b"}),
    ] {
        assert_eq!(
            env.send(env.ask(&customer(), body.clone())).await.0,
            422,
            "{body}"
        );
    }
    assert!(
        double.recorded().is_empty(),
        "refused requests cost no tokens"
    );
    assert_eq!(env.table.items().await, before);
}

#[tokio::test]
async fn bedrock_converse_reply() {
    let double = HttpDouble::start(|_| {
        let answer = json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "Your order ships today."}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 40, "outputTokens": 8, "totalTokens": 48},
            "metrics": {"latencyMs": 12},
        });
        (200, answer.to_string(), Duration::ZERO)
    })
    .await;
    let config = aws_sdk_bedrockruntime::config::Builder::new()
        .behavior_version(aws_sdk_bedrockruntime::config::BehaviorVersion::latest())
        .region(aws_sdk_bedrockruntime::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_bedrockruntime::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .endpoint_url(double.url())
        .build();
    let ai = Ai {
        provider: Provider::Bedrock {
            client: aws_sdk_bedrockruntime::Client::from_conf(config),
            model_id: "anthropic.claude-3-haiku-20240307-v1:0".into(),
        },
        price_per_1k_tokens: 0.25,
        timeout: Duration::from_secs(3),
    };
    let env = with_ai(ai).await;
    env.post("Where is my order?").await;
    let (status, body) = env
        .send(env.ask(
            &customer(),
            json!({"message": "Order #12345", "agent_id": 5}),
        ))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["ai_response"], "Your order ships today.");
    assert_eq!(body["data"]["tokens_used"], 48);
    assert_eq!(body["data"]["cost"], 0.012);
    let sent = double.recorded();
    assert!(
        sent[0]
            .path
            .starts_with("/model/anthropic.claude-3-haiku-20240307-v1"),
        "{}",
        sent[0].path
    );
    assert!(sent[0].path.ends_with("/converse"));
    let request: Value = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(request["messages"][0]["role"], "user");
    assert!(
        request["messages"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Where is my order?")
    );
    assert!(request["system"][0]["text"].is_string());
}

#[tokio::test]
async fn a_retried_ask_returns_the_first_reply_without_asking_again() {
    // The double answers differently every time, as a model does.
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = calls.clone();
    let double = HttpDouble::start(move |_| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (
            200,
            openai_answer(&format!("answer {n}"), 50),
            Duration::ZERO,
        )
    })
    .await;
    let env = with_ai(openai(&double)).await;
    let store = &env.table.runtime.store;
    let ask = |body: Value| {
        env.ask(&customer(), body)
            .header("idempotency-key", "ask-1")
    };
    let before = store.requests();
    let (status, first) = env.send(ask(json!({"message": "Where is it?"}))).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(
        store.requests() - before,
        3,
        "context Query (with the room), the key's record, one TransactWriteItems"
    );
    let (status, again) = env.send(ask(json!({"message": "Where is it?"}))).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["data"], first["data"], "the first reply, as stored");
    assert_eq!(double.recorded().len(), 1, "the model was asked once");
    assert_eq!(env.messages().await, 1);

    let before = env.table.items().await;
    let (status, body) = env.send(ask(json!({"message": "Something else"}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );
    assert_eq!(double.recorded().len(), 1);
    assert_eq!(env.table.items().await, before);

    // Without a key: the context Query and one transaction (the room came with it).
    let before = store.requests();
    let (status, _) = env
        .send(env.ask(&customer(), json!({"message": "And now?"})))
        .await;
    assert_eq!(status, 201);
    assert_eq!(store.requests() - before, 2);
}

#[tokio::test]
async fn malformed_and_oversized_asks_are_refused_before_the_model() {
    let double = HttpDouble::start(|_| (200, openai_answer("x", 20), Duration::ZERO)).await;
    let env = with_ai(openai(&double)).await;
    let before = env.table.items().await;
    for (raw, status, code) in [
        ("{\"message\": ".to_owned(), 400, "malformed_request"),
        (
            json!({"message": "x".repeat(70_000)}).to_string(),
            413,
            "payload_too_large",
        ),
        (
            json!({"message": "x".repeat(4001)}).to_string(),
            422,
            "invalid_field",
        ),
        (
            json!({"message": "x", "include_context": "yes"}).to_string(),
            422,
            "invalid_field",
        ),
    ] {
        let event = HttpEvent::new(
            ROUTE,
            &format!("/chat/conversations/{}/ai-response", env.extra),
        )
        .param("conversation_id", &env.extra)
        .bearer(&customer())
        .raw_body(&raw);
        let (got, body) = env.send(event).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    assert!(double.recorded().is_empty());
    assert_eq!(env.table.items().await, before);
}
