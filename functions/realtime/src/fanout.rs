//! The fan-out: consumes the table's stream (filtered to feed events and member rows)
//! and posts each change to the connections that follow its room and may read it —
//! decided on the room as it is at delivery, so a removed member stops receiving at
//! once. A room's connections are posted to concurrently, at most
//! [`FANOUT_CONCURRENCY`] at a time, each its frames in `seq` order; a connection that
//! keeps failing is left to catch up from the feed (as after any gap) and never holds
//! back the others. Only a room whose every connection failed (the gateway itself)
//! fails its records in the partial batch response, so the stream retries them; a
//! gone connection is forgotten and never fails the batch.
//!
//! Member rows also feed each member's inbox feed (`chat_core::store::InboxEvent`):
//! a row inserted or removed is numbered in the user's feed and sent to all their
//! connections; a row that moved is sent to them as `inbox.updated`.

use crate::gateway::{Delivery, Gateway};
use chat_core::ApiError;
use chat_core::ids::{OrgId, RoomId, UserId};
use chat_core::item::ItemExt;
use chat_core::keys;
use chat_core::model::{InboxEntry, Room};
use chat_core::store::{Event, EventKind, InboxChange, InboxEventKind, Store, Subscription};
use chat_core::wire::item_of;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Connections of one room posted to at once. API Gateway's Management API takes many
/// concurrent posts; the bound keeps a room of thousands from opening thousands of
/// connections at once, and the function's memory flat.
pub const FANOUT_CONCURRENCY: usize = 64;
/// Attempts of one post before its connection is left to catch up from the feed.
const POST_ATTEMPTS: u32 = 3;

/// How delivering a room's changes to one connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// The client went away; its connection is forgotten.
    Gone,
    Failed,
}

pub struct Fanout {
    store: Store,
    gateway: Gateway,
}

/// What one stream record asks to deliver.
#[derive(Debug, Clone, PartialEq)]
enum Work {
    Change(Event),
    /// A member's read marker moved: to their own other devices.
    Read {
        user: String,
        last_read_message_id: String,
        unread_count: u64,
    },
}

/// What one stream record asks of a user's inbox feed.
#[derive(Debug, Clone, PartialEq)]
enum InboxWork {
    /// A room came or went: numbered, then sent.
    Numbered(InboxChange),
    /// The row as the inbox shows it now: sent, not numbered.
    Row { room_id: String, row: Value },
}

/// Where one stream record goes: a room's followers, or one user's connections.
#[derive(Debug, Clone, PartialEq)]
enum Routed {
    Room {
        org: String,
        room: String,
        work: Work,
    },
    User {
        org: String,
        user: String,
        work: InboxWork,
    },
}

impl Fanout {
    pub fn new(store: Store, gateway: Gateway) -> Fanout {
        Fanout { store, gateway }
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// One batch of stream records (Lambda's DynamoDB event); answers the partial
    /// batch response (`batchItemFailures`).
    pub async fn handle(&self, batch: Value) -> Value {
        let records = batch["Records"].as_array().cloned().unwrap_or_default();
        // Per room, in stream order; rooms are independent of each other.
        let mut rooms: BTreeMap<(String, String), Vec<(String, Work)>> = BTreeMap::new();
        // Per user, in stream order.
        let mut users: BTreeMap<(String, String), Vec<(String, InboxWork)>> = BTreeMap::new();
        for record in &records {
            let sequence = record["dynamodb"]["SequenceNumber"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            for routed in work_of(record) {
                match routed {
                    Routed::Room { org, room, work } => {
                        rooms
                            .entry((org, room))
                            .or_default()
                            .push((sequence.clone(), work));
                    }
                    Routed::User { org, user, work } => {
                        users
                            .entry((org, user))
                            .or_default()
                            .push((sequence.clone(), work));
                    }
                }
            }
        }
        let mut failures = Vec::new();
        for ((org, room), works) in rooms {
            let first = works[0].0.clone();
            if let Err(err) = self.deliver(&org, &room, works).await {
                tracing::error!(org, room, %err, "delivery failed; the batch is retried from this room's first record");
                failures.push(json!({ "itemIdentifier": first }));
            }
        }
        // Users are independent of each other: their feeds are written concurrently.
        let users: Vec<_> = futures_util::stream::iter(users)
            .map(|((org, user), works)| async move {
                let first = works[0].0.clone();
                let outcome = self.deliver_inbox(&org, &user, works).await;
                (org, user, first, outcome)
            })
            .buffer_unordered(FANOUT_CONCURRENCY)
            .collect()
            .await;
        for (org, user, first, outcome) in users {
            if let Err(err) = outcome {
                tracing::error!(org, user, %err, "inbox feed failed; the batch is retried from this user's first record");
                failures.push(json!({ "itemIdentifier": first }));
            }
        }
        json!({ "batchItemFailures": failures })
    }

    async fn deliver(
        &self,
        org: &str,
        room: &str,
        mut works: Vec<(String, Work)>,
    ) -> Result<(), ApiError> {
        let (Ok(org), Ok(room_id)) = (OrgId::parse(org), RoomId::parse(room)) else {
            return Ok(());
        };
        works.sort_by_key(|(_, w)| match w {
            Work::Change(e) => e.seq,
            Work::Read { .. } => u64::MAX,
        });
        let audience = self.store.audience(&org, &room_id).await?;
        let room = audience.room.as_ref();
        // Owned subscriptions: a borrowed item would make the stream's future depend on
        // a lifetime of any caller, which a `Send` future cannot.
        let (org, room_id, works) = (&org, &room_id, &works);
        let outcomes: Vec<Outcome> = futures_util::stream::iter(audience.subscriptions.clone())
            .map(|subscription| async move {
                self.deliver_to(org, room_id, room, &subscription, works)
                    .await
            })
            .buffer_unordered(FANOUT_CONCURRENCY)
            .collect()
            .await;
        let failed = outcomes.iter().filter(|o| **o == Outcome::Failed).count();
        if failed > 0 && failed == outcomes.len() {
            return Err(ApiError::internal(
                "fan-out",
                format!("no connection of the room took its changes ({failed})"),
            ));
        }
        if failed > 0 {
            tracing::warn!(
                org = %org,
                room = %room_id,
                failed,
                delivered = outcomes.len() - failed,
                "some connections missed changes; they catch up from the feed"
            );
        }
        Ok(())
    }

    /// Posts `works` to one connection, in order; forgets it when gone, and stops its
    /// subscription when it may no longer read the room.
    async fn deliver_to(
        &self,
        org: &OrgId,
        room_id: &RoomId,
        room: Option<&Room>,
        subscription: &Subscription,
        works: &[(String, Work)],
    ) -> Outcome {
        let connection = &subscription.connection_id;
        for (_, work) in works {
            let Some(frame) = frame_for(room, subscription, work) else {
                continue;
            };
            // In a large room the subscription is the membership: once its user is
            // told of their removal, it ends.
            let removed = room.is_some_and(|r| r.large)
                && matches!(work, Work::Change(e) if e.kind == EventKind::MemberRemoved
                    && removed_user(e).as_deref() == Some(subscription.who.user.as_str()));
            match self.post(connection, &frame).await {
                Ok(Delivery::Sent) if removed => {
                    if let Err(err) = self.store.drop_subscription(org, room_id, connection).await {
                        tracing::warn!(connection, %err, "dropping a subscription failed");
                        return Outcome::Failed;
                    }
                    return Outcome::Delivered;
                }
                Ok(Delivery::Sent) => {}
                Ok(Delivery::Gone) => {
                    if let Err(err) = self.store.close_connection(connection).await {
                        tracing::warn!(connection, %err, "forgetting a gone connection failed");
                    }
                    return Outcome::Gone;
                }
                Err(err) => {
                    tracing::warn!(connection, %err, "posting to a connection failed");
                    return Outcome::Failed;
                }
            }
        }
        // Whoever may no longer read the room stops following it.
        if !room.is_some_and(|r| r.reaches(&subscription.who))
            && let Err(err) = self.store.drop_subscription(org, room_id, connection).await
        {
            tracing::warn!(connection, %err, "dropping a subscription failed");
            return Outcome::Failed;
        }
        Outcome::Delivered
    }

    /// Numbers a user's inbox changes and sends them, with their rows that moved, to
    /// every connection of theirs. A connection that fails is left to catch up
    /// (`sync_inbox`); only a failure to number fails the records.
    async fn deliver_inbox(
        &self,
        org: &str,
        user: &str,
        works: Vec<(String, InboxWork)>,
    ) -> Result<(), ApiError> {
        let (Ok(org), Ok(user)) = (OrgId::parse(org), UserId::parse(user)) else {
            return Ok(());
        };
        let listeners = self.store.inbox_listeners(&org, &user).await?;
        let mut known = Some(listeners.last_seq);
        let mut frames = Vec::new();
        for (_, work) in works {
            match work {
                InboxWork::Numbered(change) => {
                    let event = self
                        .store
                        .append_inbox_event(&org, &user, &change, known)
                        .await?;
                    known = known.map(|k| k.max(event.seq));
                    frames.push(event.frame().to_string());
                }
                InboxWork::Row { room_id, row } => frames.push(
                    json!({ "type": "inbox.updated", "room_id": room_id, "data": row }).to_string(),
                ),
            }
        }
        let frames = &frames;
        futures_util::stream::iter(listeners.connections)
            .for_each_concurrent(FANOUT_CONCURRENCY, |connection| async move {
                for frame in frames {
                    match self.post(&connection, frame).await {
                        Ok(Delivery::Sent) => {}
                        Ok(Delivery::Gone) => {
                            if let Err(err) = self.store.close_connection(&connection).await {
                                tracing::warn!(connection, %err, "forgetting a gone connection failed");
                            }
                            return;
                        }
                        Err(err) => {
                            tracing::warn!(connection, %err, "posting inbox changes failed; it catches up");
                            return;
                        }
                    }
                }
            })
            .await;
        Ok(())
    }

    /// One post, tried again briefly when the gateway fails (throttling, 5xx).
    async fn post(&self, connection: &str, frame: &str) -> Result<Delivery, ApiError> {
        let mut attempt = 1;
        loop {
            match self.gateway.post(connection, frame).await {
                Err(_) if attempt < POST_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                    attempt += 1;
                }
                answer => return answer,
            }
        }
    }
}

/// The frame `subscription` gets for `work`, if any, decided on the room as it is now.
fn frame_for(room: Option<&Room>, subscription: &Subscription, work: &Work) -> Option<String> {
    let who = &subscription.who;
    match work {
        Work::Change(event) => {
            let may_read = room.is_some_and(|r| r.reaches(who));
            let told_anyway = match event.kind {
                // Its members learn that it went (the room now reads as deleted).
                EventKind::RoomDeleted => {
                    room.is_some_and(|r| r.large || r.is_member(who.user.as_str()))
                }
                // Whoever was removed learns it, once.
                EventKind::MemberRemoved => {
                    removed_user(event).as_deref() == Some(who.user.as_str())
                }
                _ => false,
            };
            (may_read || told_anyway).then(|| event.json_for(who.role.is_staff()))
        }
        Work::Read {
            user,
            last_read_message_id,
            unread_count,
        } => (who.user.as_str() == user && room.is_some_and(|r| r.reaches(who))).then(|| {
            json!({
                "type": "read",
                "room_id": room.map(|r| &r.id),
                "user_id": user,
                "last_read_message_id": last_read_message_id,
                "unread_count": unread_count,
            })
            .to_string()
        }),
    }
}

fn removed_user(event: &Event) -> Option<String> {
    let data: Value = serde_json::from_str(&event.data).ok()?;
    data.get("user_id")?.as_str().map(str::to_owned)
}

/// Where one stream record goes and what it asks: a feed event to its room; a member
/// row to its user's inbox feed (and, when the read marker moved, to the room).
fn work_of(record: &Value) -> Vec<Routed> {
    let image = |name: &str| item_of(&record["dynamodb"][name]);
    let (new, old) = (image("NewImage"), image("OldImage"));
    let Some(kind) = record["eventName"].as_str() else {
        return Vec::new();
    };
    let entity = |item: &Option<chat_core::item::Item>| {
        item.as_ref()
            .and_then(|i| i.string(keys::ENTITY))
            .unwrap_or_default()
    };
    match (kind, entity(&new).as_str(), entity(&old).as_str()) {
        ("INSERT", keys::entity::EVENT, _) => new
            .as_ref()
            .and_then(|new| {
                let event = Event::from_item(new)?;
                Some(vec![Routed::Room {
                    org: new.string("org")?,
                    room: event.room_id.to_string(),
                    work: Work::Change(event),
                }])
            })
            .unwrap_or_default(),
        ("INSERT", keys::entity::MEMBER, _) => new
            .as_ref()
            .and_then(|row| numbered(row, InboxEventKind::Added))
            .into_iter()
            .collect(),
        ("REMOVE", _, keys::entity::MEMBER) => old
            .as_ref()
            .and_then(|row| numbered(row, InboxEventKind::Removed))
            .into_iter()
            .collect(),
        ("MODIFY", keys::entity::MEMBER, _) => {
            let (Some(new), old) = (new, old.unwrap_or_default()) else {
                return Vec::new();
            };
            moved_row(&new, &old)
        }
        _ => Vec::new(),
    }
}

/// The tenant of an item in a tenant's partition.
fn org_of(item: &chat_core::item::Item) -> Option<String> {
    let pk = item.str(keys::PK)?;
    Some(pk.strip_prefix("T#")?.split('#').next()?.to_owned())
}

/// A member row inserted or removed: a numbered change of its user's inbox.
fn numbered(row: &chat_core::item::Item, kind: InboxEventKind) -> Option<Routed> {
    let entry = InboxEntry::from_item(row)?;
    let data = match kind {
        InboxEventKind::Added => serde_json::to_value(entry.view()).ok()?,
        InboxEventKind::Removed => json!({ "id": entry.room_id, "conversation_id": entry.room_id }),
    };
    Some(Routed::User {
        org: org_of(row)?,
        user: entry.membership.user_id.clone(),
        work: InboxWork::Numbered(InboxChange {
            kind,
            room_id: entry.room_id.clone(),
            joined_at: entry.membership.joined_at.clone(),
            data,
        }),
    })
}

/// A member row that changed: its new state to its user's connections when what the
/// inbox shows moved, and a `read` to the room's followers when the marker moved.
fn moved_row(new: &chat_core::item::Item, old: &chat_core::item::Item) -> Vec<Routed> {
    let (Some(org), Some(entry)) = (org_of(new), InboxEntry::from_item(new)) else {
        return Vec::new();
    };
    let mut routed = Vec::new();
    let shown = serde_json::to_value(entry.view()).unwrap_or(Value::Null);
    let shown_before = InboxEntry::from_item(old).map(|e| serde_json::to_value(e.view()).ok());
    if shown_before != Some(Some(shown.clone())) {
        routed.push(Routed::User {
            org: org.clone(),
            user: entry.membership.user_id.clone(),
            work: InboxWork::Row {
                room_id: entry.room_id.clone(),
                row: shown,
            },
        });
    }
    let marker = entry.membership.last_read_message_id.clone();
    if let Some(marker) = marker
        && old.str("last_read_message_id") != Some(marker.as_str())
    {
        routed.push(Routed::Room {
            org,
            room: entry.room_id.clone(),
            work: Work::Read {
                user: entry.membership.user_id.clone(),
                last_read_message_id: marker,
                unread_count: entry.membership.unread_count,
            },
        });
    }
    routed
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::Principal;
    use chat_core::ids::{Role, UserId};

    fn record(name: &str, new: Value, old: Value) -> Value {
        json!({"eventName": name, "dynamodb": {"NewImage": new, "OldImage": old, "SequenceNumber": "1"}})
    }

    fn event_image(kind: &str, staff_only: bool, data: &str) -> Value {
        json!({
            "PK": {"S": "T#acme#R#01HZX3K7Q8R9S0T1V2W3X4Y5Z6"}, "SK": {"S": "E#000000000003"},
            "entity": {"S": "event"}, "org": {"S": "acme"}, "room_id": {"S": "01HZX3K7Q8R9S0T1V2W3X4Y5Z6"},
            "seq": {"N": "3"}, "type": {"S": kind}, "at": {"S": "t"}, "actor_id": {"S": "a-1"},
            "staff_only": {"BOOL": staff_only}, "data": {"S": data}, "expires_at": {"N": "99"}
        })
    }

    fn subscriber(user: &str, role: Role) -> Subscription {
        Subscription {
            connection_id: format!("c-{user}"),
            who: Principal {
                user: UserId::parse(user).unwrap(),
                org: OrgId::parse("acme").unwrap(),
                role,
            },
            expires_at: i64::MAX,
        }
    }

    fn support_room(members: &[&str]) -> Room {
        Room::open(
            RoomId::parse("01HZX3K7Q8R9S0T1V2W3X4Y5Z6").unwrap(),
            chat_core::model::RoomType::Support,
            "Help".into(),
            members[0].into(),
            members.iter().map(|m| m.to_string()).collect(),
            "t".into(),
        )
    }

    fn row(marker: &str, unread: u64) -> Value {
        json!({"PK": {"S": "T#acme#R#01HZX3K7Q8R9S0T1V2W3X4Y5Z6"}, "SK": {"S": "U#u-1"},
               "entity": {"S": "member"}, "room_id": {"S": "01HZX3K7Q8R9S0T1V2W3X4Y5Z6"},
               "user_id": {"S": "u-1"}, "last_read_message_id": {"S": marker},
               "joined_at": {"S": "2026-12-04T08:00:00Z"},
               "unread_count": {"N": unread.to_string()}, "members": {"SS": ["u-1", "a-1"]}})
    }

    #[test]
    fn a_stream_record_becomes_a_change_a_read_marker_an_inbox_change_or_nothing() {
        let routed = work_of(&record(
            "INSERT",
            event_image("message.new", false, "{}"),
            Value::Null,
        ));
        assert!(
            matches!(&routed[..], [Routed::Room { org, room, work: Work::Change(e) }]
            if org == "acme" && room == "01HZX3K7Q8R9S0T1V2W3X4Y5Z6" && e.seq == 3)
        );

        // The marker moved: the room's followers get `read`, the user's connections
        // the row.
        let moved = work_of(&record("MODIFY", row("m2", 0), row("m1", 1)));
        assert!(moved.iter().any(|r| matches!(r,
            Routed::Room { work: Work::Read { user, .. }, .. } if user == "u-1")));
        assert!(moved.iter().any(|r| matches!(r,
            Routed::User { user, work: InboxWork::Row { row, .. }, .. }
                if user == "u-1" && row["unread_count"] == 0)));
        // A message arrived: the row only.
        let counted = work_of(&record("MODIFY", row("m1", 2), row("m1", 1)));
        assert!(matches!(
            &counted[..],
            [Routed::User {
                work: InboxWork::Row { .. },
                ..
            }]
        ));
        assert_eq!(
            work_of(&record("MODIFY", row("m1", 1), row("m1", 1))),
            vec![],
            "nothing the inbox shows moved"
        );

        // Joining and leaving are numbered changes, named by room, kind and join time.
        let joined = work_of(&record("INSERT", row("m1", 0), Value::Null));
        assert!(
            matches!(&joined[..], [Routed::User { org, user, work: InboxWork::Numbered(c) }]
            if org == "acme" && user == "u-1" && c.kind == InboxEventKind::Added
                && c.joined_at == "2026-12-04T08:00:00Z" && c.data["id"] == "01HZX3K7Q8R9S0T1V2W3X4Y5Z6")
        );
        let left = work_of(&record("REMOVE", Value::Null, row("m1", 0)));
        assert!(
            matches!(&left[..], [Routed::User { work: InboxWork::Numbered(c), .. }]
            if c.kind == InboxEventKind::Removed)
        );
        assert_eq!(
            work_of(&record(
                "REMOVE",
                Value::Null,
                event_image("message.new", false, "{}")
            )),
            vec![]
        );
    }

    #[test]
    fn delivery_is_decided_on_the_room_now_and_notes_are_numbers_to_customers() {
        let note = Event::from_item(
            &item_of(&event_image("message.new", true, r#"{"content":"secret"}"#)).unwrap(),
        )
        .unwrap();
        let room = support_room(&["u-1", "a-1"]);
        let customer = subscriber("u-1", Role::Customer);
        let agent = subscriber("a-1", Role::Agent);
        let stranger = subscriber("u-9", Role::Customer);
        let work = Work::Change(note);
        assert!(
            frame_for(Some(&room), &agent, &work)
                .unwrap()
                .contains("secret")
        );
        let theirs = frame_for(Some(&room), &customer, &work).unwrap();
        assert!(theirs.contains("hidden") && !theirs.contains("secret"));
        assert_eq!(frame_for(Some(&room), &stranger, &work), None);
        let removed = Event::from_item(
            &item_of(&event_image(
                "member.removed",
                false,
                r#"{"user_id":"u-9","reason":"removed"}"#,
            ))
            .unwrap(),
        )
        .unwrap();
        assert!(
            frame_for(Some(&room), &stranger, &Work::Change(removed)).is_some(),
            "the removed user learns it"
        );
        assert_eq!(
            frame_for(None, &customer, &work),
            None,
            "a room that is gone"
        );
    }
}
