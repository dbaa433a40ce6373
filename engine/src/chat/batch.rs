//! Group commit for visitors' messages on SQLite.
//!
//! SQLite has one writer, and sqlx runs each statement on the connection's
//! own thread, so a message written statement by statement costs a thread
//! round trip per statement; under load those hops, not SQL, are the limit.
//! This writer takes every visitor message waiting at that moment and stores
//! the whole batch with a fixed number of statements (the rows travel as one
//! JSON parameter, unpacked by `json_each`), in one transaction. A batch of one
//! costs about what a lone message did; a batch of fifty costs little more.
//!
//! Checks that can refuse a message (an unknown, foreign or archived
//! conversation) run on data read before anything is written, so a refused
//! message never spoils its batch; a database failure fails the whole batch,
//! and the clients resend with the same echo_ids.

use std::collections::HashMap;

use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::{
    Author, ConversationRow, Kind, Message, MessageRow, NewMessage, ParticipantRow, Sender, Sent, archived_error, build_conversation,
};
use crate::hub::{Appended, Hub, person_stream, workspace_stream};
use crate::util::{new_id, now_ms, rfc3339};
use crate::{Db, Error, Result};

/// The most messages written in one transaction.
const BATCH_MAX: usize = 128;

pub struct Job {
    pub message: NewMessage,
    pub id: String,
    pub reply: oneshot::Sender<Answer>,
}

/// What the writer does with a job: stores it (or refuses it), or hands a
/// message into a shared chat back to the sender, whose one-by-one path
/// reaches every member. Shared chats are few and small, so the batch stays
/// the simple case: one person writing in a conversation only they see.
pub enum Answer {
    Done(Result<Sent>),
    Shared(NewMessage),
}

/// Starts the writer on SQLite's write pool; `chat::send` finds it on the hub.
pub fn start(db: &Db, hub: &Hub, shutdown: tokio_util::sync::CancellationToken) {
    let Db::Sqlite { write, .. } = db else { return };
    let (tx, mut rx) = mpsc::channel::<Job>(4096);
    if hub.set_batcher(tx).is_err() {
        return;
    }
    let (write, hub) = (write.clone(), hub.clone());
    tokio::spawn(async move {
        while let Some(jobs) = crate::util::next_group(&mut rx, BATCH_MAX, &shutdown).await {
            metrics::histogram!("parley_send_batch_size").record(jobs.len() as f64);
            let outcome = write_batch(&write, &hub, &jobs).await;
            match outcome {
                Ok((results, events)) => {
                    hub.deliver(&events);
                    for (job, result) in jobs.into_iter().zip(results) {
                        let Some(result) = result else {
                            let _ = job.reply.send(Answer::Shared(job.message));
                            continue;
                        };
                        if result.as_ref().is_ok_and(|s| s.created) {
                            metrics::counter!("parley_messages_total", "author" => "person").increment(1);
                        }
                        let _ = job.reply.send(Answer::Done(result));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, batch = jobs.len(), "writing a batch of messages failed");
                    for job in jobs {
                        let _ = job.reply.send(Answer::Done(Err(Error::Internal(anyhow::anyhow!("storing the message failed")))));
                    }
                }
            }
        }
    });
}

/// Whether `m` can go through the batch writer: plain chat from a person.
pub fn eligible(m: &NewMessage) -> bool {
    matches!(m.sender, Sender::Person(_)) && m.kind == Kind::Chat && m.buttons.is_none() && !m.shared && m.attachments.is_empty()
}

/// Per job: its result, or `None` when it goes back (a shared chat).
type Outcome = (Vec<Option<Result<Sent>>>, Vec<Appended>);

#[derive(sqlx::FromRow)]
struct SummaryRow {
    #[sqlx(flatten)]
    conversation: ConversationRow,
    participants_json: String,
}

#[derive(serde::Deserialize)]
struct ParticipantJson {
    teammate_id: String,
    name: String,
    avatar_url: Option<String>,
    role: String,
    muted: i64,
}

#[tracing::instrument(skip_all, fields(batch = jobs.len()))]
async fn write_batch(write: &sqlx::SqlitePool, hub: &Hub, jobs: &[Job]) -> Result<Outcome> {
    let now = now_ms();
    let mut tx = write.begin_with("BEGIN IMMEDIATE").await?;

    // 1. Which conversation each message goes to.
    let named: Vec<&str> = jobs.iter().filter_map(|j| j.message.conversation_id.as_deref()).collect();
    let by_id: HashMap<String, (String, String, bool, bool)> = if named.is_empty() {
        HashMap::new()
    } else {
        let rows: Vec<(String, String, String, bool, bool)> = sqlx::query_as(
            "SELECT c.id, c.workspace_id, c.person_id, c.archived, c.transparent FROM conversation c WHERE c.id IN (SELECT value FROM json_each($1))",
        )
        .bind(json!(named).to_string())
        .fetch_all(&mut *tx)
        .await?;
        rows.into_iter().map(|(id, ws, pid, archived, shared)| (id, (ws, pid, archived, shared))).collect()
    };
    let people: Vec<&str> = jobs
        .iter()
        .filter(|j| j.message.conversation_id.is_none())
        .filter_map(|j| match &j.message.sender {
            Sender::Person(p) => Some(p.as_str()),
            _ => None,
        })
        .collect();
    // A person's latest live conversation: theirs, or a shared chat they are
    // a member of (which goes back, see [`Answer`]).
    let (mut latest, latest_shared): (HashMap<String, String>, std::collections::HashSet<String>) = if people.is_empty() {
        Default::default()
    } else {
        let rows: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT j.value, x.id, (x.transparent OR x.person_id <> j.value) FROM json_each($1) j JOIN conversation x ON x.id = (SELECT c.id FROM conversation c \
             WHERE (c.person_id = j.value OR c.id IN (SELECT cm.conversation_id FROM conversation_member cm WHERE cm.person_id = j.value)) \
             AND c.archived = FALSE ORDER BY c.updated_at DESC LIMIT 1)",
        )
        .bind(json!(people).to_string())
        .fetch_all(&mut *tx)
        .await?;
        let shared = rows.iter().filter(|r| r.2).map(|r| r.0.clone()).collect();
        (rows.into_iter().map(|(p, c, _)| (p, c)).collect(), shared)
    };

    // Per message: its conversation, or why it is refused.
    let mut targets: Vec<Result<(String, String)>> = Vec::with_capacity(jobs.len());
    // Jobs handed back: messages into a shared chat.
    let mut back = vec![false; jobs.len()];
    let mut new_conversations = Vec::new();
    for (i, j) in jobs.iter().enumerate() {
        let m = &j.message;
        let Sender::Person(me) = &m.sender else {
            targets.push(Err(Error::Internal(anyhow::anyhow!("only people's messages are batched"))));
            continue;
        };
        // Someone else's conversation goes back too: the one-by-one path
        // tells a member (who may write in it) from a stranger (404).
        let shared = match &m.conversation_id {
            Some(cid) => by_id.get(cid).is_some_and(|c| c.0 == m.workspace_id && (c.3 || c.1 != *me)),
            None => latest_shared.contains(me),
        };
        if shared {
            back[i] = true;
            targets.push(Err(Error::NotFound("conversation")));
            continue;
        }
        let target = match &m.conversation_id {
            Some(cid) => match by_id.get(cid) {
                Some((ws, pid, archived, _)) if *ws == m.workspace_id && pid == me => {
                    if *archived {
                        Err(archived_error())
                    } else {
                        Ok((cid.clone(), pid.clone()))
                    }
                }
                _ => Err(Error::NotFound("conversation")),
            },
            None => match latest.get(me) {
                Some(cid) => Ok((cid.clone(), me.clone())),
                None => {
                    // A person's first message starts their conversation; a
                    // second one in the same batch joins it.
                    let cid = new_id();
                    latest.insert(me.clone(), cid.clone());
                    new_conversations.push(json!({"id": cid, "ws": m.workspace_id, "person": me}));
                    Ok((cid, me.clone()))
                }
            },
        };
        targets.push(target);
    }
    if !new_conversations.is_empty() {
        sqlx::query(
            "INSERT INTO conversation (id, workspace_id, person_id, status, created_at, updated_at) \
             SELECT j.value->>'id', j.value->>'ws', j.value->>'person', 'open', $2, $2 FROM json_each($1) j",
        )
        .bind(serde_json::Value::from(new_conversations.clone()).to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }

    // 2. The messages; a resent echo_id is skipped by the unique index.
    let rows: Vec<serde_json::Value> = jobs
        .iter()
        .zip(&targets)
        .filter_map(|(j, t)| {
            let (cid, pid) = t.as_ref().ok()?;
            Some(json!({"id": j.id, "ws": j.message.workspace_id, "conv": cid, "person": pid, "body": j.message.body, "echo": j.message.echo_id}))
        })
        .collect();
    let inserted: Vec<(String,)> = if rows.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as(
            "INSERT INTO message (id, workspace_id, conversation_id, author_type, author_id, body, kind, echo_id, created_at) \
             SELECT j.value->>'id', j.value->>'ws', j.value->>'conv', 'person', j.value->>'person', j.value->>'body', 'chat', \
             j.value->>'echo', $2 FROM json_each($1) j WHERE true ORDER BY j.key ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(serde_json::Value::from(rows).to_string())
        .bind(now)
        .fetch_all(&mut *tx)
        .await?
    };
    let inserted: std::collections::HashSet<String> = inserted.into_iter().map(|r| r.0).collect();

    // The timeline: each stored message, and each conversation it started.
    let mut started: std::collections::HashSet<&str> = new_conversations.iter().filter_map(|c| c["id"].as_str()).collect();
    let mut timeline: Vec<(&str, String, &str, String)> = Vec::new();
    for (j, t) in jobs.iter().zip(&targets) {
        if let Ok((cid, pid)) = t
            && inserted.contains(&j.id)
        {
            // Once per conversation, at its first message.
            if started.remove(cid.as_str()) {
                timeline.push((&j.message.workspace_id, pid.clone(), "conversation.started", json!({"conversation_id": cid}).to_string()));
            }
            timeline.push((
                &j.message.workspace_id,
                pid.clone(),
                "message.sent",
                json!({"conversation_id": cid, "message_id": j.id}).to_string(),
            ));
        }
    }
    if !timeline.is_empty() {
        let mut c = crate::db::Conn::from(&mut *tx);
        crate::events::write_many(&mut c, timeline.iter().map(|(w, p, n, d)| (*w, p.as_str(), *n, d.as_str(), now))).await?;
    }

    // 3. Touch each conversation once: the newest message of the batch is its last.
    let mut last: HashMap<&str, &str> = HashMap::new();
    for (j, t) in jobs.iter().zip(&targets) {
        if let Ok((cid, _)) = t
            && inserted.contains(&j.id)
        {
            last.insert(cid.as_str(), j.id.as_str());
        }
    }
    let mut summaries: HashMap<String, (ConversationRow, Vec<ParticipantRow>)> = HashMap::new();
    if !last.is_empty() {
        let touched: Vec<serde_json::Value> = last.iter().map(|(c, m)| json!({"id": c, "last": m})).collect();
        let touched = serde_json::Value::from(touched).to_string();
        sqlx::query(
            "UPDATE conversation SET updated_at = $2, status = 'open', snoozed_until = NULL, \
             last_message_id = (SELECT j.value->>'last' FROM json_each($1) j WHERE j.value->>'id' = conversation.id) \
             WHERE id IN (SELECT value->>'id' FROM json_each($1))",
        )
        .bind(&touched)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Summaries with their participants in one read (participants as a
        // JSON array column), saving a round trip per batch.
        let ids = json!(last.keys().collect::<Vec<_>>()).to_string();
        let rows: Vec<SummaryRow> = sqlx::query_as(conversation_select!(
            ", (SELECT json_group_array(json_object('teammate_id', x.teammate_id, 'name', x.name, 'avatar_url', x.avatar_url, \
              'role', x.role, 'muted', x.muted)) FROM (SELECT pa.teammate_id, t.name, t.avatar_url, pa.role, pa.muted \
              FROM participant pa JOIN teammate t ON t.id = pa.teammate_id WHERE pa.conversation_id = c.id ORDER BY pa.added_at) x) \
              AS participants_json",
            "WHERE c.id IN (SELECT value FROM json_each($1))"
        ))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let listed: Vec<ParticipantJson> = serde_json::from_str(&row.participants_json).map_err(anyhow::Error::from)?;
            let participants = listed
                .into_iter()
                .map(|p| ParticipantRow {
                    conversation_id: row.conversation.id.clone(),
                    teammate_id: p.teammate_id,
                    name: p.name,
                    avatar_url: p.avatar_url,
                    role: p.role,
                    muted: p.muted != 0,
                })
                .collect();
            summaries.insert(row.conversation.id.clone(), (row.conversation, participants));
        }
    }

    // 4. Frames, in message order, with seqs from the single writer's allocator.
    let mut results = Vec::with_capacity(jobs.len());
    // The first stored message of each new conversation is the one that started it.
    let mut opening: std::collections::HashSet<&str> = new_conversations.iter().filter_map(|c| c["id"].as_str()).collect();
    let mut frames: Vec<(String, String, serde_json::Value)> = Vec::new();
    for ((j, t), back) in jobs.iter().zip(targets).zip(back) {
        if back {
            results.push(None);
            continue;
        }
        let (cid, pid) = match t {
            Ok(t) => t,
            Err(e) => {
                results.push(Some(Err(e)));
                continue;
            }
        };
        if !inserted.contains(&j.id) {
            // A resend: answer with what was stored the first time, which may
            // be earlier in this very batch (so read inside the transaction).
            let found: Option<MessageRow> = sqlx::query_as(message_select!(
                "WHERE m.workspace_id = $1 AND m.author_type = 'person' AND m.author_id = $2 AND m.echo_id = $3"
            ))
            .bind(&j.message.workspace_id)
            .bind(&pid)
            .bind(&j.message.echo_id)
            .fetch_optional(&mut *tx)
            .await?;
            results.push(Some(
                found
                    .map(|row| Sent { message: Message::from(row), created: false, started: false, missed_at: None })
                    .ok_or(Error::NotFound("conversation")),
            ));
            continue;
        }
        let Some((row, participants)) = summaries.get(&cid) else {
            results.push(Some(Err(Error::NotFound("conversation"))));
            continue;
        };
        let message = Message {
            id: j.id.clone(),
            conversation_id: cid.clone(),
            author: Author { kind: "person".into(), id: Some(pid.clone()), name: row.person_name.clone(), avatar_url: None },
            body: j.message.body.clone(),
            kind: Kind::Chat,
            buttons: None,
            created_at: rfc3339(now),
            echo_id: j.message.echo_id.clone(),
            deleted: false,
            attachments: Vec::new(),
        };
        // Its last message is `message` itself (see `chat::send`).
        let conversation = build_conversation(row.clone(), participants.clone(), None, None, None);
        let ws = &j.message.workspace_id;
        frames.push((
            workspace_stream(ws),
            ws.clone(),
            json!({"type": "message.created", "message": message, "conversation": conversation}),
        ));
        frames.push((person_stream(&pid), ws.clone(), json!({"type": "message.created", "message": message})));
        let started = opening.remove(cid.as_str());
        results.push(Some(Ok(Sent { message, created: true, started, missed_at: None })));
    }
    let events = store_frames(&mut tx, hub, frames).await?;
    tx.commit().await?;
    Ok((results, events))
}

async fn seed_from_store(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, hub: &Hub, streams: &[&str]) -> Result<()> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT j.value, COALESCE((SELECT MAX(seq) FROM stream_event WHERE stream = j.value), 0) FROM json_each($1) j")
            .bind(json!(streams).to_string())
            .fetch_all(&mut **tx)
            .await?;
    for (stream, max) in rows {
        hub.seqs().seed(&stream, max);
    }
    Ok(())
}

/// Allocates seqs and stores every frame with one statement (two when some
/// stream's position must first be read from the store).
pub(super) async fn store_frames(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    hub: &Hub,
    frames: Vec<(String, String, serde_json::Value)>,
) -> Result<Vec<Appended>> {
    let mut b = crate::db::SqliteBatch::default();
    let events = push_frames(tx, hub, frames, &mut b).await?;
    b.run(tx).await?;
    Ok(events)
}

/// Allocates seqs for every frame (reading the position of streams this
/// node does not know yet) and adds the statement that stores them to `b`.
pub(super) async fn push_frames(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    hub: &Hub,
    frames: Vec<(String, String, serde_json::Value)>,
    b: &mut crate::db::SqliteBatch,
) -> Result<Vec<Appended>> {
    if frames.is_empty() {
        return Ok(Vec::new());
    }
    let mut unknown: Vec<&str> = frames.iter().map(|f| f.0.as_str()).filter(|s| !hub.seqs().has(s)).collect();
    unknown.sort_unstable();
    unknown.dedup();
    if !unknown.is_empty() {
        seed_from_store(tx, hub, &unknown).await?;
    }
    let mut events = Vec::with_capacity(frames.len());
    let mut rows = Vec::with_capacity(frames.len());
    for (stream, ws, frame) in frames {
        let seq = match hub.seqs().take_next(&stream) {
            Some(seq) => seq,
            // The cache started over mid-batch: read this stream's position again.
            None => {
                seed_from_store(tx, hub, &[stream.as_str()]).await?;
                hub.seqs().take_next(&stream).ok_or_else(|| Error::Internal(anyhow::anyhow!("no seq for {stream}")))?
            }
        };
        events.push(hub.event(&stream, seq, frame));
        rows.push((ws, seq));
    }
    let rows: Vec<_> = events.iter().zip(&rows).map(|(e, (ws, seq))| (&*e.stream, ws, seq, &*e.frame)).collect();
    b.push(
        "INSERT INTO stream_event (stream, workspace_id, seq, frame, created_at) \
         SELECT j.value->>0, j.value->>1, j.value->>2, j.value->>3, $2 FROM json_each($1) j",
        vec![crate::db::json_rows(&rows)?.into(), now_ms().into()],
    );
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::people::{self, SessionRequest};
    use crate::workspace;

    fn visitor_message(ws: &str, person: &str, conversation: Option<&str>, echo: &str) -> NewMessage {
        NewMessage {
            workspace_id: ws.to_owned(),
            conversation_id: conversation.map(str::to_owned),
            sender: Sender::Person(person.to_owned()),
            body: format!("body of {echo}"),
            kind: Kind::Chat,
            echo_id: Some(echo.to_owned()),
            buttons: None,
            shared: false,
            cause: Default::default(),
            to_person: None,
            email_fallback: true,
            attachments: Vec::new(),
        }
    }

    /// Jobs queued before the writer runs share one batch: on a current-thread
    /// runtime the writer task cannot run until the test awaits.
    #[tokio::test(flavor = "current_thread")]
    async fn one_batch_stores_a_resend_once_and_a_refused_message_spoils_nothing() {
        let (db, dir) = crate::db::temp_sqlite("batch").await;
        let ws = workspace::create(&db, "Batch").await.unwrap();
        let person = people::start_session(&db, &ws, SessionRequest::default()).await.unwrap().person_id;
        let hub = Hub::new(db.clone(), new_id());
        start(&db, &hub, tokio_util::sync::CancellationToken::new());
        let writer = hub.batcher().unwrap().clone();

        let mut answers = Vec::new();
        for m in [
            visitor_message(&ws.id, &person, None, "a"),
            visitor_message(&ws.id, &person, Some("no-such-conversation"), "b"),
            visitor_message(&ws.id, &person, None, "a"),
            visitor_message(&ws.id, &person, None, "c"),
        ] {
            let (reply, answer) = oneshot::channel();
            writer.try_send(Job { message: m, id: new_id(), reply }).unwrap();
            answers.push(answer);
        }
        let mut results = Vec::new();
        for a in answers {
            match a.await.unwrap() {
                Answer::Done(r) => results.push(r),
                Answer::Shared(_) => panic!("no shared chat here"),
            }
        }
        let first = results[0].as_ref().unwrap();
        assert!(first.created);
        assert_eq!(results[1].as_ref().err().map(Error::code), Some("not_found"));
        let resend = results[2].as_ref().unwrap();
        assert!(!resend.created, "the resend in the same batch is not stored again");
        assert_eq!(resend.message.id, first.message.id);
        let third = results[3].as_ref().unwrap();
        assert!(third.created);
        assert_eq!(third.message.conversation_id, first.message.conversation_id, "one new conversation for the person");

        let page = super::super::messages(&db, &ws.id, &first.message.conversation_id, None, None, false).await.unwrap();
        let bodies: Vec<_> = page.items.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["body of a", "body of c"]);
        crate::db::remove_temp_sqlite(db, &dir).await;
    }
}
