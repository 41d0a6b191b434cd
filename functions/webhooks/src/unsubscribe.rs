//! The `unsubscribe` function: the signed links of notification emails, which need
//! no sign-in — the token is the authority (`chat_core::unsubscribe`, HMAC-signed by
//! the stack).
//!
//! `GET|POST /email/unsubscribe?token=…`, the link in every notification email:
//! - `POST` with `List-Unsubscribe=One-Click` in its body (RFC 8058: what a mail
//!   client's "Unsubscribe" button sends, and what the page's button sends) turns the
//!   person's email channel off, keeping their other settings.
//! - `GET` (a person who clicked the link, or a mail scanner that fetches every link)
//!   changes nothing: it answers a page with that button.
//!
//! `GET|POST /email/rating?token=…`, the links of a rating request (CSAT,
//! docs/support.md), one per score:
//! - `GET` changes nothing (scanners fetch links): a page with the score clicked
//!   chosen, a comment box and a button.
//! - `POST` (the page's form, or JSON as `POST /chat/conversations/{id}/rating`
//!   takes) rates the resolution the link names, as its customer, by the API's rules:
//!   once per resolution (`409 already_rated`), not after the conversation was
//!   reopened (`409 not_resolved`) or resolved again (`409 resolution_passed`).
//!
//! A token that does not verify is `403` whatever the method (as a storage service
//! answers a changed signed URL), and nothing is written. A browser (`Accept:
//! text/html`) gets a page; anything else the API's JSON envelope.

use chat_core::commands::conversations::{NewRating, RateConversation, RatingForm};
use chat_core::policy::{self, Action};
use chat_core::request::json_body;
use chat_core::store::Store;
use chat_core::unsubscribe::RatingLink;
use chat_core::{ApiError, ApiResult, Principal, Reply};
use lambda_http::http::HeaderValue;
use lambda_http::{Body, Request, RequestExt, RequestPayloadExt, Response};
use serde_json::{Value, json};

/// The routes it answers, as template.yaml declares them: public (no token).
pub const ROUTES: &[&str] = &[
    "GET /email/unsubscribe",
    "POST /email/unsubscribe",
    "GET /email/rating",
    "POST /email/rating",
];

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
        let route = chat_core::app::route_key(&req)
            .and_then(|key| key.split_once(' '))
            .map(|(_, path)| path.to_owned())
            .unwrap_or_default();
        let answer = match route.as_str() {
            "/email/rating" => self.rating(&req).await,
            _ => self.unsubscribe(&req).await,
        };
        // A person's browser gets a page; anything else (a mail provider's one-click
        // POST, a script) the API's JSON envelope.
        let html = req
            .headers()
            .get("accept")
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        let mut response = match (&answer, html) {
            (Ok(done), false) => match done.created {
                true => Reply::created(done.title.clone(), &done.data),
                false => Reply::ok(done.title.clone(), &done.data),
            }
            .into_response(),
            (Err(err), false) => chat_core::envelope::error_response(err),
            (Ok(done), true) => page_response(
                if done.created { 201 } else { 200 },
                &done.title,
                &done.text,
                done.form.as_deref(),
            ),
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
            route,
            method,
            status = response.status().as_u16(),
            "request"
        );
        response
    }

    async fn unsubscribe(&self, req: &Request) -> ApiResult<Done> {
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
        let tenant = self.store.tenant_name(&org).await?;
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
                    form: Some(format!(
                        "<form method=\"post\" action=\"?token={}\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>",
                        escape(token)
                    )),
                    ..Done::of(json!({ "email": true }))
                },
                false => Done {
                    title: "You are unsubscribed".into(),
                    text: format!("{tenant} sends you no notification emails."),
                    ..Done::of(json!({ "email": false }))
                },
            });
        }
        self.store.turn_email_off(&org, &user).await?;
        Ok(Done {
            title: "You are unsubscribed".into(),
            text: format!("{tenant} will no longer send you notification emails."),
            ..Done::of(json!({ "email": false }))
        })
    }

    /// A rating link: the page (GET), or the rating (POST) — the token first, then the
    /// conversation as its customer sees it and their right, then the form.
    async fn rating(&self, req: &Request) -> ApiResult<Done> {
        let query = req.query_string_parameters();
        let token = query.first("token").unwrap_or_default();
        let link = self
            .secret
            .as_deref()
            .and_then(|secret| RatingLink::verify(secret, token))
            .ok_or_else(|| ApiError::Forbidden("this rating link is not valid".into()))?;
        let who = Principal {
            user: link.user.clone(),
            org: link.org.clone(),
            role: chat_core::ids::Role::Customer,
        };
        let room = self.store.visible_room(&who, &link.room).await?;
        policy::require(
            Action::RateConversation,
            &who,
            policy::relation_to(&who, &room),
        )?;
        let tenant = self.store.tenant_name(&link.org).await?;
        let data = |room: &chat_core::model::Room| json!({ "conversation_id": room.id, "title": room.title, "rating": room.rating });
        if req.method().as_str() == "POST" {
            let json = req
                .headers()
                .get("content-type")
                .and_then(|c| c.to_str().ok())
                .is_some_and(|c| c.starts_with("application/json"));
            let rating = match json {
                true => NewRating::try_from(json_body::<RateConversation>(req)?)?,
                false => NewRating::try_from(
                    req.payload::<RatingForm>()
                        .map_err(|_| {
                            ApiError::invalid("body", "a form of rating (1 to 5) and comment")
                        })?
                        .unwrap_or(RatingForm {
                            rating: None,
                            comment: None,
                        }),
                )?,
            };
            let score = rating.score;
            let room = self
                .store
                .rate_conversation(&who, room, rating, Some(&link.resolution))
                .await?;
            return Ok(Done {
                title: "Thanks for your rating".into(),
                text: format!(
                    "You rated {tenant}'s help with “{}” {score} – {}.",
                    room.title,
                    crate::email::SCORE_WORDS[usize::from(score - 1)]
                ),
                created: true,
                ..Done::of(data(&room))
            });
        }
        if let Some(rating) = room
            .rating
            .as_ref()
            .filter(|r| r.rated_for == link.resolution)
        {
            return Ok(Done {
                title: "Thanks for your rating".into(),
                text: format!(
                    "You rated {tenant}'s help with “{}” {} – {}.",
                    room.title,
                    rating.score,
                    crate::email::SCORE_WORDS[usize::from(rating.score.clamp(1, 5) - 1)]
                ),
                ..Done::of(data(&room))
            });
        }
        // The codes of the POST's rules (shared/src/store/rating.rs), so the page
        // and the button never disagree.
        if !room.status.is_closed() {
            return Err(ApiError::Conflict {
                code: "not_resolved",
                message: "the conversation was reopened since this mail; it is rated once it is resolved again".into(),
            });
        }
        if room.closed_at.as_deref() != Some(&link.resolution) {
            return Err(ApiError::Conflict {
                code: "resolution_passed",
                message: "the conversation was resolved again since this mail; that resolution's mail asks for its rating".into(),
            });
        }
        let chosen = query.first("rating").unwrap_or_default();
        let mut form = format!(
            "<form method=\"post\" action=\"?token={}\"><p>",
            escape(token)
        );
        for (n, words) in (1..=5u8).zip(crate::email::SCORE_WORDS) {
            let checked = if chosen == n.to_string() {
                " checked"
            } else {
                ""
            };
            form.push_str(&format!(
                "<label style=\"display:block\"><input type=\"radio\" name=\"rating\" value=\"{n}\" required{checked}> {n} – {words}</label>"
            ));
        }
        form.push_str("</p><p><label>Anything to add? (optional)<br><textarea name=\"comment\" maxlength=\"1000\" rows=\"4\" style=\"width:100%\"></textarea></label></p><button type=\"submit\">Send rating</button></form>");
        Ok(Done {
            title: format!("How did {tenant} do?"),
            text: format!("Your conversation “{}” was resolved.", room.title),
            form: Some(form),
            ..Done::of(data(&room))
        })
    }
}

/// What a valid link did (or, on GET, would do).
struct Done {
    title: String,
    text: String,
    /// On a page: the form of its button.
    form: Option<String>,
    /// What the JSON answer carries.
    data: Value,
    /// Something was made (a rating): `201`.
    created: bool,
}

impl Done {
    fn of(data: Value) -> Done {
        Done {
            title: String::new(),
            text: String::new(),
            form: None,
            data,
            created: false,
        }
    }
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

/// Text made safe inside HTML elements and attribute values.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A small page; `form`: its form, already made safe.
fn page_response(status: u16, title: &str, text: &str, form: Option<&str>) -> Response<Body> {
    let form = form.unwrap_or_default();
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{t}</title></head><body style=\"font-family:sans-serif;max-width:32em;margin:3em auto\"><h1>{t}</h1><p>{p}</p>{form}</body></html>",
        t = escape(title),
        p = escape(text)
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
