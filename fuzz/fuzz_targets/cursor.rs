//! Cursor decoding on arbitrary input: never panics, and a cursor is accepted only if
//! it names the listing's own partition with exactly that listing's key attributes.
#![no_main]

use aws_sdk_dynamodb::types::AttributeValue;
use chat_core::cursor::{Partition, decode, encode};
use libfuzzer_sys::fuzz_target;

const ROOM: Partition<'static> = Partition {
    attribute: "PK",
    value: "T#acme#R#01J0000000000000000000000Z",
};
const INBOX: Partition<'static> = Partition {
    attribute: "GSI1PK",
    value: "T#acme#INBOX#u-100",
};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    for (partition, allowed) in [
        (ROOM, &["PK", "SK"][..]),
        (INBOX, &["PK", "SK", "GSI1PK", "GSI1SK"][..]),
    ] {
        if let Ok(key) = decode(raw, partition, allowed) {
            assert_eq!(
                key.get(partition.attribute),
                Some(&AttributeValue::S(partition.value.to_owned()))
            );
            assert_eq!(key.len(), allowed.len());
            assert!(key.keys().all(|k| allowed.contains(&k.as_str())));
            // What we hand back out decodes to the same key.
            assert_eq!(decode(&encode(&key), partition, allowed).unwrap(), key);
        }
    }
});
