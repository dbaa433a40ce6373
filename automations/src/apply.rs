//! Carrying out a run's actions through the engine, the same calls the inbox
//! makes, marked as caused by the automation so that no automation reacts to
//! them.

use parley_engine::auth::{Actor, Role};
use parley_engine::bus::{Cause, Happening};
use parley_engine::chat::{self, ConversationPatch, Kind, NewMessage, Sender};
use parley_engine::people::{Person, PersonInput, profile};
use parley_engine::util::{now_ms, rfc3339};
use parley_engine::workspace::Teammate;
use parley_engine::{Engine, snippets, teams, workspace};
use serde_json::{Map, Value};

use std::time::Duration;

use crate::jobs::{Job, Queue};
use crate::script::Action;

/// Who and what a run is about.
#[derive(Clone, Debug, Default)]
pub struct Subject {
    pub workspace_id: String,
    pub person_id: Option<String>,
    pub conversation_id: Option<String>,
}

/// Applies `actions` in order; the first that fails stops the rest and is
/// the run's error (what was applied before it stays applied).
pub async fn apply(
    engine: &Engine,
    automation_id: &str,
    subject: &Subject,
    person: Option<&Person>,
    actions: &[Action],
    email_fallback: bool,
) -> Result<(), String> {
    let ws = subject.workspace_id.as_str();
    let cause = Cause::Automation(automation_id.to_owned());
    // Conversation changes go through the inbox's own update, as an admin of
    // the workspace; the actor's teammate fields are not used by it.
    let actor =
        Actor { workspace_id: ws.to_owned(), teammate_id: String::new(), name: "Automation".into(), role: Role::Admin, via_api_key: true };
    let mut tags = person.map(|p| p.tags.clone());
    let mut attributes = Map::new();
    // A chat message to a person without a conversation starts one, which
    // the later actions then act on.
    let mut subject = subject.clone();
    for action in actions {
        let current = subject.conversation_id.clone();
        let conversation = || current.clone().ok_or_else(|| "there is no conversation to act on".to_owned());
        let patch = match action {
            Action::SendChat { text, teammate_id } => {
                let (sender, from) = match teammate_id {
                    None => (Sender::Bot, None),
                    Some(tid) => (Sender::Teammate { id: tid.clone() }, Some(teammate(engine, ws, tid).await?)),
                };
                let text = personalise(engine, ws, person, from.as_ref(), text).await?;
                let sent = say(engine, &subject, sender, Say::Chat { buttons: None, email_fallback }, &text, &cause).await?;
                subject.conversation_id = Some(sent.conversation_id);
                None
            }
            Action::Note { text } => {
                conversation()?;
                let text = personalise(engine, ws, person, None, text).await?;
                say(engine, &subject, Sender::Bot, Say::Note, &text, &cause).await?;
                None
            }
            // A teammate's id, else a team's id or name: "Billing".
            Action::Assign { to } => match teammate(engine, ws, to).await {
                Ok(_) => Some(ConversationPatch { assignee_id: Some(Some(to.clone())), ..Default::default() }),
                Err(_) => match teams::find(&engine.db, ws, to).await.map_err(|e| format!("finding the team: {e}"))? {
                    Some(team) => Some(ConversationPatch { team_id: Some(Some(team.id)), ..Default::default() }),
                    None => return Err(format!("there is no teammate or team {to:?} in this workspace")),
                },
            },
            Action::Close => Some(ConversationPatch { status: Some("closed".into()), ..Default::default() }),
            Action::Snooze { minutes } => Some(ConversationPatch {
                status: Some("snoozed".into()),
                snoozed_until: Some(rfc3339(now_ms() + minutes * 60_000)),
                ..Default::default()
            }),
            // Started by the runner once the rest is applied (see `Automations::act`).
            Action::StartFlow { .. } => None,
            Action::SendEmail { subject, text } => {
                let p = person.ok_or("there is no person to email")?;
                if p.email.is_none() || p.unsubscribed {
                    // Not the rule's failure: this person cannot be emailed.
                    tracing::info!(automation = %automation_id, person = %p.id, "send_email skipped: no address, or unsubscribed");
                } else {
                    let job = Job::Email {
                        workspace_id: ws.to_owned(),
                        automation_id: automation_id.to_owned(),
                        person_id: p.id.clone(),
                        subject: personalise(engine, ws, Some(p), None, subject).await?,
                        text: personalise(engine, ws, Some(p), None, text).await?,
                        tries: 0,
                    };
                    Queue::of(&engine.db).push_after(job, Duration::ZERO).await.map_err(|e| e.to_string())?;
                }
                None
            }
            Action::Webhook { url, payload } => {
                let job = Job::Webhook {
                    workspace_id: ws.to_owned(),
                    automation_id: automation_id.to_owned(),
                    url: url.clone(),
                    body: payload.to_string(),
                    tries: 0,
                };
                Queue::of(&engine.db).push_after(job, Duration::ZERO).await.map_err(|e| e.to_string())?;
                None
            }
            Action::Tag { name } => {
                let t = tags.as_mut().ok_or("there is no person to tag")?;
                if !t.contains(name) {
                    t.push(name.clone());
                }
                None
            }
            Action::Untag { name } => {
                tags.as_mut().ok_or("there is no person to untag")?.retain(|t| t != name);
                None
            }
            Action::SetAttribute { name, value } => {
                attributes.insert(name.clone(), value.clone());
                None
            }
        };
        if let Some(p) = patch {
            chat::update(&engine.db, &engine.hub, &actor, &conversation()?, p).await.map_err(|e| format!("{action:?}: {e}"))?;
        }
    }
    // Person changes are written together, once, after the rest.
    let (Some(person), Some(tags)) = (person, tags) else { return Ok(()) };
    if tags == person.tags && attributes.is_empty() {
        return Ok(());
    }
    let input = PersonInput {
        tags: (tags != person.tags).then_some(tags),
        attributes: (!attributes.is_empty()).then_some(attributes),
        ..Default::default()
    };
    profile::patch(&engine.db, ws, &person.id, input).await.map_err(|e| format!("changing the person: {e}"))?;
    engine.hub.bus().publish(Happening::PersonUpdated { workspace_id: ws.to_owned(), person_id: person.id.clone(), cause });
    Ok(())
}

pub(crate) async fn teammate(engine: &Engine, ws: &str, id: &str) -> Result<Teammate, String> {
    workspace::kept_teammate(&engine.db, ws, id).await.map_err(|_| format!("there is no teammate {id} in this workspace"))
}

/// Whether a text has snippets (`{{…}}`) to fill in.
pub(crate) fn has_snippets(text: &str) -> bool {
    text.contains("{{")
}

/// Fills in a text's snippets for the person, the teammate it comes from
/// (none: the bot) and the workspace. A bad snippet is the run's error.
pub(crate) async fn personalise(
    engine: &Engine,
    ws: &str,
    person: Option<&Person>,
    from: Option<&Teammate>,
    text: &str,
) -> Result<String, String> {
    if !has_snippets(text) {
        return Ok(text.to_owned());
    }
    let workspace = workspace::kept(&engine.db, ws).await.map_err(|e| format!("loading the workspace: {e}"))?;
    let data = snippets::context(person, from.map(|t| (t.name.as_str(), t.email.as_str())), Some(&workspace.name));
    snippets::render("text", text, &data).map_err(|e| e.to_string())
}

/// What an automated message is.
pub(crate) enum Say {
    /// A chat message, with buttons for a flow; `email_fallback`: it may be
    /// emailed to a person who misses it.
    Chat { buttons: Option<Value>, email_fallback: bool },
    /// An internal note.
    Note,
}

/// Sends an automated message into the subject's conversation, or a new one
/// with its person, and returns it.
pub(crate) async fn say(
    engine: &Engine,
    to: &Subject,
    sender: Sender,
    what: Say,
    body: &str,
    cause: &Cause,
) -> Result<chat::Message, String> {
    let (kind, buttons, email_fallback) = match what {
        Say::Chat { buttons, email_fallback } => (Kind::Chat, buttons, email_fallback),
        Say::Note => (Kind::Note, None, false),
    };
    let m = NewMessage {
        workspace_id: to.workspace_id.clone(),
        conversation_id: to.conversation_id.clone(),
        sender,
        body: body.to_owned(),
        kind,
        echo_id: None,
        buttons,
        shared: false,
        cause: cause.clone(),
        to_person: if to.conversation_id.is_none() { to.person_id.clone() } else { None },
        email_fallback,
        attachments: Vec::new(),
    };
    chat::send(&engine.db, &engine.hub, m).await.map(|s| s.message).map_err(|e| format!("sending a message: {e}"))
}

/// The person as a script sees them.
pub fn person_value(p: &Person) -> Value {
    serde_json::json!({
        "id": p.id,
        "name": p.name,
        "email": p.email,
        "attributes": p.attributes,
        "tags": p.tags,
        "company": p.company.as_ref().map(|c| c.name.clone()),
    })
}
