//! Parley's load generator.
//!
//! Starts a `parley serve` process on a fresh SQLite (or `--database-url`)
//! database, then:
//!
//! 1. opens `--idle` widget sockets that stay idle, and reports the server's
//!    resident memory per connection (from /proc, before and after);
//! 2. connects `--agents` agent sockets and `--visitors` active widget sockets
//!    that send `--rate` messages per second in total for `--seconds`, and
//!    reports visitor → agent delivery latency (send to the first agent's
//!    `message.created`) and send → ack latency, as p50/p99/max;
//! 3. with `--greetings N`, saves a proactive greeting (a `page.view` rule that
//!    answers with `send_chat_as` the admin), then has N new visitors view the
//!    page one after another and reports page view → greeting latency (the
//!    greeting arriving on the visitor's own socket).
//!
//! Raise the open-files limit first (`ulimit -n 65536`): every socket is a file
//! descriptor on both ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
#[command(about = "Load generator for Parley: idle-socket memory and message latency")]
struct Args {
    /// The parley binary to start (build it with --release).
    #[arg(long, default_value = "target/release/parley")]
    parley: PathBuf,
    /// Idle widget sockets to hold open for the memory measurement.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Widget sockets that send messages.
    #[arg(long, default_value_t = 200)]
    visitors: usize,
    /// Agent sockets that receive every message.
    #[arg(long, default_value_t = 5)]
    agents: usize,
    /// Messages per second, in total across visitors.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// How long to send for.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// New visitors who view a page with a greeting rule, one after another
    /// (0: no greeting run).
    #[arg(long, default_value_t = 0)]
    greetings: usize,
    /// Run against PostgreSQL instead of a fresh SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, default_value_t = 18_480)]
    port: u16,
}

struct Server {
    child: Child,
    base: String,
    data_dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

impl Server {
    fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("VmRSS")?;
        Ok(line.split_whitespace().nth(1).context("VmRSS value")?.parse()?)
    }
}

fn start_server(args: &Args) -> anyhow::Result<Server> {
    let dir = std::env::temp_dir().join(format!("parley-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cmd = Command::new(&args.parley);
    cmd.arg("serve")
        .env("PARLEY_BIND", format!("127.0.0.1:{}", args.port))
        .env("PARLEY_DATA_DIR", &dir)
        .env("PARLEY_ADMIN_EMAIL", "load@example.test")
        .env("PARLEY_ADMIN_PASSWORD", "load-test-password")
        .env("PARLEY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(url) = &args.database_url {
        cmd.env("DATABASE_URL", url);
    }
    let child = cmd.spawn().with_context(|| format!("starting {}", args.parley.display()))?;
    Ok(Server { child, base: format!("127.0.0.1:{}", args.port), data_dir: dir })
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> anyhow::Result<Socket> {
    // Browsers send WebSocket frames without Nagle's delay; so do these clients.
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
    // Wait for the hello, so the server has finished setting the socket up.
    match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        Ok(Some(Ok(Message::Text(_)))) => Ok(ws),
        other => Err(anyhow!("no hello: {other:?}")),
    }
}

/// The parts of a frame the load generator reads; the rest is skipped
/// without being built, so the clients stay cheap next to the server.
#[derive(serde::Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    message: Option<FrameMessage<'a>>,
}

#[derive(serde::Deserialize)]
struct FrameMessage<'a> {
    #[serde(borrow)]
    body: std::borrow::Cow<'a, str>,
}

/// The send time (µs since the run began) in a body `t:<micros>:<id>`.
fn sent_micros(body: &str) -> Option<u64> {
    body.strip_prefix("t:")?.split(':').next()?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{name}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        v.len(),
        percentile(&v, 0.50).as_secs_f64() * 1e3,
        percentile(&v, 0.99).as_secs_f64() * 1e3,
        v.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = start_server(&args)?;
    let http = reqwest::Client::new();
    let base = server.base.clone();
    parley_tests::bench::wait_ready(&http, &format!("http://{base}")).await?;
    let parley_tests::bench::Session { token, app_id, teammate_id } =
        parley_tests::bench::log_in(&http, &format!("http://{base}"), "load@example.test", "load-test-password").await?;

    // 1. Idle sockets and memory. They stay open through the latency run: a
    // busy server also holds many idle sockets.
    let mut idle = Vec::with_capacity(args.idle);
    if args.idle > 0 {
        // Warm up allocator arenas and pools with a few connections first.
        let mut warm = Vec::new();
        for _ in 0..50 {
            let t = session(&http, &base, &app_id).await?;
            warm.push(connect(&format!("ws://{base}/widget/v1/ws?token={t}")).await?);
        }
        let tokens: Vec<String> = {
            let mut out = Vec::with_capacity(args.idle);
            let mut set = tokio::task::JoinSet::new();
            for i in 0..args.idle {
                let (h, b, a) = (http.clone(), base.clone(), app_id.clone());
                set.spawn(async move { session(&h, &b, &a).await });
                if set.len() >= 32 || i + 1 == args.idle {
                    while let Some(r) = set.join_next().await {
                        out.push(r??);
                    }
                }
            }
            out
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = server.rss_kib()?;
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for (i, t) in tokens.iter().enumerate() {
            let url = format!("ws://{base}/widget/v1/ws?token={t}");
            set.spawn(async move { connect(&url).await });
            if set.len() >= 64 || i + 1 == tokens.len() {
                while let Some(r) = set.join_next().await {
                    idle.push(r??);
                }
            }
        }
        let connect_time = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = server.rss_kib()?;
        let per = (after.saturating_sub(before)) as f64 * 1024.0 / idle.len() as f64;
        println!(
            "idle widget sockets: {} opened in {:.1} s; server RSS {} MiB -> {} MiB; {:.0} bytes ({:.1} KB) per connection",
            idle.len(),
            connect_time.as_secs_f64(),
            before / 1024,
            after / 1024,
            per,
            per / 1000.0
        );
        drop(warm);
    }

    if args.visitors > 0 && args.seconds > 0 {
        latency_run(&args, &base, &token, &http, &app_id).await?;
    }
    if args.greetings > 0 {
        greetings(&args, &base, &token, &teammate_id, &http, &app_id).await?;
    }
    println!("server RSS at the end: {} MiB", server.rss_kib()? / 1024);
    drop(idle);
    Ok(())
}

async fn session(http: &reqwest::Client, base: &str, app_id: &str) -> anyhow::Result<String> {
    let s: Value = http.post(format!("http://{base}/widget/v1/session")).json(&json!({"app_id": app_id})).send().await?.json().await?;
    Ok(s["token"].as_str().context("visitor token")?.to_owned())
}

/// 3. Page view → proactive greeting, measured on the visitor's socket.
async fn greetings(args: &Args, base: &str, token: &str, admin: &str, http: &reqwest::Client, app_id: &str) -> anyhow::Result<()> {
    let rule = json!({"name": "Pricing greeting", "trigger": "page.view", "params": {"url": "/pricing*"},
        "script": format!("send_chat_as(\"{admin}\", \"Hi {{{{default person.first_name \\\"there\\\"}}}}, questions about pricing?\");")});
    let saved = http.post(format!("http://{base}/api/v1/automations")).bearer_auth(token).json(&rule).send().await?;
    anyhow::ensure!(saved.status().is_success(), "saving the greeting: {}", saved.text().await?);
    let mut latencies = Vec::with_capacity(args.greetings);
    for _ in 0..args.greetings {
        let t = session(http, base, app_id).await?;
        let mut ws = connect(&format!("ws://{base}/widget/v1/ws?token={t}")).await?;
        let started = Instant::now();
        ws.send(Message::Text(json!({"type": "page.view", "url": "/pricing/teams", "title": "Pricing"}).to_string().into())).await?;
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(f) = serde_json::from_str::<Frame>(text.as_str()) else { continue };
                if f.kind == "message.created" {
                    return Some(started.elapsed());
                }
            }
            None
        })
        .await;
        match got {
            Ok(Some(d)) => latencies.push(d),
            _ => eprintln!("a greeting did not arrive within 10 s"),
        }
        let _ = ws.close(None).await;
    }
    println!("greetings: {} of {} visitors greeted", latencies.len(), args.greetings);
    report("page view -> greeting on the widget", latencies);
    Ok(())
}

/// 2. Latency under a steady message rate.
async fn latency_run(args: &Args, base: &str, token: &str, http: &reqwest::Client, app_id: &str) -> anyhow::Result<()> {
    let origin = Instant::now();
    let deliveries: Arc<Mutex<HashMap<String, Duration>>> = Arc::default();
    let mut agent_tasks = Vec::new();
    for _ in 0..args.agents {
        let mut ws = connect(&format!("ws://{base}/api/v1/ws?token={token}")).await?;
        let deliveries = deliveries.clone();
        agent_tasks.push(tokio::spawn(async move {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(f) = serde_json::from_str::<Frame>(text.as_str()) else { continue };
                if f.kind != "message.created" {
                    continue;
                }
                let now = origin.elapsed();
                let body: &str = f.message.as_ref().map(|m| m.body.as_ref()).unwrap_or("");
                if let Some(sent_us) = sent_micros(body) {
                    let latency = now.saturating_sub(Duration::from_micros(sent_us));
                    // The first agent to see it sets the delivery time.
                    deliveries.lock().await.entry(body.to_owned()).or_insert(latency);
                }
            }
        }));
    }
    let mut visitor_sockets = Vec::new();
    for _ in 0..args.visitors {
        let t = session(http, base, app_id).await?;
        visitor_sockets.push(connect(&format!("ws://{base}/widget/v1/ws?token={t}")).await?);
    }
    let per_visitor = Duration::from_secs_f64(args.visitors as f64 / args.rate as f64);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for (v, ws) in visitor_sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ws.split();
            let acks = tokio::spawn(async move {
                let mut out = Vec::new();
                while let Some(Ok(msg)) = rx.next().await {
                    let Message::Text(text) = msg else { continue };
                    let Ok(f) = serde_json::from_str::<Frame>(text.as_str()) else { continue };
                    if f.kind == "ack" {
                        if let Some(us) = f.message.as_ref().and_then(|m| sent_micros(&m.body)) {
                            out.push(origin.elapsed().saturating_sub(Duration::from_micros(us)));
                        }
                    } else if f.kind == "error" {
                        eprintln!("error frame: {}", text.as_str());
                    }
                }
                out
            });
            // Spread visitors over the interval so the rate is smooth.
            tokio::time::sleep(per_visitor.mul_f64(v as f64 / 200.0_f64.max(1.0)).min(per_visitor)).await;
            let mut tick = tokio::time::interval(per_visitor);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0u64;
            while Instant::now() < deadline {
                tick.tick().await;
                // The send time rides in the body; the suffix keeps bodies unique.
                let body = format!("t:{}:{v}-{n}", origin.elapsed().as_micros());
                let frame = json!({"type": "message.send", "echo_id": format!("{v}-{n}"), "body": body});
                if tx.send(Message::Text(frame.to_string().into())).await.is_err() {
                    break;
                }
                n += 1;
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            let _ = tx.close().await;
            (n, acks.await.unwrap_or_default())
        }));
    }
    let mut sent = 0;
    let mut ack_latencies = Vec::new();
    for t in tasks {
        let (n, acks) = t.await?;
        sent += n;
        ack_latencies.extend(acks);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let delivered: Vec<Duration> = deliveries.lock().await.values().copied().collect();
    println!(
        "sent {sent} messages in {} s ({:.0}/s) from {} visitors to {} agents; {} delivered, {} acked",
        args.seconds,
        sent as f64 / args.seconds as f64,
        args.visitors,
        args.agents,
        delivered.len(),
        ack_latencies.len()
    );
    report("visitor -> agent delivery", delivered);
    report("visitor send -> ack (durable)", ack_latencies);
    for t in agent_tasks {
        t.abort();
    }
    Ok(())
}
