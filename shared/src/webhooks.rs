//! Webhook endpoints and their signatures, per the Standard Webhooks specification:
//! headers `webhook-id`, `webhook-timestamp`, `webhook-signature`; the signature is
//! `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")), the secret being the
//! base64 after `whsec_`. During a rotation both secrets sign (space-separated).

use crate::ApiError;
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
pub const MAX_URL_CHARS: usize = 2048;
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

/// Where deliveries may go: `https://` to a public host; with `allow_loopback` (the
/// local stack's own tests only, by configuration) also `http://127.0.0.1`. Literal
/// addresses in private, loopback, link-local (cloud metadata) and other reserved
/// ranges are refused here; host names are checked again after resolution, at
/// delivery.
pub fn check_url(raw: &str, allow_loopback: bool) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::invalid("url", why.to_owned());
    let url = raw.trim();
    if url.chars().count() > MAX_URL_CHARS || url.chars().any(char::is_whitespace) {
        return Err(bad("an https URL of at most 2048 characters"));
    }
    let (rest, local) = if let Some(rest) = url.strip_prefix("https://") {
        (rest, false)
    } else if let Some(rest) = url
        .strip_prefix("http://127.0.0.1:")
        .filter(|_| allow_loopback)
    {
        (rest, true)
    } else {
        return Err(bad("must start with https://"));
    };
    if local {
        return Ok(url.to_owned());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(bad("no credentials in the URL"));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.is_empty() || host.eq_ignore_ascii_case("localhost") || host.ends_with(".localhost") {
        return Err(bad("must name a public host"));
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>()
        && !is_public(ip)
    {
        return Err(bad(
            "loopback, private, link-local and metadata addresses are refused",
        ));
    }
    Ok(url.to_owned())
}

/// Whether an address is one deliveries may reach.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240)
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| !is_public(v4.into()))
                || (s[0] == 0x64 && s[1] == 0xff9b))
        }
    }
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
    fn only_https_to_public_hosts_is_accepted() {
        for ok in [
            "https://crm.example.com/hooks",
            "https://93.184.216.34:8443/x",
        ] {
            assert!(check_url(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://crm.example.com/hooks",
            "https://localhost/x",
            "https://127.0.0.1/x",
            "https://10.0.0.8/x",
            "https://192.168.1.1/x",
            "https://172.16.0.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            "https://[::ffff:10.0.0.1]/x",
            "https://user:pw@example.com/x",
            "https://exa mple.com",
            "ftp://example.com",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9999/hook", false).is_err());
        assert!(
            check_url("http://127.0.0.1:9999/hook", true).is_ok(),
            "the local stack's own tests"
        );
    }
}
