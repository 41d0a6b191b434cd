//! The WebSocket API's routes, as API Gateway invokes them: `$connect` (with a
//! ticket), `$disconnect`, and the actions a client sends as `{"action": …}` —
//! `subscribe`, `unsubscribe`, `resume`, `sync_inbox`, `typing`, `ping`. An action's answer is the
//! route response API Gateway sends back on the socket.

use crate::gateway::{Delivery, Gateway};
use chat_core::ApiError;
use chat_core::ids::{RoomId, path_id};
use chat_core::store::{Connection, MAX_EVENTS_PAGE, Store};
use lambda_http::aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use serde::Deserialize;
use serde_json::{Value, json};

/// A reply frame stays under API Gateway's 128 KB: events past this size wait for the
/// next `resume` (or a REST page).
pub const MAX_REPLY_BYTES: usize = 100 * 1024;

/// What a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Action {
    /// Follow a room; with `after`, also the changes since then.
    Subscribe {
        room_id: String,
        after: Option<u64>,
    },
    Unsubscribe {
        room_id: String,
    },
    /// The changes of a followed room after `after`.
    Resume {
        room_id: String,
        after: u64,
    },
    /// Where the caller's inbox feed stands; with `after`, also its changes since.
    SyncInbox {
        after: Option<u64>,
    },
    /// The caller is typing in a room: the room's other followers are told.
    Typing {
        room_id: String,
    },
    Ping,
}

pub struct Socket {
    store: Store,
    gateway: Gateway,
}

impl Socket {
    pub fn new(store: Store, gateway: Gateway) -> Socket {
        Socket { store, gateway }
    }

    /// One invocation of the WebSocket API's integration: a Lambda proxy response
    /// (`statusCode`, and the reply frame as `body` for actions).
    pub async fn handle(&self, event: ApiGatewayWebsocketProxyRequest) -> Value {
        let context = &event.request_context;
        let connection = context.connection_id.clone().unwrap_or_default();
        match context.route_key.as_deref().unwrap_or("$default") {
            "$connect" => {
                let ticket = event.query_string_parameters.first("ticket");
                let status = match self.connect(&connection, ticket).await {
                    Ok(()) => 200,
                    Err(err) => err.status().as_u16(),
                };
                json!({ "statusCode": status })
            }
            "$disconnect" => {
                if let Err(err) = self.store.close_connection(&connection).await {
                    tracing::warn!(connection, %err, "disconnect cleanup failed; TTL will");
                }
                json!({ "statusCode": 200 })
            }
            _ => {
                let reply = self.action(&connection, event.body.as_deref()).await;
                match reply {
                    Some(frame) => json!({ "statusCode": 200, "body": frame.to_string() }),
                    None => json!({ "statusCode": 200 }),
                }
            }
        }
    }

    /// Accepts a connection whose ticket is good (once, before it expires).
    async fn connect(&self, connection: &str, ticket: Option<&str>) -> Result<(), ApiError> {
        let ticket = ticket.ok_or_else(|| ApiError::Unauthenticated("no ticket".into()))?;
        let who =
            self.store.redeem_ticket(ticket).await?.ok_or_else(|| {
                ApiError::Unauthenticated("unknown, used or expired ticket".into())
            })?;
        self.store.open_connection(connection, &who).await?;
        tracing::info!(connection, org = %who.org, user = %who.user, "connected");
        Ok(())
    }

    /// The reply to a client's message, if it gets one.
    async fn action(&self, connection: &str, body: Option<&str>) -> Option<Value> {
        let raw: Value = match body.map(serde_json::from_str) {
            Some(Ok(raw)) => raw,
            _ => {
                return Some(error_frame(
                    None,
                    &ApiError::Malformed("a JSON object".into()),
                ));
            }
        };
        let id = raw.get("id").cloned();
        let action = match serde_json::from_value::<Action>(raw) {
            Ok(action) => action,
            Err(err) => {
                let err = ApiError::Malformed(format!(
                    "{err}: send {{\"action\": \"subscribe\"|\"unsubscribe\"|\"resume\"|\"sync_inbox\"|\"typing\"|\"ping\", …}}"
                ));
                return Some(error_frame(id, &err));
            }
        };
        let reply = match self.store.connection(connection).await {
            Ok(Some(connection)) => self.act(&connection, action).await,
            Ok(None) => Err(ApiError::Unauthenticated(
                "the connection has ended; connect again with a new ticket".into(),
            )),
            Err(err) => Err(err),
        };
        match reply {
            Ok(Some(mut frame)) => {
                if let Some(id) = id {
                    frame["id"] = id;
                }
                Some(frame)
            }
            Ok(None) => None,
            Err(err) => Some(error_frame(id, &err)),
        }
    }

    async fn act(
        &self,
        connection: &Connection,
        action: Action,
    ) -> Result<Option<Value>, ApiError> {
        match action {
            Action::Ping => Ok(Some(json!({ "type": "pong" }))),
            Action::Subscribe { room_id, after } => {
                let room_id = room(&room_id)?;
                let room = self.store.subscribe(connection, &room_id).await?;
                let mut frame = json!({
                    "type": "subscribed",
                    "room_id": room_id,
                    "last_seq": room.last_seq,
                });
                if let Some(after) = after {
                    self.add_events(connection, &room_id, after, &mut frame)
                        .await?;
                }
                Ok(Some(frame))
            }
            Action::Unsubscribe { room_id } => {
                let room_id = room(&room_id)?;
                self.store.unsubscribe(connection, &room_id).await?;
                Ok(Some(json!({ "type": "unsubscribed", "room_id": room_id })))
            }
            Action::Resume { room_id, after } => {
                let room_id = room(&room_id)?;
                let mut frame = json!({ "type": "resumed", "room_id": room_id });
                self.add_events(connection, &room_id, after, &mut frame)
                    .await?;
                Ok(Some(frame))
            }
            Action::SyncInbox { after } => {
                let who = &connection.who;
                let Some(after) = after else {
                    let last_seq = self.store.inbox_feed_head(&who.org, &who.user).await?;
                    return Ok(Some(
                        json!({ "type": "inbox_synced", "last_seq": last_seq }),
                    ));
                };
                let page = self
                    .store
                    .inbox_events(&who.org, &who.user, after, MAX_EVENTS_PAGE)
                    .await?;
                let mut frame = json!({ "type": "inbox_synced", "last_seq": page.last_seq });
                fill_events(
                    &mut frame,
                    page.events.iter().map(|e| e.frame()),
                    page.has_more,
                );
                Ok(Some(frame))
            }
            Action::Typing { room_id } => {
                self.typing(connection, &room(&room_id)?).await?;
                Ok(None)
            }
        }
    }

    /// The room's changes after `after` into `frame` (`events`, `last_seq`,
    /// `has_more`), as many as fit one frame.
    async fn add_events(
        &self,
        connection: &Connection,
        room_id: &RoomId,
        after: u64,
        frame: &mut Value,
    ) -> Result<(), ApiError> {
        let who = &connection.who;
        let page = self
            .store
            .room_events(who, room_id, after, MAX_EVENTS_PAGE)
            .await?;
        let mut events = Vec::new();
        for event in &page.events {
            let text = event.json_for(who.role.is_staff());
            events.push(
                serde_json::from_str::<Value>(&text).map_err(|e| ApiError::internal("event", e))?,
            );
        }
        frame["last_seq"] = json!(page.room.last_seq);
        fill_events(frame, events.into_iter(), page.has_more);
        Ok(())
    }

    /// Tells the room's other followers that the caller is typing: not stored, not
    /// numbered, at most one per connection and room every 2 s (more are dropped).
    async fn typing(&self, connection: &Connection, room_id: &RoomId) -> Result<(), ApiError> {
        let who = &connection.who;
        if !self.store.may_type(connection, room_id).await? {
            return Ok(());
        }
        let audience = self.store.audience(&who.org, room_id).await?;
        let room = audience
            .room
            .filter(|r| r.reaches(who))
            .ok_or(ApiError::NotFound("conversation"))?;
        if room.large {
            // Typing in a room of thousands is not broadcast: it would be noise to all
            // and a post per follower for every keystroke pause.
            return Ok(());
        }
        let frame = json!({
            "type": "typing",
            "room_id": room_id,
            "user_id": who.user,
            "at": chat_core::time::now_string(),
        })
        .to_string();
        for subscription in audience.subscriptions {
            if subscription.who.user == who.user || !room.visible_to(&subscription.who) {
                continue;
            }
            if self
                .gateway
                .post(&subscription.connection_id, &frame)
                .await?
                == Delivery::Gone
            {
                self.store
                    .close_connection(&subscription.connection_id)
                    .await?;
            }
        }
        Ok(())
    }
}

/// `events` (as many as fit one frame, oldest first) and `has_more` into `frame`.
fn fill_events(frame: &mut Value, events: impl Iterator<Item = Value>, more: bool) {
    let mut size = 0;
    let mut taken = Vec::new();
    let mut has_more = more;
    for event in events {
        size += event.to_string().len() + 1;
        if size > MAX_REPLY_BYTES {
            has_more = true;
            break;
        }
        taken.push(event);
    }
    frame["events"] = Value::Array(taken);
    frame["has_more"] = json!(has_more);
}

fn room(raw: &str) -> Result<RoomId, ApiError> {
    path_id(Some(raw), "conversation")
}

/// An error as a frame: the same codes as the REST API.
fn error_frame(id: Option<Value>, err: &ApiError) -> Value {
    let mut frame = json!({
        "type": "error",
        "status": err.status().as_u16(),
        "code": err.code(),
        "message": err.to_string(),
    });
    if let Some(id) = id {
        frame["id"] = id;
    }
    frame
}
