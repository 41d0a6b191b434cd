//! Adding and removing a room's members: the member list and version on the room,
//! the member's row and inbox count, and the copies of the list on the other rows.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::UserId;
use crate::item::{n, s, values};
use crate::model::{Room, RoomType};
use crate::store::{Change, EventKind, Plan, Store, put};
use aws_sdk_dynamodb::types::AttributeValue;

impl Store {
    /// Adds a member: the room's member list and version, their inbox row and count,
    /// in one transaction conditioned on the room as the caller read it.
    pub async fn add_member(&self, who: &Principal, room: Room, user: &UserId) -> ApiResult<Room> {
        let now = crate::time::now_string();
        let room_id = room.id.clone();
        let mut room = self
            .room_transaction_from(who, &room_id, room, "add member", |room| {
                if room.is_member(user.as_str()) {
                    return Err(ApiError::Conflict {
                        code: "already_member",
                        message: "the user is already a member".into(),
                    });
                }
                if room.room_type == RoomType::Direct {
                    // Its natural key is the pair; a third member would make it a group.
                    return Err(ApiError::Conflict {
                        code: "direct_chat",
                        message: "a direct chat stays between two users; start a group".into(),
                    });
                }
                if room.members.len() >= crate::model::MAX_MEMBERS {
                    return Err(ApiError::Conflict {
                        code: "room_full",
                        message: format!(
                            "a room has at most {} members",
                            crate::model::MAX_MEMBERS
                        ),
                    });
                }
                let vals = values([
                    (":one", n(1)),
                    (":user", AttributeValue::Ss(vec![user.to_string()])),
                    (":now", s(&now)),
                ]);
                let mut joined = room.clone();
                joined.members.push(user.to_string());
                let mut writes = vec![
                    self.room_update(
                        room,
                        who,
                        "SET updated_at = :now ADD member_version :one, members :user",
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
        room.member_version += 1;
        room.updated_at = now;
        Ok(room)
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
        let now = crate::time::now_string();
        let room_id = room.id.clone();
        let mut room = self
            .room_transaction_from(who, &room_id, room, "remove member", |room| {
                if !room.is_member(user.as_str()) {
                    return Err(ApiError::NotFound("member"));
                }
                if room.members.len() == 1 {
                    return Err(ApiError::Conflict {
                        code: "last_member",
                        message: "a room keeps at least one member; delete the room instead".into(),
                    });
                }
                let vals = values([
                    (":one", n(1)),
                    (":user", AttributeValue::Ss(vec![user.to_string()])),
                    (":now", s(&now)),
                ]);
                let mut writes = vec![
                    self.room_update(
                        room,
                        who,
                        "SET updated_at = :now ADD member_version :one DELETE members :user",
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
        room.member_version += 1;
        room.updated_at = now;
        Ok(room)
    }
}
