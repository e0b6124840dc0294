//! A batch of spends, the one spend path: read its wallets under lock,
//! settle each, decide each spend in arrival order by the wallet's rules
//! (`domain::wallet`), write every wallet's change in one transaction
//! through the store's one applier (`docs/design/group-commit.md`). A
//! spend alone is a batch of one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{CaptureAsk, SpendCall, budget_pairs, conflict, spend_entry, suggestion};
use crate::error::{AppError, AppResult};
use crate::service::{BalanceView, Ledger, SpendResult, TransactionView, plans_if_renewing, settle};
use crate::store;
use domain::budget::BudgetUsage;
use domain::catalogue::{Action, LedgerKind};
use domain::spend::{SpendAnswer, SpendDecision, SpendOutcome};
use domain::wallet::{Change, HoldRefusal, Taking, Wallet};

impl Ledger {
    /// Decides and writes a batch in one transaction; one answer per spend.
    /// `queued_at`: when its first spend was queued (for the debug log).
    pub(in crate::service) async fn charge_batch(
        &self,
        jobs: &[SpendCall],
        queued_at: std::time::Instant,
        now: DateTime<Utc>,
    ) -> AppResult<Vec<AppResult<SpendResult>>> {
        let started = std::time::Instant::now();
        let txn = store::begin_write(&self.db).await?;
        let keys: Vec<(String, String, LedgerKind)> = jobs
            .iter()
            .filter_map(|job| {
                Some((
                    job.scope.workspace_id().as_str().to_owned(),
                    job.request.idempotency_key.as_str().to_owned(),
                    job.kind()?,
                ))
            })
            .collect();
        let subjects = budget_pairs(
            jobs.iter()
                .map(|job| (job.scope.workspace_id().as_str(), job.request.agent_id.as_deref())),
        );
        let workspaces: Vec<&str> = jobs.iter().map(|job| job.scope.workspace_id().as_str()).collect();
        let reads = store::batch::read_spends(&txn, &workspaces, &keys, &subjects).await?;
        let plans = plans_if_renewing(&txn, reads.states.iter().map(|state| &state.head), now).await?;
        let costs: HashMap<Action, i64> = reads
            .costs
            .iter()
            .map(|cost| (cost.action, cost.credits))
            .collect();
        let mut wallets: Vec<Charging> = Vec::with_capacity(reads.states.len());
        let mut by_workspace: HashMap<String, usize> = HashMap::new();
        let mut by_id: HashMap<i64, usize> = HashMap::new();
        for mut state in reads.states {
            // A capture's counters were read with the batch (its request
            // names the hold's agent); those that settling's expiries give
            // back to may not have been.
            crate::service::load_hold_budgets(&txn, &mut state, [], now, true).await?;
            by_workspace.insert(state.head.workspace_id.clone(), wallets.len());
            by_id.insert(state.head.id, wallets.len());
            let mut wallet = crate::service::open_wallet(state);
            settle(&mut wallet, &plans, now);
            wallets.push(Charging {
                wallet,
                keys: HashMap::new(),
            });
        }
        for bound in reads.bound {
            if let Some(&index) = by_id.get(&bound.wallet_id) {
                wallets[index].keys.insert(
                    (bound.transaction.kind, bound.key),
                    (bound.fingerprint, Bound::Stored(bound.transaction)),
                );
            }
        }

        let read = started.elapsed();
        let mut decided = Vec::with_capacity(jobs.len());
        for job in jobs {
            let Some(&index) = by_workspace.get(job.scope.workspace_id().as_str()) else {
                decided.push(Decided::Refused(AppError::NotFound("workspace")));
                continue;
            };
            if let Some(ask) = job.capture {
                let charging = &mut wallets[index];
                decided.push(charging.capture(index, job, ask, now));
                continue;
            }
            let action_cost = *costs
                .get(&job.request.action)
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no cost for {}", job.request.action)))?;
            let cost = job.hold.and_then(|hold| hold.credits).unwrap_or(action_cost);
            let charging = &mut wallets[index];
            decided.push(charging.decide(index, job, cost, now));
            charging.wallet.check_low_balance(now);
            charging.wallet.check_auto_top_up(now);
        }
        let changes: Vec<Change> = wallets
            .into_iter()
            .map(|charging| charging.wallet.finish(now))
            .collect();

        let decided_at = started.elapsed();
        let ids = self.write(txn, &changes, now).await?;
        tracing::debug!(
            spends = jobs.len(),
            queued_us = started.saturating_duration_since(queued_at).as_micros() as u64,
            read_us = read.as_micros() as u64,
            decided_us = decided_at.as_micros() as u64,
            committed_us = started.elapsed().as_micros() as u64,
            "spend batch"
        );

        let needs_packs = decided.iter().any(|decision| {
            matches!(decision, Decided::Answer(pending) if pending.outcome == SpendOutcome::InsufficientCredits)
        });
        let packs = if needs_packs {
            Some(self.packs().await?)
        } else {
            None
        };
        decided
            .into_iter()
            .map(|decision| {
                let pending = match decision {
                    Decided::Refused(error) => return Ok(Err(error)),
                    Decided::Answer(pending) => *pending,
                };
                let transaction = match pending.bound {
                    Some(Bound::Stored(transaction)) => Some(transaction),
                    Some(Bound::New { wallet, row }) => {
                        let id = ids.get(wallet).and_then(|ids| ids.get(row)).copied();
                        let appended = changes.get(wallet).and_then(|change| change.rows.get(row));
                        let (Some(id), Some(appended)) = (id, appended) else {
                            return Err(AppError::Internal(anyhow::anyhow!("a batch row has no id")));
                        };
                        Some(appended.view(id, now))
                    }
                    None => None,
                };
                let suggested_top_up = match (&packs, pending.outcome) {
                    (Some(packs), SpendOutcome::InsufficientCredits) => {
                        suggestion(packs, pending.balance.available(), pending.cost)
                    }
                    _ => None,
                };
                let hold = pending.hold.map(|hold| match (&transaction, hold.is_new()) {
                    (Some(row), true) => domain::hold::Hold { id: row.id, ..hold },
                    _ => hold,
                });
                Ok(Ok(SpendResult {
                    outcome: pending.outcome,
                    transaction,
                    balance: pending.balance,
                    cost: pending.cost,
                    next_reset_at: pending.next_reset_at,
                    suggested_top_up,
                    budget: pending.budget,
                    budget_warnings: pending.warnings,
                    hold,
                }))
            })
            .collect()
    }
}

/// Where a key's row is: already stored, or appended by this batch (row
/// `row` of wallet `wallet`'s change).
#[derive(Debug, Clone)]
enum Bound {
    Stored(TransactionView),
    New { wallet: usize, row: usize },
}

/// A spend's answer before the batch commits.
struct Pending {
    outcome: SpendOutcome,
    bound: Option<Bound>,
    balance: BalanceView,
    cost: i64,
    next_reset_at: Option<DateTime<Utc>>,
    budget: Option<BudgetUsage>,
    warnings: Vec<BudgetUsage>,
    hold: Option<domain::hold::Hold>,
}

enum Decided {
    Answer(Box<Pending>),
    Refused(AppError),
}

/// One wallet of the batch, locked and settled, kept in step with its
/// decisions.
struct Charging {
    wallet: Wallet,
    /// Keys bound in the database or earlier in the batch, by the kind of
    /// row they bind (a spend's and a hold's keys are apart): fingerprint
    /// and row.
    keys: HashMap<(LedgerKind, String), (String, Bound)>,
}

impl Charging {
    fn pending(&self, outcome: SpendOutcome, bound: Option<Bound>, cost: i64) -> Pending {
        Pending {
            outcome,
            bound,
            balance: self.wallet.balance(),
            cost,
            next_reset_at: self.wallet.head().period_end,
            budget: None,
            warnings: Vec::new(),
            hold: None,
        }
    }

    /// A hold's capture, by the wallet's rules (this is wallet `index`): a
    /// hold no longer live is HOLD_NOT_ACTIVE, which the caller turns into
    /// a replay or an error from the stored hold.
    fn capture(&mut self, index: usize, job: &SpendCall, ask: CaptureAsk, now: DateTime<Utc>) -> Decided {
        match self
            .wallet
            .capture(ask.hold_id, ask.credits, job.scope.actor(), now)
        {
            Ok(captured) => Decided::Answer(Box::new(Pending {
                hold: Some(captured.hold),
                ..self.pending(
                    SpendOutcome::Charged,
                    Some(Bound::New {
                        wallet: index,
                        row: captured.row,
                    }),
                    0,
                )
            })),
            Err(HoldRefusal::Invalid(error)) => Decided::Refused(error.into()),
            Err(HoldRefusal::NotHeld) => Decided::Refused(AppError::HoldNotActive(String::new())),
        }
    }

    /// One spend, by the wallet's rules, against the state so far
    /// (this is wallet `index` of the batch).
    fn decide(&mut self, index: usize, job: &SpendCall, cost: i64, now: DateTime<Utc>) -> Decided {
        let entry = spend_entry(job, cost);
        let key = (
            job.kind().unwrap_or(LedgerKind::Spend),
            job.request.idempotency_key.as_str().to_owned(),
        );
        let fingerprint = entry
            .key
            .as_ref()
            .map(|binding| binding.fingerprint.clone())
            .unwrap_or_default();
        let bound = self
            .keys
            .get(&key)
            .map(|(bound_fingerprint, bound)| (bound_fingerprint.as_str(), bound.clone()));
        let taking = match job.hold {
            Some(hold) => Taking::Hold {
                expires_at: now + chrono::Duration::seconds(hold.ttl_seconds),
            },
            None => Taking::Charge,
        };
        let spent = self.wallet.take(bound, entry, cost, taking, now);
        let pending = match (spent.answer, spent.row) {
            (SpendAnswer::Conflict, _) => return Decided::Refused(conflict()),
            (SpendAnswer::Duplicate(bound), _) => self.pending(SpendOutcome::Duplicate, Some(bound), cost),
            (SpendAnswer::OverBudget(budget), _) => Pending {
                budget: Some(budget),
                ..self.pending(SpendOutcome::BudgetExceeded, None, cost)
            },
            (SpendAnswer::Fresh(SpendDecision::Charge(_)), Some(row)) => {
                let bound = Bound::New { wallet: index, row };
                self.keys.insert(key, (fingerprint, bound.clone()));
                Pending {
                    // A hold just placed (its id is its row's, once stored).
                    hold: job.hold.and(self.wallet.holds().last().cloned()),
                    ..self.pending(SpendOutcome::Charged, Some(bound), cost)
                }
            }
            (SpendAnswer::Fresh(_), _) => self.pending(SpendOutcome::InsufficientCredits, None, cost),
        };
        Decided::Answer(Box::new(Pending {
            warnings: spent.warnings,
            ..pending
        }))
    }
}
