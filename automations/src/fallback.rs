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
        let name = |m: &missed::Unseen| m.author_name.clone().unwrap_or_else(|| w.name.clone());
        let subject = match unseen.len() {
            1 => format!("{} sent you a message", name(&unseen[0])),
            n => format!("{n} new messages from {}", w.name),
        };
        let mut text = String::new();
        for m in &unseen {
            text.push_str(&format!("{} wrote:\n{}\n\n", name(m), m.body));
        }
        text.push_str("Reply to this email to answer in the chat.");
        let email = Outgoing {
            to,
            to_name: person.name.clone(),
            from_name: w.name.clone(),
            subject: subject.clone(),
            text,
            reply_to: Some(engine.mailer.reply_address(&state.reply_token)),
            unsubscribe_url: Some(mail::unsubscribe_url(&engine.public_url, &w, &person.id)),
        };
        if let Err(e) = engine.mailer.send(&email).await {
            // Given back, so the job's next try sends it.
            missed::release(db, conversation_id, message_id, state.sent_through).await?;
            return Err(e);
        }
        metrics::counter!("parley_missed_message_emails_total").increment(1);
        let ids: Vec<&str> = unseen.iter().map(|m| m.id.as_str()).collect();
        let data = json!({"subject": subject, "conversation_id": conversation_id, "message_ids": ids, "reason": "missed_chat"});
        events::record(db, ws, &person.id, "email.sent", &data).await.map(|_| ())
    }
}
