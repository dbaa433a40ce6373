//! Search results kept while the people they were computed from are unchanged.
//!
//! An exact total means counting every match, which at a million people costs
//! tens to hundreds of milliseconds however good the indexes are; a segment's
//! count and the pages of one search ask for the same thing again and again.
//! So a result is kept and served again for as long as no person changed.
//!
//! "No person changed" is read from the database, not from this process, so
//! it holds across nodes and for writes by other processes (an import): every
//! write that can change what a search finds bumps `person.updated_at` (profile
//! writes, tags and attributes, presence), event summaries log their people
//! in `person_touched`, and removals are recorded in `person_deleted`. The
//! newest of the three is the [`Version`], three index lookups.
//!
//! A transaction that took its timestamp before the version was read can
//! still commit after it without raising the newest timestamp. So a result is
//! only kept when the newest change is older than [`SETTLED_MS`] at the time
//! the search started, and nothing is kept longer than [`TTL`] (which also
//! bounds how far "seen in the last N days" can drift).
//!
//! Concurrent requests for the same search wait for one computation instead
//! of each running it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::OnceCell;

use crate::{Db, Result, with_db};

/// How recent the newest change may be for a result to be kept.
pub const SETTLED_MS: i64 = 1_000;
/// The longest a result is served: it bounds the rare race above, a change
/// that moves no timestamp, and how far a window such as
/// "seen in the last 30 days" can drift.
pub const TTL: Duration = Duration::from_secs(300);
/// Searches kept at most.
const MAX_ENTRIES: usize = 1_000;
/// Ids kept at most over all entries (about 32 bytes each).
const MAX_IDS: usize = 6_000_000;

/// The newest change to people: the largest `updated_at`, `deleted_at` and
/// `person_touched.at`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Version {
    pub updated: i64,
    pub deleted: i64,
    pub touched: i64,
}

impl Version {
    pub async fn read(db: &Db) -> Result<Version> {
        let (updated, deleted, touched): (Option<i64>, Option<i64>, Option<i64>) = with_db!(db, pool => sqlx::query_as(
            "SELECT (SELECT MAX(updated_at) FROM person), (SELECT MAX(deleted_at) FROM person_deleted), \
             (SELECT MAX(at) FROM person_touched)")
            .fetch_one(pool).await?);
        Ok(Version { updated: updated.unwrap_or(0), deleted: deleted.unwrap_or(0), touched: touched.unwrap_or(0) })
    }

    /// Whether a result computed at `now_ms` under this version may be kept.
    pub fn settled(&self, now_ms: i64) -> bool {
        self.updated.max(self.deleted).max(self.touched) < now_ms - SETTLED_MS
    }
}

/// One search's result: the exact total, and when it is small enough every
/// matching id in sort order (so later pages come from memory too).
#[derive(Debug, Default)]
pub struct Found {
    pub total: i64,
    pub ordered: Option<Ordered>,
}

/// Matching ids with their sort keys, in order, packed: a person id is 32 hex
/// digits, kept as 16 bytes, and a date key as a number, so a kept match
/// costs about 32 bytes rather than a hundred.
#[derive(Debug, Default)]
pub struct Ordered {
    ids: Vec<PackedId>,
    keys: Keys,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PackedId {
    Hex([u8; 16]),
    Other(Box<str>),
}

impl PackedId {
    fn pack(id: &str) -> PackedId {
        let mut out = [0u8; 16];
        let hex = id.len() == 32 && !id.bytes().any(|b| b.is_ascii_uppercase());
        if hex && hex::decode_to_slice(id, &mut out).is_ok() { PackedId::Hex(out) } else { PackedId::Other(id.into()) }
    }

    fn unpack(&self) -> String {
        match self {
            PackedId::Hex(b) => hex::encode(b),
            PackedId::Other(s) => s.to_string(),
        }
    }
}

#[derive(Debug)]
enum Keys {
    Numbers(Vec<i64>),
    Texts(Vec<Box<str>>),
}

impl Default for Keys {
    fn default() -> Keys {
        Keys::Numbers(Vec::new())
    }
}

impl Ordered {
    /// Packs `(id, key)` rows; keys are all numbers or all texts.
    pub fn pack(rows: Vec<(String, Value)>) -> Ordered {
        let ids = rows.iter().map(|(id, _)| PackedId::pack(id)).collect();
        let keys = if rows.iter().all(|(_, k)| k.is_i64()) {
            Keys::Numbers(rows.iter().map(|(_, k)| k.as_i64().unwrap_or(0)).collect())
        } else {
            Keys::Texts(rows.iter().map(|(_, k)| k.as_str().unwrap_or("").into()).collect())
        };
        Ordered { ids, keys }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn key(&self, i: usize) -> Value {
        match &self.keys {
            Keys::Numbers(v) => v.get(i).map_or(Value::Null, |n| Value::from(*n)),
            Keys::Texts(v) => v.get(i).map_or(Value::Null, |s| Value::from(s.as_ref())),
        }
    }

    /// Where the row after a cursor's `(id, key)` is, if that row is here.
    pub fn after(&self, id: &str, key: &Value) -> Option<usize> {
        let packed = PackedId::pack(id);
        let i = self.ids.iter().position(|x| *x == packed)?;
        (self.key(i) == *key).then_some(i + 1)
    }

    /// Up to `n` rows from `start`, as `(id, key)`.
    pub fn rows(&self, start: usize, n: usize) -> Vec<(String, Value)> {
        (start..self.len().min(start.saturating_add(n))).map(|i| (self.ids[i].unpack(), self.key(i))).collect()
    }
}

/// What a kept value costs, in units its cache is bounded by.
pub trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for Found {
    /// Kept ids.
    fn weight(&self) -> usize {
        self.ordered.as_ref().map_or(0, Ordered::len)
    }
}

/// A filter's matches as sorted rowids (SQLite); `None` when they were too
/// many to keep.
#[derive(Debug, Default)]
pub struct Rowids(pub Option<Vec<i64>>);

impl Weigh for Rowids {
    /// Kept rowids.
    fn weight(&self) -> usize {
        self.0.as_ref().map_or(0, Vec::len)
    }
}

/// A page of search results as sent: its JSON.
impl Weigh for bytes::Bytes {
    fn weight(&self) -> usize {
        self.len()
    }
}

struct Slot<T> {
    version: Version,
    made: Instant,
    cell: Arc<OnceCell<Arc<T>>>,
}

/// Values under a [`Version`], bounded by count and by total weight.
pub struct Cache<T> {
    slots: Mutex<HashMap<String, Slot<T>>>,
    max_entries: usize,
    max_weight: usize,
}

impl Default for Cache<Found> {
    fn default() -> Self {
        Cache::new(MAX_ENTRIES, MAX_IDS)
    }
}

impl<T: Weigh> Cache<T> {
    pub fn new(max_entries: usize, max_weight: usize) -> Self {
        Cache { slots: Mutex::default(), max_entries, max_weight }
    }

    /// The value for `key` under `version`: a kept one, or the one `compute`
    /// makes (kept only when `keep`). Concurrent callers with the same key
    /// share one computation.
    pub async fn get_or_compute<F, Fut>(&self, key: &str, version: Version, keep: bool, compute: F) -> Result<Arc<T>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        if !keep {
            return Ok(Arc::new(compute().await?));
        }
        let (cell, fresh) = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            match slots.get(key) {
                Some(s) if s.version == version && s.made.elapsed() < TTL => (s.cell.clone(), false),
                _ => {
                    let cell = Arc::new(OnceCell::new());
                    slots.insert(key.to_owned(), Slot { version, made: Instant::now(), cell: cell.clone() });
                    (cell, true)
                }
            }
        };
        let found = cell.get_or_try_init(|| async { compute().await.map(Arc::new) }).await?.clone();
        // Only a new entry can take the cache past its bounds.
        if fresh {
            self.trim();
        }
        Ok(found)
    }

    /// Drops stale entries, then the oldest, until within bounds.
    fn trim(&self) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let weight = |slots: &HashMap<String, Slot<T>>| -> usize { slots.values().filter_map(|s| s.cell.get()).map(|v| v.weight()).sum() };
        if slots.len() <= self.max_entries && weight(&slots) <= self.max_weight {
            return;
        }
        slots.retain(|_, s| s.made.elapsed() < TTL);
        let oldest = |slots: &HashMap<String, Slot<T>>, weighty: bool| {
            slots
                .iter()
                .filter(|(_, s)| !weighty || s.cell.get().is_some_and(|v| v.weight() > 0))
                .min_by_key(|(_, s)| s.made)
                .map(|(k, _)| k.clone())
        };
        while slots.len() > self.max_entries {
            let Some(k) = oldest(&slots, false) else { break };
            slots.remove(&k);
        }
        while weight(&slots) > self.max_weight {
            let Some(k) = oldest(&slots, true) else { break };
            slots.remove(&k);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn found(total: i64) -> Found {
        Found { total, ordered: None }
    }

    #[tokio::test]
    async fn a_result_is_reused_until_the_version_moves() {
        let cache = Cache::default();
        let runs = AtomicUsize::new(0);
        let v1 = Version { updated: 10, deleted: 0, touched: 0 };
        let compute = |n| {
            runs.fetch_add(1, Ordering::SeqCst);
            async move { Ok(found(n)) }
        };
        assert_eq!(cache.get_or_compute("q", v1, true, || compute(5)).await.unwrap().total, 5);
        assert_eq!(cache.get_or_compute("q", v1, true, || compute(6)).await.unwrap().total, 5);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let v2 = Version { updated: 10, deleted: 11, touched: 0 };
        assert_eq!(cache.get_or_compute("q", v2, true, || compute(7)).await.unwrap().total, 7);
        assert_eq!(cache.get_or_compute("other", v2, true, || compute(8)).await.unwrap().total, 8);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        // A summary change alone (an event) moves it too.
        let v3 = Version { touched: 12, ..v2 };
        assert_eq!(cache.get_or_compute("q", v3, true, || compute(9)).await.unwrap().total, 9);
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn unsettled_results_are_not_kept() {
        let cache = Cache::default();
        let v = Version { updated: 10, deleted: 0, touched: 0 };
        assert!(!v.settled(10 + SETTLED_MS));
        assert!(v.settled(11 + SETTLED_MS));
        cache.get_or_compute("q", v, false, || async { Ok(found(1)) }).await.unwrap();
        assert_eq!(cache.get_or_compute("q", v, false, || async { Ok(found(2)) }).await.unwrap().total, 2);
        assert_eq!(cache.len(), 0);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_computation() {
        let cache = Arc::new(Cache::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let v = Version::default();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, runs) = (cache.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_compute("q", v, true, || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(found(3))
                    })
                    .await
                    .map(|f| f.total)
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), 3);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_computation_is_not_kept() {
        let cache = Cache::default();
        let v = Version::default();
        let failed = cache.get_or_compute("q", v, true, || async { Err(crate::Error::invalid("q", "no")) }).await;
        assert!(failed.is_err());
        assert_eq!(cache.get_or_compute("q", v, true, || async { Ok(found(4)) }).await.unwrap().total, 4);
    }

    #[test]
    fn kept_rows_pack_and_unpack_exactly() {
        let hex = crate::util::new_id();
        let rows = vec![
            (hex.clone(), Value::from(3)),
            ("imported-7".to_owned(), Value::from(2)),
            ("ABCDEF0123456789ABCDEF0123456789".to_owned(), Value::from(1)),
        ];
        let o = Ordered::pack(rows.clone());
        assert!(matches!(o.ids[0], PackedId::Hex(_)) && matches!(o.ids[2], PackedId::Other(_)));
        assert_eq!(o.rows(0, 10), rows);
        assert_eq!(o.rows(1, 1), rows[1..2]);
        assert_eq!(o.after("imported-7", &Value::from(2)), Some(2));
        assert_eq!(o.after("imported-7", &Value::from(5)), None, "a key from another sort");
        assert_eq!(o.after("nobody", &Value::from(2)), None);
        let texts = Ordered::pack(vec![("a".into(), Value::from("ann")), ("b".into(), Value::from("bo"))]);
        assert_eq!(texts.rows(0, 5), [("a".to_owned(), Value::from("ann")), ("b".to_owned(), Value::from("bo"))]);
    }

    #[tokio::test]
    async fn the_cache_stays_within_its_bounds() {
        let cache = Cache::default();
        let v = Version::default();
        for i in 0..(MAX_ENTRIES + 10) {
            cache.get_or_compute(&format!("q{i}"), v, true, || async { Ok(found(1)) }).await.unwrap();
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        let big = || async { Ok(Found { total: 1, ordered: Some(Ordered::pack(vec![(String::new(), Value::from(1)); MAX_IDS / 2 + 1])) }) };
        cache.get_or_compute("big1", v, true, big).await.unwrap();
        cache.get_or_compute("big2", v, true, big).await.unwrap();
        let slots = cache.slots.lock().unwrap();
        assert!(!slots.contains_key("big1") && slots.contains_key("big2"), "the older big result made room");
    }
}
