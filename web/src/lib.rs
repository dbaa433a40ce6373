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
    db.prewarm();
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
    let router = routes(engine.clone());
    Ok(App { engine, router })
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
