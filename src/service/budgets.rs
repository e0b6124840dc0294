//! Budgets: setting and removing them, the workspace's time zone, and what
//! each budget used (`docs/design/budgets.md`). Spends count in them inside
//! the wallet's change (`domain::wallet`).

use chrono::{DateTime, Utc};

use super::Ledger;
use crate::auth::WalletScope;
use crate::error::{AppError, AppResult};
use crate::store;
pub use domain::budget::BudgetInput;
use domain::budget::{Budget, BudgetUsage, applying_to, usage, used_in, window_of};
use domain::catalogue::Action;
use domain::usage::{Bucket, check_range};

/// Credits one agent (or no agent) spent over a range, per action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentUsageView {
    /// The agent; `None` for spends that named none.
    pub agent_id: Option<String>,
    /// Credits spent per action, net of reversals (every action listed).
    pub credits_by_action: Vec<(Action, i64)>,
}

impl Ledger {
    /// Creates or updates a budget (by name); at most [`BUDGETS_MAX`] a
    /// workspace.
    pub async fn set_budget(&self, scope: &WalletScope, input: BudgetInput) -> AppResult<Budget> {
        let now = self.now();
        let mut locked = self.lock_settled(scope.workspace_id().as_str(), now).await?;
        let existing = store::budgets::of_wallet(&locked.txn, locked.wallet.head().id).await?;
        let name = input.name.clone();
        let wallet_id = locked.wallet.head().id;
        locked.wallet.set_budget(&existing, input, now)?;
        self.finish(locked, now).await?;
        // Read back for its id, which a new budget gets as it is stored.
        store::budgets::of_wallet(&self.db, wallet_id)
            .await?
            .into_iter()
            .find(|budget| budget.name == name)
            .ok_or(AppError::NotFound("budget"))
    }

    /// Removes a budget and its counters; NOT_FOUND when there is none of
    /// that name.
    pub async fn remove_budget(&self, scope: &WalletScope, name: &str) -> AppResult<()> {
        let now = self.now();
        let mut locked = self.lock_settled(scope.workspace_id().as_str(), now).await?;
        let existing = store::budgets::of_wallet(&locked.txn, locked.wallet.head().id).await?;
        if !locked.wallet.remove_budget(&existing, name) {
            return Err(AppError::NotFound("budget"));
        }
        self.finish(locked, now).await?;
        Ok(())
    }

    /// Sets the workspace's time zone (an IANA name, checked by the caller).
    pub async fn set_time_zone(&self, scope: &WalletScope, time_zone: &str) -> AppResult<()> {
        let now = self.now();
        let mut locked = self.lock_settled(scope.workspace_id().as_str(), now).await?;
        locked.wallet.set_time_zone(time_zone);
        self.finish(locked, now).await?;
        Ok(())
    }

    /// The workspace's time zone.
    pub async fn time_zone(&self, scope: &WalletScope) -> AppResult<String> {
        Ok(self.wallet_row(scope).await?.time_zone)
    }

    /// The wallet's budgets, by name.
    pub async fn budgets(&self, scope: &WalletScope) -> AppResult<Vec<Budget>> {
        let head = self.wallet_row(scope).await?;
        let mut budgets = store::budgets::of_wallet(&self.db, head.id).await?;
        budgets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(budgets)
    }

    /// Each budget that counts `agent`'s spends (or, with no agent, the
    /// workspace's), with what it used in its current window.
    pub async fn budget_usage(
        &self,
        scope: &WalletScope,
        agent: Option<&str>,
    ) -> AppResult<Vec<BudgetUsage>> {
        let now = self.now();
        // Settled first, so a billing period that ended shows its new window.
        let head = self.settled_head(scope, now).await?;
        let (budgets, counters) = store::budgets::load(&self.db, head.id, agent).await?;
        Ok(applying_to(&budgets, agent)
            .into_iter()
            .map(|budget| {
                let subject = budget.subject(agent);
                let window = window_of(budget, &head, now);
                let counter = counters
                    .iter()
                    .find(|counter| counter.budget_id == budget.id && counter.subject == subject);
                usage(budget, &subject, used_in(counter, window), window)
            })
            .collect())
    }

    /// Credits spent over `[from, to)` (at most 400 days) per agent and
    /// action, net of reversals; agents by id, spends with no agent last.
    pub async fn usage_by_agent(
        &self,
        scope: &WalletScope,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> AppResult<Vec<AgentUsageView>> {
        check_range(from, to, Bucket::Day)?;
        let head = self.wallet_row(scope).await?;
        let spends = store::ledger::spends_by_agent(
            &self.db,
            head.id,
            from,
            to,
            Some(super::usage::USAGE_AGENT_GROUPS_MAX + 1),
        )
        .await?;
        if spends.len() as u64 > super::usage::USAGE_AGENT_GROUPS_MAX {
            return Err(AppError::limit(
                format!(
                    "usageByAgent answers at most {} agent and action pairs; narrow from and to",
                    super::usage::USAGE_AGENT_GROUPS_MAX
                ),
                None,
            ));
        }
        let mut agents: Vec<AgentUsageView> = Vec::new();
        for (agent_id, action, credits) in spends {
            let position = match agents.iter().position(|view| view.agent_id == agent_id) {
                Some(position) => position,
                None => {
                    agents.push(AgentUsageView {
                        agent_id,
                        credits_by_action: Action::ALL.iter().map(|action| (*action, 0)).collect(),
                    });
                    agents.len() - 1
                }
            };
            if let Some((_, counted)) = agents[position]
                .credits_by_action
                .iter_mut()
                .find(|(counted, _)| *counted == action)
            {
                *counted += credits;
            }
        }
        agents.sort_by(|a, b| (a.agent_id.is_none(), &a.agent_id).cmp(&(b.agent_id.is_none(), &b.agent_id)));
        Ok(agents)
    }
}
