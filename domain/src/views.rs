//! What the service answers with: plain values, independent of both the
//! storage rows and the GraphQL types. Shared by `service`, `events` and
//! the layers above; built from stored rows in `service::views`.

use chrono::{DateTime, Utc};

use crate::catalogue::{Action, BalanceSplit, GrantSource, LedgerKind, PackCode, PlanCode};

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

/// A balance and its split into buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BalanceView {
    /// Every credit the wallet holds, held ones included.
    pub total: i64,
    /// The split by origin.
    pub split: BalanceSplit,
    /// Credits pinned by live holds (part of `total`).
    pub held: i64,
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
    /// The workspace's IANA time zone.
    pub time_zone: String,
    /// The payment provider's subscription behind the plan, if any.
    pub subscription_id: Option<String>,
    /// While it is past due: when the grace ends.
    pub grace_ends_at: Option<DateTime<Utc>>,
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
    /// The agent a spend (or its reversal) was for.
    pub agent_id: Option<String>,
    /// The hold it placed (a HOLD row: its own id), captured or released.
    pub hold_id: Option<i64>,
    /// Credits held after it.
    pub held_after: i64,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// One page of the transactions connection, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionPage {
    /// The rows.
    pub transactions: Vec<TransactionView>,
    /// Whether older rows match beyond this page.
    pub has_next_page: bool,
}

impl BalanceView {
    /// Sums live grants, given as (source, remaining credits), into buckets.
    pub fn from_sources(grants: impl IntoIterator<Item = (GrantSource, i64)>) -> Self {
        let mut split = BalanceSplit::default();
        for (source, remaining) in grants {
            split.add(source, remaining);
        }
        Self {
            total: split.total(),
            split,
            held: 0,
        }
    }

    /// What spends and new holds may take: the total less what is held.
    pub fn available(&self) -> i64 {
        self.total - self.held
    }
}

/// Filters of the transactions connection; empty lists mean "any".
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    /// Only these kinds.
    pub kinds: Vec<LedgerKind>,
    /// Only these actions.
    pub actions: Vec<Action>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
    /// Exactly this reference.
    pub reference: Option<String>,
}

/// How one row moved one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantMoveView {
    /// The grant.
    pub grant_id: i64,
    /// Where its credits came from.
    pub source: GrantSource,
    /// When it expires (or expired); `None` never.
    pub expires_at: Option<DateTime<Utc>>,
    /// Signed credits moved (negative: paid by this grant).
    pub credits: i64,
}

/// One low-balance alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowBalanceAlertView {
    /// The threshold crossed.
    pub threshold: i64,
    /// The balance just after crossing.
    pub balance: i64,
    /// The ledger sequence of the row that crossed.
    pub sequence: i64,
    /// When.
    pub created_at: DateTime<Utc>,
}
