//! The message aggregate: a room's messages in its partition, their idempotency
//! records, listing, and posting in one transaction (edits and deletes: `edits`).

mod edits;

pub use edits::{MessageChange, RETENTION_ACTOR};

use crate::auth::Principal;
use crate::cursor::{self, Partition};
use crate::error::{ApiError, ApiResult};
use crate::ids::{MessageId, RoomId, UserId};
use crate::item::{Item, ItemBuilder, ItemExt, n, s, values};
use crate::keys;
use crate::model::{Message, MessageEffect, Room};
use crate::store::{
    Change, EventKind, IDEMPOTENCY_TTL_SECS, Page, Plan, Store, WriteError, put, rebuilds,
    storage_busy,
};
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Newest first, older pages follow (`before`).
    Older,
    /// Oldest first from a cursor, newer pages follow (`after`).
    Newer,
}

pub struct MessageQuery<'a> {
    pub limit: u32,
    pub offset: u32,
    pub cursor: Option<&'a str>,
    pub direction: Direction,
    pub include_notes: bool,
}

pub struct MessageList {
    pub room: Room,
    pub messages: Page<Message>,
}

/// What a new message is made of, beyond who sends it and where.
pub struct NewMessage {
    pub content: String,
    pub content_type: String,
    pub message_type: String,
    pub sender: String,
    /// Who the message is from when not the caller (the bot agent of an AI reply).
    pub sender_id: Option<String>,
    pub attachments: Vec<crate::model::Attachment>,
    pub client_message_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub tokens_used: Option<u64>,
    pub processing_time: Option<f64>,
    pub cost: Option<f64>,
    /// What the caller asked when the message is not it (an AI reply answers a
    /// prompt): a retry is recognised by this, not by the model's varying answer.
    pub request: Option<String>,
}

impl NewMessage {
    /// The message this makes, sent by the caller (or `sender_id`) at `now`.
    fn message(&self, who: &Principal, room_id: &RoomId, now: &str) -> Message {
        Message {
            // Of the same millisecond as `created_at` and the day's stats (a day's
            // messages are found by their keys' time).
            id: MessageId::at(now),
            room_id: room_id.clone(),
            sender_id: self
                .sender_id
                .clone()
                .unwrap_or_else(|| who.user.to_string()),
            sender: self.sender.clone(),
            content: self.content.clone(),
            content_type: self.content_type.clone(),
            message_type: self.message_type.clone(),
            attachments: self.attachments.clone(),
            client_message_id: self.client_message_id.clone(),
            tokens_used: self.tokens_used,
            processing_time: self.processing_time,
            cost: self.cost,
            created_at: now.to_owned(),
            edited_at: None,
            deleted_at: None,
            files_expired_at: None,
            previous_versions: Vec::new(),
            edit_count: 0,
            seq: None,
            last_event_seq: None,
            pos: None,
        }
    }
}

pub enum Posted {
    Created(Box<Message>),
    /// A retry of an earlier request: the message it created, as it was then.
    Replayed(Box<Message>),
}

impl Store {
    /// A page of a room's messages, with the room (for access checks). The common
    /// first page (newest first, no cursor) is one Query that returns the room item
    /// and then the newest messages, since `M#…` sorts just below `META`.
    pub async fn list_messages(
        &self,
        who: &Principal,
        room_id: &RoomId,
        q: MessageQuery<'_>,
    ) -> ApiResult<MessageList> {
        let pk = keys::room_pk(&who.org, room_id);
        let start = cursor::start(q.cursor, Partition::pk(&pk), cursor::TABLE_KEYS)?;
        if start.as_ref().is_some_and(|k| {
            k.get(keys::SK)
                .and_then(|v| v.as_s().ok())
                .is_none_or(|sk| !sk.starts_with(keys::MESSAGE_SK_PREFIX))
        }) {
            return Err(ApiError::InvalidCursor);
        }
        let with_room = start.is_none() && q.direction == Direction::Older;
        let room = if with_room {
            None
        } else {
            Some(self.visible_room(who, room_id).await?)
        };
        let mut vals = values([(":pk", s(&pk)), (":lo", s(keys::MESSAGE_SK_PREFIX))]);
        let key_condition = if with_room {
            vals.insert(":hi".into(), s(keys::ROOM_SK));
            "PK = :pk AND SK BETWEEN :lo AND :hi"
        } else {
            "PK = :pk AND begins_with(SK, :lo)"
        };
        let filter = (!q.include_notes).then(|| {
            vals.insert(":note".into(), s("note"));
            "attribute_not_exists(message_type) OR message_type <> :note"
        });
        let answer = self
            .table
            .query_answer("list messages", start, |query| {
                query
                    .key_condition_expression(key_condition)
                    .consistent_read(true)
                    .scan_index_forward(q.direction == Direction::Newer)
                    // The room item first when asked, and one message more than the
                    // page shows (so a page that ends the room says so).
                    .limit((q.offset + q.limit + u32::from(with_room) + 1) as i32)
                    .set_filter_expression(filter.map(str::to_owned))
                    .set_expression_attribute_values(Some(vals))
            })
            .await?;
        // Rows borrowed from the answer's text: no attribute map per message.
        let page = answer.page()?;
        let last_key = page.last_key;
        let mut rows = page.rows.iter();
        let room = match room {
            Some(room) => room,
            None => {
                let found = rows.next().and_then(Room::from_item);
                self.viewed(who, found)
                    .await?
                    .filter(|room| room.visible_to(who))
                    .ok_or(ApiError::NotFound("conversation"))?
            }
        };
        let messages: Vec<Message> = rows
            .filter_map(Message::from_item)
            .skip(q.offset as usize)
            .collect();
        let (messages, next) =
            super::table::probed_page(messages, q.limit as usize, last_key, |m| {
                [
                    (keys::PK.to_owned(), s(&pk)),
                    (keys::SK.to_owned(), s(keys::message_sk(&m.id))),
                ]
                .into()
            });
        Ok(MessageList {
            room,
            messages: Page {
                items: messages,
                next_cursor: next.as_ref().map(cursor::encode),
            },
        })
    }

    /// Stores a message with everything it changes, in one TransactWriteItems: the
    /// message, the idempotency record, the room summary and counters, and every
    /// member's inbox row. A retry with the same idempotency key returns the first
    /// result; concurrent retries still store one message.
    ///
    /// The room's member list and version come from `cache` when it has them: the
    /// transaction is conditioned on them, so a stale entry costs one failed attempt
    /// that returns the current room (and access is checked again against it). Warm,
    /// a post is one request.
    pub async fn post_message(
        &self,
        who: &Principal,
        room_id: &RoomId,
        new: NewMessage,
        cache: &RoomCache,
    ) -> ApiResult<Posted> {
        // Posts of one instance into one room go one at a time: each then starts from
        // the feed position the previous one left in the cache, instead of racing it
        // (a Lambda instance serves one request at a time; a dev server, many).
        let _turn = cache.turn(&who.org, room_id).await;
        let mut room = match cache.get(&who.org, room_id).filter(|r| r.visible_to(who)) {
            Some(room) => room,
            None => self.visible_room(who, room_id).await?,
        };
        let request_hash = fingerprint(&new);
        for attempt in rebuilds() {
            attempt.pause().await;
            let now = crate::time::now_string();
            let mut message = new.message(who, room_id, &now);
            message.seq = Some(room.last_seq + 1);
            message.pos = Some(room.total_messages + u64::from(!message.is_note()));
            let (mut writes, idem_index, claims) =
                self.message_writes(who, &room, &message, &new, &request_hash, &now);
            if room.message_effect(&message, who.role.is_staff()).reopen {
                // Reopened: active again on its assignee's workload.
                writes.extend(self.workload_writes(
                    &who.org,
                    &room,
                    (room.status, room.assignee_id.as_deref()),
                    (crate::model::RoomStatus::Open, room.assignee_id.as_deref()),
                ));
            }
            let plan = post_plan(&room, &message, who.role.is_staff(), writes);
            let writes = self.sequenced(who, &room, plan, &now);
            let cancelled = match self.table.transact(writes, "post message").await {
                Ok(()) => {
                    cache.put(&who.org, room.after_message(&message, who.role.is_staff()));
                    return Ok(Posted::Created(Box::new(message)));
                }
                Err(WriteError::Api(err)) => return Err(err),
                Err(WriteError::ConditionFailed(c)) => c,
            };
            let room_index = 1 + usize::from(idem_index.is_some());
            if let Some(i) = idem_index.filter(|&i| cancelled.failed(i)) {
                // A retry is answered only to who may still post here: the room we
                // held (perhaps cached) may be older than a removal.
                let current = match cancelled.old_item(room_index).and_then(Room::from_item) {
                    Some(room) => Some(room),
                    None => self.get_room(&who.org, room_id).await?,
                };
                self.viewed(who, current)
                    .await?
                    .filter(|r| r.visible_to(who))
                    .ok_or(ApiError::NotFound("conversation"))?;
                let stored = match cancelled.old_item(i) {
                    Some(item) => item.clone(),
                    None => {
                        self.idempotency_record(
                            who,
                            room_id,
                            new.idempotency_key.as_deref().unwrap_or_default(),
                        )
                        .await?
                    }
                };
                let stored = replay(&stored, &request_hash)?;
                let first = self.replayed(who, room_id, stored).await?;
                return Ok(Posted::Replayed(Box::new(first)));
            }
            if let Some(&(_, attachment)) = claims.iter().find(|(i, _)| cancelled.failed(*i)) {
                // Another message holds this upload: citing it again would let this
                // message's delete take someone else's file.
                return Err(ApiError::invalid(
                    format!("attachments[{attachment}].upload_id"),
                    "this upload is attached to another message",
                ));
            }
            // In a large room the sender's own row is their membership: its update
            // fails when they were removed meanwhile.
            let row_failed = room.large && (room_index + 1..).take(64).any(|i| cancelled.failed(i));
            if !cancelled.failed(room_index) && !row_failed {
                // Only the message itself can fail otherwise: a new id that exists.
                return Err(ApiError::internal(
                    "post message",
                    format!("new message exists: {cancelled:?}"),
                ));
            }
            // The room changed under us (members or deletion): re-check access with
            // its current state and try again.
            let current = match cancelled.old_item(room_index).and_then(Room::from_item) {
                Some(current) if cancelled.failed(room_index) => Some(current),
                _ => self.get_room(&who.org, room_id).await?,
            };
            let mut current = current;
            if let Some(current) = current.as_mut() {
                current.viewer = None;
            }
            let current = self.viewed(who, current).await?;
            match &current {
                Some(current) => cache.put(&who.org, current.clone()),
                None => cache.remove(&who.org, room_id),
            }
            room = current
                .filter(|r| r.visible_to(who))
                .ok_or(ApiError::NotFound("conversation"))?;
        }
        Err(storage_busy())
    }

    #[allow(clippy::too_many_arguments)]
    fn message_writes(
        &self,
        who: &Principal,
        room: &Room,
        message: &Message,
        new: &NewMessage,
        request_hash: &str,
        now: &str,
    ) -> (Vec<TransactWriteItem>, Option<usize>, Vec<(usize, usize)>) {
        let org = &who.org;
        let pk = keys::room_pk(org, &room.id);
        let mut writes = vec![put(self.name(), message.to_item(org), true)];
        let mut idem_index = None;
        if let Some(key) = &new.idempotency_key {
            idem_index = Some(writes.len());
            writes.push(self.idempotency_put(who, &pk, key, message, request_hash));
        }
        let effect = room.message_effect(message, who.role.is_staff());
        let counts = crate::store::analytics::message_counts(room, message, now);
        let (mut expression, mut vals) = room_message_update(message, effect, &counts, now);
        if let (true, Some(team), None) = (effect.reopen, &room.team_id, &room.assignee_id) {
            // Reopened with nobody on it: back in its team's queue.
            expression = expression.replacen(
                "SET ",
                "SET queued_at = :now, GSI2PK = :queue, GSI2SK = :queued, ",
                1,
            );
            vals.insert(":queue".into(), s(keys::queue_gsi2pk(org, team)));
            vals.insert(":queued".into(), s(keys::queue_gsi2sk(now, &room.id)));
        }
        writes.push(self.room_update(room, who, &expression, vals, &[]));
        writes.extend(self.stats_update(
            org,
            &room.id,
            crate::store::analytics::day_of(now),
            &counts,
        ));
        writes.extend(self.search_writes(org, room, message));
        // Each cited upload is claimed by this message, once: (write index, attachment index).
        let mut claims = Vec::new();
        for (i, upload) in message.attachments.iter().enumerate() {
            if let Some(upload) = &upload.upload_id {
                claims.push((writes.len(), i));
                writes.push(put(
                    self.name(),
                    upload_claim(org, room, upload, &message.attachments[i].name, message),
                    true,
                ));
            }
        }
        if message.is_note() {
            // Notes are internal: no inbox row moves, no unread count changes.
            return (writes, idem_index, claims);
        }
        // A large room's post writes its sender's row alone (when they are a member):
        // other members' unread counts are computed when read.
        let rows: Vec<&String> = match room.large {
            false => room.members.iter().collect(),
            true => room
                .viewer
                .iter()
                .filter(|v| **v == message.sender_id)
                .collect(),
        };
        for member in rows.into_iter().filter_map(|m| UserId::parse(m).ok()) {
            let (expression, vals, names) =
                inbox_row_update(org, room, &member, message, effect, now);
            writes.push(self.member_update(who, &room.id, &member, &expression, vals, &names));
        }
        (writes, idem_index, claims)
    }

    /// The name of an attached upload as its message gives it (none for files attached
    /// before claims kept it).
    pub async fn attached_name(
        &self,
        org: &crate::ids::OrgId,
        room: &RoomId,
        upload: &str,
    ) -> ApiResult<Option<String>> {
        let claim = self
            .table
            .get(
                (keys::room_pk(org, room), keys::upload_claim_sk(upload)),
                "attached upload",
            )
            .await?;
        Ok(claim.and_then(|c| c.string("name")))
    }

    /// Gives up `message`'s claim on an upload (its message was deleted): true when the
    /// message held it, so its file may go; false when another message holds it or it
    /// was never claimed (attached before claims existed), so the file stays.
    pub async fn release_upload(
        &self,
        org: &crate::ids::OrgId,
        room: &RoomId,
        upload: &str,
        message: &MessageId,
    ) -> ApiResult<bool> {
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::room_pk(org, room)))
            .key(keys::SK, s(keys::upload_claim_sk(upload)))
            .condition_expression("message_id = :m")
            .expression_attribute_values(":m", s(message.as_str()))
            .build()
            .expect("delete has key");
        match self.table.delete(delete, "release upload").await {
            Ok(_) => Ok(true),
            Err(WriteError::ConditionFailed(_)) => Ok(false),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// The idempotency record of a post: new, or the failure returns the first one.
    fn idempotency_put(
        &self,
        who: &Principal,
        pk: &str,
        key: &str,
        message: &Message,
        request_hash: &str,
    ) -> TransactWriteItem {
        let expires = crate::time::now().unix_timestamp() + IDEMPOTENCY_TTL_SECS;
        let record = ItemBuilder::new()
            .str(keys::PK, pk)
            .str(keys::SK, keys::idempotency_sk(&who.user, key))
            .str(keys::ENTITY, keys::entity::IDEMPOTENCY)
            .str("message_id", message.id.as_str())
            .str("request_hash", request_hash)
            // The message as created: a retry answers it, whatever happened since.
            .set(
                "message",
                AttributeValue::M(stored_message(message, &who.org)),
            )
            .num(keys::TTL, expires)
            .build();
        let put = Put::builder()
            .table_name(self.name())
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(PK)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("put has item");
        TransactWriteItem::builder().put(put).build()
    }

    /// The first answer to a request with this idempotency key, if there was one: lets
    /// a costly step (asking a model) be skipped on a retry. `request` is what
    /// [`NewMessage::request`] will be.
    pub async fn earlier_answer(
        &self,
        who: &Principal,
        room_id: &RoomId,
        key: &str,
        request: &str,
    ) -> ApiResult<Option<Message>> {
        match self.get_idempotency_record(who, room_id, key).await? {
            Some(stored) => {
                let stored = replay(&stored, &hash_parts(&[request]))?;
                Ok(Some(self.replayed(who, room_id, stored).await?))
            }
            None => Ok(None),
        }
    }

    async fn idempotency_record(
        &self,
        who: &Principal,
        room_id: &RoomId,
        key: &str,
    ) -> ApiResult<Item> {
        self.get_idempotency_record(who, room_id, key)
            .await?
            .ok_or_else(|| {
                ApiError::internal("idempotency record", "conditional failure but no record")
            })
    }

    async fn get_idempotency_record(
        &self,
        who: &Principal,
        room_id: &RoomId,
        key: &str,
    ) -> ApiResult<Option<Item>> {
        self.table
            .get(
                (
                    keys::room_pk(&who.org, room_id),
                    keys::idempotency_sk(&who.user, key),
                ),
                "get idempotency record",
            )
            .await
    }
}

/// The room item's update for a new message: its summary, counters and the state
/// the message's effect changes.
fn room_message_update(
    message: &Message,
    effect: MessageEffect,
    counts: &crate::store::analytics::Counts,
    now: &str,
) -> (String, HashMap<String, AttributeValue>) {
    let mut vals = values([(":now", s(now)), (":one", n(1))]);
    if message.is_note() {
        vals.insert(":mid".into(), s(message.id.as_str()));
        return (
            "SET updated_at = :now, last_note_id = :mid ADD note_count :one".to_owned(),
            vals,
        );
    }
    vals.insert(":mid".into(), s(message.id.as_str()));
    vals.insert(":sid".into(), s(&message.sender_id));
    vals.insert(":preview".into(), s(preview(&message.content)));
    let mut sets = vec![
        "updated_at = :now",
        "last_message_at = :now",
        "last_message_id = :mid",
        "last_sender_id = :sid",
        "last_message_preview = :preview",
    ];
    let mut removes = Vec::new();
    if effect.reopen {
        sets.push("#st = :open");
        vals.insert(":open".into(), s("open"));
        removes.extend(["snoozed_until", "closed_at"]);
    }
    if effect.start_waiting {
        sets.push("awaiting_since = :now");
    }
    if effect.end_waiting {
        removes.push("awaiting_since");
    }
    if effect.first_response {
        sets.push("first_response_at = :now");
    }
    let remove = match removes.is_empty() {
        true => String::new(),
        false => format!(" REMOVE {}", removes.join(", ")),
    };
    let responses = crate::store::analytics::room_response_adds(counts, &mut vals);
    let expression = format!(
        "SET {}{remove} ADD total_messages :one{responses}",
        sets.join(", ")
    );
    (expression, vals)
}

/// A member's inbox row after a new public message: it moves to the top of their
/// inbox, counts the message, and is unread for everyone but the sender (sending
/// reads everything before it).
fn inbox_row_update(
    org: &crate::ids::OrgId,
    room: &Room,
    member: &UserId,
    message: &Message,
    effect: MessageEffect,
    now: &str,
) -> (
    String,
    HashMap<String, AttributeValue>,
    Vec<(&'static str, &'static str)>,
) {
    let mut sets = vec!["last_message_at = :now", "#g1pk = :g1pk", "#g1sk = :g1sk"];
    let mut adds = Vec::new();
    let mut vals = values([
        (":now", s(now)),
        (":g1pk", s(keys::inbox_gsi1pk(org, member))),
        (":g1sk", s(keys::inbox_gsi1sk(now, &room.id))),
    ]);
    if member.as_str() == message.sender_id {
        // Read up to their own message: the row's count is the message's place
        // (a large room's rows are not counted along; see `InboxEntry::unread`).
        sets.extend([
            "unread_count = :zero",
            "last_read_message_id = :mid",
            "own_pos = :pos",
            "total_messages = :pos",
            // Sending is reading: the notify function's grace period counts from here.
            "read_at = :now",
        ]);
        vals.insert(":zero".into(), n(0));
        vals.insert(":mid".into(), s(message.id.as_str()));
        vals.insert(":pos".into(), n(message.pos.unwrap_or_default()));
    } else {
        adds.extend(["total_messages :one", "unread_count :one"]);
        vals.insert(":one".into(), n(1));
    }
    let mut names = vec![("#g1pk", keys::GSI1PK), ("#g1sk", keys::GSI1SK)];
    if effect.reopen {
        sets.push("#st = :open");
        vals.insert(":open".into(), s("open"));
        names.push(("#st", "status"));
    }
    let expression = match adds.is_empty() {
        true => format!("SET {}", sets.join(", ")),
        false => format!("SET {} ADD {}", sets.join(", "), adds.join(", ")),
    };
    (expression, vals, names)
}

pub(crate) use crate::model::preview;

/// The item that says which message holds an upload (and who sent it), and the file's
/// name, which its download link carries.
fn upload_claim(
    org: &crate::ids::OrgId,
    room: &Room,
    upload: &str,
    name: &str,
    message: &Message,
) -> Item {
    ItemBuilder::new()
        .str(keys::PK, keys::room_pk(org, &room.id))
        .str(keys::SK, keys::upload_claim_sk(upload))
        .str(keys::ENTITY, keys::entity::UPLOAD_CLAIM)
        .str("message_id", message.id.as_str())
        .str("sender_id", &message.sender_id)
        .str("name", name)
        .build()
}

/// The message as an idempotency record keeps it: its attributes without its keys.
fn stored_message(message: &Message, org: &crate::ids::OrgId) -> Item {
    let mut item = message.to_item(org);
    item.remove(keys::PK);
    item.remove(keys::SK);
    item
}

/// The message the first request created, if the record is for the same request.
fn replay(stored: &Item, request_hash: &str) -> ApiResult<Stored> {
    if stored.str("request_hash") != Some(request_hash) {
        return Err(ApiError::Conflict {
            code: "idempotency_key_reused",
            message: "this idempotency key was used for a different message".into(),
        });
    }
    if let Some(AttributeValue::M(item)) = stored.get("message") {
        return Message::from_item(item)
            .map(Stored::Message)
            .ok_or_else(|| ApiError::internal("idempotency record", "unreadable message"));
    }
    // Records written before they kept the message name it by id.
    stored
        .str("message_id")
        .and_then(|id| MessageId::parse(id).ok())
        .map(Stored::Id)
        .ok_or_else(|| ApiError::internal("idempotency record", "no stored message"))
}

/// What an idempotency record gives back.
enum Stored {
    Message(Message),
    /// An older record's message, to be read.
    Id(MessageId),
}

impl Store {
    /// The message a record gives back, read by id for older records.
    async fn replayed(
        &self,
        who: &Principal,
        room_id: &RoomId,
        stored: Stored,
    ) -> ApiResult<Message> {
        match stored {
            Stored::Message(message) => Ok(message),
            Stored::Id(id) => self
                .table
                .get(
                    (keys::room_pk(&who.org, room_id), keys::message_sk(&id)),
                    "replayed message",
                )
                .await?
                .as_ref()
                .and_then(Message::from_item)
                .ok_or(ApiError::NotFound("message")),
        }
    }
}

/// A stable fingerprint of what a message says, to tell a true retry from a reused
/// idempotency key (FNV-1a: stable across builds, unlike std's hasher).
fn fingerprint(new: &NewMessage) -> String {
    if let Some(request) = &new.request {
        return hash_parts(&[request]);
    }
    let attachments = serde_json::to_string(&new.attachments).unwrap_or_default();
    hash_parts(&[
        &new.content,
        &new.content_type,
        &new.message_type,
        &attachments,
    ])
}

fn hash_parts(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Rooms (members, version, status, feed position) a warm instance has seen, so that
/// posting needs no read first. Bounded; entries are only hints, every write re-checks
/// them.
#[derive(Debug, Default)]
pub struct RoomCache {
    rooms: std::sync::Mutex<HashMap<String, Room>>,
    turns: std::sync::Mutex<HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

/// Rooms kept per instance; past it the cache starts over.
const ROOM_CACHE_ENTRIES: usize = 1024;

impl RoomCache {
    fn key(org: &crate::ids::OrgId, room: &RoomId) -> String {
        keys::room_pk(org, room)
    }

    pub fn get(&self, org: &crate::ids::OrgId, room: &RoomId) -> Option<Room> {
        self.rooms.lock().ok()?.get(&Self::key(org, room)).cloned()
    }

    /// This instance's turn to write the room: held while a post is built and sent.
    pub async fn turn(
        &self,
        org: &crate::ids::OrgId,
        room: &RoomId,
    ) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        let lock = {
            let mut turns = self.turns.lock().ok()?;
            // Rooms nobody waits for any more are forgotten.
            if turns.len() >= ROOM_CACHE_ENTRIES {
                turns.retain(|_, lock| std::sync::Arc::strong_count(lock) > 1);
            }
            turns.entry(Self::key(org, room)).or_default().clone()
        };
        Some(lock.lock_owned().await)
    }

    pub fn put(&self, org: &crate::ids::OrgId, room: Room) {
        if let Ok(mut map) = self.rooms.lock() {
            if map.len() >= ROOM_CACHE_ENTRIES {
                map.clear();
            }
            map.insert(Self::key(org, &room.id), room);
        }
    }

    pub fn remove(&self, org: &crate::ids::OrgId, room: &RoomId) {
        if let Ok(mut map) = self.rooms.lock() {
            map.remove(&Self::key(org, room));
        }
    }
}

/// A post's writes and its changes: the message, and the room reopening when the
/// message reopens it (followers see the status move too).
fn post_plan(room: &Room, message: &Message, staff: bool, writes: Vec<TransactWriteItem>) -> Plan {
    let mut plan = Plan::new(writes, Change::message(EventKind::MessageNew, message));
    if room.message_effect(message, staff).reopen {
        plan.changes.push(Change::reopened());
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::{message, room};

    #[test]
    fn a_reply_that_reopens_writes_the_status_and_clears_the_snooze_on_room_and_rows() {
        let effect = MessageEffect {
            reopen: true,
            start_waiting: true,
            ..MessageEffect::default()
        };
        let counts = crate::store::analytics::Counts::default();
        let (expression, vals) = room_message_update(&message(), effect, &counts, "now");
        assert!(expression.contains("#st = :open"), "{expression}");
        assert!(expression.contains("awaiting_since = :now"), "{expression}");
        assert!(expression.contains("REMOVE snoozed_until"), "{expression}");
        assert_eq!(vals[":preview"], s("hi"));
        let member = UserId::parse("5").unwrap();
        let org = crate::ids::OrgId::parse("acme").unwrap();
        let (row, vals, names) =
            inbox_row_update(&org, &room(), &member, &message(), effect, "now");
        assert!(
            row.contains("#st = :open") && names.contains(&("#st", "status")),
            "{row}"
        );
        assert!(
            row.contains("unread_count :one"),
            "another member's row counts it: {row}"
        );
        assert_eq!(vals[":open"], s("open"));
    }

    #[test]
    fn the_senders_row_is_read_up_to_their_message_and_a_note_touches_only_the_note_count() {
        let sender = UserId::parse("u-1").unwrap();
        let org = crate::ids::OrgId::parse("acme").unwrap();
        let (row, _, names) = inbox_row_update(
            &org,
            &room(),
            &sender,
            &message(),
            MessageEffect::default(),
            "now",
        );
        assert!(row.contains("unread_count = :zero") && !row.contains("unread_count :one"));
        assert!(!names.iter().any(|(n, _)| *n == "#st"));
        let note = Message {
            message_type: "note".into(),
            ..message()
        };
        let counts = crate::store::analytics::Counts::default();
        let (expression, _) = room_message_update(&note, MessageEffect::default(), &counts, "now");
        assert_eq!(
            expression,
            "SET updated_at = :now, last_note_id = :mid ADD note_count :one"
        );
    }

    #[test]
    fn a_record_gives_back_its_message_or_names_it_when_older() {
        let org = crate::ids::OrgId::parse("acme").unwrap();
        let kept = ItemBuilder::new()
            .str("request_hash", "h")
            .set(
                "message",
                AttributeValue::M(stored_message(&message(), &org)),
            )
            .build();
        assert!(matches!(replay(&kept, "h"), Ok(Stored::Message(m)) if m == message()));
        let older = ItemBuilder::new()
            .str("request_hash", "h")
            .str("message_id", message().id.as_str())
            .str("response", "{}")
            .build();
        assert!(matches!(replay(&older, "h"), Ok(Stored::Id(id)) if id == message().id));
        let err = replay(&kept, "other").err().unwrap();
        assert_eq!(err.code(), "idempotency_key_reused");
    }
}
