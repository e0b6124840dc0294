//! Group commit of spends: concurrent spends are gathered and applied in
//! one database transaction, so a burst costs one commit (one fsync) and a
//! handful of set-based statements instead of a transaction each.
//!
//! Each worker has its own bounded queue, and a wallet's spends always go
//! to the same worker (by a hash of the workspace id), so a hot wallet's
//! burst lands in one batch instead of several batches queueing on its row
//! lock. A worker takes the first waiting spend and everything already
//! queued behind it (up to `max_batch`); only when that found company (so
//! other callers are active) does it wait up to `window` for more. A lone
//! spend is never delayed. Within a batch, decisions are made in arrival
//! order, each wallet's with exactly the rules of a single spend
//! (`spend.rs`):
//! idempotency first, then burn-down, all-or-nothing per spend, the
//! low-balance check after each spend. A wallet with anything to settle
//! (an ended period, an expired grant) is left out of the batch and its
//! spends take the single-spend path, which settles first.
//!
//! Correctness across instances still comes from the database: the batch
//! locks its wallets (`FOR UPDATE`, in id order, so batches cannot
//! deadlock), writes each head guarded on the sequence read, and the keys'
//! unique index refuses a second binding. If the batch's transaction fails,
//! nothing of it was written and each of its spends runs alone, so one
//! caller's failure is never another's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use entity::{credit_grant, ledger_entry, low_balance_alert, wallet};
use sea_orm::Set;
use tokio::sync::{mpsc, oneshot};

use super::period::period_state;
use super::spend::{conflict, suggestion};
use super::{
    BalanceView, Ledger, SpendRequest, SpendResult, TransactionView, check_heads, low_balance_step, spendable,
};
use crate::auth::WalletScope;
use crate::config::DatabaseConfig;
use crate::domain::catalogue::LedgerKind;
use crate::domain::settlement::{is_grant_due, renewal_due};
use crate::domain::spend::{SpendDecision, SpendOutcome, decide_spend, spend_fingerprint};
use crate::error::{AppError, AppResult};
use crate::events::{BalanceEvent, EventKind};
use crate::store::batch::{NewRow, RowMove, SpendWrites};
use crate::store::{self, db_error};

/// Spends waiting for one worker; beyond this, callers wait to enqueue.
const QUEUE_CAPACITY: usize = 1024;

/// How spends are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitSettings {
    /// Most spends in one transaction.
    pub max_batch: usize,
    /// Longest wait for company once other spends are arriving.
    pub window: Duration,
    /// Batches in flight at once (each holds one connection); `None`: one
    /// on SQLite (a single writer), [`POSTGRES_WORKERS_DEFAULT`] on
    /// PostgreSQL.
    pub workers: Option<usize>,
}

/// Default for [`GroupCommitSettings::max_batch`].
pub const MAX_BATCH_DEFAULT: usize = 256;
/// Default for [`GroupCommitSettings::window`].
pub const WINDOW_DEFAULT: Duration = Duration::ZERO;
/// Default batches in flight on PostgreSQL.
pub const POSTGRES_WORKERS_DEFAULT: usize = 2;

impl Default for GroupCommitSettings {
    fn default() -> Self {
        Self {
            max_batch: MAX_BATCH_DEFAULT,
            window: WINDOW_DEFAULT,
            workers: None,
        }
    }
}

/// One caller's spend, waiting for its batch.
struct SpendJob {
    scope: WalletScope,
    request: SpendRequest,
    reply: oneshot::Sender<AppResult<SpendResult>>,
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
    /// runtime and a pool of their own (two connections per worker) opened
    /// from `database`. Each batch is a chain of round trips to the
    /// database; on the server's runtime, each reply waited in the run
    /// queue behind the HTTP tasks of every client (the README's group
    /// commit section has the figures). An in-memory SQLite database cannot
    /// be opened twice: there the workers share the server's pool and
    /// runtime.
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
        config.max_connections = u32::try_from(workers * 2).unwrap_or(u32::MAX);
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
    pub(super) async fn spend_grouped(
        &self,
        group: &GroupCommit,
        scope: &WalletScope,
        request: SpendRequest,
    ) -> AppResult<SpendResult> {
        let (reply, answer) = oneshot::channel();
        let job = SpendJob {
            scope: scope.clone(),
            request,
            reply,
        };
        let queue = group.queue(job.scope.workspace_id().as_str());
        if let Err(mpsc::error::SendError(job)) = queue.send(job).await {
            return self.spend_once(&job.scope, job.request).await;
        }
        answer
            .await
            .unwrap_or_else(|_| Err(AppError::Internal(anyhow::anyhow!("a spend batch was lost"))))
    }

    async fn run_worker(self, mut receiver: mpsc::Receiver<SpendJob>, settings: GroupCommitSettings) {
        loop {
            let jobs = {
                let Some(first) = receiver.recv().await else {
                    return;
                };
                let mut jobs = vec![first];
                while jobs.len() < settings.max_batch {
                    match receiver.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                if jobs.len() > 1 && !settings.window.is_zero() {
                    let deadline = tokio::time::Instant::now() + settings.window;
                    while jobs.len() < settings.max_batch {
                        match tokio::time::timeout_at(deadline, receiver.recv()).await {
                            Ok(Some(job)) => jobs.push(job),
                            _ => break,
                        }
                    }
                }
                jobs
            };
            self.metrics.spend_batch(jobs.len());
            // Its own task: a panic loses this batch's answers (its callers
            // get an internal error), not the worker.
            let _ = tokio::spawn(self.clone().spend_batch(jobs)).await;
        }
    }

    async fn spend_batch(self, jobs: Vec<SpendJob>) {
        // Stored timestamps have microseconds; answers match what is read back.
        let now = self.now().trunc_subsecs(6);
        let (answers, events) = match self.charge_batch(&jobs, now).await {
            Ok(done) => done,
            Err(error) => {
                self.metrics.spend_batch_failed();
                tracing::warn!(
                    code = error.code(),
                    spends = jobs.len(),
                    "a spend batch failed and wrote nothing; its spends run one by one"
                );
                (jobs.iter().map(|_| None).collect(), Vec::new())
            }
        };
        self.committed(events);
        for (job, answer) in jobs.into_iter().zip(answers) {
            let answer = match answer {
                Some(answer) => answer,
                None => self.spend_once(&job.scope, job.request).await,
            };
            let _ = job.reply.send(answer);
        }
    }

    /// Decides and writes a batch in one transaction. An answer is `None`
    /// for a spend left to the single-spend path.
    async fn charge_batch(
        &self,
        jobs: &[SpendJob],
        now: DateTime<Utc>,
    ) -> AppResult<(Vec<Option<AppResult<SpendResult>>>, Vec<BalanceEvent>)> {
        let started = std::time::Instant::now();
        let txn = store::begin_write(&self.db).await.map_err(db_error)?;
        let keys: Vec<(String, String)> = jobs
            .iter()
            .map(|job| {
                (
                    job.scope.workspace_id().as_str().to_owned(),
                    job.request.idempotency_key.as_str().to_owned(),
                )
            })
            .collect();
        let reads = store::batch::read_spends(&txn, &keys).await.map_err(db_error)?;
        let mut grants: HashMap<i64, Vec<credit_grant::Model>> = HashMap::new();
        for grant in reads.grants {
            grants.entry(grant.wallet_id).or_default().push(grant);
        }
        let costs: HashMap<String, i64> = reads
            .costs
            .into_iter()
            .map(|cost| (cost.action, cost.credits))
            .collect();
        let mut states: HashMap<String, Charging> = HashMap::new();
        for wallet in reads.wallets {
            let grants = grants.remove(&wallet.id).unwrap_or_default();
            let due = renewal_due(&period_state(&wallet)?, now).is_some()
                || grants.iter().any(|grant| is_grant_due(grant.expires_at, now));
            states.insert(wallet.workspace_id.clone(), Charging::new(wallet, grants, due));
        }
        let workspaces: HashMap<i64, String> = states
            .values()
            .map(|state| (state.wallet.id, state.wallet.workspace_id.clone()))
            .collect();
        let mut stored: HashMap<i64, ledger_entry::Model> = HashMap::new();
        for entry in reads.bound {
            let state = workspaces
                .get(&entry.wallet_id)
                .and_then(|workspace_id| states.get_mut(workspace_id));
            if let (Some(state), Some(key)) = (state, entry.idempotency_key.clone()) {
                let fingerprint = entry.idempotency_fingerprint.clone().unwrap_or_default();
                state.keys.insert(key, (fingerprint, Bound::Stored(entry.id)));
                stored.insert(entry.id, entry);
            }
        }

        let read = started.elapsed();
        let mut batch = Batch::default();
        let mut decided = Vec::with_capacity(jobs.len());
        for job in jobs {
            let decision = match states.get_mut(job.scope.workspace_id().as_str()) {
                None => Decided::Refused(AppError::NotFound("workspace")),
                Some(state) if state.due => Decided::Deferred,
                Some(state) => {
                    let cost = *costs.get(job.request.action.as_str()).ok_or_else(|| {
                        AppError::Internal(anyhow::anyhow!("no cost for {}", job.request.action))
                    })?;
                    let decided = state.decide(&job.scope, &job.request, cost, &mut batch)?;
                    state.check_low_balance(now, &mut batch);
                    decided
                }
            };
            decided.push(decision);
        }

        let decided_at = started.elapsed();
        let written = batch.write(&txn, &self.notify_channel, states, now).await?;
        let written_at = started.elapsed();
        txn.commit().await.map_err(db_error)?;
        tracing::debug!(
            spends = jobs.len(),
            read_us = read.as_micros() as u64,
            decided_us = decided_at.as_micros() as u64,
            written_us = written_at.as_micros() as u64,
            committed_us = started.elapsed().as_micros() as u64,
            "spend batch"
        );

        let needs_packs = decided.iter().any(|decision| {
            matches!(
                decision,
                Decided::Answer(Pending {
                    outcome: SpendOutcome::InsufficientCredits,
                    ..
                })
            )
        });
        let packs = if needs_packs {
            Some(self.packs().await?)
        } else {
            None
        };
        let mut answers = Vec::with_capacity(decided.len());
        for decision in decided {
            answers.push(match decision {
                Decided::Deferred => None,
                Decided::Refused(error) => Some(Err(error)),
                Decided::Answer(pending) => {
                    let transaction = match pending.bound {
                        Some(Bound::Stored(id)) => stored.get(&id).cloned(),
                        Some(Bound::New(row)) => written.rows.get(row).cloned(),
                        None => None,
                    };
                    let suggested_top_up = match (&packs, pending.outcome) {
                        (Some(packs), SpendOutcome::InsufficientCredits) => {
                            suggestion(packs, pending.balance.total, pending.cost)
                        }
                        _ => None,
                    };
                    Some(Ok(SpendResult {
                        outcome: pending.outcome,
                        transaction: transaction.map(TransactionView::from_model).transpose()?,
                        balance: pending.balance,
                        cost: pending.cost,
                        next_reset_at: pending.next_reset_at,
                        suggested_top_up,
                    }))
                }
            });
        }
        Ok((answers, written.events))
    }
}

/// Where a key's row is: already stored, or written by this batch.
#[derive(Debug, Clone, Copy)]
enum Bound {
    Stored(i64),
    New(usize),
}

/// A spend's answer before the batch commits.
struct Pending {
    outcome: SpendOutcome,
    bound: Option<Bound>,
    balance: BalanceView,
    cost: i64,
    next_reset_at: Option<DateTime<Utc>>,
}

enum Decided {
    Answer(Pending),
    Refused(AppError),
    Deferred,
}

/// One wallet of the batch, locked, kept in step with its decisions.
struct Charging {
    wallet: wallet::Model,
    original: wallet::Model,
    grants: Vec<credit_grant::Model>,
    due: bool,
    /// Keys bound in the database or earlier in the batch: fingerprint and row.
    keys: HashMap<String, (String, Bound)>,
}

/// What the batch will write, in decision order.
#[derive(Default)]
struct Batch {
    rows: Vec<NewRow>,
    /// Per row: its grant moves (grant id, signed credits).
    moves: Vec<Vec<(i64, i64)>>,
    alerts: Vec<low_balance_alert::ActiveModel>,
    /// Ledger rows and alerts, in the order their events are published.
    events: Vec<EventDraft>,
}

enum EventDraft {
    Row(usize),
    LowBalance {
        workspace_id: String,
        sequence: i64,
        balance: BalanceView,
    },
}

/// What the batch wrote: the stored rows (by index) and their events.
struct Written {
    rows: Vec<ledger_entry::Model>,
    events: Vec<BalanceEvent>,
}

impl Charging {
    fn new(wallet: wallet::Model, grants: Vec<credit_grant::Model>, due: bool) -> Self {
        Self {
            original: wallet.clone(),
            wallet,
            grants,
            due,
            keys: HashMap::new(),
        }
    }

    fn balance(&self) -> BalanceView {
        BalanceView::from_grants(&self.grants)
    }

    fn pending(&self, outcome: SpendOutcome, bound: Option<Bound>, cost: i64) -> Decided {
        Decided::Answer(Pending {
            outcome,
            bound,
            balance: self.balance(),
            cost,
            next_reset_at: self.wallet.period_end_at,
        })
    }

    /// One spend, by the rules of `spend.rs`, against the state so far.
    fn decide(
        &mut self,
        scope: &WalletScope,
        request: &SpendRequest,
        cost: i64,
        batch: &mut Batch,
    ) -> AppResult<Decided> {
        let fingerprint = spend_fingerprint(request.action.as_str(), request.reference.as_deref());
        let key = request.idempotency_key.as_str();
        if let Some((bound_fingerprint, bound)) = self.keys.get(key) {
            if *bound_fingerprint != fingerprint {
                return Ok(Decided::Refused(conflict()));
            }
            return Ok(self.pending(SpendOutcome::Duplicate, Some(*bound), cost));
        }
        let spendable = spendable(&self.grants)?;
        let burns = match decide_spend(&spendable, cost) {
            SpendDecision::Insufficient { .. } => {
                return Ok(self.pending(SpendOutcome::InsufficientCredits, None, cost));
            }
            SpendDecision::Charge(burns) => burns,
        };
        for burn in &burns {
            if let Some(grant) = self.grants.iter_mut().find(|grant| grant.id == burn.grant_id) {
                grant.remaining_credits -= burn.credits;
            }
        }
        self.wallet.balance_credits -= cost;
        self.wallet.last_sequence += 1;
        let balance = self.balance();
        let row = batch.rows.len();
        batch.rows.push(NewRow {
            wallet_id: self.wallet.id,
            sequence: self.wallet.last_sequence,
            kind: LedgerKind::Spend.as_str(),
            amount_credits: -cost,
            balance_after_credits: self.wallet.balance_credits,
            allocation_after_credits: balance.split.allocation,
            purchased_after_credits: balance.split.purchased,
            bonus_after_credits: balance.split.bonus,
            reference: request.reference.clone(),
            action: Some(request.action.as_str()),
            actor: scope.actor().to_owned(),
            idempotency_key: Some(key.to_owned()),
            idempotency_fingerprint: Some(fingerprint.clone()),
        });
        batch
            .moves
            .push(burns.iter().map(|burn| (burn.grant_id, -burn.credits)).collect());
        batch.events.push(EventDraft::Row(row));
        self.keys.insert(key.to_owned(), (fingerprint, Bound::New(row)));
        Ok(self.pending(SpendOutcome::Charged, Some(Bound::New(row)), cost))
    }

    /// Alerts once when the balance is below the threshold, re-arms at or
    /// above it: as a single spend's commit does.
    fn check_low_balance(&mut self, now: DateTime<Utc>, batch: &mut Batch) {
        let balance = self.balance();
        if let Some(threshold) = low_balance_step(&mut self.wallet, balance.total, now) {
            batch.alerts.push(low_balance_alert::ActiveModel {
                wallet_id: Set(self.wallet.id),
                threshold_credits: Set(threshold),
                balance_credits: Set(balance.total),
                ledger_sequence: Set(self.wallet.last_sequence),
                created_at: Set(now),
                ..Default::default()
            });
            batch.events.push(EventDraft::LowBalance {
                workspace_id: self.wallet.workspace_id.clone(),
                sequence: self.wallet.last_sequence,
                balance,
            });
        }
    }
}

impl Batch {
    /// Writes the rows (each with its key), their grant moves, the grants, the alerts
    /// and the changed wallet heads (guarded), and notifies other instances.
    async fn write(
        self,
        txn: &sea_orm::DatabaseTransaction,
        notify_channel: &str,
        states: HashMap<String, Charging>,
        now: DateTime<Utc>,
    ) -> AppResult<Written> {
        let wanted: Vec<(i64, i64)> = self
            .rows
            .iter()
            .map(|row| (row.wallet_id, row.sequence))
            .collect();
        let mut writes = SpendWrites::default();
        let mut deltas: HashMap<i64, i64> = HashMap::new();
        for (row, row_moves) in self.rows.iter().zip(&self.moves) {
            for (grant_id, credits) in row_moves {
                writes.moves.push(RowMove {
                    wallet_id: row.wallet_id,
                    sequence: row.sequence,
                    credit_grant_id: *grant_id,
                    amount_credits: *credits,
                });
                *deltas.entry(*grant_id).or_default() += credits;
            }
        }
        writes.deltas = deltas.into_iter().collect();
        writes.deltas.sort_unstable();
        let mut workspaces: HashMap<i64, String> = HashMap::new();
        for state in states.into_values() {
            workspaces.insert(state.wallet.id, state.wallet.workspace_id.clone());
            if state.wallet.last_sequence != state.original.last_sequence {
                writes.notifications.push(format!(
                    "{}:{}",
                    state.wallet.last_sequence, state.wallet.workspace_id
                ));
            }
            if state.wallet != state.original {
                writes.heads.push((state.wallet, state.original.last_sequence));
            }
        }
        writes.heads.sort_unstable_by_key(|(wallet, _)| wallet.id);
        writes.rows = self.rows;
        let heads = writes.heads.clone();
        let mut stored: HashMap<(i64, i64), ledger_entry::Model> =
            store::batch::write_spends(txn, notify_channel, writes, now)
                .await
                .map_err(db_error)?
                .into_iter()
                .map(|entry| ((entry.wallet_id, entry.sequence), entry))
                .collect();
        let rows: Vec<ledger_entry::Model> = wanted
            .iter()
            .map(|at| {
                stored.remove(at).ok_or_else(|| {
                    AppError::Internal(anyhow::anyhow!("a batch row was not returned by its insert"))
                })
            })
            .collect::<AppResult<_>>()?;
        store::batch::insert_alerts(txn, self.alerts)
            .await
            .map_err(db_error)?;
        check_heads(txn, &heads).await?;
        let events = self
            .events
            .into_iter()
            .map(|draft| match draft {
                EventDraft::Row(index) => {
                    let row = &rows[index];
                    BalanceEvent {
                        workspace_id: workspaces.get(&row.wallet_id).cloned().unwrap_or_default(),
                        sequence: row.sequence,
                        transaction_id: row.id,
                        kind: EventKind::Ledger(LedgerKind::Spend),
                        delta: row.amount_credits,
                        balance: BalanceView::after_row(row),
                        created_at: row.created_at,
                    }
                }
                EventDraft::LowBalance {
                    workspace_id,
                    sequence,
                    balance,
                } => BalanceEvent {
                    workspace_id,
                    sequence,
                    transaction_id: 0,
                    kind: EventKind::LowBalance,
                    delta: 0,
                    balance,
                    created_at: now,
                },
            })
            .collect();
        Ok(Written { rows, events })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::config::DATABASE_ACQUIRE_TIMEOUT_DEFAULT;
    use crate::domain::clock::ManualClock;
    use crate::events::EventBus;

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
        let clock = Arc::new(ManualClock::new(Utc::now()));
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
