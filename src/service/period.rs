//! Billing periods: renewal at the period's end and grant expiry. Every
//! writer settles the wallets it locks (`domain::wallet::Wallet::settle`,
//! by `domain::settlement`); the scheduler's sweep (`sweep.rs`) does the
//! same for batches of wallets nobody touches.
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
//! Both paths are exercised by the same period tests.

use chrono::{DateTime, Utc};

use super::Ledger;
use crate::error::AppResult;

/// What a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RollOverReport {
    /// Wallets examined (due when read).
    pub wallets_examined: u64,
    /// Wallets whose state changed (renewed or expired something).
    pub wallets_changed: u64,
}

impl Ledger {
    /// Settles one workspace's wallet in its own transaction, as a writer
    /// would; whether anything changed. The sweep does the same set-based.
    pub async fn settle_workspace(&self, workspace_id: &str, now: DateTime<Utc>) -> AppResult<bool> {
        self.settle_wallet(workspace_id, now).await
    }

    /// Settles one wallet; whether anything changed.
    pub(super) async fn settle_wallet(&self, workspace_id: &str, now: DateTime<Utc>) -> AppResult<bool> {
        let locked = self.lock_settled(workspace_id, now).await?;
        let written = self.finish(locked, now).await?;
        Ok(!written.change.is_empty())
    }
}
