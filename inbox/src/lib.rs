//! The team side of Parley: the REST API under `/api/v1` and the agent socket.
//!
//! - [`extract`]: the `Actor` extractor (bearer token, API key or session cookie).
//! - [`auth`]: `/auth/login`, `/auth/logout`, `/auth/me`.
//! - [`workspace`]: `/workspace`, `/teammates`, `/api-keys`.
//! - [`conversations`]: the inbox: conversations, threads, replies, notes,
//!   assignment, participants, archive, deletes.
//! - [`people`]: people, their timelines, events, search, quick add, companies.
//! - [`segments`]: saved filters.
//! - [`outbound`]: mass sends, message logs, check-in counts, follow-ups,
//!   previews, templates, the SMS set-up, a message to one person.
//! - [`inbound`]: `/inbound/email`, emailed replies back into their chat.
//! - [`teams`]: `/teams`, the teams conversations are routed to.
//! - [`transfer`]: people in and out as CSV.
//! - [`uploads`]: `/uploads`, files to attach to messages, and their
//!   download links `/files/{id}/{name}`.
//! - [`webhooks`]: `/webhooks`, subscriptions and their delivery logs.
//! - [`ws`]: `/api/v1/ws`, the teammates' realtime socket.

use axum::Router;
use axum::routing::{delete, get, patch, post};
use parley_engine::Engine;

pub mod auth;
pub mod conversations;
pub mod extract;
pub mod inbound;
pub mod outbound;
pub mod people;
pub mod segments;
pub mod teams;
pub mod transfer;
pub mod uploads;
pub mod webhooks;
pub mod workspace;
pub mod ws;

/// The team API's routes, mounted under `/api/v1`.
pub fn router(engine: Engine) -> Router {
    let api = Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/me", get(auth::me))
        .route("/workspace", get(workspace::get).patch(workspace::update))
        .route("/teammates", get(workspace::list_teammates).post(workspace::create_teammate))
        .route("/teammates/{id}", patch(workspace::update_teammate))
        .route("/api-keys", get(workspace::list_api_keys).post(workspace::create_api_key))
        .route("/conversations", get(conversations::list))
        .route("/conversations/{id}", get(conversations::get).patch(conversations::update).delete(conversations::delete))
        .route("/conversations/{id}/messages", get(conversations::messages).post(conversations::reply))
        .route("/conversations/{id}/participants", post(conversations::put_participant))
        .route("/conversations/{id}/participants/{teammate_id}", delete(conversations::remove_participant))
        .route("/conversations/{id}/archive", post(conversations::archive))
        .route("/conversations/{id}/unarchive", post(conversations::unarchive))
        .route("/messages/{id}", delete(conversations::delete_message))
        .route("/people", post(people::upsert))
        .route("/people/search", post(people::search))
        .route("/people/import", post(transfer::import))
        .route("/people/export", get(transfer::export))
        .route("/people/{id}", get(people::get).patch(people::patch).delete(people::delete))
        .route("/people/{id}/timeline", get(people::timeline))
        .route("/people/{id}/messages", post(outbound::person_message))
        .route("/outbound", get(outbound::list).post(outbound::create))
        .route("/outbound/preview", post(outbound::preview))
        .route("/outbound/{id}", get(outbound::get))
        .route("/outbound/{id}/deliveries", get(outbound::deliveries))
        .route("/outbound/{id}/follow-up", post(outbound::follow_up))
        .route("/outbound/{id}/archive", post(outbound::archive))
        .route("/outbound/{id}/unarchive", post(outbound::unarchive))
        .route("/templates", get(outbound::templates).post(outbound::create_template))
        .route("/templates/{id}", get(outbound::template).put(outbound::update_template).delete(outbound::delete_template))
        .route("/sms", get(outbound::get_sms).put(outbound::put_sms))
        .route("/test-message", post(outbound::test_message))
        .route("/events", post(people::track))
        .route("/search", get(people::quick_add))
        .route("/companies", get(people::companies))
        .route("/companies/{id}", get(people::company))
        .route("/segments", get(segments::list).post(segments::create))
        .route("/segments/{id}", get(segments::get).patch(segments::update).delete(segments::delete))
        .route("/segments/{id}/people", get(segments::people))
        // Replies carry quoted threads and attachments: the handler reads up
        // to its own, larger limit.
        .route("/inbound/email", post(inbound::email))
        // Files up to 10 MiB: read to the handler's own limit too.
        .route("/uploads", post(uploads::create))
        .route("/uploads/{id}", delete(uploads::delete))
        .route("/teams", get(teams::list).post(teams::create))
        .route("/teams/{id}", get(teams::get).patch(teams::update).delete(teams::delete))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{id}", get(webhooks::get).patch(webhooks::update).delete(webhooks::delete))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/ws", get(ws::upgrade));
    // Downloads are outside /api/v1: the link itself is the permission.
    Router::new().nest("/api/v1", api).route("/files/{id}/{name}", get(uploads::download)).with_state(engine)
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        auth::login, auth::logout, auth::me,
        workspace::get, workspace::update, workspace::list_teammates, workspace::create_teammate, workspace::create_api_key, workspace::list_api_keys, workspace::update_teammate,
        conversations::list, conversations::get, conversations::update, conversations::delete,
        conversations::messages, conversations::reply, conversations::put_participant, conversations::remove_participant,
        conversations::archive, conversations::unarchive, conversations::delete_message,
        people::upsert, people::get, people::patch, people::delete, people::timeline, people::track, people::search,
        people::quick_add, people::companies, people::company,
        segments::list, segments::create, segments::get, segments::update, segments::delete, segments::people,
        transfer::import, transfer::export,
        inbound::email,
        uploads::create, uploads::delete, uploads::download,
        outbound::create, outbound::list, outbound::get, outbound::deliveries, outbound::follow_up, outbound::archive,
        outbound::unarchive, outbound::preview, outbound::templates, outbound::create_template, outbound::template,
        outbound::update_template, outbound::delete_template, outbound::get_sms, outbound::put_sms, outbound::test_message, outbound::person_message,
        teams::list, teams::create, teams::get, teams::update, teams::delete,
        webhooks::list, webhooks::create, webhooks::get, webhooks::update, webhooks::delete, webhooks::deliveries,
    ),
    components(schemas(parley_engine::error::ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}
