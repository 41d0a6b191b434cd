//! The audit log's reads (its writes ride on the audited actions: crate::audit).

use super::{Page, Store};
use crate::audit::Entry;
use crate::error::ApiResult;
use crate::ids::OrgId;
use crate::item::s;
use crate::keys;

/// Entries one page of `GET /admin/audit` holds at most.
pub const MAX_AUDIT_PAGE: u32 = 100;

/// Which entries to list: `from`..=`to` (our timestamps), newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub from: String,
    pub to: String,
    pub actor: Option<String>,
    pub action: Option<String>,
}

impl Store {
    pub async fn list_audit(
        &self,
        org: &OrgId,
        query: &AuditQuery,
        cursor: Option<&str>,
        limit: u32,
    ) -> ApiResult<Page<Entry>> {
        let pk = keys::audit_pk(org);
        let page = self
            .table
            .query_page(
                "list audit",
                cursor,
                crate::cursor::Partition::pk(&pk),
                crate::cursor::TABLE_KEYS,
                |q| {
                    let mut q = q
                        .key_condition_expression("PK = :pk AND SK BETWEEN :from AND :to")
                        .expression_attribute_values(":pk", s(&pk))
                        .expression_attribute_values(":from", s(keys::audit_sk(&query.from, "")))
                        // `~` sorts after every request id.
                        .expression_attribute_values(":to", s(keys::audit_sk(&query.to, "~")))
                        .scan_index_forward(false)
                        .limit(limit as i32);
                    let mut filters = Vec::new();
                    if let Some(actor) = &query.actor {
                        filters.push("actor = :actor");
                        q = q.expression_attribute_values(":actor", s(actor));
                    }
                    if let Some(action) = &query.action {
                        filters.push("#action = :action");
                        q = q
                            .expression_attribute_names("#action", "action")
                            .expression_attribute_values(":action", s(action));
                    }
                    if filters.is_empty() {
                        q
                    } else {
                        q.filter_expression(filters.join(" AND "))
                    }
                },
            )
            .await?;
        Ok(Page {
            items: page
                .items
                .iter()
                .filter_map(|item| Entry::from_item(org, item))
                .collect(),
            next_cursor: page.next_cursor,
        })
    }
}
