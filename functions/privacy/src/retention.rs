//! The retention sweep (the `privacy-jobs` function's schedule): for every tenant
//! whose policy removes something, each kind of data is walked day by day, from the
//! day after the last one it finished to the last day wholly older than the policy's
//! days. A day is finished when every room active on it has had that day dealt with;
//! a run stops at its budget of removals or its deadline and the next run starts at
//! the first unfinished day. Everything it does is idempotent (a tombstone is not
//! deleted twice, a deleted object is gone), so a day begun twice is no harm.

use chat_core::auth::Principal;
use chat_core::ids::{OrgId, Role, RoomId, UserId};
use chat_core::model::{Message, Room, RoomType};
use chat_core::store::retention::{last_expired_day, parse_day};
use chat_core::store::{MessageChange, RETENTION_ACTOR, RetentionKind, Store};
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
    /// old, the bucket checks a request's clock).
    pub async fn run_at(&self, now: time::OffsetDateTime) -> ApiResult<SweepSummary> {
        let mut budget = Budget {
            removals: self.limits.removals,
            until: Instant::now() + self.limits.deadline,
        };
        let mut summary = SweepSummary {
            caught_up: true,
            ..SweepSummary::default()
        };
        for (org, retention) in self.store.retention_tenants().await? {
            summary.tenants += 1;
            for kind in RetentionKind::ALL {
                let Some(days) = retention.policy.days(kind) else {
                    continue;
                };
                let last = last_expired_day(now, days);
                let first = match retention.through(kind).and_then(parse_day) {
                    Some(done) => done.next_day().unwrap_or(done),
                    None => self.first_day(&org, last).await?,
                };
                let cutoff = chat_core::time::format(now - time::Duration::days(days.into()));
                // Boxed: the walk's future is deep (a message change's transaction).
                let walked = Box::pin(self.walk(
                    &org,
                    kind,
                    first,
                    last,
                    &cutoff,
                    &mut budget,
                    &mut summary,
                ))
                .await?;
                summary.caught_up &= walked;
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

    /// The days `first..=last` of one kind, each saved once finished; whether it got
    /// to the end.
    #[allow(clippy::too_many_arguments)]
    async fn walk(
        &self,
        org: &OrgId,
        kind: RetentionKind,
        first: Date,
        last: Date,
        cutoff: &str,
        budget: &mut Budget,
        summary: &mut SweepSummary,
    ) -> ApiResult<bool> {
        let mut day = first;
        let mut finished: Option<Date> = None;
        let mut removed = 0;
        let mut caught_up = true;
        while day <= last {
            if budget.spent() {
                caught_up = false;
                break;
            }
            let rooms = self.store.rooms_active_on(org, day).await?;
            let mut whole = true;
            for room in &rooms {
                let (count, done) =
                    Box::pin(self.sweep_room_day(org, kind, room, day, cutoff, budget)).await?;
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
                    .save_retention_progress(org, kind, finished, removed)
                    .await?;
                *tally(summary, kind) += removed;
                removed = 0;
            }
            day = match day.next_day() {
                Some(next) => next,
                None => break,
            };
        }
        if finished.is_some() || removed > 0 {
            self.store
                .save_retention_progress(org, kind, finished, removed)
                .await?;
            *tally(summary, kind) += removed;
        }
        Ok(caught_up)
    }

    /// One room's part of a day: what it removed, and whether it is all done.
    async fn sweep_room_day(
        &self,
        org: &OrgId,
        kind: RetentionKind,
        room: &RoomId,
        day: Date,
        cutoff: &str,
        budget: &mut Budget,
    ) -> ApiResult<(u64, bool)> {
        match kind {
            RetentionKind::ClosedConversations => {
                Box::pin(self.purge_if_closed(org, room, cutoff, budget)).await
            }
            RetentionKind::Messages | RetentionKind::Files => {
                let mut removed = 0;
                for message in self.store.messages_of_day(org, room, day).await? {
                    if message.deleted_at.is_some() {
                        continue;
                    }
                    let uploads = uploaded(&message);
                    if kind == RetentionKind::Files
                        && (uploads.is_empty() || message.files_expired_at.is_some())
                    {
                        continue;
                    }
                    if budget.spent() {
                        return Ok((removed, false));
                    }
                    // Files first: a message never names a file that is gone before
                    // the message says so (retried, the change finds the same).
                    self.delete_objects(
                        uploads.iter().map(|u| attached_key(org, room, u)).collect(),
                    )
                    .await?;
                    let change = match kind {
                        RetentionKind::Files => MessageChange::ExpireFiles,
                        _ => MessageChange::Delete,
                    };
                    let changed =
                        Box::pin(self.store.retention_change(org, room, &message.id, change));
                    if changed.await?.is_some() {
                        removed += 1;
                        budget.take();
                    }
                }
                Ok((removed, true))
            }
        }
    }

    /// A support conversation resolved or closed before `cutoff` with no message since
    /// is deleted for everyone (its deletion is an event, as an admin's would be),
    /// then its files and items go: all but the room's record of its deletion, that
    /// event and its day stats. Counted once, when its last item went.
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
        if !expired_closed(&room, cutoff) {
            return Ok((0, true));
        }
        if budget.spent() {
            return Ok((0, false));
        }
        // Counted once: by the run that deletes it, or that finds more of it to purge.
        let mut counted = room.deleted_at.is_none();
        let room = match room.deleted_at {
            Some(_) => room,
            None => {
                let system = system_principal(org);
                match Box::pin(self.store.delete_room(&system, room)).await {
                    Ok(()) => {}
                    // Reopened, deleted or changed meanwhile: the next run decides.
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
                self.delete_objects(uploads.list(&prefix, 10_000).await?)
                    .await?;
            }
        }
        let mut purged = 0;
        loop {
            let (removed, more) = self
                .store
                .purge_room_page(org, room_id, room.last_seq, 100)
                .await?;
            purged += removed;
            budget.take();
            if !more {
                self.store.strip_deleted_room(org, room_id).await?;
                counted |= purged > 0;
                return Ok((u64::from(counted), true));
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

/// A support conversation resolved or closed before `cutoff`, with nothing said
/// since. (Other rooms have no resolution: their messages follow the message rule.)
fn expired_closed(room: &Room, cutoff: &str) -> bool {
    let closed_at = room.closed_at.as_deref().unwrap_or(&room.updated_at);
    let last_said = room.last_message_at.as_deref().unwrap_or(&room.created_at);
    room.room_type == RoomType::Support
        && room.status.is_closed()
        && closed_at < cutoff
        && last_said < cutoff
}

/// The ids of a message's uploaded files (links are not ours to delete).
fn uploaded(message: &Message) -> Vec<String> {
    message
        .attachments
        .iter()
        .filter_map(|a| a.upload_id.clone())
        .collect()
}

fn system_principal(org: &OrgId) -> Principal {
    Principal {
        user: UserId::parse(RETENTION_ACTOR).expect("a valid user id"),
        org: org.clone(),
        role: Role::Admin,
    }
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
        room.room_type = RoomType::Group;
        assert!(!expired_closed(&room, cutoff), "a group has no resolution");
    }
}
