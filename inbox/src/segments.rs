//! `/api/v1/segments…`: saved filters with live counts and their people.

use axum::Json as JsonOut;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use parley_engine::http::Json;
use parley_engine::search::{self, SearchPage, SearchRequest};
use parley_engine::segments::{self, Segment, SegmentInput};
use parley_engine::{Engine, Result};
use serde::Deserialize;

use crate::extract::Auth;

#[utoipa::path(get, path = "/api/v1/segments", tag = "segments", responses((status = 200, body = Vec<Segment>, description = "By name, each with its live count")))]
pub async fn list(State(engine): State<Engine>, Auth(actor): Auth) -> Result<JsonOut<Vec<Segment>>> {
    Ok(JsonOut(segments::list(&engine.db, engine.people_index.as_ref(), &actor.workspace_id).await?))
}

#[utoipa::path(post, path = "/api/v1/segments", tag = "segments", request_body = SegmentInput,
    responses((status = 201, body = Segment), (status = 422, description = "bad name or filter")))]
pub async fn create(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Json(input): Json<SegmentInput>,
) -> Result<(StatusCode, JsonOut<Segment>)> {
    let s = segments::create(&engine.db, &actor.workspace_id, &actor.teammate_id, input).await?;
    Ok((StatusCode::CREATED, JsonOut(segments::get(&engine.db, engine.people_index.as_ref(), &actor.workspace_id, &s.id).await?)))
}

#[utoipa::path(get, path = "/api/v1/segments/{id}", tag = "segments", responses((status = 200, body = Segment, description = "With its live count"), (status = 404)))]
pub async fn get(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<JsonOut<Segment>> {
    Ok(JsonOut(segments::get(&engine.db, engine.people_index.as_ref(), &actor.workspace_id, &id).await?))
}

#[utoipa::path(patch, path = "/api/v1/segments/{id}", tag = "segments", request_body = SegmentInput,
    responses((status = 200, body = Segment), (status = 404), (status = 422)))]
pub async fn update(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(input): Json<SegmentInput>,
) -> Result<JsonOut<Segment>> {
    segments::update(&engine.db, &actor.workspace_id, &id, input).await?;
    Ok(JsonOut(segments::get(&engine.db, engine.people_index.as_ref(), &actor.workspace_id, &id).await?))
}

#[utoipa::path(delete, path = "/api/v1/segments/{id}", tag = "segments",
    responses((status = 204), (status = 404), (status = 409, description = "another segment uses it")))]
pub async fn delete(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<StatusCode> {
    segments::delete(&engine.db, &actor.workspace_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct PeopleQuery {
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/segments/{id}/people", tag = "segments", params(PeopleQuery),
    responses((status = 200, body = SearchPage, description = "Who matches now"), (status = 404)))]
pub async fn people(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Query(q): Query<PeopleQuery>,
) -> Result<axum::response::Response> {
    segments::load(&engine.db, &actor.workspace_id, &id).await?;
    let req = SearchRequest { q: q.q, filter: Some(serde_json::json!({"segment": id})), cursor: q.cursor, limit: q.limit, sort: None };
    Ok(crate::people::page_response(search::search_json(&engine.db, engine.people_index.as_ref(), &actor.workspace_id, &req).await?))
}
