//! What mutations answer with.

use async_graphql::{ComplexObject, SimpleObject};
use chrono::{DateTime, Utc};

use super::*;
use crate::service;

/// The answer to `spendCredit`.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct SpendCreditPayload {
    /// CHARGED, INSUFFICIENT_CREDITS or DUPLICATE.
    pub outcome: SpendOutcome,
    /// The transaction that charged (for DUPLICATE, the original one).
    pub transaction: Option<Transaction>,
    /// The wallet's balance now.
    pub balance: Balance,
    /// What the action costs.
    pub cost: i32,
    /// When the plan's allocation next resets (credits arrive), if ever.
    pub next_reset_at: Option<DateTime<Utc>>,
    /// For INSUFFICIENT_CREDITS: the smallest pack that would resume AI.
    pub suggested_top_up: Option<TopUpPack>,
    /// For BUDGET_EXCEEDED: the budget that refused, with what it used.
    pub budget: Option<BudgetUsage>,
    /// SOFT budgets this spend left over their limit.
    pub budget_warnings: Vec<BudgetUsage>,
}

#[ComplexObject]
impl SpendCreditPayload {
    /// True when the balance after this answer cannot pay for this action again.
    async fn ai_paused(&self) -> bool {
        self.balance.available < self.cost
    }
}

impl From<service::SpendResult> for SpendCreditPayload {
    fn from(result: service::SpendResult) -> Self {
        Self {
            outcome: result.outcome.into(),
            transaction: result.transaction.map(Into::into),
            balance: result.balance.into(),
            cost: int(result.cost),
            next_reset_at: result.next_reset_at,
            suggested_top_up: result.suggested_top_up.map(Into::into),
            budget: result.budget.map(Into::into),
            budget_warnings: result.budget_warnings.into_iter().map(Into::into).collect(),
        }
    }
}

/// The answer to `purchaseTopUp`.
#[derive(SimpleObject)]
pub struct PurchaseTopUpPayload {
    /// APPLIED or DUPLICATE.
    pub outcome: TopUpOutcome,
    /// The TOP_UP transaction (for DUPLICATE, the original one).
    pub transaction: Transaction,
    /// The wallet's balance now.
    pub balance: Balance,
}

impl From<service::TopUpResult> for PurchaseTopUpPayload {
    fn from(result: service::TopUpResult) -> Self {
        Self {
            outcome: result.outcome.into(),
            transaction: result.transaction.into(),
            balance: result.balance.into(),
        }
    }
}

/// The answer to `createWorkspace`.
#[derive(SimpleObject)]
pub struct CreateWorkspacePayload {
    /// The new workspace's wallet.
    pub wallet: Wallet,
}

/// The answer to `changePlan`.
#[derive(SimpleObject)]
pub struct ChangePlanPayload {
    /// The wallet after the change.
    pub wallet: Wallet,
}

/// A ledger change made by an operator.
#[derive(SimpleObject)]
pub struct LedgerChangePayload {
    /// The transaction written.
    pub transaction: Transaction,
    /// The wallet's balance now.
    pub balance: Balance,
}

impl From<service::LedgerChange> for LedgerChangePayload {
    fn from(change: service::LedgerChange) -> Self {
        Self {
            transaction: change.transaction.into(),
            balance: change.balance.into(),
        }
    }
}

/// The answer to `setLowBalanceThreshold`.
#[derive(SimpleObject)]
pub struct SetLowBalanceThresholdPayload {
    /// The wallet after the change.
    pub wallet: Wallet,
}
