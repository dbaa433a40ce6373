//! `POST /widget/v1/session` and `GET /widget/v1/conversation`.

use axum::Json as JsonOut;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use parley_engine::chat::{self, WidgetState};
use parley_engine::http::Json;
use parley_engine::people::{self, SessionRequest, Visitor};
use parley_engine::{Engine, Error, Result, workspace};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct SessionBody {
    pub app_id: String,
    /// A token from an earlier session in this browser.
    pub token: Option<String>,
    /// The site's own id for a logged-in user.
    pub user_id: Option<String>,
    /// Hex HMAC-SHA256(identity_secret, user_id), computed by the site's backend.
    pub user_hash: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    /// Custom attributes to set on the person.
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionAnswer {
    pub token: String,
    pub person_id: String,
}

#[utoipa::path(post, path = "/widget/v1/session", tag = "widget", request_body = SessionBody,
    responses((status = 200, body = SessionAnswer), (status = 403, description = "identity verification failed"), (status = 404, description = "unknown app_id")))]
pub async fn create(State(engine): State<Engine>, Json(body): Json<SessionBody>) -> Result<JsonOut<SessionAnswer>> {
    let ws = workspace::by_app_id(&engine.db, body.app_id.trim()).await?;
    let s = people::start_session(
        &engine.db,
        &ws,
        SessionRequest {
            token: body.token,
            user_id: body.user_id,
            user_hash: body.user_hash,
            email: body.email,
            name: body.name,
            attributes: body.attributes,
        },
    )
    .await?;
    Ok(JsonOut(SessionAnswer { token: s.token, person_id: s.person_id }))
}

/// The visitor of a `Bearer pvt_…` header.
pub async fn visitor_from_headers(engine: &Engine, headers: &HeaderMap) -> Result<Visitor> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(Error::Unauthorized)?;
    people::authenticate_visitor(&engine.db, token.trim()).await
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ConversationQuery {
    /// A conversation of the visitor's to open instead of their latest.
    pub conversation_id: Option<String>,
}

#[utoipa::path(get, path = "/widget/v1/conversation", tag = "widget", params(ConversationQuery),
    responses((status = 200, body = WidgetState), (status = 401, description = "no or invalid visitor token")))]
pub async fn conversation(
    State(engine): State<Engine>,
    headers: HeaderMap,
    Query(q): Query<ConversationQuery>,
) -> Result<JsonOut<WidgetState>> {
    let v = visitor_from_headers(&engine, &headers).await?;
    Ok(JsonOut(chat::widget_state(&engine.db, &engine.hub, &v.workspace_id, &v.person_id, q.conversation_id.as_deref()).await?))
}
