//! People search benchmark.
//!
//! Seeds a database with `parley seed` (unless `--data-dir` already holds
//! one; people, their events, and conversations with the team for one in
//! five), starts `parley serve` on it, logs in, then measures:
//!
//! 1. each kind of search once from one client, then the same again;
//! 2. `POST /api/v1/people/search` from `--clients` concurrent clients for
//!    `--seconds`, cycling through typical queries (name prefix, country,
//!    plan and recency, tag, event count, radius around a city, text plus
//!    filter): requests/s and p50/p90/p99/max per kind and overall;
//! 3. a segment's live count: `GET /api/v1/segments/{id}` 20 times;
//! 4. event ingest: `POST /api/v1/events` with 1000 events a request from 4
//!    clients for `--ingest-seconds`: events/s.
//!
//! With `--pages` it measures the web app instead, in headless Chromium: each
//! section opened from another (the first time, then again; the inbox's
//! filters clicked in turn and a conversation opened), and a full load
//! of the app, each timed until the last API response the page asked for has
//! arrived (see `page_loads`). With `PAGES_DETAIL` set in the environment it
//! also lists each full load's resources with their start and end.
//!
//! With `--url` and `--token` it measures a running server instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use parley_engine::people::seed::{CITIES, FIRST_NAMES, TAGS};
use parley_tests::bench::{EMAIL, PASSWORD, Server, log_in, wait_ready};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "People search benchmark for Parley: search latency, segment counts, event ingest")]
struct Args {
    /// The parley binary to seed and start (build it with --release).
    #[arg(long, default_value = "target/release/parley")]
    parley: PathBuf,
    /// People to seed into a new database.
    #[arg(long, default_value_t = 100_000)]
    people: u64,
    #[arg(long, default_value_t = 5)]
    events_per_person: u32,
    /// Conversations to seed among the people, for the inbox's pages
    /// (default: one for every fifth person).
    #[arg(long)]
    conversations: Option<u64>,
    /// A data dir to use: seeded on first use, reused (not seeded again) after.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Run on PostgreSQL instead of SQLite in the data dir.
    #[arg(long)]
    database_url: Option<String>,
    /// Measure a running server instead (with --token).
    #[arg(long, requires = "token")]
    url: Option<String>,
    /// A session token or API key for --url.
    #[arg(long)]
    token: Option<String>,
    #[arg(long, default_value_t = 20)]
    clients: usize,
    /// How long the search mix runs.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Only these query kinds (comma-separated); default all.
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    #[arg(long, default_value_t = 5)]
    ingest_seconds: u64,
    /// Measure event ingest alone.
    #[arg(long)]
    ingest_only: bool,
    /// Measure the web app's pages in headless Chromium instead.
    #[arg(long)]
    pages: bool,
    #[arg(long, default_value_t = 18_490)]
    port: u16,
}

fn parley(args: &Args, dir: &Path) -> Command {
    let mut cmd = Command::new(&args.parley);
    cmd.env("PARLEY_DATA_DIR", dir).env("PARLEY_LOG", "warn");
    match &args.database_url {
        Some(url) => cmd.env("DATABASE_URL", url),
        None => cmd.env_remove("DATABASE_URL"),
    };
    cmd
}

/// Bytes of the SQLite files in `dir`.
fn db_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("parley.db"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Seeds (when new) and starts a server; returns it with its base URL.
async fn start(args: &Args, http: &reqwest::Client) -> anyhow::Result<(Server, String)> {
    let (dir, temp_dir) = match &args.data_dir {
        Some(d) => (d.clone(), None),
        None => {
            let d = std::env::temp_dir().join(format!("parley-searchbench-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            (d.clone(), Some(d))
        }
    };
    let seeded_before = args.database_url.is_none() && dir.join("parley.db").exists();
    if seeded_before {
        println!("reusing the database in {}", dir.display());
    } else {
        let started = Instant::now();
        // The admin first, so that the seed assigns them conversations too.
        let status = parley(args, &dir)
            .args(["admin", "create", "--email", EMAIL, "--name", "Admin", "--password", PASSWORD])
            .stdout(Stdio::null())
            .status()
            .with_context(|| format!("running {} admin create", args.parley.display()))?;
        if !status.success() {
            bail!("creating the admin failed: {status}");
        }
        let status = parley(args, &dir)
            .args(["seed", "--people", &args.people.to_string(), "--events-per-person", &args.events_per_person.to_string()])
            .args(["--conversations", &args.conversations.unwrap_or(args.people / 5).to_string()])
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .with_context(|| format!("running {} seed", args.parley.display()))?;
        if !status.success() {
            bail!("seeding failed: {status}");
        }
        println!("seed: {} people in {:.1} s", args.people, started.elapsed().as_secs_f64());
    }
    if args.database_url.is_none() {
        println!("database size: {:.1} MiB", db_size(&dir) as f64 / (1024.0 * 1024.0));
    }
    let child = parley(args, &dir)
        .arg("serve")
        .env("PARLEY_BIND", format!("127.0.0.1:{}", args.port))
        .env("PARLEY_ADMIN_EMAIL", EMAIL)
        .env("PARLEY_ADMIN_PASSWORD", PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", args.parley.display()))?;
    let server = Server { child, temp_dir };
    let base = format!("http://127.0.0.1:{}", args.port);
    wait_ready(http, &base).await?;
    Ok((server, base))
}

/// A typical search, by kind; `n` varies the parameters.
fn query(kind: &str, n: usize) -> Value {
    let prefix = |n: usize| FIRST_NAMES[n % FIRST_NAMES.len()].chars().take(3).collect::<String>().to_lowercase();
    let (_, country, _, lat, lon) = CITIES[n % CITIES.len()];
    let by_country = json!({"field": "country", "op": "eq", "value": country});
    match kind {
        "text" => json!({"q": prefix(n)}),
        "country" => json!({"filter": by_country}),
        "plan_recent" => json!({"filter": {"and": [
            {"field": "attributes.plan", "op": "eq", "value": "pro"},
            {"field": "last_seen_at", "op": "within_days", "value": 30},
        ]}}),
        "tag" => json!({"filter": {"field": "tags", "op": "contains", "value": TAGS[n % TAGS.len()]}}),
        "event" => json!({"filter": {"event": "purchased", "min_count": 2, "within_days": 30}}),
        "radius" => json!({"filter": {"field": "location", "op": "within_radius", "value": {"lat": lat, "lon": lon, "km": 25}}}),
        _ => json!({"q": prefix(n), "filter": by_country}),
    }
}

const KINDS: [&str; 7] = ["text", "country", "plan_recent", "tag", "event", "radius", "text_filter"];

/// Latencies of one kind of request, and how many failed.
#[derive(Default, Clone)]
struct Sample {
    ok: Vec<Duration>,
    failed: u64,
}

impl Sample {
    fn at(sorted: &[Duration], q: f64) -> f64 {
        let rank = ((sorted.len() as f64) * q).ceil() as usize;
        sorted.get(rank.saturating_sub(1)).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    }

    fn row(&self, name: &str, secs: f64) {
        let mut v = self.ok.clone();
        v.sort_unstable();
        println!(
            "{name:<14} {:>8} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7}",
            v.len(),
            v.len() as f64 / secs,
            Self::at(&v, 0.50),
            Self::at(&v, 0.90),
            Self::at(&v, 0.99),
            v.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
            self.failed
        );
    }
}

async fn timed(req: reqwest::RequestBuilder) -> (Duration, anyhow::Result<Value>) {
    let started = Instant::now();
    let res = async {
        let res = req.send().await?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{status}: {body}");
        }
        Ok(body)
    }
    .await;
    (started.elapsed(), res)
}

/// Each kind once from one client on an idle server: the first search
/// computes its result, the same search again is answered from what the
/// server kept (see `engine::search::cache`).
async fn first_searches(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<()> {
    println!("\nfirst search of each kind, one client (computed, then the same again):");
    println!("{:<14} {:>9} {:>12} {:>10}", "kind", "total", "first ms", "again ms");
    let url = format!("{base}/api/v1/people/search");
    // Where a kind has several parameters, ones the mix below does not start with.
    for kind in KINDS {
        let q = query(kind, 1_000_003);
        let (first, res) = timed(http.post(&url).bearer_auth(token).json(&q)).await;
        let total = res?["total"].clone();
        let (again, res) = timed(http.post(&url).bearer_auth(token).json(&q)).await;
        res?;
        println!("{kind:<14} {total:>9} {:>12.1} {:>10.1}", first.as_secs_f64() * 1e3, again.as_secs_f64() * 1e3);
    }
    Ok(())
}

async fn search_mix(http: &reqwest::Client, base: &str, token: &str, args: &Args) -> anyhow::Result<()> {
    let kinds: Vec<&'static str> =
        if args.kinds.is_empty() { KINDS.to_vec() } else { KINDS.iter().copied().filter(|k| args.kinds.iter().any(|a| a == k)).collect() };
    if kinds.is_empty() {
        bail!("--kinds names none of {KINDS:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..args.clients {
        let (http, url, token, kinds) = (http.clone(), format!("{base}/api/v1/people/search"), token.to_owned(), kinds.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = vec![Sample::default(); kinds.len()];
            let mut n = client;
            let mut first_error = None;
            while Instant::now() < deadline {
                let k = n % kinds.len();
                let (took, res) = timed(http.post(&url).bearer_auth(&token).json(&query(kinds[k], n / kinds.len()))).await;
                match res {
                    Ok(_) => samples[k].ok.push(took),
                    Err(e) => {
                        samples[k].failed += 1;
                        first_error.get_or_insert(format!("{}: {e}", kinds[k]));
                    }
                }
                n += 1;
            }
            (samples, first_error)
        }));
    }
    let mut per_kind = vec![Sample::default(); kinds.len()];
    for t in tasks {
        let (samples, err) = t.await?;
        if let Some(e) = err {
            eprintln!("a request failed: {e:.300}");
        }
        for (all, s) in per_kind.iter_mut().zip(samples) {
            all.ok.extend(s.ok);
            all.failed += s.failed;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!("\npeople search: {} clients for {secs:.1} s", args.clients);
    println!(
        "{:<14} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "kind", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
    );
    let mut overall = Sample::default();
    for (k, s) in kinds.iter().zip(&per_kind) {
        s.row(k, secs);
        overall.ok.extend(&s.ok);
        overall.failed += s.failed;
    }
    overall.row("overall", secs);
    Ok(())
}

async fn segment_counts(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<()> {
    let filter = query("plan_recent", 0)["filter"].clone();
    let name = format!("searchbench {}", std::process::id());
    let (_, created) =
        timed(http.post(format!("{base}/api/v1/segments")).bearer_auth(token).json(&json!({"name": name, "filter": filter}))).await;
    let created = created?;
    let id = created["id"].as_str().context("segment id")?;
    let mut s = Sample::default();
    let mut count = Value::Null;
    for _ in 0..20 {
        let (took, res) = timed(http.get(format!("{base}/api/v1/segments/{id}")).bearer_auth(token)).await;
        match res {
            Ok(v) => {
                count = v["count"].clone();
                s.ok.push(took);
            }
            Err(_) => s.failed += 1,
        }
    }
    let _ = http.delete(format!("{base}/api/v1/segments/{id}")).bearer_auth(token).send().await;
    s.ok.sort_unstable();
    println!(
        "\nsegment count (GET /api/v1/segments/{{id}}, count {count}): n={} p50={:.2} ms p99={:.2} ms errors={}",
        s.ok.len(),
        Sample::at(&s.ok, 0.50),
        Sample::at(&s.ok, 0.99),
        s.failed
    );
    Ok(())
}

async fn ingest(http: &reqwest::Client, base: &str, token: &str, args: &Args) -> anyhow::Result<()> {
    const CLIENTS: usize = 4;
    const BATCH: usize = 1000;
    let names = ["page.view", "signed_in", "purchased", "invited_teammate"];
    let people = args.people.max(1);
    let accepted = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.ingest_seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (http, url, token, accepted) = (http.clone(), format!("{base}/api/v1/events"), token.to_owned(), accepted.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = Sample::default();
            let mut k = client as u64 * 7919;
            while Instant::now() < deadline {
                // Seeded people are usr_0 … usr_{people-1}.
                let batch: Vec<Value> = (0..BATCH)
                    .map(|i| {
                        k = (k + 104_729) % people;
                        json!({"person": {"external_id": format!("usr_{k}")}, "name": names[i % names.len()], "data": {"bench": true}})
                    })
                    .collect();
                let (took, res) = timed(http.post(&url).bearer_auth(&token).json(&batch)).await;
                match res {
                    Ok(v) => {
                        accepted.fetch_add(v["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
                        s.ok.push(took);
                    }
                    Err(e) => {
                        s.failed += 1;
                        eprintln!("an ingest request failed: {e:.300}");
                    }
                }
            }
            s
        }));
    }
    let mut all = Sample::default();
    for t in tasks {
        let s = t.await?;
        all.ok.extend(s.ok);
        all.failed += s.failed;
    }
    let secs = started.elapsed().as_secs_f64();
    let n = accepted.load(Ordering::Relaxed);
    all.ok.sort_unstable();
    println!(
        "\nevent ingest ({CLIENTS} clients, {BATCH} events a request): {n} events in {secs:.1} s = {:.0} events/s accepted; request p50={:.1} ms p99={:.1} ms errors={}",
        n as f64 / secs,
        Sample::at(&all.ok, 0.50),
        Sample::at(&all.ok, 0.99),
        all.failed
    );
    // Accepted events may still be folding into the timeline; a search on
    // what people did answers once every one of them counts (on a name
    // nobody has, so the search itself costs nothing).
    let filter = json!({"filter": {"event": "searchbench.none", "min_count": 1}, "limit": 1});
    let (took, res) = timed(http.post(format!("{base}/api/v1/people/search")).bearer_auth(token).json(&filter)).await;
    res.context("the search after ingest")?;
    let all_secs = started.elapsed().as_secs_f64();
    println!(
        "every accepted event searchable {:.1} s after the last was accepted: {n} events in {all_secs:.1} s = {:.0} events/s",
        took.as_secs_f64(),
        n as f64 / all_secs
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let (_server, base, token) = match (&args.url, &args.token) {
        (Some(url), Some(token)) => (None, url.trim_end_matches('/').to_owned(), token.clone()),
        _ => {
            let (server, base) = start(&args, &http).await?;
            let token = log_in(&http, &base, EMAIL, PASSWORD).await?.token;
            (Some(server), base, token)
        }
    };
    if args.pages {
        // As a teammate would find it some time after a start: the file read
        // ahead and the first People page computed.
        let started = Instant::now();
        let secs = warmed(&http, &base).await?;
        println!("warm-up after the start: {secs:.1} s (waited {:.1} s for it)", started.elapsed().as_secs_f64());
        page_loads(&http, &base, &token).await?;
    } else if !args.ingest_only {
        first_searches(&http, &base, &token).await?;
        search_mix(&http, &base, &token, &args).await?;
        segment_counts(&http, &base, &token).await?;
    }
    if args.ingest_seconds > 0 && !args.pages {
        ingest(&http, &base, &token, &args).await?;
    }
    println!("\ncommand: {}", std::env::args().collect::<Vec<_>>().join(" "));
    Ok(())
}

/// Waits for the server's warm-up after its start (`parley_warm_seconds` in
/// its metrics) and answers how long that took.
async fn warmed(http: &reqwest::Client, base: &str) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let text = http.get(format!("{base}/metrics")).send().await?.text().await?;
        let secs = text.lines().find_map(|l| l.strip_prefix("parley_warm_seconds ")).and_then(|v| v.trim().parse::<f64>().ok());
        if let Some(secs) = secs {
            return Ok(secs);
        }
        if Instant::now() > deadline {
            bail!("the server did not finish warming up within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Installed once in the page: counts the app's requests in flight and the
/// time of the last start or finish, so that a measurement knows when the
/// page has stopped asking. The app calls the global `fetch` each time.
const TRACK_REQUESTS: &str = r#"
if (!window.__pageBench) {
  const b = (window.__pageBench = { inflight: 0, last: performance.now() });
  performance.setResourceTimingBufferSize(100000);
  const real = window.fetch.bind(window);
  window.fetch = (...args) => {
    b.inflight += 1;
    b.last = performance.now();
    return real(...args).finally(() => {
      b.inflight -= 1;
      b.last = performance.now();
    });
  };
}
"#;

/// Opens `arguments[0]` (a hash route) from the page on screen, or clicks the
/// element `arguments[1]` names, and answers, once nothing has been in flight
/// for 300 ms, the time from then to the end of the last API response the
/// page received, and how many it asked.
const OPEN_AND_TIME: &str = r#"
const [hash, click, done] = arguments;
const b = window.__pageBench;
const t0 = performance.now();
if (click) document.querySelector(click).click();
else location.hash = hash;
const tick = () => {
  const now = performance.now();
  if (b.inflight === 0 && now - Math.max(b.last, t0) > 300) {
    const api = performance.getEntriesByType('resource').filter((e) => e.startTime >= t0 && e.name.includes('/api/v1/'));
    const end = Math.max(t0, ...api.map((e) => e.responseEnd));
    done({ ms: end - t0, requests: api.length, slowest: api.sort((x, y) => y.duration - x.duration).map((e) => e.name.replace(location.origin, ''))[0] || '' });
  } else setTimeout(tick, 10);
};
setTimeout(tick, 10);
"#;

/// After a full navigation: waits until no new resource has arrived for a
/// second, then answers the end of the last one from the start of navigation
/// (the page, its modules, styles and API requests).
const FULL_LOAD_TIME: &str = r#"
const done = arguments[0];
let seen = -1, quietSince = performance.now();
const tick = () => {
  const all = performance.getEntriesByType('resource');
  if (all.length !== seen) { seen = all.length; quietSince = performance.now(); }
  if (performance.now() - quietSince > 1000) {
    const nav = performance.getEntriesByType('navigation')[0];
    const spans = all.map((e) => [e.name.replace(location.origin, ''), Math.round(e.startTime), Math.round(e.responseEnd)]);
    done({ ms: Math.max(nav ? nav.responseEnd : 0, ...all.map((e) => e.responseEnd)), requests: all.length, page: nav ? nav.responseEnd : 0, spans });
  } else setTimeout(tick, 20);
};
tick();
"#;

/// How a page is reached from the one on screen.
enum Open {
    /// A route of the app (after `#`).
    Hash(String),
    /// A click on the element this CSS selector finds.
    Click(String),
}

/// Each page of the web app as a user reaches it: opened from the page
/// before (in this order, twice: the first time, then again), and the app
/// loaded anew: on the inbox with an empty cache and again, then on People.
async fn page_loads(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<()> {
    // Not the People page's own search: the page must be the first to ask it.
    let found: Value = http
        .post(format!("{base}/api/v1/people/search"))
        .bearer_auth(token)
        .json(&json!({"filter": {"field": "email", "op": "exists"}, "limit": 1}))
        .send()
        .await?
        .json()
        .await?;
    let person = found["items"][0]["id"].as_str().context("a person to open (the database has no people)")?.to_owned();
    let profile = format!("/people/{person}");
    // The inbox's filters, clicked in turn and back to where they started,
    // and one conversation opened (the newest closed one: its person's
    // sidebar and thread are read as for any other).
    let newest: Value =
        http.get(format!("{base}/api/v1/conversations?status=closed&limit=1")).bearer_auth(token).send().await?.json().await?;
    let conversation = newest["items"][0]["id"].as_str().map(|id| format!("/c/{id}"));
    let filter = |testid: &str| Open::Click(format!("[data-testid={testid}]"));
    let mut pages: Vec<(&str, Open)> = vec![
        ("Inbox", Open::Hash("/".into())),
        ("Inbox: closed", filter("status-filter-closed")),
        ("…: mine", filter("assignee-filter-mine")),
        ("…: unassigned", filter("assignee-filter-none")),
        ("…: open", filter("status-filter-open")),
        ("…: all", filter("assignee-filter-all")),
    ];
    if let Some(c) = conversation {
        pages.push(("Conversation", Open::Hash(c)));
    }
    let sections = [
        ("People", "/people"),
        ("Profile", profile.as_str()),
        ("Outbound", "/outbound"),
        ("New message", "/outbound/new"),
        ("Automations", "/automations"),
        ("New automation", "/automations/new"),
    ];
    pages.extend(sections.map(|(name, path)| (name, Open::Hash(path.into()))));
    let tabs = ["general", "team", "hours", "channels", "security", "webhooks", "install"];
    pages.extend(tabs.map(|t| (t, Open::Hash(format!("/settings/{t}")))));

    let driver = parley_tests::browser::Driver::start().await.context("--pages needs Chromium and chromedriver")?;
    let c = driver.browser(1280, 800).await;
    // A page of the same origin that is not the app, so that the app's files
    // are not in the browser's cache before the first load.
    c.goto(&format!("{base}/readyz")).await?;
    c.execute("localStorage.setItem('parley_agent_token', arguments[0])", vec![json!(token)]).await?;

    let full_load = |hash: &str, n: u32| {
        let c = c.clone();
        let url = format!("{base}/?load={n}#{hash}");
        async move {
            c.goto(&url).await?;
            let v = c.execute_async(FULL_LOAD_TIME, vec![]).await?;
            c.execute(TRACK_REQUESTS, vec![]).await?;
            anyhow::Ok(v)
        }
    };
    // The browser's cache is empty for the first load; the later ones
    // revalidate what it holds. The sections are opened between them, so
    // that their first opening is the first time the server is asked.
    let mut loads = vec![("Inbox, first visit", full_load("/", 0).await?)];
    let mut rounds: Vec<Vec<Value>> = Vec::new();
    for _ in 0..2 {
        let mut round = Vec::new();
        for (_, open) in &pages {
            let args = match open {
                Open::Hash(path) => vec![json!(format!("#{path}")), Value::Null],
                Open::Click(selector) => vec![Value::Null, json!(selector)],
            };
            round.push(c.execute_async(OPEN_AND_TIME, args).await?);
        }
        rounds.push(round);
    }
    for (n, (name, hash)) in [("Inbox, again", "/"), ("People", "/people"), ("Profile", profile.as_str())].into_iter().enumerate() {
        loads.push((name, full_load(hash, n as u32 + 1).await?));
    }
    let _ = c.close().await;

    println!("\nweb app pages in headless Chromium (1280x800): until the last API response a page asked for");
    println!("{:<16} {:>9} {:>9} {:>9}  slowest request", "page", "requests", "first ms", "again ms");
    for (i, (name, _)) in pages.iter().enumerate() {
        let (first, again) = (&rounds[0][i], &rounds[1][i]);
        println!(
            "{name:<16} {:>9} {:>9.1} {:>9.1}  {}",
            first["requests"],
            first["ms"].as_f64().unwrap_or(f64::NAN),
            again["ms"].as_f64().unwrap_or(f64::NAN),
            first["slowest"].as_str().unwrap_or_default()
        );
    }
    for (name, v) in loads {
        println!("full load of the app, {name}: {:.1} ms, {} resources", v["ms"].as_f64().unwrap_or(f64::NAN), v["requests"]);
        if std::env::var_os("PAGES_DETAIL").is_some() {
            println!("  page {:.1} ms; resources (start, end ms): {}", v["page"].as_f64().unwrap_or(0.0), v["spans"]);
        }
    }
    Ok(())
}
