//! A tenant's webhook endpoints: one partition per tenant (`T#{org}#WEBHOOKS`), one item
//! per endpoint (`W#{id}`), its signing secrets kept with it (encrypted at rest by the
//! table) since every delivery signs with them.

use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, WebhookId};
use crate::item::{Item, ItemBuilder, ItemExt, s, values};
use crate::keys;
use crate::store::{Store, WriteError, WriteResultExt, count_down};
use crate::webhooks::{
    MAX_WEBHOOKS, ROTATION_GRACE_SECS, WebhookChanges, WebhookDraft, new_secret,
};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, ReturnValue, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

const ENTITY: &str = keys::entity::WEBHOOK;

fn key(org: &OrgId, id: &WebhookId) -> (String, String) {
    (keys::webhooks_pk(org), keys::webhook_sk(id))
}

fn count_key(org: &OrgId) -> (String, String) {
    (keys::webhooks_pk(org), keys::WEBHOOK_COUNT_SK.to_owned())
}

/// One signing secret; a replaced one signs until `expires_at` (unix seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookSecret {
    pub secret: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// Why an endpoint was switched off by delivery (not by an admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisabledReason {
    /// The receiver answered 410 Gone.
    Gone,
    /// Every attempt failed for the configured period.
    Failing,
}

impl DisabledReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisabledReason::Gone => "gone",
            DisabledReason::Failing => "failing",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "gone" => Some(DisabledReason::Gone),
            "failing" => Some(DisabledReason::Failing),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: WebhookId,
    pub url: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub description: Option<String>,
    pub secrets: Vec<WebhookSecret>,
    pub created_at: String,
    pub updated_at: String,
    /// Unix seconds of the first failed attempt since the last success.
    pub failing_since: Option<i64>,
    pub disabled_reason: Option<DisabledReason>,
}

impl Webhook {
    fn item(&self, org: &OrgId) -> Item {
        ItemBuilder::new()
            .str(keys::PK, keys::webhooks_pk(org))
            .str(keys::SK, keys::webhook_sk(&self.id))
            .str(keys::ENTITY, ENTITY)
            .str("webhook_id", self.id.as_str())
            .str("url", &self.url)
            .set("event_types", AttributeValue::Ss(self.event_types.clone()))
            .set("enabled", AttributeValue::Bool(self.enabled))
            .opt_str("description", self.description.clone())
            .str(
                "secrets",
                serde_json::to_string(&self.secrets).expect("secrets serialize"),
            )
            .str("created_at", &self.created_at)
            .str("updated_at", &self.updated_at)
            .opt_num("failing_since", self.failing_since)
            .opt_str(
                "disabled_reason",
                self.disabled_reason.map(DisabledReason::as_str),
            )
            .build()
    }

    pub fn from_item(item: &Item) -> Option<Webhook> {
        (item.str(keys::ENTITY) == Some(ENTITY)).then_some(())?;
        Some(Webhook {
            id: WebhookId::parse(item.str("webhook_id")?).ok()?,
            url: item.string("url")?,
            event_types: item.string_set("event_types"),
            enabled: item.flag("enabled"),
            description: item.string("description"),
            secrets: item
                .str("secrets")
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default(),
            created_at: item.string("created_at").unwrap_or_default(),
            updated_at: item.string("updated_at").unwrap_or_default(),
            failing_since: item.num("failing_since"),
            disabled_reason: item.str("disabled_reason").and_then(DisabledReason::parse),
        })
    }

    /// Whether it takes `kind` now.
    pub fn wants(&self, kind: &str) -> bool {
        self.enabled && self.event_types.iter().any(|t| t == kind)
    }

    /// The secrets that sign now: the newest, and replaced ones within their grace.
    pub fn active_secrets(&self, now: i64) -> Vec<&str> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|at| at > now))
            .map(|s| s.secret.as_str())
            .collect()
    }

    /// The endpoint as the API shows it: never its secrets.
    pub fn json(&self) -> serde_json::Value {
        let rotation_ends = self.secrets.iter().filter_map(|s| s.expires_at).max();
        serde_json::json!({
            "id": self.id,
            "url": self.url,
            "event_types": self.event_types,
            "enabled": self.enabled,
            "description": self.description,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "previous_secret_expires_at": rotation_ends,
            "disabled_reason": self.disabled_reason.map(DisabledReason::as_str),
            "failing_since": self.failing_since.and_then(|at| time::OffsetDateTime::from_unix_timestamp(at).ok()).map(crate::time::format),
        })
    }
}

impl Store {
    /// Adds an endpoint with a new secret (answered once, by the caller). The tenant's
    /// endpoint count goes up in the same transaction, conditioned on the limit.
    pub async fn create_webhook(&self, org: &OrgId, draft: WebhookDraft) -> ApiResult<Webhook> {
        // Counts kept before the counter existed start from the endpoints there are.
        let listed = self.list_webhooks(org).await?.len();
        let now = crate::time::now_string();
        let webhook = Webhook {
            id: WebhookId::generate(),
            url: draft.url,
            event_types: draft.event_types,
            enabled: draft.enabled,
            description: draft.description,
            secrets: vec![WebhookSecret {
                secret: new_secret(),
                created_at: now.clone(),
                expires_at: None,
            }],
            created_at: now.clone(),
            updated_at: now,
            failing_since: None,
            disabled_reason: None,
        };
        let writes = super::counted_put(
            self.name(),
            count_key(org),
            MAX_WEBHOOKS,
            listed,
            webhook.item(org),
        );
        self.put_counted(
            writes,
            "create webhook",
            || ApiError::Conflict {
                code: "too_many_webhooks",
                message: format!("a tenant has at most {MAX_WEBHOOKS} webhook endpoints"),
            },
            || ApiError::internal("create webhook", "a new endpoint's id exists"),
        )
        .await?;
        Ok(webhook)
    }

    pub async fn list_webhooks(&self, org: &OrgId) -> ApiResult<Vec<Webhook>> {
        let items = self
            .table
            .query_all("list webhooks", |query| {
                query
                    .key_condition_expression("PK = :pk")
                    .set_expression_attribute_values(Some(values([(
                        ":pk",
                        s(keys::webhooks_pk(org)),
                    )])))
                    .consistent_read(true)
            })
            .await?;
        Ok(items.iter().filter_map(Webhook::from_item).collect())
    }

    pub async fn get_webhook(&self, org: &OrgId, id: &WebhookId) -> ApiResult<Webhook> {
        self.table
            .get(key(org, id), "get webhook")
            .await?
            .as_ref()
            .and_then(Webhook::from_item)
            .ok_or(ApiError::NotFound("webhook"))
    }

    pub async fn update_webhook(
        &self,
        org: &OrgId,
        id: &WebhookId,
        changes: &WebhookChanges,
    ) -> ApiResult<Webhook> {
        let mut sets = vec!["updated_at = :now"];
        let mut vals = values([(":now", s(crate::time::now_string()))]);
        if let Some(url) = &changes.url {
            sets.push("#url = :url");
            vals.insert(":url".into(), s(url));
        }
        if let Some(types) = &changes.event_types {
            sets.push("event_types = :types");
            vals.insert(":types".into(), AttributeValue::Ss(types.clone()));
        }
        let mut removes = "";
        if let Some(enabled) = changes.enabled {
            sets.push("enabled = :enabled");
            vals.insert(":enabled".into(), AttributeValue::Bool(enabled));
            if enabled {
                // Switched back on: its failure history starts again.
                removes = " REMOVE failing_since, disabled_reason";
            }
        }
        if let Some(description) = &changes.description {
            sets.push("description = :description");
            vals.insert(":description".into(), s(description));
        }
        let (pk, sk) = key(org, id);
        let mut update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression(format!("SET {}{removes}", sets.join(", ")))
            .condition_expression("attribute_exists(PK)")
            .set_expression_attribute_values(Some(vals));
        if changes.url.is_some() {
            // `url` is one of DynamoDB's reserved words.
            update = update.expression_attribute_names("#url", "url");
        }
        let update = update.build().expect("update has key and expression");
        let item = self
            .table
            .update(update, Some(ReturnValue::AllNew), "update webhook")
            .await
            .or_condition(|_| ApiError::NotFound("webhook"))?;
        item.as_ref()
            .and_then(Webhook::from_item)
            .ok_or_else(|| ApiError::internal("update webhook", "no item returned"))
    }

    /// Deletes an endpoint and counts it off in the same transaction.
    pub async fn delete_webhook(&self, org: &OrgId, id: &WebhookId) -> ApiResult<()> {
        let (pk, sk) = key(org, id);
        let delete = Delete::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .condition_expression("attribute_exists(PK)")
            .build()
            .expect("delete has key");
        let writes = vec![
            TransactWriteItem::builder().delete(delete.clone()).build(),
            TransactWriteItem::builder()
                .update(count_down(self.name(), count_key(org)))
                .build(),
        ];
        match self.table.transact(writes, "delete webhook").await {
            Ok(()) => Ok(()),
            Err(WriteError::ConditionFailed(c)) if c.failed(0) => {
                Err(ApiError::NotFound("webhook"))
            }
            // An endpoint made before its tenant's count: the next create counts again.
            Err(WriteError::ConditionFailed(_)) => self
                .table
                .delete(delete, "delete webhook")
                .await
                .map(drop)
                .or_condition(|_| ApiError::NotFound("webhook")),
            Err(err) => Err(err.into_api()),
        }
    }

    /// A new secret signs from now on; the current one keeps signing for the grace
    /// period (receivers switch meanwhile); older ones are dropped. Conditioned on the
    /// endpoint as read, so two rotations cannot both win.
    pub async fn rotate_webhook_secret(
        &self,
        org: &OrgId,
        id: &WebhookId,
    ) -> ApiResult<(Webhook, String)> {
        let mut webhook = self.get_webhook(org, id).await?;
        let seen = webhook.updated_at.clone();
        let now = crate::time::now();
        let grace_until = now.unix_timestamp() + ROTATION_GRACE_SECS;
        webhook
            .secrets
            .retain(|s| s.expires_at.is_none_or(|at| at > now.unix_timestamp()));
        webhook.secrets.truncate(1);
        for secret in &mut webhook.secrets {
            secret.expires_at = Some(
                secret
                    .expires_at
                    .map_or(grace_until, |at| at.min(grace_until)),
            );
        }
        let fresh = new_secret();
        webhook.secrets.insert(
            0,
            WebhookSecret {
                secret: fresh.clone(),
                created_at: crate::time::format(now),
                expires_at: None,
            },
        );
        webhook.updated_at = crate::time::format(now);
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(self.name())
            .set_item(Some(webhook.item(org)))
            .condition_expression("updated_at = :seen")
            .expression_attribute_values(":seen", s(seen))
            .build()
            .expect("put has item");
        self.table
            .put(put, "rotate webhook secret")
            .await
            .or_condition(|_| ApiError::Conflict {
                code: "concurrent_change",
                message: "the endpoint changed meanwhile; rotate again".into(),
            })?;
        Ok((webhook, fresh))
    }
}

/// What delivery learnt about an endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Answered,
    Failed,
    Gone,
}

impl Store {
    /// Records what an attempt said about the endpoint: a success clears its failing
    /// period, a failure starts one (and disables the endpoint once it has lasted
    /// `disable_after` seconds), a 410 disables it at once. Writes only when that
    /// changes something, so a healthy endpoint costs no write per delivery.
    pub async fn note_endpoint_health(
        &self,
        org: &OrgId,
        webhook: &Webhook,
        health: Health,
        now: i64,
        disable_after: i64,
    ) -> ApiResult<()> {
        let reason = match health {
            Health::Answered if webhook.failing_since.is_none() => return Ok(()),
            Health::Answered => {
                return self
                    .change_health(org, &webhook.id, "REMOVE failing_since", values([]))
                    .await;
            }
            Health::Gone => DisabledReason::Gone,
            Health::Failed => match webhook.failing_since {
                None => {
                    return self
                        .change_health(
                            org,
                            &webhook.id,
                            "SET failing_since = if_not_exists(failing_since, :now)",
                            values([(":now", crate::item::n(now))]),
                        )
                        .await;
                }
                Some(since) if webhook.enabled && now - since >= disable_after => {
                    // Another instance's success may not have cleared the period (it
                    // read the endpoint before this failure began it): the log says.
                    if self.delivered_since(org, &webhook.id, since).await? {
                        return self
                            .change_health(
                                org,
                                &webhook.id,
                                "SET failing_since = :now",
                                values([(":now", crate::item::n(now))]),
                            )
                            .await;
                    }
                    DisabledReason::Failing
                }
                Some(_) => return Ok(()),
            },
        };
        tracing::warn!(org = %org, webhook = %webhook.id, reason = reason.as_str(), "webhook endpoint disabled");
        self.change_health(
            org,
            &webhook.id,
            "SET enabled = :off, disabled_reason = :reason, updated_at = :at",
            values([
                (":off", AttributeValue::Bool(false)),
                (":reason", s(reason.as_str())),
                (":at", s(crate::time::now_string())),
            ]),
        )
        .await
    }

    async fn change_health(
        &self,
        org: &OrgId,
        id: &WebhookId,
        expression: &str,
        vals: std::collections::HashMap<String, AttributeValue>,
    ) -> ApiResult<()> {
        let (pk, sk) = key(org, id);
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression(expression)
            .condition_expression("attribute_exists(PK)")
            .set_expression_attribute_values((!vals.is_empty()).then_some(vals))
            .build()
            .expect("update has key and expression");
        match self.table.update(update, None, "webhook health").await {
            // An endpoint deleted meanwhile has no health to keep.
            Ok(_) | Err(WriteError::ConditionFailed(_)) => Ok(()),
            Err(other) => Err(other.into_api()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_round_trips_and_shows_no_secret() {
        let org = OrgId::parse("acme").unwrap();
        let webhook = Webhook {
            id: WebhookId::parse("01J00000000000000000000000").unwrap(),
            url: "https://crm.example.com/hooks".into(),
            event_types: vec!["message.new".into()],
            enabled: true,
            description: Some("CRM".into()),
            secrets: vec![
                WebhookSecret {
                    secret: "whsec_new".into(),
                    created_at: "t2".into(),
                    expires_at: None,
                },
                WebhookSecret {
                    secret: "whsec_old".into(),
                    created_at: "t1".into(),
                    expires_at: Some(100),
                },
            ],
            created_at: "t1".into(),
            updated_at: "t2".into(),
            failing_since: Some(1_700_000_000),
            disabled_reason: Some(DisabledReason::Failing),
        };
        assert_eq!(
            Webhook::from_item(&webhook.item(&org)),
            Some(webhook.clone())
        );
        assert!(!webhook.json().to_string().contains("whsec_"));
        assert_eq!(webhook.active_secrets(99), vec!["whsec_new", "whsec_old"]);
        assert_eq!(webhook.active_secrets(100), vec!["whsec_new"]);
    }
}
