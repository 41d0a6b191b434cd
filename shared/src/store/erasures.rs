//! Erasures: the job's record, the whole-table scan it works through, and the writes
//! of [`crate::erasure::Scrub`].

use super::{Store, WriteError};
use crate::erasure::Scrub;
use crate::error::{ApiError, ApiResult};
use crate::ids::{ErasureId, OrgId, UserId};
use crate::item::{Item, ItemBuilder, ItemExt, s, values};
use crate::keys;
use aws_sdk_dynamodb::types::{AttributeValue, Update};
use serde_json::{Value, json};
use sha2::Digest as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureStatus {
    Queued,
    Running,
    Done,
}

impl ErasureStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureStatus::Queued => "queued",
            ErasureStatus::Running => "running",
            ErasureStatus::Done => "done",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Done]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// One erasure of one person. While it runs it holds who (and their contacts, read
/// before their profile goes); done, only a digest of the id remains, so the
/// record itself names nobody.
#[derive(Debug, Clone, PartialEq)]
pub struct Erasure {
    pub org: OrgId,
    pub id: ErasureId,
    pub status: ErasureStatus,
    /// SHA-256 of `{org}:{user}`: the status route checks the path's person by it.
    pub user_digest: String,
    pub user: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub requested_by: String,
    pub created_at: String,
    pub completed_at: Option<String>,
    /// Passes over the table so far (a pass that found them back in a room is
    /// followed by another).
    pub passes: u64,
    /// Where the current pass's scan continues (DynamoDB's key, as JSON).
    pub scan_from: Option<String>,
    pub rooms_left: u64,
    pub messages_erased: u64,
    pub items_deleted: u64,
    pub items_rewritten: u64,
    pub files_deleted: u64,
}

pub fn user_digest(org: &OrgId, user: &UserId) -> String {
    let digest = sha2::Sha256::digest(format!("{org}:{user}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Erasure {
    pub fn new(org: &OrgId, user: &UserId, requested_by: &UserId) -> Erasure {
        Erasure {
            org: org.clone(),
            id: ErasureId::generate(),
            status: ErasureStatus::Queued,
            user_digest: user_digest(org, user),
            user: Some(user.to_string()),
            email: None,
            phone: None,
            requested_by: requested_by.to_string(),
            created_at: crate::time::now_string(),
            completed_at: None,
            passes: 0,
            scan_from: None,
            rooms_left: 0,
            messages_erased: 0,
            items_deleted: 0,
            items_rewritten: 0,
            files_deleted: 0,
        }
    }

    /// What stands for the person once erased.
    pub fn reference(&self) -> String {
        format!("erased-{}", self.id)
    }

    fn key(&self) -> (String, String) {
        (keys::erasures_pk(&self.org), keys::erasure_sk(&self.id))
    }

    pub fn item(&self) -> Item {
        let (pk, sk) = self.key();
        ItemBuilder::new()
            .str(keys::PK, pk)
            .str(keys::SK, sk)
            .str(keys::ENTITY, keys::entity::ERASURE)
            .str("org", self.org.as_str())
            .str("erasure_id", self.id.as_str())
            .str("status", self.status.as_str())
            .str("user_digest", &self.user_digest)
            .opt_str("user_id", self.user.clone())
            .opt_str("email", self.email.clone())
            .opt_str("phone", self.phone.clone())
            .str("requested_by", &self.requested_by)
            .str("created_at", &self.created_at)
            .opt_str("completed_at", self.completed_at.clone())
            .num("passes", self.passes)
            .opt_str("scan_from", self.scan_from.clone())
            .num("rooms_left", self.rooms_left)
            .num("messages_erased", self.messages_erased)
            .num("items_deleted", self.items_deleted)
            .num("items_rewritten", self.items_rewritten)
            .num("files_deleted", self.files_deleted)
            .build()
    }

    pub fn from_item(item: &impl ItemExt) -> Option<Erasure> {
        if item.str(keys::ENTITY) != Some(keys::entity::ERASURE) {
            return None;
        }
        Some(Erasure {
            org: OrgId::parse(item.str("org")?).ok()?,
            id: ErasureId::parse(item.str("erasure_id")?).ok()?,
            status: ErasureStatus::parse(item.str("status")?)?,
            user_digest: item.string("user_digest")?,
            user: item.string("user_id"),
            email: item.string("email"),
            phone: item.string("phone"),
            requested_by: item.string("requested_by").unwrap_or_default(),
            created_at: item.string("created_at").unwrap_or_default(),
            completed_at: item.string("completed_at"),
            passes: item.num("passes").unwrap_or(0),
            scan_from: item.string("scan_from"),
            rooms_left: item.num("rooms_left").unwrap_or(0),
            messages_erased: item.num("messages_erased").unwrap_or(0),
            items_deleted: item.num("items_deleted").unwrap_or(0),
            items_rewritten: item.num("items_rewritten").unwrap_or(0),
            files_deleted: item.num("files_deleted").unwrap_or(0),
        })
    }

    pub fn json(&self) -> Value {
        json!({
            "erasure_id": self.id,
            "status": self.status.as_str(),
            "requested_by": self.requested_by,
            "created_at": self.created_at,
            "completed_at": self.completed_at,
            "reference": self.reference(),
            "progress": {
                "passes": self.passes,
                "rooms_left": self.rooms_left,
                "messages_erased": self.messages_erased,
                "items_deleted": self.items_deleted,
                "items_rewritten": self.items_rewritten,
                "files_deleted": self.files_deleted,
            },
        })
    }
}

impl Store {
    /// Records a new erasure (the table's stream starts the job).
    pub async fn start_erasure(&self, erasure: &Erasure) -> ApiResult<()> {
        self.table
            .put(
                super::put_of(self.name(), erasure.item(), true),
                "start erasure",
            )
            .await
            .map_err(WriteError::into_api)
    }

    pub async fn get_erasure(&self, org: &OrgId, id: &ErasureId) -> ApiResult<Option<Erasure>> {
        let key = (keys::erasures_pk(org), keys::erasure_sk(id));
        Ok(self
            .table
            .get(key, "get erasure")
            .await?
            .as_ref()
            .and_then(Erasure::from_item))
    }

    /// Saves the job's record as it is now (whole: a done erasure's record drops who).
    pub async fn save_erasure(&self, erasure: &Erasure) -> ApiResult<()> {
        self.table
            .put(
                super::put_of(self.name(), erasure.item(), false),
                "save erasure",
            )
            .await
            .map_err(WriteError::into_api)
    }

    /// One page of the whole table, from `from` (a key as JSON): its items and where
    /// the next page starts.
    pub async fn scan_page(
        &self,
        from: Option<&str>,
        limit: i32,
    ) -> ApiResult<(Vec<Item>, Option<String>)> {
        let start = from
            .map(|raw| {
                serde_json::from_str::<std::collections::BTreeMap<String, String>>(raw)
                    .map(|m| m.into_iter().map(|(k, v)| (k, s(v))).collect::<Item>())
                    .map_err(|e| ApiError::internal("scan position", e.to_string()))
            })
            .transpose()?;
        let out = self
            .client()
            .scan()
            .table_name(self.name())
            .set_exclusive_start_key(start)
            .consistent_read(true)
            .limit(limit)
            .send()
            .await
            .map_err(|e| crate::dynamo::sdk_error("erasure scan", e))?;
        let next = out.last_evaluated_key.map(|key| {
            let key: std::collections::BTreeMap<String, String> = key
                .into_iter()
                .filter_map(|(k, v)| Some((k, v.as_s().ok()?.clone())))
                .collect();
            serde_json::to_string(&key).expect("json")
        });
        Ok((out.items.unwrap_or_default(), next))
    }

    /// Applies one item's scrub; whether it changed anything. A rewrite is
    /// conditioned on the values it read, so a concurrent change is never lost (the
    /// caller reads the item again and decides anew).
    pub async fn apply_scrub(&self, item: &Item, scrub: &Scrub) -> Result<bool, WriteError> {
        let (pk, sk) = (
            item.str(keys::PK).unwrap_or_default().to_owned(),
            item.str(keys::SK).unwrap_or_default().to_owned(),
        );
        match scrub {
            Scrub::Keep => Ok(false),
            Scrub::Delete => self
                .table
                .delete_key((pk, sk), "erase item")
                .await
                .map(|_| true),
            Scrub::Tombstone { set, remove, .. } => {
                let mut names = vec![("#sender".to_owned(), "sender_id".to_owned())];
                let mut vals =
                    values([(":sender", item.get("sender_id").cloned().unwrap_or(s("")))]);
                let mut sets = Vec::new();
                for (i, (name, value)) in set.iter().enumerate() {
                    names.push((format!("#s{i}"), name.clone()));
                    vals.insert(format!(":s{i}"), value.clone());
                    sets.push(format!("#s{i} = :s{i}"));
                }
                let mut expression = format!("SET {}", sets.join(", "));
                if !remove.is_empty() {
                    let removes: Vec<String> = remove
                        .iter()
                        .enumerate()
                        .map(|(i, name)| {
                            names.push((format!("#r{i}"), name.clone()));
                            format!("#r{i}")
                        })
                        .collect();
                    expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
                }
                self.conditional_update(pk, sk, expression, "#sender = :sender", names, vals)
                    .await
            }
            Scrub::Rewrite { set, renamed } => {
                let mut names = Vec::new();
                let mut vals = std::collections::HashMap::new();
                let mut sets = Vec::new();
                let mut removes = Vec::new();
                let mut conditions = Vec::new();
                for (i, (name, new, old)) in set.iter().enumerate() {
                    names.push((format!("#a{i}"), name.clone()));
                    vals.insert(format!(":n{i}"), new.clone());
                    vals.insert(format!(":o{i}"), old.clone());
                    sets.push(format!("#a{i} = :n{i}"));
                    conditions.push(format!("#a{i} = :o{i}"));
                }
                for (i, (old_name, new_name, value)) in renamed.iter().enumerate() {
                    names.push((format!("#f{i}"), old_name.clone()));
                    names.push((format!("#t{i}"), new_name.clone()));
                    vals.insert(format!(":r{i}"), value.clone());
                    sets.push(format!("#t{i} = :r{i}"));
                    removes.push(format!("#f{i}"));
                    conditions.push(format!("#f{i} = :r{i}"));
                }
                let mut expression = format!("SET {}", sets.join(", "));
                if !removes.is_empty() {
                    expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
                }
                self.conditional_update(pk, sk, expression, &conditions.join(" AND "), names, vals)
                    .await
            }
        }
    }

    async fn conditional_update(
        &self,
        pk: String,
        sk: String,
        expression: String,
        condition: &str,
        names: Vec<(String, String)>,
        vals: std::collections::HashMap<String, AttributeValue>,
    ) -> Result<bool, WriteError> {
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names.into_iter().collect()))
            .set_expression_attribute_values(Some(vals))
            .build()
            .expect("update has key and expression");
        self.table
            .update(update, None, "erase item")
            .await
            .map(|_| true)
    }

    /// Every item of the person's partition.
    pub async fn user_partition(&self, org: &OrgId, user: &UserId) -> ApiResult<Vec<Item>> {
        let pk = keys::user_pk(org, user);
        self.table
            .query_all("user partition", |q| {
                q.key_condition_expression("PK = :pk")
                    .expression_attribute_values(":pk", s(&pk))
                    .consistent_read(true)
            })
            .await
    }

    /// The item at `item`'s key as it is now.
    pub async fn reread(&self, item: &Item) -> ApiResult<Option<Item>> {
        let key = (
            item.str(keys::PK).unwrap_or_default().to_owned(),
            item.str(keys::SK).unwrap_or_default().to_owned(),
        );
        self.table.get(key, "erasure reread").await
    }
}
