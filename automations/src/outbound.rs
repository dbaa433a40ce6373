//! Sending an outbound: the job that works its queued deliveries.
//!
//! One `Outbound` job per outbound claims queued deliveries a chunk at a
//! time, renders the message for each person, sends it on its channel and
//! records the outcome, then tells teammates how far it got
//! (`outbound.progress`). Deliveries waiting for a retry (high-quality SMS)
//! bring the job back when the first of them is due. The job is queued when
//! an outbound is stored, and again for every outbound still sending when
//! the server starts, so a restart loses nothing; a delivery's chat message
//! carries an echo id made from the delivery, so doing one twice after a
//! crash stores it once.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;

use parley_engine::chat::{self, Kind as MessageKind, bulk};
use parley_engine::mail::{self, Outgoing};
use parley_engine::outbound::{self, Channel, Kind, Outbound, Outcome, Work};
use parley_engine::people::profile::{self, Person};
use parley_engine::sms::{self, Route, Text};
use parley_engine::workspace::{self, Teammate, Workspace};
use parley_engine::{Error, Result, snippets};

use crate::deliver::pause_after;
use crate::jobs::Job;
use crate::runner::Automations;

/// Deliveries claimed and sent in one go.
const CHUNK: i64 = 500;
/// How often teammates are told how far a send has got.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Emails and texts sent at the same time: one per pooled SMTP connection.
const SEND_PARALLEL: usize = parley_engine::mail::SMTP_CONNECTIONS as usize;
/// Attempts of a high-quality SMS over all routes before it is failed.
pub const SMS_MAX_ATTEMPTS: i32 = 50;

/// A delivery with its person and their rendered body and title.
type Rendered = (Work, Person, String, Option<String>);

/// A claimed chunk, read and rendered: what is done already, the chat
/// messages to store, and the emails and texts to send.
#[derive(Default)]
struct Prepared {
    done: Vec<(Work, Outcome)>,
    chats: Chats,
    others: Vec<Rendered>,
}

/// A chunk's chat messages: each in its person's conversation, made ready
/// to store (with the deliveries they are, by id), or one shared chat.
enum Chats {
    Each(bulk::Ready, HashMap<String, Work>),
    Shared(Vec<Rendered>),
}

impl Default for Chats {
    fn default() -> Self {
        Chats::Shared(Vec::new())
    }
}

impl Chats {
    fn is_empty(&self) -> bool {
        match self {
            Chats::Each(_, work) => work.is_empty(),
            Chats::Shared(chats) => chats.is_empty(),
        }
    }
}

impl Prepared {
    fn is_empty(&self) -> bool {
        self.done.is_empty() && self.chats.is_empty() && self.others.is_empty()
    }
}

/// What one run of the job needs for every delivery.
struct Sending {
    o: Outbound,
    w: Workspace,
    from: Teammate,
    sms_from: String,
    routes: Vec<(String, Box<dyn Route>)>,
    /// The body and title, parsed once for every recipient.
    texts: snippets::Compiled,
}

/// Who sends an outbound's chat messages, and how.
fn chat_from(s: &Sending) -> bulk::From<'_> {
    let kind = match (s.o.kind, s.o.asks_ok()) {
        (Kind::Announcement, _) => MessageKind::Announcement,
        (_, true) => MessageKind::Checkin,
        _ => MessageKind::Chat,
    };
    bulk::From {
        workspace_id: &s.w.id,
        teammate_id: &s.from.id,
        kind,
        email_fallback: s.o.options.email_fallback && s.w.email_fallback,
        attachments: &s.o.attachments,
        deliveries_of: Some(&s.o.id),
    }
}

impl Automations {
    /// Queues the sending job of an outbound (at most once per due time);
    /// a due time that has come runs it at once.
    pub(crate) async fn queue_outbound(&self, outbound_id: &str, at: i64) -> Result<()> {
        let job = Job::Outbound { outbound_id: outbound_id.to_owned() };
        let key = format!("outbound:{outbound_id}:{at}");
        if at <= parley_engine::util::now_ms() {
            return self.inner.queue.push_now_once(job, &key).await;
        }
        self.inner.queue.push_once_at(job, at, &key).await
    }

    /// At start: every outbound still sending is taken up again.
    pub(crate) async fn queue_sending_outbounds(&self) -> Result<()> {
        let now = parley_engine::util::now_ms();
        for id in outbound::sending(&self.engine().db).await? {
            self.queue_outbound(&id, now).await?;
        }
        Ok(())
    }

    /// The `outbound` job: sends every due delivery, then plans the next run
    /// if retries wait.
    pub(crate) async fn send_outbound(&self, outbound_id: &str) -> Result<()> {
        let db = &self.engine().db;
        let Some(ws) = outbound::workspace_of(db, outbound_id).await? else { return Ok(()) };
        let o = outbound::load(db, &ws, outbound_id).await?;
        let w = workspace::get(db, &ws).await?;
        let from = workspace::teammate(db, &ws, o.from_teammate_id.as_deref().unwrap_or(&o.created_by)).await?;
        let settings = match o.channels.contains(&Channel::Sms) {
            true => sms::settings(db, &ws).await?,
            false => None,
        };
        let (sms_from, routes) = match settings {
            Some(s) => (s.from.clone(), s.routes.iter().map(|r| (r.name.clone(), sms::route(r, &self.inner.http))).collect()),
            None => (String::new(), Vec::new()),
        };
        let mut texts = vec![("body", o.body.as_str())];
        if let Some(t) = &o.title {
            texts.push(("title", t.as_str()));
        }
        let texts = snippets::Compiled::new(&texts)?;
        let s = std::sync::Arc::new(Sending { o, w, from, sms_from, routes, texts });
        let mut told = std::time::Instant::now();
        // A chunk's people are read and its messages rendered while the one
        // before is being written: the writer is the one part that cannot
        // run beside anything, so the rest is kept off its path.
        let mut next = self.prepare(&s, outbound::claim(db, outbound_id, CHUNK).await?).await?;
        while !next.is_empty() {
            let current = next;
            let claimed = outbound::claim(db, outbound_id, CHUNK).await?;
            // On a task of its own, so rendering runs beside the writes
            // rather than between their statements.
            let preparing = {
                let (me, s) = (self.clone(), s.clone());
                tokio::spawn(async move { me.prepare(&s, claimed).await })
            };
            let done = self.finish(&s, current).await?;
            outbound::record(db, &ws, outbound_id, &done).await?;
            let n = done.len();
            next = preparing.await.map_err(|e| Error::Internal(anyhow::anyhow!("preparing a chunk: {e}")))??;
            tracing::debug!(n, "an outbound chunk");
            // Counting is a query over every row: twice a second is live enough.
            if told.elapsed() >= PROGRESS_EVERY {
                self.progress(&ws, outbound_id).await?;
                told = std::time::Instant::now();
            }
        }
        match outbound::next_due(db, outbound_id).await? {
            Some(at) => self.queue_outbound(outbound_id, at).await,
            None => {
                // The last frame says `sent`.
                self.progress(&ws, outbound_id).await?;
                if s.o.channels.contains(&Channel::Chat) && s.o.options.email_fallback && s.w.email_fallback {
                    let due = parley_engine::util::now_ms() + i64::try_from(self.inner.fallback_delay.as_millis()).unwrap_or(i64::MAX / 2);
                    let job = Job::OutboundFallback { outbound_id: outbound_id.to_owned() };
                    self.inner.queue.push_once_at(job, due, &format!("outbound-fallback:{outbound_id}")).await?;
                }
                Ok(())
            }
        }
    }

    /// The outbound's missed-message emails, all in one job once the delay
    /// has passed after the last of them was sent: each conversation's email
    /// goes out as a single message's job would send it (nothing if the
    /// person has seen it, has no address or unsubscribed).
    pub(crate) async fn outbound_fallbacks(&self, outbound_id: &str) -> Result<()> {
        let db = &self.engine().db;
        let Some(ws) = outbound::workspace_of(db, outbound_id).await? else { return Ok(()) };
        let mut cursor = String::new();
        loop {
            let page = outbound::chats_after(db, outbound_id, &cursor, 500).await?;
            let Some(last) = page.last() else { return Ok(()) };
            cursor = last.0.clone();
            for (_, conversation_id, message_id) in &page {
                self.send_fallback(&ws, conversation_id, message_id).await?;
            }
        }
    }

    /// Reads a claimed chunk's people and renders their messages; what cannot
    /// be sent (the person is gone, the snippet fails) is done already.
    async fn prepare(&self, s: &Sending, work: Vec<Work>) -> Result<Prepared> {
        let mut prepared = Prepared::default();
        if work.is_empty() {
            return Ok(prepared);
        }
        let ids: Vec<String> = work.iter().map(|w| w.person_id.clone()).collect();
        let people = profile::many(&self.engine().db, &s.w.id, &ids).await?;
        let people: HashMap<&str, &Person> = people.iter().map(|p| (p.id.as_str(), p)).collect();
        let mut chats = Vec::new();
        for item in work {
            let Some(person) = people.get(item.person_id.as_str()).copied() else {
                prepared.done.push((item, Outcome { status: "skipped", reason: Some("person_deleted".into()), ..Outcome::default() }));
                continue;
            };
            match self.render(s, person) {
                Err(e) => {
                    prepared.done.push((item, Outcome { status: "failed", error: Some(e.to_string()), tries: 1, ..Outcome::default() }))
                }
                Ok((body, title)) if item.channel == "chat" => chats.push((item, person.clone(), body, title)),
                Ok((body, title)) => prepared.others.push((item, person.clone(), body, title)),
            }
        }
        prepared.chats = self.ready_chats(s, chats).await?;
        Ok(prepared)
    }

    /// A chunk's chats made ready to store (see `bulk::Ready`), unless they
    /// go into one shared chat.
    async fn ready_chats(&self, s: &Sending, chats: Vec<Rendered>) -> Result<Chats> {
        if s.o.options.transparent || chats.is_empty() {
            return Ok(Chats::Shared(chats));
        }
        let engine = self.engine();
        let mut items = Vec::with_capacity(chats.len());
        let mut work: HashMap<String, Work> = HashMap::new();
        for (item, person, body, title) in chats {
            // An announcement goes into the chat the person already has.
            let conversation_id = match s.o.kind {
                Kind::Announcement => chat::latest_open(&engine.db, &s.w.id, &person.id).await?,
                _ => None,
            };
            items.push(bulk::Item { key: item.id.clone(), person_id: person.id.clone(), body, conversation_id, title });
            work.insert(item.id.clone(), item);
        }
        Ok(Chats::Each(bulk::ready(&engine.db, chat_from(s), items).await?, work))
    }

    /// Sends a prepared chunk: its chat messages stored together, its emails
    /// and texts several at a time.
    async fn finish(&self, s: &Sending, prepared: Prepared) -> Result<Vec<(Work, Outcome)>> {
        let Prepared { mut done, chats, others } = prepared;
        if !chats.is_empty() {
            done.extend(self.send_chats(s, chats).await?);
        }
        let sent: Vec<(Work, Outcome)> = futures_util::stream::iter(others.into_iter().map(|(item, person, body, title)| async move {
            let person = &person;
            let outcome = match Channel::parse(&item.channel) {
                Some(Channel::Email) => self.send_email(s, person, body, title).await.unwrap_or_else(|e| Outcome {
                    status: "failed",
                    error: Some(e.to_string()),
                    tries: 1,
                    ..Outcome::default()
                }),
                Some(Channel::Sms) => self.send_sms(s, &item, person, body).await,
                _ => Outcome { status: "failed", error: Some(format!("unknown channel {}", item.channel)), tries: 1, ..Outcome::default() },
            };
            (item, outcome)
        }))
        .buffer_unordered(SEND_PARALLEL)
        .collect()
        .await;
        done.extend(sent);
        Ok(done)
    }

    fn render(&self, s: &Sending, person: &Person) -> Result<(String, Option<String>)> {
        let data = snippets::context(Some(person), Some((&s.from.name, &s.from.email)), Some(&s.w.name));
        let body = s.texts.render("body", &data)?;
        let title = s.o.title.as_ref().map(|_| s.texts.render("title", &data)).transpose()?;
        Ok((body, title))
    }

    async fn progress(&self, ws: &str, outbound_id: &str) -> Result<()> {
        outbound::publish_progress(&self.engine().db, &self.engine().hub, ws, outbound_id).await
    }

    async fn send_chats(&self, s: &Sending, chats: Chats) -> Result<Vec<(Work, Outcome)>> {
        let engine = self.engine();
        let from = chat_from(s);
        let (ready, mut work) = match chats {
            Chats::Shared(chats) => return self.send_shared(s, from, chats).await,
            Chats::Each(ready, work) => (ready, work),
        };
        let stored = bulk::send_ready(&engine.db, &engine.hub, from, ready).await?;
        let mut done = Vec::with_capacity(stored.len());
        for r in stored {
            match r {
                // Marked sent with its message: nothing is left to record.
                Ok(st) if st.recorded => {
                    work.remove(&st.key);
                }
                Ok(st) => {
                    if let Some(item) = work.remove(&st.key) {
                        let outcome = Outcome {
                            status: "sent",
                            conversation_id: Some(st.conversation_id),
                            message_id: Some(st.message_id),
                            tries: 1,
                            ..Outcome::default()
                        };
                        done.push((item, outcome));
                    }
                }
                Err(e) => tracing::info!(error = %e, "an outbound chat message was not stored"),
            }
        }
        // What was not stored (its person went away meanwhile) failed.
        for (_, item) in work {
            done.push((item, Outcome { status: "failed", error: Some("the person is gone".into()), tries: 1, ..Outcome::default() }));
        }
        Ok(done)
    }

    /// A shared chat: its one message (the same text for everyone, as
    /// `outbound::check` made sure) into the one conversation of all the
    /// recipients; each person's chat delivery is sent with it.
    async fn send_shared(&self, s: &Sending, from: bulk::From<'_>, chats: Vec<Rendered>) -> Result<Vec<(Work, Outcome)>> {
        let Some((_, _, body, title)) = chats.first() else { return Ok(Vec::new()) };
        let engine = self.engine();
        let st = bulk::send_shared(&engine.db, &engine.hub, from, &s.o.id, body.clone(), title.clone()).await?;
        Ok(chats
            .into_iter()
            .map(|(item, ..)| {
                let outcome = Outcome {
                    status: "sent",
                    conversation_id: Some(st.conversation_id.clone()),
                    message_id: Some(st.message_id.clone()),
                    tries: 1,
                    ..Outcome::default()
                };
                (item, outcome)
            })
            .collect())
    }

    /// The link a person opens to answer in their chat without the widget.
    fn link(&self, s: &Sending, person: &Person) -> Option<String> {
        (s.o.kind != Kind::OneWay)
            .then(|| format!("{}/c/{}", self.engine().public_url, outbound::link_token(&s.w.identity_secret, &s.o.id, &person.id)))
    }

    fn with_link(&self, s: &Sending, person: &Person, body: String) -> String {
        match self.link(s, person) {
            Some(url) if s.o.asks_ok() => format!("{body}\n\nTell us you are OK: {url}"),
            Some(url) => format!("{body}\n\nReply here: {url}"),
            None => body,
        }
    }

    async fn send_email(&self, s: &Sending, person: &Person, body: String, title: Option<String>) -> Result<Outcome> {
        // Checked again now: they may have unsubscribed since it was queued.
        let Some(to) = person.email.clone().filter(|_| !person.unsubscribed) else {
            let reason = if person.unsubscribed { "unsubscribed" } else { "no_email" };
            return Ok(Outcome { status: "skipped", reason: Some(reason.into()), ..Outcome::default() });
        };
        let engine = self.engine();
        let email = Outgoing {
            to,
            to_name: person.name.clone(),
            from_name: format!("{} at {}", s.from.name, s.w.name),
            subject: title.unwrap_or_else(|| format!("A message from {}", s.w.name)),
            text: self.with_link(s, person, body),
            reply_to: None,
            unsubscribe_url: Some(mail::unsubscribe_url(&engine.public_url, &s.w, &person.id)),
            links: mail::links(&engine.public_url, &s.o.attachments),
        };
        engine.mailer.send(&email).await?;
        Ok(Outcome { status: "sent", route: Some(engine.mailer.kind().into()), tries: 1, ..Outcome::default() })
    }

    /// Standard SMS: the first route, once. High quality: every route in
    /// order, then again after a growing pause, up to [`SMS_MAX_ATTEMPTS`].
    async fn send_sms(&self, s: &Sending, item: &Work, person: &Person, body: String) -> Outcome {
        let Some(to) = person.phone.clone().filter(|_| !person.unsubscribed) else {
            let reason = if person.unsubscribed { "unsubscribed" } else { "no_phone" };
            return Outcome { status: "skipped", reason: Some(reason.into()), ..Outcome::default() };
        };
        if s.routes.is_empty() {
            return Outcome {
                status: "failed",
                error: Some("SMS is not set up for this workspace".into()),
                tries: 1,
                ..Outcome::default()
            };
        }
        let body = self.with_link(s, person, body);
        let callback = format!("{}/sms/v1/status/{}", self.engine().public_url, outbound::status_token(&s.w.identity_secret, &item.id));
        let text = Text { to: &to, from: &s.sms_from, body: &body, status_callback: &callback };
        let high = s.o.options.sms_high_quality;
        let routes = if high { &s.routes[..] } else { &s.routes[..1] };
        let mut tries = 0;
        let mut last_error = String::new();
        let mut last_route = String::new();
        for (name, route) in routes {
            if item.attempts + tries >= SMS_MAX_ATTEMPTS {
                break;
            }
            tries += 1;
            match route.send(&text).await {
                Ok(accepted) => {
                    return Outcome {
                        status: "sent",
                        route: Some(name.clone()),
                        provider_id: Some(accepted.provider_id),
                        tries,
                        ..Outcome::default()
                    };
                }
                Err(e) => {
                    tracing::info!(route = %name, error = %e, delivery = %item.id, "an SMS route failed");
                    (last_error, last_route) = (format!("{name}: {e}"), name.clone());
                }
            }
        }
        let attempts = item.attempts + tries;
        if high && attempts < SMS_MAX_ATTEMPTS {
            let round = u32::try_from(attempts / routes.len().max(1) as i32).unwrap_or(1);
            let pause = pause_after(round).min(Duration::from_secs(3600));
            let next_at = parley_engine::util::now_ms() + i64::try_from(pause.as_millis()).unwrap_or(i64::MAX / 2);
            return Outcome { status: "queued", route: Some(last_route), error: Some(last_error), tries, next_at, ..Outcome::default() };
        }
        Outcome { status: "failed", route: Some(last_route), error: Some(last_error), tries, ..Outcome::default() }
    }
}
