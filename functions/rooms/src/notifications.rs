//! The caller's notification preferences and push subscriptions (docs/notifications.md):
//! what the `notify` function decides on.

use crate::App;
use chat_core::app::path_param;
use chat_core::auth::Principal;
use chat_core::commands::notify::{
    DeviceTarget, NewDevice, NewPushSubscription, NotificationSettings, PushTarget,
    PutRoomNotifications, muted_until,
};
use chat_core::ids::{RoomId, path_id};
use chat_core::policy::{self, Action};
use chat_core::request::json_body;
use chat_core::store::{MemberView, Store};
use chat_core::{ApiError, ApiResult, Reply};
use lambda_http::Request;
use serde_json::{Value, json};

fn settings_json(settings: &NotificationSettings, vapid_public_key: Option<&str>) -> Value {
    let mut body = serde_json::to_value(settings).expect("settings serialize");
    body["web_push"] = json!({ "vapid_public_key": vapid_public_key });
    body
}

pub(crate) async fn get_settings(app: &App, who: &Principal) -> ApiResult<Reply> {
    let settings = app.store.notification_settings(&who.org, &who.user).await?;
    Ok(Reply::ok(
        "Notification settings",
        settings_json(&settings, app.vapid_public_key.as_deref()),
    ))
}

pub(crate) async fn put_settings(app: &App, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let settings = json_body::<NotificationSettings>(req)?.validated()?;
    app.store
        .put_notification_settings(&who.org, &who.user, &settings)
        .await?;
    Ok(Reply::ok(
        "Notification settings saved",
        settings_json(&settings, app.vapid_public_key.as_deref()),
    ))
}

/// The caller's own mute of a room: members only (decided on the room before the
/// body is read), like pinning it.
pub(crate) async fn mute_room(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let room_id: RoomId = path_id(path_param(req, "room_id"), "room")?;
    let room = store.visible_room(who, &room_id).await?;
    policy::require(Action::OwnView, who, policy::relation_to(who, &room))?;
    let until = muted_until(
        json_body::<PutRoomNotifications>(req)?,
        chat_core::time::now(),
    )?;
    let view = MemberView {
        muted_until: Some(until.clone()),
        ..MemberView::default()
    };
    store.update_member_view(who, &room_id, &view).await?;
    Ok(Reply::ok(
        match until {
            Some(_) => "Room muted",
            None => "Room unmuted",
        },
        json!({ "room_id": room_id, "muted_until": until }),
    ))
}

pub(crate) async fn add_push_subscription(
    app: &App,
    who: &Principal,
    req: &Request,
) -> ApiResult<Reply> {
    let target = PushTarget::from_body(json_body::<NewPushSubscription>(req)?, app.allow_loopback)?;
    let (subscription, new) = app
        .store
        .add_push_subscription(&who.org, &who.user, &target)
        .await?;
    Ok(match new {
        true => Reply::created("Push subscription added", subscription),
        false => Reply::ok("Push subscription renewed", subscription),
    })
}

/// A digest id from the path (32 lowercase hex digits); anything else names nothing.
fn digest_id<'a>(req: &'a Request, name: &str, what: &'static str) -> ApiResult<&'a str> {
    path_param(req, name)
        .filter(|id| {
            id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
        .ok_or(ApiError::NotFound(what))
}

pub(crate) async fn add_device(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let target = DeviceTarget::try_from(json_body::<NewDevice>(req)?)?;
    let (device, new) = store.add_device(&who.org, &who.user, &target).await?;
    Ok(match new {
        true => Reply::created("Device added", device),
        false => Reply::ok("Device renewed", device),
    })
}

pub(crate) async fn delete_device(
    store: &Store,
    who: &Principal,
    req: &Request,
) -> ApiResult<Reply> {
    let id = digest_id(req, "device_id", "device")?;
    store.delete_device(&who.org, &who.user, id).await?;
    Ok(Reply::ok("Device deleted", json!({ "device_id": id })))
}

pub(crate) async fn delete_push_subscription(
    store: &Store,
    who: &Principal,
    req: &Request,
) -> ApiResult<Reply> {
    let id = digest_id(req, "subscription_id", "push subscription")?;
    store
        .delete_push_subscription(&who.org, &who.user, id)
        .await?;
    Ok(Reply::ok(
        "Push subscription deleted",
        json!({ "subscription_id": id }),
    ))
}
