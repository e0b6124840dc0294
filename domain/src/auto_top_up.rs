//! Automatic top-up's rules (`docs/design/auto-top-up.md`): its settings'
//! bounds, the billing period its requests are counted in, and the request
//! ids handed to the payment system.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::DomainError;

/// Highest threshold.
pub const THRESHOLD_MAX: i64 = 1_000_000;
/// Most requests a billing period allows at most.
pub const MAX_PER_PERIOD_MAX: i32 = 100;

/// A wallet's automatic top-up as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoTopUpView {
    /// On or off (off after three failed payments in a row).
    pub enabled: bool,
    /// A change that leaves the balance below this requests a pack.
    pub threshold: i64,
    /// The pack requested.
    pub pack: String,
    /// Most requests per billing period.
    pub max_per_period: i32,
    /// Requests made in the billing period `period_key` names.
    pub requests_this_period: i32,
    /// The request waiting for its payment, if any.
    pub open_request_id: Option<String>,
    /// When it was made.
    pub open_request_at: Option<DateTime<Utc>>,
    /// Failed payments in a row.
    pub consecutive_failures: i32,
    /// The period `requests_this_period` counts.
    pub period_key: String,
}

impl AutoTopUpView {
    /// The view as of the billing period named `period_key`: requests
    /// counted in an earlier period count as none.
    pub fn counted_in(self, period_key: &str) -> Self {
        if self.period_key == period_key {
            return self;
        }
        Self {
            requests_this_period: 0,
            ..self
        }
    }
}

/// Checks settings as given.
pub fn check_settings(threshold: i64, max_per_period: i32) -> Result<(), DomainError> {
    if !(1..=THRESHOLD_MAX).contains(&threshold) {
        return Err(DomainError::invalid("threshold", "must be from 1 to 1000000"));
    }
    if !(1..=MAX_PER_PERIOD_MAX).contains(&max_per_period) {
        return Err(DomainError::invalid("maxPerPeriod", "must be from 1 to 100"));
    }
    Ok(())
}

/// The billing period requests are counted in: its start, or `trial` for a
/// wallet with no period yet.
pub fn period_key(period_start: Option<DateTime<Utc>>) -> String {
    period_start.map_or_else(
        || "trial".to_owned(),
        |start| start.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// A request id from 16 random bytes: the payment system's idempotency key.
pub fn new_request_id(random: [u8; 16]) -> String {
    let hex: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("atr_{hex}")
}

/// Checks a request id as a caller names it: `atr_` and at most 60 more
/// letters or digits.
pub fn parse_request_id(field: &'static str, raw: &str) -> Result<String, DomainError> {
    let valid = raw.len() <= 64
        && raw
            .strip_prefix("atr_")
            .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()));
    if !valid {
        return Err(DomainError::invalid(
            field,
            "is not an automatic top-up request id (atr_…)",
        ));
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_bounded() {
        assert!(check_settings(1, 1).is_ok());
        assert!(check_settings(THRESHOLD_MAX, MAX_PER_PERIOD_MAX).is_ok());
        assert!(check_settings(0, 1).is_err());
        assert!(check_settings(1, 0).is_err());
        assert!(check_settings(THRESHOLD_MAX + 1, 1).is_err());
        assert!(check_settings(1, MAX_PER_PERIOD_MAX + 1).is_err());
    }

    #[test]
    fn requests_count_only_in_their_own_period() {
        let view = AutoTopUpView {
            enabled: true,
            threshold: 10,
            pack: "PACK_100".to_owned(),
            max_per_period: 2,
            requests_this_period: 2,
            open_request_id: None,
            open_request_at: None,
            consecutive_failures: 0,
            period_key: "2026-01-31T10:00:00Z".to_owned(),
        };
        assert_eq!(
            view.clone()
                .counted_in("2026-01-31T10:00:00Z")
                .requests_this_period,
            2
        );
        assert_eq!(view.counted_in("2026-02-28T10:00:00Z").requests_this_period, 0);
        assert_eq!(period_key(None), "trial");
        assert_eq!(new_request_id([0xab; 16]), format!("atr_{}", "ab".repeat(16)));
        let id = new_request_id([7; 16]);
        assert_eq!(parse_request_id("requestId", &id).ok(), Some(id));
        for bad in [
            "",
            "atr_",
            "pi_123",
            "atr_a-b",
            &format!("atr_{}", "a".repeat(61)),
        ] {
            assert!(parse_request_id("requestId", bad).is_err(), "{bad}");
        }
    }
}
