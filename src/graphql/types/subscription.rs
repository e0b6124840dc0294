//! The payment provider's subscription behind a wallet's plan.

use async_graphql::{Enum, SimpleObject};
use chrono::{DateTime, Utc};

use crate::service::SubscriptionView;

/// A Stripe subscription's status (`docs/design/payments.md`: what the
/// wallet does in each).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum SubscriptionStatus {
    /// A trial at the provider: paid plan, allocation granted.
    Trialing,
    /// Paid: the allocation renews each period.
    Active,
    /// A payment failed: the plan keeps running until `graceEndsAt`.
    PastDue,
    /// Retries gave up: the paid plan ended.
    Unpaid,
    /// Ended: the paid plan ended.
    Canceled,
    /// The first payment is still being attempted: nothing granted yet.
    Incomplete,
    /// The first payment never came: nothing granted.
    IncompleteExpired,
    /// Paused at the provider: the paid plan ended.
    Paused,
    /// A status this service does not know: treated as not paid.
    Other,
}

impl SubscriptionStatus {
    fn of(status: &str) -> Self {
        match status {
            "trialing" => Self::Trialing,
            "active" => Self::Active,
            "past_due" => Self::PastDue,
            "unpaid" => Self::Unpaid,
            "canceled" => Self::Canceled,
            "incomplete" => Self::Incomplete,
            "incomplete_expired" => Self::IncompleteExpired,
            "paused" => Self::Paused,
            _ => Self::Other,
        }
    }
}

/// The subscription a wallet's plan follows.
#[derive(SimpleObject)]
pub struct BillingSubscription {
    /// The provider's id (`sub_…`).
    pub id: String,
    /// Its status as last applied.
    pub status: SubscriptionStatus,
    /// When its current period ends.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Whether it ends at the period's end.
    pub cancel_at_period_end: bool,
    /// While past due: when the paid plan ends unless it is paid.
    pub grace_ends_at: Option<DateTime<Utc>>,
}

impl From<SubscriptionView> for BillingSubscription {
    fn from(view: SubscriptionView) -> Self {
        Self {
            status: SubscriptionStatus::of(&view.status),
            id: view.id,
            current_period_end: view.current_period_end,
            cancel_at_period_end: view.cancel_at_period_end,
            grace_ends_at: view.grace_ends_at,
        }
    }
}
