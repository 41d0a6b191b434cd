//! A tenant's retention policy (how long messages, files and closed conversations are
//! kept; docs/data-protection.md) and what its sweep reads and writes.
//!
//! The policy lives beside the tenant's settings (`T#{org}#ORG` / `RETENTION`) with the
//! sweep's progress: per kind, the last day whose every item was dealt with. A policy
//! that removes something is also in GSI2 (`RETENTION` / `{org}`): the sweep's list of
//! tenants. The sweep finds a day's rooms through the room stats' day shards in GSI2
//! (`DAY#{day}#{shard}`, `{org}#{room}`), which name every room with a message, a new
//! conversation, a resolution or a closure on that day.

use super::analytics::STATS_SHARDS;
use super::{Store, WriteError};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::ids::{MessageId, OrgId, RoomId};
use crate::item::{Item, ItemExt, n, s};
use crate::keys;
use crate::model::Message;
use aws_sdk_dynamodb::types::{ReturnValue, Update};
use serde_json::{Value, json};
use std::collections::HashMap;
use time::{Date, Duration};

/// The longest a policy keeps anything: ten years (longer is no policy at all).
pub const MAX_RETENTION_DAYS: u32 = 3650;

/// How long each kind of data is kept, in days; None keeps it forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub messages_days: Option<u32>,
    pub files_days: Option<u32>,
    pub closed_conversations_days: Option<u32>,
}

impl RetentionPolicy {
    pub fn days(&self, kind: RetentionKind) -> Option<u32> {
        match kind {
            RetentionKind::Messages => self.messages_days,
            RetentionKind::Files => self.files_days,
            RetentionKind::ClosedConversations => self.closed_conversations_days,
        }
    }

    pub fn keeps_everything(&self) -> bool {
        RetentionKind::ALL.iter().all(|k| self.days(*k).is_none())
    }
}

/// What a policy removes once old enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetentionKind {
    /// Messages become tombstones (their place, number and counts stay).
    Messages,
    /// Uploaded files are deleted; their messages stay.
    Files,
    /// Resolved or closed conversations are deleted with everything in them.
    ClosedConversations,
}

impl RetentionKind {
    /// In the order a sweep takes them: a conversation that goes whole first.
    pub const ALL: [RetentionKind; 3] = [
        RetentionKind::ClosedConversations,
        RetentionKind::Messages,
        RetentionKind::Files,
    ];

    /// The policy's field, and the name of the kind in the sweep's progress.
    pub fn field(self) -> &'static str {
        match self {
            RetentionKind::Messages => "messages_days",
            RetentionKind::Files => "files_days",
            RetentionKind::ClosedConversations => "closed_conversations_days",
        }
    }

    fn progress(self) -> &'static str {
        match self {
            RetentionKind::Messages => "messages",
            RetentionKind::Files => "files",
            RetentionKind::ClosedConversations => "closed_conversations",
        }
    }

    fn through_attr(self) -> String {
        format!("{}_through", self.progress())
    }

    fn removed_attr(self) -> String {
        format!("{}_removed", self.progress())
    }
}

/// A tenant's policy with who set it and how far its sweep got.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retention {
    pub org: String,
    pub policy: RetentionPolicy,
    pub updated_at: Option<String>,
    pub updated_by: Option<String>,
    /// Per kind: the last day the sweep finished, and what it removed in all.
    pub through: HashMap<&'static str, String>,
    pub removed: HashMap<&'static str, u64>,
    pub last_sweep_at: Option<String>,
}

impl Retention {
    pub fn from_item(org: &OrgId, item: Option<&Item>) -> Retention {
        let Some(item) = item else {
            return Retention {
                org: org.to_string(),
                ..Retention::default()
            };
        };
        let mut through = HashMap::new();
        let mut removed = HashMap::new();
        for kind in RetentionKind::ALL {
            if let Some(day) = item.string(&kind.through_attr()) {
                through.insert(kind.progress(), day);
            }
            removed.insert(kind.progress(), item.num(&kind.removed_attr()).unwrap_or(0));
        }
        Retention {
            org: org.to_string(),
            policy: RetentionPolicy {
                messages_days: item.num(RetentionKind::Messages.field()),
                files_days: item.num(RetentionKind::Files.field()),
                closed_conversations_days: item.num(RetentionKind::ClosedConversations.field()),
            },
            updated_at: item.string("updated_at"),
            updated_by: item.string("updated_by"),
            through,
            removed,
            last_sweep_at: item.string("last_sweep_at"),
        }
    }

    pub fn through(&self, kind: RetentionKind) -> Option<&str> {
        self.through.get(kind.progress()).map(String::as_str)
    }

    /// As GET and PUT /admin/settings/retention answer it.
    pub fn json(&self) -> Value {
        let mut sweep = json!({ "last_run_at": self.last_sweep_at });
        for kind in RetentionKind::ALL {
            sweep[kind.progress()] = json!({
                "through_day": self.through(kind),
                "removed": self.removed.get(kind.progress()).copied().unwrap_or(0),
            });
        }
        json!({
            "messages_days": self.policy.messages_days,
            "files_days": self.policy.files_days,
            "closed_conversations_days": self.policy.closed_conversations_days,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
            "sweep": sweep,
        })
    }
}

/// The first key of a UTC day's messages (a message key is its ULID, which starts
/// with its millisecond): `M#` + the day's first millisecond and no randomness.
pub fn day_message_sk(day: Date) -> String {
    let millis = crate::time::millis(day.midnight().assume_utc());
    keys::message_sk(&MessageId::from_parts(millis as u64, 0))
}

/// `YYYY-MM-DD` of a day, and back.
pub fn day_string(day: Date) -> String {
    crate::time::format(day.midnight().assume_utc())[..10].to_owned()
}

pub fn parse_day(raw: &str) -> Option<Date> {
    Date::parse(
        raw,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

/// The last day whose every moment is more than `days` days before `now`: what a
/// policy of `days` removes whole.
pub fn last_expired_day(now: time::OffsetDateTime, days: u32) -> Date {
    (now - Duration::days(i64::from(days))).date() - Duration::days(1)
}

impl Store {
    pub async fn get_retention(&self, org: &OrgId) -> ApiResult<Retention> {
        let item = self
            .table
            .get(
                (keys::org_pk(org), keys::RETENTION_SK.to_owned()),
                "retention policy",
            )
            .await?;
        Ok(Retention::from_item(org, item.as_ref()))
    }

    /// Sets the tenant's policy (the sweep's progress stays: a day swept is swept
    /// whole, whatever the number of days). A policy that removes something is listed
    /// for the sweep, one that keeps everything is not.
    pub async fn put_retention(
        &self,
        who: &Principal,
        policy: &RetentionPolicy,
    ) -> ApiResult<Retention> {
        let mut sets = vec![
            "#e = :e".to_owned(),
            "org = :org".to_owned(),
            "updated_at = :now".to_owned(),
            "updated_by = :by".to_owned(),
        ];
        let mut removes = Vec::new();
        let mut vals = HashMap::from([
            (":e".to_owned(), s(keys::entity::RETENTION)),
            (":org".to_owned(), s(who.org.as_str())),
            (":now".to_owned(), s(crate::time::now_string())),
            (":by".to_owned(), s(who.user.as_str())),
        ]);
        for kind in RetentionKind::ALL {
            match policy.days(kind) {
                Some(days) => {
                    sets.push(format!("{0} = :{0}", kind.field()));
                    vals.insert(format!(":{}", kind.field()), n(days));
                }
                None => removes.push(kind.field().to_owned()),
            }
        }
        match policy.keeps_everything() {
            true => removes.extend(["#g2pk".to_owned(), "#g2sk".to_owned()]),
            false => {
                sets.extend(["#g2pk = :g2pk".to_owned(), "#g2sk = :org".to_owned()]);
                vals.insert(":g2pk".into(), s(keys::RETENTION_GSI2PK));
            }
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::org_pk(&who.org)))
            .key(keys::SK, s(keys::RETENTION_SK))
            .update_expression(expression)
            .expression_attribute_names("#e", keys::ENTITY)
            .expression_attribute_names("#g2pk", keys::GSI2PK)
            .expression_attribute_names("#g2sk", keys::GSI2SK)
            .set_expression_attribute_values(Some(vals))
            .build()
            .expect("update has key and expression");
        let item = self
            .table
            .update(update, Some(ReturnValue::AllNew), "put retention policy")
            .await
            .map_err(WriteError::into_api)?;
        Ok(Retention::from_item(&who.org, item.as_ref()))
    }

    /// Every tenant whose policy removes something (GSI2, keys only; then the
    /// policies by key, consistent).
    pub async fn retention_tenants(&self) -> ApiResult<Vec<(OrgId, Retention)>> {
        let listed = self
            .table
            .query_all("retention tenants", |q| {
                q.index_name(keys::GSI2)
                    .key_condition_expression("#pk = :pk")
                    .expression_attribute_names("#pk", keys::GSI2PK)
                    .expression_attribute_values(":pk", s(keys::RETENTION_GSI2PK))
            })
            .await?;
        let item_keys: Vec<(String, String)> = listed
            .iter()
            .filter_map(|k| Some((k.string(keys::PK)?, k.string(keys::SK)?)))
            .collect();
        let mut tenants = Vec::new();
        for chunk in item_keys.chunks(super::table::BATCH_KEYS) {
            for item in self.batch_get(chunk, "retention policies").await?.items()? {
                let Some(org) = item.str("org").and_then(|o| OrgId::parse(o).ok()) else {
                    continue;
                };
                let retention = Retention::from_item(&org, Some(&item));
                if !retention.policy.keeps_everything() {
                    tenants.push((org, retention));
                }
            }
        }
        tenants.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        Ok(tenants)
    }

    /// The tenant's first day in its analytics rollups, if any (where a first sweep
    /// may start).
    pub async fn first_rollup_day(&self, org: &OrgId) -> ApiResult<Option<Date>> {
        let (items, _) = self
            .table
            .query("first rollup day", None, |q| {
                q.key_condition_expression("PK = :pk")
                    .expression_attribute_values(":pk", s(keys::rollup_pk(org.as_str())))
                    .limit(1)
            })
            .await?;
        Ok(items.first().and_then(|i| i.str("day")).and_then(parse_day))
    }

    /// The tenant's rooms with activity on `day`: the day's 16 shards of room stats
    /// (GSI2, keys only), this tenant's part of each.
    pub async fn rooms_active_on(&self, org: &OrgId, day: Date) -> ApiResult<Vec<RoomId>> {
        let day = day_string(day);
        let prefix = format!("{org}#");
        let shards = (0..STATS_SHARDS).map(|shard| {
            let (day, prefix) = (&day, &prefix);
            self.table.query_all("rooms active on a day", move |q| {
                q.index_name(keys::GSI2)
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :org)")
                    .expression_attribute_names("#pk", keys::GSI2PK)
                    .expression_attribute_names("#sk", keys::GSI2SK)
                    .expression_attribute_values(":pk", s(keys::stats_gsi2pk(day, shard)))
                    .expression_attribute_values(":org", s(prefix))
            })
        });
        let mut rooms = Vec::new();
        for found in futures_util::future::join_all(shards).await {
            rooms.extend(
                found?
                    .iter()
                    .filter_map(|k| k.str(keys::GSI2SK)?.strip_prefix(&prefix))
                    .filter_map(|r| RoomId::parse(r).ok()),
            );
        }
        rooms.sort();
        rooms.dedup();
        Ok(rooms)
    }

    /// A room's messages written on `day` (their keys start with the day's time),
    /// oldest first, consistent.
    pub async fn messages_of_day(
        &self,
        org: &OrgId,
        room: &RoomId,
        day: Date,
    ) -> ApiResult<Vec<Message>> {
        let pk = keys::room_pk(org, room);
        let (from, to) = (
            day_message_sk(day),
            day_message_sk(day.next_day().unwrap_or(day)),
        );
        let items = self
            .table
            .query_all("messages of a day", |q| {
                q.key_condition_expression("PK = :pk AND SK BETWEEN :from AND :to")
                    .expression_attribute_values(":pk", s(&pk))
                    .expression_attribute_values(":from", s(&from))
                    .expression_attribute_values(":to", s(&to))
                    .consistent_read(true)
            })
            .await?;
        Ok(items
            .iter()
            .filter(|i| i.str(keys::SK) != Some(to.as_str()))
            .filter_map(Message::from_item)
            .collect())
    }

    /// Records what the sweep removed of `kind`, and that it finished every day
    /// through `day` when given. The day only moves forward (a late run never sets it
    /// back), and a policy deleted meanwhile is not brought back.
    pub async fn save_retention_progress(
        &self,
        org: &OrgId,
        kind: RetentionKind,
        day: Option<Date>,
        removed: u64,
    ) -> ApiResult<()> {
        let mut update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::org_pk(org)))
            .key(keys::SK, s(keys::RETENTION_SK))
            .expression_attribute_names("#removed", kind.removed_attr())
            .expression_attribute_values(":now", s(crate::time::now_string()))
            .expression_attribute_values(":n", n(removed));
        update = match day {
            Some(day) => update
                .update_expression("SET #through = :day, last_sweep_at = :now ADD #removed :n")
                .condition_expression(
                    "attribute_exists(PK) AND (attribute_not_exists(#through) OR #through < :day)",
                )
                .expression_attribute_names("#through", kind.through_attr())
                .expression_attribute_values(":day", s(day_string(day))),
            None => update
                .update_expression("SET last_sweep_at = :now ADD #removed :n")
                .condition_expression("attribute_exists(PK)"),
        };
        let update = update.build().expect("update has key and expression");
        match self.table.update(update, None, "retention progress").await {
            Ok(_) | Err(WriteError::ConditionFailed(_)) => Ok(()),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// A message of a deleted room removed outright (nobody reads it; there is no feed
    /// to tell), with its search entries.
    pub async fn remove_message(
        &self,
        org: &OrgId,
        room_id: &RoomId,
        message: &Message,
    ) -> ApiResult<()> {
        let sk = keys::message_sk(&message.id);
        self.remove_room_item(org, room_id, &sk, Some(message))
            .await
    }

    /// Deletes one item of a room; a message's search entries first, so that no entry
    /// ever points at a message that is gone.
    async fn remove_room_item(
        &self,
        org: &OrgId,
        room_id: &RoomId,
        sk: &str,
        message: Option<&Message>,
    ) -> ApiResult<()> {
        let mut item_keys: Vec<(String, String)> = message
            .map(|m| {
                super::index_words(&m.content)
                    .iter()
                    .map(|w| (keys::search_pk(org, w), keys::search_sk(&m.id, room_id)))
                    .collect()
            })
            .unwrap_or_default();
        item_keys.push((keys::room_pk(org, room_id), sk.to_owned()));
        for key in item_keys {
            self.table
                .delete_key(key, "remove a room's item")
                .await
                .map_err(WriteError::into_api)?;
        }
        Ok(())
    }

    /// A deleted room's record keeps only what marks its deletion: its ids, type,
    /// status, counts and times; its title, description, client data and last
    /// message's preview go, and it is marked purged (`purged_at`).
    pub async fn strip_deleted_room(&self, org: &OrgId, room_id: &RoomId) -> ApiResult<()> {
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::room_pk(org, room_id)))
            .key(keys::SK, s(keys::ROOM_SK))
            .update_expression(
                "SET purged_at = :now REMOVE title, detail, metadata, last_message_preview, last_message_id, last_sender_id",
            )
            .condition_expression("attribute_exists(deleted_at)")
            .expression_attribute_values(":now", s(crate::time::now_string()))
            .build()
            .expect("update has key and expression");
        match self
            .table
            .update(update, None, "strip a deleted room")
            .await
        {
            Ok(_) | Err(WriteError::ConditionFailed(_)) => Ok(()),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// One page of a deleted room's items that retention removes: all but the room
    /// itself (its deletion marker), its day stats (the analytics' counts) and its
    /// deletion's event. Each message's search entries go with it. Returns
    /// how many items went and whether more are left.
    pub async fn purge_room_page(
        &self,
        org: &OrgId,
        room_id: &RoomId,
        keep_event: u64,
        limit: i32,
    ) -> ApiResult<(u64, bool)> {
        let pk = keys::room_pk(org, room_id);
        let keep_event = keys::event_sk(keep_event);
        let mut removed = 0;
        let mut start = None;
        loop {
            let (items, next) = self
                .table
                .query("purge a room", start, |q| {
                    q.key_condition_expression("PK = :pk")
                        .expression_attribute_values(":pk", s(&pk))
                        .consistent_read(true)
                        .limit(limit)
                })
                .await?;
            let doomed: Vec<&Item> = items
                .iter()
                .filter(|i| {
                    let sk = i.str(keys::SK).unwrap_or_default();
                    sk != keys::ROOM_SK && !sk.starts_with("STATS#") && sk != keep_event
                })
                .collect();
            for item in &doomed {
                let sk = item.str(keys::SK).unwrap_or_default();
                self.remove_room_item(org, room_id, sk, Message::from_item(*item).as_ref())
                    .await?;
                removed += 1;
            }
            if !doomed.is_empty() {
                return Ok((removed, next.is_some()));
            }
            match next {
                Some(key) => start = Some(key),
                None => return Ok((removed, false)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn a_policy_of_n_days_removes_whole_days_before_the_nth() {
        let now = datetime!(2026-12-04 21:00 UTC);
        assert_eq!(last_expired_day(now, 30), date!(2026 - 11 - 03));
        assert_eq!(last_expired_day(now, 1), date!(2026 - 12 - 02));
        // Just after midnight the day before yesterday is whole.
        let now = datetime!(2026-12-04 00:00:01 UTC);
        assert_eq!(last_expired_day(now, 1), date!(2026 - 12 - 02));
    }

    #[test]
    fn a_days_message_keys_lie_between_its_first_and_the_next_days_first() {
        let day = date!(2026 - 11 - 03);
        let inside = keys::message_sk(&MessageId::from_parts(
            crate::time::millis(datetime!(2026-11-03 23:59:59.999 UTC)) as u64,
            u128::MAX,
        ));
        let before = keys::message_sk(&MessageId::from_parts(
            crate::time::millis(datetime!(2026-11-02 23:59:59.999 UTC)) as u64,
            u128::MAX,
        ));
        assert!(day_message_sk(day) <= inside);
        assert!(inside < day_message_sk(day.next_day().unwrap()));
        assert!(before < day_message_sk(day));
        assert_eq!(day_string(day), "2026-11-03");
        assert_eq!(parse_day("2026-11-03"), Some(day));
    }

    #[test]
    fn a_policy_answers_with_its_sweeps_progress_and_keeps_everything_by_default() {
        let org = OrgId::parse("acme").unwrap();
        let none = Retention::from_item(&org, None);
        assert!(none.policy.keeps_everything());
        let answer = none.json();
        assert_eq!(answer["messages_days"], Value::Null);
        assert_eq!(answer["sweep"]["messages"]["removed"], json!(0));
        assert_eq!(
            answer["sweep"]["closed_conversations"]["through_day"],
            Value::Null
        );
        let item: Item = HashMap::from([
            ("messages_days".to_owned(), n(30)),
            ("messages_through".to_owned(), s("2026-11-03")),
            ("messages_removed".to_owned(), n(7)),
        ]);
        let set = Retention::from_item(&org, Some(&item));
        assert_eq!(set.policy.messages_days, Some(30));
        assert!(!set.policy.keeps_everything());
        assert_eq!(set.through(RetentionKind::Messages), Some("2026-11-03"));
        assert_eq!(set.json()["sweep"]["messages"]["removed"], json!(7));
    }
}
