//! A support team's business hours (docs/support.md): opening hours per weekday in the
//! team's time zone, and holidays (whole local days closed). Outside them a new
//! conversation gets an auto-reply saying when the team is back.

use crate::error::{ApiError, ApiResult};
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Holidays a team may list.
pub const MAX_HOLIDAYS: usize = 100;
/// Opening spans one weekday may have.
pub const MAX_SPANS_PER_DAY: usize = 4;
/// How far ahead the next opening is looked for (a team closed for longer has none).
const LOOKAHEAD_DAYS: i64 = 366;

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

/// Business hours as given and stored: `week` maps `mon`…`sun` to opening spans
/// `["09:00", "17:00"]` (a day left out is closed; `"24:00"` ends a span at midnight);
/// `holidays` are local dates (`2026-12-25`) closed all day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    pub time_zone: String,
    pub week: BTreeMap<String, Vec<[String; 2]>>,
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// Minutes after midnight of "HH:MM" (00:00 to 24:00).
fn minutes(field: &str, text: &str) -> ApiResult<u32> {
    let bad = || ApiError::invalid(field, "a time of day as HH:MM, 00:00 to 24:00");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let two = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two(h) || !two(m) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    match (h, m) {
        (24, 0) => Ok(24 * 60),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

impl BusinessHours {
    /// The hours, checked: a time zone of the IANA database, known weekdays, spans
    /// that start before they end and do not overlap, real dates.
    pub fn validated(mut self) -> ApiResult<BusinessHours> {
        let zone_ok = self.time_zone.len() <= 64
            && self.time_zone.bytes().all(|b| b.is_ascii_graphic())
            && TimeZone::get(&self.time_zone).is_ok();
        if !zone_ok {
            return Err(ApiError::invalid(
                "business_hours.time_zone",
                "a time zone of the IANA database, such as Europe/Berlin",
            ));
        }
        for (day, spans) in &mut self.week {
            let field = format!("business_hours.week.{day}");
            if !DAYS.iter().any(|(name, _)| name == day) {
                return Err(ApiError::invalid(
                    "business_hours.week",
                    "days are mon, tue, wed, thu, fri, sat and sun",
                ));
            }
            if spans.len() > MAX_SPANS_PER_DAY {
                return Err(ApiError::invalid(
                    field,
                    format!("at most {MAX_SPANS_PER_DAY} spans a day"),
                ));
            }
            let mut parsed = Vec::new();
            for [start, end] in spans.iter() {
                let (s, e) = (minutes(&field, start)?, minutes(&field, end)?);
                if s >= e {
                    return Err(ApiError::invalid(field, "a span starts before it ends"));
                }
                parsed.push((s, e));
            }
            parsed.sort();
            if parsed.windows(2).any(|w| w[0].1 > w[1].0) {
                return Err(ApiError::invalid(field, "spans must not overlap"));
            }
            spans.sort();
        }
        if self.holidays.len() > MAX_HOLIDAYS {
            return Err(ApiError::invalid(
                "business_hours.holidays",
                format!("at most {MAX_HOLIDAYS} holidays"),
            ));
        }
        for day in &self.holidays {
            let real = day.len() == 10 && day.parse::<Date>().is_ok();
            if !real {
                return Err(ApiError::invalid(
                    "business_hours.holidays",
                    "dates as YYYY-MM-DD",
                ));
            }
        }
        self.holidays.sort();
        self.holidays.dedup();
        Ok(self)
    }

    fn zone(&self) -> Option<TimeZone> {
        TimeZone::get(&self.time_zone).ok()
    }

    /// The opening spans (minutes after midnight) of a local date.
    fn spans_on(&self, date: Date) -> Vec<(u32, u32)> {
        if self
            .holidays
            .iter()
            .any(|h| h.parse::<Date>().ok() == Some(date))
        {
            return Vec::new();
        }
        let Some((name, _)) = DAYS.iter().find(|(_, wd)| *wd == date.weekday()) else {
            return Vec::new();
        };
        self.week
            .get(*name)
            .map(|spans| {
                spans
                    .iter()
                    .filter_map(|[s, e]| Some((minutes("", s).ok()?, minutes("", e).ok()?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the team is open at `at`.
    pub fn is_open(&self, at: Timestamp) -> bool {
        let Some(zone) = self.zone() else {
            return true;
        };
        let local = at.to_zoned(zone);
        let now = u32::from(local.hour() as u8) * 60 + u32::from(local.minute() as u8);
        self.spans_on(local.date())
            .iter()
            .any(|&(s, e)| s <= now && now < e)
    }

    /// The moment `minutes` of open time have passed since `start` (an SLA's due
    /// time in business hours), within a year; None when the hours never open.
    pub fn add_open_minutes(&self, start: Timestamp, minutes: i64) -> Option<Timestamp> {
        let zone = self.zone()?;
        let mut left = minutes;
        let local = start.to_zoned(zone.clone());
        let mut date = local.date();
        let mut from = u32::from(local.hour() as u8) * 60 + u32::from(local.minute() as u8);
        for _ in 0..=LOOKAHEAD_DAYS {
            for (s, e) in self.spans_on(date) {
                let begin = s.max(from);
                if begin >= e {
                    continue;
                }
                let span = i64::from(e - begin);
                if left <= span {
                    let at = begin + left as u32;
                    let time = match at {
                        1440 => Time::new(23, 59, 59, 999_999_999).ok()?,
                        _ => Time::new((at / 60) as i8, (at % 60) as i8, 0, 0).ok()?,
                    };
                    return date
                        .to_datetime(time)
                        .to_zoned(zone)
                        .ok()
                        .map(|z| z.timestamp());
                }
                left -= span;
            }
            date = date.checked_add(1.day()).ok()?;
            from = 0;
        }
        None
    }

    /// When the team opens next after `at` (`at` itself when open), within a year.
    pub fn next_open(&self, at: Timestamp) -> Option<Timestamp> {
        if self.is_open(at) {
            return Some(at);
        }
        let zone = self.zone()?;
        let local: Zoned = at.to_zoned(zone.clone());
        let now = u32::from(local.hour() as u8) * 60 + u32::from(local.minute() as u8);
        let mut date = local.date();
        for day in 0..=LOOKAHEAD_DAYS {
            let start = self
                .spans_on(date)
                .into_iter()
                .map(|(s, _)| s)
                .find(|&s| day > 0 || s > now);
            if let Some(start) = start {
                let time = Time::new((start / 60) as i8, (start % 60) as i8, 0, 0).ok()?;
                // A start in a DST gap resolves forward, as clocks do.
                return date
                    .to_datetime(time)
                    .to_zoned(zone)
                    .ok()
                    .map(|z| z.timestamp());
            }
            date = date.checked_add(1.day()).ok()?;
        }
        None
    }
}

impl crate::store::Store {
    /// The desk's auto-reply in a conversation (once: its idempotency key is fixed),
    /// from `actor`, numbered in its feed like any message.
    pub async fn post_auto_reply(
        &self,
        org: &crate::ids::OrgId,
        room: &crate::ids::RoomId,
        content: String,
    ) -> ApiResult<()> {
        let who = crate::auth::Principal::system(org, AUTO_REPLY_ACTOR);
        let new = crate::store::NewMessage {
            content,
            content_type: "text".into(),
            message_type: "text".into(),
            sender: crate::model::SYSTEM_SENDER.into(),
            sender_id: None,
            attachments: Vec::new(),
            client_message_id: None,
            idempotency_key: Some("auto-reply".into()),
            tokens_used: None,
            processing_time: None,
            cost: None,
            request: None,
        };
        let cache = crate::store::RoomCache::default();
        Box::pin(self.post_message(&who, room, new, &cache))
            .await
            .map(drop)
    }
}

/// Who the auto-reply is from, in the feed and the message.
pub const AUTO_REPLY_ACTOR: &str = "system:auto-reply";

/// The auto-reply's words: when the team is back, in its own time zone.
pub fn auto_reply_text(team: &str, hours: &BusinessHours, back_at: Option<Timestamp>) -> String {
    match back_at.zip(hours.zone()) {
        Some((at, zone)) => {
            let local = at.to_zoned(zone);
            format!(
                "Thanks for your message. {team} is away right now and back {} at {} ({}). We will answer then.",
                local.strftime("%A, %B %-d"),
                local.strftime("%H:%M"),
                hours.time_zone
            )
        }
        None => format!(
            "Thanks for your message. {team} is away right now; we will answer as soon as we can."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(json: serde_json::Value) -> ApiResult<BusinessHours> {
        serde_json::from_value::<BusinessHours>(json)
            .map_err(|e| ApiError::Malformed(e.to_string()))?
            .validated()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn berlin_office() -> BusinessHours {
        hours(serde_json::json!({
            "time_zone": "Europe/Berlin",
            "week": {
                "mon": [["09:00", "12:00"], ["13:00", "17:00"]],
                "tue": [["09:00", "17:00"]], "wed": [["09:00", "17:00"]],
                "thu": [["09:00", "17:00"]], "fri": [["09:00", "15:00"]],
            },
            "holidays": ["2026-12-25"],
        }))
        .unwrap()
    }

    #[test]
    fn open_and_next_open_in_the_teams_time_zone() {
        let h = berlin_office();
        // Monday 2026-12-07 10:00 in Berlin is 09:00 UTC.
        assert!(h.is_open(at("2026-12-07T09:00:00Z")));
        // Lunch: back at 13:00 Berlin (12:00 UTC).
        assert!(!h.is_open(at("2026-12-07T11:30:00Z")));
        assert_eq!(
            h.next_open(at("2026-12-07T11:30:00Z")),
            Some(at("2026-12-07T12:00:00Z"))
        );
        // Friday evening: back Monday 09:00 Berlin.
        assert_eq!(
            h.next_open(at("2026-12-11T16:00:00Z")),
            Some(at("2026-12-14T08:00:00Z"))
        );
        // Christmas is a Friday: closed; back Monday the 28th.
        assert!(!h.is_open(at("2026-12-25T10:00:00Z")));
        assert_eq!(
            h.next_open(at("2026-12-24T17:00:00Z")),
            Some(at("2026-12-28T08:00:00Z"))
        );
        // Summer time: 09:00 Berlin is 07:00 UTC.
        assert_eq!(
            h.next_open(at("2026-07-06T05:00:00Z")),
            Some(at("2026-07-06T07:00:00Z"))
        );
        // Open now: now.
        assert_eq!(
            h.next_open(at("2026-12-08T09:00:00Z")),
            Some(at("2026-12-08T09:00:00Z"))
        );
    }

    #[test]
    fn open_minutes_count_only_inside_the_hours() {
        let h = berlin_office();
        // Monday 11:30 Berlin + 60 open minutes: 30 before lunch, 30 after (13:30).
        assert_eq!(
            h.add_open_minutes(at("2026-12-07T10:30:00Z"), 60),
            Some(at("2026-12-07T12:30:00Z"))
        );
        // Friday 14:30 Berlin + 60: 30 on Friday, then Monday 09:30.
        assert_eq!(
            h.add_open_minutes(at("2026-12-11T13:30:00Z"), 60),
            Some(at("2026-12-14T08:30:00Z"))
        );
        // Saturday night + 30: Monday 09:30.
        assert_eq!(
            h.add_open_minutes(at("2026-12-12T22:00:00Z"), 30),
            Some(at("2026-12-14T08:30:00Z"))
        );
    }

    #[test]
    fn a_day_ends_at_midnight_and_a_week_without_spans_never_opens() {
        let late =
            hours(serde_json::json!({"time_zone": "UTC", "week": {"sat": [["18:00", "24:00"]]}}))
                .unwrap();
        assert!(late.is_open(at("2026-12-05T23:59:00Z")));
        assert!(!late.is_open(at("2026-12-06T00:00:00Z")));
        let never = hours(serde_json::json!({"time_zone": "UTC", "week": {}})).unwrap();
        assert_eq!(never.next_open(at("2026-12-05T10:00:00Z")), None);
    }

    #[test]
    fn every_other_spelling_of_hours_is_refused() {
        for bad in [
            serde_json::json!({"time_zone": "Mars/Olympus", "week": {}}),
            serde_json::json!({"time_zone": "europe/berlin ", "week": {}}),
            serde_json::json!({"time_zone": "UTC", "week": {"monday": [["09:00", "17:00"]]}}),
            serde_json::json!({"time_zone": "UTC", "week": {"mon": [["9:00", "17:00"]]}}),
            serde_json::json!({"time_zone": "UTC", "week": {"mon": [["17:00", "09:00"]]}}),
            serde_json::json!({"time_zone": "UTC", "week": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}),
            serde_json::json!({"time_zone": "UTC", "week": {"mon": [["24:01", "24:00"]]}}),
            serde_json::json!({"time_zone": "UTC", "week": {}, "holidays": ["2026-02-30"]}),
            serde_json::json!({"time_zone": "UTC", "week": {}, "holidays": ["25.12.2026"]}),
        ] {
            assert!(hours(bad.clone()).is_err(), "{bad}");
        }
    }
}
