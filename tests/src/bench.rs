//! What the benchmark binaries share: the server they start and stop.

use std::path::PathBuf;
use std::process::Child;

/// The admin every benchmark's server starts with.
pub const EMAIL: &str = "bench@example.test";
pub const PASSWORD: &str = "bench-password";

/// Waits up to a minute for the server at `base` (`http://host:port`) to be ready.
pub async fn wait_ready(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        if http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("the server did not become ready")
}

/// A signed-in teammate of the benchmark's server.
pub struct Session {
    pub token: String,
    pub app_id: String,
    pub teammate_id: String,
}

/// Signs in to the server at `base` (`http://host:port`).
pub async fn log_in(http: &reqwest::Client, base: &str, email: &str, password: &str) -> anyhow::Result<Session> {
    let login: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await?
        .json()
        .await?;
    let field =
        |k: &str, v: &serde_json::Value| v.as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("logging in: no {k} in {login}"));
    Ok(Session {
        token: field("token", &login["token"])?,
        app_id: field("app id", &login["workspace"]["app_id"])?,
        teammate_id: field("teammate id", &login["teammate"]["id"])?,
    })
}

/// A `parley serve` the benchmark started: killed, and its data dir
/// removed if the benchmark made it, when dropped.
pub struct Server {
    pub child: Child,
    /// Removed on exit when the benchmark made it.
    pub temp_dir: Option<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self.temp_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
