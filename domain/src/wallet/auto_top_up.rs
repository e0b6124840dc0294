//! Automatic top-up's rules on a wallet (`docs/design/auto-top-up.md`):
//! when a change opens a request, the period's cap, and the failures that
//! switch it off. The store only writes what these decide (`Change::auto_top_up`,
//! the head's threshold mirror, the notices).

use chrono::{DateTime, Utc};

use super::{Notice, Wallet};
use crate::auto_top_up::{AutoTopUpView, period_key};

/// Consecutive failed payments that switch automatic top-up off.
pub const FAILURES_TO_DISABLE: i32 = 3;

/// Settings as an admin sets them (checked by `check_settings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoTopUpSettings {
    /// On or off.
    pub enabled: bool,
    /// A change that leaves the balance below this requests a pack.
    pub threshold: i64,
    /// The pack requested.
    pub pack: String,
    /// Most requests per billing period.
    pub max_per_period: i32,
}

/// How closing a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// It was not the open request: nothing changed.
    NotOpen,
    /// Paid: failures forgotten.
    Paid,
    /// Failed, `failures` in a row; `disabled` when that switched it off.
    Failed {
        /// Failed payments in a row.
        failures: i32,
        /// Whether this failure switched automatic top-up off.
        disabled: bool,
    },
}

impl Wallet {
    /// Whether this change could open a request: automatic top-up is on and
    /// none is open. The caller then draws an id ([`Wallet::offer_request_id`]):
    /// the rules draw no randomness.
    pub fn may_request_top_up(&self) -> bool {
        self.state
            .auto_top_up
            .as_ref()
            .is_some_and(|auto| auto.enabled && auto.open_request_id.is_none())
    }

    /// The id a request opened by this change takes.
    pub fn offer_request_id(&mut self, request_id: String) {
        self.request_id = Some(request_id);
    }

    /// Saves the settings: switching on (or saving again) forgets earlier
    /// failures; an open request and the period's count stay. The head
    /// mirrors the threshold while it is on, so a spend reads the settings
    /// only then.
    pub fn set_auto_top_up(&mut self, settings: AutoTopUpSettings) {
        let auto = self.state.auto_top_up.get_or_insert_with(|| AutoTopUpView {
            enabled: false,
            threshold: 0,
            pack: String::new(),
            max_per_period: 0,
            requests_this_period: 0,
            open_request_id: None,
            open_request_at: None,
            consecutive_failures: 0,
            period_key: String::new(),
        });
        auto.enabled = settings.enabled;
        auto.threshold = settings.threshold;
        auto.pack = settings.pack;
        auto.max_per_period = settings.max_per_period;
        auto.consecutive_failures = 0;
        self.state.head.auto_top_up_threshold = settings.enabled.then_some(settings.threshold);
        // What a spend reads changed without a row: the batch read sees it.
        self.budgets_changed();
    }

    /// A change that appended rows and left the balance below the threshold
    /// opens a request, unless one is open, the period's cap is reached, or
    /// no id was offered. The wallet is locked, so concurrent spends open one.
    pub fn check_auto_top_up(&mut self, now: DateTime<Utc>) {
        if self.rows.is_empty() || !self.may_request_top_up() {
            return;
        }
        let balance = self.balance();
        let period = period_key(self.state.head.period_start);
        let Some(auto) = self.state.auto_top_up.as_mut() else {
            return;
        };
        let counted = if auto.period_key == period {
            auto.requests_this_period
        } else {
            0
        };
        if balance.available() >= auto.threshold || counted >= auto.max_per_period {
            return;
        }
        let Some(request_id) = self.request_id.take() else {
            return;
        };
        auto.open_request_id = Some(request_id.clone());
        auto.open_request_at = Some(now);
        auto.requests_this_period = counted + 1;
        auto.period_key = period;
        self.notices.push(Notice::TopUpRequested {
            request_id,
            pack: auto.pack.clone(),
            threshold: auto.threshold,
            balance,
        });
    }

    /// Closes the open request `request_id`, paid or failed; the
    /// [`FAILURES_TO_DISABLE`]th failure in a row switches automatic
    /// top-up off (and tells).
    pub fn close_top_up_request(&mut self, request_id: &str, paid: bool) -> Closed {
        let Some(auto) = self
            .state
            .auto_top_up
            .as_mut()
            .filter(|auto| auto.open_request_id.as_deref() == Some(request_id))
        else {
            return Closed::NotOpen;
        };
        auto.open_request_id = None;
        auto.open_request_at = None;
        let closed = if paid {
            auto.consecutive_failures = 0;
            Closed::Paid
        } else {
            auto.consecutive_failures += 1;
            let failures = auto.consecutive_failures;
            let disabled = failures >= FAILURES_TO_DISABLE;
            if disabled {
                auto.enabled = false;
                self.state.head.auto_top_up_threshold = None;
                self.notices.push(Notice::TopUpDisabled {
                    request_id: request_id.to_owned(),
                    failures,
                });
            }
            Closed::Failed { failures, disabled }
        };
        self.budgets_changed();
        closed
    }
}
