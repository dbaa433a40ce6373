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
}

impl<T> PerWorkspace<T> {
    pub fn new(keep_for: std::time::Duration, max: usize) -> Self {
        PerWorkspace { kept: Default::default(), keep_for, max }
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
        let v = std::sync::Arc::new(load().await?);
        let mut kept = self.lock();
        if kept.len() >= self.max {
            kept.clear();
        }
        kept.insert(workspace_id.to_owned(), (std::time::Instant::now(), v.clone()));
        Ok(v)
    }

    pub fn forget(&self, workspace_id: &str) {
        self.lock().remove(workspace_id);
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

    #[test]
    fn times_round_trip() {
        let ms = 1_700_000_000_123;
        assert_eq!(parse_rfc3339("at", &rfc3339(ms)).ok(), Some(ms));
        assert!(parse_rfc3339("at", "yesterday").is_err());
    }
}
