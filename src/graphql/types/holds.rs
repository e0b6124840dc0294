//! Holds' public types (`docs/design/holds.md`).

use async_graphql::{ComplexObject, Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};

use super::{Action, Balance, BudgetUsage, TopUpPack, Transaction, int};
use crate::service;

/// Where a hold is in its life.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::hold::HoldState")]
pub enum HoldState {
    /// Credits reserved, waiting for a capture or a release.
    Held,
    /// Charged: a SPEND transaction took what the action cost.
    Captured,
    /// Given back by its caller.
    Released,
    /// Given back because nobody captured or released it before `expiresAt`.
    Expired,
}

/// What `reserveCredits` did.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum ReserveOutcome {
    /// The credits are held.
    Held,
    /// This hold key already placed this very hold; nothing was held again.
    Duplicate,
    /// Fewer credits are available than asked: nothing was held.
    InsufficientCredits,
    /// A HARD budget would go over its limit: nothing was held.
    BudgetExceeded,
}

/// Credits reserved for an AI action that started.
#[derive(SimpleObject)]
pub struct Hold {
    /// Its id (also the id of its HOLD transaction).
    pub id: ID,
    /// The hold key it was placed under.
    pub key: String,
    /// Where it is in its life.
    pub state: HoldState,
    /// Credits held.
    pub credits: i32,
    /// Credits its capture charged (0 until captured).
    pub captured_credits: i32,
    /// Credits a capture asked beyond what it could collect (the balance or
    /// a HARD budget ran short): never charged.
    pub uncollected_credits: i32,
    /// When it expires unless captured, released or extended.
    pub expires_at: DateTime<Utc>,
    /// The action it pays for.
    pub action: Action,
    /// The agent the action is for.
    pub agent_id: Option<ID>,
    /// The caller's reference.
    pub reference: Option<String>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// When it was captured, released or expired.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Why it was released (`expired` for an expiry).
    pub reason: Option<String>,
}

impl From<domain::hold::Hold> for Hold {
    fn from(hold: domain::hold::Hold) -> Self {
        Self {
            id: ID(hold.id.to_string()),
            key: hold.key,
            state: hold.state.into(),
            credits: int(hold.credits),
            captured_credits: int(hold.captured),
            uncollected_credits: int(hold.uncollected),
            expires_at: hold.expires_at,
            action: hold.action.into(),
            agent_id: hold.agent_id.map(ID),
            reference: hold.reference,
            created_at: hold.created_at,
            resolved_at: hold.resolved_at,
            reason: hold.reason,
        }
    }
}

/// Input of `reserveCredits`.
#[derive(InputObject)]
pub struct ReserveCreditsInput {
    /// The workspace; defaults to the token's.
    pub workspace_id: Option<ID>,
    /// The action the credits are for.
    pub action: Action,
    /// Credits to hold, 1 to 1,000,000; default: the action's cost.
    pub credits: Option<i32>,
    /// 1 to 200 characters, unique per workspace among hold keys for the
    /// life of the ledger: a retry with the same key and input is answered
    /// DUPLICATE with the hold it placed; another input under it is
    /// IDEMPOTENCY_CONFLICT.
    pub hold_key: String,
    /// The agent the action is for (agent tokens: their own `sub`).
    pub agent_id: Option<ID>,
    /// Your reference (ticket or thread id), at most 200 characters.
    pub reference: Option<String>,
    /// Seconds until the hold expires unless captured, released or
    /// extended: 1 to 86,400, default 600.
    pub ttl_seconds: Option<i32>,
}

/// Input of `captureHold`.
#[derive(InputObject)]
pub struct CaptureHoldInput {
    /// The hold.
    pub hold_id: ID,
    /// Credits the action cost, 1 to 1,000,000; default: what is held.
    /// Less than held gives the rest back; more takes the difference from
    /// what is available as far as it and the HARD budgets allow
    /// (`uncollectedCredits` says what could not be).
    pub credits: Option<i32>,
}

/// Input of `releaseHold`.
#[derive(InputObject)]
pub struct ReleaseHoldInput {
    /// The hold.
    pub hold_id: ID,
    /// Why the action never ran, 1 to 200 characters.
    pub reason: String,
}

/// Input of `extendHold`.
#[derive(InputObject)]
pub struct ExtendHoldInput {
    /// The hold.
    pub hold_id: ID,
    /// Seconds from now until it expires: 1 to 86,400, default 600.
    pub ttl_seconds: Option<i32>,
}

/// What `reserveCredits` answers.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ReserveCreditsPayload {
    /// HELD, DUPLICATE, INSUFFICIENT_CREDITS or BUDGET_EXCEEDED.
    pub outcome: ReserveOutcome,
    /// The hold (for DUPLICATE: the one the key placed, as it is now).
    pub hold: Option<Hold>,
    /// The wallet's balance now.
    pub balance: Balance,
    /// For BUDGET_EXCEEDED: the budget that refused.
    pub budget: Option<BudgetUsage>,
    /// For INSUFFICIENT_CREDITS: the smallest pack that would let it through.
    pub suggested_top_up: Option<TopUpPack>,
}

#[ComplexObject]
impl ReserveCreditsPayload {
    /// True when nothing is available for another action.
    async fn ai_paused(&self) -> bool {
        self.balance.available <= 0
    }
}

impl From<service::ReserveResult> for ReserveCreditsPayload {
    fn from(result: service::ReserveResult) -> Self {
        use domain::spend::SpendOutcome as Outcome;
        Self {
            outcome: match result.outcome {
                Outcome::Charged => ReserveOutcome::Held,
                Outcome::Duplicate => ReserveOutcome::Duplicate,
                Outcome::InsufficientCredits => ReserveOutcome::InsufficientCredits,
                Outcome::BudgetExceeded => ReserveOutcome::BudgetExceeded,
            },
            hold: result.hold.map(Into::into),
            balance: result.balance.into(),
            budget: result.budget.map(Into::into),
            suggested_top_up: result.suggested_top_up.map(Into::into),
        }
    }
}

/// What `captureHold`, `releaseHold` and `extendHold` answer.
#[derive(SimpleObject)]
pub struct HoldPayload {
    /// The hold as it is now.
    pub hold: Hold,
    /// The transaction written: the capture's SPEND, or the RELEASE.
    pub transaction: Option<Transaction>,
    /// The wallet's balance now.
    pub balance: Balance,
    /// True when this answer replays an earlier capture (nothing written).
    pub replayed: bool,
}

impl From<service::HoldResult> for HoldPayload {
    fn from(result: service::HoldResult) -> Self {
        Self {
            hold: result.hold.into(),
            transaction: result.transaction.map(Into::into),
            balance: result.balance.into(),
            replayed: result.replayed,
        }
    }
}

/// One page of a wallet's holds, newest first.
#[derive(SimpleObject)]
pub struct HoldPage {
    /// The holds.
    pub nodes: Vec<Hold>,
    /// Pass as `after` for the next page; null on the last.
    pub end_cursor: Option<String>,
}
