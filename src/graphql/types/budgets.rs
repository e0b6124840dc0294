//! Budgets: their enums, objects, inputs and payloads.

use async_graphql::{Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};

use super::{Action, int};
use domain::budget as rules;

/// Whose spends a budget counts.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "rules::BudgetTarget")]
pub enum BudgetTarget {
    /// Every spend of the workspace, as one counter.
    Workspace,
    /// Each agent's spends, one counter per agent (spends naming no agent
    /// are not counted).
    EachAgent,
    /// One agent's spends (`agentId`); replaces an EACH_AGENT budget of the
    /// same action and window for that agent.
    Agent,
}

/// How long a budget's counter lasts.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "rules::BudgetWindow")]
pub enum BudgetWindow {
    /// A calendar day in the workspace's time zone (`Wallet.timeZone`).
    Day,
    /// The wallet's billing period (the trial counts as one).
    BillingPeriod,
}

/// What a budget does at its limit.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "rules::BudgetMode")]
pub enum BudgetMode {
    /// Refuses a spend that would go over: outcome BUDGET_EXCEEDED.
    Hard,
    /// Charges, and lists the budget in `budgetWarnings` once over.
    Soft,
}

/// A cap on the credits spends may use per window.
#[derive(SimpleObject, Clone)]
pub struct Budget {
    /// Its name, unique in the workspace.
    pub name: String,
    /// Whose spends it counts.
    pub applies_to: BudgetTarget,
    /// The agent, for AGENT budgets.
    pub agent_id: Option<ID>,
    /// The action counted; null for every action.
    pub action: Option<Action>,
    /// The window.
    pub window: BudgetWindow,
    /// Credits per window.
    pub limit: i32,
    /// HARD or SOFT.
    pub mode: BudgetMode,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last set.
    pub updated_at: DateTime<Utc>,
}

impl From<rules::Budget> for Budget {
    fn from(budget: rules::Budget) -> Self {
        Self {
            name: budget.name,
            applies_to: budget.applies_to.into(),
            agent_id: budget.agent_id.map(ID),
            action: budget.action.map(Into::into),
            window: budget.window.into(),
            limit: int(budget.limit),
            mode: budget.mode.into(),
            created_at: budget.created_at,
            updated_at: budget.updated_at,
        }
    }
}

/// A budget's standing in its current window, for one agent or the
/// workspace.
#[derive(SimpleObject, Clone)]
pub struct BudgetUsage {
    /// The budget.
    pub budget: Budget,
    /// The agent counted (EACH_AGENT and AGENT budgets); null for WORKSPACE.
    pub agent_id: Option<ID>,
    /// Credits used in the current window.
    pub used: i32,
    /// Credits left before the limit (0 when at or over it).
    pub remaining: i32,
    /// When the window ends and the counter starts again; null if never.
    pub resets_at: Option<DateTime<Utc>>,
}

impl From<rules::BudgetUsage> for BudgetUsage {
    fn from(usage: rules::BudgetUsage) -> Self {
        Self {
            budget: usage.budget.into(),
            agent_id: usage.agent_id.map(ID),
            used: int(usage.used),
            remaining: int(usage.remaining),
            resets_at: usage.resets_at,
        }
    }
}

/// Credits one agent spent over a range.
#[derive(SimpleObject)]
pub struct AgentUsage {
    /// The agent; null for spends that named none.
    pub agent_id: Option<ID>,
    /// Credits spent, all actions, net of reversals.
    pub total: i32,
    /// Credits spent per action (every action listed).
    pub by_action: Vec<super::ActionUsage>,
}

/// Input of `setBudget`: creates the budget, or updates the one of that
/// name. Changing whose spends it counts (target, agent, action, window)
/// starts its counters afresh; changing the limit or mode keeps them.
#[derive(InputObject)]
pub struct SetBudgetInput {
    /// The workspace; defaults to the token's.
    pub workspace_id: Option<ID>,
    /// 1 to 64 characters, unique in the workspace.
    pub name: String,
    /// Whose spends it counts.
    pub applies_to: BudgetTarget,
    /// Required for AGENT, refused otherwise.
    pub agent_id: Option<ID>,
    /// The action counted; null for every action.
    pub action: Option<Action>,
    /// The window.
    pub window: BudgetWindow,
    /// Credits per window, 0 or more.
    pub limit: i32,
    /// HARD or SOFT.
    pub mode: BudgetMode,
}

/// The answer to `setBudget`.
#[derive(SimpleObject)]
pub struct SetBudgetPayload {
    /// The budget as set.
    pub budget: Budget,
}

/// Input of `removeBudget`.
#[derive(InputObject)]
pub struct RemoveBudgetInput {
    /// The workspace; defaults to the token's.
    pub workspace_id: Option<ID>,
    /// The budget's name.
    pub name: String,
}

/// The answer to `removeBudget`.
#[derive(SimpleObject)]
pub struct RemoveBudgetPayload {
    /// The name of the budget removed.
    pub name: String,
}

/// Input of `setTimeZone`.
#[derive(InputObject)]
pub struct SetTimeZoneInput {
    /// The workspace; defaults to the token's.
    pub workspace_id: Option<ID>,
    /// An IANA time zone name, such as `Europe/Paris` or `UTC`.
    pub time_zone: String,
}

/// The answer to `setTimeZone`.
#[derive(SimpleObject)]
pub struct SetTimeZonePayload {
    /// The workspace.
    pub workspace: Workspace,
}

/// A workspace, as the credits service knows it.
#[derive(SimpleObject)]
pub struct Workspace {
    /// Its id.
    pub id: ID,
    /// Its IANA time zone: DAY budgets end at its midnight.
    pub time_zone: String,
}
