//! Analytics: counters kept by the write path, folded by the scheduled rollup.
//!
//! Every counter lives on a per-room, per-day item in the room's own partition
//! (`STATS#{day}`), so no item takes more than one room's traffic. Those items carry
//! GSI2 keys `DAY#{day}#{shard}` (16 shards, all tenants), which is how the rollup
//! finds a day's active rooms without a Scan. GSI2 projects keys only: the index is
//! written once per room and day, not on every message. The rollup writes one item per tenant
//! and day (`T#{org}#ROLLUP` / `DAY#{day}`), recomputed from scratch each run.

use super::{Store, WriteError};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::ids::{OrgId, RoomId};
use crate::item::{Item, ItemBuilder, ItemExt, n, s, values};
use crate::keys;
use crate::model::{Message, Room, RoomStatus};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub const STATS_SHARDS: u32 = 16;

/// The UTC day of an RFC 3339 timestamp (`YYYY-MM-DD`).
pub fn day_of(at: &str) -> &str {
    &at[..10.min(at.len())]
}

pub(crate) fn shard_of(room: &RoomId) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in room.as_str().bytes() {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    hash % STATS_SHARDS
}

/// Whole seconds between two of our timestamps (0 if either does not parse).
pub fn seconds_between(from: &str, to: &str) -> i64 {
    use time::format_description::well_known::Rfc3339;
    match (
        time::OffsetDateTime::parse(from, &Rfc3339),
        time::OffsetDateTime::parse(to, &Rfc3339),
    ) {
        (Ok(a), Ok(b)) => (b - a).whole_seconds().max(0),
        _ => 0,
    }
}

/// Counter increments for one room and day; attribute names are the counters.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counts(pub BTreeMap<String, i64>);

impl Counts {
    pub fn add(&mut self, name: impl Into<String>, by: i64) -> &mut Self {
        *self.0.entry(name.into()).or_default() += by;
        self
    }
}

/// Names of the counters, shared by the write path, the rollup and the dashboards.
pub mod counter {
    pub const CONVERSATIONS: &str = "conversations";
    pub const MESSAGES: &str = "messages";
    pub const NOTES: &str = "notes";
    pub const RESPONSES: &str = "responses";
    pub const RESPONSE_SECONDS: &str = "response_seconds";
    pub const FIRST_RESPONSES: &str = "first_responses";
    pub const FIRST_RESPONSE_SECONDS: &str = "first_response_seconds";
    pub const RESOLUTIONS: &str = "resolutions";
    /// Conversations closed that day (not folded: it marks the day in the index, so
    /// the retention sweep finds a conversation closed on a quiet day).
    pub const CLOSURES: &str = "closures";
    /// How many updates the item took (never decreases).
    pub const UPDATES: &str = "updates";
    /// `by_sender:{user|agent|bot}`
    pub fn by_sender(kind: &str) -> String {
        format!("by_sender:{kind}")
    }
    /// Messages sent by one agent or bot.
    pub fn sent(agent: &str) -> String {
        format!("sent:{agent}")
    }
    pub fn assigned(agent: &str) -> String {
        format!("assigned:{agent}")
    }

    /// Conversations given a label that day.
    pub fn label(name: &str) -> String {
        format!("label:{name}")
    }
    /// Conversations given an SLA target that day (`first_response`, `resolution`).
    pub fn sla_due(target: &str) -> String {
        format!("sla_due:{target}")
    }
    /// Targets missed that day.
    pub fn sla_breached(target: &str) -> String {
        format!("sla_breached:{target}")
    }
    /// Satisfaction ratings given that day, and the sum of their scores (1–5).
    pub const CSAT_RATINGS: &str = "csat_ratings";
    pub const CSAT_SCORE: &str = "csat_score";
    /// The same, for the agent the rated conversation was assigned to.
    pub fn csat_ratings_of(agent: &str) -> String {
        format!("csat_ratings:{agent}")
    }
    pub fn csat_score_of(agent: &str) -> String {
        format!("csat_score:{agent}")
    }
    /// The same, for the team the rated conversation was routed to.
    pub fn team_csat_ratings(team: &str) -> String {
        format!("team_csat_ratings:{team}")
    }
    pub fn team_csat_score(team: &str) -> String {
        format!("team_csat_score:{team}")
    }
    pub fn resolved(agent: &str) -> String {
        format!("resolved:{agent}")
    }
    /// A customer who started a conversation that day.
    pub fn customer(user: &str) -> String {
        format!("customer:{user}")
    }
}

/// What a message adds to the counters, and whether it answers a waiting customer.
pub fn message_counts(room: &Room, message: &Message, now: &str) -> Counts {
    let mut counts = Counts::default();
    if message.is_note() {
        counts.add(counter::NOTES, 1);
        return counts;
    }
    counts
        .add(counter::MESSAGES, 1)
        .add(counter::by_sender(&message.sender), 1);
    if message.sender != "user" && message.sender != crate::model::SYSTEM_SENDER {
        counts.add(counter::sent(&message.sender_id), 1);
        if let Some(since) = &room.awaiting_since {
            let secs = seconds_between(since, now);
            counts
                .add(counter::RESPONSES, 1)
                .add(counter::RESPONSE_SECONDS, secs);
            if room.first_response_at.is_none() {
                counts
                    .add(counter::FIRST_RESPONSES, 1)
                    .add(counter::FIRST_RESPONSE_SECONDS, secs);
            }
        }
    }
    counts
}

/// What the room item itself keeps of a message's figures, for the customer's
/// dashboard (per conversation, lifetime): an answer adds to `response_count` and
/// `response_seconds`. Returns the fragment for the room update's ADD clause (after
/// `ADD total_messages :one`) and puts its values in `vals`.
pub(crate) fn room_response_adds(
    counts: &Counts,
    vals: &mut HashMap<String, AttributeValue>,
) -> &'static str {
    match counts.0.get(counter::RESPONSE_SECONDS) {
        Some(secs) => {
            vals.insert(":response_secs".into(), n(*secs));
            vals.insert(":response_one".into(), n(1));
            ", response_count :response_one, response_seconds :response_secs"
        }
        None => "",
    }
}

impl Store {
    /// Responses to the customer in these rooms, from the room items: (count, seconds).
    /// One BatchGetItem (at most 100 rooms).
    pub async fn room_responses(&self, org: &OrgId, rooms: &[RoomId]) -> ApiResult<(i64, i64)> {
        let item_keys: Vec<(String, String)> = rooms
            .iter()
            .take(100)
            .map(|r| (keys::room_pk(org, r), keys::ROOM_SK.to_owned()))
            .collect();
        let found = self.batch_get(&item_keys, "room responses").await?;
        Ok(found.rows()?.iter().fold((0, 0), |(count, secs), room| {
            (
                count + room.num::<i64>("response_count").unwrap_or(0),
                secs + room.num::<i64>("response_seconds").unwrap_or(0),
            )
        }))
    }

    /// The update of a room's stats item for `day`, adding `counts`.
    pub(crate) fn stats_update(
        &self,
        org: &OrgId,
        room: &RoomId,
        day: &str,
        counts: &Counts,
    ) -> Option<TransactWriteItem> {
        if counts.0.is_empty() {
            return None;
        }
        let mut names = HashMap::new();
        let mut vals = values([
            (":e", s(keys::entity::ROOM_STATS)),
            (":org", s(org.as_str())),
            (":room", s(room.as_str())),
            (":day", s(day)),
            (":g2pk", s(keys::stats_gsi2pk(day, shard_of(room)))),
            (":g2sk", s(keys::stats_gsi2sk(org, room))),
        ]);
        let mut adds = Vec::new();
        for (i, (name, by)) in counts.0.iter().enumerate() {
            names.insert(format!("#c{i}"), name.clone());
            vals.insert(format!(":c{i}"), n(*by));
            adds.push(format!("#c{i} :c{i}"));
        }
        // Every update also counts itself: the rollup's guard against folding an older
        // view of the day over a newer one (see `put_rollup`).
        names.insert("#upd".into(), counter::UPDATES.into());
        vals.insert(":one".into(), n(1));
        adds.push("#upd :one".into());
        names.insert("#e".into(), keys::ENTITY.into());
        names.insert("#g2pk".into(), keys::GSI2PK.into());
        names.insert("#g2sk".into(), keys::GSI2SK.into());
        let expression = format!(
            "SET #e = :e, org = :org, room_id = :room, #day = :day, #g2pk = if_not_exists(#g2pk, :g2pk), #g2sk = if_not_exists(#g2sk, :g2sk) ADD {}",
            adds.join(", ")
        );
        names.insert("#day".into(), "day".into());
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::room_pk(org, room)))
            .key(keys::SK, s(keys::stats_sk(day)))
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(vals))
            .build()
            .expect("update has key and expression");
        Some(TransactWriteItem::builder().update(update).build())
    }

    /// The counters of a new room.
    pub(crate) fn room_created_stats(&self, org: &OrgId, room: &Room) -> Option<TransactWriteItem> {
        let mut counts = Counts::default();
        counts
            .add(counter::CONVERSATIONS, 1)
            .add(counter::customer(&room.owner_id), 1);
        if let Some(agent) = &room.assignee_id {
            counts.add(counter::assigned(agent), 1);
        }
        if room.first_response_due_at.is_some() {
            counts.add(counter::sla_due("first_response"), 1);
        }
        if room.resolution_due_at.is_some() {
            counts.add(counter::sla_due("resolution"), 1);
        }
        self.stats_update(
            org,
            &room.id,
            crate::store::analytics::day_of(&room.created_at),
            &counts,
        )
    }

    /// The counters of a status or assignee change.
    pub(crate) fn room_changed_stats(
        &self,
        who: &Principal,
        room: &Room,
        status: Option<RoomStatus>,
        assignee: Option<&Option<String>>,
        now: &str,
    ) -> Option<TransactWriteItem> {
        let mut counts = Counts::default();
        if status == Some(RoomStatus::Resolved) && room.status != RoomStatus::Resolved {
            // Resolutions count for the assignee (the agent the conversation was
            // theirs to solve), else for whoever resolved it.
            let credited = assignee
                .cloned()
                .flatten()
                .or_else(|| room.assignee_id.clone())
                .unwrap_or_else(|| who.user.to_string());
            counts
                .add(counter::RESOLUTIONS, 1)
                .add(counter::resolved(&credited), 1);
        }
        if status == Some(RoomStatus::Closed) && room.status != RoomStatus::Closed {
            counts.add(counter::CLOSURES, 1);
        }
        if let Some(Some(agent)) = assignee
            && room.assignee_id.as_deref() != Some(agent.as_str())
        {
            counts.add(counter::assigned(agent), 1);
        }
        self.stats_update(&who.org, &room.id, day_of(now), &counts)
    }

    /// Every room's stats item for `day`, all tenants: one paginated Query per shard,
    /// the shards concurrently.
    pub async fn stats_of_day(&self, day: &str) -> ApiResult<Vec<Item>> {
        let mut shards = tokio::task::JoinSet::new();
        for shard in 0..STATS_SHARDS {
            let (store, day) = (self.clone(), day.to_owned());
            shards.spawn(async move { store.stats_of_shard(&day, shard).await });
        }
        let mut items = Vec::new();
        while let Some(joined) = shards.join_next().await {
            let shard = joined.map_err(|e| crate::ApiError::internal("stats shard task", e))?;
            items.extend(shard?);
        }
        Ok(items)
    }

    async fn stats_of_shard(&self, day: &str, shard: u32) -> ApiResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let (page, last_key) = self
                .table
                .query("stats of day", start, |query| {
                    query
                        .index_name(keys::GSI2)
                        .key_condition_expression("#pk = :pk")
                        .expression_attribute_names("#pk", keys::GSI2PK)
                        .expression_attribute_values(":pk", s(keys::stats_gsi2pk(day, shard)))
                })
                .await?;
            // GSI2 projects keys only (so a counter update never writes the index);
            // the items themselves come by key, strongly consistent.
            let found: Vec<(String, String)> = page
                .iter()
                .filter_map(|k| Some((k.string(keys::PK)?, k.string(keys::SK)?)))
                .collect();
            for chunk in found.chunks(100) {
                items.extend(self.batch_get(chunk, "stats items").await?.items()?);
            }
            start = last_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// Writes a tenant's rollup for a day when it saw more of the day than the stored
    /// one (`updates`, which only grows), or the same updates folded differently (a
    /// new version of the fold). So a second run changes nothing, and a concurrent or
    /// lagging run (GSI2 reads are eventually consistent) cannot put older figures
    /// over newer ones. Returns whether it wrote.
    pub async fn put_rollup(&self, org: &str, rollup: &DayRollup) -> ApiResult<bool> {
        let body = serde_json::to_string(rollup).expect("rollup serializes");
        let item = ItemBuilder::new()
            .str(keys::PK, keys::rollup_pk(org))
            .str(keys::SK, keys::rollup_sk(&rollup.day))
            .str(keys::ENTITY, keys::entity::ROLLUP)
            .str("day", &rollup.day)
            .num(counter::UPDATES, rollup.updates)
            .str("figures", &body)
            .build();
        let put = Put::builder()
            .table_name(self.name())
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(figures) OR attribute_not_exists(#upd) OR #upd < :upd \
                 OR (#upd = :upd AND figures <> :figures)",
            )
            .expression_attribute_names("#upd", counter::UPDATES)
            .expression_attribute_values(":upd", n(rollup.updates))
            .expression_attribute_values(":figures", s(&body))
            .build()
            .expect("put has item");
        match self.table.put(put, "put rollup").await {
            Ok(()) => Ok(true),
            // The stored rollup is as new or newer.
            Err(WriteError::ConditionFailed(_)) => Ok(false),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// A tenant's daily rollups from `from` to `to` (inclusive): one Query.
    pub async fn rollups(&self, org: &OrgId, from: &str, to: &str) -> ApiResult<Vec<DayRollup>> {
        let items = self
            .table
            .query_all("rollups", |query| {
                query
                    .key_condition_expression("PK = :pk AND SK BETWEEN :from AND :to")
                    .expression_attribute_values(":pk", s(keys::rollup_pk(org.as_str())))
                    .expression_attribute_values(":from", s(keys::rollup_sk(from)))
                    .expression_attribute_values(":to", s(keys::rollup_sk(to)))
            })
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| i.str("figures"))
            .filter_map(|f| serde_json::from_str(f).ok())
            .collect())
    }
}

/// One tenant's figures for one day, folded from its rooms' stats items.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayRollup {
    pub day: String,
    pub conversations: i64,
    pub messages: i64,
    pub notes: i64,
    pub by_sender: BTreeMap<String, i64>,
    pub responses: i64,
    pub response_seconds: i64,
    pub first_responses: i64,
    pub first_response_seconds: i64,
    pub resolutions: i64,
    pub active_rooms: i64,
    /// Updates of the day's stats items folded in (the freshness of these figures).
    #[serde(default)]
    pub updates: i64,
    /// Per agent (or bot): messages sent, conversations assigned and resolved.
    pub agents: BTreeMap<String, AgentFigures>,
    /// Conversations given each label that day.
    #[serde(default)]
    pub labels: BTreeMap<String, i64>,
    /// Satisfaction ratings given that day: in all, and per team.
    #[serde(default)]
    pub csat: Csat,
    #[serde(default)]
    pub team_csat: BTreeMap<String, Csat>,
    /// SLA targets given and missed that day, per target.
    #[serde(default)]
    pub sla: BTreeMap<String, SlaFigures>,
    /// Customers who started conversations that day (distinct).
    #[serde(default)]
    pub customer_count: i64,
    /// Their ids, while at most [`MAX_EXACT_CUSTOMERS`]; over that, `customers_sketch`
    /// instead, so the item stays far below DynamoDB's 400 KB whatever the traffic.
    pub customers: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customers_sketch: Option<String>,
}

/// Customer ids a day's rollup keeps exactly (about 30 KB at most).
pub const MAX_EXACT_CUSTOMERS: usize = 1000;

/// Distinct customers over several days: exact while every day kept its ids, else a
/// HyperLogLog estimate (1.6% standard error). Returns (count, estimated).
pub fn distinct_customers(rollups: &[DayRollup]) -> (i64, bool) {
    if rollups.iter().all(|r| r.customers_sketch.is_none()) {
        let all: BTreeSet<&String> = rollups.iter().flat_map(|r| &r.customers).collect();
        return (all.len() as i64, false);
    }
    let mut sketch = Sketch::default();
    for r in rollups {
        match r.customers_sketch.as_deref().and_then(Sketch::decode) {
            Some(other) => sketch.merge(&other),
            None => r.customers.iter().for_each(|c| sketch.insert(c)),
        }
    }
    (sketch.estimate().round() as i64, true)
}

/// A HyperLogLog sketch of a set of strings: 2^12 one-byte registers (5.5 KB as
/// base64; standard error 1.6%).
#[derive(Debug, Clone, PartialEq)]
pub struct Sketch(Vec<u8>);

const SKETCH_BITS: u32 = 12;
const SKETCH_REGISTERS: usize = 1 << SKETCH_BITS;

impl Default for Sketch {
    fn default() -> Self {
        Sketch(vec![0; SKETCH_REGISTERS])
    }
}

impl Sketch {
    pub fn insert(&mut self, value: &str) {
        // FNV-1a, then the splitmix64 finalizer to spread its bits.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in value.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        let index = (h >> (64 - SKETCH_BITS)) as usize;
        let rank = ((h << SKETCH_BITS) | (1 << (SKETCH_BITS - 1))).leading_zeros() as u8 + 1;
        self.0[index] = self.0[index].max(rank);
    }

    pub fn merge(&mut self, other: &Sketch) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a = (*a).max(*b);
        }
    }

    pub fn estimate(&self) -> f64 {
        let m = SKETCH_REGISTERS as f64;
        let sum: f64 = self.0.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
        let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
        let zeros = self.0.iter().filter(|&&r| r == 0).count();
        if raw <= 2.5 * m && zeros > 0 {
            // Small sets: linear counting is the better estimate.
            m * (m / zeros as f64).ln()
        } else {
            raw
        }
    }

    pub fn encode(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&self.0)
    }

    pub fn decode(raw: &str) -> Option<Sketch> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(raw)
            .ok()?;
        (bytes.len() == SKETCH_REGISTERS).then_some(Sketch(bytes))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentFigures {
    pub messages: i64,
    pub assigned: i64,
    pub resolved: i64,
    /// Satisfaction ratings of their conversations, and the sum of the scores.
    #[serde(default)]
    pub csat_ratings: i64,
    #[serde(default)]
    pub csat_score: i64,
}

/// SLA targets given and missed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SlaFigures {
    pub due: i64,
    pub breached: i64,
}

/// Satisfaction ratings and the sum of their scores (1–5 each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Csat {
    pub ratings: i64,
    pub score: i64,
}

impl Csat {
    pub fn add(&mut self, other: Csat) {
        self.ratings += other.ratings;
        self.score += other.score;
    }

    /// The average score, to two places (None without ratings).
    pub fn average(&self) -> Option<f64> {
        (self.ratings > 0)
            .then(|| (self.score as f64 / self.ratings as f64 * 100.0).round() / 100.0)
    }
}

/// Folds a day's stats items into one rollup per tenant.
pub fn fold_day(day: &str, items: &[Item]) -> BTreeMap<String, DayRollup> {
    let mut tenants: BTreeMap<String, DayRollup> = BTreeMap::new();
    for item in items {
        let (Some(org), Some(item_day)) = (item.str("org"), item.str("day")) else {
            continue;
        };
        if item_day != day {
            continue;
        }
        let rollup = tenants.entry(org.to_owned()).or_insert_with(|| DayRollup {
            day: day.to_owned(),
            ..Default::default()
        });
        rollup.active_rooms += 1;
        for (name, value) in item {
            let AttributeValue::N(raw) = value else {
                continue;
            };
            let Ok(v) = raw.parse::<i64>() else { continue };
            match name.as_str() {
                counter::CONVERSATIONS => rollup.conversations += v,
                counter::MESSAGES => rollup.messages += v,
                counter::NOTES => rollup.notes += v,
                counter::RESPONSES => rollup.responses += v,
                counter::RESPONSE_SECONDS => rollup.response_seconds += v,
                counter::FIRST_RESPONSES => rollup.first_responses += v,
                counter::FIRST_RESPONSE_SECONDS => rollup.first_response_seconds += v,
                counter::RESOLUTIONS => rollup.resolutions += v,
                counter::UPDATES => rollup.updates += v,
                counter::CSAT_RATINGS => rollup.csat.ratings += v,
                counter::CSAT_SCORE => rollup.csat.score += v,
                other => {
                    if let Some(kind) = other.strip_prefix("by_sender:") {
                        *rollup.by_sender.entry(kind.to_owned()).or_default() += v;
                    } else if let Some(agent) = other.strip_prefix("sent:") {
                        rollup.agents.entry(agent.to_owned()).or_default().messages += v;
                    } else if let Some(agent) = other.strip_prefix("assigned:") {
                        rollup.agents.entry(agent.to_owned()).or_default().assigned += v;
                    } else if let Some(agent) = other.strip_prefix("resolved:") {
                        rollup.agents.entry(agent.to_owned()).or_default().resolved += v;
                    } else if let Some(agent) = other.strip_prefix("csat_ratings:") {
                        rollup
                            .agents
                            .entry(agent.to_owned())
                            .or_default()
                            .csat_ratings += v;
                    } else if let Some(agent) = other.strip_prefix("csat_score:") {
                        rollup
                            .agents
                            .entry(agent.to_owned())
                            .or_default()
                            .csat_score += v;
                    } else if let Some(team) = other.strip_prefix("team_csat_ratings:") {
                        rollup.team_csat.entry(team.to_owned()).or_default().ratings += v;
                    } else if let Some(team) = other.strip_prefix("team_csat_score:") {
                        rollup.team_csat.entry(team.to_owned()).or_default().score += v;
                    } else if let Some(target) = other.strip_prefix("sla_due:") {
                        rollup.sla.entry(target.to_owned()).or_default().due += v;
                    } else if let Some(target) = other.strip_prefix("sla_breached:") {
                        rollup.sla.entry(target.to_owned()).or_default().breached += v;
                    } else if let Some(label) = other.strip_prefix("label:") {
                        *rollup.labels.entry(label.to_owned()).or_default() += v;
                    } else if let Some(user) = other.strip_prefix("customer:") {
                        rollup.customers.insert(user.to_owned());
                    }
                }
            }
        }
    }
    for rollup in tenants.values_mut() {
        rollup.customer_count = rollup.customers.len() as i64;
        if rollup.customers.len() > MAX_EXACT_CUSTOMERS {
            let mut sketch = Sketch::default();
            for c in std::mem::take(&mut rollup.customers) {
                sketch.insert(&c);
            }
            rollup.customers_sketch = Some(sketch.encode());
        }
    }
    tenants
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_and_are_stable() {
        let ids: Vec<RoomId> = (0..200)
            .map(|i| RoomId::from_parts(i, i as u128 * 7919))
            .collect();
        let used: BTreeSet<u32> = ids.iter().map(shard_of).collect();
        assert!(used.len() > 8, "{used:?}");
        assert_eq!(shard_of(&ids[3]), shard_of(&ids[3].clone()));
    }

    #[test]
    fn seconds_between_timestamps() {
        assert_eq!(
            seconds_between("2024-06-29T23:59:30.000Z", "2024-06-30T00:00:45.500Z"),
            75
        );
        assert_eq!(seconds_between("bad", "2024-06-30T00:00:45.500Z"), 0);
        assert_eq!(day_of("2024-06-30T00:00:45.500Z"), "2024-06-30");
    }

    #[test]
    fn folding_sums_per_tenant() {
        let item = |org: &str, pairs: &[(&str, i64)]| -> Item {
            let mut i = ItemBuilder::new()
                .str("org", org)
                .str("day", "2024-06-29")
                .build();
            for (k, v) in pairs {
                i.insert(k.to_string(), n(*v));
            }
            i
        };
        let items = vec![
            item(
                "acme",
                &[
                    ("messages", 3),
                    ("sent:5", 2),
                    ("resolved:5", 1),
                    ("customer:u-1", 1),
                ],
            ),
            item(
                "acme",
                &[("messages", 1), ("assigned:5", 1), ("customer:u-1", 1)],
            ),
            item("globex", &[("messages", 7)]),
        ];
        let folded = fold_day("2024-06-29", &items);
        assert_eq!(folded["acme"].messages, 4);
        assert_eq!(folded["acme"].active_rooms, 2);
        assert_eq!(
            folded["acme"].agents["5"],
            AgentFigures {
                messages: 2,
                assigned: 1,
                resolved: 1,
                ..AgentFigures::default()
            }
        );
        assert_eq!(folded["acme"].customers.len(), 1);
        assert_eq!(folded["acme"].customer_count, 1);
        assert_eq!(folded["globex"].messages, 7);
    }

    #[test]
    fn a_busy_day_keeps_a_sketch_not_every_customer() {
        let items: Vec<Item> = (0..MAX_EXACT_CUSTOMERS + 500)
            .map(|i| {
                let mut item = ItemBuilder::new()
                    .str("org", "acme")
                    .str("day", "2024-06-29")
                    .build();
                item.insert(format!("customer:u-{i}"), n(1));
                item
            })
            .collect();
        let day = fold_day("2024-06-29", &items).remove("acme").unwrap();
        assert_eq!(day.customer_count, 1500);
        assert!(day.customers.is_empty());
        let size = serde_json::to_string(&day).unwrap().len();
        assert!(size < 8_000, "{size} bytes");
        // The same customers on a small day (exact) and the busy day (sketch).
        let small = DayRollup {
            customers: (0..10).map(|i| format!("u-{i}")).collect(),
            ..Default::default()
        };
        let (count, estimated) = distinct_customers(&[day, small.clone()]);
        assert!(estimated);
        assert!((1410..=1590).contains(&count), "{count}");
        assert_eq!(distinct_customers(&[small.clone(), small]), (10, false));
    }

    #[test]
    fn sketches_estimate_within_a_few_percent_and_round_trip() {
        for n in [1usize, 10, 100, 5_000, 50_000] {
            let mut sketch = Sketch::default();
            for i in 0..n {
                sketch.insert(&format!("customer-{i}"));
                sketch.insert(&format!("customer-{i}"));
            }
            let error = (sketch.estimate() - n as f64).abs() / n as f64;
            assert!(error < 0.05, "{n}: {}", sketch.estimate());
            assert_eq!(Sketch::decode(&sketch.encode()), Some(sketch));
        }
        assert_eq!(Sketch::decode("not a sketch"), None);
    }
}
