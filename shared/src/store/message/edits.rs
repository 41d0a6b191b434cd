//! Editing and deleting messages, and moving a member's read marker.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{MessageId, OrgId, RoomId};
use crate::item::{n, s, values};
use crate::keys;
use crate::model::{MAX_PREVIOUS_VERSIONS, Message, PreviousVersion, Room};
use crate::policy::{self, Action, Relation};
use crate::store::{Change, EventKind, Plan, Store, WriteError, rebuilds, storage_busy};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use std::collections::HashMap;

pub enum MessageChange {
    /// The new text as the client sent it: checked once the caller may edit (so a
    /// caller without the right learns nothing from the answer).
    Edit {
        content: String,
    },
    Delete,
    /// The tenant's retention removed the message's uploaded files (their objects
    /// first); its links stay. Never a caller's change.
    ExpireFiles,
}

impl MessageChange {
    /// The sender edits their message; the sender or an admin deletes one.
    fn permitted(&self, who: &Principal, message: &Message) -> ApiResult<()> {
        let action = match self {
            MessageChange::Edit { .. } => Action::EditMessage,
            MessageChange::Delete => Action::DeleteMessage,
            MessageChange::ExpireFiles => {
                return Err(ApiError::Forbidden(
                    "files expire by the tenant's retention only".into(),
                ));
            }
        };
        let relation = Relation {
            sender: message.sender_id == who.user.as_str(),
            ..Relation::default()
        };
        Ok(policy::require(action, who, relation)?)
    }

    /// The change with its values checked (an edit's text trimmed and bounded).
    fn checked(&self) -> ApiResult<MessageChange> {
        use crate::commands::messages::{EditMessage, EditedText};
        Ok(match self {
            MessageChange::Edit { content } => {
                let EditedText(content) = EditedText::try_from(EditMessage {
                    content: content.clone(),
                })?;
                MessageChange::Edit { content }
            }
            MessageChange::Delete => MessageChange::Delete,
            MessageChange::ExpireFiles => MessageChange::ExpireFiles,
        })
    }

    /// The message item's update (expression, condition on the message as read,
    /// values); `message` becomes the message as changed.
    /// `event_seq` is the number of the change's own event, which from now on is the
    /// one that carries the message.
    fn message_update(
        &self,
        message: &mut Message,
        now: &str,
        event_seq: u64,
    ) -> (&'static str, &'static str, HashMap<String, AttributeValue>) {
        let mut vals = values([(":now", s(now)), (":les", n(event_seq))]);
        message.last_event_seq = Some(event_seq);
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
                message.edit_count += 1;
                vals.insert(":content".into(), s(content));
                vals.insert(
                    ":versions".into(),
                    s(serde_json::to_string(&message.previous_versions)
                        .expect("versions serialize")),
                );
                vals.insert(":one".into(), n(1));
                "SET content = :content, edited_at = :now, previous_versions = :versions, last_event_seq = :les ADD edit_count :one"
            }
            MessageChange::Delete => {
                message.deleted_at = Some(now.to_owned());
                vals.insert(":empty".into(), s(""));
                // The tombstone keeps its place and counters; its text goes.
                "SET deleted_at = :now, content = :empty, last_event_seq = :les REMOVE attachments, previous_versions"
            }
            MessageChange::ExpireFiles => {
                message.attachments.retain(|a| a.upload_id.is_none());
                message.files_expired_at = Some(now.to_owned());
                match message.attachments.is_empty() {
                    true => "SET files_expired_at = :now, last_event_seq = :les REMOVE attachments",
                    false => {
                        vals.insert(
                            ":links".into(),
                            s(serde_json::to_string(&message.attachments)
                                .expect("attachments serialize")),
                        );
                        "SET files_expired_at = :now, attachments = :links, last_event_seq = :les"
                    }
                }
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
                    (pk.clone(), keys::message_sk(message_id)),
                    // A large room's members are its rows.
                    (pk, keys::member_sk(&who.user)),
                ],
                "get room and message",
            )
            .await?;
        let items = items.rows()?;
        let member = items
            .iter()
            .any(|i| crate::model::Membership::from_item(i).is_some());
        let room = items
            .iter()
            .find_map(Room::from_item)
            .map(|mut r| {
                r.viewer = member.then(|| who.user.to_string());
                r
            })
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

    /// A room of the tenant that is not deleted and one of its messages, whoever may
    /// see them (the tenant's own retention).
    async fn any_room_and_message(
        &self,
        org: &OrgId,
        room_id: &RoomId,
        message_id: &MessageId,
    ) -> ApiResult<(Room, Message)> {
        let pk = keys::room_pk(org, room_id);
        let items = self
            .batch_get(
                &[
                    (pk.clone(), keys::ROOM_SK.to_owned()),
                    (pk, keys::message_sk(message_id)),
                ],
                "get room and message",
            )
            .await?;
        let items = items.rows()?;
        let room = items
            .iter()
            .find_map(Room::from_item)
            .filter(|r| r.deleted_at.is_none())
            .ok_or(ApiError::NotFound("conversation"))?;
        let message = items
            .iter()
            .find_map(Message::from_item)
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
        self.apply_message_change(who, room_id, message_id, change, false)
            .await
    }

    /// The tenant's retention deletes a message or expires its files, in any room of
    /// the tenant not deleted, through the same write as a caller's change (its
    /// event, search entries, preview and redaction); its events name
    /// [`RETENTION_ACTOR`]. None when the message or its room is gone, or it is
    /// deleted already.
    pub async fn retention_change(
        &self,
        org: &OrgId,
        room_id: &RoomId,
        message_id: &MessageId,
        change: MessageChange,
    ) -> ApiResult<Option<Message>> {
        let system = Principal::retention(org);
        match self
            .apply_message_change(&system, room_id, message_id, change, true)
            .await
        {
            Ok(message) => Ok(Some(message)),
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn apply_message_change(
        &self,
        who: &Principal,
        room_id: &RoomId,
        message_id: &MessageId,
        change: MessageChange,
        by_retention: bool,
    ) -> ApiResult<Message> {
        for attempt in rebuilds() {
            attempt.pause().await;
            let (room, mut message) = match by_retention {
                true => {
                    self.any_room_and_message(&who.org, room_id, message_id)
                        .await?
                }
                false => self.room_and_message(who, room_id, message_id).await?,
            };
            if message.deleted_at.is_some() {
                return Err(ApiError::NotFound("message"));
            }
            if !by_retention {
                change.permitted(who, &message)?;
            }
            let change = change.checked()?;
            let now = crate::time::now_string();
            // The event that carried the message until now (its creation's or its last
            // edit's), read before the change moves it on.
            let superseded = superseded_event(&message, &now);
            let event_seq = room.last_seq + 1;
            let (expression, condition, vals) =
                change.message_update(&mut message, &now, event_seq);
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
            // (a deleted text must not live on in room lists). The room's update is
            // conditioned on its `last_seq`, so the message is still the last one.
            let is_last = room
                .last_message
                .as_ref()
                .is_some_and(|last| last.message_id == message_id.as_str());
            let (expression, vals) = match is_last {
                true => (
                    "SET last_message_preview = :preview",
                    values([(":preview", s(last_preview(&message)))]),
                ),
                false => ("", values([])),
            };
            let mut writes = vec![
                self.room_update(&room, who, expression, vals, &[]),
                TransactWriteItem::builder().update(update).build(),
            ];
            writes.extend(self.search_changes_for(who, &room, &message, &change));
            if let Some(seq) = superseded {
                writes.push(self.redact_event(who, room_id, seq, &message, event_seq));
            }
            let kind = match &change {
                MessageChange::Edit { .. } | MessageChange::ExpireFiles => {
                    EventKind::MessageUpdated
                }
                MessageChange::Delete => EventKind::MessageDeleted,
            };
            let plan = Plan::new(writes, Change::message(kind, &message));
            let writes = self.sequenced(who, &room, plan, &now);
            match self.table.transact(writes, "change message").await {
                Ok(()) => return Ok(message),
                // The message or the room moved since we read them: read again.
                Err(WriteError::ConditionFailed(_)) => continue,
                Err(WriteError::Api(err)) => return Err(err),
            }
        }
        Err(storage_busy())
    }
}

impl Store {
    /// The update that leaves a superseded event of `message` without its content:
    /// the message's ids and state, `content` empty, no attachments, and the number
    /// of the event that carries it now (`superseded_by`). Every reader of stored
    /// events — the room feed, `resume`, the tenant feed, replays and deliveries,
    /// which read events when they send — then finds only the latest version.
    fn redact_event(
        &self,
        who: &Principal,
        room_id: &RoomId,
        seq: u64,
        message: &Message,
        superseded_by: u64,
    ) -> TransactWriteItem {
        let mut data = message.to_json();
        data["content"] = serde_json::json!("");
        data["attachments"] = serde_json::json!([]);
        data["redacted"] = serde_json::json!(true);
        data["superseded_by"] = serde_json::json!(superseded_by);
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::room_pk(&who.org, room_id)))
            .key(keys::SK, s(keys::event_sk(seq)))
            .update_expression("SET #data = :data")
            // Within retention it exists (TTL never removes an item early).
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_names("#data", "data")
            .expression_attribute_values(":data", s(data.to_string()))
            .build()
            .expect("update has key and expression");
        TransactWriteItem::builder().update(update).build()
    }
}

/// The actor of the changes a tenant's retention makes (in their events).
pub const RETENTION_ACTOR: &str = "system:retention";

/// The feed event that carries `message` now, when it is still kept (with a minute's
/// margin: an event about to expire is left to expire, readers skip it from then on).
fn superseded_event(message: &Message, now: &str) -> Option<u64> {
    let seq = message.last_event_seq.or(message.seq)?;
    let at = message.edited_at.as_deref().unwrap_or(&message.created_at);
    let at = crate::time::parse(at)?;
    let now = crate::time::parse(now)?;
    let expires = at + time::Duration::seconds(crate::store::FEED_RETENTION_SECS - 60);
    (now < expires).then_some(seq)
}

/// The room's preview of its last message after it changed (a deleted message still
/// holds its text, which its search entries need, but shows none).
fn last_preview(message: &Message) -> String {
    match message.deleted_at {
        Some(_) => String::new(),
        None => super::preview(&message.content),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Role;

    fn who(user: &str, role: Role) -> Principal {
        crate::model::tests::principal(user, role)
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
            let (expression, condition, vals) = edit.message_update(&mut message, "t", 9);
            assert!(expression.starts_with("SET content = :content"));
            assert!(
                condition.ends_with("edited_at = :seen"),
                "conditioned on the read"
            );
            assert!(vals.contains_key(":versions"));
        }
        assert_eq!(message.previous_versions.len(), MAX_PREVIOUS_VERSIONS);
        assert_eq!(
            message.edit_count, 13,
            "every edit counts, not only the kept texts"
        );
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
        let (expression, _, _) = MessageChange::Delete.message_update(&mut message, "t", 10);
        assert_eq!(message.last_event_seq, Some(10));
        assert!(expression.contains("REMOVE attachments"));
        assert_eq!(message.deleted_at.as_deref(), Some("t"));
    }
}
