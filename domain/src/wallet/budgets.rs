//! Budgets as the wallet counts them: a spend checks every budget that
//! applies before the balance, and counts in each once charged; a reversal
//! gives back to the windows still current (`docs/design/budgets.md`).

use chrono::{DateTime, Utc};

use super::{Entry, Happened, Reversed, Wallet};
use crate::budget::{
    Budget, BudgetMode, BudgetUsage, BudgetWrite, Counter, Window, applicable, usage, used_in, window_of,
};
use crate::catalogue::{Action, LedgerKind};
use crate::spend::{SpendAnswer, SpendDecision, answer_spend};
use crate::views::BalanceView;

/// A budget window exhausted for the first time (used reached the limit,
/// or a spend was refused by it): its event is sent once per window (and
/// subject, or, for a refusal of an agent not yet counted, once per window
/// of the budget: `subject` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    /// The budget.
    pub budget_id: i64,
    /// The budget's name.
    pub budget: String,
    /// The window's start.
    pub window_start: DateTime<Utc>,
    /// Whose counter was exhausted; `None`: an agent without one was
    /// refused (no counter is written for a refusal).
    pub subject: Option<String>,
    /// The agent counted, for agent budgets.
    pub agent_id: Option<String>,
    /// The ledger sequence it follows.
    pub sequence: i64,
    /// The balance then.
    pub balance: BalanceView,
}

/// A spend's answer, the row it appended when charged, and the soft
/// budgets it took over their limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spent<R> {
    /// The answer, by the precedence of `domain::spend`.
    pub answer: SpendAnswer<R>,
    /// The index of the SPEND row appended, when charged.
    pub row: Option<usize>,
    /// Soft budgets now over their limit.
    pub warnings: Vec<BudgetUsage>,
}

/// One budget counting one spend: which, for whom, in which window, and
/// what it used before.
#[derive(Clone)]
struct Counting {
    budget: usize,
    subject: String,
    /// The agent the spend is for (empty for none).
    agent: String,
    window: Window,
    used: i64,
}

impl Wallet {
    /// Loads the wallet's budgets and the counters of the subjects this
    /// change may count (part of the state read).
    /// Counters already loaded (and perhaps moved by settling: a hold's
    /// expiry) are kept; budgets are taken when none were loaded.
    pub fn load_budgets(&mut self, budgets: Vec<Budget>, counters: Vec<Counter>) {
        if self.state.budgets.is_empty() {
            self.original.budgets.clone_from(&budgets);
        }
        let added = self.state.merge_budgets(budgets, counters);
        self.original.counters.extend(added);
    }

    /// Notes that the budgets changed, so readers of a stale state can tell.
    pub fn budgets_changed(&mut self) {
        self.state.head.budget_version += 1;
    }

    /// Sets a budget over the wallet's `existing` ones (`budget::revise`);
    /// returns it as it is to be stored (id 0 while new).
    pub fn set_budget(
        &mut self,
        existing: &[Budget],
        input: crate::budget::BudgetInput,
        now: DateTime<Utc>,
    ) -> Result<Budget, crate::DomainError> {
        let (budget, restart) = crate::budget::revise(existing, input, now)?;
        self.budget_writes.push(BudgetWrite::Save {
            budget: budget.clone(),
            restart,
        });
        self.budgets_changed();
        Ok(budget)
    }

    /// Removes the budget named `name` among `existing`, with its counters;
    /// whether there was one.
    pub fn remove_budget(&mut self, existing: &[Budget], name: &str) -> bool {
        let Some(budget) = existing.iter().find(|budget| budget.name == name) else {
            return false;
        };
        self.budget_writes.push(BudgetWrite::Remove { id: budget.id });
        self.budgets_changed();
        true
    }

    /// A spend of `cost`: a bound key answers first, then any HARD budget
    /// the spend would take over its limit (BUDGET_EXCEEDED, even with an
    /// empty pool), then the balance by `domain::spend`. Charged, it counts
    /// in every budget that applies.
    pub fn spend<R>(
        &mut self,
        bound: Option<(&str, R)>,
        entry: Entry,
        cost: i64,
        now: DateTime<Utc>,
    ) -> Spent<R> {
        self.take(bound, entry, cost, super::Taking::Charge, now)
    }

    /// A spend's rules for a charge or a hold: the same precedence, the
    /// same budgets counted; a hold pins the credits a charge would burn
    /// (`docs/design/holds.md`).
    pub fn take<R>(
        &mut self,
        bound: Option<(&str, R)>,
        entry: Entry,
        cost: i64,
        taking: super::Taking,
        now: DateTime<Utc>,
    ) -> Spent<R> {
        let fingerprint = entry
            .key
            .as_ref()
            .map_or("", |binding| binding.fingerprint.as_str());
        let answer = answer_spend(bound, fingerprint, &self.spendable(), cost);
        let decision = match answer {
            SpendAnswer::Fresh(decision) => decision,
            answer => {
                return Spent {
                    answer,
                    row: None,
                    warnings: Vec::new(),
                };
            }
        };
        let counted = match entry.action {
            Some(action) => self.counting(entry.agent_id.as_deref(), action, now),
            None => Vec::new(),
        };
        let blocking = counted.iter().find(|counting| {
            let budget = &self.state.budgets[counting.budget];
            budget.mode == BudgetMode::Hard && counting.used + cost > budget.limit
        });
        if let Some(blocking) = blocking {
            let budget = &self.state.budgets[blocking.budget];
            let standing = usage(budget, &blocking.subject, blocking.used, blocking.window);
            let blocking = blocking.clone();
            if self.counter_index(budget.id, &blocking.subject).is_some() {
                self.set_counter(&blocking, blocking.used, true, now);
            } else {
                // A refusal writes no counter (a stream of new agents would
                // write one each); it is told once per budget window.
                let agent = (!blocking.agent.is_empty()).then(|| blocking.agent.clone());
                self.tell_exhausted(&blocking, None, agent);
            }
            return Spent {
                answer: SpendAnswer::OverBudget(standing),
                row: None,
                warnings: Vec::new(),
            };
        }
        let SpendDecision::Charge(burns) = &decision else {
            return Spent {
                answer: SpendAnswer::Fresh(decision),
                row: None,
                warnings: Vec::new(),
            };
        };
        let row = match taking {
            super::Taking::Charge => self.burn(entry, burns),
            super::Taking::Hold { expires_at } => self.place_hold(entry, burns, expires_at, now),
        };
        let mut warnings = Vec::new();
        for counting in counted {
            let used = counting.used + cost;
            self.set_counter(&counting, used, false, now);
            let budget = &self.state.budgets[counting.budget];
            if budget.mode == BudgetMode::Soft && used > budget.limit {
                warnings.push(usage(budget, &counting.subject, used, counting.window));
            }
        }
        Spent {
            answer: SpendAnswer::Fresh(decision),
            row: Some(row),
            warnings,
        }
    }

    /// Gives a reversed spend's credits back to the budgets that counted it,
    /// in windows still current.
    pub(super) fn uncount(&mut self, original: &Reversed, now: DateTime<Utc>) {
        let (LedgerKind::Spend, Some(action)) = (original.kind, original.action) else {
            return;
        };
        let credits: i64 = -original.moves.iter().map(|(_, moved)| moved).sum::<i64>();
        self.recount(
            original.agent_id.as_deref(),
            action,
            original.created_at,
            -credits,
            0,
            now,
        );
    }

    /// Moves the budgets that count `action` by `agent` now: by `counted`
    /// in each window that counted what was done at `since` (still
    /// current), by `fresh` in the others; never below zero.
    pub(super) fn recount(
        &mut self,
        agent: Option<&str>,
        action: Action,
        since: DateTime<Utc>,
        counted: i64,
        fresh: i64,
        now: DateTime<Utc>,
    ) {
        for counting in self.counting(agent, action, now) {
            let budget = &self.state.budgets[counting.budget];
            let counts_it = budget.counting_since <= since && counting.window.start <= since;
            let delta = if counts_it { counted } else { fresh };
            if delta != 0 && (delta > 0 || counting.used > 0) {
                let used = (counting.used + delta).max(0);
                self.set_counter(&counting, used, false, now);
            }
        }
    }

    /// What the HARD budgets that count `action` by `agent` now still
    /// allow (`i64::MAX` when none does).
    pub(super) fn budget_room(&self, agent: Option<&str>, action: Action, now: DateTime<Utc>) -> i64 {
        self.counting(agent, action, now)
            .iter()
            .filter(|counting| self.state.budgets[counting.budget].mode == BudgetMode::Hard)
            .map(|counting| (self.state.budgets[counting.budget].limit - counting.used).max(0))
            .min()
            .unwrap_or(i64::MAX)
    }

    /// The budgets counting a spend of `action` by `agent` now, with what
    /// each used in its current window.
    fn counting(&self, agent: Option<&str>, action: Action, now: DateTime<Utc>) -> Vec<Counting> {
        applicable(&self.state.budgets, agent, action)
            .into_iter()
            .filter_map(|budget| {
                let index = self.state.budgets.iter().position(|b| b.id == budget.id)?;
                let subject = budget.subject(agent);
                let window = window_of(budget, &self.state.head, now);
                let counter = self
                    .counter_index(budget.id, &subject)
                    .map(|index| &self.state.counters[index]);
                let used = used_in(counter, window);
                Some(Counting {
                    budget: index,
                    subject,
                    agent: agent.unwrap_or_default().to_owned(),
                    window,
                    used,
                })
            })
            .collect()
    }

    /// Where the counter of `budget_id` for `subject` is, if loaded.
    fn counter_index(&self, budget_id: i64, subject: &str) -> Option<usize> {
        self.state
            .counters
            .iter()
            .position(|counter| counter.budget_id == budget_id && counter.subject == subject)
    }

    /// Sets the counter `counting` names to `used` in its window;
    /// the first time a window is exhausted (at or over the limit, or
    /// refusing), records it for its event.
    fn set_counter(&mut self, counting: &Counting, used: i64, refused: bool, now: DateTime<Utc>) {
        let (subject, window) = (counting.subject.as_str(), counting.window);
        let budget = &self.state.budgets[counting.budget];
        let (budget_id, limit) = (budget.id, budget.limit);
        let position = self.counter_index(budget_id, subject).unwrap_or_else(|| {
            self.state.counters.push(Counter {
                budget_id,
                subject: subject.to_owned(),
                window_start: window.start,
                used: 0,
                exhausted_at: None,
            });
            self.state.counters.len() - 1
        });
        let counter = &mut self.state.counters[position];
        if counter.window_start != window.start {
            counter.window_start = window.start;
            counter.exhausted_at = None;
        }
        counter.used = used;
        if (used >= limit || refused) && counter.exhausted_at.is_none() {
            counter.exhausted_at = Some(now);
            self.tell_exhausted(
                counting,
                Some(subject.to_owned()),
                (!subject.is_empty()).then(|| subject.to_owned()),
            );
        }
    }

    /// Records a window's exhaustion for its event.
    fn tell_exhausted(&mut self, counting: &Counting, subject: Option<String>, agent_id: Option<String>) {
        let budget = &self.state.budgets[counting.budget];
        self.exhausted.push(Exhausted {
            budget_id: budget.id,
            budget: budget.name.clone(),
            window_start: counting.window.start,
            subject,
            agent_id,
            sequence: self.state.head.last_sequence,
            balance: self.state.balance(),
        });
        self.happened.push(Happened::Exhausted(self.exhausted.len() - 1));
    }

    /// The counters that moved, for the change; a change of counters alone
    /// (a refusal exhausting a window) moves the budget version.
    pub(super) fn finish_counters(&mut self) -> Vec<Counter> {
        let moved: Vec<Counter> = self
            .state
            .counters
            .iter()
            .filter(|counter| !self.original.counters.contains(counter))
            .cloned()
            .collect();
        if !moved.is_empty() && self.rows.is_empty() {
            self.budgets_changed();
        }
        moved
    }
}
