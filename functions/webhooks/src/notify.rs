//! Notifications to people who are away: the `notify` function, on the table's stream
//! (new messages). Per message and recipient it decides by the rules of
//! docs/notifications.md (`chat_core::store::notify::decide`), collapses a burst into
//! one notification per window, and sends Web Push (RFC 8030) with the payload
//! encrypted for the browser (RFC 8291, `aes128gcm`) and signed by the stack's VAPID
//! key (RFC 8292), by the `web-push-native` crate. Requests go through the same
//! guarded client as webhook deliveries (public addresses only; the local stack's own
//! push service on 127.0.0.1 when it is local). A push service answering 404 or 410
//! has forgotten the subscription: so do we.
//!
//! Email is the second channel (`crate::email`): the customer of a support
//! conversation hears of answers, its agent of a customer waiting, through SES v2, at
//! most once per the person's digest window; each mail quotes the conversation's
//! latest messages and carries a signed one-click unsubscribe link. A conversation's
//! resolution (its `room.updated` event) asks its customer by email for a rating,
//! once per resolution ([`Notifier::ask_rating`]).

use crate::delivery::{Https, guarded_client};
use crate::email::{self, Mailer};
use base64::Engine;
use chat_core::Runtime;
use chat_core::ids::{OrgId, UserId};
use chat_core::item::ItemExt;
use chat_core::model::Room;
use chat_core::store::notify::{
    Channel, DueWindow, Notice, Recipient, RecipientState, Skip, Window, WindowKind, decide,
};
use chat_core::store::{Event, EventKind, PushSubscription, Store};
use chat_core::wire::item_of;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use serde_json::{Value, json};
use std::time::Duration;
use web_push_native::jwt_simple::algorithms::{ECDSAP256KeyPairLike, ES256KeyPair};

/// Recipients worked on at once.
const CONCURRENT_RECIPIENTS: usize = 16;
/// A push request's deadline.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a push service keeps a message for an offline browser (seconds).
const PUSH_TTL_SECS: u64 = 24 * 3600;
/// The longest message text a notification carries.
const PREVIEW_CHARS: usize = 140;

/// The stack's VAPID identity: its key pair and the contact push services may write to.
pub struct Vapid {
    key: ES256KeyPair,
    subject: String,
}

impl Vapid {
    /// From the raw 32-byte private scalar, base64url (as `VAPID_PRIVATE_KEY`).
    pub fn from_private_key(encoded: &str, subject: &str) -> Result<Vapid, String> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded.trim())
            .map_err(|e| format!("VAPID_PRIVATE_KEY is not base64url: {e}"))?;
        let key = ES256KeyPair::from_bytes(&raw)
            .map_err(|e| format!("VAPID_PRIVATE_KEY is not a P-256 private key: {e}"))?;
        Ok(Vapid {
            key,
            subject: subject.to_owned(),
        })
    }

    /// The public key browsers subscribe with (`applicationServerKey`), base64url.
    pub fn public_key(&self) -> String {
        let point = self.key.key_pair().public_key().to_bytes_uncompressed();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(point)
    }
}

/// What one recipient's notification on one channel ended as (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Skipped(chat_core::store::notify::Skip),
    Collapsed,
    Duplicate,
    /// Sent to this many of their subscriptions.
    Pushed(usize),
    /// Mailed (the message id SES gave).
    Emailed(String),
    /// The channel does not reach them about this message: no email for this kind of
    /// message or room, no address on their profile, or the channel is not set up.
    None,
}

/// How one recipient was notified of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notified {
    pub user: String,
    /// Web Push to their browsers.
    pub push: Outcome,
    pub email: Outcome,
    /// Push to their phones.
    pub mobile: Outcome,
}

pub struct Notifier {
    store: Store,
    /// Parsed at the first push, not at init: a cold start that pushes nothing
    /// (most batches are decided without a push) does not pay for the key.
    vapid: std::sync::OnceLock<Result<Vapid, String>>,
    /// SES and SNS clients, made at the first mail or phone (each builds its TLS
    /// context): a cold start that sends neither does not pay for them.
    mailer: tokio::sync::OnceCell<Mailer>,
    phones: tokio::sync::OnceCell<crate::mobile::Phones>,
    aws: chat_core::aws::AwsSettings,
    settings: chat_core::config::NotifySettings,
    allow_loopback: bool,
    client: std::sync::OnceLock<Result<Https, String>>,
}

impl Notifier {
    pub async fn new(runtime: Runtime) -> Notifier {
        Notifier {
            store: runtime.store,
            vapid: std::sync::OnceLock::new(),
            mailer: tokio::sync::OnceCell::new(),
            phones: tokio::sync::OnceCell::new(),
            aws: runtime.config.aws.clone(),
            settings: runtime.config.notify.clone(),
            allow_loopback: runtime.config.local,
            client: std::sync::OnceLock::new(),
        }
    }

    /// The SES sender, when email is set up.
    async fn mailer(&self) -> Option<&Mailer> {
        let email = self.settings.email.as_ref()?;
        Some(
            self.mailer
                .get_or_init(|| Mailer::new(&self.aws, email.clone()))
                .await,
        )
    }

    fn applications(&self) -> crate::mobile::Applications {
        crate::mobile::Applications {
            ios: self.settings.sns_ios_application.clone(),
            android: self.settings.sns_android_application.clone(),
        }
    }

    /// The SNS publisher, when a platform application is set up.
    async fn phones(&self) -> Option<&crate::mobile::Phones> {
        let applications = self.applications();
        if applications.ios.is_none() && applications.android.is_none() {
            return None;
        }
        let endpoint = self.settings.sns_endpoint.as_deref();
        Some(
            self.phones
                .get_or_init(|| crate::mobile::Phones::new(&self.aws, applications, endpoint))
                .await,
        )
    }

    fn vapid(&self) -> Result<&Vapid, String> {
        self.vapid
            .get_or_init(|| match &self.settings.vapid_private_key {
                Some(key) => Vapid::from_private_key(key, &self.settings.vapid_subject),
                None => Err("no VAPID key configured".into()),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn client(&self) -> Result<&Https, String> {
        self.client
            .get_or_init(|| guarded_client(PUSH_TIMEOUT, self.allow_loopback))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// One stream batch (new messages, rooms' changes); answers the partial batch
    /// response. A record that could not be decided (storage failed) fails; the
    /// windows and the rating request's claim make the retry tell nobody twice.
    pub async fn handle(&self, batch: Value) -> Value {
        // The schedule's event: the windows that are due.
        if batch.get("Records").is_none() {
            return json!({ "told": self.sweep().await });
        }
        let mut failures = Vec::new();
        for record in batch["Records"].as_array().into_iter().flatten() {
            let Some(new) = item_of(&record["dynamodb"]["NewImage"]) else {
                continue;
            };
            let (Some(org), Some(event)) = (
                new.string("org").and_then(|o| OrgId::parse(&o).ok()),
                Event::from_item(&new),
            ) else {
                continue;
            };
            let done = match event.kind {
                EventKind::MessageNew => self.notify(&org, &event).await.map(drop),
                EventKind::RoomUpdated => self.ask_rating(&org, &event).await.map(drop),
                _ => continue,
            };
            if let Err(err) = done {
                tracing::error!(org = %org, room = %event.room_id, seq = event.seq, %err, "notifying failed; the batch is retried from here");
                failures.push(json!({ "itemIdentifier": record["dynamodb"]["SequenceNumber"] }));
                break;
            }
        }
        json!({ "batchItemFailures": failures })
    }

    /// The windows whose end has come with messages collapsed in them: each person
    /// hears once how many came ("3 new messages"; for email, a mail quoting the
    /// conversation), unless they read the room meanwhile. Answers how many were told.
    /// Run by the schedule (every minute on AWS, every second locally).
    pub async fn sweep(&self) -> usize {
        self.sweep_at(chat_core::time::now_millis()).await
    }

    /// [`Notifier::sweep`] as if it were `now_ms` (tests reach a digest's end so).
    pub async fn sweep_at(&self, now_ms: i64) -> usize {
        let due = match self.store.due_windows(now_ms, 100).await {
            Ok(due) => due,
            Err(err) => {
                tracing::error!(%err, "reading the due notification windows failed");
                return 0;
            }
        };
        let mut told = 0;
        for window in &due {
            match self.flush(window, now_ms).await {
                Ok(true) => told += 1,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(%err, org = %window.org, user = %window.user, room = %window.room, "a due window was not told");
                }
            }
        }
        told
    }

    async fn flush(&self, window: &DueWindow, now_ms: i64) -> chat_core::ApiResult<bool> {
        let (org, user) = (&window.org, &window.user);
        let room = self.store.get_room(org, &window.room).await?;
        let states = match &room {
            Some(room) if room.deleted_at.is_none() && !room.large => {
                self.store
                    .recipient_states(org, &room.id, std::slice::from_ref(user))
                    .await?
            }
            _ => Vec::new(),
        };
        let state = states.into_iter().next().map(|(_, s)| s);
        let window_ms = match (window.kind, &state) {
            (WindowKind::Email, Some(s)) => i64::from(s.settings.email_digest_minutes) * 60_000,
            _ => self.settings.window_secs * 1000,
        };
        let Some(count) = self.store.flush_window(window, now_ms, window_ms).await? else {
            return Ok(false);
        };
        // No longer a member, the room gone, or everything read meanwhile: nothing to tell.
        let (Some(room), Some(state)) = (room, state) else {
            return Ok(false);
        };
        if count == 0 || state.unread == 0 {
            return Ok(false);
        }
        let who = self
            .recipient_view(org, &room, user, &state, now_ms)
            .await?;
        // Who wrote them is past: only the rules about the person apply.
        let notice = Notice {
            sender: "",
            note: false,
        };
        match window.kind {
            WindowKind::Push => {
                let allowed = self.push_targets(notice, &who, &state, now_ms);
                let payload = payload(&room, None, count);
                let (web, phone) = self
                    .send_pushes(org, user, &room, allowed, &payload, state.unread)
                    .await?;
                tracing::debug!(org = %org, room = %room.id, user = %user, count, ?web, ?phone, "window told");
                Ok(matches!(web, Outcome::Pushed(n) if n > 0)
                    || matches!(phone, Outcome::Pushed(n) if n > 0))
            }
            WindowKind::Email => {
                let Some(reason) = email::reason(&room, None, false, user.as_str()) else {
                    return Ok(false);
                };
                let Ok(address) = self.mail_address(org, user, notice, &who, now_ms).await? else {
                    return Ok(false);
                };
                let tenant = tokio::sync::OnceCell::new();
                let sent = self
                    .mail(org, &room, user, reason, &address, &tenant)
                    .await?;
                Ok(matches!(sent, Outcome::Emailed(_)))
            }
        }
    }

    /// Every recipient of one new message, decided and notified.
    pub async fn notify(&self, org: &OrgId, event: &Event) -> chat_core::ApiResult<Vec<Notified>> {
        let message: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        let Some(room) = self.store.get_room(org, &event.room_id).await? else {
            return Ok(Vec::new());
        };
        // A large room notifies nobody per message: thousands of pushes for every
        // post is what its members would mute first (docs/notifications.md).
        if room.deleted_at.is_some() || room.large {
            return Ok(Vec::new());
        }
        let sender = message["sender_id"].as_str().unwrap_or(&event.actor_id);
        let notice = Notice {
            sender,
            note: message["message_type"] == "note",
        };
        let users: Vec<UserId> = room
            .members
            .iter()
            .filter(|m| m.as_str() != sender)
            .filter_map(|m| UserId::parse(m).ok())
            .collect();
        let states = self.store.recipient_states(org, &room.id, &users).await?;
        let (room, message, notice) = (&room, &message, notice);
        // The tenant's name, read once per message and only when someone is mailed.
        let tenant = tokio::sync::OnceCell::new();
        let tenant = &tenant;
        let outcomes: Vec<chat_core::ApiResult<Notified>> =
            futures_util::stream::iter(states)
                .map(|(user, state)| async move {
                    let notified = self
                        .recipient(org, room, event, message, notice, &user, &state, tenant)
                        .await?;
                    tracing::debug!(org = %org, room = %room.id, seq = event.seq, ?notified, "notification decided");
                    Ok(notified)
                })
                .buffer_unordered(CONCURRENT_RECIPIENTS)
                .collect()
                .await;
        outcomes.into_iter().collect()
    }

    /// How the rules see one recipient now: their settings, mute, last read, and
    /// whether they are connected (asked only of whom read lately: one Query).
    async fn recipient_view<'a>(
        &self,
        org: &OrgId,
        room: &Room,
        user: &'a UserId,
        state: &'a RecipientState,
        now_ms: i64,
    ) -> chat_core::ApiResult<Recipient<'a>> {
        let grace = self.settings.grace_secs;
        let looking_recently = state.read_at.is_some_and(|at| now_ms - at <= grace * 1000);
        let connected = looking_recently
            && !self
                .store
                .inbox_listeners(org, user)
                .await?
                .connections
                .is_empty();
        Ok(Recipient {
            user: user.as_str(),
            reads_notes: room.agent_id.as_deref() == Some(user.as_str())
                || room.assignee_id.as_deref() == Some(user.as_str()),
            settings: &state.settings,
            muted_until: state.muted_until.as_deref(),
            connected,
            read_at: state.read_at,
        })
    }

    /// One recipient, on each channel.
    #[allow(clippy::too_many_arguments)]
    async fn recipient(
        &self,
        org: &OrgId,
        room: &Room,
        event: &Event,
        message: &Value,
        notice: Notice<'_>,
        user: &UserId,
        state: &chat_core::store::notify::RecipientState,
        tenant: &tokio::sync::OnceCell<String>,
    ) -> chat_core::ApiResult<Notified> {
        let now_ms = chat_core::time::now_millis();
        let who = self.recipient_view(org, room, user, state, now_ms).await?;
        let (push, mobile) = self
            .push_channels(org, room, event, message, notice, &who, user, state, now_ms)
            .await?;
        let email = self
            .email_channel(org, room, event, notice, &who, user, now_ms, tenant)
            .await?;
        Ok(Notified {
            user: user.to_string(),
            push,
            email,
            mobile,
        })
    }

    /// Web Push and mobile push: decided apart (each has its own switch), collapsed in
    /// one window (a person hears of a room once per window, wherever).
    #[allow(clippy::too_many_arguments)]
    async fn push_channels(
        &self,
        org: &OrgId,
        room: &Room,
        event: &Event,
        message: &Value,
        notice: Notice<'_>,
        who: &Recipient<'_>,
        user: &UserId,
        state: &chat_core::store::notify::RecipientState,
        now_ms: i64,
    ) -> chat_core::ApiResult<(Outcome, Outcome)> {
        let (web, phone) = self.push_targets(notice, who, state, now_ms);
        if let (Err(a), Err(b)) = (web, phone) {
            return Ok((Outcome::Skipped(a), Outcome::Skipped(b)));
        }
        let window = self
            .store
            .take_into_window(
                WindowKind::Push,
                org,
                user,
                &room.id,
                event.seq,
                now_ms,
                self.settings.window_secs * 1000,
            )
            .await?;
        let either = |outcome: Outcome| {
            (
                web.map_or_else(Outcome::Skipped, |()| outcome.clone()),
                phone.map_or_else(Outcome::Skipped, |()| outcome),
            )
        };
        let count = match window {
            Window::Notify { count } => count,
            Window::Collapsed => return Ok(either(Outcome::Collapsed)),
            Window::Seen => return Ok(either(Outcome::Duplicate)),
        };
        let payload = payload(room, Some(message), count);
        self.send_pushes(org, user, room, (web, phone), &payload, state.unread.max(1))
            .await
    }

    /// What the rules allowed (`allowed`: browsers, phones), sent; `unread`: the
    /// recipient's unread messages in the room, for the badge.
    async fn send_pushes(
        &self,
        org: &OrgId,
        user: &UserId,
        room: &Room,
        allowed: (Result<(), Skip>, Result<(), Skip>),
        payload: &Value,
        unread: u64,
    ) -> chat_core::ApiResult<(Outcome, Outcome)> {
        let pushed = match allowed.0 {
            Err(skip) => Outcome::Skipped(skip),
            Ok(()) => self.web_push(org, user, payload).await?,
        };
        let phoned = match allowed.1 {
            Err(skip) => Outcome::Skipped(skip),
            Ok(()) => {
                self.mobile_push(org, user, payload, (&room.id, unread))
                    .await?
            }
        };
        Ok((pushed, phoned))
    }

    /// Whether browsers and phones may be pushed to, by the rules and their targets.
    fn push_targets(
        &self,
        notice: Notice<'_>,
        who: &Recipient<'_>,
        state: &RecipientState,
        now_ms: i64,
    ) -> (Result<(), Skip>, Result<(), Skip>) {
        let grace = self.settings.grace_secs;
        let has = |targets: u64| match targets {
            0 => Err(Skip::NoTarget),
            _ => Ok(()),
        };
        let applications = self.applications();
        let phones = if applications.ios.is_some() || applications.android.is_some() {
            state.devices
        } else {
            0
        };
        (
            decide(notice, who, Channel::Push, now_ms, grace).and_then(|()| has(state.browsers)),
            decide(notice, who, Channel::Mobile, now_ms, grace).and_then(|()| has(phones)),
        )
    }

    async fn web_push(
        &self,
        org: &OrgId,
        user: &UserId,
        payload: &Value,
    ) -> chat_core::ApiResult<Outcome> {
        let subscriptions = self.store.push_subscriptions(org, user).await?;
        let mut pushed = 0;
        for subscription in &subscriptions {
            match self.push(subscription, payload).await {
                Ok(PushAnswer::Accepted) => pushed += 1,
                Ok(PushAnswer::Gone) => {
                    tracing::info!(user = %user, subscription = subscription.subscription_id, "the push service forgot a subscription; so do we");
                    if let Err(err) = self
                        .store
                        .delete_push_subscription(org, user, &subscription.subscription_id)
                        .await
                    {
                        tracing::warn!(%err, "forgetting a gone subscription failed");
                    }
                }
                Ok(PushAnswer::Refused(status)) => {
                    tracing::warn!(user = %user, status, "the push service refused a notification")
                }
                Err(err) => tracing::warn!(user = %user, err, "a push failed"),
            }
        }
        Ok(Outcome::Pushed(pushed))
    }

    /// To each of the person's phones that is on, with their unread total as the
    /// badge (read only when there is a phone to show it).
    async fn mobile_push(
        &self,
        org: &OrgId,
        user: &UserId,
        payload: &Value,
        this_room: (&chat_core::ids::RoomId, u64),
    ) -> chat_core::ApiResult<Outcome> {
        let Some(phones) = self.phones().await else {
            return Ok(Outcome::None);
        };
        let devices: Vec<_> = self
            .store
            .devices(org, user)
            .await?
            .into_iter()
            .filter(|d| d.enabled)
            .collect();
        if devices.is_empty() {
            return Ok(Outcome::Pushed(0));
        }
        let badge = self.store.unread_total(org, user, Some(this_room)).await?;
        let mut sent = 0;
        for device in &devices {
            let endpoint = match phones.endpoint(device).await {
                Ok(Some(arn)) => arn,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(user = %user, device = device.device_id, err, "SNS refused the device's endpoint");
                    continue;
                }
            };
            if device.endpoint_arn.is_none() {
                let change = chat_core::store::notify::DeviceChange::Endpoint(&endpoint);
                self.store
                    .update_device(org, user, &device.device_id, change)
                    .await?;
            }
            match phones.publish(device, &endpoint, payload, badge).await {
                Ok(crate::mobile::Answer::Sent) => sent += 1,
                Ok(crate::mobile::Answer::Disabled) => {
                    tracing::info!(user = %user, device = device.device_id, "the push service called the device's token invalid; the device is off");
                    let change = chat_core::store::notify::DeviceChange::Disabled;
                    self.store
                        .update_device(org, user, &device.device_id, change)
                        .await?;
                }
                Ok(crate::mobile::Answer::NotSetUp) => {}
                Err(err) => {
                    tracing::warn!(user = %user, device = device.device_id, err, "a mobile push failed")
                }
            }
        }
        Ok(Outcome::Pushed(sent))
    }

    /// The email channel: who is emailed about what is `email::reason`; then the same
    /// rules as pushes, and at most one mail per room per their digest window. A mail
    /// SES refuses is logged, not retried (the next one quotes the conversation).
    #[allow(clippy::too_many_arguments)]
    async fn email_channel(
        &self,
        org: &OrgId,
        room: &Room,
        event: &Event,
        notice: Notice<'_>,
        who: &Recipient<'_>,
        user: &UserId,
        now_ms: i64,
        tenant: &tokio::sync::OnceCell<String>,
    ) -> chat_core::ApiResult<Outcome> {
        if self.settings.email.is_none() {
            return Ok(Outcome::None);
        }
        let Some(reason) = email::reason(room, Some(notice.sender), notice.note, user.as_str())
        else {
            return Ok(Outcome::None);
        };
        let address = match self.mail_address(org, user, notice, who, now_ms).await? {
            Ok(address) => address,
            Err(outcome) => return Ok(outcome),
        };
        let digest_ms = i64::from(who.settings.email_digest_minutes) * 60_000;
        match self
            .store
            .take_into_window(
                WindowKind::Email,
                org,
                user,
                &room.id,
                event.seq,
                now_ms,
                digest_ms,
            )
            .await?
        {
            Window::Notify { .. } => {}
            Window::Collapsed => return Ok(Outcome::Collapsed),
            Window::Seen => return Ok(Outcome::Duplicate),
        }
        self.mail(org, room, user, reason, &address, tenant).await
    }

    /// The address to mail `user` at, when the rules let email reach them now (else
    /// what the channel ends as: skipped, or none for want of an address).
    async fn mail_address(
        &self,
        org: &OrgId,
        user: &UserId,
        notice: Notice<'_>,
        who: &Recipient<'_>,
        now_ms: i64,
    ) -> chat_core::ApiResult<Result<String, Outcome>> {
        let grace = self.settings.grace_secs;
        if let Err(skip) = decide(notice, who, Channel::Email, now_ms, grace) {
            return Ok(Err(Outcome::Skipped(skip)));
        }
        let profile = self.store.get_profile(org, user).await?;
        Ok(profile.and_then(|p| p.email).ok_or(Outcome::None))
    }

    /// One mail to `user` at `address` about `room`, quoting its latest messages as
    /// they see them. A mail SES refuses is logged, not retried.
    async fn mail(
        &self,
        org: &OrgId,
        room: &Room,
        user: &UserId,
        reason: email::Reason,
        address: &str,
        tenant: &tokio::sync::OnceCell<String>,
    ) -> chat_core::ApiResult<Outcome> {
        let Some(mailer) = self.mailer().await else {
            return Ok(Outcome::None);
        };
        let tenant = tenant
            .get_or_try_init(|| self.store.tenant_name(org))
            .await?;
        // The conversation as the recipient sees it (no notes for a customer).
        let reader = chat_core::Principal {
            user: user.clone(),
            org: org.clone(),
            role: match reason {
                email::Reason::Reply => chat_core::ids::Role::Customer,
                email::Reason::NewConversation => chat_core::ids::Role::Agent,
            },
        };
        let mut messages = self
            .store
            .list_messages(
                &reader,
                &room.id,
                chat_core::store::MessageQuery {
                    limit: email::QUOTED_MESSAGES,
                    offset: 0,
                    cursor: None,
                    direction: chat_core::store::Direction::Older,
                    include_notes: false,
                },
            )
            .await?
            .messages
            .items;
        messages.reverse();
        let link = email::unsubscribe_url(&mailer.settings, org, user);
        // Replies by email land in the conversation when the stack receives mail and
        // the room's id is this tenant's alone (docs/email.md).
        let reply_to = match &mailer.settings.inbound_domain {
            Some(domain) if self.store.remember_reply_room(org, &room.id).await? => Some(
                chat_core::reply::address(&mailer.settings.link_secret, domain, org, &room.id),
            ),
            _ => None,
        };
        let mail = email::render(
            &mailer.settings,
            &email::Draft {
                tenant,
                room,
                reason,
                messages: &messages,
                recipient: user.as_str(),
                address,
                reply_to,
            },
            link,
        );
        match mailer.send(&mail).await {
            Ok(id) => Ok(Outcome::Emailed(id)),
            Err(err) => {
                tracing::warn!(user = %user, err, "SES refused a notification email");
                Ok(Outcome::None)
            }
        }
    }

    /// A conversation resolved (or closed): its customer is asked by email to rate it
    /// (CSAT, docs/support.md) — once per resolution, by the notification rules (not
    /// while they look at the widget, which asks itself; not in quiet hours or with
    /// email off), while the resolution stands and is not rated yet.
    pub async fn ask_rating(&self, org: &OrgId, event: &Event) -> chat_core::ApiResult<Outcome> {
        let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        if !matches!(data["status"].as_str(), Some("resolved" | "closed")) {
            return Ok(Outcome::None);
        }
        let Some(mailer) = self.mailer().await else {
            return Ok(Outcome::None);
        };
        let Some(room) = self.store.get_room(org, &event.room_id).await? else {
            return Ok(Outcome::None);
        };
        let resolution = match &room.closed_at {
            Some(at)
                if room.room_type == chat_core::model::RoomType::Support
                    && room.status.is_closed()
                    && room.deleted_at.is_none()
                    && !room.rating.as_ref().is_some_and(|r| &r.rated_for == at) =>
            {
                at.clone()
            }
            _ => return Ok(Outcome::None),
        };
        let Ok(customer) = UserId::parse(&room.owner_id) else {
            return Ok(Outcome::None);
        };
        // Their row: no longer a member, no request.
        let states = self
            .store
            .recipient_states(org, &room.id, std::slice::from_ref(&customer))
            .await?;
        let Some((_, state)) = states.into_iter().next() else {
            return Ok(Outcome::None);
        };
        let now_ms = chat_core::time::now_millis();
        let who = self
            .recipient_view(org, &room, &customer, &state, now_ms)
            .await?;
        // Nobody's message: whoever resolved it, the customer may be asked.
        let notice = Notice {
            sender: "",
            note: false,
        };
        let address = match self
            .mail_address(org, &customer, notice, &who, now_ms)
            .await?
        {
            Ok(address) => address,
            Err(outcome) => return Ok(outcome),
        };
        // Everything a read can fail on comes before the claim: a claim is only
        // taken for a mail that is sent.
        let tenant = self.store.tenant_name(org).await?;
        let link = chat_core::unsubscribe::RatingLink {
            org: org.clone(),
            user: customer.clone(),
            room: room.id.clone(),
            resolution: resolution.clone(),
        };
        let token = link.sign(&mailer.settings.link_secret);
        let unsubscribe = email::unsubscribe_url(&mailer.settings, org, &customer);
        let mail = email::render_rating(
            &mailer.settings,
            &tenant,
            &room,
            &address,
            &token,
            unsubscribe,
        );
        if !self
            .store
            .claim_rating_request(org, &room.id, &resolution)
            .await?
        {
            return Ok(Outcome::Duplicate);
        }
        match mailer.send(&mail).await {
            Ok(id) => Ok(Outcome::Emailed(id)),
            Err(err) => {
                // Given back, and the record fails: the stream's retry asks again.
                tracing::warn!(user = %customer, err, "SES refused a rating request; retried");
                self.store
                    .release_rating_request(org, &room.id, &resolution)
                    .await?;
                Err(chat_core::ApiError::internal("rating request", err))
            }
        }
    }

    async fn push(&self, to: &PushSubscription, payload: &Value) -> Result<PushAnswer, String> {
        let vapid = self.vapid()?;
        let request = web_push_request(vapid, to, payload)?;
        let (parts, body) = request.into_parts();
        let request = hyper::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let client = self.client()?;
        let answer = tokio::time::timeout(PUSH_TIMEOUT, async {
            let response = client.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let _ = Limited::new(response.into_body(), 16 * 1024)
                .collect()
                .await;
            Ok::<_, String>(status)
        })
        .await
        .map_err(|_| "timed out".to_owned())??;
        Ok(match answer {
            200..=299 => PushAnswer::Accepted,
            404 | 410 => PushAnswer::Gone,
            other => PushAnswer::Refused(other),
        })
    }
}

enum PushAnswer {
    Accepted,
    Gone,
    Refused(u16),
}

/// The encrypted, signed request for one subscription.
fn web_push_request(
    vapid: &Vapid,
    to: &PushSubscription,
    payload: &Value,
) -> Result<http::Request<Vec<u8>>, String> {
    let decode = |text: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|e| e.to_string())
    };
    let browser_key = web_push_native::p256::PublicKey::from_sec1_bytes(&decode(&to.p256dh)?)
        .map_err(|e| format!("the subscription's key: {e}"))?;
    let auth = decode(&to.auth)?;
    if auth.len() != 16 {
        return Err("the subscription's auth secret is not 16 bytes".into());
    }
    let endpoint = to.endpoint.parse().map_err(|e| format!("endpoint: {e}"))?;
    let mut request = web_push_native::WebPushBuilder::new(
        endpoint,
        browser_key,
        web_push_native::Auth::clone_from_slice(&auth),
    )
    .with_vapid(&vapid.key, &vapid.subject)
    .build(payload.to_string())
    .map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        "ttl",
        http::HeaderValue::from_str(&PUSH_TTL_SECS.to_string()).expect("digits"),
    );
    // One notification per room in the browser: a newer one replaces it.
    request
        .headers_mut()
        .insert("urgency", http::HeaderValue::from_static("normal"));
    Ok(request)
}

/// What the browser's service worker shows (web/sw.js): the room, the message (or how
/// many came), and where a click opens it.
fn payload(room: &Room, message: Option<&Value>, count: u64) -> Value {
    let text: String = message
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .chars()
        .take(PREVIEW_CHARS)
        .collect();
    let body = match (count, message) {
        (1, Some(_)) => text,
        (n, Some(_)) => format!("{n} new messages — latest: {text}"),
        // A window's trailing notification: what it gathered, told at its end.
        (1, None) => "1 new message".to_owned(),
        (n, None) => format!("{n} new messages"),
    };
    let message = message.cloned().unwrap_or(Value::Null);
    let path = match room.room_type == chat_core::model::RoomType::Support {
        true => format!("/chat/conversations/{}", room.id),
        false => format!("/rooms/{}", room.id),
    };
    json!({
        "type": "message",
        "room_id": room.id,
        "title": room.title,
        "body": body,
        "count": count,
        "sender_id": message["sender_id"],
        "message_id": message["id"],
        "path": path,
    })
}
