//! `/api/v1/conversations…` and `/api/v1/messages/{id}`: the inbox.

use axum::Json as JsonOut;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use parley_engine::chat::{self, Conversation, ConversationPatch, Kind, ListFilter, Message, NewMessage, Page, ParticipantInput, Sender};
use parley_engine::http::Json;
use parley_engine::{Engine, Result, uploads};
use serde::Deserialize;

use crate::extract::Auth;

#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", params(ListFilter),
    responses((status = 200, body = Page<Conversation>, description = "Most recent activity first; pass next_cursor as cursor for more")))]
pub async fn list(State(engine): State<Engine>, Auth(actor): Auth, Query(f): Query<ListFilter>) -> Result<JsonOut<Page<Conversation>>> {
    Ok(JsonOut(chat::list(&engine.db, &actor, f).await?))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations",
    responses((status = 200, body = Conversation), (status = 404, description = "unknown, or in another workspace")))]
pub async fn get(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<JsonOut<Conversation>> {
    Ok(JsonOut(chat::conversation(&engine.db, &actor.workspace_id, &id, Some(&actor.teammate_id)).await?))
}

#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "conversations", request_body = ConversationPatch,
    responses((status = 200, body = Conversation), (status = 404), (status = 409, description = "`transparent: false` on a shared chat"), (status = 422, description = "invalid field")))]
pub async fn update(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(p): Json<ConversationPatch>,
) -> Result<JsonOut<Conversation>> {
    let c = chat::update(&engine.db, &engine.hub, &actor, &id, p).await?;
    Ok(JsonOut(with_unread(&engine, &actor, c).await?))
}

/// Answers carry this teammate's unread count, which frames leave out.
async fn with_unread(engine: &Engine, actor: &parley_engine::auth::Actor, c: Conversation) -> Result<Conversation> {
    chat::conversation(&engine.db, &actor.workspace_id, &c.id, Some(&actor.teammate_id)).await
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}", tag = "conversations",
    responses((status = 204, description = "Deleted with its messages"), (status = 403, description = "admins only"), (status = 404)))]
pub async fn delete(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<StatusCode> {
    chat::delete_conversation(&engine.db, &engine.hub, &engine.uploads_dir, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ThreadQuery {
    /// A message id: the page of messages before it.
    pub before: Option<String>,
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations", params(ThreadQuery),
    responses((status = 200, body = Page<Message>, description = "Oldest first within the page; next_cursor is the `before` of the page above"), (status = 404)))]
pub async fn messages(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Query(q): Query<ThreadQuery>,
) -> Result<JsonOut<Page<Message>>> {
    chat::conversation_person(&engine.db, &actor.workspace_id, &id).await?;
    Ok(JsonOut(chat::messages(&engine.db, &actor.workspace_id, &id, q.before.as_deref(), q.limit, false).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyBody {
    /// May be empty when there are attachments.
    #[serde(default)]
    pub body: String,
    /// chat (default) or note (never reaches the person)
    pub kind: Option<Kind>,
    /// Makes a retried request idempotent.
    pub echo_id: Option<String>,
    /// Email the person if they do not see it (default on).
    pub email_fallback: Option<bool>,
    /// Upload ids (`POST /uploads`) of this workspace, at most 10.
    #[serde(default)]
    pub attachments: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "conversations", request_body = ReplyBody,
    responses((status = 201, body = Message), (status = 403, description = "read_only or watcher participant"), (status = 404),
        (status = 409, description = "conversation_archived"), (status = 413, description = "body over 64 KiB"),
        (status = 422, description = "empty body without attachments, or an unknown upload (`attachments.N`)")))]
pub async fn reply(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(b): Json<ReplyBody>,
) -> Result<(StatusCode, JsonOut<Message>)> {
    let kind = b.kind.unwrap_or(Kind::Chat);
    if !matches!(kind, Kind::Chat | Kind::Note) {
        return Err(parley_engine::Error::invalid("kind", "kind must be chat or note"));
    }
    let attachments = uploads::resolve(&engine.db, &actor.workspace_id, &b.attachments).await?;
    let sent = chat::send(
        &engine.db,
        &engine.hub,
        NewMessage {
            workspace_id: actor.workspace_id.clone(),
            conversation_id: Some(id),
            sender: Sender::Teammate { id: actor.teammate_id.clone() },
            body: b.body,
            kind,
            echo_id: b.echo_id,
            buttons: None,
            shared: false,
            cause: Default::default(),
            to_person: None,
            email_fallback: b.email_fallback.unwrap_or(true),
            attachments,
        },
    )
    .await?;
    Ok((if sent.created { StatusCode::CREATED } else { StatusCode::OK }, JsonOut(sent.message)))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/participants", tag = "conversations", request_body = ParticipantInput,
    responses((status = 200, body = Conversation), (status = 403), (status = 404), (status = 422)))]
pub async fn put_participant(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(p): Json<ParticipantInput>,
) -> Result<JsonOut<Conversation>> {
    let c = chat::put_participant(&engine.db, &engine.hub, &actor, &id, p).await?;
    Ok(JsonOut(with_unread(&engine, &actor, c).await?))
}

#[utoipa::path(delete, path = "/api/v1/conversations/{id}/participants/{teammate_id}", tag = "conversations",
    responses((status = 200, body = Conversation), (status = 403), (status = 404)))]
pub async fn remove_participant(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path((id, teammate_id)): Path<(String, String)>,
) -> Result<JsonOut<Conversation>> {
    let c = chat::remove_participant(&engine.db, &engine.hub, &actor, &id, &teammate_id).await?;
    Ok(JsonOut(with_unread(&engine, &actor, c).await?))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/archive", tag = "conversations",
    responses((status = 200, body = Conversation, description = "The person no longer sees it and cannot reply"), (status = 404)))]
pub async fn archive(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<JsonOut<Conversation>> {
    let c = chat::set_archived(&engine.db, &engine.hub, &actor, &id, true).await?;
    Ok(JsonOut(with_unread(&engine, &actor, c).await?))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/unarchive", tag = "conversations",
    responses((status = 200, body = Conversation), (status = 404)))]
pub async fn unarchive(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<JsonOut<Conversation>> {
    let c = chat::set_archived(&engine.db, &engine.hub, &actor, &id, false).await?;
    Ok(JsonOut(with_unread(&engine, &actor, c).await?))
}

#[utoipa::path(delete, path = "/api/v1/messages/{id}", tag = "conversations",
    responses((status = 204, description = "Text erased; a tombstone keeps the thread's order"), (status = 403, description = "agents may delete only their own"), (status = 404)))]
pub async fn delete_message(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<StatusCode> {
    chat::delete_message(&engine.db, &engine.hub, &engine.uploads_dir, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
