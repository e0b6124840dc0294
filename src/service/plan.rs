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
use crate::domain::catalogue::{GrantSource, LedgerKind, PlanCode};
use crate::domain::period::period_containing;
use crate::error::{AppError, AppResult, db_error};
use crate::store::{self, ledger::EntryDraft, ledger::NewGrant};

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
            .await
            .map_err(db_error)?
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

        let mut locked = self.lock(scope.workspace_id().as_str()).await?;
        locked.settle(now).await?;
        let is_enterprise = request.plan == PlanCode::Enterprise;
        let reference = format!("plan:{}", request.plan);

        let current_period = locked.wallet.period_start_at.zip(locked.wallet.period_end_at);
        match current_period {
            // No paid period yet (trial, or an ended trial): start one now.
            None => {
                let period = period_containing(now, now);
                locked.wallet.billing_anchor_at = Some(now);
                locked.wallet.period_start_at = Some(period.start);
                locked.wallet.period_end_at = Some(period.end);
                locked.wallet.plan_code = request.plan.as_str().to_owned();
                locked.wallet.pending_plan_code = None;
                locked.wallet.enterprise_allocation_credits = is_enterprise.then_some(allocation);
                locked
                    .grant_allocation(period, allocation, scope.actor(), reference, now)
                    .await?;
            }
            Some((period_start, period_end)) => {
                let current_grant = locked
                    .grants
                    .iter()
                    .find(|grant| {
                        grant.source == GrantSource::Allocation.as_str()
                            && grant.period_start_at == Some(period_start)
                    })
                    .map(|grant| (grant.id, grant.granted_credits));
                let granted = current_grant.map_or(0, |(_, granted)| granted);
                let same_plan = locked.wallet.plan_code == request.plan.as_str()
                    && (!is_enterprise || locked.wallet.enterprise_allocation_credits == Some(allocation));
                if same_plan {
                    locked.wallet.pending_plan_code = None;
                } else if allocation > granted {
                    let raise = allocation - granted;
                    let grant_id = match current_grant {
                        Some((grant_id, _)) => {
                            store::ledger::enlarge_grant(&locked.txn, grant_id, raise)
                                .await
                                .map_err(db_error)?;
                            grant_id
                        }
                        None => {
                            locked
                                .add_grant(
                                    NewGrant {
                                        source: GrantSource::Allocation,
                                        credits: raise,
                                        expires_at: Some(period_end),
                                        period_start_at: Some(period_start),
                                        purchase: None,
                                    },
                                    now,
                                )
                                .await?
                        }
                    };
                    if let Some(grant) = locked.grants.iter_mut().find(|grant| grant.id == grant_id) {
                        grant.granted_credits += raise;
                    }
                    locked
                        .append(
                            EntryDraft {
                                kind: LedgerKind::Grant,
                                amount: raise,
                                action: None,
                                reference: Some(reference),
                                actor: scope.actor().to_owned(),
                                idempotency: None,
                                reverses_entry_id: None,
                                grant_moves: vec![(grant_id, raise)],
                            },
                            now,
                        )
                        .await?;
                    locked.wallet.plan_code = request.plan.as_str().to_owned();
                    locked.wallet.pending_plan_code = None;
                    locked.wallet.enterprise_allocation_credits = is_enterprise.then_some(allocation);
                } else {
                    locked.wallet.pending_plan_code = Some(request.plan.as_str().to_owned());
                    if is_enterprise {
                        locked.wallet.enterprise_allocation_credits = Some(allocation);
                    }
                }
            }
        }
        self.finish(locked, now).await?;
        self.wallet(scope).await
    }
}
