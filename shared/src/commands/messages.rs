//! Bodies and commands of the messages routes.

use crate::error::{ApiError, ApiResult};
use crate::ids::{MessageId, UserId};
use crate::model::Attachment;
use crate::request::required_text;
use serde::Deserialize;

pub const MAX_CONTENT_CHARS: usize = 4000;
pub const MAX_ATTACHMENTS: usize = 10;
pub const MAX_ATTACHMENT_BYTES: u64 = 100 * 1024 * 1024;
pub const CONTENT_TYPES: &[&str] = &[
    "text", "markdown", "image", "file", "audio", "video", "location",
];

/// POST …/messages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    #[serde(default)]
    pub content: String,
    pub content_type: Option<String>,
    pub message_type: Option<String>,
    /// Only asserts the caller's role (the seed clients send it).
    pub sender_type: Option<String>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    pub client_message_id: Option<String>,
}

/// A message's kind: public text, or an internal note (staff only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Note,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Note => "note",
        }
    }
}

/// A valid message, before the caller's role is considered.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageDraft {
    /// Trimmed; empty only with attachments.
    pub content: String,
    pub content_type: String,
    pub kind: MessageKind,
    pub sender_type: Option<String>,
    pub attachments: Vec<Attachment>,
    pub client_message_id: Option<String>,
}

impl TryFrom<PostMessage> for MessageDraft {
    type Error = ApiError;

    fn try_from(body: PostMessage) -> ApiResult<MessageDraft> {
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
        let kind = match body.message_type.as_deref() {
            None | Some("text") => MessageKind::Text,
            Some("note") => MessageKind::Note,
            Some(_) => return Err(ApiError::invalid("message_type", "must be text or note")),
        };
        validate_attachments(&body.attachments)?;
        let client_message_id = body
            .client_message_id
            .as_deref()
            .map(|c| idempotency_key("client_message_id", c))
            .transpose()?;
        Ok(MessageDraft {
            content,
            content_type,
            kind,
            sender_type: body.sender_type,
            attachments: body.attachments,
            client_message_id,
        })
    }
}

/// Idempotency keys and client message ids: short, printable, no key separator.
pub fn idempotency_key(field: &str, raw: &str) -> ApiResult<String> {
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
        if let Some(upload) = &a.upload_id {
            // An upload: the storage knows its type and size; stated ones must match.
            if crate::ids::Ulid::parse(upload).is_err() {
                return Err(ApiError::invalid(
                    field("upload_id"),
                    "an upload_id from POST …/uploads",
                ));
            }
            if !a.url.is_empty() {
                return Err(ApiError::invalid(field("url"), "an upload has no url"));
            }
            continue;
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

/// PATCH …/messages/{message_id}.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    pub content: String,
}

/// The new text of an edited message.
#[derive(Debug, Clone, PartialEq)]
pub struct EditedText(pub String);

impl TryFrom<EditMessage> for EditedText {
    type Error = ApiError;

    fn try_from(body: EditMessage) -> ApiResult<EditedText> {
        required_text("content", &body.content, MAX_CONTENT_CHARS).map(EditedText)
    }
}

/// POST …/read; no body means "up to the latest message".
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    pub message_id: Option<MessageId>,
}

/// POST /chat/conversations/{id}/ai-response.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AiRequest {
    pub message: String,
    /// The bot agent the reply is from (`agent_id: 5`); defaults to "bot".
    pub agent_id: Option<UserId>,
    #[serde(default = "yes")]
    pub include_context: bool,
}

fn yes() -> bool {
    true
}

/// A question for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct AiQuestion {
    pub prompt: String,
    pub agent_id: Option<UserId>,
    /// Whether the conversation's recent messages go with it.
    pub include_context: bool,
}

impl TryFrom<AiRequest> for AiQuestion {
    type Error = ApiError;

    fn try_from(body: AiRequest) -> ApiResult<AiQuestion> {
        Ok(AiQuestion {
            prompt: required_text("message", &body.message, MAX_CONTENT_CHARS)?,
            agent_id: body.agent_id,
            include_context: body.include_context,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(json: serde_json::Value) -> ApiResult<MessageDraft> {
        let body: PostMessage =
            serde_json::from_value(json).map_err(|e| ApiError::Malformed(e.to_string()))?;
        MessageDraft::try_from(body)
    }

    #[test]
    fn a_post_is_trimmed_typed_and_defaulted() {
        let draft = post(serde_json::json!({"content": "  hi  "})).unwrap();
        assert_eq!(draft.content, "hi");
        assert_eq!(
            (draft.content_type.as_str(), draft.kind),
            ("text", MessageKind::Text)
        );
        let note = post(serde_json::json!({"content": "x", "message_type": "note"})).unwrap();
        assert_eq!(note.kind, MessageKind::Note);
    }

    #[test]
    fn a_bad_post_names_its_field() {
        for (json, field) in [
            (serde_json::json!({"content": " "}), "content"),
            (
                serde_json::json!({"content": "x", "content_type": "exe"}),
                "content_type",
            ),
            (
                serde_json::json!({"content": "x", "message_type": "shout"}),
                "message_type",
            ),
            (
                serde_json::json!({"content": "x", "client_message_id": "a#b"}),
                "client_message_id",
            ),
            (
                serde_json::json!({"content": "", "attachments": [{"name": "a", "type": "png", "size": 1, "url": "https://x"}]}),
                "attachments[0].type",
            ),
        ] {
            match post(json) {
                Err(ApiError::InvalidField { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
