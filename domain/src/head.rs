//! A wallet's head row: what every rule reads of the wallet besides its
//! grants and budgets.

use chrono::{DateTime, Utc};

use crate::catalogue::PlanCode;
use crate::settlement::PeriodState;

/// A wallet's head row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The wallet's id.
    pub id: i64,
    /// Its workspace.
    pub workspace_id: String,
    /// Its balance (the sum of its ledger and of its live grants).
    pub balance: i64,
    /// Credits its live holds pin (part of `balance`).
    pub held: i64,
    /// Its newest ledger sequence.
    pub last_sequence: i64,
    /// The current plan.
    pub plan: PlanCode,
    /// A downgrade waiting for the next reset.
    pub pending_plan: Option<PlanCode>,
    /// When the trial ends.
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// The billing anchor, once a paid plan started.
    pub anchor: Option<DateTime<Utc>>,
    /// The current period's start.
    pub period_start: Option<DateTime<Utc>>,
    /// The current period's end.
    pub period_end: Option<DateTime<Utc>>,
    /// ENTERPRISE's per-period allocation.
    pub enterprise_allocation: Option<i64>,
    /// The low-balance threshold.
    pub threshold: Option<i64>,
    /// When the outstanding low-balance alert fired.
    pub alerted_at: Option<DateTime<Utc>>,
    /// The workspace's IANA time zone (budgets' days).
    pub time_zone: String,
    /// Moves with each change that appends no row (budgets, counters, a
    /// hold's expiry), so a read of a stale snapshot is seen.
    pub budget_version: i64,
    /// Automatic top-up's threshold, while it is on.
    pub auto_top_up_threshold: Option<i64>,
    /// The payment provider's subscription the plan follows; `None`: an
    /// operator set the plan.
    pub subscription_id: Option<String>,
    /// While that subscription is past due: when its grace ends, and the
    /// paid plan with it (`docs/design/payments.md`).
    pub standing_until: Option<DateTime<Utc>>,
}

impl Head {
    /// The period fields, as settling reads them.
    pub fn period_state(&self) -> PeriodState {
        PeriodState {
            anchor: self.anchor,
            period_end: self.period_end,
            plan: self.plan,
            pending_plan: self.pending_plan,
            standing_until: self.standing_until,
        }
    }
}
