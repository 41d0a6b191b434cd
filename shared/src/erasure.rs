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
/// Fields whose value is one user id (in items and in the JSON they hold).
const ID_FIELDS: &[&str] = &[
    "user_id",
    "sender_id",
    "last_sender_id",
    "author_id",
    "owner_id",
    "customer_id",
    "agent_id",
    "assignee_id",
    "actor_id",
    "actor",
    "requested_by",
    "updated_by",
    "viewer",
];
/// Fields whose value is a list (or set) of user ids.
const ID_LIST_FIELDS: &[&str] = &[
    "members",
    "user_ids",
    "participant_ids",
    "customers",
    // A support team's agents.
    "agents",
];
/// Fields whose value is a map keyed by user ids (a rollup's per-agent figures).
const ID_MAP_FIELDS: &[&str] = &["agents"];
/// Counters named by a user id (a room's day stats): `{prefix}{id}`.
const ID_COUNTER_PREFIXES: &[&str] = &[
    "customer:",
    "sent:",
    "assigned:",
    "resolved:",
    "csat_ratings:",
    "csat_score:",
];
/// Attributes never rewritten: keys, kinds and states (an id may spell one).
const NEVER: &[&str] = &[
    keys::PK,
    keys::SK,
    keys::GSI1PK,
    keys::GSI1SK,
    keys::GSI2PK,
    keys::GSI2SK,
    keys::ENTITY,
    "org",
    "status",
    "type",
    "sender",
    "member_role",
    "room_type",
];
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

    /// Whether an item's keys name the person where keys hold a user id (and not,
    /// say, a search word that happens to spell their id): their partition, their
    /// member row and idempotency records, their inbox index, the natural key of a
    /// direct chat of theirs or of an order chat whose agent or customer they are.
    fn keys_name_them(&self, org: &str, pk: &str, sk: &str, gsi1pk: &str) -> bool {
        let natural: Option<Vec<&str>> = pk
            .strip_prefix(&format!("T#{org}#ORDER#"))
            .map(|natural| natural.split('#').collect());
        let in_natural_key = match natural.as_deref() {
            Some(["direct", users @ ..]) => users.iter().any(|u| self.names(u)),
            // {type}#{order}#{vendor}#{agent}#{customer}
            Some([_, _, _, agent, customer]) => self.names(agent) || self.names(customer),
            _ => false,
        };
        pk == format!("T#{org}#USER#{}", self.user)
            // Their workload as an agent (availability, capacity, teams).
            || pk == format!("T#{org}#AGENT#{}", self.user)
            || gsi1pk == format!("T#{org}#INBOX#{}", self.user)
            || sk == format!("U#{}", self.user)
            || sk.starts_with(&format!("I#{}#", self.user))
            || in_natural_key
    }

    /// Where the person's email (any case, as a whole address) or phone (as a whole
    /// number) stands in `text`.
    fn contacts(&self, text: &str) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        let lower = text.to_lowercase();
        let email_char = |c: char| c.is_alphanumeric() || "._%+-@".contains(c);
        let phone_char = |c: char| c.is_ascii_digit() || c == '+';
        for (contact, boundary) in [
            (
                self.email.as_deref().map(str::to_lowercase),
                &email_char as &dyn Fn(char) -> bool,
            ),
            (self.phone.clone(), &phone_char as &dyn Fn(char) -> bool),
        ] {
            let Some(contact) = contact.filter(|c| !c.is_empty()) else {
                continue;
            };
            // Lower-casing keeps byte offsets for the ASCII of addresses and numbers.
            if lower.len() != text.len() {
                continue;
            }
            let mut from = 0;
            while let Some(at) = lower[from..].find(&contact) {
                let (start, end) = (from + at, from + at + contact.len());
                let before = lower[..start].chars().next_back();
                let after = lower[end..].chars().next();
                if !before.is_some_and(|c| boundary(c)) && !after.is_some_and(|c| boundary(c)) {
                    found.push((start, end));
                }
                from = end;
            }
        }
        found.sort_unstable();
        found
    }

    fn cut_contacts(&self, text: &str) -> Option<String> {
        let found = self.contacts(text);
        if found.is_empty() {
            return None;
        }
        let mut out = String::new();
        let mut last = 0;
        for (start, end) in found {
            if start < last {
                continue;
            }
            out.push_str(&text[last..start]);
            out.push_str("[erased]");
            last = end;
        }
        out.push_str(&text[last..]);
        Some(out)
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
            return if s("org") == Some(org) && s("user_id").is_some_and(|u| self.names(u)) {
                Scrub::Delete
            } else {
                Scrub::Keep
            };
        }
        if pk.starts_with(&format!("T#{org}#ERASURES")) {
            return Scrub::Keep;
        }
        let sk = s(keys::SK).unwrap_or_default();
        let gsi1pk = s(keys::GSI1PK).unwrap_or_default();
        if self.keys_name_them(org, pk, sk, gsi1pk) {
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
            if NEVER.contains(&name.as_str()) {
                continue;
            }
            if let Some(prefix) = ID_COUNTER_PREFIXES
                .iter()
                .find(|p| name.strip_prefix(**p).is_some_and(|id| self.names(id)))
            {
                renamed.push((
                    name.clone(),
                    format!("{prefix}{}", self.reference),
                    value.clone(),
                ));
                continue;
            }
            let new = if writer && TEXT_FIELDS.contains(&name.as_str()) {
                empty_like(value)
            } else {
                self.rewrite(name, value)
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

    /// The attribute `name` with the person's id replaced where it holds ids, their
    /// contacts cut out of text, and JSON held in it walked the same way.
    fn rewrite(&self, name: &str, value: &AttributeValue) -> AttributeValue {
        match value {
            AttributeValue::S(text) if ID_FIELDS.contains(&name) && self.names(text) => {
                AttributeValue::S(self.reference.clone())
            }
            AttributeValue::S(text) => {
                let trimmed = text.trim_start();
                if trimmed.starts_with('{') || trimmed.starts_with('[') {
                    if let Ok(mut json) = serde_json::from_str::<Value>(text) {
                        return if self.rewrite_json(&mut json) {
                            AttributeValue::S(json.to_string())
                        } else {
                            value.clone()
                        };
                    }
                }
                self.cut_contacts(text)
                    .map_or_else(|| value.clone(), AttributeValue::S)
            }
            AttributeValue::Ss(set)
                if ID_LIST_FIELDS.contains(&name) && set.iter().any(|v| self.names(v)) =>
            {
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
                AttributeValue::L(list.iter().map(|v| self.rewrite(name, v)).collect())
            }
            AttributeValue::M(map) => AttributeValue::M(
                map.iter()
                    .map(|(k, v)| {
                        let k = if ID_MAP_FIELDS.contains(&name) && self.names(k) {
                            self.reference.clone()
                        } else {
                            k.clone()
                        };
                        (k.clone(), self.rewrite(&k, v))
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// [`Self::rewrite`] in a JSON document (and in JSON documents held in its
    /// strings); whether it changed.
    fn rewrite_json(&self, json: &mut Value) -> bool {
        match json {
            Value::String(text) => self.rewrite_json_text(text),
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
                for (key, v) in map.iter_mut() {
                    let key = key.as_str();
                    if NEVER.contains(&key) {
                        continue;
                    }
                    match v {
                        Value::String(id) if ID_FIELDS.contains(&key) && self.names(id) => {
                            *id = self.reference.clone();
                            changed = true;
                        }
                        Value::Array(ids) if ID_LIST_FIELDS.contains(&key) => {
                            for id in ids.iter_mut() {
                                if id.as_str().is_some_and(|i| self.names(i)) {
                                    *id = Value::String(self.reference.clone());
                                    changed = true;
                                }
                            }
                        }
                        Value::Object(by_id) if ID_MAP_FIELDS.contains(&key) => {
                            if let Some(figures) = by_id.remove(&self.user) {
                                by_id.insert(self.reference.clone(), figures);
                                changed = true;
                            }
                            changed |= by_id
                                .values_mut()
                                .fold(false, |c, v| self.rewrite_json(v) | c);
                        }
                        other => changed |= self.rewrite_json(other),
                    }
                }
                changed
            }
            _ => false,
        }
    }

    fn rewrite_json_text(&self, text: &mut String) -> bool {
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
        match self.cut_contacts(text) {
            Some(cut) => {
                *text = cut;
                true
            }
            None => false,
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
            ("T#acme#AGENT#ann-7", "LOAD"),
            ("T#acme#USER#ann-7", "CANNED#thanks"),
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
                r#"{"sender_id":"ann-7","content":"secret words","room_id":"01J","agents":{"ann-7":3},"note":"mail Ann@Example.com, not joann@example.com"}"#,
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
        assert_eq!(data["agents"]["erased-01J0"], 3);
        assert_eq!(data["note"], "mail [erased], not joann@example.com");
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
        // Someone else's words that spell the id, and a search word equal to it.
        let titled = item(&[
            ("PK", "T#acme#R#01J"),
            ("SK", "META"),
            ("title", "ann-7"),
            ("data", r#"{"content":"ann-7","sender_id":"bob"}"#),
        ]);
        assert_eq!(subject().scrub("acme", &titled), Scrub::Keep);
        let word = item(&[
            ("PK", "T#acme#W#ann-7"),
            ("SK", "M#01K#01J"),
            ("sender_id", "bob"),
        ]);
        assert_eq!(subject().scrub("acme", &word), Scrub::Keep);
        // Ids that spell a kind, a state or a number elsewhere are not them there.
        let user = Subject {
            user: "5".into(),
            ..subject()
        };
        let room = item(&[
            ("PK", "T#acme#R#01J"),
            ("SK", "META"),
            ("order_id", "5"),
            ("vendor_id", "5"),
            ("status", "5"),
            ("owner_id", "5"),
        ]);
        let Scrub::Rewrite { set, .. } = user.scrub("acme", &room) else {
            panic!("the owner rewritten");
        };
        assert_eq!(set.len(), 1, "{set:?}");
        assert_eq!(set[0].0, "owner_id");
        let order = item(&[("PK", "T#acme#ORDER#order#5#7#9#u-1"), ("SK", "ORDER")]);
        assert_eq!(
            user.scrub("acme", &order),
            Scrub::Keep,
            "order 5 is not user 5"
        );
        let theirs = item(&[("PK", "T#acme#ORDER#order#77#7#5#u-1"), ("SK", "ORDER")]);
        assert_eq!(
            user.scrub("acme", &theirs),
            Scrub::Delete,
            "user 5 as the agent"
        );
        let org_named = Subject {
            user: "acme".into(),
            ..subject()
        };
        let conn = item(&[
            ("PK", "CONN#x"),
            ("SK", "CONN"),
            ("org", "acme"),
            ("user_id", "bob"),
        ]);
        assert_eq!(org_named.scrub("acme", &conn), Scrub::Keep);
        let stats = {
            let mut stats = item(&[("PK", "T#acme#R#01J"), ("SK", "STATS#2026-12-04")]);
            stats.insert("by_sender:user".into(), AttributeValue::N("4".into()));
            stats
        };
        let user_named = Subject {
            user: "user".into(),
            ..subject()
        };
        assert_eq!(user_named.scrub("acme", &stats), Scrub::Keep);
        // An item that names nobody stays as it is.
        let other = item(&[("PK", "T#acme#R#01J"), ("SK", "META"), ("owner_id", "bob")]);
        assert_eq!(subject().scrub("acme", &other), Scrub::Keep);
    }
}
