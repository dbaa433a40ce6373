//! `/api/v1/outbound…`, `/templates…`, `/sms` and `POST /people/{id}/messages`:
//! mass sends and their message logs, check-in counts and follow-ups,
//! previews, saved templates, the SMS set-up, and a message to one person.

use axum::Json as JsonOut;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use parley_engine::bus::{Cause, Happening};
use parley_engine::chat::{self, Kind as MessageKind, Message, NewMessage, Page, Sender};
use parley_engine::http::Json;
use parley_engine::outbound::{
    self, Audience, Channel, Created, Delivery, DeliveryQuery, FollowUpInput, ListQuery, Outbound, OutboundInput, Template, TemplateInput,
};
use parley_engine::people::profile;
use parley_engine::sms::{self, SmsSettings};
use parley_engine::{Engine, Error, Result, snippets, workspace};
use serde::{Deserialize, Serialize};

use crate::extract::Auth;

fn announce(engine: &Engine, ws: &str, c: &Created) {
    engine.hub.bus().publish(Happening::OutboundQueued { workspace_id: ws.to_owned(), outbound_id: c.id.clone(), cause: Cause::Someone });
}

#[utoipa::path(post, path = "/api/v1/outbound", tag = "outbound", request_body = OutboundInput,
    responses((status = 201, body = Created, description = "Stored with every delivery; sending has begun"),
        (status = 404, description = "an audience id or the teammate is unknown"), (status = 422, description = "names the bad field")))]
pub async fn create(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Json(input): Json<OutboundInput>,
) -> Result<(StatusCode, JsonOut<Created>)> {
    let c = outbound::create(&engine.db, &actor.workspace_id, &actor.teammate_id, input, None).await?;
    announce(&engine, &actor.workspace_id, &c);
    Ok((StatusCode::CREATED, JsonOut(c)))
}

#[utoipa::path(get, path = "/api/v1/outbound", tag = "outbound", params(ListQuery),
    responses((status = 200, body = Page<Outbound>, description = "Newest first, with counts")))]
pub async fn list(State(engine): State<Engine>, Auth(actor): Auth, Query(q): Query<ListQuery>) -> Result<JsonOut<Page<Outbound>>> {
    Ok(JsonOut(outbound::list(&engine.db, &actor.workspace_id, &q).await?))
}

#[utoipa::path(get, path = "/api/v1/outbound/{id}", tag = "outbound",
    responses((status = 200, body = Outbound, description = "Counts by status and channel; OK answers of a check-in"), (status = 404)))]
pub async fn get(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<JsonOut<Outbound>> {
    Ok(JsonOut(outbound::get(&engine.db, &actor.workspace_id, &id).await?))
}

#[utoipa::path(get, path = "/api/v1/outbound/{id}/deliveries", tag = "outbound", params(DeliveryQuery),
    responses((status = 200, body = Page<Delivery>, description = "The message log, per recipient and channel"), (status = 404), (status = 422)))]
pub async fn deliveries(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Query(q): Query<DeliveryQuery>,
) -> Result<JsonOut<Page<Delivery>>> {
    Ok(JsonOut(outbound::deliveries(&engine.db, &actor.workspace_id, &id, &q).await?))
}

#[utoipa::path(post, path = "/api/v1/outbound/{id}/follow-up", tag = "outbound", request_body = FollowUpInput,
    responses((status = 201, body = Created, description = "A new outbound to those who have not answered OK (or were not reached)"),
        (status = 404), (status = 422)))]
pub async fn follow_up(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(f): Json<FollowUpInput>,
) -> Result<(StatusCode, JsonOut<Created>)> {
    let c = outbound::follow_up(&engine.db, &actor.workspace_id, &actor.teammate_id, &id, f).await?;
    announce(&engine, &actor.workspace_id, &c);
    Ok((StatusCode::CREATED, JsonOut(c)))
}

#[utoipa::path(post, path = "/api/v1/outbound/{id}/archive", tag = "outbound",
    responses((status = 200, body = Outbound, description = "Archived: its links open nothing any more"), (status = 404)))]
pub async fn archive(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<JsonOut<Outbound>> {
    Ok(JsonOut(outbound::set_archived(&engine.db, &actor.workspace_id, &id, true).await?))
}

#[utoipa::path(post, path = "/api/v1/outbound/{id}/unarchive", tag = "outbound", responses((status = 200, body = Outbound), (status = 404)))]
pub async fn unarchive(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<JsonOut<Outbound>> {
    Ok(JsonOut(outbound::set_archived(&engine.db, &actor.workspace_id, &id, false).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    pub body: String,
    pub person_id: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub from_teammate_id: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub rendered: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/outbound/preview", tag = "outbound", request_body = PreviewBody,
    responses((status = 200, body = Preview, description = "The message as this person will read it"), (status = 404), (status = 422)))]
pub async fn preview(State(engine): State<Engine>, Auth(actor): Auth, Json(b): Json<PreviewBody>) -> Result<JsonOut<Preview>> {
    snippets::check("body", &b.body)?;
    let from = b.from_teammate_id.as_deref().unwrap_or(&actor.teammate_id);
    let data = snippet_data(&engine, &actor.workspace_id, &b.person_id, from).await?;
    let rendered = snippets::render("body", &b.body, &data)?;
    let title = b.title.map(|t| snippets::render("title", &t, &data)).transpose()?;
    Ok(JsonOut(Preview { rendered, title }))
}

/// What a snippet sees for one person, written by one teammate.
async fn snippet_data(engine: &Engine, ws: &str, person_id: &str, teammate_id: &str) -> Result<serde_json::Value> {
    let person = profile::get(&engine.db, ws, person_id).await?;
    let t = workspace::teammate(&engine.db, ws, teammate_id).await?;
    let w = workspace::get(&engine.db, ws).await?;
    Ok(snippets::context(Some(&person), Some((&t.name, &t.email)), Some(&w.name)))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct TemplateQuery {
    pub kind: Option<String>,
    pub q: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/templates", tag = "outbound", params(TemplateQuery), responses((status = 200, body = Vec<Template>)))]
pub async fn templates(State(engine): State<Engine>, Auth(actor): Auth, Query(q): Query<TemplateQuery>) -> Result<JsonOut<Vec<Template>>> {
    let q_text = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    Ok(JsonOut(outbound::templates(&engine.db, &actor.workspace_id, q.kind.as_deref(), q_text).await?))
}

#[utoipa::path(post, path = "/api/v1/templates", tag = "outbound", request_body = TemplateInput,
    responses((status = 201, body = Template), (status = 422, description = "bad kind, title, snippet or attachment")))]
pub async fn create_template(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Json(t): Json<TemplateInput>,
) -> Result<(StatusCode, JsonOut<Template>)> {
    Ok((StatusCode::CREATED, JsonOut(outbound::save_template(&engine.db, &engine.uploads_dir, &actor.workspace_id, None, t).await?)))
}

#[utoipa::path(get, path = "/api/v1/templates/{id}", tag = "outbound", responses((status = 200, body = Template), (status = 404)))]
pub async fn template(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<JsonOut<Template>> {
    Ok(JsonOut(outbound::template(&engine.db, &actor.workspace_id, &id).await?))
}

#[utoipa::path(put, path = "/api/v1/templates/{id}", tag = "outbound", request_body = TemplateInput,
    responses((status = 200, body = Template), (status = 404), (status = 422)))]
pub async fn update_template(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(t): Json<TemplateInput>,
) -> Result<JsonOut<Template>> {
    Ok(JsonOut(outbound::save_template(&engine.db, &engine.uploads_dir, &actor.workspace_id, Some(&id), t).await?))
}

#[utoipa::path(delete, path = "/api/v1/templates/{id}", tag = "outbound",
    responses((status = 204, description = "deleted, with the files nothing else uses"), (status = 404)))]
pub async fn delete_template(State(engine): State<Engine>, Auth(actor): Auth, Path(id): Path<String>) -> Result<StatusCode> {
    outbound::delete_template(&engine.db, &engine.uploads_dir, &actor.workspace_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SmsView {
    /// Null until an admin sets SMS up.
    pub settings: Option<SmsSettings>,
    /// Where the provider posts texts people send to the `from` number.
    pub inbound_url: String,
}

async fn sms_view(engine: &Engine, ws: &str) -> Result<SmsView> {
    let w = workspace::get(&engine.db, ws).await?;
    Ok(SmsView {
        settings: sms::settings(&engine.db, ws).await?.map(SmsSettings::redacted),
        inbound_url: format!("{}/sms/v1/inbound/{}", engine.public_url, sms::inbound_token(&w.identity_secret, ws)),
    })
}

#[utoipa::path(get, path = "/api/v1/sms", tag = "outbound", responses((status = 200, body = SmsView), (status = 403, description = "admins only")))]
pub async fn get_sms(State(engine): State<Engine>, Auth(actor): Auth) -> Result<JsonOut<SmsView>> {
    actor.require_admin()?;
    Ok(JsonOut(sms_view(&engine, &actor.workspace_id).await?))
}

#[utoipa::path(put, path = "/api/v1/sms", tag = "outbound", request_body = SmsSettings,
    responses((status = 200, body = SmsView), (status = 403, description = "admins only"), (status = 422)))]
pub async fn put_sms(State(engine): State<Engine>, Auth(actor): Auth, Json(s): Json<SmsSettings>) -> Result<JsonOut<SmsView>> {
    actor.require_admin()?;
    sms::save(&engine.db, &actor.workspace_id, s).await?;
    Ok(JsonOut(sms_view(&engine, &actor.workspace_id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonMessage {
    pub body: String,
    pub channel: Channel,
    /// The email's subject.
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub from_teammate_id: Option<String>,
}

/// A chat message, or the delivery of an email or text.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PersonMessageAnswer {
    Message(Message),
    Delivery { outbound_id: String, delivery: Delivery },
}

#[utoipa::path(post, path = "/api/v1/people/{id}/messages", tag = "people", request_body = PersonMessage,
    responses((status = 201, body = PersonMessageAnswer, description = "chat: the message, in a new conversation; email or sms: its delivery"),
        (status = 404), (status = 422)))]
pub async fn person_message(
    State(engine): State<Engine>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(b): Json<PersonMessage>,
) -> Result<(StatusCode, JsonOut<PersonMessageAnswer>)> {
    let ws = &actor.workspace_id;
    let from = b.from_teammate_id.clone().unwrap_or_else(|| actor.teammate_id.clone());
    if b.channel == Channel::Chat {
        snippets::check("body", &b.body)?;
        let body = snippets::render("body", &b.body, &snippet_data(&engine, ws, &id, &from).await?)?;
        let sent = chat::send(
            &engine.db,
            &engine.hub,
            NewMessage {
                workspace_id: ws.clone(),
                conversation_id: None,
                sender: Sender::Teammate { id: from },
                body,
                kind: MessageKind::Chat,
                echo_id: None,
                buttons: None,
                shared: false,
                cause: Cause::Someone,
                to_person: Some(id),
                email_fallback: true,
                attachments: Vec::new(),
            },
        )
        .await?;
        return Ok((StatusCode::CREATED, JsonOut(PersonMessageAnswer::Message(sent.message))));
    }
    // An email or text to one person is a one-way send with one recipient:
    // the same delivery, retries and log as any other.
    let input = OutboundInput {
        kind: outbound::Kind::OneWay,
        title: b.title,
        body: b.body,
        channels: vec![b.channel],
        audience: Audience { people: vec![id], ..Audience::default() },
        options: Default::default(),
        from_teammate_id: Some(from),
        attachments: Vec::new(),
    };
    let c = outbound::create(&engine.db, ws, &actor.teammate_id, input, None).await?;
    announce(&engine, ws, &c);
    let page = outbound::deliveries(&engine.db, ws, &c.id, &DeliveryQuery::default()).await?;
    let delivery =
        page.items.into_iter().next().ok_or_else(|| Error::Internal(anyhow::anyhow!("a one-person send without its delivery")))?;
    Ok((StatusCode::CREATED, JsonOut(PersonMessageAnswer::Delivery { outbound_id: c.id, delivery })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestMessage {
    /// `email` or `sms`.
    pub channel: Channel,
    /// An email address or phone number; an email goes to the admin's own
    /// address without one.
    #[serde(default)]
    pub to: Option<String>,
}

/// One way a test was tried: the mail server (or outbox), or an SMS route.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TestAttempt {
    /// `smtp` or `outbox` for email, the route's name for SMS.
    pub via: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// Whether the test went out. A refusal by the mail server or every SMS
/// route is an answer here, not an HTTP error: the set-up is what failed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TestAnswer {
    pub ok: bool,
    pub to: String,
    pub attempts: Vec<TestAttempt>,
}

#[utoipa::path(post, path = "/api/v1/test-message", tag = "outbound", request_body = TestMessage,
    responses((status = 200, body = TestAnswer, description = "tried: `ok` says whether it went out"),
        (status = 403, description = "admins only"), (status = 409, description = "SMS is not set up"), (status = 422, description = "names the bad field")))]
pub async fn test_message(State(engine): State<Engine>, Auth(actor): Auth, Json(t): Json<TestMessage>) -> Result<JsonOut<TestAnswer>> {
    actor.require_admin()?;
    let ws = &actor.workspace_id;
    let w = workspace::get(&engine.db, ws).await?;
    let text = format!(
        "This is a test message from {} in Parley, sent by {}. If it reached you, {} is set up.",
        w.name,
        actor.name,
        if t.channel == Channel::Sms { "SMS" } else { "email" }
    );
    let answer = match t.channel {
        Channel::Chat => return Err(Error::invalid("channel", "a test goes by email or sms")),
        Channel::Email => {
            let to = match t.to.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                Some(to) => parley_engine::people::input::email("to", to)?,
                None => workspace::teammate(&engine.db, ws, &actor.teammate_id).await?.email,
            };
            let email = parley_engine::mail::Outgoing {
                to: to.clone(),
                to_name: None,
                from_name: w.name.clone(),
                subject: format!("Test email from {}", w.name),
                text,
                reply_to: None,
                unsubscribe_url: None,
                links: Vec::new(),
            };
            let sent = engine.mailer.send(&email).await;
            let attempt =
                TestAttempt { via: engine.mailer.kind().to_owned(), ok: sent.is_ok(), error: sent.err().map(|e| format!("{e:#}")) };
            TestAnswer { ok: attempt.ok, to, attempts: vec![attempt] }
        }
        Channel::Sms => {
            let to = t.to.as_deref().ok_or_else(|| Error::invalid("to", "give the phone number to text"))?;
            let to = parley_engine::people::input::phone("to", to)?;
            let Some(settings) = sms::settings(&engine.db, ws).await? else {
                return Err(Error::Conflict { code: "sms_not_set_up", message: "set up SMS (a sender and a route) first".into() });
            };
            let attempts: Vec<TestAttempt> = sms::try_routes(&settings, &to, &text)
                .await
                .into_iter()
                .map(|(via, sent)| TestAttempt { via, ok: sent.is_ok(), error: sent.err() })
                .collect();
            TestAnswer { ok: attempts.last().is_some_and(|a| a.ok), to, attempts }
        }
    };
    Ok(JsonOut(answer))
}
