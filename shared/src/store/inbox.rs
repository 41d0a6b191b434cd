//! A user's inbox: their membership rows on GSI1, newest activity first.

use super::answer::Answer;
use crate::auth::Principal;
use crate::cursor::{self, Partition};
use crate::error::{ApiError, ApiResult};
use crate::ids::{MessageId, OrgId, RoomId, UserId};
use crate::item::{Item, ItemExt, n, s, values};
use crate::keys;
use crate::model::{InboxEntry, Room, RoomStatus};
use crate::policy::{self, Action};
use crate::store::{Page, Store, WriteError, rebuilds, storage_busy};
use crate::wire::Row;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};
use std::collections::HashMap;

/// The filter of an inbox Query (status, archived, pinned, assignee, unread), with its names and
/// values. The head item always passes, so the first page still carries the total.
fn inbox_filter(
    q: &InboxQuery<'_>,
    gsi1pk: &str,
) -> (
    Option<String>,
    Vec<(String, String)>,
    HashMap<String, AttributeValue>,
) {
    let mut filters = Vec::new();
    let mut vals = values([(":pk", s(gsi1pk))]);
    let mut names = vec![("#g1pk".to_owned(), keys::GSI1PK.to_owned())];
    if let Some(status) = q.status {
        filters.push("#status = :status");
        vals.insert(":status".into(), s(status.as_str()));
        names.push(("#status".to_owned(), "status".to_owned()));
    }
    if let Some(archived) = q.archived {
        filters.push("is_archived = :archived");
        vals.insert(":archived".into(), AttributeValue::Bool(archived));
    }
    if let Some(pinned) = q.pinned {
        filters.push("is_pinned = :pinned");
        vals.insert(":pinned".into(), AttributeValue::Bool(pinned));
    }
    if let Some(assignee) = q.assignee {
        filters.push("assignee_id = :assignee");
        vals.insert(":assignee".into(), s(assignee.as_str()));
    }
    if let Some(label) = q.label {
        filters.push("contains(labels, :label)");
        vals.insert(":label".into(), s(label));
    }
    if q.unread {
        // A large room's row is not counted along: its count is taken from the room.
        filters.push("unread_count > :none OR #large = :large");
        vals.insert(":none".into(), crate::item::n(0));
        vals.insert(":large".into(), AttributeValue::Bool(true));
        // LARGE is one of DynamoDB's reserved words.
        names.push(("#large".to_owned(), "large".to_owned()));
    }
    if filters.is_empty() {
        return (None, names, vals);
    }
    vals.insert(":head".into(), s(keys::entity::INBOX_HEAD));
    names.push(("#e".to_owned(), keys::ENTITY.to_owned()));
    // DynamoDB refuses redundant parentheses: a disjunction gets its own only beside
    // others.
    let joined = match filters.as_slice() {
        [only] => (*only).to_owned(),
        many => many
            .iter()
            .map(|f| match f.contains(" OR ") {
                true => format!("({f})"),
                false => (*f).to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" AND "),
    };
    let filter = format!("#e = :head OR ({joined})");
    (Some(filter), names, vals)
}

/// The inbox listing's name in its cursors.
const LISTING: &str = "list inbox";

pub struct InboxQuery<'a> {
    pub limit: u32,
    pub offset: u32,
    pub cursor: Option<&'a str>,
    pub status: Option<RoomStatus>,
    pub archived: Option<bool>,
    pub pinned: Option<bool>,
    /// Only conversations assigned to this user.
    pub assignee: Option<&'a UserId>,
    /// Only conversations with this label (small rooms' rows carry their labels).
    pub label: Option<&'a str>,
    /// Only conversations with messages the caller has not read.
    pub unread: bool,
    /// Every row with its room's latest message and SLA due times (one BatchGetItem
    /// of the page's rooms).
    pub with_summary: bool,
}

pub struct Inbox {
    pub entries: Page<InboxEntry>,
    /// Conversations in the inbox, from its head item as the first page read it.
    pub total: Option<u64>,
}

impl Store {
    /// One page of the caller's inbox, newest activity first: one Query on GSI1.
    pub async fn list_inbox(
        &self,
        org: &OrgId,
        user: &UserId,
        q: InboxQuery<'_>,
    ) -> ApiResult<Inbox> {
        let gsi1pk = keys::inbox_gsi1pk(org, user);
        // Inbox cursors are this listing's own (GET /rooms reads the same partition)
        // and carry the total the first page read from the head item.
        let resumed = q
            .cursor
            .map(|raw| {
                cursor::decode_tagged(raw, LISTING, Partition::gsi1(&gsi1pk), cursor::GSI1_KEYS)
            })
            .transpose()?;
        let first_page = resumed.is_none();
        let (start, mut total) = match resumed {
            Some(c) => (Some(c.key), c.total),
            None => (None, None),
        };
        let (filter, names, vals) = inbox_filter(&q, &gsi1pk);
        let (found, last_key) = self
            .table
            .query(LISTING, start, |query| {
                query
                    .index_name(keys::GSI1)
                    .key_condition_expression("#g1pk = :pk")
                    .set_expression_attribute_names(Some(names.into_iter().collect()))
                    .scan_index_forward(false)
                    // The head on the first page, and one row more than the page shows.
                    .limit((q.offset + q.limit + u32::from(first_page) + 1) as i32)
                    .set_filter_expression(filter)
                    .set_expression_attribute_values(Some(vals))
            })
            .await?;
        let mut entries = Vec::new();
        for item in found {
            if item.str(keys::ENTITY) == Some(keys::entity::INBOX_HEAD) {
                total = Some(item.num::<i64>("conversation_count").unwrap_or(0).max(0) as u64);
            } else {
                entries.push(item);
            }
        }
        if first_page && total.is_none() {
            total = Some(0);
        }
        let rows: Vec<Item> = entries.into_iter().skip(q.offset as usize).collect();
        let (rows, next) = super::table::probed_page(rows, q.limit as usize, last_key, |row| {
            cursor::key_of(row, cursor::GSI1_KEYS)
        });
        let mut items: Vec<InboxEntry> = rows.iter().filter_map(InboxEntry::from_item).collect();
        self.complete_rows(org, &mut items, q.with_summary).await?;
        if q.unread {
            // A large room's row passed the filter on its flag; its count is known now.
            items.retain(|e| e.membership.unread_count > 0);
        }
        Ok(Inbox {
            entries: Page {
                items,
                next_cursor: next.map(|key| cursor::encode_tagged(LISTING, &key, total)),
            },
            total,
        })
    }
}

/// The most a badge counts exactly: past it, a phone shows this many (its pages read
/// at most this many conversations with unread messages).
pub const MAX_BADGE: u64 = 999;

impl Store {
    /// The person's unread messages over their whole inbox, a phone's badge: the
    /// inbox's unread-only pages (one Query each, plus one BatchGetItem for a page with
    /// large rooms) until done or past [`MAX_BADGE`]. The index is eventually
    /// consistent: the room just written to is counted as `known` says, not as read.
    pub async fn unread_total(
        &self,
        org: &OrgId,
        user: &UserId,
        known: Option<(&RoomId, u64)>,
    ) -> ApiResult<u64> {
        let mut total = known.map_or(0, |(_, unread)| unread);
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .list_inbox(
                    org,
                    user,
                    InboxQuery {
                        limit: 100,
                        offset: 0,
                        cursor: cursor.as_deref(),
                        status: None,
                        archived: None,
                        pinned: None,
                        assignee: None,
                        label: None,
                        unread: true,
                        with_summary: false,
                    },
                )
                .await?;
            total += page
                .entries
                .items
                .iter()
                .filter(|e| known.is_none_or(|(room, _)| e.room_id != room.as_str()))
                .map(|e| e.membership.unread_count)
                .sum::<u64>();
            match page.entries.next_cursor {
                Some(next) if total < MAX_BADGE => cursor = Some(next),
                _ => return Ok(total.min(MAX_BADGE)),
            }
        }
    }

    /// Large rooms' rows on a page completed from their rooms, and with `summaries`
    /// every row given its room's latest message and SLA (one BatchGetItem; a page
    /// that needs no room makes none). A row whose room is gone is dropped.
    pub(crate) async fn complete_rows(
        &self,
        org: &OrgId,
        entries: &mut Vec<InboxEntry>,
        summaries: bool,
    ) -> ApiResult<()> {
        let wanted: Vec<(String, String)> = entries
            .iter()
            .filter(|e| e.large || summaries)
            .filter_map(|e| RoomId::parse(&e.room_id).ok())
            .map(|room| (keys::room_pk(org, &room), keys::ROOM_SK.to_owned()))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let rooms: HashMap<String, Room> = self
            .batch_get(&wanted, "large rooms of a page")
            .await?
            .items()?
            .iter()
            .filter_map(Room::from_item)
            .filter(|r| r.deleted_at.is_none())
            .map(|r| (r.id.to_string(), r))
            .collect();
        entries.retain_mut(|entry| match rooms.get(&entry.room_id) {
            Some(room) => {
                if entry.large {
                    entry.with_room(room);
                }
                if summaries {
                    entry.with_summary(room);
                }
                true
            }
            None => !entry.large,
        });
        Ok(())
    }

    /// Whether `user` and `other` are members of one room: `user`'s inbox rows carry
    /// their room's member list, read until one names `other`.
    pub async fn shares_a_room(
        &self,
        org: &OrgId,
        user: &UserId,
        other: &UserId,
    ) -> ApiResult<bool> {
        let gsi1pk = keys::inbox_gsi1pk(org, user);
        let mut start = None;
        loop {
            let (found, next) = self
                .table
                .query("shares a room", start, |query| {
                    query
                        .index_name(keys::GSI1)
                        .key_condition_expression("#g1pk = :pk AND begins_with(#g1sk, :rows)")
                        .filter_expression("contains(members, :other)")
                        .expression_attribute_names("#g1pk", keys::GSI1PK)
                        .expression_attribute_names("#g1sk", keys::GSI1SK)
                        .expression_attribute_values(":pk", s(&gsi1pk))
                        .expression_attribute_values(":rows", s(keys::INBOX_ENTRY_PREFIX))
                        .expression_attribute_values(":other", s(other.as_str()))
                        .projection_expression("room_id")
                })
                .await?;
            if !found.is_empty() {
                return Ok(true);
            }
            match next {
                Some(key) => start = Some(key),
                None => return Ok(false),
            }
        }
    }

    pub(crate) fn inbox_head_change(
        &self,
        org: &OrgId,
        user: &str,
        delta: i64,
    ) -> TransactWriteItem {
        let user = UserId::parse(user).expect("validated member id");
        let update = Update::builder()
            .table_name(self.name())
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

    /// Moves the caller's read marker to `upto` (default: the latest message) and
    /// sets their unread count to the exact number of later public messages from
    /// others. Counted from positions ([`Self::read_by_position`]: one BatchGetItem,
    /// whatever the unread count) where they are exact, else from the messages after
    /// the marker. The write is conditioned on the room's message count being the one
    /// counted, so a message arriving meanwhile makes it count again.
    pub async fn mark_read(
        &self,
        who: &Principal,
        room_id: &RoomId,
        upto: Option<&MessageId>,
    ) -> ApiResult<(String, u64)> {
        for attempt in rebuilds() {
            attempt.pause().await;
            let read = match self.read_by_position(who, room_id, upto).await? {
                Positioned::Exact(read) => *read,
                Positioned::Count { member } => {
                    let pages = self.read_window(who, room_id, upto).await?;
                    let window = window_rows(who, upto, &pages)?;
                    ReadMarker::from_window(who, upto, &window, member)?
                }
            };
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

    /// The read marker from the room's public-message count (`total_messages`), the
    /// marker message's `pos` and the caller's row, in one BatchGetItem: later public
    /// messages are `total − pos`, of which none are the caller's when their own
    /// latest (`own_pos`, moved by each of their posts) is not after the marker —
    /// sending reads the room up to one's own message. `None` when that is not known
    /// exactly (a message or row from before positions, or a marker moved back before
    /// one's own message): the caller counts the messages instead.
    async fn read_by_position(
        &self,
        who: &Principal,
        room_id: &RoomId,
        upto: Option<&MessageId>,
    ) -> ApiResult<Positioned> {
        let pk = keys::room_pk(&who.org, room_id);
        let mut wanted = vec![
            (pk.clone(), keys::ROOM_SK.to_owned()),
            (pk.clone(), keys::member_sk(&who.user)),
        ];
        if let Some(id) = upto {
            wanted.push((pk.clone(), keys::message_sk(id)));
        }
        let items = self.batch_get(&wanted, "read marker").await?.items()?;
        let of = |entity: &str| items.iter().find(|i| i.str(keys::ENTITY) == Some(entity));
        let member = of(keys::entity::MEMBER).is_some();
        let room = of(keys::entity::ROOM)
            .and_then(Room::from_item)
            .map(|mut r| {
                r.viewer = member.then(|| who.user.to_string());
                r
            })
            .filter(|r| r.visible_to(who))
            .ok_or(ApiError::NotFound("conversation"))?;
        policy::require(Action::OwnView, who, policy::relation_to(who, &room))?;
        let total = room.total_messages;
        let Some(id) = upto else {
            // The newest message the caller may see: the latest public one, or for
            // staff a later note (ids sort by time).
            let public = room.last_message.as_ref().map(|m| m.message_id.clone());
            let note = room.last_note_id.clone().filter(|_| who.role.is_staff());
            let marker = public.into_iter().chain(note).max().unwrap_or_default();
            return Ok(Positioned::Exact(Box::new(ReadMarker {
                room,
                marker,
                unread: 0,
                total,
            })));
        };
        // Customers cannot even address internal notes: a note's id is a missing id.
        let message = of(keys::entity::MESSAGE)
            .and_then(crate::model::Message::from_item)
            .filter(|m| who.role.is_staff() || !m.is_note())
            .ok_or(ApiError::NotFound("message"))?;
        let own_pos = of(keys::entity::MEMBER).and_then(|row| row.num::<u64>("own_pos"));
        Ok(match (message.pos, own_pos) {
            (Some(pos), Some(own)) if own <= pos => Positioned::Exact(Box::new(ReadMarker {
                room,
                marker: id.to_string(),
                unread: total.saturating_sub(pos),
                total,
            })),
            _ => Positioned::Count { member },
        })
    }

    /// The Query pages a read marker is computed from ([`window_rows`] reads them).
    /// With a marker: from it to the room item (the later messages, then the room).
    /// Without: newest first, until the newest message the caller can see (by id,
    /// which is the list order; the last *committed* may be older).
    async fn read_window(
        &self,
        who: &Principal,
        room_id: &RoomId,
        upto: Option<&MessageId>,
    ) -> ApiResult<Vec<Answer>> {
        let pk = keys::room_pk(&who.org, room_id);
        let (lower, forward, limit) = match upto {
            Some(id) => (keys::message_sk(id), true, None),
            None => (keys::MESSAGE_SK_PREFIX.to_owned(), false, Some(10)),
        };
        let mut pages = Vec::new();
        let mut start = None;
        loop {
            let answer = self
                .table
                .query_answer("count unread", start, |query| {
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
            // With a marker every row is read once, by `window_rows`; here only where
            // the next page starts. Without one (pages of 10), stop at the newest
            // message the caller can see.
            let seen = !forward && answer.page()?.rows.iter().any(|r| visible(who, r));
            start = answer.last_key()?;
            let done = seen || start.is_none();
            pages.push(answer);
            if done {
                return Ok(pages);
            }
        }
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
        // The row's count is taken at the room's: a large room counts on from there.
        // `read_at`: whoever read lately and is connected is looking (not notified).
        let mut set = vec![
            "unread_count = :unread",
            "total_messages = :total",
            "read_at = :now",
        ];
        let mut vals = values([
            (":unread", n(read.unread)),
            (":total", n(read.total)),
            (":now", s(crate::time::now_string())),
        ]);
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

/// A message the caller may be shown (customers never get a note's id).
fn visible(who: &Principal, row: &impl ItemExt) -> bool {
    row.str(keys::ENTITY) == Some(keys::entity::MESSAGE)
        && (who.role.is_staff() || row.str("message_type") != Some("note"))
}

/// The read window's rows in ascending order with the room item last: with a marker,
/// all of them; without, the newest message the caller can see and the room item.
fn window_rows<'a>(
    who: &Principal,
    upto: Option<&MessageId>,
    pages: &'a [Answer],
) -> ApiResult<Vec<Row<'a>>> {
    let mut rows = Vec::new();
    for page in pages {
        rows.extend(page.page()?.rows);
    }
    if upto.is_some() {
        return Ok(rows);
    }
    let meta = rows
        .first()
        .filter(|r| r.str(keys::SK) == Some(keys::ROOM_SK))
        .cloned();
    let newest = rows.iter().find(|r| visible(who, *r)).cloned();
    Ok(newest.into_iter().chain(meta).collect())
}

/// What [`Store::read_by_position`] found: the marker, or that the messages must be
/// counted (and whether the caller has a member row).
enum Positioned {
    Exact(Box<ReadMarker>),
    Count { member: bool },
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
        window: &[impl ItemExt],
        member: bool,
    ) -> ApiResult<ReadMarker> {
        let (room_item, window) = match window.split_last() {
            Some((last, rest)) if last.str(keys::SK) == Some(keys::ROOM_SK) => (Some(last), rest),
            _ => (None, window),
        };
        let room = room_item
            .and_then(room_summary)
            .map(|mut r| {
                r.viewer = member.then(|| who.user.to_string());
                r
            })
            .filter(|r| r.visible_to(who))
            .ok_or(ApiError::NotFound("conversation"))?;
        policy::require(Action::OwnView, who, policy::relation_to(who, &room))?;
        let first = window.first();
        // Customers cannot even address internal notes: a note's id is a missing id.
        let addressable =
            first.is_some_and(|i| who.role.is_staff() || i.str("message_type") != Some("note"));
        let first_id = first.and_then(|i| i.string("message_id"));
        let marker = match upto {
            Some(id) if !addressable || first_id.as_deref() != Some(id.as_str()) => {
                return Err(ApiError::NotFound("message"));
            }
            _ => first_id.unwrap_or_default(),
        };
        let unread = window
            .iter()
            .skip(1)
            .filter(|i| {
                i.str("sender_id") != Some(who.user.as_str())
                    && i.str("message_type") != Some("note")
            })
            .count() as u64;
        let total = room_item.and_then(|i| i.num("total_messages")).unwrap_or(0);
        Ok(ReadMarker {
            room,
            marker,
            unread,
            total,
        })
    }
}

/// The access-relevant part of a room from a projected item.
fn room_summary(item: &impl ItemExt) -> Option<Room> {
    let mut full = item.to_item();
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
    use crate::ids::{OrgId, Role};
    use crate::item::ItemBuilder;
    use crate::model::tests::room;

    fn who(user: &str, role: Role) -> Principal {
        crate::model::tests::principal(user, role)
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
        let read = ReadMarker::from_window(&customer, Some(&upto), &window, true).unwrap();
        assert_eq!((read.marker.as_str(), read.unread), (upto.as_str(), 1));
        assert_eq!(read.total, 3);
        let elsewhere = MessageId::from_parts(9, 0);
        let err = ReadMarker::from_window(&customer, Some(&elsewhere), &window, true).unwrap_err();
        assert_eq!(err.status(), 404);
        let note = MessageId::from_parts(4, 0);
        let err = ReadMarker::from_window(&customer, Some(&note), &window[3..], true).unwrap_err();
        assert_eq!(err.status(), 404, "a customer cannot read up to a note");
        let agent = who("5", Role::Agent);
        let read = ReadMarker::from_window(&agent, Some(&note), &window[3..], true).unwrap();
        assert_eq!(read.marker, note.as_str());
        let outsider = who("u-9", Role::Customer);
        let err = ReadMarker::from_window(&outsider, Some(&upto), &window, true).unwrap_err();
        assert_eq!(err.status(), 404, "a room one cannot see is not found");
    }
}
