//! PUT /admin/settings/retention: how long the tenant keeps messages, files and
//! closed conversations.

use crate::error::{ApiError, ApiResult};
use crate::store::{MAX_RETENTION_DAYS, RetentionPolicy};
use serde::Deserialize;
use serde_json::Value;

/// The whole policy: a field left out or null keeps that data forever. Values are
/// read as JSON so that a string, a fraction or a negative number is refused by name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutRetention {
    #[serde(default)]
    pub messages_days: Value,
    #[serde(default)]
    pub files_days: Value,
    #[serde(default)]
    pub closed_conversations_days: Value,
}

fn days(field: &str, raw: &Value) -> ApiResult<Option<u32>> {
    match raw {
        Value::Null => Ok(None),
        Value::Number(number) => number
            .as_u64()
            .filter(|d| (1..=u64::from(MAX_RETENTION_DAYS)).contains(d))
            .map(|d| Some(d as u32))
            .ok_or_else(|| refused(field)),
        _ => Err(refused(field)),
    }
}

fn refused(field: &str) -> ApiError {
    ApiError::invalid(
        field,
        format!(
            "must be a whole number of days from 1 to {MAX_RETENTION_DAYS}, or null to keep forever"
        ),
    )
}

impl TryFrom<PutRetention> for RetentionPolicy {
    type Error = ApiError;

    fn try_from(body: PutRetention) -> ApiResult<RetentionPolicy> {
        Ok(RetentionPolicy {
            messages_days: days("messages_days", &body.messages_days)?,
            files_days: days("files_days", &body.files_days)?,
            closed_conversations_days: days(
                "closed_conversations_days",
                &body.closed_conversations_days,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(body: &str) -> ApiResult<RetentionPolicy> {
        RetentionPolicy::try_from(crate::request::parse_json::<PutRetention>(body.as_bytes())?)
    }

    #[test]
    fn whole_days_in_range_or_null_and_nothing_else() {
        assert_eq!(policy("{}").unwrap(), RetentionPolicy::default());
        assert_eq!(
            policy(r#"{"messages_days":30,"files_days":null,"closed_conversations_days":3650}"#)
                .unwrap(),
            RetentionPolicy {
                messages_days: Some(30),
                files_days: None,
                closed_conversations_days: Some(3650),
            }
        );
        for (body, field) in [
            (r#"{"messages_days":0}"#, "messages_days"),
            (r#"{"messages_days":-1}"#, "messages_days"),
            (r#"{"files_days":1.5}"#, "files_days"),
            (r#"{"files_days":30.0}"#, "files_days"),
            (r#"{"files_days":"30"}"#, "files_days"),
            (
                r#"{"closed_conversations_days":3651}"#,
                "closed_conversations_days",
            ),
            (
                r#"{"closed_conversations_days":true}"#,
                "closed_conversations_days",
            ),
            (
                r#"{"closed_conversations_days":[30]}"#,
                "closed_conversations_days",
            ),
            (r#"{"messages_days":18446744073709551616}"#, "messages_days"),
        ] {
            match policy(body) {
                Err(ApiError::InvalidField { field: f, .. }) => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        // A misspelt field is refused, not read as "keep forever".
        assert!(matches!(
            policy(r#"{"message_days":30}"#),
            Err(ApiError::UnknownField(_))
        ));
    }
}
