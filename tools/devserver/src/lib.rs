//! The local API: routes requests exactly as template.yaml's HttpApi does, into the
//! same handlers the Lambda functions run.

pub mod delivery;
pub mod lambda;
pub mod notify;
pub mod privacy_jobs;
pub mod realtime;
pub mod receiver;
pub mod support_jobs;
pub mod test_app;
pub mod web;

use chat_core::Runtime;
use chat_testkit::{HttpEvent, Route};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::{Body, Request, Response};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
pub use test_app::TestApp;

/// Routes that take no token: what authorizes them is in the request itself (the
/// signed unsubscribe link of a notification email).
pub const PUBLIC_ROUTES: &[&str] = webhooks::unsubscribe::ROUTES;

/// The route keys each function (template logical id) declares in its crate.
pub fn declared_routes() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("RoomsFunction", rooms::ROUTES),
        ("ConversationsFunction", conversations::ROUTES),
        ("MessagesFunction", messages::ROUTES),
        ("AnalyticsFunction", analytics::ROUTES),
        ("WebhooksFunction", webhooks::ROUTES),
        ("PrivacyFunction", privacy::ROUTES),
        ("UnsubscribeFunction", webhooks::unsubscribe::ROUTES),
    ]
}

pub struct Apps {
    rooms: rooms::App,
    conversations: conversations::App,
    messages: messages::App,
    analytics: analytics::App,
    webhooks: webhooks::App,
    privacy: privacy::App,
    unsubscribe: webhooks::unsubscribe::Unsubscribe,
}

impl Apps {
    /// With AI replies off.
    pub fn new(runtime: Runtime) -> Self {
        Self::with_ai(runtime, messages::ai::Ai::off())
    }

    pub fn with_ai(runtime: Runtime, ai: messages::ai::Ai) -> Self {
        Apps {
            rooms: rooms::App::new(runtime.clone()),
            conversations: conversations::App::new(runtime.clone()),
            messages: messages::App::with_ai(runtime.clone(), ai),
            webhooks: webhooks::App::new(runtime.clone()),
            privacy: privacy::App::new(runtime.clone()),
            unsubscribe: webhooks::unsubscribe::Unsubscribe::new(runtime.clone()),
            analytics: analytics::App::new(runtime),
        }
    }

    pub async fn call(&self, function: &str, req: Request) -> Option<Response<Body>> {
        // Each function's future boxed: a caller's future holds a pointer, not the
        // largest of seven deep state machines (their nesting passes the compiler's
        // layout depth in callers that join many calls).
        let handled: std::pin::Pin<Box<dyn Future<Output = Response<Body>> + Send + '_>> =
            match function {
                "RoomsFunction" => Box::pin(self.rooms.handle(req)),
                "ConversationsFunction" => Box::pin(self.conversations.handle(req)),
                "MessagesFunction" => Box::pin(self.messages.handle(req)),
                "AnalyticsFunction" => Box::pin(self.analytics.handle(req)),
                "WebhooksFunction" => Box::pin(self.webhooks.handle(req)),
                "PrivacyFunction" => Box::pin(self.privacy.handle(req)),
                "UnsubscribeFunction" => Box::pin(self.unsubscribe.handle(req)),
                _ => return None,
            };
        Some(handled.await)
    }
}

/// Finds the template route for a request, as API Gateway does: a literal segment
/// beats a parameter (`/profiles/me` before `/profiles/{user_id}`).
pub fn find_route<'a>(
    routes: &'a [Route],
    method: &str,
    path: &str,
) -> Option<(&'a Route, HashMap<String, String>)> {
    routes
        .iter()
        .filter_map(|r| r.matches(method, path).map(|params| (r, params)))
        .min_by_key(|(r, _)| r.path.matches('{').count())
}

/// Builds the payload 2.0 event API Gateway would send for this request.
pub fn event_for(
    route: &Route,
    params: HashMap<String, String>,
    path: &str,
    query: Option<&str>,
    headers: &[(String, String)],
    body: Option<String>,
) -> HttpEvent {
    let mut event = HttpEvent::new(&route.key(), path);
    event.path_parameters = params;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        event = event.query(&decode_component(k), &decode_component(v));
    }
    for (k, v) in headers {
        event = event.header(k, v);
    }
    event.body = body;
    event
}

fn decode_component(raw: &str) -> String {
    chat_testkit::percent_decode(&raw.replace('+', " "))
}

/// Serves HTTP/1.1 on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: Arc<Vec<Route>>,
    apps: Arc<Apps>,
) -> std::io::Result<()> {
    serve_with(listener, routes, apps, None).await
}

/// [`serve`], with the web client (`web/` under `/app/`) when given.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    routes: Arc<Vec<Route>>,
    apps: Arc<Apps>,
    web: Option<Arc<web::WebClient>>,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let (routes, apps, web) = (routes.clone(), apps.clone(), web.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<Incoming>| {
                let (routes, apps, web) = (routes.clone(), apps.clone(), web.clone());
                async move {
                    let page = web.as_ref().and_then(|web| {
                        web.answer(req.method().as_str(), req.uri().path(), req.uri().query())
                    });
                    Ok::<_, Infallible>(match page {
                        Some(page) => page,
                        None => handle(&routes, &apps, req).await,
                    })
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    routes: &[Route],
    apps: &Apps,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let Some((route, params)) = find_route(routes, parts.method.as_str(), &path) else {
        // What API Gateway answers for a route it does not have.
        return plain(404, r#"{"message":"Not Found"}"#);
    };
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return plain(400, r#"{"message":"Bad Request"}"#),
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    let body = (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned());
    let event = event_for(route, params, &path, parts.uri.query(), &headers, body);
    let Some(response) = apps.call(&route.function, event.request()).await else {
        return plain(500, r#"{"message":"Internal Server Error"}"#);
    };
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}

fn plain(status: u16, body: &'static str) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::NOT_FOUND);
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
