//! The wallet under change: operations in order, each keeping the state in
//! step with the rows it appends; `finish` returns the `Change`.

use chrono::{DateTime, Utc};

use super::{
    Alert, Change, Entry, Grant, GrantDelta, Happened, Head, NEW_GRANT_ID_BASE, Purchase, Reversed, Row,
    WalletState,
};
use crate::DomainError;
use crate::burn_down::{Burn, GrantBalance};
use crate::catalogue::{GrantSource, LedgerKind, PlanCode};
use crate::ceiling::check_ceiling;
use crate::period::{Period, period_containing};
use crate::reversal::{LowBalance, MovedGrant, Restore, low_balance, plan_reversal};
use crate::settlement::{LiveGrant, renewal_reference, settle};
use crate::spend::{SpendDecision, decide_spend};
use crate::views::BalanceView;

/// A wallet under change: the state read, the state now, and what was
/// appended since.
#[derive(Debug, Clone)]
pub struct Wallet {
    pub(super) state: WalletState,
    pub(super) original: WalletState,
    pub(super) rows: Vec<Row>,
    pub(super) closes: Vec<i64>,
    alerts: Vec<Alert>,
    pub(super) exhausted: Vec<super::Exhausted>,
    pub(super) happened: Vec<Happened>,
    renewals: u64,
    next_new_grant: i64,
    pub(super) expiry_moves: Vec<(i64, DateTime<Utc>)>,
    pub(super) notices: Vec<super::Notice>,
    /// An id for a request this change may open (the caller draws it).
    pub(super) request_id: Option<String>,
    pub(super) told: Vec<crate::event::NewEvent>,
    pub(super) budget_writes: Vec<crate::budget::BudgetWrite>,
}

impl Wallet {
    /// Starts from the state read under the wallet's lock.
    pub fn new(state: WalletState) -> Self {
        Self {
            original: state.clone(),
            state,
            rows: Vec::new(),
            closes: Vec::new(),
            alerts: Vec::new(),
            exhausted: Vec::new(),
            happened: Vec::new(),
            renewals: 0,
            next_new_grant: NEW_GRANT_ID_BASE,
            expiry_moves: Vec::new(),
            notices: Vec::new(),
            request_id: None,
            told: Vec::new(),
            budget_writes: Vec::new(),
        }
    }

    /// The head now.
    pub fn head(&self) -> &Head {
        &self.state.head
    }

    /// The balance now, split.
    pub fn balance(&self) -> BalanceView {
        self.state.balance()
    }

    /// The live grants as the burn-down rule sees them.
    pub fn spendable(&self) -> Vec<GrantBalance> {
        self.state
            .grants
            .iter()
            .map(|grant| GrantBalance {
                id: grant.id,
                source: grant.source,
                remaining: grant.free(),
                expires_at: grant.expires_at,
            })
            .collect()
    }

    /// Creates a grant of `credits`, empty until the row granting it moves
    /// it up. Returns its provisional id.
    pub(super) fn add_grant(
        &mut self,
        source: GrantSource,
        credits: i64,
        expires_at: Option<DateTime<Utc>>,
        period_start_at: Option<DateTime<Utc>>,
        purchase: Option<Purchase>,
    ) -> i64 {
        let id = self.next_new_grant;
        self.next_new_grant += 1;
        self.state.grants.push(Grant {
            id,
            source,
            granted: credits,
            remaining: 0,
            held: 0,
            expires_at,
            period_start_at,
            purchase,
        });
        id
    }

    /// Refuses credits a caller adds past the ceiling, before anything
    /// changes.
    pub(super) fn fits(&self, credits: i64) -> Result<(), DomainError> {
        check_ceiling(self.state.head.balance, credits)
    }

    /// Appends a row moving these grants; returns its index in the change.
    /// Credits entering the wallet were checked by [`Wallet::fits`] or capped
    /// by settling.
    pub(super) fn record(&mut self, entry: Entry, moves: Vec<(i64, i64)>) -> usize {
        let amount: i64 = moves.iter().map(|(_, credits)| credits).sum();
        for (grant_id, credits) in &moves {
            if let Some(grant) = self.state.grants.iter_mut().find(|grant| grant.id == *grant_id) {
                grant.remaining += credits;
            }
        }
        let head = &mut self.state.head;
        head.balance += amount;
        head.last_sequence += 1;
        let sequence = head.last_sequence;
        let index = self.rows.len();
        self.rows.push(Row {
            sequence,
            amount,
            balance: self.balance(),
            entry,
            moves,
        });
        self.happened.push(Happened::Row(index));
        index
    }

    /// A burn's row: each grant gives its credits.
    pub(super) fn burn(&mut self, entry: Entry, burns: &[Burn]) -> usize {
        let moves = burns.iter().map(|burn| (burn.grant_id, -burn.credits)).collect();
        self.record(entry, moves)
    }

    /// Grants `credits` as the allocation of `period` (nothing for 0).
    pub(super) fn grant_allocation(
        &mut self,
        period: Period,
        credits: i64,
        actor: &str,
        reference: String,
    ) -> Result<(), DomainError> {
        if credits <= 0 {
            return Ok(());
        }
        self.fits(credits)?;
        let id = self.add_grant(
            GrantSource::Allocation,
            credits,
            Some(period.end),
            Some(period.start),
            None,
        );
        self.record(
            Entry::by(LedgerKind::Grant, actor, reference),
            vec![(id, credits)],
        );
        Ok(())
    }

    /// Brings the wallet up to `now` by `domain::settlement::settle`: due
    /// grants expire (an EXPIRE row for what each held), then an ended
    /// period renews (a pending downgrade applies) with `allocation(plan)`
    /// credits. A settled wallet is left unchanged.
    pub fn settle(&mut self, allocation: impl FnOnce(PlanCode) -> i64, now: DateTime<Utc>) {
        self.expire_holds(now);
        // A grant expires what no hold pins; pinned credits wait for their
        // hold (`docs/design/holds.md`).
        let live: Vec<LiveGrant> = self
            .state
            .grants
            .iter()
            .filter(|grant| grant.held == 0 || grant.free() > 0)
            .map(|grant| LiveGrant {
                id: grant.id,
                source: grant.source,
                remaining: grant.free(),
                expires_at: grant.expires_at,
            })
            .collect();
        let settlement = settle(
            &live,
            &self.state.head.period_state(),
            self.state.head.balance,
            allocation,
            now,
        );
        if settlement.ends_plan {
            self.clear_period();
            self.notices.push(super::Notice::PlanEnded {
                subscription_id: self.state.head.subscription_id.clone(),
            });
        }
        for expiry in settlement.expiries {
            if expiry.credits > 0 {
                self.record(
                    Entry::by(LedgerKind::Expire, "system", expiry.reference),
                    vec![(expiry.grant_id, -expiry.credits)],
                );
            }
            let pinned = self
                .state
                .grants
                .iter()
                .any(|grant| grant.id == expiry.grant_id && grant.held > 0);
            if !pinned {
                self.state.grants.retain(|grant| grant.id != expiry.grant_id);
                self.closes.push(expiry.grant_id);
            }
        }
        if let Some((renewal, credits)) = settlement.renewal {
            let head = &mut self.state.head;
            head.plan = renewal.plan;
            head.pending_plan = None;
            head.period_start = Some(renewal.period.start);
            head.period_end = Some(renewal.period.end);
            self.renewals += 1;
            if credits > 0 {
                // Capped by `settle` to what fits.
                let id = self.add_grant(
                    GrantSource::Allocation,
                    credits,
                    Some(renewal.period.end),
                    Some(renewal.period.start),
                    None,
                );
                self.record(
                    Entry::by(LedgerKind::Grant, "system", renewal_reference(&renewal)),
                    vec![(id, credits)],
                );
            }
        }
    }

    /// A purchased pack of `credits`: a never-expiring grant and its TOP_UP
    /// row.
    pub fn top_up(&mut self, credits: i64, purchase: Purchase, entry: Entry) -> Result<usize, DomainError> {
        self.fits(credits)?;
        let id = self.add_grant(GrantSource::Purchase, credits, None, None, Some(purchase));
        Ok(self.record(entry, vec![(id, credits)]))
    }

    /// An operator's adjustment: positive credits become a bonus grant
    /// (expiring at `expires_at`, in the future), negative ones burn like a
    /// spend and are refused below zero.
    pub fn adjust(
        &mut self,
        credits: i64,
        expires_at: Option<DateTime<Utc>>,
        entry: Entry,
        now: DateTime<Utc>,
    ) -> Result<usize, DomainError> {
        if expires_at.is_some_and(|at| at <= now) {
            return Err(DomainError::invalid("expiresAt", "must be in the future"));
        }
        if credits < 0 && expires_at.is_some() {
            return Err(DomainError::invalid(
                "expiresAt",
                "applies only to positive adjustments",
            ));
        }
        if credits > 0 {
            self.fits(credits)?;
            let id = self.add_grant(GrantSource::Adjustment, credits, expires_at, None, None);
            return Ok(self.record(entry, vec![(id, credits)]));
        }
        match decide_spend(&self.spendable(), -credits) {
            SpendDecision::Insufficient { available } => Err(DomainError::invalid(
                "credits",
                format!("would take the balance below zero (the wallet holds {available})"),
            )),
            SpendDecision::Charge(burns) => Ok(self.burn(entry, &burns)),
        }
    }

    /// Reverses a SPEND (credits back to the grants they came from, or to a
    /// new bonus grant for those that expired) or an unspent TOP_UP, by
    /// `domain::reversal`.
    pub fn reverse(
        &mut self,
        original: &Reversed,
        mut entry: Entry,
        now: DateTime<Utc>,
    ) -> Result<usize, DomainError> {
        let moved: Vec<MovedGrant> = original
            .moves
            .iter()
            .map(|(grant_id, moved)| {
                // A grant past its expiry that holds keep open is not live:
                // credits given back to it would expire at once.
                let live = self.state.grants.iter().find(|grant| {
                    grant.id == *grant_id && !crate::settlement::is_grant_due(grant.expires_at, now)
                });
                MovedGrant {
                    grant_id: *grant_id,
                    moved: *moved,
                    is_live: live.is_some(),
                    remaining: live.map_or(0, |grant| grant.remaining),
                    granted: live.map_or(0, |grant| grant.granted),
                }
            })
            .collect();
        let restores = plan_reversal(original.kind, original.is_reversed, &moved)?;
        self.fits(
            restores
                .iter()
                .map(|restore| match restore {
                    Restore::Grant { credits, .. } | Restore::NewGrant { credits } => *credits,
                })
                .sum(),
        )?;
        let mut moves = Vec::new();
        for restore in restores {
            match restore {
                Restore::Grant { grant_id, credits } => moves.push((grant_id, credits)),
                Restore::NewGrant { credits } => {
                    let id = self.add_grant(GrantSource::Adjustment, credits, None, None, None);
                    moves.push((id, credits));
                }
            }
        }
        entry.action = original.action;
        entry.reverses = Some(original.id);
        entry.agent_id.clone_from(&original.agent_id);
        self.uncount(original, now);
        Ok(self.record(entry, moves))
    }

    /// The trial's one-time credits, expiring when the trial ends.
    pub fn grant_trial(
        &mut self,
        credits: i64,
        ends_at: DateTime<Utc>,
        actor: &str,
    ) -> Result<(), DomainError> {
        if credits <= 0 {
            return Ok(());
        }
        self.fits(credits)?;
        let id = self.add_grant(GrantSource::Trial, credits, Some(ends_at), None, None);
        self.record(
            Entry::by(LedgerKind::Grant, actor, format!("trial:{}", PlanCode::ProTrial)),
            vec![(id, credits)],
        );
        Ok(())
    }

    /// A plan change (`docs/design/ledger-rules.md`): from no paid period,
    /// the first period starts now with its allocation; an upgrade raises
    /// the current period's allocation grant to `allocation` in one GRANT
    /// row for the difference; a downgrade waits for the next reset; the
    /// current plan again cancels a pending downgrade.
    pub fn change_plan(
        &mut self,
        plan: PlanCode,
        allocation: i64,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        let is_enterprise = plan == PlanCode::Enterprise;
        let reference = format!("plan:{plan}");
        let head = &self.state.head;
        let Some((period_start, period_end)) = head.period_start.zip(head.period_end) else {
            let period = period_containing(now, now);
            self.notices.push(super::Notice::PlanChanged {
                from: head.plan,
                plan,
                pending_plan: None,
            });
            let head = &mut self.state.head;
            head.anchor = Some(now);
            head.period_start = Some(period.start);
            head.period_end = Some(period.end);
            head.plan = plan;
            head.pending_plan = None;
            head.enterprise_allocation = is_enterprise.then_some(allocation);
            return self.grant_allocation(period, allocation, actor, reference);
        };
        let current = self
            .state
            .grants
            .iter()
            .find(|grant| {
                grant.source == GrantSource::Allocation && grant.period_start_at == Some(period_start)
            })
            .map(|grant| (grant.id, grant.granted));
        let granted = current.map_or(0, |(_, granted)| granted);
        let same_plan =
            head.plan == plan && (!is_enterprise || head.enterprise_allocation == Some(allocation));
        if same_plan {
            self.state.head.pending_plan = None;
        } else if allocation > granted {
            let raise = allocation - granted;
            self.fits(raise)?;
            let id = match current {
                Some((id, _)) => {
                    if let Some(grant) = self.state.grants.iter_mut().find(|grant| grant.id == id) {
                        grant.granted += raise;
                    }
                    id
                }
                None => self.add_grant(
                    GrantSource::Allocation,
                    raise,
                    Some(period_end),
                    Some(period_start),
                    None,
                ),
            };
            self.record(Entry::by(LedgerKind::Grant, actor, reference), vec![(id, raise)]);
            self.notices.push(super::Notice::PlanChanged {
                from: self.state.head.plan,
                plan,
                pending_plan: None,
            });
            let head = &mut self.state.head;
            head.plan = plan;
            head.pending_plan = None;
            head.enterprise_allocation = is_enterprise.then_some(allocation);
        } else {
            if head.pending_plan != Some(plan) {
                self.notices.push(super::Notice::PlanChanged {
                    from: head.plan,
                    plan: head.plan,
                    pending_plan: Some(plan),
                });
            }
            let head = &mut self.state.head;
            head.pending_plan = Some(plan);
            if is_enterprise {
                head.enterprise_allocation = Some(allocation);
            }
        }
        Ok(())
    }

    /// Sets (or clears) the low-balance threshold; a new threshold re-arms
    /// the alert (checked at [`Wallet::finish`]).
    pub fn set_threshold(&mut self, threshold: Option<i64>) {
        let head = &mut self.state.head;
        if head.threshold != threshold {
            head.threshold = threshold;
            head.alerted_at = None;
        }
    }

    /// Sets the workspace's time zone (budgets' days end at its midnight).
    pub fn set_time_zone(&mut self, time_zone: &str) {
        time_zone.clone_into(&mut self.state.head.time_zone);
    }

    /// An event decided beside the wallet's rules (a payment to review),
    /// written with its change: the store has one writer of events.
    pub fn tell(&mut self, event: crate::event::NewEvent) {
        self.told.push(event);
    }

    /// Alerts once when the balance is below the threshold, and re-arms at
    /// or above it.
    pub fn check_low_balance(&mut self, now: DateTime<Utc>) {
        let balance = self.balance();
        let head = &mut self.state.head;
        match low_balance(head.threshold, head.alerted_at.is_some(), balance.available()) {
            LowBalance::Alert => {
                head.alerted_at = Some(now);
                self.alerts.push(Alert {
                    threshold: head.threshold.unwrap_or(0),
                    balance,
                    sequence: head.last_sequence,
                });
                self.happened.push(Happened::Alert(self.alerts.len() - 1));
            }
            LowBalance::Rearm => head.alerted_at = None,
            LowBalance::Unchanged => {}
        }
    }

    /// Applies the low-balance rule and returns what to write.
    pub fn finish(mut self, now: DateTime<Utc>) -> Change {
        self.check_low_balance(now);
        self.check_auto_top_up(now);
        let counters = self.finish_counters();
        let mut new_grants = Vec::new();
        let mut deltas = Vec::new();
        for grant in self.state.grants {
            if grant.is_new() {
                new_grants.push(grant);
                continue;
            }
            let Some(read) = self.original.grants.iter().find(|read| read.id == grant.id) else {
                continue;
            };
            let delta = GrantDelta {
                id: grant.id,
                remaining: grant.remaining - read.remaining,
                granted: grant.granted - read.granted,
            };
            if delta.remaining != 0 || delta.granted != 0 {
                deltas.push(delta);
            }
        }
        let holds = self
            .state
            .holds
            .into_iter()
            .filter(|hold| !self.original.holds.contains(hold))
            .collect();
        let head = self.state.head;
        Change {
            wallet_id: head.id,
            workspace_id: head.workspace_id.clone(),
            sequence_read: self.original.head.last_sequence,
            available_read: self.original.balance().available(),
            rows: self.rows,
            new_grants,
            deltas,
            closes: self.closes,
            alerts: self.alerts,
            counters,
            exhausted: self.exhausted,
            head: (head != self.original.head).then_some(head),
            happened: self.happened,
            renewals: self.renewals,
            expiry_moves: self.expiry_moves,
            notices: self.notices,
            auto_top_up: (self.state.auto_top_up != self.original.auto_top_up)
                .then_some(self.state.auto_top_up)
                .flatten(),
            told: self.told,
            budget_writes: self.budget_writes,
            holds,
        }
    }
}
