//! The room aggregate: a room item and its member rows (which are also the members'
//! inbox rows), in the room's partition. Here: its reads, the optimistic transaction
//! every change of a room goes through, and the write builders of its items that the
//! room's plans (and the message plans, which touch the room and the rows) share.

mod changes;
mod lifecycle;
mod listing;
mod members;

pub use changes::{MemberView, SharedChanges};
pub use lifecycle::Started;
pub use listing::{RoomPage, RoomQuery};
pub use members::{MAX_ADD_MEMBERS, MAX_MEMBERS_PAGE};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, RoomId, UserId};
use crate::item::{n, s, values};
use crate::keys;
use crate::model::{Membership, Room};
use crate::store::{Page, Plan, Store, WriteError, rebuilds, storage_busy};
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use std::collections::HashMap;

impl Store {
    /// The room's own update, conditioned on the state the caller's write relied on.
    /// `#st` names the status attribute in `expression` and `names`.
    pub(crate) fn room_update(
        &self,
        room: &Room,
        who: &Principal,
        expression: &str,
        vals: HashMap<String, AttributeValue>,
        names: &[(&str, &str)],
    ) -> TransactWriteItem {
        self.room_update_if(room, who, expression, vals, names, None)
    }

    /// [`Self::room_update`], also conditioned on `extra` (what this change alone
    /// relied on, e.g. a rating's resolution not rated yet).
    pub(crate) fn room_update_if(
        &self,
        room: &Room,
        who: &Principal,
        expression: &str,
        mut vals: HashMap<String, AttributeValue>,
        names: &[(&str, &str)],
        extra: Option<&str>,
    ) -> TransactWriteItem {
        let mut condition = "member_version = :v AND #st = :seen_status AND attribute_not_exists(deleted_at) \
                 AND (awaiting_since = :seen_awaiting OR (attribute_not_exists(awaiting_since) AND :seen_awaiting = :none))".to_owned();
        if let Some(extra) = extra {
            condition.push_str(&format!(" AND ({extra})"));
        }
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
            .condition_expression(condition)
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

    /// The room, read consistently (membership changes must show at once).
    pub async fn get_room(&self, org: &OrgId, room: &RoomId) -> ApiResult<Option<Room>> {
        let item = self
            .table
            .get(
                (keys::room_pk(org, room), keys::ROOM_SK.to_owned()),
                "get room",
            )
            .await?;
        Ok(item.as_ref().and_then(Room::from_item))
    }

    /// The room and the caller's membership, in one BatchGetItem.
    pub async fn get_room_and_membership(
        &self,
        org: &OrgId,
        room: &RoomId,
        user: &UserId,
    ) -> ApiResult<(Option<Room>, Option<Membership>)> {
        let pk = keys::room_pk(org, room);
        let found = self
            .batch_get(
                &[
                    (pk.clone(), keys::ROOM_SK.to_owned()),
                    (pk, keys::member_sk(user)),
                ],
                "get room and membership",
            )
            .await?;
        let found = found.rows()?;
        let mut room = found.iter().find_map(Room::from_item);
        let membership = found.iter().find_map(Membership::from_item);
        if let (Some(room), Some(member)) = (room.as_mut(), &membership) {
            room.viewer = Some(member.user_id.clone());
        }
        Ok((room, membership))
    }

    pub async fn visible_room(&self, who: &Principal, room_id: &RoomId) -> ApiResult<Room> {
        let room = self.get_room(&who.org, room_id).await?;
        self.viewed(who, room)
            .await?
            .filter(|room| room.visible_to(who))
            .ok_or(ApiError::NotFound("conversation"))
    }

    /// `room` as `who` may see it: a large room's members are its rows, so the
    /// caller's row is read (consistently) when their membership decides.
    pub async fn viewed(&self, who: &Principal, room: Option<Room>) -> ApiResult<Option<Room>> {
        let Some(mut room) = room else {
            return Ok(None);
        };
        if room.needs_row_of(who) && room.viewer.as_deref() != Some(who.user.as_str()) {
            let row = self
                .table
                .get(
                    (
                        keys::room_pk(&who.org, &room.id),
                        keys::member_sk(&who.user),
                    ),
                    "member row",
                )
                .await?;
            room.viewer = row
                .as_ref()
                .and_then(Membership::from_item)
                .map(|_| who.user.to_string());
        }
        Ok(Some(room))
    }

    /// Runs a transaction built from the room's current state (`room`, as the caller
    /// read it; checked here). The first write must be the room's own update,
    /// conditioned on what the build relied on; when it fails the transaction is
    /// rebuilt from the room it returns (ALL_OLD). The plan's changes are numbered in
    /// the room's feed in the same transaction. Returns the room the transaction was
    /// built from, with its new `last_seq`.
    pub(crate) async fn room_transaction_from(
        &self,
        who: &Principal,
        room_id: &RoomId,
        room: Room,
        context: &str,
        build: impl Fn(&Room) -> ApiResult<Plan>,
    ) -> ApiResult<Room> {
        let mut room = Some(room)
            .filter(|r| r.visible_to(who))
            .ok_or(ApiError::NotFound("conversation"))?;
        for attempt in rebuilds() {
            attempt.pause().await;
            let plan = build(&room)?;
            let changes = plan.changes.len() as u64;
            let writes = self.sequenced(who, &room, plan, &crate::time::now_string());
            let cancelled = match self.table.transact(writes, context).await {
                Ok(()) => {
                    room.last_seq += changes;
                    return Ok(room);
                }
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
            room = self
                .viewed(who, current)
                .await?
                .filter(|r| r.visible_to(who))
                .ok_or(ApiError::NotFound("conversation"))?;
        }
        Err(storage_busy())
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

    /// Keeps the member list copied on the other members' rows in step.
    pub(crate) fn member_list_changes(
        &self,
        who: &Principal,
        room: &Room,
        action: &str,
        user: &UserId,
    ) -> Vec<TransactWriteItem> {
        room.members
            .iter()
            .filter(|m| m.as_str() != user.as_str())
            .filter_map(|m| UserId::parse(m).ok())
            .map(|m| {
                let vals = values([(":user", AttributeValue::Ss(vec![user.to_string()]))]);
                self.member_update(
                    who,
                    &room.id,
                    &m,
                    &format!("{action} members :user"),
                    vals,
                    &[],
                )
            })
            .collect()
    }
}
