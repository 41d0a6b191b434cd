//! Changes to a conversation as a whole or to one member's view of it.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{RoomId, UserId};
use crate::item::{s, values};
use crate::keys;
use crate::model::{InboxEntry, Room, RoomStatus};
use crate::policy::{self, Action};
use crate::store::{Change, Plan, Store, WriteError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Update};
use std::collections::HashMap;

/// Fields every member sees; only agents and admins change them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SharedChanges {
    pub title: Option<String>,
    /// Rooms' longer description (not copied to inbox rows).
    pub detail: Option<String>,
    pub status: Option<RoomStatus>,
    /// `Some(None)` clears it.
    pub snoozed_until: Option<Option<String>>,
    pub assignee_id: Option<Option<String>>,
}

impl SharedChanges {
    pub fn is_empty(&self) -> bool {
        *self == SharedChanges::default()
    }

    /// The room item's update expression and values for these changes.
    fn room_expression(&self, now: &str) -> (String, HashMap<String, AttributeValue>) {
        let mut sets = vec!["updated_at = :now"];
        let mut removes = Vec::new();
        let mut vals = values([(":now", s(now))]);
        let mut set = |clause: &'static str, name: &str, value: &str| {
            sets.push(clause);
            vals.insert(name.to_owned(), s(value));
        };
        if let Some(title) = &self.title {
            set("title = :title", ":title", title);
        }
        if let Some(status) = self.status {
            set("#st = :status", ":status", status.as_str());
            // Retention of closed conversations counts from here.
            match status.is_closed() {
                // Kept while it stays closed: a conversation resolved again is not
                // younger (its day in the index is the first closing's). Closed, it
                // no longer waits in its team's queue.
                true => {
                    set("closed_at = if_not_exists(closed_at, :now)", ":now", now);
                    removes.extend(["queued_at", keys::GSI2PK, keys::GSI2SK]);
                }
                false => removes.push("closed_at"),
            }
        }
        if let Some(detail) = &self.detail {
            set("detail = :detail", ":detail", detail);
        }
        match &self.snoozed_until {
            Some(Some(until)) => set("snoozed_until = :until", ":until", until),
            Some(None) => removes.push("snoozed_until"),
            None => {}
        }
        match &self.assignee_id {
            Some(Some(assignee)) => {
                set("assignee_id = :assignee", ":assignee", assignee);
                // Given by hand: it no longer waits in its team's queue.
                removes.extend(["queued_at", keys::GSI2PK, keys::GSI2SK]);
            }
            Some(None) => removes.push("assignee_id"),
            None => {}
        }
        let mut seen = std::collections::HashSet::new();
        removes.retain(|r| seen.insert(*r));
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        (expression, vals)
    }

    /// A member row's update: the copies it carries (title, status, assignee), and the caller's
    /// own view on their row; None when nothing on the row changes.
    fn row_update(
        &self,
        own_view: Option<&MemberView>,
    ) -> Option<(String, HashMap<String, AttributeValue>)> {
        let mut sets = Vec::new();
        let mut vals = values([]);
        if let Some(title) = &self.title {
            sets.push("title = :title");
            vals.insert(":title".into(), s(title));
        }
        if let Some(status) = self.status {
            sets.push("#st = :status");
            vals.insert(":status".into(), s(status.as_str()));
        }
        let mut removes = "";
        match &self.assignee_id {
            Some(Some(assignee)) => {
                sets.push("assignee_id = :assignee");
                vals.insert(":assignee".into(), s(assignee));
            }
            Some(None) => removes = " REMOVE assignee_id",
            None => {}
        }
        if let Some(view) = own_view {
            view.add_sets(&mut sets, &mut vals);
        }
        match (sets.is_empty(), removes.is_empty()) {
            (true, true) => None,
            (true, false) => Some((removes.trim_start().to_owned(), vals)),
            (false, _) => Some((format!("SET {}{removes}", sets.join(", ")), vals)),
        }
    }

    /// `room` with these changes made at `now`.
    fn applied_to(&self, mut room: Room, now: String) -> Room {
        if let Some(title) = &self.title {
            room.title = title.clone();
        }
        if let Some(status) = self.status {
            room.status = status;
            if status.is_closed() {
                room.queued_at = None;
            }
            room.closed_at = match status.is_closed() {
                true => room.closed_at.or_else(|| Some(now.clone())),
                false => None,
            };
        }
        if let Some(assignee) = &self.assignee_id {
            if assignee.is_some() {
                room.queued_at = None;
            }
            room.assignee_id = assignee.clone();
        }
        if let Some(until) = &self.snoozed_until {
            room.snoozed_until = until.clone();
        }
        if let Some(detail) = &self.detail {
            room.detail = Some(detail.clone());
        }
        room.updated_at = now;
        room
    }
}

/// The caller's own view of the conversation.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MemberView {
    pub is_pinned: Option<bool>,
    pub is_archived: Option<bool>,
    /// Mute the room's notifications until then (`Some(None)`: unmute).
    pub muted_until: Option<Option<String>>,
}

impl MemberView {
    /// The SET clauses and values that write this view onto the caller's member row.
    fn add_sets(&self, sets: &mut Vec<&'static str>, vals: &mut HashMap<String, AttributeValue>) {
        if let Some(pinned) = self.is_pinned {
            sets.push("is_pinned = :pinned");
            vals.insert(":pinned".into(), AttributeValue::Bool(pinned));
        }
        if let Some(archived) = self.is_archived {
            sets.push("is_archived = :archived");
            vals.insert(":archived".into(), AttributeValue::Bool(archived));
        }
        if let Some(Some(until)) = &self.muted_until {
            sets.push("muted_until = :muted");
            vals.insert(":muted".into(), AttributeValue::S(until.clone()));
        }
    }

    /// The REMOVE clause this view needs, if any (unmuting).
    fn removes(&self) -> Option<&'static str> {
        matches!(self.muted_until, Some(None)).then_some("muted_until")
    }

    pub fn is_empty(&self) -> bool {
        *self == MemberView::default()
    }
}

impl Store {
    /// Applies a PUT: shared fields go to the room and to every member's inbox row
    /// (they carry a copy), the caller's view to their own row, in one transaction.
    pub async fn update_conversation(
        &self,
        who: &Principal,
        room_id: &RoomId,
        shared: &SharedChanges,
        view: &MemberView,
    ) -> ApiResult<Room> {
        if shared.is_empty() {
            self.update_member_view(who, room_id, view).await?;
            return self.visible_room(who, room_id).await;
        }
        let room = self.visible_room(who, room_id).await?;
        self.update_conversation_from(who, room, shared, view).await
    }

    /// [`Self::update_conversation`] with shared changes, from a room already read.
    pub async fn update_conversation_from(
        &self,
        who: &Principal,
        room: Room,
        shared: &SharedChanges,
        view: &MemberView,
    ) -> ApiResult<Room> {
        let now = crate::time::now_string();
        let room_id = room.id.clone();
        let room = self
            .room_transaction_from(who, &room_id, room, "update conversation", |room| {
                if !view.is_empty() {
                    policy::require(Action::OwnView, who, policy::relation_to(who, room))?;
                }
                let (expression, vals) = shared.room_expression(&now);
                let mut writes = vec![self.room_update(room, who, &expression, vals, &[])];
                writes.extend(self.room_changed_stats(
                    who,
                    room,
                    shared.status,
                    shared.assignee_id.as_ref(),
                    &now,
                ));
                let after = shared.applied_to(room.clone(), now.clone());
                writes.extend(self.workload_writes(
                    &who.org,
                    room,
                    (room.status, room.assignee_id.as_deref()),
                    (after.status, after.assignee_id.as_deref()),
                ));
                let names: &[(&str, &str)] = match shared.status {
                    Some(_) => &[("#st", "status")],
                    None => &[],
                };
                // A large room's rows keep no copies (its pages read the room): only
                // the caller's own view there.
                let rows: Vec<&String> = match room.large {
                    false => room.members.iter().collect(),
                    true => room.viewer.iter().collect(),
                };
                for member in rows.into_iter().filter_map(|m| UserId::parse(m).ok()) {
                    let own_view = (member == who.user).then_some(view);
                    if let Some((expression, vals)) = shared.row_update(own_view) {
                        writes.push(self.member_update(
                            who,
                            &room_id,
                            &member,
                            &expression,
                            vals,
                            names,
                        ));
                    }
                }
                Ok(Plan::new(writes, Change::room_updated(shared)))
            })
            .await?;
        // The returned room is the state the write was built on; reflect the change.
        Ok(shared.applied_to(room, now))
    }

    /// Pin or archive for the caller only: one UpdateItem on their own row, which it
    /// returns as updated (the row carries the inbox's copy of the room summary).
    pub async fn update_member_view(
        &self,
        who: &Principal,
        room_id: &RoomId,
        view: &MemberView,
    ) -> ApiResult<InboxEntry> {
        let mut sets = Vec::new();
        let mut vals = values([]);
        view.add_sets(&mut sets, &mut vals);
        let removes = view.removes();
        if sets.is_empty() && removes.is_none() {
            return Err(ApiError::invalid("body", "nothing to update"));
        }
        let mut expression = String::new();
        if !sets.is_empty() {
            expression = format!("SET {}", sets.join(", "));
        }
        if let Some(remove) = removes {
            expression = format!("{expression} REMOVE {remove}");
        }
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::room_pk(&who.org, room_id)))
            .key(keys::SK, s(keys::member_sk(&who.user)))
            .update_expression(expression.trim())
            .condition_expression("attribute_exists(PK)")
            .set_expression_attribute_values((!vals.is_empty()).then_some(vals))
            .build()
            .expect("update has key and expression");
        match self
            .table
            .update(update, Some(ReturnValue::AllNew), "update member view")
            .await
        {
            Ok(item) => item
                .as_ref()
                .and_then(InboxEntry::from_item)
                .ok_or_else(|| ApiError::internal("update member view", "no member row returned")),
            Err(WriteError::ConditionFailed(_)) => {
                // Not a member: staff who see the room are refused, anyone else learns
                // nothing (this read happens only on the refusal path).
                self.visible_room(who, room_id).await?;
                Err(policy::Refused(Action::OwnView).into())
            }
            Err(WriteError::Api(err)) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_changes_write_the_room_and_copy_title_status_and_assignee_to_every_row() {
        let changes = SharedChanges {
            title: Some("Renamed".into()),
            status: Some(RoomStatus::Resolved),
            snoozed_until: Some(None),
            assignee_id: Some(None),
            ..SharedChanges::default()
        };
        let (room, vals) = changes.room_expression("now");
        assert_eq!(
            room,
            "SET updated_at = :now, title = :title, #st = :status, closed_at = if_not_exists(closed_at, :now) REMOVE queued_at, GSI2PK, GSI2SK, snoozed_until, assignee_id"
        );
        assert_eq!(vals[":status"], s("resolved"));
        let (row, _) = changes.row_update(None).unwrap();
        assert_eq!(row, "SET title = :title, #st = :status REMOVE assignee_id");
        let assign = SharedChanges {
            assignee_id: Some(Some("7".into())),
            ..SharedChanges::default()
        };
        let (row, vals) = assign.row_update(None).unwrap();
        assert_eq!(
            (row.as_str(), &vals[":assignee"]),
            ("SET assignee_id = :assignee", &s("7"))
        );
        let unassign = SharedChanges {
            assignee_id: Some(None),
            ..SharedChanges::default()
        };
        assert_eq!(unassign.row_update(None).unwrap().0, "REMOVE assignee_id");
        let pin = MemberView {
            is_pinned: Some(true),
            ..MemberView::default()
        };
        let (own, vals) = changes.row_update(Some(&pin)).unwrap();
        assert!(own.contains(", is_pinned = :pinned REMOVE"), "{own}");
        assert_eq!(vals[":pinned"], AttributeValue::Bool(true));
        let detail_only = SharedChanges {
            detail: Some("x".into()),
            ..SharedChanges::default()
        };
        assert!(
            detail_only.row_update(None).is_none(),
            "rows carry no detail"
        );
        let room = changes.applied_to(crate::model::tests::room(), "later".into());
        assert_eq!(
            (room.title.as_str(), room.status),
            ("Renamed", RoomStatus::Resolved)
        );
        assert_eq!(room.assignee_id, None);
    }
}
