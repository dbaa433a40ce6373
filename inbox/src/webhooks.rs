//! `/api/v1/webhooks…`: subscriptions of the site's backend to what happens
//! in the workspace, and each one's delivery log. Admins only: the
//! subscriptions carry their signing secrets.

use axum::Json as JsonOut;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use parley_engine::http::Json;
use parley_engine::webhooks::{self, Delivery, Webhook, WebhookInput};
use parley_engine::{Engine, Result};
use serde::{Deserialize, Serialize};

use crate::extract::Auth;

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", responses((status = 200, body = Vec<Webhook>), (status = 403)))]
pub async fn list(State(engine): State<Engine>, Auth(actor): Auth) -> Result<JsonOut<Vec<Webhook>>> {
    actor.require_admin()?;
    Ok(JsonOut(webhooks::list(&engine.db, &actor.workspace_id).await?))
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = WebhookInput,
    responses((status = 201, body = Webhook), (status = 403), (status = 422, description = "bad url, events or secret")))]
pub async fn create(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Json(input): Json<WebhookInput>,
) -> Result<(StatusCode, JsonOut<Webhook>)> {
    actor.require_admin()?;
    Ok((StatusCode::CREATED, JsonOut(webhooks::create(&engine.db, &actor.workspace_id, input).await?)))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", responses((status = 200, body = Webhook), (status = 403), (status = 404)))]
pub async fn get(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<JsonOut<Webhook>> {
    actor.require_admin()?;
    Ok(JsonOut(webhooks::get(&engine.db, &actor.workspace_id, &id).await?))
}

#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", request_body = WebhookInput,
    responses((status = 200, body = Webhook), (status = 403), (status = 404), (status = 422)))]
pub async fn update(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(input): Json<WebhookInput>,
) -> Result<JsonOut<Webhook>> {
    actor.require_admin()?;
    Ok(JsonOut(webhooks::update(&engine.db, &actor.workspace_id, &id, input).await?))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", responses((status = 204), (status = 403), (status = 404)))]
pub async fn delete(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<StatusCode> {
    actor.require_admin()?;
    webhooks::delete(&engine.db, &actor.workspace_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DeliveryQuery {
    /// queued, delivered or failed
    pub status: Option<String>,
    pub cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", params(DeliveryQuery),
    responses((status = 200, body = DeliveryPage, description = "Newest first"), (status = 403), (status = 404)))]
pub async fn deliveries(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Query(q): Query<DeliveryQuery>,
) -> Result<JsonOut<DeliveryPage>> {
    actor.require_admin()?;
    let (items, next_cursor) = webhooks::deliveries(&engine.db, &actor.workspace_id, &id, q.status.as_deref(), q.cursor.as_deref()).await?;
    Ok(JsonOut(DeliveryPage { items, next_cursor }))
}
