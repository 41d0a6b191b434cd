//! Support teams and their agents' workload: who takes a new conversation
//! (docs/support.md).
//!
//! A team (`T#{org}#TEAMS` / `T#{team}`) lists its agents. Each agent has one
//! workload item (`T#{org}#AGENT#{user}` / `LOAD`): how many conversations assigned to
//! them are active (open, pending or snoozed), how many they may hold (`capacity`),
//! whether they take new ones (`availability`), and their turn: a counter and the time
//! of their last assignment. Auto-assignment picks, among the team's online agents
//! under capacity, the one whose last assignment is oldest (round-robin), and claims
//! them in the conversation's own transaction with a condition on all three: a burst
//! of creations never puts more on an agent than their capacity, and two creations
//! that picked the same agent at once are told apart by the turn counter (the loser
//! picks again from what the failure returned). When nobody can take it, the
//! conversation waits in its team's queue (GSI2 `QUEUE#{org}#{team}`), which the
//! `support-jobs` function drains from the table's stream as agents free up.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, RoomId, TeamId, UserId};
use crate::item::{Item, ItemBuilder, ItemExt, n, s, values};
use crate::keys;
use crate::model::{Room, RoomStatus};
use crate::store::hours::BusinessHours;
use crate::store::sla::SlaPolicy;
use crate::store::{Change, EventKind, Plan, Store, WriteError, put, rebuilds, storage_busy};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Teams a tenant may have.
pub const MAX_TEAMS: usize = 50;
/// Agents a team may have (a team and its agents' workloads are one BatchGetItem).
pub const MAX_TEAM_AGENTS: usize = 50;
/// The most conversations an agent may be given at once.
pub const MAX_CAPACITY: u32 = 200;
/// Queued conversations one drain assigns (the stream brings the next batch).
const DRAIN_BATCH: i32 = 25;
/// Who the assignments of the queue are made by, in the feed.
pub const ASSIGNMENT_ACTOR: &str = "system:assignment";

/// Whether an agent takes new conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    /// Takes new conversations, up to their capacity.
    Online,
    /// Keeps their conversations, takes no new ones.
    Busy,
    /// Away.
    #[default]
    Offline,
}

impl Availability {
    pub const ALL: [Availability; 3] = [
        Availability::Online,
        Availability::Busy,
        Availability::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Online => "online",
            Availability::Busy => "busy",
            Availability::Offline => "offline",
        }
    }

    pub fn parse(raw: &str) -> Option<Availability> {
        Self::ALL.into_iter().find(|a| a.as_str() == raw)
    }
}

/// A support team.
#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub id: TeamId,
    pub name: String,
    /// Its agents' user ids.
    pub agents: Vec<String>,
    /// When it answers (none: always).
    pub business_hours: Option<BusinessHours>,
    /// Its targets (none: no SLA).
    pub sla: Option<SlaPolicy>,
    pub created_at: String,
    pub updated_at: String,
    /// Its changes so far (every change adds one): what a routed creation from a
    /// cached team conditions on.
    pub rev: u64,
}

impl Team {
    pub fn new(name: String) -> Team {
        let now = crate::time::now_string();
        Team {
            id: TeamId::generate(),
            name,
            agents: Vec::new(),
            business_hours: None,
            sla: None,
            created_at: now.clone(),
            updated_at: now,
            rev: 0,
        }
    }

    fn key(org: &OrgId, team: &TeamId) -> (String, String) {
        (keys::teams_pk(org), keys::team_sk(team))
    }

    /// `room` with the team's SLA due times, in its business hours (unchanged
    /// without a policy).
    pub fn timed(&self, room: Room) -> Room {
        match self.sla {
            Some(sla) => {
                let due = sla.due(self.business_hours.as_ref(), &room.created_at);
                Room {
                    first_response_due_at: due.first_response,
                    resolution_due_at: due.resolution,
                    ..room
                }
            }
            None => room,
        }
    }

    fn item(&self, org: &OrgId) -> Item {
        let mut item = ItemBuilder::new()
            .str(keys::PK, keys::teams_pk(org))
            .str(keys::SK, keys::team_sk(&self.id))
            .str(keys::ENTITY, keys::entity::TEAM)
            .str("team_id", self.id.as_str())
            .str("name", &self.name)
            .str("created_at", &self.created_at)
            .str("updated_at", &self.updated_at)
            .build();
        if !self.agents.is_empty() {
            item.insert("agents".into(), AttributeValue::Ss(self.agents.clone()));
        }
        if let Some(hours) = &self.business_hours {
            item.insert("business_hours".into(), s(hours_text(hours)));
        }
        if let Some(sla) = &self.sla {
            item.insert(
                "sla".into(),
                s(serde_json::to_string(sla).expect("serializes")),
            );
        }
        item
    }

    pub(crate) fn from_item(item: &impl ItemExt) -> Option<Team> {
        if item.str(keys::ENTITY) != Some(keys::entity::TEAM) {
            return None;
        }
        Some(Team {
            id: TeamId::parse(item.str("team_id")?).ok()?,
            name: item.string("name").unwrap_or_default(),
            agents: item.string_set("agents"),
            business_hours: item
                .str("business_hours")
                .and_then(|h| serde_json::from_str(h).ok()),
            sla: item.str("sla").and_then(|h| serde_json::from_str(h).ok()),
            created_at: item.string("created_at").unwrap_or_default(),
            updated_at: item.string("updated_at").unwrap_or_default(),
            rev: item.num("rev").unwrap_or(0),
        })
    }

    /// The team as the API shows it, with its agents' workloads when read.
    pub fn json(&self, loads: &[AgentLoad]) -> Value {
        let agents: Vec<Value> = self
            .agents
            .iter()
            .map(|agent| {
                let load = loads.iter().find(|l| &l.user_id == agent);
                let default = AgentLoad::new(agent);
                load.unwrap_or(&default).json()
            })
            .collect();
        json!({
            "id": self.id,
            "team_id": self.id,
            "name": self.name,
            "agents": agents,
            "business_hours": self.business_hours,
            "sla": self.sla,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

/// An agent's workload: what auto-assignment decides on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentLoad {
    pub user_id: String,
    pub availability: Availability,
    /// Active conversations assigned to them (open, pending, snoozed).
    pub open: i64,
    /// The most they take by auto-assignment (0: none).
    pub capacity: i64,
    /// Assignments made to them by auto-assignment: the claim's optimistic token.
    pub turns: i64,
    pub last_assigned_at: Option<String>,
    /// The teams they are in.
    pub teams: Vec<String>,
    pub availability_at: Option<String>,
}

impl AgentLoad {
    pub fn new(user: &str) -> AgentLoad {
        AgentLoad {
            user_id: user.to_owned(),
            ..AgentLoad::default()
        }
    }

    pub fn from_item(item: &impl ItemExt) -> Option<AgentLoad> {
        if item.str(keys::ENTITY) != Some(keys::entity::AGENT_LOAD) {
            return None;
        }
        Some(AgentLoad {
            user_id: item.string("user_id")?,
            availability: item
                .str("availability")
                .and_then(Availability::parse)
                .unwrap_or_default(),
            open: item.num("open_count").unwrap_or(0),
            capacity: item.num("max_open").unwrap_or(0),
            turns: item.num("turns").unwrap_or(0),
            last_assigned_at: item.string("last_assigned_at"),
            teams: item.string_set("team_ids"),
            availability_at: item.string("availability_at"),
        })
    }

    /// Whether they are (still) in `team`: what every claim checks.
    pub fn in_team(&self, team: &TeamId) -> bool {
        self.teams.iter().any(|t| t == team.as_str())
    }

    /// Whether auto-assignment may give them one more conversation.
    pub fn takes_more(&self) -> bool {
        self.availability == Availability::Online && self.open < self.capacity
    }

    pub fn json(&self) -> Value {
        json!({
            "user_id": self.user_id,
            "availability": self.availability.as_str(),
            "availability_at": self.availability_at,
            "open_conversations": self.open.max(0),
            "capacity": self.capacity,
            "last_assigned_at": self.last_assigned_at,
            "team_ids": self.teams,
        })
    }
}

/// Round-robin among `agents`: of those who take more, the one whose last
/// assignment is oldest (never assigned first; ties by id, so every reader agrees).
pub fn next_agent<'a>(agents: &[String], loads: &'a [AgentLoad]) -> Option<&'a AgentLoad> {
    in_turn(agents, loads).into_iter().next()
}

/// Those of `agents` who take more, in turn: the oldest last assignment first.
fn in_turn<'a>(agents: &[String], loads: &'a [AgentLoad]) -> Vec<&'a AgentLoad> {
    let mut ready: Vec<&AgentLoad> = loads
        .iter()
        .filter(|l| agents.contains(&l.user_id) && l.takes_more())
        .collect();
    ready.sort_by(|a, b| {
        (a.last_assigned_at.as_deref().unwrap_or(""), &a.user_id)
            .cmp(&(b.last_assigned_at.as_deref().unwrap_or(""), &b.user_id))
    });
    ready
}

/// The agent a creation tries on its `attempt` (0 first): the next in turn, then,
/// after claims lost to concurrent creations that all chose the same agent, one of
/// the next `attempt + 1` in turn (the better of two drawn at random), so a burst spreads instead of queueing
/// behind one agent's item (every claim is still conditioned on capacity and turn).
fn agent_to_try<'a>(
    agents: &[String],
    loads: &'a [AgentLoad],
    attempt: usize,
) -> Option<&'a AgentLoad> {
    let ready = in_turn(agents, loads);
    let window = ready.len().min(attempt + 1);
    match window {
        0 => None,
        1 => ready.first().copied(),
        // The better turn of two drawn: spread, yet leaning to the order of turns.
        _ => {
            let draw = || rand::random::<u64>() as usize % window;
            ready.get(draw().min(draw())).copied()
        }
    }
}

/// Whether a status counts against its assignee's capacity.
fn active(status: RoomStatus) -> bool {
    !status.is_closed()
}

/// How a change of a conversation's status or assignee moves its agents' workloads:
/// (agent, delta) for each agent whose count moves. The one rule every path that
/// changes status or assignee writes through.
pub fn workload_moves(
    before: (RoomStatus, Option<&str>),
    after: (RoomStatus, Option<&str>),
) -> Vec<(String, i64)> {
    let mut moves: Vec<(String, i64)> = Vec::new();
    if let (true, Some(agent)) = (active(before.0), before.1) {
        moves.push((agent.to_owned(), -1));
    }
    if let (true, Some(agent)) = (active(after.0), after.1) {
        match moves.iter_mut().find(|(a, _)| a == agent) {
            Some(m) => m.1 += 1,
            None => moves.push((agent.to_owned(), 1)),
        }
    }
    moves.retain(|(_, d)| *d != 0);
    moves
}

/// The outcome of routing a new conversation to a team.
#[derive(Debug, Clone, PartialEq)]
pub enum Routed {
    /// Given to this agent.
    Assigned(String),
    /// Nobody could take it: it waits in the team's queue.
    Queued,
}

/// Teams as this instance's routed creations last read them (bounded; past it the
/// cache starts over): which agents' workloads to read with the team. Never trusted:
/// each creation reads the team itself in the same BatchGetItem as those workloads,
/// each claim checks that the agent is still in the team (their workload's
/// `team_ids`, which every membership change writes), and a queued creation checks
/// the team's `rev`.
#[derive(Debug, Default)]
pub struct TeamCache(std::sync::Mutex<std::collections::HashMap<String, Team>>);

const TEAM_CACHE_ENTRIES: usize = 256;

impl TeamCache {
    fn key(org: &OrgId, team: &TeamId) -> String {
        format!("{org}#{team}")
    }

    fn get(&self, org: &OrgId, team: &TeamId) -> Option<Team> {
        self.0.lock().ok()?.get(&Self::key(org, team)).cloned()
    }

    fn put(&self, org: &OrgId, team: Team) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= TEAM_CACHE_ENTRIES {
                map.clear();
            }
            map.insert(Self::key(org, &team.id), team);
        }
    }

    fn forget(&self, org: &OrgId, team: &TeamId) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(&Self::key(org, team));
        }
    }
}

impl Store {
    fn load_key(org: &OrgId, user: &str) -> (String, String) {
        keys::agent_load_key(org, user)
    }

    /// An unconditional move of an agent's count of active conversations (a manual
    /// assignment, a resolution, a reopening, a deletion).
    pub(crate) fn workload_write(&self, org: &OrgId, agent: &str, delta: i64) -> TransactWriteItem {
        let (pk, sk) = Self::load_key(org, agent);
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression(match delta < 0 {
                // Freed: the queue's consumer looks (its stream filter wants `freed_at`).
                true => "SET #e = :entity, org = :org, user_id = :user, freed_at = :now ADD open_count :delta",
                false => "SET #e = :entity, org = :org, user_id = :user ADD open_count :delta",
            })
            .expression_attribute_names("#e", keys::ENTITY)
            .set_expression_attribute_values({
                let mut vals = values([
                    (":entity", s(keys::entity::AGENT_LOAD)),
                    (":org", s(org.as_str())),
                    (":user", s(agent)),
                    (":delta", n(delta)),
                ]);
                if delta < 0 {
                    vals.insert(":now".into(), s(crate::time::now_string()));
                }
                Some(vals)
            })
            .build()
            .expect("update has key and expression");
        TransactWriteItem::builder().update(update).build()
    }

    /// The workload writes of `room` going from `before` to `after`: support
    /// conversations only (capacity is the desk's; an order chat's agent is not
    /// counted, and its starts stay free of an agent-wide item).
    pub(crate) fn workload_writes(
        &self,
        org: &OrgId,
        room: &Room,
        before: (RoomStatus, Option<&str>),
        after: (RoomStatus, Option<&str>),
    ) -> Vec<TransactWriteItem> {
        if room.room_type != crate::model::RoomType::Support {
            return Vec::new();
        }
        workload_moves(before, after)
            .into_iter()
            .map(|(agent, delta)| self.workload_write(org, &agent, delta))
            .collect()
    }

    /// Claims one more conversation for `load`'s agent, conditioned on what the
    /// choice relied on: online, under capacity, still in `team`, and nobody claimed
    /// them since. The team itself is not in the transaction: concurrent creations
    /// for one team contend only on the agents they claim.
    fn claim(&self, org: &OrgId, load: &AgentLoad, team: &TeamId, now: &str) -> TransactWriteItem {
        let (pk, sk) = Self::load_key(org, &load.user_id);
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            // A claim frees nobody: off the queue consumer's filter.
            .update_expression(
                "SET last_assigned_at = :now ADD open_count :one, turns :one REMOVE freed_at",
            )
            .condition_expression(
                "availability = :online AND open_count < max_open AND contains(team_ids, :team) \
                 AND (turns = :turns OR (attribute_not_exists(turns) AND :turns = :zero))",
            )
            .set_expression_attribute_values(Some(values([
                (":now", s(now)),
                (":team", s(team.as_str())),
                (":one", n(1)),
                (":online", s(Availability::Online.as_str())),
                (":turns", n(load.turns)),
                (":zero", n(0)),
            ])))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("update has key and expression");
        TransactWriteItem::builder().update(update).build()
    }

    pub async fn create_team(&self, org: &OrgId, team: &Team) -> ApiResult<()> {
        let listed = self.list_teams(org).await?.len();
        let count = (keys::teams_pk(org), keys::TEAM_COUNT_SK.to_owned());
        let writes = super::counted_put(self.name(), count, MAX_TEAMS, listed, team.item(org));
        self.put_counted(
            writes,
            "create team",
            || ApiError::Conflict {
                code: "too_many_teams",
                message: format!("a tenant has at most {MAX_TEAMS} teams"),
            },
            || ApiError::internal("create team", "a new team's id exists"),
        )
        .await
    }

    pub async fn list_teams(&self, org: &OrgId) -> ApiResult<Vec<Team>> {
        let items = self
            .table
            .query_all("list teams", |query| {
                query
                    .key_condition_expression("PK = :pk AND begins_with(SK, :t)")
                    .expression_attribute_values(":pk", s(keys::teams_pk(org)))
                    .expression_attribute_values(":t", s(keys::TEAM_SK_PREFIX))
            })
            .await?;
        Ok(items.iter().filter_map(Team::from_item).collect())
    }

    /// A team and its agents' workloads, in one BatchGetItem.
    pub async fn team_with_loads(
        &self,
        org: &OrgId,
        team: &TeamId,
    ) -> ApiResult<Option<(Team, Vec<AgentLoad>)>> {
        let Some(found) = self.get_team(org, team).await? else {
            return Ok(None);
        };
        let loads = self.loads(org, &found.agents).await?;
        Ok(Some((found, loads)))
    }

    /// Agents' workloads (at most a team's), in one BatchGetItem; an agent with none
    /// yet has the defaults.
    async fn loads(&self, org: &OrgId, agents: &[String]) -> ApiResult<Vec<AgentLoad>> {
        let (_, loads) = self.with_loads(org, None, agents).await?;
        Ok(loads)
    }

    /// `team` (when asked, `None` when it is gone) and the workloads of `agents`, in
    /// one BatchGetItem.
    async fn with_loads(
        &self,
        org: &OrgId,
        team: Option<&TeamId>,
        agents: &[String],
    ) -> ApiResult<(Option<Team>, Vec<AgentLoad>)> {
        let mut item_keys: Vec<_> = agents.iter().map(|a| Self::load_key(org, a)).collect();
        item_keys.extend(team.map(|team| Team::key(org, team)));
        let found = self.batch_get(&item_keys, "team and workloads").await?;
        let found = found.rows()?;
        let team = team.and(found.iter().find_map(Team::from_item));
        let read: Vec<AgentLoad> = found.iter().filter_map(AgentLoad::from_item).collect();
        let loads = agents
            .iter()
            .map(|a| {
                read.iter()
                    .find(|l| &l.user_id == a)
                    .cloned()
                    .unwrap_or_else(|| AgentLoad::new(a))
            })
            .collect();
        Ok((team, loads))
    }

    /// Renames a team and/or sets its business hours (`Some(None)`: none, always open)
    /// and its SLA policy (`Some(None)`: none).
    pub async fn update_team(
        &self,
        org: &OrgId,
        team: &TeamId,
        name: Option<&str>,
        hours: Option<Option<&BusinessHours>>,
        sla: Option<Option<&SlaPolicy>>,
    ) -> ApiResult<()> {
        let (pk, sk) = Team::key(org, team);
        let mut sets = vec!["updated_at = :now"];
        let mut update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":now", s(crate::time::now_string()));
        if let Some(name) = name {
            sets.push("#n = :name");
            update = update
                .expression_attribute_names("#n", "name")
                .expression_attribute_values(":name", s(name));
        }
        let mut removes = Vec::new();
        match hours {
            Some(Some(hours)) => {
                sets.push("business_hours = :hours");
                update = update.expression_attribute_values(":hours", s(hours_text(hours)));
            }
            Some(None) => removes.push("business_hours"),
            None => {}
        }
        match sla {
            Some(Some(sla)) => {
                sets.push("sla = :sla");
                update = update.expression_attribute_values(
                    ":sla",
                    s(serde_json::to_string(sla).expect("serializes")),
                );
            }
            Some(None) => removes.push("sla"),
            None => {}
        }
        let remove = match removes.is_empty() {
            true => String::new(),
            false => format!(" REMOVE {}", removes.join(", ")),
        };
        let update = update
            .update_expression(format!("SET {}{remove} ADD rev :one", sets.join(", ")))
            .expression_attribute_values(":one", n(1))
            .build()
            .expect("update has key and expression");
        match self.table.update(update, None, "update team").await {
            Ok(_) => Ok(()),
            Err(WriteError::ConditionFailed(_)) => Err(ApiError::NotFound("team")),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// A team alone (no workloads): its name and hours.
    pub async fn get_team(&self, org: &OrgId, team: &TeamId) -> ApiResult<Option<Team>> {
        Ok(self
            .table
            .get(Team::key(org, team), "get team")
            .await?
            .as_ref()
            .and_then(Team::from_item))
    }

    /// Deletes a team: out of its agents' workloads and counted off; conversations
    /// routed to it keep their assignee, and those still queued stay findable by id.
    pub async fn delete_team(&self, org: &OrgId, team: &TeamId) -> ApiResult<()> {
        let Some((found, _)) = self.team_with_loads(org, team).await? else {
            return Err(ApiError::NotFound("team"));
        };
        let more = found
            .agents
            .iter()
            .map(|agent| self.team_membership_write(org, agent, team, "DELETE", None))
            .collect();
        self.delete_counted(
            Team::key(org, team),
            (keys::teams_pk(org), keys::TEAM_COUNT_SK.to_owned()),
            more,
            "delete team",
            ApiError::NotFound("team"),
        )
        .await
    }

    /// The agent's workload item joining (`ADD`) or leaving (`DELETE`) a team, with
    /// their capacity when given.
    fn team_membership_write(
        &self,
        org: &OrgId,
        agent: &str,
        team: &TeamId,
        action: &str,
        capacity: Option<u32>,
    ) -> TransactWriteItem {
        let (pk, sk) = Self::load_key(org, agent);
        // Joining a team, or a new capacity, may let its queue move.
        let mut expression = "SET #e = :entity, org = :org, user_id = :user, open_count = if_not_exists(open_count, :zero), freed_at = :now".to_owned();
        let mut vals = values([
            (":entity", s(keys::entity::AGENT_LOAD)),
            (":org", s(org.as_str())),
            (":user", s(agent)),
            (":zero", n(0)),
            (":team", AttributeValue::Ss(vec![team.to_string()])),
            (":now", s(crate::time::now_string())),
        ]);
        if let Some(capacity) = capacity {
            expression.push_str(", max_open = :cap");
            vals.insert(":cap".into(), n(capacity));
        }
        expression.push_str(&format!(" {action} team_ids :team"));
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression(expression)
            .expression_attribute_names("#e", keys::ENTITY)
            .set_expression_attribute_values(Some(vals))
            .build()
            .expect("update has key and expression");
        TransactWriteItem::builder().update(update).build()
    }

    /// Puts an agent in a team (or keeps them there) with their capacity: the team's
    /// set, conditioned on its size, and the agent's workload in one transaction.
    pub async fn put_team_agent(
        &self,
        org: &OrgId,
        team: &TeamId,
        agent: &UserId,
        capacity: u32,
    ) -> ApiResult<()> {
        let (pk, sk) = Team::key(org, team);
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression("SET updated_at = :now ADD agents :agents, rev :one")
            .expression_attribute_values(":one", n(1))
            .condition_expression(
                "attribute_exists(PK) AND (attribute_not_exists(agents) OR size(agents) < :max OR contains(agents, :agent))",
            )
            .expression_attribute_values(":now", s(crate::time::now_string()))
            .expression_attribute_values(":agents", AttributeValue::Ss(vec![agent.to_string()]))
            .expression_attribute_values(":agent", s(agent.as_str()))
            .expression_attribute_values(":max", n(MAX_TEAM_AGENTS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("update has key and expression");
        let writes = vec![
            TransactWriteItem::builder().update(update).build(),
            self.team_membership_write(org, agent.as_str(), team, "ADD", Some(capacity)),
        ];
        match self.table.transact(writes, "put team agent").await {
            Ok(()) => Ok(()),
            Err(WriteError::ConditionFailed(c)) if c.old_item(0).is_some() => {
                Err(ApiError::Conflict {
                    code: "team_full",
                    message: format!("a team has at most {MAX_TEAM_AGENTS} agents"),
                })
            }
            Err(WriteError::ConditionFailed(_)) => Err(ApiError::NotFound("team")),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// Takes an agent out of a team (their conversations stay theirs).
    pub async fn remove_team_agent(
        &self,
        org: &OrgId,
        team: &TeamId,
        agent: &UserId,
    ) -> ApiResult<()> {
        let (pk, sk) = Team::key(org, team);
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression("SET updated_at = :now ADD rev :one DELETE agents :agents")
            .expression_attribute_values(":one", n(1))
            .condition_expression("contains(agents, :agent)")
            .expression_attribute_values(":now", s(crate::time::now_string()))
            .expression_attribute_values(":agents", AttributeValue::Ss(vec![agent.to_string()]))
            .expression_attribute_values(":agent", s(agent.as_str()))
            .build()
            .expect("update has key and expression");
        let writes = vec![
            TransactWriteItem::builder().update(update).build(),
            self.team_membership_write(org, agent.as_str(), team, "DELETE", None),
        ];
        match self.table.transact(writes, "remove team agent").await {
            Ok(()) => Ok(()),
            Err(WriteError::ConditionFailed(_)) => Err(ApiError::NotFound("team agent")),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    pub async fn agent_load(&self, org: &OrgId, agent: &UserId) -> ApiResult<AgentLoad> {
        let item = self
            .table
            .get(Self::load_key(org, agent.as_str()), "agent workload")
            .await?;
        Ok(item
            .as_ref()
            .and_then(AgentLoad::from_item)
            .unwrap_or_else(|| AgentLoad::new(agent.as_str())))
    }

    /// The agent sets their availability; answers their workload as it now is.
    pub async fn set_availability(
        &self,
        org: &OrgId,
        agent: &UserId,
        availability: Availability,
    ) -> ApiResult<AgentLoad> {
        let (pk, sk) = Self::load_key(org, agent.as_str());
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression(
                "SET #e = :entity, org = :org, user_id = :user, availability = :av, \
                 availability_at = :now, open_count = if_not_exists(open_count, :zero), \
                 freed_at = :now REMOVE away_since, GSI2PK, GSI2SK",
            )
            .expression_attribute_names("#e", keys::ENTITY)
            .set_expression_attribute_values(Some(values([
                (":entity", s(keys::entity::AGENT_LOAD)),
                (":org", s(org.as_str())),
                (":user", s(agent.as_str())),
                (":av", s(availability.as_str())),
                (":now", s(crate::time::now_string())),
                (":zero", n(0)),
            ])))
            .build()
            .expect("update has key and expression");
        let item = self
            .table
            .update(update, Some(ReturnValue::AllNew), "set availability")
            .await
            .map_err(WriteError::into_api)?;
        item.as_ref()
            .and_then(AgentLoad::from_item)
            .ok_or_else(|| ApiError::internal("set availability", "no workload returned"))
    }

    /// A team to route to, as it is now, and its agents' workloads: for a team this
    /// instance read before, one BatchGetItem of the team and the workloads of the
    /// agents it had (one more, of their workloads alone, for agents who joined
    /// since); else one GetItem of the team first.
    async fn routing_team(
        &self,
        org: &OrgId,
        team: &TeamId,
    ) -> ApiResult<Option<(Team, Vec<AgentLoad>)>> {
        if let Some(known) = self.teams.get(org, team) {
            let (found, mut loads) = self.with_loads(org, Some(team), &known.agents).await?;
            let Some(found) = found else {
                self.teams.forget(org, team);
                return Ok(None);
            };
            loads.retain(|l| found.agents.contains(&l.user_id));
            let joined: Vec<String> = (found.agents.iter())
                .filter(|a| !known.agents.contains(a))
                .cloned()
                .collect();
            if !joined.is_empty() {
                loads.extend(self.loads(org, &joined).await?);
            }
            self.teams.put(org, found.clone());
            return Ok(Some((found, loads)));
        }
        let found = self.team_with_loads(org, team).await?;
        if let Some((read, _)) = &found {
            self.teams.put(org, read.clone());
        }
        Ok(found)
    }

    /// Creates a support conversation routed to `team`: with the team's SLA due
    /// times, given to its next agent with room (claimed in the creation's
    /// transaction) or queued when nobody has room. `room` has the customer as its
    /// only member. `None`: no such team. A claim of an agent who left the team since
    /// this instance read it, or a queued creation into a team changed since, fails
    /// the transaction: the team is read again and the creation retried.
    pub async fn route_conversation(
        &self,
        org: &OrgId,
        room: &Room,
        team: &TeamId,
    ) -> ApiResult<Option<(Team, Room, Routed)>> {
        for _ in rebuilds() {
            let Some((found, loads)) = self.routing_team(org, team).await? else {
                return Ok(None);
            };
            let timed = found.timed(room.clone());
            match self.create_routed(org, &timed, &found, loads).await? {
                Some((made, routed)) => return Ok(Some((found, made, routed))),
                None => {
                    tracing::debug!(team = %team, "the team changed since it was read; reading it again");
                    self.teams.forget(org, team);
                }
            }
        }
        Err(storage_busy())
    }

    /// The check that `team` is as read (its `rev`), in a queued creation's
    /// transaction (no claim vouches for the team there).
    fn team_unchanged(&self, org: &OrgId, team: &Team) -> TransactWriteItem {
        let (pk, sk) = Team::key(org, &team.id);
        let check = ConditionCheck::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .condition_expression(
                "attribute_exists(PK) AND (rev = :rev OR (attribute_not_exists(rev) AND :rev = :zero))",
            )
            .expression_attribute_values(":rev", n(team.rev))
            .expression_attribute_values(":zero", n(0))
            .build()
            .expect("check has key and condition");
        TransactWriteItem::builder().condition_check(check).build()
    }

    /// [`Self::route_conversation`] from a team as read: `None` when the team is no
    /// longer as read. `loads` are the team's agents' workloads as read.
    async fn create_routed(
        &self,
        org: &OrgId,
        room: &Room,
        team: &Team,
        mut loads: Vec<AgentLoad>,
    ) -> ApiResult<Option<(Room, Routed)>> {
        let owner = (room.owner_id.clone(), "owner");
        for (tried, attempt) in rebuilds().enumerate() {
            attempt.pause().await;
            let (made, routed, writes, claim_index) =
                match agent_to_try(&team.agents, &loads, tried).cloned() {
                    None => {
                        let queued = Room {
                            team_id: Some(team.id.to_string()),
                            queued_at: Some(room.created_at.clone()),
                            ..room.clone()
                        };
                        let mut writes =
                            self.room_writes(org, &queued, std::slice::from_ref(&owner));
                        writes.push(self.team_unchanged(org, team));
                        (queued, Routed::Queued, writes, None)
                    }
                    Some(agent) => {
                        let assigned = Room {
                            team_id: Some(team.id.to_string()),
                            assignee_id: Some(agent.user_id.clone()),
                            agent_id: Some(agent.user_id.clone()),
                            members: vec![room.owner_id.clone(), agent.user_id.clone()],
                            member_count: 2,
                            ..room.clone()
                        };
                        let members = [owner.clone(), (agent.user_id.clone(), "agent")];
                        let mut writes = self.room_items(org, &assigned, &members);
                        let claim_index = writes.len();
                        writes.push(self.claim(org, &agent, &team.id, &room.created_at));
                        let routed = Routed::Assigned(agent.user_id);
                        (assigned, routed, writes, Some(claim_index))
                    }
                };
            match self
                .table
                .transact(writes, "create routed conversation")
                .await
            {
                Ok(()) => return Ok(Some((made, routed))),
                Err(WriteError::ConditionFailed(c)) => match claim_index {
                    // The queued creation's check of the team: it changed.
                    None => return Ok(None),
                    Some(i) if c.failed(i) => {
                        let now = c.old_item(i).and_then(AgentLoad::from_item);
                        if !now.is_some_and(|l| l.in_team(&team.id)) {
                            // They left the team since it was read.
                            return Ok(None);
                        }
                        // Someone else claimed them, or they went away: choose again
                        // from the team's workloads as they are now (a racer that lost
                        // to one claim has likely lost the others' too).
                        tracing::debug!(?routed, "claim lost; choosing again");
                        loads = self.loads(org, &team.agents).await?;
                    }
                    Some(_) => {
                        return Err(ApiError::internal(
                            "create routed conversation",
                            format!("new items exist: {c:?}"),
                        ));
                    }
                },
                Err(err) => return Err(err.into_api()),
            }
        }
        Err(storage_busy())
    }

    /// A team's queued conversations, oldest first (at most `limit`).
    pub async fn queued(&self, org: &OrgId, team: &TeamId, limit: i32) -> ApiResult<Vec<Room>> {
        let (rows, _) = self
            .table
            .query("team queue", None, |query| {
                query
                    .index_name(keys::GSI2)
                    .key_condition_expression("GSI2PK = :q")
                    .expression_attribute_values(":q", s(keys::queue_gsi2pk(org, team.as_str())))
                    .limit(limit)
            })
            .await?;
        let item_keys: Vec<_> = rows
            .iter()
            .filter_map(|r| Some((r.string(keys::PK)?, r.string(keys::SK)?)))
            .collect();
        let found = self.batch_get(&item_keys, "queued conversations").await?;
        let mut rooms: Vec<Room> = found.rows()?.iter().filter_map(Room::from_item).collect();
        rooms.sort_by(|a, b| a.queued_at.cmp(&b.queued_at));
        Ok(rooms)
    }

    /// Gives a team's queued conversations, oldest first, to its agents with room,
    /// until either runs out. Returns how many were assigned.
    pub async fn drain_queue(&self, org: &OrgId, team: &TeamId) -> ApiResult<usize> {
        let Some((found, mut loads)) = self.team_with_loads(org, team).await? else {
            let released = self.release_queue(org, team).await?;
            if released > 0 {
                tracing::info!(%org, %team, released, "a deleted team's queue went back to the desk");
            }
            return Ok(0);
        };
        let mut assigned = 0;
        loop {
            if next_agent(&found.agents, &loads).is_none() {
                return Ok(assigned);
            }
            let queued = self.queued(org, team, DRAIN_BATCH).await?;
            let mut moved = false;
            for room in queued {
                match Box::pin(self.assign_queued(org, room, &found, &mut loads)).await? {
                    Dequeued::Assigned => {
                        assigned += 1;
                        moved = true;
                    }
                    Dequeued::Unqueued => moved = true,
                    Dequeued::Gone => {}
                    Dequeued::NobodyFree => return Ok(assigned),
                }
            }
            // An empty queue, or one whose entries are all gone (the index lags).
            if !moved {
                return Ok(assigned);
            }
        }
    }

    /// A deleted team's queue given back to the desk: each conversation that waited in
    /// it leaves the queue and the team (unassigned, where any agent finds it; its SLA
    /// due times stay), each with a staff-only `room.updated` (`team_id: null`).
    /// Returns how many.
    async fn release_queue(&self, org: &OrgId, team: &TeamId) -> ApiResult<usize> {
        let who = Principal::system(org, ASSIGNMENT_ACTOR);
        let waits = |room: &Room| {
            room.queued_at.is_some()
                && room.deleted_at.is_none()
                && room.team_id.as_deref() == Some(team.as_str())
        };
        let mut released = 0;
        loop {
            let mut moved = false;
            for room in self.queued(org, team, DRAIN_BATCH).await? {
                if !waits(&room) {
                    continue;
                }
                let id = room.id.clone();
                let done = self
                    .room_transaction_from(&who, &id, room, "release queued conversation", |room| {
                        if !waits(room) {
                            return Err(ApiError::Conflict {
                                code: "not_queued",
                                message: "it left the queue meanwhile".into(),
                            });
                        }
                        let release = self.room_update(
                            room,
                            &who,
                            "SET updated_at = :now REMOVE queued_at, team_id, GSI2PK, GSI2SK",
                            values([(":now", s(crate::time::now_string()))]),
                            &[],
                        );
                        Ok(Plan::new(vec![release], Change::team_released()))
                    })
                    .await;
                match done {
                    Ok(_) => {
                        released += 1;
                        moved = true;
                    }
                    Err(
                        ApiError::Conflict {
                            code: "not_queued", ..
                        }
                        | ApiError::NotFound(_),
                    ) => {}
                    Err(err) => return Err(err),
                }
            }
            // Empty, or only entries the index still shows after they left.
            if !moved {
                return Ok(released);
            }
        }
    }

    /// One queued conversation to the next agent with room: the room (out of the
    /// queue, assignee set, the agent a member), the agent's row, inbox count and
    /// claim, and the feed's `member.added` and `room.updated`, in one transaction.
    async fn assign_queued(
        &self,
        org: &OrgId,
        mut room: Room,
        team: &Team,
        loads: &mut Vec<AgentLoad>,
    ) -> ApiResult<Dequeued> {
        let who = Principal::system(org, ASSIGNMENT_ACTOR);
        for attempt in rebuilds() {
            attempt.pause().await;
            if room.deleted_at.is_some() || room.queued_at.is_none() {
                return Ok(Dequeued::Gone);
            }
            if room.assignee_id.is_some() || !active(room.status) || room.large {
                // Taken by hand, or closed while it waited: out of the queue.
                let writes = vec![self.room_update(
                    &room,
                    &who,
                    "SET updated_at = updated_at REMOVE queued_at, GSI2PK, GSI2SK",
                    values([]),
                    &[],
                )];
                return match self.table.transact(writes, "unqueue conversation").await {
                    Ok(()) => Ok(Dequeued::Unqueued),
                    Err(WriteError::ConditionFailed(_)) => {
                        room = self.reread_room(org, &room.id).await?;
                        continue;
                    }
                    Err(WriteError::Api(err)) => Err(err),
                };
            }
            let Some(agent) = next_agent(&team.agents, loads).cloned() else {
                return Ok(Dequeued::NobodyFree);
            };
            let now = crate::time::now_string();
            let plan = self.assignment_plan(&who, &room, &agent.user_id, &now);
            let mut writes = self.sequenced(&who, &room, plan, &now);
            let claim_index = writes.len();
            writes.push(self.claim(org, &agent, &team.id, &now));
            match self
                .table
                .transact(writes, "assign queued conversation")
                .await
            {
                Ok(()) => {
                    refresh(loads, &agent.user_id, None);
                    if let Some(l) = loads.iter_mut().find(|l| l.user_id == agent.user_id) {
                        l.open += 1;
                        l.turns += 1;
                        l.last_assigned_at = Some(now);
                    }
                    return Ok(Dequeued::Assigned);
                }
                Err(WriteError::ConditionFailed(c)) if c.failed(claim_index) => {
                    let current = c.old_item(claim_index).and_then(AgentLoad::from_item);
                    match current {
                        Some(now) if now.in_team(&team.id) => {
                            refresh(loads, &agent.user_id, Some(now))
                        }
                        // They left the team since it was read: not theirs to take.
                        _ => loads.retain(|l| l.user_id != agent.user_id),
                    }
                }
                Err(WriteError::ConditionFailed(_)) => {
                    room = self.reread_room(org, &room.id).await?;
                }
                Err(WriteError::Api(err)) => return Err(err),
            }
        }
        Err(storage_busy())
    }

    async fn reread_room(&self, org: &OrgId, room: &RoomId) -> ApiResult<Room> {
        let mut room = self
            .get_room(org, room)
            .await?
            .ok_or(ApiError::NotFound("conversation"))?;
        if room.deleted_at.is_some() {
            room.queued_at = None;
        }
        Ok(room)
    }

    /// A queued conversation given to `agent`: out of the queue, assignee and agent
    /// set, the agent a member with their row and inbox count.
    fn assignment_plan(&self, who: &Principal, room: &Room, agent: &str, now: &str) -> Plan {
        let agent_id = UserId::parse(agent).expect("team agents are valid user ids");
        let vals = values([
            (":one", n(1)),
            (":agent", s(agent)),
            (":agents", AttributeValue::Ss(vec![agent.to_owned()])),
            (":now", s(now)),
            (":count", n(room.members.len() as u64)),
        ]);
        let mut joined = room.clone();
        joined.members.push(agent.to_owned());
        joined.assignee_id = Some(agent.to_owned());
        joined.agent_id = Some(agent.to_owned());
        let mut writes = vec![self.room_update(
            room,
            who,
            "SET updated_at = :now, assignee_id = :agent, agent_id = if_not_exists(agent_id, :agent), \
             member_count = if_not_exists(member_count, :count) + :one \
             ADD member_version :one, members :agents REMOVE queued_at, GSI2PK, GSI2SK",
            vals,
            &[],
        )];
        writes.extend(self.room_changed_stats(who, room, None, Some(&Some(agent.to_owned())), now));
        let joining = !room.is_member(agent);
        if joining {
            writes.push(put(
                self.name(),
                crate::model::member_item(&who.org, &joined, agent, "agent", now),
                true,
            ));
            writes.push(self.inbox_head_change(&who.org, agent, 1));
        }
        // Every other row carries the assignee and the member list.
        for member in room.members.iter().filter(|m| *m != agent) {
            if let Ok(member) = UserId::parse(member) {
                let (expression, vals) = match joining {
                    true => (
                        "SET assignee_id = :agent ADD members :agents",
                        values([
                            (":agent", s(agent)),
                            (":agents", AttributeValue::Ss(vec![agent.to_owned()])),
                        ]),
                    ),
                    false => ("SET assignee_id = :agent", values([(":agent", s(agent))])),
                };
                writes.push(self.member_update(who, &room.id, &member, expression, vals, &[]));
            }
        }
        let mut changes = Vec::new();
        if joining {
            changes.push(Change::member(
                EventKind::MemberAdded,
                &agent_id,
                "assigned",
            ));
        }
        changes.push(Change::room_updated(&crate::store::SharedChanges {
            assignee_id: Some(Some(agent.to_owned())),
            ..Default::default()
        }));
        Plan { writes, changes }
    }
}

/// What became of one queued conversation.
enum Dequeued {
    Assigned,
    /// It no longer waited (given by hand, closed): taken off the queue.
    Unqueued,
    /// Deleted, or already off the queue (the index lags the table).
    Gone,
    /// Nobody in the team has room: the drain stops.
    NobodyFree,
}

impl Change {
    /// A conversation out of a deleted team's queue: the desk's, so staff only.
    fn team_released() -> Change {
        Change {
            kind: EventKind::RoomUpdated,
            staff_only: true,
            data: json!({ "team_id": null, "queued_at": null }).to_string(),
        }
    }
}

/// Business hours as the team item keeps them (JSON).
fn hours_text(hours: &BusinessHours) -> String {
    serde_json::to_string(hours).expect("business hours serialize")
}

/// `loads` with `agent`'s entry replaced by what was read (when something was).
fn refresh(loads: &mut [AgentLoad], agent: &str, now: Option<AgentLoad>) {
    if let (Some(now), Some(entry)) = (now, loads.iter_mut().find(|l| l.user_id == agent)) {
        *entry = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(user: &str, av: Availability, open: i64, cap: i64, last: Option<&str>) -> AgentLoad {
        AgentLoad {
            user_id: user.into(),
            availability: av,
            open,
            capacity: cap,
            last_assigned_at: last.map(Into::into),
            ..AgentLoad::default()
        }
    }

    #[test]
    fn the_next_agent_is_the_longest_unassigned_one_online_with_room() {
        use Availability::*;
        let agents: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let loads = vec![
            load("a", Online, 1, 5, Some("2026-01-01T00:00:03Z")),
            load("b", Online, 5, 5, Some("2026-01-01T00:00:01Z")),
            load("c", Busy, 0, 5, None),
            load("d", Online, 0, 5, Some("2026-01-01T00:00:02Z")),
            load("e", Offline, 0, 5, None),
            load("x", Online, 0, 5, None),
        ];
        // b is full, c busy, e offline, x not in the team: d's turn is oldest.
        assert_eq!(next_agent(&agents, &loads).unwrap().user_id, "d");
        let never = vec![load("f", Online, 0, 1, None), load("g", Online, 0, 1, None)];
        let agents: Vec<String> = vec!["g".into(), "f".into()];
        assert_eq!(next_agent(&agents, &never).unwrap().user_id, "f");
        assert!(next_agent(&agents, &[load("f", Online, 0, 0, None)]).is_none());
    }

    #[test]
    fn workloads_move_with_status_and_assignee() {
        use RoomStatus::*;
        assert_eq!(
            workload_moves((Open, None), (Open, Some("a"))),
            vec![("a".into(), 1)]
        );
        assert_eq!(
            workload_moves((Open, Some("a")), (Pending, Some("b"))),
            vec![("a".into(), -1), ("b".into(), 1)]
        );
        assert_eq!(
            workload_moves((Open, Some("a")), (Resolved, Some("a"))),
            vec![("a".into(), -1)]
        );
        assert_eq!(
            workload_moves((Resolved, Some("a")), (Open, Some("a"))),
            vec![("a".into(), 1)]
        );
        assert!(workload_moves((Open, Some("a")), (Snoozed, Some("a"))).is_empty());
        assert!(workload_moves((Closed, Some("a")), (Resolved, Some("b"))).is_empty());
    }
}
