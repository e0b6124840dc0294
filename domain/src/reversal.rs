//! Reversals and operator adjustments.
//!
//! - A SPEND is reversed by giving each credit back to the grant it came
//!   from; when that grant has since expired, those credits go to a new
//!   never-expiring grant (bonus bucket) instead, since putting them into a
//!   closed grant would make them vanish again.
//! - A TOP_UP is reversed only while none of its credits were spent: the
//!   whole pack is taken back. A partly spent pack is refused (refund the
//!   payment outside and adjust if needed).
//! - Nothing else is reversible, and a transaction is reversed at most once.
//! - A negative adjustment burns like a spend and is refused if it would
//!   take the balance below zero.

use crate::DomainError;
use crate::catalogue::LedgerKind;

/// The state of one grant a reversed row had moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovedGrant {
    /// The grant.
    pub grant_id: i64,
    /// How the original row moved it (negative for a spend's burn).
    pub moved: i64,
    /// Whether the grant is still live (not expired).
    pub is_live: bool,
    /// Credits left in it now.
    pub remaining: i64,
    /// Credits it was granted.
    pub granted: i64,
}

/// What to do with each part of a reversal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// Move this live grant by `credits` (positive gives back, negative takes).
    Grant {
        /// The grant.
        grant_id: i64,
        /// Signed credits.
        credits: i64,
    },
    /// Give `credits` to a new never-expiring grant (the original expired).
    NewGrant {
        /// Credits.
        credits: i64,
    },
}

/// Plans the reversal of a row of `kind` that moved `grants`.
pub fn plan_reversal(
    kind: LedgerKind,
    is_reversed: bool,
    grants: &[MovedGrant],
) -> Result<Vec<Restore>, DomainError> {
    if is_reversed {
        return Err(DomainError::invalid("transactionId", "was already reversed"));
    }
    match kind {
        LedgerKind::Spend => {
            let mut restores = Vec::new();
            let mut to_new_grant = 0;
            for grant in grants {
                if grant.is_live {
                    restores.push(Restore::Grant {
                        grant_id: grant.grant_id,
                        credits: -grant.moved,
                    });
                } else {
                    to_new_grant += -grant.moved;
                }
            }
            if to_new_grant > 0 {
                restores.push(Restore::NewGrant {
                    credits: to_new_grant,
                });
            }
            Ok(restores)
        }
        LedgerKind::TopUp => {
            let [grant] = grants else {
                return Err(DomainError::invalid("transactionId", "top-up without its grant"));
            };
            if !grant.is_live || grant.remaining != grant.granted {
                return Err(DomainError::invalid(
                    "transactionId",
                    "is a top-up whose credits were partly spent; only an unspent top-up can be reversed",
                ));
            }
            Ok(vec![Restore::Grant {
                grant_id: grant.grant_id,
                credits: -grant.moved,
            }])
        }
        _ => Err(DomainError::invalid(
            "transactionId",
            "only SPEND and TOP_UP transactions can be reversed",
        )),
    }
}

/// What a low-balance threshold check decided after a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowBalance {
    /// The balance crossed below the threshold while armed: alert once.
    Alert,
    /// The balance is back at or above the threshold: re-arm.
    Rearm,
    /// Nothing to do.
    Unchanged,
}

/// Decides the low-balance alert for `balance` against `threshold`
/// (`None`: no alerting), given whether an alert is outstanding.
pub fn low_balance(threshold: Option<i64>, is_alerted: bool, balance: i64) -> LowBalance {
    match threshold {
        None if is_alerted => LowBalance::Rearm,
        None => LowBalance::Unchanged,
        Some(threshold) if balance < threshold && !is_alerted => LowBalance::Alert,
        Some(threshold) if balance >= threshold && is_alerted => LowBalance::Rearm,
        Some(_) => LowBalance::Unchanged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(grant_id: i64, moved: i64, is_live: bool) -> MovedGrant {
        MovedGrant {
            grant_id,
            moved,
            is_live,
            remaining: 0,
            granted: 10,
        }
    }

    #[test]
    fn a_spend_goes_back_to_its_grants_or_to_a_new_one_when_they_expired() {
        let plan = plan_reversal(
            LedgerKind::Spend,
            false,
            &[moved(1, -1, true), moved(2, -2, false)],
        )
        .unwrap();
        assert_eq!(
            plan,
            vec![
                Restore::Grant {
                    grant_id: 1,
                    credits: 1
                },
                Restore::NewGrant { credits: 2 }
            ]
        );
        // All its grants live: no new grant at all (not one of 0 credits).
        assert_eq!(
            plan_reversal(LedgerKind::Spend, false, &[moved(1, -1, true)]),
            Ok(vec![Restore::Grant {
                grant_id: 1,
                credits: 1
            }])
        );
    }

    #[test]
    fn reversal_rules_table() {
        let unspent = MovedGrant {
            grant_id: 5,
            moved: 100,
            is_live: true,
            remaining: 100,
            granted: 100,
        };
        let spent = MovedGrant {
            remaining: 99,
            ..unspent
        };
        assert_eq!(
            plan_reversal(LedgerKind::TopUp, false, &[unspent]),
            Ok(vec![Restore::Grant {
                grant_id: 5,
                credits: -100
            }])
        );
        let refused = |reason: &str| Err(DomainError::invalid("transactionId", reason));
        assert_eq!(
            plan_reversal(LedgerKind::TopUp, false, &[spent]),
            refused("is a top-up whose credits were partly spent; only an unspent top-up can be reversed")
        );
        let expired = MovedGrant {
            is_live: false,
            ..unspent
        };
        assert_eq!(
            plan_reversal(LedgerKind::TopUp, false, &[expired]),
            refused("is a top-up whose credits were partly spent; only an unspent top-up can be reversed")
        );
        assert_eq!(
            plan_reversal(LedgerKind::TopUp, false, &[]),
            refused("top-up without its grant")
        );
        // Already reversed wins over every other rule.
        for kind in [LedgerKind::Spend, LedgerKind::TopUp, LedgerKind::Grant] {
            assert_eq!(
                plan_reversal(kind, true, &[unspent]),
                refused("was already reversed"),
                "{kind}"
            );
        }
        for kind in [
            LedgerKind::Grant,
            LedgerKind::Expire,
            LedgerKind::Adjustment,
            LedgerKind::Reversal,
        ] {
            assert_eq!(
                plan_reversal(kind, false, &[unspent]),
                refused("only SPEND and TOP_UP transactions can be reversed"),
                "{kind}"
            );
        }
    }

    #[test]
    fn low_balance_alerts_once_per_crossing_and_rearms() {
        assert_eq!(low_balance(Some(10), false, 9), LowBalance::Alert);
        assert_eq!(low_balance(Some(10), true, 5), LowBalance::Unchanged);
        assert_eq!(low_balance(Some(10), true, 10), LowBalance::Rearm);
        assert_eq!(low_balance(Some(10), false, 10), LowBalance::Unchanged);
        assert_eq!(low_balance(None, true, 0), LowBalance::Rearm);
        assert_eq!(low_balance(None, false, 0), LowBalance::Unchanged);
    }
}
