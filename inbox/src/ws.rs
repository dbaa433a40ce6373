//! `GET /api/v1/ws?token=…`: the teammates' realtime socket.

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use parley_engine::auth::{self, Actor};
use parley_engine::chat::{self, Kind, NewMessage, Sender};
use parley_engine::http::from_value;
use parley_engine::hub::{person_stream, workspace_stream};
use parley_engine::realtime::{self, Handler};
use parley_engine::{Engine, Error, uploads};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
pub struct WsQuery {
    token: Option<String>,
}

pub async fn upgrade(State(engine): State<Engine>, Query(q): Query<WsQuery>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    // A browser sends the session cookie with any site's WebSocket handshake,
    // so a cookie is only trusted from a page on Parley's own origin.
    let token = q.token.or_else(|| crate::extract::token(&headers).filter(|_| same_origin(&headers)));
    let actor = match &token {
        Some(t) => auth::authenticate(&engine.db, t).await.ok(),
        None => None,
    };
    realtime::configure(ws).on_upgrade(move |mut socket| async move {
        let Some(actor) = actor else {
            let close = CloseFrame { code: 4001, reason: "invalid or expired token".into() };
            let _ = socket.send(WsMessage::Close(Some(close))).await;
            return;
        };
        metrics::gauge!("parley_agent_connections").increment(1.0);
        let sub = engine.hub.subscribe(&workspace_stream(&actor.workspace_id));
        let hello = json!({"type": "hello", "teammate_id": actor.teammate_id});
        realtime::drive(socket, engine.hub.clone(), sub, engine.shutdown.clone(), hello, AgentSide { engine, actor }).await;
    })
}

/// Whether the handshake's `Origin` (if any) is this server's own host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(axum::http::header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // not a browser
    };
    let host = headers.get(axum::http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    origin.split_once("://").map(|(_, rest)| rest) == Some(host)
}

struct AgentSide {
    engine: Engine,
    actor: Actor,
}

#[derive(Deserialize)]
struct SendFrame {
    echo_id: Option<String>,
    conversation_id: String,
    /// May be empty when there are attachments.
    #[serde(default)]
    body: String,
    kind: Option<Kind>,
    /// Email the person if they miss it (default on).
    email_fallback: Option<bool>,
    /// Upload ids of this workspace, as on the REST route.
    #[serde(default)]
    attachments: Vec<String>,
}

#[derive(Deserialize)]
struct TypingFrame {
    conversation_id: String,
    on: bool,
}

#[derive(Deserialize)]
struct SeenFrame {
    conversation_id: String,
    message_id: String,
}

impl Handler for AgentSide {
    async fn handle(&mut self, kind: &str, frame: Value) -> Result<Vec<Value>, Error> {
        let engine = &self.engine;
        let actor = &self.actor;
        match kind {
            "message.send" => {
                let f: SendFrame = from_value(frame)?;
                let kind = f.kind.unwrap_or(Kind::Chat);
                if !matches!(kind, Kind::Chat | Kind::Note) {
                    return Err(Error::invalid("kind", "kind must be chat or note"));
                }
                let sent = chat::send(
                    &engine.db,
                    &engine.hub,
                    NewMessage {
                        workspace_id: actor.workspace_id.clone(),
                        conversation_id: Some(f.conversation_id),
                        sender: Sender::Teammate { id: actor.teammate_id.clone() },
                        body: f.body,
                        kind,
                        echo_id: f.echo_id.clone(),
                        buttons: None,
                        shared: false,
                        cause: Default::default(),
                        to_person: None,
                        email_fallback: f.email_fallback.unwrap_or(true),
                        attachments: uploads::resolve(&engine.db, &actor.workspace_id, &f.attachments).await?,
                    },
                )
                .await?;
                Ok(vec![json!({"type": "ack", "echo_id": f.echo_id, "message": sent.message})])
            }
            "typing" => {
                let f: TypingFrame = from_value(frame)?;
                let audience = chat::conversation_audience(&engine.db, &actor.workspace_id, &f.conversation_id).await?;
                let typing = json!({"type": "typing", "conversation_id": f.conversation_id,
                    "author": {"type": "teammate", "id": actor.teammate_id, "name": actor.name}, "on": f.on});
                engine.hub.send_ephemeral(&workspace_stream(&actor.workspace_id), typing.clone()).await;
                for person in audience {
                    engine.hub.send_ephemeral(&person_stream(&person), typing.clone()).await;
                }
                Ok(vec![])
            }
            "seen" => {
                let f: SeenFrame = from_value(frame)?;
                chat::teammate_seen(&engine.db, actor, &f.conversation_id, &f.message_id).await?;
                Ok(vec![])
            }
            other => Err(Error::BadRequest {
                code: "unknown_type",
                message: format!("unknown frame type {other:?}"),
                field: Some("type".into()),
            }),
        }
    }

    async fn closed(self) {
        metrics::gauge!("parley_agent_connections").decrement(1.0);
    }
}
