//! An outbound's chat messages, many at once, from one teammate.
//!
//! A mass send stores hundreds of messages a second, each opening a
//! conversation with its person (or, for an announcement, joining the one
//! they have). Written one by one that is a dozen statements each, so on
//! SQLite a chunk is stored with a fixed number of set-based statements in
//! one transaction, like the visitors' group commit ([`super::batch`]). On
//! PostgreSQL, whose writers run in parallel, each goes through
//! [`super::send`], several at a time.
//!
//! The messages reach each person's widget stream. Teammates are not sent a
//! frame per message (a send to 100,000 would flood every inbox); they
//! follow the outbound's progress instead, and no automation or webhook
//! notice is published per message. A resent chunk (after a crash) finds its
//! messages by echo id and stores nothing twice.
//!
//! A shared (transparent) outbound chat is the other way round: one
//! conversation whose members are all its recipients and one message in it
//! ([`send_shared`]), written as a teammate's message is, so the inbox sees
//! it and every member's widget gets it.

use std::collections::HashMap;

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::{Author, Kind, Message, NewMessage, Sender};
use crate::hub::{Hub, person_stream};
use crate::util::{new_id, now_ms, rfc3339};
use crate::{Db, Error, Result};

/// Messages stored at once on PostgreSQL.
const PG_PARALLEL: usize = 16;

/// One recipient's message.
pub struct Item {
    /// Makes the echo id: the same item sent again is the same message.
    pub key: String,
    pub person_id: String,
    pub body: String,
    /// An announcement's target: the person's open conversation.
    pub conversation_id: Option<String>,
    /// The new conversation's title.
    pub title: Option<String>,
}

/// What became of an item: its conversation and message, and when it was
/// planned as missed (the person offline, emails on).
#[derive(Clone, Debug)]
pub struct Stored {
    pub key: String,
    pub conversation_id: String,
    pub message_id: String,
    pub missed_at: Option<i64>,
    /// Its delivery was marked sent with it (see [`From::deliveries_of`]).
    pub recorded: bool,
}

/// Who sends a chunk, and how.
#[derive(Clone, Copy)]
pub struct From<'a> {
    pub workspace_id: &'a str,
    pub teammate_id: &'a str,
    pub kind: Kind,
    /// Plan missed-message emails for people with no widget open.
    pub email_fallback: bool,
    /// Files every message carries.
    pub attachments: &'a [crate::uploads::Attachment],
    /// The outbound whose chat deliveries the items are (each item's key is
    /// its delivery's id). On SQLite each delivery is then marked sent, and
    /// `outbound.received` put on the person's timeline, in the transaction
    /// that stores its message: one commit and one set of timeline
    /// statements a chunk instead of two, and a crash cannot leave a message
    /// stored with its delivery still queued.
    pub deliveries_of: Option<&'a str>,
}

/// Stores every item's message; the results are in no particular order
/// (match them by `key`). Items whose person has gone are errors.
pub async fn send_many(db: &Db, hub: &Hub, from: From<'_>, items: Vec<Item>) -> Result<Vec<Result<Stored>>> {
    let From { workspace_id: ws, teammate_id, kind, email_fallback, attachments, .. } = from;
    match db {
        Db::Sqlite { write, .. } => sqlite(write, hub, from, items).await,
        Db::Postgres(_) => {
            let sends = futures_util::stream::iter(items.into_iter().map(|item| async move {
                let title = item.title.clone();
                let sent = super::store(
                    db,
                    hub,
                    NewMessage {
                        workspace_id: ws.to_owned(),
                        conversation_id: item.conversation_id,
                        sender: Sender::Teammate { id: teammate_id.to_owned() },
                        body: item.body,
                        kind,
                        echo_id: Some(format!("outbound:{}", item.key)),
                        buttons: None,
                        shared: false,
                        cause: crate::bus::Cause::Someone,
                        to_person: Some(item.person_id),
                        email_fallback,
                        attachments: attachments.to_vec(),
                    },
                )
                .await?;
                if sent.started
                    && let Some(t) = &title
                {
                    super::title_if_unset(db, &sent.message.conversation_id, t).await?;
                }
                Ok(Stored {
                    key: item.key,
                    conversation_id: sent.message.conversation_id,
                    message_id: sent.message.id,
                    missed_at: sent.missed_at,
                    recorded: false,
                })
            }))
            .buffer_unordered(PG_PARALLEL);
            Ok(sends.collect().await)
        }
    }
}

/// An outbound's shared chat: made once with every chat recipient of the
/// outbound as a member (its first recipient is the conversation's person),
/// then its one message, written once. The conversation's id is the
/// outbound's and the message's echo id is made from it, so a chunk sent
/// again after a crash, or the outbound's second chunk, finds both instead
/// of making them again.
///
/// The outbound does not point at the conversation (`outbound.conversation_id`
/// stays empty): that reference would stop the conversation from being
/// deleted with its person, as a person's conversations are.
pub async fn send_shared(db: &Db, hub: &Hub, from: From<'_>, outbound_id: &str, body: String, title: Option<String>) -> Result<Stored> {
    let ws = from.workspace_id;
    start_shared(db, ws, outbound_id, title.as_deref()).await?;
    let sent = super::send(
        db,
        hub,
        NewMessage {
            workspace_id: ws.to_owned(),
            conversation_id: Some(outbound_id.to_owned()),
            sender: Sender::Teammate { id: from.teammate_id.to_owned() },
            body,
            kind: from.kind,
            echo_id: Some(format!("outbound:{outbound_id}")),
            buttons: None,
            shared: false,
            cause: crate::bus::Cause::Someone,
            to_person: None,
            email_fallback: from.email_fallback,
            attachments: from.attachments.to_vec(),
        },
    )
    .await?;
    Ok(Stored {
        key: outbound_id.to_owned(),
        conversation_id: sent.message.conversation_id,
        message_id: sent.message.id,
        missed_at: sent.missed_at,
        recorded: false,
    })
}

/// Makes the shared conversation of an outbound, with its members, unless
/// it is there already.
async fn start_shared(db: &Db, ws: &str, outbound_id: &str, title: Option<&str>) -> Result<()> {
    let now = now_ms();
    crate::with_tx!(db, tx => {
        let first: Option<String> = sqlx::query_scalar(
            "SELECT d.person_id FROM delivery d JOIN person p ON p.id = d.person_id WHERE d.outbound_id = $1 AND d.channel = 'chat' ORDER BY d.id LIMIT 1")
            .bind(outbound_id).fetch_optional(&mut *tx).await?;
        let first = first.ok_or(Error::NotFound("person"))?;
        let made = sqlx::query("INSERT INTO conversation (id, workspace_id, person_id, title, status, transparent, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, 'open', TRUE, $5, $5) ON CONFLICT (id) DO NOTHING")
            .bind(outbound_id).bind(ws).bind(&first).bind(title).bind(now).execute(&mut *tx).await?.rows_affected();
        if made == 1 {
            let members: Vec<String> = sqlx::query_scalar(
                "INSERT INTO conversation_member (conversation_id, person_id, workspace_id) \
                 SELECT DISTINCT $1, d.person_id, $2 FROM delivery d JOIN person p ON p.id = d.person_id WHERE d.outbound_id = $1 AND d.channel = 'chat' \
                 RETURNING person_id")
                .bind(outbound_id).bind(ws).fetch_all(&mut *tx).await?;
            let data = json!({"conversation_id": outbound_id}).to_string();
            let mut c = crate::db::Conn::from(&mut *tx);
            crate::events::write_many(&mut c, members.iter().map(|p| (ws, p.as_str(), "conversation.started", data.as_str(), now))).await?;
        }
    });
    Ok(())
}

async fn sqlite(write: &sqlx::SqlitePool, hub: &Hub, from: From<'_>, items: Vec<Item>) -> Result<Vec<Result<Stored>>> {
    let From { workspace_id: ws, teammate_id, kind, email_fallback, attachments, deliveries_of } = from;
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let mut tx = write.begin_with("BEGIN IMMEDIATE").await?;
    let (name, avatar_url): (String, Option<String>) =
        sqlx::query_as("SELECT name, avatar_url FROM teammate WHERE id = $1 AND workspace_id = $2")
            .bind(teammate_id)
            .bind(ws)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound("teammate"))?;

    // Sent before (a chunk done again after a crash): answered as stored.
    let echoes = json!(items.iter().map(|i| format!("outbound:{}", i.key)).collect::<Vec<_>>()).to_string();
    let known: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT echo_id, id, conversation_id FROM message WHERE workspace_id = $1 AND author_type = 'teammate' AND author_id = $2 \
         AND echo_id IN (SELECT value FROM json_each($3))",
    )
    .bind(ws)
    .bind(teammate_id)
    .bind(&echoes)
    .fetch_all(&mut *tx)
    .await?;
    let known: HashMap<String, (String, String)> = known.into_iter().map(|(e, id, c)| (e, (id, c))).collect();
    // People still there, and the announcement targets still theirs and live.
    let people = json!(items.iter().map(|i| &i.person_id).collect::<Vec<_>>()).to_string();
    let alive: std::collections::HashSet<String> =
        sqlx::query_scalar("SELECT id FROM person WHERE workspace_id = $1 AND id IN (SELECT value FROM json_each($2))")
            .bind(ws)
            .bind(&people)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();

    let mut out = Vec::with_capacity(items.len());
    let mut conversations = Vec::new();
    let mut touched = Vec::new();
    let mut messages = Vec::new();
    let mut fresh: Vec<(Item, String, String, bool)> = Vec::new();
    for item in items {
        let echo = format!("outbound:{}", item.key);
        if let Some((id, c)) = known.get(&echo) {
            out.push(Ok(Stored { key: item.key, conversation_id: c.clone(), message_id: id.clone(), missed_at: None, recorded: false }));
            continue;
        }
        if !alive.contains(&item.person_id) {
            out.push(Err(Error::NotFound("person")));
            continue;
        }
        let message_id = new_id();
        let (conversation_id, started) = match &item.conversation_id {
            Some(c) => {
                touched.push(json!({"id": c, "last": message_id}));
                (c.clone(), false)
            }
            None => {
                let c = new_id();
                conversations.push(json!({"id": c, "person": item.person_id, "title": item.title, "last": message_id}));
                (c, true)
            }
        };
        messages.push(json!({"id": message_id, "conv": conversation_id, "body": item.body, "echo": echo}));
        fresh.push((item, conversation_id, message_id, started));
    }
    if !conversations.is_empty() {
        sqlx::query(
            "INSERT INTO conversation (id, workspace_id, person_id, title, status, last_message_id, created_at, updated_at) \
             SELECT j.value->>'id', $2, j.value->>'person', j.value->>'title', 'open', j.value->>'last', $3, $3 FROM json_each($1) j",
        )
        .bind(json!(conversations).to_string())
        .bind(ws)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    if !touched.is_empty() {
        sqlx::query(
            "UPDATE conversation SET updated_at = $2, \
             last_message_id = (SELECT j.value->>'last' FROM json_each($1) j WHERE j.value->>'id' = conversation.id) \
             WHERE id IN (SELECT value->>'id' FROM json_each($1))",
        )
        .bind(json!(touched).to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    if !messages.is_empty() {
        let convs = json!(fresh.iter().map(|f| &f.1).collect::<Vec<_>>()).to_string();
        // Writing makes the teammate a participant.
        sqlx::query(
            "INSERT INTO participant (conversation_id, teammate_id, workspace_id, role, muted, added_at) \
             SELECT value, $2, $3, 'write', FALSE, $4 FROM json_each($1) WHERE true ON CONFLICT DO NOTHING",
        )
        .bind(&convs)
        .bind(teammate_id)
        .bind(ws)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Unread counts the person's messages, of which a conversation
        // started just now has none: only joined ones are marked read.
        if !touched.is_empty() {
            let joined = json!(touched.iter().map(|t| &t["id"]).collect::<Vec<_>>()).to_string();
            sqlx::query(
                "INSERT INTO teammate_read (conversation_id, teammate_id, workspace_id, read_at) \
                 SELECT value, $2, $3, $4 FROM json_each($1) WHERE true ON CONFLICT (conversation_id, teammate_id) DO UPDATE SET read_at = $4",
            )
            .bind(&joined)
            .bind(teammate_id)
            .bind(ws)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO message (id, workspace_id, conversation_id, author_type, author_id, body, kind, echo_id, created_at, email_fallback) \
             SELECT j.value->>'id', $2, j.value->>'conv', 'teammate', $3, j.value->>'body', $4, j.value->>'echo', $5, $6 FROM json_each($1) j",
        )
        .bind(json!(messages).to_string())
        .bind(ws)
        .bind(teammate_id)
        .bind(kind.as_str())
        .bind(now)
        .bind(email_fallback)
        .execute(&mut *tx)
        .await?;
        if !attachments.is_empty() {
            let links: Vec<Value> = fresh
                .iter()
                .flat_map(|f| attachments.iter().enumerate().map(|(i, a)| json!({"msg": f.2, "upload": a.id, "pos": i})))
                .collect();
            sqlx::query(
                "INSERT INTO message_attachment (message_id, upload_id, position) \
                 SELECT j.value->>'msg', j.value->>'upload', j.value->>'pos' FROM json_each($1) j",
            )
            .bind(json!(links).to_string())
            .execute(&mut *tx)
            .await?;
        }
    }
    // The timeline.
    let mut timeline: Vec<(String, &'static str, String)> = Vec::with_capacity(fresh.len() * 2);
    for (item, c, m, started) in &fresh {
        if *started {
            timeline.push((item.person_id.clone(), "conversation.started", json!({"conversation_id": c}).to_string()));
        }
        timeline.push((item.person_id.clone(), "message.received", json!({"conversation_id": c, "message_id": m}).to_string()));
        if let Some(o) = deliveries_of {
            timeline.push((item.person_id.clone(), "outbound.received", crate::outbound::received(o, "chat", &item.key, None)));
        }
    }
    if deliveries_of.is_some() && !fresh.is_empty() {
        let rows = crate::outbound::sent_rows(fresh.iter().map(|(i, c, m, _)| (i.key.as_str(), c.as_str(), m.as_str())));
        crate::outbound::update_deliveries(&mut crate::db::Conn::from(&mut *tx), &rows, now).await?;
    }
    if !timeline.is_empty() {
        let mut c = crate::db::Conn::from(&mut *tx);
        crate::events::write_many(&mut c, timeline.iter().map(|(p, n, d)| (ws, p.as_str(), *n, d.as_str(), now))).await?;
    }
    // Missed-message emails, for people with no widget open (as `send` plans them).
    let mut missed: std::collections::HashSet<String> = std::collections::HashSet::new();
    if email_fallback && !fresh.is_empty() {
        let plans = json!(
            fresh
                .iter()
                .map(|(i, c, m, _)| json!({"conv": c, "msg": m, "person": i.person_id, "token": crate::missed::new_reply_token()}))
                .collect::<Vec<_>>()
        )
        .to_string();
        let planned: Vec<String> = sqlx::query_scalar(
            "INSERT INTO email_fallback (conversation_id, workspace_id, reply_token, pending_message_id, planned_at) \
             SELECT j.value->>'conv', $2, j.value->>'token', j.value->>'msg', $3 FROM json_each($1) j \
             WHERE EXISTS (SELECT 1 FROM workspace WHERE id = $2 AND email_fallback = TRUE) \
             AND NOT EXISTS (SELECT 1 FROM presence pr WHERE pr.person_id = j.value->>'person' AND pr.connections > 0) \
             ON CONFLICT (conversation_id) DO UPDATE SET pending_message_id = excluded.pending_message_id, planned_at = excluded.planned_at \
             RETURNING pending_message_id",
        )
        .bind(&plans)
        .bind(ws)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        missed.extend(planned);
    }
    // Each person's widget gets their message.
    let author = Author { kind: "teammate".into(), id: Some(teammate_id.to_owned()), name: Some(name), avatar_url };
    let mut frames = Vec::with_capacity(fresh.len());
    for (item, c, m, _) in &fresh {
        let message = Message {
            id: m.clone(),
            conversation_id: c.clone(),
            author: author.clone(),
            body: item.body.clone(),
            kind,
            buttons: None,
            created_at: rfc3339(now),
            echo_id: Some(format!("outbound:{}", item.key)),
            deleted: false,
            attachments: attachments.to_vec(),
        };
        frames.push((person_stream(&item.person_id), ws.to_owned(), json!({"type": "message.created", "message": message})));
    }
    let events = super::batch::store_frames(&mut tx, hub, frames).await?;
    tx.commit().await?;
    hub.deliver(&events);
    metrics::counter!("parley_messages_total", "author" => "teammate").increment(fresh.len() as u64);
    for (item, c, m, _) in fresh {
        let missed_at = missed.contains(&m).then_some(now);
        out.push(Ok(Stored { key: item.key, conversation_id: c, message_id: m, missed_at, recorded: deliveries_of.is_some() }));
    }
    Ok(out)
}
