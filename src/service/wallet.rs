//! Reading a wallet and its transactions.

use super::{Ledger, PeriodView, TransactionPage, WalletView};
use crate::auth::WalletScope;
use crate::error::{AppError, AppResult};
use crate::store::{self, ledger::EntryFilter};
use domain::wallet::Head;

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
        self.settled_head(scope, now).await?;
        let state = store::wallets::read(&self.db, workspace_id)
            .await?
            .ok_or(AppError::NotFound("workspace"))?;
        let cheapest_action = self
            .action_costs()
            .await?
            .iter()
            .map(|cost| cost.credits)
            .min()
            .unwrap_or(1);
        let balance = state.balance();
        let head = state.head;
        Ok(WalletView {
            workspace_id: head.workspace_id,
            balance,
            plan: head.plan,
            pending_plan: head.pending_plan,
            current_period: head
                .period_start
                .zip(head.period_end)
                .map(|(start, end)| PeriodView { start, end }),
            trial_ends_at: head.trial_ends_at,
            ai_paused: balance.available() < cheapest_action,
            last_sequence: head.last_sequence,
            enterprise_monthly_credits: head.enterprise_allocation,
            low_balance_threshold: head.threshold,
            low_balance_alerted_at: head.alerted_at,
            time_zone: head.time_zone,
            subscription_id: head.subscription_id,
            grace_ends_at: head.standing_until,
        })
    }

    /// The scope's wallet head, settled first when a grant's expiry or the
    /// period's end has passed and no writer has recorded it yet.
    pub(super) async fn settled_head(
        &self,
        scope: &WalletScope,
        now: chrono::DateTime<chrono::Utc>,
    ) -> AppResult<Head> {
        let workspace_id = scope.workspace_id().as_str();
        let head = store::wallets::find(&self.db, workspace_id)
            .await?
            .ok_or(AppError::NotFound("workspace"))?;
        if !store::ledger::is_due(&self.db, &head, now).await? {
            return Ok(head);
        }
        self.settle_wallet(workspace_id, now).await?;
        store::wallets::find(&self.db, workspace_id)
            .await?
            .ok_or(AppError::NotFound("workspace"))
    }

    /// A page of the scope's ledger, newest first.
    pub async fn transactions(
        &self,
        scope: &WalletScope,
        query: &TransactionQuery,
    ) -> AppResult<TransactionPage> {
        debug_assert!((1..=TRANSACTIONS_PAGE_MAX).contains(&query.first));
        let wallet = store::wallets::find(&self.db, scope.workspace_id().as_str())
            .await?
            .ok_or(AppError::NotFound("workspace"))?;
        let mut rows = store::ledger::list_entries(
            &self.db,
            wallet.id,
            &query.filter,
            query.before_sequence,
            query.first + 1,
        )
        .await?;
        let has_next_page = rows.len() as u64 > query.first;
        rows.truncate(query.first as usize);
        Ok(TransactionPage {
            transactions: rows,
            has_next_page,
        })
    }
}
