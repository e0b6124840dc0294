//! Holds: credits reserved when an AI action starts, then captured (what
//! it cost is charged) or released (`docs/design/holds.md`).
//!
//! A hold pins credits inside the grants that would pay for it now, in
//! burn-down order: they stay in those grants (the balance, the ledger's
//! sum and the grants' sum all still count them) but no spend or other hold
//! can take them. `available` is the balance less what is pinned.

use chrono::{DateTime, Duration, Utc};

use crate::DomainError;
use crate::catalogue::{Action, stored_enum};

stored_enum! {
    /// Where a hold is in its life.
    HoldState {
        /// Credits pinned, waiting for a capture or a release.
        Held => "HELD",
        /// Charged: a SPEND row took what the action cost.
        Captured => "CAPTURED",
        /// Given back by its caller.
        Released => "RELEASED",
        /// Given back because nobody captured or released it in time.
        Expired => "EXPIRED",
    }
}

/// A hold's time to live when the caller names none.
pub const DEFAULT_TTL_SECONDS: i64 = 600;
/// The longest time to live one call may ask (a long action extends its
/// hold as it goes).
pub const MAX_TTL_SECONDS: i64 = 86_400;
/// The most credits one hold or capture may name.
pub const MAX_HOLD_CREDITS: i64 = 1_000_000;
/// The longest release reason, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// Holds a change places get provisional ids from here up (as grants do
/// from `wallet::NEW_GRANT_ID_BASE`); stored, a hold takes its HOLD row's id.
pub const NEW_HOLD_ID_BASE: i64 = 1 << 62;

/// A hold as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Its id (provisional while this change creates it).
    pub id: i64,
    /// The key it was placed under.
    pub key: String,
    /// Where it is in its life.
    pub state: HoldState,
    /// The action it pays for.
    pub action: Action,
    /// The agent the action is for.
    pub agent_id: Option<String>,
    /// The caller's reference.
    pub reference: Option<String>,
    /// Who placed it.
    pub actor: String,
    /// Credits held.
    pub credits: i64,
    /// Credits a capture charged.
    pub captured: i64,
    /// Credits a capture asked for above what it could collect.
    pub uncollected: i64,
    /// Where the held credits are: (grant id, credits), in burn-down order.
    pub pins: Vec<(i64, i64)>,
    /// When it expires if nobody captures or releases it.
    pub expires_at: DateTime<Utc>,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
    /// When it was captured, released or expired.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Why it was released (`expired` for an expiry).
    pub reason: Option<String>,
}

impl Hold {
    /// Whether this change creates it.
    pub fn is_new(&self) -> bool {
        self.id >= NEW_HOLD_ID_BASE
    }

    /// Whether it still pins credits.
    pub fn is_held(&self) -> bool {
        self.state == HoldState::Held
    }

    /// Whether it is held and due to expire at `now`.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.is_held() && self.expires_at <= now
    }
}

/// The time to live a caller asked for, or the default; refused outside
/// 1 s ..= [`MAX_TTL_SECONDS`].
pub fn time_to_live(seconds: Option<i64>) -> Result<Duration, DomainError> {
    let seconds = seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    if !(1..=MAX_TTL_SECONDS).contains(&seconds) {
        return Err(DomainError::invalid(
            "ttlSeconds",
            format!("must be between 1 and {MAX_TTL_SECONDS}"),
        ));
    }
    Ok(Duration::seconds(seconds))
}

/// Credits a caller named for a hold or a capture: 1 ..= [`MAX_HOLD_CREDITS`].
pub fn check_credits(credits: i64) -> Result<(), DomainError> {
    if !(1..=MAX_HOLD_CREDITS).contains(&credits) {
        return Err(DomainError::invalid(
            "credits",
            format!("must be between 1 and {MAX_HOLD_CREDITS}"),
        ));
    }
    Ok(())
}

/// A release's reason: at most [`MAX_REASON_CHARS`] characters, not blank.
pub fn check_reason(reason: &str) -> Result<(), DomainError> {
    if reason.trim().is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(DomainError::invalid(
            "reason",
            format!("must be 1 to {MAX_REASON_CHARS} characters, not blank"),
        ));
    }
    Ok(())
}

/// The identity of a hold request, compared when its key comes again (as
/// a spend's: `spend::spend_fingerprint`, with the credits and the time to
/// live).
pub fn hold_fingerprint(
    action: Action,
    credits: i64,
    ttl_seconds: i64,
    reference: Option<&str>,
    agent: Option<&str>,
) -> String {
    let spend = crate::spend::spend_fingerprint(action.as_str(), reference, agent);
    format!("hold|{credits}|{ttl_seconds}|{spend}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_to_live_has_a_default_and_bounds() {
        assert_eq!(time_to_live(None), Ok(Duration::seconds(DEFAULT_TTL_SECONDS)));
        assert_eq!(time_to_live(Some(1)), Ok(Duration::seconds(1)));
        assert_eq!(
            time_to_live(Some(MAX_TTL_SECONDS)),
            Ok(Duration::seconds(MAX_TTL_SECONDS))
        );
        assert!(time_to_live(Some(0)).is_err());
        assert!(time_to_live(Some(MAX_TTL_SECONDS + 1)).is_err());
        assert!(time_to_live(Some(-5)).is_err());
    }

    #[test]
    fn credits_and_reasons_are_bounded() {
        assert!(check_credits(1).is_ok());
        assert!(check_credits(MAX_HOLD_CREDITS).is_ok());
        assert!(check_credits(0).is_err());
        assert!(check_credits(MAX_HOLD_CREDITS + 1).is_err());
        assert!(check_reason("worker crashed").is_ok());
        assert!(check_reason(&"é".repeat(MAX_REASON_CHARS)).is_ok());
        assert!(check_reason(&"é".repeat(MAX_REASON_CHARS + 1)).is_err());
        assert!(check_reason("   ").is_err());
    }

    #[test]
    fn a_fingerprint_names_every_input() {
        let base = hold_fingerprint(Action::Triage, 5, 60, Some("t-1"), None);
        assert_eq!(base, hold_fingerprint(Action::Triage, 5, 60, Some("t-1"), None));
        for other in [
            hold_fingerprint(Action::Sidekick, 5, 60, Some("t-1"), None),
            hold_fingerprint(Action::Triage, 6, 60, Some("t-1"), None),
            hold_fingerprint(Action::Triage, 5, 61, Some("t-1"), None),
            hold_fingerprint(Action::Triage, 5, 60, Some("t-2"), None),
            hold_fingerprint(Action::Triage, 5, 60, Some("t-1"), Some("a")),
        ] {
            assert_ne!(base, other);
        }
    }
}
