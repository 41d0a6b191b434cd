//! The dev server's routing of raw request paths and query components (the same
//! matching API Gateway does): never panics on any path, and every path parameter
//! it extracts is the percent-decoded text of exactly one segment.
#![no_main]

use chat_testkit::{Route, percent_decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let _ = percent_decode(path);
    let routes = [
        Route {
            function: "MessagesFunction".into(),
            method: "PATCH".into(),
            path: "/rooms/{room_id}/messages/{message_id}".into(),
        },
        Route {
            function: "RoomsFunction".into(),
            method: "GET".into(),
            path: "/profiles/{user_id}".into(),
        },
    ];
    for route in &routes {
        if let Some(params) = route.matches(&route.method, path) {
            assert_eq!(params.len(), route.path.matches('{').count());
            assert!(params.values().all(|v| !v.contains('/') || path.contains("%2")));
        }
    }
});
