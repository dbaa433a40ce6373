//! The WebSocket connection loop shared by the widget and agent sockets.
//!
//! One task per connection owns both directions, so a `resume` is answered
//! with every missed frame, in order, before anything new is sent. Frames from
//! the hub carry `seq`; the loop sends each seq once and in order, reading any
//! gap from the store. Client frames are parsed here (malformed JSON, unknown
//! types and oversize frames get an `error` frame; the socket stays open) and
//! handed to the side-specific [`Handler`].

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

use crate::Error;
use crate::hub::{Frame, Hub, Push, Subscription};

/// The largest client frame read; a larger one ends the connection at the
/// protocol level, so it is well above the largest valid message.
pub const MAX_FRAME: usize = 1024 * 1024;
const REPLAY_BATCH: i64 = 500;

/// Sets small, explicit socket buffers: tungstenite's defaults (128 KiB each
/// way) would cost far more than the rest of an idle connection. Chat frames
/// are small; a larger one is simply read in several chunks.
pub fn configure(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    // Writes gather up to 8 KiB before they go out (see `Conn::feed`); the
    // buffer is only allocated when something is written.
    ws.read_buffer_size(2 * 1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(4 * 1024 * 1024)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
}

/// What a side (widget or agents) does with its clients' frames.
pub trait Handler: Send {
    /// Handles one frame of type `kind`; returns frames to send back to this
    /// client only. An error becomes an `error` frame echoing the `echo_id`.
    fn handle(&mut self, kind: &str, frame: Value) -> impl Future<Output = Result<Vec<Value>, Error>> + Send;
    /// The connection has ended.
    fn closed(self) -> impl Future<Output = ()> + Send;
}

struct Conn {
    socket: WebSocket,
    hub: Hub,
    sub: Subscription,
    /// The highest seq sent to this client.
    last: i64,
}

impl Conn {
    /// Sends one frame now.
    async fn send(&mut self, text: Frame) -> bool {
        self.socket.send(WsMessage::Text(text)).await.is_ok()
    }

    /// Queues a frame in the socket's write buffer; [`Conn::flush`] sends it.
    /// A busy socket (an agent receiving every message of the workspace) then
    /// gets many frames per write instead of one system call each.
    async fn feed(&mut self, text: Frame) -> bool {
        futures_util::SinkExt::feed(&mut self.socket, WsMessage::Text(text)).await.is_ok()
    }

    async fn flush(&mut self) -> bool {
        futures_util::SinkExt::flush(&mut self.socket).await.is_ok()
    }

    async fn send_json(&mut self, v: &Value) -> bool {
        self.send(Frame::from(v.to_string())).await
    }

    /// Sends every stored frame after `last`, in order.
    async fn catch_up(&mut self) -> Result<bool, Error> {
        loop {
            let batch = self.hub.replay(&self.sub.stream, self.last, REPLAY_BATCH).await?;
            let n = batch.len() as i64;
            for (seq, frame) in batch {
                if !self.feed(Frame::from(frame)).await {
                    return Ok(false);
                }
                self.last = seq;
            }
            if n < REPLAY_BATCH {
                return Ok(self.flush().await);
            }
        }
    }

    /// Sends `first` and whatever else is already queued, then flushes once.
    async fn on_pushes(&mut self, first: Push) -> Result<bool, Error> {
        let mut alive = self.on_push(first).await?;
        while alive && let Ok(more) = self.sub.rx.try_recv() {
            alive = self.on_push(more).await?;
        }
        Ok(alive && self.flush().await)
    }

    async fn on_push(&mut self, push: Push) -> Result<bool, Error> {
        match push {
            Push::Frame { seq: None, frame } => Ok(self.feed(Frame::clone(&frame)).await),
            Push::Frame { seq: Some(seq), frame } => {
                let seq = seq.get();
                if seq <= self.last {
                    Ok(true)
                } else if seq == self.last + 1 {
                    self.last = seq;
                    Ok(self.feed(Frame::clone(&frame)).await)
                } else {
                    self.catch_up().await
                }
            }
            Push::Nudge => {
                if self.sub.latest.load(Ordering::Acquire) > self.last {
                    self.catch_up().await
                } else {
                    Ok(true)
                }
            }
        }
    }
}

fn error_frame(e: &Error, echo_id: Option<&Value>) -> Value {
    let mut f = json!({"type": "error", "code": e.code(), "message": e.public_message()});
    if let Some(field) = e.field() {
        f["field"] = field.into();
    }
    if let Some(echo) = echo_id {
        f["echo_id"] = echo.clone();
    }
    f
}

fn bad_frame(message: &str) -> Error {
    Error::BadRequest { code: "bad_frame", message: message.to_owned(), field: None }
}

/// Runs a connection until the client leaves. `hello` is sent first, with the
/// stream's current `seq` added.
pub async fn drive<H: Handler>(
    socket: WebSocket,
    hub: Hub,
    sub: Subscription,
    shutdown: tokio_util::sync::CancellationToken,
    mut hello: Value,
    mut handler: H,
) {
    let mut conn = Conn { socket, hub, sub, last: 0 };
    // Subscribed before reading the position: nothing committed after this
    // read can be missed, and anything at or before it is history.
    match Box::pin(conn.hub.current_seq(&conn.sub.stream)).await {
        Ok(seq) => conn.last = seq,
        Err(e) => {
            tracing::error!(error = %e, "reading stream position");
            return handler.closed().await;
        }
    }
    hello["seq"] = conn.last.into();
    if !conn.send_json(&hello).await {
        return handler.closed().await;
    }
    // Created once: registering a fresh waiter on the shared token every turn
    // of the loop would contend on its lock across all connections.
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    loop {
        let alive = tokio::select! {
            incoming = conn.socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => false,
                Some(Ok(WsMessage::Text(text))) => Box::pin(on_text(&mut conn, &mut handler, text.as_str())).await,
                Some(Ok(WsMessage::Binary(_))) => conn.send_json(&error_frame(&bad_frame("frames must be JSON text"), None)).await,
                Some(Ok(_)) => true,
            },
            // Handling futures are boxed: a task's allocation is as large as its
            // largest await point, and an idle socket should not pay for the
            // database calls of a busy one.
            Some(push) = conn.sub.rx.recv() => match Box::pin(conn.on_pushes(push)).await {
                Ok(alive) => alive,
                Err(e) => {
                    tracing::error!(error = %e, "delivering frames");
                    false
                }
            },
            _ = &mut cancelled => {
                let close = CloseFrame { code: 1012, reason: "server restarting".into() };
                let _ = conn.socket.send(WsMessage::Close(Some(close))).await;
                false
            }
        };
        if !alive {
            break;
        }
    }
    handler.closed().await;
}

async fn on_text<H: Handler>(conn: &mut Conn, handler: &mut H, text: &str) -> bool {
    let frame: Value = match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return conn.send_json(&error_frame(&bad_frame("a frame must be a JSON object"), None)).await,
        Err(e) => {
            let err = Error::BadRequest { code: "malformed_json", message: format!("malformed JSON: {e}"), field: None };
            return conn.send_json(&error_frame(&err, None)).await;
        }
    };
    let echo = frame.get("echo_id").cloned();
    let Some(kind) = frame.get("type").and_then(Value::as_str).map(str::to_owned) else {
        let err = Error::invalid("type", "a frame needs a string \"type\"");
        return conn.send_json(&error_frame(&err, echo.as_ref())).await;
    };
    metrics::counter!("parley_ws_frames_in_total").increment(1);
    let result = match kind.as_str() {
        "ping" => return conn.send_json(&json!({"type": "pong"})).await,
        "resume" => resume(conn, &frame).await,
        _ => match handler.handle(&kind, frame).await {
            Ok(replies) => {
                for r in replies {
                    if !conn.send_json(&r).await {
                        return false;
                    }
                }
                Ok(true)
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(alive) => alive,
        Err(e) => conn.send_json(&error_frame(&e, echo.as_ref())).await,
    }
}

async fn resume(conn: &mut Conn, frame: &Value) -> Result<bool, Error> {
    let after = frame
        .get("after")
        .and_then(Value::as_i64)
        .filter(|a| *a >= 0)
        .ok_or_else(|| Error::invalid("after", "after must be a non-negative integer seq"))?;
    let current = conn.hub.current_seq(&conn.sub.stream).await?;
    if after > current {
        return Err(Error::invalid("after", format!("after is beyond this stream's position {current}")));
    }
    // Frames this old were pruned: the client must reload its history.
    if let Some(oldest) = conn.hub.oldest_seq(&conn.sub.stream).await?
        && oldest > after + 1
    {
        conn.last = current;
        return Err(Error::Conflict {
            code: "resync_required",
            message: format!("frames after {after} are no longer kept; reload the history and continue from seq {current}"),
        });
    }
    conn.last = after;
    conn.catch_up().await
}
