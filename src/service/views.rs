//! What the service answers with: plain values, independent of both the
//! storage rows and the GraphQL types.

use chrono::{DateTime, Utc};
use entity::{action_cost, credit_grant, ledger_entry, plan, top_up_pack};

use crate::domain::catalogue::{Action, BalanceSplit, GrantSource, LedgerKind, PackCode, PlanCode};
use crate::error::{AppError, AppResult};

fn stored<T: std::str::FromStr<Err = crate::domain::catalogue::UnknownName>>(text: &str) -> AppResult<T> {
    text.parse()
        .map_err(|error| AppError::Internal(anyhow::Error::new(error)))
}

/// A plan of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanView {
    /// Its code.
    pub code: PlanCode,
    /// Its display name.
    pub name: String,
    /// Monthly price in cents; `None` when custom.
    pub price_cents: Option<i64>,
    /// ISO currency code.
    pub currency: String,
    /// Credits per period (one time for the trial); `None` when set per workspace.
    pub monthly_credits: Option<i64>,
    /// Whether it is the trial.
    pub is_trial: bool,
    /// Trial length in days.
    pub trial_days: Option<i32>,
}

impl PlanView {
    pub(crate) fn from_model(model: plan::Model) -> AppResult<Self> {
        Ok(Self {
            code: stored(&model.code)?,
            name: model.display_name,
            price_cents: model.price_cents,
            currency: model.currency,
            monthly_credits: model.monthly_credits,
            is_trial: model.is_trial,
            trial_days: model.trial_days,
        })
    }
}

/// A top-up pack of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackView {
    /// Its code.
    pub code: PackCode,
    /// Price in cents.
    pub price_cents: i64,
    /// ISO currency code.
    pub currency: String,
    /// Credits granted, never expiring.
    pub credits: i64,
}

impl PackView {
    pub(crate) fn from_model(model: top_up_pack::Model) -> AppResult<Self> {
        Ok(Self {
            code: stored(&model.code)?,
            price_cents: model.price_cents,
            currency: model.currency,
            credits: model.credits,
        })
    }
}

/// The cost of one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionCostView {
    /// The action.
    pub action: Action,
    /// Its cost in credits.
    pub credits: i64,
    /// What it is.
    pub description: String,
}

impl ActionCostView {
    pub(crate) fn from_model(model: action_cost::Model) -> AppResult<Self> {
        Ok(Self {
            action: stored(&model.action)?,
            credits: model.credits,
            description: model.description,
        })
    }
}

/// A balance and its split into buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BalanceView {
    /// All spendable credits.
    pub total: i64,
    /// The split by origin.
    pub split: BalanceSplit,
}

impl BalanceView {
    /// Sums live grants into buckets. A stored source this build does not
    /// know counts as bonus rather than vanishing from the total.
    pub fn from_grants(grants: &[credit_grant::Model]) -> Self {
        let mut split = BalanceSplit::default();
        for grant in grants {
            let source = grant.source.parse().unwrap_or(GrantSource::Adjustment);
            split.add(source, grant.remaining_credits);
        }
        Self {
            total: split.total(),
            split,
        }
    }

    /// The balance after a ledger row, as the row recorded it.
    pub fn after_row(row: &ledger_entry::Model) -> Self {
        Self {
            total: row.balance_after_credits,
            split: BalanceSplit {
                allocation: row.allocation_after_credits,
                purchased: row.purchased_after_credits,
                bonus: row.bonus_after_credits,
            },
        }
    }
}

/// A billing period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodView {
    /// First instant.
    pub start: DateTime<Utc>,
    /// First instant after it: the next reset.
    pub end: DateTime<Utc>,
}

/// A wallet as its readers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletView {
    /// Its workspace.
    pub workspace_id: String,
    /// Its balance.
    pub balance: BalanceView,
    /// Its current plan.
    pub plan: PlanCode,
    /// A downgrade that takes effect at the next reset.
    pub pending_plan: Option<PlanCode>,
    /// The current billing period, once a paid plan started.
    pub current_period: Option<PeriodView>,
    /// When the trial ends (or ended).
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// Whether AI actions are paused: the balance is below the cheapest action.
    pub ai_paused: bool,
    /// The wallet's newest ledger sequence.
    pub last_sequence: i64,
    /// The per-period allocation of an ENTERPRISE wallet.
    pub enterprise_monthly_credits: Option<i64>,
    /// The low-balance threshold, if alerts are on.
    pub low_balance_threshold: Option<i64>,
    /// When the outstanding low-balance alert fired (none when armed).
    pub low_balance_alerted_at: Option<DateTime<Utc>>,
}

/// One ledger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionView {
    /// Its id.
    pub id: i64,
    /// Its position in the wallet's ledger (1, 2, 3…).
    pub sequence: i64,
    /// Its kind.
    pub kind: LedgerKind,
    /// Signed change of the balance.
    pub amount: i64,
    /// The balance after it.
    pub balance_after: i64,
    /// The action, for spends.
    pub action: Option<Action>,
    /// The caller's reference.
    pub reference: Option<String>,
    /// Who caused it.
    pub actor: String,
    /// The key that bound it.
    pub idempotency_key: Option<String>,
    /// The row it reverses.
    pub reverses_transaction_id: Option<i64>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

impl TransactionView {
    pub(crate) fn from_model(model: ledger_entry::Model) -> AppResult<Self> {
        Ok(Self {
            id: model.id,
            sequence: model.sequence,
            kind: stored(&model.kind)?,
            amount: model.amount_credits,
            balance_after: model.balance_after_credits,
            action: model.action.as_deref().map(stored).transpose()?,
            reference: model.reference,
            actor: model.actor,
            idempotency_key: model.idempotency_key,
            reverses_transaction_id: model.reverses_entry_id,
            created_at: model.created_at,
        })
    }
}

/// One page of the transactions connection, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionPage {
    /// The rows.
    pub transactions: Vec<TransactionView>,
    /// Whether older rows match beyond this page.
    pub has_next_page: bool,
}
