//! Webhook endpoints and their signatures, per the Standard Webhooks specification:
//! headers `webhook-id`, `webhook-timestamp`, `webhook-signature`; the signature is
//! `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")), the secret being the
//! base64 after `whsec_`. During a rotation both secrets sign (space-separated).

use crate::ApiError;
use crate::ids::RoomId;
use crate::store::EventKind;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Endpoints per tenant.
pub const MAX_WEBHOOKS: usize = 20;
/// How long a replaced secret still signs after a rotation.
pub const ROTATION_GRACE_SECS: i64 = 24 * 3600;
/// A receiver accepts a timestamp this far from its clock (the libraries' default).
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;
pub use crate::egress::{check_url, is_public};
pub const MAX_DESCRIPTION_CHARS: usize = 500;
const SECRET_PREFIX: &str = "whsec_";

/// A new random secret: 32 bytes, `whsec_` + base64.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn key_of(secret: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .ok()
}

/// One `v1,` signature of a message with one secret.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key_of(secret)?).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    Some(format!("v1,{signature}"))
}

/// The `webhook-signature` header: one signature per active secret.
pub fn signature_header(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|secret| sign(secret, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a receiver checks (for the docs' snippet and our tests): a timestamp within
/// the tolerance and one `v1` signature that matches, compared in constant time.
pub fn verify(secret: &str, id: &str, timestamp: i64, now: i64, body: &[u8], header: &str) -> bool {
    if (now - timestamp).abs() > TIMESTAMP_TOLERANCE_SECS {
        return false;
    }
    let Some(expected) = sign(secret, id, timestamp, body) else {
        return false;
    };
    header.split(' ').any(|candidate| {
        candidate.len() == expected.len()
            && candidate
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

/// How deliveries are attempted and retried (`WEBHOOK_*` in the environment).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliverySettings {
    /// Seconds to wait after the 1st, 2nd, … failed attempt of one round; when they
    /// are used up the delivery has failed.
    pub schedule_secs: Vec<i64>,
    /// One attempt's whole time (connect, send, answer): at most 10 s.
    pub attempt_timeout_secs: u64,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub disable_after_secs: i64,
}

/// Immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: the last attempt
/// comes about 27.6 hours after the event, so a day's outage loses nothing.
pub const DEFAULT_SCHEDULE_SECS: [i64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];
pub const MAX_ATTEMPT_TIMEOUT_SECS: u64 = 10;
/// Five days of nothing but failures disables an endpoint.
pub const DEFAULT_DISABLE_AFTER_SECS: i64 = 5 * 24 * 3600;
/// A `Retry-After` further out than this is capped (a receiver cannot park a
/// delivery past its retention).
pub const MAX_RETRY_AFTER_SECS: i64 = 12 * 3600;

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            schedule_secs: DEFAULT_SCHEDULE_SECS.to_vec(),
            attempt_timeout_secs: MAX_ATTEMPT_TIMEOUT_SECS,
            disable_after_secs: DEFAULT_DISABLE_AFTER_SECS,
        }
    }
}

impl DeliverySettings {
    /// From `WEBHOOK_RETRY_SCHEDULE` (seconds, comma-separated),
    /// `WEBHOOK_ATTEMPT_TIMEOUT_SECONDS` (1–10) and `WEBHOOK_DISABLE_AFTER_SECONDS`;
    /// each problem is named.
    pub fn from_values(
        schedule: Option<&str>,
        timeout: Option<&str>,
        disable_after: Option<&str>,
    ) -> Result<Self, Vec<String>> {
        let mut settings = DeliverySettings::default();
        let mut problems = Vec::new();
        if let Some(raw) = schedule {
            match raw
                .split(',')
                .map(|p| p.trim().parse::<i64>().ok().filter(|s| *s > 0))
                .collect::<Option<Vec<_>>>()
            {
                Some(list) if !list.is_empty() => settings.schedule_secs = list,
                _ => problems.push(format!(
                    "WEBHOOK_RETRY_SCHEDULE {raw:?} is not a list of positive seconds"
                )),
            }
        }
        if let Some(raw) = timeout {
            match raw.parse::<u64>() {
                Ok(secs) if (1..=MAX_ATTEMPT_TIMEOUT_SECS).contains(&secs) => {
                    settings.attempt_timeout_secs = secs
                }
                _ => problems.push(format!(
                    "WEBHOOK_ATTEMPT_TIMEOUT_SECONDS {raw:?} is not 1 to {MAX_ATTEMPT_TIMEOUT_SECS}"
                )),
            }
        }
        if let Some(raw) = disable_after {
            match raw.parse::<i64>() {
                Ok(secs) if secs > 0 => settings.disable_after_secs = secs,
                _ => problems.push(format!(
                    "WEBHOOK_DISABLE_AFTER_SECONDS {raw:?} is not a positive number"
                )),
            }
        }
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(problems)
        }
    }

    /// Seconds until the next attempt after the `round`th failed one (1-based) of the
    /// current round, or None when the schedule is used up. The scheduled wait gets
    /// ±20 % jitter (`jitter` in [0, 1)) so that endpoints recovering together are not
    /// hit together; a receiver's `Retry-After` is honoured as the least wait.
    pub fn wait_after(&self, round: u32, retry_after: Option<i64>, jitter: f64) -> Option<i64> {
        let scheduled = *self.schedule_secs.get(round.checked_sub(1)? as usize)?;
        let jittered = (scheduled as f64 * (0.8 + 0.4 * jitter)).round() as i64;
        let asked = retry_after.unwrap_or(0).clamp(0, MAX_RETRY_AFTER_SECS);
        Some(jittered.max(asked).max(1))
    }
}

/// What one attempt came to, from the receiver's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    /// A 2xx.
    Delivered { status: u16 },
    /// 410 Gone: the receiver says the endpoint is no more; it is disabled.
    Gone,
    /// Anything else: no answer, a timeout, a refused address, a redirect (never
    /// followed), another status.
    Failed {
        status: Option<u16>,
        error: String,
        retry_after: Option<i64>,
    },
}

impl AttemptOutcome {
    /// The outcome of an answer with `status` and, for 429 and 503, its `Retry-After`
    /// (seconds, or an HTTP date) as of `now` (unix seconds).
    pub fn of_answer(status: u16, retry_after: Option<&str>, now: i64) -> AttemptOutcome {
        match status {
            200..=299 => AttemptOutcome::Delivered { status },
            410 => AttemptOutcome::Gone,
            300..=399 => AttemptOutcome::Failed {
                status: Some(status),
                error: "redirects are not followed".into(),
                retry_after: None,
            },
            _ => AttemptOutcome::Failed {
                status: Some(status),
                error: format!("answered {status}"),
                retry_after: matches!(status, 429 | 503)
                    .then(|| retry_after.and_then(|v| retry_after_secs(v, now)))
                    .flatten(),
            },
        }
    }
}

/// A `Retry-After` value as seconds from `now`: delta-seconds or an HTTP date.
pub fn retry_after_secs(value: &str, now: i64) -> Option<i64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<i64>() {
        return (secs >= 0).then_some(secs);
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, format).ok()?;
    Some((at.assume_utc().unix_timestamp() - now).max(0))
}

/// POST /webhooks/{webhook_id}/replay: exactly one of `room_id` (with `after_seq`,
/// default 0), `since` (RFC 3339) or `after` (a `next_after` of `GET /events` or of an
/// earlier replay).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    pub room_id: Option<String>,
    pub after_seq: Option<u64>,
    pub since: Option<String>,
    pub after: Option<String>,
}

/// Where a replay starts.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayFrom {
    Room { room: RoomId, after_seq: u64 },
    Since(time::OffsetDateTime),
    After(String),
}

impl TryFrom<ReplayBody> for ReplayFrom {
    type Error = ApiError;

    fn try_from(body: ReplayBody) -> Result<Self, ApiError> {
        let one_of = "exactly one of room_id (with after_seq), since or after";
        let from = match (body.room_id, body.since, body.after) {
            (Some(room), None, None) => ReplayFrom::Room {
                room: RoomId::parse(&room)
                    .map_err(|_| ApiError::invalid("room_id", "not a room id"))?,
                after_seq: body.after_seq.unwrap_or(0),
            },
            (None, Some(since), None) => {
                let at = crate::time::parse(&since)
                    .ok_or_else(|| ApiError::invalid("since", "an RFC 3339 time"))?;
                if at > crate::time::now() {
                    return Err(ApiError::invalid("since", "in the future"));
                }
                ReplayFrom::Since(at)
            }
            (None, None, Some(after)) => ReplayFrom::After(after),
            _ => return Err(ApiError::invalid("body", one_of)),
        };
        if body.after_seq.is_some() && !matches!(from, ReplayFrom::Room { .. }) {
            return Err(ApiError::invalid("after_seq", "only with room_id"));
        }
        Ok(from)
    }
}

impl ReplayFrom {
    /// The body that continues a replay from here.
    pub fn json(&self) -> serde_json::Value {
        match self {
            ReplayFrom::Room { room, after_seq } => {
                serde_json::json!({ "room_id": room, "after_seq": after_seq })
            }
            ReplayFrom::Since(at) => serde_json::json!({ "since": crate::time::format(*at) }),
            ReplayFrom::After(after) => serde_json::json!({ "after": after }),
        }
    }
}

/// POST /webhooks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookBody {
    pub url: String,
    pub event_types: Vec<String>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

/// PATCH /webhooks/{webhook_id}.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChangesBody {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

/// A checked endpoint definition.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDraft {
    pub url: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub description: Option<String>,
}

/// Checked changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

fn check_event_types(types: &[String]) -> Result<Vec<String>, ApiError> {
    if types.is_empty() {
        return Err(ApiError::invalid("event_types", "at least one event type"));
    }
    let mut out = Vec::new();
    for t in types {
        if EventKind::parse(t).is_none() {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(ApiError::invalid(
                "event_types",
                format!("{t:?} is not one of {}", known.join(", ")),
            ));
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

fn check_description(d: Option<String>) -> Result<Option<String>, ApiError> {
    match d.map(|d| d.trim().to_owned()) {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_CHARS => Err(ApiError::invalid(
            "description",
            format!("at most {MAX_DESCRIPTION_CHARS} characters"),
        )),
        other => Ok(other.filter(|d| !d.is_empty())),
    }
}

impl WebhookDraft {
    pub fn from_body(body: NewWebhookBody, allow_loopback: bool) -> Result<Self, ApiError> {
        Ok(WebhookDraft {
            url: check_url(&body.url, allow_loopback)?,
            event_types: check_event_types(&body.event_types)?,
            enabled: body.enabled.unwrap_or(true),
            description: check_description(body.description)?,
        })
    }
}

impl WebhookChanges {
    pub fn from_body(body: WebhookChangesBody, allow_loopback: bool) -> Result<Self, ApiError> {
        let changes = WebhookChanges {
            url: body
                .url
                .map(|u| check_url(&u, allow_loopback))
                .transpose()?,
            event_types: body
                .event_types
                .map(|t| check_event_types(&t))
                .transpose()?,
            enabled: body.enabled,
            description: check_description(body.description)?,
        };
        if changes == WebhookChanges::default() {
            return Err(ApiError::invalid("body", "nothing to change"));
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_specifications_published_examples() {
        // The standard-webhooks repository's library tests (Python/JavaScript, Rust).
        assert_eq!(
            sign(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            )
            .unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(
            sign(
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            )
            .unwrap(),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn a_receiver_accepts_any_active_secret_in_time_and_nothing_else() {
        let (old, new) = (new_secret(), new_secret());
        assert!(old.starts_with("whsec_") && key_of(&old).unwrap().len() == 32);
        let body = b"{}";
        let header = signature_header(&[new.as_str(), old.as_str()], "msg_1", 1000, body);
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&old, "msg_1", 1000, 1100, body, &header));
        assert!(verify(&new, "msg_1", 1000, 1100, body, &header));
        assert!(
            !verify(&new, "msg_1", 1000, 1000 + 301, body, &header),
            "too late"
        );
        assert!(
            !verify(&new, "msg_2", 1000, 1000, body, &header),
            "another id"
        );
        assert!(
            !verify(&new, "msg_1", 1000, 1000, b"{ }", &header),
            "another body"
        );
        assert!(!verify(&new_secret(), "msg_1", 1000, 1000, body, &header));
        let tampered = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
        assert!(!verify(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            1614265330,
            br#"{"test": 2432232314}"#,
            tampered
        ));
    }

    #[test]
    fn the_schedule_spans_more_than_a_day_and_honours_retry_after() {
        let settings = DeliverySettings::default();
        let total: i64 = settings.schedule_secs.iter().sum();
        assert!(total > 24 * 3600, "{total}");
        assert_eq!(settings.wait_after(1, None, 0.5), Some(5));
        assert_eq!(settings.wait_after(2, None, 0.0), Some(240), "-20 %");
        assert_eq!(settings.wait_after(2, None, 0.999), Some(360), "+20 %");
        assert_eq!(
            settings.wait_after(1, Some(120), 0.5),
            Some(120),
            "never sooner than asked"
        );
        assert_eq!(
            settings.wait_after(3, Some(60), 0.5),
            Some(1800),
            "the schedule's wait if longer"
        );
        assert_eq!(
            settings.wait_after(1, Some(10 * 86400), 0.5),
            Some(MAX_RETRY_AFTER_SECS)
        );
        assert_eq!(settings.wait_after(8, None, 0.5), None, "used up");
        assert_eq!(settings.wait_after(0, None, 0.5), None);
    }

    #[test]
    fn a_replay_starts_at_exactly_one_place() {
        let body = |v: serde_json::Value| {
            ReplayFrom::try_from(serde_json::from_value::<ReplayBody>(v).unwrap())
        };
        let room = "01HZX3K7Q8R9S0T1V2W3X4Y5Z6";
        assert!(matches!(
            body(serde_json::json!({"room_id": room})),
            Ok(ReplayFrom::Room { after_seq: 0, .. })
        ));
        assert!(matches!(
            body(serde_json::json!({"since": "2026-11-30T10:00:00Z"})),
            Ok(ReplayFrom::Since(_))
        ));
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"room_id": room, "since": "2026-11-30T10:00:00Z"}),
            serde_json::json!({"room_id": "nope"}),
            serde_json::json!({"since": "yesterday"}),
            serde_json::json!({"since": "2999-01-01T00:00:00Z"}),
            serde_json::json!({"after": "x", "after_seq": 3}),
        ] {
            assert!(body(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_come_from_the_environment_or_name_the_problem() {
        let custom = DeliverySettings::from_values(Some("1, 2,3"), Some("2"), Some("60")).unwrap();
        assert_eq!(
            (
                custom.schedule_secs,
                custom.attempt_timeout_secs,
                custom.disable_after_secs
            ),
            (vec![1, 2, 3], 2, 60)
        );
        let problems =
            DeliverySettings::from_values(Some("1,x"), Some("11"), Some("0")).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn answers_become_outcomes() {
        assert_eq!(
            AttemptOutcome::of_answer(204, None, 0),
            AttemptOutcome::Delivered { status: 204 }
        );
        assert_eq!(
            AttemptOutcome::of_answer(410, None, 0),
            AttemptOutcome::Gone
        );
        let failed = |status, retry_after| AttemptOutcome::of_answer(status, retry_after, 1_000);
        assert!(matches!(
            failed(301, Some("1")),
            AttemptOutcome::Failed {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            failed(429, Some("7")),
            AttemptOutcome::Failed {
                retry_after: Some(7),
                ..
            }
        ));
        assert!(matches!(
            failed(500, Some("7")),
            AttemptOutcome::Failed {
                retry_after: None,
                ..
            }
        ));
        assert_eq!(
            retry_after_secs("Thu, 01 Jan 1970 00:16:40 GMT", 900),
            Some(100)
        );
        assert_eq!(retry_after_secs("soon", 0), None);
    }
}
