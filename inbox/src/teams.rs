//! `/api/v1/teams…`: teams that conversations are routed to. Everyone reads
//! them; admins change them.

use axum::Json as JsonOut;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use parley_engine::http::Json;
use parley_engine::teams::{self, Team, TeamInput};
use parley_engine::{Engine, Result};

use crate::extract::Auth;

#[utoipa::path(get, path = "/api/v1/teams", tag = "teams", responses((status = 200, body = Vec<Team>, description = "By name, with members")))]
pub async fn list(State(engine): State<Engine>, Auth(actor): Auth) -> Result<JsonOut<Vec<Team>>> {
    Ok(JsonOut(teams::list(&engine.db, &actor.workspace_id).await?))
}

#[utoipa::path(post, path = "/api/v1/teams", tag = "teams", request_body = TeamInput,
    responses((status = 201, body = Team), (status = 403, description = "admins only"), (status = 409, description = "name taken"), (status = 422, description = "bad name or member")))]
pub async fn create(State(engine): State<Engine>, Auth(actor): Auth, Json(input): Json<TeamInput>) -> Result<(StatusCode, JsonOut<Team>)> {
    actor.require_admin()?;
    Ok((StatusCode::CREATED, JsonOut(teams::create(&engine.db, &actor.workspace_id, input).await?)))
}

#[utoipa::path(get, path = "/api/v1/teams/{id}", tag = "teams", responses((status = 200, body = Team), (status = 404)))]
pub async fn get(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<JsonOut<Team>> {
    Ok(JsonOut(teams::get(&engine.db, &actor.workspace_id, &id).await?))
}

#[utoipa::path(patch, path = "/api/v1/teams/{id}", tag = "teams", request_body = TeamInput,
    responses((status = 200, body = Team), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn update(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(input): Json<TeamInput>,
) -> Result<JsonOut<Team>> {
    actor.require_admin()?;
    Ok(JsonOut(teams::update(&engine.db, &actor.workspace_id, &id, input).await?))
}

#[utoipa::path(delete, path = "/api/v1/teams/{id}", tag = "teams",
    responses((status = 204, description = "Deleted; its conversations keep their assignee"), (status = 403), (status = 404)))]
pub async fn delete(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<StatusCode> {
    actor.require_admin()?;
    teams::delete(&engine.db, &actor.workspace_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
