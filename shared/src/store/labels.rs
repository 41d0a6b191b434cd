//! Labels (docs/support.md): the tenant's list (`T#{org}#LABELS` / `L#{name}`, with a
//! count), and the labels of a support conversation, kept on the room and copied to
//! its rows like its status, so an inbox filters by label in its one Query. Labels are
//! the desk's: customers never see them (answers, rows and feed events alike).

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, UserId};
use crate::item::{Item, ItemBuilder, ItemExt, s, values};
use crate::keys;
use crate::model::{Room, RoomType};
use crate::store::analytics::{Counts, counter, day_of};
use crate::store::{Change, EventKind, Plan, Store};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};

/// Labels a tenant may define.
pub const MAX_LABELS: usize = 100;
/// Labels one conversation may carry.
pub const MAX_CONVERSATION_LABELS: usize = 20;

/// A label of the tenant's list.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// Lowercase letters, digits, `-` and `_` (1–40): its id and its text.
    pub name: String,
    pub description: Option<String>,
    /// `#rrggbb`.
    pub color: Option<String>,
    pub created_at: String,
}

impl Label {
    fn key(org: &OrgId, name: &str) -> (String, String) {
        (keys::labels_pk(org), keys::label_sk(name))
    }

    fn item(&self, org: &OrgId) -> Item {
        let (pk, sk) = Self::key(org, &self.name);
        ItemBuilder::new()
            .str(keys::PK, pk)
            .str(keys::SK, sk)
            .str(keys::ENTITY, keys::entity::LABEL)
            .str("name", &self.name)
            .opt_str("description", self.description.clone())
            .opt_str("color", self.color.clone())
            .str("created_at", &self.created_at)
            .build()
    }

    fn from_item(item: &impl ItemExt) -> Option<Label> {
        if item.str(keys::ENTITY) != Some(keys::entity::LABEL) {
            return None;
        }
        Some(Label {
            name: item.string("name")?,
            description: item.string("description"),
            color: item.string("color"),
            created_at: item.string("created_at").unwrap_or_default(),
        })
    }

    pub fn json(&self) -> Value {
        json!({
            "name": self.name,
            "description": self.description,
            "color": self.color,
            "created_at": self.created_at,
        })
    }
}

/// What a labelling call does to a conversation's labels.
#[derive(Debug, Clone, PartialEq)]
pub enum Labelling {
    Add(Vec<String>),
    Remove(String),
}

impl Store {
    pub async fn create_label(&self, org: &OrgId, label: &Label) -> ApiResult<()> {
        let listed = self.list_labels(org).await?.len();
        let count = (keys::labels_pk(org), keys::LABEL_COUNT_SK.to_owned());
        let writes = super::counted_put(self.name(), count, MAX_LABELS, listed, label.item(org));
        self.put_counted(
            writes,
            "create label",
            || ApiError::Conflict {
                code: "too_many_labels",
                message: format!("a tenant has at most {MAX_LABELS} labels"),
            },
            || ApiError::Conflict {
                code: "label_exists",
                message: format!("the label {} exists", label.name),
            },
        )
        .await
    }

    pub async fn list_labels(&self, org: &OrgId) -> ApiResult<Vec<Label>> {
        let items = self
            .table
            .query_all("list labels", |query| {
                query
                    .key_condition_expression("PK = :pk AND begins_with(SK, :l)")
                    .expression_attribute_values(":pk", s(keys::labels_pk(org)))
                    .expression_attribute_values(":l", s(keys::LABEL_SK_PREFIX))
            })
            .await?;
        Ok(items.iter().filter_map(Label::from_item).collect())
    }

    /// Takes a label off the tenant's list: it can no longer be added; conversations
    /// that carry it keep it (and are still found by it) until it is removed from them.
    pub async fn delete_label(&self, org: &OrgId, name: &str) -> ApiResult<()> {
        self.delete_counted(
            Label::key(org, name),
            (keys::labels_pk(org), keys::LABEL_COUNT_SK.to_owned()),
            Vec::new(),
            "delete label",
            ApiError::NotFound("label"),
        )
        .await
    }

    /// Which of `names` the tenant's list lacks (one BatchGetItem).
    async fn unknown_labels(&self, org: &OrgId, names: &[String]) -> ApiResult<Vec<String>> {
        let item_keys: Vec<_> = names.iter().map(|l| Label::key(org, l)).collect();
        let found = self.batch_get(&item_keys, "labels").await?;
        let known: Vec<Label> = found.rows()?.iter().filter_map(Label::from_item).collect();
        Ok(names
            .iter()
            .filter(|n| !known.iter().any(|k| &k.name == *n))
            .cloned()
            .collect())
    }

    /// Adds labels to a support conversation, or removes one: the room and every
    /// small room's row, the day's `label:` counters for labels newly added, and a
    /// staff-only `room.updated` (`labels`) in its feed, in one transaction.
    pub async fn label_conversation(
        &self,
        who: &Principal,
        room: Room,
        change: &Labelling,
    ) -> ApiResult<Room> {
        if room.room_type != RoomType::Support {
            return Err(ApiError::invalid(
                "labels",
                "labels are for support conversations",
            ));
        }
        if let Labelling::Add(names) = change {
            let unknown = self.unknown_labels(&who.org, names).await?;
            if !unknown.is_empty() {
                return Err(ApiError::invalid(
                    "labels",
                    format!("not one of the tenant's labels: {}", unknown.join(", ")),
                ));
            }
        }
        let now = crate::time::now_string();
        let room_id = room.id.clone();
        let labelled = self
            .room_transaction_from(who, &room_id, room, "label conversation", |room| {
                let (action, names, added, after) = applied(&room.labels, change)?;
                let vals = values([
                    (":now", s(&now)),
                    (":labels", AttributeValue::Ss(names.clone())),
                    (":count", crate::item::n(room.labels.len())),
                    (":zero", crate::item::n(0)),
                ]);
                // The labels as counted: a concurrent labelling makes this one count
                // again (two adds at 19 never make 21).
                let mut writes = vec![self.room_update_if(
                    room,
                    who,
                    &format!("SET updated_at = :now {action} labels :labels"),
                    vals,
                    &[],
                    Some("size(labels) = :count OR (attribute_not_exists(labels) AND :count = :zero)"),
                )];
                let mut counts = Counts::default();
                for label in &added {
                    counts.add(counter::label(label), 1);
                }
                writes.extend(self.stats_update(&who.org, &room.id, day_of(&now), &counts));
                if !room.large {
                    for member in room.members.iter().filter_map(|m| UserId::parse(m).ok()) {
                        writes.push(self.member_update(
                            who,
                            &room.id,
                            &member,
                            &format!("{action} labels :labels"),
                            values([(":labels", AttributeValue::Ss(names.clone()))]),
                            &[],
                        ));
                    }
                }
                Ok(Plan::new(writes, Change::labels(&after)))
            })
            .await?;
        let (_, _, _, after) = applied(&labelled.labels, change)?;
        Ok(Room {
            labels: after,
            updated_at: now,
            ..labelled
        })
    }
}

impl Change {
    /// A conversation's labels as they now are: the desk's, so staff only.
    pub fn labels(labels: &[String]) -> Change {
        Change {
            kind: EventKind::RoomUpdated,
            staff_only: true,
            data: json!({ "labels": labels }).to_string(),
        }
    }
}

/// A label's name, checked: lowercase letters, digits, `-` and `_`, 1 to 40.
pub fn label_name(field: &str, raw: &str) -> ApiResult<String> {
    crate::request::slug(field, raw, 40)
}

/// A labelling applied to `current`: the expression's action and names, the labels
/// newly added, and the labels after.
fn applied(
    current: &[String],
    change: &Labelling,
) -> ApiResult<(&'static str, Vec<String>, Vec<String>, Vec<String>)> {
    let (action, names) = match change {
        Labelling::Add(names) => ("ADD", names.clone()),
        Labelling::Remove(name) if current.contains(name) => ("DELETE", vec![name.clone()]),
        Labelling::Remove(_) => return Err(ApiError::NotFound("label")),
    };
    let added: Vec<String> = names
        .iter()
        .filter(|l| !current.contains(l))
        .cloned()
        .collect();
    let mut after: Vec<String> = current.to_vec();
    match action {
        "ADD" => after.extend(added.iter().cloned()),
        _ => after.retain(|l| !names.contains(l)),
    }
    if after.len() > MAX_CONVERSATION_LABELS {
        return Err(ApiError::invalid(
            "labels",
            format!("a conversation carries at most {MAX_CONVERSATION_LABELS} labels"),
        ));
    }
    after.sort();
    Ok((action, names, added, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_added_once_removed_when_there_and_bounded() {
        let current = vec!["vip".to_owned()];
        let (action, names, added, after) = applied(
            &current,
            &Labelling::Add(vec!["billing".into(), "vip".into()]),
        )
        .unwrap();
        assert_eq!((action, names.len()), ("ADD", 2));
        assert_eq!(added, ["billing"]);
        assert_eq!(after, ["billing", "vip"]);
        let (action, _, added, after) = applied(&after, &Labelling::Remove("vip".into())).unwrap();
        assert_eq!(
            (action, added.len(), after),
            ("DELETE", 0, vec!["billing".to_owned()])
        );
        assert!(applied(&current, &Labelling::Remove("billing".into())).is_err());
        let many: Vec<String> = (0..MAX_CONVERSATION_LABELS)
            .map(|i| format!("l{i}"))
            .collect();
        assert!(applied(&many, &Labelling::Add(vec!["one-more".into()])).is_err());
        assert!(applied(&many, &Labelling::Add(vec!["l3".into()])).is_ok());
    }

    #[test]
    fn a_label_name_has_one_spelling() {
        assert!(label_name("name", "vip").is_ok());
        assert!(label_name("name", "refund_2-b").is_ok());
        for bad in [
            "",
            "VIP",
            "Vip",
            "v i p",
            "vip ",
            "étiquette",
            &"x".repeat(41),
        ] {
            assert!(label_name("name", bad).is_err(), "{bad:?}");
        }
    }
}
