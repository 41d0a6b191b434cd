//! What every function does around its routes: find the route, authenticate, run the
//! handler, answer in the envelope, and log one structured line per request.

use crate::auth::{AuthConfig, Principal};
use crate::envelope::{Reply, error_response};
use crate::error::{ApiError, ApiResult};
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

/// Runs one request through authentication and the function's dispatcher.
pub async fn serve<F, Fut>(auth: &AuthConfig, req: Request, dispatch: F) -> Response<Body>
where
    F: FnOnce(String, Principal, Request) -> Fut,
    Fut: Future<Output = ApiResult<Reply>>,
{
    let started = Instant::now();
    let route = route_key(&req).unwrap_or_default().to_owned();
    let request_id = request_id(&req);
    let principal = auth.authenticate(header(&req, "authorization"));
    let tenant = principal
        .as_ref()
        .map(|p| p.org.to_string())
        .unwrap_or_default();
    let result = match principal {
        Ok(principal) => dispatch(route.clone(), principal, req).await,
        Err(err) => Err(err),
    };
    let response = match result {
        Ok(reply) => reply.into_response(),
        Err(err) => error_response(&err),
    };
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(request_id, tenant, route, status, latency_ms, "request");
    response
}

/// The answer for a route key the function does not serve.
pub fn unknown_route() -> ApiResult<Reply> {
    Err(ApiError::RouteNotFound)
}
