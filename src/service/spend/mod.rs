//! `spendCredit`: pay for one AI action, exactly once per key. Every spend
//! is decided and written by a batch (`batch.rs`): one spend alone is a
//! batch of one; group commit gathers concurrent spends into larger ones.

use std::time::Instant;

use chrono::{DateTime, Utc};

mod batch;

use super::{BalanceView, Ledger, PackView, TransactionView};
use crate::auth::WalletScope;
use crate::error::{AppError, AppResult};
use domain::budget::BudgetUsage;
use domain::catalogue::{Action, LedgerKind, PackOffer, smallest_pack_resuming};
use domain::hold::hold_fingerprint;
use domain::ids::IdempotencyKey;
use domain::spend::{SpendOutcome, spend_fingerprint};
use domain::wallet::{Entry, KeyBinding};

/// A validated spend request.
#[derive(Debug, Clone)]
pub struct SpendRequest {
    /// The action to pay for.
    pub action: Action,
    /// The key that makes retries safe.
    pub idempotency_key: IdempotencyKey,
    /// The caller's reference (ticket, thread…), part of the request's identity.
    pub reference: Option<String>,
    /// The agent the action is for (counted by agent budgets), part of the
    /// request's identity.
    pub agent_id: Option<String>,
}

/// A spend as a batch takes it: whose wallet, and what.
#[derive(Debug, Clone)]
pub(super) struct SpendCall {
    /// The caller's wallet.
    pub(super) scope: WalletScope,
    /// The spend.
    pub(super) request: SpendRequest,
    /// A hold instead of a charge (`reserveCredits`): the key is the hold's.
    pub(super) hold: Option<HoldAsk>,
    /// The capture of a hold instead (`captureHold`): `request` is the
    /// hold's, and no key is bound.
    pub(super) capture: Option<CaptureAsk>,
}

impl SpendCall {
    /// The kind of row its key binds (a capture binds none: its hold's
    /// state makes it happen once).
    pub(super) fn kind(&self) -> Option<LedgerKind> {
        match (self.capture, self.hold) {
            (Some(_), _) => None,
            (None, Some(_)) => Some(LedgerKind::Hold),
            (None, None) => Some(LedgerKind::Spend),
        }
    }
}

/// What a capture asks.
#[derive(Debug, Clone, Copy)]
pub struct CaptureAsk {
    /// The hold.
    pub hold_id: i64,
    /// Credits to charge; what is held when `None`.
    pub credits: Option<i64>,
}

/// What a hold asks beside a spend's fields.
#[derive(Debug, Clone, Copy)]
pub struct HoldAsk {
    /// Credits to hold; the action's cost when `None`.
    pub credits: Option<i64>,
    /// Its time to live, in seconds (validated).
    pub ttl_seconds: i64,
}

/// The answer to a spend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendResult {
    /// What happened.
    pub outcome: SpendOutcome,
    /// The row that charged (the original one for DUPLICATE).
    pub transaction: Option<TransactionView>,
    /// The wallet's balance now.
    pub balance: BalanceView,
    /// What the action costs.
    pub cost: i64,
    /// When credits next arrive (the end of the current period), if ever.
    pub next_reset_at: Option<DateTime<Utc>>,
    /// For INSUFFICIENT_CREDITS: the smallest pack that pays for the action.
    pub suggested_top_up: Option<PackView>,
    /// For BUDGET_EXCEEDED: the budget that refused.
    pub budget: Option<BudgetUsage>,
    /// SOFT budgets this spend left over their limit.
    pub budget_warnings: Vec<BudgetUsage>,
    /// For a capture: the hold as it ends.
    pub hold: Option<domain::hold::Hold>,
}

/// A key reused for another spend.
pub(super) fn conflict() -> AppError {
    AppError::IdempotencyConflict(
        "idempotencyKey was already used for a spend with a different action or reference".to_owned(),
    )
}

/// The smallest pack that would let a refused spend of `cost` through.
pub(super) fn suggestion(packs: &[PackView], available: i64, cost: i64) -> Option<PackView> {
    let offers: Vec<PackOffer> = packs
        .iter()
        .map(|pack| PackOffer {
            code: pack.code,
            credits: pack.credits,
            price_cents: pack.price_cents,
        })
        .collect();
    smallest_pack_resuming(&offers, available, cost)
        .and_then(|offer| packs.iter().find(|pack| pack.code == offer.code).cloned())
}

impl Ledger {
    /// Spends the action's cost from the scope's wallet. See
    /// [`domain::spend`] for the precedence of answers.
    pub async fn spend(&self, scope: &WalletScope, request: SpendRequest) -> AppResult<SpendResult> {
        let started = Instant::now();
        let _in_flight = self.metrics.spend_in_flight();
        let action = request.action;
        let result = self
            .submit(SpendCall {
                scope: scope.clone(),
                request,
                hold: None,
                capture: None,
            })
            .await;
        let outcome = match &result {
            Ok(answer) => answer.outcome.as_str(),
            Err(error) => error.code(),
        };
        self.metrics
            .spend_answered(action.as_str(), outcome, started.elapsed());
        result
    }

    /// Decides a spend or a hold in a batch: gathered by group commit when
    /// it is on, alone otherwise.
    pub(super) async fn submit(&self, call: SpendCall) -> AppResult<SpendResult> {
        match &self.group_commit {
            Some(group) => self.spend_grouped(group, call).await,
            None => self.spend_alone(call).await,
        }
    }

    /// A spend alone: a batch of one, through the same reads, decision and
    /// answer as a batch of many (group commit off, or a failed batch's
    /// spends one by one).
    pub(super) async fn spend_alone(&self, call: SpendCall) -> AppResult<SpendResult> {
        self.charge_batch(std::slice::from_ref(&call), Instant::now(), self.now())
            .await?
            .pop()
            .unwrap_or_else(|| {
                Err(AppError::Internal(anyhow::anyhow!(
                    "a batch of one gave no answer"
                )))
            })
    }
}

/// The budget counters a batch's spends may touch: (workspace, subject)
/// pairs, each workspace's own (`""`) and each spend's agent's.
pub(super) fn budget_pairs<'a>(
    spends: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = spends
        .into_iter()
        .flat_map(|(workspace, agent)| {
            [Some(""), agent]
                .into_iter()
                .flatten()
                .map(move |subject| (workspace.to_owned(), subject.to_owned()))
        })
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// The row a fresh spend (SPEND) or hold (HOLD of `cost` credits) appends,
/// binding its key.
pub(super) fn spend_entry(call: &SpendCall, cost: i64) -> Entry {
    let request = &call.request;
    let reference = request.reference.as_deref();
    let agent = request.agent_id.as_deref();
    let fingerprint = match call.hold {
        Some(hold) => hold_fingerprint(request.action, cost, hold.ttl_seconds, reference, agent),
        None => spend_fingerprint(request.action.as_str(), reference, agent),
    };
    Entry {
        kind: call.kind().unwrap_or(LedgerKind::Spend),
        action: Some(request.action),
        reference: request.reference.clone(),
        actor: call.scope.actor().to_owned(),
        key: Some(KeyBinding {
            key: request.idempotency_key.as_str().to_owned(),
            fingerprint,
        }),
        reverses: None,
        agent_id: request.agent_id.clone(),
        hold: None,
    }
}
