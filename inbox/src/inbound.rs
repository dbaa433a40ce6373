//! `POST /api/v1/inbound/email`: an email answering a missed-message email,
//! handed over as raw MIME by whatever receives the workspace's mail (a mail
//! provider's inbound hook, a forwarding rule). The reply-to address's
//! `+TOKEN` finds the conversation; the text above the quoted email becomes
//! the person's message, as if they had written it in the widget.

use axum::Json as JsonOut;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use parley_engine::chat::{self, Message, NewMessage};
use parley_engine::{Engine, Error, Result, missed};

use crate::extract::Auth;

/// The largest email taken (413 above it).
pub const MAX_EMAIL: usize = 10 * 1024 * 1024;

/// The recipients an inbound email may name its conversation in.
fn recipients(m: &mail_parser::Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for list in [m.to(), m.cc(), m.bcc()].into_iter().flatten() {
        out.extend(list.iter().filter_map(|a| a.address().map(str::to_owned)));
    }
    // Forwarders keep the original recipient in these.
    for name in ["Delivered-To", "X-Original-To", "Envelope-To"] {
        if let Some(v) = m.header_raw(name) {
            out.push(v.trim().to_owned());
        }
    }
    out
}

#[utoipa::path(post, path = "/api/v1/inbound/email", tag = "email",
    request_body(content = String, content_type = "message/rfc822", description = "the raw email"),
    responses((status = 201, body = Message, description = "the person's message in their conversation"), (status = 400, description = "not an email"),
        (status = 403, description = "admins and API keys only"), (status = 422, description = "no conversation's reply address, or no text")))]
pub async fn email(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, JsonOut<Message>)> {
    actor.require_admin()?;
    let too_large = || Error::PayloadTooLarge(format!("an email may be at most {} MiB", MAX_EMAIL / (1024 * 1024)));
    // Refused on its declared length before any of it is read.
    let declared = headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_EMAIL) {
        return Err(too_large());
    }
    let raw: Bytes = axum::body::to_bytes(body, MAX_EMAIL).await.map_err(|_| too_large())?;
    let parsed = mail_parser::MessageParser::default()
        .parse(&raw)
        .filter(|m| m.from().is_some() || m.to().is_some())
        .ok_or_else(|| Error::BadRequest { code: "bad_email", message: "the body is not an email (raw MIME)".into(), field: None })?;
    let mut found = None;
    for r in recipients(&parsed) {
        if let Some(token) = missed::token_in(&r)
            && let Some(hit) = missed::by_token(&engine.db, &actor.workspace_id, token).await?
        {
            found = Some(hit);
            break;
        }
    }
    let (conversation_id, person_id) =
        found.ok_or_else(|| Error::invalid("to", "no recipient is the reply address of a conversation in this workspace"))?;
    let text = parsed.body_text(0).map(|t| missed::reply_text(&t)).unwrap_or_default();
    if text.is_empty() {
        return Err(Error::invalid("body", "the email has no text above the quoted message"));
    }
    // The Message-ID makes a resent email land once.
    let echo_id = parsed.message_id().map(|id| format!("email:{}", &parley_engine::util::hash_token(id)[..40]));
    let sent = chat::send(
        &engine.db,
        &engine.hub,
        NewMessage { echo_id, ..NewMessage::from_person(&actor.workspace_id, &person_id, Some(conversation_id), text) },
    )
    .await?;
    Ok((if sent.created { StatusCode::CREATED } else { StatusCode::OK }, JsonOut(sent.message)))
}
