//! Rooms and memberships.

use super::{Store, put};
use crate::dynamo::sdk_error;
use crate::error::ApiResult;
use crate::ids::{OrgId, RoomId, UserId};
use crate::item::{n, s, values};
use crate::keys;
use crate::model::{Membership, Room};
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

impl Store {
    /// Creates a room with its members (each with an inbox row) in one transaction.
    pub async fn create_room(
        &self,
        org: &OrgId,
        room: &Room,
        member_roles: &[(String, &str)],
    ) -> ApiResult<()> {
        let now = &room.created_at;
        let mut writes = vec![put(&self.table, room.to_item(org), true)];
        for (user, member_role) in member_roles {
            writes.push(put(
                &self.table,
                crate::model::member_item(org, room, user, member_role, now),
                true,
            ));
            writes.push(self.inbox_head_change(org, user, 1));
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
            .map_err(|e| sdk_error("create room", e))?;
        Ok(())
    }

    pub(crate) fn inbox_head_change(
        &self,
        org: &OrgId,
        user: &str,
        delta: i64,
    ) -> TransactWriteItem {
        let user = UserId::parse(user).expect("validated member id");
        let update = Update::builder()
            .table_name(&self.table)
            .key(keys::PK, s(keys::user_pk(org, &user)))
            .key(keys::SK, s(keys::INBOX_HEAD_SK))
            .update_expression(
                "SET #e = :e, #g1pk = :g1pk, #g1sk = :g1sk, user_id = :u ADD conversation_count :d",
            )
            .expression_attribute_names("#e", keys::ENTITY)
            .expression_attribute_names("#g1pk", keys::GSI1PK)
            .expression_attribute_names("#g1sk", keys::GSI1SK)
            .set_expression_attribute_values(Some(values([
                (":e", s(keys::entity::INBOX_HEAD)),
                (":g1pk", s(keys::inbox_gsi1pk(org, &user))),
                (":g1sk", s(keys::INBOX_HEAD_GSI1SK)),
                (":u", s(user.as_str())),
                (":d", n(delta)),
            ])))
            .build()
            .expect("update has key and expression");
        TransactWriteItem::builder().update(update).build()
    }

    /// The room, read consistently (membership changes must show at once).
    pub async fn get_room(&self, org: &OrgId, room: &RoomId) -> ApiResult<Option<Room>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::room_pk(org, room)))
            .key(keys::SK, s(keys::ROOM_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("get room", e))?;
        Ok(out.item.as_ref().and_then(Room::from_item))
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
        let room = found.iter().find_map(Room::from_item);
        let membership = found.iter().find_map(Membership::from_item);
        Ok((room, membership))
    }
}
