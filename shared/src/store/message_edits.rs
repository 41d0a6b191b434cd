//! Editing and deleting messages, and moving a member's read marker.

use super::{Store, WriteError, rebuilds, storage_busy};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{MessageId, RoomId};
use crate::item::{Item, ItemExt, n, s, values};
use crate::keys;
use crate::model::{MAX_PREVIOUS_VERSIONS, Message, PreviousVersion, Room};
use crate::policy::{self, Action, Relation};
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};
use std::collections::HashMap;

pub enum MessageChange {
    Edit { content: String },
    Delete,
}

impl MessageChange {
    /// The sender edits their message; the sender or an admin deletes one.
    fn permitted(&self, who: &Principal, message: &Message) -> ApiResult<()> {
        let action = match self {
            MessageChange::Edit { .. } => Action::EditMessage,
            MessageChange::Delete => Action::DeleteMessage,
        };
        let relation = Relation {
            sender: message.sender_id == who.user.as_str(),
            ..Relation::default()
        };
        Ok(policy::require(action, who, relation)?)
    }

    /// The message item's update (expression, condition on the message as read,
    /// values); `message` becomes the message as changed.
    fn message_update(
        &self,
        message: &mut Message,
        now: &str,
    ) -> (&'static str, &'static str, HashMap<String, AttributeValue>) {
        let mut vals = values([(":now", s(now))]);
        let condition = match &message.edited_at {
            Some(at) => {
                vals.insert(":seen".into(), s(at));
                "attribute_not_exists(deleted_at) AND edited_at = :seen"
            }
            None => "attribute_not_exists(deleted_at) AND attribute_not_exists(edited_at)",
        };
        let expression = match self {
            MessageChange::Edit { content } => {
                message.previous_versions.push(PreviousVersion {
                    content: std::mem::replace(&mut message.content, content.clone()),
                    replaced_at: now.to_owned(),
                });
                let excess = message
                    .previous_versions
                    .len()
                    .saturating_sub(MAX_PREVIOUS_VERSIONS);
                message.previous_versions.drain(..excess);
                message.edited_at = Some(now.to_owned());
                vals.insert(":content".into(), s(content));
                vals.insert(
                    ":versions".into(),
                    s(serde_json::to_string(&message.previous_versions)
                        .expect("versions serialize")),
                );
                "SET content = :content, edited_at = :now, previous_versions = :versions"
            }
            MessageChange::Delete => {
                message.deleted_at = Some(now.to_owned());
                vals.insert(":empty".into(), s(""));
                // The tombstone keeps its place and counters; its text goes.
                "SET deleted_at = :now, content = :empty REMOVE attachments, previous_versions"
            }
        };
        (expression, condition, vals)
    }
}

impl Store {
    /// The room and one message, in one BatchGetItem (consistent).
    async fn room_and_message(
        &self,
        who: &Principal,
        room_id: &RoomId,
        message_id: &MessageId,
    ) -> ApiResult<(Room, Message)> {
        let pk = keys::room_pk(&who.org, room_id);
        let items = self
            .batch_get(
                &[
                    (pk.clone(), keys::ROOM_SK.to_owned()),
                    (pk, keys::message_sk(message_id)),
                ],
                "get room and message",
            )
            .await?;
        let room = items
            .iter()
            .find_map(Room::from_item)
            .filter(|r| r.visible_to(who))
            .ok_or(ApiError::NotFound("conversation"))?;
        let message = items
            .iter()
            .find_map(Message::from_item)
            // Customers cannot even address internal notes.
            .filter(|m| who.role.is_staff() || !m.is_note())
            .ok_or(ApiError::NotFound("message"))?;
        Ok((room, message))
    }

    /// Edits (own messages only, earlier text kept) or soft-deletes (own messages,
    /// or any message for admins) a message. The write is conditioned on the message
    /// being as read and the caller still having access to the room.
    pub async fn change_message(
        &self,
        who: &Principal,
        room_id: &RoomId,
        message_id: &MessageId,
        change: MessageChange,
    ) -> ApiResult<Message> {
        for attempt in rebuilds() {
            attempt.pause().await;
            let (room, mut message) = self.room_and_message(who, room_id, message_id).await?;
            if message.deleted_at.is_some() {
                return Err(ApiError::NotFound("message"));
            }
            change.permitted(who, &message)?;
            let now = crate::time::now_string();
            let (expression, condition, vals) = change.message_update(&mut message, &now);
            let update = Update::builder()
                .table_name(self.name())
                .key(keys::PK, s(keys::room_pk(&who.org, room_id)))
                .key(keys::SK, s(keys::message_sk(message_id)))
                .update_expression(expression)
                .condition_expression(condition)
                .set_expression_attribute_values(Some(vals))
                .build()
                .expect("update has key and expression");
            // The room's preview of its last message follows an edit or delete of it
            // (a deleted text must not live on in room lists).
            let is_last = room
                .last_message
                .as_ref()
                .is_some_and(|last| last.message_id == message_id.as_str());
            let access = if is_last {
                self.last_preview_update(who, &room, &message)
            } else {
                self.room_unchanged(who, &room)
            };
            let mut writes = vec![TransactWriteItem::builder().update(update).build(), access];
            writes.extend(self.search_changes_for(who, &room, &message, &change));
            match self.table.transact(writes, "change message").await {
                Ok(()) => return Ok(message),
                // The message or the room moved since we read them: read again.
                Err(WriteError::ConditionFailed(_)) => continue,
                Err(WriteError::Api(err)) => return Err(err),
            }
        }
        Err(storage_busy())
    }

    /// A check that the room is still as read (members, not deleted).
    pub(crate) fn room_unchanged(&self, who: &Principal, room: &Room) -> TransactWriteItem {
        let check = ConditionCheck::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::room_pk(&who.org, &room.id)))
            .key(keys::SK, s(keys::ROOM_SK))
            .condition_expression("member_version = :v AND attribute_not_exists(deleted_at)")
            .expression_attribute_values(":v", n(room.member_version))
            .build()
            .expect("check has key and condition");
        TransactWriteItem::builder().condition_check(check).build()
    }

    /// Rewrites the room's last-message preview, on the same conditions as
    /// [`Self::room_unchanged`] and on the message still being the last one.
    fn last_preview_update(
        &self,
        who: &Principal,
        room: &Room,
        message: &Message,
    ) -> TransactWriteItem {
        // A deleted message still holds its text here (its search entries need it).
        let preview = match message.deleted_at {
            Some(_) => String::new(),
            None => super::messages::preview(&message.content),
        };
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::room_pk(&who.org, &room.id)))
            .key(keys::SK, s(keys::ROOM_SK))
            .update_expression("SET last_message_preview = :preview")
            .condition_expression(
                "member_version = :v AND attribute_not_exists(deleted_at) AND last_message_id = :mid",
            )
            .expression_attribute_values(":v", n(room.member_version))
            .expression_attribute_values(":mid", s(message.id.as_str()))
            .expression_attribute_values(":preview", s(preview))
            .build()
            .expect("update has key and expression");
        TransactWriteItem::builder().update(update).build()
    }

    /// Moves the caller's read marker to `upto` (default: the latest message) and
    /// sets their unread count to the exact number of later public messages from
    /// others. The write is conditioned on the room's message count being the one
    /// counted, so a message arriving meanwhile makes it count again.
    pub async fn mark_read(
        &self,
        who: &Principal,
        room_id: &RoomId,
        upto: Option<&MessageId>,
    ) -> ApiResult<(String, u64)> {
        for attempt in rebuilds() {
            attempt.pause().await;
            let window = self.read_window(who, room_id, upto).await?;
            let read = ReadMarker::from_window(who, upto, window)?;
            match self
                .table
                .transact(self.read_plan(who, &read), "mark read")
                .await
            {
                Ok(()) => return Ok((read.marker, read.unread)),
                // A message arrived or the members changed meanwhile: count again.
                Err(WriteError::ConditionFailed(_)) => continue,
                Err(WriteError::Api(err)) => return Err(err),
            }
        }
        Err(storage_busy())
    }

    /// What a read marker is computed from, in ascending order with the room item
    /// last. With a marker: from it to the room item (the later messages, then the
    /// room). Without: the newest message the caller can see (by id, which is the
    /// list order; the last *committed* may be older) and the room item.
    async fn read_window(
        &self,
        who: &Principal,
        room_id: &RoomId,
        upto: Option<&MessageId>,
    ) -> ApiResult<Vec<Item>> {
        let pk = keys::room_pk(&who.org, room_id);
        let (lower, forward, limit) = match upto {
            Some(id) => (keys::message_sk(id), true, None),
            None => (keys::MESSAGE_SK_PREFIX.to_owned(), false, Some(10)),
        };
        // Customers never get a note's id.
        let visible = |i: &Item| {
            i.str(keys::ENTITY) == Some(keys::entity::MESSAGE)
                && (who.role.is_staff() || i.str("message_type") != Some("note"))
        };
        let mut items: Vec<Item> = Vec::new();
        let mut start = None;
        loop {
            let (page, last_key) = self
                .table
                .query("count unread", start, |query| {
                    query
                        .key_condition_expression("PK = :pk AND SK BETWEEN :lo AND :hi")
                        .expression_attribute_values(":pk", s(&pk))
                        .expression_attribute_values(":lo", s(&lower))
                        .expression_attribute_values(":hi", s(keys::ROOM_SK))
                        .projection_expression("PK, SK, #e, sender_id, message_type, message_id, room_id, room_type, members, member_version, total_messages, deleted_at, owner_id")
                        .expression_attribute_names("#e", keys::ENTITY)
                        .consistent_read(true)
                        .scan_index_forward(forward)
                        .set_limit(limit)
                })
                .await?;
            items.extend(page);
            start = last_key;
            // Without a marker, stop at the newest message the caller can see.
            if start.is_none() || (!forward && items.iter().any(visible)) {
                break;
            }
        }
        if forward {
            return Ok(items);
        }
        // Keep the newest visible message and the room item, in ascending order.
        let newest = items.iter().position(visible).map(|i| items[i].clone());
        let meta = items
            .first()
            .filter(|i| i.str(keys::SK) == Some(keys::ROOM_SK))
            .cloned();
        Ok(newest.into_iter().chain(meta).collect())
    }

    /// The marker's write: the caller's row, on the room being as counted.
    fn read_plan(&self, who: &Principal, read: &ReadMarker) -> Vec<TransactWriteItem> {
        let pk = keys::room_pk(&who.org, &read.room.id);
        let check = ConditionCheck::builder()
            .table_name(self.name())
            .key(keys::PK, s(&pk))
            .key(keys::SK, s(keys::ROOM_SK))
            .condition_expression("member_version = :v AND attribute_not_exists(deleted_at) AND (total_messages = :t OR (attribute_not_exists(total_messages) AND :t = :zero))")
            .expression_attribute_values(":v", n(read.room.member_version))
            .expression_attribute_values(":t", n(read.total))
            .expression_attribute_values(":zero", n(0))
            .build()
            .expect("check has key and condition");
        let mut set = vec!["unread_count = :unread"];
        let mut vals = values([(":unread", n(read.unread))]);
        if !read.marker.is_empty() {
            set.push("last_read_message_id = :mid");
            vals.insert(":mid".into(), s(&read.marker));
        }
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(&pk))
            .key(keys::SK, s(keys::member_sk(&who.user)))
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression("attribute_exists(PK)")
            .set_expression_attribute_values(Some(vals))
            .build()
            .expect("update has key and expression");
        vec![
            TransactWriteItem::builder().condition_check(check).build(),
            TransactWriteItem::builder().update(update).build(),
        ]
    }
}

/// A member's read marker as counted from a [`Store::read_window`].
#[derive(Debug)]
struct ReadMarker {
    room: Room,
    /// The message read up to (empty in a room without messages).
    marker: String,
    /// Later public messages from others.
    unread: u64,
    /// The room's message count the unread count was taken at.
    total: u64,
}

impl ReadMarker {
    fn from_window(
        who: &Principal,
        upto: Option<&MessageId>,
        mut window: Vec<Item>,
    ) -> ApiResult<ReadMarker> {
        let room_item = window
            .pop()
            .filter(|i| i.str(keys::SK) == Some(keys::ROOM_SK));
        let room = room_item
            .as_ref()
            .and_then(room_summary)
            .filter(|r| r.visible_to(who))
            .ok_or(ApiError::NotFound("conversation"))?;
        policy::require(Action::OwnView, who, policy::relation_to(who, &room))?;
        let first = window.first().and_then(|i| i.string("message_id"));
        let marker = match upto {
            Some(id) if first.as_deref() != Some(id.as_str()) => {
                return Err(ApiError::NotFound("message"));
            }
            _ => first.unwrap_or_default(),
        };
        let unread = window
            .iter()
            .skip(1)
            .filter(|i| {
                i.str("sender_id") != Some(who.user.as_str())
                    && i.str("message_type") != Some("note")
            })
            .count() as u64;
        let total = room_item
            .as_ref()
            .and_then(|i| i.num("total_messages"))
            .unwrap_or(0);
        Ok(ReadMarker {
            room,
            marker,
            unread,
            total,
        })
    }
}

/// The access-relevant part of a room from a projected item.
fn room_summary(item: &Item) -> Option<Room> {
    let mut full = item.clone();
    for (k, v) in [
        ("title", ""),
        ("owner_id", ""),
        ("created_at", ""),
        ("updated_at", ""),
    ] {
        full.entry(k.to_owned())
            .or_insert_with(|| AttributeValue::S(v.to_owned()));
    }
    Room::from_item(&full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Role;
    use crate::ids::{OrgId, UserId};
    use crate::item::ItemBuilder;
    use crate::model::tests::room;

    fn who(user: &str, role: Role) -> Principal {
        Principal {
            user: UserId::parse(user).unwrap(),
            org: OrgId::parse("acme").unwrap(),
            role,
        }
    }

    fn entry(id: u64, sender: &str, kind: &str) -> Item {
        ItemBuilder::new()
            .str(keys::ENTITY, keys::entity::MESSAGE)
            .str("message_id", MessageId::from_parts(id, 0).as_str())
            .str("sender_id", sender)
            .str("message_type", kind)
            .build()
    }

    #[test]
    fn unread_counts_later_public_messages_from_others_and_the_marker_must_exist() {
        let org = OrgId::parse("acme").unwrap();
        let window = vec![
            entry(1, "5", "text"),
            entry(2, "5", "text"),
            entry(3, "u-1", "text"),
            entry(4, "5", "note"),
            room().to_item(&org),
        ];
        let customer = who("u-1", Role::Customer);
        let upto = MessageId::from_parts(1, 0);
        let read = ReadMarker::from_window(&customer, Some(&upto), window.clone()).unwrap();
        assert_eq!((read.marker.as_str(), read.unread), (upto.as_str(), 1));
        assert_eq!(read.total, 3);
        let elsewhere = MessageId::from_parts(9, 0);
        let err = ReadMarker::from_window(&customer, Some(&elsewhere), window.clone()).unwrap_err();
        assert_eq!(err.status(), 404);
        let outsider = who("u-9", Role::Customer);
        let err = ReadMarker::from_window(&outsider, Some(&upto), window).unwrap_err();
        assert_eq!(err.status(), 404, "a room one cannot see is not found");
    }

    #[test]
    fn the_sender_edits_keeping_ten_earlier_texts_and_an_admin_may_delete() {
        let mut message = crate::model::tests::message();
        let edit = MessageChange::Edit {
            content: "new".into(),
        };
        assert!(
            edit.permitted(&who("u-1", Role::Customer), &message)
                .is_ok()
        );
        assert_eq!(
            edit.permitted(&who("a-1", Role::Admin), &message)
                .unwrap_err()
                .status(),
            403
        );
        for _ in 0..12 {
            let (expression, condition, vals) = edit.message_update(&mut message, "t");
            assert!(expression.starts_with("SET content = :content"));
            assert!(
                condition.ends_with("edited_at = :seen"),
                "conditioned on the read"
            );
            assert!(vals.contains_key(":versions"));
        }
        assert_eq!(message.previous_versions.len(), MAX_PREVIOUS_VERSIONS);
        assert!(
            MessageChange::Delete
                .permitted(&who("a-1", Role::Admin), &message)
                .is_ok()
        );
        assert!(
            MessageChange::Delete
                .permitted(&who("u-2", Role::Customer), &message)
                .is_err()
        );
        let (expression, _, _) = MessageChange::Delete.message_update(&mut message, "t");
        assert!(expression.contains("REMOVE attachments"));
        assert_eq!(message.deleted_at.as_deref(), Some("t"));
    }
}
