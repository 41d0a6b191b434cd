//! Faults DynamoDB Local never produces (throttled and conflicting writes, a write
//! that never answers), injected at the SDK's own HTTP client seam: the store's
//! client keeps talking to the real DynamoDB Local, and while a fault is armed every
//! write request (TransactWriteItems, PutItem, UpdateItem, DeleteItem,
//! BatchWriteItem) gets the fault instead of reaching it. Reads always pass.

use aws_sdk_dynamodb::config::{HttpClient, SharedHttpClient};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What an armed write meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A transaction cancelled by `ThrottlingError`; a single write's
    /// `ProvisionedThroughputExceededException`.
    Throttled,
    /// A transaction cancelled by `TransactionConflict`; a single write's
    /// `TransactionConflictException`.
    Conflict,
    /// No answer at all: the SDK's attempt and operation timeouts end the call.
    Timeout,
}

impl Fault {
    pub const ALL: [Fault; 3] = [Fault::Throttled, Fault::Conflict, Fault::Timeout];
}

/// The switch of a faulty client, shared with the test.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    armed: Arc<Mutex<Option<Fault>>>,
    injected: Arc<AtomicUsize>,
}

impl Faults {
    pub fn arm(&self, fault: Fault) {
        *self.armed.lock().expect("faults") = Some(fault);
    }

    pub fn disarm(&self) {
        *self.armed.lock().expect("faults") = None;
    }

    /// Write requests that met a fault so far.
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }

    /// An HTTP client that sends through `inner` unless a fault is armed for the
    /// request.
    pub fn client(&self, inner: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(FaultyClient {
            inner,
            faults: self.clone(),
        })
    }

    fn armed(&self) -> Option<Fault> {
        *self.armed.lock().expect("faults")
    }
}

#[derive(Debug)]
struct FaultyClient {
    inner: SharedHttpClient,
    faults: Faults,
}

impl HttpClient for FaultyClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(FaultyConnector {
            inner: self.inner.http_connector(settings, components),
            faults: self.faults.clone(),
        })
    }
}

#[derive(Debug)]
struct FaultyConnector {
    inner: SharedHttpConnector,
    faults: Faults,
}

const WRITES: [&str; 5] = [
    "TransactWriteItems",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
];

impl HttpConnector for FaultyConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or_default()
            .to_owned();
        let fault = self
            .faults
            .armed()
            .filter(|_| WRITES.contains(&operation.as_str()));
        let Some(fault) = fault else {
            return self.inner.call(request);
        };
        self.faults.injected.fetch_add(1, Ordering::SeqCst);
        if fault == Fault::Timeout {
            return HttpConnectorFuture::new(async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                unreachable!("the SDK's timeouts end the call first")
            });
        }
        let items = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .and_then(|body| body["TransactItems"].as_array().map(Vec::len))
            .unwrap_or(1);
        let body = error_body(&operation, fault, items);
        let mut response = HttpResponse::new(
            StatusCode::try_from(400u16).expect("status"),
            SdkBody::from(body.to_string()),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        HttpConnectorFuture::ready(Ok(response))
    }
}

/// DynamoDB's error document for `fault` on `operation` (a transaction of `items`).
fn error_body(operation: &str, fault: Fault, items: usize) -> Value {
    const PREFIX: &str = "com.amazonaws.dynamodb.v20120810#";
    if operation == "TransactWriteItems" {
        let code = match fault {
            Fault::Throttled => "ThrottlingError",
            _ => "TransactionConflict",
        };
        let mut reasons = vec![json!({"Code": code, "Message": "injected"})];
        reasons.extend((1..items).map(|_| json!({"Code": "None"})));
        return json!({
            "__type": format!("{PREFIX}TransactionCanceledException"),
            "Message": format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{code}]"),
            "CancellationReasons": reasons,
        });
    }
    let kind = match fault {
        Fault::Throttled => "ProvisionedThroughputExceededException",
        _ => "TransactionConflictException",
    };
    json!({"__type": format!("{PREFIX}{kind}"), "message": "injected"})
}
