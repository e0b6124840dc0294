//! Reads beyond the wallet itself: usage buckets, which grants paid for a
//! row, low-balance alerts, and whole-period exports.

use chrono::{DateTime, Utc};

use super::{Ledger, TransactionView};
use crate::auth::WalletScope;
use crate::domain::catalogue::{Action, GrantSource};
use crate::domain::usage::{Bucket, UsageBucket, aggregate, check_range};
use crate::error::{AppError, AppResult, db_error};
use crate::store::{self, ledger::EntryFilter};

/// Most alerts `low_balance_alerts` returns.
pub const LOW_BALANCE_ALERTS_MAX: u64 = 50;
/// Most rows one export returns; a larger period must be split.
pub const EXPORT_ROWS_MAX: u64 = 100_000;

/// How one row moved one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantMoveView {
    /// The grant.
    pub grant_id: i64,
    /// Where its credits came from.
    pub source: GrantSource,
    /// When it expires (or expired); `None` never.
    pub expires_at: Option<DateTime<Utc>>,
    /// Signed credits moved (negative: paid by this grant).
    pub credits: i64,
}

/// One low-balance alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowBalanceAlertView {
    /// The threshold crossed.
    pub threshold: i64,
    /// The balance just after crossing.
    pub balance: i64,
    /// The ledger sequence of the row that crossed.
    pub sequence: i64,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl Ledger {
    /// Credits spent per action per bucket over `[from, to)`, net of reversals.
    pub async fn usage(
        &self,
        scope: &WalletScope,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
    ) -> AppResult<Vec<UsageBucket>> {
        check_range(from, to, bucket)?;
        let wallet = self.wallet_row(scope).await?;
        let rows = store::ledger::net_spends(&self.db, wallet.id, from, to)
            .await
            .map_err(db_error)?;
        let spends = rows
            .into_iter()
            .filter_map(|(at, action, amount)| {
                let action: Action = action?.parse().ok()?;
                Some((at, action, -amount))
            })
            .collect::<Vec<_>>();
        Ok(aggregate(&spends, from, to, bucket))
    }

    /// The grant moves of each of `entry_ids`, in the order given.
    pub async fn grant_moves(&self, entry_ids: &[i64]) -> AppResult<Vec<(i64, Vec<GrantMoveView>)>> {
        let moves = store::ledger::grant_moves(&self.db, entry_ids.to_vec())
            .await
            .map_err(db_error)?;
        let grants = store::ledger::grants_by_id(&self.db, moves.iter().map(|m| m.credit_grant_id).collect())
            .await
            .map_err(db_error)?;
        entry_ids
            .iter()
            .map(|entry_id| {
                let views = moves
                    .iter()
                    .filter(|movement| movement.ledger_entry_id == *entry_id)
                    .map(|movement| {
                        let grant = grants
                            .iter()
                            .find(|grant| grant.id == movement.credit_grant_id)
                            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a move without its grant")))?;
                        Ok(GrantMoveView {
                            grant_id: grant.id,
                            source: super::grant_source(grant)?,
                            expires_at: grant.expires_at,
                            credits: movement.amount_credits,
                        })
                    })
                    .collect::<AppResult<Vec<_>>>()?;
                Ok((*entry_id, views))
            })
            .collect()
    }

    /// The wallet's latest low-balance alerts, newest first.
    pub async fn low_balance_alerts(&self, scope: &WalletScope) -> AppResult<Vec<LowBalanceAlertView>> {
        let wallet = self.wallet_row(scope).await?;
        let alerts = store::ledger::low_balance_alerts(&self.db, wallet.id, LOW_BALANCE_ALERTS_MAX)
            .await
            .map_err(db_error)?;
        Ok(alerts
            .into_iter()
            .map(|alert| LowBalanceAlertView {
                threshold: alert.threshold_credits,
                balance: alert.balance_credits,
                sequence: alert.ledger_sequence,
                created_at: alert.created_at,
            })
            .collect())
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
        rows.into_iter().map(TransactionView::from_model).collect()
    }

    async fn wallet_row(&self, scope: &WalletScope) -> AppResult<entity::wallet::Model> {
        store::ledger::find_wallet(&self.db, scope.workspace_id().as_str())
            .await
            .map_err(db_error)?
            .ok_or(AppError::NotFound("workspace"))
    }
}
