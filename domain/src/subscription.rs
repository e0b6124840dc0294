//! A payment provider's subscription, decided without the database
//! (`docs/design/payments.md`): which of two states of one subscription is
//! the newer, and whether a state is paid for.

use chrono::{DateTime, Duration, Utc};

/// Whether a subscription is paid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// `trialing` or `active`.
    Good,
    /// `past_due`: the wallet keeps its plan until the grace ends.
    Grace(DateTime<Utc>),
    /// `unpaid`, `canceled`, `incomplete_expired`, `paused`, deleted,
    /// unknown, or a grace that ran out: the paid plan ends.
    Ended,
    /// `incomplete`: the first payment is still being attempted; nothing
    /// changes.
    NotStarted,
}

/// The standing of a subscription in `status` at `now`; a past-due one
/// keeps its plan for `grace` from `past_due_since`.
pub fn standing(
    status: &str,
    past_due_since: Option<DateTime<Utc>>,
    grace: Duration,
    now: DateTime<Utc>,
) -> Standing {
    match status {
        "trialing" | "active" => Standing::Good,
        "past_due" => {
            let until = past_due_since.unwrap_or(now) + grace;
            if until <= now {
                Standing::Ended
            } else {
                Standing::Grace(until)
            }
        }
        "incomplete" => Standing::NotStarted,
        _ => Standing::Ended,
    }
}

/// How far along its lifecycle a status is (ties of `created` go to the
/// further one).
pub fn status_rank(status: &str) -> i32 {
    match status {
        "incomplete" => 0,
        "trialing" => 1,
        "active" => 2,
        "past_due" => 3,
        "unpaid" | "paused" => 4,
        "canceled" | "incomplete_expired" => 5,
        _ => -1,
    }
}

/// A state of a subscription as an event showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown<'a> {
    /// The event's `created` (unix seconds).
    pub created: i64,
    /// The subscription's current period start.
    pub period_start: Option<DateTime<Utc>>,
    /// Its status.
    pub status: &'a str,
}

/// Whether `event` is newer than `applied` (the state last applied; `None`
/// when none was): by the event's `created`, then the period's start, then
/// the status's rank; a canceled or expired subscription never comes back.
/// An equal state is newer (applying it again changes nothing).
pub fn is_newer(applied: Option<Shown<'_>>, event: Shown<'_>) -> bool {
    let Some(applied) = applied else {
        return true;
    };
    if matches!(applied.status, "canceled" | "incomplete_expired") {
        return false;
    }
    let key = |shown: Shown<'_>| {
        (
            shown.created,
            shown.period_start.map_or(i64::MIN, |start| start.timestamp()),
            status_rank(shown.status),
        )
    };
    key(event) >= key(applied)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, 10, 0, 0).unwrap()
    }

    fn shown(created: i64, day: u32, status: &str) -> Shown<'_> {
        Shown {
            created,
            period_start: Some(at(day)),
            status,
        }
    }

    #[test]
    fn newer_by_created_then_period_then_lifecycle() {
        assert!(is_newer(None, shown(1, 1, "incomplete")));
        assert!(is_newer(Some(shown(1, 1, "active")), shown(2, 1, "active")));
        assert!(!is_newer(Some(shown(2, 1, "active")), shown(1, 1, "past_due")));
        // Created in the same second: the later period, then the further status.
        assert!(is_newer(Some(shown(5, 1, "past_due")), shown(5, 2, "active")));
        assert!(!is_newer(Some(shown(5, 2, "active")), shown(5, 1, "past_due")));
        assert!(is_newer(Some(shown(5, 1, "incomplete")), shown(5, 1, "active")));
        assert!(!is_newer(Some(shown(5, 1, "active")), shown(5, 1, "trialing")));
        assert!(is_newer(Some(shown(5, 1, "active")), shown(5, 1, "active")));
        // Nothing follows a cancellation, however late its `created`.
        assert!(!is_newer(Some(shown(5, 1, "canceled")), shown(9, 2, "active")));
        assert!(!is_newer(
            Some(shown(5, 1, "incomplete_expired")),
            shown(9, 1, "active")
        ));
    }

    #[test]
    fn standing_table() {
        let grace = Duration::hours(72);
        assert_eq!(standing("trialing", None, grace, at(1)), Standing::Good);
        assert_eq!(standing("active", None, grace, at(1)), Standing::Good);
        assert_eq!(
            standing("past_due", Some(at(1)), grace, at(2)),
            Standing::Grace(at(4))
        );
        assert_eq!(standing("past_due", Some(at(1)), grace, at(4)), Standing::Ended);
        assert_eq!(standing("incomplete", None, grace, at(1)), Standing::NotStarted);
        for ended in [
            "unpaid",
            "canceled",
            "incomplete_expired",
            "paused",
            "something_new",
        ] {
            assert_eq!(standing(ended, None, grace, at(1)), Standing::Ended, "{ended}");
        }
    }
}
