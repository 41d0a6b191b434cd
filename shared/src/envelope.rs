//! The JSON envelope every route answers with.

use crate::error::ApiError;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;
use serde_json::json;

/// A successful answer: status (200/201), a human message and the data.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub message: String,
    /// The data, serialized once (no intermediate JSON tree).
    pub data: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn ok(message: impl Into<String>, data: impl Serialize) -> Self {
        Self::with_status(StatusCode::OK, message, data)
    }

    pub fn created(message: impl Into<String>, data: impl Serialize) -> Self {
        Self::with_status(StatusCode::CREATED, message, data)
    }

    pub fn with_status(
        status: StatusCode,
        message: impl Into<String>,
        data: impl Serialize,
    ) -> Self {
        Reply {
            status,
            message: message.into(),
            // Serializing our own response types cannot fail (no maps with non-string keys).
            data: serde_json::to_string(&data).unwrap_or_else(|_| "null".into()),
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn into_response(self) -> Response<Body> {
        let message = serde_json::to_string(&self.message).expect("a string serializes");
        let body = format!(
            "{{\"success\":true,\"message\":{message},\"data\":{}}}",
            self.data
        );
        let mut response = text_response(self.status, body);
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

pub fn error_response(err: &ApiError) -> Response<Body> {
    let body = json!({
        "success": false,
        "message": err.to_string(),
        "error": { "code": err.code(), "details": err.details() },
    });
    let mut response = json_response(err.status(), &body);
    if let Some(secs) = err.retry_after_secs() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    text_response(status, body.to_string())
}

fn text_response(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_json(response: &Response<Body>) -> serde_json::Value {
        match response.body() {
            Body::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[test]
    fn success_envelope() {
        let response =
            Reply::created("Conversation created", json!({"conversation_id": "x"})).into_response();
        assert_eq!(response.status(), 201);
        let body = body_json(&response);
        assert_eq!(body["success"], true);
        assert_eq!(body["data"]["conversation_id"], "x");
    }

    #[test]
    fn failure_envelope_with_retry_after() {
        let err = ApiError::Unavailable {
            code: "ai_unavailable",
            message: "AI replies are turned off".into(),
            retry_after_secs: 30,
        };
        let response = error_response(&err);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "30");
        let body = body_json(&response);
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["code"], "ai_unavailable");
    }
}
