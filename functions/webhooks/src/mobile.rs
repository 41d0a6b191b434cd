//! Mobile push: notifications to phones' apps through Amazon SNS mobile push — one
//! platform application per push service (APNs for iOS, FCM for Android), made once by
//! the operator with the service's credentials, so none of them live in this stack.
//! A device's token becomes an SNS platform endpoint at its first notification; SNS
//! disables an endpoint whose token the push service calls invalid, and a publish to
//! it answers `EndpointDisabled`: the device is then turned off here too.

use aws_sdk_sns::error::ProvideErrorMetadata;
use chat_core::commands::notify::Platform;
use chat_core::store::notify::Device;
use serde_json::{Value, json};

/// The SNS platform applications, by platform (`None`: that platform is not set up).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applications {
    pub ios: Option<String>,
    pub android: Option<String>,
}

impl Applications {
    fn of(&self, platform: Platform) -> Option<&str> {
        match platform {
            Platform::Ios => self.ios.as_deref(),
            Platform::Android => self.android.as_deref(),
        }
    }
}

/// What SNS said of one publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Sent,
    /// The token is no longer valid (SNS disabled the endpoint).
    Disabled,
    /// This platform has no application in the stack.
    NotSetUp,
}

pub struct Phones {
    client: aws_sdk_sns::Client,
    applications: Applications,
}

/// The message key of a platform application's ARN (`…:app/APNS_SANDBOX/name` →
/// `APNS_SANDBOX`): what SNS reads of a per-platform message.
fn message_key(application_arn: &str) -> &str {
    application_arn
        .split_once(":app/")
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or("GCM")
}

/// The SNS message (`MessageStructure: json`) for one notification: the APNs
/// payload with the badge, the FCM v1 message with the count, both carrying the room
/// and where a tap opens it.
pub fn message(application_arn: &str, notification: &Value, badge: u64) -> String {
    let title = notification["title"].as_str().unwrap_or_default();
    let body = notification["body"].as_str().unwrap_or_default();
    let room = notification["room_id"].as_str().unwrap_or_default();
    let path = notification["path"].as_str().unwrap_or_default();
    let key = message_key(application_arn);
    let platform_payload = if key.starts_with("APNS") {
        json!({
            "aps": {
                "alert": { "title": title, "body": body },
                "badge": badge,
                "sound": "default",
                "thread-id": room,
            },
            "room_id": room,
            "path": path,
        })
    } else {
        json!({
            "fcmV1Message": {
                "message": {
                    "notification": { "title": title, "body": body },
                    "data": { "room_id": room, "path": path, "badge": badge.to_string() },
                    "android": { "notification": { "tag": room, "notification_count": badge } },
                }
            }
        })
    };
    let mut message = serde_json::Map::new();
    message.insert("default".into(), json!(body));
    message.insert(key.into(), json!(platform_payload.to_string()));
    Value::Object(message).to_string()
}

impl Phones {
    pub async fn new(
        aws: &chat_core::aws::AwsSettings,
        applications: Applications,
        endpoint: Option<&str>,
    ) -> Phones {
        let kind = match endpoint {
            Some(_) => chat_core::aws::Endpoint::Local,
            None => chat_core::aws::Endpoint::Aws,
        };
        let shared = chat_core::aws::sdk_config(aws, kind).await;
        let mut builder = aws_sdk_sns::config::Builder::from(&shared);
        if let Some(url) = endpoint {
            builder = builder.endpoint_url(url);
        }
        Phones {
            client: aws_sdk_sns::Client::from_conf(builder.build()),
            applications,
        }
    }

    /// The device's platform endpoint: made now when it has none (SNS answers the
    /// same one for a token it knows; one it had disabled is turned on again, as the
    /// user registered the token anew). `None`: the platform is not set up.
    pub async fn endpoint(&self, device: &Device) -> Result<Option<String>, String> {
        if let Some(arn) = &device.endpoint_arn {
            return Ok(Some(arn.clone()));
        }
        let Some(application) = self.applications.of(device.platform) else {
            return Ok(None);
        };
        let made = self
            .client
            .create_platform_endpoint()
            .platform_application_arn(application)
            .token(&device.token)
            .send()
            .await;
        match made {
            Ok(out) => Ok(out.endpoint_arn().map(str::to_owned)),
            Err(err) => {
                // "Endpoint <arn> already exists with the same Token, but different
                // attributes": it was disabled. Take it and turn it on.
                let text = err.message().unwrap_or_default().to_owned();
                let existing = text
                    .split_whitespace()
                    .find(|w| w.starts_with("arn:") && w.contains(":endpoint/"))
                    .map(str::to_owned);
                let Some(arn) = existing else {
                    return Err(format!("{}", aws_sdk_sns::error::DisplayErrorContext(err)));
                };
                self.client
                    .set_endpoint_attributes()
                    .endpoint_arn(&arn)
                    .attributes("Enabled", "true")
                    .send()
                    .await
                    .map_err(|e| format!("{}", aws_sdk_sns::error::DisplayErrorContext(e)))?;
                Ok(Some(arn))
            }
        }
    }

    /// Publishes one notification to the device's endpoint.
    pub async fn publish(
        &self,
        device: &Device,
        endpoint_arn: &str,
        notification: &Value,
        badge: u64,
    ) -> Result<Answer, String> {
        let Some(application) = self.applications.of(device.platform) else {
            return Ok(Answer::NotSetUp);
        };
        let sent = self
            .client
            .publish()
            .target_arn(endpoint_arn)
            .message_structure("json")
            .message(message(application, notification, badge))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Answer::Sent),
            Err(err) if err.code() == Some("EndpointDisabled") => Ok(Answer::Disabled),
            Err(err) => Err(format!("{}", aws_sdk_sns::error::DisplayErrorContext(err))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_platform_gets_its_payload_with_the_badge() {
        let notification = json!({"title": "Order 42", "body": "It ships today", "room_id": "r-1", "path": "/chat/conversations/r-1"});
        let ios = message(
            "arn:aws:sns:us-east-1:1:app/APNS_SANDBOX/chat",
            &notification,
            7,
        );
        let ios: Value = serde_json::from_str(&ios).unwrap();
        assert_eq!(ios["default"], "It ships today");
        let aps: Value = serde_json::from_str(ios["APNS_SANDBOX"].as_str().unwrap()).unwrap();
        assert_eq!(aps["aps"]["badge"], 7);
        assert_eq!(aps["aps"]["alert"]["title"], "Order 42");
        assert_eq!(aps["path"], "/chat/conversations/r-1");
        let android = message("arn:aws:sns:us-east-1:1:app/GCM/chat", &notification, 7);
        let android: Value = serde_json::from_str(&android).unwrap();
        let fcm: Value = serde_json::from_str(android["GCM"].as_str().unwrap()).unwrap();
        let m = &fcm["fcmV1Message"]["message"];
        assert_eq!(m["notification"]["body"], "It ships today");
        assert_eq!(m["android"]["notification"]["notification_count"], 7);
        assert_eq!(m["data"]["badge"], "7", "FCM data values are strings");
    }
}
