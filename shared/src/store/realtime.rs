//! What the WebSocket API keeps: single-use tickets, connections, and each
//! connection's subscriptions to rooms.
//!
//! | item         | PK                          | SK              |
//! |--------------|-----------------------------|-----------------|
//! | ticket       | T#{org}#TICKET#{secret}     | TICKET          |
//! | connection   | CONN#{connection id}        | CONN            |
//! | subscription | T#{org}#R#{room}            | S#{connection}  |
//! | user's connection | T#{org}#USER#{user}    | C#{connection}  |
//!
//! A connection is keyed by API Gateway's connection id alone: a socket message names
//! nothing else (the one partition not led by a tenant). Subscriptions live in the
//! room's partition right after the room item, so one Query gives a delivery both the
//! room as it is now (who may read it) and who listens.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, Role, RoomId, UserId};
use crate::item::{Item, ItemBuilder, ItemExt, n, s, values};
use crate::keys;
use crate::model::Room;
use crate::store::inbox_feed::user_connection_item;
use crate::store::{Store, WriteError, put, put_of};
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use base64::Engine;

/// A ticket is good for this long after it is issued, and once.
pub const TICKET_TTL_SECS: i64 = 60;
/// API Gateway closes a WebSocket connection after two hours at most; its item
/// expires then too.
pub const CONNECTION_TTL_SECS: i64 = 2 * 3600;
/// Rooms one connection follows at most.
pub const MAX_SUBSCRIPTIONS: usize = 100;
/// One `typing` per connection and room in this window; more are dropped.
pub const TYPING_INTERVAL_MS: i64 = 2000;
/// How much earlier than the interval a `typing` is still taken: a client that sends
/// one every interval has them arrive a little closer together now and then (network
/// jitter), and dropping that one would hide typing that goes on.
pub const TYPING_JITTER_MS: i64 = 300;

/// A connection as `$connect` accepted it.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub id: String,
    pub who: Principal,
    pub connected_at: String,
    pub expires_at: i64,
    /// Rooms it follows.
    pub rooms: Vec<String>,
}

/// One connection following one room.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub connection_id: String,
    pub who: Principal,
    pub expires_at: i64,
}

/// The room as it is now, and who follows it: what a delivery decides on.
#[derive(Debug)]
pub struct Audience {
    pub room: Option<Room>,
    pub subscriptions: Vec<Subscription>,
}

impl Subscription {
    fn from_item(item: &Item, org: &OrgId) -> Option<Subscription> {
        Some(Subscription {
            connection_id: item.string("connection_id")?,
            who: Principal {
                user: UserId::parse(item.str("user_id")?).ok()?,
                org: org.clone(),
                role: Role::parse(item.str("role")?)?,
            },
            expires_at: item.num(keys::TTL)?,
        })
    }
}

fn principal_of(item: &Item) -> Option<Principal> {
    Some(Principal {
        user: UserId::parse(item.str("user_id")?).ok()?,
        org: OrgId::parse(item.str("org")?).ok()?,
        role: Role::parse(item.str("role")?)?,
    })
}

fn connection_key(id: &str) -> (String, String) {
    (format!("CONN#{id}"), "CONN".to_owned())
}

fn subscription_sk(connection: &str) -> String {
    format!("S#{connection}")
}

/// The ticket's tenant and secret: `{org}.{secret}`.
fn ticket_key(ticket: &str) -> Option<(String, String)> {
    let (org, secret) = ticket.split_once('.')?;
    let org = OrgId::parse(org).ok()?;
    let valid = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then(|| (format!("T#{org}#TICKET#{secret}"), "TICKET".to_owned()))
}

fn unix_now() -> i64 {
    crate::time::now().unix_timestamp()
}

impl Store {
    /// A new single-use ticket for the caller, good for [`TICKET_TTL_SECS`], and
    /// when it expires.
    pub async fn issue_ticket(&self, who: &Principal) -> ApiResult<(String, String)> {
        let secret =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let ticket = format!("{}.{secret}", who.org);
        let (pk, sk) = ticket_key(&ticket).expect("a ticket we made parses");
        let expires = crate::time::now() + time::Duration::seconds(TICKET_TTL_SECS);
        let expires_at = expires.unix_timestamp();
        let item = ItemBuilder::new()
            .str(keys::PK, pk)
            .str(keys::SK, sk)
            .str(keys::ENTITY, "ticket")
            .str("org", who.org.as_str())
            .str("user_id", who.user.as_str())
            .str("role", who.role.as_str())
            .num(keys::TTL, expires_at)
            .build();
        self.table
            .put(put_of(self.name(), item, true), "issue ticket")
            .await
            .map_err(WriteError::into_api)?;
        Ok((ticket, crate::time::format(expires)))
    }

    /// Redeems a ticket: whose it was, if it exists and has not expired. It is deleted
    /// by the same request, so a second use finds nothing.
    pub async fn redeem_ticket(&self, ticket: &str) -> ApiResult<Option<Principal>> {
        let Some((pk, sk)) = ticket_key(ticket) else {
            return Ok(None);
        };
        let delete = Delete::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .condition_expression("attribute_exists(PK) AND expires_at > :now")
            .expression_attribute_values(":now", n(unix_now()))
            .build()
            .expect("delete has key");
        match self.table.delete(delete, "redeem ticket").await {
            Ok(old) => Ok(old.as_ref().and_then(principal_of)),
            Err(WriteError::ConditionFailed(_)) => Ok(None),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// Records an accepted connection.
    pub async fn open_connection(&self, id: &str, who: &Principal) -> ApiResult<Connection> {
        let (pk, sk) = connection_key(id);
        let connection = Connection {
            id: id.to_owned(),
            who: who.clone(),
            connected_at: crate::time::now_string(),
            expires_at: unix_now() + CONNECTION_TTL_SECS,
            rooms: Vec::new(),
        };
        let item = ItemBuilder::new()
            .str(keys::PK, pk)
            .str(keys::SK, sk)
            .str(keys::ENTITY, "connection")
            .str("connection_id", id)
            .str("org", who.org.as_str())
            .str("user_id", who.user.as_str())
            .str("role", who.role.as_str())
            .str("connected_at", &connection.connected_at)
            .num(keys::TTL, connection.expires_at)
            .build();
        // Listed under its user too: the inbox feed reaches every connection of theirs.
        let listed = user_connection_item(&who.org, &who.user, id, connection.expires_at);
        let writes = vec![
            put(self.name(), item, false),
            put(self.name(), listed, false),
        ];
        self.table
            .transact(writes, "open connection")
            .await
            .map_err(WriteError::into_api)?;
        // An agent away is back (their availability's clock; not the connection's
        // business to fail for).
        if let Err(err) = self.agent_connected(who).await {
            tracing::warn!(%err, "agent presence not updated on connect");
        }
        Ok(connection)
    }

    /// The connection, unless unknown or expired (TTL sweeps lag; reads do not).
    pub async fn connection(&self, id: &str) -> ApiResult<Option<Connection>> {
        let item = self.table.get(connection_key(id), "get connection").await?;
        Ok(item.and_then(|item| {
            let expires_at: i64 = item.num(keys::TTL)?;
            (expires_at > unix_now()).then_some(())?;
            Some(Connection {
                id: id.to_owned(),
                who: principal_of(&item)?,
                connected_at: item.string("connected_at").unwrap_or_default(),
                expires_at,
                rooms: item.string_set("rooms"),
            })
        }))
    }

    /// Forgets a connection and its subscriptions (on `$disconnect`, or when API
    /// Gateway says it is gone).
    pub async fn close_connection(&self, id: &str) -> ApiResult<()> {
        let Some(connection) = self.connection(id).await? else {
            return Ok(());
        };
        let (pk, sk) = connection_key(id);
        let who = &connection.who;
        let mut deletes = vec![
            delete_of(self.name(), pk, sk),
            delete_of(
                self.name(),
                keys::user_pk(&who.org, &who.user),
                keys::user_connection_sk(id),
            ),
        ];
        for room in &connection.rooms {
            if let Ok(room) = RoomId::parse(room) {
                deletes.push(delete_of(
                    self.name(),
                    keys::room_pk(&connection.who.org, &room),
                    subscription_sk(id),
                ));
            }
        }
        // At most 2 + MAX_SUBSCRIPTIONS deletes, 100 per transaction.
        for chunk in deletes.chunks(100) {
            self.table
                .transact(chunk.to_vec(), "close connection")
                .await
                .map_err(WriteError::into_api)?;
        }
        // An online agent's last connection: the away clock starts.
        if let Err(err) = self.agent_disconnected(who).await {
            tracing::warn!(%err, "agent presence not updated on disconnect");
        }
        Ok(())
    }

    /// Follows a room the connection's user may read (checked here), until the
    /// connection ends. Answers the room. The limit on rooms followed is the condition
    /// of the write that adds the room, so a burst of subscribes cannot pass it.
    pub async fn subscribe(&self, connection: &Connection, room_id: &RoomId) -> ApiResult<Room> {
        let who = &connection.who;
        let room = self.visible_room(who, room_id).await?;
        let subscription = ItemBuilder::new()
            .str(keys::PK, keys::room_pk(&who.org, room_id))
            .str(keys::SK, subscription_sk(&connection.id))
            .str(keys::ENTITY, "subscription")
            .str("connection_id", &connection.id)
            .str("user_id", who.user.as_str())
            .str("role", who.role.as_str())
            .num(keys::TTL, connection.expires_at)
            .build();
        let (pk, sk) = connection_key(&connection.id);
        let follow = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression("ADD rooms :room")
            .condition_expression(
                "attribute_exists(PK) AND (attribute_not_exists(rooms) OR size(rooms) < :max OR contains(rooms, :id))",
            )
            .expression_attribute_values(":room", AttributeValue::Ss(vec![room_id.to_string()]))
            .expression_attribute_values(":id", s(room_id.as_str()))
            .expression_attribute_values(":max", n(MAX_SUBSCRIPTIONS as i64))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("update has key and expression");
        let writes = vec![
            put(self.name(), subscription, false),
            TransactWriteItem::builder().update(follow).build(),
        ];
        match self.table.transact(writes, "subscribe").await {
            Ok(()) => Ok(room),
            Err(WriteError::ConditionFailed(c)) if c.old_item(1).is_some() => {
                Err(ApiError::Conflict {
                    code: "too_many_subscriptions",
                    message: format!("a connection follows at most {MAX_SUBSCRIPTIONS} rooms"),
                })
            }
            Err(WriteError::ConditionFailed(_)) => Err(ApiError::Unauthenticated(
                "the connection has ended; connect again".into(),
            )),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// Stops following a room.
    pub async fn unsubscribe(&self, connection: &Connection, room_id: &RoomId) -> ApiResult<()> {
        let (pk, sk) = connection_key(&connection.id);
        let unfollow = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression("DELETE rooms :room")
            .expression_attribute_values(":room", AttributeValue::Ss(vec![room_id.to_string()]))
            .build()
            .expect("update has key and expression");
        let writes = vec![
            delete_of(
                self.name(),
                keys::room_pk(&connection.who.org, room_id),
                subscription_sk(&connection.id),
            ),
            TransactWriteItem::builder().update(unfollow).build(),
        ];
        self.table
            .transact(writes, "unsubscribe")
            .await
            .map_err(WriteError::into_api)
    }

    /// Drops one connection's subscription to a room (it may no longer read it, or
    /// API Gateway says the connection is gone).
    pub async fn drop_subscription(
        &self,
        org: &OrgId,
        room_id: &RoomId,
        connection: &str,
    ) -> ApiResult<()> {
        let writes = vec![delete_of(
            self.name(),
            keys::room_pk(org, room_id),
            subscription_sk(connection),
        )];
        self.table
            .transact(writes, "drop subscription")
            .await
            .map_err(WriteError::into_api)
    }

    /// The room as it is now and its live subscriptions, in one consistent Query
    /// (`META` sorts just before `S#…`).
    pub async fn audience(&self, org: &OrgId, room_id: &RoomId) -> ApiResult<Audience> {
        let pk = keys::room_pk(org, room_id);
        let items = self
            .table
            .query_all("room audience", |query| {
                query
                    .key_condition_expression("PK = :pk AND SK BETWEEN :meta AND :subs")
                    .set_expression_attribute_values(Some(values([
                        (":pk", s(&pk)),
                        (":meta", s(keys::ROOM_SK)),
                        // Just past every `S#…` key ('$' follows '#').
                        (":subs", s("S$")),
                    ])))
                    .consistent_read(true)
            })
            .await?;
        let now = unix_now();
        Ok(Audience {
            room: items.iter().find_map(Room::from_item),
            subscriptions: items
                .iter()
                .filter(|i| i.str(keys::ENTITY) == Some("subscription"))
                .filter_map(|i| Subscription::from_item(i, org))
                .filter(|s| s.expires_at > now)
                .collect(),
        })
    }

    /// Whether this connection may send a `typing` to the room now: at most one per
    /// [`TYPING_INTERVAL_MS`], and only while it follows the room.
    pub async fn may_type(&self, connection: &Connection, room_id: &RoomId) -> ApiResult<bool> {
        let now_ms = crate::time::now_millis();
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::room_pk(&connection.who.org, room_id)))
            .key(keys::SK, s(subscription_sk(&connection.id)))
            .update_expression("SET typing_at = :now")
            .condition_expression(
                "attribute_exists(PK) AND (attribute_not_exists(typing_at) OR typing_at < :cutoff)",
            )
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(
                ":cutoff",
                n(now_ms - TYPING_INTERVAL_MS + TYPING_JITTER_MS),
            )
            .build()
            .expect("update has key and expression");
        match self.table.update(update, None, "typing").await {
            Ok(_) => Ok(true),
            Err(WriteError::ConditionFailed(_)) => Ok(false),
            Err(WriteError::Api(err)) => Err(err),
        }
    }
}

fn delete_of(table: &str, pk: String, sk: String) -> TransactWriteItem {
    let delete = Delete::builder()
        .table_name(table)
        .key(keys::PK, s(pk))
        .key(keys::SK, s(sk))
        .build()
        .expect("delete has key");
    TransactWriteItem::builder().delete(delete).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_names_its_tenant_and_nothing_else_parses() {
        let secret = "a".repeat(43);
        assert_eq!(
            ticket_key(&format!("acme.{secret}")),
            Some((format!("T#acme#TICKET#{secret}"), "TICKET".into()))
        );
        assert_eq!(ticket_key(&format!("acme#x.{secret}")), None);
        assert_eq!(ticket_key("acme.short"), None);
        assert_eq!(ticket_key(&format!("acme.{}", "a".repeat(42) + "!")), None);
        assert_eq!(ticket_key(&secret), None);
    }

    #[test]
    fn subscriptions_sort_between_the_room_and_its_members() {
        let sub = subscription_sk("L0SM9cOFvHcCIhw=");
        assert!(keys::ROOM_SK < sub.as_str() && sub.as_str() < "S$");
        assert!("S$" < keys::member_sk_str("0").as_str());
        assert!("S$" < keys::stats_sk("2026-01-01").as_str());
    }
}
