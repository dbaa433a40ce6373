//! The visitor side of Parley: what a website's visitors talk to.
//!
//! - [`script`]: `GET /widget.js`, the embeddable widget (plain JS and CSS
//!   written here, shadow-DOM isolated) served from the binary.
//! - [`session`]: `POST /widget/v1/session` (anonymous or identified visitors,
//!   identity verification) and `GET /widget/v1/conversation` (history on load).
//! - [`ws`]: `GET /widget/v1/ws`, the visitor's realtime socket.
//! - [`link`]: `/c/{token}`, the chat opened from an outbound's email or
//!   text, and `POST /widget/v1/link`, its visitor session.
//! - [`page`]: the look of the few HTML pages served here.
//! - [`sms`]: what SMS providers post back: delivery status, and texts
//!   people send, into their conversation.
//! - [`unsubscribe`]: `/u/{token}`, the signed unsubscribe link in emails.
//!
//! All widget endpoints answer cross-origin requests: the widget runs on the
//! customer's site, not on Parley's origin.

use axum::Router;
use parley_engine::Engine;

pub mod link;
pub mod page;
pub mod script;
pub mod session;
pub mod sms;
pub mod unsubscribe;
pub mod ws;

/// The widget's routes.
pub fn router(engine: Engine) -> Router {
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([axum::http::header::CONTENT_TYPE, axum::http::header::AUTHORIZATION])
        .max_age(std::time::Duration::from_secs(3600));
    Router::new()
        .route("/widget/v1/session", axum::routing::post(session::create))
        .route("/widget/v1/conversation", axum::routing::get(session::conversation))
        .route("/widget/v1/ws", axum::routing::get(ws::upgrade))
        .route("/widget/v1/link", axum::routing::post(link::session))
        .layer(cors)
        .route("/widget.js", axum::routing::get(script::serve))
        .route("/c/{token}", axum::routing::get(link::open))
        .route("/sms/v1/status/{token}", axum::routing::post(sms::status))
        .route("/sms/v1/inbound/{token}", axum::routing::post(sms::inbound))
        .route("/u/{token}", axum::routing::get(unsubscribe::confirm).post(unsubscribe::unsubscribe))
        .with_state(engine)
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        session::create,
        session::conversation,
        script::serve,
        unsubscribe::confirm,
        unsubscribe::unsubscribe,
        link::session,
        link::open,
        sms::status,
        sms::inbound
    ),
    components(schemas(session::SessionBody, session::SessionAnswer, link::LinkBody, link::LinkAnswer))
)]
pub struct ApiDoc;
