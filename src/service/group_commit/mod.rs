//! Group commit of spends: concurrent spends are gathered and applied in
//! one database transaction, so a burst costs one commit (one fsync) and a
//! handful of set-based statements instead of a transaction each.
//!
//! Each worker has its own bounded queue, and a wallet's spends always go
//! to the same worker (by a hash of the workspace id), so a hot wallet's
//! burst lands in one batch instead of several batches queueing on its row
//! lock. A worker takes the first waiting spend and everything already
//! queued behind it; only when that found company (so other callers are
//! active) does it wait up to `window` for more. A lone spend is never
//! delayed. A batch (up to `max_batch`) takes one spend of each waiting
//! workspace in turn, so one workspace's flood cannot push the others'
//! spends back by more than a batch. Within a batch, decisions are made in arrival
//! order, each wallet's by the wallet's rules (`spend/batch.rs`, which
//! also answers a spend alone as a batch of one):
//! idempotency first, then burn-down, all-or-nothing per spend, the
//! low-balance check after each spend. A wallet with anything to settle
//! (an ended period, an expired grant) is settled first, in the batch.
//!
//! Correctness across instances still comes from the database: the batch
//! locks its wallets (`FOR UPDATE`, in id order, so batches cannot
//! deadlock), writes each head guarded on the sequence read, and the keys'
//! unique index refuses a second binding. If the batch's transaction fails,
//! nothing of it was written and each of its spends runs alone, so one
//! caller's failure is never another's.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};

use super::spend::SpendCall;
use super::{Ledger, SpendResult};
use crate::config::{DatabaseConfig, GroupCommitSettings, POSTGRES_WORKERS_DEFAULT};
use crate::error::{AppError, AppResult};
use crate::store;

/// Spends waiting for one worker; beyond this, callers wait to enqueue.
const QUEUE_CAPACITY: usize = 1024;

/// How many queues' worth of spends a worker holds to share them.
const WAITING_QUEUES: usize = 4;

/// Spends a worker took from its queue, by workspace. A batch takes one
/// spend of each workspace in turn, so a workspace flooding the queue
/// fills only what the others leave: another workspace's spend waits for
/// at most one batch, not behind the flood. Each workspace's spends keep
/// their order.
#[derive(Default)]
struct Waiting {
    by_workspace: std::collections::HashMap<String, std::collections::VecDeque<SpendJob>>,
    turns: std::collections::VecDeque<String>,
    len: usize,
}

impl Waiting {
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, job: SpendJob) {
        let workspace = job.call.scope.workspace_id().as_str();
        match self.by_workspace.get_mut(workspace) {
            Some(queue) => queue.push_back(job),
            None => {
                self.turns.push_back(workspace.to_owned());
                self.by_workspace
                    .insert(workspace.to_owned(), std::collections::VecDeque::from([job]));
            }
        }
        self.len += 1;
    }

    /// Up to `max` spends, one of each workspace in turn.
    fn take(&mut self, max: usize) -> Vec<SpendJob> {
        let mut jobs = Vec::with_capacity(max.min(self.len));
        while jobs.len() < max {
            let Some(workspace) = self.turns.pop_front() else {
                break;
            };
            let Some(queue) = self.by_workspace.get_mut(&workspace) else {
                continue;
            };
            if let Some(job) = queue.pop_front() {
                jobs.push(job);
                self.len -= 1;
            }
            if queue.is_empty() {
                self.by_workspace.remove(&workspace);
            } else {
                self.turns.push_back(workspace);
            }
        }
        jobs
    }
}

/// One caller's spend, waiting for its batch.
struct SpendJob {
    call: SpendCall,
    reply: oneshot::Sender<AppResult<SpendResult>>,
    /// When it was queued: the batch's debug log reports the wait.
    queued_at: std::time::Instant,
}

/// The workers' queues. Cheap to clone.
#[derive(Clone)]
pub(super) struct GroupCommit {
    senders: Arc<Vec<mpsc::Sender<SpendJob>>>,
}

impl GroupCommit {
    /// The queue of the worker that owns this workspace's wallet.
    fn queue(&self, workspace_id: &str) -> &mpsc::Sender<SpendJob> {
        // FNV-1a: stable, cheap, and well spread over short ids.
        let hash = workspace_id
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            });
        &self.senders[(hash % self.senders.len() as u64) as usize]
    }
}

impl Ledger {
    /// Routes this service's spends through group commit, with `settings`.
    ///
    /// The workers run on a thread of their own, with a single-threaded
    /// runtime and a pool of their own (two connections per worker on
    /// PostgreSQL, one on SQLite) opened from `database`. Each batch is a
    /// chain of round trips to the database; on the server's runtime, each
    /// reply waited in the run queue behind the HTTP tasks of every client
    /// (`docs/design/group-commit.md` has the figures). An in-memory SQLite
    /// database cannot be opened twice: there the workers share the
    /// server's pool and runtime.
    ///
    /// The workers stop, and their thread ends, when the last clone of the
    /// returned service is dropped.
    pub async fn with_group_commit(
        self,
        settings: GroupCommitSettings,
        database: &DatabaseConfig,
    ) -> anyhow::Result<Self> {
        let workers = settings
            .workers
            .unwrap_or(if store::is_sqlite(&self.db) {
                1
            } else {
                POSTGRES_WORKERS_DEFAULT
            })
            .max(1);
        if store::is_in_memory(&database.url) {
            let (queues, _) = self.clone().start_workers(workers, settings);
            return Ok(self.routed_to(queues));
        }
        let mut config = database.clone();
        // SQLite: one connection per worker, so each batch finds the pages
        // the last one read still in the connection's cache (a connection
        // that sees another's commit discards its cache).
        let per_worker = if store::is_sqlite(&self.db) { 1 } else { 2 };
        config.max_connections = u32::try_from(workers * per_worker).unwrap_or(u32::MAX);
        let base = self.clone();
        let (ready, started) = oneshot::channel::<anyhow::Result<GroupCommit>>();
        std::thread::Builder::new()
            .name("spend-batches".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready.send(Err(error.into()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let db = match store::open_pool(&config).await {
                        Ok(db) => db,
                        Err(error) => {
                            let _ = ready.send(Err(error.context("opening the spend batches' pool")));
                            return;
                        }
                    };
                    let (queues, workers) = base.on_database(db).start_workers(workers, settings);
                    let _ = ready.send(Ok(queues));
                    for worker in workers {
                        let _ = worker.await;
                    }
                });
            })
            .context("starting the spend batches' thread")?;
        let queues = started
            .await
            .context("the spend batches' thread ended before it started")??;
        Ok(self.routed_to(queues))
    }

    /// Starts `workers` workers on the current runtime.
    fn start_workers(
        self,
        workers: usize,
        settings: GroupCommitSettings,
    ) -> (GroupCommit, Vec<tokio::task::JoinHandle<()>>) {
        let mut senders = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
            // The workers' own service has no queue: it would keep it open.
            handles.push(tokio::spawn(self.clone().run_worker(receiver, settings)));
            senders.push(sender);
        }
        (
            GroupCommit {
                senders: Arc::new(senders),
            },
            handles,
        )
    }

    fn routed_to(mut self, queues: GroupCommit) -> Self {
        self.group_commit = Some(queues);
        self
    }

    /// Queues a spend and waits for its batch's answer.
    pub(super) async fn spend_grouped(&self, group: &GroupCommit, call: SpendCall) -> AppResult<SpendResult> {
        let (reply, answer) = oneshot::channel();
        let queued_at = std::time::Instant::now();
        let job = SpendJob {
            call,
            reply,
            queued_at,
        };
        let queue = group.queue(job.call.scope.workspace_id().as_str());
        if let Err(mpsc::error::SendError(job)) = queue.send(job).await {
            return self.spend_alone(job.call).await;
        }
        let answer = answer
            .await
            .unwrap_or_else(|_| Err(AppError::Internal(anyhow::anyhow!("a spend batch was lost"))));
        // With the batch's own log, splits a spend's time into the hand-offs
        // and the batch (`docs/benchmarks.md`, a lone spend).
        tracing::debug!(
            answered_us = queued_at.elapsed().as_micros() as u64,
            "spend answered by its batch"
        );
        answer
    }

    async fn run_worker(self, mut receiver: mpsc::Receiver<SpendJob>, settings: GroupCommitSettings) {
        let mut waiting = Waiting::default();
        loop {
            if waiting.is_empty() {
                let Some(first) = receiver.recv().await else {
                    return;
                };
                waiting.push(first);
            }
            // Everything already queued, up to a few queues' worth held
            // here (the queue holds the rest, so callers still feel
            // back-pressure): a spend that arrives finds the queue nearly
            // empty and is in the next batch.
            while waiting.len() < QUEUE_CAPACITY * WAITING_QUEUES {
                match receiver.try_recv() {
                    Ok(job) => waiting.push(job),
                    Err(_) => break,
                }
            }
            if waiting.len() > 1 && waiting.len() < settings.max_batch && !settings.window.is_zero() {
                let deadline = tokio::time::Instant::now() + settings.window;
                while waiting.len() < settings.max_batch {
                    match tokio::time::timeout_at(deadline, receiver.recv()).await {
                        Ok(Some(job)) => waiting.push(job),
                        _ => break,
                    }
                }
            }
            let jobs = waiting.take(settings.max_batch);
            self.metrics.spend_batch(jobs.len());
            // Its own task: a panic loses this batch's answers (its callers
            // get an internal error), not the worker.
            let _ = tokio::spawn(self.clone().spend_batch(jobs)).await;
        }
    }

    async fn spend_batch(self, jobs: Vec<SpendJob>) {
        let now = self.now();
        let queued_at = jobs
            .first()
            .map_or_else(std::time::Instant::now, |job| job.queued_at);
        let (calls, replies): (Vec<SpendCall>, Vec<_>) =
            jobs.into_iter().map(|job| (job.call, job.reply)).unzip();
        match self.charge_batch(&calls, queued_at, now).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
            Err(error) => {
                self.metrics.spend_batch_failed();
                tracing::warn!(
                    code = error.code(),
                    spends = calls.len(),
                    "a spend batch failed and wrote nothing; its spends run one by one"
                );
                for (call, reply) in calls.into_iter().zip(replies) {
                    let answer = self.spend_alone(call).await;
                    let _ = reply.send(answer);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::DATABASE_ACQUIRE_TIMEOUT_DEFAULT;
    use crate::events::EventBus;

    /// Wallets spread evenly over the workers: the hash decides which
    /// worker's batches a wallet rides, so a poor spread leaves a worker
    /// idle while another queues. The same workspace always gets the same
    /// worker.
    #[test]
    fn wallets_spread_over_the_workers() {
        let mut receivers = Vec::new();
        let senders = (0..2)
            .map(|_| {
                let (sender, receiver) = mpsc::channel(1);
                receivers.push(receiver);
                sender
            })
            .collect();
        let group = GroupCommit {
            senders: Arc::new(senders),
        };
        let first = |workspace: &str| group.queue(workspace).same_channel(&group.senders[0]);
        let on_first = (0..1_000).filter(|n| first(&format!("ws-{n}"))).count();
        assert!(
            (450..=550).contains(&on_first),
            "{on_first} of 1,000 on the first worker"
        );
        let routed: Vec<bool> = (0..100).map(|n| first(&format!("ws-{n}"))).collect();
        let again: Vec<bool> = (0..100).map(|n| first(&format!("ws-{n}"))).collect();
        assert_eq!(routed, again);
    }

    /// Threads of this process named as the workers' thread (no other unit
    /// test starts one).
    fn worker_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim() == "spend-batches")
            .count()
    }

    /// The workers' thread lives while any handle to the service does, and
    /// ends with the last one (a server, or a test app, leaks no thread or
    /// pool when it is dropped).
    #[tokio::test]
    async fn the_workers_thread_ends_with_the_last_handle() {
        let directory = tempfile::tempdir().unwrap();
        let config = DatabaseConfig {
            url: format!(
                "sqlite://{}?mode=rwc",
                directory.path().join("credits.db").display()
            ),
            schema: None,
            max_connections: 2,
            acquire_timeout: DATABASE_ACQUIRE_TIMEOUT_DEFAULT,
        };
        let db = store::connect_and_migrate(&config).await.unwrap();
        let clock = Arc::new(ManualClock::new(crate::clock::wall()));
        let ledger = Ledger::new(db, clock, EventBus::default())
            .with_group_commit(GroupCommitSettings::default(), &config)
            .await
            .unwrap();
        assert_eq!(worker_threads(), 1);

        let handle = ledger.clone();
        drop(ledger);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(worker_threads(), 1, "a clone still routes spends to the workers");

        drop(handle);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while worker_threads() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(worker_threads(), 0, "the workers' thread ended");
    }
}
