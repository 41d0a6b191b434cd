//! Labels (docs/support.md): the tenant's list (`T#{org}#LABELS` / `L#{name}`, with a
//! count), and the labels of a support conversation, kept on the room and copied to
//! its rows like its status, so an inbox filters by label in its one Query. Labels are
//! the desk's: customers never see them (answers, rows and feed events alike).

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, TeamId, UserId};
use crate::item::{Item, ItemBuilder, ItemExt, s, values};
use crate::keys;
use crate::model::{Room, RoomType};
use crate::store::analytics::{Counts, counter, day_of};
use crate::store::hours::BusinessHours;
use crate::store::sla::{self, SlaDue, SlaPolicy};
use crate::store::teams::Team;
use crate::store::{Change, EventKind, Plan, Store, WriteError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Update};
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
    /// Targets a conversation takes when the label is put on it (the earlier of its
    /// own and these, per target).
    pub sla: Option<SlaPolicy>,
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
            .opt_str("sla", self.sla.map(|sla| sla_text(&sla)))
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
            sla: item.str("sla").and_then(|p| serde_json::from_str(p).ok()),
            created_at: item.string("created_at").unwrap_or_default(),
        })
    }

    pub fn json(&self) -> Value {
        json!({
            "name": self.name,
            "description": self.description,
            "color": self.color,
            "sla": self.sla,
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

    /// Changes a label's description, color or SLA (`Some(None)` removes one); the
    /// SLA applies to conversations the label is put on from now. Answers the label.
    pub async fn update_label(
        &self,
        org: &OrgId,
        name: &str,
        change: &LabelChange,
    ) -> ApiResult<Label> {
        let (pk, sk) = Label::key(org, name);
        let mut update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .condition_expression("attribute_exists(PK)");
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        for (field, value) in [
            ("description", change.description.clone()),
            ("color", change.color.clone()),
            ("sla", change.sla.map(|sla| sla.map(|p| sla_text(&p)))),
        ] {
            match value {
                Some(Some(text)) => {
                    sets.push(format!("{field} = :{field}"));
                    update = update.expression_attribute_values(format!(":{field}"), s(text));
                }
                Some(None) => removes.push(field),
                None => {}
            }
        }
        let mut expression = Vec::new();
        if !sets.is_empty() {
            expression.push(format!("SET {}", sets.join(", ")));
        }
        if !removes.is_empty() {
            expression.push(format!("REMOVE {}", removes.join(", ")));
        }
        let update = update
            .update_expression(expression.join(" "))
            .build()
            .expect("update has key and expression");
        match self
            .table
            .update(update, Some(ReturnValue::AllNew), "update label")
            .await
        {
            Ok(item) => item
                .as_ref()
                .and_then(Label::from_item)
                .ok_or(ApiError::NotFound("label")),
            Err(WriteError::ConditionFailed(_)) => Err(ApiError::NotFound("label")),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// The tenant's labels of `names` that exist (one BatchGetItem).
    async fn labels_named(&self, org: &OrgId, names: &[String]) -> ApiResult<Vec<Label>> {
        let item_keys: Vec<_> = names.iter().map(|l| Label::key(org, l)).collect();
        let found = self.batch_get(&item_keys, "labels").await?;
        Ok(found.rows()?.iter().filter_map(Label::from_item).collect())
    }

    /// What a conversation's SLA is counted in, and its timer as it is: its team's
    /// business hours and the timer item (one BatchGetItem).
    async fn sla_context(
        &self,
        org: &OrgId,
        room: &Room,
    ) -> ApiResult<(Option<BusinessHours>, Option<Item>)> {
        let team = room.team_id.as_deref().and_then(|t| TeamId::parse(t).ok());
        let mut item_keys = vec![(keys::room_pk(org, &room.id), keys::SLA_TIMER_SK.to_owned())];
        if let Some(team) = &team {
            item_keys.push((keys::teams_pk(org), keys::team_sk(team)));
        }
        let found = self.batch_get(&item_keys, "sla context").await?;
        let rows = found.rows()?;
        let timer = rows
            .iter()
            .find(|i| i.str(keys::ENTITY) == Some(keys::entity::SLA_TIMER))
            .map(|i| i.to_item());
        let hours = rows
            .iter()
            .find_map(Team::from_item)
            .and_then(|t| t.business_hours);
        Ok((hours, timer))
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
        // The SLA policies of labels newly put on it.
        let mut policies = Vec::new();
        if let Labelling::Add(names) = change {
            let known = self.labels_named(&who.org, names).await?;
            let unknown: Vec<&str> = names
                .iter()
                .filter(|n| !known.iter().any(|k| &k.name == *n))
                .map(String::as_str)
                .collect();
            if !unknown.is_empty() {
                return Err(ApiError::invalid(
                    "labels",
                    format!("not one of the tenant's labels: {}", unknown.join(", ")),
                ));
            }
            policies = known
                .iter()
                .filter(|l| !room.labels.contains(&l.name))
                .filter_map(|l| l.sla)
                .collect();
        }
        let (hours, timer) = match policies.is_empty() {
            true => (None, None),
            false => self.sla_context(&who.org, &room).await?,
        };
        let now = crate::time::now_string();
        let room_id = room.id.clone();
        let labelled = self
            .room_transaction_from(who, &room_id, room, "label conversation", |room| {
                let (action, names, added, after) = applied(&room.labels, change)?;
                let mut vals = values([
                    (":now", s(&now)),
                    (":labels", AttributeValue::Ss(names.clone())),
                    (":count", crate::item::n(room.labels.len())),
                    (":zero", crate::item::n(0)),
                ]);
                let mut sets = vec!["updated_at = :now"];
                let mut counts = Counts::default();
                let before = SlaDue {
                    first_response: room.first_response_due_at.clone(),
                    resolution: room.resolution_due_at.clone(),
                };
                let retimed = sla::tightened(room, &policies, hours.as_ref(), &now);
                let mut timer_write = None;
                if let Some(due) = &retimed {
                    for (target, set, value, was, is) in [
                        (
                            "first_response",
                            "first_response_due_at = :frd",
                            ":frd",
                            &before.first_response,
                            &due.first_response,
                        ),
                        (
                            "resolution",
                            "resolution_due_at = :rd",
                            ":rd",
                            &before.resolution,
                            &due.resolution,
                        ),
                    ] {
                        let Some(at) = is.as_ref().filter(|_| was != is) else {
                            continue;
                        };
                        sets.push(set);
                        vals.insert(value.into(), s(at));
                        if was.is_none() {
                            counts.add(counter::sla_due(target), 1);
                        }
                    }
                    timer_write =
                        self.sla_timer_retimed(&who.org, &room.id, timer.as_ref(), &before, due);
                }
                // The labels as counted: a concurrent labelling makes this one count
                // again (two adds at 19 never make 21).
                let mut writes = vec![self.room_update_if(
                    room,
                    who,
                    &format!("SET {} {action} labels :labels", sets.join(", ")),
                    vals,
                    &[],
                    Some("size(labels) = :count OR (attribute_not_exists(labels) AND :count = :zero)"),
                )];
                writes.extend(timer_write);
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
                Ok(Plan::new(writes, Change::labels(&after, retimed.as_ref())))
            })
            .await?;
        let (_, _, _, after) = applied(&labelled.labels, change)?;
        let retimed = sla::tightened(&labelled, &policies, hours.as_ref(), &now);
        let mut room = Room {
            labels: after,
            updated_at: now,
            ..labelled
        };
        if let Some(due) = retimed {
            room.first_response_due_at = due.first_response;
            room.resolution_due_at = due.resolution;
        }
        Ok(room)
    }
}

impl Change {
    /// A conversation's labels as they now are, and its SLA when they changed it:
    /// the desk's, so staff only.
    pub fn labels(labels: &[String], sla: Option<&SlaDue>) -> Change {
        let mut data = json!({ "labels": labels });
        if let Some(due) = sla {
            data["sla"] = json!(due);
        }
        Change {
            kind: EventKind::RoomUpdated,
            staff_only: true,
            data: data.to_string(),
        }
    }
}

/// A change of a label (`PATCH /labels/{name}`): absent fields stay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelChange {
    pub description: Option<Option<String>>,
    pub color: Option<Option<String>>,
    pub sla: Option<Option<SlaPolicy>>,
}

fn sla_text(sla: &SlaPolicy) -> String {
    serde_json::to_string(sla).expect("serializes")
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
