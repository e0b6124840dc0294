//! Reading a wallet and its transactions.

use super::{BalanceView, Ledger, PeriodView, TransactionPage, TransactionView, WalletView};
use crate::auth::WalletScope;
use crate::error::{AppError, AppResult, db_error};
use crate::store::{self, ledger::EntryFilter};

/// Largest page of the transactions connection.
pub const TRANSACTIONS_PAGE_MAX: u64 = 100;
/// Page size when `first` is not given.
pub const TRANSACTIONS_PAGE_DEFAULT: u64 = 20;

/// A validated transactions query.
#[derive(Debug, Clone, Default)]
pub struct TransactionQuery {
    /// Page size, 1..=[`TRANSACTIONS_PAGE_MAX`].
    pub first: u64,
    /// Only rows older than this sequence (from the `after` cursor).
    pub before_sequence: Option<i64>,
    /// Filters.
    pub filter: EntryFilter,
}

impl Ledger {
    /// The scope's wallet. When a grant's expiry or the period's end has
    /// passed and no writer has recorded it yet, the wallet is settled first
    /// (EXPIRE and renewal GRANT rows), so the balance read always equals
    /// the ledger's.
    pub async fn wallet(&self, scope: &WalletScope) -> AppResult<WalletView> {
        let now = self.now();
        let workspace_id = scope.workspace_id().as_str();
        let wallet = store::ledger::find_wallet(&self.db, workspace_id)
            .await
            .map_err(db_error)?
            .ok_or(AppError::NotFound("workspace"))?;
        if store::ledger::is_due(&self.db, &wallet, now)
            .await
            .map_err(db_error)?
        {
            self.settle_wallet(workspace_id, now).await?;
        }
        // Wallet head and grants are read in one transaction so the view is
        // one consistent state.
        let txn = sea_orm::TransactionTrait::begin(&self.db)
            .await
            .map_err(db_error)?;
        let wallet = store::ledger::find_wallet(&txn, workspace_id)
            .await
            .map_err(db_error)?
            .ok_or(AppError::NotFound("workspace"))?;
        let grants = store::ledger::live_grants(&txn, wallet.id)
            .await
            .map_err(db_error)?;
        txn.commit().await.map_err(db_error)?;
        let cheapest_action = self
            .action_costs()
            .await?
            .iter()
            .map(|cost| cost.credits)
            .min()
            .unwrap_or(1);
        let balance = BalanceView::from_grants(&grants);
        let stored = |text: &str| {
            text.parse()
                .map_err(|error| AppError::Internal(anyhow::Error::new(error)))
        };
        Ok(WalletView {
            workspace_id: wallet.workspace_id.clone(),
            balance,
            plan: stored(&wallet.plan_code)?,
            pending_plan: wallet.pending_plan_code.as_deref().map(stored).transpose()?,
            current_period: wallet
                .period_start_at
                .zip(wallet.period_end_at)
                .map(|(start, end)| PeriodView { start, end }),
            trial_ends_at: wallet.trial_ends_at,
            ai_paused: balance.total < cheapest_action,
            last_sequence: wallet.last_sequence,
            enterprise_monthly_credits: wallet.enterprise_allocation_credits,
            low_balance_threshold: wallet.low_balance_threshold_credits,
            low_balance_alerted_at: wallet.low_balance_alerted_at,
        })
    }

    /// A page of the scope's ledger, newest first.
    pub async fn transactions(
        &self,
        scope: &WalletScope,
        query: &TransactionQuery,
    ) -> AppResult<TransactionPage> {
        debug_assert!((1..=TRANSACTIONS_PAGE_MAX).contains(&query.first));
        let wallet = store::ledger::find_wallet(&self.db, scope.workspace_id().as_str())
            .await
            .map_err(db_error)?
            .ok_or(AppError::NotFound("workspace"))?;
        let mut rows = store::ledger::list_entries(
            &self.db,
            wallet.id,
            &query.filter,
            query.before_sequence,
            query.first + 1,
        )
        .await
        .map_err(db_error)?;
        let has_next_page = rows.len() as u64 > query.first;
        rows.truncate(query.first as usize);
        Ok(TransactionPage {
            transactions: rows
                .into_iter()
                .map(TransactionView::from_model)
                .collect::<AppResult<_>>()?,
            has_next_page,
        })
    }
}
