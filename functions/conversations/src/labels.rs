//! The desk's labels (docs/support.md): admins keep the tenant's list; agents and
//! admins read it and put labels on support conversations or take them off.
//! Authorization is decided before any body is read.

use chat_core::app::path_param;
use chat_core::auth::Principal;
use chat_core::commands::labels::{AddLabels, NewLabel, PatchLabel};
use chat_core::ids::path_id;
use chat_core::model::conversation_json;
use chat_core::policy::{self, Action, Relation};
use chat_core::request::json_body;
use chat_core::store::labels::label_name;
use chat_core::store::{Label, LabelChange, Labelling, Store};
use chat_core::{ApiError, ApiResult, Reply};
use lambda_http::Request;
use serde_json::json;

fn require(action: Action, who: &Principal) -> ApiResult<()> {
    Ok(policy::require(action, who, Relation::default())?)
}

/// A label named in a path: one that could not be a label is simply not found.
fn label_param(req: &Request) -> ApiResult<String> {
    path_param(req, "label_name")
        .and_then(|l| label_name("label_name", l).ok())
        .ok_or(ApiError::NotFound("label"))
}

pub async fn list(store: &Store, who: &Principal) -> ApiResult<Reply> {
    require(Action::WorkSupportDesk, who)?;
    let labels = store.list_labels(&who.org).await?;
    let labels: Vec<_> = labels.iter().map(Label::json).collect();
    Ok(Reply::ok(
        format!("Found {} labels", labels.len()),
        json!({ "labels": labels }),
    ))
}

pub async fn create(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::ManageSupportDesk, who)?;
    let label = Label::try_from(json_body::<NewLabel>(req)?)?;
    store.create_label(&who.org, &label).await?;
    Ok(Reply::created("Label created", label.json()))
}

pub async fn update(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::ManageSupportDesk, who)?;
    let name = label_param(req)?;
    let change = LabelChange::try_from(json_body::<PatchLabel>(req)?)?;
    let label = store.update_label(&who.org, &name, &change).await?;
    Ok(Reply::ok("Label updated", label.json()))
}

pub async fn delete(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::ManageSupportDesk, who)?;
    let name = label_param(req)?;
    store.delete_label(&who.org, &name).await?;
    Ok(Reply::ok("Label deleted", json!({ "name": name })))
}

/// A labelling of the conversation in the path, answered with its labels after.
async fn labelled(
    store: &Store,
    who: &Principal,
    req: &Request,
    change: impl FnOnce() -> ApiResult<Labelling>,
) -> ApiResult<Reply> {
    // Existence first (a conversation one may not see is a 404), then the right,
    // then the body.
    let room_id = path_id(path_param(req, "conversation_id"), "conversation")?;
    let room = store.visible_room(who, &room_id).await?;
    require(Action::WorkSupportDesk, who)?;
    let change = change()?;
    let room = store.label_conversation(who, room, &change).await?;
    Ok(Reply::ok(
        "Labels updated",
        json!({ "conversation_id": room.id, "labels": room.labels, "conversation": conversation_json(&room, None, who.role) }),
    ))
}

pub async fn add(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    labelled(store, who, req, || {
        let body = json_body::<AddLabels>(req)?;
        Ok(Labelling::Add(body.labels()?))
    })
    .await
}

pub async fn remove(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    labelled(store, who, req, || Ok(Labelling::Remove(label_param(req)?))).await
}
