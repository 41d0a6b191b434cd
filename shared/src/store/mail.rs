//! What inbound email needs of the table: which tenant a reply address's room is of,
//! and whose email inbox a local part is (`MAILBOX#{local part}`, claimed with the
//! tenant's settings).
//! A reply address names a room by id only (`crate::reply`), so the first mail with
//! one writes `REPLYROOM#{room}` naming its tenant; an inbound reply reads it and then
//! checks the address's tag against that tenant. And the once-per-resolution claim of
//! a rating request by email (`RATEASK` beside the room).

use super::{Store, WriteError};
use crate::ids::{OrgId, RoomId};
use crate::item::{ItemBuilder, ItemExt};
use crate::{ApiResult, keys};

impl Store {
    /// Records that `room` is `org`'s for replies by email (once; one PutItem
    /// conditioned on it naming no other tenant): `false` when another tenant has a
    /// room of that id, and then mails carry no reply address.
    pub async fn remember_reply_room(&self, org: &OrgId, room: &RoomId) -> ApiResult<bool> {
        let (pk, sk) = keys::reply_room_key(room);
        let item = ItemBuilder::new()
            .str(keys::PK, pk)
            .str(keys::SK, sk)
            .str(keys::ENTITY, "reply_room")
            .str("org", org.as_str())
            .build();
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(self.name())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK) OR org = :org")
            .expression_attribute_values(
                ":org",
                aws_sdk_dynamodb::types::AttributeValue::S(org.to_string()),
            )
            .build()
            .expect("put has item");
        match self.table.put(put, "remember reply room").await {
            Ok(()) => Ok(true),
            Err(WriteError::ConditionFailed(_)) => Ok(false),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// Claims the one rating request by email of `room`'s resolution of `resolution`
    /// (its `closed_at`): true the first time only, so a stream record's retry or a
    /// resolved conversation closed later mails the customer once. Kept 90 days (a
    /// reopened and resolved conversation has a new resolution, so a new claim).
    pub async fn claim_rating_request(
        &self,
        org: &OrgId,
        room: &RoomId,
        resolution: &str,
    ) -> ApiResult<bool> {
        let expires = crate::time::now_millis() / 1000 + 90 * 24 * 3600;
        let item = ItemBuilder::new()
            .str(keys::PK, keys::room_pk(org, room))
            .str(keys::SK, keys::RATING_ASK_SK)
            .str(keys::ENTITY, "rating_request")
            .str("resolution", resolution)
            .num(keys::TTL, expires)
            .build();
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(self.name())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK) OR resolution <> :resolution")
            .expression_attribute_values(
                ":resolution",
                aws_sdk_dynamodb::types::AttributeValue::S(resolution.to_owned()),
            )
            .build()
            .expect("put has item");
        match self.table.put(put, "claim rating request").await {
            Ok(()) => Ok(true),
            Err(WriteError::ConditionFailed(_)) => Ok(false),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// Gives back the claim of [`Self::claim_rating_request`] (a mail that was not
    /// sent), when it is still this resolution's.
    pub async fn release_rating_request(
        &self,
        org: &OrgId,
        room: &RoomId,
        resolution: &str,
    ) -> ApiResult<()> {
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(self.name())
            .key(
                keys::PK,
                aws_sdk_dynamodb::types::AttributeValue::S(keys::room_pk(org, room)),
            )
            .key(
                keys::SK,
                aws_sdk_dynamodb::types::AttributeValue::S(keys::RATING_ASK_SK.into()),
            )
            .condition_expression("resolution = :resolution")
            .expression_attribute_values(
                ":resolution",
                aws_sdk_dynamodb::types::AttributeValue::S(resolution.to_owned()),
            )
            .build()
            .expect("delete has key");
        match self.table.delete(delete, "release rating request").await {
            Ok(_) | Err(WriteError::ConditionFailed(_)) => Ok(()),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// The tenant whose mails gave out a reply address for `room`, if any.
    pub async fn reply_room_org(&self, room: &RoomId) -> ApiResult<Option<OrgId>> {
        let item = self
            .table
            .get(keys::reply_room_key(room), "reply room")
            .await?;
        Ok(item
            .and_then(|item| item.string("org"))
            .and_then(|org| OrgId::parse(&org).ok()))
    }

    /// The tenant whose email inbox `local_part` is, if any.
    pub async fn email_inbox_org(&self, local_part: &str) -> ApiResult<Option<OrgId>> {
        let item = self
            .table
            .get(keys::email_inbox_key(local_part), "email inbox")
            .await?;
        Ok(item
            .and_then(|item| item.string("org"))
            .and_then(|org| OrgId::parse(&org).ok()))
    }
}
