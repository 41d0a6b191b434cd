//! Word search over messages, without a Scan: every public message and note has an
//! index entry per distinct word, written, rewritten and deleted in the same
//! transaction as the message itself.

use super::{Page, Store};
use crate::auth::Principal;
use crate::cursor::{self, Partition};
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, RoomId};
use crate::item::{ItemBuilder, ItemExt, s, values};
use crate::keys;
use crate::model::{Message, Room, RoomType};
use crate::store::MessageChange;
use crate::wire::Row;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, TransactWriteItem};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// A message found by search, as the API shows it (from its index entry).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    pub message_id: String,
    pub conversation_id: String,
    pub room_id: String,
    /// The message's opening words, as indexed.
    pub content: Option<String>,
    pub sender: Option<String>,
    pub sender_id: Option<String>,
    pub created_at: Option<String>,
}

impl SearchHit {
    fn from_entry(entry: &impl ItemExt) -> Option<SearchHit> {
        let room_id = entry.string("room_id")?;
        Some(SearchHit {
            message_id: entry.string("message_id")?,
            conversation_id: room_id.clone(),
            room_id,
            content: entry.string("snippet"),
            sender: entry.string("sender"),
            sender_id: entry.string("sender_id"),
            created_at: entry.string("created_at"),
        })
    }
}

/// Distinct words indexed per message (the rest of a long message is not searchable).
pub const MAX_INDEXED_WORDS: usize = 20;
/// Longest search query accepted.
pub const MAX_QUERY_CHARS: usize = 200;
const SNIPPET_CHARS: usize = 200;
/// Index entries read per search request (the filters then keep what the caller may
/// see). At most 100, so their rooms fit one BatchGetItem: an entry whose room was not
/// fetched would be dropped as invisible.
const ENTRIES_PER_READ: i32 = 100;

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "is", "it", "me",
    "my", "no", "not", "of", "on", "or", "so", "that", "the", "this", "to", "was", "we", "you",
    "your", "i", "im", "hi", "hello",
];

/// The words a text is found by: lowercase letters and digits, 2 to 32 characters,
/// no stop words, first occurrence order, at most MAX_INDEXED_WORDS.
pub fn index_words(text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut words = Vec::new();
    for raw in text.split(|c: char| !c.is_alphanumeric()) {
        let word = raw.to_lowercase();
        let len = word.chars().count();
        if !(2..=32).contains(&len) || STOP_WORDS.contains(&word.as_str()) {
            continue;
        }
        if seen.insert(word.clone()) {
            words.push(word);
            if words.len() == MAX_INDEXED_WORDS {
                break;
            }
        }
    }
    words
}

fn snippet(text: &str) -> String {
    text.chars().take(SNIPPET_CHARS).collect()
}

impl Store {
    fn search_entry(
        &self,
        org: &OrgId,
        room: &Room,
        message: &Message,
        word: &str,
        words: &[String],
    ) -> TransactWriteItem {
        let item = ItemBuilder::new()
            .str(keys::PK, keys::search_pk(org, word))
            .str(keys::SK, keys::search_sk(&message.id, &room.id))
            .str(keys::ENTITY, keys::entity::SEARCH_ENTRY)
            .str("room_id", room.id.as_str())
            .str("message_id", message.id.as_str())
            .str("sender_id", &message.sender_id)
            .str("sender", &message.sender)
            .str("snippet", snippet(&message.content))
            .str("created_at", &message.created_at)
            .flag("support", room.room_type == RoomType::Support)
            .flag("note", message.is_note())
            .set("words", AttributeValue::Ss(words.to_vec()))
            .build();
        super::put(self.name(), item, false)
    }

    fn search_delete(
        &self,
        org: &OrgId,
        room: &Room,
        message: &Message,
        word: &str,
    ) -> TransactWriteItem {
        let delete = Delete::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::search_pk(org, word)))
            .key(keys::SK, s(keys::search_sk(&message.id, &room.id)))
            .build()
            .expect("delete has key");
        TransactWriteItem::builder().delete(delete).build()
    }

    /// Index entries for a new message.
    pub(crate) fn search_writes(
        &self,
        org: &OrgId,
        room: &Room,
        message: &Message,
    ) -> Vec<TransactWriteItem> {
        let words = index_words(&message.content);
        words
            .iter()
            .map(|w| self.search_entry(org, room, message, w, &words))
            .collect()
    }

    /// Index changes for an edit (old words out, new words in) or a delete.
    pub(crate) fn search_changes_for(
        &self,
        who: &Principal,
        room: &Room,
        message: &Message,
        change: &MessageChange,
    ) -> Vec<TransactWriteItem> {
        match change {
            MessageChange::Delete => index_words(&message.content)
                .iter()
                .map(|w| self.search_delete(&who.org, room, message, w))
                .collect(),
            MessageChange::Edit { .. } => {
                let old = message
                    .previous_versions
                    .last()
                    .map(|v| index_words(&v.content))
                    .unwrap_or_default();
                let new = index_words(&message.content);
                let mut writes: Vec<TransactWriteItem> = old
                    .iter()
                    .filter(|w| !new.contains(w))
                    .map(|w| self.search_delete(&who.org, room, message, w))
                    .collect();
                writes.extend(
                    new.iter()
                        .map(|w| self.search_entry(&who.org, room, message, w, &new)),
                );
                writes
            }
            // The text stays, and so do its entries.
            MessageChange::ExpireFiles => Vec::new(),
        }
    }

    /// Messages matching every word of `query`, newest first, in rooms the caller may
    /// read: one Query of the rarest-looking word's entries (filtered by the other
    /// words, and notes for customers), then one BatchGetItem of their rooms to keep
    /// only rooms the caller may read now.
    pub async fn search(
        &self,
        who: &Principal,
        query: &str,
        limit: u32,
        cursor_raw: Option<&str>,
    ) -> ApiResult<Page<SearchHit>> {
        let words = index_words(query);
        let Some(lead) = words.iter().max_by_key(|w| w.chars().count()).cloned() else {
            return Err(ApiError::invalid(
                "query",
                "needs a word of 2 or more letters or digits that is not a stop word",
            ));
        };
        let pk = keys::search_pk(&who.org, &lead);
        let start = cursor::start(cursor_raw, Partition::pk(&pk), cursor::TABLE_KEYS)?;
        let mut filters = Vec::new();
        let mut vals = values([(":pk", s(&pk))]);
        for (i, word) in words.iter().filter(|w| **w != lead).enumerate() {
            filters.push(format!("contains(words, :w{i})"));
            vals.insert(format!(":w{i}"), s(word));
        }
        if !who.role.is_staff() {
            filters.push("note = :false".to_owned());
            vals.insert(":false".into(), AttributeValue::Bool(false));
        }
        let answer = self
            .table
            .query_answer("search", start, |query| {
                query
                    .key_condition_expression("PK = :pk")
                    .set_expression_attribute_values(Some(vals))
                    .scan_index_forward(false)
                    .limit(ENTRIES_PER_READ)
                    .set_filter_expression((!filters.is_empty()).then(|| filters.join(" AND ")))
            })
            .await?;
        // Rows borrowed from the answer's text: no attribute map per entry.
        let entries = answer.page()?;
        let mut rooms = self
            .rooms_by_id(
                &who.org,
                entries.rows.iter().filter_map(|e| e.str("room_id")),
            )
            .await?;
        // A large room's members are its rows: the caller's, for those they may be in.
        for room in rooms.values_mut().filter(|r| r.needs_row_of(who)) {
            if let Some(viewed) = self.viewed(who, Some(room.clone())).await? {
                *room = viewed;
            }
        }
        let visible = entries.rows.iter().filter(|entry| {
            entry
                .str("room_id")
                .and_then(|r| rooms.get(r))
                .is_some_and(|room| room.visible_to(who))
        });
        let mut hits = Vec::new();
        let mut next = entries.last_key;
        let mut last_returned: Option<&Row> = None;
        for entry in visible {
            if hits.len() == limit as usize {
                // A full page: continue after the last entry returned.
                next =
                    last_returned.map(|entry| cursor::key_of(&entry.to_item(), cursor::TABLE_KEYS));
                break;
            }
            hits.extend(SearchHit::from_entry(entry));
            last_returned = Some(entry);
        }
        Ok(Page {
            items: hits,
            next_cursor: next.as_ref().map(cursor::encode),
        })
    }

    /// Room items by id, one BatchGetItem (at most 100 distinct rooms).
    async fn rooms_by_id<'a>(
        &self,
        org: &OrgId,
        ids: impl Iterator<Item = &'a str>,
    ) -> ApiResult<HashMap<String, Room>> {
        let ids: BTreeSet<&str> = ids.collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let item_keys: Vec<(String, String)> = ids
            .iter()
            .filter_map(|id| RoomId::parse(id).ok())
            .map(|room| (keys::room_pk(org, &room), keys::ROOM_SK.to_owned()))
            .collect();
        Ok(self
            .batch_get(&item_keys, "search rooms")
            .await?
            .rows()?
            .iter()
            .filter_map(Room::from_item)
            .map(|room| (room.id.to_string(), room))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_normalised_deduplicated_and_bounded() {
        assert_eq!(
            index_words("My order number is #12345, ORDER!"),
            vec!["order", "number", "12345"]
        );
        assert_eq!(index_words("the a I"), Vec::<String>::new());
        let long: String = (0..50).map(|i| format!("w{i} ")).collect();
        assert_eq!(index_words(&long).len(), MAX_INDEXED_WORDS);
        assert_eq!(index_words("Ünïcode café"), vec!["ünïcode", "café"]);
    }
}
