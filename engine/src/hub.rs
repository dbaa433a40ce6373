//! The realtime hub: ordered, durable streams fanned out to live connections.
//!
//! A stream is one audience: `p:<person>` (a person's widget tabs) or
//! `w:<workspace>` (the workspace's teammates). Events are appended inside the
//! domain transaction that caused them ([`Hub::append`]): the stream's `seq` is
//! allocated by an upsert on `stream` and the frame stored in `stream_event`, so
//! seq order is commit order and any frame can be replayed later. After commit
//! the caller hands the appended events to [`Hub::deliver`], which pushes them to
//! this node's subscribers.
//!
//! With PostgreSQL, `append` also issues `pg_notify` in the same transaction, so
//! peers learn of the event exactly when it commits; their listener task loads
//! the frame (inline in the payload when small) and delivers it locally.
//!
//! Delivery to a connection is best-effort (a bounded queue that never blocks
//! the publisher); correctness comes from `seq`: a connection that sees a gap,
//! or is nudged because its queue overflowed, reads the missing frames from
//! `stream_event` in order ([`Hub::replay`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::util::now_ms;
use crate::{Db, Result, with_db, with_tx};

const CHANNEL: &str = "parley_hub";
/// NOTIFY payloads are limited to 8000 bytes; larger frames are fetched by peers.
const INLINE_LIMIT: usize = 7000;
/// Frames queued per connection before it falls back to reading the store.
const QUEUE: usize = 64;

pub fn person_stream(person_id: &str) -> String {
    format!("p:{person_id}")
}

pub fn workspace_stream(workspace_id: &str) -> String {
    format!("w:{workspace_id}")
}

/// A serialised frame, shared by every connection it goes to: cloning it (and
/// handing it to a socket) counts a reference instead of copying the text.
pub type Frame = axum::extract::ws::Utf8Bytes;

/// What a connection receives from the hub. Kept to 16 bytes: every socket's
/// queue allocates room for 32 of these up front, so this size is paid by
/// every idle connection.
#[derive(Clone, Debug)]
pub enum Push {
    /// A frame; `seq` is `None` for ephemeral frames (typing, presence) that are
    /// neither stored nor replayed. Seqs start at 1.
    Frame { seq: Option<std::num::NonZeroI64>, frame: Arc<Frame> },
    /// The connection may have missed frames: compare [`Subscription::latest`]
    /// with what it has sent and replay the difference.
    Nudge,
}

/// An event appended to a stream in a transaction, to deliver after commit.
#[derive(Clone, Debug)]
pub struct Appended {
    pub stream: Arc<str>,
    pub seq: i64,
    pub frame: Frame,
}

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Push>,
    latest: Arc<AtomicI64>,
}

struct Inner {
    db: Db,
    node_id: String,
    subs: Mutex<HashMap<Arc<str>, Vec<Subscriber>>>,
    next_id: AtomicU64,
    seqs: SeqCache,
    /// SQLite's group-commit writer for visitors' messages (`chat::batch`).
    batcher: std::sync::OnceLock<mpsc::Sender<crate::chat::batch::Job>>,
    /// Domain notices; kept here because every writer of messages has the hub.
    bus: crate::bus::Bus,
}

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    hub: Hub,
    pub stream: Arc<str>,
    id: u64,
    pub rx: mpsc::Receiver<Push>,
    /// The highest seq this node has seen committed on the stream.
    pub latest: Arc<AtomicI64>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subs = self.hub.inner.subs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = subs.get_mut(&self.stream) {
            list.retain(|s| s.id != self.id);
            if list.is_empty() {
                subs.remove(&self.stream);
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Notice {
    /// Sending node, so a node ignores its own notices.
    n: String,
    s: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    q: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<String>,
}

/// The last seq handed out per stream, for SQLite. A SQLite database has one
/// node and one writer connection, so seqs can be allocated in memory inside
/// the write transaction (saving a statement per event); a rolled-back
/// transaction leaves a gap, which readers skip. PostgreSQL nodes allocate in
/// the database instead.
#[derive(Default)]
pub struct SeqCache(Mutex<HashMap<String, i64>>);

/// Streams remembered before the cache starts over (it refills from the store).
const SEQ_CACHE_MAX: usize = 100_000;

impl SeqCache {
    pub fn has(&self, stream: &str) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).contains_key(stream)
    }

    /// The next seq of `stream` if it is cached (and takes it).
    pub fn take_next(&self, stream: &str) -> Option<i64> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get_mut(stream).map(|last| {
            *last += 1;
            *last
        })
    }

    /// Records that `stream` has handed out up to `last`.
    pub fn seed(&self, stream: &str, last: i64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SEQ_CACHE_MAX {
            map.clear();
        }
        map.insert(stream.to_owned(), last);
    }
}

/// A connection that can append to streams: implemented for both backends'
/// connections, so domain code inside `with_tx!` calls one function.
pub trait StreamTx: Send {
    fn next_seq(&mut self, stream: &str, workspace_id: &str, cache: &SeqCache) -> impl Future<Output = Result<i64>> + Send;
    fn store_event(&mut self, stream: &str, workspace_id: &str, seq: i64, frame: &str) -> impl Future<Output = Result<()>> + Send;
    fn notify_peers(&mut self, payload: &str) -> impl Future<Output = Result<()>> + Send;
}

// The same statement for both backends' connections.
macro_rules! store_event {
    () => {
        async fn store_event(&mut self, stream: &str, workspace_id: &str, seq: i64, frame: &str) -> Result<()> {
            sqlx::query("INSERT INTO stream_event (stream, workspace_id, seq, frame, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(stream)
                .bind(workspace_id)
                .bind(seq)
                .bind(frame)
                .bind(now_ms())
                .execute(&mut *self)
                .await?;
            Ok(())
        }
    };
}

impl StreamTx for sqlx::SqliteConnection {
    async fn next_seq(&mut self, stream: &str, _workspace_id: &str, cache: &SeqCache) -> Result<i64> {
        let known = cache.0.lock().unwrap_or_else(|p| p.into_inner()).get(stream).copied();
        let last = match known {
            Some(last) => last,
            None => {
                let (max,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM stream_event WHERE stream = $1")
                    .bind(stream)
                    .fetch_one(&mut *self)
                    .await?;
                max
            }
        };
        let mut map = cache.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SEQ_CACHE_MAX {
            map.clear();
        }
        map.insert(stream.to_owned(), last + 1);
        Ok(last + 1)
    }

    store_event!();

    async fn notify_peers(&mut self, _payload: &str) -> Result<()> {
        // A SQLite database has one node: there are no peers.
        Ok(())
    }
}

impl StreamTx for sqlx::PgConnection {
    async fn next_seq(&mut self, stream: &str, workspace_id: &str, _cache: &SeqCache) -> Result<i64> {
        // The row lock taken by the upsert is held until commit, so two nodes
        // appending to one stream commit in seq order.
        let (seq,): (i64,) = sqlx::query_as(
            "INSERT INTO stream (id, workspace_id, last_seq) VALUES ($1, $2, 1) \
             ON CONFLICT (id) DO UPDATE SET last_seq = stream.last_seq + 1 RETURNING last_seq",
        )
        .bind(stream)
        .bind(workspace_id)
        .fetch_one(&mut *self)
        .await?;
        Ok(seq)
    }

    store_event!();

    async fn notify_peers(&mut self, payload: &str) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(&mut *self).await?;
        Ok(())
    }
}

impl Hub {
    pub fn new(db: Db, node_id: String) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                db,
                node_id,
                subs: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                seqs: SeqCache::default(),
                batcher: Default::default(),
                bus: Default::default(),
            }),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    pub fn subscribe(&self, stream: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(QUEUE);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let stream: Arc<str> = Arc::from(stream);
        let latest = Arc::new(AtomicI64::new(0));
        self.lock().entry(stream.clone()).or_default().push(Subscriber { id, tx, latest: latest.clone() });
        Subscription { hub: self.clone(), stream, id, rx, latest }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Vec<Subscriber>>> {
        self.inner.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `frame` (a JSON object; `seq` is added) to `stream` inside the
    /// caller's transaction.
    pub async fn append<T: StreamTx>(
        &self,
        tx: &mut T,
        stream: &str,
        workspace_id: &str,
        mut frame: serde_json::Value,
    ) -> Result<Appended> {
        let seq = tx.next_seq(stream, workspace_id, &self.inner.seqs).await?;
        frame["seq"] = seq.into();
        let text = frame.to_string();
        tx.store_event(stream, workspace_id, seq, &text).await?;
        let notice = Notice {
            n: self.inner.node_id.clone(),
            s: stream.to_owned(),
            q: Some(seq),
            f: (text.len() <= INLINE_LIMIT).then(|| text.clone()),
        };
        tx.notify_peers(&serde_json::to_string(&notice).map_err(anyhow::Error::from)?).await?;
        Ok(Appended { stream: Arc::from(stream), seq, frame: Frame::from(text) })
    }

    /// Whether a connection on this node listens to `stream` (e.g. a
    /// teammate has the inbox open).
    pub fn has_subscribers(&self, stream: &str) -> bool {
        self.lock().get(stream).is_some_and(|list| !list.is_empty())
    }

    /// The in-process notices of what happened (see [`crate::bus`]).
    pub fn bus(&self) -> &crate::bus::Bus {
        &self.inner.bus
    }

    pub fn set_batcher(&self, tx: mpsc::Sender<crate::chat::batch::Job>) -> std::result::Result<(), mpsc::Sender<crate::chat::batch::Job>> {
        self.inner.batcher.set(tx)
    }

    pub fn batcher(&self) -> Option<&mpsc::Sender<crate::chat::batch::Job>> {
        self.inner.batcher.get()
    }

    /// The in-memory seq allocator (SQLite's single writer only).
    pub fn seqs(&self) -> &SeqCache {
        &self.inner.seqs
    }

    /// Builds the event for `frame` at `seq` on `stream`, for a writer that
    /// stores events itself (see `chat::batch`).
    pub fn event(&self, stream: &str, seq: i64, mut frame: serde_json::Value) -> Appended {
        frame["seq"] = seq.into();
        Appended { stream: Arc::from(stream), seq, frame: Frame::from(frame.to_string()) }
    }

    /// Pushes committed events to this node's subscribers.
    pub fn deliver(&self, events: &[Appended]) {
        for e in events {
            self.push_local(&e.stream, Some(e.seq), e.frame.clone());
        }
    }

    /// Sends an ephemeral frame (typing, presence): to local subscribers and,
    /// on PostgreSQL, to peers. Not stored, not replayed.
    pub async fn send_ephemeral(&self, stream: &str, frame: serde_json::Value) {
        let text = Frame::from(frame.to_string());
        self.push_local(stream, None, text.clone());
        if let Db::Postgres(pool) = &self.inner.db {
            if text.len() > INLINE_LIMIT {
                return;
            }
            let notice = Notice { n: self.inner.node_id.clone(), s: stream.to_owned(), q: None, f: Some(text.to_string()) };
            if let Ok(payload) = serde_json::to_string(&notice) {
                let sent = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(pool).await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "relaying an ephemeral frame to peers failed");
                }
            }
        }
    }

    fn push_local(&self, stream: &str, seq: Option<i64>, frame: Frame) {
        let subs = self.lock();
        let Some(list) = subs.get(stream) else { return };
        let frame = Arc::new(frame);
        let nonzero = seq.and_then(std::num::NonZeroI64::new);
        for sub in list {
            if let Some(seq) = seq {
                sub.latest.fetch_max(seq, Ordering::AcqRel);
            }
            let push = Push::Frame { seq: nonzero, frame: frame.clone() };
            if sub.tx.try_send(push).is_err() {
                // Queue full: the connection is busy and will catch up from the
                // store once it drains, guided by `latest`.
                metrics::counter!("parley_hub_overflow_total").increment(1);
                let _ = sub.tx.try_send(Push::Nudge);
            }
        }
    }

    /// The stream's current position (0 when nothing was ever appended).
    pub async fn current_seq(&self, stream: &str) -> Result<i64> {
        let (seq,): (i64,) = with_db!(&self.inner.db, pool => sqlx::query_as(
            "SELECT COALESCE(MAX(seq), 0) FROM stream_event WHERE stream = $1")
            .bind(stream).fetch_one(pool).await?);
        Ok(seq)
    }

    /// The oldest seq still stored for `stream` (frames before it were pruned).
    pub async fn oldest_seq(&self, stream: &str) -> Result<Option<i64>> {
        let (seq,): (Option<i64>,) = with_db!(&self.inner.db, pool => sqlx::query_as(
            "SELECT MIN(seq) FROM stream_event WHERE stream = $1")
            .bind(stream).fetch_one(pool).await?);
        Ok(seq)
    }

    /// Deletes frames older than `older_than_ms`, keeping each stream's newest
    /// (its position). Clients that were away longer reload their history.
    pub async fn prune(&self, older_than_ms: i64) -> Result<u64> {
        let cutoff = now_ms() - older_than_ms;
        let gone = with_tx!(&self.inner.db, tx => {
            sqlx::query(
                "DELETE FROM stream_event WHERE created_at < $1 \
                 AND seq < (SELECT MAX(e.seq) FROM stream_event e WHERE e.stream = stream_event.stream)")
                .bind(cutoff).execute(&mut *tx).await?.rows_affected()
        });
        Ok(gone)
    }

    /// Frames of `stream` after `after`, in order, at most `limit`.
    pub async fn replay(&self, stream: &str, after: i64, limit: i64) -> Result<Vec<(i64, String)>> {
        Ok(with_db!(&self.inner.db, pool => sqlx::query_as(
            "SELECT seq, frame FROM stream_event WHERE stream = $1 AND seq > $2 ORDER BY seq LIMIT $3")
            .bind(stream).bind(after).bind(limit).fetch_all(pool).await?))
    }

    /// Relays peers' events into this node, for as long as the process runs.
    /// Only PostgreSQL has peers. Returns once the relay listens (or has
    /// tried for a while): a node that served sockets before it listened
    /// would miss what peers publish meanwhile, such as a visitor coming
    /// online on another node.
    pub async fn spawn_relay(&self, shutdown: tokio_util::sync::CancellationToken) {
        let Db::Postgres(pool) = self.inner.db.clone() else { return };
        let hub = self.clone();
        let (listening, ready) = tokio::sync::oneshot::channel();
        let mut listening = Some(listening);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    result = hub.relay(&pool, &mut listening) => if let Err(e) = result {
                        tracing::warn!(error = %e, "hub relay lost its connection; reconnecting");
                    },
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        });
        if tokio::time::timeout(std::time::Duration::from_secs(10), ready).await.is_err() {
            tracing::warn!("the hub relay is not listening yet; starting without it");
        }
    }

    async fn relay(&self, pool: &sqlx::PgPool, listening: &mut Option<tokio::sync::oneshot::Sender<()>>) -> Result<()> {
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        if let Some(tx) = listening.take() {
            let _ = tx.send(());
        }
        // Notices sent while this node was not listening are lost: have every
        // local connection compare its position with the store.
        self.resync_all().await;
        loop {
            let note = listener.recv().await?;
            let Ok(notice) = serde_json::from_str::<Notice>(note.payload()) else {
                tracing::warn!("ignoring a malformed hub notice");
                continue;
            };
            if notice.n == self.inner.node_id || !self.lock().contains_key(notice.s.as_str()) {
                continue;
            }
            let frame = match (notice.f, notice.q) {
                (Some(f), _) => f,
                (None, Some(seq)) => match self.replay(&notice.s, seq - 1, 1).await?.pop() {
                    Some((_, f)) => f,
                    None => continue,
                },
                (None, None) => continue,
            };
            self.push_local(&notice.s, notice.q, Frame::from(frame));
        }
    }

    async fn resync_all(&self) {
        let streams: Vec<Arc<str>> = self.lock().keys().cloned().collect();
        for stream in streams {
            let Ok(seq) = self.current_seq(&stream).await else { continue };
            let subs = self.lock();
            for sub in subs.get(&stream).into_iter().flatten() {
                sub.latest.fetch_max(seq, Ordering::AcqRel);
                let _ = sub.tx.try_send(Push::Nudge);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Push;

    #[test]
    fn a_queued_push_stays_small() {
        // Each socket's queue holds room for 32 pushes from the start.
        assert!(std::mem::size_of::<Push>() <= 16, "Push is {} bytes", std::mem::size_of::<Push>());
    }
}
