//! What settling a wallet at `now` means, decided without the database:
//! which grants expire, and whether (and into which period and plan) the
//! billing period renews. The service applies the answer one wallet at a
//! time (writers) or a batch at a time (the scheduler's sweep).

use chrono::{DateTime, Utc};

use super::catalogue::PlanCode;
use super::period::{Period, period_containing};

/// The period fields of a wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodState {
    /// The billing anchor; `None` until a paid plan starts.
    pub anchor: Option<DateTime<Utc>>,
    /// The current period's end.
    pub period_end: Option<DateTime<Utc>>,
    /// The current plan.
    pub plan: PlanCode,
    /// A downgrade waiting for the next reset.
    pub pending_plan: Option<PlanCode>,
}

/// A renewal to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    /// The period containing `now` (missed periods are skipped).
    pub period: Period,
    /// The plan of that period (a pending downgrade takes effect).
    pub plan: PlanCode,
}

/// The renewal due at `now`, if the period has ended.
pub fn renewal_due(state: &PeriodState, now: DateTime<Utc>) -> Option<Renewal> {
    let (anchor, end) = (state.anchor?, state.period_end?);
    (end <= now).then(|| Renewal {
        period: period_containing(anchor, now),
        plan: state.pending_plan.unwrap_or(state.plan),
    })
}

/// Whether a grant expiring at `expires_at` is due at `now`.
pub fn is_grant_due(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_some_and(|at| at <= now)
}

/// The reference of an EXPIRE row.
pub fn expiry_reference(source: &str, grant_id: i64) -> String {
    format!("{source}:{grant_id}")
}

/// The reference of a renewal's GRANT row.
pub fn renewal_reference(renewal: &Renewal) -> String {
    format!(
        "renewal:{}:{}",
        renewal.plan,
        renewal.period.start.format("%Y-%m-%d")
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(month: u32, day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, month, day, 10, 0, 0).unwrap()
    }

    #[test]
    fn renewal_table() {
        let paid = PeriodState {
            anchor: Some(at(1, 31)),
            period_end: Some(at(2, 28)),
            plan: PlanCode::Pro,
            pending_plan: None,
        };
        assert_eq!(renewal_due(&paid, at(2, 27)), None);
        assert_eq!(
            renewal_due(&paid, at(2, 28)),
            Some(Renewal {
                period: Period {
                    start: at(2, 28),
                    end: at(3, 31)
                },
                plan: PlanCode::Pro
            })
        );
        let downgrading = PeriodState {
            pending_plan: Some(PlanCode::Starter),
            ..paid
        };
        assert_eq!(
            renewal_due(&downgrading, at(5, 15)).map(|r| (r.period.start, r.plan)),
            Some((at(4, 30), PlanCode::Starter))
        );
        let trial = PeriodState {
            anchor: None,
            period_end: None,
            plan: PlanCode::ProTrial,
            pending_plan: None,
        };
        assert_eq!(renewal_due(&trial, at(12, 1)), None);
        assert!(is_grant_due(Some(at(2, 1)), at(2, 1)));
        assert!(!is_grant_due(None, at(2, 1)));
    }

    /// The references are stored on ledger rows and shown to clients:
    /// their form is part of the contract's history.
    #[test]
    fn references_keep_their_stored_form() {
        assert_eq!(expiry_reference("ALLOCATION", 42), "ALLOCATION:42");
        let renewal = Renewal {
            period: Period {
                start: at(2, 28),
                end: at(3, 31),
            },
            plan: PlanCode::Starter,
        };
        assert_eq!(renewal_reference(&renewal), "renewal:STARTER:2026-02-28");
    }
}
