//! Starting a room (once per natural key for order and direct chats), leaving it and
//! deleting it.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, RoomId, UserId};
use crate::item::{ItemBuilder, ItemExt, n, s, values};
use crate::keys;
use crate::model::Room;
use crate::policy::{self, Action};
use crate::store::{
    Change, EventKind, Plan, Store, WriteError, WriteResultExt, put, rebuilds, storage_busy,
};
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

/// The outcome of starting a room that may exist once (an order chat).
pub enum Started {
    Created,
    /// The live room already started for this natural key, as read now (the caller
    /// may not be one of its members).
    Existing(Room),
}

impl Store {
    /// Creates a room with its members (each with an inbox row) in one transaction.
    pub async fn create_room(
        &self,
        org: &OrgId,
        room: &Room,
        member_roles: &[(String, &str)],
    ) -> ApiResult<()> {
        let writes = self.room_writes(org, room, member_roles);
        self.table
            .transact(writes, "create room")
            .await
            .or_condition(|c| ApiError::internal("create room", format!("new items exist: {c:?}")))
    }

    /// The room, each member's inbox row and inbox count, and its assignee's
    /// workload.
    pub(crate) fn room_writes(
        &self,
        org: &OrgId,
        room: &Room,
        member_roles: &[(String, &str)],
    ) -> Vec<TransactWriteItem> {
        let mut writes = self.room_items(org, room, member_roles);
        writes.extend(self.workload_writes(
            org,
            room,
            (crate::model::RoomStatus::Closed, None),
            (room.status, room.assignee_id.as_deref()),
        ));
        writes
    }

    /// The room, each member's inbox row and inbox count.
    pub(crate) fn room_items(
        &self,
        org: &OrgId,
        room: &Room,
        member_roles: &[(String, &str)],
    ) -> Vec<TransactWriteItem> {
        let mut writes = vec![put(self.name(), room.to_item(org), true)];
        writes.extend(self.room_created_stats(org, room));
        writes.extend(self.sla_timer_put(org, room));
        for (user, member_role) in member_roles {
            writes.push(put(
                self.name(),
                crate::model::member_item(org, room, user, member_role, &room.created_at),
                true,
            ));
            writes.push(self.inbox_head_change(org, user, 1));
        }
        writes
    }

    /// Creates a room with its members, or finds the one already started for the
    /// same natural key: the key item is written in the same transaction with a
    /// condition, so two concurrent starts create one room. A key whose room was
    /// deleted is taken over (conditioned on still naming that room), so a deleted
    /// order chat can be started again.
    pub async fn start_room(
        &self,
        org: &OrgId,
        room: &Room,
        member_roles: &[(String, &str)],
        natural_key: Option<String>,
    ) -> ApiResult<Started> {
        let Some(natural_key) = natural_key else {
            self.create_room(org, room, member_roles).await?;
            return Ok(Started::Created);
        };
        let mut replaces: Option<String> = None;
        for attempt in rebuilds() {
            attempt.pause().await;
            let mut writes = vec![self.natural_key_put(&natural_key, room, replaces.as_deref())];
            writes.extend(self.room_writes(org, room, member_roles));
            let cancelled = match self.table.transact(writes, "start room").await {
                Ok(()) => return Ok(Started::Created),
                Err(WriteError::Api(err)) => return Err(err),
                Err(WriteError::ConditionFailed(c)) if c.failed(0) => c,
                Err(WriteError::ConditionFailed(c)) => {
                    return Err(ApiError::internal(
                        "start room",
                        format!("new items exist: {c:?}"),
                    ));
                }
            };
            // The key names another room: that one, unless it was deleted (then the
            // next attempt takes the key over).
            let existing = match cancelled.old_item(0).and_then(|i| i.string("room_id")) {
                Some(id) => id,
                None => self.natural_key_room(&natural_key).await?,
            };
            let existing_id =
                RoomId::parse(&existing).map_err(|e| ApiError::internal("natural key", e))?;
            match self.get_room(org, &existing_id).await? {
                Some(found) if found.deleted_at.is_none() => return Ok(Started::Existing(found)),
                _ => replaces = Some(existing),
            }
        }
        Err(storage_busy())
    }

    /// The natural key item, new or replacing the key of a deleted room.
    fn natural_key_put(
        &self,
        natural_key: &str,
        room: &Room,
        replaces: Option<&str>,
    ) -> TransactWriteItem {
        let item = ItemBuilder::new()
            .str(keys::PK, natural_key)
            .str(keys::SK, keys::ORDER_KEY_SK)
            .str(keys::ENTITY, keys::entity::ORDER_KEY)
            .str("room_id", room.id.as_str())
            .build();
        let mut put = Put::builder()
            .table_name(self.name())
            .set_item(Some(item))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        put = match replaces {
            None => put.condition_expression("attribute_not_exists(PK)"),
            Some(old) => put
                .condition_expression("attribute_not_exists(PK) OR room_id = :old")
                .expression_attribute_values(":old", s(old)),
        };
        TransactWriteItem::builder()
            .put(put.build().expect("put has item"))
            .build()
    }

    async fn natural_key_room(&self, natural_key: &str) -> ApiResult<String> {
        self.table
            .get(
                (natural_key.to_owned(), keys::ORDER_KEY_SK.to_owned()),
                "natural key",
            )
            .await?
            .as_ref()
            .and_then(|i| i.string("room_id"))
            .ok_or_else(storage_busy)
    }

    /// The caller leaves: out of the member list (version bumped, so in-flight
    /// writes re-read it), their row deleted and their inbox count decremented.
    pub async fn leave_room(&self, who: &Principal, room_id: &RoomId) -> ApiResult<()> {
        let room = self.visible_room(who, room_id).await?;
        if room.large {
            if !room.is_member(who.user.as_str()) {
                return Err(ApiError::NotFound("conversation"));
            }
            return self.remove_member(who, room, &who.user).await.map(drop);
        }
        self.room_transaction_from(who, room_id, room, "leave room", |room| {
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
        self.delete_room_while(who, room, |_| true).await
    }

    /// [`Self::delete_room`] while `still` holds of the room the transaction is built
    /// from (asked again of the room as it is after any conflict, e.g. a message
    /// posted meanwhile); `NotFound` once it does not.
    pub async fn delete_room_while(
        &self,
        who: &Principal,
        room: Room,
        still: impl Fn(&Room) -> bool,
    ) -> ApiResult<()> {
        let now = crate::time::now_string();
        let room_id = room.id.clone();
        let deleted = self
            .room_transaction_from(who, &room_id, room, "delete room", |room| {
                if !still(room) {
                    return Err(ApiError::NotFound("conversation"));
                }
                Ok(self.delete_writes(who, room, &now))
            })
            .await?;
        if deleted.large {
            self.remove_rows_of_deleted(who, &deleted.id).await;
        }
        Ok(())
    }

    /// A deleted large room's rows and their inbox counts, after the room's delete
    /// (listings drop rows of deleted rooms at once): pages of rows, each page's
    /// deletes and counts sent concurrently. A failure is logged; what is left is
    /// still hidden.
    async fn remove_rows_of_deleted(&self, who: &Principal, room_id: &RoomId) {
        use futures_util::StreamExt;
        let pk = keys::room_pk(&who.org, room_id);
        let mut start = None;
        loop {
            let page = self
                .table
                .query("rows of a deleted room", start, |query| {
                    query
                        .key_condition_expression("PK = :pk AND begins_with(SK, :u)")
                        .expression_attribute_values(":pk", s(&pk))
                        .expression_attribute_values(":u", s(keys::MEMBER_SK_PREFIX))
                        .projection_expression("user_id")
                        .limit(100)
                })
                .await;
            let (rows, next) = match page {
                Ok(page) => page,
                Err(err) => {
                    tracing::error!(room = %room_id, %err, "removing a deleted room's rows stopped");
                    return;
                }
            };
            let users: Vec<UserId> = rows
                .iter()
                .filter_map(|r| r.str("user_id"))
                .filter_map(|u| UserId::parse(u).ok())
                .collect();
            let results: Vec<ApiResult<()>> = futures_util::stream::iter(users)
                .map(|user| async move {
                    let writes = vec![
                        self.member_delete(who, room_id, &user),
                        self.inbox_head_change(&who.org, user.as_str(), -1),
                    ];
                    self.table
                        .transact(writes, "remove a deleted room's row")
                        .await
                        .map_err(WriteError::into_api)
                })
                .buffer_unordered(16)
                .collect()
                .await;
            if let Some(Err(err)) = results.into_iter().find(Result::is_err) {
                tracing::error!(room = %room_id, %err, "removing a deleted room's rows stopped");
                return;
            }
            match next {
                Some(key) => start = Some(key),
                None => return,
            }
        }
    }

    /// DELETE of a conversation: the owner or an admin deletes it for everyone, any
    /// other member leaves it. Decided on the room the transaction is built from, so
    /// it is one read and one write. Returns whether it was deleted for everyone.
    pub async fn delete_conversation(&self, who: &Principal, room_id: &RoomId) -> ApiResult<bool> {
        let now = crate::time::now_string();
        let for_everyone = |room: &Room| {
            policy::allows(Action::DeleteRoom, who.role, policy::relation_to(who, room))
        };
        let room = self.visible_room(who, room_id).await?;
        if room.large {
            return match for_everyone(&room) {
                true => self.delete_room(who, room).await.map(|()| true),
                false => self.leave_room(who, room_id).await.map(|()| false),
            };
        }
        let room = self
            .room_transaction_from(who, room_id, room, "delete conversation", |room| {
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

    fn leave_writes(&self, who: &Principal, room: &Room) -> Plan {
        let vals = values([
            (":one", n(1)),
            (":me", AttributeValue::Ss(vec![who.user.to_string()])),
            (":now", s(crate::time::now_string())),
        ]);
        let writes = vec![
            self.room_update(
                room,
                who,
                "SET updated_at = :now ADD member_version :one DELETE members :me",
                vals,
                &[],
            ),
            self.member_delete(who, &room.id, &who.user),
            self.inbox_head_change(&who.org, who.user.as_str(), -1),
        ];
        Plan::new(
            writes,
            Change::member(EventKind::MemberRemoved, &who.user, "left"),
        )
    }

    fn delete_writes(&self, who: &Principal, room: &Room, now: &str) -> Plan {
        let vals = values([(":now", s(now)), (":one", n(1))]);
        let mut writes = vec![self.room_update(
            room,
            who,
            "SET deleted_at = :now, updated_at = :now ADD member_version :one REMOVE queued_at, GSI2PK, GSI2SK",
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
        writes.extend(self.workload_writes(
            &who.org,
            room,
            (room.status, room.assignee_id.as_deref()),
            (crate::model::RoomStatus::Closed, None),
        ));
        Plan::new(writes, Change::room_deleted())
    }
}
