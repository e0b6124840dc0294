//! A wallet as a state machine: every change to a wallet is decided here,
//! in memory, and comes out as one [`Change`] that the store's one applier
//! writes (`docs/design/write-path.md`).
//!
//! A [`Wallet`] starts from the [`WalletState`] read under the wallet's lock
//! and runs operations on it in order (settle, then spends, a top-up, an
//! adjustment…), each by the rules of this crate's other modules. Each
//! operation keeps the state in step with the rows it appends, so the next
//! one decides against what the previous ones did: a batch of spends, a
//! renewal followed by a spend, and a single write are the same code.
//! [`Wallet::finish`] applies the low-balance rule and returns the `Change`:
//! rows, new grants, grant deltas, closes, the alert, the new head.
//!
//! Nothing here reads the clock or touches the database.

use chrono::{DateTime, Utc};

use crate::auto_top_up::AutoTopUpView;
use crate::budget::{Budget, BudgetWrite, Counter};
use crate::catalogue::{Action, GrantSource, LedgerKind, PlanCode};
use crate::event::NewEvent;
use crate::hold::Hold;
use crate::views::{BalanceView, TransactionView};

mod auto_top_up;
mod budgets;
#[cfg(test)]
mod hold_tests;
mod holds;
mod machine;
mod subscription;
#[cfg(test)]
mod tests;

pub use crate::head::Head;
pub use auto_top_up::{AutoTopUpSettings, Closed};
pub use budgets::{Exhausted, Spent};
pub use holds::{Captured, HoldRefusal, Taking};
pub use machine::Wallet;
pub use subscription::PaidPlan;

/// Grants created by a change get provisional ids from here up, in order,
/// until the applier stores them: above every stored id, so the burn-down
/// order (oldest first on equal expiry) is the same before and after.
pub const NEW_GRANT_ID_BASE: i64 = 1 << 62;

/// What a purchased pack cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// The pack.
    pub pack: String,
    /// Its price, in cents.
    pub price_cents: i64,
    /// Its currency.
    pub currency: String,
}

/// A live grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Its id (provisional for a grant this change creates).
    pub id: i64,
    /// Where its credits come from.
    pub source: GrantSource,
    /// Credits granted.
    pub granted: i64,
    /// Credits left (held ones included).
    pub remaining: i64,
    /// Credits of `remaining` that live holds pin (derived from the holds,
    /// not stored on the grant).
    pub held: i64,
    /// When it expires; `None` never.
    pub expires_at: Option<DateTime<Utc>>,
    /// The billing period, for allocations.
    pub period_start_at: Option<DateTime<Utc>>,
    /// The pack bought, for purchases.
    pub purchase: Option<Purchase>,
}

impl Grant {
    /// Whether this change creates the grant (its id is provisional).
    pub fn is_new(&self) -> bool {
        self.id >= NEW_GRANT_ID_BASE
    }

    /// Credits no hold pins.
    pub fn free(&self) -> i64 {
        self.remaining - self.held
    }

    /// Whether it has expired at `now` with credits still to expire (a
    /// grant whose only credits are held waits for its holds).
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        super::settlement::is_grant_due(self.expires_at, now) && (self.held == 0 || self.free() > 0)
    }
}

/// A wallet as read under its lock: the head and its live grants, oldest
/// first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletState {
    /// The head.
    pub head: Head,
    /// The live grants.
    pub grants: Vec<Grant>,
    /// The wallet's budgets (read only by the writes that count them).
    pub budgets: Vec<Budget>,
    /// Their counters for the subjects this change may count.
    pub counters: Vec<Counter>,
    /// Automatic top-up, as stored: read by every write that may open or
    /// close a request (a spend reads it only while it is on).
    pub auto_top_up: Option<AutoTopUpView>,
    /// Its live (HELD) holds, read while `head.held` is above zero.
    pub holds: Vec<Hold>,
}

impl WalletState {
    /// The balance the live grants hold, split.
    pub fn balance(&self) -> BalanceView {
        BalanceView {
            held: self.head.held,
            ..BalanceView::from_sources(self.grants.iter().map(|grant| (grant.source, grant.remaining)))
        }
    }

    /// Takes `budgets` when none were read, and each of `counters` not
    /// already read (one read may have moved it); returns those taken.
    pub fn merge_budgets(&mut self, budgets: Vec<Budget>, counters: Vec<Counter>) -> Vec<Counter> {
        if self.budgets.is_empty() {
            self.budgets = budgets;
        }
        let mut added = Vec::new();
        for counter in counters {
            let loaded = self
                .counters
                .iter()
                .any(|known| known.budget_id == counter.budget_id && known.subject == counter.subject);
            if !loaded {
                added.push(counter.clone());
                self.counters.push(counter);
            }
        }
        added
    }

    /// Pins each live hold's credits on its grants (`Grant::held`), after
    /// the grants and holds are read.
    pub fn pin_holds(&mut self) {
        for hold in self.holds.iter().filter(|hold| hold.is_held()) {
            for (grant_id, credits) in &hold.pins {
                if let Some(grant) = self.grants.iter_mut().find(|grant| grant.id == *grant_id) {
                    grant.held += credits;
                }
            }
        }
    }

    /// Whether settling at `now` would do anything: a live grant has
    /// expired, or the period has ended.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.grants.iter().any(|grant| grant.is_due(now))
            || self.holds.iter().any(|hold| hold.is_due(now))
            || super::settlement::renewal_due(&self.head.period_state(), now).is_some()
            || self.head.period_state().plan_ends(now)
    }
}

/// An idempotency key and the identity of the request that binds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBinding {
    /// The key.
    pub key: String,
    /// The request's identity (a repeat carries the same).
    pub fingerprint: String,
}

/// What a row says besides its amount: who, why, which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its kind.
    pub kind: LedgerKind,
    /// The action paid, for spends (and their reversals).
    pub action: Option<Action>,
    /// The caller's reference (ticket, payment, reason).
    pub reference: Option<String>,
    /// Who caused it: the token's subject, or `system`.
    pub actor: String,
    /// The key it binds.
    pub key: Option<KeyBinding>,
    /// The row it reverses.
    pub reverses: Option<i64>,
    /// The agent a spend was for.
    pub agent_id: Option<String>,
    /// The hold it places, captures or releases (provisional while new).
    pub hold: Option<i64>,
}

impl Entry {
    /// A row of the system's (expiry, renewal), or of an actor's with only
    /// a reference.
    pub fn by(kind: LedgerKind, actor: &str, reference: String) -> Self {
        Self {
            kind,
            action: None,
            reference: Some(reference),
            actor: actor.to_owned(),
            key: None,
            reverses: None,
            agent_id: None,
            hold: None,
        }
    }
}

/// A ledger row to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Its sequence in the wallet's ledger.
    pub sequence: i64,
    /// Signed change of the balance.
    pub amount: i64,
    /// The balance after it, split.
    pub balance: BalanceView,
    /// Who, why, which key.
    pub entry: Entry,
    /// How it moved each grant: (grant id, possibly provisional; signed credits).
    pub moves: Vec<(i64, i64)>,
}

impl Row {
    /// The row as readers see it, once stored with `id` at `created_at`.
    pub fn view(&self, id: i64, created_at: DateTime<Utc>) -> TransactionView {
        TransactionView {
            id,
            sequence: self.sequence,
            kind: self.entry.kind,
            amount: self.amount,
            balance_after: self.balance.total,
            action: self.entry.action,
            reference: self.entry.reference.clone(),
            actor: self.entry.actor.clone(),
            idempotency_key: self.entry.key.as_ref().map(|binding| binding.key.clone()),
            reverses_transaction_id: self.entry.reverses,
            agent_id: self.entry.agent_id.clone(),
            hold_id: match self.entry.kind {
                LedgerKind::Hold => Some(id),
                _ => self.entry.hold,
            },
            held_after: self.balance.held,
            created_at,
        }
    }
}

/// A low-balance alert to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alert {
    /// The threshold crossed.
    pub threshold: i64,
    /// The balance then.
    pub balance: BalanceView,
    /// The ledger sequence it follows.
    pub sequence: i64,
}

/// A change of the wallet's plan that other systems are told about
/// (`credits.plan_changed`, `credits.subscription_past_due`,
/// `credits.subscription_ended`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The plan now, and a downgrade waiting for the next reset.
    PlanChanged {
        /// The plan before.
        from: PlanCode,
        /// The plan now.
        plan: PlanCode,
        /// The plan of the next period, when it differs.
        pending_plan: Option<PlanCode>,
    },
    /// The subscription is past due: the paid plan ends at `grace_ends_at`
    /// unless it is paid.
    PastDue {
        /// The subscription.
        subscription_id: String,
        /// When the grace ends.
        grace_ends_at: DateTime<Utc>,
    },
    /// The paid plan ended: its allocation expired, and none is granted
    /// until a subscription is in good standing again.
    PlanEnded {
        /// The subscription, if one was behind the plan.
        subscription_id: Option<String>,
    },
    /// Automatic top-up asks the payment system for a pack.
    TopUpRequested {
        /// The request (the payment's idempotency key).
        request_id: String,
        /// The pack.
        pack: String,
        /// The threshold the balance went below.
        threshold: i64,
        /// The balance when it did.
        balance: BalanceView,
    },
    /// Automatic top-up switched itself off after failed payments.
    TopUpDisabled {
        /// The request whose payment failed last.
        request_id: String,
        /// Failed payments in a row.
        failures: i32,
    },
}

/// What happened, in order: a row appended, or an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happened {
    /// Row `n` of the change.
    Row(usize),
    /// Alert `n` of the change.
    Alert(usize),
    /// Budget window `n` of the change exhausted.
    Exhausted(usize),
}

/// How a stored grant moves: signed deltas of its remaining and granted
/// credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantDelta {
    /// The grant.
    pub id: i64,
    /// Change of its remaining credits.
    pub remaining: i64,
    /// Change of its granted credits (an upgrade within a period).
    pub granted: i64,
}

/// Everything one wallet's operations write, for the store's applier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The wallet.
    pub wallet_id: i64,
    /// Its workspace.
    pub workspace_id: String,
    /// The sequence read under the lock: the head write is guarded on it.
    pub sequence_read: i64,
    /// The credits available when read (AI pauses when they reach zero).
    pub available_read: i64,
    /// Rows to append, in sequence order.
    pub rows: Vec<Row>,
    /// Grants to create (provisional ids), holding what they hold at the end.
    pub new_grants: Vec<Grant>,
    /// Stored live grants that moved.
    pub deltas: Vec<GrantDelta>,
    /// Stored grants closed by an expiry.
    pub closes: Vec<i64>,
    /// Low-balance alerts to record.
    pub alerts: Vec<Alert>,
    /// Budget counters to write, as they end.
    pub counters: Vec<Counter>,
    /// Budget windows exhausted for the first time.
    pub exhausted: Vec<Exhausted>,
    /// The new head, when it changed.
    pub head: Option<Head>,
    /// Rows and alerts in the order they happened (events are published so).
    pub happened: Vec<Happened>,
    /// Periods renewed (0 or 1); the grants expired are `closes`.
    pub renewals: u64,
    /// Stored grants whose expiry moves (the provider moved the period's end).
    pub expiry_moves: Vec<(i64, DateTime<Utc>)>,
    /// Plan changes and automatic top-up requests to tell.
    pub notices: Vec<Notice>,
    /// Automatic top-up as it ends, when the change moved it.
    pub auto_top_up: Option<AutoTopUpView>,
    /// Events decided beside the wallet's rules (a payment to review, a
    /// dispute), written with the change.
    pub told: Vec<NewEvent>,
    /// Budgets set or removed (`budget::revise`).
    pub budget_writes: Vec<BudgetWrite>,
    /// Holds placed (provisional ids) or moved (captured, released,
    /// expired, extended), as they end.
    pub holds: Vec<Hold>,
}

impl Change {
    /// Whether anything about the wallet changed.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
            && self.new_grants.is_empty()
            && self.deltas.is_empty()
            && self.closes.is_empty()
            && self.alerts.is_empty()
            && self.counters.is_empty()
            && self.head.is_none()
            && self.expiry_moves.is_empty()
            && self.auto_top_up.is_none()
            && self.told.is_empty()
            && self.budget_writes.is_empty()
            && self.holds.is_empty()
    }
}

/// The original row of a reversal, as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversed {
    /// Its id.
    pub id: i64,
    /// Its kind.
    pub kind: LedgerKind,
    /// Its action.
    pub action: Option<Action>,
    /// How it moved each grant.
    pub moves: Vec<(i64, i64)>,
    /// Whether a REVERSAL row already undid it.
    pub is_reversed: bool,
    /// The agent it was for.
    pub agent_id: Option<String>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}
