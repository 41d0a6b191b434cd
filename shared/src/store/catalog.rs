//! The tenant's product catalogue and its users' profiles.

use super::{Page, Store, WriteResultExt};
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, UserId};
use crate::item::{Item, ItemBuilder, ItemExt, s};
use crate::keys;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    pub product_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: String,
}

/// Products per page of the catalogue.
pub const MAX_PRODUCTS_PAGE: u32 = 100;

impl Product {
    fn to_item(&self, org: &OrgId) -> Item {
        ItemBuilder::new()
            .str(keys::PK, keys::products_pk(org))
            .str(keys::SK, keys::product_sk(&self.product_id))
            .str(keys::ENTITY, keys::entity::PRODUCT)
            .str("product_id", &self.product_id)
            .str("name", &self.name)
            .opt_str("description", self.description.clone())
            .str("created_at", &self.created_at)
            .build()
    }

    pub fn from_item(item: &Item) -> Option<Product> {
        (item.str(keys::ENTITY) == Some(keys::entity::PRODUCT)).then(|| Product {
            product_id: item.string("product_id").unwrap_or_default(),
            name: item.string("name").unwrap_or_default(),
            description: item.string("description"),
            created_at: item.string("created_at").unwrap_or_default(),
        })
    }
}

/// What member lists show of a user.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Profile {
    pub user_id: String,
    pub username: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub display_image: Option<String>,
    pub updated_at: Option<String>,
}

impl Profile {
    fn to_item(&self, org: &OrgId, user: &UserId) -> Item {
        ItemBuilder::new()
            .str(keys::PK, keys::user_pk(org, user))
            .str(keys::SK, keys::PROFILE_SK)
            .str(keys::ENTITY, keys::entity::PROFILE)
            .str("user_id", user.as_str())
            .opt_str("username", self.username.clone())
            .opt_str("email", self.email.clone())
            .opt_str("phone", self.phone.clone())
            .opt_str("display_image", self.display_image.clone())
            .opt_str("updated_at", self.updated_at.clone())
            .build()
    }

    pub fn from_item(item: &impl ItemExt) -> Option<Profile> {
        (item.str(keys::ENTITY) == Some(keys::entity::PROFILE)).then(|| Profile {
            user_id: item.string("user_id").unwrap_or_default(),
            username: item.string("username"),
            email: item.string("email"),
            phone: item.string("phone"),
            display_image: item.string("display_image"),
            updated_at: item.string("updated_at"),
        })
    }
}

const ORG_SETTINGS_SK: &str = "SETTINGS";

impl Store {
    /// The tenant's settings, once an admin gave them: one GetItem.
    pub async fn org_settings(
        &self,
        org: &OrgId,
    ) -> ApiResult<Option<crate::commands::rooms::OrgSettings>> {
        let item = self
            .table
            .get(
                (keys::org_pk(org), ORG_SETTINGS_SK.to_owned()),
                "org settings",
            )
            .await?;
        Ok(item.and_then(|item| {
            let email_inbox = match (item.string("inbox_local"), item.string("inbox_agent")) {
                (Some(local_part), Some(agent_id)) => Some(crate::commands::rooms::EmailInbox {
                    local_part,
                    agent_id,
                }),
                _ => None,
            };
            Some(crate::commands::rooms::OrgSettings {
                name: item.string("name")?,
                email_inbox,
            })
        }))
    }

    /// The name the tenant's mails go out under: its settings' name, else its id.
    pub async fn tenant_name(&self, org: &OrgId) -> ApiResult<String> {
        Ok(self
            .org_settings(org)
            .await?
            .map(|s| s.name)
            .unwrap_or_else(|| org.to_string()))
    }

    /// Keeps the tenant's settings, and its email inbox's local part as the stack's
    /// only claim on it, in one transaction (a local part another tenant holds is a
    /// conflict; the one given up is released). Conditioned on the settings read, so
    /// two admins saving at once cannot leave a claim behind.
    pub async fn put_org_settings(
        &self,
        org: &OrgId,
        settings: &crate::commands::rooms::OrgSettings,
    ) -> ApiResult<()> {
        use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
        let previous = self.org_settings(org).await?;
        let old = previous
            .and_then(|p| p.email_inbox)
            .map(|inbox| inbox.local_part);
        let new = settings.email_inbox.as_ref().map(|i| i.local_part.clone());
        let mut item = ItemBuilder::new()
            .str(keys::PK, keys::org_pk(org))
            .str(keys::SK, ORG_SETTINGS_SK)
            .str(keys::ENTITY, "org_settings")
            .str("name", &settings.name)
            .str("updated_at", crate::time::now_string());
        if let Some(inbox) = &settings.email_inbox {
            item = item
                .str("inbox_local", &inbox.local_part)
                .str("inbox_agent", &inbox.agent_id);
        }
        let mut put = Put::builder()
            .table_name(self.name())
            .set_item(Some(item.build()));
        put = match &old {
            None => put.condition_expression("attribute_not_exists(inbox_local)"),
            Some(local) => put
                .condition_expression("inbox_local = :old")
                .expression_attribute_values(":old", s(local)),
        };
        let mut writes = vec![
            TransactWriteItem::builder()
                .put(put.build().expect("put has item"))
                .build(),
        ];
        let claim_index = writes.len();
        if let Some(local) = new.as_ref().filter(|n| Some(*n) != old.as_ref()) {
            let (pk, sk) = keys::email_inbox_key(local);
            let claim = Put::builder()
                .table_name(self.name())
                .item(keys::PK, s(pk))
                .item(keys::SK, s(sk))
                .item(keys::ENTITY, s("email_inbox"))
                .item("org", s(org.as_str()))
                .condition_expression("attribute_not_exists(PK) OR org = :org")
                .expression_attribute_values(":org", s(org.as_str()))
                .build()
                .expect("put has item");
            writes.push(TransactWriteItem::builder().put(claim).build());
        }
        if let Some(local) = old.as_ref().filter(|o| Some(*o) != new.as_ref()) {
            let (pk, sk) = keys::email_inbox_key(local);
            let release = Delete::builder()
                .table_name(self.name())
                .key(keys::PK, s(pk))
                .key(keys::SK, s(sk))
                .condition_expression("org = :org")
                .expression_attribute_values(":org", s(org.as_str()))
                .build()
                .expect("delete has key");
            writes.push(TransactWriteItem::builder().delete(release).build());
        }
        match self.table.transact(writes, "put org settings").await {
            Ok(()) => Ok(()),
            Err(super::WriteError::ConditionFailed(c))
                if c.failed(claim_index) && new.is_some() && new.as_ref() != old.as_ref() =>
            {
                Err(ApiError::Conflict {
                    code: "email_inbox_taken",
                    message: "another tenant has this email inbox; choose another local part"
                        .into(),
                })
            }
            Err(super::WriteError::ConditionFailed(_)) => Err(ApiError::Conflict {
                code: "settings_changed",
                message: "the settings changed meanwhile; read them and try again".into(),
            }),
            Err(super::WriteError::Api(err)) => Err(err),
        }
    }

    /// Adds a product; an existing id is a conflict.
    pub async fn create_product(&self, org: &OrgId, product: &Product) -> ApiResult<()> {
        let item = product.to_item(org);
        self.table
            .put(super::put_of(self.name(), item, true), "create product")
            .await
            .or_condition(|_| ApiError::Conflict {
                code: "product_exists",
                message: "a product with this id exists".into(),
            })
    }

    /// A page of the tenant's catalogue in product id order: one Query.
    pub async fn list_products(
        &self,
        org: &OrgId,
        limit: u32,
        cursor: Option<&str>,
    ) -> ApiResult<Page<Product>> {
        let pk = keys::products_pk(org);
        let page = self
            .table
            .query_page(
                "list products",
                cursor,
                crate::cursor::Partition::pk(&pk),
                crate::cursor::TABLE_KEYS,
                |query| {
                    query
                        .key_condition_expression("PK = :pk")
                        .expression_attribute_values(":pk", s(&pk))
                        .limit(limit.min(MAX_PRODUCTS_PAGE) as i32)
                },
            )
            .await?;
        Ok(Page {
            items: page.items.iter().filter_map(Product::from_item).collect(),
            next_cursor: page.next_cursor,
        })
    }

    pub async fn put_profile(
        &self,
        org: &OrgId,
        user: &UserId,
        profile: &Profile,
    ) -> ApiResult<()> {
        let put = super::put_of(self.name(), profile.to_item(org, user), false);
        self.table
            .put(put, "put profile")
            .await
            .map_err(super::WriteError::into_api)
    }

    pub async fn get_profile(&self, org: &OrgId, user: &UserId) -> ApiResult<Option<Profile>> {
        let item = self
            .table
            .get(
                (keys::user_pk(org, user), keys::PROFILE_SK.to_owned()),
                "get profile",
            )
            .await?;
        Ok(item.as_ref().and_then(Profile::from_item))
    }

    /// Rooms and the profiles of their members in one BatchGetItem; members without
    /// a profile get an empty one. More than 100 keys spill into further requests.
    pub async fn rooms_with_profiles(
        &self,
        org: &OrgId,
        rooms: &[crate::ids::RoomId],
        members: &[String],
    ) -> ApiResult<(Vec<crate::model::Room>, HashMap<String, Profile>)> {
        let mut item_keys: Vec<(String, String)> = rooms
            .iter()
            .map(|r| (keys::room_pk(org, r), keys::ROOM_SK.to_owned()))
            .collect();
        item_keys.extend(
            members
                .iter()
                .filter_map(|m| UserId::parse(m).ok())
                .map(|u| (keys::user_pk(org, &u), keys::PROFILE_SK.to_owned())),
        );
        let mut answers = Vec::new();
        for chunk in item_keys.chunks(100) {
            answers.push(self.batch_get(chunk, "rooms with profiles").await?);
        }
        let mut items = Vec::new();
        for found in &answers {
            items.extend(found.rows()?);
        }
        let found_rooms = items
            .iter()
            .filter_map(crate::model::Room::from_item)
            .collect();
        let profiles = items
            .iter()
            .filter_map(Profile::from_item)
            .map(|p| (p.user_id.clone(), p))
            .collect();
        Ok((found_rooms, profiles))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> OrgId {
        OrgId::parse("acme").unwrap()
    }

    #[test]
    fn product_round_trips_through_its_item() {
        let product = Product {
            product_id: "shop".into(),
            name: "Shop".into(),
            description: Some("The web shop".into()),
            created_at: "2024-06-29T10:00:00.000Z".into(),
        };
        let item = product.to_item(&org());
        assert_eq!(item.str(keys::PK), Some("T#acme#PRODUCTS"));
        assert_eq!(Product::from_item(&item), Some(product));
    }

    #[test]
    fn profile_round_trips_through_its_item() {
        let user = UserId::parse("u-1").unwrap();
        let profile = Profile {
            user_id: "u-1".into(),
            username: Some("Sam".into()),
            email: Some("sam@example.com".into()),
            phone: None,
            display_image: Some("https://example.com/s.png".into()),
            updated_at: Some("2024-06-29T10:00:00.000Z".into()),
        };
        let item = profile.to_item(&org(), &user);
        assert_eq!(item.str(keys::SK), Some(keys::PROFILE_SK));
        assert_eq!(Profile::from_item(&item), Some(profile));
        assert_eq!(
            Product::from_item(&item),
            None,
            "entity tags tell items apart"
        );
    }
}
