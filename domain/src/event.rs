//! An event to tell other systems: its type and body, as the rules decide
//! it. `outbox` derives most from a wallet's change; a change also carries
//! the ones a service decided beside it (`Change::told`), so the store has
//! one writer of events.

use serde_json::Value;

use crate::catalogue::stored_enum;

stored_enum! {
    /// The type of an outbox event, as subscribers filter on it.
    EventType {
        /// The balance went below the wallet's low-balance threshold.
        LowBalance => "credits.low_balance",
        /// The balance reached zero: AI actions pause.
        AiPaused => "credits.ai_paused",
        /// Credits came back after the balance was zero.
        AiResumed => "credits.ai_resumed",
        /// A purchased pack was credited.
        TopUpApplied => "credits.top_up_applied",
        /// A billing period began with its allocation.
        PeriodRenewed => "credits.period_renewed",
        /// The trial ends within 48 hours (once per trial).
        TrialEnding => "credits.trial_ending",
        /// At the current burn, the pool runs out before the next reset
        /// (once per period).
        RunwayLow => "credits.runway_low",
        /// Automatic top-up asks the payment system for a pack.
        AutoTopUpRequested => "credits.auto_top_up_requested",
        /// Automatic top-up was switched off after failed payments.
        AutoTopUpDisabled => "credits.auto_top_up_disabled",
        /// A budget's window was used up for the first time.
        BudgetExceeded => "credits.budget_exceeded",
        /// A refunded payment's top-up was not reversed (spent, or a
        /// partial refund): an operator decides.
        RefundNeedsReview => "credits.refund_needs_review",
        /// A confirmed payment was not applied (its amount, currency or
        /// workspace does not match, or it was refunded before it arrived):
        /// an operator decides.
        PaymentNeedsReview => "credits.payment_needs_review",
        /// A payment was disputed (a chargeback opened).
        PaymentDisputed => "credits.payment_disputed",
        /// The wallet's plan changed (now, or at the next reset).
        PlanChanged => "credits.plan_changed",
        /// The subscription is past due: its plan ends when the grace does.
        SubscriptionPastDue => "credits.subscription_past_due",
        /// The paid plan ended: its allocation expired.
        SubscriptionEnded => "credits.subscription_ended",
        /// A hold expired: nobody captured or released it in time.
        HoldExpired => "credits.hold_expired",
    }
}

/// An event to write: its type, workspace, `data`, and for events sent once
/// per occasion, the occasion's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// What happened.
    pub event_type: EventType,
    /// Whose wallet.
    pub workspace_id: String,
    /// The body's `data`.
    pub data: Value,
    /// Unique per occasion; a second event with the same key is dropped.
    pub once_key: Option<String>,
}
