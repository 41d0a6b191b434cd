//! The tenant's product catalogue and its users' profiles.

use super::Store;
use crate::dynamo::sdk_error;
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

    pub fn from_item(item: &Item) -> Option<Profile> {
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

impl Store {
    /// Adds a product; an existing id is a conflict.
    pub async fn create_product(&self, org: &OrgId, product: &Product) -> ApiResult<()> {
        let item = ItemBuilder::new()
            .str(keys::PK, keys::products_pk(org))
            .str(keys::SK, keys::product_sk(&product.product_id))
            .str(keys::ENTITY, keys::entity::PRODUCT)
            .str("product_id", &product.product_id)
            .str("name", &product.name)
            .opt_str("description", product.description.clone())
            .str("created_at", &product.created_at)
            .build();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(ApiError::Conflict {
                    code: "product_exists",
                    message: "a product with this id exists".into(),
                })
            }
            Err(err) => Err(sdk_error("create product", err)),
        }
    }

    /// The tenant's catalogue, one Query (a catalogue is small: one page of up to 1 MB).
    pub async fn list_products(&self, org: &OrgId) -> ApiResult<Vec<Product>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", s(keys::products_pk(org)))
            .send()
            .await
            .map_err(|e| sdk_error("list products", e))?;
        Ok(out
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| Product {
                product_id: item.string("product_id").unwrap_or_default(),
                name: item.string("name").unwrap_or_default(),
                description: item.string("description"),
                created_at: item.string("created_at").unwrap_or_default(),
            })
            .collect())
    }

    pub async fn put_profile(
        &self,
        org: &OrgId,
        user: &UserId,
        profile: &Profile,
    ) -> ApiResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(profile.to_item(org, user)))
            .send()
            .await
            .map_err(|e| sdk_error("put profile", e))?;
        Ok(())
    }

    pub async fn get_profile(&self, org: &OrgId, user: &UserId) -> ApiResult<Option<Profile>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(keys::PK, s(keys::user_pk(org, user)))
            .key(keys::SK, s(keys::PROFILE_SK))
            .send()
            .await
            .map_err(|e| sdk_error("get profile", e))?;
        Ok(out.item.as_ref().and_then(Profile::from_item))
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
        let mut items = Vec::new();
        for chunk in item_keys.chunks(100) {
            items.extend(self.batch_get(chunk, "rooms with profiles").await?);
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
