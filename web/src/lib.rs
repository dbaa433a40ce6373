//! The `parley` binary's library: configuration, router assembly and the
//! embedded web app. `main.rs` is a thin CLI over it.
//!
//! - [`config`]: defaults → `parley.toml` → environment.
//! - [`assets`]: the team web app (`/`, `/app/*`) and the demo site (`/demo`),
//!   plain JS and CSS written here, embedded in the binary.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, `/api/openapi.json`, request metrics.
//!
//! [`build`] connects storage and returns an [`App`]; [`App::run_until_stopped`]
//! serves a bound listener until a shutdown future resolves, so tests can bind
//! port 0 and stop servers at will.

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use parley_engine::{Db, Engine, workspace};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub mod assets;
pub mod config;
pub mod ops;

pub use config::Config;

/// Request bodies above this are refused with 413 before parsing.
const BODY_LIMIT: usize = 256 * 1024;

pub struct App {
    pub engine: Engine,
    router: Router,
}

/// Connects storage (applying migrations), bootstraps a first workspace if
/// there are no teammates, and assembles the routes. `public_url` is the base
/// for links when the config has none.
pub async fn build(config: &Config, public_url: String) -> anyhow::Result<App> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| anyhow::anyhow!("creating data dir {}: {e}", config.data_dir.display()))?;
    }
    let db = Db::connect(&config.database_url()).await?;
    let read_ahead = db.prewarm();
    match workspace::bootstrap(&db, config.admin_email.as_deref(), config.admin_password.as_deref()).await? {
        workspace::Bootstrap::AlreadySetUp => {}
        workspace::Bootstrap::Created { workspace, email, generated_password } => {
            tracing::info!(workspace = %workspace.name, app_id = %workspace.app_id, admin = %email, "created the first workspace");
            if let Some(pw) = generated_password {
                // Shown once, on the console of the person who started Parley.
                println!(
                    "\nParley: created workspace \"Default\" with admin {email}\n        password: {pw}\n        (shown once; set PARLEY_ADMIN_PASSWORD to choose it)\n"
                );
            }
        }
    }
    let engine = Engine::start(db, public_url, config.meili(), config.mailer()?, config.data_dir.join("uploads")).await?;
    parley_automations::start(&engine, config.email_fallback_delay).await?;
    tokio::spawn(warm(engine.clone(), read_ahead));
    let router = routes(engine.clone());
    Ok(App { engine, router })
}

/// Once the database file is read ahead, the first People page of each
/// workspace is computed, so the first teammate to open it after a start
/// does not wait for every person to be counted. `parley_warm_seconds`
/// says when that is over.
async fn warm(engine: Engine, read_ahead: impl Future<Output = ()>) {
    let started = std::time::Instant::now();
    // The gauge needs the recorder, which is otherwise installed by the
    // first request.
    ops::prometheus();
    read_ahead.await;
    match parley_engine::search::warm(&engine.db, engine.people_index.as_ref()).await {
        Ok(n) => {
            let secs = started.elapsed().as_secs_f64();
            metrics::gauge!("parley_warm_seconds").set(secs);
            tracing::info!(workspaces = n, secs, "first People pages computed");
        }
        Err(e) => tracing::warn!(error = %e, "computing the first People pages"),
    }
}

fn routes(engine: Engine) -> Router {
    Router::new()
        .merge(parley_widget::router(engine.clone()))
        .merge(parley_inbox::router(engine.clone()))
        .merge(parley_automations::router(engine.clone()))
        .merge(assets::router(engine.clone()))
        .merge(ops::router(engine))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(ops::track_requests))
        .layer(TraceLayer::new_for_http())
}

impl App {
    /// Serves until `shutdown` resolves, then closes storage.
    pub async fn run_until_stopped(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let db = self.engine.db.clone();
        let sockets = self.engine.shutdown.clone();
        let shutdown = async move {
            shutdown.await;
            // Upgraded sockets outlive graceful HTTP shutdown: close them.
            sockets.cancel();
        };
        // Chat frames are small and latency-bound: send them at once instead
        // of letting Nagle's algorithm hold them back for an ACK.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "setting TCP_NODELAY");
            }
        });
        axum::serve(listener, self.router).with_graceful_shutdown(shutdown).await?;
        db.close().await;
        Ok(())
    }
}
