//! The storage handle: one enum over the two backends.
//!
//! Queries are written once as portable SQL (`$1` placeholders work on both)
//! and run on whichever pool is configured through the [`with_db!`] and
//! [`with_tx!`] macros, which expand the same code once per backend. SQLite gets
//! a separate single-connection write pool so that writers queue in the pool
//! instead of failing with `SQLITE_BUSY`; readers use WAL in parallel.
//! [`SqliteBatch`] sends several SQLite statements to the connection's
//! thread in one go, for writers that run many set-based statements in one
//! transaction (a mass send's chunk, the timeline's rows).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite { read: SqlitePool, write: SqlitePool, checkpoints: Checkpoints, staging: crate::events::Staging },
    Postgres(PgPool),
}

/// WAL pages past which the writer checkpoints in its own commit. The
/// checkpointer below normally has copied them already, so this bounds the
/// WAL under writes that never pause rather than setting the pace.
const WRITER_AUTOCHECKPOINT: &str = "4000";

/// The shortest time between two background checkpoints: each one fsyncs
/// the WAL and the database file, so under a stream of small commits they
/// are taken in groups.
const CHECKPOINT_GAP: Duration = Duration::from_millis(10);

/// SQLite's WAL checkpoints, taken beside the writer on a connection of
/// their own. A checkpoint copies the WAL's pages into the database file
/// and fsyncs both; run by the writer (SQLite's automatic checkpoint) it
/// happens inside whichever commit crosses the threshold, so that caller
/// waits for the copy and two fsyncs: the largest part of the greeting and
/// chat latency tails, and of each mass-send chunk's commit. Here every
/// release of the write connection wakes a task that runs a passive
/// checkpoint (which never blocks the writer or the readers); once it has
/// caught up, the next write transaction starts the WAL over.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    shared: std::sync::Arc<CheckpointShared>,
}

#[derive(Debug, Default)]
struct CheckpointShared {
    wake: tokio::sync::Notify,
    closed: std::sync::atomic::AtomicBool,
    /// Checkpoints run so far, so a test can wait for the one after a write.
    runs: std::sync::atomic::AtomicU64,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Checkpoints {
    fn new() -> Checkpoints {
        Checkpoints { shared: std::sync::Arc::new(CheckpointShared::default()) }
    }

    /// Called when a write transaction has ended.
    fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Starts the task on its own connection. It holds the shared state
    /// only weakly between checkpoints, so it ends within a second of the
    /// last handle going away even without [`Db::close`].
    async fn start(&self, opts: SqliteConnectOptions) -> anyhow::Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect_with(&opts).await?;
        let weak = std::sync::Arc::downgrade(&self.shared);
        let task = tokio::spawn(async move {
            loop {
                let Some(shared) = weak.upgrade() else { break };
                if shared.closed.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
                if tokio::time::timeout(Duration::from_secs(1), shared.wake.notified()).await.is_err() {
                    continue;
                }
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut conn).await {
                    tracing::debug!(error = %e, "a background checkpoint failed");
                }
                shared.runs.fetch_add(1, std::sync::atomic::Ordering::Release);
                drop(shared);
                tokio::time::sleep(CHECKPOINT_GAP).await;
            }
            let _ = conn.close().await;
        });
        if let Ok(mut slot) = self.shared.task.lock() {
            *slot = Some(task);
        }
        Ok(())
    }

    /// Stops the task and closes its connection.
    async fn stop(&self) {
        self.shared.closed.store(true, std::sync::atomic::Ordering::Release);
        self.shared.wake.notify_one();
        let task = self.shared.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
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

/// Reads the SQLite file once, front to back, on a thread of its own, so
/// its pages are in the OS page cache before searches and ingest need them.
/// After a restart (or once the OS dropped them) every first search and
/// event otherwise waits on scattered reads from disk: seconds for the
/// first searches at a million people, where one sequential read of the
/// file takes a few (18 s for 5.3 GB here). Skipped when the file would take
/// more than half the memory available, where it would only push out what
/// else is cached.
/// The answer says when the read is over (at once when there is none).
fn read_ahead(path: std::path::PathBuf) -> tokio::sync::oneshot::Receiver<()> {
    let (done, over) = tokio::sync::oneshot::channel();
    let size = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(_) => return over,
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    if !worth_prewarming(size, &meminfo) {
        return over;
    }
    let spawned = std::thread::Builder::new().name("sqlite-prewarm".into()).spawn(move || {
        use std::io::Read;
        let started = std::time::Instant::now();
        if let Ok(mut file) = std::fs::File::open(&path) {
            let mut buf = vec![0_u8; 1 << 20];
            while matches!(file.read(&mut buf), Ok(n) if n > 0) {}
            tracing::info!(mib = size >> 20, secs = started.elapsed().as_secs_f64(), "database file read into the OS page cache");
        }
        let _ = done.send(());
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start reading the database file ahead");
    }
    over
}

/// A file worth reading ahead: big enough for scattered reads to hurt (a
/// small one is read in no time anyway), and at most half of the memory
/// `/proc/meminfo` says is available (nothing is read where it is unknown).
fn worth_prewarming(size: u64, meminfo: &str) -> bool {
    let available = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024);
    size >= 64 << 20 && available.is_some_and(|a| size <= a / 2)
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
            // Rows come back from a connection's thread through a bounded
            // channel: at SQLite's default of 50, a statement returning a
            // chunk's 500 rows stalls the thread ten times waiting for the
            // task to take them (a profile of a mass send showed the writer
            // blocked a thousand times a second there).
            let opts = opts.row_buffer_size(1024);
            // Checkpoints run beside the writer ([`Checkpoints`]); the writer
            // still checkpoints itself past a larger WAL, because under commits
            // that never pause only a checkpoint in the committer reaches the
            // WAL's tail and lets it start over (a background checkpointer
            // alone left the WAL growing without end under steady load).
            let checkpoints = Checkpoints::new();
            let woken = checkpoints.clone();
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .after_release(move |_, _| {
                    woken.wake();
                    Box::pin(async { Ok(true) })
                })
                .connect_with(opts.clone().pragma("wal_autocheckpoint", WRITER_AUTOCHECKPOINT))
                .await?;
            // Opened after the write pool has created the file.
            checkpoints.start(opts.clone()).await?;
            let read = SqlitePoolOptions::new().max_connections(8).connect_with(opts.read_only(true)).await?;
            Db::Sqlite { read, write, checkpoints, staging: Default::default() }
        };
        db.migrate().await?;
        db.optimize().await?;
        crate::events::resume_folding(&db).await?;
        Ok(db)
    }

    /// Starts reading a SQLite database file ahead into the OS page cache
    /// (see [`read_ahead`]); for a server, not for commands that exit soon.
    /// Resolves when the read is over (at once on PostgreSQL).
    pub fn prewarm(&self) -> impl Future<Output = ()> + Send + 'static {
        let over = match self {
            Db::Sqlite { write, .. } => Some(read_ahead(write.connect_options().get_filename().to_owned())),
            Db::Postgres(_) => None,
        };
        async move {
            if let Some(over) = over {
                let _ = over.await;
            }
        }
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

    /// The SQL dialect filters are compiled to for this database.
    pub fn dialect(&self) -> crate::filter::Dialect {
        if self.is_postgres() { crate::filter::Dialect::Postgres } else { crate::filter::Dialect::Sqlite }
    }

    pub async fn ping(&self) -> bool {
        with_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.is_ok())
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite { read, write, checkpoints, .. } => {
                checkpoints.stop().await;
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

/// Statements sent to SQLite's connection thread in one go.
///
/// sqlx runs each SQLite statement by handing it to the connection's own
/// thread and waiting for the answer. Under a mass send the writer sat idle
/// for a millisecond or two at every hand-off, while the async side woke up
/// and built the next statement: a dozen statements a chunk left it waiting
/// about as long as it worked. A batch is built in full first and sent as one
/// multi-statement query, so the statements run back to back.
///
/// Each statement is pushed with its own `$1`, `$2`, … and they are renumbered
/// to follow the ones before, so the same statement text serves alone or in a
/// batch. Rows come back from every statement that returns any, in order.
#[derive(Debug, Default)]
pub struct SqliteBatch {
    sql: String,
    args: Vec<Arg>,
}

/// A parameter of a [`SqliteBatch`] statement.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_owned())
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// Rows for a statement that unpacks them with `json_each`, written straight
/// from tuples (`[[a, b], …]`, read back as `j.value->>0`…): a mass send's
/// chunk passes thousands, and building them as `serde_json::Value` trees
/// first cost more than the statements that read them.
pub fn json_rows<T: serde::Serialize + ?Sized>(rows: &T) -> crate::Result<String> {
    serde_json::to_string(rows).map_err(|e| crate::Error::Internal(e.into()))
}

impl SqliteBatch {
    /// Adds a statement whose `$n` is `args[n - 1]`.
    pub fn push(&mut self, sql: &str, args: Vec<Arg>) {
        let offset = self.args.len();
        let mut quoted = false;
        let mut chars = sql.chars().peekable();
        while let Some(ch) = chars.next() {
            if ch == '\'' {
                quoted = !quoted;
            }
            if ch != '$' || quoted {
                self.sql.push(ch);
                continue;
            }
            let mut n = String::new();
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                n.push(d);
            }
            match n.parse::<usize>() {
                Ok(n) => self.sql.push_str(&format!("${}", n + offset)),
                Err(_) => {
                    self.sql.push('$');
                    self.sql.push_str(&n);
                }
            }
        }
        self.sql.push_str(";\n");
        self.args.extend(args);
    }

    /// Runs every statement on `c` (inside the caller's transaction, if any).
    pub async fn run(self, c: &mut sqlx::SqliteConnection) -> crate::Result<Vec<sqlx::sqlite::SqliteRow>> {
        if self.sql.is_empty() {
            return Ok(Vec::new());
        }
        // The text is made of the callers' own statement texts, never of
        // values: those travel as parameters.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.sql));
        for a in self.args {
            q = match a {
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
            };
        }
        Ok(q.fetch_all(c).await?)
    }
}

/// A new SQLite database in a directory of its own, for engine tests; hand
/// both to [`remove_temp_sqlite`] at the end.
#[cfg(test)]
pub(crate) async fn temp_sqlite(name: &str) -> (Db, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("parley-test-{name}-{}", crate::util::new_id()));
    std::fs::create_dir_all(&dir).expect("a data dir");
    let db = Db::connect(&Db::sqlite_url_in(&dir)).await.expect("a database");
    (db, dir)
}

/// Closes a [`temp_sqlite`] database and removes its directory.
#[cfg(test)]
pub(crate) async fn remove_temp_sqlite(db: Db, dir: &std::path::Path) {
    db.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The plan SQLite picks for `sql` (its `$n` bound to text), one line per
/// step: for tests that a statement starts from the right index.
#[cfg(test)]
pub(crate) async fn query_plan(db: &Db, sql: &str, params: usize) -> String {
    let Db::Sqlite { read, .. } = db else { unreachable!("a SQLite database") };
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")));
    for _ in 0..params {
        q = q.bind("x");
    }
    let rows = q.fetch_all(read).await.expect("explaining");
    rows.iter().map(|r| sqlx::Row::get::<String, _>(r, 3)).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::{Arg, Db, SqliteBatch, remove_temp_sqlite, temp_sqlite, worth_prewarming};

    /// Writes that pause now and then (as a greeting's or an agent's do)
    /// leave the WAL small: the background checkpoint catches up in each
    /// pause and the next write starts the WAL over. With only the writer's
    /// own checkpoint, past 4,000 pages, these 6,000 pages would grow it to
    /// 16 MB first. Each pause lasts until the checkpoint after the write
    /// has run, not a fixed time, so a loaded machine cannot fail it.
    #[tokio::test]
    async fn checkpoints_beside_the_writer_keep_the_wal_small() -> anyhow::Result<()> {
        let (db, dir) = temp_sqlite("wal").await;
        let wal = dir.join("parley.db-wal");
        crate::with_tx!(&db, tx => {
            sqlx::query("CREATE TABLE wal_test (b BLOB)").execute(&mut *tx).await?;
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let before = std::fs::metadata(&wal)?.len();
        let Db::Sqlite { checkpoints, .. } = &db else { anyhow::bail!("not SQLite") };
        let runs = || checkpoints.shared.runs.load(std::sync::atomic::Ordering::Acquire);
        for i in 0..60 {
            let ran = runs();
            // About 100 pages a transaction: rows of 3,000 bytes.
            crate::with_tx!(&db, tx => {
                sqlx::query(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) \
                     INSERT INTO wal_test SELECT randomblob(3000) FROM n",
                )
                .execute(&mut *tx)
                .await?;
            });
            let waited = tokio::time::timeout(std::time::Duration::from_secs(30), async {
                while runs() == ran {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            })
            .await;
            anyhow::ensure!(waited.is_ok(), "no background checkpoint ran after write {i}");
        }
        let after = std::fs::metadata(&wal)?.len();
        remove_temp_sqlite(db, &dir).await;
        assert!(after <= before.max(4 << 20), "the WAL grew from {before} to {after} bytes");
        Ok(())
    }

    /// Statements pushed with their own `$1`… run as one: each reads its own
    /// parameters (a `$` inside a quoted literal is left alone), the rows of
    /// the one that returns some come back, and a failing statement takes
    /// the whole transaction back with it.
    #[tokio::test]
    async fn a_batch_runs_each_statement_with_its_own_parameters() -> anyhow::Result<()> {
        let (db, dir) = temp_sqlite("batch").await;
        let Db::Sqlite { write, .. } = &db else { anyhow::bail!("not SQLite") };
        let mut c = write.acquire().await?;
        sqlx::query("CREATE TABLE batch_test (k TEXT PRIMARY KEY, n INTEGER, note TEXT)").execute(&mut *c).await?;
        let mut b = SqliteBatch::default();
        b.push("INSERT INTO batch_test (k, n, note) VALUES ($1, $2, '$1')", vec![Arg::from("a"), Arg::from(1_i64)]);
        b.push(
            "INSERT INTO batch_test (k, n, note) SELECT value, $2, $3 FROM json_each($1) RETURNING k, n",
            vec![Arg::from(r#"["b","c"]"#), Arg::from(7_i64), Arg::from("x")],
        );
        b.push("UPDATE batch_test SET n = n + $1 WHERE k = $2", vec![Arg::from(10_i64), Arg::from("a")]);
        let rows = b.run(&mut c).await?;
        let returned: Vec<(String, i64)> =
            rows.iter().map(|r| (sqlx::Row::get::<String, _>(r, 0), sqlx::Row::get::<i64, _>(r, 1))).collect();
        assert_eq!(returned, vec![("b".to_owned(), 7), ("c".to_owned(), 7)]);
        let all: Vec<(String, i64, String)> = sqlx::query_as("SELECT k, n, note FROM batch_test ORDER BY k").fetch_all(&mut *c).await?;
        assert_eq!(
            all,
            vec![("a".to_owned(), 11, "$1".to_owned()), ("b".to_owned(), 7, "x".to_owned()), ("c".to_owned(), 7, "x".to_owned())]
        );

        // The second statement fails (a duplicate key): the first is undone too.
        let mut tx = sqlx::Connection::begin(&mut *c).await?;
        let mut b = SqliteBatch::default();
        b.push("INSERT INTO batch_test (k, n) VALUES ($1, 0)", vec![Arg::from("d")]);
        b.push("INSERT INTO batch_test (k, n) VALUES ($1, 0)", vec![Arg::from("a")]);
        assert!(b.run(&mut tx).await.is_err());
        tx.rollback().await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM batch_test").fetch_one(&mut *c).await?;
        assert_eq!(n, 3);
        drop(c);
        remove_temp_sqlite(db, &dir).await;
        Ok(())
    }

    const MEMINFO: &str = "MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\n";

    #[test]
    fn a_big_file_is_read_ahead_only_when_half_the_free_memory_holds_it() {
        let gib = 1_u64 << 30;
        // 20,000,000 kB available: up to about 9.5 GiB is read ahead.
        assert!(worth_prewarming(5 * gib, MEMINFO));
        assert!(!worth_prewarming(10 * gib, MEMINFO));
        // Small files are not worth it; unknown memory reads nothing.
        assert!(!worth_prewarming(10 << 20, MEMINFO));
        assert!(!worth_prewarming(5 * gib, ""));
        assert!(!worth_prewarming(5 * gib, "MemAvailable: lots kB\n"));
    }
}
