//! Id parsing: whatever is accepted round-trips, cannot carry the key separator `#`
//! (so it cannot reach another partition) and respects its length bound; JSON ids
//! (strings or integers) obey the same rules.
#![no_main]

use chat_core::ids::{OrgId, Role, RoomId, Ulid, UserId, path_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = UserId::parse(raw) {
        assert_eq!(id.as_str(), raw);
        assert!(!raw.contains('#') && raw.len() <= UserId::MAX_LEN);
    }
    if let Ok(id) = OrgId::parse(raw) {
        assert!(!id.as_str().contains('#') && raw.len() <= OrgId::MAX_LEN);
    }
    if let Ok(id) = Ulid::parse(raw) {
        assert_eq!(id.as_str().len(), 26);
        assert!(!raw.contains('#'));
    }
    match path_id::<RoomId>(Some(raw), "room") {
        Ok(id) => assert_eq!(id.as_str(), raw),
        Err(err) => assert_eq!(err.status().as_u16(), 404),
    }
    let _ = Role::parse(raw);
    // As JSON: `agent_id` arrives as a string or an integer.
    if let Ok(id) = serde_json::from_str::<UserId>(raw) {
        assert!(UserId::parse(id.as_str()).is_ok());
    }
});
