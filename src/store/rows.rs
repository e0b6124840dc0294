//! Stored rows parsed into `domain` values, once, here: heads, grants,
//! transactions, balances after a row.

use entity::{credit_grant, credit_hold, ledger_entry, wallet};

use super::{Result, internal};
use domain::catalogue::UnknownName;
use domain::hold::Hold;
use domain::views::{BalanceView, TransactionView};
use domain::wallet::{Grant, Head, Purchase, WalletState};

/// A stored name, parsed; an unknown one is the store's error.
pub(crate) fn stored<T: std::str::FromStr<Err = UnknownName>>(text: &str) -> Result<T> {
    text.parse()
        .map_err(|error: UnknownName| internal(error.to_string()))
}

/// A wallet row as a head.
pub fn head(model: wallet::Model) -> Result<Head> {
    Ok(Head {
        id: model.id,
        balance: model.balance_credits,
        held: model.held_credits,
        last_sequence: model.last_sequence,
        plan: stored(&model.plan_code)?,
        pending_plan: model.pending_plan_code.as_deref().map(stored).transpose()?,
        trial_ends_at: model.trial_ends_at,
        anchor: model.billing_anchor_at,
        period_start: model.period_start_at,
        period_end: model.period_end_at,
        enterprise_allocation: model.enterprise_allocation_credits,
        threshold: model.low_balance_threshold_credits,
        alerted_at: model.low_balance_alerted_at,
        time_zone: model.time_zone,
        budget_version: model.budget_version,
        auto_top_up_threshold: model.auto_top_up_threshold_credits,
        subscription_id: model.subscription_id,
        standing_until: model.standing_until_at,
        workspace_id: model.workspace_id,
    })
}

/// A grant row as a grant.
pub fn grant(model: credit_grant::Model) -> Result<Grant> {
    let purchase = match (model.pack_code, model.price_cents, model.currency) {
        (Some(pack), Some(price_cents), Some(currency)) => Some(Purchase {
            pack,
            price_cents,
            currency,
        }),
        _ => None,
    };
    Ok(Grant {
        id: model.id,
        source: stored(&model.source)?,
        granted: model.granted_credits,
        remaining: model.remaining_credits,
        held: 0,
        expires_at: model.expires_at,
        period_start_at: model.period_start_at,
        purchase,
    })
}

/// Wallet rows, their live grants and live holds (any order) as states, in
/// the wallets' order, each hold's credits pinned on its grants.
pub fn states(
    wallets: Vec<wallet::Model>,
    grants: Vec<credit_grant::Model>,
    holds: Vec<entity::credit_hold::Model>,
) -> Result<Vec<WalletState>> {
    let mut holds_of: std::collections::HashMap<i64, Vec<domain::hold::Hold>> =
        std::collections::HashMap::new();
    let mut holds = holds;
    holds.sort_unstable_by_key(|hold| hold.id);
    for model in holds {
        holds_of.entry(model.wallet_id).or_default().push(hold(model)?);
    }
    let mut by_wallet: std::collections::HashMap<i64, Vec<Grant>> = std::collections::HashMap::new();
    let mut grants = grants;
    grants.sort_unstable_by_key(|grant| grant.id);
    for model in grants {
        by_wallet.entry(model.wallet_id).or_default().push(grant(model)?);
    }
    wallets
        .into_iter()
        .map(|model| {
            let grants = by_wallet.remove(&model.id).unwrap_or_default();
            let holds = holds_of.remove(&model.id).unwrap_or_default();
            let mut state = WalletState {
                head: head(model)?,
                grants,
                budgets: Vec::new(),
                counters: Vec::new(),
                auto_top_up: None,
                holds,
            };
            state.pin_holds();
            Ok(state)
        })
        .collect()
}

/// Puts each automatic top-up row on its wallet's state.
pub fn attach_auto_top_ups(states: &mut [WalletState], autos: Vec<entity::auto_top_up::Model>) {
    for model in autos {
        if let Some(state) = states.iter_mut().find(|state| state.head.id == model.wallet_id) {
            state.auto_top_up = Some(super::auto_top_up::view(model));
        }
    }
}

/// A stored ledger row as readers see it.
pub fn transaction(model: ledger_entry::Model) -> Result<TransactionView> {
    Ok(TransactionView {
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
        agent_id: model.agent_id,
        hold_id: match model.kind.as_str() {
            "HOLD" => Some(model.id),
            _ => model.hold_id,
        },
        held_after: model.held_after_credits,
        created_at: model.created_at,
    })
}

/// The balance after a stored row, as the row recorded it.
pub fn balance_after(model: &ledger_entry::Model) -> BalanceView {
    BalanceView {
        total: model.balance_after_credits,
        split: domain::catalogue::BalanceSplit {
            allocation: model.allocation_after_credits,
            purchased: model.purchased_after_credits,
            bonus: model.bonus_after_credits,
        },
        held: model.held_after_credits,
    }
}

/// A budget row as a budget.
pub fn budget(model: entity::budget::Model) -> Result<domain::budget::Budget> {
    Ok(domain::budget::Budget {
        id: model.id,
        name: model.name,
        applies_to: stored(&model.applies_to)?,
        agent_id: model.agent_id,
        action: model.action.as_deref().map(stored).transpose()?,
        window: stored(&model.budget_window)?,
        limit: model.limit_credits,
        mode: stored(&model.mode)?,
        counting_since: model.counting_since,
        created_at: model.created_at,
        updated_at: model.updated_at,
    })
}

/// A counter row as a counter.
pub fn counter(model: entity::budget_counter::Model) -> domain::budget::Counter {
    domain::budget::Counter {
        budget_id: model.budget_id,
        subject: model.subject,
        window_start: model.window_start,
        used: model.used_credits,
        exhausted_at: model.exhausted_at,
    }
}

/// A stored hold as the rules see it.
pub fn hold(model: credit_hold::Model) -> Result<Hold> {
    let pins: Vec<(i64, i64)> = serde_json::from_str(&model.pins)
        .map_err(|error| internal(format!("hold {}: pins: {error}", model.id)))?;
    Ok(Hold {
        id: model.id,
        key: model.hold_key,
        state: stored(&model.state)?,
        action: stored(&model.action)?,
        agent_id: model.agent_id,
        reference: model.reference,
        actor: model.actor,
        credits: model.credits,
        captured: model.captured_credits,
        uncollected: model.uncollected_credits,
        pins,
        expires_at: model.expires_at,
        created_at: model.created_at,
        resolved_at: model.resolved_at,
        reason: model.reason,
    })
}
