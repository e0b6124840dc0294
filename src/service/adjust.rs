//! Operator corrections: `adjustCredits`, `reverseTransaction`, and the
//! low-balance threshold. The rules are in [`crate::domain::reversal`].

use chrono::{DateTime, Utc};

use super::{BalanceView, Ledger, TransactionView};
use crate::auth::WalletScope;
use crate::domain::catalogue::{GrantSource, LedgerKind};
use crate::domain::reversal::{MovedGrant, Restore, plan_reversal};
use crate::domain::spend::{SpendDecision, decide_spend};
use crate::error::{AppError, AppResult, db_error};
use crate::store::{self, ledger::EntryDraft, ledger::NewGrant};

/// Longest reason, in characters.
pub const REASON_LENGTH_MAX: usize = 500;

/// A validated adjustment.
#[derive(Debug, Clone)]
pub struct AdjustRequest {
    /// Signed credits, never zero.
    pub credits: i64,
    /// Why (required, recorded as the row's reference).
    pub reason: String,
    /// For a positive adjustment: when its credits expire (`None` never).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A ledger row and the balance after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerChange {
    /// The row written.
    pub transaction: TransactionView,
    /// The wallet's balance now.
    pub balance: BalanceView,
}

/// A validated threshold change.
#[derive(Debug, Clone, Copy)]
pub struct ThresholdRequest {
    /// Alert when the balance falls below this; `None` turns alerts off.
    pub threshold: Option<i64>,
}

/// Parses a reason: 1 to [`REASON_LENGTH_MAX`] characters, not blank.
pub fn parse_reason(raw: &str) -> AppResult<String> {
    let reason = raw.trim();
    if reason.is_empty() || reason.chars().count() > REASON_LENGTH_MAX {
        return Err(AppError::invalid(
            "reason",
            format!("must be 1 to {REASON_LENGTH_MAX} characters"),
        ));
    }
    Ok(reason.to_owned())
}

impl Ledger {
    /// Adds credits as a bonus grant, or burns them like a spend (never
    /// below zero: a larger negative adjustment is refused).
    pub async fn adjust_credits(
        &self,
        scope: &WalletScope,
        request: AdjustRequest,
    ) -> AppResult<LedgerChange> {
        let now = self.now();
        if request.expires_at.is_some_and(|at| at <= now) {
            return Err(AppError::invalid("expiresAt", "must be in the future"));
        }
        if request.credits < 0 && request.expires_at.is_some() {
            return Err(AppError::invalid(
                "expiresAt",
                "applies only to positive adjustments",
            ));
        }
        let mut locked = self.lock(scope.workspace_id().as_str()).await?;
        locked.settle(now).await?;
        let grant_moves = if request.credits > 0 {
            let grant_id = locked
                .add_grant(
                    NewGrant {
                        source: GrantSource::Adjustment,
                        credits: request.credits,
                        expires_at: request.expires_at,
                        period_start_at: None,
                        purchase: None,
                    },
                    now,
                )
                .await?;
            vec![(grant_id, request.credits)]
        } else {
            let spendable = locked.spendable_grants()?;
            match decide_spend(&spendable, -request.credits) {
                SpendDecision::Insufficient { available } => {
                    return Err(AppError::invalid(
                        "credits",
                        format!("would take the balance below zero (the wallet holds {available})"),
                    ));
                }
                SpendDecision::Charge(burns) => locked.burn(&burns).await?,
            }
        };
        let entry = locked
            .append(
                EntryDraft {
                    kind: LedgerKind::Adjustment,
                    amount: request.credits,
                    action: None,
                    reference: Some(request.reason),
                    actor: scope.actor().to_owned(),
                    idempotency: None,
                    reverses_entry_id: None,
                    grant_moves,
                },
                now,
            )
            .await?;
        self.finish_change(locked, entry, now).await
    }

    /// Reverses a SPEND or an unspent TOP_UP, once. Operators only: the
    /// transaction's own workspace is looked up, then authorized.
    pub async fn reverse_transaction(
        &self,
        caller: &crate::auth::Caller,
        transaction_id: i64,
        reason: String,
    ) -> AppResult<LedgerChange> {
        // Checked first, so non-operators learn nothing about transaction ids.
        crate::auth::authorize_operator(caller)?;
        let now = self.now();
        let original = store::ledger::entry(&self.db, transaction_id)
            .await
            .map_err(db_error)?
            .ok_or(AppError::NotFound("transaction"))?;
        let workspace_id = store::ledger::workspace_of_wallet(&self.db, original.wallet_id)
            .await
            .map_err(db_error)?
            .ok_or(AppError::NotFound("transaction"))?;
        let requested = crate::domain::ids::WorkspaceId::parse("workspaceId", &workspace_id)?;
        let scope = crate::auth::authorize(caller, Some(requested), crate::auth::Operation::Operate)?;
        let mut locked = self.lock(scope.workspace_id().as_str()).await?;
        locked.settle(now).await?;
        let is_reversed = store::ledger::reversal_of(&locked.txn, original.id)
            .await
            .map_err(db_error)?
            .is_some();
        let moves = store::ledger::grant_moves(&locked.txn, vec![original.id])
            .await
            .map_err(db_error)?;
        let grants =
            store::ledger::grants_by_id(&locked.txn, moves.iter().map(|m| m.credit_grant_id).collect())
                .await
                .map_err(db_error)?;
        let moved: Vec<MovedGrant> = moves
            .iter()
            .filter_map(|movement| {
                let grant = grants.iter().find(|grant| grant.id == movement.credit_grant_id)?;
                Some(MovedGrant {
                    grant_id: grant.id,
                    moved: movement.amount_credits,
                    is_live: grant.expired_at.is_none(),
                    remaining: grant.remaining_credits,
                    granted: grant.granted_credits,
                })
            })
            .collect();
        let kind: LedgerKind = original
            .kind
            .parse()
            .map_err(|error| AppError::Internal(anyhow::Error::new(error)))?;
        let mut grant_moves = Vec::new();
        for restore in plan_reversal(kind, is_reversed, &moved)? {
            match restore {
                Restore::Grant { grant_id, credits } => {
                    store::ledger::move_grant(&locked.txn, grant_id, credits)
                        .await
                        .map_err(db_error)?;
                    grant_moves.push((grant_id, credits));
                }
                Restore::NewGrant { credits } => {
                    let grant_id = locked
                        .add_grant(
                            NewGrant {
                                source: GrantSource::Adjustment,
                                credits,
                                expires_at: None,
                                period_start_at: None,
                                purchase: None,
                            },
                            now,
                        )
                        .await?;
                    grant_moves.push((grant_id, credits));
                }
            }
        }
        let amount = grant_moves.iter().map(|(_, credits)| credits).sum();
        let entry = locked
            .append(
                EntryDraft {
                    kind: LedgerKind::Reversal,
                    amount,
                    action: original.action.as_deref().map(str::parse).transpose().map_err(
                        |error: crate::domain::catalogue::UnknownName| {
                            AppError::Internal(anyhow::Error::new(error))
                        },
                    )?,
                    reference: Some(reason),
                    actor: scope.actor().to_owned(),
                    idempotency: None,
                    reverses_entry_id: Some(original.id),
                    grant_moves,
                },
                now,
            )
            .await?;
        self.finish_change(locked, entry, now).await
    }

    /// Commits a one-row change and answers with the row and the balance.
    async fn finish_change(
        &self,
        locked: super::LockedWallet,
        entry: entity::ledger_entry::Model,
        now: DateTime<Utc>,
    ) -> AppResult<LedgerChange> {
        let balance = locked.balance();
        self.finish(locked, now).await?;
        Ok(LedgerChange {
            transaction: TransactionView::from_model(entry)?,
            balance,
        })
    }

    /// Sets (or clears) the wallet's low-balance threshold. Setting it while
    /// the balance is already below alerts at once.
    pub async fn set_low_balance_threshold(
        &self,
        scope: &WalletScope,
        request: ThresholdRequest,
    ) -> AppResult<()> {
        let now = self.now();
        let mut locked = self.lock(scope.workspace_id().as_str()).await?;
        locked.settle(now).await?;
        if locked.wallet.low_balance_threshold_credits != request.threshold {
            locked.wallet.low_balance_threshold_credits = request.threshold;
            locked.wallet.low_balance_alerted_at = None;
        }
        self.finish(locked, now).await?;
        Ok(())
    }
}
