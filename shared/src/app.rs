//! What every function does around its routes: find the route, authenticate, run the
//! handler, answer in the envelope, and log one structured line per request.

use crate::auth::{AuthConfig, Principal};
use crate::envelope::{Reply, error_response};
use crate::error::{ApiError, ApiResult};
use crate::store::Store;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use std::future::Future;
use std::time::Instant;

/// JSON logs to stdout (CloudWatch), level from RUST_LOG (default info).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

/// The API Gateway route key (`"POST /chat/conversations"`), as the template names it.
pub fn route_key(req: &Request) -> Option<&str> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.route_key.as_deref(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

fn request_id(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone().unwrap_or_default(),
        #[allow(unreachable_patterns)]
        _ => String::new(),
    }
}

pub fn path_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.path_parameters_ref().and_then(|p| p.first(name))
}

pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Runs one request through authentication and the function's dispatcher, then logs
/// it (JSON: request id, tenant, route, status, latency, DynamoDB requests; never a
/// token or a body) and emits its CloudWatch embedded-metric-format line.
pub async fn serve<F, Fut>(
    auth: &AuthConfig,
    store: &Store,
    req: Request,
    dispatch: F,
) -> Response<Body>
where
    F: FnOnce(String, Principal, Request) -> Fut,
    Fut: Future<Output = ApiResult<Reply>>,
{
    let started = Instant::now();
    let requests_before = store.requests();
    let route = route_key(&req).unwrap_or_default().to_owned();
    let request_id = request_id(&req);
    let principal = auth.verify(header(&req, "authorization")).await;
    let tenant = principal
        .as_ref()
        .map(|p| p.org.to_string())
        .unwrap_or_default();
    let result = match principal {
        Ok(principal) => {
            let entry = audit_entry(&route, &principal, &request_id, &req);
            crate::audit::recording(entry, dispatch(route.clone(), principal, req)).await
        }
        Err(err) => Err(err),
    };
    let response = match result {
        Ok(reply) => reply.into_response(),
        Err(err) => error_response(&err),
    };
    let status = response.status().as_u16();
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    // Per invocation: a Lambda instance serves one request at a time.
    let dynamodb_requests = store.requests().saturating_sub(requests_before);
    tracing::info!(
        request_id,
        tenant,
        route,
        status,
        latency_ms,
        dynamodb_requests,
        "request"
    );
    if metrics_enabled() {
        println!(
            "{}",
            emf_line(&route, status, latency_ms, dynamodb_requests)
        );
    }
    response
}

/// The audit entry of an audited route's request (crate::audit): its path ids and
/// the names of its body's fields.
fn audit_entry(
    route: &str,
    who: &Principal,
    request_id: &str,
    req: &Request,
) -> Option<crate::audit::Entry> {
    crate::audit::classify(route)?;
    let target = req
        .path_parameters_ref()
        .map(|params| {
            params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    crate::audit::Entry::for_request(
        route,
        who,
        request_id,
        target,
        crate::request::body_bytes(req),
    )
}

/// EMF lines go to stdout on Lambda (CloudWatch turns them into metrics); set
/// CHAT_METRICS=off to silence them (the dev server and tests do).
fn metrics_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| {
        std::env::var("CHAT_METRICS")
            .map(|v| v != "off")
            .unwrap_or_else(|_| std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_ok())
    })
}

/// One CloudWatch embedded-metric-format record: latency, DynamoDB requests and
/// errors per function and route.
pub fn emf_line(route: &str, status: u16, latency_ms: f64, dynamodb_requests: u64) -> String {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
    serde_json::json!({
        "_aws": {
            "Timestamp": crate::time::now().unix_timestamp() * 1000,
            "CloudWatchMetrics": [{
                "Namespace": "ChatBackend",
                "Dimensions": [["function", "route"]],
                "Metrics": [
                    {"Name": "Latency", "Unit": "Milliseconds"},
                    {"Name": "DynamoDBRequests", "Unit": "Count"},
                    {"Name": "Errors", "Unit": "Count"},
                ],
            }],
        },
        "function": function,
        "route": route,
        "status": status,
        "Latency": latency_ms,
        "DynamoDBRequests": dynamodb_requests,
        "Errors": u8::from(status >= 500),
    })
    .to_string()
}

/// The answer for a route key the function does not serve.
pub fn unknown_route() -> ApiResult<Reply> {
    Err(ApiError::RouteNotFound)
}

/// A function's app as its Lambda runs it: answers one HTTP API event.
pub trait HttpApp {
    fn handle(&self, req: Request) -> impl Future<Output = Response<Body>> + Send;
}

/// Every HTTP function's `main`: logs, configuration from the environment (a bad one
/// refuses to start, logged), the app built once by `build`, then the Lambda loop.
pub async fn run<A, B, Fut>(build: B) -> Result<(), lambda_http::Error>
where
    A: HttpApp + Sync,
    B: FnOnce(crate::config::Config) -> Fut,
    Fut: Future<Output = Result<A, lambda_http::Error>>,
{
    let config = start()?;
    let app = build(config)
        .await
        .inspect_err(|e| tracing::error!(error = %e, "refusing to start"))?;
    let app = &app;
    lambda_http::run(lambda_http::service_fn(move |req| async move {
        Ok::<_, lambda_http::Error>(app.handle(req).await)
    }))
    .await
}

/// Logs on, and the configuration from the environment (refusing to start, logged,
/// when it is not usable).
pub fn start() -> Result<crate::config::Config, crate::config::ConfigError> {
    init_tracing();
    crate::config::Config::from_env()
        .inspect_err(|e| tracing::error!(error = %e, "refusing to start"))
}

/// A function's app that holds nothing but what every route needs: the token
/// verification and the store, both built once per cold start.
#[macro_export]
macro_rules! store_app {
    ($name:ident) => {
        /// This function's app: built once per cold start, then answers every event.
        pub struct $name {
            auth: $crate::auth::AuthConfig,
            store: $crate::store::Store,
        }

        impl $name {
            pub fn new(runtime: $crate::Runtime) -> Self {
                $name {
                    auth: runtime.config.auth,
                    store: runtime.store,
                }
            }
        }
    };
}

/// A function's route table, written once: each route key of template.yaml with the
/// handler expression that answers it (over the names given for the app, the caller
/// and the request). It defines `ROUTES`, the keys the template must declare (the
/// dev server's tests hold the two equal), the app's `handle` (the app has `auth` and
/// `store` fields) and its `HttpApp` implementation for `app::run`.
#[macro_export]
macro_rules! route_table {
    ($app:ident: $app_ty:ty, $who:ident, $req:ident; $($key:literal => $handler:expr,)*) => {
        /// The route keys this function serves, exactly as template.yaml declares them.
        pub const ROUTES: &[&str] = &[$($key),*];

        impl $app_ty {
            /// Answers one API Gateway event: authentication, the route's handler from
            /// the table, the envelope and the request's log line.
            pub async fn handle(
                &self,
                req: lambda_http::Request,
            ) -> lambda_http::Response<lambda_http::Body> {
                $crate::app::serve(&self.auth, &self.store, req, |route, who, req| async move {
                    // Boxed: the handlers' futures are large, and debug builds' test
                    // threads have small stacks.
                    Box::pin(dispatch(self, &route, &who, &req)).await
                })
                .await
            }
        }

        impl $crate::app::HttpApp for $app_ty {
            fn handle(
                &self,
                req: lambda_http::Request,
            ) -> impl std::future::Future<Output = lambda_http::Response<lambda_http::Body>> + Send
            {
                <$app_ty>::handle(self, req)
            }
        }

        /// Runs the handler of `route`, from the route table.
        async fn dispatch(
            $app: &$app_ty,
            route: &str,
            $who: &$crate::Principal,
            $req: &lambda_http::Request,
        ) -> $crate::ApiResult<$crate::Reply> {
            match route {
                $($key => $handler.await,)*
                _ => $crate::app::unknown_route(),
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_records_name_their_metrics() {
        let line: serde_json::Value =
            serde_json::from_str(&emf_line("GET /rooms", 503, 12.5, 2)).unwrap();
        let metrics = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(metrics["Namespace"], "ChatBackend");
        let names: Vec<&str> = metrics["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in names {
            assert!(line.get(name).is_some(), "{name} has a value");
        }
        assert_eq!(
            (line["Errors"].as_u64(), line["DynamoDBRequests"].as_u64()),
            (Some(1), Some(2))
        );
        assert_eq!(line["route"], "GET /rooms");
    }
}
