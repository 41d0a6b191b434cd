//! Bodies and commands of the conversations routes.

use super::present;
use crate::error::{ApiError, ApiResult};
use crate::ids::UserId;
use crate::model::RoomStatus;
use crate::request::required_text;
use crate::store::{MemberView, SharedChanges};
use serde::Deserialize;

pub const MAX_TITLE_CHARS: usize = 200;

/// POST /chat/conversations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateConversation {
    pub title: String,
    pub agent_id: Option<UserId>,
    pub conversation_type: Option<String>,
    /// The support team it is routed to: without `agent_id`, one of its agents with
    /// room takes it, or it waits in the team's queue.
    pub team_id: Option<String>,
}

/// A support conversation to start with the caller and an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConversation {
    pub title: String,
    pub agent_id: Option<UserId>,
    /// A free label (`chat` by default): lowercase letters and `_`.
    pub conversation_type: String,
    pub team_id: Option<crate::ids::TeamId>,
}

impl TryFrom<CreateConversation> for NewConversation {
    type Error = ApiError;

    fn try_from(body: CreateConversation) -> ApiResult<NewConversation> {
        let conversation_type = body.conversation_type.unwrap_or_else(|| "chat".into());
        let ok = !conversation_type.is_empty()
            && conversation_type.len() <= 32
            && conversation_type
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_');
        if !ok {
            return Err(ApiError::invalid(
                "conversation_type",
                "must be 1 to 32 lowercase letters or _",
            ));
        }
        Ok(NewConversation {
            title: required_text("title", &body.title, MAX_TITLE_CHARS)?,
            agent_id: body.agent_id,
            conversation_type,
            team_id: body
                .team_id
                .as_deref()
                .map(|t| super::teams::team_id("team_id", t))
                .transpose()?,
        })
    }
}

/// POST /chat/conversations/{id}/rating.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConversation {
    /// 1 (poor) to 5 (great).
    pub rating: serde_json::Value,
    pub comment: Option<String>,
}

/// The longest rating comment.
pub const MAX_RATING_COMMENT_CHARS: usize = 1000;

/// A rating, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRating {
    pub score: u8,
    pub comment: Option<String>,
}

impl TryFrom<RateConversation> for NewRating {
    type Error = ApiError;

    fn try_from(body: RateConversation) -> ApiResult<NewRating> {
        // A JSON integer from 1 to 5: not "5", 4.5, 5.0 or true.
        let score = body
            .rating
            .as_u64()
            .filter(|r| (1..=5).contains(r))
            .ok_or_else(|| ApiError::invalid("rating", "must be a whole number from 1 to 5"))?;
        let comment = body
            .comment
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| match c.chars().count() > MAX_RATING_COMMENT_CHARS {
                true => Err(ApiError::invalid(
                    "comment",
                    format!("at most {MAX_RATING_COMMENT_CHARS} characters"),
                )),
                false => Ok(c.to_owned()),
            })
            .transpose()?;
        Ok(NewRating {
            score: score as u8,
            comment,
        })
    }
}

/// POST /email/rating: the rating page's form (`application/x-www-form-urlencoded`),
/// whose fields are text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingForm {
    pub rating: Option<String>,
    pub comment: Option<String>,
}

impl TryFrom<RatingForm> for NewRating {
    type Error = ApiError;

    fn try_from(form: RatingForm) -> ApiResult<NewRating> {
        // One spelling of each score ("1" to "5"; not "05", "+5" or "5.0"); anything
        // else goes on as text, which the API's rule refuses with its own message.
        let rating = match form.rating.as_deref() {
            Some(digit @ ("1" | "2" | "3" | "4" | "5")) => {
                serde_json::Value::from(digit.parse::<u64>().expect("a digit"))
            }
            other => serde_json::Value::from(other),
        };
        NewRating::try_from(RateConversation {
            rating,
            comment: form.comment,
        })
    }
}

/// PUT /chat/conversations/{id}.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConversation {
    pub title: Option<String>,
    pub is_pinned: Option<bool>,
    pub is_archived: Option<bool>,
    pub status: Option<String>,
    /// RFC 3339; required with `status: snoozed`, `null` clears it.
    #[serde(default, deserialize_with = "present")]
    pub snoozed_until: Option<Option<String>>,
    /// A user id, or `null` to unassign.
    #[serde(default, deserialize_with = "present")]
    pub assignee_id: Option<Option<UserId>>,
}

impl UpdateConversation {
    /// The actions this body asks for beyond the caller's own view (each needs its
    /// right, decided before the values are checked).
    pub fn actions(&self) -> Vec<crate::policy::Action> {
        let mut actions = Vec::new();
        if self.title.is_some() || self.status.is_some() || self.snoozed_until.is_some() {
            actions.push(crate::policy::Action::ChangeRoom);
        }
        if self.assignee_id.is_some() {
            actions.push(crate::policy::Action::Assign);
        }
        actions
    }
}

/// What a PUT changes: fields every member sees, and the caller's own view.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationUpdate {
    pub shared: SharedChanges,
    pub view: MemberView,
}

impl TryFrom<UpdateConversation> for ConversationUpdate {
    type Error = ApiError;

    fn try_from(body: UpdateConversation) -> ApiResult<ConversationUpdate> {
        let view = MemberView {
            is_pinned: body.is_pinned,
            is_archived: body.is_archived,
            muted_until: None,
        };
        let mut shared = SharedChanges {
            title: body
                .title
                .as_deref()
                .map(|t| required_text("title", t, MAX_TITLE_CHARS))
                .transpose()?,
            ..SharedChanges::default()
        };
        let status = body
            .status
            .as_deref()
            .map(|s| RoomStatus::parse("status", s))
            .transpose()?;
        shared.status = status;
        shared.snoozed_until = snooze(status, body.snoozed_until)?;
        if let Some(assignee) = &body.assignee_id {
            shared.assignee_id = Some(assignee.as_ref().map(ToString::to_string));
        }
        if shared.is_empty() && view.is_empty() {
            return Err(ApiError::invalid("body", "nothing to update"));
        }
        Ok(ConversationUpdate { shared, view })
    }
}

/// The snooze's end a status change writes: required with `snoozed` (and in the
/// future), refused without it, and cleared by any other status.
fn snooze(
    status: Option<RoomStatus>,
    until: Option<Option<String>>,
) -> ApiResult<Option<Option<String>>> {
    match (until, status) {
        (Some(Some(until)), Some(RoomStatus::Snoozed)) => {
            Ok(Some(Some(future_instant("snoozed_until", &until)?)))
        }
        (None | Some(None), Some(RoomStatus::Snoozed)) => Err(ApiError::invalid(
            "snoozed_until",
            "is required when status is snoozed",
        )),
        (Some(_), _) => Err(ApiError::invalid(
            "snoozed_until",
            "goes with status snoozed",
        )),
        // Leaving the snoozed state clears its deadline.
        (None, Some(_)) => Ok(Some(None)),
        (None, None) => Ok(None),
    }
}

fn future_instant(field: &str, raw: &str) -> ApiResult<String> {
    use time::format_description::well_known::Rfc3339;
    let at = time::OffsetDateTime::parse(raw, &Rfc3339)
        .map_err(|_| ApiError::invalid(field, "must be an RFC 3339 date-time"))?;
    if at <= crate::time::now() {
        return Err(ApiError::invalid(field, "must be in the future"));
    }
    Ok(crate::time::format(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(json: serde_json::Value) -> ApiResult<ConversationUpdate> {
        let body: UpdateConversation =
            serde_json::from_value(json).map_err(|e| ApiError::Malformed(e.to_string()))?;
        ConversationUpdate::try_from(body)
    }

    #[test]
    fn the_seed_clients_update_is_a_shared_title_and_a_view() {
        let u =
            update(serde_json::json!({"title": "Updated Conversation Title", "is_pinned": true}))
                .unwrap();
        assert_eq!(
            u.shared.title.as_deref(),
            Some("Updated Conversation Title")
        );
        assert_eq!(u.view.is_pinned, Some(true));
    }

    #[test]
    fn a_snooze_needs_its_end_and_another_status_clears_it() {
        assert!(update(serde_json::json!({"status": "snoozed"})).is_err());
        assert!(update(serde_json::json!({"snoozed_until": "2999-01-01T00:00:00Z"})).is_err());
        let snoozed = update(
            serde_json::json!({"status": "snoozed", "snoozed_until": "2999-01-01T00:00:00Z"}),
        )
        .unwrap();
        assert_eq!(snoozed.shared.status, Some(RoomStatus::Snoozed));
        assert!(matches!(snoozed.shared.snoozed_until, Some(Some(_))));
        let open = update(serde_json::json!({"status": "open"})).unwrap();
        assert_eq!(open.shared.snoozed_until, Some(None));
        assert!(
            update(
                serde_json::json!({"status": "snoozed", "snoozed_until": "2000-01-01T00:00:00Z"})
            )
            .is_err()
        );
        assert!(update(serde_json::json!({})).is_err(), "nothing to update");
    }

    #[test]
    fn a_forms_score_has_one_spelling_per_digit() {
        let form = |rating: Option<&str>| {
            NewRating::try_from(RatingForm {
                rating: rating.map(str::to_owned),
                comment: Some("  quick  ".into()),
            })
        };
        for digit in 1..=5u8 {
            let rating = form(Some(&digit.to_string())).unwrap();
            assert_eq!(rating.score, digit);
            assert_eq!(rating.comment.as_deref(), Some("quick"));
        }
        for refused in [
            None,
            Some(""),
            Some("0"),
            Some("6"),
            Some("05"),
            Some("+5"),
            Some("5.0"),
            Some(" 5"),
            Some("５"),
            Some("five"),
        ] {
            let err = form(refused).unwrap_err();
            assert_eq!(err.status().as_u16(), 422, "{refused:?}");
        }
    }
}
