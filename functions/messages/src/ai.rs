//! AI replies: a provider chosen by configuration — Amazon Bedrock (Converse API),
//! any OpenAI-compatible chat-completions endpoint, or `off`.

use chat_core::ApiError;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One turn of the conversation given to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// `user` or `assistant`.
    pub role: &'static str,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub tokens_used: u64,
    pub processing_time: f64,
}

pub const SYSTEM_PROMPT: &str = "You are a helpful customer-support agent. Answer briefly and politely, \
using the conversation so far. Never invent order details you were not given.";

pub enum Provider {
    Off,
    OpenAi {
        endpoint: String,
        model: String,
        api_key: Option<String>,
        /// Built at the first question: loading the system's roots at cold start
        /// would slow every start of the function, most of which ask nothing.
        http: std::sync::OnceLock<Result<OpenAiHttp, String>>,
    },
    Bedrock {
        client: aws_sdk_bedrockruntime::Client,
        model_id: String,
    },
}

pub struct Ai {
    pub provider: Provider,
    pub price_per_1k_tokens: f64,
    pub timeout: Duration,
}

impl std::fmt::Debug for Ai {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let provider = match &self.provider {
            Provider::Off => "off",
            Provider::OpenAi { .. } => "openai",
            Provider::Bedrock { .. } => "bedrock",
        };
        f.debug_struct("Ai")
            .field("provider", &provider)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Ai {
    pub fn off() -> Ai {
        Ai {
            provider: Provider::Off,
            price_per_1k_tokens: 0.0,
            timeout: Duration::from_secs(8),
        }
    }

    /// Reads AI_PROVIDER (off | bedrock | openai) and its settings; a provider with
    /// missing settings fails the cold start, naming what is missing.
    pub async fn from_env(
        env: &HashMap<String, String>,
        aws: &chat_core::aws::AwsSettings,
    ) -> Result<Ai, String> {
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let price = match get("AI_PRICE_PER_1K_TOKENS") {
            None => 0.0,
            Some(raw) => raw
                .parse::<f64>()
                .ok()
                .filter(|p| *p >= 0.0)
                .ok_or("AI_PRICE_PER_1K_TOKENS must be a non-negative number")?,
        };
        let timeout = match get("AI_TIMEOUT_MS") {
            None => Duration::from_millis(8000),
            Some(raw) => Duration::from_millis(
                raw.parse()
                    .map_err(|_| "AI_TIMEOUT_MS must be milliseconds")?,
            ),
        };
        let provider = match get("AI_PROVIDER").unwrap_or("off") {
            "off" => Provider::Off,
            "openai" => {
                let base = get("OPENAI_BASE_URL")
                    .ok_or("OPENAI_BASE_URL is required for AI_PROVIDER=openai")?;
                let model =
                    get("OPENAI_MODEL").ok_or("OPENAI_MODEL is required for AI_PROVIDER=openai")?;
                Provider::openai(base, model, get("OPENAI_API_KEY"))?
            }
            "bedrock" => {
                let model_id = get("BEDROCK_MODEL_ID")
                    .ok_or("BEDROCK_MODEL_ID is required for AI_PROVIDER=bedrock")?;
                // BEDROCK_ENDPOINT: only for tests against a local double of the
                // Converse API.
                let double = get("BEDROCK_ENDPOINT");
                let endpoint = match double {
                    Some(_) => chat_core::aws::Endpoint::Local,
                    None => chat_core::aws::Endpoint::Aws,
                };
                let shared = chat_core::aws::sdk_config(aws, endpoint).await;
                let mut builder = aws_sdk_bedrockruntime::config::Builder::from(&shared);
                if let Some(endpoint) = double {
                    builder = builder.endpoint_url(endpoint);
                }
                Provider::Bedrock {
                    client: aws_sdk_bedrockruntime::Client::from_conf(builder.build()),
                    model_id: model_id.to_owned(),
                }
            }
            other => {
                return Err(format!(
                    "AI_PROVIDER {other:?} is not one of off, bedrock, openai"
                ));
            }
        };
        Ok(Ai {
            provider,
            price_per_1k_tokens: price,
            timeout,
        })
    }

    pub fn cost(&self, tokens: u64) -> f64 {
        // Rounded to a millionth of the currency unit.
        (tokens as f64 * self.price_per_1k_tokens / 1000.0 * 1e6).round() / 1e6
    }

    /// Asks the model; slow or failing providers become 503/502 for the client.
    pub async fn complete(&self, turns: &[Turn]) -> Result<Completion, ApiError> {
        let started = Instant::now();
        let call = async {
            match &self.provider {
                Provider::Off => Err(ApiError::Unavailable {
                    code: "ai_unavailable",
                    message: "AI replies are not configured for this deployment".into(),
                    retry_after_secs: 3600,
                }),
                Provider::OpenAi {
                    endpoint,
                    model,
                    api_key,
                    http,
                } => {
                    let http = http
                        .get_or_init(openai_http)
                        .as_ref()
                        .map_err(provider_error)?;
                    openai(http, endpoint, model, api_key.as_deref(), turns).await
                }
                Provider::Bedrock { client, model_id } => bedrock(client, model_id, turns).await,
            }
        };
        let (text, tokens_used) = match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result?,
            Err(_) => {
                tracing::warn!(
                    timeout_ms = self.timeout.as_millis() as u64,
                    "AI provider timed out"
                );
                return Err(ApiError::Unavailable {
                    code: "ai_timeout",
                    message: "the AI provider did not answer in time, retry shortly".into(),
                    retry_after_secs: 5,
                });
            }
        };
        Ok(Completion {
            text,
            tokens_used,
            processing_time: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        })
    }
}

impl Provider {
    pub fn openai(base_url: &str, model: &str, api_key: Option<&str>) -> Result<Provider, String> {
        Ok(Provider::OpenAi {
            endpoint: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            model: model.to_owned(),
            api_key: api_key.map(str::to_owned),
            http: std::sync::OnceLock::new(),
        })
    }
}

type OpenAiHttp = HttpClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

fn openai_http() -> Result<OpenAiHttp, String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no TLS roots for the OpenAI endpoint: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(HttpClient::builder(TokioExecutor::new()).build(connector))
}

fn provider_error(detail: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %detail, "AI provider failed");
    ApiError::BadGateway {
        code: "ai_provider_error",
        message: "the AI provider failed to answer".into(),
    }
}

async fn openai(
    http: &OpenAiHttp,
    endpoint: &str,
    model: &str,
    api_key: Option<&str>,
    turns: &[Turn],
) -> Result<(String, u64), ApiError> {
    let mut messages = vec![json!({"role": "system", "content": SYSTEM_PROMPT})];
    messages.extend(
        turns
            .iter()
            .map(|t| json!({"role": t.role, "content": t.text})),
    );
    let body = json!({ "model": model, "messages": messages });
    let mut request = hyper::Request::post(endpoint).header("content-type", "application/json");
    if let Some(key) = api_key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(provider_error)?;
    let response = http.request(request).await.map_err(provider_error)?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(provider_error)?
        .to_bytes();
    if !status.is_success() {
        if status.as_u16() == 429 || status.is_server_error() {
            tracing::warn!(status = status.as_u16(), "AI provider busy");
            return Err(ApiError::Unavailable {
                code: "ai_unavailable",
                message: "the AI provider is busy, retry shortly".into(),
                retry_after_secs: 5,
            });
        }
        return Err(provider_error(format!("status {status}")));
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(provider_error)?;
    let text = value["choices"][0]["message"]["content"]
        .as_str()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| provider_error("no message content in the answer"))?;
    let tokens = value["usage"]["total_tokens"].as_u64().unwrap_or(0);
    Ok((text.trim().to_owned(), tokens))
}

async fn bedrock(
    client: &aws_sdk_bedrockruntime::Client,
    model_id: &str,
    turns: &[Turn],
) -> Result<(String, u64), ApiError> {
    use aws_sdk_bedrockruntime::types::{
        ContentBlock, ConversationRole, ConverseOutput, Message, SystemContentBlock,
    };
    let mut request = client
        .converse()
        .model_id(model_id)
        .system(SystemContentBlock::Text(SYSTEM_PROMPT.into()));
    for turn in merge_turns(turns) {
        let role = if turn.role == "assistant" {
            ConversationRole::Assistant
        } else {
            ConversationRole::User
        };
        let message = Message::builder()
            .role(role)
            .content(ContentBlock::Text(turn.text))
            .build()
            .map_err(provider_error)?;
        request = request.messages(message);
    }
    let output = request.send().await.map_err(|e| {
        let throttled = e
            .as_service_error()
            .is_some_and(|s| s.is_throttling_exception() || s.is_service_unavailable_exception());
        if throttled {
            ApiError::Unavailable {
                code: "ai_unavailable",
                message: "the AI provider is busy, retry shortly".into(),
                retry_after_secs: 5,
            }
        } else {
            provider_error(aws_sdk_bedrockruntime::error::DisplayErrorContext(e))
        }
    })?;
    let text = match output.output() {
        Some(ConverseOutput::Message(message)) => message
            .content()
            .iter()
            .filter_map(|c| c.as_text().ok())
            .cloned()
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    };
    if text.trim().is_empty() {
        return Err(provider_error("no text in the Converse answer"));
    }
    let tokens = output
        .usage()
        .map(|u| u.total_tokens().max(0) as u64)
        .unwrap_or(0);
    Ok((text.trim().to_owned(), tokens))
}

/// The Converse API wants user and assistant turns to alternate and to start with
/// the user: merge neighbours of the same role and drop a leading assistant turn.
fn merge_turns(turns: &[Turn]) -> Vec<Turn> {
    let mut merged: Vec<Turn> = Vec::new();
    for turn in turns {
        match merged.last_mut() {
            Some(last) if last.role == turn.role => {
                last.text.push_str("\n\n");
                last.text.push_str(&turn.text);
            }
            None if turn.role == "assistant" => {}
            _ => merged.push(turn.clone()),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws_settings() -> chat_core::aws::AwsSettings {
        chat_core::aws::AwsSettings {
            source: chat_core::aws::AwsSource::DefaultChain,
            tls_roots: chat_core::aws::TlsRoots::Amazon,
        }
    }

    fn turn(role: &'static str, text: &str) -> Turn {
        Turn {
            role,
            text: text.into(),
        }
    }

    #[test]
    fn converse_turns_alternate_and_start_with_the_user() {
        let merged = merge_turns(&[
            turn("assistant", "hi"),
            turn("user", "a"),
            turn("user", "b"),
            turn("assistant", "c"),
        ]);
        assert_eq!(merged, vec![turn("user", "a\n\nb"), turn("assistant", "c")]);
    }

    #[test]
    fn cost_is_price_per_thousand_tokens() {
        let ai = Ai {
            price_per_1k_tokens: 0.002,
            ..Ai::off()
        };
        assert_eq!(ai.cost(1500), 0.003);
    }

    #[tokio::test]
    async fn missing_settings_fail_the_cold_start() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert!(
            Ai::from_env(&env(&[("AI_PROVIDER", "openai")]), &aws_settings())
                .await
                .unwrap_err()
                .contains("OPENAI_BASE_URL")
        );
        assert!(
            Ai::from_env(&env(&[("AI_PROVIDER", "bedrock")]), &aws_settings())
                .await
                .unwrap_err()
                .contains("BEDROCK_MODEL_ID")
        );
        assert!(
            Ai::from_env(&env(&[("AI_PROVIDER", "gpt")]), &aws_settings())
                .await
                .is_err()
        );
        assert!(matches!(
            Ai::from_env(&env(&[]), &aws_settings())
                .await
                .unwrap()
                .provider,
            Provider::Off
        ));
    }
}
