//! Configuration from the environment, read once at init. Anything missing or wrong
//! fails the cold start with a message naming every problem at once.

use crate::auth::{AuthConfig, KeySource};
use crate::aws::{AwsSettings, AwsSource, TlsRoots};
use jsonwebtoken::Algorithm;
use std::collections::HashMap;

/// The local development secret: accepted only when CHAT_LOCAL=1 says this is the
/// local stack, so a deployed stack can never run on it.
pub const LOCAL_DEV_SECRET: &str = "local-dev-secret-change-me";

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// Set only for DynamoDB Local.
    pub dynamodb_endpoint: Option<String>,
    pub auth: AuthConfig,
    /// How the AWS SDK clients are configured (region, credentials, TLS roots).
    pub aws: AwsSettings,
    /// The attachments' bucket, when uploads are on (`UPLOADS_BUCKET`).
    pub uploads: Option<crate::uploads::UploadsConfig>,
    /// The local stack (`CHAT_LOCAL=1`): webhooks may then target http://127.0.0.1
    /// for its own tests; a deployed stack never sets it.
    pub local: bool,
    /// How webhook deliveries are attempted and retried.
    pub webhooks: crate::webhooks::DeliverySettings,
    /// How people who are away are notified (docs/notifications.md).
    pub notify: NotifySettings,
}

/// The notification pipeline's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifySettings {
    /// The stack's VAPID private key (the raw P-256 scalar, base64url): Web Push is
    /// off without it.
    pub vapid_private_key: Option<String>,
    /// Its public key, which browsers subscribe with (answered to clients).
    pub vapid_public_key: Option<String>,
    /// Whom push services may contact about our pushes (`mailto:` or `https:`).
    pub vapid_subject: String,
    /// Someone connected who read the room this recently is looking: not notified.
    pub grace_secs: i64,
    /// At most one notification per recipient and room in this window.
    pub window_secs: i64,
    /// Email notifications (off without `EMAIL_FROM`).
    pub email: Option<EmailSettings>,
    /// The domain SES receives mail on (`INBOUND_EMAIL_DOMAIN`), which the tenants'
    /// email inboxes are addresses of; the same as `email.inbound_domain`.
    pub inbound_email_domain: Option<String>,
    /// Mobile push: the SNS platform application for iOS (APNs), by ARN.
    pub sns_ios_application: Option<String>,
    /// … and for Android (FCM).
    pub sns_android_application: Option<String>,
    /// Only for the local stack's SNS stand-in (`SNS_ENDPOINT`).
    pub sns_endpoint: Option<String>,
}

/// What email notifications are sent with.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailSettings {
    /// The sender address, verified in SES (`EMAIL_FROM`); the tenant's name is its
    /// display name.
    pub from: String,
    /// The API's public URL, which unsubscribe links point at (`EMAIL_LINK_BASE`).
    pub link_base: String,
    /// The key unsubscribe links are signed with (`EMAIL_LINK_SECRET`, 32+ bytes).
    pub link_secret: String,
    /// Only for the local stack's SES stand-in (`SES_ENDPOINT`).
    pub ses_endpoint: Option<String>,
    /// The domain SES receives replies on (`INBOUND_EMAIL_DOMAIN`): with it, a
    /// conversation's mails carry its signed reply address (`crate::reply`) and
    /// replies land in the conversation (docs/email.md).
    pub inbound_domain: Option<String>,
}

/// The shortest key an unsubscribe link may be signed with.
pub const MIN_LINK_SECRET_BYTES: usize = 32;

impl Default for NotifySettings {
    fn default() -> NotifySettings {
        NotifySettings {
            vapid_private_key: None,
            vapid_public_key: None,
            vapid_subject: "mailto:admin@localhost".into(),
            grace_secs: 30,
            window_secs: 120,
            email: None,
            inbound_email_domain: None,
            sns_ios_application: None,
            sns_android_application: None,
            sns_endpoint: None,
        }
    }
}

fn notify_from(env: &Env<'_>, problems: &mut Vec<String>) -> NotifySettings {
    let defaults = NotifySettings::default();
    let secs = |name: &str, default: i64, problems: &mut Vec<String>| match env.get(name) {
        None => default,
        Some(text) => match text.parse::<i64>() {
            Ok(v) if (0..=86_400).contains(&v) => v,
            _ => {
                problems.push(format!("{name} must be seconds from 0 to 86400"));
                default
            }
        },
    };
    NotifySettings {
        vapid_private_key: env.get("VAPID_PRIVATE_KEY").map(str::to_owned),
        vapid_public_key: env.get("VAPID_PUBLIC_KEY").map(str::to_owned),
        vapid_subject: env
            .get("VAPID_SUBJECT")
            .map(str::to_owned)
            .unwrap_or(defaults.vapid_subject),
        grace_secs: secs("NOTIFY_GRACE_SECS", defaults.grace_secs, problems),
        window_secs: secs("NOTIFY_WINDOW_SECS", defaults.window_secs, problems),
        email: email_from(env, problems),
        inbound_email_domain: inbound_domain(env, problems),
        sns_ios_application: sns_application(env, "SNS_APNS_APPLICATION_ARN", problems),
        sns_android_application: sns_application(env, "SNS_FCM_APPLICATION_ARN", problems),
        sns_endpoint: match env.get("SNS_ENDPOINT") {
            Some(_) if !env.local() => {
                problems.push("SNS_ENDPOINT is for the local stack only (CHAT_LOCAL=1)".to_owned());
                None
            }
            other => other.map(str::to_owned),
        },
    }
}

/// An SNS platform application's ARN, when given.
fn sns_application(env: &Env<'_>, name: &str, problems: &mut Vec<String>) -> Option<String> {
    let arn = env.get(name)?;
    if !(arn.starts_with("arn:") && arn.contains(":sns:") && arn.contains(":app/")) {
        problems.push(format!("{name} must be an SNS platform application's ARN"));
        return None;
    }
    Some(arn.to_owned())
}

/// Email is on with a sender; its links then need a base and a key.
fn email_from(env: &Env<'_>, problems: &mut Vec<String>) -> Option<EmailSettings> {
    let from = env.get("EMAIL_FROM")?;
    let link_base = env.get("EMAIL_LINK_BASE").unwrap_or_default();
    let link_secret = env.get("EMAIL_LINK_SECRET").unwrap_or_default();
    let mut fine = true;
    if !from.contains('@') {
        problems.push("EMAIL_FROM must be an email address".to_owned());
        fine = false;
    }
    if !(link_base.starts_with("https://") || (env.local() && link_base.starts_with("http://"))) {
        problems
            .push("EMAIL_LINK_BASE must be the API's https URL when EMAIL_FROM is set".to_owned());
        fine = false;
    }
    if link_secret.len() < MIN_LINK_SECRET_BYTES {
        problems.push(format!(
            "EMAIL_LINK_SECRET must be at least {MIN_LINK_SECRET_BYTES} bytes when EMAIL_FROM is set"
        ));
        fine = false;
    }
    let ses_endpoint = env.get("SES_ENDPOINT").map(str::to_owned);
    if ses_endpoint.is_some() && !env.local() {
        problems.push("SES_ENDPOINT is for the local stack only (CHAT_LOCAL=1)".to_owned());
        fine = false;
    }
    // Its problems are reported once, by `inbound_domain`.
    let inbound_domain = inbound_domain(env, &mut Vec::new());
    fine.then(|| EmailSettings {
        from: from.to_owned(),
        link_base: link_base.trim_end_matches('/').to_owned(),
        link_secret: link_secret.to_owned(),
        ses_endpoint,
        inbound_domain,
    })
}

/// `INBOUND_EMAIL_DOMAIN`, in lower case, when it is a domain name.
fn inbound_domain(env: &Env<'_>, problems: &mut Vec<String>) -> Option<String> {
    let domain = env.get("INBOUND_EMAIL_DOMAIN")?.to_ascii_lowercase();
    if !is_domain(&domain) {
        problems.push("INBOUND_EMAIL_DOMAIN must be a domain name (reply.example.com)".to_owned());
        return None;
    }
    Some(domain)
}

/// A DNS name of two or more labels of letters, digits and inner hyphens.
fn is_domain(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {}", .0.join("; "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_map(&std::env::vars().collect())
    }

    pub fn from_map(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let env = Env(env);
        let mut problems = Vec::new();
        let table_name = env.get("TABLE_NAME").map(str::to_owned);
        if table_name.is_none() {
            problems.push("TABLE_NAME is required".to_owned());
        }
        let auth = auth_from(&env, &mut problems);
        let dynamodb_endpoint = env.get("DYNAMODB_ENDPOINT").map(str::to_owned);
        let tls_roots = TlsRoots::parse(env.get("CHAT_TLS_ROOTS")).unwrap_or_else(|problem| {
            problems.push(problem);
            TlsRoots::Amazon
        });
        let source = if env.get("AWS_LAMBDA_FUNCTION_NAME").is_some() {
            let region = env.get("AWS_REGION").unwrap_or_else(|| {
                problems.push("AWS_REGION is required on Lambda".to_owned());
                ""
            });
            AwsSource::Lambda {
                region: region.to_owned(),
            }
        } else {
            AwsSource::DefaultChain
        };
        let uploads = env
            .get("UPLOADS_BUCKET")
            .map(|bucket| crate::uploads::UploadsConfig {
                bucket: bucket.to_owned(),
                endpoint: env.get("S3_ENDPOINT").map(str::to_owned),
                region: env.get("AWS_REGION").unwrap_or("us-east-1").to_owned(),
            });
        let webhooks = crate::webhooks::DeliverySettings::from_values(
            env.get("WEBHOOK_RETRY_SCHEDULE"),
            env.get("WEBHOOK_ATTEMPT_TIMEOUT_SECONDS"),
            env.get("WEBHOOK_DISABLE_AFTER_SECONDS"),
        )
        .unwrap_or_else(|found| {
            problems.extend(found);
            Default::default()
        });
        let notify = notify_from(&env, &mut problems);
        match (table_name, auth) {
            (Some(table_name), Some(auth)) if problems.is_empty() => Ok(Config {
                table_name,
                dynamodb_endpoint,
                auth,
                aws: AwsSettings { source, tls_roots },
                uploads,
                local: env.local(),
                webhooks,
                notify,
            }),
            _ => Err(ConfigError(problems)),
        }
    }
}

/// The environment's variables; blank counts as unset.
struct Env<'a>(&'a HashMap<String, String>);

impl Env<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// The local stack (`CHAT_LOCAL=1`), never set in a deployed stack.
    fn local(&self) -> bool {
        self.get("CHAT_LOCAL") == Some("1")
    }
}

/// Token verification: the pinned algorithm, its keys, issuer, audience and claim
/// names; every problem is noted in `problems`.
fn auth_from(env: &Env<'_>, problems: &mut Vec<String>) -> Option<AuthConfig> {
    let algorithm = match env.get("JWT_ALGORITHM") {
        Some("HS256") => Some(Algorithm::HS256),
        Some("RS256") => Some(Algorithm::RS256),
        Some("ES256") => Some(Algorithm::ES256),
        Some(other) => {
            problems.push(format!(
                "JWT_ALGORITHM {other:?} is not one of HS256, RS256, ES256"
            ));
            None
        }
        None => {
            problems.push("JWT_ALGORITHM is required (HS256, RS256 or ES256)".to_owned());
            None
        }
    };
    let keys = algorithm.and_then(|algorithm| keys_from(env, algorithm, problems));
    let claim = |name: &str, default: &str| env.get(name).unwrap_or(default).to_owned();
    let auth = AuthConfig::new(
        algorithm?,
        keys?,
        env.get("JWT_ISSUER").map(str::to_owned),
        env.get("JWT_AUDIENCE").map(str::to_owned),
        [
            claim("JWT_CLAIM_SUB", "sub"),
            claim("JWT_CLAIM_ORG", "org"),
            claim("JWT_CLAIM_ROLE", "role"),
        ],
    );
    auth.map_err(|problem| problems.push(problem)).ok()
}

/// The keys of `algorithm`: a shared secret (never the local one outside the local
/// stack) or a JWKS document.
fn keys_from(env: &Env<'_>, algorithm: Algorithm, problems: &mut Vec<String>) -> Option<KeySource> {
    let local = env.local();
    let problem = |problems: &mut Vec<String>, text: &str| {
        problems.push(text.to_owned());
        None
    };
    if algorithm != Algorithm::HS256 {
        return match (env.get("JWT_JWKS"), env.get("JWT_JWKS_URL")) {
            (None, None) => problem(
                problems,
                "JWT_JWKS (a JWKS JSON document) or JWT_JWKS_URL is required for RS256/ES256",
            ),
            (Some(_), Some(_)) => problem(problems, "set JWT_JWKS or JWT_JWKS_URL, not both"),
            (Some(doc), None) => Some(KeySource::Jwks(doc.to_owned())),
            // Keys travel over TLS; plain HTTP only for the local stack's own tests.
            (None, Some(url)) if !url.starts_with("https://") && !local => {
                problem(problems, "JWT_JWKS_URL must be an https:// URL")
            }
            (None, Some(url)) => {
                let refresh = match env.get("JWT_JWKS_REFRESH_SECS").map(str::parse::<u64>) {
                    None => crate::jwks::REFRESH_INTERVAL,
                    Some(Ok(secs)) if secs >= 1 => std::time::Duration::from_secs(secs),
                    Some(_) => {
                        return problem(
                            problems,
                            "JWT_JWKS_REFRESH_SECS must be a whole number of seconds, at least 1",
                        );
                    }
                };
                Some(KeySource::JwksUrl {
                    url: url.to_owned(),
                    refresh,
                })
            }
        };
    }
    match env.get("JWT_SECRET") {
        None => problem(problems, "JWT_SECRET is required for HS256"),
        Some(LOCAL_DEV_SECRET) if !local => problem(
            problems,
            "JWT_SECRET is the local development secret; set a real one",
        ),
        Some(secret) if secret.len() < 16 && !local => {
            problem(problems, "JWT_SECRET must be at least 16 bytes")
        }
        Some(secret) => Some(KeySource::Secret(secret.as_bytes().to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn missing_everything_names_every_problem() {
        let err = Config::from_map(&env(&[])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("TABLE_NAME"), "{text}");
        assert!(text.contains("JWT_ALGORITHM"), "{text}");
    }

    #[test]
    fn aws_settings_follow_where_the_function_runs() {
        let base = [
            ("TABLE_NAME", "t"),
            ("JWT_ALGORITHM", "HS256"),
            ("JWT_SECRET", "a-real-secret-of-32-bytes-length"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            Config::from_map(&env(&pairs))
        };
        let lambda = with(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "chat-messages"),
            ("AWS_REGION", "eu-west-1"),
        ])
        .unwrap();
        assert_eq!(
            lambda.aws.source,
            AwsSource::Lambda {
                region: "eu-west-1".into()
            }
        );
        assert_eq!(lambda.aws.tls_roots, TlsRoots::Amazon);
        let no_region = with(&[("AWS_LAMBDA_FUNCTION_NAME", "chat-messages")]).unwrap_err();
        assert!(no_region.to_string().contains("AWS_REGION"), "{no_region}");
        let local = with(&[("DYNAMODB_ENDPOINT", "http://127.0.0.1:8000")]).unwrap();
        assert_eq!(local.aws.source, AwsSource::DefaultChain);
        assert_eq!(
            local.dynamodb_endpoint.as_deref(),
            Some("http://127.0.0.1:8000")
        );
        assert_eq!(with(&[]).unwrap().aws.source, AwsSource::DefaultChain);
        let system = with(&[("CHAT_TLS_ROOTS", "system")]).unwrap();
        assert_eq!(system.aws.tls_roots, TlsRoots::System);
        let wrong = with(&[("CHAT_TLS_ROOTS", "mozilla")]).unwrap_err();
        assert!(wrong.to_string().contains("CHAT_TLS_ROOTS"), "{wrong}");
    }

    #[test]
    fn deployed_stack_refuses_the_dev_secret_and_missing_keys() {
        let dev = env(&[
            ("TABLE_NAME", "t"),
            ("JWT_ALGORITHM", "HS256"),
            ("JWT_SECRET", LOCAL_DEV_SECRET),
        ]);
        assert!(
            Config::from_map(&dev)
                .unwrap_err()
                .to_string()
                .contains("local development secret")
        );
        let no_jwks = env(&[("TABLE_NAME", "t"), ("JWT_ALGORITHM", "RS256")]);
        assert!(
            Config::from_map(&no_jwks)
                .unwrap_err()
                .to_string()
                .contains("JWT_JWKS")
        );
        let no_secret = env(&[
            ("TABLE_NAME", "t"),
            ("JWT_ALGORITHM", "HS256"),
            ("JWT_SECRET", ""),
        ]);
        assert!(Config::from_map(&no_secret).is_err());
    }

    #[test]
    fn local_stack_may_use_the_dev_secret() {
        let local = env(&[
            ("TABLE_NAME", "t"),
            ("JWT_ALGORITHM", "HS256"),
            ("JWT_SECRET", LOCAL_DEV_SECRET),
            ("CHAT_LOCAL", "1"),
            ("JWT_ISSUER", "chat-local"),
        ]);
        let config = Config::from_map(&local).unwrap();
        assert_eq!(config.table_name, "t");
        assert_eq!(config.auth.issuer.as_deref(), Some("chat-local"));
    }

    #[test]
    fn unknown_algorithm_is_refused() {
        let bad = env(&[("TABLE_NAME", "t"), ("JWT_ALGORITHM", "none")]);
        assert!(
            Config::from_map(&bad)
                .unwrap_err()
                .to_string()
                .contains("not one of")
        );
    }

    #[test]
    fn a_jwks_url_is_https_and_alone_and_init_fetches_nothing() {
        let base = |extra: &[(&str, &str)]| -> HashMap<String, String> {
            [("TABLE_NAME", "t"), ("JWT_ALGORITHM", "RS256")]
                .iter()
                .chain(extra)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // An address where nothing answers: building the config fetches nothing.
        let config = Config::from_map(&base(&[(
            "JWT_JWKS_URL",
            "https://127.0.0.1:1/.well-known/jwks.json",
        )]))
        .unwrap();
        assert_eq!(config.auth.key_fetches(), Some(0));
        let plain = Config::from_map(&base(&[("JWT_JWKS_URL", "http://idp.example/jwks")]));
        assert!(plain.unwrap_err().0.iter().any(|p| p.contains("https")));
        let both = Config::from_map(&base(&[
            ("JWT_JWKS_URL", "https://x/j"),
            ("JWT_JWKS", "{}"),
        ]));
        assert!(both.unwrap_err().0.iter().any(|p| p.contains("not both")));
    }
}
