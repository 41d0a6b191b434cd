//! A person's data exports: the job's record (status, progress, where it resumes),
//! one running per person at a time, and what the job reads of the person.

use super::{Store, WriteError};
use crate::error::{ApiError, ApiResult};
use crate::ids::{ExportId, OrgId, RoomId, UserId};
use crate::item::{Item, ItemBuilder, ItemExt, n, s, values};
use crate::keys;
use crate::model::{Membership, Message};
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use serde_json::{Value, json};

/// An export's record is kept this long (the archive's link works for 24 h of it).
pub const EXPORT_RECORD_TTL_SECS: i64 = 7 * 24 * 3600;
/// A person's running export holds the lock this long at most: one that died
/// without finishing frees it then.
pub const EXPORT_LOCK_SECS: i64 = 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportStatus {
    Queued,
    Running,
    Done,
    Failed,
}

impl ExportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportStatus::Queued => "queued",
            ExportStatus::Running => "running",
            ExportStatus::Done => "done",
            ExportStatus::Failed => "failed",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Done, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// One export of one person's data.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    pub org: OrgId,
    pub user: UserId,
    pub id: ExportId,
    pub status: ExportStatus,
    pub requested_by: String,
    /// Whether notes (staff-only messages) are the person's to read: they asked as
    /// staff themselves, or an admin asked and the person is staff in the room.
    pub staff: bool,
    pub created_at: String,
    pub completed_at: Option<String>,
    /// The last room written (rooms go in id order): where a resumed run continues.
    pub last_room: Option<String>,
    pub rooms: u64,
    pub messages: u64,
    pub files: u64,
    pub archive_key: Option<String>,
    pub archive_bytes: Option<u64>,
    pub error: Option<String>,
}

impl Export {
    pub fn new(org: &OrgId, user: &UserId, requested_by: &UserId, staff: bool) -> Export {
        Export {
            org: org.clone(),
            user: user.clone(),
            id: ExportId::generate(),
            status: ExportStatus::Queued,
            requested_by: requested_by.to_string(),
            staff,
            created_at: crate::time::now_string(),
            completed_at: None,
            last_room: None,
            rooms: 0,
            messages: 0,
            files: 0,
            archive_key: None,
            archive_bytes: None,
            error: None,
        }
    }

    fn key(&self) -> (String, String) {
        (
            keys::user_pk(&self.org, &self.user),
            keys::export_sk(&self.id),
        )
    }

    pub fn item(&self) -> Item {
        let (pk, sk) = self.key();
        ItemBuilder::new()
            .str(keys::PK, pk)
            .str(keys::SK, sk)
            .str(keys::ENTITY, keys::entity::EXPORT)
            .str("org", self.org.as_str())
            .str("user_id", self.user.as_str())
            .str("export_id", self.id.as_str())
            .str("status", self.status.as_str())
            .str("requested_by", &self.requested_by)
            .flag("staff", self.staff)
            .str("created_at", &self.created_at)
            .opt_str("completed_at", self.completed_at.clone())
            .opt_str("last_room", self.last_room.clone())
            .num("rooms", self.rooms)
            .num("messages", self.messages)
            .num("files", self.files)
            .opt_str("archive_key", self.archive_key.clone())
            .opt_num("archive_bytes", self.archive_bytes)
            .opt_str("error", self.error.clone())
            .num(
                keys::TTL,
                crate::time::now().unix_timestamp() + EXPORT_RECORD_TTL_SECS,
            )
            .build()
    }

    pub fn from_item(item: &impl ItemExt) -> Option<Export> {
        if item.str(keys::ENTITY) != Some(keys::entity::EXPORT) {
            return None;
        }
        Some(Export {
            org: OrgId::parse(item.str("org")?).ok()?,
            user: UserId::parse(item.str("user_id")?).ok()?,
            id: ExportId::parse(item.str("export_id")?).ok()?,
            status: ExportStatus::parse(item.str("status")?)?,
            requested_by: item.string("requested_by").unwrap_or_default(),
            staff: item.flag("staff"),
            created_at: item.string("created_at").unwrap_or_default(),
            completed_at: item.string("completed_at"),
            last_room: item.string("last_room"),
            rooms: item.num("rooms").unwrap_or(0),
            messages: item.num("messages").unwrap_or(0),
            files: item.num("files").unwrap_or(0),
            archive_key: item.string("archive_key"),
            archive_bytes: item.num("archive_bytes"),
            error: item.string("error"),
        })
    }

    /// The export as the API shows it (the download link is added by the caller).
    pub fn json(&self) -> Value {
        json!({
            "export_id": self.id,
            "user_id": self.user,
            "status": self.status.as_str(),
            "requested_by": self.requested_by,
            "created_at": self.created_at,
            "completed_at": self.completed_at,
            "progress": {"rooms": self.rooms, "messages": self.messages, "files": self.files},
            "archive_bytes": self.archive_bytes,
            "error": self.error,
        })
    }
}

impl Store {
    /// Records a new export, queued for the job (the table's stream starts it), unless
    /// the person has one running: `409 export_in_progress`.
    pub async fn start_export(&self, export: &Export) -> ApiResult<()> {
        let now = crate::time::now().unix_timestamp();
        let lock = Put::builder()
            .table_name(self.name())
            .set_item(Some(
                ItemBuilder::new()
                    .str(keys::PK, keys::user_pk(&export.org, &export.user))
                    .str(keys::SK, keys::EXPORT_LOCK_SK)
                    .str(keys::ENTITY, keys::entity::EXPORT_LOCK)
                    .str("export_id", export.id.as_str())
                    .num(keys::TTL, now + EXPORT_LOCK_SECS)
                    .build(),
            ))
            .condition_expression("attribute_not_exists(PK) OR expires_at < :now")
            .set_expression_attribute_values(Some(values([(":now", n(now))])))
            .build()
            .expect("put has table and item");
        let record = super::put_of(self.name(), export.item(), true);
        let writes = vec![
            TransactWriteItem::builder().put(lock).build(),
            TransactWriteItem::builder().put(record).build(),
        ];
        match self.table.transact(writes, "start export").await {
            Ok(()) => Ok(()),
            Err(WriteError::ConditionFailed(c)) if c.failed(0) => Err(ApiError::Conflict {
                code: "export_in_progress",
                message:
                    "an export of this person is already running; its status shows when it is done"
                        .into(),
            }),
            Err(err) => Err(err.into_api()),
        }
    }

    pub async fn get_export(
        &self,
        org: &OrgId,
        user: &UserId,
        id: &ExportId,
    ) -> ApiResult<Option<Export>> {
        let key = (keys::user_pk(org, user), keys::export_sk(id));
        Ok(self
            .table
            .get(key, "get export")
            .await?
            .as_ref()
            .and_then(Export::from_item))
    }

    /// Saves the job's progress (and its status), unless the export already ended.
    pub async fn save_export(&self, export: &Export) -> ApiResult<()> {
        let (pk, sk) = export.key();
        let item = export.item();
        let mut names = Vec::new();
        let mut sets = Vec::new();
        let mut vals = values([
            (":done", s(ExportStatus::Done.as_str())),
            (":failed", s(ExportStatus::Failed.as_str())),
        ]);
        for (i, (name, value)) in item
            .iter()
            .filter(|(name, _)| ![keys::PK, keys::SK].contains(&name.as_str()))
            .enumerate()
        {
            names.push((format!("#a{i}"), name.clone()));
            sets.push(format!("#a{i} = :v{i}"));
            vals.insert(format!(":v{i}"), value.clone());
        }
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(
                "attribute_exists(PK) AND #a_status <> :done AND #a_status <> :failed",
            )
            .set_expression_attribute_names(Some(
                names
                    .into_iter()
                    .chain([("#a_status".to_owned(), "status".to_owned())])
                    .collect(),
            ))
            .set_expression_attribute_values(Some(vals))
            .build()
            .expect("update has key and expression");
        match self.table.update(update, None, "save export").await {
            Ok(_) => Ok(()),
            Err(WriteError::ConditionFailed(_)) => Err(ApiError::Conflict {
                code: "export_ended",
                message: "the export already ended".into(),
            }),
            Err(err) => Err(err.into_api()),
        }
    }

    /// Frees the person's export lock if this export holds it.
    pub async fn release_export_lock(&self, export: &Export) -> ApiResult<()> {
        let delete = Delete::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::user_pk(&export.org, &export.user)))
            .key(keys::SK, s(keys::EXPORT_LOCK_SK))
            .condition_expression("export_id = :id")
            .set_expression_attribute_values(Some(values([(":id", s(export.id.as_str()))])))
            .build()
            .expect("delete has key");
        match self.table.delete(delete, "release export lock").await {
            Ok(_) | Err(WriteError::ConditionFailed(_)) => Ok(()),
            Err(err) => Err(err.into_api()),
        }
    }

    /// The person's rooms (their member rows), in room id order.
    pub async fn member_rows(
        &self,
        org: &OrgId,
        user: &UserId,
    ) -> ApiResult<Vec<(RoomId, Membership)>> {
        let gsi1pk = keys::inbox_gsi1pk(org, user);
        let items = self
            .table
            .query_all("member rows", |q| {
                q.index_name(keys::GSI1)
                    .key_condition_expression("#g1pk = :pk AND begins_with(#g1sk, :rows)")
                    .filter_expression("#e = :member")
                    .expression_attribute_names("#g1pk", keys::GSI1PK)
                    .expression_attribute_names("#g1sk", keys::GSI1SK)
                    .expression_attribute_names("#e", keys::ENTITY)
                    .expression_attribute_values(":pk", s(&gsi1pk))
                    .expression_attribute_values(":rows", s(keys::INBOX_ENTRY_PREFIX))
                    .expression_attribute_values(":member", s(keys::entity::MEMBER))
            })
            .await?;
        let mut rows: Vec<(RoomId, Membership)> = items
            .iter()
            .filter_map(|item| {
                let room = item.str(keys::PK)?.rsplit('#').next()?;
                Some((RoomId::parse(room).ok()?, Membership::from_item(item)?))
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.dedup_by(|a, b| a.0 == b.0);
        Ok(rows)
    }

    /// Every message of a room, oldest first, with or without notes.
    pub async fn room_messages(
        &self,
        org: &OrgId,
        room: &RoomId,
        include_notes: bool,
    ) -> ApiResult<Vec<Message>> {
        let pk = keys::room_pk(org, room);
        let items = self
            .table
            .query_all("room messages", |q| {
                q.key_condition_expression("PK = :pk AND begins_with(SK, :m)")
                    .expression_attribute_values(":pk", s(&pk))
                    .expression_attribute_values(":m", s(keys::MESSAGE_SK_PREFIX))
                    .consistent_read(true)
            })
            .await?;
        Ok(items
            .iter()
            .filter_map(Message::from_item)
            .filter(|m| include_notes || m.message_type != "note")
            .collect())
    }

    /// Whether the tenant knows `user` at all: a profile, or any room.
    pub async fn knows_user(&self, org: &OrgId, user: &UserId) -> ApiResult<bool> {
        if self.get_profile(org, user).await?.is_some() {
            return Ok(true);
        }
        let gsi1pk = keys::inbox_gsi1pk(org, user);
        let (items, _) = self
            .table
            .query("knows user", None, |q| {
                q.index_name(keys::GSI1)
                    .key_condition_expression("#g1pk = :pk")
                    .expression_attribute_names("#g1pk", keys::GSI1PK)
                    .expression_attribute_values(":pk", s(&gsi1pk))
                    .limit(1)
            })
            .await?;
        Ok(!items.is_empty())
    }
}
