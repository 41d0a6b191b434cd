//! The `inbound-email` function: a reply by email lands in its conversation.
//!
//! SES receives the mail for the stack's inbound domain, stores it under `inbound/` in
//! the uploads bucket and invokes this function with its receipt (verdicts, envelope
//! recipients). A mail is posted when all of these hold, else dropped and logged
//! (docs/email.md): SES's verdicts pass ([`refusal`]); it is not an automatic reply;
//! an envelope recipient is a conversation's reply address whose tag verifies for the
//! tenant that room belongs to ([`chat_core::reply`]); its `From` is the address on
//! the profile of the conversation's customer or of one of its agents, and that
//! address is the one SES authenticated (DMARC, or an aligned SPF or DKIM pass). The
//! text without quotes and signatures ([`crate::reply_text`]) is posted as that
//! person's message, once per `Message-ID` (the message's idempotency key), and its
//! attachments become uploads of the room under the direct uploads' rules.

use crate::reply_text::reply_text;
use chat_core::commands::conversations::MAX_TITLE_CHARS;
use chat_core::commands::messages::{
    MAX_ATTACHMENTS, MAX_CONTENT_CHARS, MessageDraft, PostMessage,
};
use chat_core::config::EmailSettings;
use chat_core::ids::{OrgId, Role, RoomId, Ulid, UserId};
use chat_core::model::{Attachment, Room, RoomType};
use chat_core::reply::Token;
use chat_core::store::{NewMessage, Posted, RoomCache, Started, Store};
use chat_core::uploads::{NewUpload, UploadBody, Uploads};
use chat_core::{ApiError, Principal, Runtime};
use hyper::body::Bytes;
use mail_parser::{MessageParser, MimeHeaders};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Where SES's S3 action stores each mail: this prefix and SES's message id.
pub const INBOUND_PREFIX: &str = "inbound/";
/// The most attachment parts of a mail looked at.
const MAX_PARTS: usize = 50;
/// The largest mail SES receives (40 MB), with room for its encoding.
const MAX_MAIL_BYTES: usize = 41 * 1024 * 1024;

/// The receipt event SES invokes a Lambda action with (its fields used here).
#[derive(Debug, Deserialize)]
pub struct SesEvent {
    #[serde(rename = "Records")]
    pub records: Vec<SesRecord>,
}

#[derive(Debug, Deserialize)]
pub struct SesRecord {
    pub ses: Ses,
}

#[derive(Debug, Deserialize)]
pub struct Ses {
    pub mail: SesMail,
    pub receipt: Receipt,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SesMail {
    /// SES's id of the mail: its object's key after [`INBOUND_PREFIX`].
    pub message_id: String,
    /// The envelope sender (`MAIL FROM`), which SPF checked.
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// The envelope recipients this rule matched.
    pub recipients: Vec<String>,
    pub spam_verdict: Verdict,
    pub virus_verdict: Verdict,
    pub spf_verdict: Verdict,
    pub dkim_verdict: Verdict,
    pub dmarc_verdict: Verdict,
}

#[derive(Debug, Deserialize)]
pub struct Verdict {
    pub status: String,
}

impl Verdict {
    fn is(&self, status: &str) -> bool {
        self.status.eq_ignore_ascii_case(status)
    }
}

/// Why a mail was not posted (logged with SES's message id, never its content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// SES found a virus, or could not scan it.
    Virus,
    Spam,
    /// An SPF, DKIM or DMARC check failed.
    AuthenticationFailed,
    /// Nothing authenticated the sender's domain.
    Unauthenticated,
    /// An out-of-office or other automatic mail (answering them would loop).
    Automatic,
    /// No recipient is a reply address of the inbound domain.
    NoReplyAddress,
    /// A reply address whose tag does not verify (made up, or changed).
    ForgedAddress,
    /// The conversation is gone, or is not a support conversation.
    NoConversation,
    /// `From` is no address of the conversation's customer or agents (or of several).
    UnknownSender,
    /// `From` is not the domain SES authenticated.
    SenderNotAuthenticated,
    Unreadable,
    /// Nothing left once the quotes were taken out, and no attachments.
    Empty,
    /// From the stack's own sender or inbound domain (a loop).
    OwnMail,
    /// A second delivery under the same Message-ID that differs from the first.
    ChangedDuplicate,
}

impl Drop {
    pub fn as_str(self) -> &'static str {
        match self {
            Drop::Virus => "virus",
            Drop::Spam => "spam",
            Drop::AuthenticationFailed => "authentication_failed",
            Drop::Unauthenticated => "unauthenticated",
            Drop::Automatic => "automatic_reply",
            Drop::NoReplyAddress => "no_reply_address",
            Drop::ForgedAddress => "forged_reply_address",
            Drop::NoConversation => "no_conversation",
            Drop::UnknownSender => "unknown_sender",
            Drop::SenderNotAuthenticated => "sender_not_authenticated",
            Drop::Unreadable => "unreadable",
            Drop::Empty => "empty",
            Drop::OwnMail => "own_mail",
            Drop::ChangedDuplicate => "changed_duplicate",
        }
    }
}

/// Where a mail goes.
enum Route {
    /// A reply to a conversation's mail: its tenant and room.
    Reply(OrgId, RoomId),
    /// A tenant's email inbox: a new conversation, assigned to this agent.
    Start(OrgId, UserId),
}

/// The user a mail to an inbox is from: the same for every spelling of the address's
/// case, and no address in the id.
pub fn mail_user(address: &str) -> UserId {
    let digest = Sha256::digest(address.trim().to_ascii_lowercase().as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    UserId::parse(&format!("mail-{hex}")).expect("a valid user id")
}

/// What became of one mail.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Posted {
        room: RoomId,
        message: String,
    },
    /// Mail to an inbox: a new conversation and its first message.
    Started {
        room: RoomId,
        message: String,
    },
    /// Delivered before (same `Message-ID`): the first message stands.
    Duplicate {
        room: RoomId,
        message: String,
    },
    Dropped(Drop),
}

impl Outcome {
    fn json(&self, mail: &str) -> Value {
        match self {
            Outcome::Posted { room, message } => {
                json!({"mail": mail, "outcome": "posted", "room_id": room, "message_id": message})
            }
            Outcome::Started { room, message } => {
                json!({"mail": mail, "outcome": "started", "room_id": room, "message_id": message})
            }
            Outcome::Duplicate { room, message } => {
                json!({"mail": mail, "outcome": "duplicate", "room_id": room, "message_id": message})
            }
            Outcome::Dropped(why) => {
                json!({"mail": mail, "outcome": "dropped", "reason": why.as_str()})
            }
        }
    }
}

/// Whether SES's verdicts refuse the mail before anything is read. A virus scan must
/// pass; spam, SPF, DKIM and DMARC must not fail; one of SPF, DKIM and DMARC must
/// pass (which domain passed is checked against `From` once the mail is read).
pub fn refusal(receipt: &Receipt) -> Option<Drop> {
    if !receipt.virus_verdict.is("PASS") {
        return Some(Drop::Virus);
    }
    if receipt.spam_verdict.is("FAIL") || receipt.spam_verdict.is("PROCESSING_FAILED") {
        return Some(Drop::Spam);
    }
    let checks = [
        &receipt.spf_verdict,
        &receipt.dkim_verdict,
        &receipt.dmarc_verdict,
    ];
    if checks.iter().any(|v| v.is("FAIL")) {
        return Some(Drop::AuthenticationFailed);
    }
    if !checks.iter().any(|v| v.is("PASS")) {
        return Some(Drop::Unauthenticated);
    }
    None
}

/// A domain and another are aligned (DMARC's relaxed mode): the same, or one under
/// the other.
fn aligned(a: &str, b: &str) -> bool {
    // An empty envelope sender (bounces), a bare name or a trailing dot aligns with
    // nothing.
    let real =
        |d: &str| d.contains('.') && !d.starts_with('.') && !d.ends_with('.') && !d.contains("..");
    if !real(a) || !real(b) {
        return false;
    }
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}"))
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
}

/// Whether the domain of `from` is the one SES's passing verdict is about: DMARC
/// passed (it checks `From` itself), or SPF passed for an aligned envelope sender,
/// or DKIM passed and a signature is by an aligned domain.
fn sender_authenticated(receipt: &Receipt, envelope: &str, from: &str, dkim: &[String]) -> bool {
    let domain = domain_of(from);
    receipt.dmarc_verdict.is("PASS")
        || (receipt.spf_verdict.is("PASS") && aligned(domain_of(envelope), domain))
        // SES's DKIM verdict is the mail's, not a signature's: only with a single
        // signature is its `d=` the domain that passed.
        || (receipt.dkim_verdict.is("PASS") && dkim.len() == 1 && aligned(&dkim[0], domain))
}

/// The `d=` domains of a mail's DKIM signatures.
fn dkim_domains(message: &mail_parser::Message<'_>) -> Vec<String> {
    message
        .headers_raw()
        .filter(|(name, _)| name.eq_ignore_ascii_case("DKIM-Signature"))
        .filter_map(|(_, value)| {
            value.split(';').find_map(|tag| {
                let (k, v) = tag.split_once('=')?;
                (k.trim() == "d").then(|| v.trim().to_ascii_lowercase())
            })
        })
        .collect()
}

/// Mail from the stack's own sender address or any address of its inbound domain:
/// answering it would loop.
fn is_own_mail(email: &EmailSettings, from: &str) -> bool {
    let from_address = email
        .from
        .rsplit_once('<')
        .map(|(_, a)| a.trim_end_matches('>'))
        .unwrap_or(&email.from);
    from.eq_ignore_ascii_case(from_address.trim())
        || email.inbound_domain.as_deref().is_some_and(|d| {
            let domain = domain_of(from).to_ascii_lowercase();
            domain == d || domain.ends_with(&format!(".{d}"))
        })
}

/// Out-of-office and other automatic mails (RFC 3834, and what clients send instead).
fn is_automatic(message: &mail_parser::Message<'_>) -> bool {
    let header = |name: &str| {
        message
            .headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    header("Auto-Submitted").is_some_and(|v| v != "no")
        || header("Precedence")
            .is_some_and(|v| matches!(v.as_str(), "bulk" | "junk" | "list" | "auto_reply"))
        || header("X-Autoreply").is_some()
        || header("X-Autorespond").is_some()
}

/// The id an attachment's upload gets: the same for every delivery of a mail, so a
/// duplicate overwrites its own files and cites the ids the first message holds.
fn upload_id(idempotency: &str, index: usize) -> Ulid {
    let digest = Sha256::digest(format!("{idempotency}:{index}").as_bytes());
    let millis = u64::from_be_bytes([
        0, 0, digest[0], digest[1], digest[2], digest[3], digest[4], digest[5],
    ]);
    let mut random = [0u8; 16];
    random[6..].copy_from_slice(&digest[6..16]);
    Ulid::from_parts(millis, u128::from_be_bytes(random))
}

/// The message's idempotency key: of its `Message-ID` (SES's id without one).
fn idempotency_key(message_id: Option<&str>, ses_id: &str, from: &str) -> String {
    // The sender's own: another sender reusing a Message-ID they saw names nothing of
    // the first's.
    let digest =
        Sha256::digest(format!("{}\n{}", from, message_id.unwrap_or(ses_id).trim()).as_bytes());
    let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
    format!("email.{hex}")
}

pub struct Inbound {
    store: Store,
    uploads: Option<Uploads>,
    email: Option<EmailSettings>,
    rooms: RoomCache,
}

impl Inbound {
    pub fn new(runtime: Runtime) -> Inbound {
        let uploads = runtime
            .config
            .uploads
            .clone()
            .map(|config| Uploads::new(config, runtime.config.aws.clone()));
        Inbound {
            store: runtime.store,
            uploads,
            email: runtime.config.notify.email.clone(),
            rooms: RoomCache::default(),
        }
    }

    /// One SES invocation: each mail's outcome. An error (the table or the bucket
    /// unavailable) fails the invocation, which Lambda retries; posting is idempotent.
    pub async fn handle(&self, event: Value) -> Result<Value, ApiError> {
        let event: SesEvent = serde_json::from_value(event)
            .map_err(|e| ApiError::internal("inbound email event", e))?;
        let mut outcomes = Vec::new();
        for record in &event.records {
            let outcome = self.receive(&record.ses).await?;
            let mail = record.ses.mail.message_id.as_str();
            match &outcome {
                Outcome::Dropped(why) => {
                    tracing::warn!(mail, reason = why.as_str(), "inbound email dropped")
                }
                other => tracing::info!(mail, ?other, "inbound email"),
            }
            outcomes.push(outcome.json(mail));
        }
        Ok(json!({ "mails": outcomes }))
    }

    /// One mail.
    pub async fn receive(&self, ses: &Ses) -> Result<Outcome, ApiError> {
        let email = self
            .email
            .as_ref()
            .filter(|e| e.inbound_domain.is_some())
            .ok_or_else(|| {
                ApiError::internal("inbound email", "INBOUND_EMAIL_DOMAIN is not set")
            })?;
        if let Some(why) = refusal(&ses.receipt) {
            return Ok(Outcome::Dropped(why));
        }
        let route = match self.route(email, &ses.receipt.recipients).await? {
            Ok(route) => route,
            Err(why) => return Ok(Outcome::Dropped(why)),
        };
        let uploads = self
            .uploads
            .as_ref()
            .ok_or_else(|| ApiError::internal("inbound email", "UPLOADS_BUCKET is not set"))?;
        let key = format!("{INBOUND_PREFIX}{}", ses.mail.message_id);
        let Some(raw) = uploads.get(&key, MAX_MAIL_BYTES).await? else {
            return Err(ApiError::internal(
                "inbound email",
                format!("{key} is not in the bucket"),
            ));
        };
        let Some(message) = MessageParser::default().parse(&raw[..]) else {
            return Ok(Outcome::Dropped(Drop::Unreadable));
        };
        if is_automatic(&message) {
            return Ok(Outcome::Dropped(Drop::Automatic));
        }
        let Some(sender) = message
            .from()
            .filter(|f| f.iter().count() == 1)
            .and_then(|f| f.first())
        else {
            return Ok(Outcome::Dropped(Drop::UnknownSender));
        };
        let from_headers = message
            .headers_raw()
            .filter(|(name, _)| name.eq_ignore_ascii_case("From"))
            .count();
        let Some(from) = sender
            .address()
            .map(|a| a.trim().to_ascii_lowercase())
            .filter(|_| from_headers == 1)
        else {
            return Ok(Outcome::Dropped(Drop::UnknownSender));
        };
        if is_own_mail(email, &from) {
            return Ok(Outcome::Dropped(Drop::OwnMail));
        }
        let authenticated = sender_authenticated(
            &ses.receipt,
            &ses.mail.source,
            &from,
            &dkim_domains(&message),
        );
        let idempotency = idempotency_key(message.message_id(), &ses.mail.message_id, &from);
        // Files are named by the mail's content too: a resend with other files under
        // the same Message-ID never overwrites the first's.
        let content_key = {
            let digest = Sha256::digest(&raw[..]);
            let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            format!("{idempotency}:{hex}")
        };
        let (org, room, who, started) = match route {
            Route::Reply(org, room) => {
                let room = match self.store.get_room(&org, &room).await? {
                    Some(room) if room.room_type == RoomType::Support => room,
                    _ => return Ok(Outcome::Dropped(Drop::NoConversation)),
                };
                let Some(who) = self.sender(&org, &room, &from).await? else {
                    return Ok(Outcome::Dropped(Drop::UnknownSender));
                };
                if !authenticated {
                    return Ok(Outcome::Dropped(Drop::SenderNotAuthenticated));
                }
                (org, room.id, who, false)
            }
            Route::Start(org, agent) => {
                // Nobody's profile vouches for the address: its domain must.
                if !authenticated {
                    return Ok(Outcome::Dropped(Drop::SenderNotAuthenticated));
                }
                let who = self.mail_customer(&org, &from, sender.name()).await?;
                let room = self
                    .start(&who, &agent, message.subject(), &from, &idempotency)
                    .await?;
                (org, room, who, true)
            }
        };
        let (attachments, refused) = self
            .attachments(uploads, &org, &room, &message, &content_key)
            .await?;
        let mut content = reply_text(&message);
        if !refused.is_empty() {
            if !content.is_empty() {
                content.push_str("\n\n");
            }
            content.push_str(&format!("(not attached: {})", refused.join("; ")));
        }
        if content.chars().count() > MAX_CONTENT_CHARS {
            content = content.chars().take(MAX_CONTENT_CHARS - 1).collect();
            content.push('…');
        }
        let draft = match MessageDraft::try_from(PostMessage {
            content,
            content_type: None,
            message_type: None,
            sender_type: None,
            attachments,
            client_message_id: None,
        }) {
            Ok(draft) => draft,
            Err(_) => return Ok(Outcome::Dropped(Drop::Empty)),
        };
        let new = NewMessage {
            content: draft.content,
            content_type: draft.content_type,
            message_type: draft.kind.as_str().to_owned(),
            sender: who.role.sender_type().to_owned(),
            sender_id: None,
            attachments: draft.attachments,
            client_message_id: None,
            idempotency_key: Some(idempotency),
            tokens_used: None,
            processing_time: None,
            cost: None,
            request: None,
        };
        match self.store.post_message(&who, &room, new, &self.rooms).await {
            Ok(Posted::Created(message)) if started => Ok(Outcome::Started {
                room,
                message: message.id.to_string(),
            }),
            Ok(Posted::Created(message)) => Ok(Outcome::Posted {
                room,
                message: message.id.to_string(),
            }),
            Ok(Posted::Replayed(first)) => Ok(Outcome::Duplicate {
                room,
                message: first.id.to_string(),
            }),
            // They left or lost access meanwhile.
            Err(ApiError::NotFound(_)) => Ok(Outcome::Dropped(Drop::NoConversation)),
            // Permanent: a retry would fail the same way.
            Err(ApiError::Conflict { .. } | ApiError::InvalidField { .. }) => {
                Ok(Outcome::Dropped(Drop::ChangedDuplicate))
            }
            Err(err) => Err(err),
        }
    }

    /// Where a mail goes: a reply address (checked), else a tenant's email inbox;
    /// a mail to both goes to the conversation.
    async fn route(
        &self,
        email: &EmailSettings,
        recipients: &[String],
    ) -> Result<Result<Route, Drop>, ApiError> {
        let domain = email.inbound_domain.as_deref().unwrap_or_default();
        if let Some(token) = recipients.iter().find_map(|r| Token::of(r, domain)) {
            return Ok(match self.store.reply_room_org(&token.room).await? {
                Some(org) if token.verifies(&email.link_secret, &org) => {
                    Ok(Route::Reply(org, token.room))
                }
                _ => Err(Drop::ForgedAddress),
            });
        }
        for recipient in recipients {
            let Some((local, at)) = recipient.rsplit_once('@') else {
                continue;
            };
            // An inbox is a public address: any case reaches it, as mail users expect.
            let local = local.to_ascii_lowercase();
            if !at.eq_ignore_ascii_case(domain) || local.contains('+') || local.is_empty() {
                continue;
            }
            let Some(org) = self.store.email_inbox_org(&local).await? else {
                continue;
            };
            let inbox = self
                .store
                .org_settings(&org)
                .await?
                .and_then(|s| s.email_inbox)
                .filter(|inbox| inbox.local_part == local);
            if let Some(agent) = inbox.and_then(|inbox| UserId::parse(&inbox.agent_id).ok()) {
                return Ok(Ok(Route::Start(org, agent)));
            }
        }
        Ok(Err(Drop::NoReplyAddress))
    }

    /// The customer a mail to an inbox is from: a user of the tenant keyed by the
    /// authenticated address (`mail-` and a hash of it: no address in keys or logs),
    /// with that address on their profile, and the mail's display name when they have
    /// none yet.
    async fn mail_customer(
        &self,
        org: &OrgId,
        address: &str,
        display_name: Option<&str>,
    ) -> Result<Principal, ApiError> {
        let user = mail_user(address);
        if self.store.get_profile(org, &user).await?.is_none() {
            let username = display_name
                .map(|n| {
                    n.chars()
                        .filter(|c| !c.is_control())
                        .take(100)
                        .collect::<String>()
                })
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty());
            let profile = chat_core::store::Profile {
                user_id: user.to_string(),
                username,
                email: Some(address.to_owned()),
                updated_at: Some(chat_core::time::now_string()),
                ..Default::default()
            };
            self.store.put_profile(org, &user, &profile).await?;
        }
        Ok(Principal {
            user,
            org: org.clone(),
            role: Role::Customer,
        })
    }

    /// The support conversation a mail starts, assigned to the inbox's agent: once
    /// per mail (its idempotency key is the conversation's natural key).
    async fn start(
        &self,
        who: &Principal,
        agent: &UserId,
        subject: Option<&str>,
        from: &str,
        idempotency: &str,
    ) -> Result<RoomId, ApiError> {
        let title: String = subject
            .unwrap_or_default()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_TITLE_CHARS)
            .collect();
        let title = match title.trim() {
            "" => format!("Email from {from}"),
            t => t.to_owned(),
        };
        let owner = who.user.to_string();
        let members = vec![(owner.clone(), "owner"), (agent.to_string(), "agent")];
        let room = Room {
            assignee_id: Some(agent.to_string()),
            agent_id: Some(agent.to_string()),
            ..Room::open(
                RoomId::generate(),
                RoomType::Support,
                title,
                owner,
                members.iter().map(|(m, _)| m.clone()).collect(),
                chat_core::time::now_string(),
            )
        };
        let natural_key = chat_core::keys::mail_start_key(&who.org, idempotency);
        match self
            .store
            .start_room(&who.org, &room, &members, Some(natural_key))
            .await?
        {
            Started::Created => Ok(room.id),
            Started::Existing(first) => Ok(first.id),
        }
    }

    /// Who of the conversation's customer (its owner) and its agent (its agent or
    /// assignee) has `from` on their profile (nobody, when none or both do). Other
    /// members post nothing by email: their role is not known here.
    async fn sender(
        &self,
        org: &OrgId,
        room: &Room,
        from: &str,
    ) -> Result<Option<Principal>, ApiError> {
        let mut people: Vec<String> = vec![room.owner_id.clone()];
        people.extend(room.agent_id.clone());
        people.extend(room.assignee_id.clone());
        people.sort();
        people.dedup();
        let (_, profiles) = self.store.rooms_with_profiles(org, &[], &people).await?;
        let mut matches = people.iter().filter(|p| {
            profiles
                .get(p.as_str())
                .and_then(|profile| profile.email.as_deref())
                .is_some_and(|e| e.trim().eq_ignore_ascii_case(from))
        });
        let (Some(user), None) = (matches.next(), matches.next()) else {
            return Ok(None);
        };
        let Ok(user) = UserId::parse(user) else {
            return Ok(None);
        };
        let role = if user.as_str() == room.owner_id {
            Role::Customer
        } else {
            Role::Agent
        };
        Ok(Some(Principal {
            user,
            org: org.clone(),
            role,
        }))
    }

    /// The mail's attachments stored as uploads of the room (the direct uploads'
    /// type, size and name rules), and what was refused, by name and why.
    async fn attachments(
        &self,
        uploads: &Uploads,
        org: &OrgId,
        room: &RoomId,
        message: &mail_parser::Message<'_>,
        idempotency: &str,
    ) -> Result<(Vec<Attachment>, Vec<String>), ApiError> {
        let mut kept = Vec::new();
        let mut refused = Vec::new();
        for (i, part) in message.attachments().enumerate() {
            if i >= MAX_PARTS {
                refused.push(format!(
                    "{} more files — at most {MAX_PARTS} parts are read",
                    message.attachment_count() - i
                ));
                break;
            }
            let name = part
                .attachment_name()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("attachment-{}", i + 1));
            let content_type = part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_owned(),
                })
                .unwrap_or_else(|| "application/octet-stream".into())
                .to_ascii_lowercase();
            let contents = part.contents();
            let checked = NewUpload::try_from(UploadBody {
                name: name.clone(),
                content_type,
                size: contents.len() as u64,
            });
            let upload = match checked {
                Ok(upload) if kept.len() < MAX_ATTACHMENTS => upload,
                Ok(_) => {
                    refused.push(format!("{name} — at most {MAX_ATTACHMENTS} files"));
                    continue;
                }
                Err(ApiError::InvalidField { field, reason }) => {
                    refused.push(format!("{} — {field}: {reason}", clean_name(&name)));
                    continue;
                }
                Err(other) => return Err(other),
            };
            let id = upload_id(idempotency, i);
            let key = chat_core::uploads::attached_key(org, room, id.as_str());
            uploads
                .put(&key, Bytes::copy_from_slice(contents), &upload.content_type)
                .await?;
            kept.push(Attachment {
                name: upload.name,
                content_type: upload.content_type,
                size: upload.size,
                url: String::new(),
                upload_id: Some(id.as_str().to_owned()),
            });
        }
        Ok((kept, refused))
    }
}

/// A refused file's name as the message states it: no controls, at most 100 characters.
fn clean_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(spam: &str, virus: &str, spf: &str, dkim: &str, dmarc: &str) -> Receipt {
        let v = |s: &str| Verdict { status: s.into() };
        Receipt {
            recipients: vec![],
            spam_verdict: v(spam),
            virus_verdict: v(virus),
            spf_verdict: v(spf),
            dkim_verdict: v(dkim),
            dmarc_verdict: v(dmarc),
        }
    }

    #[test]
    fn verdicts_decide_before_anything_is_read() {
        let cases = [
            (("PASS", "PASS", "PASS", "PASS", "PASS"), None),
            (("PASS", "PASS", "GRAY", "PASS", "GRAY"), None),
            (("GRAY", "PASS", "PASS", "GRAY", "GRAY"), None),
            (("PASS", "FAIL", "PASS", "PASS", "PASS"), Some(Drop::Virus)),
            (("PASS", "GRAY", "PASS", "PASS", "PASS"), Some(Drop::Virus)),
            (
                ("PASS", "PROCESSING_FAILED", "PASS", "PASS", "PASS"),
                Some(Drop::Virus),
            ),
            (
                ("PASS", "DISABLED", "PASS", "PASS", "PASS"),
                Some(Drop::Virus),
            ),
            (("FAIL", "PASS", "PASS", "PASS", "PASS"), Some(Drop::Spam)),
            (
                ("PASS", "PASS", "PASS", "FAIL", "PASS"),
                Some(Drop::AuthenticationFailed),
            ),
            (
                ("PASS", "PASS", "FAIL", "PASS", "PASS"),
                Some(Drop::AuthenticationFailed),
            ),
            (
                ("PASS", "PASS", "PASS", "PASS", "FAIL"),
                Some(Drop::AuthenticationFailed),
            ),
            (
                ("PASS", "PASS", "GRAY", "GRAY", "GRAY"),
                Some(Drop::Unauthenticated),
            ),
            (("pass", "pass", "pass", "pass", "pass"), None),
        ];
        for ((spam, virus, spf, dkim, dmarc), expected) in cases {
            assert_eq!(
                refusal(&receipt(spam, virus, spf, dkim, dmarc)),
                expected,
                "{spam} {virus} {spf} {dkim} {dmarc}"
            );
        }
    }

    #[test]
    fn only_the_authenticated_domain_may_be_the_sender() {
        let dkim_only = receipt("PASS", "PASS", "GRAY", "PASS", "GRAY");
        let signed = vec!["customer.example".to_owned()];
        assert!(sender_authenticated(
            &dkim_only,
            "b@bounce.other.example",
            "sam@customer.example",
            &signed
        ));
        assert!(sender_authenticated(
            &dkim_only,
            "",
            "sam@mail.customer.example",
            &signed
        ));
        assert!(!sender_authenticated(
            &dkim_only,
            "",
            "sam@victim.example",
            &signed
        ));
        assert!(!sender_authenticated(
            &dkim_only,
            "",
            "sam@notcustomer.example",
            &signed
        ));
        let spf_only = receipt("PASS", "PASS", "PASS", "GRAY", "GRAY");
        assert!(sender_authenticated(
            &spf_only,
            "sam@customer.example",
            "sam@customer.example",
            &[]
        ));
        assert!(!sender_authenticated(
            &spf_only,
            "x@attacker.example",
            "sam@customer.example",
            &[]
        ));
        let dmarc = receipt("PASS", "PASS", "GRAY", "GRAY", "PASS");
        // A second, bogus signature naming the customer's domain beside a valid one.
        let two = vec!["attacker.example".to_owned(), "customer.example".to_owned()];
        assert!(!sender_authenticated(
            &dkim_only,
            "",
            "sam@customer.example",
            &two
        ));
        // Bounces (empty envelope), bare names and trailing dots align with nothing.
        assert!(!sender_authenticated(
            &spf_only,
            "",
            "ceo@bigcustomer.com.",
            &[]
        ));
        assert!(!sender_authenticated(
            &spf_only,
            "x@bigcustomer.com",
            "ceo@bigcustomer.com.",
            &[]
        ));
        assert!(!sender_authenticated(&spf_only, "", "ceo", &[]));
        assert!(!aligned("", ""));
        assert!(sender_authenticated(
            &dmarc,
            "",
            "sam@customer.example",
            &[]
        ));
    }

    #[test]
    fn a_mail_has_one_idempotency_key_and_stable_upload_ids() {
        let a = idempotency_key(Some("<x@mail.gmail.com>"), "ses-1", "sam@customer.example");
        assert_eq!(
            a,
            idempotency_key(
                Some(" <x@mail.gmail.com> "),
                "ses-2",
                "sam@customer.example"
            )
        );
        assert_ne!(
            a,
            idempotency_key(Some("<y@mail.gmail.com>"), "ses-1", "sam@customer.example")
        );
        assert_ne!(
            a,
            idempotency_key(Some("<x@mail.gmail.com>"), "ses-1", "eve@attacker.example"),
            "another sender's mail under the same Message-ID is another mail"
        );
        assert!(chat_core::commands::messages::idempotency_key("k", &a).is_ok());
        assert_eq!(upload_id(&a, 0), upload_id(&a, 0));
        assert_ne!(upload_id(&a, 0), upload_id(&a, 1));
        assert!(Ulid::parse(upload_id(&a, 3).as_str()).is_ok());
    }

    #[test]
    fn the_stacks_own_mail_is_a_loop() {
        let email = EmailSettings {
            from: "notifications@chat.example".into(),
            link_base: "https://api.example".into(),
            link_secret: "a-test-key-of-thirty-two-bytes!!".into(),
            ses_endpoint: None,
            inbound_domain: Some("reply.chat.example".into()),
        };
        assert!(is_own_mail(&email, "notifications@chat.example"));
        assert!(is_own_mail(&email, "acme-support@reply.chat.example"));
        assert!(is_own_mail(&email, "x@deep.reply.chat.example"));
        assert!(!is_own_mail(&email, "sam@customer.example"));
        assert!(!is_own_mail(&email, "sam@notreply.chat.example"));
    }

    #[test]
    fn automatic_replies_are_known() {
        let parse = |raw: &'static [u8]| MessageParser::default().parse(raw).unwrap();
        assert!(is_automatic(&parse(include_bytes!(
            "../fixtures/mail/out-of-office.eml"
        ))));
        assert!(!is_automatic(&parse(include_bytes!(
            "../fixtures/mail/gmail.eml"
        ))));
    }

    #[test]
    fn the_ses_receipt_event_reads() {
        let raw = include_str!("../../../events/ses-inbound-email.json");
        let event: SesEvent = serde_json::from_str(raw).expect("the events/ fixture");
        let ses = &event.records[0].ses;
        assert_eq!(refusal(&ses.receipt), None);
        assert!(!ses.mail.message_id.is_empty());
    }
}
