//! `parley`: serve, migrate, create admins, print an example config, rebuild
//! the search index.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use parley::Config;
use parley_engine::auth::Role;
use parley_engine::{Db, workspace};

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
    /// People search on Meilisearch.
    Search {
        #[command(subcommand)]
        command: SearchCommand,
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

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PARLEY_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    if json {
        tracing_subscriber::fmt().with_env_filter(filter).json().init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Config { command: ConfigCommand::Example } = cli.command {
        print!("{}", parley::config::EXAMPLE);
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref(), |k| std::env::var(k).ok())?;
    init_tracing(config.log_json);
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            if config.database_url.is_none() {
                std::fs::create_dir_all(&config.data_dir)?;
            }
            Db::connect(&config.database_url()).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin { command: AdminCommand::Create { email, name, password, workspace: ws_name, role } } => {
            if config.database_url.is_none() {
                std::fs::create_dir_all(&config.data_dir)?;
            }
            let db = Db::connect(&config.database_url()).await?;
            let role = Role::parse("role", &role).map_err(|e| anyhow::anyhow!("{e}"))?;
            let ws = match ws_name {
                Some(n) => match workspace::by_name(&db, &n).await? {
                    Some(ws) => ws,
                    None => workspace::create(&db, &n).await?,
                },
                None => match workspace::first(&db).await {
                    Ok(ws) => ws,
                    Err(_) => workspace::create(&db, "Default").await?,
                },
            };
            let t =
                workspace::create_teammate(&db, &ws.id, workspace::NewTeammate { email: &email, name: &name, password: &password, role })
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e}", e.field().unwrap_or("error")))?;
            println!("created {} {} ({}) in workspace {:?} (app id {})", t.role, t.name, t.email, ws.name, ws.app_id);
            Ok(())
        }
        Command::Config { .. } => Ok(()),
        Command::Search { command: SearchCommand::Reindex } => reindex(config).await,
    }
}

async fn reindex(config: Config) -> anyhow::Result<()> {
    use parley_engine::search::{SqlIndex, meili};
    let target = config.meili().ok_or_else(|| anyhow::anyhow!("Meilisearch is not configured: set MEILI_URL or [search] meili_url"))?;
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)?;
    }
    let db = Db::connect(&config.database_url()).await?;
    let index = meili::MeiliIndex::new(&target, meili::INDEX_UID, SqlIndex::new(db.clone()))?;
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
