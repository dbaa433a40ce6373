//! `/u/{token}`: the unsubscribe link at the foot of every email.
//!
//! `GET` only shows a page with a button, because mail scanners open links
//! on their own and must not unsubscribe anyone; `POST` (the button, or a
//! mail client's one-click `List-Unsubscribe-Post`) unsubscribes the person
//! the signed token was made for, and puts it on their timeline.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use parley_engine::mail::{self, escape};
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

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{t}</title><style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5;color:#222;overflow-wrap:anywhere}}\
         button{{font:inherit;padding:.6rem 1.2rem;border:0;border-radius:6px;background:#2b59c3;color:#fff;cursor:pointer}}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    (status, Html(html)).into_response()
}

fn unknown() -> Response {
    page(StatusCode::NOT_FOUND, "Link not valid", "<p>This unsubscribe link is not valid. It may have been cut short.</p>")
}

#[utoipa::path(get, path = "/u/{token}", tag = "email",
    params(("token" = String, Path, description = "the signed token from the email")),
    responses((status = 200, description = "a page asking to confirm", content_type = "text/html"), (status = 404, description = "not a valid link")))]
pub async fn confirm(State(engine): State<Engine>, Path(token): Path<String>) -> Response {
    let Some((w, p)) = resolve(&engine, &token).await else { return unknown() };
    let who = p.email.as_deref().map(|e| format!(" for <strong>{}</strong>", escape(e))).unwrap_or_default();
    if p.unsubscribed {
        return page(StatusCode::OK, "You are unsubscribed", &format!("<p>{} sends you no more emails{who}.</p>", escape(&w.name)));
    }
    page(
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
            return page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "<p>Please try again in a moment.</p>");
        }
    }
    page(StatusCode::OK, "You are unsubscribed", &format!("<p>{} sends you no more emails.</p>", escape(&w.name)))
}
