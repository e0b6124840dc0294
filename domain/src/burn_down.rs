//! Which grants pay for a debit, and in what order.
//!
//! Order: the grant that expires soonest first; grants that never expire
//! (purchased packs) last; on equal expiry, the oldest grant (lowest id)
//! first. A debit is taken whole or not at all.

use chrono::{DateTime, Utc};

use crate::catalogue::GrantSource;

/// A live grant as the burn-down rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantBalance {
    /// The grant's id; lower is older.
    pub id: i64,
    /// Where its credits came from.
    pub source: GrantSource,
    /// Credits left in it.
    pub remaining: i64,
    /// When it expires; `None` never.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Credits taken from one grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burn {
    /// The grant paying.
    pub grant_id: i64,
    /// How many credits it pays (positive).
    pub credits: i64,
}

/// Sorts grants into burn-down order, in place.
pub fn sort_for_burn_down(grants: &mut [GrantBalance]) {
    grants.sort_by_key(|grant| (grant.expires_at.is_none(), grant.expires_at, grant.id));
}

/// Splits a debit of `credits` over `grants` in burn-down order.
/// Returns `None`, and takes nothing, when the grants hold less than that.
/// `grants` must all be spendable now (the caller expires due grants first).
pub fn plan_burn(grants: &[GrantBalance], credits: i64) -> Option<Vec<Burn>> {
    debug_assert!(credits > 0, "a debit is positive");
    let mut ordered = grants.to_vec();
    sort_for_burn_down(&mut ordered);
    let mut left = credits;
    let mut burns = Vec::new();
    for grant in ordered.iter().filter(|grant| grant.remaining > 0) {
        if left == 0 {
            break;
        }
        let take = left.min(grant.remaining);
        burns.push(Burn {
            grant_id: grant.id,
            credits: take,
        });
        left -= take;
    }
    (left == 0).then_some(burns)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(day: u32) -> Option<DateTime<Utc>> {
        Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).single()
    }

    fn grant(
        id: i64,
        source: GrantSource,
        remaining: i64,
        expires_at: Option<DateTime<Utc>>,
    ) -> GrantBalance {
        GrantBalance {
            id,
            source,
            remaining,
            expires_at,
        }
    }

    #[test]
    fn burn_down_order_table() {
        struct Case {
            name: &'static str,
            grants: Vec<GrantBalance>,
            debit: i64,
            expected: Option<Vec<(i64, i64)>>,
        }
        let cases = vec![
            Case {
                name: "soonest expiry first, purchased last",
                grants: vec![
                    grant(1, GrantSource::Purchase, 100, None),
                    grant(2, GrantSource::Allocation, 50, at(31)),
                    grant(3, GrantSource::Trial, 2, at(8)),
                ],
                debit: 5,
                expected: Some(vec![(3, 2), (2, 3)]),
            },
            Case {
                name: "spills into never-expiring credits only when the rest is gone",
                grants: vec![
                    grant(1, GrantSource::Purchase, 100, None),
                    grant(2, GrantSource::Allocation, 1, at(31)),
                ],
                debit: 3,
                expected: Some(vec![(2, 1), (1, 2)]),
            },
            Case {
                name: "oldest first on equal expiry",
                grants: vec![
                    grant(9, GrantSource::Purchase, 1, None),
                    grant(4, GrantSource::Purchase, 1, None),
                ],
                debit: 1,
                expected: Some(vec![(4, 1)]),
            },
            Case {
                name: "empty grants are skipped",
                grants: vec![
                    grant(1, GrantSource::Trial, 0, at(2)),
                    grant(2, GrantSource::Purchase, 5, None),
                ],
                debit: 1,
                expected: Some(vec![(2, 1)]),
            },
            Case {
                name: "insufficient takes nothing",
                grants: vec![
                    grant(1, GrantSource::Trial, 1, at(2)),
                    grant(2, GrantSource::Purchase, 1, None),
                ],
                debit: 3,
                expected: None,
            },
            Case {
                name: "no grants",
                grants: vec![],
                debit: 1,
                expected: None,
            },
        ];
        for case in cases {
            let got = plan_burn(&case.grants, case.debit)
                .map(|burns| burns.iter().map(|b| (b.grant_id, b.credits)).collect::<Vec<_>>());
            assert_eq!(got, case.expected, "{}", case.name);
        }
    }
}
