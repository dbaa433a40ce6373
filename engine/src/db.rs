//! The storage handle: one enum over the two backends.
//!
//! Queries are written once as portable SQL (`$1` placeholders work on both)
//! and run on whichever pool is configured through the [`with_db!`] and
//! [`with_tx!`] macros, which expand the same code once per backend. SQLite gets
//! a separate single-connection write pool so that writers queue in the pool
//! instead of failing with `SQLITE_BUSY`; readers use WAL in parallel.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the read pool of whichever backend is
/// configured. The body is expanded once per backend, so it may use any sqlx
/// call that is generic over the database.
#[macro_export]
macro_rules! with_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite { read: $pool, .. } => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` inside a write transaction bound to `$tx` and commits it. A `?`
/// inside the body returns early and drops the transaction, which rolls back,
/// so nothing half-written is ever stored.
#[macro_export]
macro_rules! with_tx {
    ($db:expr, $tx:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite { write, .. } => {
                // IMMEDIATE: take the write lock up front (waiting on the busy
                // timeout), so a transaction that reads first never fails to
                // upgrade after a checkpoint moved the WAL under it.
                let mut $tx = write.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            $crate::db::Db::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

impl Db {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and applies migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new().max_connections(20).acquire_timeout(Duration::from_secs(10)).connect_with(opts).await?;
            Db::Postgres(pool)
        } else {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // NORMAL in WAL mode: a commit survives a process crash; only an
                // OS crash can lose the last transactions. FULL is opt-in.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // Reads straight from the OS page cache instead of copying every
                // page through read(2), and a larger cache per connection for
                // the B-tree pages every search walks: at a million people the
                // default 2 MB holds not even the interior pages of the indexes.
                .pragma("mmap_size", (8_u64 << 30).to_string())
                .pragma("cache_size", "-65536")
                // A multi-row statement inside a transaction keeps a statement
                // journal of every page it changes (to undo just itself), and
                // large searches sort in temporary B-trees: in memory, not
                // through a temporary file's write(2) calls, which a profile
                // of batched event ingest showed taking a tenth of the time.
                .pragma("temp_store", "memory");
            // The writer also checkpoints: only the committer can finish a
            // checkpoint while commits keep coming, and a finished one is what
            // lets the WAL start over (a background checkpointer was tried and
            // left the WAL growing without end under steady load). Every 250
            // pages rather than SQLite's 1000 keeps each stall short.
            let write = SqlitePoolOptions::new().max_connections(1).connect_with(opts.clone().pragma("wal_autocheckpoint", "250")).await?;
            // Opened after the write pool has created the file.
            let read = SqlitePoolOptions::new().max_connections(8).connect_with(opts.read_only(true)).await?;
            Db::Sqlite { read, write }
        };
        db.migrate().await?;
        db.optimize().await?;
        Ok(db)
    }

    /// The SQLite URL for a file in `data_dir`.
    pub fn sqlite_url_in(data_dir: &Path) -> String {
        format!("sqlite://{}", data_dir.join("parley.db").display())
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite { write, .. } => parley_migrations::SQLITE.run(write).await?,
            Db::Postgres(pool) => parley_migrations::POSTGRES.run(pool).await?,
        }
        Ok(())
    }

    /// Refreshes the SQLite planner's statistics where they are stale (people
    /// search plans depend on them); PostgreSQL's autovacuum does this itself.
    pub async fn optimize(&self) -> anyhow::Result<()> {
        if let Db::Sqlite { write, .. } = self {
            // 0x10002: analyze tables that never were, with a row limit per
            // index so this stays quick on big tables.
            sqlx::query("PRAGMA optimize=0x10002").execute(write).await?;
        }
        Ok(())
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    pub async fn ping(&self) -> bool {
        with_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.is_ok())
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite { read, write } => {
                read.close().await;
                // The last connection to close checkpoints the whole WAL.
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// One connection of either backend, for domain functions that run several
/// statements inside a caller's transaction. Build it with `Conn::from(&mut *tx)`
/// inside [`with_tx!`] and run statements with [`on_conn!`].
pub enum Conn<'a> {
    Sqlite(&'a mut sqlx::SqliteConnection),
    Postgres(&'a mut sqlx::PgConnection),
}

impl<'a> From<&'a mut sqlx::SqliteConnection> for Conn<'a> {
    fn from(c: &'a mut sqlx::SqliteConnection) -> Self {
        Conn::Sqlite(c)
    }
}

impl<'a> From<&'a mut sqlx::PgConnection> for Conn<'a> {
    fn from(c: &'a mut sqlx::PgConnection) -> Self {
        Conn::Postgres(c)
    }
}

impl Conn<'_> {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Conn::Postgres(_))
    }
}

/// Runs `$body` with `$c` bound to the connection inside a `&mut Conn`; use
/// `&mut **$c` as the executor. Expanded once per backend, like [`with_db!`].
#[macro_export]
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::Conn::Sqlite($c) => $body,
            $crate::db::Conn::Postgres($c) => $body,
        }
    };
}
