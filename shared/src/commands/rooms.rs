//! Bodies and commands of the rooms, catalogue and profile routes.

use crate::error::{ApiError, ApiResult};
use crate::ids::UserId;
use crate::model::{RoomStatus, RoomType};
use crate::request::required_text;
use crate::store::SharedChanges;
use serde::Deserialize;
use serde_json::Value;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DETAIL_CHARS: usize = 2000;
pub const MAX_METADATA_BYTES: usize = 2048;

/// Order, vendor and product ids: the same rules as user ids (no key separator).
pub fn external_id(field: &str, raw: &str) -> ApiResult<String> {
    UserId::parse(raw)
        .map(|id| id.to_string())
        .map_err(|e| ApiError::invalid(field, e.replace("user id", field)))
}

pub(crate) fn optional_text(
    field: &str,
    value: Option<&str>,
    max_chars: usize,
) -> ApiResult<Option<String>> {
    value
        .map(|v| required_text(field, v, max_chars))
        .transpose()
}

/// POST /rooms.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRoom {
    #[serde(rename = "type")]
    pub room_type: RoomType,
    pub name: Option<String>,
    pub detail: Option<String>,
    pub product: Option<String>,
    pub order_id: Option<UserId>,
    pub vendor_id: Option<UserId>,
    /// An order chat's customer (the seed API's `order_user_id`): staff name it; a
    /// customer is always their own order chat's customer.
    #[serde(alias = "order_user_id")]
    pub customer_id: Option<UserId>,
    pub agent_id: Option<UserId>,
    #[serde(default)]
    pub participant_ids: Vec<UserId>,
    pub metadata: Option<serde_json::Map<String, Value>>,
}

/// A valid room to start, before the caller joins it (as its owner).
#[derive(Debug, Clone, PartialEq)]
pub struct RoomDraft {
    pub room_type: RoomType,
    /// Given, or derived from the order for order chats.
    pub name: String,
    pub detail: Option<String>,
    pub product: Option<String>,
    pub order_id: Option<String>,
    pub vendor_id: Option<String>,
    pub customer_id: Option<UserId>,
    pub agent_id: Option<String>,
    pub participant_ids: Vec<UserId>,
    /// Compact JSON, at most [`MAX_METADATA_BYTES`].
    pub metadata: Option<String>,
}

impl TryFrom<StartRoom> for RoomDraft {
    type Error = ApiError;

    fn try_from(body: StartRoom) -> ApiResult<RoomDraft> {
        let room_type = body.room_type;
        let order_id = body.order_id.as_ref().map(ToString::to_string);
        let vendor_id = body.vendor_id.as_ref().map(ToString::to_string);
        order_fields(room_type, order_id.as_deref(), vendor_id.as_deref())?;
        if body.customer_id.is_some() && order_id.is_none() {
            return Err(ApiError::invalid(
                "customer_id",
                "goes with agent_to_user and vendor_to_user chats",
            ));
        }
        let name = match &body.name {
            Some(name) => required_text("name", name, MAX_NAME_CHARS)?,
            None if room_type == RoomType::Group => {
                return Err(ApiError::invalid("name", "is required for a group"));
            }
            None => match (&order_id, &vendor_id) {
                (Some(order), Some(vendor)) => format!("Order {order} / vendor {vendor}"),
                (Some(order), None) => format!("Order {order}"),
                _ => format!("{} chat", room_type.as_str().replace('_', " ")),
            },
        };
        let metadata = body.metadata.map(|map| Value::Object(map).to_string());
        if metadata
            .as_ref()
            .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
        {
            return Err(ApiError::invalid(
                "metadata",
                format!("must be at most {MAX_METADATA_BYTES} bytes of JSON"),
            ));
        }
        Ok(RoomDraft {
            room_type,
            name,
            detail: optional_text("detail", body.detail.as_deref(), MAX_DETAIL_CHARS)?,
            product: body
                .product
                .as_deref()
                .map(|p| external_id("product", p))
                .transpose()?,
            order_id,
            vendor_id,
            customer_id: body.customer_id,
            agent_id: body.agent_id.as_ref().map(ToString::to_string),
            participant_ids: body.participant_ids,
            metadata,
        })
    }
}

/// Order chats name their order (and vendor chats their vendor); other rooms none.
fn order_fields(
    room_type: RoomType,
    order_id: Option<&str>,
    vendor_id: Option<&str>,
) -> ApiResult<()> {
    let order_chat = matches!(room_type, RoomType::AgentToUser | RoomType::VendorToUser);
    if order_chat && order_id.is_none() {
        return Err(ApiError::invalid(
            "order_id",
            "is required for an order chat",
        ));
    }
    if room_type == RoomType::VendorToUser && vendor_id.is_none() {
        return Err(ApiError::invalid(
            "vendor_id",
            "is required for a vendor_to_user chat",
        ));
    }
    if !order_chat && (order_id.is_some() || vendor_id.is_some()) {
        return Err(ApiError::invalid(
            "order_id",
            "goes with agent_to_user and vendor_to_user chats",
        ));
    }
    Ok(())
}

/// PATCH /rooms/{room_id}.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoom {
    pub name: Option<String>,
    pub detail: Option<String>,
    pub status: Option<String>,
}

impl TryFrom<UpdateRoom> for SharedChanges {
    type Error = ApiError;

    fn try_from(body: UpdateRoom) -> ApiResult<SharedChanges> {
        let mut changes = SharedChanges {
            title: optional_text("name", body.name.as_deref(), MAX_NAME_CHARS)?,
            detail: optional_text("detail", body.detail.as_deref(), MAX_DETAIL_CHARS)?,
            ..SharedChanges::default()
        };
        if let Some(status) = &body.status {
            // A snooze needs its end, which only the conversation's PUT takes.
            let status = RoomStatus::parse("status", status)
                .ok()
                .filter(|s| *s != RoomStatus::Snoozed)
                .ok_or_else(|| {
                    ApiError::invalid("status", "must be one of open, pending, resolved, closed")
                })?;
            changes.status = Some(status);
            changes.snoozed_until = Some(None);
        }
        if changes.is_empty() {
            return Err(ApiError::invalid("body", "nothing to update"));
        }
        Ok(changes)
    }
}

/// POST /rooms/{room_id}/members.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub user_id: Option<UserId>,
    /// Several at once (at most [`crate::store::MAX_ADD_MEMBERS`]).
    #[serde(default)]
    pub user_ids: Vec<UserId>,
}

/// Who to add: `user_id`, or `user_ids` (1 to 100), not both.
pub struct NewMembers(pub Vec<UserId>);

impl TryFrom<AddMember> for NewMembers {
    type Error = ApiError;

    fn try_from(body: AddMember) -> ApiResult<NewMembers> {
        let max = crate::store::MAX_ADD_MEMBERS;
        match (body.user_id, body.user_ids.len()) {
            (Some(user), 0) => Ok(NewMembers(vec![user])),
            (Some(_), _) => Err(ApiError::invalid(
                "user_ids",
                "send user_id or user_ids, not both",
            )),
            (None, 0) => Err(ApiError::invalid("user_id", "is required (or user_ids)")),
            (None, n) if n > max => Err(ApiError::invalid(
                "user_ids",
                format!("at most {max} users per call"),
            )),
            (None, _) => Ok(NewMembers(body.user_ids)),
        }
    }
}

/// POST /products.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    pub product_id: String,
    pub name: String,
    pub description: Option<String>,
}

impl TryFrom<NewProduct> for crate::store::Product {
    type Error = ApiError;

    fn try_from(body: NewProduct) -> ApiResult<crate::store::Product> {
        Ok(crate::store::Product {
            product_id: external_id("product_id", &body.product_id)?,
            name: required_text("name", &body.name, MAX_NAME_CHARS)?,
            description: optional_text(
                "description",
                body.description.as_deref(),
                MAX_DETAIL_CHARS,
            )?,
            created_at: crate::time::now_string(),
        })
    }
}

/// The longest a tenant's name may be (it heads every email sent for it).
pub const MAX_ORG_NAME_CHARS: usize = 100;

/// PUT /org/settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutOrgSettings {
    pub name: String,
    /// Mail to `{local_part}@{inbound domain}` starts a support conversation; absent
    /// or null: none does.
    #[serde(default)]
    pub email_inbox: Option<PutEmailInbox>,
}

/// `email_inbox` of PUT /org/settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutEmailInbox {
    pub local_part: String,
    /// Who the conversations it starts are assigned to.
    pub agent_id: UserId,
}

/// The tenant's settings as an admin gave them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OrgSettings {
    /// Shown to the tenant's users: the sender's name on notification emails.
    pub name: String,
    pub email_inbox: Option<EmailInbox>,
}

/// The tenant's address for new conversations by email (docs/email.md).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EmailInbox {
    /// Lower-case letters, digits and inner hyphens, unique in the stack.
    pub local_part: String,
    pub agent_id: String,
}

/// The shortest and longest inbox local part.
pub const EMAIL_INBOX_CHARS: (usize, usize) = (3, 40);
/// Local parts no tenant may take: mail roles (RFC 2142) and the reply addresses'.
pub const RESERVED_LOCAL_PARTS: &[&str] = &[
    "postmaster",
    "abuse",
    "hostmaster",
    "webmaster",
    "security",
    "mailer-daemon",
    "noreply",
    "no-reply",
    "bounce",
    "bounces",
];

impl TryFrom<PutEmailInbox> for EmailInbox {
    type Error = ApiError;

    fn try_from(body: PutEmailInbox) -> ApiResult<EmailInbox> {
        let local = body.local_part.as_str();
        let (min, max) = EMAIL_INBOX_CHARS;
        let shaped = (min..=max).contains(&local.len())
            && local
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !local.starts_with('-')
            && !local.ends_with('-');
        if !shaped {
            return Err(ApiError::invalid(
                "email_inbox.local_part",
                format!("{min} to {max} lower-case letters, digits and inner hyphens"),
            ));
        }
        if local.starts_with("reply") || RESERVED_LOCAL_PARTS.contains(&local) {
            return Err(ApiError::invalid(
                "email_inbox.local_part",
                "reserved: reply…, postmaster, abuse and the other mail roles",
            ));
        }
        Ok(EmailInbox {
            local_part: local.to_owned(),
            agent_id: body.agent_id.to_string(),
        })
    }
}

impl TryFrom<PutOrgSettings> for OrgSettings {
    type Error = ApiError;

    fn try_from(body: PutOrgSettings) -> ApiResult<OrgSettings> {
        let name = required_text("name", &body.name, MAX_ORG_NAME_CHARS)?;
        // It becomes an email's display name: no line breaks or quotes to escape from.
        // Nor invisible or direction-changing characters, which make a name look like
        // another's in a mail client.
        let invisible = |c: char| matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}');
        if name
            .chars()
            .any(|c| c.is_control() || invisible(c) || matches!(c, '"' | '<' | '>' | '\\'))
        {
            return Err(ApiError::invalid(
                "name",
                "may not contain control or invisible characters, quotes, backslashes or angle brackets",
            ));
        }
        let email_inbox = body.email_inbox.map(EmailInbox::try_from).transpose()?;
        Ok(OrgSettings { name, email_inbox })
    }
}

/// PUT /profiles/me.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutProfile {
    pub username: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub display_image: Option<String>,
}

/// The caller's profile as they gave it (the user id and time are the caller's).
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileFields {
    pub username: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub display_image: Option<String>,
}

impl TryFrom<PutProfile> for ProfileFields {
    type Error = ApiError;

    fn try_from(body: PutProfile) -> ApiResult<ProfileFields> {
        let username = optional_text("username", body.username.as_deref(), 100)?;
        let email = optional_text("email", body.email.as_deref(), 254)?;
        let is_email = |e: &String| {
            e.split_once('@')
                .is_some_and(|(a, d)| !a.is_empty() && d.contains('.') && !e.contains(' '))
        };
        if email.as_ref().is_some_and(|e| !is_email(e)) {
            return Err(ApiError::invalid("email", "must be an email address"));
        }
        let phone = optional_text("phone", body.phone.as_deref(), 32)?;
        let phone_chars = |p: &String| {
            p.chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        };
        if phone.as_ref().is_some_and(|p| !phone_chars(p)) {
            return Err(ApiError::invalid(
                "phone",
                "may contain digits, spaces and + - ( ) .",
            ));
        }
        let display_image = optional_text("display_image", body.display_image.as_deref(), 2048)?;
        let is_url = |u: &String| u.starts_with("https://") || u.starts_with("http://");
        if display_image.as_ref().is_some_and(|u| !is_url(u)) {
            return Err(ApiError::invalid("display_image", "must be an http(s) URL"));
        }
        Ok(ProfileFields {
            username,
            email,
            phone,
            display_image,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(json: serde_json::Value) -> ApiResult<RoomDraft> {
        let body: StartRoom =
            serde_json::from_value(json).map_err(|e| ApiError::Malformed(e.to_string()))?;
        RoomDraft::try_from(body)
    }

    #[test]
    fn an_order_chat_names_its_order_and_gets_a_name_from_it() {
        let draft = start(
            serde_json::json!({"type": "vendor_to_user", "order_id": "10", "vendor_id": "7"}),
        )
        .unwrap();
        assert_eq!(draft.name, "Order 10 / vendor 7");
        for (json, field) in [
            (serde_json::json!({"type": "agent_to_user"}), "order_id"),
            (
                serde_json::json!({"type": "vendor_to_user", "order_id": "10"}),
                "vendor_id",
            ),
            (
                serde_json::json!({"type": "group", "order_id": "10", "name": "x"}),
                "order_id",
            ),
            (serde_json::json!({"type": "group"}), "name"),
            (
                serde_json::json!({"type": "group", "name": "x", "customer_id": "u-1"}),
                "customer_id",
            ),
            (
                serde_json::json!({"type": "support", "order_user_id": "u-1"}),
                "customer_id",
            ),
            (
                serde_json::json!({"type": "support", "metadata": {"k": "x".repeat(MAX_METADATA_BYTES)}}),
                "metadata",
            ),
        ] {
            match start(json) {
                Err(ApiError::InvalidField { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_room_update_takes_no_snooze_and_needs_a_change() {
        let update =
            |json| SharedChanges::try_from(serde_json::from_value::<UpdateRoom>(json).unwrap());
        assert!(update(serde_json::json!({"status": "snoozed"})).is_err());
        assert!(update(serde_json::json!({})).is_err());
        let closed = update(serde_json::json!({"status": "closed"})).unwrap();
        assert_eq!(closed.status, Some(RoomStatus::Closed));
        assert_eq!(closed.snoozed_until, Some(None));
    }
}
