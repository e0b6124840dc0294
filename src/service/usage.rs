//! Reads beyond the wallet itself: usage buckets, which grants paid for a
//! row, low-balance alerts, and whole-period exports.

use chrono::{DateTime, Utc};

use super::{Ledger, TransactionView};
use crate::auth::WalletScope;
use crate::domain::forecast::{Forecast, forecast, window_start};
use crate::domain::usage::{Bucket, UsageBucket, aggregate, check_range, split_by_agent};
use crate::domain::views::EntryFilter;
pub use crate::domain::views::{GrantMoveView, LowBalanceAlertView};
use crate::domain::wallet::Head;
use crate::error::{AppError, AppResult, db_error};
use crate::store;

/// Most alerts `low_balance_alerts` returns.
pub const LOW_BALANCE_ALERTS_MAX: u64 = 50;
/// Most rows one export returns; a larger period must be split.
pub const EXPORT_ROWS_MAX: u64 = 100_000;

impl Ledger {
    /// Credits spent per action per bucket over `[from, to)`, net of
    /// reversals; with `by_agent`, each bucket split per agent too.
    pub async fn usage(
        &self,
        scope: &WalletScope,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
        by_agent: bool,
    ) -> AppResult<Vec<UsageBucket>> {
        check_range(from, to, bucket)?;
        let wallet = self.wallet_row(scope).await?;
        let spends: Vec<_> = store::ledger::net_spends(&self.db, wallet.id, from, to)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|(at, action, amount, agent)| (at, action, -amount, agent))
            .collect();
        let plain: Vec<_> = spends
            .iter()
            .map(|(at, action, credits, _)| (*at, *action, *credits))
            .collect();
        let mut buckets = aggregate(&plain, from, to, bucket);
        if by_agent {
            split_by_agent(&mut buckets, &spends);
        }
        Ok(buckets)
    }

    /// The grant moves of each of `entry_ids`, in the order given.
    pub async fn grant_moves(&self, entry_ids: &[i64]) -> AppResult<Vec<(i64, Vec<GrantMoveView>)>> {
        let moves = store::ledger::moved_grants(&self.db, entry_ids.to_vec())
            .await
            .map_err(db_error)?;
        Ok(entry_ids
            .iter()
            .map(|entry_id| {
                let views = moves
                    .iter()
                    .filter(|(moved_by, _)| moved_by == entry_id)
                    .map(|(_, view)| view.clone())
                    .collect();
                (*entry_id, views)
            })
            .collect())
    }

    /// The wallet's latest low-balance alerts, newest first.
    pub async fn low_balance_alerts(&self, scope: &WalletScope) -> AppResult<Vec<LowBalanceAlertView>> {
        let wallet = self.wallet_row(scope).await?;
        store::ledger::low_balance_alerts(&self.db, wallet.id, LOW_BALANCE_ALERTS_MAX)
            .await
            .map_err(db_error)
    }

    /// Every row of `[from, to)`, oldest first, for an export.
    pub async fn export(
        &self,
        scope: &WalletScope,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> AppResult<Vec<TransactionView>> {
        if from >= to {
            return Err(AppError::invalid("from", "must be before to"));
        }
        let wallet = self.wallet_row(scope).await?;
        let filter = EntryFilter {
            from: Some(from),
            to: Some(to),
            ..EntryFilter::default()
        };
        let mut rows = store::ledger::list_entries(&self.db, wallet.id, &filter, None, EXPORT_ROWS_MAX + 1)
            .await
            .map_err(db_error)?;
        if rows.len() as u64 > EXPORT_ROWS_MAX {
            return Err(AppError::invalid(
                "to",
                format!("the period holds more than {EXPORT_ROWS_MAX} rows; split it"),
            ));
        }
        rows.reverse();
        Ok(rows)
    }

    /// The wallet's runway from the trailing week of spends, net of
    /// reversals (`domain::forecast`); `view` is the wallet as just read.
    pub async fn forecast(&self, scope: &WalletScope, view: &super::WalletView) -> AppResult<Forecast> {
        let now = self.now();
        let head = self.wallet_row(scope).await?;
        let first = store::ledger::first_row_at(&self.db, head.id)
            .await
            .map_err(db_error)?;
        let since = window_start(now, first);
        let spent: i64 = store::ledger::spends_by_agent(&self.db, head.id, since, now)
            .await
            .map_err(db_error)?
            .iter()
            .map(|(_, _, credits)| credits)
            .sum();
        Ok(forecast(
            view.balance.total,
            spent,
            since,
            now,
            view.current_period.map(|period| period.end),
        ))
    }

    pub(super) async fn wallet_row(&self, scope: &WalletScope) -> AppResult<Head> {
        store::wallets::find(&self.db, scope.workspace_id().as_str())
            .await
            .map_err(db_error)?
            .ok_or(AppError::NotFound("workspace"))
    }
}
