//! The catalogue, balances and transactions as GraphQL objects.

use async_graphql::{ComplexObject, Context, ID, SimpleObject};
use chrono::{DateTime, Utc};

use super::*;
use crate::graphql::errors::GraphqlResult;
use crate::graphql::ledger;
use crate::service;

/// A plan of the catalogue.
#[derive(SimpleObject)]
pub struct Plan {
    /// Its code.
    pub code: PlanCode,
    /// Its display name.
    pub name: String,
    /// Monthly price in cents; null when the price is custom.
    pub price_cents: Option<i32>,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Credits per billing period (one time for the trial); null when set per workspace.
    pub monthly_credits: Option<i32>,
    /// Whether this is the trial.
    pub is_trial: bool,
    /// Length of the trial in days.
    pub trial_days: Option<i32>,
}

impl From<service::PlanView> for Plan {
    fn from(view: service::PlanView) -> Self {
        Self {
            code: view.code.into(),
            name: view.name,
            price_cents: view.price_cents.map(int),
            currency: view.currency,
            monthly_credits: view.monthly_credits.map(int),
            is_trial: view.is_trial,
            trial_days: view.trial_days,
        }
    }
}

/// A top-up pack: never-expiring credits.
#[derive(SimpleObject)]
pub struct TopUpPack {
    /// Its code.
    pub code: TopUpPackCode,
    /// Price in cents.
    pub price_cents: i32,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Credits granted.
    pub credits: i32,
}

impl From<service::PackView> for TopUpPack {
    fn from(view: service::PackView) -> Self {
        Self {
            code: view.code.into(),
            price_cents: int(view.price_cents),
            currency: view.currency,
            credits: int(view.credits),
        }
    }
}

/// The cost of one AI action.
#[derive(SimpleObject)]
pub struct ActionCost {
    /// The action.
    pub action: Action,
    /// Credits it costs.
    pub credits: i32,
    /// What it is.
    pub description: String,
}

impl From<service::ActionCostView> for ActionCost {
    fn from(view: service::ActionCostView) -> Self {
        Self {
            action: view.action.into(),
            credits: int(view.credits),
            description: view.description,
        }
    }
}

/// A balance, split by where the credits came from.
#[derive(SimpleObject, Clone, Copy)]
pub struct Balance {
    /// Every credit the wallet holds: `available` + `held`.
    pub total: i32,
    /// What spends and new holds may take: `total` less `held`.
    pub available: i32,
    /// Credits reserved by live holds (`reserveCredits`), not yet captured
    /// or released.
    pub held: i32,
    /// The current billing period's plan allocation.
    pub allocation: i32,
    /// Purchased top-up packs (never expire).
    pub purchased: i32,
    /// Trial credits and operator adjustments.
    pub bonus: i32,
}

impl From<service::BalanceView> for Balance {
    fn from(view: service::BalanceView) -> Self {
        Self {
            total: int(view.total),
            available: int(view.available()),
            held: int(view.held),
            allocation: int(view.split.allocation),
            purchased: int(view.split.purchased),
            bonus: int(view.split.bonus),
        }
    }
}

/// A billing period, `[start, end)`, in UTC.
#[derive(SimpleObject)]
pub struct Period {
    /// First instant of the period.
    pub start: DateTime<Utc>,
    /// First instant after it: the next reset.
    pub end: DateTime<Utc>,
}

/// One ledger transaction: a change of the balance.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Transaction {
    /// Its id.
    pub id: ID,
    /// Its position in the wallet's ledger: 1, 2, 3… with no gaps.
    pub sequence: i32,
    /// Its kind.
    pub kind: TransactionKind,
    /// Signed change of the balance, in credits.
    pub amount: i32,
    /// The balance after it.
    pub balance_after: i32,
    /// The action paid, for spends.
    pub action: Option<Action>,
    /// The caller's reference (ticket, payment reference, reason).
    pub reference: Option<String>,
    /// Who caused it: the token's subject, or `system`.
    pub actor: String,
    /// The idempotency key that bound it.
    pub idempotency_key: Option<String>,
    /// The transaction it reverses.
    pub reverses_transaction_id: Option<ID>,
    /// The agent a spend (or its reversal) was for, when it named one.
    pub agent_id: Option<ID>,
    /// The hold it placed (HOLD), captured (a SPEND), released (RELEASE) or
    /// expired (HOLD_EXPIRED).
    pub hold_id: Option<ID>,
    /// Credits held by live holds after it.
    pub held_after: i32,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub entry_id: i64,
    #[graphql(skip)]
    pub preloaded_grants: Option<Vec<GrantMove>>,
}

/// How a transaction moved one grant (a block of credits).
#[derive(SimpleObject, Clone)]
pub struct GrantMove {
    /// The grant's id.
    pub grant_id: ID,
    /// Where the grant's credits came from: TRIAL, ALLOCATION, PURCHASE or ADJUSTMENT.
    pub source: String,
    /// When the grant expires (or expired); null when never.
    pub expires_at: Option<DateTime<Utc>>,
    /// Signed credits moved; negative when the grant paid.
    pub credits: i32,
}

impl From<service::GrantMoveView> for GrantMove {
    fn from(view: service::GrantMoveView) -> Self {
        Self {
            grant_id: ID(view.grant_id.to_string()),
            source: view.source.as_str().to_owned(),
            expires_at: view.expires_at,
            credits: int(view.credits),
        }
    }
}

#[ComplexObject]
impl Transaction {
    /// Which grants paid for (or received) this transaction's credits.
    async fn grants(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<GrantMove>> {
        if let Some(grants) = &self.preloaded_grants {
            return Ok(grants.clone());
        }
        let moves = ledger(ctx).gql()?.grant_moves(&[self.entry_id]).await.gql()?;
        Ok(moves
            .into_iter()
            .flat_map(|(_, views)| views)
            .map(Into::into)
            .collect())
    }
}

impl From<service::TransactionView> for Transaction {
    fn from(view: service::TransactionView) -> Self {
        Self {
            id: ID(view.id.to_string()),
            sequence: int(view.sequence),
            kind: view.kind.into(),
            amount: int(view.amount),
            balance_after: int(view.balance_after),
            action: view.action.map(Into::into),
            reference: view.reference,
            actor: view.actor,
            idempotency_key: view.idempotency_key,
            reverses_transaction_id: view.reverses_transaction_id.map(|id| ID(id.to_string())),
            agent_id: view.agent_id.map(ID),
            hold_id: view.hold_id.map(|id| ID(id.to_string())),
            held_after: int(view.held_after),
            created_at: view.created_at,
            entry_id: view.id,
            preloaded_grants: None,
        }
    }
}

/// Credits spent in one bucket.
#[derive(SimpleObject)]
pub struct UsageBucket {
    /// First instant of the bucket.
    pub start: DateTime<Utc>,
    /// First instant after it.
    pub end: DateTime<Utc>,
    /// Credits spent in it, all actions.
    pub total: i32,
    /// Credits spent per action (every action listed).
    pub by_action: Vec<ActionUsage>,
    /// With `usage(byAgent: true)`: the same per agent (agents by id, then
    /// spends that named none; agents that spent nothing omitted).
    pub by_agent: Vec<AgentUsage>,
}

/// Credits spent on one action.
#[derive(SimpleObject)]
pub struct ActionUsage {
    /// The action.
    pub action: Action,
    /// Credits spent on it, net of reversals.
    pub credits: i32,
}

/// One crossing of the low-balance threshold.
#[derive(SimpleObject)]
pub struct LowBalanceAlert {
    /// The threshold crossed.
    pub threshold: i32,
    /// The balance just after crossing.
    pub balance: i32,
    /// The ledger sequence of the transaction that crossed it.
    pub sequence: i32,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A wallet's runway at its recent pace.
#[derive(SimpleObject)]
pub struct Forecast {
    /// Credits spent a day, net of reversals, over the trailing seven days
    /// (over the wallet's life when younger, and at least one day).
    pub daily_burn: f64,
    /// When the balance runs out at that pace; null when nothing was spent,
    /// or not within a hundred years.
    pub depletes_at: Option<DateTime<Utc>>,
    /// Whether the balance lasts until the next reset at that pace; null
    /// without a reset to come (a trial).
    pub covers_until_reset: Option<bool>,
}

impl From<domain::forecast::Forecast> for Forecast {
    fn from(forecast: domain::forecast::Forecast) -> Self {
        Self {
            daily_burn: forecast.daily_burn,
            depletes_at: forecast.depletes_at,
            covers_until_reset: forecast.covers_until_reset,
        }
    }
}
