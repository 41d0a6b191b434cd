//! Request bodies: `parse_json` on arbitrary bytes, as free JSON and as bodies shaped
//! like the routes' own (strict fields, optional/nullable fields, nested attachments,
//! user ids given as strings or integers). Never panics; every refusal is one of the
//! documented 400/413/422 answers; what parses as free JSON is exactly what serde_json
//! itself accepts, arrays aside; a body struct is only ever filled from an object.
#![no_main]

use chat_core::ApiError;
use chat_core::ids::{MessageId, UserId};
use chat_core::model::Attachment;
use chat_core::request::{MAX_BODY_BYTES, parse_json};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

/// The shape of POST …/messages (its type is private to the messages crate).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
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

/// The shape of PUT /chat/conversations/{id}: absent and `null` differ.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct UpdateConversation {
    title: Option<String>,
    is_pinned: Option<bool>,
    status: Option<String>,
    #[serde(default, deserialize_with = "present")]
    assignee_id: Option<Option<UserId>>,
}

fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// POST …/read and POST /rooms/{id}/members.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Mixed {
    message_id: Option<MessageId>,
    user_id: Option<UserId>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

fn check<T>(data: &[u8], result: Result<T, ApiError>) {
    if let Err(err) = result {
        let status = err.status().as_u16();
        assert!(
            matches!(status, 400 | 413 | 422),
            "{status} {err:?} for a body"
        );
        if status == 413 {
            assert!(data.len() > MAX_BODY_BYTES);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let free = parse_json::<serde_json::Value>(data);
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    // Bodies are never arrays (serde would fill a struct from one, field by field).
    if data.len() <= MAX_BODY_BYTES && first.is_some() && first != Some(&b'[') {
        assert_eq!(
            free.is_ok(),
            serde_json::from_slice::<serde_json::Value>(data).is_ok()
        );
    }
    check(data, free);
    let post = parse_json::<PostMessage>(data);
    let update = parse_json::<UpdateConversation>(data);
    let mixed = parse_json::<Mixed>(data);
    if post.is_ok() || update.is_ok() || mixed.is_ok() {
        assert_eq!(first, Some(&b'{'), "a body struct only from an object");
    }
    check(data, post);
    check(data, update);
    check(data, mixed);
});
