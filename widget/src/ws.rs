//! `GET /widget/v1/ws?token=…`: the visitor's realtime socket.

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use parley_engine::bus::Happening;
use parley_engine::chat::{self, Kind, NewMessage};
use parley_engine::http::from_value;
use parley_engine::hub::{person_stream, workspace_stream};
use parley_engine::people::{self, Visitor};
use parley_engine::realtime::{self, Handler};
use parley_engine::{Engine, Error, events, outbound};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
pub struct WsQuery {
    token: Option<String>,
}

pub async fn upgrade(State(engine): State<Engine>, Query(q): Query<WsQuery>, ws: WebSocketUpgrade) -> Response {
    let visitor = match &q.token {
        Some(t) => people::authenticate_visitor(&engine.db, t).await.ok(),
        None => None,
    };
    realtime::configure(ws).on_upgrade(move |mut socket| async move {
        let Some(visitor) = visitor else {
            // Refused after the upgrade, so the client sees a close code it can
            // act on (4001: get a new session) instead of a failed handshake.
            let close = CloseFrame { code: 4001, reason: "invalid or expired visitor token".into() };
            let _ = socket.send(WsMessage::Close(Some(close))).await;
            return;
        };
        if let Err(e) = Box::pin(engine.presence.connected(&visitor.workspace_id, &visitor.person_id)).await {
            tracing::warn!(error = %e, "recording presence");
        }
        metrics::gauge!("parley_widget_connections").increment(1.0);
        let sub = engine.hub.subscribe(&person_stream(&visitor.person_id));
        let hello = json!({"type": "hello", "person_id": visitor.person_id});
        realtime::drive(socket, engine.hub.clone(), sub, engine.shutdown.clone(), hello, VisitorSide { engine, visitor }).await;
    })
}

struct VisitorSide {
    engine: Engine,
    visitor: Visitor,
}

#[derive(Deserialize)]
struct SendFrame {
    echo_id: Option<String>,
    conversation_id: Option<String>,
    body: String,
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

#[derive(Deserialize)]
struct TrackFrame {
    name: String,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
struct ChooseFrame {
    message_id: String,
    choice: String,
}

#[derive(Deserialize)]
struct CheckinFrame {
    message_id: String,
}

#[derive(Deserialize)]
struct PageViewFrame {
    url: String,
    title: Option<String>,
}

impl Handler for VisitorSide {
    async fn handle(&mut self, kind: &str, frame: Value) -> Result<Vec<Value>, Error> {
        let (ws, me) = (&self.visitor.workspace_id, &self.visitor.person_id);
        let engine = &self.engine;
        match kind {
            "message.send" => {
                let f: SendFrame = from_value(frame)?;
                let sent = chat::send(
                    &engine.db,
                    &engine.hub,
                    NewMessage {
                        echo_id: f.echo_id.clone(),
                        shared: self.visitor.shared,
                        ..NewMessage::from_person(ws, me, f.conversation_id, f.body)
                    },
                )
                .await?;
                Ok(vec![json!({"type": "ack", "echo_id": f.echo_id, "message": sent.message})])
            }
            "typing" => {
                let f: TypingFrame = from_value(frame)?;
                chat::person_conversation(&engine.db, ws, me, &f.conversation_id).await?;
                let name = people::summary(&engine.db, ws, me).await?.name;
                let typing = json!({"type": "typing", "conversation_id": f.conversation_id,
                    "author": {"type": "person", "id": me, "name": name}, "on": f.on});
                engine.hub.send_ephemeral(&workspace_stream(ws), typing.clone()).await;
                // In a company conversation or a shared chat the other members
                // see it too, as they see each other's messages.
                for person in chat::conversation_audience(&engine.db, ws, &f.conversation_id).await? {
                    if person != *me {
                        engine.hub.send_ephemeral(&person_stream(&person), typing.clone()).await;
                    }
                }
                Ok(vec![])
            }
            "seen" => {
                let f: SeenFrame = from_value(frame)?;
                chat::person_seen(&engine.db, &engine.hub, ws, me, &f.conversation_id, &f.message_id).await?;
                Ok(vec![])
            }
            "track" => {
                let f: TrackFrame = from_value(frame)?;
                let at = events::record(&engine.db, ws, me, &f.name, &f.data).await?;
                engine.hub.bus().publish(Happening::tracked(ws, me, &f.name, f.data, at));
                Ok(vec![])
            }
            "reply.choose" => {
                let f: ChooseFrame = from_value(frame)?;
                // The pick comes back to every tab as the person's message.created.
                chat::choose(&engine.db, &engine.hub, ws, me, &f.message_id, &f.choice, self.visitor.shared).await?;
                Ok(vec![])
            }
            "checkin.ok" => {
                let f: CheckinFrame = from_value(frame)?;
                let (outbound_id, new) = outbound::answer_ok(&engine.db, ws, me, &f.message_id).await?.ok_or(Error::NotFound("message"))?;
                if new {
                    // The answer shows in the chat, for teammates and the person's other tabs.
                    if let Some((Some(conversation_id), _)) = outbound::chat_of(&engine.db, &outbound_id, me).await? {
                        let answer = NewMessage {
                            kind: Kind::Checkin,
                            echo_id: Some(format!("checkin:{}", f.message_id)),
                            shared: self.visitor.shared,
                            ..NewMessage::from_person(ws, me, Some(conversation_id), "I'm OK".into())
                        };
                        chat::send(&engine.db, &engine.hub, answer).await?;
                    }
                    outbound::publish_progress(&engine.db, &engine.hub, ws, &outbound_id).await?;
                }
                Ok(vec![])
            }
            "page.view" => {
                let f: PageViewFrame = from_value(frame)?;
                if f.url.len() > 2048 {
                    return Err(Error::invalid("url", "url is longer than 2048 bytes"));
                }
                let data = json!({"url": f.url, "title": f.title});
                let at = events::record(&engine.db, ws, me, "page.view", &data).await?;
                engine.hub.bus().publish(Happening::tracked(ws, me, "page.view", data, at));
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
        metrics::gauge!("parley_widget_connections").decrement(1.0);
        if let Err(e) = Box::pin(self.engine.presence.disconnected(&self.visitor.workspace_id, &self.visitor.person_id)).await {
            tracing::warn!(error = %e, "recording presence");
        }
    }
}
