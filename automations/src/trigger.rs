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
    },
}

/// Triggers that are part of the contract but not served yet: refused with a
/// clear message rather than accepted and never run.
const LATER: &[&str] = &["conversation.unanswered", "schedule"];

const NAMES: &str = "conversation.created, message.received, message.sent, person.created, person.updated, event.<name> or page.view";

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
                only(params, &["url"])?;
                return Ok(Trigger::PageView { url });
            }
            n if LATER.contains(&n) => return Err(Error::invalid("trigger", format!("the trigger {n} is not available yet"))),
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
        }
    }

    /// Whether this trigger fires on `h` (narrowed by its params). The trigger
    /// name already matched [`names_for`].
    pub fn accepts(&self, h: &Happening) -> bool {
        match (self, h) {
            (Trigger::PageView { url: Some(glob) }, Happening::EventTracked { data, .. }) => {
                data.get("url").and_then(Value::as_str).is_some_and(|u| url_matches(glob, u))
            }
            _ => true,
        }
    }
}

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
    fn names_and_params_are_checked() {
        assert_eq!(Trigger::parse("message.received", &Value::Null).unwrap(), Trigger::MessageReceived);
        assert_eq!(Trigger::parse("event.purchased", &json!({})).unwrap(), Trigger::Event("purchased".into()));
        assert_eq!(Trigger::parse("page.view", &json!({"url": "/pricing*"})).unwrap(), Trigger::PageView { url: Some("/pricing*".into()) });
        let e = Trigger::parse("message.recieved", &Value::Null).unwrap_err();
        assert_eq!(e.field(), Some("trigger"));
        let e = Trigger::parse("event.", &Value::Null).unwrap_err();
        assert_eq!(e.field(), Some("trigger"));
        let e = Trigger::parse("schedule", &json!({"cron": "* * * * *"})).unwrap_err();
        assert!(e.to_string().contains("not available yet"));
        let e = Trigger::parse("page.view", &json!({"url": 3})).unwrap_err();
        assert_eq!(e.field(), Some("params.url"));
        let e = Trigger::parse("message.sent", &json!({"url": "/x"})).unwrap_err();
        assert_eq!(e.field(), Some("params.url"));
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
