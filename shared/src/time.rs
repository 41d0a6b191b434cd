//! Timestamps: RFC 3339 UTC with milliseconds, fixed width so they sort as strings.

use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

tokio::task_local! {
    /// A fixed "now" for the task, set only by tests (e.g. to write messages on
    /// either side of midnight); production never sets it.
    static FIXED_NOW: OffsetDateTime;
}

pub fn now() -> OffsetDateTime {
    FIXED_NOW
        .try_with(|at| *at)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
}

/// Runs `work` with `now()` fixed at `at`.
pub async fn at<F: std::future::Future>(at: OffsetDateTime, work: F) -> F::Output {
    FIXED_NOW.scope(at, work).await
}

pub fn format(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .expect("fixed format always formats")
}

pub fn now_string() -> String {
    format(now())
}

/// Unix milliseconds of `at`.
pub fn millis(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Unix milliseconds of now.
pub fn now_millis() -> i64 {
    millis(now())
}

/// One of our timestamps (or any RFC 3339 time) back to a time.
pub fn parse(raw: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(raw, FORMAT)
        .or_else(|_| OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn fixed_width_and_sortable() {
        let a = format(datetime!(2024-06-29 09:05:00.1 UTC));
        let b = format(datetime!(2024-06-29 10:00:00 UTC));
        assert_eq!(a, "2024-06-29T09:05:00.100Z");
        assert_eq!(a.len(), b.len());
        assert!(a < b);
    }
}
