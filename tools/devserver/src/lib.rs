//! The local API: routes requests exactly as template.yaml's HttpApi does, into the
//! same handlers the Lambda functions run.

use chat_core::Runtime;
use chat_testkit::{HttpEvent, Route};
use lambda_http::{Body, Request, Response};
use std::collections::HashMap;

/// The route keys each function (template logical id) declares in its crate.
pub fn declared_routes() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("RoomsFunction", rooms::ROUTES),
        ("ConversationsFunction", conversations::ROUTES),
        ("MessagesFunction", messages::ROUTES),
        ("AnalyticsFunction", analytics::ROUTES),
    ]
}

pub struct Apps {
    rooms: rooms::App,
    conversations: conversations::App,
    messages: messages::App,
    analytics: analytics::App,
}

impl Apps {
    pub fn new(runtime: Runtime) -> Self {
        Apps {
            rooms: rooms::App::new(runtime.clone()),
            conversations: conversations::App::new(runtime.clone()),
            messages: messages::App::new(runtime.clone()),
            analytics: analytics::App::new(runtime),
        }
    }

    pub async fn call(&self, function: &str, req: Request) -> Option<Response<Body>> {
        Some(match function {
            "RoomsFunction" => self.rooms.handle(req).await,
            "ConversationsFunction" => self.conversations.handle(req).await,
            "MessagesFunction" => self.messages.handle(req).await,
            "AnalyticsFunction" => self.analytics.handle(req).await,
            _ => return None,
        })
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
    let raw = raw.replace('+', " ");
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&raw[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
