//! Triggers: which happenings start an automation, parsed from its `trigger`
//! name and `params` when it is saved, and matched against each happening.

use parley_engine::bus::Happening;
use parley_engine::{Error, Result, events};
use serde_json::{Map, Value};

/// A trigger, checked. `page.view` may narrow the pages with a URL glob.
#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    ConversationCreated,
    /// A person's message.
    MessageReceived,
    /// A teammate's (or the bot's) chat message to the person.
    MessageSent,
    PersonCreated,
    PersonUpdated,
    /// `event.<name>`: a tracked event of that name.
    Event(String),
    PageView {
        url: Option<String>,
        /// Fire only once the person has stayed this long on the page.
        after_seconds: Option<u64>,
        /// Fire at most once per person in this many hours.
        once_per_hours: Option<u64>,
    },
    /// A person's message no teammate has answered for `minutes` (fractions
    /// allowed: 0.5 is thirty seconds).
    Unanswered {
        minutes: f64,
    },
    /// At each time a cron expression names (minute granularity), in the
    /// workspace's timezone; with a filter, once for each person it matches
    /// at that time, otherwise once with no one in particular.
    Schedule {
        cron: String,
        filter: Option<Value>,
    },
}

/// The longest wait for an answer a trigger may name: a week.
pub const MAX_UNANSWERED_MINUTES: f64 = 7.0 * 24.0 * 60.0;
/// The shortest: three seconds.
pub const MIN_UNANSWERED_MINUTES: f64 = 0.05;

/// The name of the cron trigger; it is set off by jobs, never by a happening.
pub const SCHEDULE: &str = "schedule";
/// The longest cron expression taken.
const MAX_CRON: usize = 200;

const NAMES: &str = "conversation.created, message.received, message.sent, person.created, person.updated, event.<name>, page.view, conversation.unanswered or schedule";

impl Trigger {
    /// Parses `name` and its `params` (an object, or null for none).
    pub fn parse(name: &str, params: &Value) -> Result<Trigger> {
        let empty = Map::new();
        let params = match params {
            Value::Null => &empty,
            Value::Object(m) => m,
            _ => return Err(Error::invalid("params", "params must be a JSON object")),
        };
        let trigger = match name {
            "conversation.created" => Trigger::ConversationCreated,
            "message.received" => Trigger::MessageReceived,
            "message.sent" => Trigger::MessageSent,
            "person.created" => Trigger::PersonCreated,
            "person.updated" => Trigger::PersonUpdated,
            "page.view" => {
                let url = match params.get("url") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(u)) if !u.is_empty() && u.len() <= 2048 => Some(u.clone()),
                    Some(_) => return Err(Error::invalid("params.url", "url is a glob of 1 to 2048 characters, such as /pricing*")),
                };
                let after_seconds = whole(params, "after_seconds", MAX_AFTER_SECONDS)?;
                let once_per_hours = whole(params, "once_per_hours", MAX_ONCE_PER_HOURS)?;
                only(params, &["url", "after_seconds", "once_per_hours"])?;
                return Ok(Trigger::PageView { url, after_seconds, once_per_hours });
            }
            "conversation.unanswered" => {
                let minutes =
                    params.get("minutes").and_then(Value::as_f64).filter(|m| (MIN_UNANSWERED_MINUTES..=MAX_UNANSWERED_MINUTES).contains(m));
                let minutes = minutes.ok_or_else(|| {
                    Error::invalid(
                        "params.minutes",
                        format!("minutes is a number from {MIN_UNANSWERED_MINUTES} to {MAX_UNANSWERED_MINUTES}"),
                    )
                })?;
                only(params, &["minutes"])?;
                return Ok(Trigger::Unanswered { minutes });
            }
            SCHEDULE => {
                let cron = params.get("cron").and_then(Value::as_str).unwrap_or_default();
                parse_cron(cron)?;
                let filter = params.get("filter").filter(|f| !f.is_null()).cloned();
                only(params, &["cron", "filter"])?;
                return Ok(Trigger::Schedule { cron: cron.trim().to_owned(), filter });
            }
            n => match n.strip_prefix("event.") {
                Some(event) => {
                    events::check_name("trigger", event)?;
                    Trigger::Event(event.to_owned())
                }
                None => return Err(Error::invalid("trigger", format!("unknown trigger {n:?}: use {NAMES}"))),
            },
        };
        only(params, &[])?;
        Ok(trigger)
    }

    pub fn name(&self) -> String {
        match self {
            Trigger::ConversationCreated => "conversation.created".into(),
            Trigger::MessageReceived => "message.received".into(),
            Trigger::MessageSent => "message.sent".into(),
            Trigger::PersonCreated => "person.created".into(),
            Trigger::PersonUpdated => "person.updated".into(),
            Trigger::Event(e) => format!("event.{e}"),
            Trigger::PageView { .. } => "page.view".into(),
            Trigger::Unanswered { .. } => UNANSWERED.into(),
            Trigger::Schedule { .. } => SCHEDULE.into(),
        }
    }

    /// Whether this trigger fires on `h` (narrowed by its params). The trigger
    /// name already matched [`names_for`].
    pub fn accepts(&self, h: &Happening) -> bool {
        match (self, h) {
            (Trigger::PageView { url: Some(glob), .. }, Happening::EventTracked { data, .. }) => {
                data.get("url").and_then(Value::as_str).is_some_and(|u| url_matches(glob, u))
            }
            _ => true,
        }
    }
}

/// The longest stay on a page a greeting may wait for: an hour.
pub const MAX_AFTER_SECONDS: u64 = 3600;
/// The longest period of a once-per-person trigger: a year.
pub const MAX_ONCE_PER_HOURS: u64 = 366 * 24;

/// An optional whole-number param from 1 to `max`.
fn whole(params: &Map<String, Value>, name: &str, max: u64) -> Result<Option<u64>> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64().filter(|n| (1..=max).contains(n)) {
            Some(n) => Ok(Some(n)),
            None => Err(Error::invalid(format!("params.{name}"), format!("{name} is a whole number from 1 to {max}"))),
        },
    }
}

/// A five-field cron expression (minute hour day-of-month month weekday,
/// with names, ranges, steps, `L`, `#` and `@daily`-style aliases); seconds
/// and years are refused, as a rule runs at most once a minute.
fn parse_cron(text: &str) -> Result<croner::Cron> {
    let bad = |why: String| Error::invalid("params.cron", why);
    if text.trim().is_empty() || text.len() > MAX_CRON {
        return Err(bad(format!(
            "cron is required: five fields (minute hour day month weekday), such as \"0 9 * * MON-FRI\", at most {MAX_CRON} characters"
        )));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| bad(format!("cron {text:?} is not a five-field cron expression: {e}")))
}

/// The first time after `after_ms` that `cron` names in `tz`, in epoch ms.
pub fn next_fire(cron: &str, tz: chrono_tz::Tz, after_ms: i64) -> Option<i64> {
    let cron = parse_cron(cron).ok()?;
    let after = chrono::DateTime::from_timestamp_millis(after_ms)?.with_timezone(&tz);
    cron.find_next_occurrence(&after, false).ok().map(|t| t.timestamp_millis())
}

/// Not set off by a happening but by a job queued when a person writes.
pub const UNANSWERED: &str = "conversation.unanswered";

fn only(params: &Map<String, Value>, allowed: &[&str]) -> Result<()> {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(Error::invalid(format!("params.{k}"), format!("this trigger takes no parameter {k:?}"))),
        None => Ok(()),
    }
}

/// The trigger names a happening sets off (a person's first message is both
/// `conversation.created` and `message.received`).
pub fn names_for(h: &Happening) -> Vec<String> {
    match h {
        // Sending is the outbound worker's business; it sets off no rule.
        Happening::OutboundQueued { .. } => Vec::new(),
        Happening::MessageCreated { message, started, .. } => {
            let mut names = Vec::new();
            match message.author.kind.as_str() {
                "person" => {
                    if *started {
                        names.push("conversation.created".to_owned());
                    }
                    names.push("message.received".to_owned());
                }
                // Notes stay inside the team: nothing was sent.
                "teammate" | "bot" if message.kind == parley_engine::chat::Kind::Chat => names.push("message.sent".to_owned()),
                _ => {}
            }
            names
        }
        Happening::PersonCreated { .. } => vec!["person.created".to_owned()],
        Happening::PersonUpdated { .. } => vec!["person.updated".to_owned()],
        Happening::EventTracked { name, .. } if name == "page.view" => vec!["page.view".to_owned()],
        Happening::EventTracked { name, .. } => vec![format!("event.{name}")],
    }
}

/// Matches a URL against a glob (`*` any run of characters, `?` one). A glob
/// starting with `/` is matched against the URL's path and query, so
/// `/pricing*` matches `https://example.com/pricing?plan=pro`.
pub fn url_matches(glob: &str, url: &str) -> bool {
    let target = if glob.starts_with('/') { path_of(url) } else { url };
    glob_matches(glob.as_bytes(), target.as_bytes())
}

fn path_of(url: &str) -> &str {
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| &rest[i..]).unwrap_or("/"),
        None => url,
    }
}

/// Iterative glob matching with one backtrack point: linear in practice, and
/// never exponential on patterns with many stars.
fn glob_matches(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn a_schedule_fires_at_its_next_time_in_the_workspace_timezone() {
        // Friday 2026-11-20 10:00 UTC (11:00 in Paris): the next weekday 9:00
        // in Paris is Monday 08:00 UTC.
        let friday = 1_795_168_800_000;
        assert_eq!(next_fire("0 9 * * MON-FRI", chrono_tz::Europe::Paris, friday), Some(1_795_420_800_000));
        assert_eq!(next_fire("*/15 * * * *", chrono_tz::UTC, friday), Some(friday + 15 * 60_000));
        // Strictly after: a time that is itself a fire time moves on.
        assert_eq!(next_fire("0 10 * * *", chrono_tz::UTC, friday), Some(friday + 24 * 3_600_000));
    }

    #[test]
    fn names_and_params_are_checked() {
        assert_eq!(Trigger::parse("message.received", &Value::Null).unwrap(), Trigger::MessageReceived);
        assert_eq!(Trigger::parse("event.purchased", &json!({})).unwrap(), Trigger::Event("purchased".into()));
        assert_eq!(
            Trigger::parse("page.view", &json!({"url": "/pricing*"})).unwrap(),
            Trigger::PageView { url: Some("/pricing*".into()), after_seconds: None, once_per_hours: None }
        );
        assert_eq!(
            Trigger::parse("page.view", &json!({"url": "/pricing*", "after_seconds": 20, "once_per_hours": 24})).unwrap(),
            Trigger::PageView { url: Some("/pricing*".into()), after_seconds: Some(20), once_per_hours: Some(24) }
        );
        for (bad, field) in
            [(json!({"after_seconds": 0}), "params.after_seconds"), (json!({"once_per_hours": "daily"}), "params.once_per_hours")]
        {
            assert_eq!(Trigger::parse("page.view", &bad).unwrap_err().field(), Some(field), "{bad}");
        }
        let e = Trigger::parse("message.recieved", &Value::Null).unwrap_err();
        assert_eq!(e.field(), Some("trigger"));
        let e = Trigger::parse("event.", &Value::Null).unwrap_err();
        assert_eq!(e.field(), Some("trigger"));
        assert_eq!(
            Trigger::parse("schedule", &json!({"cron": " 0 9 * * MON-FRI "})).unwrap(),
            Trigger::Schedule { cron: "0 9 * * MON-FRI".into(), filter: None }
        );
        for bad in
            [json!({}), json!({"cron": "0 9 * *"}), json!({"cron": "*/5 0 9 * * *"}), json!({"cron": "61 * * * *"}), json!({"cron": 5})]
        {
            assert_eq!(Trigger::parse("schedule", &bad).unwrap_err().field(), Some("params.cron"), "{bad}");
        }
        let e = Trigger::parse("schedule", &json!({"cron": "@daily", "minutes": 5})).unwrap_err();
        assert_eq!(e.field(), Some("params.minutes"));
        let e = Trigger::parse("page.view", &json!({"url": 3})).unwrap_err();
        assert_eq!(e.field(), Some("params.url"));
        let e = Trigger::parse("message.sent", &json!({"url": "/x"})).unwrap_err();
        assert_eq!(e.field(), Some("params.url"));
        assert_eq!(Trigger::parse("conversation.unanswered", &json!({"minutes": 5})).unwrap(), Trigger::Unanswered { minutes: 5.0 });
        for bad in [json!({}), json!({"minutes": 0}), json!({"minutes": "5"}), json!({"minutes": MAX_UNANSWERED_MINUTES + 1.0})] {
            let e = Trigger::parse("conversation.unanswered", &bad).unwrap_err();
            assert_eq!(e.field(), Some("params.minutes"), "{bad}");
        }
        let e = Trigger::parse("message.sent", &json!([1])).unwrap_err();
        assert_eq!(e.field(), Some("params"));
        for t in ["conversation.created", "message.sent", "person.created", "person.updated", "event.a:b", "page.view"] {
            assert_eq!(Trigger::parse(t, &Value::Null).unwrap().name(), t);
        }
    }

    #[test]
    fn url_globs() {
        assert!(url_matches("/pricing*", "https://example.com/pricing?plan=pro"));
        assert!(url_matches("/pricing*", "/pricing"));
        assert!(!url_matches("/pricing*", "https://example.com/about/pricing"));
        assert!(url_matches("*/pricing", "https://example.com/about/pricing"));
        assert!(url_matches("https://*.example.com/*", "https://shop.example.com/cart"));
        assert!(url_matches("/a?c", "http://h/abc"));
        assert!(!url_matches("/a?c", "http://h/ac"));
        assert!(url_matches("/", "https://example.com"));
        assert!(!url_matches(&"*a".repeat(20), &"a".repeat(19)));
    }
}
