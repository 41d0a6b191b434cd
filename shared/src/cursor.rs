//! Opaque pagination cursors. A cursor carries the last key of a page; on the way
//! back in it must name the very partition the caller is listing, so a forged or
//! borrowed cursor can never move a Query into another room, inbox or tenant.

use crate::error::ApiError;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::{BTreeMap, HashMap};

const MAX_CURSOR_LEN: usize = 1024;
const VERSION: &str = "1";

/// Which partition a listing reads: the key attribute and its value.
#[derive(Debug, Clone, Copy)]
pub struct Partition<'a> {
    pub attribute: &'a str,
    pub value: &'a str,
}

impl<'a> Partition<'a> {
    /// A partition of the table itself (by `PK`).
    pub fn pk(value: &'a str) -> Self {
        Partition {
            attribute: crate::keys::PK,
            value,
        }
    }
}

impl<'a> Partition<'a> {
    /// A partition of GSI1 (a member's inbox rows).
    pub fn gsi1(value: &'a str) -> Self {
        Partition {
            attribute: crate::keys::GSI1PK,
            value,
        }
    }
}

/// The key attributes of a cursor over the table itself.
pub const TABLE_KEYS: &[&str] = &[crate::keys::PK, crate::keys::SK];
/// The key attributes of a cursor over GSI1.
pub const GSI1_KEYS: &[&str] = &[
    crate::keys::PK,
    crate::keys::SK,
    crate::keys::GSI1PK,
    crate::keys::GSI1SK,
];

pub type Key = HashMap<String, AttributeValue>;

/// Where a listing starts: after the client's cursor, if it sent one (checked as
/// [`decode`] does).
pub fn start(
    raw: Option<&str>,
    partition: Partition<'_>,
    allowed: &[&str],
) -> Result<Option<Key>, ApiError> {
    raw.map(|raw| decode(raw, partition, allowed)).transpose()
}

pub fn encode(key: &Key) -> String {
    let mut plain: BTreeMap<&str, &str> = BTreeMap::new();
    plain.insert("v", VERSION);
    for (name, value) in key {
        if let AttributeValue::S(s) = value {
            plain.insert(name.as_str(), s.as_str());
        }
    }
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&plain).expect("string map serializes"))
}

/// Decodes a cursor for `partition`, accepting only the key attributes `allowed`.
pub fn decode(raw: &str, partition: Partition<'_>, allowed: &[&str]) -> Result<Key, ApiError> {
    if raw.is_empty() || raw.len() > MAX_CURSOR_LEN {
        return Err(ApiError::InvalidCursor);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| ApiError::InvalidCursor)?;
    let mut plain: BTreeMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|_| ApiError::InvalidCursor)?;
    if plain.remove("v").as_deref() != Some(VERSION) {
        return Err(ApiError::InvalidCursor);
    }
    if plain.get(partition.attribute).map(String::as_str) != Some(partition.value) {
        return Err(ApiError::InvalidCursor);
    }
    if plain.len() != allowed.len() || !plain.keys().all(|k| allowed.contains(&k.as_str())) {
        return Err(ApiError::InvalidCursor);
    }
    Ok(plain
        .into_iter()
        .map(|(k, v)| (k, AttributeValue::S(v)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pairs: &[(&str, &str)]) -> Key {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string())))
            .collect()
    }

    const ROOM: Partition<'static> = Partition {
        attribute: "PK",
        value: "T#acme#R#1",
    };

    #[test]
    fn round_trip() {
        let last = key(&[("PK", "T#acme#R#1"), ("SK", "M#01")]);
        let cursor = encode(&last);
        assert_eq!(decode(&cursor, ROOM, &["PK", "SK"]).unwrap(), last);
    }

    #[test]
    fn cursor_of_another_partition_is_refused() {
        let other = encode(&key(&[("PK", "T#globex#R#1"), ("SK", "M#01")]));
        assert!(matches!(
            decode(&other, ROOM, &["PK", "SK"]),
            Err(ApiError::InvalidCursor)
        ));
    }

    #[test]
    fn garbage_and_extra_attributes_are_refused() {
        for raw in ["", "%%%", "bm90IGpzb24", &"A".repeat(2000)] {
            assert!(decode(raw, ROOM, &["PK", "SK"]).is_err(), "{raw}");
        }
        let extra = encode(&key(&[
            ("PK", "T#acme#R#1"),
            ("SK", "M#01"),
            ("owner", "x"),
        ]));
        assert!(decode(&extra, ROOM, &["PK", "SK"]).is_err());
        let missing = encode(&key(&[("PK", "T#acme#R#1")]));
        assert!(decode(&missing, ROOM, &["PK", "SK"]).is_err());
    }
}
