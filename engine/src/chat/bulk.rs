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
use crate::db::{SqliteBatch, json_rows};
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

/// A chunk made ready by [`ready`] to be stored by [`send_ready`].
///
/// On SQLite every write is built here, with the messages' ids and frames:
/// for a mass send's chunk of 500 that took longer than the writer took to
/// store it, and built inside [`send_ready`] it left the writer idle. Made
/// ready while the chunk before is stored, the two run side by side.
pub struct Ready {
    now: i64,
    inner: Prepared,
}

enum Prepared {
    Sqlite(Box<Built>),
    Items(Vec<Item>),
}

/// A chunk's writes on SQLite, built before the writer is taken.
struct Built {
    author: Author,
    fresh: Fresh,
    batch: SqliteBatch,
    frames: Vec<(String, String, Value)>,
    /// The items' echo ids and people as JSON arrays, for the checks.
    echoes: String,
    people: String,
}

/// Gets a chunk ready to store (see [`Ready`]); `from` must be the same when
/// it is sent.
pub async fn ready(db: &Db, from: From<'_>, items: Vec<Item>) -> Result<Ready> {
    let now = now_ms();
    let Db::Sqlite { read, .. } = db else { return Ok(Ready { now, inner: Prepared::Items(items) }) };
    let From { workspace_id: ws, teammate_id, .. } = from;
    let (name, avatar_url): (String, Option<String>) =
        sqlx::query_as("SELECT name, avatar_url FROM teammate WHERE id = $1 AND workspace_id = $2")
            .bind(teammate_id)
            .bind(ws)
            .fetch_optional(read)
            .await?
            .ok_or(Error::NotFound("teammate"))?;
    let author = Author { kind: "teammate".into(), id: Some(teammate_id.to_owned()), name: Some(name), avatar_url };
    let fresh = assign(items);
    let batch = writes(&from, &fresh, now)?;
    let frames = frames_of(&from, &author, &fresh, now);
    let echoes = json_rows(&fresh.iter().map(|f| format!("outbound:{}", f.0.key)).collect::<Vec<_>>())?;
    let people = json_rows(&fresh.iter().map(|f| &f.0.person_id).collect::<Vec<_>>())?;
    Ok(Ready { now, inner: Prepared::Sqlite(Box::new(Built { author, fresh, batch, frames, echoes, people })) })
}

/// Stores every message of a chunk made [`ready`]; the results are in no
/// particular order (match them by `key`). Items whose person has gone are
/// errors.
pub async fn send_ready(db: &Db, hub: &Hub, from: From<'_>, ready: Ready) -> Result<Vec<Result<Stored>>> {
    let From { workspace_id: ws, teammate_id, kind, email_fallback, attachments, .. } = from;
    match (db, ready.inner) {
        (Db::Sqlite { write, .. }, Prepared::Sqlite(built)) => sqlite(write, hub, from, ready.now, *built).await,
        (_, Prepared::Sqlite(_)) => Err(Error::Internal(anyhow::anyhow!("a chunk made ready for SQLite"))),
        (Db::Sqlite { .. }, Prepared::Items(_)) => Err(Error::Internal(anyhow::anyhow!("a chunk made ready for PostgreSQL"))),
        (Db::Postgres(_), Prepared::Items(items)) => {
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

/// A chunk's items that are stored now, with the ids given to them:
/// (item, conversation, message, whether the conversation starts with it).
type Fresh = Vec<(Item, String, String, bool)>;

/// Gives every item its message id and, unless it joins a conversation,
/// its new conversation's.
fn assign(items: Vec<Item>) -> Fresh {
    items
        .into_iter()
        .map(|item| {
            let message_id = new_id();
            let (conversation_id, started) = match &item.conversation_id {
                Some(c) => (c.clone(), false),
                None => (new_id(), true),
            };
            (item, conversation_id, message_id, started)
        })
        .collect()
}

/// Every write of a chunk but its stream frames (which need their seqs, given
/// out inside the transaction): one batch, with the missed-email plans the
/// only statement that returns rows (the messages planned).
fn writes(from: &From<'_>, fresh: &Fresh, now: i64) -> Result<SqliteBatch> {
    let From { workspace_id: ws, teammate_id, kind, email_fallback, attachments, deliveries_of } = *from;
    let mut b = SqliteBatch::default();
    if fresh.is_empty() {
        return Ok(b);
    }
    let conversations: Vec<_> = fresh.iter().filter(|f| f.3).map(|(i, c, m, _)| (c, &i.person_id, &i.title, m)).collect();
    if !conversations.is_empty() {
        b.push(
            "INSERT INTO conversation (id, workspace_id, person_id, title, status, last_message_id, created_at, updated_at) \
             SELECT j.value->>0, $2, j.value->>1, j.value->>2, 'open', j.value->>3, $3, $3 FROM json_each($1) j",
            vec![json_rows(&conversations)?.into(), ws.into(), now.into()],
        );
    }
    let touched: Vec<_> = fresh.iter().filter(|f| !f.3).map(|(_, c, m, _)| (c, m)).collect();
    if !touched.is_empty() {
        b.push(
            "UPDATE conversation SET updated_at = $2, \
             last_message_id = (SELECT j.value->>1 FROM json_each($1) j WHERE j.value->>0 = conversation.id) \
             WHERE id IN (SELECT value->>0 FROM json_each($1))",
            vec![json_rows(&touched)?.into(), now.into()],
        );
    }
    // Writing makes the teammate a participant.
    let conversation_ids: Vec<&String> = fresh.iter().map(|f| &f.1).collect();
    b.push(
        "INSERT INTO participant (conversation_id, teammate_id, workspace_id, role, muted, added_at) \
         SELECT value, $2, $3, 'write', FALSE, $4 FROM json_each($1) WHERE true ON CONFLICT DO NOTHING",
        vec![json_rows(&conversation_ids)?.into(), teammate_id.into(), ws.into(), now.into()],
    );
    // Unread counts the person's messages, of which a conversation started
    // just now has none: only joined ones are marked read.
    if !touched.is_empty() {
        let joined: Vec<&String> = touched.iter().map(|t| t.0).collect();
        b.push(
            "INSERT INTO teammate_read (conversation_id, teammate_id, workspace_id, read_at) \
             SELECT value, $2, $3, $4 FROM json_each($1) WHERE true ON CONFLICT (conversation_id, teammate_id) DO UPDATE SET read_at = $4",
            vec![json_rows(&joined)?.into(), teammate_id.into(), ws.into(), now.into()],
        );
    }
    let messages: Vec<_> = fresh.iter().map(|(i, c, m, _)| (m, c, &i.body, format!("outbound:{}", i.key))).collect();
    b.push(
        "INSERT INTO message (id, workspace_id, conversation_id, author_type, author_id, body, kind, echo_id, created_at, email_fallback) \
         SELECT j.value->>0, $2, j.value->>1, 'teammate', $3, j.value->>2, $4, j.value->>3, $5, $6 FROM json_each($1) j",
        vec![json_rows(&messages)?.into(), ws.into(), teammate_id.into(), kind.as_str().into(), now.into(), email_fallback.into()],
    );
    if !attachments.is_empty() {
        let links: Vec<_> = fresh.iter().flat_map(|f| attachments.iter().enumerate().map(move |(i, a)| (&f.2, &a.id, i))).collect();
        b.push(
            "INSERT INTO message_attachment (message_id, upload_id, position) \
             SELECT j.value->>0, j.value->>1, j.value->>2 FROM json_each($1) j",
            vec![json_rows(&links)?.into()],
        );
    }
    if deliveries_of.is_some() {
        crate::outbound::push_sent_chats(&mut b, fresh.iter().map(|(i, c, m, _)| (i.key.as_str(), c.as_str(), m.as_str())), now)?;
    }
    // The timeline.
    let mut timeline: Vec<(&str, &'static str, String)> = Vec::with_capacity(fresh.len() * 3);
    for (item, c, m, started) in fresh {
        if *started {
            timeline.push((&item.person_id, "conversation.started", json!({"conversation_id": c}).to_string()));
        }
        timeline.push((&item.person_id, "message.received", json!({"conversation_id": c, "message_id": m}).to_string()));
        if let Some(o) = deliveries_of {
            timeline.push((&item.person_id, "outbound.received", crate::outbound::received(o, "chat", &item.key, None)));
        }
    }
    crate::events::push_many(&mut b, timeline.iter().map(|(p, n, d)| (ws, *p, *n, d.as_str(), now)))?;
    // Missed-message emails, for people with no widget open (as `send` plans them).
    if email_fallback {
        let plans: Vec<_> = fresh.iter().map(|(i, c, m, _)| (c, m, &i.person_id, crate::missed::new_reply_token())).collect();
        b.push(
            "INSERT INTO email_fallback (conversation_id, workspace_id, reply_token, pending_message_id, planned_at) \
             SELECT j.value->>0, $2, j.value->>3, j.value->>1, $3 FROM json_each($1) j \
             WHERE EXISTS (SELECT 1 FROM workspace WHERE id = $2 AND email_fallback = TRUE) \
             AND NOT EXISTS (SELECT 1 FROM presence pr WHERE pr.person_id = j.value->>2 AND pr.connections > 0) \
             ON CONFLICT (conversation_id) DO UPDATE SET pending_message_id = excluded.pending_message_id, planned_at = excluded.planned_at \
             RETURNING pending_message_id",
            vec![json_rows(&plans)?.into(), ws.into(), now.into()],
        );
    }
    Ok(b)
}

/// Each fresh item's `message.created` frame for its person's widget.
fn frames_of(from: &From<'_>, author: &Author, fresh: &Fresh, now: i64) -> Vec<(String, String, Value)> {
    let created_at = rfc3339(now);
    fresh
        .iter()
        .map(|(item, c, m, _)| {
            let message = Message {
                id: m.clone(),
                conversation_id: c.clone(),
                author: author.clone(),
                body: item.body.clone(),
                kind: from.kind,
                buttons: None,
                created_at: created_at.clone(),
                echo_id: Some(format!("outbound:{}", item.key)),
                deleted: false,
                attachments: from.attachments.to_vec(),
            };
            (person_stream(&item.person_id), from.workspace_id.to_owned(), json!({"type": "message.created", "message": message}))
        })
        .collect()
}

/// The SQLite path: a chunk in one transaction of four round trips to the
/// writer (a check, the streams' positions, the writes, the commit). The
/// writes were built by [`ready`] for the usual chunk (nothing sent before,
/// every person still there), and are built again here in the rare one.
async fn sqlite(write: &sqlx::SqlitePool, hub: &Hub, from: From<'_>, now: i64, built: Built) -> Result<Vec<Result<Stored>>> {
    let From { workspace_id: ws, teammate_id, deliveries_of, .. } = from;
    let Built { author, mut fresh, mut batch, mut frames, echoes, people } = built;
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = write.begin_with("BEGIN IMMEDIATE").await?;
    // Sent before (a chunk done again after a crash): answered as stored.
    // People gone meanwhile: refused.
    let checks: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT 'sent', echo_id, id, conversation_id FROM message WHERE workspace_id = $1 AND author_type = 'teammate' AND author_id = $2 \
         AND echo_id IN (SELECT value FROM json_each($3)) \
         UNION ALL SELECT 'gone', j.value, NULL, NULL FROM json_each($4) j \
         WHERE NOT EXISTS (SELECT 1 FROM person p WHERE p.id = j.value AND p.workspace_id = $1)",
    )
    .bind(ws)
    .bind(teammate_id)
    .bind(&echoes)
    .bind(&people)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = Vec::with_capacity(fresh.len());
    if !checks.is_empty() {
        let mut known: HashMap<String, (String, String)> = HashMap::new();
        let mut gone: std::collections::HashSet<String> = std::collections::HashSet::new();
        for (what, key, id, c) in checks {
            match (what.as_str(), id, c) {
                ("sent", Some(id), Some(c)) => {
                    known.insert(key, (id, c));
                }
                _ => {
                    gone.insert(key);
                }
            }
        }
        let mut kept = Vec::with_capacity(fresh.len());
        for f in fresh {
            let item = &f.0;
            if let Some((id, c)) = known.get(&format!("outbound:{}", item.key)) {
                out.push(Ok(Stored { key: f.0.key, conversation_id: c.clone(), message_id: id.clone(), missed_at: None, recorded: false }));
            } else if gone.contains(&item.person_id) {
                out.push(Err(Error::NotFound("person")));
            } else {
                kept.push(f);
            }
        }
        fresh = kept;
        batch = writes(&from, &fresh, now)?;
        frames = frames_of(&from, &author, &fresh, now);
    }
    // Each person's widget gets their message.
    let events = super::batch::push_frames(&mut tx, hub, frames, &mut batch).await?;
    let planned = batch.run(&mut tx).await?;
    tx.commit().await?;
    hub.deliver(&events);
    let missed: std::collections::HashSet<String> = planned.iter().filter_map(|r| sqlx::Row::try_get::<String, _>(r, 0).ok()).collect();
    metrics::counter!("parley_messages_total", "author" => "teammate").increment(fresh.len() as u64);
    for (item, c, m, _) in fresh {
        let missed_at = missed.contains(&m).then_some(now);
        out.push(Ok(Stored { key: item.key, conversation_id: c, message_id: m, missed_at, recorded: deliveries_of.is_some() }));
    }
    Ok(out)
}
