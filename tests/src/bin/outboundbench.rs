//! Outbound benchmark.
//!
//! Seeds a database with `parley seed` (people with addresses, companies,
//! places; no events), starts `parley serve` on it with email going to an
//! SMTP server inside this process, logs in, then measures:
//!
//! 1. a chat to everyone (`--people`, 100,000 by default): the `POST
//!    /api/v1/outbound` answer, and the time until every recipient's message
//!    is resolved, rendered, stored and queued to their stream (the outbound
//!    says `sent`);
//! 2. `--online` people (10,000) with a widget socket open: from the `POST`
//!    until each socket has the message, and until the last one has;
//! 3. a one-way email to those same people: emails per second into the
//!    local SMTP server.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures_util::StreamExt;
use parley_tests::bench::{EMAIL, PASSWORD, Server, Session, log_in, wait_ready};
use parley_tests::outside::Smtp;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "Outbound benchmark for Parley: a mass chat, delivery to online widgets, email throughput")]
struct Args {
    /// The parley binary to seed and start (build it with --release).
    #[arg(long, default_value = "target/release/parley")]
    parley: PathBuf,
    /// People seeded, and sent the first chat.
    #[arg(long, default_value_t = 100_000)]
    people: u64,
    /// People online with a widget socket, sent the second chat and the emails.
    #[arg(long, default_value_t = 10_000)]
    online: usize,
    /// A data dir: seeded on first use, reused after.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 18_491)]
    port: u16,
}

async fn start(args: &Args, http: &reqwest::Client, smtp: &Smtp) -> anyhow::Result<(Server, String)> {
    let (dir, temp_dir) = match &args.data_dir {
        Some(d) => (d.clone(), None),
        None => {
            let d = std::env::temp_dir().join(format!("parley-outboundbench-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            (d.clone(), Some(d))
        }
    };
    if dir.join("parley.db").exists() {
        println!("reusing the database in {}", dir.display());
    } else {
        let started = Instant::now();
        let status = Command::new(&args.parley)
            .env("PARLEY_DATA_DIR", &dir)
            .env("PARLEY_LOG", "warn")
            .env_remove("DATABASE_URL")
            .args(["seed", "--people", &args.people.to_string(), "--events-per-person", "0"])
            .status()
            .with_context(|| format!("running {} seed", args.parley.display()))?;
        if !status.success() {
            bail!("seeding failed: {status}");
        }
        println!("seed: {} people in {:.1} s", args.people, started.elapsed().as_secs_f64());
    }
    let child = Command::new(&args.parley)
        .arg("serve")
        .env("PARLEY_DATA_DIR", &dir)
        .env("PARLEY_LOG", std::env::var("PARLEY_LOG").unwrap_or_else(|_| "warn".into()))
        .env_remove("DATABASE_URL")
        .env("PARLEY_BIND", format!("127.0.0.1:{}", args.port))
        .env("PARLEY_ADMIN_EMAIL", EMAIL)
        .env("PARLEY_ADMIN_PASSWORD", PASSWORD)
        .env("PARLEY_SMTP_URL", smtp.url())
        // Missed-message emails would come long after the run.
        .env("PARLEY_EMAIL_FALLBACK_DELAY", "1h")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", args.parley.display()))?;
    let server = Server { child, temp_dir };
    let base = format!("127.0.0.1:{}", args.port);
    wait_ready(http, &format!("http://{base}")).await?;
    Ok((server, base))
}

/// Sends an outbound; returns its id and how long the answer took.
async fn send(http: &reqwest::Client, base: &str, token: &str, body: Value) -> anyhow::Result<(String, Duration)> {
    let started = Instant::now();
    let r = http.post(format!("http://{base}/api/v1/outbound")).bearer_auth(token).json(&body).send().await?;
    let took = started.elapsed();
    let status = r.status();
    let v: Value = r.json().await?;
    anyhow::ensure!(status.is_success(), "POST /outbound answered {status}: {v}");
    println!("  POST /outbound: {} recipients, answered in {:.0} ms", v["recipients"], took.as_secs_f64() * 1000.0);
    Ok((v["id"].as_str().context("outbound id")?.to_owned(), took))
}

/// Polls until the outbound is sent; prints its progress now and then.
async fn until_sent(http: &reqwest::Client, base: &str, token: &str, id: &str, started: Instant) -> anyhow::Result<Value> {
    let mut shown = Instant::now();
    loop {
        let o: Value = http.get(format!("http://{base}/api/v1/outbound/{id}")).bearer_auth(token).send().await?.json().await?;
        if o["status"] == "sent" {
            return Ok(o);
        }
        if shown.elapsed() > Duration::from_secs(2) {
            println!("  {:>5.1} s: {} of {} queued", started.elapsed().as_secs_f64(), o["counts"]["queued"], o["counts"]);
            shown = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn at(sorted: &[Duration], q: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * q).round() as usize).map_or(0.0, |d| d.as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // More connections than Parley's SMTP pool opens, so none waits.
    let smtp = &Smtp::start(parley_engine::mail::SMTP_CONNECTIONS * 2);
    let http = reqwest::Client::new();
    let (_server, base) = start(&args, &http, smtp).await?;
    let Session { token, app_id, .. } = log_in(&http, &format!("http://{base}"), EMAIL, PASSWORD).await?;

    // 1. A chat to everyone seeded.
    println!("1. chat to every seeded person");
    let everyone = json!({"or": [{"field": "email", "op": "exists"}, {"not": {"field": "email", "op": "exists"}}]});
    let started = Instant::now();
    let (id, _) = send(
        &http,
        &base,
        &token,
        json!({
            "kind": "chat", "title": "News", "body": "Hi {{default person.first_name \"there\"}}, we have news for {{person.company}}.",
            "channels": ["chat"], "audience": {"filter": everyone},
        }),
    )
    .await?;
    let o = until_sent(&http, &base, &token, &id, started).await?;
    let secs = started.elapsed().as_secs_f64();
    println!("  all sent in {secs:.1} s ({:.0} messages/s): {}", o["counts"]["sent"].as_f64().unwrap_or(0.0) / secs, o["counts"]);

    if args.online == 0 {
        return Ok(());
    }
    // 2. People online with their widget open.
    println!("2. chat to {} people online", args.online);
    let mut people = Vec::with_capacity(args.online);
    let sessions = futures_util::stream::iter((0..args.online).map(|i| {
        let (http, base, app_id) = (http.clone(), base.clone(), app_id.clone());
        async move {
            let s: Value = http
                .post(format!("http://{base}/widget/v1/session"))
                .json(&json!({"app_id": app_id, "email": format!("online-{i}@sink.test"), "name": format!("Online {i}")}))
                .send()
                .await?
                .json()
                .await?;
            anyhow::Ok((s["token"].as_str().context("token")?.to_owned(), s["person_id"].as_str().context("person")?.to_owned()))
        }
    }))
    .buffer_unordered(32)
    .collect::<Vec<_>>()
    .await;
    let mut sockets = Vec::with_capacity(args.online);
    for s in sessions {
        let (token, person) = s?;
        people.push(person);
        sockets.push(token);
    }
    let opened = Instant::now();
    let mut streams = Vec::with_capacity(args.online);
    let connected = futures_util::stream::iter(sockets.iter().map(|t| {
        let url = format!("ws://{base}/widget/v1/ws?token={t}");
        async move { tokio_tungstenite::connect_async_with_config(url, None, true).await.map(|(ws, _)| ws) }
    }))
    .buffer_unordered(64)
    .collect::<Vec<_>>()
    .await;
    for c in connected {
        streams.push(c?);
    }
    println!("  {} widget sockets open in {:.1} s", streams.len(), opened.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Those online, by their address (more than a request may list by id).
    let online = json!({"field": "email", "op": "contains", "value": "@sink.test"});
    let sent_at = Instant::now();
    let mut waiting = tokio::task::JoinSet::new();
    for mut ws in streams {
        waiting.spawn(async move {
            while let Some(Ok(frame)) = ws.next().await {
                if let tokio_tungstenite::tungstenite::Message::Text(t) = frame
                    && t.contains("\"message.created\"")
                {
                    return Some(sent_at.elapsed());
                }
            }
            None
        });
    }
    let (id, _) = send(
        &http,
        &base,
        &token,
        json!({
            "kind": "chat", "body": "Hello {{person.first_name}}, a quick one.", "channels": ["chat"], "audience": {"filter": online},
        }),
    )
    .await?;
    let mut got = Vec::with_capacity(args.online);
    let deadline = tokio::time::sleep(Duration::from_secs(120));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            r = waiting.join_next() => match r {
                Some(Ok(Some(d))) => got.push(d),
                Some(_) => {}
                None => break,
            },
        }
    }
    got.sort();
    println!(
        "  {} of {} sockets had it: p50 {:.2} s, p99 {:.2} s, last {:.2} s after the POST",
        got.len(),
        args.online,
        at(&got, 0.5),
        at(&got, 0.99),
        got.last().map_or(0.0, |d| d.as_secs_f64())
    );
    until_sent(&http, &base, &token, &id, sent_at).await?;
    waiting.abort_all();

    // 3. Email to the people online: throughput into the SMTP server.
    println!("3. one-way email to {} people", people.len());
    let before = smtp.count();
    let started = Instant::now();
    let (id, _) = send(&http, &base, &token, json!({
        "kind": "one_way", "title": "Your invoice, {{person.first_name}}", "body": "Hi {{person.first_name}},\n\nyour invoice is ready.",
        "channels": ["email"], "audience": {"filter": online},
    }))
    .await?;
    until_sent(&http, &base, &token, &id, started).await?;
    let secs = started.elapsed().as_secs_f64();
    let n = smtp.count() - before;
    println!("  {n} emails in {secs:.1} s: {:.0} emails/s", n as f64 / secs);
    Ok(())
}
