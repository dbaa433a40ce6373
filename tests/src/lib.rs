//! Test support for Parley's end-to-end suite and load generator.
//!
//! - [`TestApp`]: a real server on port 0 over a fresh database (a SQLite file
//!   in a temp dir, or a new PostgreSQL database), with a method per endpoint.
//! - [`Ws`]: a real WebSocket client (tokio-tungstenite) speaking the frames.
//! - [`Backend`]: which storage a test runs on; PostgreSQL tests skip with a
//!   notice on a laptop without it and fail under `CI=true`.
//! - [`browser`]: headless Chromium through chromedriver (fantoccini).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod bench;
pub mod browser;
pub mod outside;

/// The bootstrap admin's address for a server keeping its files in
/// `data_dir`: one per test server (and the same after a restart), because
/// every server mails into one shared SMTP sink and a test counting the
/// admin's mail must not count another test's.
pub fn admin_email(data_dir: &std::path::Path) -> String {
    let dir = data_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!("admin-{}@example.test", dir.trim_start_matches("parley-test-"))
}
pub const ADMIN_PASSWORD: &str = "correct horse battery";

/// Whether missing services are failures (CI) or skips (a laptop).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports a missing service: a skip with a notice locally, a failure in CI.
pub fn missing(what: &str) {
    if in_ci() {
        panic!("{what} is not available, and CI=true requires every test to run");
    }
    // Straight to stderr: the test harness captures eprintln!, and a skip
    // must be visible.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what} is not available on this machine (CI=true makes this a failure)");
}

#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// A database URL on the shared PostgreSQL server.
    Postgres(String),
}

/// The PostgreSQL server tests use: `PARLEY_TEST_PG` or the local default.
fn pg_admin_url() -> String {
    std::env::var("PARLEY_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

impl Backend {
    /// A fresh, empty PostgreSQL database, or `None` (after a notice) when
    /// there is no server.
    pub async fn postgres() -> Option<Backend> {
        use sqlx::Connection;
        let admin = pg_admin_url();
        let mut conn = match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => {
                missing(&format!("PostgreSQL at {admin} ({e})"));
                return None;
            }
        };
        let name = format!("parley_t_{}", uuid::Uuid::now_v7().simple());
        let create = format!("CREATE DATABASE {name}");
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(create)).execute(&mut conn).await {
            panic!("creating test database {name}: {e}");
        }
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin);
        Some(Backend::Postgres(format!("{base}/{name}")))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Backend::Postgres(_))
    }
}

/// Runs a test body on SQLite and on PostgreSQL, as two tests.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_sqlite() {
                    super::$name($crate::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_postgres() {
                    if let Some(b) = $crate::Backend::postgres().await {
                        super::$name(b).await;
                    }
                }
            }
        )*
    };
}

/// A running Parley server.
pub struct TestApp {
    pub addr: SocketAddr,
    pub engine: parley_engine::Engine,
    pub http: reqwest::Client,
    /// The bootstrap admin's token.
    pub token: String,
    pub app_id: String,
    pub workspace_id: String,
    pub admin_id: String,
    /// The bootstrap admin's address ([`admin_email`]).
    pub admin_email: String,
    pub backend: Backend,
    pub data_dir: PathBuf,
    /// How long a missed chat message waits before it is emailed (kept
    /// across restarts).
    pub email_fallback_delay: Duration,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

/// An HTTP answer: status and JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok(self) -> anyhow::Result<Value> {
        if (200..300).contains(&self.status) { Ok(self.body) } else { Err(anyhow!("expected success, got {} {}", self.status, self.body)) }
    }
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or("")
    }
}

/// A file as a browser downloads it.
#[derive(Debug)]
pub struct Download {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Download {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        let dir = std::env::temp_dir().join(format!("parley-test-{}", uuid::Uuid::now_v7().simple()));
        Self::spawn_in(backend, dir).await
    }

    /// Starts a server on `backend`, keeping files in `data_dir` (reused across restarts).
    pub async fn spawn_in(backend: Backend, data_dir: PathBuf) -> TestApp {
        Self::spawn_at(backend, data_dir, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a server listening on `bind` (to come back on a stopped server's address).
    pub async fn spawn_at(backend: Backend, data_dir: PathBuf, bind: SocketAddr) -> TestApp {
        Self::try_spawn(backend, data_dir, bind, Duration::from_secs(600)).await.expect("starting the test server")
    }

    /// Starts a server that emails missed chat messages after `delay`
    /// instead of the default 10 minutes.
    pub async fn spawn_with_fallback_delay(backend: Backend, delay: Duration) -> TestApp {
        let dir = std::env::temp_dir().join(format!("parley-test-{}", uuid::Uuid::now_v7().simple()));
        Self::try_spawn(backend, dir, SocketAddr::from(([127, 0, 0, 1], 0)), delay).await.expect("starting the test server")
    }

    async fn try_spawn(backend: Backend, data_dir: PathBuf, bind: SocketAddr, email_fallback_delay: Duration) -> anyhow::Result<TestApp> {
        // The servers' own logs, when a failure needs them: PARLEY_TEST_LOG=debug.
        if let Ok(filter) = std::env::var("PARLEY_TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).with_test_writer().try_init();
        }
        let config = parley::Config {
            bind,
            data_dir: data_dir.clone(),
            database_url: match &backend {
                Backend::Sqlite => None,
                Backend::Postgres(url) => Some(url.clone()),
            },
            admin_email: Some(admin_email(&data_dir)),
            admin_password: Some(ADMIN_PASSWORD.into()),
            // Email goes to the real SMTP server on loopback.
            smtp_url: Some(outside::Smtp::shared().url()),
            email_fallback_delay,
            ..parley::Config::default()
        };
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let app = parley::build(&config, format!("http://{addr}")).await?;
        let engine = app.engine.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = app.run_until_stopped(listener, shutdown).await {
                eprintln!("server stopped with an error: {e}");
            }
        });
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        let mut t = TestApp {
            addr,
            engine,
            http,
            token: String::new(),
            app_id: String::new(),
            workspace_id: String::new(),
            admin_id: String::new(),
            admin_email: admin_email(&data_dir),
            backend,
            data_dir,
            email_fallback_delay,
            stop: Some(stop),
            done: Some(done),
        };
        let login = t.login(&t.admin_email, ADMIN_PASSWORD).await.ok()?;
        t.token = login["token"].as_str().context("token")?.to_owned();
        t.app_id = login["workspace"]["app_id"].as_str().context("app_id")?.to_owned();
        t.workspace_id = login["workspace"]["id"].as_str().context("workspace id")?.to_owned();
        t.admin_id = login["teammate"]["id"].as_str().context("teammate id")?.to_owned();
        Ok(t)
    }

    /// Stops the server (as a graceful shutdown would) and waits for it.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), done).await;
        }
    }

    /// Stops this server and starts a new one on the same storage.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let bind = SocketAddr::from(([127, 0, 0, 1], 0));
        TestApp::try_spawn(self.backend.clone(), self.data_dir.clone(), bind, self.email_fallback_delay)
            .await
            .expect("restarting the test server")
    }

    /// A second server process on the same database (PostgreSQL: another node).
    pub async fn another_node(&self) -> TestApp {
        TestApp::spawn_in(self.backend.clone(), self.data_dir.clone()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Any request; `token` as bearer, `body` as JSON text (sent verbatim).
    pub async fn request(&self, method: &str, path: &str, token: Option<&str>, body: Option<String>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a valid method");
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let res = req.send().await.expect("the server answers");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.request("GET", path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.request("POST", path, Some(token), Some(body.to_string())).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Answer {
        self.request("PATCH", path, Some(token), Some(body.to_string())).await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Answer {
        self.request("DELETE", path, Some(token), None).await
    }

    /// `POST /api/v1/uploads?name=…`: `bytes` as the raw body, `content_type` as its type.
    pub async fn upload(&self, token: &str, name: &str, content_type: &str, bytes: Vec<u8>) -> Answer {
        let res = self
            .http
            .post(self.url("/api/v1/uploads"))
            .query(&[("name", name)])
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .expect("the server answers");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
    }

    /// Sends only the head of a POST to `path` declaring a body of `length`
    /// bytes (as the admin) and returns the raw answer: a refusal on the
    /// declared length, without sending megabytes that would race the server
    /// closing the connection.
    pub async fn post_head_only(&self, path: &str, content_type: &str, length: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = TcpStream::connect(self.addr).await.expect("connecting");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {length}\r\nConnection: close\r\n\r\n",
            self.addr, self.token
        );
        tcp.write_all(head.as_bytes()).await.expect("sending the head");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// Downloads `path` with no credentials, as a visitor's browser does.
    pub async fn download(&self, path: &str) -> Download {
        let res = self.http.get(self.url(path)).send().await.expect("the server answers");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        Download { status, headers, bytes }
    }

    pub async fn login(&self, email: &str, password: &str) -> Answer {
        self.request("POST", "/api/v1/auth/login", None, Some(json!({"email": email, "password": password}).to_string())).await
    }

    /// Saves an automation as the admin (it must be accepted) and returns its id.
    pub async fn automation(&self, body: Value) -> String {
        let a = self.post("/api/v1/automations", &self.token, body).await;
        assert_eq!(a.status, 201, "saving an automation: {}", a.body);
        a.body["id"].as_str().expect("an automation id").to_owned()
    }

    /// Waits up to 10 s until automation `id` has logged at least `n` runs;
    /// returns its run log, newest first.
    pub async fn wait_runs(&self, id: &str, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.get(&format!("/api/v1/automations/{id}/runs"), &self.token).await.ok().expect("the run log");
            let items = r["items"].as_array().cloned().unwrap_or_default();
            if items.len() >= n {
                return items;
            }
            assert!(tokio::time::Instant::now() < deadline, "expected {n} runs of {id}, have {items:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a teammate in the admin's workspace and returns (id, token).
    pub async fn teammate(&self, name: &str, role: &str) -> (String, String) {
        let email = format!("{}-{}@example.test", name.to_lowercase().replace(' ', "."), uuid::Uuid::now_v7().simple());
        let t = self
            .post("/api/v1/teammates", &self.token, json!({"email": email, "name": name, "password": "password-123", "role": role}))
            .await
            .ok()
            .expect("creating a teammate");
        let login = self.login(&email, "password-123").await.ok().expect("logging in");
        (t["id"].as_str().unwrap_or_default().to_owned(), login["token"].as_str().unwrap_or_default().to_owned())
    }

    /// A second workspace with its own admin: returns (admin token, app id).
    pub async fn other_workspace(&self) -> (String, String) {
        let db = &self.engine.db;
        let ws = parley_engine::workspace::create(db, &format!("Other {}", uuid::Uuid::now_v7().simple())).await.expect("workspace");
        let email = format!("other-{}@example.test", uuid::Uuid::now_v7().simple());
        parley_engine::workspace::create_teammate(
            db,
            &ws.id,
            parley_engine::workspace::NewTeammate {
                email: &email,
                name: "Other Admin",
                password: "password-123",
                role: parley_engine::auth::Role::Admin,
            },
        )
        .await
        .expect("teammate");
        let login = self.login(&email, "password-123").await.ok().expect("login");
        (login["token"].as_str().unwrap_or_default().to_owned(), ws.app_id)
    }

    /// A new anonymous visitor session: (token, person id).
    pub async fn visitor(&self) -> (String, String) {
        self.visitor_with(json!({})).await
    }

    pub async fn visitor_with(&self, mut body: Value) -> (String, String) {
        body["app_id"] = self.app_id.clone().into();
        let s = self.request("POST", "/widget/v1/session", None, Some(body.to_string())).await.ok().expect("widget session");
        (s["token"].as_str().unwrap_or_default().to_owned(), s["person_id"].as_str().unwrap_or_default().to_owned())
    }

    pub async fn widget_ws(&self, token: &str) -> Ws {
        Ws::connect(&self.ws_url(&format!("/widget/v1/ws?token={token}"))).await
    }

    pub async fn agent_ws(&self, token: &str) -> Ws {
        Ws::connect(&self.ws_url(&format!("/api/v1/ws?token={token}"))).await
    }

    /// Messages of a conversation as the admin sees them (oldest first).
    pub async fn thread(&self, conversation_id: &str) -> Vec<Value> {
        let page =
            self.get(&format!("/api/v1/conversations/{conversation_id}/messages?limit=200"), &self.token).await.ok().expect("thread");
        page["items"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A WebSocket client speaking Parley's frames.
pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `hello` frame received on connect.
    pub hello: Value,
}

const WAIT: Duration = Duration::from_secs(10);

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
        let mut ws = Ws { stream, hello: Value::Null };
        let hello = ws.next().await.expect("a first frame");
        ws.hello = hello;
        ws
    }

    /// Connects without expecting a hello (e.g. to see an auth close).
    pub async fn connect_raw(url: &str) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        tokio_tungstenite::connect_async(url).await.expect("websocket connects").0
    }

    pub async fn send(&mut self, frame: Value) {
        self.stream.send(WsMessage::Text(frame.to_string().into())).await.expect("sending a frame");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(WsMessage::Text(text.to_owned().into())).await.expect("sending a frame");
    }

    /// The next JSON frame, or an error on timeout or close.
    pub async fn next(&mut self) -> anyhow::Result<Value> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.stream.next()).await.map_err(|_| anyhow!("no frame within {WAIT:?}"))?;
            match msg {
                Some(Ok(WsMessage::Text(t))) => return Ok(serde_json::from_str(t.as_str())?),
                Some(Ok(WsMessage::Close(c))) => bail!("closed: {c:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => bail!("socket error: {e}"),
                None => bail!("socket ended"),
            }
        }
    }

    /// The next frame of `kind`, skipping others (typing, presence…).
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let f = self.next().await.unwrap_or_else(|e| panic!("waiting for a {kind} frame: {e}"));
            if f["type"] == kind {
                return f;
            }
        }
    }

    /// The next frame of `kind` for which `pred` holds, skipping others.
    pub async fn next_where(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let f = self.next_of(kind).await;
            if pred(&f) {
                return f;
            }
        }
    }

    /// The next `message.created` not written by this side (`author.type` ≠ `own`).
    pub async fn next_message_not_from(&mut self, own: &str) -> Value {
        self.next_where("message.created", |f| f["message"]["author"]["type"] != own).await
    }

    /// [`Ws::next_message_not_from`], waiting up to `wait` in all (for work
    /// that is due later, such as a schedule's next minute).
    pub async fn next_message_not_from_within(&mut self, own: &str, wait: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = tokio::time::timeout(left, self.stream.next()).await.unwrap_or_else(|_| panic!("no message within {wait:?}"));
            let Some(Ok(WsMessage::Text(t))) = msg else {
                assert!(matches!(msg, Some(Ok(_))), "the socket ended: {msg:?}");
                continue;
            };
            let f: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
            if f["type"] == "message.created" && f["message"]["author"]["type"] != own {
                return f;
            }
        }
    }

    /// Asserts that no frame of `kind` arrives within `wait`.
    pub async fn expect_none_of(&mut self, kind: &str, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match tokio::time::timeout(left, self.stream.next()).await {
                Err(_) => return,
                Ok(Some(Ok(WsMessage::Text(t)))) => {
                    let f: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    assert_ne!(f["type"], kind, "unexpected frame {f}");
                }
                Ok(Some(Ok(_))) => {}
                Ok(_) => return,
            }
        }
    }

    /// Sends a chat message and waits for its ack; returns the stored message.
    pub async fn say(&mut self, echo_id: &str, body: &str) -> Value {
        self.send(json!({"type": "message.send", "echo_id": echo_id, "body": body})).await;
        let ack = self.next_of("ack").await;
        assert_eq!(ack["echo_id"], echo_id, "ack for the right message");
        ack["message"].clone()
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}
