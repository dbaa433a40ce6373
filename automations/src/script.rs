//! The rhai sandbox: compiling a rule's script and running it to a list of
//! [`Action`]s.
//!
//! A run is pure: host functions such as `send_chat` only record what the rule
//! wants done, and nothing is applied until the script has finished without
//! error (see [`crate::apply`]). That is what lets `/test` show the actions of
//! a dry run, and a failing script leave no half-done work behind.
//!
//! The engine starts raw (no module loading, no `print` output, no `eval`) with
//! the standard language package, and every run is bounded: operations, call
//! depth, expression depth, string, array and map sizes, variables, actions,
//! and wall-clock time (checked on every operation through `on_progress`).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use parley_engine::chat;
use parley_engine::people::input as person_input;
use rhai::packages::{Package, StandardPackage};
use rhai::{AST, Dynamic, Engine, EvalAltResult, ImmutableString, Position, Scope};
use serde::Serialize;
use serde_json::Value;

/// The largest script accepted, in bytes.
pub const MAX_SCRIPT: usize = 64 * 1024;
/// Operations one run may take; an endless loop reaches this in milliseconds.
pub const MAX_OPERATIONS: u64 = 500_000;
/// Wall-clock time one run may take, host calls (`person_matches`) included.
pub const MAX_WALL: Duration = Duration::from_secs(1);
/// Actions one run may ask for: a rule that wants more is surely looping.
pub const MAX_ACTIONS: usize = 20;
const MAX_STRING: usize = 64 * 1024;
const MAX_ARRAY: usize = 10_000;
const MAX_MAP: usize = 10_000;
const MAX_CALL_LEVELS: usize = 32;
const MAX_EXPR_DEPTH: usize = 64;
const MAX_VARIABLES: usize = 256;
const MAX_FUNCTIONS: usize = 64;
const MAX_SNOOZE_MINUTES: i64 = 365 * 24 * 60;

/// What a rule asks Parley to do. Serialised as `{"type": "send_chat", …}` in
/// `/test` answers and run logs.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// A chat message to the person: from the workspace's bot, or from
    /// `teammate_id` (`send_chat_as`).
    SendChat {
        text: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        teammate_id: Option<String>,
    },
    /// An internal note on the conversation.
    Note {
        text: String,
    },
    Assign {
        to: String,
    },
    Tag {
        name: String,
    },
    Untag {
        name: String,
    },
    SetAttribute {
        name: String,
        #[schema(value_type = Object)]
        value: Value,
    },
    Close,
    Snooze {
        minutes: i64,
    },
    /// Starts the chatbot flow of that name in the conversation.
    StartFlow {
        name: String,
    },
    /// An email to the person (skipped if they have no address or
    /// unsubscribed); subject and text are snippets.
    SendEmail {
        subject: String,
        text: String,
    },
    /// A signed JSON POST to `url`, retried with backoff until it answers 2xx.
    Webhook {
        url: String,
        #[schema(value_type = Object)]
        payload: Value,
    },
}

impl Action {
    /// Whether the action writes to the person (counted by the message rate limit).
    pub fn is_message(&self) -> bool {
        matches!(self, Action::SendChat { .. } | Action::SendEmail { .. })
    }
}

/// A compile or run error, placed in the script where rhai knows the place.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScriptError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl ScriptError {
    fn at(pos: Position, message: String) -> ScriptError {
        ScriptError { line: pos.line(), column: pos.position(), message }
    }
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{} (line {l}, column {c})", self.message),
            (Some(l), None) => write!(f, "{} (line {l})", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// What a script can ask of Parley while it runs. Answers are reads only.
pub trait Host: Send + Sync {
    /// Whether the run's person matches a filter (the filter language of search).
    fn person_matches(&self, filter: &Value) -> Result<bool, String>;
    /// Whether a teammate has the inbox open.
    fn agents_online(&self) -> bool;
    /// Whether it is within the workspace's business hours (always, if none are set).
    fn in_business_hours(&self) -> Result<bool, String>;
}

/// The variables a script sees.
#[derive(Clone, Debug, Default)]
pub struct Input {
    pub event: Value,
    /// `{id, name, email, attributes, tags, company}` or null.
    pub person: Value,
    /// `{id, status, assignee}` or null.
    pub conversation: Value,
    pub now_ms: i64,
}

/// The standard package, built once: building it is the costly part of an engine.
fn standard() -> rhai::Shared<rhai::Module> {
    static PACKAGE: OnceLock<rhai::Shared<rhai::Module>> = OnceLock::new();
    PACKAGE.get_or_init(|| StandardPackage::new().as_shared_module()).clone()
}

/// A raw engine with the standard package and every limit set.
fn sandbox() -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(standard());
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_expr_depths(MAX_EXPR_DEPTH, MAX_EXPR_DEPTH)
        .set_max_string_size(MAX_STRING)
        .set_max_array_size(MAX_ARRAY)
        .set_max_map_size(MAX_MAP)
        .set_max_variables(MAX_VARIABLES)
        .set_max_functions(MAX_FUNCTIONS)
        .set_max_modules(0);
    // `eval` would compile text at run time, outside the checks on save.
    engine.disable_symbol("eval");
    engine
}

/// Compiles a script, or says where it is wrong. The AST does not depend on
/// the engine that runs it (host functions are looked up by name at run
/// time), so one compiled AST serves every run.
pub fn compile(script: &str) -> Result<AST, ScriptError> {
    static COMPILER: OnceLock<Engine> = OnceLock::new();
    if script.len() > MAX_SCRIPT {
        return Err(ScriptError { line: None, column: None, message: format!("the script is longer than {MAX_SCRIPT} bytes") });
    }
    let engine = COMPILER.get_or_init(sandbox);
    engine.compile(script).map_err(|e| ScriptError::at(e.position(), e.err_type().to_string()))
}

type Recorded = Arc<Mutex<Vec<Action>>>;

fn record(actions: &Recorded, action: Action) -> Result<(), Box<EvalAltResult>> {
    let mut list = actions.lock().unwrap_or_else(|p| p.into_inner());
    if list.len() >= MAX_ACTIONS {
        return Err(format!("a run may take at most {MAX_ACTIONS} actions").into());
    }
    list.push(action);
    Ok(())
}

fn text(field: &str, s: &str) -> Result<String, Box<EvalAltResult>> {
    chat::check_body(field, s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

/// The longest email subject a rule may send.
const MAX_SUBJECT: usize = 300;
/// The largest webhook payload, as JSON.
pub const MAX_WEBHOOK_BODY: usize = 64 * 1024;

/// An absolute http(s) URL with a host, as a webhook target.
pub fn webhook_url(s: &str) -> Result<String, String> {
    parley_engine::webhooks::check_url("url", s).map_err(|e| e.to_string())
}

fn id(field: &str, s: &str) -> Result<String, Box<EvalAltResult>> {
    let s = s.trim();
    if s.is_empty() || s.len() > 100 {
        return Err(format!("{field} must be an id").into());
    }
    Ok(s.to_owned())
}

fn tag_name(s: &str) -> Result<String, Box<EvalAltResult>> {
    let tags = person_input::tags("tag", &[s.to_owned()]).map_err(|e| e.to_string())?;
    tags.into_iter().next().ok_or_else(|| "a tag must not be empty".into())
}

/// Registers the host functions, each recording into `actions` or asking `host`.
fn register_host(engine: &mut Engine, actions: &Recorded, host: &Arc<dyn Host>) {
    let a = actions.clone();
    engine.register_fn("send_chat", move |t: ImmutableString| {
        record(&a, Action::SendChat { text: text("send_chat", &t)?, teammate_id: None })
    });
    let a = actions.clone();
    engine.register_fn("send_chat_as", move |who: ImmutableString, t: ImmutableString| {
        record(&a, Action::SendChat { text: text("send_chat_as", &t)?, teammate_id: Some(id("teammate_id", &who)?) })
    });
    let a = actions.clone();
    engine.register_fn("note", move |t: ImmutableString| record(&a, Action::Note { text: text("note", &t)? }));
    let a = actions.clone();
    engine.register_fn("assign", move |to: ImmutableString| record(&a, Action::Assign { to: id("assign", &to)? }));
    let a = actions.clone();
    engine.register_fn("tag", move |name: ImmutableString| record(&a, Action::Tag { name: tag_name(&name)? }));
    let a = actions.clone();
    engine.register_fn("untag", move |name: ImmutableString| record(&a, Action::Untag { name: tag_name(&name)? }));
    let a = actions.clone();
    engine.register_fn("set_attribute", move |name: ImmutableString, value: Dynamic| {
        person_input::check_attribute_name("set_attribute", &name).map_err(|e| e.to_string())?;
        let value: Value = rhai::serde::from_dynamic(&value)?;
        // The same checks a profile update makes, so the action will apply
        // (null removes the attribute).
        if !value.is_null() {
            person_input::attribute("set_attribute", &value, None).map_err(|e| e.to_string())?;
        }
        record(&a, Action::SetAttribute { name: name.to_string(), value })
    });
    let a = actions.clone();
    engine.register_fn("close", move || record(&a, Action::Close));
    let a = actions.clone();
    engine.register_fn("snooze", move |minutes: i64| {
        if !(1..=MAX_SNOOZE_MINUTES).contains(&minutes) {
            return Err(format!("snooze takes 1 to {MAX_SNOOZE_MINUTES} minutes").into());
        }
        record(&a, Action::Snooze { minutes })
    });
    let a = actions.clone();
    engine.register_fn("start_flow", move |name: ImmutableString| {
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err("start_flow takes the name of a flow".into());
        }
        record(&a, Action::StartFlow { name: name.to_owned() })
    });
    let a = actions.clone();
    engine.register_fn("send_email", move |subject: ImmutableString, body: ImmutableString| {
        let subject = subject.trim();
        if subject.is_empty() || subject.len() > MAX_SUBJECT {
            return Err(format!("send_email takes a subject of 1 to {MAX_SUBJECT} characters").into());
        }
        record(&a, Action::SendEmail { subject: subject.to_owned(), text: text("send_email", &body)? })
    });
    let a = actions.clone();
    engine.register_fn("webhook", move |url: ImmutableString, payload: Dynamic| {
        let url = webhook_url(&url).map_err(|e| format!("webhook: {e}"))?;
        let payload: Value = rhai::serde::from_dynamic(&payload)?;
        if serde_json::to_vec(&payload).map_or(usize::MAX, |b| b.len()) > MAX_WEBHOOK_BODY {
            return Err(format!("webhook: the payload is over {MAX_WEBHOOK_BODY} bytes as JSON").into());
        }
        record(&a, Action::Webhook { url, payload })
    });
    let h = host.clone();
    engine.register_fn("agents_online", move || h.agents_online());
    let h = host.clone();
    engine.register_fn("in_business_hours", move || -> Result<bool, Box<EvalAltResult>> {
        h.in_business_hours().map_err(|e| format!("in_business_hours: {e}").into())
    });
    let h = host.clone();
    engine.register_fn("person_matches", move |filter: rhai::Map| -> Result<bool, Box<EvalAltResult>> {
        let filter: Value = rhai::serde::from_dynamic(&Dynamic::from_map(filter))?;
        h.person_matches(&filter).map_err(|e| format!("person_matches: {e}").into())
    });
}

/// The `now` a script sees: UTC, as a map `{ms, iso, hour, minute, weekday}`
/// (weekday 1 = Monday … 7 = Sunday).
fn now_value(now_ms: i64) -> Value {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    serde_json::json!({
        "ms": now_ms,
        "iso": parley_engine::util::rfc3339(now_ms),
        "hour": t.hour(),
        "minute": t.minute(),
        "weekday": t.weekday().number_from_monday(),
    })
}

fn to_dynamic(v: &Value) -> Result<Dynamic, ScriptError> {
    rhai::serde::to_dynamic(v).map_err(|e| ScriptError { line: None, column: None, message: e.to_string() })
}

/// Runs a compiled script to the list of actions it asks for. Blocking: call it
/// off the async runtime (`spawn_blocking`); `host` may block too.
pub fn run(ast: &AST, input: &Input, host: Arc<dyn Host>) -> Result<Vec<Action>, ScriptError> {
    execute(ast, input, host).map(|(actions, _)| actions)
}

/// Evaluates a flow's branch condition: true or false, and no actions.
pub fn condition(ast: &AST, input: &Input, host: Arc<dyn Host>) -> Result<bool, ScriptError> {
    let (actions, value) = execute(ast, input, host)?;
    if !actions.is_empty() {
        return Err(ScriptError { line: None, column: None, message: "a condition cannot take actions".into() });
    }
    value.as_bool().map_err(|t| ScriptError { line: None, column: None, message: format!("a condition must be true or false, not {t}") })
}

/// What the current run on this thread records into and asks: the
/// thread's sandbox is built once, with host functions that reach the run
/// through this slot.
struct Slot {
    actions: Recorded,
    host: Mutex<Option<Arc<dyn Host>>>,
    started: Mutex<Instant>,
}

/// The host functions' view of the slot: whichever run is current.
struct Current(Arc<Slot>);

impl Current {
    fn host(&self) -> Result<Arc<dyn Host>, String> {
        self.0.host.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or_else(|| "no run is in progress".to_owned())
    }
}

impl Host for Current {
    fn person_matches(&self, filter: &Value) -> Result<bool, String> {
        self.host()?.person_matches(filter)
    }
    fn agents_online(&self) -> bool {
        self.host().is_ok_and(|h| h.agents_online())
    }
    fn in_business_hours(&self) -> Result<bool, String> {
        self.host()?.in_business_hours()
    }
}

thread_local! {
    /// Building an engine and registering the host functions costs more than
    /// running a typical rule, so each (blocking) thread keeps one.
    static SANDBOX: (Engine, Arc<Slot>) = {
        let slot = Arc::new(Slot { actions: Arc::default(), host: Mutex::new(None), started: Mutex::new(Instant::now()) });
        let mut engine = sandbox();
        let current: Arc<dyn Host> = Arc::new(Current(slot.clone()));
        register_host(&mut engine, &slot.actions, &current);
        let clock = slot.clone();
        engine.on_progress(move |_| {
            let started = *clock.started.lock().unwrap_or_else(|p| p.into_inner());
            if started.elapsed() > MAX_WALL { Some(Dynamic::UNIT) } else { None }
        });
        (engine, slot)
    };
}

/// Runs a script to its actions and the value of its last expression.
fn execute(ast: &AST, input: &Input, host: Arc<dyn Host>) -> Result<(Vec<Action>, Dynamic), ScriptError> {
    let mut scope = Scope::new();
    scope.push_constant("event", to_dynamic(&input.event)?);
    scope.push_constant("person", to_dynamic(&input.person)?);
    scope.push_constant("conversation", to_dynamic(&input.conversation)?);
    scope.push_constant("now", to_dynamic(&now_value(input.now_ms))?);
    SANDBOX.with(|(engine, slot)| {
        slot.actions.lock().unwrap_or_else(|p| p.into_inner()).clear();
        *slot.host.lock().unwrap_or_else(|p| p.into_inner()) = Some(host);
        *slot.started.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        let value = engine.eval_ast_with_scope::<Dynamic>(&mut scope, ast);
        // The host holds database handles: not kept past its run.
        *slot.host.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let actions = std::mem::take(&mut *slot.actions.lock().unwrap_or_else(|p| p.into_inner()));
        Ok((actions, value.map_err(|e| explain(*e))?))
    })
}

/// A run error in words a rule's author can act on.
fn explain(outer: EvalAltResult) -> ScriptError {
    // An error inside a script function comes wrapped in the call: report
    // the place and cause inside it.
    let e = outer.unwrap_inner();
    let pos = if e.position().is_none() { outer.position() } else { e.position() };
    let message = match e {
        EvalAltResult::ErrorTerminated(..) => format!("the script ran longer than {} ms and was stopped", MAX_WALL.as_millis()),
        EvalAltResult::ErrorTooManyOperations(..) => {
            format!("the script took more than {MAX_OPERATIONS} operations and was stopped (an endless loop?)")
        }
        EvalAltResult::ErrorDataTooLarge(what, ..) => format!("{what} too large: the script was stopped"),
        EvalAltResult::ErrorStackOverflow(..) => "calls nested too deeply: the script was stopped".to_owned(),
        // The message without rhai's own position suffix, which is reported apart.
        EvalAltResult::ErrorRuntime(v, ..) => v.to_string(),
        other => {
            let s = other.to_string();
            match s.rfind(" (line ") {
                Some(i) => s[..i].to_owned(),
                None => s,
            }
        }
    };
    ScriptError::at(pos, message)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    struct Fake {
        matches: bool,
        online: bool,
        open: bool,
    }

    impl Host for Fake {
        fn person_matches(&self, filter: &Value) -> Result<bool, String> {
            if filter.get("field").is_none() { Err("a filter needs a field".into()) } else { Ok(self.matches) }
        }
        fn agents_online(&self) -> bool {
            self.online
        }
        fn in_business_hours(&self) -> Result<bool, String> {
            Ok(self.open)
        }
    }

    fn host(matches: bool, online: bool) -> Arc<dyn Host> {
        Arc::new(Fake { matches, online, open: true })
    }

    #[test]
    fn after_hours_a_script_can_answer_differently() {
        let script = r#"if in_business_hours() { tag("open") } else { send_chat("We are closed; we answer tomorrow from 9.") }"#;
        let ast = compile(script).unwrap();
        let closed: Arc<dyn Host> = Arc::new(Fake { matches: false, online: false, open: false });
        assert_eq!(
            run(&ast, &input(), closed).unwrap(),
            vec![Action::SendChat { text: "We are closed; we answer tomorrow from 9.".into(), teammate_id: None }]
        );
        assert_eq!(run(&ast, &input(), host(false, false)).unwrap(), vec![Action::Tag { name: "open".into() }]);
    }

    fn input() -> Input {
        Input {
            event: json!({"type": "message.received", "message": {"body": "What are your prices?"}}),
            person: json!({"id": "p1", "name": "Ann", "email": "ann@example.com", "attributes": {"plan": "pro"}, "tags": ["vip"], "company": null}),
            conversation: json!({"id": "c1", "status": "open", "assignee": null}),
            now_ms: 1_700_000_000_000,
        }
    }

    fn run_script(script: &str, host: Arc<dyn Host>) -> Result<Vec<Action>, ScriptError> {
        let ast = compile(script).map_err(|e| panic!("compiles: {e}")).unwrap();
        run(&ast, &input(), host)
    }

    #[test]
    fn a_script_builds_actions_from_what_it_sees() {
        let actions = run_script(
            r#"
            if event.message.body.contains("price") && person.attributes.plan == "pro" {
                send_chat(`Hi ${person.name}, our prices are on /pricing`);
                tag("Pricing ");
                set_attribute("asked_prices", true);
                assign("t1");
            }
            if "vip" in person.tags { note("VIP asked"); }
            if now.weekday == 2 { snooze(30); }
            "#,
            host(true, false),
        )
        .unwrap();
        assert_eq!(
            actions,
            vec![
                Action::SendChat { text: "Hi Ann, our prices are on /pricing".into(), teammate_id: None },
                Action::Tag { name: "pricing".into() },
                Action::SetAttribute { name: "asked_prices".into(), value: json!(true) },
                Action::Assign { to: "t1".into() },
                Action::Note { text: "VIP asked".into() },
                // 2023-11-14 was a Tuesday.
                Action::Snooze { minutes: 30 },
            ]
        );
    }

    #[test]
    fn host_answers_steer_the_script() {
        let script = r#"if person_matches(#{field: "attributes.plan", op: "eq", value: "pro"}) && !agents_online() { send_chat_as("t9", "We are away"); close(); }"#;
        assert_eq!(
            run_script(script, host(true, false)).unwrap(),
            vec![Action::SendChat { text: "We are away".into(), teammate_id: Some("t9".into()) }, Action::Close]
        );
        assert_eq!(run_script(script, host(false, false)).unwrap(), vec![]);
        assert_eq!(run_script(script, host(true, true)).unwrap(), vec![]);
    }

    #[test]
    fn compile_errors_carry_line_and_column() {
        let e = compile("let x = 1;\nif x == {\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.column.is_some());
        assert!(!e.message.contains("(line"), "position is reported apart: {}", e.message);
        let e = compile(&"x".repeat(MAX_SCRIPT + 1)).unwrap_err();
        assert!(e.message.contains("longer than"));
    }

    #[test]
    fn an_endless_loop_stops_quickly() {
        let started = Instant::now();
        let e = run_script("let n = 0;\nloop { n += 1; }", host(true, true)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
        assert!(e.message.contains("stopped"), "{e}");
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn huge_strings_and_arrays_are_refused() {
        let e = run_script(r#"let s = "x"; loop { s += s; }"#, host(true, true)).unwrap_err();
        assert!(e.message.contains("too large"), "{e}");
        let e = run_script("let a = []; a.pad(100000000, 0);", host(true, true)).unwrap_err();
        assert!(e.message.contains("too large"), "{e}");
    }

    #[test]
    fn deep_recursion_is_stopped() {
        let e = run_script("fn f(n) { f(n + 1) }\nf(0);", host(true, true)).unwrap_err();
        assert!(e.message.contains("stopped") || e.message.contains("too deeply"), "{e}");
    }

    #[test]
    fn scripts_cannot_reach_outside() {
        assert!(compile(r#"import "std" as s;"#).is_err() || run_script(r#"import "std" as s;"#, host(true, true)).is_err());
        assert!(compile(r#"eval("send_chat(\"x\")")"#).is_err() || run_script(r#"eval("1")"#, host(true, true)).is_err());
    }

    #[test]
    fn bad_arguments_and_too_many_actions_are_errors() {
        let e = run_script(r#"send_chat("   ");"#, host(true, true)).unwrap_err();
        assert!(e.message.contains("empty"), "{e}");
        let e = run_script("snooze(0);", host(true, true)).unwrap_err();
        assert!(e.message.contains("snooze"), "{e}");
        let e = run_script(r#"for i in 0..100 { tag("t" + i); }"#, host(true, true)).unwrap_err();
        assert!(e.message.contains("at most"), "{e}");
        let e = run_script(r#"person_matches(#{op: "eq"});"#, host(true, true)).unwrap_err();
        assert!(e.message.contains("person_matches"), "{e}");
        let e = run_script("let x = person.nothing.deeper;", host(true, true)).unwrap_err();
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn the_script_cannot_change_what_it_sees() {
        assert!(run_script(r#"person = 1;"#, host(true, true)).is_err() || compile("person = 1;").is_err());
    }
}
