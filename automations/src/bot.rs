//! Running chatbot flows: one live run per conversation, stored in
//! `flow_run` so it survives a restart, moved on by what the person says (a
//! button, an answer), by the clock (a `wait` job) and stopped by a teammate
//! writing in the conversation.
//!
//! Every change of a run is a compare-and-set on its `episode`: whoever moves
//! it first (an answer, a job, a teammate) wins, and the others find another
//! number and do nothing. A run being driven is `running`; it is set to
//! `waiting` before its question goes out, so even an instant answer finds
//! it ready.

use std::time::{Duration, Instant};

use parley_engine::bus::{Cause, Happening};
use parley_engine::chat::{self, Kind, Message, Sender};
use parley_engine::people::{PersonInput, profile};
use parley_engine::util::{new_id, now_ms};
use parley_engine::{Db, Error, Result, with_db, with_tx};
use serde_json::{Value, json};

use crate::apply::{self, Subject};
use crate::flow::{self, Flow, Node};
use crate::jobs::Job;
use crate::runner::{Automations, in_sandbox, load};
use crate::script::{self, Action};
use crate::store::{self, Automation, Outcome, RunRecord};

/// Steps a flow may take in one go without waiting for anyone: more means it
/// loops through branches and actions, and it is stopped.
pub const MAX_STEPS: usize = 50;

#[derive(Clone, Debug, sqlx::FromRow)]
struct Run {
    id: String,
    workspace_id: String,
    automation_id: String,
    conversation_id: String,
    node: String,
    status: String,
    waiting_for: Option<String>,
    episode: i64,
    attempts: i64,
    reply: Option<String>,
}

const RUN_SELECT: &str =
    "SELECT id, workspace_id, automation_id, conversation_id, node, status, waiting_for, episode, attempts, reply FROM flow_run ";

/// Where a step leaves the run.
struct Stop<'a> {
    node: &'a str,
    status: &'a str,
    waiting_for: Option<&'a str>,
    error: Option<String>,
}

impl Automations {
    /// Starts a flow in the subject's conversation (its person's latest
    /// live one) and logs the start as a run of the automation.
    pub(crate) async fn start_flow(&self, automation: &Automation, trigger: &str, subject: &Subject) {
        let started = Instant::now();
        let mut steps = Vec::new();
        let outcome = self.try_start(automation, subject, &mut steps).await;
        self.log(&subject.workspace_id, automation, trigger, started, &steps, outcome).await;
    }

    async fn try_start(&self, automation: &Automation, subject: &Subject, steps: &mut Vec<Action>) -> Result<Outcome, String> {
        let flow = parse(automation)?;
        let mut subject = subject.clone();
        load(self.engine(), &mut subject).await.map_err(|e| e.to_string())?;
        // No conversation yet (a person.created flow, say): nothing to run
        // in, which is no failure of the flow.
        let Some(conversation_id) = subject.conversation_id.clone() else {
            return Ok(Outcome::Skipped);
        };
        let id = new_id();
        let inserted = insert_run(&self.engine().db, &id, &subject.workspace_id, &automation.id, &conversation_id, &flow.start)
            .await
            .map_err(|e| e.to_string())?;
        if inserted == 0 {
            return Ok(Outcome::Skipped);
        }
        let run = Run {
            id,
            workspace_id: subject.workspace_id.clone(),
            automation_id: automation.id.clone(),
            conversation_id,
            node: flow.start.clone(),
            status: "running".into(),
            waiting_for: None,
            episode: 1,
            attempts: 0,
            reply: None,
        };
        let start = flow.start.clone();
        self.drive(run, &flow, Some(start), steps).await
    }

    /// Starts the flow named by a rule's `start_flow`.
    pub(crate) async fn start_flow_named(&self, name: &str, subject: &Subject) -> std::result::Result<(), String> {
        let found = store::flow_named(&self.engine().db, &subject.workspace_id, name).await.map_err(|e| e.to_string())?;
        let automation = found.ok_or_else(|| format!("there is no flow named {name:?}"))?;
        self.start_flow(&automation, "start_flow", subject).await;
        Ok(())
    }

    /// What a message means to the conversation's bot: a person's answer or
    /// button moves it on; a teammate's chat message pauses it.
    pub(crate) async fn hear(&self, ws: &str, message: &Message) -> Result<()> {
        let db = &self.engine().db;
        match message.author.kind.as_str() {
            "teammate" if message.kind == Kind::Chat => {
                let paused = pause_runs(db, ws, &message.conversation_id).await?;
                if paused > 0 {
                    tracing::debug!(conversation = %message.conversation_id, "a teammate answered: the bot steps back");
                }
                Ok(())
            }
            "person" => {
                let sql = format!(
                    "{RUN_SELECT}WHERE conversation_id = $1 AND workspace_id = $2 AND status = 'waiting' AND waiting_for IN ('choice', 'answer')"
                );
                let run: Option<Run> = with_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(&message.conversation_id).bind(ws).fetch_optional(pool).await?);
                if let Some(run) = run {
                    self.answer(run, &message.body).await;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn answer(&self, mut run: Run, text: &str) {
        let ws = run.workspace_id.clone();
        let Ok(automation) = store::get(&self.engine().db, &run.workspace_id, &run.automation_id).await else { return };
        let started = Instant::now();
        let mut steps = Vec::new();
        let trigger = if run.waiting_for.as_deref() == Some("choice") { "flow.choice" } else { "flow.answer" };
        match self.claim(&mut run).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => return self.log(&ws, &automation, trigger, started, &steps, Err(e)).await,
        }
        let outcome = match parse(&automation) {
            Ok(flow) => self.on_answer(run, &flow, text, &mut steps).await,
            Err(e) => Err(e),
        };
        self.log(&ws, &automation, trigger, started, &steps, outcome).await;
    }

    async fn on_answer(&self, mut run: Run, flow: &Flow, text: &str, steps: &mut Vec<Action>) -> Result<Outcome, String> {
        let node_id = run.node.clone();
        let step = flow.nodes.get(&node_id).ok_or_else(|| format!("the flow has no step {node_id:?} any more"))?;
        match step {
            Node::Message { buttons, next, .. } => {
                let picked = buttons.iter().find(|b| b.label.eq_ignore_ascii_case(text.trim()));
                let Some(button) = picked else {
                    // Something other than a button: the bot keeps waiting for one.
                    self.stop(&mut run, Stop { node: &node_id, status: "waiting", waiting_for: Some("choice"), error: None }).await?;
                    return Ok(Outcome::Skipped);
                };
                run.reply = Some(button.label.clone());
                let to = button.next.clone().or_else(|| next.clone());
                self.drive(run, flow, to, steps).await
            }
            Node::Ask { attribute, validate, max_attempts, next, on_fail, .. } => match validate.check(text) {
                Some(value) => {
                    self.save_answer(&run, attribute, value).await?;
                    run.reply = Some(text.trim().to_owned());
                    self.drive(run, flow, next.clone(), steps).await
                }
                None => {
                    run.attempts += 1;
                    if run.attempts >= i64::from(max_attempts.unwrap_or(flow::DEFAULT_ATTEMPTS)) {
                        if on_fail.is_some() {
                            run.attempts = 0;
                            return self.drive(run, flow, on_fail.clone(), steps).await;
                        }
                        let error = Some(format!("no valid answer to step {node_id:?} after {} tries", run.attempts));
                        self.stop(&mut run, Stop { node: &node_id, status: "failed", waiting_for: None, error }).await?;
                        return Ok(Outcome::Ok);
                    }
                    self.stop(&mut run, Stop { node: &node_id, status: "waiting", waiting_for: Some("answer"), error: None }).await?;
                    let retry = step.retry_text().unwrap_or_default();
                    self.say(&run, &retry, None, steps).await?;
                    Ok(Outcome::Ok)
                }
            },
            _ => Err(format!("step {node_id:?} does not wait for an answer")),
        }
    }

    /// A wait step's job: goes on if the run is still at that wait.
    pub(crate) async fn resume_flow(&self, ws: &str, run_id: &str, episode: i64) -> Result<()> {
        let sql = format!("{RUN_SELECT}WHERE id = $1 AND workspace_id = $2");
        let run: Option<Run> = with_db!(&self.engine().db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(run_id).bind(ws).fetch_optional(pool).await?);
        let Some(mut run) = run else { return Ok(()) };
        if run.episode != episode || run.status != "waiting" || run.waiting_for.as_deref() != Some("timer") {
            return Ok(());
        }
        let automation = match store::get(&self.engine().db, ws, &run.automation_id).await {
            Ok(a) => a,
            Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if !self.claim(&mut run).await.map_err(|e| Error::Internal(anyhow::anyhow!(e)))? {
            return Ok(());
        }
        let started = Instant::now();
        let mut steps = Vec::new();
        let outcome = match parse(&automation) {
            Ok(flow) => match flow.nodes.get(&run.node) {
                Some(Node::Wait { next, .. }) => self.drive(run, &flow, next.clone(), &mut steps).await,
                _ => Err(format!("the flow has no wait step {:?} any more", run.node)),
            },
            Err(e) => Err(e),
        };
        self.log(ws, &automation, "flow.wait", started, &steps, outcome).await;
        Ok(())
    }

    /// Runs steps from `next` until one waits or the flow ends. The run is
    /// `running` and this task owns its current episode.
    async fn drive(&self, mut run: Run, flow: &Flow, mut next: Option<String>, steps: &mut Vec<Action>) -> Result<Outcome, String> {
        let outcome = self.steps(&mut run, flow, &mut next, steps).await;
        if let Err(e) = &outcome {
            // Left for the teammates, with the reason on the run.
            let node = next.unwrap_or_else(|| run.node.clone());
            let _ = self.stop(&mut run, Stop { node: &node, status: "failed", waiting_for: None, error: Some(e.clone()) }).await;
        }
        outcome
    }

    async fn steps(&self, run: &mut Run, flow: &Flow, next: &mut Option<String>, steps: &mut Vec<Action>) -> Result<Outcome, String> {
        for _ in 0..MAX_STEPS {
            let Some(id) = next.clone() else {
                self.stop(run, Stop { node: &run.node.clone(), status: "done", waiting_for: None, error: None }).await?;
                return Ok(Outcome::Ok);
            };
            let step = flow.nodes.get(&id).ok_or_else(|| format!("the flow has no step {id:?}"))?;
            run.node.clone_from(&id);
            match step {
                Node::Message { text, buttons, next: after } => {
                    if buttons.is_empty() {
                        self.say(run, text, None, steps).await?;
                        next.clone_from(after);
                        continue;
                    }
                    if !self.stop(run, Stop { node: &id, status: "waiting", waiting_for: Some("choice"), error: None }).await? {
                        return Ok(Outcome::Skipped);
                    }
                    let labels: Vec<Value> = buttons.iter().map(|b| json!({"label": b.label})).collect();
                    self.say(run, text, Some(Value::Array(labels)), steps).await?;
                    return Ok(Outcome::Ok);
                }
                Node::Ask { text, .. } => {
                    run.attempts = 0;
                    if !self.stop(run, Stop { node: &id, status: "waiting", waiting_for: Some("answer"), error: None }).await? {
                        return Ok(Outcome::Skipped);
                    }
                    self.say(run, text, None, steps).await?;
                    return Ok(Outcome::Ok);
                }
                Node::Branch { conditions, otherwise } => {
                    *next = otherwise.clone();
                    for c in conditions {
                        if self.condition(run, &c.expr).await? {
                            *next = Some(c.next.clone());
                            break;
                        }
                    }
                }
                Node::Action { script: text, next: after } => {
                    let ast = std::sync::Arc::new(script::compile(text).map_err(|e| e.to_string())?);
                    let (subject, person, conversation) = self.context(run).await?;
                    let event = self.event(run);
                    let actions = crate::runner::evaluate(self.engine(), ast, event, &subject, person.as_ref(), conversation)
                        .await
                        .map_err(|e| format!("step {id:?}: {e}"))?;
                    self.act(&run.automation_id, &subject, person.as_ref(), &actions, self.emails_missed(run).await?)
                        .await
                        .map_err(|e| format!("step {id:?}: {e}"))?;
                    steps.extend(actions);
                    next.clone_from(after);
                }
                Node::Wait { seconds, .. } => {
                    if !self.stop(run, Stop { node: &id, status: "waiting", waiting_for: Some("timer"), error: None }).await? {
                        return Ok(Outcome::Skipped);
                    }
                    let job = Job::FlowResume { workspace_id: run.workspace_id.clone(), run_id: run.id.clone(), episode: run.episode };
                    self.inner.queue.push_after(job, Duration::from_secs(*seconds)).await.map_err(|e| e.to_string())?;
                    return Ok(Outcome::Ok);
                }
                Node::Handoff { teammate_id, team, text } => {
                    if let Some(t) = text {
                        self.say(run, t, None, steps).await?;
                    }
                    // The team first: a teammate named too is who takes it within the team.
                    let assign: Vec<Action> =
                        [team, teammate_id].into_iter().flatten().map(|to| Action::Assign { to: to.clone() }).collect();
                    if !assign.is_empty() {
                        let (subject, person, _) = self.context(run).await?;
                        apply::apply(self.engine(), &run.automation_id, &subject, person.as_ref(), &assign, false).await?;
                        steps.extend(assign);
                    }
                    self.stop(run, Stop { node: &id, status: "done", waiting_for: None, error: None }).await?;
                    return Ok(Outcome::Ok);
                }
            }
        }
        Err(format!("the flow took {MAX_STEPS} steps without waiting for anyone; is it going round in a loop?"))
    }

    /// Takes a waiting run to drive it; false when someone else got there first.
    async fn claim(&self, run: &mut Run) -> Result<bool, String> {
        let node = run.node.clone();
        let waiting_for = run.waiting_for.clone();
        let taken = claim_run(&self.engine().db, &run.id, run.episode).await.map_err(|e| e.to_string())?;
        if taken == 0 {
            return Ok(false);
        }
        run.episode += 1;
        run.status = "running".into();
        run.node = node;
        run.waiting_for = waiting_for;
        Ok(true)
    }

    /// Writes where the run now stands, if it is still at its episode.
    async fn stop(&self, run: &mut Run, s: Stop<'_>) -> Result<bool, String> {
        let changed = stop_run(&self.engine().db, run, &s).await.map_err(|e| e.to_string())?;
        if changed == 0 {
            return Ok(false);
        }
        run.episode += 1;
        run.node = s.node.to_owned();
        run.status = s.status.to_owned();
        run.waiting_for = s.waiting_for.map(str::to_owned);
        Ok(true)
    }

    /// Whether the flow's chat messages may be emailed to a person who misses them.
    async fn emails_missed(&self, run: &Run) -> Result<bool, String> {
        crate::store::email_fallback(&self.engine().db, &run.automation_id).await.map_err(|e| e.to_string())
    }

    async fn say(&self, run: &Run, text: &str, buttons: Option<Value>, steps: &mut Vec<Action>) -> Result<(), String> {
        let cause = Cause::Automation(run.automation_id.clone());
        let to = Subject { workspace_id: run.workspace_id.clone(), person_id: None, conversation_id: Some(run.conversation_id.clone()) };
        // The person is loaded only for a text that has snippets to fill.
        let text = match apply::has_snippets(text) {
            false => text.to_owned(),
            true => {
                let (_, person, _) = self.context(run).await?;
                apply::personalise(self.engine(), &run.workspace_id, person.as_ref(), None, text).await?
            }
        };
        let what = apply::Say::Chat { buttons, email_fallback: self.emails_missed(run).await? };
        apply::say(self.engine(), &to, Sender::Bot, what, &text, &cause).await?;
        steps.push(Action::SendChat { text, teammate_id: None });
        Ok(())
    }

    /// Stores a valid answer on the person: `email`, `name` and `phone` are
    /// their fields, anything else an attribute.
    async fn save_answer(&self, run: &Run, attribute: &str, value: Value) -> Result<(), String> {
        let engine = self.engine();
        let person_id = chat::conversation_person(&engine.db, &run.workspace_id, &run.conversation_id).await.map_err(|e| e.to_string())?;
        let text = value.as_str().map(str::to_owned);
        let input = match attribute {
            "email" => PersonInput { email: text, ..Default::default() },
            "name" => PersonInput { name: text, ..Default::default() },
            "phone" => PersonInput { phone: text, ..Default::default() },
            _ => PersonInput { attributes: Some([(attribute.to_owned(), value)].into_iter().collect()), ..Default::default() },
        };
        profile::patch(&engine.db, &run.workspace_id, &person_id, input).await.map_err(|e| format!("saving the answer: {e}"))?;
        engine.hub.bus().publish(Happening::PersonUpdated {
            workspace_id: run.workspace_id.clone(),
            person_id,
            cause: Cause::Automation(run.automation_id.clone()),
        });
        Ok(())
    }

    async fn context(&self, run: &Run) -> Result<(Subject, Option<parley_engine::people::Person>, Value), String> {
        let mut subject =
            Subject { workspace_id: run.workspace_id.clone(), person_id: None, conversation_id: Some(run.conversation_id.clone()) };
        let engine = self.engine();
        subject.person_id =
            Some(chat::conversation_person(&engine.db, &run.workspace_id, &run.conversation_id).await.map_err(|e| e.to_string())?);
        let (person, conversation) = load(engine, &mut subject).await.map_err(|e| e.to_string())?;
        Ok((subject, person, conversation))
    }

    /// What a flow's scripts see as `event`: the person's last reply.
    fn event(&self, run: &Run) -> Value {
        json!({"type": "flow", "reply": run.reply, "conversation_id": run.conversation_id})
    }

    async fn condition(&self, run: &Run, expr: &str) -> Result<bool, String> {
        let ast = script::compile(expr).map_err(|e| e.to_string())?;
        let (subject, person, conversation) = self.context(run).await?;
        in_sandbox(self.engine(), self.event(run), &subject, person.as_ref(), conversation, move |input, host| {
            script::condition(&ast, input, host)
        })
        .await
        .map_err(|e| format!("condition {expr:?}: {e}"))
    }

    async fn log(
        &self,
        ws: &str,
        automation: &Automation,
        trigger: &str,
        started: Instant,
        steps: &[Action],
        outcome: Result<Outcome, String>,
    ) {
        let (outcome, error) = match outcome {
            Ok(o) => (o, None),
            Err(e) => (Outcome::Error, Some(e)),
        };
        let duration_us = i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX);
        let record = RunRecord { trigger, outcome, actions: steps, error, duration_us };
        if let Err(e) = store::log_run(&self.engine().db, ws, &automation.id, record).await {
            tracing::warn!(error = %e, automation = %automation.id, "logging a flow run failed");
        }
    }
}

async fn insert_run(db: &Db, id: &str, ws: &str, automation_id: &str, conversation_id: &str, start: &str) -> Result<u64> {
    Ok(with_tx!(db, tx => sqlx::query(
        "INSERT INTO flow_run (id, workspace_id, automation_id, conversation_id, node, status, episode, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'running', 1, $6, $6) ON CONFLICT DO NOTHING")
        .bind(id).bind(ws).bind(automation_id).bind(conversation_id).bind(start).bind(now_ms())
        .execute(&mut *tx).await?.rows_affected()))
}

/// Pauses the conversation's live run, if it has one (read first: most
/// teammate messages are in conversations without a bot).
async fn pause_runs(db: &Db, ws: &str, conversation_id: &str) -> Result<u64> {
    let live: Option<(String,)> = with_db!(db, pool => sqlx::query_as(
        "SELECT id FROM flow_run WHERE conversation_id = $1 AND workspace_id = $2 AND status IN ('running', 'waiting')")
        .bind(conversation_id).bind(ws).fetch_optional(pool).await?);
    let Some((id,)) = live else { return Ok(0) };
    Ok(with_tx!(db, tx => sqlx::query(
        "UPDATE flow_run SET status = 'paused', episode = episode + 1, updated_at = $1 WHERE id = $2 AND status IN ('running', 'waiting')")
        .bind(now_ms()).bind(&id).execute(&mut *tx).await?.rows_affected()))
}

async fn claim_run(db: &Db, id: &str, episode: i64) -> Result<u64> {
    Ok(with_tx!(db, tx => sqlx::query(
        "UPDATE flow_run SET status = 'running', episode = episode + 1, updated_at = $1 WHERE id = $2 AND episode = $3 AND status = 'waiting'")
        .bind(now_ms()).bind(id).bind(episode).execute(&mut *tx).await?.rows_affected()))
}

async fn stop_run(db: &Db, run: &Run, s: &Stop<'_>) -> Result<u64> {
    Ok(with_tx!(db, tx => sqlx::query(
        "UPDATE flow_run SET node = $1, status = $2, waiting_for = $3, attempts = $4, reply = $5, error = $6, \
         episode = episode + 1, updated_at = $7 WHERE id = $8 AND episode = $9")
        .bind(s.node).bind(s.status).bind(s.waiting_for).bind(run.attempts).bind(&run.reply).bind(&s.error)
        .bind(now_ms()).bind(&run.id).bind(run.episode).execute(&mut *tx).await?.rows_affected()))
}

fn parse(automation: &Automation) -> Result<Flow, String> {
    let value = automation.flow.as_ref().ok_or("the automation has no flow")?;
    flow::parse(value).map_err(|e| format!("the flow is not valid at {}: {}", e.field, e.message))
}
