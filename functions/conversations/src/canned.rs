//! Canned responses (docs/support.md): the tenant's (admins keep them) and each
//! agent's own; staff find them by short-code prefix, filled in for a conversation.
//! Authorization is decided before any body is read.

use chat_core::app::path_param;
use chat_core::auth::Principal;
use chat_core::ids::RoomId;
use chat_core::policy::{self, Action, Relation};
use chat_core::request::{Query, json_body};
use chat_core::store::canned::{Context, response_content, short_code};
use chat_core::store::{CannedResponse, Scope, Store};
use chat_core::{ApiError, ApiResult, Reply};
use lambda_http::Request;
use serde::Deserialize;
use serde_json::json;

/// PUT /canned-responses/{short_code} and /me/canned-responses/{short_code}.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutCanned {
    content: String,
}

fn require(action: Action, who: &Principal) -> ApiResult<()> {
    Ok(policy::require(action, who, Relation::default())?)
}

/// A short code in a path: one that could not be one is simply not found.
fn code_param(req: &Request) -> ApiResult<String> {
    path_param(req, "short_code")
        .and_then(|c| short_code("short_code", c).ok())
        .ok_or(ApiError::NotFound("canned response"))
}

async fn put(store: &Store, who: &Principal, req: &Request, scope: Scope) -> ApiResult<Reply> {
    let code = code_param(req)?;
    let content = response_content(&json_body::<PutCanned>(req)?.content)?;
    let response = CannedResponse {
        short_code: code,
        content,
        scope,
        updated_by: who.user.to_string(),
        updated_at: chat_core::time::now_string(),
    };
    let created = store.put_canned(&who.org, &response).await?;
    Ok(match created {
        true => Reply::created("Canned response created", response.json(None)),
        false => Reply::ok("Canned response replaced", response.json(None)),
    })
}

async fn delete(store: &Store, who: &Principal, req: &Request, scope: Scope) -> ApiResult<Reply> {
    let code = code_param(req)?;
    store.delete_canned(&who.org, &scope, &code).await?;
    Ok(Reply::ok(
        "Canned response deleted",
        json!({ "short_code": code, "scope": scope.as_str() }),
    ))
}

pub async fn put_tenant(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::ManageSupportDesk, who)?;
    put(store, who, req, Scope::Tenant).await
}

pub async fn delete_tenant(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::ManageSupportDesk, who)?;
    delete(store, who, req, Scope::Tenant).await
}

pub async fn put_own(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::WorkSupportDesk, who)?;
    put(store, who, req, Scope::Personal(who.user.clone())).await
}

pub async fn delete_own(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::WorkSupportDesk, who)?;
    delete(store, who, req, Scope::Personal(who.user.clone())).await
}

/// The caller's own responses and the tenant's whose short code starts with `prefix`
/// (the caller's first on a shared code), each filled in for `conversation_id` when
/// given: two Queries at once, and for a conversation one GetItem and one
/// BatchGetItem (its customer's and the caller's profiles).
pub async fn list(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::WorkSupportDesk, who)?;
    let q = Query::of(req);
    let prefix = match q.get("prefix") {
        None | Some("") => String::new(),
        Some(p) => short_code("prefix", p)?,
    };
    let conversation = q
        .get("conversation_id")
        .map(|raw| {
            RoomId::parse(raw)
                .map_err(|_| ApiError::invalid("conversation_id", "not a conversation id"))
        })
        .transpose()?;
    let room = match &conversation {
        Some(id) => Some(store.visible_room(who, id).await?),
        None => None,
    };
    let own = Scope::Personal(who.user.clone());
    let (mine, tenant) = tokio::try_join!(
        store.list_canned(&who.org, &own, &prefix),
        store.list_canned(&who.org, &Scope::Tenant, &prefix),
    )?;
    let mut responses: Vec<CannedResponse> = mine.into_iter().chain(tenant).collect();
    // By short code; the caller's own first where both have one.
    responses.sort_by(|a, b| {
        (a.short_code.as_str(), a.scope == Scope::Tenant)
            .cmp(&(b.short_code.as_str(), b.scope == Scope::Tenant))
    });
    let answers = match &room {
        None => responses.iter().map(|r| r.json(None)).collect::<Vec<_>>(),
        Some(room) => {
            let people = [room.owner_id.clone(), who.user.to_string()];
            let (_, profiles) = store.rooms_with_profiles(&who.org, &[], &people).await?;
            let context = Context {
                room,
                customer: profiles.get(&room.owner_id),
                agent: profiles.get(who.user.as_str()),
            };
            responses
                .iter()
                .map(|r| r.json(Some(&context.render(&r.content))))
                .collect()
        }
    };
    Ok(Reply::ok(
        format!("Found {} canned responses", answers.len()),
        json!({ "canned_responses": answers }),
    ))
}
