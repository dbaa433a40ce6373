//! Parley's automations: rules scripted in rhai and chatbot flows that react
//! to what happens in a workspace, and the jobs that carry work into later.
//!
//! This crate reaches the rest of Parley only through `parley_engine`: it
//! learns what happened from the engine's bus and acts through the same
//! engine calls the inbox makes.
//!
//! - [`trigger`]: trigger names and params (`message.received`, `event.<name>`,
//!   `page.view` with a URL glob…), and which happenings set them off.
//! - [`script`]: the rhai sandbox: compile on save, run to a list of
//!   [`script::Action`]s without doing anything, under strict limits.
//! - [`apply`]: carrying out actions through the engine, marked as caused by
//!   the automation so they set off no automation.
//! - [`deliver`]: a rule's emails and signed webhooks, tried again with
//!   growing pauses.
//! - [`fallback`]: emailing the chat messages a person missed, once, after a
//!   delay, several in a row in one email.
//! - [`flow`]: a chatbot flow's graph of steps, checked whole on save.
//! - [`bot`]: running flows, one live run per conversation, moved on by
//!   buttons, answers and waits, paused when a teammate writes.
//! - [`outbound`]: sending an outbound's deliveries by chat, email and SMS
//!   (routes failing over for high-quality SMS), with live progress.
//! - [`jobs`]: the apalis queue in the same database: flow waits and
//!   `conversation.unanswered` checks, each with an episode key.
//! - [`runner`]: the worker on the bus: matching rules, compiled-script cache,
//!   the per-conversation message rate limit, the run log.
//! - [`store`]: automations and runs in the database; failing rules are
//!   switched off with the reason.
//! - [`routes`]: `/api/v1/automations…` (CRUD, validate, dry-run test, runs).

use axum::Router;
use axum::routing::{get, post};
use parley_engine::Engine;

pub mod apply;
pub mod bot;
pub mod deliver;
pub mod fallback;
pub mod flow;
pub mod jobs;
pub mod outbound;
pub mod routes;
pub mod runner;
pub mod script;
pub mod store;
pub mod trigger;

pub use runner::{Automations, start};

/// The automations API, mounted under `/api/v1`.
pub fn router(engine: Engine) -> Router {
    let api = Router::new()
        .route("/automations", get(routes::list).post(routes::create))
        .route("/automations/validate", post(routes::validate))
        .route("/automations/{id}", get(routes::get).patch(routes::update).delete(routes::delete))
        .route("/automations/{id}/test", post(routes::test))
        .route("/automations/{id}/runs", get(routes::runs));
    Router::new().nest("/api/v1", api).with_state(engine)
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(routes::list, routes::create, routes::get, routes::update, routes::delete, routes::validate, routes::test, routes::runs,))]
pub struct ApiDoc;
