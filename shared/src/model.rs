//! Domain records and their explicit mapping to and from DynamoDB items.

use crate::auth::Principal;
use crate::ids::{MessageId, OrgId, Role, RoomId};
use crate::item::{Item, ItemBuilder, ItemExt};
use crate::keys;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomType {
    // The order-chat platform's clients spell these with hyphens.
    #[serde(alias = "agent-to-user")]
    AgentToUser,
    #[serde(alias = "vendor-to-user")]
    VendorToUser,
    Support,
    Group,
    Direct,
}

impl RoomType {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomType::AgentToUser => "agent_to_user",
            RoomType::VendorToUser => "vendor_to_user",
            RoomType::Support => "support",
            RoomType::Group => "group",
            RoomType::Direct => "direct",
        }
    }

    pub fn parse(raw: &str) -> Option<RoomType> {
        serde_json::from_value(Value::String(raw.to_owned())).ok()
    }

    pub const ALL: [RoomType; 5] = [
        RoomType::AgentToUser,
        RoomType::VendorToUser,
        RoomType::Support,
        RoomType::Group,
        RoomType::Direct,
    ];

    /// Whether the tenant sees rooms of this type beyond their members: its admins
    /// (support rooms: all staff) and its own systems — the tenant feed and webhooks,
    /// live and replayed. Team rooms and direct chats are members-only everywhere.
    pub fn open_to_tenant(self) -> bool {
        !matches!(self, RoomType::Group | RoomType::Direct)
    }
}

/// Where a room stands in a support workflow; every room has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomStatus {
    Open,
    Pending,
    /// Until `snoozed_until` or a customer's reply.
    Snoozed,
    Resolved,
    Closed,
}

impl RoomStatus {
    pub const ALL: [RoomStatus; 5] = [
        RoomStatus::Open,
        RoomStatus::Pending,
        RoomStatus::Snoozed,
        RoomStatus::Resolved,
        RoomStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RoomStatus::Open => "open",
            RoomStatus::Pending => "pending",
            RoomStatus::Snoozed => "snoozed",
            RoomStatus::Resolved => "resolved",
            RoomStatus::Closed => "closed",
        }
    }

    /// A status given in a request; the error names the field and the choices.
    pub fn parse(field: &str, raw: &str) -> Result<RoomStatus, crate::ApiError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                let choices: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
                crate::ApiError::invalid(field, format!("must be one of {}", choices.join(", ")))
            })
    }

    /// A customer's reply brings these back to `open`.
    pub fn reopens_on_reply(self) -> bool {
        matches!(self, RoomStatus::Resolved | RoomStatus::Snoozed)
    }

    /// Resolved or closed: what a tenant's retention of closed conversations removes.
    pub fn is_closed(self) -> bool {
        matches!(self, RoomStatus::Resolved | RoomStatus::Closed)
    }
}

impl std::fmt::Display for RoomStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `sender` of the desk's own automatic messages (an auto-reply outside business
/// hours): numbered in the feed like any message, but nobody's answer (no response
/// time, no first response, no reopening).
pub const SYSTEM_SENDER: &str = "system";

/// A customer's satisfaction rating of a resolution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rating {
    /// 1 to 5.
    pub score: u8,
    pub comment: Option<String>,
    pub rated_at: String,
    /// The resolution it rates (the conversation's `closed_at` then): one rating per
    /// resolution.
    #[serde(skip)]
    pub rated_for: String,
}

/// Members a room keeps on its item and on every member's row, and up to which a
/// post updates every member's row in its transaction (measured: docs/performance.md
/// and docs/architecture.md, "Rooms at size"). A room that grows past it becomes
/// *large*: its members are their rows alone, a post writes no other member's row,
/// and unread counts are computed when read.
pub const SMALL_ROOM_MEMBERS: usize = 40;
/// Most members a room may have.
pub const MAX_MEMBERS: usize = 10_000;
/// Members a room may start with (its start is one transaction with every row).
pub const MAX_START_MEMBERS: usize = SMALL_ROOM_MEMBERS;

/// The room (a conversation is a room of type `support`).
#[derive(Debug, Clone, PartialEq)]
pub struct Room {
    pub id: RoomId,
    pub room_type: RoomType,
    pub title: String,
    pub detail: Option<String>,
    pub product: Option<String>,
    pub order_id: Option<String>,
    pub vendor_id: Option<String>,
    /// An order chat's customer: part of its natural key, so two customers naming
    /// the same order never share a room.
    pub customer_id: Option<String>,
    pub owner_id: String,
    pub agent_id: Option<String>,
    pub assignee_id: Option<String>,
    /// The support team it is routed to.
    pub team_id: Option<String>,
    /// Set while it waits in its team's queue for an agent with room to take it.
    pub queued_at: Option<String>,
    /// The desk's labels (staff see them; sorted).
    pub labels: Vec<String>,
    /// The customer's satisfaction rating of its latest resolution (docs/support.md).
    pub rating: Option<Rating>,
    /// Its team's SLA targets, as due times (docs/support.md).
    pub first_response_due_at: Option<String>,
    pub resolution_due_at: Option<String>,
    pub conversation_type: String,
    pub status: RoomStatus,
    /// Set while `status` is `snoozed`.
    pub snoozed_until: Option<String>,
    /// The members of a small room (empty in a large one: its rows are its members).
    pub members: Vec<String>,
    /// Members, in every room.
    pub member_count: u64,
    /// Grown past [`SMALL_ROOM_MEMBERS`] (it stays large).
    pub large: bool,
    /// In a large room, the user whose member row was read with the room (not
    /// stored): the one membership this value can vouch for.
    pub viewer: Option<String>,
    /// Bumped whenever `members` changes; writes that fan out to members are
    /// conditioned on it, so they never miss a member who joined meanwhile.
    pub member_version: u64,
    /// Public messages (internal notes are counted apart, in `note_count`).
    pub total_messages: u64,
    pub note_count: u64,
    pub last_message_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    /// When it was last resolved or closed (kept while it stays so): the age a
    /// tenant's retention of closed conversations counts from.
    pub closed_at: Option<String>,
    /// When retention finished removing a deleted conversation's items.
    pub purged_at: Option<String>,
    /// Client data kept with the room (a JSON object, as text).
    pub metadata: Option<String>,
    /// The latest public message, as the write path left it.
    pub last_message: Option<LastMessage>,
    /// The latest internal note's id (staff read up to the newest of the two).
    pub last_note_id: Option<String>,
    /// When the customer's oldest unanswered message arrived (response times).
    pub awaiting_since: Option<String>,
    pub first_response_at: Option<String>,
    /// The number of the room's latest change in its feed (0: none yet).
    pub last_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastMessage {
    pub message_id: String,
    pub sender_id: String,
    pub preview: String,
    pub created_at: String,
}

/// Characters of a message kept as the room's preview.
pub const PREVIEW_CHARS: usize = 200;

/// The room's preview of a message's text.
pub fn preview(content: &str) -> String {
    content.chars().take(PREVIEW_CHARS).collect()
}

/// A message's effect on its room (see [`Room::message_effect`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageEffect {
    /// Back to `open` (snooze cleared), for the room and every member's row.
    pub reopen: bool,
    /// A customer starts waiting (`awaiting_since`).
    pub start_waiting: bool,
    /// The wait ends.
    pub end_waiting: bool,
    /// The room's first answer (`first_response_at`).
    pub first_response: bool,
}

impl Room {
    /// A new open room as it is first written: `members` (the owner first) at member
    /// version 1, no messages yet. Callers set the type's own fields (order, vendor,
    /// product, agent…) with struct update syntax.
    pub fn open(
        id: RoomId,
        room_type: RoomType,
        title: String,
        owner_id: String,
        members: Vec<String>,
        now: String,
    ) -> Room {
        Room {
            id,
            room_type,
            title,
            detail: None,
            product: None,
            order_id: None,
            vendor_id: None,
            customer_id: None,
            owner_id,
            agent_id: None,
            assignee_id: None,
            team_id: None,
            queued_at: None,
            labels: Vec::new(),
            rating: None,
            first_response_due_at: None,
            resolution_due_at: None,
            conversation_type: "chat".into(),
            status: RoomStatus::Open,
            snoozed_until: None,
            member_count: members.len() as u64,
            large: false,
            viewer: None,
            members,
            member_version: 1,
            total_messages: 0,
            note_count: 0,
            last_message_at: None,
            created_at: now.clone(),
            updated_at: now,
            deleted_at: None,
            closed_at: None,
            purged_at: None,
            metadata: None,
            last_message: None,
            last_note_id: None,
            awaiting_since: None,
            first_response_at: None,
            last_seq: 0,
        }
    }

    /// May this caller see the room? Members may; agents and admins may see their
    /// tenant's support rooms. (Other tenants' rooms are never even read: the tenant
    /// is part of every key.)
    /// Who sees the room at all: its members; the tenant's agents and admins its
    /// support rooms; its admins also its order chats (to open, moderate and delete
    /// them in a dispute). Team rooms and direct chats stay members-only.
    pub fn visible_to(&self, who: &Principal) -> bool {
        self.deleted_at.is_none() && (self.staff_sees(who) || self.is_member(who.user.as_str()))
    }

    /// What `message` does to this room's state: the one place of the rule that the
    /// post transaction writes and the caches mirror.
    pub fn message_effect(&self, message: &Message, staff_sender: bool) -> MessageEffect {
        // A note, or the desk's own automatic message (an auto-reply): nobody's answer.
        if message.is_note() || message.sender == SYSTEM_SENDER {
            return MessageEffect::default();
        }
        if message.sender == "user" {
            MessageEffect {
                // A customer's reply reopens a resolved or snoozed conversation (as
                // support inboxes do), for every member.
                reopen: !staff_sender && self.status.reopens_on_reply(),
                start_waiting: self.awaiting_since.is_none(),
                ..MessageEffect::default()
            }
        } else {
            // An agent's (or bot's) answer ends the wait; the first one is remembered.
            let waiting = self.awaiting_since.is_some();
            MessageEffect {
                end_waiting: waiting,
                first_response: waiting && self.first_response_at.is_none(),
                ..MessageEffect::default()
            }
        }
    }

    /// The room as a message just left it (for caches: what later writes condition on).
    pub fn after_message(mut self, message: &Message, staff_sender: bool) -> Room {
        let effect = self.message_effect(message, staff_sender);
        if effect.reopen {
            self.status = RoomStatus::Open;
            self.snoozed_until = None;
        }
        if effect.start_waiting {
            self.awaiting_since = Some(message.created_at.clone());
        }
        if effect.end_waiting {
            self.awaiting_since = None;
        }
        if effect.first_response {
            self.first_response_at = Some(message.created_at.clone());
        }
        if let Some(seq) = message.seq {
            self.last_seq = seq;
        }
        // As the post's room update counts it (a message's `pos` is read from here).
        if message.is_note() {
            self.note_count += 1;
            self.last_note_id = Some(message.id.to_string());
        } else {
            self.total_messages += 1;
            self.last_message_at = Some(message.created_at.clone());
            self.last_message = Some(LastMessage {
                message_id: message.id.to_string(),
                sender_id: message.sender_id.clone(),
                preview: preview(&message.content),
                created_at: message.created_at.clone(),
            });
        }
        self
    }

    /// Whether `user` is a member: a small room's list says; a large room's value
    /// knows only of the viewer whose row was read with it.
    pub fn is_member(&self, user: &str) -> bool {
        match self.large {
            false => self.members.iter().any(|m| m == user),
            true => self.viewer.as_deref() == Some(user),
        }
    }

    /// Whether a follower of the room may be sent its changes now: who may see it; in
    /// a large room, whose rows are not read per change, the subscription stands for
    /// the membership (removing a member drops their subscriptions to it).
    pub fn reaches(&self, who: &Principal) -> bool {
        match self.large {
            false => self.visible_to(who),
            true => self.deleted_at.is_none(),
        }
    }

    /// Whether seeing the room takes the caller's member row (a large room the caller
    /// does not see as staff).
    pub fn needs_row_of(&self, who: &Principal) -> bool {
        self.large && !self.staff_sees(who)
    }

    fn staff_sees(&self, who: &Principal) -> bool {
        match self.room_type {
            RoomType::Support => who.role.is_staff(),
            other => other.open_to_tenant() && who.role == Role::Admin,
        }
    }

    pub fn to_item(&self, org: &OrgId) -> Item {
        let mut item = ItemBuilder::new()
            .str(keys::PK, keys::room_pk(org, &self.id))
            .str(keys::SK, keys::ROOM_SK)
            .str(keys::ENTITY, keys::entity::ROOM)
            .str("room_id", self.id.as_str())
            .str("room_type", self.room_type.as_str())
            .str("title", &self.title)
            .opt_str("detail", self.detail.clone())
            .opt_str("product", self.product.clone())
            .opt_str("order_id", self.order_id.clone())
            .opt_str("vendor_id", self.vendor_id.clone())
            .opt_str("customer_id", self.customer_id.clone())
            .str("owner_id", &self.owner_id)
            .opt_str("agent_id", self.agent_id.clone())
            .opt_str("assignee_id", self.assignee_id.clone())
            .opt_str("team_id", self.team_id.clone())
            .opt_str("queued_at", self.queued_at.clone())
            .opt_str("first_response_due_at", self.first_response_due_at.clone())
            .opt_str("resolution_due_at", self.resolution_due_at.clone())
            .str("conversation_type", &self.conversation_type)
            .str("status", self.status.as_str())
            .opt_str("snoozed_until", self.snoozed_until.clone())
            .set("members", AttributeValue::Ss(self.members.clone()))
            .num("member_count", self.member_count)
            .num("member_version", self.member_version)
            .num("total_messages", self.total_messages)
            .num("note_count", self.note_count)
            .opt_str("last_message_at", self.last_message_at.clone())
            .str("created_at", &self.created_at)
            .str("updated_at", &self.updated_at)
            .opt_str("deleted_at", self.deleted_at.clone())
            .opt_str("closed_at", self.closed_at.clone())
            .opt_str("purged_at", self.purged_at.clone())
            .opt_str("metadata", self.metadata.clone())
            .opt_str("awaiting_since", self.awaiting_since.clone())
            .opt_str("first_response_at", self.first_response_at.clone())
            .num("last_seq", self.last_seq)
            .opt_str("last_note_id", self.last_note_id.clone())
            .build();
        if !self.labels.is_empty() {
            item.insert("labels".into(), AttributeValue::Ss(self.labels.clone()));
        }
        if let Some(r) = &self.rating {
            item.insert("rating".into(), AttributeValue::N(r.score.to_string()));
            if let Some(comment) = &r.comment {
                item.insert("rating_comment".into(), AttributeValue::S(comment.clone()));
            }
            item.insert("rated_at".into(), AttributeValue::S(r.rated_at.clone()));
            item.insert("rated_for".into(), AttributeValue::S(r.rated_for.clone()));
        }
        // Waiting for an agent: in its team's queue (sparse: only while queued).
        if let (Some(team), Some(at)) = (&self.team_id, &self.queued_at) {
            item.insert(
                keys::GSI2PK.into(),
                crate::item::s(keys::queue_gsi2pk(org, team)),
            );
            item.insert(
                keys::GSI2SK.into(),
                crate::item::s(keys::queue_gsi2sk(at, &self.id)),
            );
        }
        item
    }

    pub fn from_item(item: &impl ItemExt) -> Option<Room> {
        if item.str(keys::ENTITY) != Some(keys::entity::ROOM) {
            return None;
        }
        Some(Room {
            id: RoomId::parse(item.str("room_id")?).ok()?,
            room_type: RoomType::parse(item.str("room_type")?)?,
            title: item.string("title").unwrap_or_default(),
            detail: item.string("detail"),
            product: item.string("product"),
            order_id: item.string("order_id"),
            vendor_id: item.string("vendor_id"),
            customer_id: item.string("customer_id"),
            owner_id: item.string("owner_id")?,
            agent_id: item.string("agent_id"),
            assignee_id: item.string("assignee_id"),
            team_id: item.string("team_id"),
            queued_at: item.string("queued_at"),
            first_response_due_at: item.string("first_response_due_at"),
            resolution_due_at: item.string("resolution_due_at"),
            labels: {
                let mut labels = item.string_set("labels");
                labels.sort();
                labels
            },
            rating: match (
                item.num("rating"),
                item.string("rated_at"),
                item.string("rated_for"),
            ) {
                (Some(score), Some(rated_at), Some(rated_for)) => Some(Rating {
                    score,
                    comment: item.string("rating_comment"),
                    rated_at,
                    rated_for,
                }),
                _ => None,
            },
            conversation_type: item
                .string("conversation_type")
                .unwrap_or_else(|| "chat".into()),
            status: item
                .str("status")
                .and_then(|s| RoomStatus::parse("status", s).ok())
                .unwrap_or(RoomStatus::Open),
            snoozed_until: item.string("snoozed_until"),
            member_count: item
                .num("member_count")
                .unwrap_or(item.string_set("members").len() as u64),
            large: item.flag("large"),
            viewer: None,
            members: item.string_set("members"),
            member_version: item.num("member_version").unwrap_or(0),
            total_messages: item.num("total_messages").unwrap_or(0),
            note_count: item.num("note_count").unwrap_or(0),
            last_message_at: item.string("last_message_at"),
            created_at: item.string("created_at").unwrap_or_default(),
            updated_at: item.string("updated_at").unwrap_or_default(),
            deleted_at: item.string("deleted_at"),
            closed_at: item.string("closed_at"),
            purged_at: item.string("purged_at"),
            metadata: item.string("metadata"),
            awaiting_since: item.string("awaiting_since"),
            first_response_at: item.string("first_response_at"),
            last_seq: item.num("last_seq").unwrap_or(0),
            last_note_id: item.string("last_note_id"),
            last_message: match (item.str("last_message_id"), item.str("last_sender_id")) {
                (Some(id), Some(sender)) => Some(LastMessage {
                    message_id: id.to_owned(),
                    sender_id: sender.to_owned(),
                    preview: item.string("last_message_preview").unwrap_or_default(),
                    created_at: item.string("last_message_at").unwrap_or_default(),
                }),
                _ => None,
            },
        })
    }
}

/// A member's own view of a room: the inbox row. It carries a copy of the room's
/// summary so that an inbox page is one Query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Membership {
    pub user_id: String,
    pub member_role: String,
    pub is_pinned: bool,
    pub is_archived: bool,
    pub unread_count: u64,
    pub last_read_message_id: Option<String>,
    pub joined_at: String,
    pub total_messages: u64,
    pub last_message_at: Option<String>,
    /// Until when the member muted the room's notifications.
    pub muted_until: Option<String>,
}

impl Membership {
    pub fn from_item(item: &impl ItemExt) -> Option<Membership> {
        if item.str(keys::ENTITY) != Some(keys::entity::MEMBER) {
            return None;
        }
        Some(Membership {
            user_id: item.string("user_id")?,
            member_role: item
                .string("member_role")
                .unwrap_or_else(|| "participant".into()),
            is_pinned: item.flag("is_pinned"),
            is_archived: item.flag("is_archived"),
            unread_count: item.num("unread_count").unwrap_or(0),
            last_read_message_id: item.string("last_read_message_id"),
            joined_at: item.string("joined_at").unwrap_or_default(),
            total_messages: item.num("total_messages").unwrap_or(0),
            last_message_at: item.string("last_message_at"),
            muted_until: item.string("muted_until"),
        })
    }

    /// Unread messages in `room`: the row's count, plus the public messages the room
    /// took since the row was last counted (none in a small room, whose posts count
    /// every row; a large room's posts count none but their sender's). The sender of
    /// a message reads up to it, so none of those is the member's own.
    pub fn unread_in(&self, room: &Room) -> u64 {
        self.unread_count + room.total_messages.saturating_sub(self.total_messages)
    }
}

/// Builds the member item (inbox row) for `user` joining `room` now.
pub fn member_item(org: &OrgId, room: &Room, user: &str, member_role: &str, now: &str) -> Item {
    let user_id =
        crate::ids::UserId::parse(user).expect("member ids are validated before they reach a room");
    let activity = room.last_message_at.as_deref().unwrap_or(now);
    let mut item = ItemBuilder::new()
        .str(keys::PK, keys::room_pk(org, &room.id))
        .str(keys::SK, keys::member_sk(&user_id))
        .str(keys::ENTITY, keys::entity::MEMBER)
        .str(keys::GSI1PK, keys::inbox_gsi1pk(org, &user_id))
        .str(keys::GSI1SK, keys::inbox_gsi1sk(activity, &room.id))
        .str("room_id", room.id.as_str())
        .str("user_id", user)
        .str("member_role", member_role)
        .flag("is_pinned", false)
        .flag("is_archived", false)
        .num("unread_count", 0)
        // Where this member's own messages may be, at most: a marker at or after it
        // has none of theirs after it (see `Store::mark_read`).
        .num("own_pos", room.total_messages)
        .str("joined_at", now)
        .num("total_messages", room.total_messages)
        .opt_str("last_message_at", room.last_message_at.clone())
        .str("title", &room.title)
        .str("status", room.status.as_str())
        .str("room_type", room.room_type.as_str())
        .opt_str("product", room.product.clone())
        .flag("large", room.large)
        .str("conversation_type", &room.conversation_type)
        .str("owner_id", &room.owner_id)
        .opt_str("agent_id", room.agent_id.clone())
        .opt_str("assignee_id", room.assignee_id.clone())
        .str("created_at", &room.created_at)
        .build();
    // A small room's member list rides on every row so a rooms page needs no extra
    // read; a large room's rows say `large` instead, and pages read the room.
    if !room.large {
        item.insert("members".into(), AttributeValue::Ss(room.members.clone()));
        if !room.labels.is_empty() {
            item.insert("labels".into(), AttributeValue::Ss(room.labels.clone()));
        }
    }
    item
}

/// The conversation shape of the seed API, from a room and the caller's membership.
pub fn conversation_json(room: &Room, membership: Option<&Membership>, role: Role) -> Value {
    json!({
        "id": room.id,
        "conversation_id": room.id,
        "title": room.title,
        "user_id": room.owner_id,
        "agent_id": room.agent_id,
        "assignee_id": room.assignee_id,
        "team_id": room.team_id,
        "queued_at": room.queued_at,
        "labels": if role.is_staff() { Some(&room.labels) } else { None },
        "rating": room.rating,
        // The desk's clock, not the customer's.
        "sla": if role.is_staff() { SlaView::of(room) } else { None },
        "conversation_type": room.conversation_type,
        "room_type": room.room_type,
        "status": room.status,
        "snoozed_until": room.snoozed_until,
        "is_archived": membership.is_some_and(|m| m.is_archived),
        "is_pinned": membership.is_some_and(|m| m.is_pinned),
        "muted_until": membership.and_then(|m| m.muted_until.as_deref()),
        "unread_count": membership.map_or(0, |m| m.unread_in(room)),
        "total_messages": room.total_messages,
        "note_count": if role.is_staff() { Some(room.note_count) } else { None },
        "last_message_at": room.last_message_at,
        "created_at": room.created_at,
        "updated_at": room.updated_at,
        "last_seq": room.last_seq,
    })
}

/// A conversation's SLA due times (absent when no policy applies to it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlaView {
    pub first_response_due_at: Option<String>,
    pub resolution_due_at: Option<String>,
    pub first_response_at: Option<String>,
}

impl SlaView {
    pub fn of(room: &Room) -> Option<SlaView> {
        (room.first_response_due_at.is_some() || room.resolution_due_at.is_some()).then(|| {
            SlaView {
                first_response_due_at: room.first_response_due_at.clone(),
                resolution_due_at: room.resolution_due_at.clone(),
                first_response_at: room.first_response_at.clone(),
            }
        })
    }
}

/// An inbox row as the list route shows it (the room summary copied on the row).
/// A row of a member's inbox: their membership with the copy of the room's summary
/// it carries (title, status, type), so an inbox page is one Query.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxEntry {
    pub room_id: String,
    pub title: Option<String>,
    pub owner_id: Option<String>,
    pub agent_id: Option<String>,
    /// Who handles it now (a copy of the room's, moved with it).
    pub assignee_id: Option<String>,
    pub conversation_type: Option<String>,
    pub room_type: Option<String>,
    pub status: Option<String>,
    pub created_at: Option<String>,
    /// The room's `last_seq` as of the row's last write (every sequenced change
    /// writes every row of a small room).
    pub last_seq: u64,
    /// A large room's row: its copies of the room are not kept up (see
    /// [`InboxEntry::with_room`]).
    pub large: bool,
    /// The conversation's labels (the desk's: cleared before a customer sees a row).
    pub labels: Vec<String>,
    pub membership: Membership,
    /// The room's latest public message and SLA due times: read from the room when
    /// the listing asks for them (never copied on rows, so an edit, a deletion or a
    /// purge of the message has only the room to change).
    pub summary: Option<RowSummary>,
}

/// What a row shows from its room when asked (`include=last_message`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowSummary {
    pub last_message: Option<LastMessage>,
    pub sla: Option<SlaView>,
}

impl InboxEntry {
    pub fn from_item(item: &Item) -> Option<InboxEntry> {
        Some(InboxEntry {
            membership: Membership::from_item(item)?,
            room_id: item.string("room_id")?,
            title: item.string("title"),
            owner_id: item.string("owner_id"),
            agent_id: item.string("agent_id"),
            assignee_id: item.string("assignee_id"),
            conversation_type: item.string("conversation_type"),
            room_type: item.string("room_type"),
            status: item.string("status"),
            created_at: item.string("created_at"),
            last_seq: item.num("last_seq").unwrap_or(0),
            large: item.flag("large"),
            labels: {
                let mut labels = item.string_set("labels");
                labels.sort();
                labels
            },
            summary: None,
        })
    }

    /// A large room's row completed from the room as it is: what a small room's
    /// writes keep on every row.
    pub fn with_room(&mut self, room: &Room) {
        self.title = Some(room.title.clone());
        self.status = Some(room.status.as_str().to_owned());
        self.assignee_id = room.assignee_id.clone();
        self.labels = room.labels.clone();
        self.last_seq = room.last_seq;
        self.membership.unread_count = self.membership.unread_in(room);
        self.membership.total_messages = room.total_messages;
        if room.last_message_at > self.membership.last_message_at {
            self.membership.last_message_at = room.last_message_at.clone();
        }
    }

    /// The room's latest message and SLA due times on the row.
    pub fn with_summary(&mut self, room: &Room) {
        self.summary = Some(RowSummary {
            last_message: room.last_message.clone(),
            sla: SlaView::of(room),
        });
    }

    /// The row as the inbox shows it.
    pub fn view(&self) -> InboxEntryView<'_> {
        let m = &self.membership;
        InboxEntryView {
            id: &self.room_id,
            conversation_id: &self.room_id,
            title: self.title.as_deref(),
            user_id: self.owner_id.as_deref(),
            agent_id: self.agent_id.as_deref(),
            assignee_id: self.assignee_id.as_deref(),
            conversation_type: self.conversation_type.as_deref(),
            room_type: self.room_type.as_deref(),
            status: self.status.as_deref(),
            is_archived: m.is_archived,
            is_pinned: m.is_pinned,
            unread_count: m.unread_count,
            total_messages: m.total_messages,
            last_message_at: m.last_message_at.as_deref(),
            created_at: self.created_at.as_deref(),
            last_seq: self.last_seq,
            muted_until: m.muted_until.as_deref(),
            labels: (!self.labels.is_empty()).then_some(self.labels.as_slice()),
            last_message: self.summary.as_ref().and_then(|s| s.last_message.as_ref()),
            sla: self.summary.as_ref().and_then(|s| s.sla.as_ref()),
        }
    }
}

/// An inbox row as the API shows it (borrowed, serialized straight into the answer).
#[derive(Debug, Serialize)]
pub struct InboxEntryView<'a> {
    pub id: &'a str,
    pub conversation_id: &'a str,
    pub title: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub agent_id: Option<&'a str>,
    pub assignee_id: Option<&'a str>,
    pub conversation_type: Option<&'a str>,
    pub room_type: Option<&'a str>,
    pub status: Option<&'a str>,
    pub is_archived: bool,
    pub is_pinned: bool,
    pub unread_count: u64,
    pub total_messages: u64,
    pub last_message_at: Option<&'a str>,
    pub created_at: Option<&'a str>,
    pub last_seq: u64,
    /// Until when the caller muted the room's notifications (absent: not muted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub muted_until: Option<&'a str>,
    /// The conversation's labels, to staff (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<&'a [String]>,
    /// The latest public message (with `include=last_message`; absent: none or not
    /// asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message: Option<&'a LastMessage>,
    /// The SLA due times (with `include=last_message`, for staff).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sla: Option<&'a SlaView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    pub name: String,
    /// A link's type as the client states it; an upload's as the storage holds it.
    #[serde(rename = "type", default)]
    pub content_type: String,
    #[serde(default)]
    pub size: u64,
    /// A link; empty for an upload (fetched by `GET …/attachments/{upload_id}`).
    #[serde(default)]
    pub url: String,
    /// A file uploaded with `POST …/uploads` (stored under the room's prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: MessageId,
    pub room_id: RoomId,
    pub sender_id: String,
    /// `user`, `agent` or `bot`, as the seed clients name senders.
    pub sender: String,
    pub content: String,
    pub content_type: String,
    pub message_type: String,
    pub attachments: Vec<Attachment>,
    pub client_message_id: Option<String>,
    pub tokens_used: Option<u64>,
    pub processing_time: Option<f64>,
    pub cost: Option<f64>,
    pub created_at: String,
    pub edited_at: Option<String>,
    pub deleted_at: Option<String>,
    /// When the tenant's retention removed its files (its links stay).
    pub files_expired_at: Option<String>,
    /// Earlier texts of an edited message, oldest first (kept for moderation).
    pub previous_versions: Vec<PreviousVersion>,
    /// Edits made, all of them (only the last ten earlier texts are kept).
    pub edit_count: u64,
    /// The room feed's number of the message's creation (none before the feed).
    pub seq: Option<u64>,
    /// The feed's number of the latest event that carries the message's content (its
    /// creation's, or its last edit's): the one an edit or delete redacts.
    pub last_event_seq: Option<u64>,
    /// The room's public messages up to and including this one (its `total_messages`
    /// once it was written): a read marker here leaves `total − pos` later public
    /// messages, so it is counted without reading them (none before positions).
    pub pos: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousVersion {
    pub content: String,
    pub replaced_at: String,
}

/// Earlier versions kept per message; older ones are dropped.
pub const MAX_PREVIOUS_VERSIONS: usize = 10;

impl Message {
    pub fn is_note(&self) -> bool {
        self.message_type == "note"
    }

    pub fn to_item(&self, org: &OrgId) -> Item {
        let attachments = (!self.attachments.is_empty())
            .then(|| serde_json::to_string(&self.attachments).expect("attachments serialize"));
        ItemBuilder::new()
            .str(keys::PK, keys::room_pk(org, &self.room_id))
            .str(keys::SK, keys::message_sk(&self.id))
            .str(keys::ENTITY, keys::entity::MESSAGE)
            .str("message_id", self.id.as_str())
            .str("room_id", self.room_id.as_str())
            .str("sender_id", &self.sender_id)
            .str("sender", &self.sender)
            .str("content", &self.content)
            .str("content_type", &self.content_type)
            .str("message_type", &self.message_type)
            .opt_str("attachments", attachments)
            .opt_str("client_message_id", self.client_message_id.clone())
            .opt_num("tokens_used", self.tokens_used)
            .opt_num("processing_time", self.processing_time)
            .opt_num("cost", self.cost)
            .str("created_at", &self.created_at)
            .opt_str("edited_at", self.edited_at.clone())
            .opt_str("deleted_at", self.deleted_at.clone())
            .opt_str("files_expired_at", self.files_expired_at.clone())
            .opt_str(
                "previous_versions",
                (!self.previous_versions.is_empty()).then(|| {
                    serde_json::to_string(&self.previous_versions).expect("versions serialize")
                }),
            )
            .num("edit_count", self.edit_count)
            .opt_num("seq", self.seq)
            .opt_num("last_event_seq", self.last_event_seq)
            .opt_num("pos", self.pos)
            .build()
    }

    pub fn from_item(item: &impl ItemExt) -> Option<Message> {
        if item.str(keys::ENTITY) != Some(keys::entity::MESSAGE) {
            return None;
        }
        let previous_versions: Vec<PreviousVersion> = item
            .str("previous_versions")
            .and_then(|raw| serde_json::from_str(raw).ok())
            .unwrap_or_default();
        // Messages edited before edits were counted: their kept texts.
        let edit_count = item
            .num("edit_count")
            .unwrap_or(previous_versions.len() as u64);
        Some(Message {
            id: MessageId::parse(item.str("message_id")?).ok()?,
            room_id: RoomId::parse(item.str("room_id")?).ok()?,
            sender_id: item.string("sender_id")?,
            sender: item.string("sender").unwrap_or_else(|| "user".into()),
            content: item.string("content").unwrap_or_default(),
            content_type: item.string("content_type").unwrap_or_else(|| "text".into()),
            message_type: item.string("message_type").unwrap_or_else(|| "text".into()),
            attachments: item
                .str("attachments")
                .and_then(|raw| serde_json::from_str(raw).ok())
                .unwrap_or_default(),
            client_message_id: item.string("client_message_id"),
            tokens_used: item.num("tokens_used"),
            processing_time: item.num("processing_time"),
            cost: item.num("cost"),
            created_at: item.string("created_at").unwrap_or_default(),
            edited_at: item.string("edited_at"),
            deleted_at: item.string("deleted_at"),
            files_expired_at: item.string("files_expired_at"),
            previous_versions,
            edit_count,
            seq: item.num("seq"),
            last_event_seq: item.num("last_event_seq"),
            pos: item.num("pos"),
        })
    }

    /// The message as the API shows it; a deleted message keeps its place as a
    /// tombstone without its content.
    pub fn view(&self) -> MessageView<'_> {
        let deleted = self.deleted_at.is_some();
        MessageView {
            id: &self.id,
            message_id: &self.id,
            conversation_id: &self.room_id,
            room_id: &self.room_id,
            sender_id: &self.sender_id,
            sender: &self.sender,
            content: if deleted { "" } else { &self.content },
            content_type: &self.content_type,
            message_type: &self.message_type,
            status: if deleted { "deleted" } else { "sent" },
            attachments: if deleted { &[] } else { &self.attachments },
            client_message_id: self.client_message_id.as_deref(),
            tokens_used: self.tokens_used,
            processing_time: self.processing_time,
            cost: self.cost,
            created_at: &self.created_at,
            edited_at: self.edited_at.as_deref(),
            edit_count: self.edit_count,
            seq: self.seq,
            deleted_at: self.deleted_at.as_deref(),
            files_expired_at: self.files_expired_at.as_deref(),
            is_deleted: deleted,
        }
    }

    /// [`Self::view`] as a JSON value.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.view()).expect("a message view serializes")
    }
}

/// A message as the API shows it, borrowed from the message: serialized straight
/// into the response, with no intermediate JSON tree.
#[derive(Debug, Serialize)]
pub struct MessageView<'a> {
    pub id: &'a MessageId,
    pub message_id: &'a MessageId,
    pub conversation_id: &'a RoomId,
    pub room_id: &'a RoomId,
    pub sender_id: &'a str,
    pub sender: &'a str,
    pub content: &'a str,
    pub content_type: &'a str,
    pub message_type: &'a str,
    pub status: &'static str,
    pub attachments: &'a [Attachment],
    pub client_message_id: Option<&'a str>,
    pub tokens_used: Option<u64>,
    pub processing_time: Option<f64>,
    pub cost: Option<f64>,
    pub created_at: &'a str,
    pub edited_at: Option<&'a str>,
    pub edit_count: u64,
    pub seq: Option<u64>,
    pub deleted_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_expired_at: Option<&'a str>,
    pub is_deleted: bool,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ids::UserId;

    pub(crate) fn room() -> Room {
        Room {
            id: RoomId::from_parts(1, 2),
            room_type: RoomType::Support,
            title: "Help".into(),
            detail: None,
            product: Some("shop".into()),
            order_id: None,
            vendor_id: None,
            customer_id: None,
            owner_id: "u-1".into(),
            agent_id: Some("5".into()),
            assignee_id: None,
            team_id: None,
            queued_at: None,
            labels: Vec::new(),
            rating: None,
            first_response_due_at: None,
            resolution_due_at: None,
            conversation_type: "chat".into(),
            status: RoomStatus::Open,
            snoozed_until: None,
            members: vec!["u-1".into(), "5".into()],
            member_count: 2,
            large: false,
            viewer: None,
            member_version: 1,
            total_messages: 3,
            note_count: 1,
            last_message_at: Some("2024-06-29T10:00:00.000Z".into()),
            created_at: "2024-06-29T09:00:00.000Z".into(),
            updated_at: "2024-06-29T10:00:00.000Z".into(),
            deleted_at: None,
            closed_at: None,
            purged_at: None,
            metadata: Some(r#"{"channel":"web"}"#.into()),
            last_message: None,
            last_note_id: None,
            awaiting_since: Some("2024-06-29T09:59:00.000Z".into()),
            first_response_at: None,
            last_seq: 3,
        }
    }

    pub(crate) fn principal(user: &str, role: Role) -> Principal {
        Principal {
            user: UserId::parse(user).unwrap(),
            org: OrgId::parse("acme").unwrap(),
            role,
        }
    }

    #[test]
    fn room_round_trips_through_its_item() {
        let org = OrgId::parse("acme").unwrap();
        let item = room().to_item(&org);
        assert_eq!(item.str(keys::SK), Some(keys::ROOM_SK));
        assert_eq!(Room::from_item(&item), Some(room()));
    }

    pub(crate) fn message() -> Message {
        Message {
            id: MessageId::from_parts(5, 5),
            room_id: RoomId::from_parts(1, 2),
            sender_id: "u-1".into(),
            sender: "user".into(),
            content: "hi".into(),
            content_type: "text".into(),
            message_type: "text".into(),
            attachments: vec![Attachment {
                name: "a.png".into(),
                content_type: "image/png".into(),
                size: 3,
                url: "https://x/a.png".into(),
                upload_id: None,
            }],
            client_message_id: Some("c1".into()),
            tokens_used: Some(12),
            processing_time: Some(0.8),
            cost: Some(0.002),
            created_at: "2024-06-29T10:00:00.000Z".into(),
            edited_at: Some("2024-06-29T10:01:00.000Z".into()),
            deleted_at: None,
            files_expired_at: None,
            previous_versions: vec![PreviousVersion {
                content: "hello".into(),
                replaced_at: "2024-06-29T10:01:00.000Z".into(),
            }],
            edit_count: 1,
            seq: Some(2),
            last_event_seq: None,
            pos: None,
        }
    }

    #[test]
    fn message_round_trips_through_its_item() {
        let org = OrgId::parse("acme").unwrap();
        let message = message();
        assert_eq!(Message::from_item(&message.to_item(&org)), Some(message));
    }

    #[test]
    fn a_message_reopens_waits_and_answers_by_one_rule() {
        let customer_reply = Message {
            sender: "user".into(),
            ..message()
        };
        let answer = Message {
            sender: "agent".into(),
            sender_id: "5".into(),
            ..message()
        };
        let note = Message {
            message_type: "note".into(),
            ..answer.clone()
        };
        let mut resolved = room();
        resolved.status = RoomStatus::Resolved;
        resolved.awaiting_since = None;
        let effect = resolved.message_effect(&customer_reply, false);
        assert!(effect.reopen && effect.start_waiting && !effect.end_waiting);
        assert!(
            !resolved.message_effect(&customer_reply, true).reopen,
            "staff writing as the user do not reopen"
        );
        let after = resolved.clone().after_message(&customer_reply, false);
        assert_eq!(after.status, RoomStatus::Open);
        assert_eq!(
            after.awaiting_since.as_deref(),
            Some(customer_reply.created_at.as_str())
        );
        let answered = room().message_effect(&answer, true);
        assert!(answered.end_waiting && answered.first_response);
        let after = room().after_message(&answer, true);
        assert_eq!(after.awaiting_since, None);
        assert_eq!(
            after.first_response_at.as_deref(),
            Some(answer.created_at.as_str())
        );
        assert!(
            !after.message_effect(&answer, true).first_response,
            "only the first"
        );
        assert_eq!(room().message_effect(&note, true), MessageEffect::default());
    }

    #[test]
    fn a_member_row_reads_back_as_its_membership_and_inbox_entry() {
        let org = OrgId::parse("acme").unwrap();
        let item = member_item(&org, &room(), "5", "agent", "2024-06-29T11:00:00.000Z");
        let entry = InboxEntry::from_item(&item).unwrap();
        assert_eq!(entry.room_id, room().id.as_str());
        assert_eq!(entry.title.as_deref(), Some("Help"));
        assert_eq!(entry.status.as_deref(), Some("open"));
        assert_eq!(entry.owner_id.as_deref(), Some("u-1"));
        let m = &entry.membership;
        assert_eq!((m.user_id.as_str(), m.member_role.as_str()), ("5", "agent"));
        assert_eq!((m.unread_count, m.total_messages), (0, 3));
        assert_eq!(m.last_message_at, room().last_message_at);
        let view = serde_json::to_value(entry.view()).unwrap();
        assert_eq!(view["conversation_id"], room().id.as_str());
        assert_eq!(view["is_pinned"], false);
        assert!(
            InboxEntry::from_item(&room().to_item(&org)).is_none(),
            "a room is no row"
        );
    }

    #[test]
    fn visibility_rules() {
        let r = room();
        assert!(r.visible_to(&principal("u-1", Role::Customer)));
        assert!(!r.visible_to(&principal("u-9", Role::Customer)));
        assert!(
            r.visible_to(&principal("a-2", Role::Agent)),
            "staff see support rooms"
        );
        let mut group = room();
        group.room_type = RoomType::Group;
        assert!(!group.visible_to(&principal("a-2", Role::Agent)));
        let mut deleted = room();
        deleted.deleted_at = Some("x".into());
        assert!(!deleted.visible_to(&principal("u-1", Role::Customer)));
    }

    #[test]
    fn customers_do_not_see_the_note_count() {
        let customer = conversation_json(&room(), None, Role::Customer);
        assert_eq!(customer["total_messages"], 3);
        assert!(customer["note_count"].is_null());
        assert_eq!(
            conversation_json(&room(), None, Role::Agent)["note_count"],
            1
        );
    }
}
