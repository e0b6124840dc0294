//! Operator corrections: `adjustCredits`, `reverseTransaction`, and the
//! low-balance threshold. The rules are in [`domain::reversal`].

use chrono::{DateTime, Utc};

use super::{BalanceView, Ledger, TransactionView};
use crate::auth::WalletScope;
use crate::error::{AppError, AppResult};
use crate::store;
use domain::catalogue::LedgerKind;
use domain::wallet::Entry;

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
    if reason.is_empty()
        || reason.chars().count() > REASON_LENGTH_MAX
        || domain::ids::has_control_or_bidi(reason)
    {
        return Err(AppError::invalid(
            "reason",
            format!(
                "must be 1 to {REASON_LENGTH_MAX} characters, without control or bidirectional formatting characters"
            ),
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
        let mut locked = self.lock_settled(scope.workspace_id().as_str(), now).await?;
        let row = locked.wallet.adjust(
            request.credits,
            request.expires_at,
            Entry::by(LedgerKind::Adjustment, scope.actor(), request.reason),
            now,
        )?;
        self.finish_change(locked, row, now).await
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
        let workspace_id = store::ledger::workspace_of_entry(&self.db, transaction_id)
            .await?
            .ok_or(AppError::NotFound("transaction"))?;
        let requested = domain::ids::WorkspaceId::parse("workspaceId", &workspace_id)?;
        let scope = crate::auth::authorize(caller, Some(requested), crate::auth::Operation::Operate)?;
        let mut locked = self.lock_settled(scope.workspace_id().as_str(), now).await?;
        let original = store::ledger::reversed(&locked.txn, transaction_id)
            .await?
            .ok_or(AppError::NotFound("transaction"))?;
        Self::load_budgets(&mut locked, original.agent_id.as_deref()).await?;
        let row = locked.wallet.reverse(
            &original,
            Entry::by(LedgerKind::Reversal, scope.actor(), reason),
            now,
        )?;
        self.finish_change(locked, row, now).await
    }

    /// Commits a one-row change and answers with the row and the balance.
    async fn finish_change(
        &self,
        locked: super::Locked,
        row: usize,
        now: DateTime<Utc>,
    ) -> AppResult<LedgerChange> {
        let balance = locked.wallet.balance();
        let written = self.finish(locked, now).await?;
        Ok(LedgerChange {
            transaction: written.transaction(row)?,
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
        let mut locked = self.lock_settled(scope.workspace_id().as_str(), now).await?;
        locked.wallet.set_threshold(request.threshold);
        self.finish(locked, now).await?;
        Ok(())
    }
}
