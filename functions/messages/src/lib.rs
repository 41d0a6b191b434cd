//! The `messages` function: the messages of a room, under `/rooms/{room_id}` and
//! `/chat/conversations/{conversation_id}` alike.

use chat_core::app::{self, header, path_param};
use chat_core::auth::{AuthConfig, Principal};
use chat_core::ids::MessageId;
use chat_core::ids::{RoomId, path_id};
use chat_core::item::ItemExt;
use chat_core::model::{Attachment, Message};
use chat_core::request::{Query, json_body};
use chat_core::store::{
    Direction, MessageChange, MessageQuery, NewMessage, Posted, RoomCache, Store,
};
use chat_core::{ApiError, ApiResult, Reply, Runtime};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;

// The same handlers serve both path families of a room.
chat_core::route_table! { app: App, who, req;
    "GET /rooms/{room_id}/messages" => list(&app.store, who, req),
    "POST /rooms/{room_id}/messages" => post(&app.store, &app.rooms, who, req),
    "PATCH /rooms/{room_id}/messages/{message_id}" => edit(&app.store, who, req),
    "DELETE /rooms/{room_id}/messages/{message_id}" => delete(&app.store, who, req),
    "POST /rooms/{room_id}/read" => read(&app.store, who, req),
    "GET /chat/conversations/{conversation_id}/messages" => list(&app.store, who, req),
    "POST /chat/conversations/{conversation_id}/messages" => post(&app.store, &app.rooms, who, req),
    "PATCH /chat/conversations/{conversation_id}/messages/{message_id}" => edit(&app.store, who, req),
    "DELETE /chat/conversations/{conversation_id}/messages/{message_id}" => delete(&app.store, who, req),
    "POST /chat/conversations/{conversation_id}/read" => read(&app.store, who, req),
    "POST /chat/conversations/{conversation_id}/ai-response" => ai_response(&app.store, &app.rooms, &app.ai, who, req),
    "GET /chat/search" => search(&app.store, who, req),
}

pub const MAX_CONTENT_CHARS: usize = 4000;
pub const MAX_ATTACHMENTS: usize = 10;
pub const MAX_ATTACHMENT_BYTES: u64 = 100 * 1024 * 1024;
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 100;
pub const MAX_OFFSET: u32 = 500;
pub const CONTENT_TYPES: &[&str] = &[
    "text", "markdown", "image", "file", "audio", "video", "location",
];

pub mod ai;

pub struct App {
    auth: AuthConfig,
    store: Store,
    ai: ai::Ai,
    rooms: RoomCache,
}

impl App {
    /// With AI replies off.
    pub fn new(runtime: Runtime) -> Self {
        Self::with_ai(runtime, ai::Ai::off())
    }

    pub fn with_ai(runtime: Runtime, ai: ai::Ai) -> Self {
        App {
            auth: runtime.config.auth,
            store: runtime.store,
            ai,
            rooms: RoomCache::default(),
        }
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        app::serve(&self.auth, &self.store, req, |route, who, req| async move {
            dispatch(self, &route, &who, &req).await
        })
        .await
    }
}

impl app::HttpApp for App {
    fn handle(&self, req: Request) -> impl Future<Output = Response<Body>> + Send {
        App::handle(self, req)
    }
}

/// The room a message route addresses, whichever path family it came by.
fn room_of(req: &Request) -> ApiResult<RoomId> {
    path_id(
        path_param(req, "room_id").or_else(|| path_param(req, "conversation_id")),
        "conversation",
    )
}

async fn list(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let room_id = room_of(req)?;
    let q = Query::of(req);
    let limit = q.limit(DEFAULT_PAGE, MAX_PAGE)?;
    let offset = q.offset(MAX_OFFSET)?;
    let (cursor, direction) = match (q.get("before"), q.get("after")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "before",
                "use either before or after, not both",
            ));
        }
        (Some(c), None) => (Some(c), Direction::Older),
        (None, Some(c)) => (Some(c), Direction::Newer),
        (None, None) => (None, Direction::Older),
    };
    let list = store
        .list_messages(
            who,
            &room_id,
            MessageQuery {
                limit,
                offset,
                cursor,
                direction,
                include_notes: who.role.is_staff(),
            },
        )
        .await?;
    let messages: Vec<_> = list.messages.items.iter().map(Message::to_json).collect();
    Ok(Reply::ok(
        format!("Found {} messages", messages.len()),
        json!({
            "messages": messages,
            "order": if direction == Direction::Older { "newest_first" } else { "oldest_first" },
            "total": list.room.total_messages,
            "limit": limit,
            "offset": offset,
            "next_cursor": list.messages.next_cursor,
            "has_more": list.messages.next_cursor.is_some(),
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostMessage {
    #[serde(default)]
    content: String,
    content_type: Option<String>,
    message_type: Option<String>,
    sender_type: Option<String>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    client_message_id: Option<String>,
}

/// Idempotency keys and client message ids: short, printable, no key separator.
fn idempotency_key(field: &str, raw: &str) -> ApiResult<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::invalid(
            field,
            "must be 1 to 128 characters of letters, digits, - _ . :",
        ))
    }
}

fn validate_attachments(attachments: &[Attachment]) -> ApiResult<()> {
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(ApiError::invalid(
            "attachments",
            format!("at most {MAX_ATTACHMENTS} per message"),
        ));
    }
    for (i, a) in attachments.iter().enumerate() {
        let field = |name: &str| format!("attachments[{i}].{name}");
        if a.name.trim().is_empty() || a.name.chars().count() > 255 {
            return Err(ApiError::invalid(
                field("name"),
                "must be 1 to 255 characters",
            ));
        }
        if a.content_type.is_empty() || a.content_type.len() > 100 || !a.content_type.contains('/')
        {
            return Err(ApiError::invalid(
                field("type"),
                "must be a media type such as image/png",
            ));
        }
        if a.size > MAX_ATTACHMENT_BYTES {
            return Err(ApiError::invalid(
                field("size"),
                format!("must be at most {MAX_ATTACHMENT_BYTES} bytes"),
            ));
        }
        if a.url.len() > 2048 || !(a.url.starts_with("https://") || a.url.starts_with("http://")) {
            return Err(ApiError::invalid(
                field("url"),
                "must be an http(s) URL of at most 2048 characters",
            ));
        }
    }
    Ok(())
}

async fn post(
    store: &Store,
    rooms: &RoomCache,
    who: &Principal,
    req: &Request,
) -> ApiResult<Reply> {
    let room_id = room_of(req)?;
    let body: PostMessage = json_body(req)?;
    let content = body.content.trim().to_owned();
    if content.is_empty() && body.attachments.is_empty() {
        return Err(ApiError::invalid(
            "content",
            "must not be empty without attachments",
        ));
    }
    if content.chars().count() > MAX_CONTENT_CHARS {
        return Err(ApiError::invalid(
            "content",
            format!("must be at most {MAX_CONTENT_CHARS} characters"),
        ));
    }
    let content_type = body.content_type.unwrap_or_else(|| "text".into());
    if !CONTENT_TYPES.contains(&content_type.as_str()) {
        return Err(ApiError::invalid(
            "content_type",
            format!("must be one of {}", CONTENT_TYPES.join(", ")),
        ));
    }
    let message_type = body.message_type.unwrap_or_else(|| "text".into());
    match message_type.as_str() {
        "text" => {}
        "note" if who.role.is_staff() => {}
        "note" => {
            return Err(ApiError::Forbidden(
                "internal notes are for agents and admins".into(),
            ));
        }
        _ => return Err(ApiError::invalid("message_type", "must be text or note")),
    }
    let sender = who.role.sender_type();
    if let Some(claimed) = body.sender_type.as_deref() {
        if claimed != sender {
            return Err(ApiError::invalid(
                "sender_type",
                format!("must be {sender} for a {} caller", who.role.as_str()),
            ));
        }
    }
    validate_attachments(&body.attachments)?;
    let client_message_id = body
        .client_message_id
        .as_deref()
        .map(|c| idempotency_key("client_message_id", c))
        .transpose()?;
    let idempotency = match header(req, "idempotency-key") {
        Some(raw) => Some(idempotency_key("Idempotency-Key", raw)?),
        None => client_message_id.clone(),
    };
    let new = NewMessage {
        content,
        content_type,
        message_type,
        sender: sender.to_owned(),
        sender_id: None,
        attachments: body.attachments,
        client_message_id,
        idempotency_key: idempotency,
        tokens_used: None,
        processing_time: None,
        cost: None,
        request: None,
    };
    match store
        .post_message(who, &room_id, new, Message::to_json, rooms)
        .await?
    {
        Posted::Created(message) => Ok(Reply::created(
            "Message added successfully",
            message.to_json(),
        )),
        Posted::Replayed(first) => Ok(Reply::created("Message added successfully", first)
            .header("idempotent-replayed", "true")),
    }
}

fn message_of(req: &Request) -> ApiResult<MessageId> {
    path_id(path_param(req, "message_id"), "message")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditMessage {
    content: String,
}

async fn edit(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let (room_id, message_id) = (room_of(req)?, message_of(req)?);
    let body: EditMessage = json_body(req)?;
    let content = chat_core::request::required_text("content", &body.content, MAX_CONTENT_CHARS)?;
    let message = store
        .change_message(who, &room_id, &message_id, MessageChange::Edit { content })
        .await?;
    Ok(Reply::ok("Message updated successfully", message.to_json()))
}

async fn delete(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let (room_id, message_id) = (room_of(req)?, message_of(req)?);
    let message = store
        .change_message(who, &room_id, &message_id, MessageChange::Delete)
        .await?;
    Ok(Reply::ok("Message deleted successfully", message.to_json()))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MarkRead {
    message_id: Option<MessageId>,
}

async fn read(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let room_id = room_of(req)?;
    // The body is optional: no body means "up to the latest message".
    let body: MarkRead = if chat_core::request::body_bytes(req)
        .iter()
        .all(u8::is_ascii_whitespace)
    {
        MarkRead::default()
    } else {
        json_body(req)?
    };
    let (marker, unread) = store
        .mark_read(who, &room_id, body.message_id.as_ref())
        .await?;
    Ok(Reply::ok(
        "Read marker updated",
        json!({ "conversation_id": room_id, "last_read_message_id": (!marker.is_empty()).then_some(marker), "unread_count": unread }),
    ))
}

async fn search(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let q = Query::of(req);
    let query = q
        .get("query")
        .or_else(|| q.get("q"))
        .ok_or_else(|| ApiError::invalid("query", "is required"))?;
    if query.chars().count() > chat_core::store::MAX_QUERY_CHARS {
        return Err(ApiError::invalid(
            "query",
            format!(
                "must be at most {} characters",
                chat_core::store::MAX_QUERY_CHARS
            ),
        ));
    }
    let limit = q.limit(20, MAX_PAGE)?;
    let page = store.search(who, query, limit, q.get("cursor")).await?;
    let results: Vec<_> = page
        .items
        .iter()
        .map(|entry| {
            json!({
                "message_id": entry.str("message_id"),
                "conversation_id": entry.str("room_id"),
                "room_id": entry.str("room_id"),
                "content": entry.str("snippet"),
                "sender": entry.str("sender"),
                "sender_id": entry.str("sender_id"),
                "created_at": entry.str("created_at"),
            })
        })
        .collect();
    Ok(Reply::ok(
        format!("Found {} results", results.len()),
        json!({
            "results": results,
            "query": query,
            "total": results.len(),
            "limit": limit,
            "next_cursor": page.next_cursor,
            "has_more": page.next_cursor.is_some(),
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AiRequest {
    message: String,
    /// The bot agent the reply is from (`agent_id: 5`); defaults to "bot".
    agent_id: Option<chat_core::ids::UserId>,
    #[serde(default = "yes")]
    include_context: bool,
}

fn yes() -> bool {
    true
}

/// The caller's own question: the last turn.
fn prompt_of(turns: &[ai::Turn]) -> &str {
    turns.last().map_or("", |t| t.text.as_str())
}

/// Messages of context given to the model.
pub const AI_CONTEXT_MESSAGES: u32 = 20;

async fn ai_response(
    store: &Store,
    rooms: &RoomCache,
    ai: &ai::Ai,
    who: &Principal,
    req: &Request,
) -> ApiResult<Reply> {
    let room_id = room_of(req)?;
    let body: AiRequest = json_body(req)?;
    let prompt = chat_core::request::required_text("message", &body.message, MAX_CONTENT_CHARS)?;
    let idempotency = header(req, "idempotency-key")
        .map(|k| idempotency_key("Idempotency-Key", k))
        .transpose()?;
    // Access first (and the context): a stranger learns nothing and costs nothing.
    // Internal notes never go to the model: its reply is shown to the customer.
    let list = store
        .list_messages(
            who,
            &room_id,
            MessageQuery {
                limit: AI_CONTEXT_MESSAGES,
                offset: 0,
                cursor: None,
                direction: Direction::Older,
                include_notes: false,
            },
        )
        .await?;
    let mut turns: Vec<ai::Turn> = Vec::new();
    if body.include_context {
        turns.extend(
            list.messages
                .items
                .iter()
                .rev()
                .filter(|m| m.deleted_at.is_none())
                .map(|m| ai::Turn {
                    role: if m.sender == "user" {
                        "user"
                    } else {
                        "assistant"
                    },
                    text: m.content.clone(),
                }),
        );
    }
    turns.push(ai::Turn {
        role: "user",
        text: prompt,
    });
    // A retry answers what the first request stored, without asking the model again.
    let request = json!({"message": prompt_of(&turns), "agent_id": body.agent_id, "include_context": body.include_context}).to_string();
    if let Some(key) = &idempotency {
        if let Some(first) = store.earlier_answer(who, &room_id, key, &request).await? {
            return Ok(Reply::created("AI response generated", first)
                .header("idempotent-replayed", "true"));
        }
    }
    // The context read returned the room: the post's transaction needs no read first.
    rooms.put(&who.org, list.room);
    let completion = ai.complete(&turns).await?;
    let cost = ai.cost(completion.tokens_used);
    let new = NewMessage {
        content: completion.text.chars().take(MAX_CONTENT_CHARS).collect(),
        content_type: "text".into(),
        message_type: "text".into(),
        sender: "bot".into(),
        sender_id: Some(
            body.agent_id
                .map(|a| a.to_string())
                .unwrap_or_else(|| "bot".into()),
        ),
        attachments: Vec::new(),
        client_message_id: None,
        idempotency_key: idempotency,
        tokens_used: Some(completion.tokens_used),
        processing_time: Some(completion.processing_time),
        cost: Some(cost),
        request: Some(request),
    };
    let reply = |m: &Message| {
        json!({
            "message_id": m.id,
            "conversation_id": m.room_id,
            "ai_response": m.content,
            "tokens_used": m.tokens_used,
            "processing_time": m.processing_time,
            "cost": m.cost,
            "sender": m.sender,
            "sender_id": m.sender_id,
            "created_at": m.created_at,
        })
    };
    match store.post_message(who, &room_id, new, reply, rooms).await? {
        Posted::Created(message) => Ok(Reply::created("AI response generated", reply(&message))),
        Posted::Replayed(first) => Ok(
            Reply::created("AI response generated", first).header("idempotent-replayed", "true")
        ),
    }
}
