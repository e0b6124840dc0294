//! A wallet as a state machine: every change to a wallet is decided here,
//! in memory, and comes out as one [`Change`] that the store's one applier
//! writes (`docs/design/write-path.md`).
//!
//! A [`Wallet`] starts from the [`WalletState`] read under the wallet's lock
//! and runs operations on it in order (settle, then spends, a top-up, an
//! adjustment…), each by the rules of this crate's other modules. Each
//! operation keeps the state in step with the rows it appends, so the next
//! one decides against what the previous ones did: a batch of spends, a
//! renewal followed by a spend, and a single write are the same code.
//! [`Wallet::finish`] applies the low-balance rule and returns the `Change`:
//! rows, new grants, grant deltas, closes, the alert, the new head.
//!
//! Nothing here reads the clock or touches the database.

use chrono::{DateTime, Utc};

use super::DomainError;
use super::burn_down::{Burn, GrantBalance};
use super::catalogue::{Action, GrantSource, LedgerKind, PlanCode};
use super::ceiling::check_ceiling;
use super::period::{Period, period_containing};
use super::reversal::{LowBalance, MovedGrant, Restore, low_balance, plan_reversal};
use super::settlement::{LiveGrant, PeriodState, renewal_reference, settle};
use super::spend::{SpendAnswer, SpendDecision, answer_spend};
use super::views::{BalanceView, TransactionView};

/// Grants created by a change get provisional ids from here up, in order,
/// until the applier stores them: above every stored id, so the burn-down
/// order (oldest first on equal expiry) is the same before and after.
pub const NEW_GRANT_ID_BASE: i64 = 1 << 62;

/// What a purchased pack cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// The pack.
    pub pack: String,
    /// Its price, in cents.
    pub price_cents: i64,
    /// Its currency.
    pub currency: String,
}

/// A live grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Its id (provisional for a grant this change creates).
    pub id: i64,
    /// Where its credits come from.
    pub source: GrantSource,
    /// Credits granted.
    pub granted: i64,
    /// Credits left.
    pub remaining: i64,
    /// When it expires; `None` never.
    pub expires_at: Option<DateTime<Utc>>,
    /// The billing period, for allocations.
    pub period_start_at: Option<DateTime<Utc>>,
    /// The pack bought, for purchases.
    pub purchase: Option<Purchase>,
}

impl Grant {
    /// Whether this change creates the grant (its id is provisional).
    pub fn is_new(&self) -> bool {
        self.id >= NEW_GRANT_ID_BASE
    }
}

/// A wallet's head row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The wallet's id.
    pub id: i64,
    /// Its workspace.
    pub workspace_id: String,
    /// Its balance (the sum of its ledger and of its live grants).
    pub balance: i64,
    /// Its newest ledger sequence.
    pub last_sequence: i64,
    /// The current plan.
    pub plan: PlanCode,
    /// A downgrade waiting for the next reset.
    pub pending_plan: Option<PlanCode>,
    /// When the trial ends.
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// The billing anchor, once a paid plan started.
    pub anchor: Option<DateTime<Utc>>,
    /// The current period's start.
    pub period_start: Option<DateTime<Utc>>,
    /// The current period's end.
    pub period_end: Option<DateTime<Utc>>,
    /// ENTERPRISE's per-period allocation.
    pub enterprise_allocation: Option<i64>,
    /// The low-balance threshold.
    pub threshold: Option<i64>,
    /// When the outstanding low-balance alert fired.
    pub alerted_at: Option<DateTime<Utc>>,
}

impl Head {
    /// The period fields, as settling reads them.
    pub fn period_state(&self) -> PeriodState {
        PeriodState {
            anchor: self.anchor,
            period_end: self.period_end,
            plan: self.plan,
            pending_plan: self.pending_plan,
        }
    }
}

/// A wallet as read under its lock: the head and its live grants, oldest
/// first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletState {
    /// The head.
    pub head: Head,
    /// The live grants.
    pub grants: Vec<Grant>,
}

impl WalletState {
    /// The balance the live grants hold, split.
    pub fn balance(&self) -> BalanceView {
        BalanceView::from_sources(self.grants.iter().map(|grant| (grant.source, grant.remaining)))
    }
}

/// An idempotency key and the identity of the request that binds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBinding {
    /// The key.
    pub key: String,
    /// The request's identity (a repeat carries the same).
    pub fingerprint: String,
}

/// What a row says besides its amount: who, why, which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its kind.
    pub kind: LedgerKind,
    /// The action paid, for spends (and their reversals).
    pub action: Option<Action>,
    /// The caller's reference (ticket, payment, reason).
    pub reference: Option<String>,
    /// Who caused it: the token's subject, or `system`.
    pub actor: String,
    /// The key it binds.
    pub key: Option<KeyBinding>,
    /// The row it reverses.
    pub reverses: Option<i64>,
}

impl Entry {
    /// A row of the system's (expiry, renewal), or of an actor's with only
    /// a reference.
    pub fn by(kind: LedgerKind, actor: &str, reference: String) -> Self {
        Self {
            kind,
            action: None,
            reference: Some(reference),
            actor: actor.to_owned(),
            key: None,
            reverses: None,
        }
    }
}

/// A ledger row to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Its sequence in the wallet's ledger.
    pub sequence: i64,
    /// Signed change of the balance.
    pub amount: i64,
    /// The balance after it, split.
    pub balance: BalanceView,
    /// Who, why, which key.
    pub entry: Entry,
    /// How it moved each grant: (grant id, possibly provisional; signed credits).
    pub moves: Vec<(i64, i64)>,
}

impl Row {
    /// The row as readers see it, once stored with `id` at `created_at`.
    pub fn view(&self, id: i64, created_at: DateTime<Utc>) -> TransactionView {
        TransactionView {
            id,
            sequence: self.sequence,
            kind: self.entry.kind,
            amount: self.amount,
            balance_after: self.balance.total,
            action: self.entry.action,
            reference: self.entry.reference.clone(),
            actor: self.entry.actor.clone(),
            idempotency_key: self.entry.key.as_ref().map(|binding| binding.key.clone()),
            reverses_transaction_id: self.entry.reverses,
            created_at,
        }
    }
}

/// A low-balance alert to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alert {
    /// The threshold crossed.
    pub threshold: i64,
    /// The balance then.
    pub balance: BalanceView,
    /// The ledger sequence it follows.
    pub sequence: i64,
}

/// What happened, in order: a row appended, or an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happened {
    /// Row `n` of the change.
    Row(usize),
    /// Alert `n` of the change.
    Alert(usize),
}

/// How a stored grant moves: signed deltas of its remaining and granted
/// credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantDelta {
    /// The grant.
    pub id: i64,
    /// Change of its remaining credits.
    pub remaining: i64,
    /// Change of its granted credits (an upgrade within a period).
    pub granted: i64,
}

/// Everything one wallet's operations write, for the store's applier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The wallet.
    pub wallet_id: i64,
    /// Its workspace.
    pub workspace_id: String,
    /// The sequence read under the lock: the head write is guarded on it.
    pub sequence_read: i64,
    /// Rows to append, in sequence order.
    pub rows: Vec<Row>,
    /// Grants to create (provisional ids), holding what they hold at the end.
    pub new_grants: Vec<Grant>,
    /// Stored live grants that moved.
    pub deltas: Vec<GrantDelta>,
    /// Stored grants closed by an expiry.
    pub closes: Vec<i64>,
    /// Low-balance alerts to record.
    pub alerts: Vec<Alert>,
    /// The new head, when it changed.
    pub head: Option<Head>,
    /// Rows and alerts in the order they happened (events are published so).
    pub happened: Vec<Happened>,
    /// Periods renewed (0 or 1).
    pub renewals: u64,
    /// Grants expired.
    pub expiries: u64,
}

impl Change {
    /// Whether anything about the wallet changed.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
            && self.new_grants.is_empty()
            && self.deltas.is_empty()
            && self.closes.is_empty()
            && self.alerts.is_empty()
            && self.head.is_none()
    }
}

/// The original row of a reversal, as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversed {
    /// Its id.
    pub id: i64,
    /// Its kind.
    pub kind: LedgerKind,
    /// Its action.
    pub action: Option<Action>,
    /// How it moved each grant.
    pub moves: Vec<(i64, i64)>,
    /// Whether a REVERSAL row already undid it.
    pub is_reversed: bool,
}

/// A wallet under change: the state read, the state now, and what was
/// appended since.
#[derive(Debug, Clone)]
pub struct Wallet {
    state: WalletState,
    original: WalletState,
    rows: Vec<Row>,
    closes: Vec<i64>,
    alerts: Vec<Alert>,
    happened: Vec<Happened>,
    renewals: u64,
    next_new_grant: i64,
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
            happened: Vec::new(),
            renewals: 0,
            next_new_grant: NEW_GRANT_ID_BASE,
        }
    }

    /// The head now.
    pub fn head(&self) -> &Head {
        &self.state.head
    }

    /// The live grants now.
    pub fn grants(&self) -> &[Grant] {
        &self.state.grants
    }

    /// The balance now, split.
    pub fn balance(&self) -> BalanceView {
        self.state.balance()
    }

    /// A row appended since the state was read.
    pub fn row(&self, index: usize) -> &Row {
        &self.rows[index]
    }

    /// The live grants as the burn-down rule sees them.
    pub fn spendable(&self) -> Vec<GrantBalance> {
        self.state
            .grants
            .iter()
            .map(|grant| GrantBalance {
                id: grant.id,
                source: grant.source,
                remaining: grant.remaining,
                expires_at: grant.expires_at,
            })
            .collect()
    }

    /// Creates a grant of `credits`, empty until the row granting it moves
    /// it up. Returns its provisional id.
    fn add_grant(
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
            expires_at,
            period_start_at,
            purchase,
        });
        id
    }

    /// Refuses credits a caller adds past the ceiling, before anything
    /// changes.
    fn fits(&self, credits: i64) -> Result<(), DomainError> {
        check_ceiling(self.state.head.balance, credits)
    }

    /// Appends a row moving these grants; returns its index in the change.
    /// Credits entering the wallet were checked by [`Wallet::fits`] or capped
    /// by settling.
    fn record(&mut self, entry: Entry, moves: Vec<(i64, i64)>) -> usize {
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
    fn burn(&mut self, entry: Entry, burns: &[Burn]) -> usize {
        let moves = burns.iter().map(|burn| (burn.grant_id, -burn.credits)).collect();
        self.record(entry, moves)
    }

    /// Grants `credits` as the allocation of `period` (nothing for 0).
    fn grant_allocation(
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
        let live: Vec<LiveGrant> = self
            .state
            .grants
            .iter()
            .map(|grant| LiveGrant {
                id: grant.id,
                source: grant.source.as_str().to_owned(),
                remaining: grant.remaining,
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
        for expiry in settlement.expiries {
            if expiry.credits > 0 {
                self.record(
                    Entry::by(LedgerKind::Expire, "system", expiry.reference),
                    vec![(expiry.grant_id, -expiry.credits)],
                );
            }
            self.state.grants.retain(|grant| grant.id != expiry.grant_id);
            self.closes.push(expiry.grant_id);
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

    /// A spend of `cost` by the precedence of `domain::spend`: `bound` is
    /// what the key already bound (fingerprint and row); a fresh key is
    /// charged (the row's index in [`SpendAnswer::Fresh`]'s place is
    /// returned beside) or refused.
    pub fn spend<R>(
        &mut self,
        bound: Option<(&str, R)>,
        entry: Entry,
        cost: i64,
    ) -> (SpendAnswer<R>, Option<usize>) {
        let fingerprint = entry
            .key
            .as_ref()
            .map_or("", |binding| binding.fingerprint.as_str());
        let answer = answer_spend(bound, fingerprint, &self.spendable(), cost);
        let row = match &answer {
            SpendAnswer::Fresh(SpendDecision::Charge(burns)) => Some(self.burn(entry, burns)),
            _ => None,
        };
        (answer, row)
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
        match super::spend::decide_spend(&self.spendable(), -credits) {
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
    pub fn reverse(&mut self, original: &Reversed, mut entry: Entry) -> Result<usize, DomainError> {
        let moved: Vec<MovedGrant> = original
            .moves
            .iter()
            .map(|(grant_id, moved)| {
                let live = self.state.grants.iter().find(|grant| grant.id == *grant_id);
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
            let head = &mut self.state.head;
            head.plan = plan;
            head.pending_plan = None;
            head.enterprise_allocation = is_enterprise.then_some(allocation);
        } else {
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

    /// Alerts once when the balance is below the threshold, and re-arms at
    /// or above it.
    pub fn check_low_balance(&mut self, now: DateTime<Utc>) {
        let balance = self.balance();
        let head = &mut self.state.head;
        match low_balance(head.threshold, head.alerted_at.is_some(), balance.total) {
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
        let head = self.state.head;
        Change {
            wallet_id: head.id,
            workspace_id: head.workspace_id.clone(),
            sequence_read: self.original.head.last_sequence,
            rows: self.rows,
            new_grants,
            deltas,
            expiries: self.closes.len() as u64,
            closes: self.closes,
            alerts: self.alerts,
            head: (head != self.original.head).then_some(head),
            happened: self.happened,
            renewals: self.renewals,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use chrono::TimeZone;

    use super::*;
    use crate::domain::ceiling::BALANCE_MAX;

    fn at(month: u32, day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, month, day, 0, 0, 0).single().unwrap()
    }

    fn grant(id: i64, source: GrantSource, remaining: i64, expires_at: Option<DateTime<Utc>>) -> Grant {
        Grant {
            id,
            source,
            granted: remaining,
            remaining,
            expires_at,
            period_start_at: None,
            purchase: None,
        }
    }

    /// A PRO wallet in its January period: 100 allocation credits left of
    /// 1,000 (grant 1), a bonus of 5 expiring mid-January (grant 2), a
    /// pack of 50 (grant 3).
    fn pro_wallet() -> WalletState {
        let mut allocation = grant(1, GrantSource::Allocation, 100, Some(at(2, 1)));
        allocation.granted = 1000;
        allocation.period_start_at = Some(at(1, 1));
        WalletState {
            head: Head {
                id: 7,
                workspace_id: "ws".to_owned(),
                balance: 155,
                last_sequence: 9,
                plan: PlanCode::Pro,
                pending_plan: Some(PlanCode::Starter),
                trial_ends_at: None,
                anchor: Some(at(1, 1)),
                period_start: Some(at(1, 1)),
                period_end: Some(at(2, 1)),
                enterprise_allocation: None,
                threshold: Some(100),
                alerted_at: None,
            },
            grants: vec![
                allocation,
                grant(2, GrantSource::Adjustment, 5, Some(at(1, 15))),
                grant(3, GrantSource::Purchase, 50, None),
            ],
        }
    }

    fn spend(key: &str) -> Entry {
        Entry {
            kind: LedgerKind::Spend,
            action: Some(Action::Triage),
            reference: None,
            actor: "svc".to_owned(),
            key: Some(KeyBinding {
                key: key.to_owned(),
                fingerprint: format!("TRIAGE:{key}"),
            }),
            reverses: None,
        }
    }

    /// Settling then spending is one change: the expiries and the renewal
    /// (a pending downgrade applied) come first, the spend burns the new
    /// allocation, and the deltas, new grant, closes and head say exactly
    /// that.
    #[test]
    fn a_renewal_and_a_spend_are_one_change_in_order() {
        let mut wallet = Wallet::new(pro_wallet());
        wallet.settle(
            |plan| if plan == PlanCode::Starter { 300 } else { 1000 },
            at(2, 3),
        );
        let (answer, row) = wallet.spend::<()>(None, spend("k1"), 1);
        assert!(matches!(answer, SpendAnswer::Fresh(SpendDecision::Charge(_))));
        assert_eq!(row, Some(3));
        let change = wallet.finish(at(2, 3));

        let kinds: Vec<(LedgerKind, i64, i64)> = change
            .rows
            .iter()
            .map(|row| (row.entry.kind, row.amount, row.sequence))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (LedgerKind::Expire, -100, 10),
                (LedgerKind::Expire, -5, 11),
                (LedgerKind::Grant, 300, 12),
                (LedgerKind::Spend, -1, 13),
            ]
        );
        assert_eq!(change.closes, vec![1, 2]);
        assert_eq!(change.expiries, 2);
        assert_eq!(change.renewals, 1);
        let [new] = change.new_grants.as_slice() else {
            panic!("one new grant: {:?}", change.new_grants)
        };
        assert!(new.is_new());
        assert_eq!((new.granted, new.remaining), (300, 299), "inserted as it ends");
        assert_eq!(
            change.rows[3].moves,
            vec![(new.id, -1)],
            "the spend burns the new allocation"
        );
        assert!(
            change.deltas.is_empty(),
            "the pack was not touched: {:?}",
            change.deltas
        );
        let head = change.head.expect("the head moved");
        assert_eq!((head.balance, head.last_sequence), (349, 13));
        assert_eq!((head.plan, head.pending_plan), (PlanCode::Starter, None));
        assert_eq!(head.period_end, Some(at(3, 1)));
        assert_eq!(change.sequence_read, 9);
        assert_eq!(change.rows[3].balance.split.purchased, 50);
        assert_eq!(change.rows[3].balance.split.allocation, 299);
    }

    /// A spend on a settled wallet moves stored grants only: one delta per
    /// grant, summed over the spends, and the alert when the balance first
    /// falls below the threshold, after the row that crossed.
    #[test]
    fn spends_become_deltas_and_one_alert() {
        let mut state = pro_wallet();
        state.grants.remove(1);
        state.head.balance = 150;
        let mut wallet = Wallet::new(state);
        for key in ["a", "b"] {
            let (_, row) = wallet.spend::<()>(None, spend(key), 30);
            assert!(row.is_some());
            wallet.check_low_balance(at(1, 20));
        }
        let change = wallet.finish(at(1, 20));
        assert_eq!(
            change.deltas,
            vec![GrantDelta {
                id: 1,
                remaining: -60,
                granted: 0
            },]
        );
        assert_eq!(change.alerts.len(), 1, "{:?}", change.alerts);
        assert_eq!(
            change.alerts[0].sequence, 11,
            "after the second spend, which crossed 100"
        );
        assert_eq!(
            change.happened,
            vec![Happened::Row(0), Happened::Row(1), Happened::Alert(0)]
        );
        assert!(change.new_grants.is_empty() && change.closes.is_empty());
    }

    /// An upgrade raises the stored allocation grant: a granted delta
    /// beside the remaining one, no new grant.
    #[test]
    fn an_upgrade_raises_the_stored_allocation() {
        let mut wallet = Wallet::new(pro_wallet());
        wallet
            .change_plan(PlanCode::Business, 3000, "admin", at(1, 10))
            .unwrap();
        let change = wallet.finish(at(1, 10));
        assert_eq!(
            change.deltas,
            vec![GrantDelta {
                id: 1,
                remaining: 2000,
                granted: 2000
            }]
        );
        assert!(change.new_grants.is_empty());
        assert_eq!(change.head.unwrap().plan, PlanCode::Business);
    }

    /// A refused operation changes nothing: past the ceiling, or a
    /// negative adjustment larger than the balance.
    #[test]
    fn refusals_leave_no_change() {
        let mut wallet = Wallet::new(pro_wallet());
        let pack = Purchase {
            pack: "LARGE".to_owned(),
            price_cents: 1,
            currency: "USD".to_owned(),
        };
        let too_many = BALANCE_MAX - 155 + 1;
        assert!(
            wallet
                .top_up(too_many, pack, Entry::by(LedgerKind::TopUp, "a", "p".to_owned()))
                .is_err()
        );
        assert!(
            wallet
                .adjust(
                    -156,
                    None,
                    Entry::by(LedgerKind::Adjustment, "op", "r".to_owned()),
                    at(1, 10)
                )
                .is_err()
        );
        wallet.set_threshold(Some(100));
        assert!(wallet.finish(at(1, 10)).is_empty());
    }

    /// A spend reversed after its grant expired gives its credits to a new
    /// never-expiring bonus grant; the live one gets its own back.
    #[test]
    fn a_reversal_restores_live_grants_and_replaces_closed_ones() {
        let mut wallet = Wallet::new(pro_wallet());
        let original = Reversed {
            id: 40,
            kind: LedgerKind::Spend,
            action: Some(Action::Triage),
            moves: vec![(99, -2), (3, -1)],
            is_reversed: false,
        };
        let row = wallet
            .reverse(
                &original,
                Entry::by(LedgerKind::Reversal, "op", "mistake".to_owned()),
            )
            .unwrap();
        let change = wallet.finish(at(1, 10));
        let reversal = &change.rows[row];
        assert_eq!(reversal.amount, 3);
        assert_eq!(reversal.entry.reverses, Some(40));
        assert_eq!(reversal.entry.action, Some(Action::Triage));
        assert_eq!(
            change.deltas,
            vec![GrantDelta {
                id: 3,
                remaining: 1,
                granted: 0
            }]
        );
        let [new] = change.new_grants.as_slice() else {
            panic!("one new grant")
        };
        assert_eq!(
            (new.source, new.remaining, new.expires_at),
            (GrantSource::Adjustment, 2, None)
        );
    }
}
