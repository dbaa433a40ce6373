//! What goes out of Parley to others: a rule's emails to the person
//! (`send_email`) and webhooks (`webhook`), and the deliveries of webhook
//! subscriptions (`/webhooks`, logged per try). Each is a job, so it survives
//! a restart, and a failed try is queued again with a growing pause (1 s,
//! 2 s, 4 s … up to an hour) until [`MAX_TRIES`].
//!
//! A webhook is a JSON POST signed like Parley's other webhooks:
//! `X-Parley-Timestamp` (unix seconds) and `X-Parley-Signature:
//! sha256=HEX`, the HMAC-SHA256 of `TIMESTAMP.BODY` keyed by the workspace's
//! identity secret (a subscription's own secret for its deliveries), so the receiver can tell it came from Parley and is not
//! a replay.

use std::time::Duration;

use parley_engine::auth::user_hash;
use parley_engine::bus::Happening;
use parley_engine::mail::{self, Outgoing};
use parley_engine::people::profile;
use parley_engine::util::now_ms;
use parley_engine::{Error, Result, events, webhooks, workspace};
use serde_json::{Value, json};

use crate::jobs::Job;
use crate::runner::Automations;

/// Tries of one email or webhook before it is given up.
pub const MAX_TRIES: u32 = 10;
/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_secs(3600);
/// How long a webhook's receiver may take to answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The pause before try `tries + 1`, after `tries` failed ones.
pub fn pause_after(tries: u32) -> Duration {
    Duration::from_secs(1u64 << tries.saturating_sub(1).min(12)).min(MAX_PAUSE)
}

/// The signature header's value for `body` sent at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    format!("sha256={}", user_hash(secret, &format!("{timestamp}.{body}")))
}

impl Automations {
    /// Sends a rule's email to the person as they are now: nothing if they
    /// have since lost their address or unsubscribed.
    pub(crate) async fn deliver_email(&self, job: &Job) -> Result<()> {
        let Job::Email { workspace_id: ws, automation_id, person_id, subject, text, tries } = job else { return Ok(()) };
        let engine = self.engine();
        let person = match profile::get(&engine.db, ws, person_id).await {
            Ok(p) => p,
            Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Some(to) = person.email.clone().filter(|_| !person.unsubscribed) else {
            tracing::info!(automation = %automation_id, person = %person_id, "email skipped: no address, or unsubscribed");
            return Ok(());
        };
        let w = workspace::get(&engine.db, ws).await?;
        let email = Outgoing {
            to,
            to_name: person.name.clone(),
            from_name: w.name.clone(),
            subject: subject.clone(),
            text: text.clone(),
            reply_to: None,
            unsubscribe_url: Some(mail::unsubscribe_url(&engine.public_url, &w, person_id)),
            links: Vec::new(),
        };
        match engine.mailer.send(&email).await {
            Ok(()) => {
                metrics::counter!("parley_automation_emails_total", "outcome" => "sent").increment(1);
                let data = json!({"subject": subject, "automation_id": automation_id});
                events::record(&engine.db, ws, person_id, "email.sent", &data).await.map(|_| ())
            }
            Err(e) => self.again(job, *tries, &e.to_string()).await,
        }
    }

    /// Posts a rule's webhook; anything but a 2xx answer is tried again.
    pub(crate) async fn deliver_webhook(&self, job: &Job) -> Result<()> {
        let Job::Webhook { workspace_id: ws, automation_id, url, body, tries } = job else { return Ok(()) };
        let secret = match workspace::get(&self.engine().db, ws).await {
            Ok(w) => w.identity_secret,
            Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let failure = match self.post_signed(url, &secret, body, &[("x-parley-automation", automation_id)]).await {
            Ok(_) => {
                metrics::counter!("parley_automation_webhooks_total", "outcome" => "delivered").increment(1);
                tracing::info!(automation = %automation_id, %url, tries = tries + 1, "webhook delivered");
                return Ok(());
            }
            Err((_, e)) => e,
        };
        self.again(job, *tries, &failure).await
    }

    /// POSTs `body` signed with `secret`: the 2xx status, or the status (if
    /// the receiver answered) and what went wrong.
    async fn post_signed(
        &self,
        url: &str,
        secret: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> std::result::Result<u16, (Option<u16>, String)> {
        let ts = now_ms() / 1000;
        let mut req = self
            .inner
            .http
            .post(url)
            .timeout(WEBHOOK_TIMEOUT)
            .header("content-type", "application/json")
            .header("user-agent", "Parley-Webhook")
            .header("x-parley-timestamp", ts.to_string())
            .header("x-parley-signature", signature(secret, ts, body));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        match req.body(body.to_owned()).send().await {
            Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
            Ok(r) => Err((Some(r.status().as_u16()), format!("the receiver answered {}", r.status()))),
            Err(e) => Err((None, format!("the receiver could not be reached: {e}"))),
        }
    }

    /// Posts one queued delivery of a subscription, logging the try; tried
    /// again with growing pauses until [`MAX_TRIES`].
    pub(crate) async fn deliver_subscription(&self, delivery_id: &str) -> Result<()> {
        let db = &self.engine().db;
        let Some(d) = webhooks::delivery(db, delivery_id).await? else { return Ok(()) };
        if d.status != "queued" {
            return Ok(());
        }
        let hook = match webhooks::get(db, &d.workspace_id, &d.webhook_id).await {
            Ok(h) => h,
            Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let headers = [("x-parley-event", d.event.as_str()), ("x-parley-delivery", d.id.as_str())];
        match self.post_signed(&hook.url, &hook.secret, &d.body, &headers).await {
            Ok(status) => webhooks::record_try(db, &d.id, "delivered", Some(status), None).await,
            Err((status, error)) => {
                let tries = u32::try_from(d.attempts).unwrap_or(0) + 1;
                let last = tries >= MAX_TRIES;
                webhooks::record_try(db, &d.id, if last { "failed" } else { "queued" }, status, Some(&error)).await?;
                if last {
                    tracing::warn!(delivery = %d.id, error, "a webhook delivery failed every try and was given up");
                    return Ok(());
                }
                self.inner.queue.push_after(Job::WebhookDelivery { delivery_id: d.id }, pause_after(tries)).await
            }
        }
    }

    /// Queues a delivery to every subscription that wants what happened.
    /// What an event carries is read only when someone subscribed to it.
    pub(crate) async fn notify_subscribers(&self, h: &Happening) -> Result<()> {
        let (db, ws) = (&self.engine().db, h.workspace_id());
        for event in event_names(h) {
            let hooks = webhooks::subscribed(db, ws, event).await?;
            if hooks.is_empty() {
                continue;
            }
            let Some(data) = self.event_data(h, event).await? else { continue };
            for hook in hooks {
                let id = webhooks::enqueue(db, ws, &hook.id, event, &data).await?;
                self.inner.queue.push_after(Job::WebhookDelivery { delivery_id: id }, Duration::ZERO).await?;
            }
        }
        Ok(())
    }

    /// What webhook event `event` of a happening carries (none: the person
    /// is gone).
    async fn event_data(&self, h: &Happening, event: &str) -> Result<Option<Value>> {
        Ok(Some(match h {
            Happening::OutboundQueued { .. } => return Ok(None),
            Happening::MessageCreated { message, .. } if event == "conversation.created" => {
                json!({"conversation_id": message.conversation_id, "message": message})
            }
            Happening::MessageCreated { message, .. } => json!({"message": message}),
            Happening::PersonCreated { workspace_id, person_id, .. } | Happening::PersonUpdated { workspace_id, person_id, .. } => {
                match profile::get(&self.engine().db, workspace_id, person_id).await {
                    Ok(p) => json!({"person": p}),
                    Err(Error::NotFound(_)) => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
            Happening::EventTracked { person, name, data, at, .. } => json!({
                "person": {"id": person.id, "external_id": person.external_id, "email": person.email},
                "name": name, "data": data, "at": parley_engine::util::rfc3339(*at),
            }),
        }))
    }

    /// Queues the next try of a failed delivery, or gives it up.
    async fn again(&self, job: &Job, tries: u32, error: &str) -> Result<()> {
        let tries = tries + 1;
        if tries >= MAX_TRIES {
            metrics::counter!("parley_automation_deliveries_given_up_total").increment(1);
            tracing::warn!(?job, error, tries, "a delivery failed every try and was given up");
            return Ok(());
        }
        let mut next = job.clone();
        match &mut next {
            Job::Email { tries: t, .. } | Job::Webhook { tries: t, .. } => *t = tries,
            _ => return Ok(()),
        }
        let pause = pause_after(tries);
        tracing::info!(error, tries, ?pause, "a delivery failed; trying again later");
        self.inner.queue.push_after(next, pause).await
    }
}

/// The webhook events a happening is.
fn event_names(h: &Happening) -> Vec<&'static str> {
    match h {
        Happening::MessageCreated { started: true, .. } => vec!["message.created", "conversation.created"],
        Happening::MessageCreated { .. } => vec!["message.created"],
        Happening::PersonCreated { .. } => vec!["person.created"],
        Happening::PersonUpdated { .. } => vec!["person.updated"],
        Happening::EventTracked { .. } => vec!["event.tracked"],
        Happening::OutboundQueued { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_an_hour() {
        let p: Vec<u64> = (1..=5).map(|t| pause_after(t).as_secs()).collect();
        assert_eq!(p, [1, 2, 4, 8, 16]);
        assert_eq!(pause_after(30), MAX_PAUSE);
    }

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let s = signature("k", 1_700_000_000, r#"{"a":1}"#);
        assert_eq!(s, format!("sha256={}", user_hash("k", r#"1700000000.{"a":1}"#)));
        assert_ne!(s, signature("k", 1_700_000_001, r#"{"a":1}"#));
        assert_ne!(s, signature("k", 1_700_000_000, r#"{"a":2}"#));
    }
}
