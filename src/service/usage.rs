//! Reads beyond the wallet itself: usage buckets, which grants paid for a
//! row, low-balance alerts, and whole-period exports.

use chrono::{DateTime, Utc};

use super::{Ledger, TransactionView};
use crate::auth::WalletScope;
use crate::error::{AppError, AppResult};
use crate::store;
use domain::forecast::{Forecast, forecast, window_start};
use domain::usage::{Bucket, UsageBucket, aggregate, check_range, split_by_agent};
use domain::views::EntryFilter;
pub use domain::views::{GrantMoveView, LowBalanceAlertView};
use domain::wallet::Head;

/// Most alerts `low_balance_alerts` returns.
pub const LOW_BALANCE_ALERTS_MAX: u64 = 50;
/// Most spends one `usage` answer aggregates (a wider range is refused).
pub const USAGE_SPENDS_MAX: u64 = 200_000;
/// Most agents one `usage(byAgent: true)` answer splits.
pub const USAGE_AGENTS_MAX: u64 = 1_000;
/// Most (agent, action) groups one `usageByAgent` answer holds.
pub const USAGE_AGENT_GROUPS_MAX: u64 = 3_000;

/// Rows an export reads per page.
pub const EXPORT_PAGE: u64 = 1_000;
/// Exports of one workspace running at once on one instance.
pub const EXPORTS_PER_WORKSPACE_MAX: usize = 2;

/// Exports running, per workspace.
pub(super) type Exports = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>;

/// One of a workspace's export slots, given back when dropped.
struct ExportPermit {
    exports: Exports,
    workspace_id: String,
}

impl ExportPermit {
    fn take(exports: &Exports, workspace_id: &str) -> AppResult<Self> {
        let mut running = exports.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = running.entry(workspace_id.to_owned()).or_default();
        if *count >= EXPORTS_PER_WORKSPACE_MAX {
            return Err(AppError::limit(
                format!("a workspace runs at most {EXPORTS_PER_WORKSPACE_MAX} exports at once"),
                Some(5),
            ));
        }
        *count += 1;
        Ok(Self {
            exports: exports.clone(),
            workspace_id: workspace_id.to_owned(),
        })
    }
}

impl Drop for ExportPermit {
    fn drop(&mut self) {
        let mut running = self
            .exports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = running.get_mut(&self.workspace_id) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.workspace_id);
            }
        }
    }
}

/// An export under way: its pages, oldest first.
pub struct Export {
    ledger: Ledger,
    wallet_id: i64,
    filter: EntryFilter,
    after: i64,
    done: bool,
    _permit: ExportPermit,
}

impl Export {
    /// The next page; `None` after the last.
    pub async fn next_page(&mut self) -> AppResult<Option<Vec<TransactionView>>> {
        if self.done {
            return Ok(None);
        }
        let rows = store::ledger::matching_after(
            &self.ledger.db,
            self.wallet_id,
            &self.filter,
            self.after,
            EXPORT_PAGE,
        )
        .await?;
        self.done = (rows.len() as u64) < EXPORT_PAGE;
        match rows.last() {
            Some(last) => {
                self.after = last.sequence;
                Ok(Some(rows))
            }
            None => Ok(None),
        }
    }
}

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
        let spends = store::ledger::net_spends(&self.db, wallet.id, from, to, USAGE_SPENDS_MAX + 1).await?;
        if spends.len() as u64 > USAGE_SPENDS_MAX {
            return Err(AppError::limit(
                format!("usage reads at most {USAGE_SPENDS_MAX} spends at once; narrow from and to"),
                None,
            ));
        }
        let spends: Vec<_> = spends
            .into_iter()
            .map(|(at, action, amount, agent)| (at, action, -amount, agent))
            .collect();
        let plain: Vec<_> = spends
            .iter()
            .map(|(at, action, credits, _)| (*at, *action, *credits))
            .collect();
        let mut buckets = aggregate(&plain, from, to, bucket);
        if by_agent {
            let agents: std::collections::HashSet<_> = spends.iter().map(|(.., agent)| agent).collect();
            if agents.len() as u64 > USAGE_AGENTS_MAX {
                return Err(AppError::limit(
                    format!("usage by agent splits at most {USAGE_AGENTS_MAX} agents; narrow from and to"),
                    None,
                ));
            }
            split_by_agent(&mut buckets, &spends);
        }
        Ok(buckets)
    }

    /// The grant moves of each of `entry_ids`, in the order given.
    pub async fn grant_moves(&self, entry_ids: &[i64]) -> AppResult<Vec<(i64, Vec<GrantMoveView>)>> {
        let moves = store::ledger::moved_grants(&self.db, entry_ids.to_vec()).await?;
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
            .map_err(AppError::from)
    }

    /// A period's transactions, oldest first, read a page at a time as
    /// the caller writes them out (constant memory whatever the period);
    /// at most [`EXPORTS_PER_WORKSPACE_MAX`] of a workspace at once on
    /// this instance.
    pub async fn export(
        &self,
        scope: &WalletScope,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> AppResult<Export> {
        if from >= to {
            return Err(AppError::invalid("from", "must be before to"));
        }
        let wallet = self.wallet_row(scope).await?;
        let permit = ExportPermit::take(&self.exports, scope.workspace_id().as_str())?;
        Ok(Export {
            ledger: self.clone(),
            wallet_id: wallet.id,
            filter: EntryFilter {
                from: Some(from),
                to: Some(to),
                ..EntryFilter::default()
            },
            after: 0,
            done: false,
            _permit: permit,
        })
    }

    /// The wallet's runway from the trailing week of spends, net of
    /// reversals (`domain::forecast`); `view` is the wallet as just read.
    pub async fn forecast(&self, scope: &WalletScope, view: &super::WalletView) -> AppResult<Forecast> {
        let now = self.now();
        let head = self.wallet_row(scope).await?;
        let first = store::ledger::first_row_at(&self.db, head.id).await?;
        let since = window_start(now, first);
        let spent: i64 = store::ledger::spends_by_agent(&self.db, head.id, since, now, None)
            .await?
            .iter()
            .map(|(_, _, credits)| credits)
            .sum();
        Ok(forecast(
            view.balance.available(),
            spent,
            since,
            now,
            view.current_period.map(|period| period.end),
        ))
    }

    pub(super) async fn wallet_row(&self, scope: &WalletScope) -> AppResult<Head> {
        store::wallets::find(&self.db, scope.workspace_id().as_str())
            .await?
            .ok_or(AppError::NotFound("workspace"))
    }
}
