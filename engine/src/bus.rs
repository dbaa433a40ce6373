//! In-process notices of what happened in the domain: a message stored, a
//! person created or changed, an event tracked. They are published after the
//! change commits, by the code that made it, so a subscriber (automations,
//! later webhooks) reacts only to what is durable and never couples the
//! writer to its readers.
//!
//! The bus is per node and best-effort: a subscriber that falls more than
//! [`CAPACITY`] notices behind loses the oldest ones (and is told how many).
//! What must survive a restart belongs in the database, not here.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use crate::chat::Message;
use crate::events::PersonRef;

/// Notices kept for a slow subscriber before the oldest are dropped.
pub const CAPACITY: usize = 4096;

/// Who caused a change: a person or teammate, or an automation. Automations
/// ignore what automations caused, so a rule cannot set off itself or another
/// rule in a loop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Cause {
    #[default]
    Someone,
    Automation(String),
}

impl Cause {
    pub fn is_automation(&self) -> bool {
        matches!(self, Cause::Automation(_))
    }
}

#[derive(Clone, Debug)]
pub enum Happening {
    /// A message was stored; `started` when it opened its conversation.
    MessageCreated {
        workspace_id: String,
        message: Message,
        started: bool,
        cause: Cause,
        /// When it was planned as a missed message (a teammate's or the
        /// bot's, the person offline, emails on), for its email's job.
        missed_at: Option<i64>,
    },
    PersonCreated {
        workspace_id: String,
        person_id: String,
        cause: Cause,
    },
    PersonUpdated {
        workspace_id: String,
        person_id: String,
        cause: Cause,
    },
    /// A tracked event (`page.view` included), about the person `person`
    /// names; the events are stored by the time this is published.
    EventTracked {
        workspace_id: String,
        person: PersonRef,
        name: String,
        data: Value,
        /// When it was recorded (epoch ms): a greeting's "no other page
        /// since" counts from here, not from when automations got to it.
        at: i64,
        cause: Cause,
    },
    /// An outbound's deliveries are stored and wait for the sender.
    OutboundQueued {
        workspace_id: String,
        outbound_id: String,
        cause: Cause,
    },
}

impl Happening {
    /// Someone's event about a known person (the widget's `track` and page views).
    pub fn tracked(workspace_id: &str, person_id: &str, name: &str, data: Value, at: i64) -> Happening {
        Happening::EventTracked {
            workspace_id: workspace_id.to_owned(),
            person: PersonRef { id: Some(person_id.to_owned()), ..Default::default() },
            name: name.to_owned(),
            data,
            at,
            cause: Cause::Someone,
        }
    }

    pub fn workspace_id(&self) -> &str {
        match self {
            Happening::MessageCreated { workspace_id, .. }
            | Happening::PersonCreated { workspace_id, .. }
            | Happening::PersonUpdated { workspace_id, .. }
            | Happening::EventTracked { workspace_id, .. }
            | Happening::OutboundQueued { workspace_id, .. } => workspace_id,
        }
    }

    pub fn cause(&self) -> &Cause {
        match self {
            Happening::MessageCreated { cause, .. }
            | Happening::PersonCreated { cause, .. }
            | Happening::PersonUpdated { cause, .. }
            | Happening::EventTracked { cause, .. }
            | Happening::OutboundQueued { cause, .. } => cause,
        }
    }
}

#[derive(Clone)]
pub struct Bus {
    tx: broadcast::Sender<Arc<Happening>>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus { tx: broadcast::channel(CAPACITY).0 }
    }
}

impl Bus {
    /// Tells every subscriber; with none, the notice is simply dropped.
    pub fn publish(&self, happening: Happening) {
        let _ = self.tx.send(Arc::new(happening));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Happening>> {
        self.tx.subscribe()
    }
}
