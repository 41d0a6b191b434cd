//! The one place where DynamoDB key strings and entity tags are built.
//!
//! Layout (T = tenant, every partition starts with it):
//! | item            | PK                      | SK                | GSI1PK              | GSI1SK                  |
//! |-----------------|-------------------------|-------------------|---------------------|-------------------------|
//! | room            | T#{org}#R#{room}        | META              |                     |                         |
//! | message         | T#{org}#R#{room}        | M#{message ulid}  |                     |                         |
//! | member / inbox  | T#{org}#R#{room}        | U#{user}          | T#{org}#INBOX#{user}| A#{last activity}#{room}|
//! | idempotency     | T#{org}#R#{room}        | I#{user}#{key}    |                     |                         |
//! | upload claim    | T#{org}#R#{room}        | F#{upload}        |                     |                         |
//! | feed event      | T#{org}#R#{room}        | E#{seq, 12 digits}| T#{org}#FEED        | {at}#{room}#{seq}       |
//! | socket subscription | T#{org}#R#{room}    | S#{connection}    |                     |                         |
//! | inbox head      | T#{org}#USER#{user}     | INBOX             | T#{org}#INBOX#{user}| ~HEAD                   |
//! | profile         | T#{org}#USER#{user}     | PROFILE           |                     |                         |
//! | user's connection | T#{org}#USER#{user}   | C#{connection}    |                     |                         |
//! | inbox feed head | T#{org}#USER#{user}     | FEED              |                     |                         |
//! | inbox feed event| T#{org}#USER#{user}     | FEED#{seq, 12 digits} |                 |                         |
//! | inbox change taken | T#{org}#USER#{user}  | FEED~{room}#{kind}#{joined_at} |        |                         |
//! | product         | T#{org}#PRODUCTS        | P#{product}       |                     |                         |
//! | order chat key  | T#{org}#ORDER#{natural} | ORDER             |                     |                         |
//! | search entry    | T#{org}#W#{word}        | M#{message}#{room}|                     |                         |
//! | room day stats  | T#{org}#R#{room}        | STATS#{day}       | (GSI2) DAY#{day}#{shard} | {org}#{room}       |
//! | tenant rollup   | T#{org}#ROLLUP          | DAY#{day}         |                     |                         |
//! | webhook endpoint| T#{org}#WEBHOOKS        | W#{webhook}       |                     |                         |
//! | endpoint count  | T#{org}#WEBHOOKS        | COUNT             |                     |                         |
//! | replay budget   | T#{org}#WEBHOOKS#{webhook} | REPLAYS#{hour} |                     |                         |
//! | delivery        | T#{org}#WEBHOOKS#{webhook} | D#{delivery}   | WEBHOOKS#DUE#{0..3} (pending only) | {next attempt ms}#{delivery} |
//! | audit entry     | T#{org}#AUDIT           | A#{at}#{request id} |                   |                         |
//! | data export     | T#{org}#USER#{user}     | EXPORT#{export}   |                     |                         |
//! | running export  | T#{org}#USER#{user}     | EXPORT~ACTIVE     |                     |                         |
//! | erasure         | T#{org}#ERASURES        | E#{erasure}       |                     |                         |
//! | retention policy | T#{org}#ORG            | RETENTION         | (GSI2) RETENTION, while it removes something | {org} |
//! | support team    | T#{org}#TEAMS           | T#{team}          |                     |                         |
//! | team count      | T#{org}#TEAMS           | COUNT             |                     |                         |
//! | agent workload  | T#{org}#AGENT#{user}    | LOAD              |                     |                         |
//! | SLA timer       | T#{org}#R#{room}        | SLA               | (GSI2) SLADUE#{shard 0..3}, while a target is pending | {next due}#{org}#{room} |
//! | label (and count) | T#{org}#LABELS        | L#{name} (COUNT)  |                     |                         |
//! | canned response, tenant's (and count) | T#{org}#CANNED | C#{code} (COUNT) |           |                         |
//! | canned response, an agent's own (and count) | T#{org}#USER#{user} | CANNED#{code} (CANNED~COUNT) | |             |
//! | queued conversation (the room) | T#{org}#R#{room} | META      | (GSI2) QUEUE#{org}#{team}, while queued | {queued at}#{room} |
//!
//! Room items sort as `M#…` < `META` < `U#…`, so one descending Query from `META`
//! returns the room and then its newest messages.

use crate::ids::{
    DeliveryId, ErasureId, ExportId, MessageId, OrgId, RoomId, TeamId, UserId, WebhookId,
};

pub const PK: &str = "PK";
pub const SK: &str = "SK";
pub const GSI1: &str = "GSI1";
pub const GSI1PK: &str = "GSI1PK";
pub const GSI1SK: &str = "GSI1SK";
pub const GSI2: &str = "GSI2";
pub const GSI2PK: &str = "GSI2PK";
pub const GSI2SK: &str = "GSI2SK";
pub const ENTITY: &str = "entity";
pub const TTL: &str = "expires_at";

pub mod entity {
    pub const ROOM: &str = "room";
    pub const MESSAGE: &str = "message";
    pub const MEMBER: &str = "member";
    pub const IDEMPOTENCY: &str = "idempotency";
    pub const INBOX_HEAD: &str = "inbox_head";
    pub const PROFILE: &str = "profile";
    pub const PRODUCT: &str = "product";
    pub const ORDER_KEY: &str = "order_key";
    pub const SEARCH_ENTRY: &str = "search_entry";
    pub const ROOM_STATS: &str = "room_stats";
    pub const ROLLUP: &str = "rollup";
    pub const EVENT: &str = "event";
    pub const WEBHOOK: &str = "webhook";
    pub const DELIVERY: &str = "delivery";
    pub const COUNTER: &str = "counter";
    pub const AUDIT: &str = "audit";
    pub const EXPORT: &str = "export";
    pub const EXPORT_LOCK: &str = "export_lock";
    pub const ERASURE: &str = "erasure";
    pub const RETENTION: &str = "retention";
    pub const UPLOAD_CLAIM: &str = "upload_claim";
    pub const USER_CONNECTION: &str = "user_connection";
    pub const INBOX_FEED: &str = "inbox_feed";
    pub const INBOX_EVENT: &str = "inbox_event";
    pub const INBOX_CHANGE: &str = "inbox_change";
    pub const TEAM: &str = "team";
    pub const AGENT_LOAD: &str = "agent_load";
    pub const LABEL: &str = "label";
    pub const CANNED_RESPONSE: &str = "canned_response";
    pub const SLA_TIMER: &str = "sla_timer";
    pub const ROUTING_RULES: &str = "routing_rules";
}

pub const ROOM_SK: &str = "META";
pub const MESSAGE_SK_PREFIX: &str = "M#";
pub const MEMBER_SK_PREFIX: &str = "U#";
pub const INBOX_HEAD_SK: &str = "INBOX";
pub const INBOX_HEAD_GSI1SK: &str = "~HEAD";
pub const INBOX_ENTRY_PREFIX: &str = "A#";

pub fn room_pk(org: &OrgId, room: &RoomId) -> String {
    format!("T#{org}#R#{room}")
}

pub fn message_sk(message: &MessageId) -> String {
    format!("{MESSAGE_SK_PREFIX}{message}")
}

/// The message id from a message item's sort key, if it is one.
pub fn message_id_from_sk(sk: &str) -> Option<&str> {
    sk.strip_prefix(MESSAGE_SK_PREFIX)
}

pub fn member_sk(user: &UserId) -> String {
    format!("{MEMBER_SK_PREFIX}{user}")
}

/// A member row's sort key from a user id already known to be valid (a room's list).
pub fn member_sk_str(user: &str) -> String {
    format!("{MEMBER_SK_PREFIX}{user}")
}

/// The user of a member row's sort key, if it is one.
pub fn member_of_sk(sk: &str) -> Option<&str> {
    sk.strip_prefix(MEMBER_SK_PREFIX)
}

pub const EVENT_SK_PREFIX: &str = "E#";

/// The tenant's own items (its settings).
pub fn org_pk(org: &OrgId) -> String {
    format!("T#{org}#ORG")
}

/// The tenant's retention policy and its sweep's progress, beside its settings.
pub const RETENTION_SK: &str = "RETENTION";
/// GSI2's partition of the tenants whose policy removes something.
pub const RETENTION_GSI2PK: &str = "RETENTION";

/// The tenant's support teams (and their count).
pub fn teams_pk(org: &OrgId) -> String {
    format!("T#{org}#TEAMS")
}

pub const TEAM_SK_PREFIX: &str = "T#";
pub const TEAM_COUNT_SK: &str = "COUNT";

pub fn team_sk(team: &TeamId) -> String {
    format!("{TEAM_SK_PREFIX}{team}")
}

/// The tenant's labels (and their count).
pub fn labels_pk(org: &OrgId) -> String {
    format!("T#{org}#LABELS")
}

pub const LABEL_SK_PREFIX: &str = "L#";
pub const LABEL_COUNT_SK: &str = "COUNT";

pub fn label_sk(name: &str) -> String {
    format!("{LABEL_SK_PREFIX}{name}")
}

/// The tenant's canned responses (and their count); an agent's own are in their
/// user partition.
pub fn canned_pk(org: &OrgId) -> String {
    format!("T#{org}#CANNED")
}

pub const CANNED_SK_PREFIX: &str = "C#";
pub const CANNED_COUNT_SK: &str = "COUNT";
pub const PERSONAL_CANNED_SK_PREFIX: &str = "CANNED#";
pub const PERSONAL_CANNED_COUNT_SK: &str = "CANNED~COUNT";

/// The tenant's routing rules: one item, beside its teams.
pub const ROUTING_RULES_SK: &str = "RULES";

/// A conversation's SLA timer, beside its room.
pub const SLA_TIMER_SK: &str = "SLA";

/// The resolution a conversation's customer was last asked by email to rate, beside
/// its room (one request per resolution).
pub const RATING_ASK_SK: &str = "RATEASK";

/// GSI2's partitions of the SLA timers, by their next due time.
pub fn sla_due_gsi2pk(shard: u32) -> String {
    format!("SLADUE#{shard}")
}

pub fn sla_due_gsi2sk(due: &str, org: &OrgId, room: &RoomId) -> String {
    format!("{due}#{org}#{room}")
}

/// An agent's workload (open conversations, capacity, availability, turn).
pub fn agent_load_key(org: &OrgId, user: &str) -> (String, String) {
    (format!("T#{org}#AGENT#{user}"), AGENT_LOAD_SK.to_owned())
}

pub const AGENT_LOAD_SK: &str = "LOAD";

/// GSI2's partition of a team's conversations waiting for an agent, oldest first.
pub fn queue_gsi2pk(org: &OrgId, team: &str) -> String {
    format!("QUEUE#{org}#{team}")
}

pub fn queue_gsi2sk(queued_at: &str, room: &RoomId) -> String {
    format!("{queued_at}#{room}")
}

/// The tenant's audit log, oldest first (crate::audit).
pub fn audit_pk(org: &OrgId) -> String {
    format!("T#{org}#AUDIT")
}

pub const AUDIT_SK_PREFIX: &str = "A#";

/// One export of a person's data, beside their other items.
pub fn export_sk(export: &ExportId) -> String {
    format!("EXPORT#{export}")
}

/// The tenant's erasures (their records name nobody once done).
pub fn erasures_pk(org: &OrgId) -> String {
    format!("T#{org}#ERASURES")
}

pub fn erasure_sk(erasure: &ErasureId) -> String {
    format!("E#{erasure}")
}

/// The person's running export (one at a time).
pub const EXPORT_LOCK_SK: &str = "EXPORT~ACTIVE";

pub fn audit_sk(at: &str, request_id: &str) -> String {
    format!("{AUDIT_SK_PREFIX}{at}#{request_id}")
}

/// A tenant's webhook endpoints, one item each.
pub fn webhooks_pk(org: &OrgId) -> String {
    format!("T#{org}#WEBHOOKS")
}

pub fn webhook_sk(webhook: &WebhookId) -> String {
    format!("W#{webhook}")
}

/// One endpoint's deliveries, newest last by id (ULIDs sort by time).
pub fn deliveries_pk(org: &OrgId, webhook: &WebhookId) -> String {
    format!("T#{org}#WEBHOOKS#{webhook}")
}

pub const DELIVERY_SK_PREFIX: &str = "D#";

/// The tenant's number of endpoints, beside them: adding one counts up in the same
/// transaction.
pub const WEBHOOK_COUNT_SK: &str = "COUNT";

/// An endpoint's replays in one hour (unix hours), beside its deliveries.
pub fn replay_budget_sk(hour: i64) -> String {
    format!("REPLAYS#{hour}")
}

pub fn delivery_sk(delivery: &DeliveryId) -> String {
    format!("{DELIVERY_SK_PREFIX}{delivery}")
}

/// GSI1 of deliveries waiting for an attempt (a sparse index: only pending ones carry
/// it), spread over a few partitions, each in order of the next attempt's time.
pub fn due_gsi1pk(shard: u32) -> String {
    format!("WEBHOOKS#DUE#{shard}")
}

pub fn due_gsi1sk(next_attempt_ms: i64, delivery: &DeliveryId) -> String {
    format!("{next_attempt_ms:013}#{delivery}")
}

/// GSI1 of feed events: the tenant's changes of every room, in time order.
pub fn tenant_feed_gsi1pk(org: &OrgId) -> String {
    format!("T#{org}#FEED")
}

pub fn tenant_feed_gsi1sk(at: &str, room: &RoomId, seq: u64) -> String {
    format!("{at}#{room}#{seq:012}")
}

/// A feed event's sort key: zero-padded so that keys sort as numbers.
pub fn event_sk(seq: u64) -> String {
    format!("{EVENT_SK_PREFIX}{seq:012}")
}

/// The claim that one message holds an upload: the first message to attach it.
pub fn upload_claim_sk(upload: &str) -> String {
    format!("F#{upload}")
}

pub fn idempotency_sk(user: &UserId, key: &str) -> String {
    format!("I#{user}#{key}")
}

pub fn user_pk(org: &OrgId, user: &UserId) -> String {
    format!("T#{org}#USER#{user}")
}

/// The tenant whose email inbox (new conversations by email) a local part is: one
/// claim per local part in the stack.
pub fn email_inbox_key(local_part: &str) -> (String, String) {
    (format!("MAILBOX#{local_part}"), "MAILBOX".to_owned())
}

/// The tenant of a room that mails gave a reply address for (outside every tenant's
/// partitions: an inbound reply knows the room id only).
pub fn reply_room_key(room: &crate::ids::RoomId) -> (String, String) {
    (format!("REPLYROOM#{room}"), "REPLYROOM".to_owned())
}

/// A user's connections sort first in their partition, then their inbox feed's head
/// (`FEED`), so one Query between the two reads both; the feed's events and the
/// changes it took sort after the head.
pub const USER_CONNECTION_PREFIX: &str = "C#";
pub const INBOX_FEED_SK: &str = "FEED";

pub fn user_connection_sk(connection: &str) -> String {
    format!("{USER_CONNECTION_PREFIX}{connection}")
}

/// An inbox feed event's sort key: zero-padded so that keys sort as numbers.
pub fn inbox_event_sk(seq: u64) -> String {
    format!("{INBOX_FEED_SK}#{seq:012}")
}

/// The record that the inbox feed took one change of a member row (so a stream record
/// handled twice is numbered once).
pub fn inbox_change_sk(room: &str, kind: &str, joined_at: &str) -> String {
    format!("{INBOX_FEED_SK}~{room}#{kind}#{joined_at}")
}

pub fn inbox_gsi1pk(org: &OrgId, user: &UserId) -> String {
    format!("T#{org}#INBOX#{user}")
}

/// Newest activity first when queried descending; ties broken by room id.
pub fn inbox_gsi1sk(last_activity: &str, room: &RoomId) -> String {
    format!("{INBOX_ENTRY_PREFIX}{last_activity}#{room}")
}

pub const PROFILE_SK: &str = "PROFILE";
pub const ORDER_KEY_SK: &str = "ORDER";

/// The natural key of a conversation a mail started (its idempotency key): a second
/// delivery of the mail finds the first's conversation.
pub fn mail_start_key(org: &OrgId, idempotency: &str) -> String {
    format!("T#{org}#MAILSTART#{idempotency}")
}

pub fn products_pk(org: &OrgId) -> String {
    format!("T#{org}#PRODUCTS")
}

pub fn product_sk(product: &str) -> String {
    format!("P#{product}")
}

/// The natural key of a room that must exist once (an order chat, a direct chat):
/// its parts are validated ids, joined in a fixed order.
pub fn natural_key_pk(org: &OrgId, parts: &[&str]) -> String {
    format!("T#{org}#ORDER#{}", parts.join("#"))
}

/// A room's counters for one UTC day, in the room's own partition.
pub fn stats_sk(day: &str) -> String {
    format!("STATS#{day}")
}

/// GSI2 of stats items: every tenant's active rooms of a day, in shards.
pub fn stats_gsi2pk(day: &str, shard: u32) -> String {
    format!("DAY#{day}#{shard:02}")
}

pub fn stats_gsi2sk(org: &OrgId, room: &RoomId) -> String {
    format!("{org}#{room}")
}

pub fn rollup_pk(org: &str) -> String {
    format!("T#{org}#ROLLUP")
}

pub fn rollup_sk(day: &str) -> String {
    format!("DAY#{day}")
}

/// Search index: one partition per tenant and word, newest message first.
pub fn search_pk(org: &OrgId, word: &str) -> String {
    format!("T#{org}#W#{word}")
}

pub fn search_sk(message: &MessageId, room: &RoomId) -> String {
    format!("{MESSAGE_SK_PREFIX}{message}#{room}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> OrgId {
        OrgId::parse("acme").unwrap()
    }

    #[test]
    fn room_partition_orders_messages_then_meta_then_members() {
        let m1 = message_sk(&MessageId::from_parts(1, 0));
        let m2 = message_sk(&MessageId::from_parts(2, 0));
        let member = member_sk(&UserId::parse("0").unwrap());
        let idem = idempotency_sk(&UserId::parse("u").unwrap(), "k");
        let mut keys = vec![
            member.clone(),
            ROOM_SK.to_string(),
            m2.clone(),
            m1.clone(),
            idem.clone(),
        ];
        keys.sort();
        assert_eq!(keys, vec![idem, m1, m2, ROOM_SK.to_string(), member]);
    }

    #[test]
    fn inbox_head_sorts_after_every_entry() {
        let room = RoomId::from_parts(u64::MAX, u128::MAX);
        let newest = inbox_gsi1sk("9999-12-31T23:59:59.999Z", &room);
        assert!(INBOX_HEAD_GSI1SK > newest.as_str());
        let older = inbox_gsi1sk("2024-06-29T10:00:00.000Z", &room);
        assert!(older < newest);
    }

    #[test]
    fn keys_are_tenant_scoped() {
        let room = RoomId::from_parts(1, 1);
        let other = OrgId::parse("globex").unwrap();
        assert_ne!(room_pk(&org(), &room), room_pk(&other, &room));
        assert!(room_pk(&org(), &room).starts_with("T#acme#"));
        let message = MessageId::from_parts(1, 1);
        assert_eq!(
            message_id_from_sk(&message_sk(&message)),
            Some(message.as_str())
        );
    }
}
