//! The spend decision.
//!
//! Precedence, when several answers could apply:
//! 1. a key that already bound a charge with the same input: DUPLICATE
//!    (nothing is charged, whatever the balance is now);
//! 2. a key that already bound a charge with another input: the
//!    IDEMPOTENCY_CONFLICT error;
//! 3. live credits below the action's cost: INSUFFICIENT_CREDITS, nothing
//!    written, and the key stays free for a retry after a top-up;
//! 4. otherwise CHARGED, burning grants in burn-down order.

use super::burn_down::{Burn, GrantBalance, plan_burn};

/// What a spend did; each value is an ordinary answer, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendOutcome {
    /// The action was paid.
    Charged,
    /// The wallet holds less than the action costs; nothing was written.
    InsufficientCredits,
    /// The key already paid for this very request; nothing was charged again.
    Duplicate,
}

impl SpendOutcome {
    /// The GraphQL name of the outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charged => "CHARGED",
            Self::InsufficientCredits => "INSUFFICIENT_CREDITS",
            Self::Duplicate => "DUPLICATE",
        }
    }
}

/// What the spend rule decided for fresh (not yet seen) keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpendDecision {
    /// Charge: take these credits from these grants.
    Charge(Vec<Burn>),
    /// Refuse: the wallet holds `available` credits, fewer than the cost.
    Insufficient {
        /// Credits the live grants hold.
        available: i64,
    },
}

/// Decides a spend of `cost` credits over the live, spendable `grants`.
pub fn decide_spend(grants: &[GrantBalance], cost: i64) -> SpendDecision {
    match plan_burn(grants, cost) {
        Some(burns) => SpendDecision::Charge(burns),
        None => SpendDecision::Insufficient {
            available: grants.iter().map(|grant| grant.remaining).sum(),
        },
    }
}

/// The identity of a spend request, compared when its key comes again.
/// Two requests with the same key are the same request exactly when their
/// fingerprints are equal.
pub fn spend_fingerprint(action: &str, reference: Option<&str>) -> String {
    // The length prefix keeps ("A", "B|C") and ("A|B", "C") apart.
    let reference = reference.unwrap_or("");
    format!("{action}|{}|{reference}", reference.len())
}

#[cfg(test)]
mod tests {
    use super::super::catalogue::GrantSource;
    use super::*;

    #[test]
    fn a_spend_above_the_balance_is_refused_with_what_is_available() {
        let grants = vec![GrantBalance {
            id: 1,
            source: GrantSource::Trial,
            remaining: 2,
            expires_at: None,
        }];
        assert_eq!(
            decide_spend(&grants, 3),
            SpendDecision::Insufficient { available: 2 }
        );
        assert_eq!(
            decide_spend(&grants, 2),
            SpendDecision::Charge(vec![Burn {
                grant_id: 1,
                credits: 2
            }])
        );
    }

    #[test]
    fn outcomes_have_their_graphql_names() {
        let names = [
            SpendOutcome::Charged,
            SpendOutcome::InsufficientCredits,
            SpendOutcome::Duplicate,
        ]
        .map(SpendOutcome::as_str);
        assert_eq!(names, ["CHARGED", "INSUFFICIENT_CREDITS", "DUPLICATE"]);
    }

    #[test]
    fn fingerprints_tell_different_references_apart() {
        // The stored form: fingerprints written by earlier releases must
        // still compare equal.
        assert_eq!(spend_fingerprint("TRIAGE", Some("t1")), "TRIAGE|2|t1");
        assert_eq!(spend_fingerprint("TRIAGE", None), "TRIAGE|0|");
        // A plain join would make these two requests the same.
        assert_ne!(
            spend_fingerprint("A", Some("1|B")),
            spend_fingerprint("A|1", Some("B"))
        );
        assert_ne!(
            spend_fingerprint("TRIAGE", Some("t1")),
            spend_fingerprint("TRIAGE", None)
        );
        assert_ne!(
            spend_fingerprint("TRIAGE", None),
            spend_fingerprint("SIDEKICK", None)
        );
    }
}
