//! The audit log: who did what, when, from which request. Every administrative or
//! destructive route is classified here ([`ROUTES`]); the HTTP edge
//! ([`crate::app::serve`]) opens an entry for an audited request, and the table layer
//! adds it to the request's first successful write — the action's own transaction —
//! so an action is never without its entry and an entry never without its action.
//! Entries live in the tenant's audit partition, which no route writes and no route
//! changes: they are immutable to the API; DynamoDB's TTL removes them after a year,
//! and an erasure replaces the erased person's id in them by its reference.

use crate::auth::Principal;
use crate::ids::OrgId;
use crate::item::{Item, ItemBuilder, ItemExt as _, s};
use crate::keys;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// What a writing route is to the audit log.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Recorded, under this action name.
    Audited(&'static str),
    /// Recorded under this action name when the request is one (by the caller, its
    /// path ids and its body); otherwise it is the caller's own business.
    AuditedIf(&'static str, When),
    /// Not recorded, and why.
    Exempt(&'static str),
}

/// Which requests of a route are recorded.
pub type When = fn(&Principal, &BTreeMap<String, String>, &[u8]) -> bool;

impl Kind {
    /// The action name, if the route records any of its requests.
    pub fn action(self) -> Option<&'static str> {
        match self {
            Audited(action) | AuditedIf(action, _) => Some(action),
            Exempt(_) => None,
        }
    }
}

use Kind::{Audited, AuditedIf, Exempt};

/// A change of what every member sees (title, status, assignee), not only the
/// caller's own view (pin, archive): a body that does not parse is recorded too.
fn shared_conversation_change(_: &Principal, _: &BTreeMap<String, String>, body: &[u8]) -> bool {
    serde_json::from_slice::<crate::commands::conversations::UpdateConversation>(body)
        .map(|body| !body.actions().is_empty())
        .unwrap_or(true)
}

/// Someone else removed, not the caller leaving.
fn someone_else(who: &Principal, target: &BTreeMap<String, String>, _: &[u8]) -> bool {
    target.get("user_id").map(String::as_str) != Some(who.user.as_str())
}

const OWN: &str = "the caller's own data or preferences";
const CONTENT: &str = "a member's ordinary participation (in the room's feed)";
const DESK: &str = "the desk's ordinary work on a conversation (in the room's feed, to staff)";

/// Every route that is not a GET, classified. A route missing here fails the route
/// tests (tools/devserver/tests/routes.rs) until it is classified.
pub const ROUTES: &[(&str, Kind)] = &[
    ("POST /rooms", Exempt(CONTENT)),
    ("PATCH /rooms/{room_id}", Audited("room.update")),
    ("DELETE /rooms/{room_id}", Audited("room.delete")),
    ("POST /rooms/{room_id}/members", Audited("member.add")),
    (
        "DELETE /rooms/{room_id}/members/{user_id}",
        AuditedIf("member.remove", someone_else),
    ),
    ("POST /products", Audited("product.create")),
    ("PUT /profiles/me", Exempt(OWN)),
    ("POST /realtime/tickets", Exempt(OWN)),
    ("PUT /me/notification-settings", Exempt(OWN)),
    ("PUT /rooms/{room_id}/notifications", Exempt(OWN)),
    ("POST /me/push-subscriptions", Exempt(OWN)),
    (
        "DELETE /me/push-subscriptions/{subscription_id}",
        Exempt(OWN),
    ),
    ("POST /me/devices", Exempt(OWN)),
    ("DELETE /me/devices/{device_id}", Exempt(OWN)),
    ("PUT /org/settings", Audited("org_settings.update")),
    ("POST /chat/conversations", Exempt(CONTENT)),
    (
        "PUT /chat/conversations/{conversation_id}",
        AuditedIf("conversation.update", shared_conversation_change),
    ),
    (
        "DELETE /chat/conversations/{conversation_id}",
        Audited("conversation.delete"),
    ),
    ("POST /rooms/{room_id}/messages", Exempt(CONTENT)),
    (
        "PATCH /rooms/{room_id}/messages/{message_id}",
        Exempt("a sender's edit of their own message (in the room's feed)"),
    ),
    (
        "DELETE /rooms/{room_id}/messages/{message_id}",
        Audited("message.delete"),
    ),
    ("POST /rooms/{room_id}/read", Exempt(OWN)),
    (
        "POST /chat/conversations/{conversation_id}/messages",
        Exempt(CONTENT),
    ),
    (
        "PATCH /chat/conversations/{conversation_id}/messages/{message_id}",
        Exempt("a sender's edit of their own message (in the room's feed)"),
    ),
    (
        "DELETE /chat/conversations/{conversation_id}/messages/{message_id}",
        Audited("message.delete"),
    ),
    (
        "POST /chat/conversations/{conversation_id}/read",
        Exempt(OWN),
    ),
    (
        "POST /chat/conversations/{conversation_id}/ai-response",
        Exempt(CONTENT),
    ),
    (
        "POST /chat/conversations/{conversation_id}/rating",
        Exempt(CONTENT),
    ),
    ("POST /rooms/{room_id}/uploads", Exempt(CONTENT)),
    (
        "POST /chat/conversations/{conversation_id}/uploads",
        Exempt(CONTENT),
    ),
    ("POST /teams", Audited("team.create")),
    ("PATCH /teams/{team_id}", Audited("team.update")),
    ("DELETE /teams/{team_id}", Audited("team.delete")),
    (
        "PUT /teams/{team_id}/agents/{user_id}",
        Audited("team.agent_put"),
    ),
    (
        "DELETE /teams/{team_id}/agents/{user_id}",
        Audited("team.agent_remove"),
    ),
    ("PUT /agents/me/availability", Exempt(OWN)),
    ("POST /labels", Audited("label.create")),
    (
        "PUT /canned-responses/{short_code}",
        Audited("canned_response.put"),
    ),
    (
        "DELETE /canned-responses/{short_code}",
        Audited("canned_response.delete"),
    ),
    ("PUT /me/canned-responses/{short_code}", Exempt(OWN)),
    ("DELETE /me/canned-responses/{short_code}", Exempt(OWN)),
    ("PUT /routing-rules", Audited("routing_rules.put")),
    ("PATCH /labels/{label_name}", Audited("label.update")),
    ("DELETE /labels/{label_name}", Audited("label.delete")),
    (
        "POST /chat/conversations/{conversation_id}/labels",
        Exempt(DESK),
    ),
    (
        "DELETE /chat/conversations/{conversation_id}/labels/{label_name}",
        Exempt(DESK),
    ),
    ("POST /webhooks", Audited("webhook.create")),
    ("PATCH /webhooks/{webhook_id}", Audited("webhook.update")),
    ("DELETE /webhooks/{webhook_id}", Audited("webhook.delete")),
    (
        "POST /webhooks/{webhook_id}/rotate-secret",
        Audited("webhook.rotate_secret"),
    ),
    (
        "POST /webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
        Audited("webhook.retry"),
    ),
    (
        "POST /webhooks/{webhook_id}/replay",
        Audited("webhook.replay"),
    ),
    ("POST /admin/users/{user_id}/export", Audited("user.export")),
    ("POST /me/export", Audited("user.export")),
    ("POST /admin/users/{user_id}/erase", Audited("user.erase")),
    ("PUT /admin/settings/retention", Audited("retention.update")),
    (
        "POST /email/unsubscribe",
        Exempt("a recipient's own choice, by a signed link"),
    ),
    // The rating route's, by the customer's signed link.
    ("POST /email/rating", Exempt(CONTENT)),
];

/// How `route` is classified; `None` for a route missing from [`ROUTES`].
pub fn classify(route: &str) -> Option<Kind> {
    ROUTES
        .iter()
        .find(|(key, _)| *key == route)
        .map(|(_, k)| *k)
}

/// The action names an entry may carry (the `action` filter's values).
pub fn actions() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = ROUTES.iter().filter_map(|(_, k)| k.action()).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// One audit entry, as stored and as `GET /admin/audit` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub org: OrgId,
    pub at: String,
    pub actor: String,
    pub actor_role: String,
    pub action: String,
    pub route: String,
    /// The ids the request named (its path parameters).
    pub target: BTreeMap<String, String>,
    /// The names of the body's top-level fields (what was changed); never their
    /// values, which may be secrets or personal data.
    pub fields: Vec<String>,
    pub request_id: String,
}

impl Entry {
    /// The entry for an audited route's request, or `None` for any other.
    pub fn for_request(
        route: &str,
        who: &Principal,
        request_id: &str,
        target: BTreeMap<String, String>,
        body: &[u8],
    ) -> Option<Entry> {
        let action = match classify(route)? {
            Audited(action) => action,
            AuditedIf(action, when) if when(who, &target, body) => action,
            AuditedIf(..) | Exempt(_) => return None,
        };
        let mut fields: Vec<String> = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
            .unwrap_or_default();
        fields.sort_unstable();
        fields.truncate(MAX_FIELDS);
        Some(Entry {
            org: who.org.clone(),
            at: crate::time::now_string(),
            actor: who.user.to_string(),
            actor_role: who.role.as_str().to_owned(),
            action: action.to_owned(),
            route: route.to_owned(),
            target,
            fields,
            request_id: if request_id.is_empty() {
                crate::ids::Ulid::generate().as_str().to_owned()
            } else {
                request_id.to_owned()
            },
        })
    }

    pub fn item(&self) -> Item {
        let target = self.target.iter().map(|(k, v)| (k.clone(), s(v))).collect();
        let mut item = ItemBuilder::new()
            .str(keys::PK, keys::audit_pk(&self.org))
            .str(keys::SK, keys::audit_sk(&self.at, &self.request_id))
            .str(keys::ENTITY, keys::entity::AUDIT)
            .str("at", &self.at)
            .str("actor", &self.actor)
            .str("actor_role", &self.actor_role)
            .str("action", &self.action)
            .str("route", &self.route)
            .str("request_id", &self.request_id)
            .num(keys::TTL, self.expires_at())
            .build();
        // No empty map or list: DynamoDB Local's stream cannot be read past one.
        if !self.target.is_empty() {
            item.insert("target".into(), AttributeValue::M(target));
        }
        if !self.fields.is_empty() {
            item.insert(
                "fields".into(),
                AttributeValue::L(self.fields.iter().map(s).collect()),
            );
        }
        item
    }

    /// When DynamoDB's TTL removes the entry: [`AUDIT_RETENTION_DAYS`] after it.
    fn expires_at(&self) -> i64 {
        let at = crate::time::parse(&self.at).unwrap_or_else(crate::time::now);
        at.unix_timestamp() + AUDIT_RETENTION_DAYS * 24 * 3600
    }

    pub fn from_item(org: &OrgId, item: &Item) -> Option<Entry> {
        let target = match item.get("target") {
            Some(AttributeValue::M(m)) => m
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_s().ok()?.clone())))
                .collect(),
            _ => BTreeMap::new(),
        };
        let fields = match item.get("fields") {
            Some(AttributeValue::L(l)) => l.iter().filter_map(|v| v.as_s().ok().cloned()).collect(),
            _ => Vec::new(),
        };
        Some(Entry {
            org: org.clone(),
            at: item.string("at")?,
            actor: item.string("actor")?,
            actor_role: item.string("actor_role")?,
            action: item.string("action")?,
            route: item.string("route")?,
            target,
            fields,
            request_id: item.string("request_id")?,
        })
    }

    pub fn json(&self) -> Value {
        json!({
            "id": keys::audit_sk(&self.at, &self.request_id).trim_start_matches(keys::AUDIT_SK_PREFIX),
            "at": self.at,
            "actor": {"user_id": self.actor, "role": self.actor_role},
            "action": self.action,
            "route": self.route,
            "target": self.target,
            "fields": self.fields,
            "request_id": self.request_id,
        })
    }

    /// The entry as one more write of a transaction: new, never overwriting.
    pub fn write(&self, table: &str) -> TransactWriteItem {
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(self.item()))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .expect("put has table and item");
        TransactWriteItem::builder().put(put).build()
    }
}

/// How long an entry is kept (DynamoDB's TTL removes it after that).
pub const AUDIT_RETENTION_DAYS: i64 = 365;

/// Field names kept per entry.
const MAX_FIELDS: usize = 20;

tokio::task_local! {
    /// The entry of the request being served, until a write carries it.
    static PENDING: RefCell<Option<Entry>>;
}

/// Runs `work` (one request's handler) with `entry` waiting for its first write.
pub async fn recording<F: std::future::Future>(entry: Option<Entry>, work: F) -> F::Output {
    PENDING.scope(RefCell::new(entry), work).await
}

/// The pending entry's write, if the request has one that no write has carried yet.
pub(crate) fn pending_write(table: &str) -> Option<TransactWriteItem> {
    PENDING
        .try_with(|pending| pending.borrow().as_ref().map(|e| e.write(table)))
        .ok()
        .flatten()
}

/// A write carrying the pending entry succeeded: the entry is recorded.
pub(crate) fn recorded() {
    let _ = PENDING.try_with(|pending| pending.borrow_mut().take());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Role, UserId};

    fn admin() -> Principal {
        Principal {
            user: UserId::parse("a-9").unwrap(),
            org: OrgId::parse("acme").unwrap(),
            role: Role::Admin,
        }
    }

    #[test]
    fn every_route_is_classified_once() {
        let mut keys: Vec<&str> = ROUTES.iter().map(|(k, _)| *k).collect();
        let all = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), all, "a route is classified twice");
        assert!(ROUTES.iter().all(|(k, _)| !k.starts_with("GET ")));
    }

    #[test]
    fn an_audited_request_names_its_target_and_fields_never_values() {
        let target = BTreeMap::from([("webhook_id".to_owned(), "wh_1".to_owned())]);
        let body = br#"{"url": "https://example.com/hook", "secret": "whsec_x"}"#;
        let entry = Entry::for_request(
            "PATCH /webhooks/{webhook_id}",
            &admin(),
            "req-1",
            target,
            body,
        )
        .expect("audited");
        assert_eq!(entry.action, "webhook.update");
        assert_eq!(entry.fields, ["secret", "url"]);
        let item = entry.item();
        let stored = format!("{item:?}");
        assert!(!stored.contains("whsec_x") && !stored.contains("example.com"));
        let kept = item[keys::TTL].as_n().unwrap().parse::<i64>().unwrap()
            - crate::time::parse(&entry.at).unwrap().unix_timestamp();
        assert_eq!(kept, 365 * 24 * 3600, "kept a year");
        assert_eq!(Entry::from_item(&entry.org, &item), Some(entry.clone()));
        assert_eq!(entry.json()["actor"]["role"], "admin");
    }

    #[test]
    fn exempt_and_unknown_routes_open_no_entry() {
        for route in ["PUT /profiles/me", "GET /rooms", "POST /nowhere"] {
            assert!(Entry::for_request(route, &admin(), "r", BTreeMap::new(), b"{}").is_none());
        }
    }

    #[test]
    fn own_views_and_leaving_are_the_callers_business() {
        let customer = Principal {
            role: Role::Customer,
            user: UserId::parse("u-100").unwrap(),
            ..admin()
        };
        let conversation = "PUT /chat/conversations/{conversation_id}";
        let member = "DELETE /rooms/{room_id}/members/{user_id}";
        let room = BTreeMap::from([("conversation_id".to_owned(), "r".to_owned())]);
        let recorded = |route: &str, target: &BTreeMap<String, String>, body: &[u8]| {
            Entry::for_request(route, &customer, "r", target.clone(), body).map(|e| e.action)
        };
        assert_eq!(
            recorded(conversation, &room, br#"{"is_pinned": true}"#),
            None
        );
        assert_eq!(
            recorded(conversation, &room, br#"{"is_archived": false}"#),
            None
        );
        for body in [
            r#"{"title": "x", "is_pinned": true}"#,
            r#"{"assignee_id": null}"#,
            r#"{"status": "closed"}"#,
            "not json",
        ] {
            assert_eq!(
                recorded(conversation, &room, body.as_bytes()).as_deref(),
                Some("conversation.update"),
                "{body}"
            );
        }
        let leaving = BTreeMap::from([("user_id".to_owned(), "u-100".to_owned())]);
        let removing = BTreeMap::from([("user_id".to_owned(), "u-200".to_owned())]);
        assert_eq!(recorded(member, &leaving, b""), None);
        assert_eq!(
            recorded(member, &removing, b"").as_deref(),
            Some("member.remove")
        );
    }

    #[tokio::test]
    async fn the_first_successful_write_carries_the_entry_and_no_other() {
        let entry = Entry::for_request(
            "DELETE /rooms/{room_id}",
            &admin(),
            "req-2",
            BTreeMap::new(),
            b"",
        );
        recording(entry, async {
            assert!(pending_write("t").is_some());
            // A write that failed carried nothing: the next one carries it again.
            assert!(pending_write("t").is_some());
            recorded();
            assert!(pending_write("t").is_none());
        })
        .await;
        assert!(pending_write("t").is_none(), "outside a request: nothing");
    }
}
