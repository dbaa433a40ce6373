//! The missed-message email: when a teammate or the bot writes in a chat and
//! the person has no widget open, a job is queued for the configured delay
//! (`PARLEY_EMAIL_FALLBACK_DELAY`, 10 minutes by default). When it comes due
//! it emails every chat message of that conversation the person has not seen
//! since, in one email, or nothing: they saw them meanwhile, a newer message
//! has its own job (debounce), they have no address or unsubscribed, or the
//! workspace turned it off. The bookkeeping is `parley_engine::missed`.
//!
//! Off per message (`email_fallback: false`), per automation and per
//! workspace. The email's reply-to address carries the conversation's
//! token, so an answer by email lands back in the chat.

use parley_engine::mail::{self, Outgoing};
use parley_engine::people::profile;
use parley_engine::{Error, Result, events, missed, workspace};
use serde_json::json;

use crate::jobs::Job;
use crate::runner::Automations;

impl Automations {
    /// Queues the jobs of every planned missed message, at start: a plan
    /// whose message was stored just before a crash still gets its email.
    pub(crate) async fn queue_planned_fallbacks(&self) -> Result<()> {
        for planned in missed::pending(&self.engine().db).await? {
            self.queue_fallback(planned).await?;
        }
        Ok(())
    }

    /// Queues one message's job, once however often it is asked.
    pub(crate) async fn queue_fallback(&self, (workspace_id, conversation_id, message_id, at): missed::Planned) -> Result<()> {
        let due = at + i64::try_from(self.inner.fallback_delay.as_millis()).unwrap_or(i64::MAX / 2);
        let key = format!("fallback:{message_id}");
        self.inner.queue.push_once_at(Job::EmailFallback { workspace_id, conversation_id, message_id }, due, &key).await
    }

    /// The job: one email with what the person missed, or nothing.
    pub(crate) async fn send_fallback(&self, ws: &str, conversation_id: &str, message_id: &str) -> Result<()> {
        let engine = self.engine();
        let db = &engine.db;
        let Some(state) = missed::state(db, ws, conversation_id).await? else { return Ok(()) };
        if state.pending_message_id.as_deref() != Some(message_id) {
            // A newer message's job sends, or this one was sent already.
            return Ok(());
        }
        let members = missed::members(db, conversation_id).await?;
        if !members.is_empty() {
            return self.send_member_fallbacks(ws, conversation_id, message_id, &state, members).await;
        }
        let person = match profile::get(db, ws, &state.person_id).await {
            Ok(p) => p,
            Err(Error::NotFound(_)) => return missed::drop_pending(db, conversation_id, message_id).await,
            Err(e) => return Err(e),
        };
        let w = workspace::get(db, ws).await?;
        let since = state.person_seen_at.max(state.sent_through);
        let unseen = missed::unseen(db, conversation_id, since).await?;
        let to = person.email.clone().filter(|_| !person.unsubscribed && w.email_fallback);
        let (Some(to), Some(last)) = (to, unseen.last()) else {
            return missed::drop_pending(db, conversation_id, message_id).await;
        };
        if !missed::claim(db, conversation_id, message_id, last.created_at).await? {
            return Ok(());
        }
        let reply_to = Some(engine.mailer.reply_address(&state.reply_token));
        let mut email = missed_email(&engine.public_url, &w, &person, to, &unseen, "Reply to this email to answer in the chat.", reply_to);
        email.links = attached(engine, &unseen).await?;
        if let Err(e) = engine.mailer.send(&email).await {
            // Given back, so the job's next try sends it.
            missed::release(db, conversation_id, message_id, state.sent_through).await?;
            return Err(e);
        }
        emailed(db, ws, &person.id, conversation_id, &email.subject, &unseen).await
    }

    /// A shared chat's missed-message emails: each member gets what they
    /// have not seen (by their own seen mark) and were not emailed before,
    /// one email each, whose reply address is their own: an answer by email
    /// lands in the chat as theirs.
    async fn send_member_fallbacks(
        &self,
        ws: &str,
        conversation_id: &str,
        message_id: &str,
        state: &missed::State,
        members: Vec<missed::MemberState>,
    ) -> Result<()> {
        let engine = self.engine();
        let db = &engine.db;
        let w = workspace::get(db, ws).await?;
        let newest = missed::unseen(db, conversation_id, 0).await?;
        let Some(through) = newest.last().map(|m| m.created_at) else {
            return missed::drop_pending(db, conversation_id, message_id).await;
        };
        if !missed::claim(db, conversation_id, message_id, through).await? {
            return Ok(());
        }
        let outbound = parley_engine::outbound::of_conversation(db, conversation_id).await?;
        for member in members {
            let before = member.emailed_through;
            let unseen = missed::unseen(db, conversation_id, member.seen_at.max(before)).await?;
            let Some(last) = unseen.last() else { continue };
            let person = match profile::get(db, ws, &member.person_id).await {
                Ok(p) => p,
                Err(Error::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let Some(to) = person.email.clone().filter(|_| !person.unsubscribed && w.email_fallback) else { continue };
            if !missed::claim_member(db, conversation_id, &person.id, before, last.created_at).await? {
                continue;
            }
            // Each member answers by email as themselves, or in the chat
            // through their own link.
            let token = missed::member_token(db, conversation_id, &person.id).await?;
            let ending = match &outbound {
                Some(o) => format!(
                    "Reply to this email, or answer in the chat: {}/c/{}",
                    engine.public_url,
                    parley_engine::outbound::link_token(&w.identity_secret, o, &person.id)
                ),
                None => "Reply to this email to answer in the chat.".to_owned(),
            };
            let reply_to = Some(engine.mailer.reply_address(&token));
            let mut email = missed_email(&engine.public_url, &w, &person, to, &unseen, &ending, reply_to);
            email.links = attached(engine, &unseen).await?;
            if let Err(e) = engine.mailer.send(&email).await {
                // Given back, so the job's next try sends it (members emailed
                // already keep their marks and are not emailed again).
                missed::release_member(db, conversation_id, &person.id, before, last.created_at).await?;
                missed::release(db, conversation_id, message_id, state.sent_through).await?;
                return Err(e);
            }
            emailed(db, ws, &person.id, conversation_id, &email.subject, &unseen).await?;
        }
        Ok(())
    }
}

/// The email with the messages someone missed, ending with how to answer.
fn missed_email(
    public_url: &str,
    w: &workspace::Workspace,
    person: &profile::Person,
    to: String,
    unseen: &[missed::Unseen],
    ending: &str,
    reply_to: Option<String>,
) -> Outgoing {
    let name = |m: &missed::Unseen| m.author_name.clone().unwrap_or_else(|| w.name.clone());
    let subject = match unseen {
        [one] => format!("{} sent you a message", name(one)),
        _ => format!("{} new messages from {}", unseen.len(), w.name),
    };
    let mut text = String::new();
    for m in unseen {
        text.push_str(&format!("{} wrote:\n{}\n\n", name(m), m.body));
    }
    text.push_str(ending);
    Outgoing {
        to,
        to_name: person.name.clone(),
        from_name: w.name.clone(),
        subject,
        text,
        reply_to,
        unsubscribe_url: Some(mail::unsubscribe_url(public_url, w, &person.id)),
        links: Vec::new(),
    }
}

/// The files attached to the missed messages, in their order, as links.
async fn attached(engine: &parley_engine::Engine, unseen: &[missed::Unseen]) -> Result<Vec<mail::Link>> {
    let ids: Vec<&str> = unseen.iter().map(|m| m.id.as_str()).collect();
    let mut by_message = parley_engine::uploads::of_messages(&engine.db, &ids).await?;
    let files: Vec<_> = ids.iter().flat_map(|id| by_message.remove(*id).unwrap_or_default()).collect();
    Ok(mail::links(&engine.public_url, &files))
}

/// Counts a missed-message email that went out and puts it on the person's timeline.
async fn emailed(
    db: &parley_engine::Db,
    ws: &str,
    person_id: &str,
    conversation_id: &str,
    subject: &str,
    unseen: &[missed::Unseen],
) -> Result<()> {
    metrics::counter!("parley_missed_message_emails_total").increment(1);
    let ids: Vec<&str> = unseen.iter().map(|m| m.id.as_str()).collect();
    let data = json!({"subject": subject, "conversation_id": conversation_id, "message_ids": ids, "reason": "missed_chat"});
    events::record(db, ws, person_id, "email.sent", &data).await.map(|_| ())
}
