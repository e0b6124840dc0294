//! The ledger rules: pure, synchronous functions with time passed in.
//!
//! # Invariants
//!
//! For every wallet, at every commit, on every backend:
//!
//! 1. The wallet's balance equals the sum of its ledger amounts: the ledger
//!    is append-only and every change of the balance is exactly one row
//!    (GRANT, SPEND, EXPIRE, TOP_UP, ADJUSTMENT, REVERSAL) carrying the signed
//!    amount and the balance after it; HOLD, RELEASE and HOLD_EXPIRED rows move nothing
//!    (amount 0) and say what a hold did to `held`.
//! 2. The balance equals the sum of the remaining credits of the wallet's
//!    live grants (grants that no EXPIRE row has closed). Credits exist only
//!    inside grants; the balance is their total. A hold pins credits inside
//!    its grants: `held` is the sum of live holds' credits and of the
//!    grants' pins, and `available` = balance − held is never below zero.
//! 3. The balance is never below zero, and no grant's remaining credits are
//!    below zero or above what it granted.
//! 4. Ledger sequence numbers are dense per wallet: 1, 2, 3, … in commit
//!    order, so a subscriber or an auditor can tell that nothing is missing.
//!
//! A spend burns the grant that expires soonest first; never-expiring
//! credits (purchased packs) are spent last; ties go to the oldest grant.
//! Nothing here reads the clock or touches the database: `service` loads the
//! state, asks these functions what to do, and applies the answer through
//! `store`.
#![warn(missing_docs)]

pub mod auto_top_up;
pub mod budget;
pub mod burn_down;
pub mod catalogue;
pub mod ceiling;
pub mod event;
pub mod forecast;
pub mod head;
pub mod hold;
pub mod ids;
pub mod invariant;
pub mod outbox;
pub mod period;
pub mod reversal;
pub mod settlement;
pub mod spend;
pub mod subscription;
pub mod usage;
pub mod views;
pub mod wallet;

use thiserror::Error;

/// A rule of the domain refused the request. Each variant names the input
/// field it concerns, so the boundary can answer BAD_USER_INPUT precisely.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// An input value is outside what the rule accepts.
    #[error("{field}: {reason}")]
    Invalid {
        /// The public (GraphQL) name of the offending field.
        field: &'static str,
        /// What was wrong, with the limit.
        reason: String,
    },
}

impl DomainError {
    /// Shorthand for an invalid field.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
