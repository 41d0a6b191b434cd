//! The `analytics-rollup` function: folds the write path's per-room daily counters
//! into one rollup item per tenant and day, on an EventBridge schedule.
//!
//! A scheduled event folds today and the days before it (`ROLLUP_LOOKBACK_DAYS`,
//! default 2, so yesterday is finished after midnight); `{"from": "YYYY-MM-DD", "to":
//! "YYYY-MM-DD"}` backfills a range. Each run recomputes from the counters and writes
//! a rollup only when its figures changed: running twice, or concurrently, changes
//! nothing.

use chat_core::store::Store;
use chat_core::store::analytics::fold_day;
use serde_json::{Value, json};
use time::{Date, Duration};

/// Longest backfill one invocation takes (each day is 16 concurrent Queries, and
/// the function's timeout is 15 minutes).
pub const MAX_BACKFILL_DAYS: i64 = 366;

pub struct Rollup {
    store: Store,
    lookback_days: u32,
}

pub fn parse_day(raw: &str) -> Result<Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(raw, &format).map_err(|_| format!("{raw:?} is not a YYYY-MM-DD date"))
}

pub fn format_day(day: Date) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    day.format(&format).expect("dates format")
}

impl Rollup {
    pub fn new(store: Store, lookback_days: u32) -> Self {
        Rollup {
            store,
            lookback_days: lookback_days.max(1),
        }
    }

    /// Handles one scheduled (or backfill) event. A day or tenant that fails does not
    /// stop the others; the run then reports an error, so the schedule's retry (or
    /// the next run) redoes it, and what was already written is left as it is.
    pub async fn run(&self, event: Value) -> Result<Value, String> {
        let today = chat_core::time::now().date();
        let days = days_for(&event, today, self.lookback_days)?;
        let (mut written, mut unchanged, mut tenants) = (0, 0, 0);
        let mut failures = Vec::new();
        for day in &days {
            let day = format_day(*day);
            let items = match self.store.stats_of_day(&day).await {
                Ok(items) => items,
                Err(e) => {
                    failures.push(format!("reading {day}: {e}"));
                    continue;
                }
            };
            for (org, rollup) in fold_day(&day, &items) {
                tenants += 1;
                match self.store.put_rollup(&org, &rollup).await {
                    Ok(true) => written += 1,
                    Ok(false) => unchanged += 1,
                    Err(e) => failures.push(format!("writing {org} {day}: {e}")),
                }
            }
        }
        let summary = json!({ "days": days.len(), "tenant_days": tenants, "written": written, "unchanged": unchanged, "failed": failures.len() });
        if failures.is_empty() {
            tracing::info!(%summary, "rollup done");
            Ok(summary)
        } else {
            tracing::error!(%summary, ?failures, "rollup incomplete");
            Err(format!(
                "rollup incomplete: {summary}; first failure: {}",
                failures[0]
            ))
        }
    }
}

/// The days an event asks for: a backfill range, or today and the days before it.
pub fn days_for(event: &Value, today: Date, lookback_days: u32) -> Result<Vec<Date>, String> {
    let (from, to) = match (
        event.get("from").and_then(Value::as_str),
        event.get("to").and_then(Value::as_str),
    ) {
        (Some(from), Some(to)) => (parse_day(from)?, parse_day(to)?),
        (None, None) => (
            today - Duration::days(i64::from(lookback_days.max(1)) - 1),
            today,
        ),
        _ => return Err("a backfill needs both from and to".into()),
    };
    if from > to {
        return Err("from is after to".into());
    }
    if (to - from).whole_days() >= MAX_BACKFILL_DAYS {
        return Err(format!("at most {MAX_BACKFILL_DAYS} days per run"));
    }
    let mut days = Vec::new();
    let mut day = from;
    while day <= to {
        days.push(day);
        day = day.next_day().ok_or("date out of range")?;
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(event: Value, lookback: u32) -> Result<Vec<String>, String> {
        days_for(&event, parse_day("2024-03-01").unwrap(), lookback)
            .map(|d| d.into_iter().map(format_day).collect())
    }

    #[test]
    fn scheduled_runs_look_back_across_month_ends() {
        assert_eq!(
            days(json!({"source": "aws.events"}), 2).unwrap(),
            vec!["2024-02-29", "2024-03-01"]
        );
        assert_eq!(days(json!({}), 0).unwrap(), vec!["2024-03-01"]);
    }

    #[test]
    fn backfills_are_bounded_ranges() {
        assert_eq!(
            days(json!({"from": "2023-12-31", "to": "2024-01-02"}), 2)
                .unwrap()
                .len(),
            3
        );
        assert!(days(json!({"from": "2024-01-02", "to": "2024-01-01"}), 2).is_err());
        assert!(days(json!({"from": "2020-01-01", "to": "2024-01-01"}), 2).is_err());
        assert!(days(json!({"from": "2024-01-01"}), 2).is_err());
        assert!(days(json!({"from": "yesterday", "to": "2024-01-01"}), 2).is_err());
    }
}
