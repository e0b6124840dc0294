//! Billing periods: renewal at the period's end and grant expiry, for one
//! locked wallet (the scheduler's set-based sweep is in `sweep.rs` and
//! applies the same rules from `domain::settlement` to a batch).
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

use super::{Ledger, LockedWallet};
use crate::domain::catalogue::{GrantSource, LedgerKind, PlanCode};
use crate::domain::period::Period;
use crate::domain::settlement::{
    LiveGrant, PeriodState, Renewal, Settlement, renewal_due, renewal_reference, settle,
};
use crate::error::{AppError, AppResult, db_error};
use crate::store::{self, ledger::EntryDraft, ledger::NewGrant};

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
                idempotency: None,
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
    ///
    /// What settling does is decided by `domain::settlement::settle`, as for
    /// the sweep; this applies it row by row. Expiry rows are stamped `now`
    /// (when the expiry was recorded); grants keep their `expires_at`.
    pub(super) async fn settle(&mut self, now: DateTime<Utc>) -> AppResult<()> {
        // The catalogue is read only when a renewal is due.
        let plans = if renewal_due(&period_state(&self.wallet)?, now).is_some() {
            store::catalogue::plans(&self.txn).await.map_err(db_error)?
        } else {
            Vec::new()
        };
        let settlement = settlement(&self.wallet, &self.grants, &plans, now)?;
        for expiry in settlement.expiries {
            if expiry.credits > 0 {
                self.append(
                    EntryDraft {
                        kind: LedgerKind::Expire,
                        amount: -expiry.credits,
                        action: None,
                        reference: Some(expiry.reference),
                        actor: "system".to_owned(),
                        idempotency: None,
                        reverses_entry_id: None,
                        grant_moves: vec![(expiry.grant_id, -expiry.credits)],
                    },
                    now,
                )
                .await?;
            }
            store::ledger::close_grant(&self.txn, expiry.grant_id, now)
                .await
                .map_err(db_error)?;
            self.settled.expiries += 1;
            self.grants.retain(|live| live.id != expiry.grant_id);
        }
        let Some((renewal, credits)) = settlement.renewal else {
            return Ok(());
        };
        apply_renewal(&mut self.wallet, &renewal);
        self.settled.renewals += 1;
        self.grant_allocation(
            renewal.period,
            credits,
            "system",
            renewal_reference(&renewal),
            now,
        )
        .await
    }
}

/// What settling `wallet` (holding `grants`) at `now` does: the domain's
/// decision, shared by the writers and the sweep.
pub(super) fn settlement(
    wallet: &entity::wallet::Model,
    grants: &[entity::credit_grant::Model],
    plans: &[entity::plan::Model],
    now: DateTime<Utc>,
) -> AppResult<Settlement> {
    let live: Vec<LiveGrant> = grants
        .iter()
        .map(|grant| LiveGrant {
            id: grant.id,
            source: grant.source.clone(),
            remaining: grant.remaining_credits,
            expires_at: grant.expires_at,
        })
        .collect();
    Ok(settle(
        &live,
        &period_state(wallet)?,
        wallet.balance_credits,
        |plan| allocation_for(plan, wallet, plans),
        now,
    ))
}

/// The period fields of a wallet row, parsed.
pub(super) fn period_state(wallet: &entity::wallet::Model) -> AppResult<PeriodState> {
    let parse = |code: &str| -> AppResult<PlanCode> {
        code.parse()
            .map_err(|error| AppError::Internal(anyhow::Error::new(error)))
    };
    Ok(PeriodState {
        anchor: wallet.billing_anchor_at,
        period_end: wallet.period_end_at,
        plan: parse(&wallet.plan_code)?,
        pending_plan: wallet.pending_plan_code.as_deref().map(parse).transpose()?,
    })
}

/// Credits a period of `plan` grants this wallet: the catalogue's monthly
/// credits, or the wallet's own allocation for ENTERPRISE.
pub(super) fn allocation_for(
    plan: PlanCode,
    wallet: &entity::wallet::Model,
    plans: &[entity::plan::Model],
) -> i64 {
    if plan == PlanCode::Enterprise {
        return wallet.enterprise_allocation_credits.unwrap_or(0);
    }
    plans
        .iter()
        .find(|row| row.code == plan.as_str())
        .and_then(|row| row.monthly_credits)
        .unwrap_or(0)
}

/// Moves the wallet head into the renewed period.
pub(super) fn apply_renewal(wallet: &mut entity::wallet::Model, renewal: &Renewal) {
    wallet.plan_code = renewal.plan.as_str().to_owned();
    wallet.pending_plan_code = None;
    wallet.period_start_at = Some(renewal.period.start);
    wallet.period_end_at = Some(renewal.period.end);
}

impl Ledger {
    /// Settles one workspace's wallet in its own transaction, as a writer
    /// would; whether anything changed. The sweep does the same set-based.
    pub async fn settle_workspace(&self, workspace_id: &str, now: DateTime<Utc>) -> AppResult<bool> {
        self.settle_wallet(workspace_id, now).await
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
