//! The support desk's teams, their agents and queues, and an agent's availability
//! (docs/support.md). Admins manage teams; agents and admins read them and set
//! their own availability. Authorization is decided before any body is read.

use chat_core::app::path_param;
use chat_core::auth::Principal;
use chat_core::commands::teams::{
    PatchTeam, PutAvailability, PutRoutingRules, PutTeamAgent, TeamBody, TeamChange, capacity,
    team_name,
};
use chat_core::ids::{TeamId, UserId, path_id};
use chat_core::model::conversation_json;
use chat_core::policy::{self, Action, Relation};
use chat_core::request::json_body;
use chat_core::store::routing::RoutingRule;
use chat_core::store::{Availability, Store, Team};
use chat_core::{ApiError, ApiResult, Reply};
use lambda_http::Request;
use serde_json::json;

/// Conversations a queue page shows.
const QUEUE_PAGE: i32 = 100;

fn require(action: Action, who: &Principal) -> ApiResult<()> {
    Ok(policy::require(action, who, Relation::default())?)
}

fn team_param(req: &Request) -> ApiResult<TeamId> {
    path_id(path_param(req, "team_id"), "team")
}

pub async fn list(store: &Store, who: &Principal) -> ApiResult<Reply> {
    require(Action::WorkSupportDesk, who)?;
    let teams = store.list_teams(&who.org).await?;
    let teams: Vec<_> = teams
        .iter()
        .map(|t| json!({"id": t.id, "team_id": t.id, "name": t.name, "agent_ids": t.agents, "created_at": t.created_at, "updated_at": t.updated_at}))
        .collect();
    Ok(Reply::ok(
        format!("Found {} teams", teams.len()),
        json!({ "teams": teams }),
    ))
}

pub async fn create(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::ManageSupportDesk, who)?;
    let name = team_name(&json_body::<TeamBody>(req)?)?;
    let team = Team::new(name);
    store.create_team(&who.org, &team).await?;
    Ok(Reply::created("Team created", team.json(&[])))
}

async fn team_reply(
    store: &Store,
    who: &Principal,
    team: &TeamId,
    message: &str,
) -> ApiResult<Reply> {
    let (team, loads) = store
        .team_with_loads(&who.org, team)
        .await?
        .ok_or(ApiError::NotFound("team"))?;
    Ok(Reply::ok(message.to_owned(), team.json(&loads)))
}

pub async fn get(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::WorkSupportDesk, who)?;
    team_reply(store, who, &team_param(req)?, "Team found").await
}

pub async fn update(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::ManageSupportDesk, who)?;
    let team = team_param(req)?;
    let change = TeamChange::try_from(json_body::<PatchTeam>(req)?)?;
    store
        .update_team(
            &who.org,
            &team,
            change.name.as_deref(),
            change.business_hours.as_ref().map(Option::as_ref),
            change.sla.as_ref().map(Option::as_ref),
        )
        .await?;
    team_reply(store, who, &team, "Team updated").await
}

/// Whether the team answers now and, when not, when it is back: for everyone of the
/// tenant (the widget says it before a customer writes). Its name and hours only.
pub async fn hours(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let team = team_param(req)?;
    let found = store
        .get_team(&who.org, &team)
        .await?
        .ok_or(ApiError::NotFound("team"))?;
    let now = jiff::Timestamp::now();
    let (open, back_at) = match &found.business_hours {
        None => (true, None),
        Some(h) => (h.is_open(now), h.next_open(now).filter(|at| *at != now)),
    };
    Ok(Reply::ok(
        "Team hours",
        json!({
            "team_id": found.id,
            "name": found.name,
            "open": open,
            "back_at": back_at.map(|at| at.to_string()),
            "business_hours": found.business_hours,
        }),
    ))
}

pub async fn delete(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::ManageSupportDesk, who)?;
    let team = team_param(req)?;
    store.delete_team(&who.org, &team).await?;
    Ok(Reply::ok("Team deleted", json!({ "team_id": team })))
}

pub async fn put_agent(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::ManageSupportDesk, who)?;
    let team = team_param(req)?;
    let agent = agent_param(req)?;
    let capacity = capacity(&json_body::<PutTeamAgent>(req)?)?;
    store
        .put_team_agent(&who.org, &team, &agent, capacity)
        .await?;
    team_reply(store, who, &team, "Agent in team").await
}

pub async fn remove_agent(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::ManageSupportDesk, who)?;
    let team = team_param(req)?;
    let agent = agent_param(req)?;
    store.remove_team_agent(&who.org, &team, &agent).await?;
    team_reply(store, who, &team, "Agent removed from team").await
}

/// The team's conversations waiting for an agent, oldest first.
pub async fn queue(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::WorkSupportDesk, who)?;
    let team = team_param(req)?;
    if store.team_with_loads(&who.org, &team).await?.is_none() {
        return Err(ApiError::NotFound("team"));
    }
    let rooms = store.queued(&who.org, &team, QUEUE_PAGE).await?;
    let waiting: Vec<_> = rooms
        .iter()
        .filter(|r| r.deleted_at.is_none() && r.queued_at.is_some() && r.assignee_id.is_none())
        .map(|r| conversation_json(r, None, who.role))
        .collect();
    Ok(Reply::ok(
        format!("{} conversations waiting", waiting.len()),
        json!({ "team_id": team, "conversations": waiting }),
    ))
}

pub async fn me(store: &Store, who: &Principal) -> ApiResult<Reply> {
    require(Action::WorkSupportDesk, who)?;
    let load = store.agent_load(&who.org, &who.user).await?;
    Ok(Reply::ok("Agent status", load.json()))
}

pub async fn set_availability(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::WorkSupportDesk, who)?;
    let availability = Availability::try_from(json_body::<PutAvailability>(req)?)?;
    let load = store
        .set_availability(&who.org, &who.user, availability)
        .await?;
    Ok(Reply::ok("Availability set", load.json()))
}

fn agent_param(req: &Request) -> ApiResult<UserId> {
    path_param(req, "user_id")
        .and_then(|u| UserId::parse(u).ok())
        .ok_or(ApiError::NotFound("agent"))
}

/// The tenant's routing rules, in the order they are tried.
pub async fn routing_rules(store: &Store, who: &Principal) -> ApiResult<Reply> {
    require(Action::WorkSupportDesk, who)?;
    let rules = store.routing_rules(&who.org).await?;
    Ok(Reply::ok(
        format!("Found {} routing rules", rules.len()),
        json!({ "rules": rules }),
    ))
}

/// Replaces the tenant's routing rules (admins).
pub async fn put_routing_rules(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    require(Action::ManageSupportDesk, who)?;
    let rules = Vec::<RoutingRule>::try_from(json_body::<PutRoutingRules>(req)?)?;
    store.put_routing_rules(&who.org, &rules).await?;
    Ok(Reply::ok("Routing rules saved", json!({ "rules": rules })))
}
