//! The `conversations` function: a user's inbox. A conversation is a support room
//! seen through the caller's membership (pin, archive, unread).

use chat_core::app::path_param;
use chat_core::auth::Principal;
use chat_core::ids::{RoomId, UserId, path_id};
use chat_core::model::{InboxEntry, Room, RoomStatus, RoomType, conversation_json};
use chat_core::policy::{self, Action};
use chat_core::request::{Query, json_body};
use chat_core::store::hours;
use chat_core::store::{InboxQuery, Routed, Store};
use chat_core::{ApiError, ApiResult, Reply};
use lambda_http::Request;
use serde_json::{Value, json};

chat_core::route_table! { app: App, who, req;
    "GET /chat/conversations" => list(&app.store, who, req),
    "POST /chat/conversations" => create(&app.store, who, req),
    "GET /chat/conversations/{conversation_id}" => get(&app.store, who, req),
    "PUT /chat/conversations/{conversation_id}" => update(&app.store, who, req),
    "DELETE /chat/conversations/{conversation_id}" => delete(&app.store, who, req),
    "GET /teams" => teams::list(&app.store, who),
    "POST /teams" => teams::create(&app.store, who, req),
    "GET /teams/{team_id}" => teams::get(&app.store, who, req),
    "PATCH /teams/{team_id}" => teams::update(&app.store, who, req),
    "GET /teams/{team_id}/hours" => teams::hours(&app.store, who, req),
    "DELETE /teams/{team_id}" => teams::delete(&app.store, who, req),
    "PUT /teams/{team_id}/agents/{user_id}" => teams::put_agent(&app.store, who, req),
    "DELETE /teams/{team_id}/agents/{user_id}" => teams::remove_agent(&app.store, who, req),
    "GET /teams/{team_id}/queue" => teams::queue(&app.store, who, req),
    "GET /routing-rules" => teams::routing_rules(&app.store, who),
    "PUT /routing-rules" => teams::put_routing_rules(&app.store, who, req),
    "GET /agents/me" => teams::me(&app.store, who),
    "PUT /agents/me/availability" => teams::set_availability(&app.store, who, req),
    "GET /labels" => labels::list(&app.store, who),
    "POST /labels" => labels::create(&app.store, who, req),
    "PATCH /labels/{label_name}" => labels::update(&app.store, who, req),
    "DELETE /labels/{label_name}" => labels::delete(&app.store, who, req),
    "POST /chat/conversations/{conversation_id}/labels" => labels::add(&app.store, who, req),
    "DELETE /chat/conversations/{conversation_id}/labels/{label_name}" => labels::remove(&app.store, who, req),
    "POST /chat/conversations/{conversation_id}/rating" => rate(&app.store, who, req),
    "GET /canned-responses" => canned::list(&app.store, who, req),
    "PUT /canned-responses/{short_code}" => canned::put_tenant(&app.store, who, req),
    "DELETE /canned-responses/{short_code}" => canned::delete_tenant(&app.store, who, req),
    "PUT /me/canned-responses/{short_code}" => canned::put_own(&app.store, who, req),
    "DELETE /me/canned-responses/{short_code}" => canned::delete_own(&app.store, who, req),
}

mod canned;
pub mod jobs;
mod labels;
mod teams;

pub use chat_core::commands::conversations::MAX_TITLE_CHARS;
use chat_core::commands::conversations::{
    ConversationUpdate, CreateConversation, NewConversation, NewRating, RateConversation,
    UpdateConversation,
};
pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 100;
pub const MAX_OFFSET: u32 = 500;

chat_core::store_app!(App);

async fn create(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let new = NewConversation::try_from(json_body::<CreateConversation>(req)?)?;
    let now = chat_core::time::now_string();
    let owner = who.user.to_string();
    let mut members = vec![(owner.clone(), "owner")];
    if let Some(agent) = new.agent_id.as_ref().filter(|a| **a != who.user) {
        members.push((agent.to_string(), "agent"));
    }
    let agent_id = new.agent_id.as_ref().map(ToString::to_string);
    let room = Room {
        assignee_id: agent_id.clone(),
        agent_id,
        conversation_type: new.conversation_type,
        team_id: new.team_id.as_ref().map(ToString::to_string),
        ..Room::open(
            RoomId::generate(),
            RoomType::Support,
            new.title,
            owner,
            members.iter().map(|(m, _)| m.clone()).collect(),
            now,
        )
    };
    // Routed to a team without a chosen agent: the team's next agent with room takes
    // it in the same transaction, or it waits in the team's queue. Either way it
    // carries the team's SLA due times.
    let no_team = || ApiError::invalid("team_id", "no such team");
    let (room, routed) = match (&new.team_id, &new.agent_id) {
        (Some(team), None) => {
            let (team, room, routed) = store
                .route_conversation(&who.org, &room, team)
                .await?
                .ok_or_else(no_team)?;
            (room, Some((team, Some(routed))))
        }
        // The caller's agent, in that team's name.
        (Some(team), Some(_)) => {
            let team = store.get_team(&who.org, team).await?.ok_or_else(no_team)?;
            let room = team.timed(room);
            store.create_room(&who.org, &room, &members).await?;
            (room, Some((team, None)))
        }
        (None, _) => {
            store.create_room(&who.org, &room, &members).await?;
            (room, None)
        }
    };
    let routing = match routed {
        None => Value::Null,
        Some((team, outcome)) => {
            let now = jiff::Timestamp::now();
            let hours = team.business_hours.as_ref();
            let open = hours.is_none_or(|h| h.is_open(now));
            let back_at = hours.and_then(|h| h.next_open(now)).filter(|_| !open);
            if !open {
                // Outside the team's hours: one auto-reply says when it is back.
                let text = hours::auto_reply_text(&team.name, hours.expect("closed"), back_at);
                store.post_auto_reply(&who.org, &room.id, text).await?;
            }
            let mut routing = match outcome {
                Some(Routed::Assigned(agent)) => {
                    json!({"outcome": "assigned", "assignee_id": agent})
                }
                Some(Routed::Queued) => json!({"outcome": "queued"}),
                None => json!({"outcome": "chosen_agent"}),
            };
            routing["team_open"] = json!(open);
            routing["back_at"] = json!(back_at.map(|at| at.to_string()));
            routing
        }
    };
    Ok(Reply::created(
        "Conversation created successfully",
        json!({
            "conversation_id": room.id,
            "conversation": conversation_json(&room, None, who.role),
            "routing": routing,
        }),
    ))
}

async fn list(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let q = Query::of(req);
    let limit = q.limit(DEFAULT_PAGE, MAX_PAGE)?;
    let offset = q.offset(MAX_OFFSET)?;
    let status = q
        .get("status")
        .map(|s| RoomStatus::parse("status", s))
        .transpose()?;
    // `me`, or a user id: the conversations assigned to them.
    let assignee = match q.get("assignee_id") {
        None => None,
        Some("me") => Some(who.user.clone()),
        Some(raw) => Some(UserId::parse(raw).map_err(|e| ApiError::invalid("assignee_id", e))?),
    };
    // Labels are the desk's: a customer may not even ask by one.
    let label = q.get("label");
    if label.is_some() {
        policy::require(Action::WorkSupportDesk, who, policy::Relation::default())?;
    }
    // `include=last_message`: each row with its room's latest message and SLA due
    // times, read from the rooms (one more request).
    let with_summary = match q.get("include") {
        None => false,
        Some("last_message") => true,
        Some(_) => return Err(ApiError::invalid("include", "must be last_message")),
    };
    let inbox = store
        .list_inbox(
            &who.org,
            &who.user,
            InboxQuery {
                limit,
                offset,
                cursor: q.get("cursor"),
                status,
                archived: q.bool("archived")?,
                pinned: q.bool("pinned")?,
                assignee: assignee.as_ref(),
                label,
                unread: q.bool("unread")?.unwrap_or(false),
                with_summary,
            },
        )
        .await?;
    let next_cursor = inbox.entries.next_cursor;
    let mut entries = inbox.entries.items;
    if !who.role.is_staff() {
        // The desk's own: labels and SLA clocks are not the customer's to see.
        for entry in &mut entries {
            entry.labels.clear();
            if let Some(summary) = entry.summary.as_mut() {
                summary.sla = None;
            }
        }
    }
    let conversations: Vec<_> = entries.iter().map(InboxEntry::view).collect();
    Ok(Reply::ok(
        format!("Found {} conversations", conversations.len()),
        json!({
            "conversations": conversations,
            "total": inbox.total,
            "limit": limit,
            "offset": offset,
            "has_more": next_cursor.is_some(),
            "next_cursor": next_cursor,
        }),
    ))
}

async fn get(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let room_id = path_id(path_param(req, "conversation_id"), "conversation")?;
    let (room, membership) = store
        .get_room_and_membership(&who.org, &room_id, &who.user)
        .await?;
    let room = room
        .filter(|r| r.visible_to(who))
        .ok_or(ApiError::NotFound("conversation"))?;
    Ok(Reply::ok(
        "Conversation found",
        conversation_json(&room, membership.as_ref(), who.role),
    ))
}

async fn update(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let room_id = path_id(path_param(req, "conversation_id"), "conversation")?;
    let body = json_body::<UpdateConversation>(req)?;
    let actions = body.actions();
    if actions.is_empty() {
        // Only the caller's view: one UpdateItem on their row, which answers.
        let ConversationUpdate { view, .. } = ConversationUpdate::try_from(body)?;
        let row = store.update_member_view(who, &room_id, &view).await?;
        return Ok(Reply::ok(
            "Conversation updated successfully",
            json!({ "conversation_id": room_id, "conversation": row.view() }),
        ));
    }
    // The room (checked and conditioned on by the write) and the caller's row (for the
    // answer) in one read, then one transaction.
    let (room, membership) = store
        .get_room_and_membership(&who.org, &room_id, &who.user)
        .await?;
    // Existence first (another tenant's or a stranger's id is a 404, not a 403), then
    // the right (the same rule as PATCH /rooms for the same change), then the values.
    let room = room
        .filter(|r| r.visible_to(who))
        .ok_or(ApiError::NotFound("conversation"))?;
    for action in actions {
        policy::require(action, who, policy::relation_to(who, &room))?;
    }
    let ConversationUpdate { shared, view } = ConversationUpdate::try_from(body)?;
    let room = store
        .update_conversation_from(who, room, &shared, &view)
        .await?;
    let membership = membership.map(|mut m| {
        m.is_pinned = view.is_pinned.unwrap_or(m.is_pinned);
        m.is_archived = view.is_archived.unwrap_or(m.is_archived);
        m
    });
    // Analytics hook: status and assignee changes are counted inside the transaction
    // (`room_changed_stats`), so nothing more happens here.
    Ok(Reply::ok(
        "Conversation updated successfully",
        json!({ "conversation_id": room.id, "conversation": conversation_json(&room, membership.as_ref(), who.role) }),
    ))
}

/// The owner or an admin deletes for everyone; any other member removes it from
/// their own inbox (they leave it).
async fn delete(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let room_id = path_id(path_param(req, "conversation_id"), "conversation")?;
    let for_everyone = store.delete_conversation(who, &room_id).await?;
    Ok(Reply::ok(
        "Conversation deleted successfully",
        json!({ "conversation_id": room_id, "deleted_for": if for_everyone { "everyone" } else { "me" } }),
    ))
}

/// The customer rates the conversation's latest resolution (CSAT, docs/support.md):
/// existence first, then the right, then the body.
async fn rate(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let room_id = path_id(path_param(req, "conversation_id"), "conversation")?;
    let room = store.visible_room(who, &room_id).await?;
    policy::require(
        Action::RateConversation,
        who,
        policy::relation_to(who, &room),
    )?;
    let rating = NewRating::try_from(json_body::<RateConversation>(req)?)?;
    let room = store.rate_conversation(who, room, rating, None).await?;
    Ok(Reply::created(
        "Thanks for rating",
        json!({ "conversation_id": room.id, "rating": room.rating }),
    ))
}
