//! What SMS providers post back: `/sms/v1/status/{token}` (a text's fate,
//! for its delivery row) and `/sms/v1/inbound/{token}` (a text a person sent
//! to the workspace's number, into their conversation). Both take the form
//! fields the common SMS APIs send; each address is signed, so only the
//! provider that was given it can post there.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use parley_engine::chat::{self, NewMessage};
use parley_engine::{Engine, Error, Result, outbound, sms};
use serde::Deserialize;

/// The largest inbound text body kept, in bytes.
const MAX_TEXT: usize = 4096;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct StatusForm {
    /// `delivered`, `failed`, `undelivered`; other words mean still on its way.
    #[serde(alias = "MessageStatus", alias = "SmsStatus", alias = "status")]
    pub message_status: Option<String>,
    #[serde(alias = "ErrorCode", alias = "error_code")]
    pub error: Option<String>,
}

#[utoipa::path(post, path = "/sms/v1/status/{token}", tag = "sms",
    params(("token" = String, Path, description = "the signed token Parley gave the provider")),
    request_body(content = StatusForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 204), (status = 404, description = "not a valid token"), (status = 422, description = "no status")))]
pub async fn status(State(engine): State<Engine>, Path(token): Path<String>, form: axum::Form<StatusForm>) -> Result<StatusCode> {
    let id = outbound::status_delivery(&engine.db, &token).await?.ok_or(Error::NotFound("delivery"))?;
    let word = form.message_status.as_deref().ok_or_else(|| Error::invalid("MessageStatus", "MessageStatus is missing"))?;
    let Some(delivered) = sms::provider_status(word) else { return Ok(StatusCode::NO_CONTENT) };
    let error =
        (!delivered).then(|| format!("provider reported {word}{}", form.error.as_deref().map(|c| format!(" ({c})")).unwrap_or_default()));
    if let Some(Some(outbound_id)) = outbound::sms_status(&engine.db, &id, delivered, error.as_deref()).await? {
        let ws: Option<String> = outbound::workspace_of(&engine.db, &outbound_id).await?;
        if let Some(ws) = ws {
            outbound::publish_progress(&engine.db, &engine.hub, &ws, &outbound_id).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct InboundForm {
    #[serde(alias = "From")]
    pub from: String,
    #[serde(alias = "Body")]
    pub body: String,
}

#[utoipa::path(post, path = "/sms/v1/inbound/{token}", tag = "sms",
    params(("token" = String, Path, description = "the workspace's signed inbound token (GET /api/v1/sms)")),
    request_body(content = InboundForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "stored in the sender's conversation"), (status = 404, description = "unknown token or number"),
        (status = 413), (status = 422)))]
pub async fn inbound(State(engine): State<Engine>, Path(token): Path<String>, form: axum::Form<InboundForm>) -> Result<Response> {
    let w = sms::inbound_workspace(&engine.db, &token).await?.ok_or(Error::NotFound("workspace"))?;
    if form.body.len() > MAX_TEXT {
        return Err(Error::PayloadTooLarge(format!("Body is longer than {MAX_TEXT} bytes")));
    }
    if sms::digits(&form.from).len() < 6 {
        return Err(Error::invalid("From", "From is not a phone number"));
    }
    let person = sms::person_by_phone(&engine.db, &w.id, form.from.trim()).await?.ok_or(Error::NotFound("person"))?;
    let sent = chat::send(&engine.db, &engine.hub, NewMessage::from_person(&w.id, &person, None, form.body.clone())).await?;
    // Providers read an empty answer as "nothing to text back".
    Ok((StatusCode::OK, axum::Json(serde_json::json!({"message_id": sent.message.id}))).into_response())
}
