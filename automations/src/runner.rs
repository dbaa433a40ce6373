//! The worker: listens to the engine's bus, finds the enabled rules whose
//! trigger a happening sets off, runs each in the sandbox, applies its actions
//! and logs the run.
//!
//! Happenings caused by an automation are ignored, so a rule's own message or
//! tag never sets off a rule. Compiled scripts are cached per automation and
//! version (its `updated_at`), so a change is picked up on the next run.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parley_engine::bus::Happening;
use parley_engine::chat::{self, Message};
use parley_engine::filter;
use parley_engine::hub::workspace_stream;
use parley_engine::people::{Person, profile};
use parley_engine::search::{self, SearchRequest};
use parley_engine::util::{now_ms, rfc3339};
use parley_engine::{Db, Engine, Error, Result, with_db, with_tx};
use rhai::AST;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::apply::{self, Subject};
use crate::jobs::{Job, Queue};
use crate::script::{self, Action, Host, Input};
use crate::store::{self, Automation, Outcome, RunRecord};
use crate::trigger::{self, Trigger};

/// Automated chat messages allowed per conversation per minute (per node).
pub const MAX_MESSAGES_PER_MINUTE: usize = 5;
/// Compiled scripts kept in memory.
const MAX_COMPILED: usize = 10_000;
/// People a schedule with a filter runs for at one time, at most.
const MAX_SCHEDULED_PEOPLE: usize = 10_000;
/// People read per page while doing so.
const SCHEDULE_PAGE: i64 = 200;
/// Happenings handled at once; each runs its rules one after another.
const CONCURRENCY: usize = 4;
/// Conversations whose last handled happening is remembered (for ordering)
/// before the finished ones are forgotten.
const MAX_CHAINS: usize = 10_000;

/// The running automations of this node.
#[derive(Clone)]
pub struct Automations {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    /// Jobs for later: flow waits, unanswered checks.
    pub(crate) queue: Queue,
    /// Compiled scripts by automation id, with the version they were built from.
    compiled: Mutex<HashMap<String, (i64, Arc<AST>)>>,
    /// When automated messages went to each conversation in the last minute.
    sent: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// For webhooks: one client, so connections to a receiver are reused.
    pub(crate) http: reqwest::Client,
    /// How long a chat message may go unseen before it is emailed.
    pub(crate) fallback_delay: Duration,
}

/// Opens the job queue, then listens to the engine's bus and works the queue
/// until the engine shuts down.
/// `email_fallback_delay`: how long a teammate's or the bot's chat message
/// may go unseen by an offline person before it is emailed to them.
pub async fn start(engine: &Engine, email_fallback_delay: Duration) -> anyhow::Result<Automations> {
    let queue = Queue::open(&engine.db).await?;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let automations = Automations {
        inner: Arc::new(Inner {
            engine: engine.clone(),
            queue: queue.clone(),
            compiled: Mutex::default(),
            sent: Mutex::default(),
            http,
            fallback_delay: email_fallback_delay,
        }),
    };
    automations.queue_planned_fallbacks().await?;
    automations.queue_sending_outbounds().await?;
    queue.work(automations.clone());
    // Subscribed before returning, so nothing published after start is missed.
    let mut rx = engine.hub.bus().subscribe();
    let shutdown = engine.shutdown.clone();
    let worker = automations.clone();
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    tokio::spawn(async move {
        // Each conversation's happenings are handled in the order they
        // happened (a teammate's reply must pause the bot before the
        // person's next answer reaches it); conversations go in parallel.
        let mut last: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            let happening = tokio::select! {
                _ = shutdown.cancelled() => return,
                h = rx.recv() => match h {
                    Ok(h) => h,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "automations fell behind and missed happenings");
                        metrics::counter!("parley_automation_missed_total").increment(n);
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                },
            };
            // Missed-message emails are for the bot's messages too; queued off
            // this loop, so the next happening is not held up.
            if let Happening::MessageCreated { workspace_id, message, missed_at: Some(at), .. } = happening.as_ref() {
                let planned = (workspace_id.clone(), message.conversation_id.clone(), message.id.clone(), *at);
                let worker = worker.clone();
                tokio::spawn(async move {
                    if let Err(e) = worker.queue_fallback(planned).await {
                        tracing::warn!(error = %e, "queueing a missed-message email failed");
                    }
                });
            }
            if let Happening::OutboundQueued { outbound_id, .. } = happening.as_ref() {
                let (worker, id) = (worker.clone(), outbound_id.clone());
                tokio::spawn(async move {
                    if let Err(e) = worker.queue_outbound(&id, parley_engine::util::now_ms()).await {
                        tracing::warn!(error = %e, outbound = %id, "queueing an outbound failed");
                    }
                });
                continue;
            }
            // Webhook subscribers hear of everything, automations' doings too.
            {
                let (worker, happening) = (worker.clone(), happening.clone());
                tokio::spawn(async move {
                    if let Err(e) = worker.notify_subscribers(&happening).await {
                        tracing::warn!(error = %e, "queueing webhook deliveries failed");
                    }
                });
            }
            if happening.cause().is_automation() {
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else { return };
            let worker = worker.clone();
            let key = match happening.as_ref() {
                Happening::MessageCreated { message, .. } => Some(message.conversation_id.clone()),
                _ => None,
            };
            let before = key.as_ref().and_then(|k| last.remove(k)).filter(|h| !h.is_finished());
            let task = tokio::spawn(async move {
                if let Some(before) = before {
                    let _ = before.await;
                }
                if let Err(e) = worker.handle(&happening).await {
                    tracing::warn!(error = %e, "handling a happening for automations failed");
                }
                drop(permit);
            });
            if let Some(k) = key {
                last.insert(k, task);
            }
            if last.len() > MAX_CHAINS {
                last.retain(|_, h| !h.is_finished());
            }
        }
    });
    Ok(automations)
}

/// The `event` a script sees, and who it is about, for one trigger name.
struct Occasion {
    event: Value,
    subject: Subject,
}

impl Automations {
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    async fn handle(&self, h: &Happening) -> Result<()> {
        let ws = h.workspace_id();
        if let Happening::MessageCreated { message, .. } = h {
            // A running bot hears its answers (or a teammate taking over)
            // before any trigger can start another.
            self.hear(ws, message).await?;
            if message.author.kind == "person" {
                self.watch_unanswered(ws, message).await?;
            }
        }
        let mut context: Option<(Occasion, Option<Person>, Value)> = None;
        for name in trigger::names_for(h) {
            let rules = store::for_trigger(&self.inner.engine.db, ws, &name).await?;
            for rule in rules {
                let Ok(t) = Trigger::parse(&rule.trigger, &rule.params) else { continue };
                if !t.accepts(h) {
                    continue;
                }
                // Loaded once per happening, and only when a rule wants it.
                if context.is_none() {
                    let Some(mut occasion) = occasion(&self.inner.engine.db, h).await? else { return Ok(()) };
                    let (person, conversation) = load(&self.inner.engine, &mut occasion.subject).await?;
                    context = Some((occasion, person, conversation));
                }
                let Some((occasion, person, conversation)) = &context else { continue };
                if let Trigger::PageView { after_seconds: Some(secs), .. } = &t {
                    // Greeted later, if the person is still on the page then.
                    if let (Some(person_id), Some(url)) = (&occasion.subject.person_id, occasion.event["url"].as_str()) {
                        let job = Job::PageStay {
                            workspace_id: ws.to_owned(),
                            automation_id: rule.id.clone(),
                            person_id: person_id.clone(),
                            url: url.to_owned(),
                            title: occasion.event["title"].as_str().map(str::to_owned),
                            // The view's own time: this may run after later views were stored.
                            viewed_at: match h {
                                Happening::EventTracked { at, .. } => *at,
                                _ => now_ms(),
                            },
                        };
                        self.inner.queue.push_after(job, Duration::from_secs(*secs)).await?;
                    }
                    continue;
                }
                if !self.first_in_period(&t, &rule.id, &occasion.subject).await? {
                    continue;
                }
                if rule.kind == "flow" {
                    self.start_flow(&rule, &name, &occasion.subject).await;
                    continue;
                }
                let mut event = occasion.event.clone();
                event["type"] = name.clone().into();
                self.run(&rule, &name, event, &occasion.subject, person.as_ref(), conversation).await;
            }
        }
        Ok(())
    }

    fn compiled(&self, rule: &Automation) -> std::result::Result<Arc<AST>, script::ScriptError> {
        let mut cache = self.inner.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((version, ast)) = cache.get(&rule.id)
            && *version == rule.version
        {
            return Ok(ast.clone());
        }
        let ast = Arc::new(script::compile(rule.script.as_deref().unwrap_or_default())?);
        // Deleted automations leave entries behind; start over rather than grow without end.
        if cache.len() >= MAX_COMPILED {
            cache.clear();
        }
        cache.insert(rule.id.clone(), (rule.version, ast.clone()));
        Ok(ast)
    }

    /// Runs one rule for real: script, rate limit, actions, log.
    pub(crate) async fn run(
        &self,
        rule: &Automation,
        trigger: &str,
        event: Value,
        subject: &Subject,
        person: Option<&Person>,
        conversation: &Value,
    ) {
        let started = Instant::now();
        let engine = &self.inner.engine;
        let (outcome, actions, error) = match self.compiled(rule) {
            Err(e) => (Outcome::Error, Vec::new(), Some(e.to_string())),
            Ok(ast) => match evaluate(engine, ast, event, subject, person, conversation.clone()).await {
                Err(e) => (Outcome::Error, Vec::new(), Some(e.to_string())),
                Ok(actions) if !self.allow_messages(subject, &actions) => (
                    Outcome::Skipped,
                    actions,
                    Some(format!("not applied: at most {MAX_MESSAGES_PER_MINUTE} automated messages per conversation per minute")),
                ),
                Ok(actions) => match self.act(&rule.id, subject, person, &actions, rule.email_fallback).await {
                    Ok(()) => (Outcome::Ok, actions, None),
                    Err(e) => (Outcome::Error, actions, Some(e)),
                },
            },
        };
        let duration_us = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
        let record = RunRecord { trigger, outcome, actions: &actions, error, duration_us };
        if let Err(e) = store::log_run(&engine.db, &subject.workspace_id, &rule.id, record).await {
            tracing::warn!(error = %e, automation = %rule.id, "logging an automation run failed");
        }
    }

    /// Applies a run's actions, then starts the flows it asked for.
    pub(crate) async fn act(
        &self,
        automation_id: &str,
        subject: &Subject,
        person: Option<&Person>,
        actions: &[Action],
        email_fallback: bool,
    ) -> std::result::Result<(), String> {
        apply::apply(&self.inner.engine, automation_id, subject, person, actions, email_fallback).await?;
        for action in actions {
            if let Action::StartFlow { name } = action {
                Box::pin(self.start_flow_named(name, subject)).await?;
            }
        }
        Ok(())
    }

    /// Queues the `conversation.unanswered` checks for a person's message:
    /// only for the first message since a teammate last wrote, as the later
    /// ones are covered by that one's check.
    async fn watch_unanswered(&self, ws: &str, message: &Message) -> Result<()> {
        let db = &self.inner.engine.db;
        let rules = store::for_trigger(db, ws, trigger::UNANSWERED).await?;
        if rules.is_empty() || !first_unanswered(db, &message.conversation_id, &message.id).await? {
            return Ok(());
        }
        for rule in rules {
            let Ok(Trigger::Unanswered { minutes }) = Trigger::parse(&rule.trigger, &rule.params) else { continue };
            let job = Job::Unanswered {
                workspace_id: ws.to_owned(),
                automation_id: rule.id.clone(),
                conversation_id: message.conversation_id.clone(),
                message_id: message.id.clone(),
            };
            let delay = Duration::from_secs_f64(minutes * 60.0);
            self.inner.queue.push_after(job, delay).await?;
        }
        Ok(())
    }

    /// The `conversation.unanswered` job: runs the automation if no teammate
    /// has written since the message and the conversation is still open.
    pub(crate) async fn unanswered(&self, ws: &str, automation_id: &str, conversation_id: &str, message_id: &str) -> Result<()> {
        let engine = &self.inner.engine;
        let rule = match store::get(&engine.db, ws, automation_id).await {
            Ok(r) if r.enabled && r.trigger == trigger::UNANSWERED => r,
            Ok(_) | Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let row: Option<(i64, String)> = with_db!(&engine.db, pool => sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM message r WHERE r.conversation_id = m.conversation_id AND r.author_type = 'teammate'                      AND r.kind = 'chat' AND r.deleted_at IS NULL AND r.created_at >= m.created_at), c.status              FROM message m JOIN conversation c ON c.id = m.conversation_id              WHERE m.id = $1 AND m.conversation_id = $2 AND m.workspace_id = $3")
            .bind(message_id).bind(conversation_id).bind(ws).fetch_optional(pool).await?);
        let Some((replies, status)) = row else { return Ok(()) };
        if replies > 0 || status != "open" {
            return Ok(());
        }
        let person_id = chat::conversation_person(&engine.db, ws, conversation_id).await?;
        let mut subject =
            Subject { workspace_id: ws.to_owned(), person_id: Some(person_id), conversation_id: Some(conversation_id.to_owned()) };
        if rule.kind == "flow" {
            self.start_flow(&rule, trigger::UNANSWERED, &subject).await;
            return Ok(());
        }
        let (person, conversation) = load(engine, &mut subject).await?;
        let minutes = rule.params.get("minutes").cloned().unwrap_or(Value::Null);
        let event = json!({"type": trigger::UNANSWERED, "conversation_id": conversation_id, "message_id": message_id, "minutes": minutes});
        self.run(&rule, trigger::UNANSWERED, event, &subject, person.as_ref(), &conversation).await;
        Ok(())
    }

    /// The `schedule` job: runs the automation for its time `due` if it is
    /// still enabled and unchanged since that time was planned, after
    /// planning the next time (so a failing run does not end the schedule).
    pub(crate) async fn scheduled(&self, ws: &str, automation_id: &str, version: i64, due: i64) -> Result<()> {
        let engine = &self.inner.engine;
        let rule = match store::get(&engine.db, ws, automation_id).await {
            Ok(r) if r.enabled && r.version == version && r.trigger == trigger::SCHEDULE => r,
            Ok(_) | Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Ok(Trigger::Schedule { cron, filter }) = Trigger::parse(&rule.trigger, &rule.params) else { return Ok(()) };
        plan_schedule(&self.inner.queue, &engine.db, ws, &rule, due).await?;
        let event = json!({"type": trigger::SCHEDULE, "at": rfc3339(due), "cron": cron});
        let Some(filter) = filter else {
            if rule.kind == "flow" {
                // A flow talks with someone: it needs the filter's people.
                return Ok(());
            }
            let subject = Subject { workspace_id: ws.to_owned(), person_id: None, conversation_id: None };
            self.run(&rule, trigger::SCHEDULE, event, &subject, None, &Value::Null).await;
            return Ok(());
        };
        // Once for each person the filter matches now, up to a bound.
        let mut request = SearchRequest { filter: Some(filter), limit: Some(SCHEDULE_PAGE), ..Default::default() };
        let mut done = 0;
        loop {
            let page = search::search(&engine.db, engine.people_index.as_ref(), ws, &request).await?;
            for p in page.items {
                if done == MAX_SCHEDULED_PEOPLE {
                    tracing::warn!(automation = %rule.id, "a schedule matched more than {MAX_SCHEDULED_PEOPLE} people; the rest were left out");
                    return Ok(());
                }
                let mut subject = Subject { workspace_id: ws.to_owned(), person_id: Some(p.id.clone()), conversation_id: None };
                if rule.kind == "flow" {
                    self.start_flow(&rule, trigger::SCHEDULE, &subject).await;
                } else {
                    let (person, conversation) = load(engine, &mut subject).await?;
                    self.run(&rule, trigger::SCHEDULE, event.clone(), &subject, person.as_ref(), &conversation).await;
                }
                done += 1;
            }
            match page.next_cursor {
                Some(c) => request.cursor = Some(c),
                None => return Ok(()),
            }
        }
    }

    /// For a trigger that fires once per person per period: claims this
    /// period for the subject's person (false: already fired in it).
    async fn first_in_period(&self, t: &Trigger, automation_id: &str, subject: &Subject) -> Result<bool> {
        let (Trigger::PageView { once_per_hours: Some(hours), .. }, Some(person_id)) = (t, &subject.person_id) else { return Ok(true) };
        let now = now_ms();
        let since = now - i64::try_from(*hours).unwrap_or(i64::MAX / 3_600_000) * 3_600_000;
        let claimed = with_tx!(&self.inner.engine.db, tx => sqlx::query(
            "INSERT INTO automation_fired (automation_id, person_id, workspace_id, fired_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (automation_id, person_id) DO UPDATE SET fired_at = excluded.fired_at WHERE automation_fired.fired_at <= $5")
            .bind(automation_id).bind(person_id).bind(&subject.workspace_id).bind(now).bind(since)
            .execute(&mut *tx).await?.rows_affected());
        Ok(claimed > 0)
    }

    /// The `after_seconds` job of a page view: runs the automation if the
    /// person is still online and has viewed no other page since.
    pub(crate) async fn page_stay(
        &self,
        ws: &str,
        automation_id: &str,
        person_id: &str,
        url: &str,
        title: Option<&str>,
        viewed_at: i64,
    ) -> Result<()> {
        let engine = &self.inner.engine;
        let rule = match store::get(&engine.db, ws, automation_id).await {
            Ok(r) if r.enabled => r,
            Ok(_) | Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Ok(t) = Trigger::parse(&rule.trigger, &rule.params) else { return Ok(()) };
        let later = parley_engine::events::page_views_since(&engine.db, ws, person_id, viewed_at).await?;
        // A widget socket on this node answers at once; other nodes' through
        // the presence table.
        let here = engine.hub.has_subscribers(&parley_engine::hub::person_stream(person_id));
        if later > 0 || !(here || engine.presence.online(person_id).await?) {
            return Ok(());
        }
        let mut subject = Subject { workspace_id: ws.to_owned(), person_id: Some(person_id.to_owned()), conversation_id: None };
        if !self.first_in_period(&t, &rule.id, &subject).await? {
            return Ok(());
        }
        if rule.kind == "flow" {
            self.start_flow(&rule, "page.view", &subject).await;
            return Ok(());
        }
        let (person, conversation) = load(engine, &mut subject).await?;
        let event = json!({"type": "page.view", "url": url, "title": title, "after_seconds": rule.params.get("after_seconds")});
        self.run(&rule, "page.view", event, &subject, person.as_ref(), &conversation).await;
        Ok(())
    }

    /// Counts the run's messages against its conversation's budget; false
    /// (and nothing counted) when they would exceed it.
    fn allow_messages(&self, subject: &Subject, actions: &[Action]) -> bool {
        let n = actions.iter().filter(|a| a.is_message()).count();
        let Some(cid) = &subject.conversation_id else { return true };
        if n == 0 {
            return true;
        }
        let mut sent = self.inner.sent.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        // Forget conversations that have been quiet for a minute, so the map stays small.
        sent.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < Duration::from_secs(60)));
        let times = sent.entry(cid.clone()).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            times.pop_front();
        }
        if times.len() + n > MAX_MESSAGES_PER_MINUTE {
            return false;
        }
        times.extend(std::iter::repeat_n(now, n));
        true
    }
}

/// Runs a compiled script off the async runtime and returns its actions.
pub async fn evaluate(
    engine: &Engine,
    ast: Arc<AST>,
    event: Value,
    subject: &Subject,
    person: Option<&Person>,
    conversation: Value,
) -> std::result::Result<Vec<Action>, script::ScriptError> {
    in_sandbox(engine, event, subject, person, conversation, move |input, host| script::run(&ast, input, host)).await
}

/// Runs `f` (a script run) on a blocking thread with the inputs a script
/// sees and a host that answers from the database.
pub(crate) async fn in_sandbox<T: Send + 'static>(
    engine: &Engine,
    event: Value,
    subject: &Subject,
    person: Option<&Person>,
    conversation: Value,
    f: impl FnOnce(&Input, Arc<dyn Host>) -> std::result::Result<T, script::ScriptError> + Send + 'static,
) -> std::result::Result<T, script::ScriptError> {
    let input = Input { event, person: person.map(apply::person_value).unwrap_or(Value::Null), conversation, now_ms: now_ms() };
    let host: Arc<dyn Host> = Arc::new(EngineHost {
        engine: engine.clone(),
        workspace_id: subject.workspace_id.clone(),
        person_id: subject.person_id.clone(),
        handle: tokio::runtime::Handle::current(),
    });
    tokio::task::spawn_blocking(move || f(&input, host))
        .await
        .unwrap_or_else(|e| Err(script::ScriptError { line: None, column: None, message: format!("the script could not run: {e}") }))
}

/// Host answers from the database, for a script running on a blocking thread.
struct EngineHost {
    engine: Engine,
    workspace_id: String,
    person_id: Option<String>,
    handle: tokio::runtime::Handle,
}

impl Host for EngineHost {
    fn person_matches(&self, filter: &Value) -> std::result::Result<bool, String> {
        let Some(person_id) = &self.person_id else { return Ok(false) };
        self.handle.block_on(person_matches(&self.engine.db, &self.workspace_id, person_id, filter)).map_err(|e| match e.field() {
            Some(f) => format!("{e} ({f})"),
            None => e.to_string(),
        })
    }

    fn agents_online(&self) -> bool {
        // Teammates' inbox sockets subscribe to the workspace stream.
        self.engine.hub.has_subscribers(&workspace_stream(&self.workspace_id))
    }

    fn in_business_hours(&self) -> std::result::Result<bool, String> {
        self.handle.block_on(parley_engine::hours::open_now(&self.engine.db, &self.workspace_id)).map_err(|e| e.to_string())
    }
}

/// Whether a person matches a filter of the filter language. Asked of the
/// database, never of a search index that may lag behind the change that set
/// the rule off.
pub async fn person_matches(db: &Db, workspace_id: &str, person_id: &str, filter: &Value) -> Result<bool> {
    let f = search::resolve_filter(db, workspace_id, filter, "filter").await?;
    let sql = filter::to_sql(&f, db.dialect(), 3, 1, now_ms());
    let text = format!("SELECT COUNT(*) FROM person p WHERE p.workspace_id = $1 AND p.id = $2 AND ({})", sql.sql);
    let n: i64 = with_db!(db, pool => {
        let q = sql.bind_to(sqlx::query(sqlx::AssertSqlSafe(text.as_str())).bind(workspace_id).bind(person_id));
        sqlx::Row::try_get(&q.fetch_one(pool).await?, 0)?
    });
    Ok(n > 0)
}

/// Queues the first time after `after` (epoch ms) of a schedule automation
/// that is enabled; anything else has nothing to plan. The job carries the
/// automation's version, so an edit (which plans anew) leaves older plans
/// stale, and is queued once per time, however often it is planned.
pub async fn plan_schedule(queue: &Queue, db: &Db, ws: &str, rule: &Automation, after: i64) -> Result<()> {
    let Ok(Trigger::Schedule { cron, .. }) = Trigger::parse(&rule.trigger, &rule.params) else { return Ok(()) };
    if !rule.enabled {
        return Ok(());
    }
    let tz = match parley_engine::hours::get(db, ws).await? {
        Some(h) => h.timezone.parse().unwrap_or(chrono_tz::UTC),
        None => chrono_tz::UTC,
    };
    let Some(due) = trigger::next_fire(&cron, tz, after) else { return Ok(()) };
    let job = Job::Schedule { workspace_id: ws.to_owned(), automation_id: rule.id.clone(), version: rule.version, due };
    queue.push_once_at(job, due, &format!("schedule:{}:{}:{due}", rule.id, rule.version)).await
}

/// Whether `message_id` is the first person's message since a teammate last
/// wrote in the conversation.
async fn first_unanswered(db: &Db, conversation_id: &str, message_id: &str) -> Result<bool> {
    let (earlier,): (i64,) = with_db!(db, pool => sqlx::query_as(
        "SELECT COUNT(*) FROM message p, message m WHERE m.id = $2 AND p.conversation_id = $1 AND p.author_type = 'person'          AND p.kind = 'chat' AND p.deleted_at IS NULL AND p.id <> m.id          AND (p.created_at < m.created_at OR (p.created_at = m.created_at AND p.id < m.id))          AND NOT EXISTS (SELECT 1 FROM message r WHERE r.conversation_id = $1 AND r.author_type = 'teammate' AND r.kind = 'chat'                          AND r.deleted_at IS NULL AND r.created_at >= p.created_at AND r.created_at <= m.created_at)")
        .bind(conversation_id).bind(message_id).fetch_one(pool).await?);
    Ok(earlier == 0)
}

/// What a happening is about, or `None` when it names nobody known.
async fn occasion(db: &Db, h: &Happening) -> Result<Option<Occasion>> {
    let ws = h.workspace_id().to_owned();
    Ok(Some(match h {
        Happening::OutboundQueued { .. } => return Ok(None),
        Happening::MessageCreated { message, .. } => {
            let person_id = match message.author.kind.as_str() {
                "person" => message.author.id.clone(),
                _ => Some(chat::conversation_person(db, &ws, &message.conversation_id).await?),
            };
            Occasion {
                event: json!({"message": message_value(message), "conversation_id": message.conversation_id}),
                subject: Subject { workspace_id: ws, person_id, conversation_id: Some(message.conversation_id.clone()) },
            }
        }
        Happening::PersonCreated { person_id, .. } | Happening::PersonUpdated { person_id, .. } => Occasion {
            event: json!({"person_id": person_id}),
            subject: Subject { workspace_id: ws, person_id: Some(person_id.clone()), conversation_id: None },
        },
        Happening::EventTracked { person, name, data, .. } => {
            let Some(person_id) = find_person(db, &ws, person).await? else { return Ok(None) };
            let event = if name == "page.view" {
                json!({"url": data.get("url"), "title": data.get("title")})
            } else {
                json!({"name": name, "data": data})
            };
            Occasion { event, subject: Subject { workspace_id: ws, person_id: Some(person_id), conversation_id: None } }
        }
    }))
}

fn message_value(m: &Message) -> Value {
    json!({"id": m.id, "body": m.body, "kind": m.kind, "author": {"type": m.author.kind, "id": m.author.id, "name": m.author.name}})
}

async fn find_person(db: &Db, ws: &str, r: &parley_engine::events::PersonRef) -> Result<Option<String>> {
    let row: Option<(String,)> = match (&r.id, &r.external_id, &r.email) {
        // An id was checked against the workspace when the event was stored.
        (Some(id), _, _) => return Ok(Some(id.clone())),
        (None, Some(x), _) => with_db!(db, pool => sqlx::query_as("SELECT id FROM person WHERE external_id = $1 AND workspace_id = $2")
            .bind(x.trim()).bind(ws).fetch_optional(pool).await?),
        (None, None, Some(e)) => with_db!(db, pool => sqlx::query_as(
            "SELECT id FROM person WHERE lower(email) = $1 AND workspace_id = $2 ORDER BY (external_id IS NULL), updated_at DESC LIMIT 1")
            .bind(e.trim().to_lowercase()).bind(ws).fetch_optional(pool).await?),
        (None, None, None) => None,
    };
    Ok(row.map(|r| r.0))
}

/// The person and conversation of a run. A run about a person without a
/// conversation acts on their latest live one, if they have one (and
/// `subject` learns which).
pub async fn load(engine: &Engine, subject: &mut Subject) -> Result<(Option<Person>, Value)> {
    let ws = subject.workspace_id.as_str();
    let person = async {
        match &subject.person_id {
            // Scripts and snippets see who the person is, not their event counts.
            Some(pid) => profile::get_bare(&engine.db, ws, pid).await.map(Some),
            None => Ok(None),
        }
    };
    let conversation_id = async {
        match (&subject.conversation_id, &subject.person_id) {
            (Some(c), _) => Ok::<_, Error>(Some(c.clone())),
            (None, Some(pid)) => chat::latest_open(&engine.db, ws, pid).await,
            (None, None) => Ok(None),
        }
    };
    // Two reads on two connections at once: a greeting waits for the slower, not both.
    let (person, conversation_id) = tokio::try_join!(person, conversation_id)?;
    subject.conversation_id.clone_from(&conversation_id);
    let conversation = match conversation_id {
        Some(cid) => match chat::conversation(&engine.db, ws, &cid, None).await {
            Ok(c) => json!({"id": c.id, "status": c.status, "assignee": c.assignee.map(|a| a.id)}),
            Err(Error::NotFound(_)) => Value::Null,
            Err(e) => return Err(e),
        },
        None => Value::Null,
    };
    Ok((person, conversation))
}
