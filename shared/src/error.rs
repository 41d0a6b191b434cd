//! One error type for every route: each variant has exactly one status and code.
//! Internal causes are logged where they happen and never reach the client.

use lambda_http::http::StatusCode;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Body or query string cannot be parsed at all.
    #[error("{0}")]
    Malformed(String),
    /// A cursor that is not one of ours, or not for this listing.
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    /// Also used for resources of other tenants and rooms the caller may not see.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("route not found")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// Unknown JSON field: rejected rather than silently stored.
    #[error("unknown field `{0}`")]
    UnknownField(String),
    #[error("invalid value for `{field}`: {reason}")]
    InvalidField { field: String, reason: String },
    #[error("too many requests")]
    Throttled { retry_after_secs: u32 },
    #[error("not implemented yet")]
    NotImplemented,
    #[error("{message}")]
    Unavailable {
        code: &'static str,
        message: String,
        retry_after_secs: u32,
    },
    #[error("{message}")]
    BadGateway { code: &'static str, message: String },
    /// What the request names is no longer kept (e.g. a feed position past retention).
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    /// The cause was logged by whoever raised this; the client sees a fixed text.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Logs an internal failure with its context and returns the opaque 500.
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> Self {
        tracing::error!(context, error = %cause, "internal error");
        ApiError::Internal
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Malformed(_) | ApiError::InvalidCursor => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnknownField(_) | ApiError::InvalidField { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Malformed(_) => "malformed_request",
            ApiError::InvalidCursor => "invalid_cursor",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) | ApiError::RouteNotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict { code, .. } => code,
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnknownField(_) => "unknown_field",
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::Throttled { .. } => "throttled",
            ApiError::NotImplemented => "not_implemented",
            ApiError::Unavailable { code, .. } => code,
            ApiError::BadGateway { code, .. } => code,
            ApiError::Gone { code, .. } => code,
            ApiError::Internal => "internal_error",
        }
    }

    pub fn details(&self) -> Value {
        match self {
            ApiError::UnknownField(field) => serde_json::json!({ "field": field }),
            ApiError::InvalidField { field, reason } => {
                serde_json::json!({ "field": field, "reason": reason })
            }
            ApiError::PayloadTooLarge { limit } => serde_json::json!({ "limit_bytes": limit }),
            _ => Value::Null,
        }
    }

    pub fn retry_after_secs(&self) -> Option<u32> {
        match self {
            ApiError::Throttled { retry_after_secs }
            | ApiError::Unavailable {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_status_and_code() {
        let cases = [
            (ApiError::Malformed("x".into()), 400, "malformed_request"),
            (ApiError::InvalidCursor, 400, "invalid_cursor"),
            (
                ApiError::Unauthenticated("x".into()),
                401,
                "unauthenticated",
            ),
            (ApiError::Forbidden("x".into()), 403, "forbidden"),
            (ApiError::NotFound("room"), 404, "not_found"),
            (
                ApiError::PayloadTooLarge { limit: 1 },
                413,
                "payload_too_large",
            ),
            (ApiError::UnknownField("x".into()), 422, "unknown_field"),
            (ApiError::invalid("a", "b"), 422, "invalid_field"),
            (
                ApiError::Throttled {
                    retry_after_secs: 1,
                },
                429,
                "throttled",
            ),
            (ApiError::Internal, 500, "internal_error"),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            assert_eq!(err.code(), code, "{err:?}");
        }
    }

    #[test]
    fn internal_error_hides_its_cause() {
        let err = ApiError::internal("test", "secret table name arn:aws:dynamodb:...");
        assert_eq!(err.to_string(), "internal error");
        assert_eq!(err.details(), Value::Null);
    }
}
