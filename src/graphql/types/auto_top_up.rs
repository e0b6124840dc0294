//! Automatic top-up: its object, inputs and payloads.

use async_graphql::{Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};

use super::{TopUpPackCode, int};
use crate::service::FailureOutcome;
use domain::auto_top_up::AutoTopUpView;

/// A wallet's automatic top-up.
#[derive(SimpleObject)]
pub struct AutoTopUp {
    /// On or off (switched off after three failed payments in a row).
    pub enabled: bool,
    /// A change that leaves the balance below this requests the pack.
    pub threshold: i32,
    /// The pack requested (as its code, e.g. PACK_500).
    pub pack: String,
    /// Most requests per billing period.
    pub max_per_period: i32,
    /// Requests made in the current billing period.
    pub requests_this_period: i32,
    /// The request waiting for its payment (`credits.auto_top_up_requested`
    /// carried it), if any.
    pub open_request_id: Option<String>,
    /// When that request was made.
    pub open_request_at: Option<DateTime<Utc>>,
    /// Failed payments in a row.
    pub consecutive_failures: i32,
}

impl From<AutoTopUpView> for AutoTopUp {
    fn from(view: AutoTopUpView) -> Self {
        Self {
            requests_this_period: view.requests_this_period,
            enabled: view.enabled,
            threshold: int(view.threshold),
            pack: view.pack,
            max_per_period: view.max_per_period,
            open_request_id: view.open_request_id,
            open_request_at: view.open_request_at,
            consecutive_failures: view.consecutive_failures,
        }
    }
}

/// Input of `setAutoTopUp`.
#[derive(InputObject)]
pub struct SetAutoTopUpInput {
    /// The workspace; defaults to the token's.
    pub workspace_id: Option<ID>,
    /// On or off; switching on forgets earlier failures.
    pub enabled: bool,
    /// Request the pack when a change leaves the balance below this (1 to 1,000,000).
    pub threshold: i32,
    /// The pack to buy.
    pub pack: TopUpPackCode,
    /// Most requests per billing period (1 to 100).
    pub max_per_period: i32,
}

/// The answer to `setAutoTopUp`.
#[derive(SimpleObject)]
pub struct SetAutoTopUpPayload {
    /// The settings now.
    pub auto_top_up: AutoTopUp,
}

/// Input of `reportAutoTopUpFailed`.
#[derive(InputObject)]
pub struct ReportAutoTopUpFailedInput {
    /// The workspace.
    pub workspace_id: Option<ID>,
    /// The request whose payment failed (`atr_…`).
    pub request_id: String,
}

/// What a failed payment did.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "FailureOutcome")]
pub enum AutoTopUpFailureOutcome {
    /// Counted; the next change below the threshold requests again.
    Recorded,
    /// The third in a row: automatic top-up is now off.
    Disabled,
    /// Not the open request: nothing changed.
    NotOpen,
}

/// The answer to `reportAutoTopUpFailed`.
#[derive(SimpleObject)]
pub struct ReportAutoTopUpFailedPayload {
    /// What the failure did.
    pub outcome: AutoTopUpFailureOutcome,
    /// The settings now.
    pub auto_top_up: Option<AutoTopUp>,
}
