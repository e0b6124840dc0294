//! A wallet whose plan follows a subscription at the payment provider
//! (`docs/design/payments.md`): the provider's current period wins, a
//! larger plan takes effect at once and a smaller one at the next reset,
//! and a subscription that is no longer paid for ends the paid plan.

use chrono::{DateTime, Utc};

use super::{Entry, Notice, Wallet};
use crate::DomainError;
use crate::catalogue::{GrantSource, LedgerKind, PlanCode};
use crate::period::Period;
use crate::settlement::expiry_reference;

/// The plan a subscription in good standing (or in grace) pays for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidPlan {
    /// The subscription.
    pub subscription_id: String,
    /// The plan its price buys.
    pub plan: PlanCode,
    /// That plan's monthly credits.
    pub allocation: i64,
    /// The provider's current period.
    pub period: Period,
    /// The provider's billing anchor (periods after this one follow it).
    pub anchor: DateTime<Utc>,
    /// `None`: paid; a time: past due, its grace ends then.
    pub grace_ends_at: Option<DateTime<Utc>>,
    /// Credits of this same period's allocation used before the plan ended
    /// (a plan that ended and starts again within one period gets only
    /// the rest).
    pub used_in_period: i64,
}

impl Wallet {
    /// Follows a subscription's paid plan (`docs/design/payments.md`):
    /// - no paid period yet (a trial, or the plan ended): the provider's
    ///   period starts with its allocation;
    /// - the provider moved to a later period: this one's allocation
    ///   expires and the new period's is granted (once: the period start
    ///   only moves forward);
    /// - the same period with another end: the end moves, with the
    ///   allocation's expiry;
    /// - then a plan change as `change_plan` makes it: larger at once,
    ///   smaller at the next reset.
    pub fn follow_subscription(
        &mut self,
        paid: &PaidPlan,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        let head = &self.state.head;
        let was_past_due = head.standing_until.is_some();
        let reference = format!(
            "subscription:{}:{}",
            paid.plan,
            paid.period.start.format("%Y-%m-%d")
        );
        match head.period_start.zip(head.period_end) {
            None => {
                self.notices.push(Notice::PlanChanged {
                    from: head.plan,
                    plan: paid.plan,
                    pending_plan: None,
                });
                self.start_period(paid);
                let credits = (paid.allocation - paid.used_in_period).max(0);
                self.grant_allocation(paid.period, credits, actor, reference)?;
            }
            Some((start, _)) if paid.period.start > start => {
                if head.plan != paid.plan {
                    self.notices.push(Notice::PlanChanged {
                        from: head.plan,
                        plan: paid.plan,
                        pending_plan: None,
                    });
                }
                self.expire_allocations();
                self.start_period(paid);
                self.grant_allocation(paid.period, paid.allocation, actor, reference)?;
            }
            Some((start, end)) => {
                if paid.period.start == start && paid.period.end != end {
                    self.move_period_end(start, paid.period.end);
                }
                self.state.head.anchor = Some(paid.anchor);
                self.change_plan(paid.plan, paid.allocation, actor, now)?;
            }
        }
        let head = &mut self.state.head;
        head.subscription_id = Some(paid.subscription_id.clone());
        head.standing_until = paid.grace_ends_at;
        head.enterprise_allocation = None;
        if let (Some(grace_ends_at), false) = (paid.grace_ends_at, was_past_due) {
            self.notices.push(Notice::PastDue {
                subscription_id: paid.subscription_id.clone(),
                grace_ends_at,
            });
        }
        Ok(())
    }

    /// Ends the paid plan at once: the allocation's unused credits expire
    /// (one EXPIRE row each), the period is cleared, and nothing renews
    /// until a subscription is in good standing again. Purchased and bonus
    /// credits stay. A wallet without a paid period is left as it is.
    pub fn end_paid_plan(&mut self) {
        if self.state.head.period_start.is_none() {
            return;
        }
        self.expire_allocations();
        self.clear_period();
        self.notices.push(Notice::PlanEnded {
            subscription_id: self.state.head.subscription_id.clone(),
        });
    }

    /// Clears the period fields: no allocation, no renewal.
    pub(super) fn clear_period(&mut self) {
        let head = &mut self.state.head;
        head.anchor = None;
        head.period_start = None;
        head.period_end = None;
        head.pending_plan = None;
        head.standing_until = None;
    }

    fn start_period(&mut self, paid: &PaidPlan) {
        let head = &mut self.state.head;
        head.anchor = Some(paid.anchor);
        head.period_start = Some(paid.period.start);
        head.period_end = Some(paid.period.end);
        head.plan = paid.plan;
        head.pending_plan = None;
    }

    /// Every live allocation grant expires now, one EXPIRE row for what it
    /// held.
    fn expire_allocations(&mut self) {
        let allocations: Vec<(i64, i64)> = self
            .state
            .grants
            .iter()
            .filter(|grant| grant.source == GrantSource::Allocation)
            .map(|grant| (grant.id, grant.remaining))
            .collect();
        for (id, remaining) in allocations {
            if remaining > 0 {
                self.record(
                    Entry::by(
                        LedgerKind::Expire,
                        "system",
                        expiry_reference(GrantSource::Allocation, id),
                    ),
                    vec![(id, -remaining)],
                );
            }
            self.state.grants.retain(|grant| grant.id != id);
            if id < super::NEW_GRANT_ID_BASE {
                self.closes.push(id);
            }
        }
    }

    /// The provider moved the current period's end: the period and its
    /// allocation's expiry follow.
    fn move_period_end(&mut self, start: DateTime<Utc>, end: DateTime<Utc>) {
        self.state.head.period_end = Some(end);
        for grant in &mut self.state.grants {
            if grant.source == GrantSource::Allocation && grant.period_start_at == Some(start) {
                grant.expires_at = Some(end);
                if !grant.is_new() {
                    self.expiry_moves.push((grant.id, end));
                }
            }
        }
    }
}
