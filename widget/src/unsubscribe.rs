//! `/u/{token}`: the unsubscribe link at the foot of every email.
//!
//! `GET` only shows a page with a button, because mail scanners open links
//! on their own and must not unsubscribe anyone; `POST` (the button, or a
//! mail client's one-click `List-Unsubscribe-Post`) unsubscribes the person
//! the signed token was made for, and puts it on their timeline.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use parley_engine::mail::{self, escape};

use crate::page::notice;
use parley_engine::people::{PersonInput, profile};
use parley_engine::{Engine, Error, events, workspace};
use serde_json::json;

/// The person and workspace a valid token names.
async fn resolve(engine: &Engine, token: &str) -> Option<(workspace::Workspace, profile::Person)> {
    let (ws, person_id, signature) = mail::unsubscribe_parts(token)?;
    let w = workspace::get(&engine.db, ws).await.ok()?;
    if !mail::unsubscribe_valid(&w.identity_secret, person_id, signature) {
        return None;
    }
    let p = profile::get(&engine.db, ws, person_id).await.ok()?;
    Some((w, p))
}

fn unknown() -> Response {
    notice(StatusCode::NOT_FOUND, "Link not valid", "<p>This unsubscribe link is not valid. It may have been cut short.</p>")
}

#[utoipa::path(get, path = "/u/{token}", tag = "email",
    params(("token" = String, Path, description = "the signed token from the email")),
    responses((status = 200, description = "a page asking to confirm", content_type = "text/html"), (status = 404, description = "not a valid link")))]
pub async fn confirm(State(engine): State<Engine>, Path(token): Path<String>) -> Response {
    let Some((w, p)) = resolve(&engine, &token).await else { return unknown() };
    let who = p.email.as_deref().map(|e| format!(" for <strong>{}</strong>", escape(e))).unwrap_or_default();
    if p.unsubscribed {
        return notice(StatusCode::OK, "You are unsubscribed", &format!("<p>{} sends you no more emails{who}.</p>", escape(&w.name)));
    }
    notice(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<p>Stop emails from {}{who}?</p><form method=\"post\"><button type=\"submit\" data-testid=\"unsubscribe\">Unsubscribe</button></form>",
            escape(&w.name)
        ),
    )
}

#[utoipa::path(post, path = "/u/{token}", tag = "email",
    params(("token" = String, Path, description = "the signed token from the email")),
    responses((status = 200, description = "unsubscribed", content_type = "text/html"), (status = 404, description = "not a valid link")))]
pub async fn unsubscribe(State(engine): State<Engine>, Path(token): Path<String>) -> Response {
    let Some((w, p)) = resolve(&engine, &token).await else { return unknown() };
    if !p.unsubscribed {
        let input = PersonInput { unsubscribed: Some(true), ..Default::default() };
        let done = async {
            profile::patch(&engine.db, &w.id, &p.id, input).await?;
            events::record(&engine.db, &w.id, &p.id, "unsubscribed", &json!({"via": "email link"})).await?;
            Ok::<_, Error>(())
        };
        if let Err(e) = done.await {
            tracing::error!(error = %e, person = %p.id, "unsubscribing failed");
            return notice(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "<p>Please try again in a moment.</p>");
        }
    }
    notice(StatusCode::OK, "You are unsubscribed", &format!("<p>{} sends you no more emails.</p>", escape(&w.name)))
}
