//! Input objects: what queries and mutations take.

use async_graphql::{ID, InputObject};
use chrono::{DateTime, Utc};

use super::*;

/// Filters of `Wallet.transactions`; every given filter must match.
#[derive(InputObject, Default)]
pub struct TransactionFilter {
    /// Only these kinds.
    pub kinds: Option<Vec<TransactionKind>>,
    /// Only these actions.
    pub actions: Option<Vec<Action>>,
    /// Created at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Created before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Exactly this reference.
    pub reference: Option<String>,
}

/// Input of `spendCredit`.
#[derive(InputObject)]
pub struct SpendCreditInput {
    /// The workspace to charge; defaults to the token's.
    pub workspace_id: Option<ID>,
    /// The action to pay for.
    pub action: Action,
    /// 1 to 200 characters, unique per workspace for the life of the ledger;
    /// a retry with the same key and input is answered DUPLICATE.
    pub idempotency_key: String,
    /// Your reference (ticket or thread id), at most 200 characters.
    pub reference: Option<String>,
    /// The agent the action is for (Sidekick: the agent who opened the
    /// thread; triage has none), counted by agent budgets. Agent tokens
    /// spend for their own `sub`: it is the default, and another value is
    /// FORBIDDEN.
    pub agent_id: Option<ID>,
}

/// Input of `purchaseTopUp`.
#[derive(InputObject)]
pub struct PurchaseTopUpInput {
    /// The workspace to credit; defaults to the token's.
    pub workspace_id: Option<ID>,
    /// The pack bought.
    pub pack: TopUpPackCode,
    /// The payment's reference, 1 to 200 characters; also the idempotency key.
    pub payment_reference: String,
    /// The automatic top-up request (`atr_…`) this payment answers; it closes.
    pub auto_top_up_request_id: Option<String>,
}

/// Input of `changePlan`.
#[derive(InputObject)]
pub struct ChangePlanInput {
    /// The workspace; defaults to the token's.
    pub workspace_id: Option<ID>,
    /// The plan to move to.
    pub plan: PlanCode,
    /// ENTERPRISE only (operators): credits per billing period, 1 or more.
    pub enterprise_monthly_credits: Option<i32>,
}

/// Input of `createWorkspace`.
#[derive(InputObject)]
pub struct CreateWorkspaceInput {
    /// The workspace's id in Protodesk: 1 to 64 characters of A-Z a-z 0-9 _ -.
    pub workspace_id: ID,
    /// Its display name, 1 to 200 characters.
    pub name: String,
}

/// Input of `adjustCredits`.
#[derive(InputObject)]
pub struct AdjustCreditsInput {
    /// The workspace.
    pub workspace_id: ID,
    /// Signed credits: positive adds a bonus grant, negative burns like a
    /// spend (refused below zero). Never zero.
    pub credits: i32,
    /// Why, 1 to 500 characters; recorded as the transaction's reference.
    pub reason: String,
    /// For a positive adjustment: when its credits expire (default never).
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Input of `reverseTransaction`.
#[derive(InputObject)]
pub struct ReverseTransactionInput {
    /// The SPEND or TOP_UP to reverse.
    pub transaction_id: ID,
    /// Why, 1 to 500 characters.
    pub reason: String,
}

/// Input of `setLowBalanceThreshold`.
#[derive(InputObject)]
pub struct SetLowBalanceThresholdInput {
    /// The workspace; defaults to the token's.
    pub workspace_id: Option<ID>,
    /// Alert once when the balance falls below this (1 or more); null turns alerts off.
    pub threshold: Option<i32>,
}
