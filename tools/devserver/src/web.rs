//! The reference web client on the local stack: the files of `web/` under `/app/`,
//! its `config.json` naming this stack's URLs, and — local only, never in a deployed
//! build — `/_local/token`, which mints a token for any user, tenant and role (the
//! page `web/dev/token.html` uses it).

use http_body_util::Full;
use hyper::body::Bytes;
use serde_json::json;
use std::path::PathBuf;

pub const PREFIX: &str = "/app/";
const TOKEN_PATH: &str = "/_local/token";

pub struct WebClient {
    root: PathBuf,
    config: String,
}

impl WebClient {
    /// `web/` of this repository, for the API at `api` and the WebSocket API at `ws`.
    /// With `auth` (an identity provider's `authorize_url`, `token_url`, `client_id`,
    /// `scope`), the console signs in there as a deployed one does, instead of with
    /// local tokens.
    pub fn new(api: &str, ws: &str, ai: bool, auth: Option<serde_json::Value>) -> WebClient {
        let local = auth.is_none();
        WebClient {
            root: chat_testkit::repo_root().join("web"),
            config: json!({ "api": api, "ws": ws, "ai": ai, "local": local, "auth": auth })
                .to_string(),
        }
    }

    /// The answer for a request the web client serves, if it is one.
    pub fn answer(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
    ) -> Option<hyper::Response<Full<Bytes>>> {
        if method != "GET" && method != "HEAD" {
            return None;
        }
        if path == TOKEN_PATH {
            return Some(token(query.unwrap_or_default()));
        }
        let file = path.strip_prefix(PREFIX)?;
        let file = if file.is_empty() { "index.html" } else { file };
        if file == "config.json" {
            return Some(response(
                200,
                "application/json",
                self.config.clone().into(),
            ));
        }
        // Plain names only: no way out of web/.
        let safe = file
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && !part.contains('\\'));
        let body = safe
            .then(|| std::fs::read(self.root.join(file)).ok())
            .flatten();
        Some(match body {
            Some(body) => response(200, content_type(file), body.into()),
            None => response(404, "text/plain", Bytes::from_static(b"not found")),
        })
    }
}

/// `/_local/token?sub=&org=&role=`: a local-secret token, 12 hours.
fn token(query: &str) -> hyper::Response<Full<Bytes>> {
    let param = |name: &str, default: &str| {
        query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| chat_testkit::percent_decode(v))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    let role = param("role", "customer");
    if !["customer", "agent", "admin"].contains(&role.as_str()) {
        return response(
            400,
            "application/json",
            json!({"message": "role is customer, agent or admin"})
                .to_string()
                .into(),
        );
    }
    let spec = chat_testkit::TokenSpec::new(&param("sub", "u-100"), &param("org", "acme"), &role);
    response(
        200,
        "application/json",
        json!({ "token": spec.mint(), "local_only": true })
            .to_string()
            .into(),
    )
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn response(status: u16, content_type: &'static str, body: Bytes) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        hyper::header::HeaderValue::from_static(content_type),
    );
    // Always the files as they are on disk: this is a development server.
    headers.insert(
        "cache-control",
        hyper::header::HeaderValue::from_static("no-store"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_web_files_config_and_local_tokens_and_nothing_outside() {
        let web = WebClient::new("http://127.0.0.1:3000", "ws://127.0.0.1:3001", false, None);
        let ok = |path: &str| web.answer("GET", path, None).map(|r| r.status().as_u16());
        assert_eq!(ok("/app/console.html"), Some(200));
        assert_eq!(ok("/app/lib/chat.js"), Some(200));
        assert_eq!(ok("/app/config.json"), Some(200));
        assert_eq!(ok("/app/../Cargo.toml"), Some(404));
        assert_eq!(ok("/app/.hidden"), Some(404));
        assert_eq!(ok("/rooms"), None, "API routes are not the web client's");
        assert_eq!(
            web.answer("POST", "/app/console.html", None)
                .map(|r| r.status()),
            None
        );
        let minted = web
            .answer("GET", TOKEN_PATH, Some("sub=a-1&role=agent"))
            .unwrap();
        assert_eq!(minted.status(), 200);
        let refused = web.answer("GET", TOKEN_PATH, Some("role=root")).unwrap();
        assert_eq!(refused.status(), 400);
    }
}
