//! Business hours: when a workspace's team is there, in its own timezone, so
//! automations can answer differently after hours (`in_business_hours()`).
//!
//! Kept as the JSON the API takes, parsed on the way in (a bad value is a 422
//! naming it; `workspace::update_settings` stores them) and again on use. No
//! hours set means always open.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Db, Error, Result, with_db};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MAX_HOLIDAYS: usize = 1000;
const MAX_INTERVALS: usize = 12;

/// As the API shows and takes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BusinessHours {
    /// An IANA timezone name, such as `Europe/Berlin`.
    pub timezone: String,
    /// Opening times per weekday (`mon` … `sun`): `[["09:00", "17:30"], …]`;
    /// a day left out is closed. `24:00` ends a day.
    pub weekly: BTreeMap<String, Vec<[String; 2]>>,
    /// Closed all day (`YYYY-MM-DD`, local dates).
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// Business hours ready to ask: minutes of the day per weekday.
#[derive(Clone, Debug)]
pub struct Schedule {
    tz: Tz,
    days: [Vec<(u32, u32)>; 7],
    holidays: HashSet<NaiveDate>,
}

/// Minutes since midnight of `HH:MM`; `24:00` only when `end`.
fn minutes(s: &str, end: bool) -> Option<u32> {
    if end && s == "24:00" {
        return Some(24 * 60);
    }
    let t = NaiveTime::parse_from_str(s, "%H:%M").ok()?;
    Some(t.hour() * 60 + t.minute())
}

impl BusinessHours {
    /// Checks a value from outside; errors name the bad part under `field`.
    pub fn parse(v: &Value, field: &str) -> Result<(BusinessHours, Schedule)> {
        let hours: BusinessHours = serde_json::from_value(v.clone())
            .map_err(|e| Error::invalid(field, format!("business hours are {{timezone, weekly, holidays?}}: {e}")))?;
        let schedule = hours.schedule(field)?;
        Ok((hours, schedule))
    }

    fn schedule(&self, field: &str) -> Result<Schedule> {
        let tz: Tz =
            self.timezone.parse().map_err(|_| Error::invalid(format!("{field}.timezone"), "not a timezone name such as Europe/Berlin"))?;
        let mut days: [Vec<(u32, u32)>; 7] = Default::default();
        for (day, intervals) in &self.weekly {
            let path = format!("{field}.weekly.{day}");
            let i =
                DAYS.iter().position(|d| d == day).ok_or_else(|| Error::invalid(&path, "days are mon, tue, wed, thu, fri, sat, sun"))?;
            if intervals.len() > MAX_INTERVALS {
                return Err(Error::invalid(&path, format!("at most {MAX_INTERVALS} intervals a day")));
            }
            for (n, [from, to]) in intervals.iter().enumerate() {
                let (a, b) = (minutes(from, false), minutes(to, true));
                match (a, b) {
                    (Some(a), Some(b)) if a < b => days[i].push((a, b)),
                    _ => {
                        return Err(Error::invalid(
                            format!("{path}.{n}"),
                            "an interval is [\"HH:MM\", \"HH:MM\"] with the start before the end",
                        ));
                    }
                }
            }
        }
        if self.holidays.len() > MAX_HOLIDAYS {
            return Err(Error::invalid(format!("{field}.holidays"), format!("at most {MAX_HOLIDAYS} holidays")));
        }
        let mut holidays = HashSet::new();
        for (n, d) in self.holidays.iter().enumerate() {
            let date = NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| Error::invalid(format!("{field}.holidays.{n}"), "a holiday is YYYY-MM-DD"))?;
            holidays.insert(date);
        }
        Ok(Schedule { tz, days, holidays })
    }
}

impl Schedule {
    /// Whether `at` falls in opening hours, on the workspace's local clock.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.tz);
        if self.holidays.contains(&local.date_naive()) {
            return false;
        }
        let day = local.weekday().num_days_from_monday() as usize;
        let m = local.hour() * 60 + local.minute();
        self.days.get(day).is_some_and(|d| d.iter().any(|&(a, b)| a <= m && m < b))
    }
}

/// A workspace's hours, if set.
pub async fn get(db: &Db, workspace_id: &str) -> Result<Option<BusinessHours>> {
    let row: Option<(Option<String>,)> = with_db!(db, pool => sqlx::query_as("SELECT business_hours FROM workspace WHERE id = $1")
        .bind(workspace_id).fetch_optional(pool).await?);
    let Some((Some(text),)) = row else { return Ok(None) };
    // Stored only after parsing: a row that no longer parses is a bug, not input.
    serde_json::from_str(&text).map(Some).map_err(|e| Error::Internal(anyhow::anyhow!("stored business hours: {e}")))
}

/// Whether `hours` are open at `at`; always, when none are set.
pub fn open_at(hours: Option<&BusinessHours>, at: DateTime<Utc>) -> Result<bool> {
    match hours {
        None => Ok(true),
        Some(h) => Ok(h.schedule("business_hours")?.is_open(at)),
    }
}

/// Whether the workspace is open now.
pub async fn open_now(db: &Db, workspace_id: &str) -> Result<bool> {
    open_at(get(db, workspace_id).await?.as_ref(), Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn berlin() -> Schedule {
        let v = json!({"timezone": "Europe/Berlin", "weekly": {"mon": [["09:00", "12:00"], ["13:00", "17:30"]], "sat": [["10:00", "24:00"]]},
            "holidays": ["2026-12-28"]});
        BusinessHours::parse(&v, "business_hours").unwrap().1
    }

    #[test]
    fn opening_times_are_read_on_the_local_clock() {
        let s = berlin();
        // Monday 2026-11-23: Berlin is UTC+1 in winter.
        assert!(!s.is_open(at("2026-11-23T07:59:00Z")), "08:59 local");
        assert!(s.is_open(at("2026-11-23T08:00:00Z")), "09:00 local");
        assert!(!s.is_open(at("2026-11-23T11:30:00Z")), "lunch");
        assert!(s.is_open(at("2026-11-23T16:29:00Z")), "17:29 local");
        assert!(!s.is_open(at("2026-11-23T16:30:00Z")), "the end is not open");
        assert!(!s.is_open(at("2026-11-24T10:00:00Z")), "Tuesday is closed");
        assert!(s.is_open(at("2026-11-28T22:59:00Z")), "Saturday until 24:00");
        assert!(!s.is_open(at("2026-11-28T23:00:00Z")), "Sunday 00:00 local");
        // Summer time: UTC+2.
        assert!(s.is_open(at("2026-06-01T07:00:00Z")) && !s.is_open(at("2026-06-01T06:59:00Z")));
        // A holiday Monday.
        assert!(!s.is_open(at("2026-12-28T10:00:00Z")));
    }

    #[test]
    fn bad_hours_name_the_part() {
        let field = |v: Value| BusinessHours::parse(&v, "business_hours").unwrap_err().field().map(str::to_owned);
        assert_eq!(field(json!({"timezone": "Mars/Base", "weekly": {}})).as_deref(), Some("business_hours.timezone"));
        assert_eq!(field(json!({"timezone": "UTC", "weekly": {"monday": []}})).as_deref(), Some("business_hours.weekly.monday"));
        assert_eq!(
            field(json!({"timezone": "UTC", "weekly": {"tue": [["09:00", "17:00"], ["18:00", "17:00"]]}})).as_deref(),
            Some("business_hours.weekly.tue.1")
        );
        assert_eq!(field(json!({"timezone": "UTC", "weekly": {"tue": [["9", "17:00"]]}})).as_deref(), Some("business_hours.weekly.tue.0"));
        assert_eq!(
            field(json!({"timezone": "UTC", "weekly": {}, "holidays": ["2026-01-01", "soon"]})).as_deref(),
            Some("business_hours.holidays.1")
        );
        assert_eq!(field(json!({"weekly": {}})).as_deref(), Some("business_hours"));
        assert_eq!(field(json!("always")).as_deref(), Some("business_hours"));
    }
}
