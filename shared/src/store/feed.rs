//! The room's change feed: every visible change of a room gets the next number of a
//! dense per-room `seq`, written in the same transaction as the change.
//!
//! The room item holds `last_seq`; the transaction's room update is conditioned on it
//! (as it already is on members and status) and sets it to the new value, and each
//! change is one event item `E#{seq}` in the room's partition. Two writers that read
//! the same `last_seq` cannot both commit, so no number is taken twice or skipped; the
//! loser gets the room back with the failure (ALL_OLD) and rebuilds without a read.
//! Every member row carries the same `last_seq`, so an inbox page shows it too.
//! Realtime fan-out, catch-up (`GET …/events`) and webhooks all read these items.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, RoomId, UserId};
use crate::item::{Item, ItemBuilder, ItemExt, n, s, values};
use crate::keys;
use crate::model::{Message, Room};
use crate::store::{SharedChanges, Store, put};
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use std::collections::HashSet;

/// How long changes stay readable after they happen (the events' TTL): a client that
/// was away longer reloads the room instead of catching up.
pub const FEED_RETENTION_SECS: i64 = 7 * 24 * 3600;

/// A change's data is kept whole up to this size; past it only ids are kept, so that an
/// event always fits one WebSocket frame (API Gateway's limit is 128 KB).
pub const MAX_EVENT_DATA_BYTES: usize = 96 * 1024;

/// Events per page of `GET …/events`.
pub const MAX_EVENTS_PAGE: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    MessageNew,
    MessageUpdated,
    MessageDeleted,
    MemberAdded,
    MemberRemoved,
    RoomUpdated,
    RoomDeleted,
    /// A support conversation missed an SLA target (staff only; docs/support.md).
    SlaBreached,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::MessageNew,
        EventKind::MessageUpdated,
        EventKind::MessageDeleted,
        EventKind::MemberAdded,
        EventKind::MemberRemoved,
        EventKind::RoomUpdated,
        EventKind::RoomDeleted,
        EventKind::SlaBreached,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::MessageNew => "message.new",
            EventKind::MessageUpdated => "message.updated",
            EventKind::MessageDeleted => "message.deleted",
            EventKind::MemberAdded => "member.added",
            EventKind::MemberRemoved => "member.removed",
            EventKind::RoomUpdated => "room.updated",
            EventKind::RoomDeleted => "room.deleted",
            EventKind::SlaBreached => "sla.breached",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// A change about to be recorded with the write that makes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: EventKind,
    /// Internal notes and their edits: only staff see what they say.
    pub staff_only: bool,
    /// The change's data, as JSON text.
    pub data: String,
}

impl Change {
    /// A message created, edited or deleted: the message as the API shows it, or only
    /// its ids when that would not fit a frame.
    pub fn message(kind: EventKind, message: &Message) -> Change {
        let mut data = serde_json::to_string(&message.view()).expect("a message view serializes");
        if data.len() > MAX_EVENT_DATA_BYTES {
            data = serde_json::json!({
                "id": message.id,
                "room_id": message.room_id,
                "truncated": true,
            })
            .to_string();
        }
        Change {
            kind,
            staff_only: message.is_note(),
            data,
        }
    }

    /// A member joined, was added, left or was removed.
    pub fn member(kind: EventKind, user: &UserId, how: &str) -> Change {
        Change {
            kind,
            staff_only: false,
            data: serde_json::json!({ "user_id": user, "reason": how }).to_string(),
        }
    }

    /// The shared fields that changed, with their new values (`null`: cleared).
    pub fn room_updated(changes: &SharedChanges) -> Change {
        let mut data = serde_json::Map::new();
        if let Some(title) = &changes.title {
            data.insert("title".into(), title.clone().into());
        }
        if let Some(detail) = &changes.detail {
            data.insert("detail".into(), detail.clone().into());
        }
        if let Some(status) = changes.status {
            data.insert("status".into(), status.as_str().into());
        }
        if let Some(until) = &changes.snoozed_until {
            data.insert("snoozed_until".into(), until.clone().into());
        }
        if let Some(assignee) = &changes.assignee_id {
            data.insert("assignee_id".into(), assignee.clone().into());
        }
        Change {
            kind: EventKind::RoomUpdated,
            staff_only: false,
            data: serde_json::Value::Object(data).to_string(),
        }
    }

    /// A customer's message reopened the room (and cleared its snooze).
    pub fn reopened() -> Change {
        Change {
            kind: EventKind::RoomUpdated,
            staff_only: false,
            data: r#"{"status":"open","snoozed_until":null}"#.into(),
        }
    }

    pub fn room_deleted() -> Change {
        Change {
            kind: EventKind::RoomDeleted,
            staff_only: false,
            data: "{}".into(),
        }
    }
}

/// A recorded change, as readers get it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub room_id: RoomId,
    pub seq: u64,
    pub kind: EventKind,
    pub at: String,
    pub actor_id: String,
    pub staff_only: bool,
    /// Whether the tenant's own systems receive it (its room is
    /// [`crate::model::RoomType::open_to_tenant`]): only such events are indexed in the
    /// tenant feed and delivered to webhooks. Absent on an item: not received.
    pub to_tenant: bool,
    /// JSON text.
    pub data: String,
    pub expires_at: i64,
}

impl Event {
    fn item(&self, org: &OrgId) -> Item {
        let mut item = ItemBuilder::new()
            .str(keys::PK, keys::room_pk(org, &self.room_id))
            .str(keys::SK, keys::event_sk(self.seq))
            .str(keys::ENTITY, keys::entity::EVENT);
        if self.to_tenant {
            // Members-only rooms stay out of the tenant feed's index altogether.
            item = item.str(keys::GSI1PK, keys::tenant_feed_gsi1pk(org)).str(
                keys::GSI1SK,
                keys::tenant_feed_gsi1sk(&self.at, &self.room_id, self.seq),
            );
        }
        item.str("org", org.as_str())
            .str("room_id", self.room_id.as_str())
            .num("seq", self.seq)
            .str("type", self.kind.as_str())
            .str("at", &self.at)
            .str("actor_id", &self.actor_id)
            .set("staff_only", AttributeValue::Bool(self.staff_only))
            .set("to_tenant", AttributeValue::Bool(self.to_tenant))
            .str("data", &self.data)
            .num(keys::TTL, self.expires_at)
            .build()
    }

    pub fn from_item(item: &impl ItemExt) -> Option<Event> {
        if item.str(keys::ENTITY) != Some(keys::entity::EVENT) {
            return None;
        }
        Some(Event {
            room_id: RoomId::parse(item.str("room_id")?).ok()?,
            seq: item.num("seq")?,
            kind: EventKind::parse(item.str("type")?)?,
            at: item.string("at").unwrap_or_default(),
            actor_id: item.string("actor_id").unwrap_or_default(),
            staff_only: item.flag("staff_only"),
            to_tenant: item.flag("to_tenant"),
            data: item.string("data").unwrap_or_else(|| "{}".into()),
            expires_at: item.num(keys::TTL).unwrap_or(i64::MAX),
        })
    }

    /// The event as `reader` gets it, as JSON text: whole, or — for a change they may
    /// not see (an internal note, to a customer) — only its number, so their sequence
    /// stays dense and they can tell a hidden change from a lost one.
    pub fn json_for(&self, staff_reader: bool) -> String {
        let room = serde_json::to_string(&self.room_id).expect("ids serialize");
        if self.staff_only && !staff_reader {
            return format!(r#"{{"type":"hidden","seq":{},"room_id":{room}}}"#, self.seq);
        }
        let text = |v: &str| serde_json::to_string(v).expect("strings serialize");
        format!(
            r#"{{"type":{},"seq":{},"room_id":{room},"at":{},"actor_id":{},"data":{}}}"#,
            text(self.kind.as_str()),
            self.seq,
            text(&self.at),
            text(&self.actor_id),
            self.data,
        )
    }
}

/// A page of a room's changes after a `seq`, oldest first.
#[derive(Debug)]
pub struct EventPage {
    pub room: Room,
    pub events: Vec<Event>,
    pub has_more: bool,
}

/// A page of the tenant's changes of every room, oldest first.
#[derive(Debug)]
pub struct TenantEvents {
    pub events: Vec<Event>,
    /// Where the next page starts (`after=`), when this one is full.
    pub next_after: Option<String>,
}

/// The tenant feed stops this far behind now: an event whose transaction began
/// earlier but committed later still lands before a reader pages past it.
pub const TENANT_FEED_SETTLE_MS: i64 = 2000;

/// The writes and changes of one transaction on a room, before the feed numbers them.
#[derive(Debug, Default)]
pub struct Plan {
    /// The room's own update first (see [`Store::room_update`]).
    pub writes: Vec<TransactWriteItem>,
    pub changes: Vec<Change>,
}

impl Plan {
    pub fn new(writes: Vec<TransactWriteItem>, change: Change) -> Plan {
        Plan {
            writes,
            changes: vec![change],
        }
    }
}

impl Store {
    /// The plan's writes with the feed's: the room's update (which every plan has)
    /// takes `last_seq` from what
    /// the plan read to the next number per change (conditioned on it), every member
    /// row the room keeps gets the same `last_seq` (in the plan's own write of the row
    /// when it has one), and each change becomes an event item.
    pub(crate) fn sequenced(
        &self,
        who: &Principal,
        room: &Room,
        plan: Plan,
        now: &str,
    ) -> Vec<TransactWriteItem> {
        let Plan { writes, changes } = plan;
        let last = room.last_seq + changes.len() as u64;
        let pk = keys::room_pk(&who.org, &room.id);
        let mut rows_written = HashSet::new();
        let mut out: Vec<TransactWriteItem> = writes
            .into_iter()
            .map(|write| match key_in(&write, &pk) {
                Some(keys::ROOM_SK) if write.update().is_some() => {
                    stamp_room(write, room.last_seq, last)
                }
                Some(sk) => match keys::member_of_sk(sk) {
                    Some(user) => {
                        rows_written.insert(user.to_owned());
                        stamp_row(write, last)
                    }
                    None => write,
                },
                None => write,
            })
            .collect();
        // A large room's rows are not stamped: its feed position is the room's.
        for member in room.members.iter().filter(|_| !room.large) {
            if rows_written.contains(member) {
                continue;
            }
            let update = Update::builder()
                .table_name(self.name())
                .key(keys::PK, s(&pk))
                .key(keys::SK, s(keys::member_sk_str(member)))
                .update_expression("SET last_seq = :lseq")
                .condition_expression("attribute_exists(PK)")
                .expression_attribute_values(":lseq", n(last))
                .build()
                .expect("update has key and expression");
            out.push(TransactWriteItem::builder().update(update).build());
        }
        let expires_at = crate::time::now().unix_timestamp() + FEED_RETENTION_SECS;
        for (i, change) in changes.into_iter().enumerate() {
            let event = Event {
                room_id: room.id.clone(),
                seq: room.last_seq + 1 + i as u64,
                kind: change.kind,
                at: now.to_owned(),
                actor_id: who.user.to_string(),
                staff_only: change.staff_only,
                to_tenant: room.room_type.open_to_tenant(),
                data: change.data,
                expires_at,
            };
            out.push(put(self.name(), event.item(&who.org), true));
        }
        out
    }

    /// The room's changes after `after`, oldest first, for who may read the room.
    /// Two requests, sent together: the room (access, `last_seq`) and the events.
    /// A `seq` whose successors have expired answers `410 cursor_expired`.
    pub async fn room_events(
        &self,
        who: &Principal,
        room_id: &RoomId,
        after: u64,
        limit: u32,
    ) -> ApiResult<EventPage> {
        self.room_feed(&who.org, room_id, after, limit, Some(who), |room| {
            room.visible_to(who)
        })
        .await
    }

    /// A room's changes after `after` for the tenant's own systems (a webhook
    /// replay): rooms open to the tenant only (others are `404`, as for its admins),
    /// notes included.
    pub async fn tenant_room_events(
        &self,
        org: &OrgId,
        room_id: &RoomId,
        after: u64,
        limit: u32,
    ) -> ApiResult<EventPage> {
        self.room_feed(org, room_id, after, limit, None, |room| {
            room.deleted_at.is_none() && room.room_type.open_to_tenant()
        })
        .await
    }

    async fn room_feed(
        &self,
        org: &OrgId,
        room_id: &RoomId,
        after: u64,
        limit: u32,
        viewer: Option<&Principal>,
        may_read: impl Fn(&Room) -> bool,
    ) -> ApiResult<EventPage> {
        let pk = keys::room_pk(org, room_id);
        let now = crate::time::now().unix_timestamp();
        let events = self.table.query("list events", None, |query| {
            query
                .key_condition_expression("PK = :pk AND SK BETWEEN :from AND :to")
                .set_expression_attribute_values(Some(values([
                    (":pk", s(&pk)),
                    (":from", s(keys::event_sk(after.saturating_add(1)))),
                    (
                        ":to",
                        s(keys::event_sk(after.saturating_add(u64::from(limit) + 1))),
                    ),
                ])))
                .consistent_read(true)
        });
        let (room, events) = tokio::join!(self.get_room(org, room_id), events);
        let room = match viewer {
            Some(who) => self.viewed(who, room?).await?,
            None => room?,
        };
        let room = room
            .filter(|r| may_read(r))
            .ok_or(ApiError::NotFound("conversation"))?;
        let (events, has_more) = numbered_page(
            events?
                .0
                .iter()
                .filter_map(Event::from_item)
                // Expired but not yet swept by TTL: gone as far as readers know.
                .filter(|e| e.expires_at > now)
                .collect(),
            |e| e.seq,
            after,
            room.last_seq,
            limit,
            "room",
        )?;
        Ok(EventPage {
            room,
            events,
            has_more,
        })
    }
}

/// A page of a densely numbered feed (a room's, a user's inbox) after `after`, from
/// the events read (up to `limit` + 1, oldest first) and the feed's last number: `after`
/// past the end is `422`; a successor that is no longer kept is `410 cursor_expired`
/// (the reader reloads `what`); and whether more follow.
pub(crate) fn numbered_page<T>(
    mut events: Vec<T>,
    seq: impl Fn(&T) -> u64,
    after: u64,
    last_seq: u64,
    limit: u32,
    what: &str,
) -> ApiResult<(Vec<T>, bool)> {
    if after > last_seq {
        return Err(ApiError::invalid(
            "after",
            format!("the {what}'s last seq is {last_seq}"),
        ));
    }
    if after < last_seq && events.first().is_none_or(|e| seq(e) != after + 1) {
        return Err(ApiError::Gone {
            code: "cursor_expired",
            message: format!(
                "changes after seq {after} are no longer kept; reload the {what} (last seq {last_seq})"
            ),
        });
    }
    let has_more = events.len() > limit as usize;
    events.truncate(limit as usize);
    Ok((events, has_more))
}

impl Store {
    /// The tenant's changes of every room after `after` (a cursor from the last page,
    /// or none for the retention's start), oldest first, up to the settle window.
    /// Ordered by time, not densely numbered: each event's room and `seq` let a
    /// reader detect a hole in a room and fill it from that room's feed.
    pub async fn tenant_events(
        &self,
        org: &OrgId,
        after: Option<&str>,
        limit: u32,
    ) -> ApiResult<TenantEvents> {
        let after = match after {
            Some(cursor) => tenant_cursor(cursor).ok_or(ApiError::InvalidCursor)?,
            None => String::new(),
        };
        self.tenant_events_after(org, &after, limit).await
    }

    /// The tenant's changes from `since` on (a time), as [`Self::tenant_events`].
    pub async fn tenant_events_since(
        &self,
        org: &OrgId,
        since: time::OffsetDateTime,
        limit: u32,
    ) -> ApiResult<TenantEvents> {
        self.tenant_events_after(org, &crate::time::format(since), limit)
            .await
    }

    /// After `after`: a feed sort key, or a time (then from that time on).
    async fn tenant_events_after(
        &self,
        org: &OrgId,
        after: &str,
        limit: u32,
    ) -> ApiResult<TenantEvents> {
        let now = crate::time::now();
        let until = crate::time::format(now - time::Duration::milliseconds(TENANT_FEED_SETTLE_MS));
        let (items, _) = self
            .table
            .query("tenant events", None, |query| {
                query
                    .index_name(keys::GSI1)
                    .key_condition_expression("#pk = :pk AND #sk BETWEEN :after AND :until")
                    .expression_attribute_names("#pk", keys::GSI1PK)
                    .expression_attribute_names("#sk", keys::GSI1SK)
                    .set_expression_attribute_values(Some(values([
                        (":pk", s(keys::tenant_feed_gsi1pk(org))),
                        (":after", s(format!("{after}\u{1}"))),
                        (":until", s(until.clone())),
                    ])))
                    .limit(limit as i32 + 1)
            })
            .await?;
        let unix = now.unix_timestamp();
        let mut events: Vec<(String, Event)> = items
            .iter()
            .filter_map(|i| Some((i.string(keys::GSI1SK)?, Event::from_item(i)?)))
            .collect();
        let full = events.len() > limit as usize;
        events.truncate(limit as usize);
        let next_after = full
            .then(|| events.last().map(|(sk, _)| encode_tenant_cursor(sk)))
            .flatten();
        Ok(TenantEvents {
            events: events
                .into_iter()
                .map(|(_, e)| e)
                // Indexed before events said whether the tenant receives them: not
                // received (the cursor above still moves past them).
                .filter(|e| e.expires_at > unix && e.to_tenant)
                .collect(),
            next_after,
        })
    }
}

fn encode_tenant_cursor(sk: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sk)
}

/// A tenant-feed cursor back to its sort key, if it is one of ours.
fn tenant_cursor(cursor: &str) -> Option<String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let sk = String::from_utf8(raw).ok()?;
    let mut parts = sk.split('#');
    let (at, room, seq) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none()
        && at.len() == 24
        && RoomId::parse(room).is_ok()
        && seq.len() == 12
        && seq.bytes().all(|b| b.is_ascii_digit()))
    .then_some(sk)
}

/// The sort key of the item this write touches, when it is in partition `pk`.
fn key_in<'a>(write: &'a TransactWriteItem, pk: &str) -> Option<&'a str> {
    let key = write
        .update()
        .map(|u| u.key())
        .or_else(|| write.delete().map(|d| d.key()))
        .or_else(|| write.put().map(|p| p.item()))?;
    if key
        .get(keys::PK)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        != Some(pk)
    {
        return None;
    }
    key.get(keys::SK)?.as_s().ok().map(String::as_str)
}

/// The room update, also moving `last_seq` from `seen` to `last`, on condition that
/// it is still `seen` (a room written before the feed has none: 0).
fn stamp_room(write: TransactWriteItem, seen: u64, last: u64) -> TransactWriteItem {
    let Some(update) = write.update() else {
        return write;
    };
    let condition = match update.condition_expression() {
        Some(c) => format!("({c}) AND "),
        None => String::new(),
    };
    let mut vals = update
        .expression_attribute_values()
        .cloned()
        .unwrap_or_default();
    vals.insert(":lseq".into(), n(last));
    vals.insert(":seen_seq".into(), n(seen));
    vals.insert(":zero_seq".into(), n(0));
    let rebuilt = rebuild(update, with_last_seq(update.update_expression()), vals)
        .condition_expression(format!(
            "{condition}(last_seq = :seen_seq OR (attribute_not_exists(last_seq) AND :seen_seq = :zero_seq))"
        ))
        .build()
        .expect("update has key and expression");
    TransactWriteItem::builder().update(rebuilt).build()
}

/// A member row's write, also setting `last_seq` (a new row is put with it).
fn stamp_row(write: TransactWriteItem, last: u64) -> TransactWriteItem {
    if let Some(update) = write.update() {
        let mut vals = update
            .expression_attribute_values()
            .cloned()
            .unwrap_or_default();
        vals.insert(":lseq".into(), n(last));
        let rebuilt = rebuild(update, with_last_seq(update.update_expression()), vals)
            .set_condition_expression(update.condition_expression().map(str::to_owned))
            .build()
            .expect("update has key and expression");
        return TransactWriteItem::builder().update(rebuilt).build();
    }
    if let Some(put) = write.put() {
        let mut item = put.item().clone();
        item.insert("last_seq".into(), n(last));
        let rebuilt = aws_sdk_dynamodb::types::Put::builder()
            .table_name(put.table_name())
            .set_item(Some(item))
            .set_condition_expression(put.condition_expression().map(str::to_owned))
            .set_expression_attribute_names(put.expression_attribute_names().cloned())
            .set_expression_attribute_values(put.expression_attribute_values().cloned())
            .set_return_values_on_condition_check_failure(
                put.return_values_on_condition_check_failure().cloned(),
            )
            .build()
            .expect("put has item");
        return TransactWriteItem::builder().put(rebuilt).build();
    }
    write
}

/// An update builder with the same key, names and failure return as `update`.
fn rebuild(
    update: &Update,
    expression: String,
    vals: std::collections::HashMap<String, AttributeValue>,
) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
    Update::builder()
        .table_name(update.table_name())
        .set_key(Some(update.key().clone()))
        .update_expression(expression)
        .set_expression_attribute_names(update.expression_attribute_names().cloned())
        .set_expression_attribute_values(Some(vals))
        .set_return_values_on_condition_check_failure(
            update.return_values_on_condition_check_failure().cloned(),
        )
}

/// `expression` also setting `last_seq = :lseq` (one SET clause per expression).
fn with_last_seq(expression: &str) -> String {
    let expression = expression.trim();
    if let Some(rest) = expression.strip_prefix("SET ") {
        return format!("SET last_seq = :lseq, {rest}");
    }
    match expression.find(" SET ") {
        Some(at) => format!(
            "{} SET last_seq = :lseq, {}",
            &expression[..at],
            &expression[at + 5..]
        ),
        None if expression.is_empty() => "SET last_seq = :lseq".to_owned(),
        None => format!("SET last_seq = :lseq {expression}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_seq_joins_the_one_set_clause_of_any_expression() {
        assert_eq!(
            with_last_seq("SET a = :a ADD b :one"),
            "SET last_seq = :lseq, a = :a ADD b :one"
        );
        assert_eq!(
            with_last_seq("ADD members :user"),
            "SET last_seq = :lseq ADD members :user"
        );
        assert_eq!(
            with_last_seq("ADD v :one SET a = :a"),
            "ADD v :one SET last_seq = :lseq, a = :a"
        );
        assert_eq!(with_last_seq(""), "SET last_seq = :lseq");
    }

    #[test]
    fn an_event_round_trips_and_a_note_is_only_a_number_to_customers() {
        let org = OrgId::parse("acme").unwrap();
        let note = Message {
            message_type: "note".into(),
            ..crate::model::tests::message()
        };
        let change = Change::message(EventKind::MessageNew, &note);
        assert!(change.staff_only);
        let event = Event {
            room_id: note.room_id.clone(),
            seq: 7,
            kind: change.kind,
            at: "t".into(),
            actor_id: "5".into(),
            staff_only: change.staff_only,
            to_tenant: true,
            data: change.data,
            expires_at: 99,
        };
        let item = event.item(&org);
        assert_eq!(item[keys::SK], s("E#000000000007"));
        assert_eq!(Event::from_item(&item), Some(event.clone()));
        let staff: serde_json::Value = serde_json::from_str(&event.json_for(true)).unwrap();
        assert_eq!(staff["type"], "message.new");
        assert_eq!(staff["data"]["content"], note.content);
        let customer: serde_json::Value = serde_json::from_str(&event.json_for(false)).unwrap();
        assert_eq!(
            customer,
            serde_json::json!({"type": "hidden", "seq": 7, "room_id": note.room_id})
        );
    }

    #[test]
    fn a_plan_numbers_its_changes_after_the_rooms_last_seq_and_stamps_every_row() {
        let store = crate::store::tests::offline_store();
        let who = crate::model::tests::principal("u-1", crate::ids::Role::Customer);
        let room = Room {
            last_seq: 4,
            ..crate::model::tests::room()
        };
        let user = UserId::parse("u-9").unwrap();
        let plan = Plan {
            writes: vec![store.room_update(
                &room,
                &who,
                "ADD member_version :one",
                values([(":one", n(1))]),
                &[],
            )],
            changes: vec![
                Change::member(EventKind::MemberAdded, &user, "added"),
                Change::room_updated(&SharedChanges::default()),
            ],
        };
        let writes = store.sequenced(&who, &room, plan, "now");
        let update = writes[0].update().unwrap();
        assert!(
            update
                .update_expression()
                .starts_with("SET last_seq = :lseq")
        );
        assert!(
            update
                .condition_expression()
                .unwrap()
                .contains("last_seq = :seen_seq")
        );
        let vals = update.expression_attribute_values().unwrap();
        assert_eq!((&vals[":lseq"], &vals[":seen_seq"]), (&n(6), &n(4)));
        let rows = writes.iter().filter(|w| {
            w.update()
                .is_some_and(|u| u.update_expression() == "SET last_seq = :lseq")
        });
        assert_eq!(rows.count(), room.members.len());
        let seqs: Vec<u64> = writes
            .iter()
            .filter_map(|w| w.put().and_then(|p| Event::from_item(p.item())))
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![5, 6]);
    }
}
