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

use crate::budget::BudgetUsage;
use crate::burn_down::{Burn, GrantBalance, plan_burn};

/// What a spend did; each value is an ordinary answer, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendOutcome {
    /// The action was paid.
    Charged,
    /// The wallet holds less than the action costs; nothing was written.
    InsufficientCredits,
    /// The key already paid for this very request; nothing was charged again.
    Duplicate,
    /// A HARD budget would go over its limit; nothing was charged.
    BudgetExceeded,
}

impl SpendOutcome {
    /// The GraphQL name of the outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charged => "CHARGED",
            Self::InsufficientCredits => "INSUFFICIENT_CREDITS",
            Self::Duplicate => "DUPLICATE",
            Self::BudgetExceeded => "BUDGET_EXCEEDED",
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

/// A spend's answer by the precedence above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpendAnswer<R> {
    /// Rule 1: the key already paid for this very request, with row `R`.
    Duplicate(R),
    /// Rule 2: the key already paid for another request.
    Conflict,
    /// Rules 3 and 4: a fresh key, charged or refused.
    Fresh(SpendDecision),
    /// A fresh key refused by a HARD budget (decided by the wallet, between
    /// rules 2 and 3: a top-up would not help).
    OverBudget(BudgetUsage),
}

/// Answers a spend of `cost` by the precedence above. `bound` is what the
/// key already bound, if anything: the fingerprint of the request that
/// bound it and its row (named however the caller names rows); `grants`
/// are the live grants, read only for a fresh key. Both writers (one spend,
/// and the batches) answer through this.
pub fn answer_spend<R>(
    bound: Option<(&str, R)>,
    fingerprint: &str,
    grants: &[GrantBalance],
    cost: i64,
) -> SpendAnswer<R> {
    match bound {
        Some((bound_fingerprint, row)) if bound_fingerprint == fingerprint => SpendAnswer::Duplicate(row),
        Some(_) => SpendAnswer::Conflict,
        None => SpendAnswer::Fresh(decide_spend(grants, cost)),
    }
}

/// The identity of a spend request, compared when its key comes again.
/// Two requests with the same key are the same request exactly when their
/// fingerprints are equal.
/// The agent is part of it when named (keys bound before agents existed
/// keep their fingerprint).
pub fn spend_fingerprint(action: &str, reference: Option<&str>, agent: Option<&str>) -> String {
    // The length prefix keeps ("A", "B|C") and ("A|B", "C") apart.
    let reference = reference.unwrap_or("");
    match agent {
        None => format!("{action}|{}|{reference}", reference.len()),
        Some(agent) => format!("{action}|{}|{reference}|agent|{agent}", reference.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::GrantSource;

    /// The precedence: a bound key answers DUPLICATE even on an empty
    /// wallet and IDEMPOTENCY_CONFLICT even on a full one; only a fresh key
    /// reaches the balance.
    #[test]
    fn a_bound_key_answers_before_the_balance_is_looked_at() {
        let full = [GrantBalance {
            id: 1,
            source: GrantSource::Purchase,
            remaining: 10,
            expires_at: None,
        }];
        let fingerprint = spend_fingerprint("TRIAGE", Some("t-1"), None);
        let other = spend_fingerprint("TRIAGE", Some("t-2"), None);

        assert_eq!(
            answer_spend(Some((fingerprint.as_str(), 7)), &fingerprint, &[], 1),
            SpendAnswer::Duplicate(7)
        );
        assert_eq!(
            answer_spend(Some((other.as_str(), 7)), &fingerprint, &full, 1),
            SpendAnswer::Conflict
        );
        assert_eq!(
            answer_spend::<i64>(None, &fingerprint, &full, 1),
            SpendAnswer::Fresh(SpendDecision::Charge(vec![Burn {
                grant_id: 1,
                credits: 1
            }]))
        );
        assert_eq!(
            answer_spend::<i64>(None, &fingerprint, &[], 1),
            SpendAnswer::Fresh(SpendDecision::Insufficient { available: 0 })
        );
    }

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
            SpendOutcome::BudgetExceeded,
        ]
        .map(SpendOutcome::as_str);
        assert_eq!(
            names,
            ["CHARGED", "INSUFFICIENT_CREDITS", "DUPLICATE", "BUDGET_EXCEEDED"]
        );
    }

    #[test]
    fn fingerprints_tell_different_references_apart() {
        // The stored form: fingerprints written by earlier releases must
        // still compare equal.
        assert_eq!(spend_fingerprint("TRIAGE", Some("t1"), None), "TRIAGE|2|t1");
        assert_eq!(spend_fingerprint("TRIAGE", None, None), "TRIAGE|0|");
        // A plain join would make these two requests the same.
        assert_ne!(
            spend_fingerprint("A", Some("1|B"), None),
            spend_fingerprint("A|1", Some("B"), None)
        );
        assert_ne!(
            spend_fingerprint("TRIAGE", Some("t1"), None),
            spend_fingerprint("TRIAGE", None, None)
        );
        assert_ne!(
            spend_fingerprint("TRIAGE", None, None),
            spend_fingerprint("SIDEKICK", None, None)
        );
    }
}
