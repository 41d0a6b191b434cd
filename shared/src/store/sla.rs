//! SLA policies (docs/support.md): a team's first-response and resolution targets,
//! counted in its business hours. A conversation routed to the team carries its due
//! times (on the room, for everyone to show) and one timer item (`T#{org}#R#{room}` /
//! `SLA`) listed in GSI2 under `SLADUE#{shard}` by its next due time. The
//! `support-jobs` schedule looks every minute for timers due, and raises a staff-only
//! `sla.breached` event in the conversation's feed when the target was missed: once
//! per target, since the timer moves on in the same transaction, conditioned on where
//! it was.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, RoomId};
use crate::item::{Item, ItemBuilder, ItemExt, s, values};
use crate::keys;
use crate::model::Room;
use crate::store::analytics::{Counts, counter, day_of};
use crate::store::hours::BusinessHours;
use crate::store::{Change, EventKind, Plan, Store, WriteError, put};
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The longest target: 30 days.
pub const MAX_SLA_MINUTES: u32 = 30 * 24 * 60;
/// GSI2 shards of the due timers.
pub const SLA_SHARDS: u32 = 4;
/// Who raises a breach, in the feed.
pub const SLA_ACTOR: &str = "system:sla";
/// Timers one sweep takes per shard (the next minute takes the rest).
const SWEEP_PAGE: i32 = 100;

/// A team's targets, in minutes of its business hours (of the clock without hours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicy {
    pub first_response_minutes: Option<u32>,
    pub resolution_minutes: Option<u32>,
}

impl SlaPolicy {
    pub fn validated(self) -> ApiResult<SlaPolicy> {
        for (field, value) in [
            ("sla.first_response_minutes", self.first_response_minutes),
            ("sla.resolution_minutes", self.resolution_minutes),
        ] {
            if value.is_some_and(|m| !(1..=MAX_SLA_MINUTES).contains(&m)) {
                return Err(ApiError::invalid(
                    field,
                    format!("whole minutes from 1 to {MAX_SLA_MINUTES}, or null"),
                ));
            }
        }
        if self.first_response_minutes.is_none() && self.resolution_minutes.is_none() {
            return Err(ApiError::invalid("sla", "a target at least (no SLA: null)"));
        }
        Ok(self)
    }

    /// The due times of a conversation created at `at` (RFC 3339), in `hours` when
    /// the team has them.
    pub fn due(&self, hours: Option<&BusinessHours>, at: &str) -> SlaDue {
        let start = at.parse::<jiff::Timestamp>().ok();
        let due = |minutes: Option<u32>| -> Option<String> {
            let (start, minutes) = (start?, i64::from(minutes?));
            let at = match hours {
                Some(h) => h.add_open_minutes(start, minutes)?,
                None => start
                    .checked_add(jiff::SignedDuration::from_mins(minutes))
                    .ok()?,
            };
            Some(crate::time::format(
                time::OffsetDateTime::from_unix_timestamp_nanos(at.as_nanosecond()).ok()?,
            ))
        };
        SlaDue {
            first_response: due(self.first_response_minutes),
            resolution: due(self.resolution_minutes),
        }
    }
}

/// A conversation's SLA due times.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SlaDue {
    #[serde(rename = "first_response_due_at")]
    pub first_response: Option<String>,
    #[serde(rename = "resolution_due_at")]
    pub resolution: Option<String>,
}

impl SlaDue {
    pub fn is_empty(&self) -> bool {
        self.first_response.is_none() && self.resolution.is_none()
    }

    /// The earliest due time still pending.
    fn next(&self) -> Option<&String> {
        [&self.first_response, &self.resolution]
            .into_iter()
            .flatten()
            .min()
    }
}

/// A conversation's due times after labels with SLA policies were put on it: each
/// target takes the earliest of what it had and what the labels give, counted from
/// the conversation's creation (in `hours`, its team's, when it has them). A target
/// the conversation met, or whose due time already passed (the sweep settles it
/// once), is left as it is. `None` when nothing changes.
pub fn tightened(
    room: &Room,
    policies: &[SlaPolicy],
    hours: Option<&BusinessHours>,
    now: &str,
) -> Option<SlaDue> {
    let current = SlaDue {
        first_response: room.first_response_due_at.clone(),
        resolution: room.resolution_due_at.clone(),
    };
    let mut after = current.clone();
    for policy in policies {
        let given = policy.due(hours, &room.created_at);
        for (target, slot, offered) in [
            (
                Target::FirstResponse,
                &mut after.first_response,
                given.first_response,
            ),
            (Target::Resolution, &mut after.resolution, given.resolution),
        ] {
            let Some(offered) = offered else { continue };
            let settled = slot.as_deref().is_some_and(|due| due <= now);
            if target.met(room) || settled {
                continue;
            }
            if slot.as_ref().is_none_or(|due| offered < *due) {
                *slot = Some(offered);
            }
        }
    }
    (after != current).then_some(after)
}

/// The targets a conversation has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    FirstResponse,
    Resolution,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::FirstResponse => "first_response",
            Target::Resolution => "resolution",
        }
    }

    /// Whether the room met this target (or no longer can miss it).
    fn met(self, room: &Room) -> bool {
        room.deleted_at.is_some()
            || match self {
                Target::FirstResponse => {
                    room.first_response_at.is_some() || room.status.is_closed()
                }
                Target::Resolution => room.status.is_closed(),
            }
    }
}

fn shard(room: &RoomId) -> u32 {
    crate::store::analytics::shard_of(room) % SLA_SHARDS
}

/// The timer item of a conversation with due times.
pub(crate) fn timer_item(org: &OrgId, room: &RoomId, due: &SlaDue) -> Option<Item> {
    let next = due.next()?;
    Some(
        ItemBuilder::new()
            .str(keys::PK, keys::room_pk(org, room))
            .str(keys::SK, keys::SLA_TIMER_SK)
            .str(keys::ENTITY, keys::entity::SLA_TIMER)
            .str("org", org.as_str())
            .str("room_id", room.as_str())
            .opt_str("first_response_due_at", due.first_response.clone())
            .opt_str("resolution_due_at", due.resolution.clone())
            .str("next_due", next)
            .str(keys::GSI2PK, keys::sla_due_gsi2pk(shard(room)))
            .str(keys::GSI2SK, keys::sla_due_gsi2sk(next, org, room))
            .build(),
    )
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct SlaSweep {
    pub timers: usize,
    pub breached: usize,
    pub met: usize,
}

impl Store {
    /// The timer's put, for a new conversation's transaction.
    pub(crate) fn sla_timer_put(&self, org: &OrgId, room: &Room) -> Option<TransactWriteItem> {
        let due = SlaDue {
            first_response: room.first_response_due_at.clone(),
            resolution: room.resolution_due_at.clone(),
        };
        timer_item(org, &room.id, &due).map(|item| put(self.name(), item, true))
    }

    /// The timer of a conversation whose due times `after` replaced `before`: the
    /// targets that changed take their new time, the others keep the timer's own
    /// slots as read (`timer`: a target already settled stays settled); written on
    /// the condition that the timer is still as read.
    pub(crate) fn sla_timer_retimed(
        &self,
        org: &OrgId,
        room: &RoomId,
        timer: Option<&Item>,
        before: &SlaDue,
        after: &SlaDue,
    ) -> Option<TransactWriteItem> {
        let pending = |name: &str| timer.and_then(|t| t.string(name));
        let pick = |was: &Option<String>, now: &Option<String>, name: &str| match was == now {
            true => pending(name),
            false => now.clone(),
        };
        let due = SlaDue {
            first_response: pick(
                &before.first_response,
                &after.first_response,
                "first_response_due_at",
            ),
            resolution: pick(&before.resolution, &after.resolution, "resolution_due_at"),
        };
        let item = timer_item(org, room, &due)?;
        let mut put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(self.name())
            .set_item(Some(item));
        put = match timer.and_then(|t| t.string("next_due")) {
            Some(seen) => put
                .condition_expression("next_due = :seen")
                .expression_attribute_values(":seen", s(seen)),
            // No timer, or one that left the index: nothing of it is pending.
            None => put.condition_expression("attribute_not_exists(next_due)"),
        };
        Some(
            TransactWriteItem::builder()
                .put(put.build().expect("put has table and item"))
                .build(),
        )
    }

    /// Every timer due by `now` (RFC 3339): each missed target raises its breach,
    /// each met one is dropped; the timer moves to its next target or leaves the
    /// index. A failure of one conversation is logged and left for the next minute.
    pub async fn sla_sweep(&self, now: &str) -> ApiResult<SlaSweep> {
        let mut summary = SlaSweep::default();
        for shard in 0..SLA_SHARDS {
            let (rows, _) = self
                .table
                .query("sla timers due", None, |q| {
                    q.index_name(keys::GSI2)
                        .key_condition_expression("GSI2PK = :p AND GSI2SK <= :now")
                        .expression_attribute_values(":p", s(keys::sla_due_gsi2pk(shard)))
                        .expression_attribute_values(":now", s(format!("{now}~")))
                        .limit(SWEEP_PAGE)
                })
                .await?;
            let mut item_keys = Vec::new();
            for row in &rows {
                let (Some(pk), Some(_)) = (row.string(keys::PK), row.string(keys::SK)) else {
                    continue;
                };
                item_keys.push((pk.clone(), keys::SLA_TIMER_SK.to_owned()));
                item_keys.push((pk, keys::ROOM_SK.to_owned()));
            }
            if item_keys.is_empty() {
                continue;
            }
            let found = self.batch_get(&item_keys, "sla timers and rooms").await?;
            let found = found.rows()?;
            let rooms: Vec<Room> = found.iter().filter_map(Room::from_item).collect();
            for timer in found
                .iter()
                .filter(|i| i.str(keys::ENTITY) == Some(keys::entity::SLA_TIMER))
            {
                let timer = timer.to_item();
                let room_id = timer.str("room_id").and_then(|r| RoomId::parse(r).ok());
                let org = timer.str("org").and_then(|o| OrgId::parse(o).ok());
                let (Some(room_id), Some(org)) = (room_id, org) else {
                    continue;
                };
                let room = rooms.iter().find(|r| r.id == room_id).cloned();
                summary.timers += 1;
                match Box::pin(self.settle_timer(&org, &timer, room, now)).await {
                    Ok((breached, met)) => {
                        summary.breached += breached;
                        summary.met += met;
                    }
                    Err(err) => {
                        tracing::error!(%org, room = %room_id, %err, "sla timer left for the next run");
                    }
                }
            }
        }
        Ok(summary)
    }

    /// One timer: its targets due by `now`, breached or met; answers how many of each.
    async fn settle_timer(
        &self,
        org: &OrgId,
        timer: &Item,
        room: Option<Room>,
        now: &str,
    ) -> ApiResult<(usize, usize)> {
        let seen = timer.string("next_due").unwrap_or_default();
        let mut due = SlaDue {
            first_response: timer.string("first_response_due_at"),
            resolution: timer.string("resolution_due_at"),
        };
        let mut breached = Vec::new();
        let mut met = 0;
        for target in [Target::FirstResponse, Target::Resolution] {
            let slot = match target {
                Target::FirstResponse => &mut due.first_response,
                Target::Resolution => &mut due.resolution,
            };
            let Some(at) = slot.clone().filter(|at| at.as_str() <= now) else {
                continue;
            };
            *slot = None;
            match room.as_ref().is_none_or(|r| target.met(r)) {
                true => met += 1,
                false => breached.push((target, at)),
            }
        }
        let Some(room) = room.filter(|_| !breached.is_empty()) else {
            // Nothing to raise: the timer moves on alone.
            self.table
                .transact(vec![self.timer_move(org, timer, &seen, &due)], "sla timer")
                .await
                .map_err(WriteError::into_api)?;
            return Ok((0, met));
        };
        let who = Principal::system(org, SLA_ACTOR);
        let count = breached.len();
        let room_id = room.id.clone();
        let result = self
            .room_transaction_from(&who, &room_id, room, "sla breach", |room| {
                // Met meanwhile (an answer, a resolution): not a breach after all.
                let missed: Vec<&(Target, String)> =
                    breached.iter().filter(|(t, _)| !t.met(room)).collect();
                let mut writes = vec![
                    self.room_update(room, &who, "SET updated_at = updated_at", values([]), &[]),
                    self.timer_move(org, timer, &seen, &due),
                ];
                let mut counts = Counts::default();
                for (target, _) in &missed {
                    counts.add(counter::sla_breached(target.as_str()), 1);
                }
                writes.extend(self.stats_update(org, &room.id, day_of(now), &counts));
                let changes = missed
                    .iter()
                    .map(|(target, at)| Change {
                        kind: EventKind::SlaBreached,
                        staff_only: true,
                        data: json!({ "target": target.as_str(), "due_at": at }).to_string(),
                    })
                    .collect();
                Ok(Plan { writes, changes })
            })
            .await;
        match result {
            Ok(_) => Ok((count, met)),
            // The room went (deleted): the timer goes too.
            Err(ApiError::NotFound(_)) => {
                let gone = SlaDue::default();
                self.table
                    .transact(vec![self.timer_move(org, timer, &seen, &gone)], "sla timer")
                    .await
                    .map_err(WriteError::into_api)?;
                Ok((0, met + count))
            }
            Err(err) => Err(err),
        }
    }

    /// The timer moved to its next due time (or out of the index when none is left),
    /// conditioned on where it was: two sweeps never raise one breach twice.
    fn timer_move(&self, org: &OrgId, timer: &Item, seen: &str, due: &SlaDue) -> TransactWriteItem {
        let room = RoomId::parse(timer.str("room_id").unwrap_or_default())
            .expect("a timer names its room");
        let mut update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::room_pk(org, &room)))
            .key(keys::SK, s(keys::SLA_TIMER_SK))
            .condition_expression("next_due = :seen")
            .expression_attribute_values(":seen", s(seen));
        let mut removes = Vec::new();
        let mut sets = Vec::new();
        for (name, value) in [
            ("first_response_due_at", &due.first_response),
            ("resolution_due_at", &due.resolution),
        ] {
            if value.is_none() {
                removes.push(name);
            }
        }
        match due.next() {
            Some(next) => {
                sets.push("next_due = :next, GSI2SK = :sk");
                update = update
                    .expression_attribute_values(":next", s(next))
                    .expression_attribute_values(":sk", s(keys::sla_due_gsi2sk(next, org, &room)));
            }
            None => removes.extend(["GSI2PK", "GSI2SK"]),
        }
        let mut expression = String::new();
        if !sets.is_empty() {
            expression = format!("SET {}", sets.join(", "));
        }
        if !removes.is_empty() {
            expression = format!("{expression} REMOVE {}", removes.join(", "));
        }
        let update = update
            .update_expression(expression.trim())
            .build()
            .expect("update has key and expression");
        TransactWriteItem::builder().update(update).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_tightens_only_targets_still_pending() {
        let room = Room {
            created_at: "2026-12-07T10:00:00.000Z".into(),
            first_response_due_at: Some("2026-12-07T11:00:00.000Z".into()),
            ..crate::model::tests::room()
        };
        let vip = SlaPolicy {
            first_response_minutes: Some(10),
            resolution_minutes: Some(240),
        };
        let slow = SlaPolicy {
            first_response_minutes: Some(120),
            resolution_minutes: None,
        };
        // Before the team's due time: the label's earlier times win; a laxer one
        // never loosens.
        let after = tightened(&room, &[slow, vip], None, "2026-12-07T10:05:00.000Z").unwrap();
        assert_eq!(
            after.first_response.as_deref(),
            Some("2026-12-07T10:10:00.000Z")
        );
        assert_eq!(
            after.resolution.as_deref(),
            Some("2026-12-07T14:00:00.000Z")
        );
        assert_eq!(
            tightened(&room, &[slow], None, "2026-12-07T10:05:00.000Z"),
            None
        );
        // Past the team's due time the sweep has it (once): only resolution changes.
        let late = tightened(&room, &[vip], None, "2026-12-07T11:30:00.000Z").unwrap();
        assert_eq!(
            late.first_response.as_deref(),
            Some("2026-12-07T11:00:00.000Z")
        );
        // Answered: first response is met; resolved: nothing is left.
        let answered = Room {
            first_response_at: Some("2026-12-07T10:02:00.000Z".into()),
            ..room.clone()
        };
        let after = tightened(&answered, &[vip], None, "2026-12-07T10:05:00.000Z").unwrap();
        assert_eq!(
            after.first_response.as_deref(),
            Some("2026-12-07T11:00:00.000Z")
        );
        let resolved = Room {
            status: crate::model::RoomStatus::Resolved,
            ..answered
        };
        assert_eq!(
            tightened(&resolved, &[vip], None, "2026-12-07T10:05:00.000Z"),
            None
        );
    }

    #[test]
    fn due_times_count_business_minutes_when_the_team_has_hours() {
        let policy = SlaPolicy {
            first_response_minutes: Some(30),
            resolution_minutes: Some(24 * 60),
        };
        let plain = policy.due(None, "2026-12-07T10:00:00.000Z");
        assert_eq!(
            plain.first_response.as_deref(),
            Some("2026-12-07T10:30:00.000Z")
        );
        assert_eq!(
            plain.resolution.as_deref(),
            Some("2026-12-08T10:00:00.000Z")
        );
        let hours: BusinessHours = serde_json::from_value(json!({
            "time_zone": "UTC", "week": {"mon": [["09:00", "17:00"]], "tue": [["09:00", "17:00"]]}
        }))
        .unwrap();
        // Monday 16:45 + 30 open minutes: Tuesday 09:15.
        let late = policy.due(Some(&hours), "2026-12-07T16:45:00.000Z");
        assert_eq!(
            late.first_response.as_deref(),
            Some("2026-12-08T09:15:00.000Z")
        );
        assert!(
            SlaPolicy {
                first_response_minutes: Some(0),
                resolution_minutes: None
            }
            .validated()
            .is_err()
        );
        assert!(
            SlaPolicy {
                first_response_minutes: None,
                resolution_minutes: None
            }
            .validated()
            .is_err()
        );
        assert!(
            SlaPolicy {
                first_response_minutes: None,
                resolution_minutes: Some(MAX_SLA_MINUTES + 1)
            }
            .validated()
            .is_err()
        );
    }
}
