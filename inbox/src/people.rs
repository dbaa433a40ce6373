//! `/api/v1/people…`, `/api/v1/events`, `/api/v1/search` (quick add) and
//! `/api/v1/companies…`: who the workspace talks to and what they did.

use axum::Json as JsonOut;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use parley_engine::bus::{Cause, Happening};
use parley_engine::companies::{self, Company};
use parley_engine::events::{self, EventInput, Ingested, Timeline};
use parley_engine::http::{Json, from_value};
use parley_engine::people::{Person, PersonInput, profile};
use parley_engine::search::{self, QuickAdd, SearchPage, SearchRequest};
use parley_engine::{Engine, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::extract::Auth;

#[utoipa::path(post, path = "/api/v1/people", tag = "people", request_body = PersonInput,
    responses((status = 201, body = Person, description = "Created"), (status = 200, body = Person, description = "Updated: found by external_id, else email"),
        (status = 409, description = "external_id taken"), (status = 422, description = "invalid field")))]
pub async fn upsert(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Json(input): Json<PersonInput>,
) -> Result<(StatusCode, JsonOut<Person>)> {
    let u = profile::upsert(&engine.db, &actor.workspace_id, input).await?;
    let (workspace_id, person_id, cause) = (actor.workspace_id.clone(), u.person.id.clone(), Cause::Someone);
    engine.hub.bus().publish(if u.created {
        Happening::PersonCreated { workspace_id, person_id, cause }
    } else {
        Happening::PersonUpdated { workspace_id, person_id, cause }
    });
    Ok((if u.created { StatusCode::CREATED } else { StatusCode::OK }, JsonOut(u.person)))
}

#[utoipa::path(get, path = "/api/v1/people/{id}", tag = "people",
    responses((status = 200, body = Person, description = "With per-event summaries"), (status = 404, description = "unknown, or in another workspace")))]
pub async fn get(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<JsonOut<Person>> {
    Ok(JsonOut(profile::get(&engine.db, &actor.workspace_id, &id).await?))
}

#[utoipa::path(patch, path = "/api/v1/people/{id}", tag = "people", request_body = PersonInput,
    responses((status = 200, body = Person), (status = 404), (status = 409, description = "external_id taken"), (status = 422)))]
pub async fn patch(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(input): Json<PersonInput>,
) -> Result<JsonOut<Person>> {
    let person = profile::patch(&engine.db, &actor.workspace_id, &id, input).await?;
    engine.hub.bus().publish(Happening::PersonUpdated { workspace_id: actor.workspace_id, person_id: id, cause: Cause::Someone });
    Ok(JsonOut(person))
}

#[utoipa::path(delete, path = "/api/v1/people/{id}", tag = "people",
    responses((status = 204, description = "Deleted with their conversations and timeline"), (status = 403, description = "admins only"), (status = 404)))]
pub async fn delete(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<StatusCode> {
    actor.require_admin()?;
    profile::delete(&engine.db, &engine.uploads_dir, &actor.workspace_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct TimelineQuery {
    /// `next_cursor` of the page before.
    pub before: Option<String>,
    /// Only events with this name.
    pub name: Option<String>,
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/people/{id}/timeline", tag = "people", params(TimelineQuery),
    responses((status = 200, body = Timeline, description = "Newest first"), (status = 404)))]
pub async fn timeline(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Query(q): Query<TimelineQuery>,
) -> Result<JsonOut<Timeline>> {
    let name = q.name.as_deref().filter(|n| !n.is_empty());
    Ok(JsonOut(events::timeline(&engine.db, &actor.workspace_id, &id, q.before.as_deref(), name, q.limit.unwrap_or(50)).await?))
}

#[utoipa::path(post, path = "/api/v1/events", tag = "people", request_body = EventInput,
    responses((status = 202, body = Ingested, description = "Stored (one event, or a JSON array of up to 1000: all or none)"),
        (status = 413, description = "too many events or data too large"), (status = 422, description = "names the bad item and field, e.g. 3.name")))]
pub async fn track(State(engine): State<Engine>, Auth(actor): Auth, Json(body): Json<Value>) -> Result<(StatusCode, JsonOut<Ingested>)> {
    let (items, batch) = match body {
        Value::Array(_) => (from_value::<Vec<EventInput>>(body)?, true),
        one => (vec![from_value::<EventInput>(one)?], false),
    };
    let announced: Vec<(events::PersonRef, String, Value)> =
        items.iter().map(|e| (e.person.clone(), e.name.clone(), e.data.clone().unwrap_or(Value::Null))).collect();
    let ingested = events::ingest(&engine.db, &actor.workspace_id, items, batch).await?;
    for person_id in &ingested.created_ids {
        let (workspace_id, person_id) = (actor.workspace_id.clone(), person_id.clone());
        engine.hub.bus().publish(Happening::PersonCreated { workspace_id, person_id, cause: Cause::Someone });
    }
    let at = parley_engine::util::now_ms();
    for (person, name, data) in announced {
        let workspace_id = actor.workspace_id.clone();
        engine.hub.bus().publish(Happening::EventTracked { workspace_id, person, name, data, at, cause: Cause::Someone });
    }
    Ok((StatusCode::ACCEPTED, JsonOut(ingested)))
}

#[utoipa::path(post, path = "/api/v1/people/search", tag = "people", request_body = SearchRequest,
    responses((status = 200, body = SearchPage), (status = 422, description = "bad filter: `field` points at the node, e.g. filter.and.1.op")))]
pub async fn search(State(engine): State<Engine>, Auth(actor): Auth, Json(req): Json<SearchRequest>) -> Result<Response> {
    Ok(page_response(search::search_json(&engine.db, engine.people_index.as_ref(), &actor.workspace_id, &req).await?))
}

/// A [`SearchPage`] already serialised by [`search::search_json`].
pub(crate) fn page_response(json: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct QuickQuery {
    pub q: String,
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/search", tag = "people", params(QuickQuery),
    responses((status = 200, body = QuickAdd, description = "People, companies and segments matching what was typed")))]
pub async fn quick_add(State(engine): State<Engine>, Auth(actor): Auth, Query(q): Query<QuickQuery>) -> Result<JsonOut<QuickAdd>> {
    Ok(JsonOut(search::quick_add(&engine.db, engine.people_index.as_ref(), &actor.workspace_id, &q.q, q.limit.unwrap_or(5)).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct CompanyQuery {
    /// Name prefix.
    pub q: Option<String>,
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/companies", tag = "people", params(CompanyQuery), responses((status = 200, body = Vec<Company>)))]
pub async fn companies(State(engine): State<Engine>, Auth(actor): Auth, Query(q): Query<CompanyQuery>) -> Result<JsonOut<Vec<Company>>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    Ok(JsonOut(companies::search(&engine.db, &actor.workspace_id, q.q.as_deref().unwrap_or(""), limit).await?))
}

#[utoipa::path(get, path = "/api/v1/companies/{id}", tag = "people", responses((status = 200, body = Company), (status = 404)))]
pub async fn company(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<JsonOut<Company>> {
    Ok(JsonOut(companies::get(&engine.db, &actor.workspace_id, &id).await?))
}
