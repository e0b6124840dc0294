//! `changePlan`: upgrades now, downgrades at the next reset.
//!
//! - From the trial (or an ended trial) to a paid plan: the billing anchor
//!   is set to now, the first period starts, and its allocation is granted
//!   at once. Remaining trial credits stay until the trial's end.
//! - Upgrade (a larger allocation than the current period's): the current
//!   allocation grant is raised to the new plan's size, less what was
//!   already used of it, in one GRANT row for the difference.
//! - Downgrade (a smaller or equal allocation): recorded as pending, and
//!   applied at the next reset; the current period keeps what it has.
//! - Choosing the current plan again cancels a pending downgrade.
//!
//! The difference is always measured against what the current period's
//! allocation grant already holds, so a downgrade followed by an upgrade in
//! one period never grants a second full allowance.

use super::{Ledger, WalletView};
use crate::auth::WalletScope;
use crate::error::{AppError, AppResult};
use crate::store;
use domain::catalogue::PlanCode;

/// A validated plan change.
#[derive(Debug, Clone)]
pub struct ChangePlanRequest {
    /// The plan to move to.
    pub plan: PlanCode,
    /// For ENTERPRISE only (operator): the per-period allocation.
    pub enterprise_monthly_credits: Option<i64>,
}

impl Ledger {
    /// Changes the scope's plan.
    pub async fn change_plan(
        &self,
        scope: &WalletScope,
        request: ChangePlanRequest,
    ) -> AppResult<WalletView> {
        let now = self.now();
        let target = store::catalogue::plan(&self.db, request.plan.as_str())
            .await?
            .ok_or_else(|| AppError::invalid("plan", "is not in the catalogue"))?;
        if target.is_trial {
            return Err(AppError::invalid(
                "plan",
                "cannot be the trial; the trial starts with the workspace",
            ));
        }
        let allocation = match (request.plan, request.enterprise_monthly_credits) {
            (PlanCode::Enterprise, _) if !scope.is_operator() => {
                return Err(AppError::Forbidden(
                    "choose ENTERPRISE (operators set enterprise allocations)",
                ));
            }
            (PlanCode::Enterprise, Some(credits)) => credits,
            (PlanCode::Enterprise, None) => {
                return Err(AppError::invalid(
                    "enterpriseMonthlyCredits",
                    "is required for ENTERPRISE",
                ));
            }
            (_, Some(_)) => {
                return Err(AppError::invalid(
                    "enterpriseMonthlyCredits",
                    "is only accepted for ENTERPRISE",
                ));
            }
            (_, None) => target.monthly_credits.ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!("plan {} has no allocation", target.code))
            })?,
        };

        let mut locked = self.lock_settled(scope.workspace_id().as_str(), now).await?;
        locked
            .wallet
            .change_plan(request.plan, allocation, scope.actor(), now)?;
        self.finish(locked, now).await?;
        self.wallet(scope).await
    }
}
