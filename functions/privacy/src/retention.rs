//! The retention sweep (the `privacy-jobs` function's schedule): for every tenant
//! whose policy removes something, each kind of data is walked day by day, from the
//! day after the last one it finished to the last day wholly older than the policy's
//! days. A day is finished when every room active on it has had that day dealt with;
//! a run stops at its budget of removals or its deadline and the next run starts at
//! the first unfinished day. Everything it does is idempotent (a tombstone is not
//! deleted twice, a deleted object is gone), so a day begun twice is no harm.

use chat_core::auth::Principal;
use chat_core::ids::{MessageId, OrgId, RoomId};
use chat_core::model::{Message, Room, RoomType};
use chat_core::store::retention::{last_expired_day, parse_day};
use chat_core::store::{MessageChange, RetentionKind, Store};
use chat_core::uploads::{Uploads, attached_key};
use chat_core::{ApiError, ApiResult};
use serde::Serialize;
use std::time::{Duration, Instant};
use time::Date;

/// How much one run may do.
#[derive(Debug, Clone, Copy)]
pub struct SweepLimits {
    /// Messages, files' messages and conversation items removed per run.
    pub removals: u64,
    /// Where a tenant's first sweep starts when its analytics rollups do not reach
    /// further back: this many days before the last day to remove.
    pub lookback_days: u32,
    /// A run stops starting new work after this long (the function's timeout is
    /// longer).
    pub deadline: Duration,
}

impl Default for SweepLimits {
    fn default() -> Self {
        SweepLimits {
            removals: 5000,
            lookback_days: 400,
            deadline: Duration::from_secs(600),
        }
    }
}

impl SweepLimits {
    /// The defaults, or `RETENTION_SWEEP_REMOVALS` and `RETENTION_LOOKBACK_DAYS`.
    pub fn from_env() -> SweepLimits {
        let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
        let default = SweepLimits::default();
        SweepLimits {
            removals: number("RETENTION_SWEEP_REMOVALS").unwrap_or(default.removals),
            lookback_days: number("RETENTION_LOOKBACK_DAYS")
                .map(|d: u64| d as u32)
                .unwrap_or(default.lookback_days),
            ..default
        }
    }
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct SweepSummary {
    pub tenants: u64,
    pub messages: u64,
    pub files: u64,
    pub conversations: u64,
    pub days: u64,
    /// Every tenant is swept up to date (false: the budget or the deadline stopped it).
    pub caught_up: bool,
}

pub struct Sweeper {
    store: Store,
    uploads: Option<Uploads>,
    limits: SweepLimits,
}

/// What is left of a run's budget.
struct Budget {
    removals: u64,
    until: Instant,
}

impl Budget {
    fn spent(&self) -> bool {
        self.removals == 0 || Instant::now() >= self.until
    }

    fn take(&mut self) {
        self.removals = self.removals.saturating_sub(1);
    }
}

impl Sweeper {
    pub fn new(store: Store, uploads: Option<Uploads>, limits: SweepLimits) -> Sweeper {
        Sweeper {
            store,
            uploads,
            limits,
        }
    }

    /// One run over every tenant with a policy.
    pub async fn run(&self) -> ApiResult<SweepSummary> {
        self.run_at(chat_core::time::now()).await
    }

    /// One run that takes `now` as the time the policies' ages count back from (the
    /// writes themselves are made now: the tests sweep data of today as if it were
    /// old, the bucket checks a request's clock). Each tenant gets an equal share of
    /// the run's removals and the first tenant changes every hour, so one tenant's
    /// backlog never holds the others back; a tenant whose sweep fails is logged and
    /// the run goes on with the next.
    pub async fn run_at(&self, now: time::OffsetDateTime) -> ApiResult<SweepSummary> {
        let until = Instant::now() + self.limits.deadline;
        let mut summary = SweepSummary {
            caught_up: true,
            ..SweepSummary::default()
        };
        let mut tenants = self.store.retention_tenants().await?;
        if tenants.is_empty() {
            return Ok(summary);
        }
        let first = (now.unix_timestamp() / 3600) as usize % tenants.len();
        tenants.rotate_left(first);
        let share = (self.limits.removals / tenants.len() as u64).max(1);
        for (org, retention) in tenants {
            summary.tenants += 1;
            let mut budget = Budget {
                removals: share,
                until,
            };
            for kind in RetentionKind::ALL {
                let Some(days) = retention.policy.days(kind) else {
                    continue;
                };
                let walk = Walk {
                    org: &org,
                    kind,
                    days,
                    last: last_expired_day(now, days),
                    cutoff: chat_core::time::format(now - time::Duration::days(days.into())),
                };
                let first = match retention.through(kind).and_then(parse_day) {
                    Some(done) => done.next_day().unwrap_or(done),
                    None => self.first_day(&org, walk.last).await?,
                };
                // Boxed: the walk's future is deep (a message change's transaction).
                match Box::pin(self.walk(&walk, first, &mut budget, &mut summary)).await {
                    Ok(done) => summary.caught_up &= done,
                    Err(err) => {
                        tracing::error!(org = %org, kind = kind.field(), %err, "retention sweep of a tenant stopped; the next run resumes");
                        summary.caught_up = false;
                        break;
                    }
                }
            }
        }
        Ok(summary)
    }

    /// Where a tenant's first sweep of a kind starts: its first analytics day, or
    /// the lookback before `last`, whichever is earlier.
    async fn first_day(&self, org: &OrgId, last: Date) -> ApiResult<Date> {
        let lookback = last - time::Duration::days(self.limits.lookback_days.into());
        Ok(match self.store.first_rollup_day(org).await? {
            Some(day) if day < lookback => day,
            _ => lookback,
        })
    }

    /// The days `first..=walk.last` of one kind, each saved once finished; whether it
    /// got to the end. Before each day with rooms the policy is read again: a kind
    /// switched off or lengthened meanwhile stops here.
    async fn walk(
        &self,
        walk: &Walk<'_>,
        first: Date,
        budget: &mut Budget,
        summary: &mut SweepSummary,
    ) -> ApiResult<bool> {
        let mut day = first;
        let (mut finished, mut saved): (Option<Date>, Option<Date>) = (None, None);
        let mut removed = 0;
        let mut caught_up = true;
        while day <= walk.last {
            if budget.spent() {
                caught_up = false;
                break;
            }
            let rooms = self.store.rooms_active_on(walk.org, day).await?;
            if !rooms.is_empty() {
                let policy = self.store.get_retention(walk.org).await?.policy;
                if policy.days(walk.kind).is_none_or(|d| d > walk.days) {
                    break;
                }
            }
            let mut whole = true;
            for room in &rooms {
                let (count, done) = Box::pin(self.sweep_room_day(walk, room, day, budget)).await?;
                removed += count;
                if !done {
                    whole = false;
                    break;
                }
            }
            if !whole {
                caught_up = false;
                break;
            }
            summary.days += 1;
            finished = Some(day);
            // Progress is saved where there was work, so a stopped run loses little.
            if !rooms.is_empty() {
                self.store
                    .save_retention_progress(walk.org, walk.kind, finished, removed)
                    .await?;
                saved = finished;
                *tally(summary, walk.kind) += removed;
                removed = 0;
            }
            day = match day.next_day() {
                Some(next) => next,
                None => break,
            };
        }
        // The rest: days without rooms walked since, removals of an unfinished day,
        // and the run's time (also when it found nothing).
        let through = finished.filter(|day| saved != Some(*day));
        self.store
            .save_retention_progress(walk.org, walk.kind, through, removed)
            .await?;
        *tally(summary, walk.kind) += removed;
        Ok(caught_up)
    }

    /// One room's part of a day: what it removed, and whether it is all done.
    async fn sweep_room_day(
        &self,
        walk: &Walk<'_>,
        room_id: &RoomId,
        day: Date,
        budget: &mut Budget,
    ) -> ApiResult<(u64, bool)> {
        let org = walk.org;
        if walk.kind == RetentionKind::ClosedConversations {
            return Box::pin(self.purge_if_closed(org, room_id, &walk.cutoff, budget)).await;
        }
        let mut removed = 0;
        // Read once the room's answer says it is gone (a deleted room's messages go
        // outright: nobody reads them, no feed tells of them).
        let mut room_deleted = false;
        for message in self.store.messages_of_day(org, room_id, day).await? {
            if message.deleted_at.is_some() {
                continue;
            }
            let uploads = uploaded(&message);
            if walk.kind == RetentionKind::Files
                && (uploads.is_empty() || message.files_expired_at.is_some())
            {
                continue;
            }
            if budget.spent() {
                return Ok((removed, false));
            }
            // Files first: a message never names a file that is gone before the
            // message says so (retried, the change finds the same). A file goes with
            // the message that holds its claim only, as when its sender deletes it.
            self.release_and_delete_files(org, room_id, &message, &uploads)
                .await?;
            let changed = match room_deleted {
                true => None,
                false => {
                    let change = match walk.kind {
                        RetentionKind::Files => MessageChange::ExpireFiles,
                        _ => MessageChange::Delete,
                    };
                    Box::pin(
                        self.store
                            .retention_change(org, room_id, &message.id, change),
                    )
                    .await?
                }
            };
            if changed.is_none() && !room_deleted {
                room_deleted = self
                    .store
                    .get_room(org, room_id)
                    .await?
                    .is_none_or(|r| r.deleted_at.is_some());
            }
            if changed.is_some() {
                removed += 1;
                budget.take();
            } else if room_deleted && walk.kind == RetentionKind::Messages {
                self.store.remove_message(org, room_id, &message).await?;
                removed += 1;
                budget.take();
            }
        }
        Ok((removed, true))
    }

    /// Gives up each upload's claim held by `message`, and deletes the files whose
    /// claim it held.
    async fn release_and_delete_files(
        &self,
        org: &OrgId,
        room_id: &RoomId,
        message: &Message,
        uploads: &[String],
    ) -> ApiResult<()> {
        for upload in uploads {
            if self
                .store
                .release_upload(org, room_id, upload, &message.id)
                .await?
            {
                self.delete_objects(vec![attached_key(org, room_id, upload)])
                    .await?;
            }
        }
        Ok(())
    }

    /// A support conversation resolved or closed before `cutoff` with nothing said
    /// since is deleted for everyone (its deletion is an event, as an admin's would
    /// be; a message posted meanwhile stops it), then its files and items go: all
    /// but the room's record of its deletion, that event and its day stats. Counted
    /// by the run that finishes it (`purged_at`); a purged room is passed over.
    async fn purge_if_closed(
        &self,
        org: &OrgId,
        room_id: &RoomId,
        cutoff: &str,
        budget: &mut Budget,
    ) -> ApiResult<(u64, bool)> {
        let Some(room) = self.store.get_room(org, room_id).await? else {
            return Ok((0, true));
        };
        if room.purged_at.is_some() || !expired_closed(&room, cutoff) {
            return Ok((0, true));
        }
        if budget.spent() {
            return Ok((0, false));
        }
        let room = match room.deleted_at {
            Some(_) => room,
            None => {
                let system = Principal::retention(org);
                let still = |r: &Room| expired_closed(r, cutoff);
                match Box::pin(self.store.delete_room_while(&system, room, still)).await {
                    Ok(()) => budget.take(),
                    // Reopened, written to or deleted meanwhile: it stays.
                    Err(ApiError::NotFound(_)) => return Ok((0, true)),
                    Err(err) => return Err(err),
                }
                match self.store.get_room(org, room_id).await? {
                    Some(room) => room,
                    None => return Ok((0, true)),
                }
            }
        };
        if let Some(uploads) = &self.uploads {
            for prefix in [
                format!("files/{org}/{room_id}/"),
                format!("pending/{org}/{room_id}/"),
            ] {
                loop {
                    let found = uploads.list(&prefix, 1000).await?;
                    if found.is_empty() {
                        break;
                    }
                    budget.take();
                    self.delete_objects(found).await?;
                    if budget.spent() {
                        return Ok((0, false));
                    }
                }
            }
        }
        loop {
            let (removed, more) = self
                .store
                .purge_room_page(org, room_id, room.last_seq, 100)
                .await?;
            if removed > 0 {
                budget.take();
            }
            if !more {
                self.store.strip_deleted_room(org, room_id).await?;
                return Ok((1, true));
            }
            if budget.spent() {
                return Ok((0, false));
            }
        }
    }

    async fn delete_objects(&self, object_keys: Vec<String>) -> ApiResult<()> {
        let Some(uploads) = &self.uploads else {
            return Ok(());
        };
        for key in object_keys {
            uploads.delete(&key).await?;
        }
        Ok(())
    }
}

/// One kind of one tenant's policy, as a run walks it.
struct Walk<'a> {
    org: &'a OrgId,
    kind: RetentionKind,
    days: u32,
    /// The last day wholly older than `days`.
    last: Date,
    /// `days` before the run's now (closed conversations older than this go).
    cutoff: String,
}

/// A support conversation resolved or closed before `cutoff`, with nothing said or
/// noted since. (Other rooms have no resolution: their messages follow the message
/// rule.)
fn expired_closed(room: &Room, cutoff: &str) -> bool {
    let closed_at = room.closed_at.as_deref().unwrap_or(&room.updated_at);
    let last_said = room.last_message_at.as_deref().unwrap_or(&room.created_at);
    // A note moves no `last_message_at`; its id says when it was written.
    let last_note = room
        .last_note_id
        .as_deref()
        .and_then(|id| MessageId::parse(id).ok())
        .and_then(|id| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(id.millis()) * 1_000_000)
                .ok()
        })
        .map(chat_core::time::format);
    room.room_type == RoomType::Support
        && room.status.is_closed()
        && closed_at < cutoff
        && last_said < cutoff
        && last_note.is_none_or(|at| at.as_str() < cutoff)
}

/// The ids of a message's uploaded files (links are not ours to delete).
fn uploaded(message: &Message) -> Vec<String> {
    message
        .attachments
        .iter()
        .filter_map(|a| a.upload_id.clone())
        .collect()
}

fn tally(summary: &mut SweepSummary, kind: RetentionKind) -> &mut u64 {
    match kind {
        RetentionKind::Messages => &mut summary.messages,
        RetentionKind::Files => &mut summary.files,
        RetentionKind::ClosedConversations => &mut summary.conversations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::model::RoomStatus;

    #[test]
    fn only_support_conversations_closed_and_quiet_since_the_cutoff_expire() {
        let mut room = Room::open(
            RoomId::from_parts(1, 1),
            RoomType::Support,
            "Help".into(),
            "u-1".into(),
            vec!["u-1".into()],
            "2026-01-01T00:00:00.000Z".into(),
        );
        let cutoff = "2026-03-01T00:00:00.000Z";
        assert!(!expired_closed(&room, cutoff), "open");
        room.status = RoomStatus::Resolved;
        room.closed_at = Some("2026-02-01T00:00:00.000Z".into());
        assert!(expired_closed(&room, cutoff));
        room.last_message_at = Some("2026-03-02T00:00:00.000Z".into());
        assert!(!expired_closed(&room, cutoff), "a message after the cutoff");
        room.last_message_at = None;
        room.closed_at = Some("2026-03-02T00:00:00.000Z".into());
        assert!(!expired_closed(&room, cutoff), "closed after the cutoff");
        room.closed_at = Some("2026-02-01T00:00:00.000Z".into());
        room.status = RoomStatus::Closed;
        assert!(expired_closed(&room, cutoff));
        room.last_note_id = Some(
            MessageId::from_parts(
                chat_core::time::millis(chat_core::time::parse("2026-03-05T00:00:00Z").unwrap())
                    as u64,
                7,
            )
            .to_string(),
        );
        assert!(!expired_closed(&room, cutoff), "a note after the cutoff");
        room.last_note_id = None;
        room.room_type = RoomType::Group;
        assert!(!expired_closed(&room, cutoff), "a group has no resolution");
    }
}
