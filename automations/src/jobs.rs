//! Work that happens later and must survive a restart: a flow's `wait` step,
//! the `conversation.unanswered` check, a greeting after time on a page, the
//! next time of a schedule, a rule's email or webhook. Each is an apalis job in the same
//! database as everything else (apalis's own tables, migrated apart from
//! Parley's), carrying an episode key: a job whose world moved on (the
//! visitor answered, a teammate replied, the flow went elsewhere) finds its
//! key stale and does nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use parley_engine::{Db, Error, Result};
use serde::{Deserialize, Serialize};

use crate::runner::Automations;

/// How often the worker looks for jobs that have come due.
const POLL: Duration = Duration::from_millis(250);
/// Tries of a job whose handler failed (the database was away, say).
const ATTEMPTS: usize = 3;
/// Pause before a stopped worker is started again.
const RESTART_AFTER: Duration = Duration::from_secs(1);
/// apalis keeps its migration history apart from Parley's, so neither ever
/// sees the other's versions as unknown.
const MIGRATIONS_TABLE: &str = "_apalis_migrations";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    /// A flow's wait step is over: go on, if the run is still at step `episode`.
    FlowResume { workspace_id: String, run_id: String, episode: i64 },
    /// A person's message has waited the automation's minutes: run it if no
    /// one has answered since `message_id`.
    Unanswered { workspace_id: String, automation_id: String, conversation_id: String, message_id: String },
    /// A page view's `after_seconds` are over: greet if the person is still
    /// online and has viewed no other page since `viewed_at`.
    PageStay { workspace_id: String, automation_id: String, person_id: String, url: String, title: Option<String>, viewed_at: i64 },
    /// A schedule's time `due` (epoch ms) has come: run it if the automation
    /// is still the `version` that planned it, and plan the next time.
    Schedule { workspace_id: String, automation_id: String, version: i64, due: i64 },
    /// A rule's `send_email`, rendered; `tries` that failed so far.
    Email { workspace_id: String, automation_id: String, person_id: String, subject: String, text: String, tries: u32 },
    /// A teammate's or the bot's message may have been missed: email what the
    /// person has not seen, if `message_id` is still the newest planned.
    EmailFallback { workspace_id: String, conversation_id: String, message_id: String },
    /// An outbound's queued deliveries are due: send them.
    Outbound { outbound_id: String },
    /// An outbound was sent a while ago: email its chats' missed messages.
    OutboundFallback { outbound_id: String },
    /// A webhook subscription's delivery (its row holds body and tries).
    WebhookDelivery { delivery_id: String },
    /// A rule's `webhook`: the JSON body to post; `tries` that failed so far.
    Webhook { workspace_id: String, automation_id: String, url: String, body: String, tries: u32 },
}

/// The job queue in the configured database.
#[derive(Clone)]
pub enum Queue {
    Sqlite(SqliteStorage<Job>),
    Postgres(PostgresStorage<Job>),
}

impl Queue {
    /// Creates apalis's tables if need be. On SQLite jobs go through Parley's
    /// single writer connection, like every other write.
    pub async fn open(db: &Db) -> anyhow::Result<Queue> {
        match db {
            Db::Sqlite { write, .. } => {
                let mut m = SqliteStorage::<()>::migrations();
                m.dangerous_set_table_name(MIGRATIONS_TABLE);
                m.run(write).await?;
            }
            Db::Postgres(pool) => {
                let mut m = PostgresStorage::<()>::migrations();
                m.dangerous_set_table_name(MIGRATIONS_TABLE);
                m.run(pool).await?;
            }
        }
        Ok(Queue::of(db))
    }

    /// The queue of a database [`Queue::open`] has already prepared.
    pub fn of(db: &Db) -> Queue {
        match db {
            Db::Sqlite { write, .. } => Queue::Sqlite(SqliteStorage::new(write)),
            Db::Postgres(pool) => Queue::Postgres(PostgresStorage::new(pool)),
        }
    }

    /// Queues `job` to run once `delay` has passed.
    pub async fn push_after(&self, job: Job, delay: Duration) -> Result<()> {
        let task = TaskBuilder::new(job).run_at_timestamp(due_second(SystemTime::now(), delay)).max_attempts(ATTEMPTS).build();
        self.push(task).await
    }

    /// Queues `job` to run at once (in the current second), once per `key`.
    pub async fn push_now_once(&self, job: Job, key: &str) -> Result<()> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        self.push_once_at(job, i64::try_from(now / 1000 * 1000).unwrap_or_default(), key).await
    }

    /// Queues `job` for the time `at` (epoch ms), once per `key`: queueing
    /// the same key again (a retried job planning its successor) is a no-op.
    pub async fn push_once_at(&self, job: Job, at: i64, key: &str) -> Result<()> {
        let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(at).unwrap_or_default());
        let task =
            TaskBuilder::new(job).run_at_timestamp(due_second(at, Duration::ZERO)).max_attempts(ATTEMPTS).idempotency_key(key).build();
        match self.push(task).await {
            // SQLite skips a known key; PostgreSQL refuses it on the unique index.
            Err(e) if e.to_string().contains("idx_jobs_idempotency_key") => Ok(()),
            done => done,
        }
    }

    async fn push(&self, task: Task<Job>) -> Result<()> {
        let pushed = match self {
            Queue::Sqlite(s) => s.clone().push_task(task).await.map_err(|e| e.to_string()),
            Queue::Postgres(s) => s.clone().push_task(task).await.map_err(|e| e.to_string()),
        };
        pushed.map_err(|e| Error::Internal(anyhow::anyhow!("queueing a job: {e}")))
    }

    /// Works the queue until the engine shuts down. A worker that stops on
    /// its own (apalis gives up on a storage error) is started again, so one
    /// database hiccup does not end all later jobs.
    pub fn work(&self, automations: Automations) {
        let queue = self.clone();
        tokio::spawn(async move {
            let shutdown = automations.engine().shutdown.clone();
            while !shutdown.is_cancelled() {
                let outcome = queue.run_worker(automations.clone()).await;
                if shutdown.is_cancelled() {
                    break;
                }
                tracing::error!(outcome, "the job worker stopped; starting it again");
                metrics::counter!("parley_job_worker_restarts_total").increment(1);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(RESTART_AFTER) => {}
                }
            }
        });
    }

    /// Runs one worker until it stops or the engine shuts down.
    async fn run_worker(&self, automations: Automations) -> String {
        let shutdown = automations.engine().shutdown.clone();
        // A name of its own per run: apalis tells workers apart by name when
        // it hands back the jobs of one that died.
        let name = format!("parley-{}", parley_engine::util::new_id());
        let stop = async move {
            shutdown.cancelled().await;
            Ok::<(), std::io::Error>(())
        };
        // The same worker on either storage; the two are different types.
        macro_rules! run {
            ($storage:expr) => {{
                let backend = $storage.poll_with_strategy(Every::new(POLL));
                let worker = WorkerBuilder::new(name).backend(backend).data(automations).build(handle);
                match worker.run_until(stop).await {
                    Ok(()) => "ended".to_owned(),
                    Err(e) => e.to_string(),
                }
            }};
        }
        match self.clone() {
            Queue::Sqlite(s) => run!(s),
            Queue::Postgres(s) => run!(s),
        }
    }
}

/// Wakes the worker every `period` to look for jobs that came due.
///
/// apalis's own interval strategy starts its next timer without polling it,
/// so when a fetch then finishes without ever waiting, nothing is left to
/// wake the worker: due jobs sat until the next heartbeat (30 s). Polling the
/// fresh tick at once registers the wake-up every time.
struct Every(tokio::time::Interval);

impl Every {
    fn new(period: Duration) -> Every {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Every(interval)
    }
}

impl PollStrategy for Every {
    fn poll_drive(&mut self, cx: &mut std::task::Context<'_>, _: &PollSnapshot) -> std::task::Poll<Option<()>> {
        let mut ticked = false;
        // Until the next tick is pending, which leaves its waker armed.
        while self.0.poll_tick(cx).is_ready() {
            ticked = true;
        }
        if ticked { std::task::Poll::Ready(Some(())) } else { std::task::Poll::Pending }
    }
}

/// The whole second a job may run from. apalis keeps due times in whole
/// seconds and runs a job once that second has begun, so the time is rounded
/// up: a job never runs before its delay is over (a greeting after one second
/// on a page must not come 0.1 s after the view), and at most a second late.
fn due_second(now: SystemTime, delay: Duration) -> u64 {
    let due = (now + delay).duration_since(UNIX_EPOCH).unwrap_or_default();
    due.as_secs() + u64::from(due.subsec_nanos() > 0)
}

/// Runs each job on a task of its own, aborted if the worker drops it (at
/// shutdown), as the job itself would have been. Run inside the worker's
/// task, a job woke the worker at every step (each database call), and
/// apalis looks for new jobs at every wake-up: a mass send made about 50
/// small write transactions a second on SQLite's one writer instead of the
/// poll timer's 4.
async fn handle(job: Job, automations: Data<Automations>) -> std::result::Result<(), BoxDynError> {
    let automations = Automations::clone(&automations);
    match tokio_util::task::AbortOnDropHandle::new(tokio::spawn(run(job, automations))).await {
        Ok(done) => done,
        Err(e) => Err(Box::new(e)),
    }
}

async fn run(job: Job, automations: Automations) -> std::result::Result<(), BoxDynError> {
    let done = match &job {
        Job::FlowResume { workspace_id, run_id, episode } => automations.resume_flow(workspace_id, run_id, *episode).await,
        Job::Unanswered { workspace_id, automation_id, conversation_id, message_id } => {
            automations.unanswered(workspace_id, automation_id, conversation_id, message_id).await
        }
        Job::PageStay { workspace_id, automation_id, person_id, url, title, viewed_at } => {
            automations.page_stay(workspace_id, automation_id, person_id, url, title.as_deref(), *viewed_at).await
        }
        Job::Schedule { workspace_id, automation_id, version, due } => {
            automations.scheduled(workspace_id, automation_id, *version, *due).await
        }
        Job::Email { .. } => automations.deliver_email(&job).await,
        Job::EmailFallback { workspace_id, conversation_id, message_id } => {
            automations.send_fallback(workspace_id, conversation_id, message_id).await
        }
        Job::Webhook { .. } => automations.deliver_webhook(&job).await,
        Job::Outbound { outbound_id } => automations.send_outbound(outbound_id).await,
        Job::OutboundFallback { outbound_id } => automations.outbound_fallbacks(outbound_id).await,
        Job::WebhookDelivery { delivery_id } => automations.deliver_subscription(delivery_id).await,
    };
    done.map_err(|e| {
        tracing::warn!(error = %e, ?job, "a job failed");
        Box::new(e) as BoxDynError
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts its wake-ups.
    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_poll_timer_wakes_the_worker_again_after_every_tick() {
        let count = std::sync::Arc::new(Count(Default::default()));
        let waker = std::task::Waker::from(count.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        let mut every = Every::new(Duration::from_millis(20));
        // A tick, then nothing polls the strategy again (the fetch it set
        // off finished at once): the next tick must still wake the worker.
        while every.poll_drive(&mut cx, &PollSnapshot::default()).is_pending() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        count.0.store(0, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(count.0.load(std::sync::atomic::Ordering::SeqCst) >= 1, "no wake-up after the tick");
        assert!(every.poll_drive(&mut cx, &PollSnapshot::default()).is_ready());
    }

    #[test]
    fn a_job_is_never_due_before_its_delay_is_over() {
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        // 0.9 s past a second plus a 1 s delay: due at 2.0 s, not 1.0 s.
        assert_eq!(due_second(at(10_900), Duration::from_secs(1)), 12);
        assert_eq!(due_second(at(10_000), Duration::from_secs(1)), 11);
        assert_eq!(due_second(at(10_001), Duration::from_millis(2_999)), 13);
        assert_eq!(due_second(at(10_000), Duration::ZERO), 10);
    }
}
