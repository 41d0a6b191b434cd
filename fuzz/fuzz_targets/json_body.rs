//! Request bodies: `parse_json` on arbitrary bytes, as free JSON and as the routes'
//! own body types (chat_core::commands: strict fields, optional/nullable fields,
//! nested attachments, user ids given as strings or integers), then their commands.
//! Never panics; every refusal is one of the documented 400/413/422 answers; what parses as free JSON is exactly what serde_json
//! itself accepts, arrays aside; a body struct is only ever filled from an object.
#![no_main]

use chat_core::ApiError;
use chat_core::commands::conversations::{ConversationUpdate, UpdateConversation};
use chat_core::commands::messages::{MarkRead, MessageDraft, PostMessage};
use chat_core::commands::rooms::{AddMember, RoomDraft, StartRoom};
use chat_core::request::{MAX_BODY_BYTES, parse_json};
use libfuzzer_sys::fuzz_target;

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
    // The routes' own body types, then their commands: a refusal at either step is
    // one of the documented answers.
    let post = parse_json::<PostMessage>(data);
    let update = parse_json::<UpdateConversation>(data);
    let start = parse_json::<StartRoom>(data);
    let read = parse_json::<MarkRead>(data);
    let member = parse_json::<AddMember>(data);
    let parsed = [post.is_ok(), update.is_ok(), start.is_ok(), read.is_ok(), member.is_ok()];
    if parsed.contains(&true) {
        assert_eq!(first, Some(&b'{'), "a body struct only from an object");
    }
    check(data, post.and_then(MessageDraft::try_from));
    check(data, update.and_then(ConversationUpdate::try_from));
    check(data, start.and_then(RoomDraft::try_from));
    check(data, read);
    check(data, member);
});
