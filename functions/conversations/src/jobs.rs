//! The `support-jobs` function: assigns queued conversations as agents free up, and
//! every minute raises the SLA breaches due (docs/support.md).
//! It reads the table's stream (docs/support.md): an agent's workload item that
//! changed so that they may take more (fewer open, more capacity, back online, a new
//! team), and a conversation queued, drain the queues of the teams concerned; the
//! first message of a conversation nobody routed is routed by the tenant's rules.

use chat_core::Runtime;
use chat_core::ids::{OrgId, RoomId, TeamId};
use chat_core::store::Store;
use serde_json::{Value, json};
use std::collections::BTreeSet;

pub struct Jobs {
    pub store: Store,
    /// Minutes without a connection before an online agent is set offline.
    pub away_minutes: i64,
}

impl Jobs {
    pub fn from_runtime(runtime: Runtime) -> Jobs {
        Jobs {
            store: runtime.store,
            away_minutes: away_minutes(std::env::var("AGENT_AWAY_MINUTES").ok().as_deref()),
        }
    }

    /// The minute's work: SLA breaches due, and agents away too long set offline.
    pub async fn every_minute(&self) -> Result<Value, String> {
        let now = chat_core::time::now_string();
        let sweep = self
            .store
            .sla_sweep(&now)
            .await
            .map_err(|e| e.to_string())?;
        if sweep.breached > 0 {
            tracing::info!(?sweep, "sla breaches raised");
        }
        let offline = self
            .store
            .away_sweep(&now, self.away_minutes)
            .await
            .map_err(|e| e.to_string())?;
        if offline > 0 {
            tracing::info!(offline, "agents away set offline");
        }
        Ok(json!({ "sla": sweep, "set_offline": offline }))
    }

    /// An invocation: a stream batch (the event source mapping's filter lets through
    /// workload items and queued conversations). A team whose drain fails is
    /// reported as the batch's failure, so the stream retries it.
    pub async fn handle(&self, event: &Value) -> Result<Value, String> {
        if !event["Records"].is_array() {
            return self.every_minute().await;
        }
        let records = event["Records"].as_array().cloned().unwrap_or_default();
        let mut teams: BTreeSet<(String, String)> = BTreeSet::new();
        let mut first_of: Vec<(String, (String, String))> = Vec::new();
        for record in &records {
            for team in teams_to_drain(record) {
                if teams.insert(team.clone()) {
                    let id = record["dynamodb"]["SequenceNumber"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    first_of.push((id, team));
                }
            }
        }
        let mut failures = Vec::new();
        // A first message of a conversation nobody routed: the tenant's rules may
        // put it in a team's queue (whose record then drains it).
        for record in &records {
            let Some((org, room)) = first_message_to_route(record) else {
                continue;
            };
            if let Err(err) = Box::pin(self.store.route_by_rules(&org, &room)).await {
                tracing::error!(%org, %room, %err, "routing by rules failed");
                failures.push(json!({ "itemIdentifier": record["dynamodb"]["SequenceNumber"] }));
            }
        }
        let mut assigned = 0;
        for (sequence, (org, team)) in first_of {
            let (Ok(org), Ok(team)) = (OrgId::parse(&org), TeamId::parse(&team)) else {
                continue;
            };
            match Box::pin(self.store.drain_queue(&org, &team)).await {
                Ok(n) => assigned += n,
                Err(err) => {
                    tracing::error!(%org, %team, %err, "draining a team's queue failed");
                    failures.push(json!({ "itemIdentifier": sequence }));
                }
            }
        }
        if assigned > 0 {
            tracing::info!(assigned, "queued conversations assigned");
        }
        Ok(json!({ "batchItemFailures": failures }))
    }
}

/// The stack's `AGENT_AWAY_MINUTES` (1 to 1440), or the default.
pub fn away_minutes(raw: Option<&str>) -> i64 {
    raw.and_then(|m| m.trim().parse::<i64>().ok())
        .filter(|m| (1..=1440).contains(m))
        .unwrap_or(chat_core::store::presence::DEFAULT_AWAY_MINUTES)
}

/// The (tenant, team) queues a stream record may let move.
pub fn teams_to_drain(record: &Value) -> Vec<(String, String)> {
    let new = &record["dynamodb"]["NewImage"];
    let old = &record["dynamodb"]["OldImage"];
    let text = |image: &Value, name: &str| image[name]["S"].as_str().map(str::to_owned);
    let number = |image: &Value, name: &str| {
        image[name]["N"]
            .as_str()
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let set = |image: &Value, name: &str| -> BTreeSet<String> {
        image[name]["SS"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    match text(new, "entity").as_deref() {
        Some("agent_load") => {
            let Some(org) = text(new, "org") else {
                return Vec::new();
            };
            let online = text(new, "availability").as_deref() == Some("online");
            let room = number(new, "open_count") < number(new, "max_open");
            if !online || !room {
                return Vec::new();
            }
            let teams = set(new, "team_ids");
            // More room than before, or newly able: every team of theirs may move.
            let freed = number(new, "open_count") < number(old, "open_count")
                || number(new, "max_open") > number(old, "max_open")
                || text(old, "availability").as_deref() != Some("online")
                || old.is_null();
            let joined: Vec<String> = teams.difference(&set(old, "team_ids")).cloned().collect();
            let drain: Vec<String> = match freed {
                true => teams.into_iter().collect(),
                false => joined,
            };
            drain.into_iter().map(|team| (org.clone(), team)).collect()
        }
        Some("room") => {
            // Queued (as it was created nobody had room, or a reply reopened it with
            // nobody on it): someone may have room by now.
            let queued_now = text(new, "queued_at").is_some() && text(old, "queued_at").is_none();
            let pk = text(new, "PK").unwrap_or_default();
            match (queued_now, text(new, "team_id"), org_of_room_pk(&pk)) {
                (true, Some(team), Some(org)) => vec![(org, team)],
                _ => Vec::new(),
            }
        }
        // A deleted team: its drain gives its queue back to the desk.
        None if text(old, "entity").as_deref() == Some("team") => {
            let org = text(old, "PK")
                .and_then(|pk| Some(pk.strip_prefix("T#")?.strip_suffix("#TEAMS")?.to_owned()));
            match (org, text(old, "team_id")) {
                (Some(org), Some(team)) => vec![(org, team)],
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// A support conversation's first message, with no team and nobody on it yet: the
/// conversation the routing rules decide on (the store checks again as it reads it).
pub fn first_message_to_route(record: &Value) -> Option<(OrgId, RoomId)> {
    let new = &record["dynamodb"]["NewImage"];
    let old = &record["dynamodb"]["OldImage"];
    fn text<'a>(image: &'a Value, name: &str) -> Option<&'a str> {
        image[name]["S"].as_str()
    }
    let first = new["total_messages"]["N"].as_str() == Some("1")
        && old["total_messages"]["N"].as_str().is_none_or(|n| n == "0");
    let unrouted = text(new, "team_id").is_none() && text(new, "assignee_id").is_none();
    if text(new, "entity") != Some("room")
        || text(new, "room_type") != Some("support")
        || !first
        || !unrouted
    {
        return None;
    }
    let org = OrgId::parse(&org_of_room_pk(text(new, "PK")?)?).ok()?;
    let room = RoomId::parse(text(new, "room_id")?).ok()?;
    Some((org, room))
}

/// The tenant of a room's partition key (`T#{org}#R#{room}`).
fn org_of_room_pk(pk: &str) -> Option<String> {
    let rest = pk.strip_prefix("T#")?;
    let (org, _) = rest.rsplit_once("#R#")?;
    Some(org.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(open: i64, cap: i64, av: &str, teams: &[&str]) -> Value {
        json!({
            "entity": {"S": "agent_load"}, "org": {"S": "acme"},
            "open_count": {"N": open.to_string()}, "max_open": {"N": cap.to_string()},
            "availability": {"S": av},
            "team_ids": {"SS": teams},
        })
    }

    fn record(old: Value, new: Value) -> Value {
        json!({"dynamodb": {"OldImage": old, "NewImage": new, "SequenceNumber": "1"}})
    }

    #[test]
    fn only_a_change_that_frees_an_agent_drains_their_teams() {
        let t = |org: &str, team: &str| (org.to_owned(), team.to_owned());
        // One resolved: open 3 → 2 under capacity 3.
        assert_eq!(
            teams_to_drain(&record(
                load(3, 3, "online", &["A", "B"]),
                load(2, 3, "online", &["A", "B"])
            )),
            vec![t("acme", "A"), t("acme", "B")]
        );
        // An assignment (open up) moves nothing.
        assert!(
            teams_to_drain(&record(
                load(1, 3, "online", &["A"]),
                load(2, 3, "online", &["A"])
            ))
            .is_empty()
        );
        // Back online with room.
        assert_eq!(
            teams_to_drain(&record(
                load(0, 3, "busy", &["A"]),
                load(0, 3, "online", &["A"])
            )),
            vec![t("acme", "A")]
        );
        // Online but full, or offline: nothing.
        assert!(
            teams_to_drain(&record(
                load(3, 3, "online", &["A"]),
                load(3, 3, "online", &["A"])
            ))
            .is_empty()
        );
        assert!(
            teams_to_drain(&record(
                load(2, 3, "online", &["A"]),
                load(1, 3, "offline", &["A"])
            ))
            .is_empty()
        );
        // Joined a second team: that team only.
        assert_eq!(
            teams_to_drain(&record(
                load(1, 3, "online", &["A"]),
                load(1, 3, "online", &["A", "B"])
            )),
            vec![t("acme", "B")]
        );
        // A conversation just queued.
        let queued = json!({"entity": {"S": "room"}, "PK": {"S": "T#acme#R#01J"}, "team_id": {"S": "A"}, "queued_at": {"S": "2026-01-01T00:00:00Z"}});
        assert_eq!(
            teams_to_drain(&record(Value::Null, queued)),
            vec![t("acme", "A")]
        );
        // A team deleted: its queue (released by the drain); another item removed,
        // nothing.
        let team = json!({"entity": {"S": "team"}, "PK": {"S": "T#a:b#TEAMS"}, "SK": {"S": "T#A"}, "team_id": {"S": "A"}});
        assert_eq!(
            teams_to_drain(&record(team, Value::Null)),
            vec![t("a:b", "A")]
        );
        let label = json!({"entity": {"S": "label"}, "PK": {"S": "T#acme#LABELS"}});
        assert!(teams_to_drain(&record(label, Value::Null)).is_empty());
    }
}
