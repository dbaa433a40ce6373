//! `parley`: serve, migrate, create admins, print an example config, move
//! people in and out in bulk (import, export, seed), and rebuild the search
//! index.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use parley::Config;
use parley_engine::auth::Role;
use parley_engine::people::seed::{self, SeedOptions};
use parley_engine::people::transfer::{self, Mapping};
use parley_engine::workspace::Workspace;
use parley_engine::{Db, search, workspace};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "parley", version, about = "Parley: live chat, automations and messaging in one binary")]
struct Cli {
    /// A parley.toml to read (default: ./parley.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrations are applied at start-up).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage teammates.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Import records from a file.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Export records to a file.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Add synthetic people, companies and events (for benchmarks and demos).
    Seed {
        /// How many people to add.
        #[arg(long)]
        people: u64,
        /// Workspace name; created when it does not exist (default: the first workspace).
        #[arg(long)]
        workspace: Option<String>,
        /// Events per person on average (each gets 0 to twice this).
        #[arg(long, default_value_t = 5)]
        events_per_person: u32,
        /// The random seed: the same seed makes the same people.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// About this many of the new people get a conversation with the team
        /// (nine seeded agents join the workspace's teammates to answer them).
        #[arg(long, default_value_t = 0)]
        conversations: u64,
    },
    /// People search on Meilisearch.
    Search {
        #[command(subcommand)]
        command: SearchCommand,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// People from CSV with a header row. Each row is found by external_id,
    /// else email, and created or updated; bad rows are listed and skipped.
    People {
        file: PathBuf,
        /// Workspace name (default: the first workspace).
        #[arg(long)]
        workspace: Option<String>,
        /// Where a column goes, as header=target: a person field (email,
        /// name, …), attributes.<name>, or skip. Repeatable.
        #[arg(long = "map", value_name = "HEADER=TARGET")]
        map: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ExportCommand {
    /// People as CSV, oldest first, one column per attribute.
    People {
        /// Workspace name (default: the first workspace).
        #[arg(long)]
        workspace: Option<String>,
        /// A filter in the filter language, as JSON.
        #[arg(long)]
        filter: Option<String>,
        /// Free text, as in search.
        #[arg(long)]
        q: Option<String>,
        /// Where to write (default: standard output).
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SearchCommand {
    /// Rebuild the Meilisearch index of people from the database, then swap
    /// it in (servers keep searching the old one until then).
    Reindex,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a teammate (an admin unless --role agent).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        password: String,
        /// Workspace name; created when it does not exist (default: the first workspace).
        #[arg(long)]
        workspace: Option<String>,
        #[arg(long, default_value = "admin")]
        role: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print a commented example parley.toml.
    Example,
}

/// Logs go to stdout, except for commands whose stdout is their output.
fn init_tracing(json: bool, to_stderr: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PARLEY_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter);
    match (json, to_stderr) {
        (true, true) => fmt.json().with_writer(std::io::stderr).init(),
        (true, false) => fmt.json().init(),
        (false, true) => fmt.with_writer(std::io::stderr).init(),
        (false, false) => fmt.init(),
    }
}

/// The database the config names, created in the data dir when it is SQLite.
async fn connect(config: &Config) -> anyhow::Result<Db> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)?;
    }
    Db::connect(&config.database_url()).await
}

/// The named workspace, else the first. With `create`, a missing one is
/// made (named, or "Default" as the first start would).
async fn find_workspace(db: &Db, name: Option<&str>, create: bool) -> anyhow::Result<Workspace> {
    Ok(match (name, create) {
        (Some(n), _) => match workspace::by_name(db, n).await? {
            Some(ws) => ws,
            None if create => workspace::create(db, n).await?,
            None => anyhow::bail!("there is no workspace named {n:?}"),
        },
        (None, _) => match workspace::first(db).await {
            Ok(ws) => ws,
            Err(_) if create => workspace::create(db, "Default").await?,
            Err(_) => anyhow::bail!("there is no workspace yet: start `parley serve` once, or `parley admin create`"),
        },
    })
}

/// An engine error with the field it names, for the terminal.
fn cli_error(e: parley_engine::Error) -> anyhow::Error {
    match e.field() {
        Some(f) if !f.is_empty() => anyhow::anyhow!("{f}: {e}"),
        _ => anyhow::anyhow!("{e}"),
    }
}

fn progress_bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

async fn import_people(config: &Config, file: PathBuf, ws_name: Option<String>, map: Vec<String>) -> anyhow::Result<()> {
    let f = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mapping = Mapping::from_pairs(&map).map_err(cli_error)?;
    let db = connect(config).await?;
    let ws = find_workspace(&db, ws_name.as_deref(), false).await?;
    let bar = progress_bar(size, "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}");
    let started = Instant::now();
    let report = transfer::import_csv(&db, &ws.id, std::io::BufReader::new(f), &mapping, |p| {
        bar.set_position(p.bytes);
        bar.set_message(format!("{} rows", p.rows));
    })
    .await;
    bar.finish_and_clear();
    let report = report.map_err(cli_error)?;
    println!(
        "imported {} into workspace {:?} in {:.1} s: {} created, {} updated, {} failed",
        file.display(),
        ws.name,
        started.elapsed().as_secs_f64(),
        report.created,
        report.updated,
        report.failed
    );
    for e in &report.errors {
        match &e.field {
            Some(f) => println!("line {}: {} ({f})", e.line, e.reason),
            None => println!("line {}: {}", e.line, e.reason),
        }
    }
    let unlisted = report.failed.saturating_sub(report.errors.iter().filter(|e| e.line > 1).count() as u64);
    if unlisted > 0 {
        println!("… and {unlisted} more bad rows");
    }
    db.close().await;
    Ok(())
}

async fn export_people(
    config: &Config,
    ws_name: Option<String>,
    filter: Option<String>,
    q: Option<String>,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    let filter = filter.map(|f| serde_json::from_str::<serde_json::Value>(&f)).transpose().context("--filter is not JSON")?;
    let db = connect(config).await?;
    let ws = find_workspace(&db, ws_name.as_deref(), false).await?;
    let out: Box<dyn Write> = match &output {
        Some(p) => Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(std::io::stdout()),
    };
    let index = search::SqlIndex::shared(db.clone());
    let n = transfer::export_csv(&db, index.as_ref(), &ws.id, filter.as_ref(), q.as_deref(), std::io::BufWriter::new(out))
        .await
        .map_err(cli_error)?;
    if let Some(p) = &output {
        eprintln!("exported {n} people to {}", p.display());
    }
    db.close().await;
    Ok(())
}

async fn seed_people(config: &Config, ws_name: Option<String>, opts: SeedOptions) -> anyhow::Result<()> {
    let db = connect(config).await?;
    let ws = find_workspace(&db, ws_name.as_deref(), true).await?;
    let bar = progress_bar(opts.people, "{bar:40} {pos}/{len} people {per_sec} eta {eta}");
    let started = Instant::now();
    let report = seed::seed(&db, &ws.id, opts, |n| bar.set_position(n)).await;
    bar.finish_and_clear();
    let report = report.map_err(cli_error)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {} people, {} new companies, {} events and {} conversations ({} messages) into workspace {:?} in {secs:.1} s ({:.0} people/s)",
        report.people,
        report.companies,
        report.events,
        report.conversations,
        report.messages,
        ws.name,
        report.people as f64 / secs.max(1e-9)
    );
    db.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Config { command: ConfigCommand::Example } = cli.command {
        print!("{}", parley::config::EXAMPLE);
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref(), |k| std::env::var(k).ok())?;
    init_tracing(config.log_json, matches!(cli.command, Command::Import { .. } | Command::Export { .. } | Command::Seed { .. }));
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            connect(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin { command: AdminCommand::Create { email, name, password, workspace: ws_name, role } } => {
            let db = connect(&config).await?;
            let role = Role::parse("role", &role).map_err(|e| anyhow::anyhow!("{e}"))?;
            let ws = find_workspace(&db, ws_name.as_deref(), true).await?;
            let t =
                workspace::create_teammate(&db, &ws.id, workspace::NewTeammate { email: &email, name: &name, password: &password, role })
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e}", e.field().unwrap_or("error")))?;
            println!("created {} {} ({}) in workspace {:?} (app id {})", t.role, t.name, t.email, ws.name, ws.app_id);
            Ok(())
        }
        Command::Config { .. } => Ok(()),
        Command::Import { command: ImportCommand::People { file, workspace, map } } => import_people(&config, file, workspace, map).await,
        Command::Export { command: ExportCommand::People { workspace, filter, q, output } } => {
            export_people(&config, workspace, filter, q, output).await
        }
        Command::Seed { people, workspace, events_per_person, seed, conversations } => {
            seed_people(&config, workspace, SeedOptions { people, events_per_person, seed, conversations }).await
        }
        Command::Search { command: SearchCommand::Reindex } => reindex(config).await,
    }
}

async fn reindex(config: Config) -> anyhow::Result<()> {
    use parley_engine::search::{SqlIndex, meili};
    let target = config.meili().ok_or_else(|| anyhow::anyhow!("Meilisearch is not configured: set MEILI_URL or [search] meili_url"))?;
    let db = connect(&config).await?;
    let index = meili::MeiliIndex::new(&target, meili::INDEX_UID, SqlIndex::shared(db.clone()))?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} people ({eta} left)")?.progress_chars("=> "),
    );
    bar.set_message(format!("indexing into {}", meili::INDEX_UID));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let done = meili::reindex(&db, &index, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await;
    bar.finish_and_clear();
    db.close().await;
    println!("reindexed {} people into {}", done?, meili::INDEX_UID);
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.bind).await?;
    let bound = listener.local_addr()?;
    let app = parley::build(&config, config.public_url(bound)).await?;
    tracing::info!(%bound, "Parley is listening: inbox at http://{bound}/ and a demo site at http://{bound}/demo");
    app.run_until_stopped(listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
