//! A tenant's webhook endpoints: one partition per tenant (`T#{org}#WEBHOOKS`), one item
//! per endpoint (`W#{id}`), its signing secrets kept with it (encrypted at rest by the
//! table) since every delivery signs with them.

use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, Ulid};
use crate::item::{Item, ItemBuilder, ItemExt, s, values};
use crate::store::{Store, WriteError, WriteResultExt, put_of};
use crate::webhooks::{
    MAX_WEBHOOKS, ROTATION_GRACE_SECS, WebhookChanges, WebhookDraft, new_secret,
};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, ReturnValue, Update};
use serde::{Deserialize, Serialize};

const ENTITY: &str = "webhook";

fn pk(org: &OrgId) -> String {
    format!("T#{org}#WEBHOOKS")
}

fn sk(id: &str) -> String {
    format!("W#{id}")
}

/// One signing secret; a replaced one signs until `expires_at` (unix seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookSecret {
    pub secret: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub description: Option<String>,
    pub secrets: Vec<WebhookSecret>,
    pub created_at: String,
    pub updated_at: String,
}

impl Webhook {
    fn item(&self, org: &OrgId) -> Item {
        ItemBuilder::new()
            .str(crate::keys::PK, pk(org))
            .str(crate::keys::SK, sk(&self.id))
            .str(crate::keys::ENTITY, ENTITY)
            .str("webhook_id", &self.id)
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
            .build()
    }

    pub fn from_item(item: &Item) -> Option<Webhook> {
        (item.str(crate::keys::ENTITY) == Some(ENTITY)).then_some(())?;
        Some(Webhook {
            id: item.string("webhook_id")?,
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
        })
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
        })
    }
}

impl Store {
    /// Adds an endpoint with a new secret (answered once, by the caller).
    pub async fn create_webhook(&self, org: &OrgId, draft: WebhookDraft) -> ApiResult<Webhook> {
        if self.list_webhooks(org).await?.len() >= MAX_WEBHOOKS {
            return Err(ApiError::Conflict {
                code: "too_many_webhooks",
                message: format!("a tenant has at most {MAX_WEBHOOKS} webhook endpoints"),
            });
        }
        let now = crate::time::now_string();
        let webhook = Webhook {
            id: Ulid::generate().as_str().to_owned(),
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
        };
        self.table
            .put(
                put_of(self.name(), webhook.item(org), true),
                "create webhook",
            )
            .await
            .map_err(WriteError::into_api)?;
        Ok(webhook)
    }

    pub async fn list_webhooks(&self, org: &OrgId) -> ApiResult<Vec<Webhook>> {
        let items = self
            .table
            .query_all("list webhooks", |query| {
                query
                    .key_condition_expression("PK = :pk")
                    .set_expression_attribute_values(Some(values([(":pk", s(pk(org)))])))
                    .consistent_read(true)
            })
            .await?;
        Ok(items.iter().filter_map(Webhook::from_item).collect())
    }

    pub async fn get_webhook(&self, org: &OrgId, id: &Ulid) -> ApiResult<Webhook> {
        self.table
            .get((pk(org), sk(id.as_str())), "get webhook")
            .await?
            .as_ref()
            .and_then(Webhook::from_item)
            .ok_or(ApiError::NotFound("webhook"))
    }

    pub async fn update_webhook(
        &self,
        org: &OrgId,
        id: &Ulid,
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
        if let Some(enabled) = changes.enabled {
            sets.push("enabled = :enabled");
            vals.insert(":enabled".into(), AttributeValue::Bool(enabled));
        }
        if let Some(description) = &changes.description {
            sets.push("description = :description");
            vals.insert(":description".into(), s(description));
        }
        let mut update = Update::builder()
            .table_name(self.name())
            .key(crate::keys::PK, s(pk(org)))
            .key(crate::keys::SK, s(sk(id.as_str())))
            .update_expression(format!("SET {}", sets.join(", ")))
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

    pub async fn delete_webhook(&self, org: &OrgId, id: &Ulid) -> ApiResult<()> {
        let delete = Delete::builder()
            .table_name(self.name())
            .key(crate::keys::PK, s(pk(org)))
            .key(crate::keys::SK, s(sk(id.as_str())))
            .condition_expression("attribute_exists(PK)")
            .build()
            .expect("delete has key");
        self.table
            .delete(delete, "delete webhook")
            .await
            .or_condition(|_| ApiError::NotFound("webhook"))?;
        Ok(())
    }

    /// A new secret signs from now on; the current one keeps signing for the grace
    /// period (receivers switch meanwhile); older ones are dropped. Conditioned on the
    /// endpoint as read, so two rotations cannot both win.
    pub async fn rotate_webhook_secret(
        &self,
        org: &OrgId,
        id: &Ulid,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_round_trips_and_shows_no_secret() {
        let org = OrgId::parse("acme").unwrap();
        let webhook = Webhook {
            id: "01J00000000000000000000000".into(),
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
