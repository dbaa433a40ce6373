//! `/c/{token}`: the chat a person opens from the link in an outbound email
//! or text, without the site or its widget, and `POST /widget/v1/link`,
//! which trades the signed link for a visitor session in that chat.
//!
//! The page runs the same widget script, opened full-page on the one
//! conversation, so replies, "I'm OK" and everything else behave as in the
//! widget. An archived outbound or chat closes its links.

use axum::Json as JsonOut;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use parley_engine::http::Json;
use parley_engine::mail::escape;
use parley_engine::outbound;
use parley_engine::workspace::{self, Workspace};
use parley_engine::{Engine, Error, Result, people};
use serde::{Deserialize, Serialize};

use crate::page::{full, notice};

/// Where a valid link leads.
struct Target {
    w: Workspace,
    person_id: String,
    conversation_id: String,
}

fn closed() -> Error {
    Error::Conflict { code: "link_closed", message: "this chat has been closed".into() }
}

async fn resolve(engine: &Engine, token: &str) -> Result<Target> {
    let (o, p, sig) = outbound::link_parts(token).ok_or(Error::NotFound("link"))?;
    let ws = outbound::workspace_of(&engine.db, o).await?.ok_or(Error::NotFound("link"))?;
    let w = workspace::get(&engine.db, &ws).await?;
    if !outbound::link_valid(&w.identity_secret, o, p, sig) {
        return Err(Error::NotFound("link"));
    }
    if outbound::load(&engine.db, &ws, o).await?.archived {
        return Err(closed());
    }
    let conversation_id = match outbound::chat_of(&engine.db, o, p).await? {
        Some((Some(c), _)) => c,
        _ => {
            return Err(Error::Conflict {
                code: "not_sent_yet",
                message: "this message is still on its way; try again in a minute".into(),
            });
        }
    };
    match parley_engine::chat::person_conversation(&engine.db, &ws, p, &conversation_id).await {
        Ok(()) => {}
        Err(Error::Conflict { .. }) => return Err(closed()),
        Err(e) => return Err(e),
    }
    Ok(Target { w, person_id: p.to_owned(), conversation_id })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBody {
    pub token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LinkAnswer {
    /// A visitor token for the widget socket and API.
    pub token: String,
    pub person_id: String,
    pub conversation_id: String,
    pub app_id: String,
}

#[utoipa::path(post, path = "/widget/v1/link", tag = "widget", request_body = LinkBody,
    responses((status = 200, body = LinkAnswer), (status = 404, description = "not a valid link"),
        (status = 409, description = "link_closed: the chat was archived; not_sent_yet")))]
pub async fn session(State(engine): State<Engine>, Json(b): Json<LinkBody>) -> Result<JsonOut<LinkAnswer>> {
    let t = resolve(&engine, b.token.trim()).await?;
    let s = people::session_for(&engine.db, &t.w.id, &t.person_id).await?;
    Ok(JsonOut(LinkAnswer { token: s.token, person_id: s.person_id, conversation_id: t.conversation_id, app_id: t.w.app_id }))
}

#[utoipa::path(get, path = "/c/{token}", tag = "widget",
    params(("token" = String, Path, description = "the signed token from the email or text")),
    responses((status = 200, description = "the chat, full page", content_type = "text/html"), (status = 404, description = "not a valid link"),
        (status = 410, description = "the chat was closed")))]
pub async fn open(State(engine): State<Engine>, Path(token): Path<String>) -> Response {
    match resolve(&engine, &token).await {
        Ok(t) => {
            let body = format!(
                "<script src=\"/widget.js\" data-app-id=\"{}\" data-link=\"{}\" data-title=\"{}\" async></script>\
                 <noscript><p>Turn on JavaScript to chat.</p></noscript>",
                escape(&t.w.app_id),
                escape(&token),
                escape(&t.w.name)
            );
            full(StatusCode::OK, &t.w.name, &body)
        }
        Err(Error::Conflict { code: "link_closed", .. }) => {
            notice(StatusCode::GONE, "This chat is closed", "<p>The team has closed this conversation.</p>")
        }
        Err(Error::Conflict { .. }) => {
            notice(StatusCode::OK, "Almost there", "<p>Your message is still on its way. Reload this page in a minute.</p>")
        }
        Err(Error::NotFound(_)) => {
            notice(StatusCode::NOT_FOUND, "Link not valid", "<p>This link is not valid. It may have been cut short.</p>")
        }
        Err(e) => {
            tracing::warn!(error = %e, "opening a chat link");
            notice(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "<p>Try again in a moment.</p>")
        }
    }
}
