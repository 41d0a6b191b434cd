//! A user's inbox feed: what happens to their own inbox reaches every connection of
//! theirs without subscribing to a room (docs/realtime.md, "The inbox feed").
//!
//! - Joining and leaving rooms (a member row inserted or removed: added, created with
//!   the room, removed, left, the room deleted) are **numbered per user**, densely,
//!   like a room's changes, so a reconnecting client asks for what came after the last
//!   number it applied. The fan-out writes them from the table's stream, once per
//!   change: the number, the event and the record that the change was taken commit in
//!   one transaction.
//! - A row that moved (a message arrived, unread count, status, read marker) is a
//!   state, not a change: sent live as `inbox.updated`, not numbered, since the next
//!   one supersedes it and a reconnecting client reloads the rows it shows. Numbering
//!   it would add a write per member to every post.
//!
//! A user's connections are listed in their partition (`C#{connection}`, written with
//! the connection), just before the feed's head, so one Query reads both.

use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, UserId};
use crate::item::{Item, ItemBuilder, ItemExt, n, s, values};
use crate::keys;
use crate::store::feed::numbered_page;
use crate::store::{FEED_RETENTION_SECS, Store, WriteError, put};
use aws_sdk_dynamodb::types::{
    Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde_json::{Value, json};

/// Attempts at taking the next number when other changes of the same user take it
/// first (each lost race is another change's commit).
const APPEND_ATTEMPTS: u32 = 16;

/// What happened to a user's inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxEventKind {
    /// A room is in the inbox now (added, or created with it).
    Added,
    /// A room left the inbox (removed, left, or deleted).
    Removed,
}

impl InboxEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InboxEventKind::Added => "inbox.added",
            InboxEventKind::Removed => "inbox.removed",
        }
    }

    fn parse(name: &str) -> Option<InboxEventKind> {
        [InboxEventKind::Added, InboxEventKind::Removed]
            .into_iter()
            .find(|k| k.as_str() == name)
    }

    fn short(self) -> &'static str {
        match self {
            InboxEventKind::Added => "added",
            InboxEventKind::Removed => "removed",
        }
    }
}

/// One numbered change of a user's inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxEvent {
    pub seq: u64,
    pub kind: InboxEventKind,
    pub room_id: String,
    pub at: String,
    /// JSON text: the row as the inbox shows it (added), or its ids (removed).
    pub data: String,
    pub expires_at: i64,
}

impl InboxEvent {
    fn item(&self, org: &OrgId, user: &UserId) -> Item {
        ItemBuilder::new()
            .str(keys::PK, keys::user_pk(org, user))
            .str(keys::SK, keys::inbox_event_sk(self.seq))
            .str(keys::ENTITY, keys::entity::INBOX_EVENT)
            .num("seq", self.seq)
            .str("type", self.kind.as_str())
            .str("room_id", &self.room_id)
            .str("at", &self.at)
            .str("data", &self.data)
            .num(keys::TTL, self.expires_at)
            .build()
    }

    fn from_item(item: &impl ItemExt) -> Option<InboxEvent> {
        (item.str(keys::ENTITY) == Some(keys::entity::INBOX_EVENT)).then_some(())?;
        Some(InboxEvent {
            seq: item.num("seq")?,
            kind: InboxEventKind::parse(item.str("type")?)?,
            room_id: item.string("room_id")?,
            at: item.string("at").unwrap_or_default(),
            data: item.string("data").unwrap_or_else(|| "{}".into()),
            expires_at: item.num(keys::TTL).unwrap_or(i64::MAX),
        })
    }

    /// The frame a connection gets. `inbox_seq`, not `seq`: a room's numbers and the
    /// inbox's are different sequences.
    pub fn frame(&self) -> Value {
        json!({
            "type": self.kind.as_str(),
            "inbox_seq": self.seq,
            "room_id": self.room_id,
            "at": self.at,
            "data": serde_json::from_str::<Value>(&self.data).unwrap_or(Value::Null),
        })
    }
}

/// One change to number: a member row inserted or removed.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxChange {
    pub kind: InboxEventKind,
    pub room_id: String,
    /// The row's `joined_at`: with the room and kind, it names the change, so the same
    /// stream record handled twice is taken once (a member added again later has a
    /// new one).
    pub joined_at: String,
    pub data: Value,
}

/// A user's live connections and their inbox feed's last number.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct InboxListeners {
    pub connections: Vec<String>,
    pub last_seq: u64,
}

/// The user's inbox feed after a number.
#[derive(Debug)]
pub struct InboxEventPage {
    pub events: Vec<InboxEvent>,
    pub last_seq: u64,
    pub has_more: bool,
}

fn unix_now() -> i64 {
    crate::time::now().unix_timestamp()
}

impl Store {
    /// The user's live connections and the feed's last number, in one Query (`C#…`
    /// sorts just before `FEED`). Eventually consistent, at half the price: it is read
    /// for every member of a small room per post, a connection opened a moment ago
    /// catches up by itself (`sync_inbox`), and a stale number only makes the append's
    /// condition fail and answer the head as it is.
    pub async fn inbox_listeners(&self, org: &OrgId, user: &UserId) -> ApiResult<InboxListeners> {
        let pk = keys::user_pk(org, user);
        let items = self
            .table
            .query_all("inbox listeners", |query| {
                query
                    .key_condition_expression("PK = :pk AND SK BETWEEN :from AND :head")
                    .set_expression_attribute_values(Some(values([
                        (":pk", s(&pk)),
                        (":from", s(keys::USER_CONNECTION_PREFIX)),
                        (":head", s(keys::INBOX_FEED_SK)),
                    ])))
            })
            .await?;
        let now = unix_now();
        let mut listeners = InboxListeners::default();
        for item in &items {
            match item.str(keys::ENTITY) {
                Some(keys::entity::USER_CONNECTION)
                    if item.num::<i64>(keys::TTL).is_some_and(|at| at > now) =>
                {
                    listeners.connections.extend(item.string("connection_id"));
                }
                Some(keys::entity::INBOX_FEED) => {
                    listeners.last_seq = item.num("last_seq").unwrap_or(0);
                }
                _ => {}
            }
        }
        Ok(listeners)
    }

    /// Numbers `change` in the user's inbox feed — once: a change already taken
    /// answers the event it was given then (so a retried delivery sends it again).
    /// `known` is what the caller last read of the feed, if anything.
    pub async fn append_inbox_event(
        &self,
        org: &OrgId,
        user: &UserId,
        change: &InboxChange,
        known: Option<u64>,
    ) -> ApiResult<InboxEvent> {
        let mut last_seq = match known {
            Some(seq) => seq,
            None => self.inbox_listeners(org, user).await?.last_seq,
        };
        let taken_key = (
            keys::user_pk(org, user),
            keys::inbox_change_sk(&change.room_id, change.kind.short(), &change.joined_at),
        );
        for _ in 0..APPEND_ATTEMPTS {
            let event = InboxEvent {
                seq: last_seq + 1,
                kind: change.kind,
                room_id: change.room_id.clone(),
                at: crate::time::now_string(),
                data: change.data.to_string(),
                expires_at: unix_now() + FEED_RETENTION_SECS,
            };
            let writes = self.append_writes(org, user, &event, last_seq, &taken_key);
            match self.table.transact(writes, "inbox feed").await {
                Ok(()) => return Ok(event),
                Err(WriteError::ConditionFailed(c)) if c.failed(2) => {
                    // Taken before: the event it got then.
                    let seq = c.old_item(2).and_then(|i| i.num::<u64>("seq"));
                    let Some(seq) = seq else {
                        return Err(ApiError::internal(
                            "inbox feed",
                            "a taken change without seq",
                        ));
                    };
                    let item = self
                        .table
                        .get(
                            (keys::user_pk(org, user), keys::inbox_event_sk(seq)),
                            "inbox event",
                        )
                        .await?;
                    return item
                        .as_ref()
                        .and_then(InboxEvent::from_item)
                        .ok_or_else(|| {
                            ApiError::internal("inbox feed", "a taken change's event is gone")
                        });
                }
                Err(WriteError::ConditionFailed(c)) => {
                    // Another change took the number: go on from the head as it is now.
                    last_seq = c
                        .old_item(0)
                        .and_then(|i| i.num("last_seq"))
                        .unwrap_or(last_seq + 1);
                }
                Err(WriteError::Api(err)) => return Err(err),
            }
        }
        Err(crate::store::storage_busy())
    }

    /// The head moved from `last_seq` to the next number, the event, and the record
    /// that the change was taken (kept as long as the event).
    fn append_writes(
        &self,
        org: &OrgId,
        user: &UserId,
        event: &InboxEvent,
        last_seq: u64,
        (taken_pk, taken_sk): &(String, String),
    ) -> Vec<TransactWriteItem> {
        let head = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::user_pk(org, user)))
            .key(keys::SK, s(keys::INBOX_FEED_SK))
            .update_expression("SET last_seq = :next, #e = :entity")
            .condition_expression(if last_seq == 0 {
                "attribute_not_exists(last_seq) OR last_seq = :last"
            } else {
                "last_seq = :last"
            })
            .expression_attribute_names("#e", keys::ENTITY)
            .expression_attribute_values(":next", n(event.seq))
            .expression_attribute_values(":last", n(last_seq))
            .expression_attribute_values(":entity", s(keys::entity::INBOX_FEED))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("update has key and expression");
        let taken = Put::builder()
            .table_name(self.name())
            .item(keys::PK, s(taken_pk))
            .item(keys::SK, s(taken_sk))
            .item(keys::ENTITY, s(keys::entity::INBOX_CHANGE))
            .item("seq", n(event.seq))
            .item(keys::TTL, n(event.expires_at))
            .condition_expression("attribute_not_exists(PK)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("put has item");
        vec![
            TransactWriteItem::builder().update(head).build(),
            put(self.name(), event.item(org, user), true),
            TransactWriteItem::builder().put(taken).build(),
        ]
    }

    /// The inbox feed's last number (0 before its first change).
    pub async fn inbox_feed_head(&self, org: &OrgId, user: &UserId) -> ApiResult<u64> {
        let head = (keys::user_pk(org, user), keys::INBOX_FEED_SK.to_owned());
        let head = self.table.get(head, "inbox feed head").await?;
        Ok(head.and_then(|h| h.num("last_seq")).unwrap_or(0))
    }

    /// The caller's inbox feed after `after`, oldest first: two requests sent
    /// together (the head, the events). `after` past the last number is `422`; one
    /// whose successor has expired is `410 cursor_expired` (reload the inbox).
    pub async fn inbox_events(
        &self,
        org: &OrgId,
        user: &UserId,
        after: u64,
        limit: u32,
    ) -> ApiResult<InboxEventPage> {
        let pk = keys::user_pk(org, user);
        let events = self.table.query("inbox events", None, |query| {
            query
                .key_condition_expression("PK = :pk AND SK BETWEEN :from AND :to")
                .set_expression_attribute_values(Some(values([
                    (":pk", s(&pk)),
                    (":from", s(keys::inbox_event_sk(after.saturating_add(1)))),
                    (
                        ":to",
                        s(keys::inbox_event_sk(
                            after.saturating_add(u64::from(limit) + 1),
                        )),
                    ),
                ])))
                .consistent_read(true)
        });
        let (last_seq, events) = tokio::join!(self.inbox_feed_head(org, user), events);
        let last_seq = last_seq?;
        let now = unix_now();
        let (events, has_more) = numbered_page(
            events?
                .0
                .iter()
                .filter_map(InboxEvent::from_item)
                .filter(|e| e.expires_at > now)
                .collect(),
            |e| e.seq,
            after,
            last_seq,
            limit,
            "inbox",
        )?;
        Ok(InboxEventPage {
            events,
            last_seq,
            has_more,
        })
    }
}

/// The item that lists a connection under its user (written with the connection).
pub(crate) fn user_connection_item(
    org: &OrgId,
    user: &UserId,
    connection: &str,
    expires_at: i64,
) -> Item {
    ItemBuilder::new()
        .str(keys::PK, keys::user_pk(org, user))
        .str(keys::SK, keys::user_connection_sk(connection))
        .str(keys::ENTITY, keys::entity::USER_CONNECTION)
        .str("connection_id", connection)
        .num(keys::TTL, expires_at)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (OrgId, UserId) {
        (OrgId::parse("acme").unwrap(), UserId::parse("u-1").unwrap())
    }

    #[test]
    fn connections_sort_before_the_head_and_events_and_taken_changes_after_it() {
        let head = keys::INBOX_FEED_SK;
        let connection = keys::user_connection_sk("L0SM9cOFvHcCIhw=");
        assert!(keys::USER_CONNECTION_PREFIX < connection.as_str() && connection.as_str() < head);
        let event = keys::inbox_event_sk(1);
        let taken = keys::inbox_change_sk("01J", "added", "2026-12-04T08:00:00Z");
        assert!(head < event.as_str() && head < taken.as_str());
        // Neither the inbox head nor the profile falls between connections and head.
        for other in [keys::INBOX_HEAD_SK, keys::PROFILE_SK] {
            assert!(other > head, "{other}");
        }
        assert!(keys::inbox_event_sk(9) < keys::inbox_event_sk(10));
    }

    #[test]
    fn an_append_moves_the_head_from_the_number_it_read_and_takes_the_change_once() {
        let (org, user) = ids();
        let store = crate::store::tests::offline_store();
        let event = InboxEvent {
            seq: 4,
            kind: InboxEventKind::Added,
            room_id: "01J".into(),
            at: "2026-12-04T08:00:00Z".into(),
            data: "{}".into(),
            expires_at: 1,
        };
        let taken = (keys::user_pk(&org, &user), "FEED~01J#added#t".to_owned());
        let writes = store.append_writes(&org, &user, &event, 3, &taken);
        let head = writes[0].update().unwrap();
        assert_eq!(head.condition_expression(), Some("last_seq = :last"));
        assert_eq!(head.expression_attribute_values().unwrap()[":last"], n(3));
        let put_event = writes[1].put().unwrap();
        assert_eq!(InboxEvent::from_item(put_event.item()), Some(event.clone()));
        let taken = writes[2].put().unwrap();
        assert_eq!(
            taken.condition_expression(),
            Some("attribute_not_exists(PK)")
        );
        let first = store.append_writes(
            &org,
            &user,
            &InboxEvent { seq: 1, ..event },
            0,
            &taken_key(),
        );
        assert!(
            first[0]
                .update()
                .unwrap()
                .condition_expression()
                .unwrap()
                .starts_with("attribute_not_exists(last_seq)")
        );
    }

    fn taken_key() -> (String, String) {
        ("T#acme#USER#u-1".into(), "FEED~01J#added#t".into())
    }

    #[test]
    fn a_frame_carries_its_inbox_number_not_a_room_seq() {
        let event = InboxEvent {
            seq: 7,
            kind: InboxEventKind::Removed,
            room_id: "01J".into(),
            at: "t".into(),
            data: r#"{"id":"01J"}"#.into(),
            expires_at: 1,
        };
        let frame = event.frame();
        assert_eq!(frame["type"], "inbox.removed");
        assert_eq!(frame["inbox_seq"], 7);
        assert!(frame.get("seq").is_none());
        assert_eq!(frame["data"]["id"], "01J");
    }
}
