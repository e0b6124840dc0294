//! The answer types of `domain::views`, built from stored rows.

use entity::{action_cost, credit_grant, ledger_entry, plan, top_up_pack};

pub use crate::domain::views::{
    ActionCostView, BalanceView, EntryFilter, PackView, PeriodView, PlanView, TransactionPage,
    TransactionView, WalletView,
};

use crate::domain::catalogue::{BalanceSplit, GrantSource};
use crate::error::{AppError, AppResult};
use crate::events::BalanceEvent;

fn stored<T: std::str::FromStr<Err = crate::domain::catalogue::UnknownName>>(text: &str) -> AppResult<T> {
    text.parse()
        .map_err(|error| AppError::Internal(anyhow::Error::new(error)))
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

impl ActionCostView {
    pub(crate) fn from_model(model: action_cost::Model) -> AppResult<Self> {
        Ok(Self {
            action: stored(&model.action)?,
            credits: model.credits,
            description: model.description,
        })
    }
}

impl BalanceView {
    /// Sums live grants into buckets. A stored source this build does not
    /// know counts as bonus rather than vanishing from the total.
    pub fn from_grants(grants: &[credit_grant::Model]) -> Self {
        Self::from_sources(grants.iter().map(|grant| {
            (
                grant.source.parse().unwrap_or(GrantSource::Adjustment),
                grant.remaining_credits,
            )
        }))
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

/// The event of a stored ledger row, with the balance the row recorded.
pub(crate) fn row_event(workspace_id: &str, entry: &ledger_entry::Model) -> AppResult<BalanceEvent> {
    Ok(BalanceEvent::row(
        workspace_id.to_owned(),
        entry.sequence,
        entry.id,
        stored(&entry.kind)?,
        entry.amount_credits,
        BalanceView::after_row(entry),
        entry.created_at,
    ))
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
