//! A user's inbox: their membership rows on GSI1, newest activity first.

use super::{Page, Store};
use crate::cursor::{self, Partition};
use crate::error::ApiResult;
use crate::ids::{OrgId, UserId};
use crate::item::{ItemExt, s, values};
use crate::keys;
use crate::model::{InboxEntry, RoomStatus};
use aws_sdk_dynamodb::types::AttributeValue;

pub struct InboxQuery<'a> {
    pub limit: u32,
    pub offset: u32,
    pub cursor: Option<&'a str>,
    pub status: Option<RoomStatus>,
    pub archived: Option<bool>,
    pub pinned: Option<bool>,
}

pub struct Inbox {
    pub entries: Page<InboxEntry>,
    /// Conversations in the inbox, from its head item (first page only).
    pub total: Option<u64>,
}

impl Store {
    /// One page of the caller's inbox, newest activity first: one Query on GSI1.
    pub async fn list_inbox(
        &self,
        org: &OrgId,
        user: &UserId,
        q: InboxQuery<'_>,
    ) -> ApiResult<Inbox> {
        let gsi1pk = keys::inbox_gsi1pk(org, user);
        let start = match q.cursor {
            Some(raw) => Some(cursor::decode(
                raw,
                Partition {
                    attribute: keys::GSI1PK,
                    value: &gsi1pk,
                },
                &[keys::PK, keys::SK, keys::GSI1PK, keys::GSI1SK],
            )?),
            None => None,
        };
        let first_page = start.is_none();
        let mut filters = Vec::new();
        let mut vals = values([(":pk", s(&gsi1pk))]);
        if let Some(status) = q.status {
            filters.push("#status = :status");
            vals.insert(":status".into(), s(status.as_str()));
        }
        if let Some(archived) = q.archived {
            filters.push("is_archived = :archived");
            vals.insert(":archived".into(), AttributeValue::Bool(archived));
        }
        if let Some(pinned) = q.pinned {
            filters.push("is_pinned = :pinned");
            vals.insert(":pinned".into(), AttributeValue::Bool(pinned));
        }
        let mut names = vec![("#g1pk".to_owned(), keys::GSI1PK.to_owned())];
        let filter = (!filters.is_empty()).then(|| {
            // The head item always passes, so the first page still carries the total.
            vals.insert(":head".into(), s(keys::entity::INBOX_HEAD));
            names.push(("#e".to_owned(), keys::ENTITY.to_owned()));
            if q.status.is_some() {
                names.push(("#status".to_owned(), "status".to_owned()));
            }
            format!("#e = :head OR ({})", filters.join(" AND "))
        });
        let (found, last_key) = self
            .table
            .query("list inbox", start, |query| {
                query
                    .index_name(keys::GSI1)
                    .key_condition_expression("#g1pk = :pk")
                    .set_expression_attribute_names(Some(names.into_iter().collect()))
                    .scan_index_forward(false)
                    .limit((q.offset + q.limit + u32::from(first_page)) as i32)
                    .set_filter_expression(filter)
                    .set_expression_attribute_values(Some(vals))
            })
            .await?;
        let mut total = None;
        let mut entries = Vec::new();
        for item in found {
            if item.str(keys::ENTITY) == Some(keys::entity::INBOX_HEAD) {
                total = Some(item.num::<i64>("conversation_count").unwrap_or(0).max(0) as u64);
            } else {
                entries.push(item);
            }
        }
        if first_page && total.is_none() {
            total = Some(0);
        }
        let items: Vec<InboxEntry> = entries
            .iter()
            .skip(q.offset as usize)
            .filter_map(InboxEntry::from_item)
            .collect();
        Ok(Inbox {
            entries: Page {
                items,
                next_cursor: last_key.as_ref().map(cursor::encode),
            },
            total,
        })
    }
}
