//! Parley's engine: the domain, its storage on two backends and the realtime
//! hub. It has no routes; `widget` and `inbox` put HTTP in front of it.
//!
//! - [`db`]: the storage handle over SQLite or PostgreSQL, and the macros that
//!   run one portable SQL text on either.
//! - [`workspace`]: tenants, teammates and the first-start bootstrap;
//!   [`hours`]: their business hours.
//! - [`auth`]: passwords, session tokens, API keys, widget identity hashes.
//! - [`people`]: people (leads and users), their profiles, merges and visitor
//!   sessions; [`companies`]: the organisations they belong to.
//! - [`filter`]: the filter language of search, segments and audiences.
//! - [`chat`]: conversations and messages, the one place that writes them;
//!   on SQLite visitors' messages go through a group-commit writer (`chat::batch`).
//! - [`events`]: the timeline of what people do; on SQLite the site's event
//!   batches are staged and folded into it in person order (`events::staged`).
//! - [`hub`]: durable, ordered realtime streams and their fan-out (relayed
//!   between nodes with LISTEN/NOTIFY on PostgreSQL).
//! - [`bus`]: in-process notices of what happened (message stored, person
//!   created or changed, event tracked), for automations to react to.
//! - [`presence`]: who is online, across nodes.
//! - [`search`]: people search behind the [`search::PeopleIndex`] seam;
//!   [`segments`]: saved filters.
//! - [`realtime`]: the WebSocket connection loop both sockets share.
//! - [`http`]: extractors shared by the HTTP edges.
//! - [`error`]: the API's error type and its JSON shape.
//! - [`mail`]: email out (SMTP or the outbox folder), text + HTML parts,
//!   signed unsubscribe links.
//! - [`missed`]: bookkeeping for emailing chat messages a person missed,
//!   and finding the conversation an emailed reply belongs to.
//! - [`snippets`]: handlebars placeholders in texts sent for someone.
//! - [`teams`]: teams of teammates that conversations are routed to.
//! - [`uploads`]: files attached to messages, kept in the data dir.
//! - [`util`]: ids, tokens, clocks.
//! - [`webhooks`]: subscriptions of the site's backend and their delivery log.

pub mod auth;
pub mod bus;
pub mod chat;
pub mod companies;
pub mod db;
pub mod error;
pub mod events;
pub mod filter;
pub mod hours;
pub mod http;
pub mod hub;
pub mod mail;
pub mod missed;
pub mod outbound;
pub mod people;
pub mod presence;
pub mod realtime;
pub mod search;
pub mod segments;
pub mod sms;
pub mod snippets;
pub mod teams;
pub mod uploads;
pub mod util;
pub mod webhooks;
pub mod workspace;

pub use db::Db;
pub use error::{Error, Result};

/// How long realtime frames are kept for `resume`.
const FRAME_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// Hourly upkeep: prunes old realtime frames, the log of touched people and
/// uploads nothing took up (every node may; the deletes are idempotent)
/// and refreshes SQLite's planner statistics.
fn spawn_pruning(db: Db, hub: hub::Hub, uploads_dir: std::path::PathBuf, shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = db.optimize().await {
                tracing::warn!(error = %e, "refreshing planner statistics failed");
            }
            match hub.prune(FRAME_RETENTION_MS).await {
                Ok(n) if n > 0 => tracing::info!(frames = n, "pruned old realtime frames"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning realtime frames failed"),
            }
            if let Err(e) = search::meili::prune_touched(&db).await {
                tracing::warn!(error = %e, "pruning the log of touched people failed");
            }
            if let Err(e) = uploads::sweep(&db, &uploads_dir, util::now_ms() - uploads::UNUSED_GRACE_MS).await {
                tracing::warn!(error = %e, "sweeping unused uploads failed");
            }
        }
    });
}

/// Everything a request handler needs, cloned cheaply into each router.
#[derive(Clone)]
pub struct Engine {
    pub db: Db,
    pub hub: hub::Hub,
    pub presence: presence::Presence,
    /// Where people are searched (SQL, or Meilisearch when configured).
    pub people_index: std::sync::Arc<dyn search::PeopleIndex>,
    /// Base URL used in links and emails.
    pub public_url: String,
    /// Email out.
    pub mailer: std::sync::Arc<mail::Mailer>,
    /// Where uploaded files are kept (`<data dir>/uploads`).
    pub uploads_dir: std::path::PathBuf,
    /// Cancelled when the server shuts down: live sockets close with 1012
    /// ("service restart") so clients reconnect, to this node or another.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl Engine {
    /// Connects the hub and presence to `db` and starts their background
    /// tasks. With `meili`, people are searched on Meilisearch (SQL answering
    /// what it cannot) and a loop keeps its index in step. Uploads go to
    /// `uploads_dir`.
    pub async fn start(
        db: Db,
        public_url: String,
        meili: Option<search::meili::MeiliConfig>,
        mailer: mail::Mailer,
        uploads_dir: std::path::PathBuf,
    ) -> Result<Engine> {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let hub = hub::Hub::new(db.clone(), util::new_id());
        hub.spawn_relay(shutdown.clone()).await;
        chat::batch::start(&db, &hub, shutdown.clone());
        spawn_pruning(db.clone(), hub.clone(), uploads_dir.clone(), shutdown.clone());
        let presence = presence::Presence::start(db.clone(), hub.clone(), shutdown.clone()).await?;
        let sql = search::SqlIndex::shared(db.clone());
        let people_index: std::sync::Arc<dyn search::PeopleIndex> = match meili {
            None => sql,
            Some(config) => {
                let index = std::sync::Arc::new(search::meili::MeiliIndex::new(&config, search::meili::INDEX_UID, sql)?);
                search::meili::spawn_sync(db.clone(), index.clone(), shutdown.clone());
                tracing::info!(url = %config.url, index = search::meili::INDEX_UID, "people search on Meilisearch");
                index
            }
        };
        Ok(Engine { db, hub, presence, people_index, public_url, mailer: std::sync::Arc::new(mailer), uploads_dir, shutdown })
    }
}
