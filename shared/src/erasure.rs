//! What erasing a person does to one item, decided without DynamoDB: the rules of
//! docs/data-protection.md, applied by the erasure job to every item it scans.
//!
//! - an item whose keys name the person (their partition, their rows, records keyed
//!   by them) goes;
//! - a message they wrote becomes a tombstone: no text, no files, no earlier
//!   versions, its sender the erasure's anonymous reference; its `seq` and position
//!   stay, so counts and the feed's numbering hold;
//! - a search entry of their message goes;
//! - anything else that mentions them (a feed event, a webhook delivery, a room's
//!   preview, an audit entry, a rollup's per-agent figures) is rewritten: their id
//!   becomes the reference, what they wrote (a `content`, `preview` or `snippet`
//!   beside their id) is emptied, their email and phone are cut out.

use crate::item::Item;
use crate::keys;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

/// Who is erased, and what stands for them afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub user: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `erased-{erasure id}`: names no one without the erasure's record.
    pub reference: String,
}

/// What the job does with one item.
#[derive(Debug, Clone, PartialEq)]
pub enum Scrub {
    Keep,
    Delete,
    /// A message of the person: these attributes set (and the rest of the
    /// message's text-bearing attributes removed), these files deleted.
    Tombstone {
        set: Vec<(String, AttributeValue)>,
        remove: Vec<String>,
        files: Vec<String>,
    },
    /// Attributes rewritten (name, new value, old value), and attributes whose
    /// name holds the person's id renamed (old name, new name, value); each
    /// conditioned on its old value.
    Rewrite {
        set: Vec<(String, AttributeValue, AttributeValue)>,
        renamed: Vec<(String, String, AttributeValue)>,
    },
}

/// Fields that hold what someone wrote, beside the writer's id.
const TEXT_FIELDS: &[&str] = &[
    "content",
    "preview",
    "snippet",
    "previous_versions",
    "attachments",
    "last_message_preview",
    "text",
];
/// Fields that name a writer.
const WRITER_FIELDS: &[&str] = &["sender_id", "last_sender_id", "author_id"];
/// Attributes of a message that go with its tombstone.
const MESSAGE_TEXT: &[&str] = &[
    "previous_versions",
    "client_message_id",
    "request",
    "edited_at",
];

impl Subject {
    fn names(&self, value: &str) -> bool {
        value == self.user
    }

    /// A key attribute that names the person as one of its `#` segments.
    fn in_key(&self, value: &str) -> bool {
        value.split('#').any(|segment| segment == self.user)
    }

    fn contact_in(&self, text: &str) -> bool {
        [&self.email, &self.phone]
            .into_iter()
            .flatten()
            .any(|c| !c.is_empty() && text.contains(c.as_str()))
    }

    fn cut_contacts(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for contact in [&self.email, &self.phone].into_iter().flatten() {
            if !contact.is_empty() {
                out = out.replace(contact.as_str(), "[erased]");
            }
        }
        out
    }

    /// The rule for one item (`org`'s, or outside the tenants: a connection or a
    /// phone token's owner).
    pub fn scrub(&self, org: &str, item: &Item) -> Scrub {
        let s = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
        };
        let pk = s(keys::PK).unwrap_or_default();
        if !pk.starts_with(&format!("T#{org}#")) {
            // The stack's own partitions: only a connection or a phone owner of this
            // person in this tenant.
            let tenant = s("org").or(s("tenant"));
            let theirs = item.values().any(|v| v.as_s().is_ok_and(|v| self.names(v)));
            return if tenant == Some(org) && theirs {
                Scrub::Delete
            } else {
                Scrub::Keep
            };
        }
        if pk.starts_with(&format!("T#{org}#ERASURES")) {
            return Scrub::Keep;
        }
        let key_names_them = [
            keys::PK,
            keys::SK,
            keys::GSI1PK,
            keys::GSI1SK,
            keys::GSI2PK,
            keys::GSI2SK,
        ]
        .iter()
        .filter_map(|k| s(k))
        .any(|v| self.in_key(v));
        if key_names_them {
            return Scrub::Delete;
        }
        let entity = s(keys::ENTITY).unwrap_or_default();
        let written_by_them = s("sender_id").is_some_and(|v| self.names(v));
        if entity == keys::entity::SEARCH_ENTRY && written_by_them {
            return Scrub::Delete;
        }
        if entity == keys::entity::MESSAGE && written_by_them {
            return self.tombstone(item);
        }
        let mut set = Vec::new();
        let mut renamed = Vec::new();
        let writer = WRITER_FIELDS
            .iter()
            .any(|f| s(f).is_some_and(|v| self.names(v)));
        for (name, value) in item {
            if [keys::PK, keys::SK].contains(&name.as_str()) {
                continue;
            }
            // Counters named by a person (a room's day stats: `customer:{id}`).
            if name.split(':').any(|part| self.names(part)) {
                let new_name = name
                    .split(':')
                    .map(|part| {
                        if self.names(part) {
                            self.reference.as_str()
                        } else {
                            part
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(":");
                renamed.push((name.clone(), new_name, value.clone()));
                continue;
            }
            let new = if writer && TEXT_FIELDS.contains(&name.as_str()) {
                empty_like(value)
            } else {
                self.rewrite(value)
            };
            if &new != value {
                set.push((name.clone(), new, value.clone()));
            }
        }
        if set.is_empty() && renamed.is_empty() {
            Scrub::Keep
        } else {
            Scrub::Rewrite { set, renamed }
        }
    }

    fn tombstone(&self, item: &Item) -> Scrub {
        let files = match item.get("attachments") {
            Some(AttributeValue::S(raw)) => serde_json::from_str::<Vec<Value>>(raw)
                .unwrap_or_default()
                .iter()
                .filter_map(|a| a["upload_id"].as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let mut set = vec![
            ("content".to_owned(), AttributeValue::S(String::new())),
            (
                "sender_id".to_owned(),
                AttributeValue::S(self.reference.clone()),
            ),
            ("erased".to_owned(), AttributeValue::Bool(true)),
        ];
        if item.contains_key("attachments") {
            set.push(("attachments".to_owned(), AttributeValue::S("[]".into())));
        }
        if !item.contains_key("deleted_at") {
            set.push((
                "deleted_at".to_owned(),
                AttributeValue::S(crate::time::now_string()),
            ));
        }
        let remove = MESSAGE_TEXT
            .iter()
            .filter(|a| item.contains_key(**a))
            .map(|a| (*a).to_owned())
            .collect();
        Scrub::Tombstone { set, remove, files }
    }

    /// An attribute with the person's id replaced, their contacts cut out and what
    /// they wrote emptied (in JSON documents held as strings too).
    fn rewrite(&self, value: &AttributeValue) -> AttributeValue {
        match value {
            AttributeValue::S(text) if self.names(text) => {
                AttributeValue::S(self.reference.clone())
            }
            AttributeValue::S(text) => {
                let trimmed = text.trim_start();
                if trimmed.starts_with('{') || trimmed.starts_with('[') {
                    if let Ok(mut json) = serde_json::from_str::<Value>(text) {
                        if self.rewrite_json(&mut json) {
                            return AttributeValue::S(json.to_string());
                        }
                        return value.clone();
                    }
                }
                if self.contact_in(text) {
                    AttributeValue::S(self.cut_contacts(text))
                } else {
                    value.clone()
                }
            }
            AttributeValue::Ss(set) if set.iter().any(|v| self.names(v)) => {
                let mut set: Vec<String> = set
                    .iter()
                    .map(|v| {
                        if self.names(v) {
                            self.reference.clone()
                        } else {
                            v.clone()
                        }
                    })
                    .collect();
                set.sort();
                set.dedup();
                AttributeValue::Ss(set)
            }
            AttributeValue::L(list) => {
                AttributeValue::L(list.iter().map(|v| self.rewrite(v)).collect())
            }
            AttributeValue::M(map) => AttributeValue::M(
                map.iter()
                    .map(|(k, v)| {
                        let k = if self.names(k) {
                            self.reference.clone()
                        } else {
                            k.clone()
                        };
                        (k, self.rewrite(v))
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// [`Self::rewrite`] in a JSON document; whether it changed.
    fn rewrite_json(&self, json: &mut Value) -> bool {
        match json {
            Value::String(text) => {
                if self.names(text) {
                    *text = self.reference.clone();
                    return true;
                }
                let trimmed = text.trim_start();
                if trimmed.starts_with('{') || trimmed.starts_with('[') {
                    if let Ok(mut inner) = serde_json::from_str::<Value>(text) {
                        if self.rewrite_json(&mut inner) {
                            *text = inner.to_string();
                            return true;
                        }
                        return false;
                    }
                }
                if self.contact_in(text) {
                    *text = self.cut_contacts(text);
                    return true;
                }
                false
            }
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |c, v| self.rewrite_json(v) | c),
            Value::Object(map) => {
                let mut changed = false;
                let writer = WRITER_FIELDS.iter().any(|f| {
                    map.get(*f)
                        .and_then(Value::as_str)
                        .is_some_and(|v| self.names(v))
                });
                if writer {
                    for field in TEXT_FIELDS {
                        if let Some(v) = map.get_mut(*field) {
                            let empty = match v {
                                Value::String(_) => Value::String(String::new()),
                                Value::Array(_) => Value::Array(Vec::new()),
                                _ => Value::Null,
                            };
                            if *v != empty {
                                *v = empty;
                                changed = true;
                            }
                        }
                    }
                }
                let renamed: Vec<String> = map.keys().filter(|k| self.names(k)).cloned().collect();
                for key in renamed {
                    if let Some(v) = map.remove(&key) {
                        map.insert(self.reference.clone(), v);
                        changed = true;
                    }
                }
                for v in map.values_mut() {
                    changed |= self.rewrite_json(v);
                }
                changed
            }
            _ => false,
        }
    }
}

/// The empty value of an attribute's kind.
fn empty_like(value: &AttributeValue) -> AttributeValue {
    match value {
        AttributeValue::S(text) if text.trim_start().starts_with('[') => {
            AttributeValue::S("[]".into())
        }
        AttributeValue::S(_) => AttributeValue::S(String::new()),
        AttributeValue::L(_) => AttributeValue::L(Vec::new()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::{ItemBuilder, s};

    fn subject() -> Subject {
        Subject {
            user: "ann-7".into(),
            email: Some("ann@example.com".into()),
            phone: Some("+15550100".into()),
            reference: "erased-01J0".into(),
        }
    }

    fn item(pairs: &[(&str, &str)]) -> Item {
        pairs
            .iter()
            .fold(ItemBuilder::new(), |b, (k, v)| b.str(k, *v))
            .build()
    }

    #[test]
    fn items_keyed_by_the_person_go() {
        for (pk, sk) in [
            ("T#acme#USER#ann-7", "PROFILE"),
            ("T#acme#USER#ann-7", "NOTIFY"),
            ("T#acme#R#01J", "U#ann-7"),
            ("T#acme#R#01J", "I#ann-7#key-1"),
            ("T#acme#ORDER#direct#ann-7#bob", "ORDER"),
        ] {
            let it = item(&[("PK", pk), ("SK", sk)]);
            assert_eq!(subject().scrub("acme", &it), Scrub::Delete, "{pk} {sk}");
        }
        // Another tenant's item with the same user id is not this erasure's.
        let other = item(&[("PK", "T#globex#USER#ann-7"), ("SK", "PROFILE")]);
        assert_eq!(subject().scrub("acme", &other), Scrub::Keep);
        // Another person whose id starts the same is not them.
        let near = item(&[("PK", "T#acme#USER#ann-70"), ("SK", "PROFILE")]);
        assert_eq!(subject().scrub("acme", &near), Scrub::Keep);
        // Their connection (outside the tenants), not another tenant's.
        let conn = item(&[
            ("PK", "CONN#abc"),
            ("SK", "CONN"),
            ("org", "acme"),
            ("user_id", "ann-7"),
        ]);
        assert_eq!(subject().scrub("acme", &conn), Scrub::Delete);
        let theirs = item(&[
            ("PK", "CONN#abc"),
            ("SK", "CONN"),
            ("org", "globex"),
            ("user_id", "ann-7"),
        ]);
        assert_eq!(subject().scrub("acme", &theirs), Scrub::Keep);
    }

    #[test]
    fn their_messages_become_tombstones_and_others_stay() {
        let mut theirs = item(&[
            ("PK", "T#acme#R#01J"),
            ("SK", "M#01K"),
            ("entity", "message"),
            ("sender_id", "ann-7"),
            ("content", "my address is 1 Main St"),
            ("attachments", r#"[{"name":"a.png","upload_id":"01U"}]"#),
            ("client_message_id", "c-1"),
        ]);
        theirs.insert("seq".into(), AttributeValue::N("7".into()));
        let Scrub::Tombstone { set, remove, files } = subject().scrub("acme", &theirs) else {
            panic!("a tombstone");
        };
        assert_eq!(files, ["01U"]);
        assert!(set.contains(&("content".into(), s(""))));
        assert!(set.contains(&("sender_id".into(), s("erased-01J0"))));
        assert_eq!(remove, ["client_message_id"]);
        assert!(!set.iter().any(|(k, _)| k == "seq"), "seq stays");
        let bobs = item(&[
            ("PK", "T#acme#R#01J"),
            ("SK", "M#01L"),
            ("entity", "message"),
            ("sender_id", "bob"),
            ("content", "hi Ann"),
        ]);
        assert_eq!(subject().scrub("acme", &bobs), Scrub::Keep);
    }

    #[test]
    fn mentions_are_rewritten_in_attributes_and_json() {
        let event = item(&[
            ("PK", "T#acme#R#01J"),
            ("SK", "E#000000000007"),
            ("entity", "event"),
            ("actor_id", "ann-7"),
            (
                "data",
                r#"{"sender_id":"ann-7","content":"secret words","room_id":"01J","by":{"ann-7":3},"note":"mail ann@example.com"}"#,
            ),
        ]);
        let Scrub::Rewrite { set: changes, .. } = subject().scrub("acme", &event) else {
            panic!("rewritten");
        };
        let new: std::collections::HashMap<_, _> = changes
            .iter()
            .map(|(k, v, _)| (k.as_str(), v.clone()))
            .collect();
        assert_eq!(new["actor_id"], s("erased-01J0"));
        let data: Value = serde_json::from_str(new["data"].as_s().unwrap()).unwrap();
        assert_eq!(data["content"], "");
        assert_eq!(data["sender_id"], "erased-01J0");
        assert_eq!(data["by"]["erased-01J0"], 3);
        assert_eq!(data["note"], "mail [erased]");
        let text = new["data"].as_s().unwrap();
        assert!(!text.contains("ann-7") && !text.contains("secret words"));
        // A room whose last message was theirs: the preview goes.
        let room = item(&[
            ("PK", "T#acme#R#01J"),
            ("SK", "META"),
            ("entity", "room"),
            ("last_sender_id", "ann-7"),
            ("last_message_preview", "secret words"),
            ("owner_id", "bob"),
        ]);
        let Scrub::Rewrite { set: changes, .. } = subject().scrub("acme", &room) else {
            panic!("rewritten");
        };
        assert!(changes.contains(&("last_message_preview".into(), s(""), s("secret words"))));
        // A room's day stats count customers by id: the counter is renamed.
        let mut stats = item(&[("PK", "T#acme#R#01J"), ("SK", "STATS#2026-12-04")]);
        stats.insert("customer:ann-7".into(), AttributeValue::N("1".into()));
        stats.insert("customer:bob".into(), AttributeValue::N("1".into()));
        assert_eq!(
            subject().scrub("acme", &stats),
            Scrub::Rewrite {
                set: vec![],
                renamed: vec![(
                    "customer:ann-7".into(),
                    "customer:erased-01J0".into(),
                    AttributeValue::N("1".into())
                )],
            }
        );
        // An item that names nobody stays as it is.
        let other = item(&[("PK", "T#acme#R#01J"), ("SK", "META"), ("owner_id", "bob")]);
        assert_eq!(subject().scrub("acme", &other), Scrub::Keep);
    }
}
