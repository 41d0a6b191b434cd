//! Routing rules (docs/support.md): the tenant's ordered list of rules, each a set of
//! keywords and the team a conversation goes to when its first message has one of
//! them. A support conversation started with nobody on it and no team (no widget
//! team, no agent) is routed by the `support-jobs` function when its first message
//! from the customer arrives on the stream: the first rule that matches puts it in
//! its team's queue (with the team's SLA), and the queue's drain gives it to the next
//! agent with room, as for a conversation created for the team.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, RoomId, TeamId};
use crate::item::{ItemBuilder, ItemExt, s, values};
use crate::keys;
use crate::model::{Message, Room, RoomType};
use crate::store::analytics::{Counts, counter, day_of};
use crate::store::sla::SlaDue;
use crate::store::{Change, EventKind, Plan, Store, put};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Rules a tenant may keep.
pub const MAX_RULES: usize = 50;
/// Keywords one rule may list.
pub const MAX_KEYWORDS: usize = 20;
/// The longest keyword (a word or a phrase), in characters.
pub const MAX_KEYWORD_CHARS: usize = 60;
/// Who routes, in the feed.
pub const ROUTING_ACTOR: &str = "system:routing";

/// One rule: a conversation whose first message has any of `keywords` (words or
/// phrases, matched as whole words, in any case) goes to `team_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRule {
    pub name: String,
    /// Each keyword as its words, lowercase, joined by one space.
    pub keywords: Vec<String>,
    pub team_id: TeamId,
}

/// The words of a text, lowercase: its runs of letters and digits (in any script).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

impl RoutingRule {
    /// Whether `message` (its words) has one of the rule's keywords, word for word.
    pub fn matches(&self, message: &[String]) -> bool {
        self.keywords.iter().any(|keyword| {
            let phrase: Vec<&str> = keyword.split(' ').collect();
            message
                .windows(phrase.len())
                .any(|window| window.iter().zip(&phrase).all(|(w, p)| w == p))
        })
    }
}

/// The first rule (in the tenant's order) that `message` matches.
pub fn first_match<'a>(rules: &'a [RoutingRule], message: &str) -> Option<&'a RoutingRule> {
    let message = words(message);
    rules.iter().find(|rule| rule.matches(&message))
}

/// What routing a conversation by the rules did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleRouting {
    /// Into this team's queue, by the rule of this name.
    Queued { team: TeamId, rule: String },
    /// No rule matched, or it is not a conversation the rules route (it has a team
    /// or someone on it, it is gone, or its first message is not the customer's).
    Left,
}

impl Store {
    /// The tenant's rules, in order (none when it has not set any).
    pub async fn routing_rules(&self, org: &OrgId) -> ApiResult<Vec<RoutingRule>> {
        let item = self
            .table
            .get(
                (keys::teams_pk(org), keys::ROUTING_RULES_SK.to_owned()),
                "routing rules",
            )
            .await?;
        Ok(item
            .as_ref()
            .and_then(|i| i.str("rules"))
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_default())
    }

    /// Replaces the tenant's rules. Every team they name must exist (`422` naming the
    /// rule's `team_id` otherwise): one BatchGetItem, then one PutItem.
    pub async fn put_routing_rules(&self, org: &OrgId, rules: &[RoutingRule]) -> ApiResult<()> {
        let mut teams: Vec<&TeamId> = rules.iter().map(|r| &r.team_id).collect();
        teams.sort();
        teams.dedup();
        if !teams.is_empty() {
            let item_keys: Vec<_> = teams
                .iter()
                .map(|t| (keys::teams_pk(org), keys::team_sk(t)))
                .collect();
            let found = self.batch_get(&item_keys, "routing rules' teams").await?;
            let found: Vec<String> = found
                .rows()?
                .iter()
                .filter_map(|i| i.string("team_id"))
                .collect();
            if let Some(at) = rules
                .iter()
                .position(|r| !found.contains(&r.team_id.to_string()))
            {
                return Err(ApiError::invalid(
                    format!("rules[{at}].team_id"),
                    "no such team",
                ));
            }
        }
        let item = ItemBuilder::new()
            .str(keys::PK, keys::teams_pk(org))
            .str(keys::SK, keys::ROUTING_RULES_SK)
            .str(keys::ENTITY, keys::entity::ROUTING_RULES)
            .str(
                "rules",
                serde_json::to_string(rules).expect("rules serialize"),
            )
            .str("updated_at", crate::time::now_string())
            .build();
        self.table
            .transact(vec![put(self.name(), item, false)], "put routing rules")
            .await
            .map_err(super::WriteError::into_api)
    }

    /// Routes a conversation by the tenant's rules on its first message (see the
    /// module): into the matching rule's team's queue with the team's SLA, in one
    /// transaction with a staff-only `room.updated` (`team_id`) by `system:routing`.
    pub async fn route_by_rules(&self, org: &OrgId, room_id: &RoomId) -> ApiResult<RuleRouting> {
        let Some(room) = self.get_room(org, room_id).await? else {
            return Ok(RuleRouting::Left);
        };
        if !awaits_rules(&room) {
            return Ok(RuleRouting::Left);
        }
        // The room's preview is its first message while it has one; a customer who
        // wrote twice before the stream came is routed by the first all the same.
        let first = match (&room.last_message, room.total_messages) {
            (Some(only), 1) => Some((only.sender_id.clone(), only.preview.clone())),
            _ => self
                .first_message(org, room_id)
                .await?
                .filter(|m| m.deleted_at.is_none())
                .map(|m| (m.sender_id, crate::model::preview(&m.content))),
        };
        let Some((_, first)) = first.filter(|(sender, _)| *sender == room.owner_id) else {
            // Someone else spoke first: the desk has it.
            return Ok(RuleRouting::Left);
        };
        let rules = self.routing_rules(org).await?;
        let Some(rule) = first_match(&rules, &first).cloned() else {
            return Ok(RuleRouting::Left);
        };
        let Some(team) = self.get_team(org, &rule.team_id).await? else {
            // Deleted since the rules were set: as if it did not match.
            return Ok(RuleRouting::Left);
        };
        let who = Principal::system(org, ROUTING_ACTOR);
        let now = crate::time::now_string();
        let due = team
            .sla
            .map(|sla| sla.due(team.business_hours.as_ref(), &room.created_at))
            .unwrap_or_default();
        let routed = self
            .room_transaction_from(&who, room_id, room, "route by rules", |room| {
                if !awaits_rules(room) {
                    return Err(ApiError::Conflict {
                        code: "already_routed",
                        message: "the conversation was routed meanwhile".into(),
                    });
                }
                let queued = Room {
                    team_id: Some(team.id.to_string()),
                    queued_at: Some(now.clone()),
                    ..room.clone()
                };
                let mut sets = vec![
                    "team_id = :team",
                    "queued_at = :now",
                    "GSI2PK = :qpk",
                    "GSI2SK = :qsk",
                ];
                let mut vals = values([
                    (":team", s(team.id.as_str())),
                    (":now", s(&now)),
                    (":qpk", s(keys::queue_gsi2pk(org, team.id.as_str()))),
                    (":qsk", s(keys::queue_gsi2sk(&now, &room.id))),
                ]);
                let mut counts = Counts::default();
                for (set, value, target, at) in [
                    (
                        "first_response_due_at = :frd",
                        ":frd",
                        "first_response",
                        &due.first_response,
                    ),
                    (
                        "resolution_due_at = :rd",
                        ":rd",
                        "resolution",
                        &due.resolution,
                    ),
                ] {
                    if let Some(at) = at {
                        sets.push(set);
                        vals.insert(value.into(), s(at));
                        counts.add(counter::sla_due(target), 1);
                    }
                }
                let mut writes = vec![self.room_update(
                    room,
                    &who,
                    &format!("SET {}", sets.join(", ")),
                    vals,
                    &[],
                )];
                if !due.is_empty() {
                    let timed = Room {
                        first_response_due_at: due.first_response.clone(),
                        resolution_due_at: due.resolution.clone(),
                        ..queued
                    };
                    writes.extend(self.sla_timer_put(org, &timed));
                }
                writes.extend(self.stats_update(org, &room.id, day_of(&now), &counts));
                Ok(Plan::new(
                    writes,
                    Change::routed(&team.id, &rule.name, &due),
                ))
            })
            .await;
        match routed {
            Ok(_) => Ok(RuleRouting::Queued {
                team: rule.team_id,
                rule: rule.name,
            }),
            Err(ApiError::Conflict {
                code: "already_routed",
                ..
            }) => Ok(RuleRouting::Left),
            Err(err) => Err(err),
        }
    }
}

/// Whether the rules may route this conversation: a live support conversation with
/// messages, no team and nobody on it (whose first message is then the customer's,
/// which [`Store::route_by_rules`] checks).
fn awaits_rules(room: &Room) -> bool {
    room.room_type == RoomType::Support
        && room.deleted_at.is_none()
        && room.team_id.is_none()
        && room.assignee_id.is_none()
        && room.agent_id.is_none()
        && room.total_messages >= 1
}

impl Store {
    /// A room's first message (its oldest `M#` item), notes included.
    async fn first_message(&self, org: &OrgId, room: &RoomId) -> ApiResult<Option<Message>> {
        let (rows, _) = self
            .table
            .query("first message", None, |query| {
                query
                    .key_condition_expression("PK = :pk AND begins_with(SK, :m)")
                    .expression_attribute_values(":pk", s(keys::room_pk(org, room)))
                    .expression_attribute_values(":m", s(keys::MESSAGE_SK_PREFIX))
                    .consistent_read(true)
                    .limit(1)
            })
            .await?;
        Ok(rows.iter().find_map(Message::from_item))
    }
}

impl Change {
    /// A conversation routed to a team by a rule: the desk's, so staff only.
    pub fn routed(team: &TeamId, rule: &str, due: &SlaDue) -> Change {
        let mut data = json!({ "team_id": team, "routing_rule": rule });
        if !due.is_empty() {
            data["sla"] = json!(due);
        }
        Change {
            kind: EventKind::RoomUpdated,
            staff_only: true,
            data: data.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, keywords: &[&str]) -> RoutingRule {
        RoutingRule {
            name: name.into(),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            team_id: TeamId::generate(),
        }
    }

    #[test]
    fn the_first_rule_with_a_keyword_word_for_word_wins() {
        let rules = [
            rule("billing", &["refund", "money back", "invoice"]),
            rule("returns", &["return", "refund"]),
        ];
        let routed = |text: &str| first_match(&rules, text).map(|r| r.name.as_str());
        assert_eq!(routed("I want a REFUND, please"), Some("billing"));
        assert_eq!(routed("Can I get my money  back?"), Some("billing"));
        assert_eq!(routed("How do I return this kettle"), Some("returns"));
        // Whole words only, in order.
        assert_eq!(routed("refunding policy"), None);
        assert_eq!(routed("back my money"), None);
        assert_eq!(routed("prepaid invoices"), None);
        assert_eq!(routed(""), None);
        // Any script, any case.
        let rules = [rule("de", &["rückerstattung"])];
        assert!(first_match(&rules, "Wo bleibt meine RÜCKERSTATTUNG?").is_some());
    }
}
