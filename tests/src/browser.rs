//! Headless Chromium for browser tests: Debian's chromium driven through
//! chromedriver with fantoccini. Without them a test skips with a notice on a
//! laptop and fails under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process; killed on drop.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(9515)
}

impl Driver {
    /// Starts chromedriver, or returns `None` (after the skip notice) when
    /// Chromium is not installed.
    pub async fn start() -> Option<Driver> {
        let chromium = std::env::var("PARLEY_CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
        let driver = std::env::var("PARLEY_CHROMEDRIVER").unwrap_or_else(|_| CHROMEDRIVER.into());
        if !Path::new(&chromium).exists() || !Path::new(&driver).exists() {
            crate::missing(&format!(
                "Chromium ({chromium}) and chromedriver ({driver}); install: apt-get install -y chromium chromium-driver"
            ));
            return None;
        }
        let port = free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let d = Driver { child, port };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Some(d);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start on port {port}");
    }

    /// A new browser window (its own profile) of `width`×`height`.
    pub async fn browser(&self, width: u32, height: u32) -> Client {
        let chromium = std::env::var("PARLEY_CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
        let profile = std::env::temp_dir().join(format!("parley-chromium-{}", uuid::Uuid::now_v7().simple()));
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--autoplay-policy=no-user-gesture-required",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let Value::Object(caps) = caps else { unreachable!("a JSON object") };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a chromium session")
    }
}

/// Where screenshots go: `tests/artifacts/` (kept by CI as test artifacts).
pub fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

pub async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let png = client.screenshot().await.expect("a screenshot");
    let path = artifacts_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("writing the screenshot");
    path
}

/// Polls a JS expression until it is truthy; returns its value.
pub async fn wait_for(client: &Client, what: &str, expr: &str) -> Value {
    let script = format!("return ({expr});");
    for _ in 0..150 {
        if let Ok(v) = client.execute(&script, vec![]).await {
            let truthy = !matches!(&v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return v;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What the page told the user instead, if anything: an error it showed.
    let alerts = client
        .execute(
            "return Array.from(document.querySelectorAll('[role=alert]')).map(e => e.textContent.trim()).filter(t => t).join(' | ')",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    panic!("timed out waiting for {what}: {expr}\n  errors shown on the page: {alerts:?}");
}
