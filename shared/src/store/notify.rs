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
//!
//! All of it sorts after the user's connections and inbox feed head (`C#…`, `FEED`),
//! so the inbox feed's one Query never reads it.

use crate::commands::notify::{MAX_PUSH_SUBSCRIPTIONS, NotificationSettings, PushTarget};
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, RoomId, UserId};
use crate::item::{Item, ItemBuilder, ItemExt, n, s, values};
use crate::keys;
use crate::store::{Store, WriteError, count_down, count_up, put};
use aws_sdk_dynamodb::types::{
    Delete, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde::Serialize;

const SETTINGS_SK: &str = "NOTIFY";
const PUSH_PREFIX: &str = "PUSH#";
const PUSH_COUNT_SK: &str = "PUSH~COUNT";

fn push_sk(id: &str) -> String {
    format!("{PUSH_PREFIX}{id}")
}

fn window_sk(room: &RoomId) -> String {
    format!("NOTE#{room}")
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
    pub async fn take_into_window(
        &self,
        org: &OrgId,
        user: &UserId,
        room: &RoomId,
        seq: u64,
        now_ms: i64,
        window_ms: i64,
    ) -> ApiResult<Window> {
        let key = (keys::user_pk(org, user), window_sk(room));
        let open = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(&key.0))
            .key(keys::SK, s(&key.1))
            .update_expression(
                "SET window_until = :until, pending = :zero, last_seq = :seq, #e = :entity, expires_at = :ttl",
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
            .update_expression("SET last_seq = :seq ADD pending :one")
            .condition_expression("window_until > :now AND last_seq < :seq")
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

/// What the pipeline reads of one recipient with the room's other recipients: their
/// mute and last read (their member row) and their settings.
#[derive(Debug, Clone, Default)]
pub struct RecipientState {
    pub muted_until: Option<String>,
    /// When they last read the room (unix milliseconds).
    pub read_at: Option<i64>,
    pub settings: NotificationSettings,
}

impl Store {
    /// Each user's member row in `room` and their settings, in one BatchGetItem (a
    /// small room's 40 members are 80 keys). Users without a row (no longer members)
    /// are left out.
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
            states.push((
                user.clone(),
                RecipientState {
                    muted_until: row.string("muted_until"),
                    read_at,
                    settings,
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
    /// Push is off in their settings.
    ChannelOff,
    QuietHours,
    /// Connected, and read the room within the grace period: they are looking.
    Looking,
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

/// Whether `who` is notified of `notice` at `now_ms` (unix milliseconds): the rules of
/// docs/notifications.md, in their order.
pub fn decide(
    notice: Notice<'_>,
    who: &Recipient<'_>,
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
    if !who.settings.channels.push {
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
        assert_eq!(decide(message, &base, now, 30), Ok(()));
        assert_eq!(
            decide(
                Notice {
                    sender: "u-1",
                    note: false
                },
                &base,
                now,
                30
            ),
            Err(Skip::Sender)
        );
        let note = Notice {
            sender: "a-1",
            note: true,
        };
        assert_eq!(decide(note, &base, now, 30), Err(Skip::Hidden));
        assert_eq!(
            decide(
                note,
                &Recipient {
                    reads_notes: true,
                    ..base.clone()
                },
                now,
                30
            ),
            Ok(())
        );
        let muted = Recipient {
            muted_until: Some("2026-12-04T09:00:00Z"),
            ..base.clone()
        };
        assert_eq!(decide(message, &muted, now, 30), Err(Skip::Muted));
        let expired = Recipient {
            muted_until: Some("2026-12-04T07:00:00Z"),
            ..base.clone()
        };
        assert_eq!(decide(message, &expired, now, 30), Ok(()));
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
        assert_eq!(decide(message, &looking, now, 30), Err(Skip::Looking));
        let idle = Recipient {
            connected: true,
            read_at: Some(now - 30_001),
            ..base.clone()
        };
        assert_eq!(
            decide(message, &idle, now, 30),
            Ok(()),
            "connected but not reading"
        );
        let closed = Recipient {
            connected: false,
            read_at: Some(now - 1_000),
            ..base
        };
        assert_eq!(
            decide(message, &closed, now, 30),
            Ok(()),
            "read, then went away"
        );
    }
}
