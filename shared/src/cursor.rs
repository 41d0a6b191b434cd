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

/// The key attributes `attributes` of an item: where a page that ends on it continues.
pub fn key_of(item: &Key, attributes: &[&str]) -> Key {
    attributes
        .iter()
        .filter_map(|k| item.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect()
}

/// What a cursor carries: the last key of its page, which listing it continues (two
/// listings of one partition must not take each other's cursors) and, for listings
/// that count, the total as of their first page.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub key: Key,
    pub total: Option<u64>,
}

pub fn encode(key: &Key) -> String {
    encode_tagged("", key, None)
}

/// A cursor of `listing` (empty: a listing that is alone in its partition).
pub fn encode_tagged(listing: &str, key: &Key, total: Option<u64>) -> String {
    let total = total.map(|t| t.to_string());
    let mut plain: BTreeMap<&str, &str> = BTreeMap::new();
    plain.insert("v", VERSION);
    if !listing.is_empty() {
        plain.insert(LISTING, listing);
    }
    if let Some(total) = &total {
        plain.insert(TOTAL, total);
    }
    for (name, value) in key {
        if let AttributeValue::S(s) = value {
            plain.insert(name.as_str(), s.as_str());
        }
    }
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&plain).expect("string map serializes"))
}

/// Entries of a cursor that are not key attributes (no attribute has these names).
const LISTING: &str = "~l";
const TOTAL: &str = "~n";

/// Decodes a cursor for `partition`, accepting only the key attributes `allowed`.
pub fn decode(raw: &str, partition: Partition<'_>, allowed: &[&str]) -> Result<Key, ApiError> {
    Ok(decode_tagged(raw, "", partition, allowed)?.key)
}

/// Decodes a cursor of `listing` for `partition`, accepting only the key attributes
/// `allowed`.
pub fn decode_tagged(
    raw: &str,
    listing: &str,
    partition: Partition<'_>,
    allowed: &[&str],
) -> Result<Cursor, ApiError> {
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
    if plain.remove(LISTING).unwrap_or_default() != listing {
        return Err(ApiError::InvalidCursor);
    }
    let total = match plain.remove(TOTAL) {
        Some(t) => Some(t.parse().map_err(|_| ApiError::InvalidCursor)?),
        None => None,
    };
    if plain.get(partition.attribute).map(String::as_str) != Some(partition.value) {
        return Err(ApiError::InvalidCursor);
    }
    if plain.len() != allowed.len() || !plain.keys().all(|k| allowed.contains(&k.as_str())) {
        return Err(ApiError::InvalidCursor);
    }
    let key = plain
        .into_iter()
        .map(|(k, v)| (k, AttributeValue::S(v)))
        .collect();
    Ok(Cursor { key, total })
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
    fn a_cursor_continues_only_its_own_listing_and_carries_its_total() {
        let last = key(&[("PK", "T#acme#R#1"), ("SK", "M#01")]);
        let rooms = encode_tagged("list rooms", &last, None);
        let inbox = encode_tagged("list inbox", &last, Some(7));
        let allowed = &["PK", "SK"];
        assert!(decode_tagged(&rooms, "list inbox", ROOM, allowed).is_err());
        assert!(decode_tagged(&inbox, "list rooms", ROOM, allowed).is_err());
        assert!(
            decode(&inbox, ROOM, allowed).is_err(),
            "an untagged listing refuses it"
        );
        let read = decode_tagged(&inbox, "list inbox", ROOM, allowed).unwrap();
        assert_eq!((read.key, read.total), (last.clone(), Some(7)));
        assert_eq!(
            decode_tagged(&rooms, "list rooms", ROOM, allowed)
                .unwrap()
                .total,
            None
        );
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
