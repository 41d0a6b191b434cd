//! The DynamoDB client, built once per cold start, and the mapping of SDK failures
//! onto API errors.

use crate::config::Config;
use crate::error::ApiError;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::{BoxError, ProvideErrorMetadata, SdkError};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counts the HTTP requests the client sends (retries included): the budgets of
/// DynamoDB requests per API call are checked against this.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<AtomicU64>);

impl RequestCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Per connection and per attempt: a stalled DynamoDB costs one attempt, not the call.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// All attempts of one call; well inside the functions' timeouts (template.yaml), so a
/// failing DynamoDB answers 503 rather than timing the Lambda out.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(6);

/// Builds the client from the shared SDK configuration (crate::aws), with the local
/// endpoint if set and the request counter.
pub async fn client(config: &Config) -> (Client, RequestCounter) {
    let endpoint = match config.dynamodb_endpoint {
        Some(_) => crate::aws::Endpoint::Local,
        None => crate::aws::Endpoint::Aws,
    };
    let shared = crate::aws::sdk_config(&config.aws, endpoint).await;
    let counter = RequestCounter::default();
    let mut builder = aws_sdk_dynamodb::config::Builder::from(&shared).interceptor(counter.clone());
    if let Some(endpoint) = &config.dynamodb_endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    (Client::from_conf(builder.build()), counter)
}

/// Maps an SDK failure: throttling and unreachable service become 503 with
/// Retry-After; anything else is an internal error, logged with its context.
pub fn sdk_error<E, R>(context: &str, err: SdkError<E, R>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    // The modeled error's code; errors built without metadata (as the SDK's test
    // tooling does) still name their variant.
    let code = err.code().map(str::to_owned).unwrap_or_else(|| {
        err.as_service_error()
            .map(|e| {
                format!("{e:?}")
                    .split(['(', ' ', '{'])
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_default()
    });
    let throttled = matches!(
        code.as_str(),
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "LimitExceededException"
    );
    let unreachable = matches!(
        err,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)
    ) || matches!(code.as_str(), "InternalServerError" | "ServiceUnavailable");
    if throttled || unreachable {
        tracing::warn!(context, code, error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err), "DynamoDB unavailable");
        return crate::store::storage_unavailable();
    }
    ApiError::internal(context, aws_sdk_dynamodb::error::DisplayErrorContext(&err))
}
