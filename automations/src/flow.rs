//! Chatbot flows as a marketer writes them: a graph of steps stored as JSON on
//! the automation, checked whole when it is saved so that a running bot never
//! meets a missing step, a bad script or an unreachable button.
//!
//! ```json
//! {"start": "hello", "nodes": {
//!   "hello": {"type": "message", "text": "Hi! What brings you here?",
//!             "buttons": [{"label": "Pricing", "next": "email"}, {"label": "Support", "next": "human"}]},
//!   "email": {"type": "ask", "text": "Your work email?", "attribute": "email", "validate": "email", "next": "size"},
//!   "size":  {"type": "branch", "conditions": [{"if": "person.attributes.seats > 50", "next": "sales"}], "else": "human"},
//!   "sales": {"type": "action", "script": "tag(\"lead\");", "next": "human"},
//!   "human": {"type": "handoff", "teammate_id": "…", "text": "Connecting you with the team."}
//! }}
//! ```
//!
//! How a flow runs lives in [`crate::bot`].

use std::collections::{BTreeMap, HashSet};

use parley_engine::Error;
use parley_engine::people::input as person_input;
use parley_engine::{chat, snippets};
use serde::Deserialize;
use serde_json::Value;

use crate::script::{self, ScriptError};

/// Steps in one flow.
pub const MAX_NODES: usize = 200;
/// Buttons on one message.
pub const MAX_BUTTONS: usize = 10;
/// The longest `wait`: 30 days.
pub const MAX_WAIT_SECONDS: u64 = 30 * 24 * 3600;
/// Bad answers to a question before the bot gives up on it.
pub const DEFAULT_ATTEMPTS: u32 = 3;

/// A checked flow.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    pub start: String,
    pub nodes: BTreeMap<String, Node>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Node {
    /// Says something; with buttons it waits for the person to pick one.
    Message {
        text: String,
        #[serde(default)]
        buttons: Vec<Button>,
        next: Option<String>,
    },
    /// Asks for free text, checks it, stores it on the person, and asks again
    /// (with `retry_text`) when it does not pass.
    Ask {
        text: String,
        /// An attribute name, or `email`, `name` or `phone` for those fields.
        attribute: String,
        #[serde(default)]
        validate: Validate,
        retry_text: Option<String>,
        max_attempts: Option<u32>,
        next: Option<String>,
        /// Where to go when every attempt failed; the flow ends without it.
        on_fail: Option<String>,
    },
    /// The first condition (a rhai expression) that is true picks the next step.
    Branch {
        conditions: Vec<Condition>,
        #[serde(rename = "else")]
        otherwise: Option<String>,
    },
    /// A rhai script, with the same host functions as a rule.
    Action { script: String, next: Option<String> },
    /// Waits, surviving restarts, then goes on.
    Wait { seconds: u64, next: Option<String> },
    /// Hands the conversation to a teammate and ends the flow.
    Handoff { teammate_id: Option<String>, team: Option<String>, text: Option<String> },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Button {
    pub label: String,
    pub next: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(rename = "if")]
    pub expr: String,
    pub next: String,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Validate {
    #[default]
    Text,
    Email,
    Number,
    Phone,
}

impl Validate {
    fn noun(self) -> &'static str {
        match self {
            Validate::Text => "answer",
            Validate::Email => "email address",
            Validate::Number => "number",
            Validate::Phone => "phone number",
        }
    }

    /// The answer as it is stored, or `None` when it does not pass.
    pub fn check(self, answer: &str) -> Option<Value> {
        let a = answer.trim();
        if a.is_empty() {
            return None;
        }
        match self {
            Validate::Text => Some(Value::String(a.to_owned())),
            Validate::Email => person_input::email("answer", a).ok().map(Value::String),
            Validate::Number => {
                let n: f64 = a.replace([',', ' '], "").parse().ok().filter(|n: &f64| n.is_finite())?;
                serde_json::Number::from_f64(n).map(Value::Number)
            }
            Validate::Phone => {
                let digits = a.chars().filter(char::is_ascii_digit).count();
                let ok = (6..=15).contains(&digits) && a.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
                ok.then(|| Value::String(a.to_owned()))
            }
        }
    }
}

impl Node {
    /// The question asked again after a bad answer.
    pub fn retry_text(&self) -> Option<String> {
        match self {
            Node::Ask { text, validate, retry_text, .. } => {
                Some(retry_text.clone().unwrap_or_else(|| format!("That does not look like a valid {}. {text}", validate.noun())))
            }
            _ => None,
        }
    }

    fn nexts(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        match self {
            Node::Message { buttons, next, .. } => {
                out.extend(buttons.iter().enumerate().filter_map(|(i, b)| b.next.as_deref().map(|n| (format!("buttons.{i}.next"), n))));
                out.extend(next.as_deref().map(|n| ("next".to_owned(), n)));
            }
            Node::Ask { next, on_fail, .. } => {
                out.extend(next.as_deref().map(|n| ("next".to_owned(), n)));
                out.extend(on_fail.as_deref().map(|n| ("on_fail".to_owned(), n)));
            }
            Node::Branch { conditions, otherwise } => {
                out.extend(conditions.iter().enumerate().map(|(i, c)| (format!("conditions.{i}.next"), c.next.as_str())));
                out.extend(otherwise.as_deref().map(|n| ("else".to_owned(), n)));
            }
            Node::Action { next, .. } | Node::Wait { next, .. } => out.extend(next.as_deref().map(|n| ("next".to_owned(), n))),
            Node::Handoff { .. } => {}
        }
        out
    }
}

/// A problem in a flow, at a path inside it (`nodes.email.validate`).
#[derive(Clone, Debug, PartialEq)]
pub struct FlowError {
    pub field: String,
    pub message: String,
    /// For a script inside the flow: where in that script.
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl FlowError {
    fn at(field: impl Into<String>, message: impl Into<String>) -> FlowError {
        FlowError { field: field.into(), message: message.into(), line: None, column: None }
    }

    fn script(field: String, e: ScriptError) -> FlowError {
        FlowError { field, message: e.message, line: e.line, column: e.column }
    }

    /// As the API's 422, the field prefixed with `flow.`.
    pub fn into_error(self) -> Error {
        let message = match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{} (line {l}, column {c})", self.message),
            _ => self.message,
        };
        Error::Unprocessable { code: "invalid_flow", field: format!("flow.{}", self.field), message }
    }
}

/// Parses and checks a flow: every step reachable by name, texts and scripts
/// valid, buttons distinct. The first problem found is the answer.
pub fn parse(value: &Value) -> std::result::Result<Flow, FlowError> {
    let flow: Flow = serde_json::from_value(value.clone()).map_err(|e| FlowError::at(shape_path(value, &e.to_string()), e.to_string()))?;
    if flow.nodes.is_empty() || flow.nodes.len() > MAX_NODES {
        return Err(FlowError::at("nodes", format!("a flow has 1 to {MAX_NODES} steps")));
    }
    if !flow.nodes.contains_key(&flow.start) {
        return Err(FlowError::at("start", format!("there is no step {:?}", flow.start)));
    }
    for (id, node) in &flow.nodes {
        let at = |f: &str| format!("nodes.{id}.{f}");
        if id.is_empty() || id.len() > 100 {
            return Err(FlowError::at(format!("nodes.{id}"), "step names are 1 to 100 characters"));
        }
        for (field, next) in node.nexts() {
            if !flow.nodes.contains_key(next) {
                return Err(FlowError::at(at(&field), format!("there is no step {next:?}")));
            }
        }
        let text_ok = |field: &str, t: &str| {
            chat::check_body(field, t).and_then(|()| snippets::check(field, t)).map_err(|e| FlowError::at(at(field), e.to_string()))
        };
        match node {
            Node::Message { text, buttons, .. } => {
                text_ok("text", text)?;
                if buttons.len() > MAX_BUTTONS {
                    return Err(FlowError::at(at("buttons"), format!("at most {MAX_BUTTONS} buttons")));
                }
                let mut seen = HashSet::new();
                for (i, b) in buttons.iter().enumerate() {
                    let label = b.label.trim();
                    if label.is_empty() || label.len() > 100 || label != b.label {
                        return Err(FlowError::at(
                            at(&format!("buttons.{i}.label")),
                            "a label is 1 to 100 characters without spaces around it",
                        ));
                    }
                    if !seen.insert(label.to_lowercase()) {
                        return Err(FlowError::at(at(&format!("buttons.{i}.label")), "two buttons have this label"));
                    }
                }
            }
            Node::Ask { text, attribute, retry_text, max_attempts, .. } => {
                text_ok("text", text)?;
                if let Some(r) = retry_text {
                    text_ok("retry_text", r)?;
                }
                if !matches!(attribute.as_str(), "email" | "name" | "phone") {
                    person_input::check_attribute_name("attribute", attribute)
                        .map_err(|e| FlowError::at(at("attribute"), e.to_string()))?;
                }
                if max_attempts.is_some_and(|n| !(1..=10).contains(&n)) {
                    return Err(FlowError::at(at("max_attempts"), "max_attempts is 1 to 10"));
                }
            }
            Node::Branch { conditions, .. } => {
                if conditions.is_empty() {
                    return Err(FlowError::at(at("conditions"), "a branch needs at least one condition"));
                }
                for (i, c) in conditions.iter().enumerate() {
                    script::compile(&c.expr).map_err(|e| FlowError::script(at(&format!("conditions.{i}.if")), e))?;
                }
            }
            Node::Action { script: s, .. } => {
                script::compile(s).map_err(|e| FlowError::script(at("script"), e))?;
            }
            Node::Wait { seconds, .. } => {
                if !(1..=MAX_WAIT_SECONDS).contains(seconds) {
                    return Err(FlowError::at(at("seconds"), format!("a wait is 1 to {MAX_WAIT_SECONDS} seconds")));
                }
            }
            Node::Handoff { teammate_id, team, text } => {
                if let Some(t) = text {
                    text_ok("text", t)?;
                }
                if team.as_ref().is_some_and(|t| t.trim().is_empty()) {
                    return Err(FlowError::at(at("team"), "team must be a team's id or name"));
                }
                if teammate_id.as_ref().is_some_and(|t| t.trim().is_empty()) {
                    return Err(FlowError::at(at("teammate_id"), "teammate_id must be a teammate's id"));
                }
            }
        }
    }
    Ok(flow)
}

/// Points a shape error (unknown field, wrong type) at the step it is in:
/// serde names the field but not where, so find the step whose JSON fails.
fn shape_path(value: &Value, message: &str) -> String {
    let Some(nodes) = value.get("nodes").and_then(Value::as_object) else {
        // The top level: `start` or `nodes` missing or of the wrong kind.
        return match message.split('`').nth(1) {
            Some(f @ ("start" | "nodes")) if value.is_object() => f.to_owned(),
            _ if value.get("start").is_some_and(|s| !s.is_string()) => "start".into(),
            _ if value.is_object() => "nodes".into(),
            _ => String::new(),
        };
    };
    for (id, node) in nodes {
        if let Err(e) = serde_json::from_value::<Node>(node.clone()) {
            let e = e.to_string();
            let field = e
                .split('`')
                .nth(1)
                .filter(|_| e.starts_with("unknown field") || e.starts_with("missing field") || e.starts_with("unknown variant"));
            return match field {
                Some(_) if e.starts_with("unknown variant") => format!("nodes.{id}.type"),
                Some(f) => format!("nodes.{id}.{f}"),
                None => format!("nodes.{id}"),
            };
        }
    }
    if message.contains("start") { "start".into() } else { String::new() }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn lead_flow() -> Value {
        json!({"start": "hello", "nodes": {
            "hello": {"type": "message", "text": "Hi!", "buttons": [{"label": "Pricing", "next": "email"}, {"label": "Support", "next": "human"}]},
            "email": {"type": "ask", "text": "Your email?", "attribute": "email", "validate": "email", "next": "size"},
            "size": {"type": "branch", "conditions": [{"if": "person.attributes.seats > 50", "next": "sales"}], "else": "human"},
            "sales": {"type": "action", "script": "tag(\"lead\");", "next": "pause"},
            "pause": {"type": "wait", "seconds": 60, "next": "human"},
            "human": {"type": "handoff", "text": "A teammate will be with you."}
        }})
    }

    #[test]
    fn a_whole_flow_parses() {
        let f = parse(&lead_flow()).unwrap();
        assert_eq!(f.start, "hello");
        assert_eq!(f.nodes.len(), 6);
        assert!(matches!(&f.nodes["email"], Node::Ask { validate: Validate::Email, .. }));
    }

    fn error_of(mut flow: Value, edit: impl FnOnce(&mut Value)) -> FlowError {
        edit(&mut flow);
        parse(&flow).unwrap_err()
    }

    #[test]
    fn each_mistake_names_its_place() {
        let e = error_of(lead_flow(), |f| f["start"] = json!("nowhere"));
        assert_eq!(e.field, "start");
        let e = error_of(lead_flow(), |f| f["nodes"]["hello"]["buttons"][1]["next"] = json!("gone"));
        assert_eq!(e.field, "nodes.hello.buttons.1.next");
        let e = error_of(lead_flow(), |f| f["nodes"]["hello"]["buttons"][1]["label"] = json!("pricing"));
        assert_eq!(e.field, "nodes.hello.buttons.1.label");
        let e = error_of(lead_flow(), |f| f["nodes"]["email"]["colour"] = json!("red"));
        assert_eq!(e.field, "nodes.email.colour", "{e:?}");
        let e = error_of(lead_flow(), |f| f["nodes"]["email"]["validate"] = json!("shoe size"));
        assert!(e.field.starts_with("nodes.email"), "{e:?}");
        let e = error_of(lead_flow(), |f| f["nodes"]["size"]["conditions"][0]["if"] = json!("person.seats >"));
        assert_eq!(e.field, "nodes.size.conditions.0.if");
        assert!(e.line.is_some());
        let e = error_of(lead_flow(), |f| f["nodes"]["sales"]["script"] = json!("tag(;"));
        assert_eq!(e.field, "nodes.sales.script");
        let e = error_of(lead_flow(), |f| f["nodes"]["pause"]["seconds"] = json!(0));
        assert_eq!(e.field, "nodes.pause.seconds");
        let e = error_of(lead_flow(), |f| f["nodes"]["hello"]["text"] = json!(" "));
        assert_eq!(e.field, "nodes.hello.text");
        let e = error_of(lead_flow(), |f| f["nodes"]["email"]["attribute"] = json!("no spaces allowed"));
        assert_eq!(e.field, "nodes.email.attribute");
        let e = error_of(lead_flow(), |f| f["nodes"]["human"]["type"] = json!("teleport"));
        assert_eq!(e.field, "nodes.human.type", "{e:?}");
        assert_eq!(parse(&json!({})).unwrap_err().field, "start");
        assert_eq!(parse(&json!({"start": "a"})).unwrap_err().field, "nodes");
        assert_eq!(parse(&json!({"start": 1, "nodes": []})).unwrap_err().field, "start");
        let e = error_of(lead_flow(), |f| f["nodes"] = json!({}));
        assert_eq!(e.field, "nodes");
        assert_eq!(e.clone().into_error().field(), Some("flow.nodes"));
    }

    #[test]
    fn answers_are_checked_by_kind() {
        assert_eq!(Validate::Email.check(" Ann@Example.com "), Some(json!("ann@example.com")));
        assert_eq!(Validate::Email.check("ann at example"), None);
        assert_eq!(Validate::Number.check("1,200"), Some(json!(1200.0)));
        assert_eq!(Validate::Number.check("lots"), None);
        assert_eq!(Validate::Phone.check("+44 20 7946 0958"), Some(json!("+44 20 7946 0958")));
        assert_eq!(Validate::Phone.check("call me"), None);
        assert_eq!(Validate::Text.check("  "), None);
        assert_eq!(Validate::Text.check("fine"), Some(json!("fine")));
    }
}
