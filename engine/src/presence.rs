//! Who is online: a person is online while at least one widget connection to
//! any node is open.
//!
//! Each node counts its own connections in memory and mirrors them to the
//! `presence` table (one row per node and person), so every node can answer
//! "online?" with a query. Nodes heartbeat; rows of a node that stopped
//! heartbeating (a crash) are swept by the survivors.
//!
//! On SQLite the mirror is written in groups: when thousands of visitors
//! connect at once (a campaign lands, a page goes viral), each connection's
//! own transaction would queue on the one writer, in front of everything
//! else, at a few thread hops per statement. The writer task takes every
//! change waiting and writes them with three statements.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::hub::{Hub, workspace_stream};
use crate::util::now_ms;
use crate::{Db, Error, Result, with_db, with_tx};

const HEARTBEAT: Duration = Duration::from_secs(10);
/// A node silent this long is taken for dead and its connections forgotten.
const NODE_TIMEOUT_MS: i64 = 60_000;

#[derive(Clone)]
pub struct Presence {
    db: Db,
    hub: Hub,
    local: Arc<Mutex<HashMap<String, u32>>>,
    /// SQLite's group writer for the mirror.
    mirror: Option<mpsc::Sender<Change>>,
}

/// The most changes written in one transaction.
const BATCH_MAX: usize = 512;

/// A person's first connection on this node opened, or their last closed.
struct Change {
    workspace_id: String,
    person_id: String,
    connected: bool,
    done: oneshot::Sender<std::result::Result<(), String>>,
}

impl Presence {
    pub async fn start(db: Db, hub: Hub, shutdown: tokio_util::sync::CancellationToken) -> Result<Presence> {
        let mirror = match &db {
            Db::Sqlite { write, .. } => {
                let (tx, rx) = mpsc::channel(4096);
                tokio::spawn(write_changes(write.clone(), hub.node_id().to_owned(), rx, shutdown.clone()));
                Some(tx)
            }
            Db::Postgres(_) => None,
        };
        let p = Presence { db, hub, local: Arc::default(), mirror };
        if !p.db.is_postgres() {
            // A SQLite database has one node: whatever an earlier run counted
            // died with it.
            with_tx!(&p.db, tx => {
                sqlx::query("DELETE FROM presence").execute(&mut *tx).await?;
                sqlx::query("DELETE FROM node").execute(&mut *tx).await?;
            });
        }
        p.heartbeat().await?;
        let beat = p.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Err(e) = beat.heartbeat().await {
                    tracing::warn!(error = %e, "presence heartbeat failed");
                }
            }
        });
        Ok(p)
    }

    async fn heartbeat(&self) -> Result<()> {
        let now = now_ms();
        let node = self.hub.node_id();
        with_tx!(&self.db, tx => {
            sqlx::query("INSERT INTO node (id, heartbeat_at) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET heartbeat_at = $2")
                .bind(node).bind(now).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM presence WHERE node_id IN (SELECT id FROM node WHERE heartbeat_at < $1)")
                .bind(now - NODE_TIMEOUT_MS).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM node WHERE heartbeat_at < $1").bind(now - NODE_TIMEOUT_MS).execute(&mut *tx).await?;
        });
        Ok(())
    }

    /// A widget connection opened.
    pub async fn connected(&self, workspace_id: &str, person_id: &str) -> Result<()> {
        let first_here = {
            let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            let n = local.entry(person_id.to_owned()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if first_here {
            let was_online = self.online(person_id).await?;
            self.write(workspace_id, person_id, true).await?;
            if !was_online {
                self.announce(workspace_id, person_id, true).await;
            }
        }
        Ok(())
    }

    /// A widget connection closed.
    pub async fn disconnected(&self, workspace_id: &str, person_id: &str) -> Result<()> {
        let last_here = {
            let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            match local.get_mut(person_id) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    local.remove(person_id);
                    true
                }
                None => false,
            }
        };
        if last_here {
            self.write(workspace_id, person_id, false).await?;
            if !self.online(person_id).await? {
                self.announce(workspace_id, person_id, false).await;
            }
        }
        Ok(())
    }

    /// Mirrors a person's first connection here (`connected`) or their
    /// last one closing, and when they were last seen.
    async fn write(&self, workspace_id: &str, person_id: &str, connected: bool) -> Result<()> {
        if let Some(mirror) = &self.mirror {
            let (done, answer) = oneshot::channel();
            let change = Change { workspace_id: workspace_id.to_owned(), person_id: person_id.to_owned(), connected, done };
            let stopped = || Error::Internal(anyhow::anyhow!("the presence writer has stopped"));
            mirror.send(change).await.map_err(|_| stopped())?;
            return answer.await.map_err(|_| stopped())?.map_err(|e| Error::Internal(anyhow::anyhow!(e)));
        }
        let now = now_ms();
        with_tx!(&self.db, tx => {
            match connected {
                true => sqlx::query("INSERT INTO presence (node_id, person_id, workspace_id, connections) VALUES ($1, $2, $3, 1) \
                                     ON CONFLICT (node_id, person_id) DO UPDATE SET connections = 1")
                    .bind(self.hub.node_id()).bind(person_id).bind(workspace_id).execute(&mut *tx).await?,
                false => sqlx::query("DELETE FROM presence WHERE node_id = $1 AND person_id = $2")
                    .bind(self.hub.node_id()).bind(person_id).execute(&mut *tx).await?,
            };
            // updated_at too: an external search index follows it, and sorts by last_seen_at.
            sqlx::query("UPDATE person SET last_seen_at = $1, updated_at = $1 WHERE id = $2").bind(now).bind(person_id).execute(&mut *tx).await?;
        });
        Ok(())
    }

    pub async fn online(&self, person_id: &str) -> Result<bool> {
        let (n,): (i64,) = with_db!(&self.db, pool => sqlx::query_as(
            "SELECT COUNT(*) FROM presence WHERE person_id = $1 AND connections > 0")
            .bind(person_id).fetch_one(pool).await?);
        Ok(n > 0)
    }

    async fn announce(&self, workspace_id: &str, person_id: &str, online: bool) {
        self.hub
            .send_ephemeral(&workspace_stream(workspace_id), json!({"type": "presence.update", "person_id": person_id, "online": online}))
            .await;
    }
}

/// SQLite's mirror writer: every change waiting, in one transaction. A
/// person's changes within a group come down to the last of them.
async fn write_changes(
    write: sqlx::SqlitePool,
    node: String,
    mut rx: mpsc::Receiver<Change>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    while let Some(changes) = crate::util::next_group(&mut rx, BATCH_MAX, &shutdown).await {
        let mut last: HashMap<&str, (&str, bool)> = HashMap::new();
        for c in &changes {
            last.insert(c.person_id.as_str(), (c.workspace_id.as_str(), c.connected));
        }
        let here: Vec<_> = last.iter().filter(|(_, (_, on))| *on).map(|(p, (w, _))| json!({"person": p, "workspace": w})).collect();
        let gone: Vec<_> = last.iter().filter(|(_, (_, on))| !*on).map(|(p, _)| *p).collect();
        let seen: Vec<_> = last.keys().collect();
        let written: Result<()> = async {
            let mut tx = write.begin_with("BEGIN IMMEDIATE").await?;
            if !here.is_empty() {
                sqlx::query(
                    "INSERT INTO presence (node_id, person_id, workspace_id, connections) \
                     SELECT $1, j.value->>'person', j.value->>'workspace', 1 FROM json_each($2) j WHERE true \
                     ON CONFLICT (node_id, person_id) DO UPDATE SET connections = 1",
                )
                .bind(&node)
                .bind(json!(here).to_string())
                .execute(&mut *tx)
                .await?;
            }
            if !gone.is_empty() {
                sqlx::query("DELETE FROM presence WHERE node_id = $1 AND person_id IN (SELECT value FROM json_each($2))")
                    .bind(&node)
                    .bind(json!(gone).to_string())
                    .execute(&mut *tx)
                    .await?;
            }
            // updated_at too: an external search index follows it, and sorts by last_seen_at.
            sqlx::query("UPDATE person SET last_seen_at = $1, updated_at = $1 WHERE id IN (SELECT value FROM json_each($2))")
                .bind(now_ms())
                .bind(json!(seen).to_string())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        let answer = written.map_err(|e| e.to_string());
        for c in changes {
            let _ = c.done.send(answer.clone());
        }
    }
}
