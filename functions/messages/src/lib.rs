//! The `messages` function: the messages of a room, under `/rooms/{room_id}` and
//! `/chat/conversations/{conversation_id}` alike.

use chat_core::app::{header, path_param};
use chat_core::auth::{AuthConfig, Principal};
use chat_core::ids::MessageId;
use chat_core::ids::{RoomId, path_id};
use chat_core::model::Message;
use chat_core::policy::{self, Action, Relation};
use chat_core::request::{Query, json_body};
use chat_core::store::{
    Direction, MAX_EVENTS_PAGE, MessageChange, MessageQuery, NewMessage, Posted, RoomCache,
    SearchHit, Store,
};
use chat_core::{ApiError, ApiResult, Reply, Runtime};
use lambda_http::Request;
use serde_json::json;

// The same handlers serve both path families of a room.
chat_core::route_table! { app: App, who, req;
    "GET /rooms/{room_id}/messages" => list(&app.store, who, req),
    "POST /rooms/{room_id}/messages" => post(&app.store, &app.rooms, app.uploads.as_ref(), who, req),
    "PATCH /rooms/{room_id}/messages/{message_id}" => edit(&app.store, who, req),
    "DELETE /rooms/{room_id}/messages/{message_id}" => delete(&app.store, app.uploads.as_ref(), who, req),
    "POST /rooms/{room_id}/read" => read(&app.store, who, req),
    "GET /chat/conversations/{conversation_id}/messages" => list(&app.store, who, req),
    "POST /chat/conversations/{conversation_id}/messages" => post(&app.store, &app.rooms, app.uploads.as_ref(), who, req),
    "PATCH /chat/conversations/{conversation_id}/messages/{message_id}" => edit(&app.store, who, req),
    "DELETE /chat/conversations/{conversation_id}/messages/{message_id}" => delete(&app.store, app.uploads.as_ref(), who, req),
    "POST /chat/conversations/{conversation_id}/read" => read(&app.store, who, req),
    "POST /chat/conversations/{conversation_id}/ai-response" => ai_response(&app.store, &app.rooms, &app.ai, who, req),
    "GET /chat/search" => search(&app.store, who, req),
    "GET /rooms/{room_id}/events" => events(&app.store, who, req),
    "GET /chat/conversations/{conversation_id}/events" => events(&app.store, who, req),
    "POST /rooms/{room_id}/uploads" => upload(&app.store, app.uploads.as_ref(), who, req),
    "POST /chat/conversations/{conversation_id}/uploads" => upload(&app.store, app.uploads.as_ref(), who, req),
    "GET /rooms/{room_id}/attachments/{upload_id}" => download(&app.store, app.uploads.as_ref(), who, req),
    "GET /chat/conversations/{conversation_id}/attachments/{upload_id}" => download(&app.store, app.uploads.as_ref(), who, req),
}

use chat_core::commands::messages::{
    AiQuestion, AiRequest, EditMessage, MarkRead, MessageDraft, MessageKind, PostMessage,
    idempotency_key,
};
pub use chat_core::commands::messages::{
    CONTENT_TYPES, MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS, MAX_CONTENT_CHARS,
};
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 100;
pub const MAX_OFFSET: u32 = 500;

pub mod ai;

pub struct App {
    auth: AuthConfig,
    store: Store,
    ai: ai::Ai,
    rooms: RoomCache,
    uploads: Option<chat_core::uploads::Uploads>,
}

impl App {
    /// With AI replies off.
    pub fn new(runtime: Runtime) -> Self {
        Self::with_ai(runtime, ai::Ai::off())
    }

    pub fn with_ai(runtime: Runtime, ai: ai::Ai) -> Self {
        let uploads = runtime
            .config
            .uploads
            .clone()
            .map(|config| chat_core::uploads::Uploads::new(config, runtime.config.aws.clone()));
        App {
            auth: runtime.config.auth,
            store: runtime.store,
            ai,
            rooms: RoomCache::default(),
            uploads,
        }
    }
}

/// A page of messages as GET …/messages answers it.
#[derive(serde::Serialize)]
struct MessagePage<'a> {
    messages: Vec<chat_core::model::MessageView<'a>>,
    order: &'static str,
    total: u64,
    limit: u32,
    offset: u32,
    next_cursor: Option<&'a str>,
    has_more: bool,
    /// The room's latest change in its feed: a client that applied it is up to date.
    last_seq: u64,
}

/// A short-lived presigned GET of an uploaded file of the room, for who may read it:
/// anyone else gets 404 and no link.
async fn download(
    store: &Store,
    uploads: Option<&chat_core::uploads::Uploads>,
    who: &Principal,
    req: &Request,
) -> ApiResult<Reply> {
    let room_id = room_of(req)?;
    store.visible_room(who, &room_id).await?;
    let upload: chat_core::ids::Ulid = path_id(path_param(req, "upload_id"), "attachment")?;
    let uploads = uploads.ok_or_else(uploads_off)?;
    let key = chat_core::uploads::attached_key(&who.org, &room_id, upload.as_str());
    let Some(object) = uploads.head(&key).await? else {
        return Err(ApiError::NotFound("attachment"));
    };
    let name = store
        .attached_name(&who.org, &room_id, upload.as_str())
        .await?;
    let served = chat_core::uploads::Served::of(&object.content_type, name.as_deref());
    let ttl = std::time::Duration::from_secs(chat_core::uploads::DOWNLOAD_TTL_SECS);
    let url = uploads.presign_get(&key, ttl, &served).await?;
    let expires_at = chat_core::time::format(chat_core::time::now() + ttl);
    Ok(Reply::ok(
        "Download link",
        json!({ "upload_id": upload.as_str(), "url": url, "expires_at": expires_at }),
    ))
}

/// Checks each cited upload against the storage (one HeadObject: it exists under this
/// tenant's and room's prefix, and is of the stated type and size), takes its type and
/// size from there, and moves it out of reach of the unattached-uploads lifecycle rule
/// (a server-side copy) before the message is written: a message never cites a file
/// that is not there.
async fn attach_uploads(
    uploads: Option<&chat_core::uploads::Uploads>,
    who: &Principal,
    room_id: &RoomId,
    attachments: &mut [chat_core::model::Attachment],
) -> ApiResult<()> {
    use chat_core::uploads::{attached_key, pending_key};
    let uploads = uploads.ok_or_else(uploads_off)?;
    for (i, attachment) in attachments.iter_mut().enumerate() {
        let Some(upload) = attachment.upload_id.clone() else {
            continue;
        };
        let field = |name: &str| format!("attachments[{i}].{name}");
        let pending = pending_key(&who.org, room_id, &who.user, &upload);
        let attached = attached_key(&who.org, room_id, &upload);
        let (info, from) = match uploads.head(&pending).await? {
            Some(info) => (info, Some(pending)),
            // A retry of a post that already moved it.
            None => match uploads.head(&attached).await? {
                Some(info) => (info, None),
                None => {
                    return Err(ApiError::invalid(
                        field("upload_id"),
                        "no finished upload with this id in this conversation",
                    ));
                }
            },
        };
        if !attachment.content_type.is_empty() && attachment.content_type != info.content_type {
            return Err(ApiError::invalid(
                field("type"),
                format!("the upload is {}", info.content_type),
            ));
        }
        if attachment.size != 0 && attachment.size != info.size {
            return Err(ApiError::invalid(
                field("size"),
                format!("the upload is {} bytes", info.size),
            ));
        }
        if let Some(from) = from {
            uploads.copy(&from, &attached).await?;
        }
        attachment.content_type = info.content_type;
        attachment.size = info.size;
    }
    Ok(())
}

fn uploads_off() -> ApiError {
    ApiError::Unavailable {
        code: "uploads_unavailable",
        message: "uploads are not configured (UPLOADS_BUCKET)".into(),
        retry_after_secs: 60,
    }
}

/// A presigned POST for one file, to the room's prefix of the attachments' bucket,
/// for whoever may post in the room (checked before the body is).
async fn upload(
    store: &Store,
    uploads: Option<&chat_core::uploads::Uploads>,
    who: &Principal,
    req: &Request,
) -> ApiResult<Reply> {
    use chat_core::uploads::{NewUpload, UploadBody, pending_key};
    let room_id = room_of(req)?;
    store.visible_room(who, &room_id).await?;
    let upload = NewUpload::try_from(json_body::<UploadBody>(req)?)?;
    let uploads = uploads.ok_or_else(uploads_off)?;
    let upload_id = chat_core::ids::Ulid::generate();
    let key = pending_key(&who.org, &room_id, &who.user, upload_id.as_str());
    let form = uploads.presign_post(&key, &upload).await?;
    Ok(Reply::created(
        "Upload ready: POST the fields, then the file, to the url",
        json!({
            "upload_id": upload_id.as_str(),
            "name": upload.name,
            "content_type": upload.content_type,
            "size": upload.size,
            "url": form.url,
            "fields": form.fields,
            "expires_at": form.expires_at,
        }),
    ))
}

/// A page of a room's change feed as GET …/events answers it.
#[derive(serde::Serialize)]
struct EventsPage {
    events: Vec<Box<serde_json::value::RawValue>>,
    /// The room's latest change: the client is up to date once it has applied it.
    last_seq: u64,
    /// Where the next page starts (`after=`), when there is one.
    next_after: Option<u64>,
    has_more: bool,
}

/// The room's changes after `after` (0: from the start), oldest first. A change the
/// caller may not see (an internal note, to a customer) comes as its number only.
async fn events(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let room_id = room_of(req)?;
    let q = Query::of(req);
    let limit = q.limit(DEFAULT_PAGE, MAX_EVENTS_PAGE)?;
    let after = match q.get("after") {
        None => 0,
        Some(raw) => raw
            .parse::<u64>()
            .map_err(|_| ApiError::invalid("after", "a seq: a whole number, 0 or more"))?,
    };
    let page = store.room_events(who, &room_id, after, limit).await?;
    let staff = who.role.is_staff();
    let events = page
        .events
        .iter()
        .map(|e| serde_json::value::RawValue::from_string(e.json_for(staff)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::internal("render events", e))?;
    let answer = EventsPage {
        next_after: page
            .has_more
            .then(|| page.events.last().map(|e| e.seq))
            .flatten(),
        last_seq: page.room.last_seq,
        has_more: page.has_more,
        events,
    };
    Ok(Reply::ok(
        format!("Found {} events", answer.events.len()),
        answer,
    ))
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
    let page = MessagePage {
        messages: list.messages.items.iter().map(Message::view).collect(),
        order: match direction {
            Direction::Older => "newest_first",
            Direction::Newer => "oldest_first",
        },
        total: list.room.total_messages,
        limit,
        offset,
        next_cursor: list.messages.next_cursor.as_deref(),
        has_more: list.messages.next_cursor.is_some(),
        last_seq: list.room.last_seq,
    };
    Ok(Reply::ok(
        format!("Found {} messages", page.messages.len()),
        page,
    ))
}

async fn post(
    store: &Store,
    rooms: &RoomCache,
    uploads: Option<&chat_core::uploads::Uploads>,
    who: &Principal,
    req: &Request,
) -> ApiResult<Reply> {
    let room_id = room_of(req)?;
    let body = json_body::<PostMessage>(req)?;
    // Authorization before validation: a role without the right learns no more.
    if body.message_type.as_deref() == Some(MessageKind::Note.as_str())
        && !policy::allows(Action::PostNote, who.role, Relation::default())
    {
        // Existence first: a room the caller may not see is a 404, not a 403.
        store.visible_room(who, &room_id).await?;
        return Err(policy::Refused(Action::PostNote).into());
    }
    let draft = MessageDraft::try_from(body)?;
    let sender = who.role.sender_type();
    if let Some(claimed) = draft.sender_type.as_deref()
        && claimed != sender
    {
        return Err(ApiError::invalid(
            "sender_type",
            format!("must be {sender} for a {} caller", who.role.as_str()),
        ));
    }
    let idempotency = match header(req, "idempotency-key") {
        Some(raw) => Some(idempotency_key("Idempotency-Key", raw)?),
        None => draft.client_message_id.clone(),
    };
    let mut attachments = draft.attachments;
    if attachments.iter().any(|a| a.upload_id.is_some()) {
        // Who may post here is decided before any upload is looked at.
        store.visible_room(who, &room_id).await?;
        attach_uploads(uploads, who, &room_id, &mut attachments).await?;
    }
    let new = NewMessage {
        content: draft.content,
        content_type: draft.content_type,
        message_type: draft.kind.as_str().to_owned(),
        sender: sender.to_owned(),
        sender_id: None,
        attachments,
        client_message_id: draft.client_message_id,
        idempotency_key: idempotency,
        tokens_used: None,
        processing_time: None,
        cost: None,
        request: None,
    };
    match store.post_message(who, &room_id, new, rooms).await? {
        Posted::Created(message) => Ok(Reply::created(
            "Message added successfully",
            message.to_json(),
        )),
        Posted::Replayed(first) => Ok(Reply::created(
            "Message added successfully",
            first.to_json(),
        )
        .header("idempotent-replayed", "true")),
    }
}

fn message_of(req: &Request) -> ApiResult<MessageId> {
    path_id(path_param(req, "message_id"), "message")
}

async fn edit(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let (room_id, message_id) = (room_of(req)?, message_of(req)?);
    // Checked once the store knows the caller may edit it.
    let EditMessage { content } = json_body::<EditMessage>(req)?;
    let message = store
        .change_message(who, &room_id, &message_id, MessageChange::Edit { content })
        .await?;
    Ok(Reply::ok("Message updated successfully", message.to_json()))
}

async fn delete(
    store: &Store,
    uploads: Option<&chat_core::uploads::Uploads>,
    who: &Principal,
    req: &Request,
) -> ApiResult<Reply> {
    let (room_id, message_id) = (room_of(req)?, message_of(req)?);
    let message = store
        .change_message(who, &room_id, &message_id, MessageChange::Delete)
        .await?;
    // Its uploaded files go with it, those it holds only (after the delete committed;
    // a failure is logged and leaves an object no message cites).
    for upload in message
        .attachments
        .iter()
        .filter_map(|a| a.upload_id.as_deref())
    {
        let key = chat_core::uploads::attached_key(&who.org, &room_id, upload);
        match store
            .release_upload(&who.org, &room_id, upload, &message.id)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(key, "the file is not this message's: it stays");
                continue;
            }
            Err(err) => {
                tracing::warn!(key, %err, "releasing a deleted message's file failed");
                continue;
            }
        }
        match uploads {
            Some(uploads) => {
                if let Err(err) = uploads.delete(&key).await {
                    tracing::warn!(key, %err, "deleting a deleted message's file failed");
                }
            }
            None => tracing::warn!(key, "uploads are off: a deleted message's file stays"),
        }
    }
    Ok(Reply::ok("Message deleted successfully", message.to_json()))
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
    let found = SearchResults {
        results: &page.items,
        query,
        total: page.items.len(),
        limit,
        next_cursor: page.next_cursor.as_deref(),
        has_more: page.next_cursor.is_some(),
    };
    Ok(Reply::ok(format!("Found {} results", found.total), found))
}

/// A search's answer, serialized straight from the hits.
#[derive(serde::Serialize)]
struct SearchResults<'a> {
    results: &'a [SearchHit],
    query: &'a str,
    total: usize,
    limit: u32,
    next_cursor: Option<&'a str>,
    has_more: bool,
}

/// What the model is asked: the conversation's recent public messages, oldest first
/// (when asked for), then the caller's question.
fn turns_of(question: &AiQuestion, recent: &[Message]) -> Vec<ai::Turn> {
    let context = recent
        .iter()
        .rev()
        .filter(|_| question.include_context)
        .filter(|m| m.deleted_at.is_none())
        .map(|m| ai::Turn {
            role: if m.sender == "user" {
                "user"
            } else {
                "assistant"
            },
            text: m.content.clone(),
        });
    context
        .chain([ai::Turn {
            role: "user",
            text: question.prompt.clone(),
        }])
        .collect()
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
    let question = AiQuestion::try_from(json_body::<AiRequest>(req)?)?;
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
    let turns = turns_of(&question, &list.messages.items);
    // A retry answers what the first request stored, without asking the model again.
    let request = json!({"message": prompt_of(&turns), "agent_id": question.agent_id, "include_context": question.include_context}).to_string();
    if let Some(key) = &idempotency
        && let Some(first) = store.earlier_answer(who, &room_id, key, &request).await?
    {
        return Ok(
            Reply::created("AI response generated", ai_reply_json(&first))
                .header("idempotent-replayed", "true"),
        );
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
            question
                .agent_id
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

    match store.post_message(who, &room_id, new, rooms).await? {
        Posted::Created(message) => Ok(Reply::created(
            "AI response generated",
            ai_reply_json(&message),
        )),
        Posted::Replayed(first) => Ok(Reply::created(
            "AI response generated",
            ai_reply_json(&first),
        )
        .header("idempotent-replayed", "true")),
    }
}

/// An AI reply as the conversations API's clients read it.
fn ai_reply_json(m: &Message) -> serde_json::Value {
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
}
