//! The `unsubscribe` function: the link in every notification email
//! (`GET|POST /email/unsubscribe?token=…`), which needs no sign-in — the token is the
//! authority (`chat_core::unsubscribe`, HMAC-signed by the stack).
//!
//! - `POST` with `List-Unsubscribe=One-Click` in its body (RFC 8058: what a mail
//!   client's "Unsubscribe" button sends, and what the page's button sends) turns the
//!   person's email channel off, keeping their other settings.
//! - `GET` (a person who clicked the link, or a mail scanner that fetches every link)
//!   changes nothing: it answers a page with that button.
//!
//! A token that does not verify is `403` whatever the method (as a storage service
//! answers a changed signed URL), and nothing is written. A browser (`Accept:
//! text/html`) gets a page; anything else the API's JSON envelope.

use chat_core::store::Store;
use chat_core::{ApiError, ApiResult, Reply};
use lambda_http::http::HeaderValue;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

/// The routes it answers, as template.yaml declares them: public (no token).
pub const ROUTES: &[&str] = &["GET /email/unsubscribe", "POST /email/unsubscribe"];

pub struct Unsubscribe {
    store: Store,
    /// `None`: email is off in this stack, so no link is valid.
    secret: Option<String>,
}

impl Unsubscribe {
    pub fn new(runtime: chat_core::Runtime) -> Unsubscribe {
        Unsubscribe {
            secret: runtime.config.notify.email.map(|e| e.link_secret),
            store: runtime.store,
        }
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        let method = req.method().as_str().to_owned();
        let answer = self.answer(&req).await;
        // A person's browser gets a page; anything else (a mail provider's one-click
        // POST, a script) the API's JSON envelope.
        let html = req
            .headers()
            .get("accept")
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        let mut response = match (&answer, html) {
            (Ok(done), false) => {
                Reply::ok(done.title.clone(), json!({ "email": done.email_on })).into_response()
            }
            (Err(err), false) => chat_core::envelope::error_response(err),
            (Ok(done), true) => {
                page_response(200, &done.title, &done.text, done.confirm.as_deref())
            }
            (Err(err), true) => {
                let mut page = page_response(
                    err.status().as_u16(),
                    "Nothing was changed",
                    &err.to_string(),
                    None,
                );
                if let Some(retry) = chat_core::envelope::error_response(err)
                    .headers()
                    .get("retry-after")
                {
                    page.headers_mut().insert("retry-after", retry.clone());
                }
                page
            }
        };
        let headers = response.headers_mut();
        headers.insert("cache-control", HeaderValue::from_static("no-store"));
        headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
        // The token is a credential: never logged.
        tracing::info!(
            route = "/email/unsubscribe",
            method,
            status = response.status().as_u16(),
            "request"
        );
        response
    }

    async fn answer(&self, req: &Request) -> ApiResult<Done> {
        let query = req.query_string_parameters();
        let token = query.first("token").unwrap_or_default();
        let (org, user) = self
            .secret
            .as_deref()
            .and_then(|secret| chat_core::unsubscribe::verify(secret, token))
            .ok_or_else(|| ApiError::Forbidden("this unsubscribe link is not valid".into()))?;
        if req.method().as_str() == "POST" && !one_click(req.body()) {
            return Err(ApiError::invalid(
                "List-Unsubscribe",
                "a one-click unsubscribe posts List-Unsubscribe=One-Click",
            ));
        }
        let tenant = self
            .store
            .org_settings(&org)
            .await?
            .map(|s| s.name)
            .unwrap_or_else(|| org.to_string());
        if req.method().as_str() != "POST" {
            let on = self
                .store
                .notification_settings(&org, &user)
                .await?
                .channels
                .email;
            return Ok(match on {
                true => Done {
                    title: format!("Stop emails from {tenant}?"),
                    text: "You will no longer get notification emails about your conversations. You can turn them on again in your notification settings.".into(),
                    confirm: Some(token.to_owned()),
                    email_on: true,
                },
                false => Done {
                    title: "You are unsubscribed".into(),
                    text: format!("{tenant} sends you no notification emails."),
                    confirm: None,
                    email_on: false,
                },
            });
        }
        self.store.turn_email_off(&org, &user).await?;
        Ok(Done {
            title: "You are unsubscribed".into(),
            text: format!("{tenant} will no longer send you notification emails."),
            confirm: None,
            email_on: false,
        })
    }
}

/// What a valid link did (or, on GET, would do).
struct Done {
    title: String,
    text: String,
    /// On GET: the token the page's button posts.
    confirm: Option<String>,
    /// Whether the person's email channel is on now.
    email_on: bool,
}

impl chat_core::app::HttpApp for Unsubscribe {
    fn handle(&self, req: Request) -> impl Future<Output = Response<Body>> + Send {
        Unsubscribe::handle(self, req)
    }
}

/// Whether a POST body carries RFC 8058's `List-Unsubscribe=One-Click`, form-encoded
/// or as a multipart field.
fn one_click(body: &Body) -> bool {
    let text = String::from_utf8_lossy(body.as_ref());
    text.split('&')
        .any(|pair| pair.trim() == "List-Unsubscribe=One-Click")
        || (text.contains("name=\"List-Unsubscribe\"") && text.contains("One-Click"))
}

/// A small page; `confirm`: the token its button posts.
fn page_response(status: u16, title: &str, text: &str, confirm: Option<&str>) -> Response<Body> {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let form = confirm
        .map(|token| {
            format!(
                "<form method=\"post\" action=\"?token={}\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>",
                esc(token)
            )
        })
        .unwrap_or_default();
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{t}</title></head><body style=\"font-family:sans-serif;max-width:32em;margin:3em auto\"><h1>{t}</h1><p>{p}</p>{form}</body></html>",
        t = esc(title),
        p = esc(text)
    );
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header(
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        )
        .body(Body::Text(page))
        .expect("a response of a status and text")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_one_click_body_unsubscribes() {
        assert!(one_click(&Body::Text("List-Unsubscribe=One-Click".into())));
        assert!(one_click(&Body::Text(
            "a=b&List-Unsubscribe=One-Click".into()
        )));
        let multipart = "--x\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--x--";
        assert!(one_click(&Body::Text(multipart.into())));
        assert!(!one_click(&Body::Empty));
        assert!(!one_click(&Body::Text("List-Unsubscribe=Other".into())));
        assert!(!one_click(&Body::Text(
            "XList-Unsubscribe=One-Clicked".into()
        )));
    }
}
