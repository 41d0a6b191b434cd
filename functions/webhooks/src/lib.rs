//! The `webhooks` function: a tenant's webhook endpoints, managed by its admins. The
//! secret is shown once, when an endpoint is made or its secret rotated (docs/webhooks.md).

pub mod delivery;
pub mod email;
pub mod inbound;
pub mod mobile;
pub mod notify;
pub mod reply_text;
pub mod unsubscribe;

pub use delivery::Deliverer;
pub use inbound::Inbound;
pub use notify::Notifier;

use chat_core::app::path_param;
use chat_core::auth::Principal;
use chat_core::ids::{DeliveryId, WebhookId, path_id};
use chat_core::policy::{self, Action, Relation};
use chat_core::request::{Query, json_body};
use chat_core::store::Store;
use chat_core::store::{DeliveryStatus, MAX_DELIVERIES_PAGE, Webhook};
use chat_core::webhooks::{
    NewWebhookBody, ReplayBody, ReplayFrom, WebhookChanges, WebhookChangesBody, WebhookDraft,
};
use chat_core::{ApiResult, Reply};
use lambda_http::Request;
use serde_json::json;

chat_core::route_table! { app: App, who, req;
    "POST /webhooks" => create(app, who, req),
    "GET /webhooks" => list(&app.store, who),
    "GET /webhooks/{webhook_id}" => get(&app.store, who, req),
    "PATCH /webhooks/{webhook_id}" => update(app, who, req),
    "DELETE /webhooks/{webhook_id}" => delete(&app.store, who, req),
    "POST /webhooks/{webhook_id}/rotate-secret" => rotate(&app.store, who, req),
    "GET /webhooks/{webhook_id}/deliveries" => deliveries(&app.store, who, req),
    "POST /webhooks/{webhook_id}/deliveries/{delivery_id}/retry" => retry(&app.store, who, req),
    "POST /webhooks/{webhook_id}/replay" => replay(&app.store, who, req),
    "GET /events" => tenant_events(&app.store, who, req),
}

/// This function's app: built once per cold start, then answers every event.
pub struct App {
    auth: chat_core::auth::AuthConfig,
    store: Store,
    /// The local stack's own tests may register http://127.0.0.1 receivers.
    allow_loopback: bool,
}

impl App {
    pub fn new(runtime: chat_core::Runtime) -> Self {
        App {
            allow_loopback: runtime.config.local,
            auth: runtime.config.auth,
            store: runtime.store,
        }
    }
}

/// Admins only, decided before anything is read or validated.
fn admin(who: &Principal) -> ApiResult<()> {
    Ok(policy::require(
        Action::ManageWebhooks,
        who,
        Relation::default(),
    )?)
}

fn webhook_id(req: &Request) -> ApiResult<WebhookId> {
    path_id(path_param(req, "webhook_id"), "webhook")
}

/// A retry or a replay to a disabled endpoint would only fail again.
fn ensure_enabled(webhook: &Webhook) -> ApiResult<()> {
    if !webhook.enabled {
        return Err(chat_core::ApiError::Conflict {
            code: "webhook_disabled",
            message: "the endpoint is disabled; enable it (PATCH enabled: true) first".into(),
        });
    }
    Ok(())
}

async fn create(app: &App, who: &Principal, req: &Request) -> ApiResult<Reply> {
    admin(who)?;
    let draft = WebhookDraft::from_body(json_body::<NewWebhookBody>(req)?, app.allow_loopback)?;
    let webhook = app.store.create_webhook(&who.org, draft).await?;
    let mut body = webhook.json();
    // Shown this once: keep it to verify signatures.
    body["secret"] = json!(webhook.secrets[0].secret);
    Ok(Reply::created(
        "Webhook created; keep its secret, it is not shown again",
        body,
    ))
}

async fn list(store: &Store, who: &Principal) -> ApiResult<Reply> {
    admin(who)?;
    let webhooks: Vec<_> = store
        .list_webhooks(&who.org)
        .await?
        .iter()
        .map(|w| w.json())
        .collect();
    Ok(Reply::ok(
        format!("Found {} webhooks", webhooks.len()),
        json!({ "webhooks": webhooks }),
    ))
}

async fn get(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    admin(who)?;
    let webhook = store.get_webhook(&who.org, &webhook_id(req)?).await?;
    Ok(Reply::ok("Webhook", webhook.json()))
}

async fn update(app: &App, who: &Principal, req: &Request) -> ApiResult<Reply> {
    admin(who)?;
    let id = webhook_id(req)?;
    let changes =
        WebhookChanges::from_body(json_body::<WebhookChangesBody>(req)?, app.allow_loopback)?;
    let webhook = app.store.update_webhook(&who.org, &id, &changes).await?;
    Ok(Reply::ok("Webhook updated", webhook.json()))
}

async fn delete(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    admin(who)?;
    let id = webhook_id(req)?;
    store.delete_webhook(&who.org, &id).await?;
    Ok(Reply::ok("Webhook deleted", json!({ "id": id.as_str() })))
}

async fn rotate(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    admin(who)?;
    let (webhook, secret) = store
        .rotate_webhook_secret(&who.org, &webhook_id(req)?)
        .await?;
    let mut body = webhook.json();
    body["secret"] = json!(secret);
    Ok(Reply::ok(
        "Secret rotated: both secrets sign until previous_secret_expires_at",
        body,
    ))
}

/// The tenant's changes of every room, oldest first, for a receiver catching up by
/// itself (admins): page with `after=<next_after>` until `next_after` is null.
async fn tenant_events(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    admin(who)?;
    let q = Query::of(req);
    let limit = q.limit(100, chat_core::store::MAX_EVENTS_PAGE)?;
    let page = store.tenant_events(&who.org, q.get("after"), limit).await?;
    let events: Vec<serde_json::Value> = page
        .events
        .iter()
        .filter_map(|e| serde_json::from_str(&e.json_for(true)).ok())
        .collect();
    Ok(Reply::ok(
        format!("Found {} events", events.len()),
        json!({ "events": events, "next_after": page.next_after, "has_more": page.next_after.is_some() }),
    ))
}

/// An endpoint's deliveries, newest first: status, attempts, last answer, next attempt.
async fn deliveries(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    admin(who)?;
    let id = webhook_id(req)?;
    let q = Query::of(req);
    let limit = q.limit(20, MAX_DELIVERIES_PAGE)?;
    let status = q
        .get("status")
        .map(|raw| {
            DeliveryStatus::parse(raw).ok_or_else(|| {
                chat_core::ApiError::invalid("status", "one of pending, delivered, failed")
            })
        })
        .transpose()?;
    store.get_webhook(&who.org, &id).await?;
    let page = store
        .list_deliveries(&who.org, &id, status, q.get("cursor"), limit)
        .await?;
    let deliveries: Vec<serde_json::Value> = page.items.iter().map(|d| d.json()).collect();
    Ok(Reply::ok(
        format!("Found {} deliveries", deliveries.len()),
        json!({
            "deliveries": deliveries,
            "next_cursor": page.next_cursor,
            "has_more": page.next_cursor.is_some(),
        }),
    ))
}

/// Sends a delivery again (same `webhook-id`) on a fresh schedule: 202, attempted
/// within the minute.
async fn retry(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    admin(who)?;
    let delivery: DeliveryId = path_id(path_param(req, "delivery_id"), "delivery")?;
    let webhook = store.get_webhook(&who.org, &webhook_id(req)?).await?;
    ensure_enabled(&webhook)?;
    let retried = store.retry_delivery(&webhook, &who.org, &delivery).await?;
    Ok(Reply::with_status(
        lambda_http::http::StatusCode::ACCEPTED,
        "Delivery queued for another attempt",
        retried.json(),
    ))
}

/// Delivers the feed again from a room's `seq` or a time: new deliveries (new ids,
/// the events' own `seq`), attempted within the minute.
async fn replay(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    admin(who)?;
    let webhook = store.get_webhook(&who.org, &webhook_id(req)?).await?;
    let from = ReplayFrom::try_from(json_body::<ReplayBody>(req)?)?;
    ensure_enabled(&webhook)?;
    let replayed = store.replay(&webhook, &who.org, &from).await?;
    Ok(Reply::with_status(
        lambda_http::http::StatusCode::ACCEPTED,
        format!("{} deliveries queued", replayed.deliveries),
        json!({
            "deliveries": replayed.deliveries,
            "next": replayed.next.as_ref().map(ReplayFrom::json),
            "has_more": replayed.next.is_some(),
        }),
    ))
}
