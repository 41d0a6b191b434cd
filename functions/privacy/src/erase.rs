//! The erasure job (docs/data-protection.md): started by the table's stream when an
//! erasure is recorded. A pass takes the person out of every room they are in (so
//! nothing more of theirs can be posted there), then scans the whole table and
//! applies [`chat_core::erasure::Subject::scrub`] to every item, deleting their
//! files from the bucket as it goes. A pass that found them back in a room (they
//! joined one meanwhile) is followed by another. The record keeps the scan's place:
//! a run cut short is retried by the stream and continues from it.

use chat_core::ApiError;
use chat_core::auth::Principal;
use chat_core::erasure::{Scrub, Subject};
use chat_core::ids::{ErasureId, OrgId, Role, RoomId, UserId};
use chat_core::item::ItemExt as _;
use chat_core::keys;
use chat_core::store::{Erasure, ErasureStatus, Store, WriteError};
use chat_core::uploads::{Uploads, attached_key};

/// Passes at most per erasure (each after the person was found back in a room).
pub const MAX_PASSES: u64 = 3;
/// Items per scanned page (the record is saved after each).
const SCAN_PAGE: i32 = 500;
/// Times a leave that keeps losing to the room's traffic is tried again.
const LEAVE_ATTEMPTS: u64 = 50;
/// Attempts per item whose rewrite lost to a concurrent change.
const ITEM_ATTEMPTS: usize = 4;

pub struct Eraser {
    store: Store,
    uploads: Option<Uploads>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Ended,
    Gone,
}

impl Eraser {
    pub fn new(store: Store, uploads: Option<Uploads>) -> Eraser {
        Eraser { store, uploads }
    }

    /// Runs (or resumes) one erasure to its end.
    pub async fn run(&self, org: &OrgId, id: &ErasureId) -> Result<Outcome, ApiError> {
        let Some(mut erasure) = self.store.get_erasure(org, id).await? else {
            return Ok(Outcome::Gone);
        };
        if erasure.status == ErasureStatus::Done {
            return Ok(Outcome::Ended);
        }
        let user = erasure
            .user
            .clone()
            .and_then(|u| UserId::parse(&u).ok())
            .ok_or_else(|| ApiError::internal("erasure", "a running erasure without its person"))?;
        if erasure.status == ErasureStatus::Queued {
            // Their contacts, before their profile goes (kept until the end).
            let profile = self.store.get_profile(org, &user).await?;
            erasure.email = profile.as_ref().and_then(|p| p.email.clone());
            erasure.phone = profile.as_ref().and_then(|p| p.phone.clone());
            erasure.status = ErasureStatus::Running;
            self.store.save_erasure(&erasure).await?;
        }
        let subject = Subject {
            user: user.to_string(),
            email: erasure.email.clone(),
            phone: erasure.phone.clone(),
            reference: erasure.reference(),
        };
        while erasure.passes < MAX_PASSES {
            if erasure.scan_from.is_none() {
                self.leave_rooms(&mut erasure, &user).await?;
            }
            loop {
                let (items, next) = self
                    .store
                    .scan_page(erasure.scan_from.as_deref(), SCAN_PAGE)
                    .await?;
                for item in items {
                    self.scrub(&mut erasure, &subject, item).await?;
                }
                erasure.scan_from = next;
                self.store.save_erasure(&erasure).await?;
                if erasure.scan_from.is_none() {
                    break;
                }
            }
            erasure.passes += 1;
            self.store.save_erasure(&erasure).await?;
            if self.store.member_rows(org, &user).await?.is_empty() {
                break;
            }
        }
        // What other jobs wrote in their partition after the pass read it (the
        // fan-out's inbox feed of the rooms they left): one more look there.
        for item in self.store.user_partition(org, &user).await? {
            self.scrub(&mut erasure, &subject, item).await?;
        }
        // Archives made before now may hold what they wrote in a room shared with
        // whoever asked: the tenant's archives are withdrawn (ask again).
        if let Some(uploads) = &self.uploads {
            for key in uploads.list(&format!("exports/{org}/"), 100_000).await? {
                uploads.delete(&key).await?;
                erasure.files_deleted += 1;
            }
        }
        erasure.status = ErasureStatus::Done;
        erasure.completed_at = Some(chat_core::time::now_string());
        erasure.user = None;
        erasure.email = None;
        erasure.phone = None;
        self.store.save_erasure(&erasure).await?;
        Ok(Outcome::Done)
    }

    /// Takes the person out of every room they are in (the rooms' own leave, so
    /// member lists, counts and versions stay right; a post of theirs racing it
    /// fails its membership condition) and deletes their unattached uploads there.
    async fn leave_rooms(&self, erasure: &mut Erasure, user: &UserId) -> Result<(), ApiError> {
        let them = Principal {
            user: user.clone(),
            org: erasure.org.clone(),
            role: Role::Customer,
        };
        for (room, _) in self.store.member_rows(&erasure.org, user).await? {
            // A busy room (its own people posting) may take the leave several
            // rebuilds: the job waits its turn rather than give up.
            let mut attempt = 0;
            loop {
                match Box::pin(self.store.leave_room(&them, &room)).await {
                    Ok(()) => erasure.rooms_left += 1,
                    Err(ApiError::NotFound(_)) => {}
                    Err(ApiError::Unavailable {
                        code: "storage_busy",
                        ..
                    }) if attempt < LEAVE_ATTEMPTS => {
                        attempt += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                        continue;
                    }
                    Err(err) => return Err(err),
                }
                break;
            }
            if let Some(uploads) = &self.uploads {
                let prefix = format!("pending/{}/{room}/{user}/", erasure.org);
                for key in uploads.list(&prefix, 1000).await? {
                    uploads.delete(&key).await?;
                    erasure.files_deleted += 1;
                }
            }
        }
        self.store.save_erasure(erasure).await
    }

    /// One scanned item through the rules, again from the item as it is now when a
    /// rewrite lost to a concurrent change.
    async fn scrub(
        &self,
        erasure: &mut Erasure,
        subject: &Subject,
        mut item: chat_core::item::Item,
    ) -> Result<(), ApiError> {
        let org = erasure.org.to_string();
        for _ in 0..ITEM_ATTEMPTS {
            let scrub = subject.scrub(&org, &item);
            if scrub == Scrub::Keep {
                return Ok(());
            }
            // Files before the items that name them: a run cut short in between
            // finds the item again and deletes what is left (deletes are idempotent).
            if item.str(keys::ENTITY) == Some(keys::entity::EXPORT) {
                self.delete_export_files(erasure, &item).await?;
            }
            if let Scrub::Tombstone { files, .. } = &scrub {
                self.delete_files(erasure, &item, files).await?;
            }
            match self.store.apply_scrub(&item, &scrub).await {
                Ok(_) => {
                    match &scrub {
                        Scrub::Delete => erasure.items_deleted += 1,
                        Scrub::Rewrite { .. } => erasure.items_rewritten += 1,
                        Scrub::Tombstone { .. } => erasure.messages_erased += 1,
                        Scrub::Keep => {}
                    }
                    return Ok(());
                }
                Err(WriteError::ConditionFailed(_)) => match self.store.reread(&item).await? {
                    Some(now) => item = now,
                    None => return Ok(()),
                },
                Err(err) => return Err(err.into_api()),
            }
        }
        Err(ApiError::internal("erasure", "an item kept changing"))
    }

    async fn delete_files(
        &self,
        erasure: &mut Erasure,
        message: &chat_core::item::Item,
        files: &[String],
    ) -> Result<(), ApiError> {
        let (Some(uploads), Some(room)) = (
            &self.uploads,
            message
                .str(keys::PK)
                .and_then(|pk| pk.rsplit('#').next())
                .and_then(|r| RoomId::parse(r).ok()),
        ) else {
            return Ok(());
        };
        for upload in files {
            uploads
                .delete(&attached_key(&erasure.org, &room, upload))
                .await?;
            erasure.files_deleted += 1;
        }
        Ok(())
    }

    async fn delete_export_files(
        &self,
        erasure: &mut Erasure,
        export: &chat_core::item::Item,
    ) -> Result<(), ApiError> {
        let (Some(uploads), Some(id)) = (&self.uploads, export.str("export_id")) else {
            return Ok(());
        };
        for key in uploads
            .list(&format!("exports/{}/{id}/", erasure.org), 10_000)
            .await?
        {
            uploads.delete(&key).await?;
            erasure.files_deleted += 1;
        }
        Ok(())
    }
}
