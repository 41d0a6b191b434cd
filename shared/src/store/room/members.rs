//! Adding and removing a room's members: the member list and version on the room,
//! the member's row and inbox count, and the copies of the list on the other rows.
//! A room that grows past [`SMALL_ROOM_MEMBERS`] becomes large: its list leaves the
//! room and the rows (one transaction, bounded by the small room's size), and from
//! then on a member is their row alone and the room keeps only their count.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::UserId;
use crate::item::{n, s, values};
use crate::keys;
use crate::model::{MAX_MEMBERS, Room, RoomType, SMALL_ROOM_MEMBERS};
use crate::store::{Change, EventKind, Plan, Store, WriteError, put, rebuilds, storage_busy};
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

/// Members added to a large room per transaction: a row, an inbox count and a feed
/// event each, and the room (49 items; a transaction holds 100, but large ones are
/// slow to commit under load, and a bulk add is several transactions anyway).
const ADD_CHUNK: usize = 16;
/// Users one call may add.
pub const MAX_ADD_MEMBERS: usize = 100;

impl Store {
    /// Adds members (at most [`MAX_ADD_MEMBERS`]): those already in the room are left
    /// as they are. Answers the room and who was added.
    pub async fn add_members(
        &self,
        who: &Principal,
        mut room: Room,
        users: &[UserId],
    ) -> ApiResult<(Room, Vec<UserId>)> {
        if room.room_type == RoomType::Direct {
            return Err(direct_chat());
        }
        let mut wanted: Vec<UserId> = Vec::new();
        for user in users {
            if !wanted.contains(user) && !(room.members.contains(&user.to_string())) {
                wanted.push(user.clone());
            }
        }
        if room.member_count as usize + wanted.len() > MAX_MEMBERS {
            return Err(room_full());
        }
        let mut added = Vec::new();
        if !room.large && room.members.len() + wanted.len() <= SMALL_ROOM_MEMBERS {
            for user in &wanted {
                room = self.add_small(who, room, user).await?;
                added.push(user.clone());
            }
            return Ok((room, added));
        }
        if !room.large {
            room = self.grow(who, room).await?;
        }
        for chunk in wanted.chunks(ADD_CHUNK) {
            let (grown, joined) = self.add_to_large(who, room, chunk).await?;
            room = grown;
            added.extend(joined);
        }
        Ok((room, added))
    }

    /// Adds a member: the room's member list and version, their inbox row and count,
    /// in one transaction conditioned on the room as the caller read it.
    pub async fn add_member(&self, who: &Principal, room: Room, user: &UserId) -> ApiResult<Room> {
        if room.large || room.members.len() >= SMALL_ROOM_MEMBERS {
            let (room, added) =
                Box::pin(self.add_members(who, room, std::slice::from_ref(user))).await?;
            return match added.is_empty() {
                true => Err(already_member()),
                false => Ok(room),
            };
        }
        if room.is_member(user.as_str()) {
            return Err(already_member());
        }
        self.add_small(who, room, user).await
    }

    /// [`Self::add_member`] to a room that stays small.
    async fn add_small(&self, who: &Principal, room: Room, user: &UserId) -> ApiResult<Room> {
        let now = crate::time::now_string();
        let room_id = room.id.clone();
        let mut room = self
            .room_transaction_from(who, &room_id, room, "add member", |room| {
                if room.is_member(user.as_str()) {
                    return Err(already_member());
                }
                if room.room_type == RoomType::Direct {
                    // Its natural key is the pair; a third member would make it a group.
                    return Err(direct_chat());
                }
                if room.large || room.members.len() >= SMALL_ROOM_MEMBERS {
                    // It grew meanwhile: the caller adds again (through the large path).
                    return Err(ApiError::Conflict {
                        code: "concurrent_change",
                        message: "the room changed meanwhile; add again".into(),
                    });
                }
                let vals = values([
                    (":one", n(1)),
                    (":user", AttributeValue::Ss(vec![user.to_string()])),
                    (":now", s(&now)),
                    (":count", n(room.members.len() as u64)),
                ]);
                let mut joined = room.clone();
                joined.members.push(user.to_string());
                let mut writes = vec![
                    self.room_update(
                        room,
                        who,
                        "SET updated_at = :now, member_count = if_not_exists(member_count, :count) + :one ADD member_version :one, members :user",
                        vals,
                        &[],
                    ),
                    put(
                        self.name(),
                        crate::model::member_item(
                            &who.org,
                            &joined,
                            user.as_str(),
                            "participant",
                            &now,
                        ),
                        true,
                    ),
                    self.inbox_head_change(&who.org, user.as_str(), 1),
                ];
                writes.extend(self.member_list_changes(who, room, "ADD", user));
                Ok(Plan::new(
                    writes,
                    Change::member(EventKind::MemberAdded, user, "added"),
                ))
            })
            .await?;
        room.members.push(user.to_string());
        room.member_count = room.members.len() as u64;
        room.member_version += 1;
        room.updated_at = now;
        Ok(room)
    }

    /// A small room at its size becomes large: its member list leaves the room and
    /// every row (at most [`SMALL_ROOM_MEMBERS`] of them), in one transaction.
    async fn grow(&self, who: &Principal, room: Room) -> ApiResult<Room> {
        let now = crate::time::now_string();
        let room_id = room.id.clone();
        let mut grown = self
            .room_transaction_from(who, &room_id, room, "grow room", |room| {
                if room.large {
                    // Grown meanwhile: nothing to move (a write the plan needs anyway).
                    let vals = values([(":now", s(&now))]);
                    return Ok(Plan {
                        writes: vec![self.room_update(room, who, "SET updated_at = :now", vals, &[])],
                        changes: Vec::new(),
                    });
                }
                let vals = values([
                    (":one", n(1)),
                    (":now", s(&now)),
                    (":large", AttributeValue::Bool(true)),
                    (":count", n(room.members.len() as u64)),
                ]);
                let mut writes = vec![self.room_update(
                    room,
                    who,
                    "SET updated_at = :now, #large = :large, member_count = :count REMOVE members ADD member_version :one",
                    vals,
                    // LARGE is one of DynamoDB's reserved words.
                    &[("#large", "large")],
                )];
                for member in room.members.iter().filter_map(|m| UserId::parse(m).ok()) {
                    writes.push(self.member_update(
                        who,
                        &room.id,
                        &member,
                        "SET #large = :large REMOVE members",
                        values([(":large", AttributeValue::Bool(true))]),
                        &[("#large", "large")],
                    ));
                }
                Ok(Plan {
                    writes,
                    changes: Vec::new(),
                })
            })
            .await?;
        if !grown.large {
            grown.member_count = grown.members.len() as u64;
            grown.large = true;
            grown.members.clear();
            grown.member_version += 1;
            grown.updated_at = now;
        }
        // A large room knows its viewer from their row.
        let grown = self
            .viewed(
                who,
                Some(Room {
                    viewer: None,
                    ..grown
                }),
            )
            .await?;
        grown.ok_or(ApiError::NotFound("conversation"))
    }

    /// Adds `users` to a large room in one transaction: their rows (written only if
    /// absent: who is already a member is left out and the rest added again), inbox
    /// counts and `member.added` events, and the room's count under the limit.
    async fn add_to_large(
        &self,
        who: &Principal,
        mut room: Room,
        users: &[UserId],
    ) -> ApiResult<(Room, Vec<UserId>)> {
        let mut users: Vec<UserId> = users.to_vec();
        for attempt in rebuilds() {
            attempt.pause().await;
            if users.is_empty() {
                return Ok((room, users));
            }
            let now = crate::time::now_string();
            let mut writes = vec![self.large_room_count(who, &room, users.len() as i64, &now)];
            for user in &users {
                writes.push(put(
                    self.name(),
                    crate::model::member_item(&who.org, &room, user.as_str(), "participant", &now),
                    true,
                ));
            }
            for user in &users {
                writes.push(self.inbox_head_change(&who.org, user.as_str(), 1));
            }
            let plan = Plan {
                writes,
                changes: users
                    .iter()
                    .map(|u| Change::member(EventKind::MemberAdded, u, "added"))
                    .collect(),
            };
            let changes = plan.changes.len() as u64;
            let writes = self.sequenced(who, &room, plan, &now);
            match self.table.transact(writes, "add members").await {
                Ok(()) => {
                    room.member_count += users.len() as u64;
                    room.last_seq += changes;
                    room.updated_at = now;
                    return Ok((room, users));
                }
                Err(WriteError::Api(err)) => return Err(err),
                Err(WriteError::ConditionFailed(c)) => {
                    let present: Vec<UserId> = users
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| c.failed(1 + i))
                        .map(|(_, u)| u.clone())
                        .collect();
                    if !present.is_empty() && !c.failed(0) {
                        users.retain(|u| !present.contains(u));
                        continue;
                    }
                    room = self.large_room_again(who, &room, c.old_item(0)).await?;
                    if room.member_count as usize + users.len() > MAX_MEMBERS {
                        return Err(room_full());
                    }
                }
            }
        }
        Err(storage_busy())
    }

    /// A large room's count moved by `delta`, under the limits (at most
    /// [`MAX_MEMBERS`]; at least one member), on a room that is not deleted.
    fn large_room_count(
        &self,
        who: &Principal,
        room: &Room,
        delta: i64,
        now: &str,
    ) -> TransactWriteItem {
        let (condition, bound) = match delta > 0 {
            true => ("member_count <= :bound", MAX_MEMBERS as i64 - delta),
            false => ("member_count > :bound", 1),
        };
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::room_pk(&who.org, &room.id)))
            .key(keys::SK, s(keys::ROOM_SK))
            .update_expression("SET updated_at = :now ADD member_count :delta")
            .condition_expression(format!("attribute_not_exists(deleted_at) AND {condition}"))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":delta", n(delta))
            .expression_attribute_values(":bound", n(bound))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("update has key and expression");
        TransactWriteItem::builder().update(update).build()
    }

    /// The large room as it is now, after a write on it failed: from the failure's
    /// old image, or read again; a deleted room is not found.
    async fn large_room_again(
        &self,
        who: &Principal,
        seen: &Room,
        old: Option<&crate::item::Item>,
    ) -> ApiResult<Room> {
        let current = match old.and_then(Room::from_item) {
            Some(room) => Some(room),
            None => self.get_room(&who.org, &seen.id).await?,
        };
        self.viewed(who, current)
            .await?
            .filter(|r| r.visible_to(who))
            .ok_or(ApiError::NotFound("conversation"))
    }

    /// Removes a member of a large room: their row, their inbox count and the room's
    /// count, and a `member.removed` event (the fan-out ends their subscriptions once
    /// it has told them).
    async fn remove_from_large(
        &self,
        who: &Principal,
        mut room: Room,
        user: &UserId,
    ) -> ApiResult<Room> {
        for attempt in rebuilds() {
            attempt.pause().await;
            let now = crate::time::now_string();
            let row = Delete::builder()
                .table_name(self.name())
                .key(keys::PK, s(keys::room_pk(&who.org, &room.id)))
                .key(keys::SK, s(keys::member_sk(user)))
                .condition_expression("attribute_exists(PK)")
                .build()
                .expect("delete has key");
            let plan = Plan::new(
                vec![
                    self.large_room_count(who, &room, -1, &now),
                    TransactWriteItem::builder().delete(row).build(),
                    self.inbox_head_change(&who.org, user.as_str(), -1),
                ],
                Change::member(EventKind::MemberRemoved, user, "removed"),
            );
            let writes = self.sequenced(who, &room, plan, &now);
            match self.table.transact(writes, "remove member").await {
                Ok(()) => {
                    room.member_count -= 1;
                    room.last_seq += 1;
                    room.updated_at = now;
                    if room.viewer.as_deref() == Some(user.as_str()) {
                        room.viewer = None;
                    }
                    return Ok(room);
                }
                Err(WriteError::Api(err)) => return Err(err),
                Err(WriteError::ConditionFailed(c)) if c.failed(1) && !c.failed(0) => {
                    return Err(ApiError::NotFound("member"));
                }
                Err(WriteError::ConditionFailed(c)) => {
                    room = self.large_room_again(who, &room, c.old_item(0)).await?;
                    if room.member_count <= 1 {
                        return Err(last_member());
                    }
                }
            }
        }
        Err(storage_busy())
    }

    /// Removes a member (never the last one), from the room as the caller read it:
    /// they lose access at once, since every read and write checks the room's
    /// current member list.
    pub async fn remove_member(
        &self,
        who: &Principal,
        room: Room,
        user: &UserId,
    ) -> ApiResult<Room> {
        if room.large {
            return self.remove_from_large(who, room, user).await;
        }
        let now = crate::time::now_string();
        let room_id = room.id.clone();
        let mut room = self
            .room_transaction_from(who, &room_id, room, "remove member", |room| {
                if !room.is_member(user.as_str()) {
                    return Err(ApiError::NotFound("member"));
                }
                if room.members.len() == 1 {
                    return Err(last_member());
                }
                let vals = values([
                    (":one", n(1)),
                    (":user", AttributeValue::Ss(vec![user.to_string()])),
                    (":now", s(&now)),
                    (":count", n(room.members.len() as u64)),
                ]);
                let mut writes = vec![
                    self.room_update(
                        room,
                        who,
                        "SET updated_at = :now, member_count = if_not_exists(member_count, :count) - :one ADD member_version :one DELETE members :user",
                        vals,
                        &[],
                    ),
                    self.member_delete(who, &room.id, user),
                    self.inbox_head_change(&who.org, user.as_str(), -1),
                ];
                writes.extend(self.member_list_changes(who, room, "DELETE", user));
                Ok(Plan::new(
                    writes,
                    Change::member(EventKind::MemberRemoved, user, "removed"),
                ))
            })
            .await?;
        room.members.retain(|m| m != user.as_str());
        room.member_count = room.members.len() as u64;
        room.member_version += 1;
        room.updated_at = now;
        Ok(room)
    }
}

/// Members per page of `GET /rooms/{room_id}/members`.
pub const MAX_MEMBERS_PAGE: u32 = 100;

impl Store {
    /// A page of the room's members in user-id order (its rows: one Query), for a
    /// caller who may see the room (checked by the caller).
    pub async fn list_members(
        &self,
        org: &crate::ids::OrgId,
        room: &crate::ids::RoomId,
        cursor: Option<&str>,
        limit: u32,
    ) -> ApiResult<crate::store::Page<crate::model::Membership>> {
        let pk = keys::room_pk(org, room);
        let page = self
            .table
            .query_page(
                "list members",
                cursor,
                crate::cursor::Partition::pk(&pk),
                crate::cursor::TABLE_KEYS,
                |query| {
                    query
                        .key_condition_expression("PK = :pk AND begins_with(SK, :u)")
                        .expression_attribute_values(":pk", s(&pk))
                        .expression_attribute_values(":u", s(keys::MEMBER_SK_PREFIX))
                        .consistent_read(true)
                        .limit(limit as i32)
                },
            )
            .await?;
        Ok(crate::store::Page {
            items: page
                .items
                .iter()
                .filter_map(crate::model::Membership::from_item)
                .collect(),
            next_cursor: page.next_cursor,
        })
    }
}

fn already_member() -> ApiError {
    ApiError::Conflict {
        code: "already_member",
        message: "the user is already a member".into(),
    }
}

fn direct_chat() -> ApiError {
    ApiError::Conflict {
        code: "direct_chat",
        message: "a direct chat stays between two users; start a group".into(),
    }
}

fn room_full() -> ApiError {
    ApiError::Conflict {
        code: "room_full",
        message: format!("a room has at most {MAX_MEMBERS} members"),
    }
}

fn last_member() -> ApiError {
    ApiError::Conflict {
        code: "last_member",
        message: "a room keeps at least one member; delete the room instead".into(),
    }
}
