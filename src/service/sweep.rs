//! The scheduler's sweep, set-based: a batch of due wallets is settled in
//! one transaction. Each wallet settles exactly as a writer settles it
//! (`domain::wallet::Wallet::settle`): due grants expire (one EXPIRE row
//! each for what they held), then an ended period renews into the period
//! containing `now` (one GRANT row). The whole batch goes to the store's one
//! applier, and the events are published after the commit.

use chrono::{DateTime, Utc};

use super::{Ledger, PlanView, RollOverReport, settle};
use crate::error::AppResult;
use crate::store;
use domain::wallet::Change;

/// Wallets settled per transaction by the sweep.
pub const SWEEP_BATCH_SIZE: u64 = 1000;
/// Batches in flight at once on PostgreSQL (each holds one connection).
pub const SWEEP_WORKERS: usize = 3;

impl Ledger {
    /// Settles every wallet that is due at `now` (a period ended, or a grant
    /// expired), [`SWEEP_BATCH_SIZE`] wallets per transaction. Safe to run on
    /// several instances at once: the batch is locked (PostgreSQL skips
    /// wallets another sweep or request holds), every wallet head is written
    /// back guarded on the sequence read, and the allocation's unique key
    /// refuses a second grant for a period.
    pub async fn roll_over_periods(&self, now: DateTime<Utc>) -> AppResult<RollOverReport> {
        let plans = store::catalogue::plans(&self.db).await?;
        // PostgreSQL: workers lock disjoint batches (SKIP LOCKED) and use the
        // server's cores in parallel. SQLite has one writer: one worker.
        let workers = if store::is_sqlite(&self.db) {
            1
        } else {
            SWEEP_WORKERS
        };
        let reports =
            futures_util::future::join_all((0..workers).map(|_| self.sweep_worker(now, &plans))).await;
        let mut report = RollOverReport::default();
        for worker in reports {
            let worker = worker?;
            report.wallets_examined += worker.wallets_examined;
            report.wallets_changed += worker.wallets_changed;
        }
        Ok(report)
    }

    async fn sweep_worker(&self, now: DateTime<Utc>, plans: &[PlanView]) -> AppResult<RollOverReport> {
        let mut report = RollOverReport::default();
        let mut after_id = 0;
        loop {
            let txn = store::begin_write(&self.db).await?;
            let states = store::batch::lock_due_states(&txn, now, after_id, SWEEP_BATCH_SIZE).await?;
            let Some(last) = states.last() else {
                store::commit(txn).await?;
                return Ok(report);
            };
            after_id = last.head.id;
            // On PostgreSQL a wallet that another sweep settled between this
            // statement's snapshot and its lock still comes back locked (the
            // recheck of the lock sees the old grants); read afresh under
            // the lock it is no longer due, and it is not this sweep's.
            let mut changes: Vec<Change> = Vec::with_capacity(states.len());
            for mut state in states.into_iter().filter(|state| state.is_due(now)) {
                super::load_hold_budgets(&txn, &mut state, [], now, false).await?;
                let mut wallet = super::open_wallet(state);
                settle(&mut wallet, plans, now);
                changes.push(wallet.finish(now));
            }
            if !changes.is_empty() {
                self.metrics.sweep_batch(changes.len());
            }
            report.wallets_examined += changes.len() as u64;
            report.wallets_changed += changes.iter().filter(|change| !change.is_empty()).count() as u64;
            self.write(txn, &changes, now).await?;
        }
    }
}
