//! Canned responses (docs/support.md): answers the desk reuses, found by their short
//! code. Tenant-wide ones (`T#{org}#CANNED` / `C#{code}`, admins keep them) and each
//! agent's own (`T#{org}#USER#{user}` / `CANNED#{code}`), both bounded by a count in
//! the same transaction as a new one. A response may name variables
//! (`{{customer.name}}`…) that are filled from a conversation when it is used.

use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, UserId};
use crate::item::{Item, ItemBuilder, ItemExt, s};
use crate::keys;
use crate::model::Room;
use crate::store::{Profile, Store, WriteError};
use aws_sdk_dynamodb::types::Update;
use serde_json::{Value, json};

/// Tenant-wide responses a tenant may keep.
pub const MAX_TENANT_RESPONSES: usize = 500;
/// Responses an agent may keep for themselves.
pub const MAX_PERSONAL_RESPONSES: usize = 100;
/// The longest response.
pub const MAX_RESPONSE_CHARS: usize = 5000;

/// The variables a response may name, and what fills each.
pub const VARIABLES: [&str; 6] = [
    "customer.name",
    "customer.email",
    "customer.phone",
    "agent.name",
    "conversation.id",
    "conversation.title",
];

/// Whose a response is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Tenant,
    Personal(UserId),
}

impl Scope {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::Tenant => "tenant",
            Scope::Personal(_) => "personal",
        }
    }

    fn pk(&self, org: &OrgId) -> String {
        match self {
            Scope::Tenant => keys::canned_pk(org),
            Scope::Personal(user) => keys::user_pk(org, user),
        }
    }

    fn prefix(&self) -> &'static str {
        match self {
            Scope::Tenant => keys::CANNED_SK_PREFIX,
            Scope::Personal(_) => keys::PERSONAL_CANNED_SK_PREFIX,
        }
    }

    fn count_sk(&self) -> &'static str {
        match self {
            Scope::Tenant => keys::CANNED_COUNT_SK,
            Scope::Personal(_) => keys::PERSONAL_CANNED_COUNT_SK,
        }
    }

    fn max(&self) -> usize {
        match self {
            Scope::Tenant => MAX_TENANT_RESPONSES,
            Scope::Personal(_) => MAX_PERSONAL_RESPONSES,
        }
    }
}

/// One canned response.
#[derive(Debug, Clone, PartialEq)]
pub struct CannedResponse {
    pub short_code: String,
    pub content: String,
    pub scope: Scope,
    pub updated_by: String,
    pub updated_at: String,
}

impl CannedResponse {
    fn key(org: &OrgId, scope: &Scope, code: &str) -> (String, String) {
        (scope.pk(org), format!("{}{code}", scope.prefix()))
    }

    fn item(&self, org: &OrgId) -> Item {
        let (pk, sk) = Self::key(org, &self.scope, &self.short_code);
        ItemBuilder::new()
            .str(keys::PK, pk)
            .str(keys::SK, sk)
            .str(keys::ENTITY, keys::entity::CANNED_RESPONSE)
            .str("short_code", &self.short_code)
            .str("content", &self.content)
            .str("updated_by", &self.updated_by)
            .str("updated_at", &self.updated_at)
            .build()
    }

    fn from_item(item: &impl ItemExt, scope: &Scope) -> Option<CannedResponse> {
        if item.str(keys::ENTITY) != Some(keys::entity::CANNED_RESPONSE) {
            return None;
        }
        Some(CannedResponse {
            short_code: item.string("short_code")?,
            content: item.string("content")?,
            scope: scope.clone(),
            updated_by: item.string("updated_by").unwrap_or_default(),
            updated_at: item.string("updated_at").unwrap_or_default(),
        })
    }

    pub fn json(&self, rendered: Option<&Rendered>) -> Value {
        let mut out = json!({
            "short_code": self.short_code,
            "content": self.content,
            "scope": self.scope.as_str(),
            "updated_by": self.updated_by,
            "updated_at": self.updated_at,
        });
        if let Some(r) = rendered {
            out["rendered"] = json!(r.text);
            out["missing"] = json!(r.missing);
        }
        out
    }
}

/// The `{{…}}` names in `content`, in order (trimmed), or the first malformed one.
fn variables(content: &str) -> Result<Vec<&str>, String> {
    let mut found = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("an unclosed {{".into());
        };
        found.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    Ok(found)
}

/// A response's content, checked: not blank, at most [`MAX_RESPONSE_CHARS`], and every
/// `{{variable}}` one of [`VARIABLES`].
pub fn response_content(raw: &str) -> ApiResult<String> {
    let content = crate::request::required_text("content", raw, MAX_RESPONSE_CHARS)?;
    let names = variables(&content).map_err(|e| ApiError::invalid("content", e))?;
    if let Some(unknown) = names.iter().find(|n| !VARIABLES.contains(n)) {
        return Err(ApiError::invalid(
            "content",
            format!(
                "{{{{{unknown}}}}} is not a variable; use {}",
                VARIABLES.map(|v| format!("{{{{{v}}}}}")).join(", ")
            ),
        ));
    }
    Ok(content)
}

/// A response filled in for a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub text: String,
    /// Variables with nothing to fill them (left empty).
    pub missing: Vec<String>,
}

/// What fills the variables: the conversation, its customer's and the agent's profiles.
pub struct Context<'a> {
    pub room: &'a Room,
    pub customer: Option<&'a Profile>,
    pub agent: Option<&'a Profile>,
}

impl Context<'_> {
    fn value(&self, name: &str) -> Option<String> {
        match name {
            "customer.name" => self.customer.and_then(|p| p.username.clone()),
            "customer.email" => self.customer.and_then(|p| p.email.clone()),
            "customer.phone" => self.customer.and_then(|p| p.phone.clone()),
            "agent.name" => self.agent.and_then(|p| p.username.clone()),
            "conversation.id" => Some(self.room.id.to_string()),
            "conversation.title" => Some(self.room.title.clone()),
            _ => None,
        }
    }

    pub fn render(&self, content: &str) -> Rendered {
        let mut text = String::new();
        let mut missing = Vec::new();
        let mut rest = content;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else { break };
            text.push_str(&rest[..start]);
            let name = after[..end].trim();
            match self.value(name).filter(|v| !v.is_empty()) {
                Some(v) => text.push_str(&v),
                None if !missing.iter().any(|m| m == name) => missing.push(name.to_owned()),
                None => {}
            }
            rest = &after[end + 2..];
        }
        text.push_str(rest);
        Rendered { text, missing }
    }
}

/// A short code, checked: 1 to 32 lowercase letters, digits, `-` and `_`.
pub fn short_code(field: &str, raw: &str) -> ApiResult<String> {
    crate::request::slug(field, raw, 32)
}

impl Store {
    /// Creates or replaces a response: a new one is counted in (bounded) in the same
    /// transaction; one already there is replaced. Answers whether it was new.
    pub async fn put_canned(&self, org: &OrgId, response: &CannedResponse) -> ApiResult<bool> {
        let scope = &response.scope;
        let listed = self.list_canned(org, scope, "").await?.len();
        let count = (scope.pk(org), scope.count_sk().to_owned());
        let writes =
            super::counted_put(self.name(), count, scope.max(), listed, response.item(org));
        let created = self
            .put_counted(
                writes,
                "create canned response",
                || ApiError::Conflict {
                    code: "too_many_canned_responses",
                    message: format!("at most {} canned responses here", scope.max()),
                },
                || ApiError::Conflict {
                    code: "exists",
                    message: "exists".into(),
                },
            )
            .await;
        match created {
            Ok(()) => Ok(true),
            Err(ApiError::Conflict { code: "exists", .. }) => {
                let (pk, sk) = CannedResponse::key(org, scope, &response.short_code);
                let update = Update::builder()
                    .table_name(self.name())
                    .key(keys::PK, s(pk))
                    .key(keys::SK, s(sk))
                    .update_expression("SET content = :c, updated_by = :by, updated_at = :at")
                    .condition_expression("attribute_exists(PK)")
                    .expression_attribute_values(":c", s(&response.content))
                    .expression_attribute_values(":by", s(&response.updated_by))
                    .expression_attribute_values(":at", s(&response.updated_at))
                    .build()
                    .expect("update has key and expression");
                match self
                    .table
                    .update(update, None, "replace canned response")
                    .await
                {
                    Ok(_) => Ok(false),
                    // Deleted meanwhile: the caller puts it again.
                    Err(WriteError::ConditionFailed(_)) => Err(ApiError::Conflict {
                        code: "concurrent_change",
                        message: "the response changed meanwhile; put it again".into(),
                    }),
                    Err(WriteError::Api(err)) => Err(err),
                }
            }
            Err(err) => Err(err),
        }
    }

    pub async fn delete_canned(&self, org: &OrgId, scope: &Scope, code: &str) -> ApiResult<()> {
        self.delete_counted(
            CannedResponse::key(org, scope, code),
            (scope.pk(org), scope.count_sk().to_owned()),
            Vec::new(),
            "delete canned response",
            ApiError::NotFound("canned response"),
        )
        .await
    }

    /// A scope's responses whose short code starts with `prefix`, by short code.
    pub async fn list_canned(
        &self,
        org: &OrgId,
        scope: &Scope,
        prefix: &str,
    ) -> ApiResult<Vec<CannedResponse>> {
        let items = self
            .table
            .query_all("list canned responses", |query| {
                query
                    .key_condition_expression("PK = :pk AND begins_with(SK, :p)")
                    .expression_attribute_values(":pk", s(scope.pk(org)))
                    .expression_attribute_values(":p", s(format!("{}{prefix}", scope.prefix())))
            })
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| CannedResponse::from_item(i, scope))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_names_only_known_variables() {
        assert!(response_content("Hi {{customer.name}}, I am {{ agent.name }}.").is_ok());
        for bad in [
            "Hi {{customer.nmae}}",
            "Hi {{Customer.Name}}",
            "Hi {{customer.name}",
            "Hi {{}}",
            "   ",
        ] {
            assert!(response_content(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_response_is_filled_from_the_conversation_and_says_what_was_missing() {
        let room = crate::model::tests::room();
        let customer = Profile {
            user_id: "u-1".into(),
            username: Some("Ada".into()),
            email: None,
            phone: None,
            display_image: None,
            updated_at: None,
        };
        let context = Context {
            room: &room,
            customer: Some(&customer),
            agent: None,
        };
        let r = context.render("Hi {{customer.name}} ({{customer.email}}), re {{conversation.title}} — {{ agent.name }}{{agent.name}}");
        assert_eq!(r.text, "Hi Ada (), re Help — ");
        assert_eq!(r.missing, ["customer.email", "agent.name"]);
    }

    #[test]
    fn a_short_code_has_one_spelling() {
        assert!(short_code("short_code", "thanks-2").is_ok());
        for bad in ["", "Thanks", "th anks", "/thanks", &"x".repeat(33), "ünï"] {
            assert!(short_code("short_code", bad).is_err(), "{bad:?}");
        }
    }
}
