//! Small shared helpers: ids, secrets, clocks.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new opaque id: a UUIDv7 in hex, so ids sort by creation time, which keeps
/// cursor pagination stable and index inserts append-only.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// A random secret token with a readable prefix (`pst_`, `pak_`, `pvt_`), so a
/// leaked token is recognisable in logs and secret scanners.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Tokens are stored only as their SHA-256: a database leak does not leak sessions.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Milliseconds since the Unix epoch, the storage unit for every timestamp.
/// The next group for a group-commit writer: waits for one item, then takes
/// every other one already waiting, up to `max`. `None` once shutting down
/// or every sender is gone.
pub async fn next_group<T>(
    rx: &mut tokio::sync::mpsc::Receiver<T>,
    max: usize,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Option<Vec<T>> {
    let first = tokio::select! {
        _ = shutdown.cancelled() => return None,
        item = rx.recv() => item?,
    };
    let mut group = vec![first];
    while group.len() < max {
        match rx.try_recv() {
            Ok(item) => group.push(item),
            Err(_) => break,
        }
    }
    Some(group)
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 with milliseconds, the API's time format.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn parse_rfc3339(field: &str, value: &str) -> crate::Result<i64> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| crate::Error::invalid(field, "expected an RFC 3339 time such as 2026-01-31T09:00:00Z"))
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A small per-workspace value kept in memory for a short while, for what
/// every happening asks and that rarely changes (enabled webhooks, enabled
/// automations). A change made on this node is seen at once (the writer
/// calls [`PerWorkspace::forget`]); one made on another node within the
/// time kept.
pub struct PerWorkspace<T> {
    kept: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, std::sync::Arc<T>)>>,
    keep_for: std::time::Duration,
    /// Workspaces kept at most before it starts afresh.
    max: usize,
    /// Bumped by every `forget`: a read that began before one does not keep
    /// what it read, which may be older than the change.
    forgotten: std::sync::atomic::AtomicU64,
}

impl<T> PerWorkspace<T> {
    pub fn new(keep_for: std::time::Duration, max: usize) -> Self {
        PerWorkspace { kept: Default::default(), keep_for, max, forgotten: Default::default() }
    }

    /// The kept value, or the one `load` reads (then kept).
    pub async fn get_or_load<F, Fut>(&self, workspace_id: &str, load: F) -> crate::Result<std::sync::Arc<T>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = crate::Result<T>>,
    {
        let kept = self.lock().get(workspace_id).filter(|(at, _)| at.elapsed() < self.keep_for).map(|(_, v)| v.clone());
        if let Some(v) = kept {
            return Ok(v);
        }
        let before = self.forgotten.load(std::sync::atomic::Ordering::Acquire);
        let v = std::sync::Arc::new(load().await?);
        let mut kept = self.lock();
        // Checked under the lock `forget` takes, so none slips in between.
        if self.forgotten.load(std::sync::atomic::Ordering::Acquire) != before {
            return Ok(v);
        }
        if kept.len() >= self.max {
            kept.clear();
        }
        kept.insert(workspace_id.to_owned(), (std::time::Instant::now(), v.clone()));
        Ok(v)
    }

    pub fn forget(&self, workspace_id: &str) {
        let mut kept = self.lock();
        self.forgotten.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        kept.remove(workspace_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (std::time::Instant, std::sync::Arc<T>)>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation() {
        let a = new_id();
        let b = new_id();
        assert!(a < b, "{a} should sort before {b}");
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn tokens_are_random_and_hashed_stably() {
        let t = new_token("pst_");
        assert!(t.starts_with("pst_"));
        assert_ne!(t, new_token("pst_"));
        assert_eq!(hash_token(&t), hash_token(&t));
        assert_ne!(hash_token(&t), t);
    }

    /// A change made while a value is being read must not be hidden by that
    /// read finishing afterwards and keeping what it read (a rule saved while
    /// another event's run was reading the rules went unseen for a second).
    #[tokio::test]
    async fn a_value_read_before_it_was_forgotten_is_not_kept() {
        let kept: std::sync::Arc<PerWorkspace<u32>> = std::sync::Arc::new(PerWorkspace::new(std::time::Duration::from_secs(60), 10));
        let (reading, read) = tokio::sync::oneshot::channel::<()>();
        let (go_on, resume) = tokio::sync::oneshot::channel::<()>();
        let slow = {
            let kept = kept.clone();
            tokio::spawn(async move {
                kept.get_or_load("w", || async move {
                    let _ = reading.send(());
                    let _ = resume.await;
                    Ok(1)
                })
                .await
                .map(|v| *v)
            })
        };
        // The slow read has begun with the old value; then it changes.
        read.await.expect("the read started");
        kept.forget("w");
        go_on.send(()).expect("the read waits");
        assert_eq!(slow.await.expect("the read ended").ok(), Some(1), "its caller still gets what it read");
        let now = kept.get_or_load("w", || async { Ok(2) }).await.map(|v| *v).ok();
        assert_eq!(now, Some(2), "the next caller reads again");
    }

    #[test]
    fn times_round_trip() {
        let ms = 1_700_000_000_123;
        assert_eq!(parse_rfc3339("at", &rfc3339(ms)).ok(), Some(ms));
        assert!(parse_rfc3339("at", "yesterday").is_err());
    }
}
