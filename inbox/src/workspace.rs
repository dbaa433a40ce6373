//! `/api/v1/workspace`, `/api/v1/teammates`, `/api/v1/api-keys`.

use axum::Json as JsonOut;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use parley_engine::auth::{self, NewApiKey, Role};
use parley_engine::hours;
use parley_engine::http::Json;
use parley_engine::util::rfc3339;
use parley_engine::workspace::{self as ws, NewTeammate, Teammate};
use parley_engine::{Engine, Error, Result, with_db, with_tx};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::extract::Auth;

#[derive(Serialize, utoipa::ToSchema)]
pub struct WorkspaceView {
    pub id: String,
    pub name: String,
    pub app_id: String,
    pub settings: Settings,
    /// Admins only: the key for widget identity verification (`user_hash`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_secret: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Settings {
    /// Refuse widget sessions with a `user_id` but no valid `user_hash`.
    pub require_identity: bool,
    /// Every person's conversation is their company's: all members see it and write in it.
    pub company_conversations: bool,
    /// Chat messages a person missed (no widget open, not seen) are emailed to them.
    pub email_fallback: bool,
    /// When the team is there; null: always open.
    pub business_hours: Option<hours::BusinessHours>,
    /// Whether it is within business hours now.
    pub open_now: bool,
}

async fn view(engine: &Engine, workspace_id: &str, role: Role) -> Result<WorkspaceView> {
    let w = ws::get(&engine.db, workspace_id).await?;
    let business_hours = hours::get(&engine.db, workspace_id).await?;
    let open_now = hours::open_at(business_hours.as_ref(), chrono::Utc::now())?;
    Ok(WorkspaceView {
        id: w.id,
        name: w.name,
        app_id: w.app_id,
        settings: Settings {
            require_identity: w.require_identity,
            company_conversations: w.company_conversations,
            email_fallback: w.email_fallback,
            business_hours,
            open_now,
        },
        identity_secret: (role == Role::Admin).then_some(w.identity_secret),
    })
}

#[utoipa::path(get, path = "/api/v1/workspace", tag = "workspace", responses((status = 200, body = WorkspaceView)))]
pub async fn get(State(engine): State<Engine>, Auth(actor): Auth) -> Result<JsonOut<WorkspaceView>> {
    Ok(JsonOut(view(&engine, &actor.workspace_id, actor.role).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePatch {
    /// What people see as the sender of emails and in the widget.
    pub name: Option<String>,
    pub require_identity: Option<bool>,
    pub company_conversations: Option<bool>,
    pub email_fallback: Option<bool>,
    /// `{timezone, weekly: {mon: [["09:00", "17:00"]], …}, holidays: ["YYYY-MM-DD"]}`,
    /// or null to clear.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub business_hours: Option<Value>,
}

/// A field that is there, even as null (which then means "clear it").
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[utoipa::path(patch, path = "/api/v1/workspace", tag = "workspace", request_body = WorkspacePatch,
    responses((status = 200, body = WorkspaceView), (status = 403, description = "admins only")))]
pub async fn update(State(engine): State<Engine>, Auth(actor): Auth, Json(body): Json<WorkspacePatch>) -> Result<JsonOut<WorkspaceView>> {
    actor.require_admin()?;
    let business_hours = match &body.business_hours {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => Some(Some(hours::BusinessHours::parse(v, "business_hours")?.0)),
    };
    let patch = ws::SettingsPatch {
        name: body.name,
        require_identity: body.require_identity,
        company_conversations: body.company_conversations,
        email_fallback: body.email_fallback,
        business_hours,
    };
    ws::update_settings(&engine.db, &actor, patch).await?;
    Ok(JsonOut(view(&engine, &actor.workspace_id, actor.role).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TeammateList {
    pub items: Vec<Teammate>,
}

#[utoipa::path(get, path = "/api/v1/teammates", tag = "workspace", responses((status = 200, body = TeammateList)))]
pub async fn list_teammates(State(engine): State<Engine>, Auth(actor): Auth) -> Result<JsonOut<TeammateList>> {
    Ok(JsonOut(TeammateList { items: ws::teammates(&engine.db, &actor.workspace_id).await? }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TeammateBody {
    pub email: String,
    pub name: String,
    pub password: String,
    /// admin or agent
    pub role: String,
}

#[utoipa::path(post, path = "/api/v1/teammates", tag = "workspace", request_body = TeammateBody,
    responses((status = 201, body = Teammate), (status = 403, description = "admins only"), (status = 409, description = "email taken"), (status = 422, description = "invalid field")))]
pub async fn create_teammate(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Json(body): Json<TeammateBody>,
) -> Result<(StatusCode, JsonOut<Teammate>)> {
    actor.require_admin()?;
    let role = Role::parse("role", &body.role)?;
    let t = ws::create_teammate(
        &engine.db,
        &actor.workspace_id,
        NewTeammate { email: &body.email, name: &body.name, password: &body.password, role },
    )
    .await?;
    Ok((StatusCode::CREATED, JsonOut(t)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeammatePatch {
    /// admin or agent
    pub role: String,
}

#[utoipa::path(patch, path = "/api/v1/teammates/{id}", tag = "workspace", request_body = TeammatePatch,
    responses((status = 200, body = Teammate), (status = 403, description = "admins only"), (status = 404),
        (status = 409, description = "last_admin: the workspace would have no admin left"), (status = 422, description = "bad role")))]
pub async fn update_teammate(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(body): Json<TeammatePatch>,
) -> Result<JsonOut<Teammate>> {
    actor.require_admin()?;
    let role = Role::parse("role", &body.role)?;
    let before = ws::teammate(&engine.db, &actor.workspace_id, &id).await?;
    let ws_id = &actor.workspace_id;
    with_tx!(&engine.db, tx => {
        sqlx::query("UPDATE teammate SET role = $1 WHERE id = $2 AND workspace_id = $3")
            .bind(role.as_str()).bind(&id).bind(ws_id).execute(&mut *tx).await?;
        // Counted after the change, in its transaction: a refused change is rolled back.
        let (admins,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM teammate WHERE workspace_id = $1 AND role = 'admin'")
            .bind(ws_id).fetch_one(&mut *tx).await?;
        if admins == 0 {
            return Err(Error::Conflict { code: "last_admin", message: format!("{} is the last admin: make someone else admin first", before.name) });
        }
    });
    ws::teammates_changed(ws_id);
    Ok(JsonOut(ws::teammate(&engine.db, &actor.workspace_id, &id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ApiKeyBody {
    pub name: String,
}

#[utoipa::path(post, path = "/api/v1/api-keys", tag = "workspace", request_body = ApiKeyBody,
    responses((status = 201, body = NewApiKey, description = "The key is shown once"), (status = 403, description = "admins only")))]
pub async fn create_api_key(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Json(body): Json<ApiKeyBody>,
) -> Result<(StatusCode, JsonOut<NewApiKey>)> {
    if actor.via_api_key {
        return Err(Error::forbidden("API keys cannot create API keys"));
    }
    Ok((StatusCode::CREATED, JsonOut(auth::create_api_key(&engine.db, &actor, &body.name).await?)))
}

/// An API key as listed: never the key itself, which was shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyView>,
}

#[utoipa::path(get, path = "/api/v1/api-keys", tag = "workspace",
    responses((status = 200, body = ApiKeyList, description = "Newest first, without the keys"), (status = 403, description = "admins only")))]
pub async fn list_api_keys(State(engine): State<Engine>, Auth(actor): Auth) -> Result<JsonOut<ApiKeyList>> {
    actor.require_admin()?;
    let rows: Vec<(String, String, i64)> = with_db!(&engine.db, pool => sqlx::query_as(
        "SELECT id, name, created_at FROM api_key WHERE workspace_id = $1 ORDER BY created_at DESC, id DESC")
        .bind(&actor.workspace_id).fetch_all(pool).await?);
    let items = rows.into_iter().map(|(id, name, at)| ApiKeyView { id, name, created_at: rfc3339(at) }).collect();
    Ok(JsonOut(ApiKeyList { items }))
}
