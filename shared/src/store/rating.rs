//! A customer's satisfaction rating (CSAT) of a resolved conversation
//! (docs/support.md): once per resolution, counted for the day, the assignee and the
//! team in the same transaction.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::item::{n, s, values};
use crate::model::{Rating, Room};
use crate::store::analytics::{Counts, counter, day_of};
use crate::store::{Change, EventKind, Plan, Store};
use serde_json::json;

impl Store {
    /// Rates the conversation's latest resolution: refused while it is not resolved
    /// or closed (`409 not_resolved`) and when this resolution has its rating
    /// (`409 already_rated`); decided on the room the transaction is built from.
    /// `expected`: the resolution a rating link names (its `closed_at`) — a conversation
    /// reopened and resolved again since is `409 resolution_passed`.
    pub async fn rate_conversation(
        &self,
        who: &Principal,
        room: Room,
        rating: crate::commands::conversations::NewRating,
        expected: Option<&str>,
    ) -> ApiResult<Room> {
        let crate::commands::conversations::NewRating { score, comment } = rating;
        let now = crate::time::now_string();
        let room_id = room.id.clone();
        let rated = self
            .room_transaction_from(who, &room_id, room, "rate conversation", |room| {
                let resolution = match (room.status.is_closed(), &room.closed_at) {
                    (true, Some(at)) => at.clone(),
                    _ => {
                        return Err(ApiError::Conflict {
                            code: "not_resolved",
                            message: "a conversation is rated once it is resolved".into(),
                        });
                    }
                };
                if expected.is_some_and(|e| e != resolution) {
                    return Err(ApiError::Conflict {
                        code: "resolution_passed",
                        message: "the conversation was reopened and resolved again since; rate it from the newer request".into(),
                    });
                }
                if room
                    .rating
                    .as_ref()
                    .is_some_and(|r| r.rated_for == resolution)
                {
                    return Err(ApiError::Conflict {
                        code: "already_rated",
                        message: "this resolution is rated already".into(),
                    });
                }
                let mut vals = values([
                    (":score", n(score)),
                    (":now", s(&now)),
                    (":for", s(&resolution)),
                ]);
                let mut expression =
                    "SET rating = :score, rated_at = :now, rated_for = :for, updated_at = :now"
                        .to_owned();
                match &comment {
                    Some(c) => {
                        expression.push_str(", rating_comment = :comment");
                        vals.insert(":comment".into(), s(c));
                    }
                    None => expression.push_str(" REMOVE rating_comment"),
                }
                // Rated by nobody else meanwhile: a burst of ratings is one rating.
                let mut writes = vec![self.room_update_if(
                    room,
                    who,
                    &expression,
                    vals,
                    &[],
                    Some("attribute_not_exists(rated_for) OR rated_for <> :for"),
                )];
                let mut counts = Counts::default();
                counts
                    .add(counter::CSAT_RATINGS, 1)
                    .add(counter::CSAT_SCORE, i64::from(score));
                if let Some(agent) = &room.assignee_id {
                    counts
                        .add(counter::csat_ratings_of(agent), 1)
                        .add(counter::csat_score_of(agent), i64::from(score));
                }
                if let Some(team) = &room.team_id {
                    counts
                        .add(counter::team_csat_ratings(team), 1)
                        .add(counter::team_csat_score(team), i64::from(score));
                }
                writes.extend(self.stats_update(&who.org, &room.id, day_of(&now), &counts));
                let change = Change {
                    kind: EventKind::RoomUpdated,
                    staff_only: false,
                    data:
                        json!({ "rating": { "score": score, "comment": comment, "rated_at": now } })
                            .to_string(),
                };
                Ok(Plan::new(writes, change))
            })
            .await?;
        let rated_for = rated.closed_at.clone().unwrap_or_default();
        Ok(Room {
            rating: Some(Rating {
                score,
                comment,
                rated_at: now.clone(),
                rated_for,
            }),
            updated_at: now,
            ..rated
        })
    }
}
