//! Holds (`docs/design/holds.md`): `reserveCredits` is a spend that pins
//! instead of burning and `captureHold` a spend of what a hold pinned, both
//! decided in the spend batch (group commit gathers them as it gathers
//! spends); release and extension lock the hold's wallet, settle it, and
//! let `domain::wallet` decide.

use chrono::{DateTime, Utc};

use super::spend::{CaptureAsk, HoldAsk, SpendCall};
use super::{BalanceView, Ledger, PackView, SpendRequest, TransactionView};
use crate::auth::WalletScope;
use crate::error::{AppError, AppResult};
use crate::store;
use domain::budget::BudgetUsage;
use domain::hold::{Hold, HoldState, check_credits, time_to_live};
use domain::spend::SpendOutcome;
use domain::wallet::HoldRefusal;

/// A validated `reserveCredits`.
#[derive(Debug, Clone)]
pub struct ReserveRequest {
    /// The action, key (the hold's), reference and agent, as a spend's.
    pub spend: SpendRequest,
    /// Credits to hold; the action's cost when `None`.
    pub credits: Option<i64>,
    /// Time to live in seconds; the default when `None`.
    pub ttl_seconds: Option<i64>,
}

/// The answer to `reserveCredits`.
#[derive(Debug, Clone)]
pub struct ReserveResult {
    /// HELD, DUPLICATE, INSUFFICIENT_CREDITS or BUDGET_EXCEEDED (a spend's
    /// outcomes, CHARGED read as HELD).
    pub outcome: SpendOutcome,
    /// The hold, as it is now (for DUPLICATE: the one the key placed).
    pub hold: Option<Hold>,
    /// The balance after.
    pub balance: BalanceView,
    /// For BUDGET_EXCEEDED: the budget that refused.
    pub budget: Option<BudgetUsage>,
    /// For INSUFFICIENT_CREDITS: the smallest pack that lets it through.
    pub suggested_top_up: Option<PackView>,
}

/// The answer to a capture, release or extension.
#[derive(Debug, Clone)]
pub struct HoldResult {
    /// The hold as it ends.
    pub hold: Hold,
    /// The row written (the capture's SPEND, the RELEASE), if any.
    pub transaction: Option<TransactionView>,
    /// The balance after.
    pub balance: BalanceView,
    /// Whether this answer replays an earlier capture.
    pub replayed: bool,
}

impl Ledger {
    /// Reserves credits for an action that starts, by the spend rules
    /// (`docs/design/holds.md`).
    pub async fn reserve(&self, scope: &WalletScope, request: ReserveRequest) -> AppResult<ReserveResult> {
        if let Some(credits) = request.credits {
            check_credits(credits)?;
        }
        let ttl_seconds = time_to_live(request.ttl_seconds)?.num_seconds();
        let answer = self
            .submit(SpendCall {
                scope: scope.clone(),
                request: request.spend,
                hold: Some(HoldAsk {
                    credits: request.credits,
                    ttl_seconds,
                }),
                capture: None,
            })
            .await?;
        // A new hold comes from its batch; a repeat's is read as it is now.
        let hold = match (
            answer.hold,
            answer.transaction.as_ref().and_then(|row| row.hold_id),
        ) {
            (Some(hold), _) => Some(hold),
            (None, Some(id)) => store::holds::find(&self.db, id).await?.map(|(_, hold)| hold),
            (None, None) => None,
        };
        Ok(ReserveResult {
            outcome: answer.outcome,
            hold,
            balance: answer.balance,
            budget: answer.budget,
            suggested_top_up: answer.suggested_top_up,
        })
    }

    /// A hold and the workspace whose wallet holds it (for the caller's
    /// authorisation).
    pub async fn find_hold(&self, id: i64) -> AppResult<Option<(String, Hold)>> {
        Ok(store::holds::find_with_workspace(&self.db, id).await?)
    }

    /// Captures `hold` (as [`Ledger::find_hold`] found it; the batch
    /// captures it only if it is live in the scope's wallet): charges
    /// `credits` (default: what it holds), in the spend batch as spends
    /// are. A capture of a captured hold with the same credits replays its
    /// answer.
    pub async fn capture_hold(
        &self,
        scope: &WalletScope,
        hold: &Hold,
        credits: Option<i64>,
    ) -> AppResult<HoldResult> {
        if let Some(credits) = credits {
            check_credits(credits)?;
        }
        let hold_id = hold.id;
        let request = SpendRequest {
            action: hold.action,
            idempotency_key: domain::ids::IdempotencyKey::parse("holdKey", &hold.key)?,
            reference: hold.reference.clone(),
            agent_id: hold.agent_id.clone(),
        };
        let answer = self
            .submit(SpendCall {
                scope: scope.clone(),
                request,
                hold: None,
                capture: Some(CaptureAsk { hold_id, credits }),
            })
            .await;
        match answer {
            Ok(answer) => Ok(HoldResult {
                hold: answer
                    .hold
                    .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a capture without its hold")))?,
                transaction: answer.transaction,
                balance: answer.balance,
                replayed: false,
            }),
            Err(AppError::HoldNotActive(_)) => {
                // Resolved holds never change again: read outside the batch
                // (and only from the scope's own wallet).
                let hold = match store::holds::find_with_workspace(&self.db, hold_id).await? {
                    Some((workspace, hold)) if workspace == scope.workspace_id().as_str() => hold,
                    _ => return Err(AppError::NotFound("hold")),
                };
                let asked = hold.captured + hold.uncollected;
                if hold.state == HoldState::Captured && credits.is_none_or(|credits| credits == asked) {
                    let row = store::holds::capture_row(&self.db, hold_id).await?;
                    let balance = self.balance_now(scope).await?;
                    return Ok(HoldResult {
                        transaction: row.map(store::rows::transaction).transpose()?,
                        hold,
                        balance,
                        replayed: true,
                    });
                }
                Err(not_active(&hold, "captured"))
            }
            Err(error) => Err(error),
        }
    }

    /// Releases a hold (`reason`: why the action never ran).
    pub async fn release_hold(
        &self,
        scope: &WalletScope,
        hold_id: i64,
        reason: &str,
    ) -> AppResult<HoldResult> {
        let now = self.now();
        let mut locked = self.lock_for_hold(scope, hold_id, now).await?;
        match locked.wallet.release(hold_id, reason, scope.actor(), now) {
            Ok(row) => {
                let balance = locked.wallet.balance();
                let hold = self.hold_now(&locked, hold_id)?;
                let written = self.finish(locked, now).await?;
                Ok(HoldResult {
                    hold,
                    transaction: Some(written.transaction(row)?),
                    balance,
                    replayed: false,
                })
            }
            Err(HoldRefusal::Invalid(error)) => Err(error.into()),
            Err(HoldRefusal::NotHeld) => Err(self.refuse(locked, hold_id, "released", now).await),
        }
    }

    /// Moves a live hold's expiry to `ttl_seconds` from now.
    pub async fn extend_hold(
        &self,
        scope: &WalletScope,
        hold_id: i64,
        ttl_seconds: Option<i64>,
    ) -> AppResult<HoldResult> {
        let now = self.now();
        let ttl = time_to_live(ttl_seconds)?;
        let mut locked = self.lock_for_hold(scope, hold_id, now).await?;
        match locked.wallet.extend(hold_id, now + ttl) {
            Ok(_) => {
                let hold = self.hold_now(&locked, hold_id)?;
                let balance = locked.wallet.balance();
                self.finish(locked, now).await?;
                Ok(HoldResult {
                    hold,
                    transaction: None,
                    balance,
                    replayed: false,
                })
            }
            Err(HoldRefusal::Invalid(error)) => Err(error.into()),
            Err(HoldRefusal::NotHeld) => Err(self.refuse(locked, hold_id, "extended", now).await),
        }
    }

    /// A wallet's holds, newest first.
    pub async fn holds(
        &self,
        scope: &WalletScope,
        state: Option<HoldState>,
        before: Option<i64>,
        limit: u64,
    ) -> AppResult<Vec<Hold>> {
        let head = store::wallets::find(&self.db, scope.workspace_id().as_str())
            .await?
            .ok_or(AppError::NotFound("workspace"))?;
        Ok(store::holds::list(&self.db, head.id, state, before, limit).await?)
    }

    /// Locks and settles the wallet of `scope`, with the budgets that the
    /// hold `hold_id` counts in; the hold must be this wallet's.
    async fn lock_for_hold(
        &self,
        scope: &WalletScope,
        hold_id: i64,
        now: DateTime<Utc>,
    ) -> AppResult<super::Locked> {
        let txn = store::begin_write(&self.db).await?;
        let mut state = store::wallets::lock(&txn, scope.workspace_id().as_str())
            .await?
            .ok_or(AppError::NotFound("workspace"))?;
        let (wallet_id, hold) = store::holds::find(&txn, hold_id)
            .await?
            .ok_or(AppError::NotFound("hold"))?;
        if wallet_id != state.head.id {
            return Err(AppError::NotFound("hold"));
        }
        super::load_hold_budgets(&txn, &mut state, [hold.agent_id.as_deref()], now, false).await?;
        let mut locked = super::Locked {
            txn,
            wallet: super::open_wallet(state),
        };
        let plans = super::plans_if_renewing(&locked.txn, [locked.wallet.head()], now).await?;
        super::settle(&mut locked.wallet, &plans, now);
        Ok(locked)
    }

    /// The refusal of an operation on a hold no longer live. Settling the
    /// locked wallet may just have expired it: that is written first, so
    /// the expiry this answer reports happened (once).
    async fn refuse(
        &self,
        locked: super::Locked,
        hold_id: i64,
        operation: &str,
        now: DateTime<Utc>,
    ) -> AppError {
        let known = locked
            .wallet
            .holds()
            .iter()
            .find(|hold| hold.id == hold_id)
            .cloned();
        let hold = match known {
            Some(hold) => hold,
            None => match store::holds::find(&locked.txn, hold_id).await {
                Ok(found) => match stored(found) {
                    Ok(hold) => hold,
                    Err(error) => return error,
                },
                Err(error) => return error.into(),
            },
        };
        if let Err(error) = self.finish(locked, now).await {
            return error;
        }
        not_active(&hold, operation)
    }

    /// The hold as the locked wallet has it now.
    fn hold_now(&self, locked: &super::Locked, hold_id: i64) -> AppResult<Hold> {
        locked
            .wallet
            .holds()
            .iter()
            .find(|hold| hold.id == hold_id)
            .cloned()
            .ok_or(AppError::NotFound("hold"))
    }

    /// The wallet's balance as read now.
    async fn balance_now(&self, scope: &WalletScope) -> AppResult<BalanceView> {
        let state = store::wallets::read(&self.db, scope.workspace_id().as_str())
            .await?
            .ok_or(AppError::NotFound("workspace"))?;
        Ok(state.balance())
    }
}

/// A hold as found in the store.
fn stored(found: Option<(i64, Hold)>) -> AppResult<Hold> {
    found.map(|(_, hold)| hold).ok_or(AppError::NotFound("hold"))
}

/// The error for an operation on a hold no longer live.
fn not_active(hold: &Hold, operation: &str) -> AppError {
    let when = hold
        .resolved_at
        .map(|at| format!(" at {}", at.to_rfc3339()))
        .unwrap_or_default();
    AppError::HoldNotActive(format!(
        "hold {} cannot be {operation}: it was {}{when}",
        hold.id,
        hold.state.as_str().to_lowercase()
    ))
}
