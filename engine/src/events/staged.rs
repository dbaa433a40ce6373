//! Event ingest on SQLite: events from the site's backend are appended to
//! `event_staged` when they arrive and folded into the timeline (`event`,
//! `event_summary`, `person_touched`) shortly after, many at a time and in
//! person order.
//!
//! Why: at a million people, an event written straight into the timeline
//! rewrites a page of the person index and one of the summaries that no
//! other event of its batch touches, and the single writer spends its time
//! copying and checksumming those pages. Appending costs a few pages per
//! thousand events; a fold of tens of thousands, sorted by person, writes
//! each page it touches once for all the events that land on it.
//!
//! Readers that need every event first call [`settle`], which waits until
//! all that was staged before the call is folded (at once when nothing is
//! staged, the usual case). A fold moves the staged rows to
//! `event_folding` in person order, then takes chunks off its front, each
//! chunk in the transaction that writes it into the timeline; a crash leaves
//! the rest in place for the next start, and nothing is folded twice.
//! PostgreSQL writes events straight away: none of this runs there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::Result;
use crate::db::Db;
use crate::util::{new_id, now_ms};

/// How long a fold waits after the first staged event, so that the events
/// of the next requests join it: the more a fold holds, the more of them
/// share each page. At a million people, ingest held 17,000–20,000 events/s
/// over 45 s with 2 s and 12,000 with 0.5 s (BENCHMARKS.md). A reader that
/// waits cuts it short.
const FOLD_DELAY: Duration = Duration::from_secs(2);

/// Events written into the timeline in one transaction. Each chunk holds the
/// writer while it is written (chat messages wait behind it), and a chunk
/// covers a slice of the people, so larger chunks revisit fewer pages of the
/// indexes ordered by time.
const CHUNK: i64 = 10_000;

/// Events moved from `event_staged` into one fold at most, which bounds the
/// sort and the memory of one move under a large backlog.
const MOVE_MAX: i64 = 250_000;

/// How long [`settle`] waits for a fold before answering with what is folded.
const SETTLE_WAIT: Duration = Duration::from_secs(60);

/// The staging state of one SQLite database, shared by all its handles.
#[derive(Clone, Debug)]
pub struct Staging {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Staging commits so far: a generation, not a count of rows.
    staged: AtomicU64,
    /// The generation up to which every staged event is folded.
    folded: tokio::sync::watch::Sender<u64>,
    /// A folding task is running.
    active: AtomicBool,
    /// A reader is waiting: fold without the delay.
    urgent: tokio::sync::Notify,
    /// [`FOLD_DELAY`], but for tests that look at events still staged.
    delay_ms: AtomicU64,
}

impl Default for Staging {
    fn default() -> Self {
        Staging {
            shared: Arc::new(Shared {
                staged: AtomicU64::new(0),
                folded: tokio::sync::watch::channel(0).0,
                active: AtomicBool::new(false),
                urgent: tokio::sync::Notify::new(),
                delay_ms: AtomicU64::new(FOLD_DELAY.as_millis() as u64),
            }),
        }
    }
}

impl Staging {
    fn pending(&self) -> bool {
        self.shared.staged.load(Ordering::Acquire) > *self.shared.folded.borrow()
    }
}

/// Appends events (workspace, person, name, data, at) to `event_staged`
/// inside the caller's transaction: one statement, rows as one JSON
/// parameter. Call [`staged`] once the transaction has committed.
pub(crate) async fn stage<'a>(
    c: &mut sqlx::SqliteConnection,
    rows: impl Iterator<Item = (&'a str, &'a str, &'a str, &'a str, i64)>,
) -> Result<()> {
    let rows: Vec<_> = rows.collect();
    sqlx::query(
        "INSERT INTO event_staged (workspace_id, person_id, name, data, at) \
         SELECT j.value->>0, j.value->>1, j.value->>2, j.value->>3, j.value->>4 FROM json_each($1) j",
    )
    .bind(crate::db::json_rows(&rows)?)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Tells the database that a staging transaction committed, and starts a
/// fold unless one runs.
pub(crate) fn staged(db: &Db) {
    if let Db::Sqlite { staging, .. } = db {
        staging.shared.staged.fetch_add(1, Ordering::AcqRel);
        kick(db, staging);
    }
}

/// Waits until every event staged before the call is in the timeline.
pub async fn settle(db: &Db) -> Result<()> {
    let Db::Sqlite { staging, .. } = db else { return Ok(()) };
    let target = staging.shared.staged.load(Ordering::Acquire);
    if *staging.shared.folded.borrow() >= target {
        return Ok(());
    }
    let mut folded = staging.shared.folded.subscribe();
    staging.shared.urgent.notify_one();
    kick(db, staging);
    match tokio::time::timeout(SETTLE_WAIT, folded.wait_for(|g| *g >= target)).await {
        Ok(Ok(_)) => {}
        // The fold keeps failing (it logs why): answer with what is folded
        // rather than never.
        Ok(Err(_)) | Err(_) => tracing::warn!("staged events were not folded in time; answering without them"),
    }
    Ok(())
}

/// Folds what an earlier run left staged or half folded; called at start.
pub(crate) async fn resume(db: &Db) -> anyhow::Result<()> {
    let Db::Sqlite { write, staging, .. } = db else { return Ok(()) };
    let left: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM event_staged) OR EXISTS (SELECT 1 FROM event_folding)").fetch_one(write).await?;
    if left {
        staging.shared.staged.fetch_add(1, Ordering::AcqRel);
        kick(db, staging);
    }
    Ok(())
}

/// Starts the folding task unless it runs. It ends once nothing is left, so
/// an idle database has none, and it holds the database only while it runs.
fn kick(db: &Db, staging: &Staging) {
    if staging.shared.active.swap(true, Ordering::AcqRel) {
        return;
    }
    let (db, staging) = (db.clone(), staging.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(staging.shared.delay_ms.load(Ordering::Relaxed))) => {}
                _ = staging.shared.urgent.notified() => {}
            }
            let target = staging.shared.staged.load(Ordering::Acquire);
            match fold(&db, CHUNK).await {
                Ok(_) => {
                    staging.shared.folded.send_if_modified(|g| {
                        let newer = target > *g;
                        if newer {
                            *g = target;
                        }
                        newer
                    });
                }
                Err(e) => {
                    if matches!(&db, Db::Sqlite { write, .. } if write.is_closed()) {
                        break;
                    }
                    tracing::error!(error = %e, "folding staged events failed; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            if staging.pending() {
                continue;
            }
            staging.shared.active.store(false, Ordering::Release);
            // Something staged between the check and the store finds the
            // task still marked running and starts none: look once more.
            if !staging.pending() || staging.shared.active.swap(true, Ordering::AcqRel) {
                break;
            }
        }
    });
}

/// Folds every event staged when it starts (and any after it, up to the
/// end of the last move) into the timeline, `chunk` events a transaction.
/// Answers how many it folded.
pub(crate) async fn fold(db: &Db, chunk: i64) -> Result<u64> {
    let Db::Sqlite { write, .. } = db else { return Ok(0) };
    let hi: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM event_staged").fetch_one(write).await?;
    let mut folded = fold_chunks(write, chunk).await?;
    let Some(hi) = hi else { return Ok(folded) };
    loop {
        // Move a slice of what is staged into `event_folding`, sorted by
        // person: the chunks below then walk the person index front to back.
        let mut tx = write.begin_with("BEGIN IMMEDIATE").await?;
        let lo: Option<i64> = sqlx::query_scalar("SELECT MIN(seq) FROM event_staged").fetch_one(&mut *tx).await?;
        let Some(lo) = lo.filter(|lo| *lo <= hi) else { break };
        move_to_folding(&mut tx, hi.min(lo.saturating_add(MOVE_MAX - 1))).await?;
        tx.commit().await?;
        folded += fold_chunks(write, chunk).await?;
    }
    Ok(folded)
}

/// Moves the staged events up to seq `upto` into `event_folding`, sorted by
/// person, inside the caller's transaction.
async fn move_to_folding(c: &mut sqlx::SqliteConnection, upto: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO event_folding (workspace_id, person_id, name, data, at) \
         SELECT workspace_id, person_id, name, data, at FROM event_staged WHERE seq <= $1 ORDER BY person_id, at, seq",
    )
    .bind(upto)
    .execute(&mut *c)
    .await?;
    sqlx::query("DELETE FROM event_staged WHERE seq <= $1").bind(upto).execute(&mut *c).await?;
    Ok(())
}

/// Writes `event_folding` into the timeline from its front, `chunk` rows a
/// transaction, each taking its rows off in the same transaction. The rows
/// go from table to table inside SQLite: carried out to build each
/// statement's parameters, the writer would wait idle while they were.
async fn fold_chunks(write: &sqlx::SqlitePool, chunk: i64) -> Result<u64> {
    let mut folded = 0;
    loop {
        let mut tx = write.begin_with("BEGIN IMMEDIATE").await?;
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT COALESCE((SELECT seq FROM event_folding ORDER BY seq LIMIT 1 OFFSET $1), (SELECT MAX(seq) FROM event_folding))",
        )
        .bind(chunk - 1)
        .fetch_one(&mut *tx)
        .await?;
        let Some(last) = last else { return Ok(folded) };
        // Event ids as elsewhere: 32 hex digits in creation order. A fresh
        // time-ordered prefix for the chunk, then the row's seq (unique in
        // `event_folding`, though seqs start over once it is empty).
        let prefix = &new_id()[..20];
        let written = sqlx::query(
            "INSERT INTO event (id, workspace_id, person_id, name, data, at) \
             SELECT $2 || printf('%012x', seq), workspace_id, person_id, name, data, at FROM event_folding WHERE seq <= $1 ORDER BY seq",
        )
        .bind(last)
        .bind(prefix)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(super::FOLD_SUMMARIES).bind(last).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO person_touched (at, person_id, workspace_id) \
             SELECT DISTINCT $2, person_id, workspace_id FROM event_folding WHERE seq <= $1 ON CONFLICT (at, person_id) DO NOTHING",
        )
        .bind(last)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM event_folding WHERE seq <= $1").bind(last).execute(&mut *tx).await?;
        tx.commit().await?;
        folded += written;
    }
}

/// Statements that keep a person's staged events with them: run inside the
/// transaction that deletes the person (`$1`), before the person's row.
pub(crate) const FORGET_PERSON: [&str; 2] =
    ["DELETE FROM event_staged WHERE person_id = $1", "DELETE FROM event_folding WHERE person_id = $1"];

/// The same for a merge: `$2`'s staged events become `$1`'s, before `$2`'s
/// row is deleted.
pub(crate) const MOVE_PERSON: [&str; 2] =
    ["UPDATE event_staged SET person_id = $1 WHERE person_id = $2", "UPDATE event_folding SET person_id = $1 WHERE person_id = $2"];

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::db::Conn;
    use crate::events::{EventInput, PersonRef, ingest, summaries, timeline};

    fn staging(db: &Db) -> &Staging {
        let Db::Sqlite { staging, .. } = db else { unreachable!("a SQLite database") };
        staging
    }

    async fn count(db: &Db, sql: &str) -> i64 {
        let Db::Sqlite { read, .. } = db else { unreachable!("a SQLite database") };
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(read).await.expect("counting")
    }

    /// `n` events for people `x0`…`x{people-1}` in turn, with names in turn;
    /// answers what each person did, by name.
    async fn track(db: &Db, ws: &str, n: usize, people: usize, did: &mut BTreeMap<(String, String), i64>) {
        let names = ["signed_in", "purchased", "page.view"];
        let items: Vec<EventInput> = (0..n)
            .map(|i| {
                let (who, name) = (format!("x{}", (i * 7) % people), names[i % names.len()]);
                *did.entry((who.clone(), name.to_owned())).or_default() += 1;
                EventInput {
                    person: PersonRef { external_id: Some(who), ..Default::default() },
                    name: name.to_owned(),
                    data: Some(serde_json::json!({"i": i})),
                    at: None,
                }
            })
            .collect();
        ingest(db, ws, items, true).await.expect("ingesting");
    }

    /// A new database whose folds wait for a reader, and a workspace in it.
    async fn waiting_db(name: &str) -> (Db, std::path::PathBuf, String) {
        let (db, dir) = crate::db::temp_sqlite(name).await;
        staging(&db).shared.delay_ms.store(3_600_000, Ordering::Relaxed);
        let ws = crate::workspace::create(&db, name).await.expect("a workspace").id;
        (db, dir, ws)
    }

    /// Events still staged or half folded.
    async fn left_over(db: &Db) -> i64 {
        count(db, "SELECT COUNT(*) FROM event_staged").await + count(db, "SELECT COUNT(*) FROM event_folding").await
    }

    async fn id_of(db: &Db, ws: &str, x: &str) -> String {
        let input = crate::people::input::PersonInput { external_id: Some(x.into()), ..Default::default() };
        crate::people::profile::upsert(db, ws, input).await.expect("a person").person.id
    }

    async fn summary_counts(db: &Db, ws: &str, id: &str) -> BTreeMap<String, i64> {
        summaries(db, ws, id).await.expect("summaries").into_iter().map(|s| (s.name, s.count)).collect()
    }

    fn expected(did: &BTreeMap<(String, String), i64>, x: &str) -> BTreeMap<String, i64> {
        did.iter().filter(|((who, _), _)| who == x).map(|((_, name), n)| (name.clone(), *n)).collect()
    }

    /// Ingested events wait in `event_staged`; a fold in several chunks puts
    /// each into the timeline once, with summaries that count them all; a
    /// reader waits for the fold. A person deleted with events still staged
    /// takes them along, and one merged away hands them over.
    #[tokio::test]
    async fn staged_events_are_folded_once_and_follow_deletes_and_merges() {
        let (db, dir, ws) = waiting_db("staged").await;
        let mut did = BTreeMap::new();
        track(&db, &ws, 50, 10, &mut did).await;
        track(&db, &ws, 40, 10, &mut did).await;
        assert_eq!(count(&db, "SELECT COUNT(*) FROM event_staged").await, 90, "staged when accepted");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM event").await, 0, "not yet in the timeline");

        assert_eq!(fold(&db, 7).await.expect("folding"), 90);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM event").await, 90);
        assert_eq!(left_over(&db).await, 0);
        for x in ["x0", "x3", "x9"] {
            let id = id_of(&db, &ws, x).await;
            assert_eq!(summary_counts(&db, &ws, &id).await, expected(&did, x), "{x}'s summaries");
            let page = timeline(&db, &ws, &id, None, None, 200).await.expect("a timeline");
            assert_eq!(page.items.len() as i64, expected(&did, x).values().sum::<i64>(), "{x}'s timeline");
        }

        // More staged, then a reader: it waits for them.
        track(&db, &ws, 30, 10, &mut did).await;
        let x1 = id_of(&db, &ws, "x1").await;
        assert_eq!(summary_counts(&db, &ws, &x1).await, expected(&did, "x1"), "a reader sees every accepted event");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM event").await, 120);

        // Staged again: x2 is deleted and x4 merged into x5 before any fold.
        let (x2, x4, x5) = (id_of(&db, &ws, "x2").await, id_of(&db, &ws, "x4").await, id_of(&db, &ws, "x5").await);
        track(&db, &ws, 30, 10, &mut did).await;
        assert!(count(&db, &format!("SELECT COUNT(*) FROM event_staged WHERE person_id IN ('{x2}', '{x4}')")).await > 0);
        crate::people::profile::delete(&db, &dir.join("uploads"), &ws, &x2).await.expect("deleting x2");
        {
            let Db::Sqlite { write, .. } = &db else { unreachable!() };
            let mut tx = write.begin().await.expect("a transaction");
            crate::people::profile::merge(&mut Conn::from(&mut *tx), &ws, &x4, &x5, crate::util::now_ms()).await.expect("merging");
            tx.commit().await.expect("committing");
        }
        let mut merged = expected(&did, "x5");
        for (name, n) in expected(&did, "x4") {
            *merged.entry(name).or_default() += n;
        }
        *merged.entry("person.merged".to_owned()).or_default() += 1;
        assert_eq!(summary_counts(&db, &ws, &x5).await, merged, "x4's staged events went to x5");
        assert_eq!(count(&db, &format!("SELECT COUNT(*) FROM event WHERE person_id IN ('{x2}', '{x4}')")).await, 0);
        assert_eq!(left_over(&db).await, 0);
        crate::db::remove_temp_sqlite(db, &dir).await;
    }

    /// What a stopped server left staged, or moved for a fold it did not
    /// finish, is folded after the next start without any reader asking,
    /// and each event once.
    #[tokio::test]
    async fn events_left_staged_or_half_folded_are_folded_after_a_restart() {
        let (db, dir, ws) = waiting_db("restaged").await;
        let mut did = BTreeMap::new();
        track(&db, &ws, 60, 6, &mut did).await;
        {
            // A fold that moved half and stopped there.
            let Db::Sqlite { write, .. } = &db else { unreachable!() };
            let mut c = write.acquire().await.expect("the writer");
            move_to_folding(&mut c, 30).await.expect("moving half");
        }
        db.close().await;

        let db = Db::connect(&Db::sqlite_url_in(&dir)).await.expect("the database again");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while count(&db, "SELECT COUNT(*) FROM event").await < 60 {
            assert!(std::time::Instant::now() < deadline, "not folded after the restart");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(left_over(&db).await, 0);
        let x0 = id_of(&db, &ws, "x0").await;
        assert_eq!(summary_counts(&db, &ws, &x0).await, expected(&did, "x0"));
        assert_eq!(count(&db, "SELECT COUNT(*) FROM event").await, 60, "each once");
        crate::db::remove_temp_sqlite(db, &dir).await;
    }
}
