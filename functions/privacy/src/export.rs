//! The export job: one person's data as one archive in the bucket
//! (docs/data-protection.md). Started by the table's stream when an export is
//! recorded; each room is written to the bucket as it is read and the record says
//! where the job is, so a run that dies (a timeout, a throttled read) is resumed by
//! the stream's retry from the next room. The archive is assembled last.

use crate::tar::Tar;
use chat_core::ApiError;
use chat_core::ids::{ExportId, OrgId, RoomId, UserId};
use chat_core::model::{Membership, Message, Room};
use chat_core::store::{Export, ExportStatus, Store};
use chat_core::uploads::{MAX_UPLOAD_BYTES, Uploads, attached_key};
use hyper::body::Bytes;
use serde_json::{Value, json};

/// The archive's files stop here (the function's memory holds the archive); files
/// beyond it are listed in the manifest as not included.
pub const MAX_ARCHIVE_BYTES: usize = 512 * 1024 * 1024;
/// What the manifest says the archive is.
pub const FORMAT: &str = "chat-export/1";

pub struct Exporter {
    store: Store,
    uploads: Option<Uploads>,
}

/// What a run did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Done or failed before (a record seen twice).
    Ended,
    /// The record is gone (expired).
    Gone,
    Failed(String),
}

/// Where a room's part waits for the archive.
fn part_key(org: &OrgId, export: &ExportId, room: &RoomId) -> String {
    format!("exports/{org}/{export}/rooms/{room}.json")
}

/// Where the archive is kept (a lifecycle rule removes it after 7 days).
pub fn archive_key(org: &OrgId, export: &ExportId) -> String {
    format!("exports/{org}/{export}/archive.tar")
}

impl Exporter {
    pub fn new(store: Store, uploads: Option<Uploads>) -> Exporter {
        Exporter { store, uploads }
    }

    /// One export record from the stream: its export run (or resumed).
    pub async fn run_record(&self, image: &Value) -> Result<String, ApiError> {
        let field = |name: &str| image[name]["S"].as_str().unwrap_or_default();
        match (
            OrgId::parse(field("org")),
            UserId::parse(field("user_id")),
            ExportId::parse(field("export_id")),
        ) {
            (Ok(org), Ok(user), Ok(id)) => {
                self.run(&org, &user, &id).await.map(|o| format!("{o:?}"))
            }
            _ => Ok("an export record without its ids".to_owned()),
        }
    }

    /// Runs (or resumes) one export to its archive.
    pub async fn run(
        &self,
        org: &OrgId,
        user: &UserId,
        id: &ExportId,
    ) -> Result<Outcome, ApiError> {
        let Some(mut export) = self.store.get_export(org, user, id).await? else {
            return Ok(Outcome::Gone);
        };
        if matches!(export.status, ExportStatus::Done | ExportStatus::Failed) {
            return Ok(Outcome::Ended);
        }
        let Some(uploads) = &self.uploads else {
            return self
                .fail(
                    export,
                    "uploads are off: there is no bucket to write the archive to",
                )
                .await;
        };
        export.status = ExportStatus::Running;
        self.store.save_export(&export).await?;
        let rows = self.store.member_rows(org, user).await?;
        for (room_id, membership) in &rows {
            if export
                .last_room
                .as_deref()
                .is_some_and(|last| room_id.as_str() <= last)
            {
                continue;
            }
            if let Some(room) = self.store.get_room(org, room_id).await? {
                // Notes only for staff asking for their own data (their token's
                // role): a room's membership says nothing reliable of anyone's role.
                let messages = self.store.room_messages(org, room_id, export.staff).await?;
                let part = room_part(&room, membership, &messages, user);
                export.messages += messages.len() as u64;
                export.files += part["files"].as_array().map_or(0, |f| f.len() as u64);
                export.rooms += 1;
                let body = Bytes::from(serde_json::to_vec_pretty(&part).expect("json"));
                uploads
                    .put(&part_key(org, id, room_id), body, "application/json")
                    .await?;
            }
            export.last_room = Some(room_id.to_string());
            self.store.save_export(&export).await?;
        }
        let key = archive_key(org, id);
        // Written once: a run resumed after this point keeps it (the parts it was
        // made of may be gone already).
        if export.archive_key.is_none() {
            let archive = self.assemble(uploads, &export, &rows).await?;
            export.archive_bytes = Some(archive.len() as u64);
            uploads
                .put(&key, Bytes::from(archive), "application/x-tar")
                .await?;
            export.archive_key = Some(key.clone());
            self.store.save_export(&export).await?;
        }
        for (room_id, _) in &rows {
            uploads.delete(&part_key(org, id, room_id)).await?;
        }
        export.status = ExportStatus::Done;
        export.completed_at = Some(chat_core::time::now_string());
        self.store.save_export(&export).await?;
        self.store.release_export_lock(&export).await?;
        Ok(Outcome::Done)
    }

    async fn fail(&self, mut export: Export, reason: &str) -> Result<Outcome, ApiError> {
        export.status = ExportStatus::Failed;
        export.error = Some(reason.to_owned());
        export.completed_at = Some(chat_core::time::now_string());
        self.store.save_export(&export).await?;
        self.store.release_export_lock(&export).await?;
        Ok(Outcome::Failed(reason.to_owned()))
    }

    /// The archive: the manifest, the profile, the notification settings, one file
    /// per room and the person's files.
    async fn assemble(
        &self,
        uploads: &Uploads,
        export: &Export,
        rows: &[(RoomId, Membership)],
    ) -> Result<Vec<u8>, ApiError> {
        let (org, user) = (&export.org, &export.user);
        let mtime = chat_core::time::now().unix_timestamp();
        let mut tar = Tar::new();
        let profile = self.store.get_profile(org, user).await?;
        let settings = self.store.notification_settings(org, user).await?;
        let subscriptions = self.store.push_subscriptions(org, user).await?;
        let devices = self.store.devices(org, user).await?;
        let json_file = |value: &Value| serde_json::to_vec_pretty(value).expect("json");
        tar.add(
            "profile.json",
            &json_file(&json!({
                "user_id": user,
                "username": profile.as_ref().and_then(|p| p.username.clone()),
                "email": profile.as_ref().and_then(|p| p.email.clone()),
                "phone": profile.as_ref().and_then(|p| p.phone.clone()),
                "display_image": profile.as_ref().and_then(|p| p.display_image.clone()),
                "updated_at": profile.as_ref().and_then(|p| p.updated_at.clone()),
            })),
            mtime,
        );
        tar.add(
            "notifications.json",
            &json_file(&json!({
                "settings": settings,
                "push_subscriptions": subscriptions,
                "devices": devices,
            })),
            mtime,
        );
        let mut rooms = Vec::new();
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        for (room_id, _) in rows {
            let Some(part) = uploads
                .get(&part_key(org, &export.id, room_id), 64 * 1024 * 1024)
                .await?
            else {
                continue;
            };
            let name = format!("rooms/{room_id}.json");
            tar.add(&name, &part, mtime);
            rooms.push(json!({"room_id": room_id, "path": name}));
            let part: Value = serde_json::from_slice(&part)
                .map_err(|e| ApiError::internal("export part", e.to_string()))?;
            for file in part["files"].as_array().into_iter().flatten() {
                let upload = file["upload_id"].as_str().unwrap_or_default();
                let path = format!("files/{upload}");
                let mut entry = file.clone();
                let data = uploads
                    .get(
                        &attached_key(org, room_id, upload),
                        MAX_UPLOAD_BYTES as usize,
                    )
                    .await?;
                match data {
                    Some(data) if tar.len() + data.len() + 4096 <= MAX_ARCHIVE_BYTES => {
                        tar.add(&path, &data, mtime);
                        entry["path"] = json!(path);
                        files.push(entry);
                    }
                    Some(_) => {
                        entry["reason"] =
                            json!("the archive is full; download it from its message");
                        skipped.push(entry);
                    }
                    None => {
                        entry["reason"] = json!("no longer stored");
                        skipped.push(entry);
                    }
                }
            }
        }
        let manifest = json!({
            "format": FORMAT,
            "tenant": org,
            "user_id": user,
            "export_id": export.id,
            "requested_by": export.requested_by,
            "requested_at": export.created_at,
            "generated_at": chat_core::time::now_string(),
            "contents": {
                "profile.json": "the profile: name, email, phone, picture",
                "notifications.json": "notification settings, browsers (push subscriptions) and phones",
                "rooms/": "each room the person is in: the room, their membership (role, read position, pins, mutes) and every message they may read, oldest first",
                "files/": "the files the person attached to their messages",
            },
            "rooms": rooms,
            "files": files,
            "files_not_included": skipped,
        });
        tar.add("export.json", &json_file(&manifest), mtime);
        Ok(tar.finish())
    }
}

/// One room as the person sees it: the room, their membership and its messages.
fn room_part(room: &Room, membership: &Membership, messages: &[Message], user: &UserId) -> Value {
    let mut files = Vec::new();
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| {
            let mut view = m.to_json();
            let own = m.sender_id == user.as_str();
            view["written_by_you"] = json!(own);
            if own {
                view["previous_versions"] = json!(m.previous_versions);
                for a in m.attachments.iter().filter(|a| a.upload_id.is_some()) {
                    files.push(json!({
                        "upload_id": a.upload_id,
                        "message_id": m.id,
                        "room_id": room.id,
                        "name": a.name,
                        "type": a.content_type,
                        "size": a.size,
                    }));
                }
            }
            view
        })
        .collect();
    json!({
        "room": {
            "id": room.id,
            "type": room.room_type.as_str(),
            "title": room.title,
            "status": room.status.as_str(),
            "created_at": room.created_at,
        },
        "membership": {
            "role": membership.member_role,
            "joined_at": membership.joined_at,
            "last_read_message_id": membership.last_read_message_id,
            "unread_count": membership.unread_count,
            "is_pinned": membership.is_pinned,
            "is_archived": membership.is_archived,
            "muted_until": membership.muted_until,
        },
        "messages": messages,
        "files": files,
    })
}
