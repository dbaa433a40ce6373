//! Automations and their run log in the database: create, read, change,
//! delete, and the bookkeeping of each run (failures in a row, switching a
//! rule off that keeps failing).

use std::sync::OnceLock;
use std::time::Duration;

use parley_engine::util::{PerWorkspace, new_id, now_ms, rfc3339};
use parley_engine::{Db, Error, Result, with_db, with_tx};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::flow;
use crate::script::{self, Action};
use crate::trigger::Trigger;

/// Failed runs in a row after which a rule is switched off.
pub const MAX_FAILURES: i64 = 3;
const MAX_NAME: usize = 200;
const RUNS_MAX: i64 = 200;
/// Runs kept in each automation's log.
pub const KEEP_RUNS: i64 = 1000;

/// An automation as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Automation {
    pub id: String,
    pub name: String,
    /// `rule` (a script) or `flow`.
    pub kind: String,
    pub trigger: String,
    #[schema(value_type = Object)]
    pub params: Value,
    pub script: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub flow: Option<Value>,
    pub enabled: bool,
    /// Why Parley switched it off (it kept failing); cleared by enabling it.
    pub disabled_reason: Option<String>,
    /// Failed runs in a row.
    pub failures: i64,
    /// Whether its chat messages are emailed to a person who misses them.
    pub email_fallback: bool,
    pub created_at: String,
    pub updated_at: String,
    /// Milliseconds, for the compiled-script cache.
    #[serde(skip)]
    pub version: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    name: String,
    kind: String,
    trigger_name: String,
    params: String,
    script: Option<String>,
    flow: Option<String>,
    enabled: bool,
    disabled_reason: Option<String>,
    failures: i64,
    email_fallback: bool,
    created_at: i64,
    updated_at: i64,
}

impl From<Row> for Automation {
    fn from(r: Row) -> Self {
        Automation {
            id: r.id,
            name: r.name,
            kind: r.kind,
            trigger: r.trigger_name,
            params: serde_json::from_str(&r.params).unwrap_or_else(|_| serde_json::json!({})),
            script: r.script,
            flow: r.flow.and_then(|f| serde_json::from_str(&f).ok()),
            enabled: r.enabled,
            disabled_reason: r.disabled_reason,
            failures: r.failures,
            email_fallback: r.email_fallback,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            version: r.updated_at,
        }
    }
}

const SELECT: &str = "SELECT id, name, kind, trigger_name, params, script, flow, enabled, disabled_reason, failures, email_fallback, created_at, updated_at FROM automation ";

/// `POST /automations` and `PATCH /automations/{id}` body. On create, `name`,
/// `trigger` and (for a rule) `script` are required; on patch every field is
/// optional.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutomationInput {
    pub name: Option<String>,
    /// `rule` (default) or `flow`.
    pub kind: Option<String>,
    /// `conversation.created`, `message.received`, `message.sent`,
    /// `person.created`, `person.updated`, `event.<name>` or `page.view`.
    pub trigger: Option<String>,
    /// Refines the trigger: `{"url": "/pricing*"}` for `page.view`.
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
    /// rhai; compiled on save.
    pub script: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub flow: Option<Value>,
    pub enabled: Option<bool>,
    /// Email its chat messages to a person who misses them (default on).
    pub email_fallback: Option<bool>,
}

/// A compile error as a 422 on `script`, its place in the message.
pub fn script_error(e: &script::ScriptError) -> Error {
    Error::Unprocessable { code: "invalid_script", field: "script".into(), message: e.to_string() }
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(Error::invalid("name", format!("name is 1 to {MAX_NAME} characters")));
    }
    Ok(name.to_owned())
}

fn check_kind(kind: &str) -> Result<()> {
    match kind {
        "rule" | "flow" => Ok(()),
        _ => Err(Error::invalid("kind", "kind is rule or flow")),
    }
}

/// The fields of an automation once checked, as stored: a rule keeps its
/// script, a flow its graph.
struct Checked {
    name: String,
    kind: &'static str,
    trigger: String,
    params: String,
    script: Option<String>,
    flow: Option<String>,
    enabled: bool,
}

/// What an automation does: a rule's script or a flow's graph.
enum Body<'a> {
    Script(Option<&'a str>),
    Flow(Option<&'a Value>),
}

fn check(name: &str, kind: &str, trigger: &str, params: &Value, body: Body<'_>, enabled: bool) -> Result<Checked> {
    let name = check_name(name)?;
    check_kind(kind)?;
    let trigger = Trigger::parse(trigger, params)?;
    let params = if params.is_null() { "{}".to_owned() } else { params.to_string() };
    let (kind, script, flow) = match body {
        Body::Script(s) => {
            let s = s.ok_or_else(|| Error::invalid("script", "a rule needs a script"))?;
            script::compile(s).map_err(|e| script_error(&e))?;
            ("rule", Some(s.to_owned()), None)
        }
        Body::Flow(f) => {
            let f = f.ok_or_else(|| Error::invalid("flow", "a flow needs its steps: {start, nodes}"))?;
            flow::parse(f).map_err(flow::FlowError::into_error)?;
            ("flow", None, Some(f.to_string()))
        }
    };
    Ok(Checked { name, kind, trigger: trigger.name(), params, script, flow, enabled })
}

/// A schedule's filter is checked against the workspace's attributes and
/// segments, which the trigger's own parse cannot see.
async fn check_audience(db: &Db, workspace_id: &str, trigger: &str, params: Option<&Value>) -> Result<()> {
    match params.and_then(|p| p.get("filter")).filter(|f| !f.is_null()) {
        Some(filter) if trigger == crate::trigger::SCHEDULE => {
            parley_engine::search::resolve_filter(db, workspace_id, filter, "params.filter").await.map(|_| ())
        }
        _ => Ok(()),
    }
}

fn body<'a>(kind: &str, input: &'a AutomationInput, current: Option<&'a Automation>) -> Result<Body<'a>> {
    let keep = current.is_some_and(|c| c.kind == kind);
    match kind {
        "flow" if input.script.is_some() => Err(Error::invalid("script", "a flow has steps, not a script")),
        "flow" => Ok(Body::Flow(input.flow.as_ref().or(current.filter(|_| keep).and_then(|c| c.flow.as_ref())))),
        _ if input.flow.is_some() => Err(Error::invalid("flow", "a rule has a script, not flow steps")),
        _ => Ok(Body::Script(input.script.as_deref().or(current.filter(|_| keep).and_then(|c| c.script.as_deref())))),
    }
}

#[tracing::instrument(skip_all, fields(workspace = %workspace_id))]
pub async fn create(db: &Db, workspace_id: &str, teammate_id: &str, input: AutomationInput) -> Result<Automation> {
    let name = input.name.as_deref().ok_or_else(|| Error::invalid("name", "name is required"))?;
    let kind = input.kind.as_deref().unwrap_or("rule");
    check_kind(kind)?;
    let trigger = input.trigger.as_deref().ok_or_else(|| Error::invalid("trigger", "trigger is required"))?;
    let c = check(
        name,
        kind,
        trigger,
        input.params.as_ref().unwrap_or(&Value::Null),
        body(kind, &input, None)?,
        input.enabled.unwrap_or(true),
    )?;
    check_audience(db, workspace_id, &c.trigger, input.params.as_ref()).await?;
    let id = new_id();
    let now = now_ms();
    with_tx!(db, tx => {
        sqlx::query(
            "INSERT INTO automation (id, workspace_id, name, kind, trigger_name, params, script, flow, enabled, created_by, created_at, updated_at, email_fallback) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12)")
            .bind(&id).bind(workspace_id).bind(&c.name).bind(c.kind).bind(&c.trigger).bind(&c.params).bind(&c.script).bind(&c.flow)
            .bind(c.enabled).bind(teammate_id).bind(now).bind(input.email_fallback.unwrap_or(true))
            .execute(&mut *tx).await?;
    });
    forget(workspace_id);
    get(db, workspace_id, &id).await
}

pub async fn get(db: &Db, workspace_id: &str, id: &str) -> Result<Automation> {
    let sql = format!("{SELECT}WHERE id = $1 AND workspace_id = $2");
    let row: Option<Row> =
        with_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).bind(workspace_id).fetch_optional(pool).await?);
    row.map(Automation::from).ok_or(Error::NotFound("automation"))
}

/// A workspace's flow by name (for `start_flow`), enabled or not.
pub async fn flow_named(db: &Db, workspace_id: &str, name: &str) -> Result<Option<Automation>> {
    let sql = format!("{SELECT}WHERE workspace_id = $1 AND kind = 'flow' AND lower(name) = lower($2) ORDER BY id LIMIT 1");
    let row: Option<Row> =
        with_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(workspace_id).bind(name).fetch_optional(pool).await?);
    Ok(row.map(Automation::from))
}

pub async fn list(db: &Db, workspace_id: &str) -> Result<Vec<Automation>> {
    let sql = format!("{SELECT}WHERE workspace_id = $1 ORDER BY lower(name), id");
    let rows: Vec<Row> = with_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(workspace_id).fetch_all(pool).await?);
    Ok(rows.into_iter().map(Automation::from).collect())
}

/// A workspace's enabled automations, for [`for_trigger`]: every happening
/// asks (a batch of a thousand tracked events asks a thousand times), and
/// most ask for a trigger nothing listens to.
fn enabled() -> &'static PerWorkspace<Vec<Automation>> {
    static ENABLED: OnceLock<PerWorkspace<Vec<Automation>>> = OnceLock::new();
    ENABLED.get_or_init(|| PerWorkspace::new(Duration::from_secs(1), 10_000))
}

/// Drops a workspace's kept automations after a change to one of them.
fn forget(workspace_id: &str) {
    enabled().forget(workspace_id);
}

/// The enabled rules and flows of a workspace for one trigger name.
pub async fn for_trigger(db: &Db, workspace_id: &str, trigger: &str) -> Result<Vec<Automation>> {
    let all = enabled()
        .get_or_load(workspace_id, || async {
            let sql = format!("{SELECT}WHERE workspace_id = $1 AND enabled = TRUE ORDER BY id");
            let rows: Vec<Row> =
                with_db!(db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(workspace_id).fetch_all(pool).await?);
            Ok(rows.into_iter().map(Automation::from).collect::<Vec<_>>())
        })
        .await?;
    Ok(all.iter().filter(|a| a.trigger == trigger).cloned().collect())
}

/// Changes an automation. Enabling it again forgets its failures.
#[tracing::instrument(skip_all, fields(automation = %id))]
pub async fn update(db: &Db, workspace_id: &str, id: &str, input: AutomationInput) -> Result<Automation> {
    let current = get(db, workspace_id, id).await?;
    let kind = input.kind.as_deref().unwrap_or(&current.kind);
    check_kind(kind)?;
    let c = check(
        input.name.as_deref().unwrap_or(&current.name),
        kind,
        input.trigger.as_deref().unwrap_or(&current.trigger),
        input.params.as_ref().unwrap_or(&current.params),
        body(kind, &input, Some(&current))?,
        input.enabled.unwrap_or(current.enabled),
    )?;
    check_audience(db, workspace_id, &c.trigger, Some(input.params.as_ref().unwrap_or(&current.params))).await?;
    let revived = input.enabled == Some(true);
    // Strictly later than the last version, so the compiled-script cache
    // never mistakes a change made in the same millisecond for the old one.
    let now = now_ms().max(current.version + 1);
    with_tx!(db, tx => {
        sqlx::query(
            "UPDATE automation SET name = $1, trigger_name = $2, params = $3, script = $4, enabled = $5, updated_at = $6, \
             disabled_reason = CASE WHEN $7 THEN NULL ELSE disabled_reason END, failures = CASE WHEN $7 THEN 0 ELSE failures END, \
             kind = $10, flow = $11, email_fallback = $12 WHERE id = $8 AND workspace_id = $9")
            .bind(&c.name).bind(&c.trigger).bind(&c.params).bind(&c.script).bind(c.enabled).bind(now).bind(revived)
            .bind(id).bind(workspace_id).bind(c.kind).bind(&c.flow).bind(input.email_fallback.unwrap_or(current.email_fallback))
            .execute(&mut *tx).await?;
    });
    forget(workspace_id);
    get(db, workspace_id, id).await
}

/// Whether an automation's chat messages may be emailed to a person who
/// misses them (an automation deleted meanwhile: yes, the default).
pub async fn email_fallback(db: &Db, automation_id: &str) -> Result<bool> {
    let on: Option<(bool,)> = with_db!(db, pool => sqlx::query_as("SELECT email_fallback FROM automation WHERE id = $1")
        .bind(automation_id).fetch_optional(pool).await?);
    Ok(on.is_none_or(|(on,)| on))
}

#[tracing::instrument(skip_all, fields(automation = %id))]
pub async fn delete(db: &Db, workspace_id: &str, id: &str) -> Result<()> {
    with_tx!(db, tx => {
        let found: Option<(String,)> = sqlx::query_as("SELECT id FROM automation WHERE id = $1 AND workspace_id = $2")
            .bind(id).bind(workspace_id).fetch_optional(&mut *tx).await?;
        if found.is_none() {
            return Err(Error::NotFound("automation"));
        }
        sqlx::query("DELETE FROM automation_run WHERE automation_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM automation WHERE id = $1").bind(id).execute(&mut *tx).await?;
    });
    forget(workspace_id);
    tracing::info!(automation = id, "automation deleted");
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Error,
    /// Not run, or its actions not applied (rate limited, nothing to act on).
    Skipped,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One run, as logged.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Run {
    pub id: String,
    pub trigger: String,
    pub outcome: String,
    #[schema(value_type = Vec<Object>)]
    pub actions: Value,
    pub error: Option<String>,
    pub duration_us: i64,
    pub at: String,
}

/// What a run did, to log.
pub struct RunRecord<'a> {
    pub trigger: &'a str,
    pub outcome: Outcome,
    pub actions: &'a [Action],
    pub error: Option<String>,
    pub duration_us: i64,
}

/// Logs a run and keeps count of failures in a row: an error adds one, a
/// success resets them, and the [`MAX_FAILURES`]th error in a row switches
/// the automation off with the reason (also written into this run's error).
pub async fn log_run(db: &Db, workspace_id: &str, automation_id: &str, run: RunRecord<'_>) -> Result<()> {
    let actions = serde_json::to_string(run.actions).map_err(|e| Error::Internal(e.into()))?;
    let now = now_ms();
    let mut error = run.error;
    let mut switched_off = false;
    with_tx!(db, tx => {
        match run.outcome {
            Outcome::Error => {
                let (failures,): (i64,) = sqlx::query_as("UPDATE automation SET failures = failures + 1 WHERE id = $1 RETURNING failures")
                    .bind(automation_id).fetch_one(&mut *tx).await?;
                if failures >= MAX_FAILURES {
                    let reason = format!(
                        "switched off after {failures} failed runs in a row; the last: {}",
                        error.as_deref().unwrap_or("unknown error")
                    );
                    let changed = sqlx::query("UPDATE automation SET enabled = FALSE, disabled_reason = $1 WHERE id = $2 AND enabled = TRUE")
                        .bind(&reason).bind(automation_id).execute(&mut *tx).await?;
                    if changed.rows_affected() > 0 {
                        switched_off = true;
                        tracing::warn!(automation = automation_id, failures, "automation switched off: it keeps failing");
                        error = Some(reason);
                    }
                }
            }
            Outcome::Ok => {
                sqlx::query("UPDATE automation SET failures = 0 WHERE id = $1 AND failures <> 0").bind(automation_id).execute(&mut *tx).await?;
            }
            Outcome::Skipped => {}
        }
        sqlx::query(
            "INSERT INTO automation_run (id, automation_id, workspace_id, trigger_name, outcome, actions, error, duration_us, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(new_id()).bind(automation_id).bind(workspace_id).bind(run.trigger).bind(run.outcome.as_str()).bind(&actions)
            .bind(&error).bind(run.duration_us).bind(now)
            .execute(&mut *tx).await?;
        // The log keeps the newest runs, so a busy rule cannot fill the disk:
        // newest in the log's own order, by id (time-ordered, given at insert).
        sqlx::query(
            "DELETE FROM automation_run WHERE automation_id = $1 AND id < \
             (SELECT id FROM automation_run WHERE automation_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)")
            .bind(automation_id).bind(KEEP_RUNS - 1).execute(&mut *tx).await?;
    });
    if switched_off {
        forget(workspace_id);
    }
    metrics::counter!("parley_automation_runs_total", "outcome" => run.outcome.as_str()).increment(1);
    Ok(())
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    trigger_name: String,
    outcome: String,
    actions: String,
    error: Option<String>,
    duration_us: i64,
    at: i64,
}

/// A page of runs, newest first: `before` is the `next_cursor` of the page above.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Runs {
    pub items: Vec<Run>,
    pub next_cursor: Option<String>,
}

pub async fn runs(db: &Db, workspace_id: &str, automation_id: &str, before: Option<&str>, limit: Option<i64>) -> Result<Runs> {
    get(db, workspace_id, automation_id).await?;
    let limit = limit.unwrap_or(50).clamp(1, RUNS_MAX);
    let mut rows: Vec<RunRow> = with_db!(db, pool => sqlx::query_as(
        "SELECT id, trigger_name, outcome, actions, error, duration_us, at FROM automation_run \
         WHERE automation_id = $1 AND workspace_id = $2 AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4")
        .bind(automation_id).bind(workspace_id).bind(before).bind(limit + 1).fetch_all(pool).await?);
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|r| r.id.clone()) } else { None };
    let items = rows
        .into_iter()
        .map(|r| Run {
            id: r.id,
            trigger: r.trigger_name,
            outcome: r.outcome,
            actions: serde_json::from_str(&r.actions).unwrap_or_else(|_| serde_json::json!([])),
            error: r.error,
            duration_us: r.duration_us,
            at: rfc3339(r.at),
        })
        .collect();
    Ok(Runs { items, next_cursor })
}
