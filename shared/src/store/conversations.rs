//! Changes to a conversation as a whole or to one member's view of it.

use super::{Store, WriteError, rebuilds, storage_busy};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{RoomId, UserId};
use crate::item::{n, s, values};
use crate::keys;
use crate::model::{InboxEntry, Room, RoomStatus};
use crate::policy::{self, Action};
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
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
    fn room_update(&self, now: &str) -> (String, HashMap<String, AttributeValue>) {
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
            Some(Some(assignee)) => set("assignee_id = :assignee", ":assignee", assignee),
            Some(None) => removes.push("assignee_id"),
            None => {}
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        (expression, vals)
    }

    /// A member row's update: the copies it carries (title, status), and the caller's
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
        if let Some(view) = own_view {
            view.add_sets(&mut sets, &mut vals);
        }
        (!sets.is_empty()).then(|| (format!("SET {}", sets.join(", ")), vals))
    }

    /// `room` with these changes made at `now`.
    fn applied_to(&self, mut room: Room, now: String) -> Room {
        if let Some(title) = &self.title {
            room.title = title.clone();
        }
        if let Some(status) = self.status {
            room.status = status;
        }
        if let Some(assignee) = &self.assignee_id {
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
    }

    pub fn is_empty(&self) -> bool {
        *self == MemberView::default()
    }
}

impl Store {
    /// Runs a transaction built from the room's current state. The first write must be
    /// the room's own update, conditioned on what the build relied on; when it fails
    /// the transaction is rebuilt from the room it returns (ALL_OLD).
    pub(crate) async fn room_transaction(
        &self,
        who: &Principal,
        room_id: &RoomId,
        context: &str,
        build: impl Fn(&Room) -> ApiResult<Vec<TransactWriteItem>>,
    ) -> ApiResult<Room> {
        let room = self.visible_room(who, room_id).await?;
        self.room_transaction_from(who, room_id, room, context, build)
            .await
    }

    /// [`Self::room_transaction`] from a room the caller already read (checked here).
    pub(crate) async fn room_transaction_from(
        &self,
        who: &Principal,
        room_id: &RoomId,
        room: Room,
        context: &str,
        build: impl Fn(&Room) -> ApiResult<Vec<TransactWriteItem>>,
    ) -> ApiResult<Room> {
        let mut room = Some(room)
            .filter(|r| r.visible_to(who))
            .ok_or(ApiError::NotFound("conversation"))?;
        for attempt in rebuilds() {
            attempt.pause().await;
            let writes = build(&room)?;
            let cancelled = match self.table.transact(writes, context).await {
                Ok(()) => return Ok(room),
                Err(WriteError::Api(err)) => return Err(err),
                Err(WriteError::ConditionFailed(c)) => c,
            };
            // The room moved (its old state came back with the failure), or a member
            // row did (e.g. they left, and the room's version moved with it): rebuild
            // from the room as it is now.
            let current = match cancelled.old_item(0).and_then(Room::from_item) {
                Some(current) if cancelled.failed(0) => Some(current),
                _ => self.get_room(&who.org, room_id).await?,
            };
            room = current
                .filter(|r| r.visible_to(who))
                .ok_or(ApiError::NotFound("conversation"))?;
        }
        Err(storage_busy())
    }

    /// The room's own update, conditioned on the state the caller's write relied on.
    /// `#st` names the status attribute in `expression` and `names`.
    pub(crate) fn room_update(
        &self,
        room: &Room,
        who: &Principal,
        expression: &str,
        mut vals: HashMap<String, AttributeValue>,
        names: &[(&str, &str)],
    ) -> TransactWriteItem {
        vals.insert(":v".into(), n(room.member_version));
        vals.insert(":seen_status".into(), s(room.status.as_str()));
        vals.insert(
            ":seen_awaiting".into(),
            s(room.awaiting_since.as_deref().unwrap_or("-")),
        );
        vals.insert(":none".into(), s("-"));
        let mut update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::room_pk(&who.org, &room.id)))
            .key(keys::SK, s(keys::ROOM_SK))
            .update_expression(expression)
            // Members, status and the waiting customer are what writes fan out or
            // decide on: if any moved, the transaction is rebuilt from the current room.
            .condition_expression(
                "member_version = :v AND #st = :seen_status AND attribute_not_exists(deleted_at) \
                 AND (awaiting_since = :seen_awaiting OR (attribute_not_exists(awaiting_since) AND :seen_awaiting = :none))",
            )
            .expression_attribute_names("#st", "status")
            .set_expression_attribute_values(Some(vals))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (k, v) in names {
            update = update.expression_attribute_names(*k, *v);
        }
        TransactWriteItem::builder()
            .update(update.build().expect("update has key and expression"))
            .build()
    }

    pub(crate) fn member_update(
        &self,
        who: &Principal,
        room: &RoomId,
        member: &UserId,
        expression: &str,
        vals: HashMap<String, AttributeValue>,
        names: &[(&str, &str)],
    ) -> TransactWriteItem {
        let mut update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::room_pk(&who.org, room)))
            .key(keys::SK, s(keys::member_sk(member)))
            .update_expression(expression)
            .condition_expression("attribute_exists(PK)")
            .set_expression_attribute_values(Some(vals));
        for (k, v) in names {
            update = update.expression_attribute_names(*k, *v);
        }
        TransactWriteItem::builder()
            .update(update.build().expect("update has key and expression"))
            .build()
    }

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
                let (expression, vals) = shared.room_update(&now);
                let mut writes = vec![self.room_update(room, who, &expression, vals, &[])];
                writes.extend(self.room_changed_stats(
                    who,
                    room,
                    shared.status,
                    shared.assignee_id.as_ref(),
                    &now,
                ));
                let names: &[(&str, &str)] = match shared.status {
                    Some(_) => &[("#st", "status")],
                    None => &[],
                };
                for member in room.members.iter().filter_map(|m| UserId::parse(m).ok()) {
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
                Ok(writes)
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
        if sets.is_empty() {
            return Err(ApiError::invalid("body", "nothing to update"));
        }
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::room_pk(&who.org, room_id)))
            .key(keys::SK, s(keys::member_sk(&who.user)))
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression("attribute_exists(PK)")
            .set_expression_attribute_values(Some(vals))
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

    /// The caller leaves: out of the member list (version bumped, so in-flight
    /// writes re-read it), their row deleted and their inbox count decremented.
    pub async fn leave_room(&self, who: &Principal, room_id: &RoomId) -> ApiResult<()> {
        self.room_transaction(who, room_id, "leave room", |room| {
            if !room.is_member(who.user.as_str()) {
                return Err(ApiError::NotFound("conversation"));
            }
            Ok(self.leave_writes(who, room))
        })
        .await?;
        Ok(())
    }

    /// Soft-deletes the room for everyone: its messages stop being served and every
    /// member's inbox row goes. From the room the caller read (one read, one write).
    pub async fn delete_room(&self, who: &Principal, room: Room) -> ApiResult<()> {
        let now = crate::time::now_string();
        let room_id = room.id.clone();
        self.room_transaction_from(who, &room_id, room, "delete room", |room| {
            Ok(self.delete_writes(who, room, &now))
        })
        .await?;
        Ok(())
    }

    /// DELETE of a conversation: the owner or an admin deletes it for everyone, any
    /// other member leaves it. Decided on the room the transaction is built from, so
    /// it is one read and one write. Returns whether it was deleted for everyone.
    pub async fn delete_conversation(&self, who: &Principal, room_id: &RoomId) -> ApiResult<bool> {
        let now = crate::time::now_string();
        let for_everyone = |room: &Room| {
            policy::allows(Action::DeleteRoom, who.role, policy::relation_to(who, room))
        };
        let room = self
            .room_transaction(who, room_id, "delete conversation", |room| {
                if for_everyone(room) {
                    Ok(self.delete_writes(who, room, &now))
                } else if room.is_member(who.user.as_str()) {
                    Ok(self.leave_writes(who, room))
                } else {
                    // Staff who see a support room without being in it.
                    Err(ApiError::Forbidden(
                        "only members leave a conversation; its owner or an admin deletes it"
                            .into(),
                    ))
                }
            })
            .await?;
        Ok(for_everyone(&room))
    }

    fn leave_writes(&self, who: &Principal, room: &Room) -> Vec<TransactWriteItem> {
        let vals = values([
            (":one", n(1)),
            (":me", AttributeValue::Ss(vec![who.user.to_string()])),
            (":now", s(crate::time::now_string())),
        ]);
        vec![
            self.room_update(
                room,
                who,
                "SET updated_at = :now ADD member_version :one DELETE members :me",
                vals,
                &[],
            ),
            self.member_delete(who, &room.id, &who.user),
            self.inbox_head_change(&who.org, who.user.as_str(), -1),
        ]
    }

    fn delete_writes(&self, who: &Principal, room: &Room, now: &str) -> Vec<TransactWriteItem> {
        let vals = values([(":now", s(now)), (":one", n(1))]);
        let mut writes = vec![self.room_update(
            room,
            who,
            "SET deleted_at = :now, updated_at = :now ADD member_version :one",
            vals,
            &[],
        )];
        for member in &room.members {
            let Ok(member_id) = UserId::parse(member) else {
                continue;
            };
            writes.push(self.member_delete(who, &room.id, &member_id));
            writes.push(self.inbox_head_change(&who.org, member, -1));
        }
        writes
    }

    pub(crate) fn member_delete(
        &self,
        who: &Principal,
        room: &RoomId,
        member: &UserId,
    ) -> TransactWriteItem {
        let delete = Delete::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::room_pk(&who.org, room)))
            .key(keys::SK, s(keys::member_sk(member)))
            .build()
            .expect("delete has key");
        TransactWriteItem::builder().delete(delete).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_changes_write_the_room_and_copy_title_and_status_to_every_row() {
        let changes = SharedChanges {
            title: Some("Renamed".into()),
            status: Some(RoomStatus::Resolved),
            snoozed_until: Some(None),
            assignee_id: Some(None),
            ..SharedChanges::default()
        };
        let (room, vals) = changes.room_update("now");
        assert_eq!(
            room,
            "SET updated_at = :now, title = :title, #st = :status REMOVE snoozed_until, assignee_id"
        );
        assert_eq!(vals[":status"], s("resolved"));
        let (row, _) = changes.row_update(None).unwrap();
        assert_eq!(row, "SET title = :title, #st = :status");
        let pin = MemberView {
            is_pinned: Some(true),
            ..MemberView::default()
        };
        let (own, vals) = changes.row_update(Some(&pin)).unwrap();
        assert!(own.ends_with("is_pinned = :pinned"), "{own}");
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
