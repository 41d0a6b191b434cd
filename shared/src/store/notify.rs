//! What decides whether a person who is away hears of a message, and how: their
//! notification settings, a room's mute (on their member row), their browsers' push
//! subscriptions, and the window that collapses a burst into one notification.
//!
//! | item              | PK                  | SK            |
//! |-------------------|---------------------|---------------|
//! | settings          | T#{org}#USER#{user} | NOTIFY        |
//! | push subscription | T#{org}#USER#{user} | PUSH#{id}     |
//! | their count       | T#{org}#USER#{user} | PUSH~COUNT    |
//! | collapse window   | T#{org}#USER#{user} | NOTE#{room}   |
//! | email window      | T#{org}#USER#{user} | MAIL#{room}   |
//! | phone (app)       | T#{org}#USER#{user} | DEV#{id}      |
//! | their count       | T#{org}#USER#{user} | DEV~COUNT     |
//! | a token's owner   | DEVICE#{id}         | OWNER         |
//!
//! A phone's push token belongs to one app install, whoever signs in on it: the
//! owner item (outside every tenant, as the stack's SNS applications are) names the
//! one user its notifications go to, so a phone handed on stops receiving the last
//! user's messages the moment the next one registers it.
//!
//! All of it sorts after the user's connections and inbox feed head (`C#…`, `FEED`),
//! so the inbox feed's one Query never reads it.

use crate::commands::notify::{
    DeviceTarget, MAX_DEVICES, MAX_PUSH_SUBSCRIPTIONS, NotificationSettings, Platform, PushTarget,
};
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, RoomId, UserId};
use crate::item::{Item, ItemBuilder, ItemExt, n, s, values};
use crate::keys;
use crate::store::{Store, WriteError, count_down, count_up, put};
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use serde::Serialize;

const SETTINGS_SK: &str = "NOTIFY";
const PUSH_PREFIX: &str = "PUSH#";
const PUSH_COUNT_SK: &str = "PUSH~COUNT";

const DEVICE_PREFIX: &str = "DEV#";
const DEVICE_COUNT_SK: &str = "DEV~COUNT";

fn device_sk(id: &str) -> String {
    format!("{DEVICE_PREFIX}{id}")
}

fn device_owner_key(id: &str) -> (String, String) {
    (format!("DEVICE#{id}"), "OWNER".to_owned())
}

/// Shards of the due windows' index partitions (`NOTEDUE#{0..3}` in GSI2).
pub const DUE_SHARDS: u32 = 4;

/// The due partition of a window, by its key.
fn due_pk(pk: &str, sk: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{pk}/{sk}").as_bytes());
    format!("NOTEDUE#{}", u32::from(digest[0]) % DUE_SHARDS)
}

/// When a window ends, as its due sort key (milliseconds, zero-padded: text order is
/// time order).
fn due_at(until_ms: i64) -> String {
    format!("{until_ms:013}")
}

/// A window whose end has come with messages collapsed in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueWindow {
    pub kind: WindowKind,
    pub org: OrgId,
    pub user: UserId,
    pub room: RoomId,
}

impl DueWindow {
    fn of_keys(pk: &str, sk: &str) -> Option<DueWindow> {
        let rest = pk.strip_prefix("T#")?;
        let (org, user) = rest.split_once("#USER#")?;
        let (kind, room) = [WindowKind::Push, WindowKind::Email]
            .into_iter()
            .find_map(|kind| Some((kind, sk.strip_prefix(window_prefix(kind))?)))?;
        Some(DueWindow {
            kind,
            org: OrgId::parse(org).ok()?,
            user: UserId::parse(user).ok()?,
            room: RoomId::parse(room).ok()?,
        })
    }
}

/// A phone's app install as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    pub device_id: String,
    pub platform: Platform,
    #[serde(skip)]
    pub token: String,
    /// Its SNS platform endpoint, once the pipeline made one.
    #[serde(skip)]
    pub endpoint_arn: Option<String>,
    /// Off once the push service called its token invalid (SNS disabled its
    /// endpoint); registering the token again turns it on.
    pub enabled: bool,
    pub created_at: String,
}

impl Device {
    fn item(&self, org: &OrgId, user: &UserId) -> Item {
        ItemBuilder::new()
            .str(keys::PK, keys::user_pk(org, user))
            .str(keys::SK, device_sk(&self.device_id))
            .str(keys::ENTITY, "device")
            .str("device_id", &self.device_id)
            .str("platform", self.platform.as_str())
            .str("token", &self.token)
            .opt_str("endpoint_arn", self.endpoint_arn.clone())
            .flag("enabled", self.enabled)
            .str("created_at", &self.created_at)
            .build()
    }

    fn from_item(item: &impl ItemExt) -> Option<Device> {
        (item.str(keys::ENTITY) == Some("device")).then_some(())?;
        Some(Device {
            device_id: item.string("device_id")?,
            platform: Platform::parse(item.str("platform")?)?,
            token: item.string("token")?,
            endpoint_arn: item.string("endpoint_arn"),
            enabled: item.flag("enabled"),
            created_at: item.string("created_at").unwrap_or_default(),
        })
    }
}

fn push_sk(id: &str) -> String {
    format!("{PUSH_PREFIX}{id}")
}

/// Which channel's window a message is taken into: pushes (browsers and devices
/// alike) collapse per notification window, emails per the person's digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Push,
    Email,
}

fn window_prefix(kind: WindowKind) -> &'static str {
    match kind {
        WindowKind::Push => "NOTE#",
        WindowKind::Email => "MAIL#",
    }
}

fn window_sk(kind: WindowKind, room: &RoomId) -> String {
    format!("{}{room}", window_prefix(kind))
}

/// A browser's push subscription as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushSubscription {
    pub subscription_id: String,
    pub endpoint: String,
    #[serde(skip)]
    pub p256dh: String,
    #[serde(skip)]
    pub auth: String,
    pub created_at: String,
}

impl PushSubscription {
    fn item(&self, org: &OrgId, user: &UserId) -> Item {
        ItemBuilder::new()
            .str(keys::PK, keys::user_pk(org, user))
            .str(keys::SK, push_sk(&self.subscription_id))
            .str(keys::ENTITY, "push_subscription")
            .str("subscription_id", &self.subscription_id)
            .str("endpoint", &self.endpoint)
            .str("p256dh", &self.p256dh)
            .str("auth", &self.auth)
            .str("created_at", &self.created_at)
            .build()
    }

    fn from_item(item: &impl ItemExt) -> Option<PushSubscription> {
        (item.str(keys::ENTITY) == Some("push_subscription")).then_some(())?;
        Some(PushSubscription {
            subscription_id: item.string("subscription_id")?,
            endpoint: item.string("endpoint")?,
            p256dh: item.string("p256dh")?,
            auth: item.string("auth")?,
            created_at: item.string("created_at").unwrap_or_default(),
        })
    }
}

/// What the pipeline learnt of a device.
#[derive(Debug, Clone, Copy)]
pub enum DeviceChange<'a> {
    /// Its SNS platform endpoint.
    Endpoint(&'a str),
    /// The push service called its token invalid.
    Disabled,
}

/// How a recipient's collapse window took a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// A new window opened: notify now, for `count` messages (this one and those
    /// collapsed in the window before, not yet told).
    Notify { count: u64 },
    /// Within an open window: counted, told at the next notification.
    Collapsed,
    /// This message was taken before (a stream record handled twice).
    Seen,
}

impl Store {
    /// The person's settings (the defaults until they change them).
    pub async fn notification_settings(
        &self,
        org: &OrgId,
        user: &UserId,
    ) -> ApiResult<NotificationSettings> {
        let key = (keys::user_pk(org, user), SETTINGS_SK.to_owned());
        let item = self.table.get(key, "notification settings").await?;
        Ok(item.as_ref().and_then(settings_of).unwrap_or_default())
    }

    /// Turns the person's email off (the unsubscribe link), keeping the rest of their
    /// settings: conditioned on the settings it read, so a change made meanwhile is
    /// never overwritten (it is read again). Answers whether email was on.
    pub async fn turn_email_off(&self, org: &OrgId, user: &UserId) -> ApiResult<bool> {
        let key = (keys::user_pk(org, user), SETTINGS_SK.to_owned());
        for _ in 0..5 {
            let item = self.table.get(key.clone(), "notification settings").await?;
            let old = item.as_ref().and_then(|i| i.string("settings"));
            let mut settings = item.as_ref().and_then(settings_of).unwrap_or_default();
            if !settings.channels.email {
                return Ok(false);
            }
            settings.channels.email = false;
            let update = Update::builder()
                .table_name(self.name())
                .key(keys::PK, s(&key.0))
                .key(keys::SK, s(&key.1))
                .update_expression("SET settings = :new, #e = :entity, updated_at = :at")
                .expression_attribute_names("#e", keys::ENTITY)
                .expression_attribute_values(
                    ":new",
                    s(serde_json::to_string(&settings).expect("settings serialize")),
                )
                .expression_attribute_values(":entity", s("notification_settings"))
                .expression_attribute_values(":at", s(crate::time::now_string()));
            let update = match &old {
                Some(old) => update
                    .condition_expression("settings = :old")
                    .expression_attribute_values(":old", s(old)),
                None => update.condition_expression("attribute_not_exists(settings)"),
            }
            .build()
            .expect("update has key and expression");
            match self.table.update(update, None, "turn email off").await {
                Ok(_) => return Ok(true),
                Err(WriteError::ConditionFailed(_)) => continue,
                Err(WriteError::Api(err)) => return Err(err),
            }
        }
        Err(ApiError::internal(
            "turn email off",
            "the settings kept changing",
        ))
    }

    pub async fn put_notification_settings(
        &self,
        org: &OrgId,
        user: &UserId,
        settings: &NotificationSettings,
    ) -> ApiResult<()> {
        let item = ItemBuilder::new()
            .str(keys::PK, keys::user_pk(org, user))
            .str(keys::SK, SETTINGS_SK)
            .str(keys::ENTITY, "notification_settings")
            .str(
                "settings",
                serde_json::to_string(settings).expect("settings serialize"),
            )
            .str("updated_at", crate::time::now_string())
            .build();
        self.table
            .put(
                crate::store::put_of(self.name(), item, false),
                "put notification settings",
            )
            .await
            .map_err(WriteError::into_api)
    }

    /// Keeps a browser's subscription: a new one counts toward the person's
    /// [`MAX_PUSH_SUBSCRIPTIONS`] (the count's condition and the put are one
    /// transaction, so a burst cannot pass it); the same endpoint again takes its new
    /// keys. Answers the subscription and whether it is new.
    pub async fn add_push_subscription(
        &self,
        org: &OrgId,
        user: &UserId,
        target: &PushTarget,
    ) -> ApiResult<(PushSubscription, bool)> {
        let subscription = PushSubscription {
            subscription_id: target.id(),
            endpoint: target.endpoint.clone(),
            p256dh: target.p256dh.clone(),
            auth: target.auth.clone(),
            created_at: crate::time::now_string(),
        };
        let pk = keys::user_pk(org, user);
        let count = count_up(
            self.name(),
            (pk.clone(), PUSH_COUNT_SK.to_owned()),
            MAX_PUSH_SUBSCRIPTIONS,
            0,
            None,
        );
        let writes = vec![
            put(self.name(), subscription.item(org, user), true),
            TransactWriteItem::builder().update(count).build(),
        ];
        match self.table.transact(writes, "add push subscription").await {
            Ok(()) => Ok((subscription, true)),
            Err(WriteError::ConditionFailed(c)) if c.failed(0) => {
                // Known already: its keys change, its count does not.
                let update = Update::builder()
                    .table_name(self.name())
                    .key(keys::PK, s(pk))
                    .key(keys::SK, s(push_sk(&subscription.subscription_id)))
                    // `auth` is one of DynamoDB's reserved words.
                    .update_expression("SET #key = :key, #auth = :auth")
                    .condition_expression("attribute_exists(PK)")
                    .expression_attribute_names("#key", "p256dh")
                    .expression_attribute_names("#auth", "auth")
                    .expression_attribute_values(":key", s(&subscription.p256dh))
                    .expression_attribute_values(":auth", s(&subscription.auth))
                    .build()
                    .expect("update has key and expression");
                let kept = self
                    .table
                    .update(update, Some(ReturnValue::AllNew), "renew push subscription")
                    .await
                    .map_err(WriteError::into_api)?;
                let kept = kept
                    .as_ref()
                    .and_then(PushSubscription::from_item)
                    .ok_or_else(|| ApiError::internal("push subscription", "not returned"))?;
                Ok((kept, false))
            }
            Err(WriteError::ConditionFailed(_)) => Err(ApiError::Conflict {
                code: "too_many_push_subscriptions",
                message: format!(
                    "a user keeps at most {MAX_PUSH_SUBSCRIPTIONS} push subscriptions; delete one first"
                ),
            }),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// Forgets a subscription (its user deleted it, or the push service said it is
    /// gone) and counts it out, in one transaction; `404` when there is none.
    pub async fn delete_push_subscription(
        &self,
        org: &OrgId,
        user: &UserId,
        subscription_id: &str,
    ) -> ApiResult<()> {
        let pk = keys::user_pk(org, user);
        let delete = Delete::builder()
            .table_name(self.name())
            .key(keys::PK, s(&pk))
            .key(keys::SK, s(push_sk(subscription_id)))
            .condition_expression("attribute_exists(PK)")
            .build()
            .expect("delete has key");
        let writes = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder()
                .update(count_down(self.name(), (pk, PUSH_COUNT_SK.to_owned())))
                .build(),
        ];
        match self
            .table
            .transact(writes, "delete push subscription")
            .await
        {
            Ok(()) => Ok(()),
            Err(WriteError::ConditionFailed(_)) => Err(ApiError::NotFound("push subscription")),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// Keeps a phone's app install for the person: a new one counts toward their
    /// [`MAX_DEVICES`] in the transaction that writes it; the same token again turns it
    /// back on. A token another user registered last moves to this one (their device
    /// item and count go in the same transaction). Answers the device and whether it
    /// is new to this user.
    pub async fn add_device(
        &self,
        org: &OrgId,
        user: &UserId,
        target: &DeviceTarget,
    ) -> ApiResult<(Device, bool)> {
        let id = target.id();
        let device = Device {
            device_id: id.clone(),
            platform: target.platform,
            token: target.token.clone(),
            endpoint_arn: None,
            enabled: true,
            created_at: crate::time::now_string(),
        };
        let mine = keys::user_pk(org, user);
        let owner_key = device_owner_key(&id);
        // A race with another registration of the token is decided by the owner
        // item's condition: read again, at most a few times.
        for _ in 0..4 {
            let owner = self.table.get(owner_key.clone(), "device owner").await?;
            let owner_of = |item: &Item| (item.string("org"), item.string("user_id"));
            let previous = owner.as_ref().map(owner_of);
            if previous == Some((Some(org.to_string()), Some(user.to_string()))) {
                let update = Update::builder()
                    .table_name(self.name())
                    .key(keys::PK, s(&mine))
                    .key(keys::SK, s(device_sk(&id)))
                    .update_expression("SET enabled = :on")
                    .condition_expression("attribute_exists(PK)")
                    .expression_attribute_values(":on", AttributeValue::Bool(true))
                    .build()
                    .expect("update has key and expression");
                match self
                    .table
                    .update(update, Some(ReturnValue::AllNew), "renew device")
                    .await
                {
                    Ok(kept) => {
                        let kept = kept
                            .as_ref()
                            .and_then(Device::from_item)
                            .ok_or_else(|| ApiError::internal("device", "not returned"))?;
                        return Ok((kept, false));
                    }
                    // Owned, yet gone (deleted meanwhile): registered anew below.
                    Err(WriteError::ConditionFailed(_)) => {}
                    Err(WriteError::Api(err)) => return Err(err),
                }
            }
            let owner_item = ItemBuilder::new()
                .str(keys::PK, &owner_key.0)
                .str(keys::SK, &owner_key.1)
                .str(keys::ENTITY, "device_owner")
                .str("org", org.as_str())
                .str("user_id", user.as_str())
                .build();
            let mut claim = aws_sdk_dynamodb::types::Put::builder()
                .table_name(self.name())
                .set_item(Some(owner_item));
            claim = match &previous {
                None => claim.condition_expression("attribute_not_exists(PK)"),
                Some((o, u)) => claim
                    .condition_expression("org = :org AND user_id = :user")
                    .expression_attribute_values(":org", s(o.clone().unwrap_or_default()))
                    .expression_attribute_values(":user", s(u.clone().unwrap_or_default())),
            };
            let mut writes = vec![
                TransactWriteItem::builder()
                    .put(claim.build().expect("put has item"))
                    .build(),
                put(self.name(), device.item(org, user), false),
                TransactWriteItem::builder()
                    .update(count_up(
                        self.name(),
                        (mine.clone(), DEVICE_COUNT_SK.to_owned()),
                        MAX_DEVICES,
                        0,
                        None,
                    ))
                    .build(),
            ];
            // The last owner (another user, or this one whose device item is gone)
            // loses the device, and its count, in the same transaction.
            let previous_user = previous.as_ref().and_then(|(o, u)| {
                Some((
                    OrgId::parse(o.as_deref()?).ok()?,
                    UserId::parse(u.as_deref()?).ok()?,
                ))
            });
            let theirs = match &previous_user {
                Some((o, u)) if !(o == org && u == user) => Some(keys::user_pk(o, u)),
                _ => None,
            };
            if let Some(pk) = &theirs {
                let delete = Delete::builder()
                    .table_name(self.name())
                    .key(keys::PK, s(pk))
                    .key(keys::SK, s(device_sk(&id)))
                    .condition_expression("attribute_exists(PK)")
                    .build()
                    .expect("delete has key");
                writes.push(TransactWriteItem::builder().delete(delete).build());
                writes.push(
                    TransactWriteItem::builder()
                        .update(count_down(
                            self.name(),
                            (pk.clone(), DEVICE_COUNT_SK.to_owned()),
                        ))
                        .build(),
                );
            }
            match self.table.transact(writes, "add device").await {
                Ok(()) => return Ok((device, true)),
                Err(WriteError::ConditionFailed(c)) if c.failed(2) => {
                    return Err(ApiError::Conflict {
                        code: "too_many_devices",
                        message: format!(
                            "a user keeps at most {MAX_DEVICES} devices; delete one first"
                        ),
                    });
                }
                Err(WriteError::ConditionFailed(c)) if theirs.is_some() && c.failed(3) => {
                    // The last owner deleted it meanwhile: their owner item stays
                    // until claimed, so drop it — only while it still names them (a
                    // claim made meanwhile by someone else is theirs) — and claim anew.
                    let (o, u) = previous.clone().unwrap_or_default();
                    let stale = Delete::builder()
                        .table_name(self.name())
                        .key(keys::PK, s(&owner_key.0))
                        .key(keys::SK, s(&owner_key.1))
                        .condition_expression("org = :org AND user_id = :user")
                        .expression_attribute_values(":org", s(o.unwrap_or_default()))
                        .expression_attribute_values(":user", s(u.unwrap_or_default()))
                        .build()
                        .expect("delete has key");
                    match self.table.delete(stale, "drop stale device owner").await {
                        Ok(_) | Err(WriteError::ConditionFailed(_)) => {}
                        Err(WriteError::Api(err)) => return Err(err),
                    }
                }
                Err(WriteError::ConditionFailed(_)) => {}
                Err(WriteError::Api(err)) => return Err(err),
            }
        }
        Err(ApiError::Conflict {
            code: "device_contended",
            message: "this device is being registered elsewhere at the same time; try again".into(),
        })
    }

    /// Forgets a device: its item, its count and (when it is still theirs) its token's
    /// owner, in one transaction; `404` when the user has none by that id.
    pub async fn delete_device(&self, org: &OrgId, user: &UserId, id: &str) -> ApiResult<()> {
        let pk = keys::user_pk(org, user);
        let owner_key = device_owner_key(id);
        let owned = self
            .table
            .get(owner_key.clone(), "device owner")
            .await?
            .is_some_and(|o| {
                o.str("org") == Some(org.as_str()) && o.str("user_id") == Some(user.as_str())
            });
        let delete = Delete::builder()
            .table_name(self.name())
            .key(keys::PK, s(&pk))
            .key(keys::SK, s(device_sk(id)))
            .condition_expression("attribute_exists(PK)")
            .build()
            .expect("delete has key");
        let mut writes = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder()
                .update(count_down(self.name(), (pk, DEVICE_COUNT_SK.to_owned())))
                .build(),
        ];
        if owned {
            let release = Delete::builder()
                .table_name(self.name())
                .key(keys::PK, s(&owner_key.0))
                .key(keys::SK, s(&owner_key.1))
                .condition_expression("org = :org AND user_id = :user")
                .expression_attribute_values(":org", s(org.as_str()))
                .expression_attribute_values(":user", s(user.as_str()))
                .build()
                .expect("delete has key");
            writes.push(TransactWriteItem::builder().delete(release).build());
        }
        match self.table.transact(writes, "delete device").await {
            Ok(()) => Ok(()),
            Err(WriteError::ConditionFailed(c)) if c.failed(0) || c.failed(1) => {
                Err(ApiError::NotFound("device"))
            }
            Err(WriteError::ConditionFailed(_)) => Err(ApiError::Conflict {
                code: "device_contended",
                message: "this device was registered elsewhere meanwhile; try again".into(),
            }),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// The person's devices (at most [`MAX_DEVICES`]).
    pub async fn devices(&self, org: &OrgId, user: &UserId) -> ApiResult<Vec<Device>> {
        let pk = keys::user_pk(org, user);
        let items = self
            .table
            .query_all("devices", |query| {
                query
                    .key_condition_expression("PK = :pk AND begins_with(SK, :dev)")
                    .set_expression_attribute_values(Some(values([
                        (":pk", s(&pk)),
                        (":dev", s(DEVICE_PREFIX)),
                    ])))
            })
            .await?;
        Ok(items.iter().filter_map(Device::from_item).collect())
    }

    /// Records the device's SNS endpoint, or that it is off (`arn` none), unless it
    /// is gone meanwhile.
    pub async fn update_device(
        &self,
        org: &OrgId,
        user: &UserId,
        id: &str,
        change: DeviceChange<'_>,
    ) -> ApiResult<()> {
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::user_pk(org, user)))
            .key(keys::SK, s(device_sk(id)))
            .condition_expression("attribute_exists(PK)");
        let update = match change {
            DeviceChange::Endpoint(arn) => update
                .update_expression("SET endpoint_arn = :arn")
                .expression_attribute_values(":arn", s(arn)),
            // Its endpoint is forgotten too: a token registered again goes through
            // SNS anew, which turns that endpoint back on.
            DeviceChange::Disabled => update
                .update_expression("SET enabled = :off REMOVE endpoint_arn")
                .expression_attribute_values(":off", AttributeValue::Bool(false)),
        }
        .build()
        .expect("update has key and expression");
        match self.table.update(update, None, "update device").await {
            Ok(_) | Err(WriteError::ConditionFailed(_)) => Ok(()),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// The person's push subscriptions (at most [`MAX_PUSH_SUBSCRIPTIONS`]).
    pub async fn push_subscriptions(
        &self,
        org: &OrgId,
        user: &UserId,
    ) -> ApiResult<Vec<PushSubscription>> {
        let pk = keys::user_pk(org, user);
        let items = self
            .table
            .query_all("push subscriptions", |query| {
                query
                    .key_condition_expression("PK = :pk AND begins_with(SK, :push)")
                    .set_expression_attribute_values(Some(values([
                        (":pk", s(&pk)),
                        (":push", s(PUSH_PREFIX)),
                    ])))
            })
            .await?;
        Ok(items
            .iter()
            .filter_map(PushSubscription::from_item)
            .collect())
    }

    /// Takes message `seq` of `room` into the person's collapse window: a window
    /// closed at `now_ms` opens for `window_ms` and says notify (with the messages
    /// collapsed in the one before); an open one counts it. Taken once per `seq`.
    #[allow(clippy::too_many_arguments)]
    pub async fn take_into_window(
        &self,
        kind: WindowKind,
        org: &OrgId,
        user: &UserId,
        room: &RoomId,
        seq: u64,
        now_ms: i64,
        window_ms: i64,
    ) -> ApiResult<Window> {
        let key = (keys::user_pk(org, user), window_sk(kind, room));
        let open = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(&key.0))
            .key(keys::SK, s(&key.1))
            // A new window is not due until a message collapses into it.
            .update_expression(
                "SET window_until = :until, pending = :zero, last_seq = :seq, #e = :entity, expires_at = :ttl, due_at = :due_at REMOVE GSI2PK, GSI2SK",
            )
            .condition_expression(
                "attribute_not_exists(window_until) OR (window_until <= :now AND last_seq < :seq)",
            )
            .expression_attribute_names("#e", keys::ENTITY)
            .expression_attribute_values(":until", n(now_ms + window_ms))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":seq", n(seq))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":entity", s("notification_window"))
            .expression_attribute_values(":due_at", s(due_at(now_ms + window_ms)))
            // Kept a day past the window: a window that long closed is a new one.
            .expression_attribute_values(":ttl", n((now_ms + window_ms) / 1000 + 86_400))
            .build()
            .expect("update has key and expression");
        match self
            .table
            .update(open, Some(ReturnValue::AllOld), "open notification window")
            .await
        {
            Ok(old) => {
                let before = old
                    .as_ref()
                    .and_then(|o| o.num::<u64>("pending"))
                    .unwrap_or(0);
                return Ok(Window::Notify { count: before + 1 });
            }
            Err(WriteError::ConditionFailed(_)) => {}
            Err(WriteError::Api(err)) => return Err(err),
        }
        let count = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(&key.0))
            .key(keys::SK, s(&key.1))
            // Collapsed: the window is due at its end (the sweep tells what it holds).
            .update_expression(
                "SET last_seq = :seq, GSI2PK = :due, GSI2SK = due_at ADD pending :one",
            )
            .condition_expression("window_until > :now AND last_seq < :seq")
            .expression_attribute_values(":due", s(due_pk(&key.0, &key.1)))
            .expression_attribute_values(":seq", n(seq))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":one", n(1))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("update has key and expression");
        match self
            .table
            .update(count, None, "collapse notification")
            .await
        {
            Ok(_) => Ok(Window::Collapsed),
            Err(WriteError::ConditionFailed(_)) => Ok(Window::Seen),
            Err(WriteError::Api(err)) => Err(err),
        }
    }
}

impl Store {
    /// Windows whose end is past `now_ms` with messages collapsed in them, oldest
    /// first: one Query of GSI2 per shard (at most `limit` each).
    pub async fn due_windows(&self, now_ms: i64, limit: i32) -> ApiResult<Vec<DueWindow>> {
        let mut due = Vec::new();
        for shard in 0..DUE_SHARDS {
            let (items, _) = self
                .table
                .query("due notification windows", None, |query| {
                    query
                        .index_name(keys::GSI2)
                        .key_condition_expression("GSI2PK = :pk AND GSI2SK <= :now")
                        .set_expression_attribute_values(Some(values([
                            (":pk", s(format!("NOTEDUE#{shard}"))),
                            (":now", s(due_at(now_ms))),
                        ])))
                        .limit(limit)
                })
                .await?;
            due.extend(
                items
                    .iter()
                    .filter_map(|i| DueWindow::of_keys(i.str(keys::PK)?, i.str(keys::SK)?)),
            );
        }
        Ok(due)
    }

    /// Takes what a due window holds: its count of messages not yet told, now told
    /// (and a new window open for `window_ms`, so the next message still waits its
    /// turn). `None` when there is nothing to tell: a message opened a window
    /// meanwhile, or another sweep took it.
    pub async fn flush_window(
        &self,
        window: &DueWindow,
        now_ms: i64,
        window_ms: i64,
    ) -> ApiResult<Option<u64>> {
        let sk = window_sk(window.kind, &window.room);
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::user_pk(&window.org, &window.user)))
            .key(keys::SK, s(sk))
            .update_expression(
                "SET pending = :zero, window_until = :until, due_at = :due_at REMOVE GSI2PK, GSI2SK",
            )
            .condition_expression("pending > :zero AND window_until <= :now")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":until", n(now_ms + window_ms))
            .expression_attribute_values(":due_at", s(due_at(now_ms + window_ms)))
            .build()
            .expect("update has key and expression");
        match self
            .table
            .update(
                update,
                Some(ReturnValue::AllOld),
                "flush notification window",
            )
            .await
        {
            Ok(old) => Ok(old.as_ref().and_then(|o| o.num::<u64>("pending"))),
            Err(WriteError::ConditionFailed(_)) => {
                // Nothing to tell; it must not stay due.
                let clear = Update::builder()
                    .table_name(self.name())
                    .key(keys::PK, s(keys::user_pk(&window.org, &window.user)))
                    .key(keys::SK, s(window_sk(window.kind, &window.room)))
                    .update_expression("REMOVE GSI2PK, GSI2SK")
                    .condition_expression(
                        "attribute_exists(GSI2PK) AND (pending = :zero OR window_until > :now)",
                    )
                    .expression_attribute_values(":zero", n(0))
                    .expression_attribute_values(":now", n(now_ms))
                    .build()
                    .expect("update has key and expression");
                match self.table.update(clear, None, "clear due window").await {
                    Ok(_) | Err(WriteError::ConditionFailed(_)) => Ok(None),
                    Err(WriteError::Api(err)) => Err(err),
                }
            }
            Err(WriteError::Api(err)) => Err(err),
        }
    }
}

/// What the pipeline reads of one recipient with the room's other recipients: their
/// mute and last read (their member row) and their settings.
#[derive(Debug, Clone, Default)]
pub struct RecipientState {
    pub muted_until: Option<String>,
    /// When they last read the room (unix milliseconds).
    pub read_at: Option<i64>,
    /// Their unread messages in the room, as their row says.
    pub unread: u64,
    pub settings: NotificationSettings,
    /// How many browsers and phones they have (their counts): a channel without any
    /// is not tried, nor does it take the window.
    pub browsers: u64,
    pub devices: u64,
}

impl Store {
    /// Each user's member row in `room`, their settings and their counts of browsers
    /// and phones, in BatchGetItems of 100 keys (25 recipients each). Users without a
    /// row (no longer members) are left out.
    pub async fn recipient_states(
        &self,
        org: &OrgId,
        room: &RoomId,
        users: &[UserId],
    ) -> ApiResult<Vec<(UserId, RecipientState)>> {
        let mut item_keys = Vec::new();
        for user in users {
            item_keys.push((keys::room_pk(org, room), keys::member_sk(user)));
            item_keys.push((keys::user_pk(org, user), SETTINGS_SK.to_owned()));
            item_keys.push((keys::user_pk(org, user), PUSH_COUNT_SK.to_owned()));
            item_keys.push((keys::user_pk(org, user), DEVICE_COUNT_SK.to_owned()));
        }
        let mut found = std::collections::HashMap::new();
        for chunk in item_keys.chunks(100) {
            for item in self
                .batch_get(chunk, "notification recipients")
                .await?
                .items()?
            {
                if let (Some(pk), Some(sk)) = (item.string(keys::PK), item.string(keys::SK)) {
                    found.insert((pk, sk), item);
                }
            }
        }
        let lookup = |key: &(String, String)| found.get(key);
        let mut states = Vec::new();
        for user in users {
            let Some(row) = lookup(&(keys::room_pk(org, room), keys::member_sk(user))) else {
                continue;
            };
            let read_at = row.string("read_at").and_then(|at| {
                time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                    .ok()
                    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            });
            let settings = lookup(&(keys::user_pk(org, user), SETTINGS_SK.to_owned()))
                .and_then(settings_of)
                .unwrap_or_default();
            let count = |sk: &str| {
                lookup(&(keys::user_pk(org, user), sk.to_owned()))
                    .and_then(|c| c.num::<i64>("count"))
                    .unwrap_or(0)
                    .max(0) as u64
            };
            states.push((
                user.clone(),
                RecipientState {
                    muted_until: row.string("muted_until"),
                    read_at,
                    unread: row.num("unread_count").unwrap_or(0),
                    settings,
                    browsers: count(PUSH_COUNT_SK),
                    devices: count(DEVICE_COUNT_SK),
                },
            ));
        }
        Ok(states)
    }
}

fn settings_of(item: &Item) -> Option<NotificationSettings> {
    serde_json::from_str(&item.string("settings")?).ok()
}

/// Why a recipient is not notified of a message (or nothing: they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// They wrote it.
    Sender,
    /// An internal note, and they are not its staff reader.
    Hidden,
    Muted,
    /// The channel is off in their settings.
    ChannelOff,
    QuietHours,
    /// Connected, and read the room within the grace period: they are looking.
    Looking,
    /// Nothing of theirs to send to on the channel (no browser or phone registered).
    NoTarget,
}

/// One recipient of a message as the pipeline sees them.
#[derive(Debug, Clone)]
pub struct Recipient<'a> {
    pub user: &'a str,
    /// May read internal notes (the room's agent or assignee: staff in it).
    pub reads_notes: bool,
    pub settings: &'a NotificationSettings,
    /// Until when they muted the room (RFC 3339), if they did.
    pub muted_until: Option<&'a str>,
    /// Whether they have a live connection (every connection gets their inbox feed).
    pub connected: bool,
    /// When they last read the room (unix milliseconds).
    pub read_at: Option<i64>,
}

/// The message as the pipeline sees it.
#[derive(Debug, Clone, Copy)]
pub struct Notice<'a> {
    pub sender: &'a str,
    pub note: bool,
}

/// A way of reaching someone who is away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Web Push to their browsers.
    Push,
    Email,
    /// Push to their phones' apps.
    Mobile,
}

/// Whether `who` is notified of `notice` on `channel` at `now_ms` (unix
/// milliseconds): the rules of docs/notifications.md, in their order.
pub fn decide(
    notice: Notice<'_>,
    who: &Recipient<'_>,
    channel: Channel,
    now_ms: i64,
    grace_secs: i64,
) -> Result<(), Skip> {
    let now = now_ms.div_euclid(1000);
    if who.user == notice.sender {
        return Err(Skip::Sender);
    }
    if notice.note && !who.reads_notes {
        return Err(Skip::Hidden);
    }
    let muted = who.muted_until.and_then(|m| {
        time::OffsetDateTime::parse(m, &time::format_description::well_known::Rfc3339).ok()
    });
    if muted.is_some_and(|m| m.unix_timestamp() > now) {
        return Err(Skip::Muted);
    }
    let channels = &who.settings.channels;
    let on = match channel {
        Channel::Push => channels.push,
        Channel::Email => channels.email,
        Channel::Mobile => channels.mobile,
    };
    if !on {
        return Err(Skip::ChannelOff);
    }
    if who
        .settings
        .quiet_hours
        .as_ref()
        .is_some_and(|q| q.contains(now))
    {
        return Err(Skip::QuietHours);
    }
    if who.connected
        && who
            .read_at
            .is_some_and(|at| now_ms - at <= grace_secs * 1000)
    {
        return Err(Skip::Looking);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::notify::QuietHours;

    #[test]
    fn each_rule_keeps_a_notification_from_who_should_not_get_it() {
        let settings = NotificationSettings::default();
        let base = Recipient {
            user: "u-1",
            reads_notes: false,
            settings: &settings,
            muted_until: None,
            connected: false,
            read_at: None,
        };
        let message = Notice {
            sender: "a-1",
            note: false,
        };
        let now = 1_796_371_200_000; // 2026-12-04T08:00:00Z, in ms
        assert_eq!(decide(message, &base, Channel::Push, now, 30), Ok(()));
        assert_eq!(
            decide(
                Notice {
                    sender: "u-1",
                    note: false
                },
                &base,
                Channel::Push,
                now,
                30
            ),
            Err(Skip::Sender)
        );
        let note = Notice {
            sender: "a-1",
            note: true,
        };
        assert_eq!(
            decide(note, &base, Channel::Push, now, 30),
            Err(Skip::Hidden)
        );
        assert_eq!(
            decide(
                note,
                &Recipient {
                    reads_notes: true,
                    ..base.clone()
                },
                Channel::Push,
                now,
                30
            ),
            Ok(())
        );
        let muted = Recipient {
            muted_until: Some("2026-12-04T09:00:00Z"),
            ..base.clone()
        };
        assert_eq!(
            decide(message, &muted, Channel::Push, now, 30),
            Err(Skip::Muted)
        );
        let expired = Recipient {
            muted_until: Some("2026-12-04T07:00:00Z"),
            ..base.clone()
        };
        assert_eq!(decide(message, &expired, Channel::Push, now, 30), Ok(()));
        let off = NotificationSettings {
            channels: crate::commands::notify::Channels {
                push: false,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            decide(
                message,
                &Recipient {
                    settings: &off,
                    ..base.clone()
                },
                Channel::Push,
                now,
                30
            ),
            Err(Skip::ChannelOff)
        );
        let quiet = NotificationSettings {
            quiet_hours: Some(QuietHours {
                start: "08:30".into(),
                end: "10:00".into(),
                time_zone: "Europe/Berlin".into(),
            }),
            ..Default::default()
        };
        assert_eq!(
            decide(
                message,
                &Recipient {
                    settings: &quiet,
                    ..base.clone()
                },
                Channel::Push,
                now,
                30
            ),
            Err(Skip::QuietHours),
            "09:00 in Berlin"
        );
        let looking = Recipient {
            connected: true,
            read_at: Some(now - 10_000),
            ..base.clone()
        };
        assert_eq!(
            decide(message, &looking, Channel::Push, now, 30),
            Err(Skip::Looking)
        );
        let idle = Recipient {
            connected: true,
            read_at: Some(now - 30_001),
            ..base.clone()
        };
        assert_eq!(
            decide(message, &idle, Channel::Push, now, 30),
            Ok(()),
            "connected but not reading"
        );
        let closed = Recipient {
            connected: false,
            read_at: Some(now - 1_000),
            ..base
        };
        assert_eq!(
            decide(message, &closed, Channel::Push, now, 30),
            Ok(()),
            "read, then went away"
        );
    }
}
