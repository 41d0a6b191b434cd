//! The AWS SDK configuration every client of a function shares (DynamoDB, Bedrock).
//!
//! It is built on every cold start, so on Lambda it does no I/O: region and
//! credentials come from the environment Lambda sets, and TLS trusts the Amazon
//! Trust Services roots compiled into the binary instead of parsing the system store
//! (about 150 certificates, most of the init time before this; docs/performance.md).

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};

/// Amazon Root CA 1–4 and the Starfield Services root that cross-signs them.
pub const AMAZON_ROOTS_PEM: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// Which certificates the SDK clients trust (CHAT_TLS_ROOTS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRoots {
    /// Amazon Trust Services roots only: enough for every AWS endpoint, and free to load.
    Amazon,
    /// The system's store, for endpoints behind a proxy or another CA.
    System,
}

impl TlsRoots {
    pub fn parse(raw: Option<&str>) -> Result<TlsRoots, String> {
        match raw {
            None | Some("amazon") => Ok(TlsRoots::Amazon),
            Some("system") => Ok(TlsRoots::System),
            Some(other) => Err(format!(
                "CHAT_TLS_ROOTS {other:?} is not one of amazon, system"
            )),
        }
    }
}

/// Where the SDK's settings come from, by where the function runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsSource {
    /// On Lambda: AWS_REGION and the role's credentials in the environment.
    Lambda { region: String },
    /// Anywhere else (the dev server against a real table): the SDK's default chain,
    /// profiles included.
    DefaultChain,
}

/// What one client talks to. A local endpoint (DynamoDB Local, a protocol double)
/// checks no signature: fixed credentials and region keep it independent of the
/// developer's AWS profile, while the other clients of the same process (Bedrock from
/// the dev server) still use the real ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Aws,
    Local,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub source: AwsSource,
    pub tls_roots: TlsRoots,
}

/// Timeouts of every SDK client: per connection and per attempt (a stalled service
/// costs one attempt, not the call) and for all attempts of one call, well inside the
/// functions' timeouts (template.yaml), so a failing service answers 503 rather than
/// timing the Lambda out.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(crate::dynamo::CONNECT_TIMEOUT)
        .operation_attempt_timeout(crate::dynamo::ATTEMPT_TIMEOUT)
        .operation_timeout(crate::dynamo::OPERATION_TIMEOUT)
        .build()
}

/// The HTTPS client of the SDK clients, trusting `roots`.
pub fn http_client(roots: TlsRoots) -> aws_sdk_dynamodb::config::SharedHttpClient {
    let trust = match roots {
        TlsRoots::Amazon => TrustStore::empty().with_pem_certificate(AMAZON_ROOTS_PEM),
        TlsRoots::System => TrustStore::default(),
    };
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a TLS context from a trust store always builds");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
}

/// The SDK configuration a client (DynamoDB, Bedrock) is built from.
pub async fn sdk_config(settings: &AwsSettings, endpoint: Endpoint) -> SdkConfig {
    let http = http_client(settings.tls_roots);
    let from_env = |region: &str, credentials: SharedCredentialsProvider| {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(credentials)
            .http_client(http.clone())
            .timeout_config(timeouts())
            .build()
    };
    match (&settings.source, endpoint) {
        (_, Endpoint::Local) => from_env(
            "us-east-1",
            SharedCredentialsProvider::new(Credentials::new("local", "local", None, None, "local")),
        ),
        (AwsSource::Lambda { region }, Endpoint::Aws) => from_env(
            region,
            SharedCredentialsProvider::new(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            ),
        ),
        (AwsSource::DefaultChain, Endpoint::Aws) => {
            aws_config::defaults(BehaviorVersion::latest())
                .http_client(http.clone())
                .timeout_config(timeouts())
                .load()
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn the_amazon_roots_are_five_parsable_certificates() {
        let certs = CertificateDer::pem_slice_iter(AMAZON_ROOTS_PEM)
            .collect::<Result<Vec<_>, _>>()
            .expect("valid PEM");
        assert_eq!(certs.len(), 5);
        assert!(certs.iter().all(|c| c.len() > 400));
    }

    #[test]
    fn tls_roots_are_named() {
        assert_eq!(TlsRoots::parse(None), Ok(TlsRoots::Amazon));
        assert_eq!(TlsRoots::parse(Some("system")), Ok(TlsRoots::System));
        assert!(
            TlsRoots::parse(Some("mozilla"))
                .unwrap_err()
                .contains("CHAT_TLS_ROOTS")
        );
    }

    #[tokio::test]
    async fn lambda_settings_come_from_the_environment_without_the_default_chain() {
        let settings = AwsSettings {
            source: AwsSource::Lambda {
                region: "eu-west-1".into(),
            },
            tls_roots: TlsRoots::Amazon,
        };
        let config = sdk_config(&settings, Endpoint::Aws).await;
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert!(config.credentials_provider().is_some());
        assert!(config.http_client().is_some());
        assert_eq!(
            config.timeout_config().and_then(|t| t.operation_timeout()),
            Some(crate::dynamo::OPERATION_TIMEOUT)
        );
    }
}
