//! The `privacy` function: the tenant's audit log for its admins, a person's data
//! exports and erasures, and the tenant's retention policy (docs/data-protection.md);
//! the `privacy-jobs` binary runs the exports, erasures and the retention sweep.

pub mod erase;
pub mod export;
pub mod retention;
pub mod tar;

pub use erase::Eraser;
pub use export::Exporter;
pub use retention::{SweepLimits, SweepSummary, Sweeper};

/// The data-protection jobs: exports and erasures (the table's stream starts them)
/// and the retention sweep (the schedule's).
pub struct Jobs {
    pub exporter: Exporter,
    pub eraser: Eraser,
    pub sweeper: Sweeper,
}

impl Jobs {
    pub fn from_runtime(runtime: chat_core::Runtime) -> Jobs {
        let uploads = || uploads_of(&runtime);
        Jobs {
            exporter: Exporter::new(runtime.store.clone(), uploads()),
            eraser: Eraser::new(runtime.store.clone(), uploads()),
            sweeper: Sweeper::new(runtime.store.clone(), uploads(), SweepLimits::from_env()),
        }
    }

    /// An invocation: the schedule's event runs a retention sweep, a stream batch its
    /// jobs. A sweep that failed is an error, so the invocation shows as failed (the
    /// next one resumes from the saved progress).
    pub async fn handle(&self, event: &serde_json::Value) -> Result<serde_json::Value, ApiError> {
        if event.get("Records").is_some() {
            return Ok(self.on_stream(event).await);
        }
        let summary = self.sweeper.run().await.inspect_err(|err| {
            tracing::error!(error = %err, "retention sweep stopped; the next run resumes");
        })?;
        tracing::info!(?summary, "retention sweep");
        Ok(json!({ "retention": summary }))
    }

    /// A stream batch of new job records (by the mapping's filter): each job run; one
    /// that failed is reported, so the stream retries it (resumed).
    pub async fn on_stream(&self, batch: &serde_json::Value) -> serde_json::Value {
        use chat_core::keys;
        let mut failures = Vec::new();
        for record in batch["Records"].as_array().into_iter().flatten() {
            let image = &record["dynamodb"]["NewImage"];
            let field = |name: &str| image[name]["S"].as_str().unwrap_or_default();
            let outcome = match field(keys::ENTITY) {
                keys::entity::EXPORT => self.exporter.run_record(image).await,
                keys::entity::ERASURE => match (
                    chat_core::ids::OrgId::parse(field("org")),
                    ErasureId::parse(field("erasure_id")),
                ) {
                    (Ok(org), Ok(id)) => self.eraser.run(&org, &id).await.map(|o| format!("{o:?}")),
                    _ => Ok("an erasure record without its ids".to_owned()),
                },
                other => Ok(format!("not a job: {other}")),
            };
            match outcome {
                Ok(outcome) => tracing::info!(outcome, "data protection job"),
                Err(err) => {
                    tracing::error!(error = %err, "data protection job interrupted; retried from where it stopped");
                    if let Some(seq) = record["dynamodb"]["SequenceNumber"].as_str() {
                        failures.push(json!({"itemIdentifier": seq}));
                    }
                }
            }
        }
        json!({"batchItemFailures": failures})
    }
}

use chat_core::app::path_param;
use chat_core::auth::Principal;
use chat_core::commands::retention::PutRetention;
use chat_core::ids::{ErasureId, ExportId, UserId, path_id};
use chat_core::policy::{self, Action, Relation};
use chat_core::request::Query;
use chat_core::request::json_body;
use chat_core::store::{AuditQuery, MAX_AUDIT_PAGE, Store};
use chat_core::store::{Erasure, Export, ExportStatus, RetentionPolicy, user_digest};
use chat_core::uploads::{Served, Uploads};
use chat_core::{ApiError, ApiResult, Reply};
use lambda_http::Request;
use serde_json::json;
use time::{Date, OffsetDateTime, Time};

chat_core::route_table! { app: App, who, req;
    "GET /admin/audit" => audit(&app.store, who, req),
    "POST /admin/users/{user_id}/export" => export_of(app, who, req),
    "GET /admin/users/{user_id}/exports/{export_id}" => export_status_of(app, who, req),
    "POST /me/export" => export_mine(app, who),
    "GET /me/exports/{export_id}" => export_status_mine(app, who, req),
    "POST /admin/users/{user_id}/erase" => erase(app, who, req),
    "GET /admin/users/{user_id}/erasures/{erasure_id}" => erasure_status(app, who, req),
    "GET /admin/settings/retention" => get_retention(&app.store, who),
    "PUT /admin/settings/retention" => put_retention(&app.store, who, req),
}

/// This function's app: built once per cold start, then answers every event.
pub struct App {
    auth: chat_core::auth::AuthConfig,
    store: Store,
    /// The bucket of the archives; off without one (exports then answer 503).
    uploads: Option<Uploads>,
}

impl App {
    pub fn new(runtime: chat_core::Runtime) -> Self {
        App {
            uploads: uploads_of(&runtime),
            auth: runtime.config.auth,
            store: runtime.store,
        }
    }
}

/// The uploads bucket of `runtime`'s configuration, if it has one.
pub fn uploads_of(runtime: &chat_core::Runtime) -> Option<Uploads> {
    runtime
        .config
        .uploads
        .clone()
        .map(|config| Uploads::new(config, runtime.config.aws.clone()))
}

/// How long an archive's link works.
pub const DOWNLOAD_LINK_SECS: u64 = 24 * 3600;

/// Admins only, decided before anything is read or validated.
fn admin(who: &Principal) -> ApiResult<()> {
    Ok(policy::require(
        Action::ManageDataProtection,
        who,
        Relation::default(),
    )?)
}

/// A bound of a time range: an RFC 3339 time, or a day (`YYYY-MM-DD`: its first
/// millisecond for `from`, its last for `to`).
fn bound(field: &str, raw: &str, end_of_day: bool) -> ApiResult<String> {
    let day_format = time::macros::format_description!("[year]-[month]-[day]");
    let at = match Date::parse(raw, &day_format) {
        Ok(day) if end_of_day => day.with_time(Time::from_hms_milli(23, 59, 59, 999).unwrap()),
        Ok(day) => day.midnight(),
        Err(_) => chat_core::time::parse(raw)
            .map(|at| {
                let utc = at.to_offset(time::UtcOffset::UTC);
                time::PrimitiveDateTime::new(utc.date(), utc.time())
            })
            .ok_or_else(|| {
                ApiError::invalid(field, "must be an RFC 3339 time or a YYYY-MM-DD day")
            })?,
    };
    Ok(chat_core::time::format(at.assume_utc()))
}

/// `GET /admin/audit?from=&to=&actor=&action=&cursor=&limit=`: the tenant's entries,
/// newest first.
async fn audit(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    admin(who)?;
    let q = Query::of(req);
    let limit = q.limit(50, MAX_AUDIT_PAGE)?;
    let from = match q.get("from") {
        Some(raw) => bound("from", raw, false)?,
        None => chat_core::time::format(OffsetDateTime::UNIX_EPOCH),
    };
    let to = match q.get("to") {
        Some(raw) => bound("to", raw, true)?,
        None => chat_core::time::now_string(),
    };
    if from > to {
        return Err(ApiError::invalid("from", "must not be after to"));
    }
    let actor = q
        .get("actor")
        .map(|raw| {
            chat_core::ids::UserId::parse(raw)
                .map(|id| id.to_string())
                .map_err(|e| ApiError::invalid("actor", e))
        })
        .transpose()?;
    let action = q
        .get("action")
        .map(|raw| {
            let known = chat_core::audit::actions();
            known
                .iter()
                .find(|a| **a == raw)
                .map(|a| (*a).to_owned())
                .ok_or_else(|| ApiError::invalid("action", format!("one of {}", known.join(", "))))
        })
        .transpose()?;
    let query = AuditQuery {
        from,
        to,
        actor,
        action,
    };
    let page = store
        .list_audit(&who.org, &query, q.get("cursor"), limit)
        .await?;
    let entries: Vec<serde_json::Value> = page.items.iter().map(|e| e.json()).collect();
    Ok(Reply::ok(
        format!("Found {} audit entries", entries.len()),
        json!({
            "entries": entries,
            "next_cursor": page.next_cursor,
            "has_more": page.next_cursor.is_some(),
        }),
    ))
}

fn uploads(app: &App) -> ApiResult<&Uploads> {
    app.uploads.as_ref().ok_or_else(|| ApiError::Unavailable {
        code: "uploads_unavailable",
        message:
            "exports are written to the uploads bucket, which is not configured (UPLOADS_BUCKET)"
                .into(),
        retry_after_secs: 60,
    })
}

fn target_user(req: &Request) -> ApiResult<UserId> {
    path_param(req, "user_id")
        .and_then(|u| UserId::parse(u).ok())
        .ok_or(ApiError::NotFound("user"))
}

fn export_id(req: &Request) -> ApiResult<ExportId> {
    path_id(path_param(req, "export_id"), "export")
}

/// `POST /admin/users/{user_id}/export`: an admin asks for a person's data. A person
/// the tenant does not know is 404 (another tenant's user is not known here).
async fn export_of(app: &App, who: &Principal, req: &Request) -> ApiResult<Reply> {
    admin(who)?;
    let user = target_user(req)?;
    uploads(app)?;
    if !app.store.knows_user(&who.org, &user).await? {
        return Err(ApiError::NotFound("user"));
    }
    start(app, Export::new(&who.org, &user, &who.user, false)).await
}

/// `POST /me/export`: a person asks for their own data.
async fn export_mine(app: &App, who: &Principal) -> ApiResult<Reply> {
    uploads(app)?;
    start(
        app,
        Export::new(&who.org, &who.user, &who.user, who.role.is_staff()),
    )
    .await
}

async fn start(app: &App, export: Export) -> ApiResult<Reply> {
    app.store.start_export(&export).await?;
    Ok(Reply::with_status(
        lambda_http::http::StatusCode::ACCEPTED,
        "Export started: its status shows the progress and, when done, the download link",
        export.json(),
    ))
}

async fn export_status_of(app: &App, who: &Principal, req: &Request) -> ApiResult<Reply> {
    admin(who)?;
    let user = target_user(req)?;
    status(app, who, &user, &export_id(req)?).await
}

async fn export_status_mine(app: &App, who: &Principal, req: &Request) -> ApiResult<Reply> {
    status(app, who, &who.user, &export_id(req)?).await
}

/// An export's status; a finished one's presigned download link (24 h).
async fn status(app: &App, who: &Principal, user: &UserId, id: &ExportId) -> ApiResult<Reply> {
    let export = app
        .store
        .get_export(&who.org, user, id)
        .await?
        .ok_or(ApiError::NotFound("export"))?;
    let mut data = export.json();
    if let (ExportStatus::Done, Some(key)) = (export.status, export.archive_key.as_deref()) {
        let name = format!("export-{user}-{id}.tar");
        let served = Served::of("application/x-tar", Some(&name));
        let ttl = std::time::Duration::from_secs(DOWNLOAD_LINK_SECS);
        let url = uploads(app)?.presign_get(key, ttl, &served).await?;
        let expires = chat_core::time::now() + ttl;
        data["download"] = json!({
            "url": url,
            "expires_at": chat_core::time::format(expires),
        });
    }
    Ok(Reply::ok(
        format!("Export {}", export.status.as_str()),
        data,
    ))
}

/// `POST /admin/users/{user_id}/erase`: an admin erases a person of their tenant
/// (a person the tenant does not know is 404). The job runs on the table's stream.
async fn erase(app: &App, who: &Principal, req: &Request) -> ApiResult<Reply> {
    admin(who)?;
    let user = target_user(req)?;
    // Existence first (another tenant's person is nobody here), then the right.
    if !app.store.knows_user(&who.org, &user).await? {
        return Err(ApiError::NotFound("user"));
    }
    if user == who.user {
        // Another admin decides on an admin's erasure (and its audit trail).
        return Err(ApiError::Forbidden(
            "an admin cannot erase themselves".into(),
        ));
    }
    let erasure = Erasure::new(&who.org, &user, &who.user);
    app.store.start_erasure(&erasure).await?;
    Ok(Reply::with_status(
        lambda_http::http::StatusCode::ACCEPTED,
        "Erasure started: its status shows when it is done",
        erasure.json(),
    ))
}

/// An erasure's status, for the person it erases (by the digest its record keeps).
async fn erasure_status(app: &App, who: &Principal, req: &Request) -> ApiResult<Reply> {
    admin(who)?;
    let user = target_user(req)?;
    let id: ErasureId = path_id(path_param(req, "erasure_id"), "erasure")?;
    let erasure = app
        .store
        .get_erasure(&who.org, &id)
        .await?
        .filter(|e| e.user_digest == user_digest(&who.org, &user))
        .ok_or(ApiError::NotFound("erasure"))?;
    Ok(Reply::ok(
        format!("Erasure {}", erasure.status.as_str()),
        erasure.json(),
    ))
}

/// `GET /admin/settings/retention`: the tenant's policy (all null: everything kept)
/// and how far its sweep got.
async fn get_retention(store: &Store, who: &Principal) -> ApiResult<Reply> {
    admin(who)?;
    let retention = store.get_retention(&who.org).await?;
    Ok(Reply::ok("Retention policy", retention.json()))
}

/// `PUT /admin/settings/retention`: the whole policy (a field left out or null keeps
/// that data forever). The sweep applies it from its next run.
async fn put_retention(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    admin(who)?;
    let policy = RetentionPolicy::try_from(json_body::<PutRetention>(req)?)?;
    let retention = store.put_retention(who, &policy).await?;
    Ok(Reply::ok("Retention policy saved", retention.json()))
}
