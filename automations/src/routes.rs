//! `/api/v1/automations…`: rules, their validation, dry runs and run logs.

use std::sync::Arc;

use axum::Json as JsonOut;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use parley_engine::chat;
use parley_engine::http::{Auth, Json};
use parley_engine::people::profile;
use parley_engine::util::now_ms;
use parley_engine::{Engine, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::apply::Subject;
use crate::jobs::Queue;
use crate::script::{self, Action, ScriptError};
use crate::store::{self, Automation, AutomationInput, Runs};
use crate::{flow, runner};

#[utoipa::path(get, path = "/api/v1/automations", tag = "automations", responses((status = 200, body = Vec<Automation>, description = "By name")))]
pub async fn list(State(engine): State<Engine>, Auth(actor): Auth) -> Result<JsonOut<Vec<Automation>>> {
    Ok(JsonOut(store::list(&engine.db, &actor.workspace_id).await?))
}

#[utoipa::path(post, path = "/api/v1/automations", tag = "automations", request_body = AutomationInput,
    responses((status = 201, body = Automation), (status = 403, description = "admins only"),
        (status = 422, description = "bad name, kind, trigger or params; a script that does not compile is `invalid_script` on `script`, its line and column in the message")))]
pub async fn create(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Json(input): Json<AutomationInput>,
) -> Result<(StatusCode, JsonOut<Automation>)> {
    actor.require_admin()?;
    let a = store::create(&engine.db, &actor.workspace_id, &actor.teammate_id, input).await?;
    plan(&engine, &actor.workspace_id, &a).await?;
    Ok((StatusCode::CREATED, JsonOut(a)))
}

#[utoipa::path(get, path = "/api/v1/automations/{id}", tag = "automations",
    responses((status = 200, body = Automation, description = "With `disabled_reason` when Parley switched it off"), (status = 404, description = "unknown, or in another workspace")))]
pub async fn get(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<JsonOut<Automation>> {
    Ok(JsonOut(store::get(&engine.db, &actor.workspace_id, &id).await?))
}

#[utoipa::path(patch, path = "/api/v1/automations/{id}", tag = "automations", request_body = AutomationInput,
    responses((status = 200, body = Automation, description = "`enabled: true` also forgets its failures"), (status = 403), (status = 404), (status = 422)))]
pub async fn update(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(input): Json<AutomationInput>,
) -> Result<JsonOut<Automation>> {
    actor.require_admin()?;
    let a = store::update(&engine.db, &actor.workspace_id, &id, input).await?;
    plan(&engine, &actor.workspace_id, &a).await?;
    Ok(JsonOut(a))
}

/// A schedule that was saved enabled gets its next time queued; the plans of
/// its earlier versions find themselves stale when they come due.
async fn plan(engine: &Engine, ws: &str, a: &Automation) -> Result<()> {
    runner::plan_schedule(&Queue::of(&engine.db), &engine.db, ws, a, now_ms()).await
}

#[utoipa::path(delete, path = "/api/v1/automations/{id}", tag = "automations",
    responses((status = 204, description = "Deleted with its run log"), (status = 403), (status = 404)))]
pub async fn delete(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<StatusCode> {
    actor.require_admin()?;
    store::delete(&engine.db, &actor.workspace_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateInput {
    pub script: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub flow: Option<Value>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Validation {
    pub ok: bool,
    pub errors: Vec<Problem>,
}

/// One problem found: where in a script (line, column), and for a flow
/// which step and field (`flow.nodes.email.validate`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

#[utoipa::path(post, path = "/api/v1/automations/validate", tag = "automations", request_body = ValidateInput,
    responses((status = 200, body = Validation, description = "`ok`, or the errors with their line and column"), (status = 422, description = "neither script nor flow")))]
pub async fn validate(Auth(_actor): Auth, Json(input): Json<ValidateInput>) -> Result<JsonOut<Validation>> {
    let errors: Vec<Problem> = match (&input.script, &input.flow) {
        (Some(s), _) => script::compile(s)
            .err()
            .map(|e| Problem { field: None, line: e.line, column: e.column, message: e.message })
            .into_iter()
            .collect(),
        (None, Some(f)) => flow::parse(f)
            .err()
            .map(|e| Problem { field: Some(format!("flow.{}", e.field)), line: e.line, column: e.column, message: e.message })
            .into_iter()
            .collect(),
        (None, None) => return Err(Error::invalid("script", "send a script (or a flow) to validate")),
    };
    Ok(JsonOut(Validation { ok: errors.is_empty(), errors }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestInput {
    /// What the script sees as `event`; `person_id` and `conversation_id`
    /// in it choose the `person` and `conversation` it sees.
    #[schema(value_type = Object)]
    pub event: Value,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TestRun {
    pub ok: bool,
    /// What the rule would do; nothing was done.
    pub actions: Vec<Action>,
    pub error: Option<ScriptError>,
}

fn id_in(event: &Value, field: &str) -> Result<Option<String>> {
    match event.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::invalid(format!("event.{field}"), format!("{field} is a string id"))),
    }
}

#[utoipa::path(post, path = "/api/v1/automations/{id}/test", tag = "automations", request_body = TestInput,
    responses((status = 200, body = TestRun, description = "The actions it would take; nothing is sent or changed"), (status = 404),
        (status = 422, description = "event is not an object, or names a person or conversation that is not in the workspace")))]
pub async fn test(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(input): Json<TestInput>,
) -> Result<JsonOut<TestRun>> {
    let rule = store::get(&engine.db, &actor.workspace_id, &id).await?;
    if rule.kind == "flow" {
        return Err(Error::invalid("id", "a dry run tries a rule; a flow is tried in a conversation"));
    }
    let mut event = input.event;
    if !event.is_object() {
        return Err(Error::invalid("event", "event must be a JSON object"));
    }
    let ws = actor.workspace_id.clone();
    let conversation_id = id_in(&event, "conversation_id")?;
    let mut person_id = id_in(&event, "person_id")?;
    if let Some(cid) = &conversation_id {
        let owner = chat::conversation_person(&engine.db, &ws, cid)
            .await
            .map_err(|_| Error::invalid("event.conversation_id", "no such conversation in this workspace"))?;
        person_id.get_or_insert(owner);
    }
    if let Some(pid) = &person_id {
        profile::get(&engine.db, &ws, pid).await.map_err(|_| Error::invalid("event.person_id", "no such person in this workspace"))?;
    }
    if event.get("type").is_none() {
        event["type"] = rule.trigger.clone().into();
    }
    let mut subject = Subject { workspace_id: ws, person_id, conversation_id };
    let (person, conversation) = runner::load(&engine, &mut subject).await?;
    let ast = match script::compile(rule.script.as_deref().unwrap_or_default()) {
        Ok(ast) => Arc::new(ast),
        Err(e) => return Ok(JsonOut(TestRun { ok: false, actions: Vec::new(), error: Some(e) })),
    };
    Ok(JsonOut(match runner::evaluate(&engine, ast, event, &subject, person.as_ref(), conversation).await {
        Ok(actions) => TestRun { ok: true, actions, error: None },
        Err(e) => TestRun { ok: false, actions: Vec::new(), error: Some(e) },
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct RunsQuery {
    /// `next_cursor` of the page before.
    pub before: Option<String>,
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/automations/{id}/runs", tag = "automations", params(RunsQuery),
    responses((status = 200, body = Runs, description = "Newest first: trigger, outcome, actions, error, duration"), (status = 404)))]
pub async fn runs(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Query(q): Query<RunsQuery>,
) -> Result<JsonOut<Runs>> {
    Ok(JsonOut(store::runs(&engine.db, &actor.workspace_id, &id, q.before.as_deref(), q.limit).await?))
}
