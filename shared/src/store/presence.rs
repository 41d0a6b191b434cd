//! An agent who said `online` and then went away (docs/support.md): when their last
//! connection to the WebSocket API closes, their workload item is put on a sparse
//! GSI2 list (`AWAY#{shard}` / `{since}#{org}#{user}`); a connection opened takes it
//! off. The minute's schedule turns those away for longer than the tenant stack's
//! setting `offline`, so auto-assignment stops giving them conversations nobody would
//! answer. The switch is conditioned on the entry as read and on `online`: an agent
//! who came back, or chose `busy`, meanwhile is left alone.

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::ids::{OrgId, UserId};
use crate::item::{ItemExt, n, s, values};
use crate::keys;
use crate::store::{Store, WriteError};
use aws_sdk_dynamodb::types::Update;

/// GSI2 shards of the agents away.
pub const AWAY_SHARDS: u32 = 4;
/// Minutes without a connection before an online agent is set offline, unless the
/// stack says otherwise (`AGENT_AWAY_MINUTES`).
pub const DEFAULT_AWAY_MINUTES: i64 = 10;
/// Agents one sweep takes per shard (the next minute takes the rest).
const SWEEP_PAGE: i32 = 100;

fn away_shard(user: &UserId) -> u32 {
    user.as_str()
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % AWAY_SHARDS
}

pub fn away_gsi2pk(shard: u32) -> String {
    format!("AWAY#{shard}")
}

fn away_gsi2sk(since: &str, org: &OrgId, user: &UserId) -> String {
    format!("{since}#{org}#{user}")
}

impl Store {
    /// A connection of `who` opened: if they are an agent listed away, they are back.
    /// One UpdateItem for staff (none for customers); an agent without a workload
    /// item has nothing to change.
    pub(crate) async fn agent_connected(&self, who: &Principal) -> ApiResult<()> {
        if !who.role.is_staff() {
            return Ok(());
        }
        let (pk, sk) = keys::agent_load_key(&who.org, who.user.as_str());
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression("REMOVE away_since, GSI2PK, GSI2SK")
            .condition_expression("attribute_exists(away_since)")
            .build()
            .expect("update has key and expression");
        match self.table.update(update, None, "agent back").await {
            Ok(_) | Err(WriteError::ConditionFailed(_)) => Ok(()),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// A connection of `who` closed: if it was their last and they are `online`, the
    /// away clock starts (one Query of their connections, then one UpdateItem). The
    /// Query has no Limit: DynamoDB limits before it filters, so expired leftovers
    /// could hide a live connection.
    pub(crate) async fn agent_disconnected(&self, who: &Principal) -> ApiResult<()> {
        if !who.role.is_staff() {
            return Ok(());
        }
        let now = crate::time::now();
        let (left, _) = self
            .table
            .query("agent's connections", None, |q| {
                q.key_condition_expression("PK = :pk AND begins_with(SK, :c)")
                    .filter_expression("expires_at > :now")
                    .expression_attribute_values(":pk", s(keys::user_pk(&who.org, &who.user)))
                    .expression_attribute_values(":c", s(keys::USER_CONNECTION_PREFIX))
                    .expression_attribute_values(":now", n(now.unix_timestamp()))
            })
            .await?;
        if !left.is_empty() {
            return Ok(());
        }
        let since = crate::time::format(now);
        let (pk, sk) = keys::agent_load_key(&who.org, who.user.as_str());
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(sk))
            .update_expression("SET away_since = :since, GSI2PK = :gpk, GSI2SK = :gsk")
            .condition_expression("availability = :online")
            .set_expression_attribute_values(Some(values([
                (":since", s(&since)),
                (":online", s("online")),
                (":gpk", s(away_gsi2pk(away_shard(&who.user)))),
                (":gsk", s(away_gsi2sk(&since, &who.org, &who.user))),
            ])))
            .build()
            .expect("update has key and expression");
        match self.table.update(update, None, "agent away").await {
            Ok(_) | Err(WriteError::ConditionFailed(_)) => Ok(()),
            Err(WriteError::Api(err)) => Err(err),
        }
    }

    /// Every agent away since `minutes` before `now` (RFC 3339) set `offline`;
    /// answers how many. A failure of one is logged and left for the next minute.
    pub async fn away_sweep(&self, now: &str, minutes: i64) -> ApiResult<usize> {
        let Ok(at) =
            time::OffsetDateTime::parse(now, &time::format_description::well_known::Rfc3339)
        else {
            return Ok(0);
        };
        let cutoff = crate::time::format(at - time::Duration::minutes(minutes));
        let mut offline = 0;
        for shard in 0..AWAY_SHARDS {
            let (rows, _) = self
                .table
                .query("agents away", None, |q| {
                    q.index_name(keys::GSI2)
                        .key_condition_expression("GSI2PK = :p AND GSI2SK <= :cutoff")
                        .expression_attribute_values(":p", s(away_gsi2pk(shard)))
                        .expression_attribute_values(":cutoff", s(format!("{cutoff}~")))
                        .limit(SWEEP_PAGE)
                })
                .await?;
            for row in &rows {
                // GSI2 projects keys only: the time comes from its sort key.
                let (Some(pk), Some(sk), Some(listed)) = (
                    row.string(keys::PK),
                    row.string(keys::SK),
                    row.string(keys::GSI2SK),
                ) else {
                    continue;
                };
                let Some((since, _)) = listed.split_once('#') else {
                    continue;
                };
                let update = Update::builder()
                    .table_name(self.name())
                    .key(keys::PK, s(&pk))
                    .key(keys::SK, s(sk))
                    .update_expression(
                        "SET availability = :offline, availability_at = :now \
                         REMOVE away_since, GSI2PK, GSI2SK",
                    )
                    .condition_expression("away_since = :since AND availability = :online")
                    .set_expression_attribute_values(Some(values([
                        (":offline", s("offline")),
                        (":online", s("online")),
                        (":now", s(now)),
                        (":since", s(since)),
                    ])))
                    .build()
                    .expect("update has key and expression");
                match self.table.update(update, None, "agent offline").await {
                    Ok(_) => offline += 1,
                    Err(WriteError::ConditionFailed(_)) => {}
                    Err(WriteError::Api(err)) => {
                        tracing::error!(agent = %pk, %err, "left away for the next run");
                    }
                }
            }
        }
        Ok(offline)
    }
}
