//! `/api/v1/auth/*`: logging in and out.

use axum::Json as JsonOut;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use parley_engine::http::Json;
use parley_engine::workspace::{self, Teammate};
use parley_engine::{Engine, Error, Result, auth as engine_auth};
use serde::{Deserialize, Serialize};

use crate::extract::{Auth, SESSION_COOKIE, token};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WorkspaceRef {
    pub id: String,
    pub name: String,
    pub app_id: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginAnswer {
    pub token: String,
    pub teammate: Teammate,
    pub workspace: WorkspaceRef,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    pub teammate: Teammate,
    pub workspace: WorkspaceRef,
}

async fn me_of(engine: &Engine, workspace_id: &str, teammate_id: &str) -> Result<Me> {
    let ws = workspace::get(&engine.db, workspace_id).await?;
    let teammate = workspace::teammate(&engine.db, workspace_id, teammate_id).await?;
    Ok(Me { teammate, workspace: WorkspaceRef { id: ws.id, name: ws.name, app_id: ws.app_id } })
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody, security(()),
    responses((status = 200, body = LoginAnswer, description = "Also sets the HttpOnly session cookie"), (status = 401, description = "wrong email or password")))]
pub async fn login(State(engine): State<Engine>, Json(body): Json<LoginBody>) -> Result<Response> {
    let (token, teammate_id) = engine_auth::login(&engine.db, &body.email, &body.password).await?;
    let actor = engine_auth::authenticate(&engine.db, &token).await?;
    let me = me_of(&engine, &actor.workspace_id, &teammate_id).await?;
    let secure = if engine.public_url.starts_with("https://") { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=2592000{secure}");
    let answer = LoginAnswer { token, teammate: me.teammate, workspace: me.workspace };
    Ok(([(header::SET_COOKIE, cookie)], JsonOut(answer)).into_response())
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204, description = "Session ended")))]
pub async fn logout(State(engine): State<Engine>, headers: HeaderMap) -> Result<Response> {
    let token = token(&headers).ok_or(Error::Unauthorized)?;
    engine_auth::logout(&engine.db, &token).await?;
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    Ok(([(header::SET_COOKIE, clear)], axum::http::StatusCode::NO_CONTENT).into_response())
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = Me), (status = 401, description = "not logged in")))]
pub async fn me(State(engine): State<Engine>, Auth(actor): Auth) -> Result<JsonOut<Me>> {
    Ok(JsonOut(me_of(&engine, &actor.workspace_id, &actor.teammate_id).await?))
}
