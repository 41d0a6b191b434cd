//! The `analytics` function: the caller's dashboard and the tenant-wide figures,
//! read from the daily rollups (a bounded number of requests whatever the range).

use chat_core::auth::Principal;
use chat_core::ids::{RoomId, UserId};
use chat_core::policy::{self, Action, Relation};
use chat_core::request::Query;
use chat_core::store::analytics::{AgentFigures, Csat, DayRollup, distinct_customers};
use chat_core::store::{InboxQuery, Store};
use chat_core::{ApiError, ApiResult, Reply};
use lambda_http::Request;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use time::{Date, Duration};

chat_core::route_table! { app: App, who, req;
    "GET /chat/analytics/dashboard" => dashboard(&app.store, who, req),
    "GET /chat/analytics/global" => global(&app.store, who, req),
}

/// Longest `from`..`to` range, in days (one Query of at most this many items).
pub const MAX_RANGE_DAYS: i64 = 92;
pub const DEFAULT_DASHBOARD_DAYS: i64 = 7;
pub const DEFAULT_GLOBAL_DAYS: i64 = 30;
const TOP_AGENTS: usize = 10;

chat_core::store_app!(App);

fn parse_day(field: &str, raw: &str) -> ApiResult<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(raw, &format).map_err(|_| ApiError::invalid(field, "must be a YYYY-MM-DD date"))
}

fn format_day(day: Date) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    day.format(&format).expect("dates format")
}

/// `from`..`to` (UTC days, inclusive), defaulting to the last `default_days`.
fn range(req: &Request, default_days: i64) -> ApiResult<(Date, Date)> {
    let q = Query::of(req);
    let today = chat_core::time::now().date();
    let to = q
        .get("to")
        .map(|t| parse_day("to", t))
        .transpose()?
        .unwrap_or(today);
    let from = q
        .get("from")
        .map(|f| parse_day("from", f))
        .transpose()?
        .unwrap_or(to - Duration::days(default_days - 1));
    if from > to {
        return Err(ApiError::invalid("from", "must not be after to"));
    }
    if (to - from).whole_days() >= MAX_RANGE_DAYS {
        return Err(ApiError::invalid(
            "to",
            format!("a range covers at most {MAX_RANGE_DAYS} days"),
        ));
    }
    Ok((from, to))
}

/// Satisfaction figures as the dashboards show them.
fn csat_json(c: Csat) -> Value {
    json!({ "average": c.average(), "ratings": c.ratings })
}

fn average(total: i64, count: i64) -> Option<f64> {
    (count > 0).then(|| (total as f64 / count as f64 * 100.0).round() / 100.0)
}

/// Sums daily rollups.
fn sum(rollups: &[DayRollup]) -> DayRollup {
    let mut total = DayRollup::default();
    for r in rollups {
        total.conversations += r.conversations;
        total.messages += r.messages;
        total.notes += r.notes;
        total.responses += r.responses;
        total.response_seconds += r.response_seconds;
        total.first_responses += r.first_responses;
        total.first_response_seconds += r.first_response_seconds;
        total.resolutions += r.resolutions;
        for (kind, n) in &r.by_sender {
            *total.by_sender.entry(kind.clone()).or_default() += n;
        }
        for (label, n) in &r.labels {
            *total.labels.entry(label.clone()).or_default() += n;
        }
        total.csat.add(r.csat);
        for (target, f) in &r.sla {
            let t = total.sla.entry(target.clone()).or_default();
            t.due += f.due;
            t.breached += f.breached;
        }
        for (team, c) in &r.team_csat {
            total.team_csat.entry(team.clone()).or_default().add(*c);
        }
        for (agent, f) in &r.agents {
            let t = total.agents.entry(agent.clone()).or_default();
            t.messages += f.messages;
            t.assigned += f.assigned;
            t.resolved += f.resolved;
            t.csat_ratings += f.csat_ratings;
            t.csat_score += f.csat_score;
        }
    }
    total
}

fn daily_stats(rollups: &[DayRollup], from: Date, to: Date) -> Vec<Value> {
    let by_day: BTreeMap<&str, &DayRollup> = rollups.iter().map(|r| (r.day.as_str(), r)).collect();
    let mut out = Vec::new();
    let mut day = from;
    while day <= to {
        let key = format_day(day);
        let r = by_day.get(key.as_str());
        out.push(json!({
            "date": key,
            "conversations": r.map_or(0, |r| r.conversations),
            "messages": r.map_or(0, |r| r.messages),
            "resolutions": r.map_or(0, |r| r.resolutions),
            "average_response_time": r.and_then(|r| average(r.response_seconds, r.responses)),
            "csat_average": r.and_then(|r| r.csat.average()),
            "csat_ratings": r.map_or(0, |r| r.csat.ratings),
        }));
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    out
}

/// Agents and admins: the tenant's figures from the rollups (one Query), their own,
/// and the most active agent's name (one BatchGetItem of a profile). Customers: their
/// own conversations, from their inbox (one Query), and those rooms' response figures
/// (one BatchGetItem): rollups are the business's figures, not theirs to see.
async fn dashboard(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let (from, to) = range(req, DEFAULT_DASHBOARD_DAYS)?;
    if !who.role.is_staff() {
        return customer_dashboard(store, who, from, to).await;
    }
    let rollups = store
        .rollups(&who.org, &format_day(from), &format_day(to))
        .await?;
    let total = sum(&rollups);
    let most_active = total
        .agents
        .iter()
        .filter(|(_, f)| f.messages > 0)
        .max_by_key(|(id, f)| (f.messages, std::cmp::Reverse((*id).clone())));
    let most_active_name = match most_active.map(|(id, _)| id) {
        Some(id) if UserId::parse(id).is_ok() => store
            .rooms_with_profiles(&who.org, &[], std::slice::from_ref(id))
            .await?
            .1
            .remove(id)
            .and_then(|p| p.username),
        _ => None,
    };
    let me = total
        .agents
        .get(who.user.as_str())
        .cloned()
        .unwrap_or_default();
    Ok(Reply::ok(
        "Analytics retrieved",
        json!({
            "from": format_day(from),
            "to": format_day(to),
            "total_conversations": total.conversations,
            "total_messages": total.messages,
            "messages_by_sender": total.by_sender,
            "average_response_time": average(total.response_seconds, total.responses),
            "average_first_response_time": average(total.first_response_seconds, total.first_responses),
            "resolutions": total.resolutions,
            "most_active_agent": most_active.map(|(id, f)| json!({ "agent_id": id, "name": most_active_name, "message_count": f.messages })),
            "csat": csat_json(total.csat),
            "me": {
                "agent_id": who.user, "messages": me.messages, "assigned": me.assigned, "resolved": me.resolved,
                "csat": csat_json(Csat { ratings: me.csat_ratings, score: me.csat_score }),
            },
            "daily_stats": daily_stats(&rollups, from, to),
        }),
    ))
}

async fn customer_dashboard(
    store: &Store,
    who: &Principal,
    from: Date,
    to: Date,
) -> ApiResult<Reply> {
    // A customer's inbox is small; one page of up to 100 conversations.
    let inbox = store
        .list_inbox(
            &who.org,
            &who.user,
            InboxQuery {
                limit: 100,
                offset: 0,
                cursor: None,
                status: None,
                archived: None,
                pinned: None,
                assignee: None,
                label: None,
                unread: false,
                with_summary: false,
            },
        )
        .await?;
    let (from_s, to_s) = (format_day(from), format_day(to));
    let mut per_day: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut agents: BTreeMap<String, i64> = BTreeMap::new();
    let (mut conversations, mut messages) = (0i64, 0i64);
    let mut rooms = Vec::new();
    for row in &inbox.entries.items {
        let created = row.created_at.as_deref().unwrap_or_default();
        let day = &created[..10.min(created.len())];
        if day < from_s.as_str() || day > to_s.as_str() {
            continue;
        }
        let total = row.membership.total_messages as i64;
        rooms.extend(RoomId::parse(&row.room_id).ok());
        conversations += 1;
        messages += total;
        let entry = per_day.entry(day.to_owned()).or_default();
        entry.0 += 1;
        entry.1 += total;
        if let Some(agent) = row.agent_id.as_deref() {
            *agents.entry(agent.to_owned()).or_default() += 1;
        }
    }
    let daily: Vec<Value> = {
        let mut out = Vec::new();
        let mut day = from;
        while day <= to {
            let key = format_day(day);
            let (c, m) = per_day.get(&key).copied().unwrap_or_default();
            out.push(json!({ "date": key, "conversations": c, "messages": m }));
            match day.next_day() {
                Some(next) => day = next,
                None => break,
            }
        }
        out
    };
    let most_active = agents
        .iter()
        .max_by_key(|(id, n)| (**n, std::cmp::Reverse((*id).clone())));
    // Answers to the customer in those conversations (kept on each room item).
    let (responses, response_seconds) = store.room_responses(&who.org, &rooms).await?;
    Ok(Reply::ok(
        "Analytics retrieved",
        json!({
            "from": from_s,
            "to": to_s,
            "scope": "your conversations started in the range",
            "total_conversations": conversations,
            "total_messages": messages,
            "average_response_time": average(response_seconds, responses),
            "most_active_agent": most_active.map(|(id, n)| json!({ "agent_id": id, "name": Value::Null, "conversation_count": n })),
            "daily_stats": daily,
        }),
    ))
}

/// Admins only: the tenant's totals, averages per customer and top agents with their
/// success rate (resolved ÷ assigned), from the rollups plus one BatchGetItem of the
/// top agents' profiles.
async fn global(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    policy::require(Action::ReadGlobalAnalytics, who, Relation::default())?;
    let (from, to) = range(req, DEFAULT_GLOBAL_DAYS)?;
    let rollups = store
        .rollups(&who.org, &format_day(from), &format_day(to))
        .await?;
    let total = sum(&rollups);
    let mut agents: Vec<(&String, &AgentFigures)> = total
        .agents
        .iter()
        .filter(|(_, f)| f.assigned > 0 || f.resolved > 0 || f.messages > 0)
        .collect();
    agents.sort_by_key(|(id, f)| {
        (
            std::cmp::Reverse(f.resolved),
            std::cmp::Reverse(f.messages),
            (*id).clone(),
        )
    });
    agents.truncate(TOP_AGENTS);
    let ids: Vec<String> = agents
        .iter()
        .map(|(id, _)| (*id).clone())
        .filter(|id| UserId::parse(id).is_ok())
        .collect();
    let profiles = store.rooms_with_profiles(&who.org, &[], &ids).await?.1;
    let (customers, estimated) = distinct_customers(&rollups);
    Ok(Reply::ok(
        "Global analytics retrieved",
        json!({
            "from": format_day(from),
            "to": format_day(to),
            "total_conversations_all_users": total.conversations,
            "total_messages_all_users": total.messages,
            // Customers who started conversations in the range; an estimate (about 2%)
            // only when a day had more than MAX_EXACT_CUSTOMERS of them.
            "active_customers": customers,
            "active_customers_estimated": estimated,
            "average_conversations_per_user": average(total.conversations, customers),
            "average_messages_per_conversation": average(total.messages, total.conversations),
            "average_response_time": average(total.response_seconds, total.responses),
            "average_first_response_time": average(total.first_response_seconds, total.first_responses),
            "resolutions": total.resolutions,
            // Conversations given each label in the range (docs/support.md).
            "conversations_by_label": total.labels,
            // Customers' satisfaction (1–5) with resolutions rated in the range: in
            // all and per team (docs/support.md).
            "csat": csat_json(total.csat),
            "csat_by_team": total.team_csat.iter().map(|(team, c)| (team.clone(), csat_json(*c))).collect::<BTreeMap<_, _>>(),
            // SLA attainment per target: conversations given it in the range, breaches
            // raised in the range, and the share met.
            "sla": total.sla.iter().map(|(target, f)| (target.clone(), json!({
                "due": f.due,
                "breached": f.breached,
                "attainment": (f.due > 0).then(|| (((f.due - f.breached).max(0) as f64 / f.due as f64) * 10000.0).round() / 100.0),
            }))).collect::<BTreeMap<_, _>>(),
            "top_performing_agents": agents.iter().map(|(id, f)| json!({
                "agent_id": id,
                "name": profiles.get(*id).and_then(|p| p.username.clone()),
                "total_conversations": f.assigned,
                "messages": f.messages,
                "resolved": f.resolved,
                "success_rate": average(f.resolved * 100, f.assigned),
                "csat": csat_json(Csat { ratings: f.csat_ratings, score: f.csat_score }),
            })).collect::<Vec<_>>(),
        }),
    ))
}
