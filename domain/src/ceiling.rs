//! The balance ceiling: balances are served as GraphQL `Int` (32-bit), so
//! no wallet may hold more than [`BALANCE_MAX`] credits. Every credit that
//! enters a wallet is checked here, whichever path writes it.

use crate::DomainError;

/// The most credits a wallet may hold.
pub const BALANCE_MAX: i64 = i32::MAX as i64;

/// Refuses a change requested by a caller (a top-up, an adjustment, an
/// upgrade's grant, a reversal) that would take `balance` past the
/// ceiling; nothing is written.
pub fn check_ceiling(balance: i64, amount: i64) -> Result<(), DomainError> {
    if balance.saturating_add(amount) > BALANCE_MAX {
        return Err(DomainError::invalid(
            "amount",
            format!("would take the balance above {BALANCE_MAX} credits"),
        ));
    }
    Ok(())
}

/// What of a renewal's allocation fits under the ceiling. A period must
/// renew whatever the balance (refusing would leave the wallet due for
/// ever, and every writer settles first), so the allocation is capped
/// instead: the grant holds what fits, and nothing when nothing does.
pub fn allocation_that_fits(balance: i64, credits: i64) -> i64 {
    credits.min(BALANCE_MAX.saturating_sub(balance)).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_may_reach_the_ceiling_but_not_pass_it() {
        assert_eq!(check_ceiling(BALANCE_MAX - 10, 10), Ok(()));
        assert_eq!(
            check_ceiling(BALANCE_MAX - 10, 11),
            Err(DomainError::invalid(
                "amount",
                format!("would take the balance above {BALANCE_MAX} credits")
            ))
        );
        assert_eq!(check_ceiling(BALANCE_MAX, -5), Ok(()));
        assert!(check_ceiling(i64::MAX, 1).is_err(), "no overflow");
    }

    #[test]
    fn an_allocation_is_capped_to_what_fits() {
        assert_eq!(allocation_that_fits(0, 1_000), 1_000);
        assert_eq!(allocation_that_fits(BALANCE_MAX - 1_000, 1_000), 1_000);
        assert_eq!(allocation_that_fits(BALANCE_MAX - 400, 1_000), 400);
        assert_eq!(allocation_that_fits(BALANCE_MAX, 1_000), 0);
        assert_eq!(allocation_that_fits(BALANCE_MAX + 5, 1_000), 0, "never negative");
    }
}
