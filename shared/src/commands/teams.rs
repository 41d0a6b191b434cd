//! Bodies and commands of the support-team routes (docs/support.md).

use crate::error::{ApiError, ApiResult};
use crate::ids::TeamId;
use crate::request::required_text;
use crate::store::Availability;
use crate::store::hours::BusinessHours;
use crate::store::routing::{MAX_KEYWORD_CHARS, MAX_KEYWORDS, MAX_RULES, RoutingRule, words};
use crate::store::sla::SlaPolicy;
use crate::store::teams::MAX_CAPACITY;
use serde::Deserialize;

pub const MAX_TEAM_NAME_CHARS: usize = 80;

/// POST /teams and PATCH /teams/{team_id}.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamBody {
    pub name: String,
}

/// A team's validated name.
pub fn team_name(body: &TeamBody) -> ApiResult<String> {
    required_text("name", &body.name, MAX_TEAM_NAME_CHARS)
}

/// PATCH /teams/{team_id}: a new name, business hours (`null`: none), or both.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchTeam {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "super::present")]
    pub business_hours: Option<Option<BusinessHours>>,
    #[serde(default, deserialize_with = "super::present")]
    pub sla: Option<Option<SlaPolicy>>,
}

/// What a PATCH of a team changes.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamChange {
    pub name: Option<String>,
    pub business_hours: Option<Option<BusinessHours>>,
    pub sla: Option<Option<SlaPolicy>>,
}

impl TryFrom<PatchTeam> for TeamChange {
    type Error = ApiError;

    fn try_from(body: PatchTeam) -> ApiResult<TeamChange> {
        let name = body
            .name
            .as_deref()
            .map(|n| required_text("name", n, MAX_TEAM_NAME_CHARS))
            .transpose()?;
        let business_hours = match body.business_hours {
            Some(Some(hours)) => Some(Some(hours.validated()?)),
            other => other,
        };
        let sla = match body.sla {
            Some(Some(sla)) => Some(Some(sla.validated()?)),
            other => other,
        };
        if name.is_none() && business_hours.is_none() && sla.is_none() {
            return Err(ApiError::invalid("body", "nothing to update"));
        }
        Ok(TeamChange {
            name,
            business_hours,
            sla,
        })
    }
}

/// PUT /teams/{team_id}/agents/{user_id}.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutTeamAgent {
    /// Active conversations auto-assignment may give them at once.
    pub capacity: u32,
}

/// An agent's capacity, checked.
pub fn capacity(body: &PutTeamAgent) -> ApiResult<u32> {
    match body.capacity {
        1..=MAX_CAPACITY => Ok(body.capacity),
        _ => Err(ApiError::invalid(
            "capacity",
            format!("must be a whole number from 1 to {MAX_CAPACITY}"),
        )),
    }
}

/// PUT /agents/me/availability.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutAvailability {
    pub availability: String,
}

impl TryFrom<PutAvailability> for Availability {
    type Error = ApiError;

    fn try_from(body: PutAvailability) -> ApiResult<Availability> {
        Availability::parse(&body.availability)
            .ok_or_else(|| ApiError::invalid("availability", "must be online, busy or offline"))
    }
}

/// A team id given in a body (a conversation's `team_id`).
pub fn team_id(field: &str, raw: &str) -> ApiResult<TeamId> {
    TeamId::parse(raw).map_err(|_| ApiError::invalid(field, "is not a team id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_and_availability_take_only_their_values() {
        assert_eq!(capacity(&PutTeamAgent { capacity: 1 }).unwrap(), 1);
        assert!(capacity(&PutTeamAgent { capacity: 0 }).is_err());
        assert!(
            capacity(&PutTeamAgent {
                capacity: MAX_CAPACITY + 1
            })
            .is_err()
        );
        for ok in ["online", "busy", "offline"] {
            assert!(
                Availability::try_from(PutAvailability {
                    availability: ok.into()
                })
                .is_ok()
            );
        }
        for bad in ["Online", "ONLINE", "away", "", " online"] {
            assert!(
                Availability::try_from(PutAvailability {
                    availability: bad.into()
                })
                .is_err()
            );
        }
    }
}

/// PUT /routing-rules: the tenant's rules, in the order they are tried.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutRoutingRules {
    pub rules: Vec<RoutingRuleBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRuleBody {
    pub name: String,
    pub keywords: Vec<String>,
    pub team_id: String,
}

impl TryFrom<PutRoutingRules> for Vec<RoutingRule> {
    type Error = ApiError;

    /// Each rule checked, naming the place of what is wrong (`rules[2].keywords[0]`):
    /// a name, 1 to 20 keywords of letters or digits (kept as their lowercase words),
    /// a team id; at most 50 rules.
    fn try_from(body: PutRoutingRules) -> ApiResult<Vec<RoutingRule>> {
        if body.rules.len() > MAX_RULES {
            return Err(ApiError::invalid(
                "rules",
                format!("at most {MAX_RULES} rules"),
            ));
        }
        body.rules
            .into_iter()
            .enumerate()
            .map(|(at, rule)| {
                let field = |name: &str| format!("rules[{at}].{name}");
                if rule.keywords.is_empty() || rule.keywords.len() > MAX_KEYWORDS {
                    return Err(ApiError::invalid(
                        field("keywords"),
                        format!("1 to {MAX_KEYWORDS} keywords"),
                    ));
                }
                let mut keywords = Vec::new();
                for (k, raw) in rule.keywords.iter().enumerate() {
                    let spoken = words(raw);
                    if spoken.is_empty() || raw.chars().count() > MAX_KEYWORD_CHARS {
                        return Err(ApiError::invalid(
                            field(&format!("keywords[{k}]")),
                            format!(
                                "a word or phrase of letters or digits, at most {MAX_KEYWORD_CHARS} characters"
                            ),
                        ));
                    }
                    let keyword = spoken.join(" ");
                    if !keywords.contains(&keyword) {
                        keywords.push(keyword);
                    }
                }
                Ok(RoutingRule {
                    name: required_text(&field("name"), &rule.name, MAX_TEAM_NAME_CHARS)?,
                    keywords,
                    team_id: TeamId::parse(&rule.team_id)
                        .map_err(|_| ApiError::invalid(field("team_id"), "no such team"))?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod routing_tests {
    use super::*;

    #[test]
    fn rules_are_checked_and_kept_as_their_words() {
        let team = TeamId::generate().to_string();
        let body = |keywords: Vec<&str>, team_id: &str| PutRoutingRules {
            rules: vec![RoutingRuleBody {
                name: "Billing".into(),
                keywords: keywords.into_iter().map(Into::into).collect(),
                team_id: team_id.into(),
            }],
        };
        let rules =
            Vec::<RoutingRule>::try_from(body(vec!["Refund", " money  BACK ", "refund"], &team))
                .unwrap();
        assert_eq!(rules[0].keywords, ["refund", "money back"]);
        for (keywords, team_id, field) in [
            (vec![], team.as_str(), "rules[0].keywords"),
            (vec!["ok", "!!!"], team.as_str(), "rules[0].keywords[1]"),
            (vec![""], team.as_str(), "rules[0].keywords[0]"),
            (vec!["refund"], "kettles", "rules[0].team_id"),
        ] {
            match Vec::<RoutingRule>::try_from(body(keywords.clone(), team_id)) {
                Err(ApiError::InvalidField { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{keywords:?}: {other:?}"),
            }
        }
        let long = "x".repeat(MAX_KEYWORD_CHARS + 1);
        assert!(Vec::<RoutingRule>::try_from(body(vec![&long], &team)).is_err());
    }
}
