//! Billing periods: renewal at the period's end, trial and grant expiry,
//! and the sweep the scheduler runs.
//!
//! Renewal of a wallet whose period ended, in one transaction under the
//! wallet's lock:
//! 1. every grant whose expiry has passed is closed, one EXPIRE row each
//!    for what it still held (the old period's allocation among them, and
//!    the trial's credits once the trial is over);
//! 2. a pending downgrade becomes the plan;
//! 3. the allocation of the period containing `now` is granted: one GRANT
//!    row, one grant keyed by (wallet, ALLOCATION, period start), which a
//!    unique index makes impossible to grant twice.
//!
//! A wallet that missed several periods (the scheduler was down) goes
//! straight to the period containing `now`: the periods in between had
//! ended before anything could be spent from them, so granting and expiring
//! them would only add rows. Rows are stamped when recorded; the grant's
//! `period_start_at` and `expires_at` say when it applies.
//!
//! Every writer settles the wallet first, so a spend right after a period's
//! end already sees the new allocation; the scheduler's sweep does the same
//! for wallets nobody touches, so their events and rows appear on time.

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};

use super::{Ledger, LockedWallet};
use crate::domain::catalogue::{GrantSource, LedgerKind, PlanCode};
use crate::domain::period::{Period, period_containing};
use crate::error::{AppError, AppResult};
use crate::store::{self, db_error, ledger::EntryDraft, ledger::NewGrant};

/// Wallets read per batch by [`Ledger::roll_over_periods`].
pub const ROLL_OVER_BATCH_SIZE: u64 = 500;
/// Wallets settled at once within a batch (each in its own transaction).
/// Kept below the default pool size so requests still get connections
/// while a sweep runs.
pub const ROLL_OVER_CONCURRENCY: usize = 4;

/// What a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RollOverReport {
    /// Wallets examined (due when read).
    pub wallets_examined: u64,
    /// Wallets whose state changed (renewed or expired something).
    pub wallets_changed: u64,
}

impl LockedWallet {
    /// Grants `credits` as the allocation of `period` (nothing for 0).
    pub(super) async fn grant_allocation(
        &mut self,
        period: Period,
        credits: i64,
        actor: &str,
        reference: String,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        if credits <= 0 {
            return Ok(());
        }
        let grant_id = self
            .add_grant(
                NewGrant {
                    source: GrantSource::Allocation,
                    credits,
                    expires_at: Some(period.end),
                    period_start_at: Some(period.start),
                    purchase: None,
                },
                now,
            )
            .await?;
        self.append(
            EntryDraft {
                kind: LedgerKind::Grant,
                amount: credits,
                action: None,
                reference: Some(reference),
                actor: actor.to_owned(),
                idempotency_key: None,
                reverses_entry_id: None,
                grant_moves: vec![(grant_id, credits)],
            },
            now,
        )
        .await?;
        Ok(())
    }

    /// Brings the wallet up to `now`: expires what is due and, when the
    /// billing period ended, renews it. Idempotent: a settled wallet is
    /// left unchanged.
    pub(super) async fn settle(&mut self, now: DateTime<Utc>) -> AppResult<()> {
        self.expire_due(now).await?;
        let (Some(anchor), Some(period_end)) = (self.wallet.billing_anchor_at, self.wallet.period_end_at)
        else {
            return Ok(());
        };
        if period_end > now {
            return Ok(());
        }
        if let Some(pending) = self.wallet.pending_plan_code.take() {
            self.wallet.plan_code = pending;
        }
        let plan_code: PlanCode = self
            .wallet
            .plan_code
            .parse()
            .map_err(|error| AppError::Internal(anyhow::Error::new(error)))?;
        let credits = if plan_code == PlanCode::Enterprise {
            self.wallet.enterprise_allocation_credits.unwrap_or(0)
        } else {
            store::catalogue::plan(&self.txn, plan_code.as_str())
                .await
                .map_err(db_error)?
                .and_then(|plan| plan.monthly_credits)
                .unwrap_or(0)
        };
        let period = period_containing(anchor, now);
        self.wallet.period_start_at = Some(period.start);
        self.wallet.period_end_at = Some(period.end);
        let reference = format!("renewal:{}:{}", plan_code, period.start.format("%Y-%m-%d"));
        self.grant_allocation(period, credits, "system", reference, now)
            .await
    }
}

impl Ledger {
    /// Settles every wallet that is due at `now` (a period ended, or a grant
    /// expired), in batches of [`ROLL_OVER_BATCH_SIZE`], each wallet in its
    /// own transaction. Safe to run on several instances at once: each
    /// wallet is settled under its lock, re-checked there, and the
    /// allocation's unique key refuses a second grant for a period.
    pub async fn roll_over_periods(&self, now: DateTime<Utc>) -> AppResult<RollOverReport> {
        let mut report = RollOverReport::default();
        let mut after_id = 0;
        loop {
            let due = store::ledger::due_wallets(&self.db, now, after_id, ROLL_OVER_BATCH_SIZE)
                .await
                .map_err(db_error)?;
            let Some(last) = due.last() else {
                return Ok(report);
            };
            after_id = last.0;
            let results: Vec<AppResult<bool>> = stream::iter(due)
                .map(|(_, workspace_id)| {
                    let ledger = self.clone();
                    async move { ledger.settle_wallet(&workspace_id, now).await }
                })
                .buffer_unordered(ROLL_OVER_CONCURRENCY)
                .collect()
                .await;
            for result in results {
                report.wallets_examined += 1;
                if result? {
                    report.wallets_changed += 1;
                }
            }
        }
    }

    /// Settles one wallet; whether anything changed.
    pub(super) async fn settle_wallet(&self, workspace_id: &str, now: DateTime<Utc>) -> AppResult<bool> {
        let mut locked = self.lock(workspace_id).await?;
        locked.settle(now).await?;
        let changed = locked.wallet != locked.original;
        self.finish(locked, now).await?;
        Ok(changed)
    }
}
