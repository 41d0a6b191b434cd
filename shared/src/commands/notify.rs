//! Request bodies of the notification routes, turned into validated values:
//! `PUT /me/notification-settings`, `PUT /rooms/{id}/notifications`,
//! `POST /me/push-subscriptions`.

use crate::error::{ApiError, ApiResult};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Longest a room may be muted for at once (a year): "forever" is a year, renewed.
pub const MAX_MUTE_DAYS: i64 = 366;
/// How often an away person's emails are gathered into one, in minutes.
pub const DEFAULT_EMAIL_DIGEST_MINUTES: u32 = 15;
pub const MAX_EMAIL_DIGEST_MINUTES: u32 = 24 * 60;
/// Push subscriptions one user keeps at most (browsers and devices).
pub const MAX_PUSH_SUBSCRIPTIONS: i64 = 10;

/// Which channels reach the person when they are away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channels {
    pub push: bool,
    pub email: bool,
    pub mobile: bool,
}

impl Default for Channels {
    fn default() -> Channels {
        Channels {
            push: true,
            email: true,
            mobile: true,
        }
    }
}

/// Hours in which nothing is sent, in the person's own time zone: `start` to `end`,
/// across midnight when `end` is earlier ("22:00" to "07:00").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    pub start: String,
    pub end: String,
    pub time_zone: String,
}

/// A person's notification settings: the body of `PUT /me/notification-settings` and
/// what `GET` answers (the defaults until they change them: every channel on, no quiet
/// hours, emails gathered every 15 minutes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettings {
    #[serde(default)]
    pub channels: Channels,
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    #[serde(default = "default_digest")]
    pub email_digest_minutes: u32,
}

fn default_digest() -> u32 {
    DEFAULT_EMAIL_DIGEST_MINUTES
}

impl Default for NotificationSettings {
    fn default() -> NotificationSettings {
        NotificationSettings {
            channels: Channels::default(),
            quiet_hours: None,
            email_digest_minutes: DEFAULT_EMAIL_DIGEST_MINUTES,
        }
    }
}

/// Minutes after midnight of an "HH:MM" time (00:00 to 23:59).
fn minutes_of(field: &str, text: &str) -> ApiResult<u32> {
    let bad = || ApiError::invalid(field, "a time of day as HH:MM (00:00 to 23:59)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl QuietHours {
    /// Whether `unix` (seconds) falls in these hours, in their time zone.
    pub fn contains(&self, unix: i64) -> bool {
        let (Ok(start), Ok(end)) = (
            minutes_of("start", &self.start),
            minutes_of("end", &self.end),
        ) else {
            return false;
        };
        let Ok(zone) = jiff::tz::TimeZone::get(&self.time_zone) else {
            return false;
        };
        let Ok(at) = jiff::Timestamp::from_second(unix) else {
            return false;
        };
        let local = at.to_zoned(zone);
        let now = local.hour() as u32 * 60 + local.minute() as u32;
        match start <= end {
            true => start <= now && now < end,
            // Across midnight.
            false => now >= start || now < end,
        }
    }
}

impl NotificationSettings {
    /// The settings, checked: times of day, a time zone of the IANA database, a digest
    /// window of 1 minute to a day.
    pub fn validated(self) -> ApiResult<NotificationSettings> {
        if let Some(quiet) = &self.quiet_hours {
            let start = minutes_of("quiet_hours.start", &quiet.start)?;
            let end = minutes_of("quiet_hours.end", &quiet.end)?;
            if start == end {
                return Err(ApiError::invalid(
                    "quiet_hours",
                    "start and end must differ (no quiet hours: null)",
                ));
            }
            let zone = &quiet.time_zone;
            let known = zone.len() <= 64
                && zone.bytes().all(|b| b.is_ascii_graphic())
                && jiff::tz::TimeZone::get(zone).is_ok();
            if !known {
                return Err(ApiError::invalid(
                    "quiet_hours.time_zone",
                    "a time zone of the IANA database, such as Europe/Berlin",
                ));
            }
        }
        if !(1..=MAX_EMAIL_DIGEST_MINUTES).contains(&self.email_digest_minutes) {
            return Err(ApiError::invalid(
                "email_digest_minutes",
                format!("from 1 to {MAX_EMAIL_DIGEST_MINUTES}"),
            ));
        }
        Ok(self)
    }
}

/// `PUT /rooms/{id}/notifications`: mute the room for the caller until a time, or
/// unmute it (`null`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutRoomNotifications {
    pub muted_until: Option<String>,
}

/// Until when a room is muted, checked: an RFC 3339 time in the future, at most
/// [`MAX_MUTE_DAYS`] away; none unmutes.
pub fn muted_until(
    body: PutRoomNotifications,
    now: time::OffsetDateTime,
) -> ApiResult<Option<String>> {
    let Some(text) = body.muted_until else {
        return Ok(None);
    };
    let bad = |why: &str| ApiError::invalid("muted_until", why.to_owned());
    let at = time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad("an RFC 3339 time, such as 2026-12-24T18:00:00Z"))?;
    if at <= now {
        return Err(bad("must be in the future (unmute: null)"));
    }
    if at > now + time::Duration::days(MAX_MUTE_DAYS) {
        return Err(bad("at most a year ahead"));
    }
    Ok(Some(crate::time::format(
        at.to_offset(time::UtcOffset::UTC),
    )))
}

/// `POST /me/push-subscriptions`: the browser's `PushSubscription.toJSON()`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewPushSubscription {
    pub endpoint: String,
    #[serde(default)]
    pub expiration_time: Option<serde_json::Value>,
    pub keys: PushKeys,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushKeys {
    pub p256dh: String,
    pub auth: String,
}

/// A browser's push subscription, checked: a push service's https endpoint and the
/// browser's keys (an uncompressed P-256 point and a 16-byte secret, base64url).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

/// Push services' hosts the deployed stack sends to (the browsers' own services):
/// a subscription naming any other host is refused, so the endpoint cannot make the
/// service call somewhere of the caller's choosing.
pub const PUSH_SERVICE_HOSTS: [&str; 5] = [
    "fcm.googleapis.com",
    "updates.push.services.mozilla.com",
    "notify.windows.com",
    "push.apple.com",
    "push.services.mozilla.com",
];

impl PushTarget {
    /// With `allow_loopback` (the local stack), a push service on 127.0.0.1 is taken
    /// too; otherwise the endpoint must be one of [`PUSH_SERVICE_HOSTS`] (or below one).
    pub fn from_body(body: NewPushSubscription, allow_loopback: bool) -> ApiResult<PushTarget> {
        let endpoint = crate::egress::check_url(&body.endpoint, allow_loopback)
            .map_err(|_| ApiError::invalid("endpoint", "a push service's https URL"))?;
        let host = url::Url::parse(&endpoint)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        let local = allow_loopback && host == "127.0.0.1";
        let known = PUSH_SERVICE_HOSTS
            .iter()
            .any(|h| host == *h || host.ends_with(&format!(".{h}")));
        if !local && !known {
            return Err(ApiError::invalid(
                "endpoint",
                "must be a browser push service's URL",
            ));
        }
        let decode = |field: &str, text: &str, len: usize| -> ApiResult<String> {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| ApiError::invalid(field, "base64url"))?;
            if bytes.len() != len || (len == 65 && bytes[0] != 4) {
                return Err(ApiError::invalid(
                    field,
                    match len {
                        65 => "an uncompressed P-256 public key (65 bytes)",
                        _ => "a 16-byte secret",
                    },
                ));
            }
            Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
        };
        Ok(PushTarget {
            p256dh: decode("keys.p256dh", &body.keys.p256dh, 65)?,
            auth: decode("keys.auth", &body.keys.auth, 16)?,
            endpoint,
        })
    }

    /// The subscription's id: a digest of its endpoint, so registering the same
    /// browser again names the same subscription.
    pub fn id(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.endpoint.as_bytes());
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Phones' app installs one user keeps at most.
pub const MAX_DEVICES: i64 = 10;
/// The longest device token taken (FCM's are about 160 characters today).
pub const MAX_DEVICE_TOKEN_CHARS: usize = 4096;

/// A phone's operating system: which push service reaches its app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Apple Push Notification service.
    Ios,
    /// Firebase Cloud Messaging.
    Android,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Android => "android",
        }
    }

    pub fn parse(text: &str) -> Option<Platform> {
        match text {
            "ios" => Some(Platform::Ios),
            "android" => Some(Platform::Android),
            _ => None,
        }
    }
}

/// `POST /me/devices`: the app's push token on this phone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    pub platform: Platform,
    pub token: String,
}

/// A phone's app install, checked: an APNs device token is hex (64 digits today;
/// Apple may lengthen it), an FCM registration token URL-safe text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTarget {
    pub platform: Platform,
    pub token: String,
}

impl TryFrom<NewDevice> for DeviceTarget {
    type Error = ApiError;

    fn try_from(body: NewDevice) -> ApiResult<DeviceTarget> {
        let token = body.token;
        let fits = (32..=MAX_DEVICE_TOKEN_CHARS).contains(&token.len());
        let spelled = match body.platform {
            // Lowercase only: one spelling of a token, one device.
            Platform::Ios => token
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            Platform::Android => token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b)),
        };
        if !fits || !spelled {
            return Err(ApiError::invalid(
                "token",
                match body.platform {
                    Platform::Ios => "an APNs device token: lowercase hex, 32 to 4096 digits",
                    Platform::Android => {
                        "an FCM registration token: 32 to 4096 letters, digits, - _ : ."
                    }
                },
            ));
        }
        Ok(DeviceTarget {
            platform: body.platform,
            token,
        })
    }
}

impl DeviceTarget {
    /// The device's id: a digest of its platform and token, so registering the same
    /// install again names the same device, whoever registers it.
    pub fn id(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{}:{}", self.platform.as_str(), self.token));
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn device_tokens_are_checked_per_platform_in_one_spelling() {
        let device = |body: serde_json::Value| {
            serde_json::from_value::<NewDevice>(body)
                .map_err(|e| e.to_string())
                .and_then(|b| DeviceTarget::try_from(b).map_err(|e| e.to_string()))
        };
        let apns = "a".repeat(64);
        let fcm = format!("{}:APA91b{}", "d".repeat(22), "x_-".repeat(40));
        assert!(device(json!({"platform": "ios", "token": apns})).is_ok());
        assert!(device(json!({"platform": "android", "token": fcm})).is_ok());
        let refused = [
            json!({"platform": "ios", "token": "A".repeat(64)}),
            json!({"platform": "ios", "token": "g".repeat(64)}),
            json!({"platform": "ios", "token": "ab"}),
            json!({"platform": "ios", "token": format!("{} ", "a".repeat(64))}),
            json!({"platform": "android", "token": "x".repeat(31)}),
            json!({"platform": "android", "token": "x".repeat(4097)}),
            json!({"platform": "android", "token": format!("{}/..", "x".repeat(40))}),
            json!({"platform": "android", "token": format!("{}é", "x".repeat(40))}),
            json!({"platform": "IOS", "token": "a".repeat(64)}),
            json!({"platform": "windows", "token": "a".repeat(64)}),
            json!({"platform": "ios"}),
            json!({"platform": "ios", "token": "a".repeat(64), "user_id": "u-2"}),
        ];
        for body in refused {
            assert!(device(body.clone()).is_err(), "{body}");
        }
        let a = DeviceTarget {
            platform: Platform::Ios,
            token: "a".repeat(64),
        };
        let b = DeviceTarget {
            platform: Platform::Android,
            token: "a".repeat(64),
        };
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().len(), 32);
    }

    fn settings(body: serde_json::Value) -> ApiResult<NotificationSettings> {
        serde_json::from_value::<NotificationSettings>(body)
            .map_err(|e| ApiError::invalid("body", e.to_string()))?
            .validated()
    }

    #[test]
    fn settings_default_to_every_channel_and_check_every_field() {
        assert_eq!(
            settings(json!({})).unwrap(),
            NotificationSettings::default()
        );
        let quiet = |start: &str, end: &str, zone: &str| {
            settings(json!({"quiet_hours": {"start": start, "end": end, "time_zone": zone}}))
        };
        assert!(quiet("22:00", "07:00", "Europe/Berlin").is_ok());
        for (start, end, zone) in [
            ("24:00", "07:00", "Europe/Berlin"),
            ("7:00", "08:00", "Europe/Berlin"),
            ("07:60", "08:00", "Europe/Berlin"),
            ("０７:00", "08:00", "Europe/Berlin"),
            ("07:00", "07:00", "Europe/Berlin"),
            ("22:00", "07:00", "Mars/Olympus"),
            ("22:00", "07:00", "europe/berlin "),
            ("22:00", "07:00", ""),
        ] {
            assert!(quiet(start, end, zone).is_err(), "{start} {end} {zone}");
        }
        assert!(settings(json!({"email_digest_minutes": 0})).is_err());
        assert!(settings(json!({"email_digest_minutes": 1441})).is_err());
        assert!(
            settings(json!({"channels": {"push": false}})).is_err(),
            "all three"
        );
        assert!(settings(json!({"sms": true})).is_err());
    }

    #[test]
    fn quiet_hours_are_read_in_the_persons_time_zone_across_midnight() {
        let night = QuietHours {
            start: "22:00".into(),
            end: "07:00".into(),
            time_zone: "Europe/Berlin".into(),
        };
        // 2026-12-04T21:30:00Z is 22:30 in Berlin (UTC+1 in winter).
        let at = |text: &str| {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .unwrap()
                .unix_timestamp()
        };
        assert!(night.contains(at("2026-12-04T21:30:00Z")));
        assert!(night.contains(at("2026-12-05T05:59:00Z")));
        assert!(!night.contains(at("2026-12-05T06:00:00Z")), "07:00 local");
        assert!(!night.contains(at("2026-12-04T20:59:00Z")), "21:59 local");
        let lunch = QuietHours {
            start: "12:00".into(),
            end: "13:00".into(),
            time_zone: "America/New_York".into(),
        };
        assert!(lunch.contains(at("2026-12-04T17:30:00Z")));
        assert!(!lunch.contains(at("2026-12-04T12:30:00Z")));
    }

    #[test]
    fn a_mute_is_a_future_time_within_a_year_and_null_unmutes() {
        let now = time::macros::datetime!(2026-12-04 08:00 UTC);
        let mute = |v: serde_json::Value| {
            muted_until(
                serde_json::from_value(json!({"muted_until": v})).unwrap(),
                now,
            )
        };
        assert_eq!(
            mute(json!("2026-12-04T10:00:00+01:00")).unwrap().as_deref(),
            Some("2026-12-04T09:00:00.000Z")
        );
        assert_eq!(mute(json!(null)).unwrap(), None);
        for bad in [
            "2026-12-04T07:00:00Z",
            "2028-01-01T00:00:00Z",
            "tomorrow",
            "2026-12-04",
        ] {
            assert!(mute(json!(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_push_endpoint_is_a_browser_push_service_and_keys_are_p256_and_16_bytes() {
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            [4u8]
                .iter()
                .chain([7u8; 64].iter())
                .copied()
                .collect::<Vec<u8>>(),
        );
        let auth = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([9u8; 16]);
        let target = |endpoint: &str, p256dh: &str, auth: &str, local: bool| {
            let body = serde_json::from_value::<NewPushSubscription>(json!({
                "endpoint": endpoint, "expirationTime": null,
                "keys": {"p256dh": p256dh, "auth": auth}
            }))
            .unwrap();
            PushTarget::from_body(body, local)
        };
        let ok = target(
            "https://fcm.googleapis.com/fcm/send/abc",
            &key,
            &auth,
            false,
        )
        .unwrap();
        assert_eq!(ok.id().len(), 32);
        assert!(
            target(
                "https://wns2-par02p.notify.windows.com/w/?token=x",
                &key,
                &auth,
                false
            )
            .is_ok()
        );
        assert!(target("http://127.0.0.1:8090/notify/x", &key, &auth, true).is_ok());
        for endpoint in [
            "http://127.0.0.1:8090/notify/x",
            "https://evil.example/fcm.googleapis.com",
            "https://fcm.googleapis.com.evil.example/x",
            "https://169.254.169.254/latest",
            "https://user@fcm.googleapis.com/x",
            "http://fcm.googleapis.com/x",
        ] {
            assert!(target(endpoint, &key, &auth, false).is_err(), "{endpoint}");
        }
        let short = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([4u8; 33]);
        let compressed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([2u8; 65]);
        for (p256dh, secret) in [
            (&short, &auth),
            (&compressed, &auth),
            (&key, &key),
            (&key, &"!!".to_owned()),
        ] {
            assert!(
                target("https://fcm.googleapis.com/x", p256dh, secret, false).is_err(),
                "{p256dh} {secret}"
            );
        }
    }
}
