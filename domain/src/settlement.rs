//! What settling a wallet at `now` means, decided without the database:
//! which grants expire, and whether (and into which period and plan) the
//! billing period renews. The service applies the answer one wallet at a
//! time (writers) or a batch at a time (the scheduler's sweep).

use chrono::{DateTime, Utc};

use crate::catalogue::{GrantSource, PlanCode};
use crate::ceiling::allocation_that_fits;
use crate::period::{Period, period_containing};

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
    /// A past-due subscription's grace end: the paid plan ends then.
    pub standing_until: Option<DateTime<Utc>>,
}

impl PeriodState {
    /// Whether the paid plan ends at `now` (a past-due subscription's grace
    /// ran out): its allocation expires and nothing renews.
    pub fn plan_ends(&self, now: DateTime<Utc>) -> bool {
        self.anchor.is_some() && self.standing_until.is_some_and(|until| until <= now)
    }
}

/// A renewal to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    /// The period containing `now` (missed periods are skipped).
    pub period: Period,
    /// The plan of that period (a pending downgrade takes effect).
    pub plan: PlanCode,
}

/// The renewal due at `now`, if the period has ended (and the paid plan
/// has not).
pub fn renewal_due(state: &PeriodState, now: DateTime<Utc>) -> Option<Renewal> {
    if state.plan_ends(now) {
        return None;
    }
    let (anchor, end) = (state.anchor?, state.period_end?);
    (end <= now).then(|| Renewal {
        period: period_containing(anchor, now),
        plan: state.pending_plan.unwrap_or(state.plan),
    })
}

/// A live grant, as settling sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGrant {
    /// Its id.
    pub id: i64,
    /// Where its credits came from (it names the EXPIRE row's reference).
    pub source: GrantSource,
    /// Credits it still holds.
    pub remaining: i64,
    /// When it expires; `None` never.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A grant closed by settling: an EXPIRE row for what it held, when it
/// held anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// The grant.
    pub grant_id: i64,
    /// Credits it held (the EXPIRE row takes them; 0: no row).
    pub credits: i64,
    /// The EXPIRE row's reference.
    pub reference: String,
}

/// Everything settling a wallet at `now` does, in order: the expiries,
/// then the renewal and the allocation it grants (capped to the ceiling;
/// 0: no grant, no row). Both writers (one wallet, and the sweep's
/// batches) apply exactly this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// Grants closed, oldest first.
    pub expiries: Vec<Expiry>,
    /// The renewal, with the credits its allocation grants.
    pub renewal: Option<(Renewal, i64)>,
    /// The paid plan ends (a past-due subscription's grace ran out): the
    /// allocation is among the expiries, and the period is cleared.
    pub ends_plan: bool,
}

impl Settlement {
    /// Whether settling changes anything.
    pub fn is_empty(&self) -> bool {
        self.expiries.is_empty() && self.renewal.is_none() && !self.ends_plan
    }
}

/// Settles a wallet holding `balance` in `grants` at `now`: due grants
/// expire, then an ended period renews into the period containing `now`
/// with `allocation(plan)` credits, capped so that the balance after the
/// expiries stays under the ceiling.
pub fn settle(
    grants: &[LiveGrant],
    period: &PeriodState,
    balance: i64,
    allocation: impl FnOnce(PlanCode) -> i64,
    now: DateTime<Utc>,
) -> Settlement {
    let ends_plan = period.plan_ends(now);
    let expiries: Vec<Expiry> = grants
        .iter()
        .filter(|grant| {
            is_grant_due(grant.expires_at, now) || (ends_plan && grant.source == GrantSource::Allocation)
        })
        .map(|grant| Expiry {
            grant_id: grant.id,
            credits: grant.remaining,
            reference: expiry_reference(grant.source, grant.id),
        })
        .collect();
    let expired: i64 = expiries.iter().map(|expiry| expiry.credits).sum();
    let renewal = renewal_due(period, now).map(|renewal| {
        (
            renewal,
            allocation_that_fits(balance - expired, allocation(renewal.plan)),
        )
    });
    Settlement {
        expiries,
        renewal,
        ends_plan,
    }
}

/// Whether a grant expiring at `expires_at` is due at `now`.
pub fn is_grant_due(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_some_and(|at| at <= now)
}

/// The reference of an EXPIRE row.
pub fn expiry_reference(source: GrantSource, grant_id: i64) -> String {
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

    fn grant(id: i64, source: &str, remaining: i64, expires_at: Option<DateTime<Utc>>) -> LiveGrant {
        LiveGrant {
            id,
            source: source.parse().unwrap(),
            remaining,
            expires_at,
        }
    }

    /// Due grants expire in order (an empty one too, for no credits), the
    /// others stay; the renewal's allocation is capped against the balance
    /// left after the expiries.
    #[test]
    fn settling_expires_then_renews_within_the_ceiling() {
        let paid = PeriodState {
            anchor: Some(at(1, 31)),
            period_end: Some(at(2, 28)),
            plan: PlanCode::Pro,
            pending_plan: Some(PlanCode::Starter),
            standing_until: None,
        };
        let grants = [
            grant(7, "ALLOCATION", 400, Some(at(2, 28))),
            grant(8, "PURCHASE", 100, None),
            grant(9, "TRIAL", 0, Some(at(2, 7))),
            grant(10, "ADJUSTMENT", 5, Some(at(3, 31))),
        ];
        let ceiling = crate::ceiling::BALANCE_MAX;
        let mut asked = None;

        let settled = settle(
            &grants,
            &paid,
            ceiling - 50,
            |plan| {
                asked = Some(plan);
                1_000
            },
            at(3, 1),
        );

        assert_eq!(asked, Some(PlanCode::Starter), "the pending plan's allocation");
        assert_eq!(
            settled.expiries,
            vec![
                Expiry {
                    grant_id: 7,
                    credits: 400,
                    reference: "ALLOCATION:7".to_owned()
                },
                Expiry {
                    grant_id: 9,
                    credits: 0,
                    reference: "TRIAL:9".to_owned()
                },
            ]
        );
        let (renewal, credits) = settled.renewal.expect("the period ended");
        assert_eq!(renewal.plan, PlanCode::Starter);
        assert_eq!(renewal.period.start, at(2, 28));
        assert_eq!(credits, 450, "ceiling - (balance - 400 expired)");
        assert!(!settled.is_empty());

        let nothing = settle(&grants[1..2], &paid, 100, |_| 1_000, at(2, 27));
        assert!(nothing.is_empty(), "{nothing:?}");
    }

    #[test]
    fn renewal_table() {
        let paid = PeriodState {
            anchor: Some(at(1, 31)),
            period_end: Some(at(2, 28)),
            plan: PlanCode::Pro,
            pending_plan: None,
            standing_until: None,
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
            standing_until: None,
        };
        assert_eq!(renewal_due(&trial, at(12, 1)), None);
        assert!(is_grant_due(Some(at(2, 1)), at(2, 1)));
        assert!(!is_grant_due(None, at(2, 1)));
    }

    /// The references are stored on ledger rows and shown to clients:
    /// their form is part of the contract's history.
    #[test]
    fn references_keep_their_stored_form() {
        assert_eq!(expiry_reference(GrantSource::Allocation, 42), "ALLOCATION:42");
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
