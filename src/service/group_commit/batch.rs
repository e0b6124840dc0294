//! One batch of spends: read its wallets under lock, decide each spend in
//! arrival order by the single-spend rules, write everything in one
//! transaction (`docs/design/group-commit.md`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{credit_grant, ledger_entry, low_balance_alert, wallet};
use sea_orm::Set;

use super::SpendJob;
use crate::auth::WalletScope;
use crate::domain::catalogue::LedgerKind;
use crate::domain::settlement::{is_grant_due, renewal_due};
use crate::domain::spend::{SpendAnswer, SpendDecision, SpendOutcome, answer_spend, spend_fingerprint};
use crate::error::{AppError, AppResult, db_error};
use crate::events::BalanceEvent;
use crate::service::period::period_state;
use crate::service::spend::{conflict, suggestion};
use crate::service::{
    BalanceView, Ledger, SpendRequest, SpendResult, TransactionView, check_heads, low_balance_step, spendable,
};
use crate::store;
use crate::store::batch::{NewRow, RowMove, SpendWrites};

impl Ledger {
    /// Decides and writes a batch in one transaction. An answer is `None`
    /// for a spend left to the single-spend path.
    pub(super) async fn charge_batch(
        &self,
        jobs: &[SpendJob],
        now: DateTime<Utc>,
    ) -> AppResult<(Vec<Option<AppResult<SpendResult>>>, Vec<BalanceEvent>)> {
        let started = std::time::Instant::now();
        let txn = store::begin_write(&self.db).await.map_err(db_error)?;
        let keys: Vec<(String, String)> = jobs
            .iter()
            .map(|job| {
                (
                    job.scope.workspace_id().as_str().to_owned(),
                    job.request.idempotency_key.as_str().to_owned(),
                )
            })
            .collect();
        let reads = store::batch::read_spends(&txn, &keys).await.map_err(db_error)?;
        let mut grants: HashMap<i64, Vec<credit_grant::Model>> = HashMap::new();
        for grant in reads.grants {
            grants.entry(grant.wallet_id).or_default().push(grant);
        }
        let costs: HashMap<String, i64> = reads
            .costs
            .into_iter()
            .map(|cost| (cost.action, cost.credits))
            .collect();
        let mut states: HashMap<String, Charging> = HashMap::new();
        for wallet in reads.wallets {
            let grants = grants.remove(&wallet.id).unwrap_or_default();
            let due = renewal_due(&period_state(&wallet)?, now).is_some()
                || grants.iter().any(|grant| is_grant_due(grant.expires_at, now));
            states.insert(wallet.workspace_id.clone(), Charging::new(wallet, grants, due));
        }
        let workspaces: HashMap<i64, String> = states
            .values()
            .map(|state| (state.wallet.id, state.wallet.workspace_id.clone()))
            .collect();
        let mut stored: HashMap<i64, ledger_entry::Model> = HashMap::new();
        for entry in reads.bound {
            let state = workspaces
                .get(&entry.wallet_id)
                .and_then(|workspace_id| states.get_mut(workspace_id));
            if let (Some(state), Some(key)) = (state, entry.idempotency_key.clone()) {
                let fingerprint = entry.idempotency_fingerprint.clone().unwrap_or_default();
                state.keys.insert(key, (fingerprint, Bound::Stored(entry.id)));
                stored.insert(entry.id, entry);
            }
        }

        let read = started.elapsed();
        let mut batch = Batch::default();
        let mut decided = Vec::with_capacity(jobs.len());
        for job in jobs {
            let decision = match states.get_mut(job.scope.workspace_id().as_str()) {
                None => Decided::Refused(AppError::NotFound("workspace")),
                Some(state) if state.due => Decided::Deferred,
                Some(state) => {
                    let cost = *costs.get(job.request.action.as_str()).ok_or_else(|| {
                        AppError::Internal(anyhow::anyhow!("no cost for {}", job.request.action))
                    })?;
                    let decided = state.decide(&job.scope, &job.request, cost, &mut batch)?;
                    state.check_low_balance(now, &mut batch);
                    decided
                }
            };
            decided.push(decision);
        }

        let decided_at = started.elapsed();
        let written = batch.write(&txn, &self.notify_channel, states, now).await?;
        let written_at = started.elapsed();
        txn.commit().await.map_err(db_error)?;
        tracing::debug!(
            spends = jobs.len(),
            read_us = read.as_micros() as u64,
            decided_us = decided_at.as_micros() as u64,
            written_us = written_at.as_micros() as u64,
            committed_us = started.elapsed().as_micros() as u64,
            "spend batch"
        );

        let needs_packs = decided.iter().any(|decision| {
            matches!(
                decision,
                Decided::Answer(Pending {
                    outcome: SpendOutcome::InsufficientCredits,
                    ..
                })
            )
        });
        let packs = if needs_packs {
            Some(self.packs().await?)
        } else {
            None
        };
        let mut answers = Vec::with_capacity(decided.len());
        for decision in decided {
            answers.push(match decision {
                Decided::Deferred => None,
                Decided::Refused(error) => Some(Err(error)),
                Decided::Answer(pending) => {
                    let transaction = match pending.bound {
                        Some(Bound::Stored(id)) => stored.get(&id).cloned(),
                        Some(Bound::New(row)) => written.rows.get(row).cloned(),
                        None => None,
                    };
                    let suggested_top_up = match (&packs, pending.outcome) {
                        (Some(packs), SpendOutcome::InsufficientCredits) => {
                            suggestion(packs, pending.balance.total, pending.cost)
                        }
                        _ => None,
                    };
                    Some(Ok(SpendResult {
                        outcome: pending.outcome,
                        transaction: transaction.map(TransactionView::from_model).transpose()?,
                        balance: pending.balance,
                        cost: pending.cost,
                        next_reset_at: pending.next_reset_at,
                        suggested_top_up,
                    }))
                }
            });
        }
        Ok((answers, written.events))
    }
}

/// Where a key's row is: already stored, or written by this batch.
#[derive(Debug, Clone, Copy)]
enum Bound {
    Stored(i64),
    New(usize),
}

/// A spend's answer before the batch commits.
struct Pending {
    outcome: SpendOutcome,
    bound: Option<Bound>,
    balance: BalanceView,
    cost: i64,
    next_reset_at: Option<DateTime<Utc>>,
}

enum Decided {
    Answer(Pending),
    Refused(AppError),
    Deferred,
}

/// One wallet of the batch, locked, kept in step with its decisions.
struct Charging {
    wallet: wallet::Model,
    original: wallet::Model,
    grants: Vec<credit_grant::Model>,
    due: bool,
    /// Keys bound in the database or earlier in the batch: fingerprint and row.
    keys: HashMap<String, (String, Bound)>,
}

/// What the batch will write, in decision order.
#[derive(Default)]
struct Batch {
    rows: Vec<NewRow>,
    /// Per row: its grant moves (grant id, signed credits).
    moves: Vec<Vec<(i64, i64)>>,
    alerts: Vec<low_balance_alert::ActiveModel>,
    /// Ledger rows and alerts, in the order their events are published.
    events: Vec<EventDraft>,
}

enum EventDraft {
    Row(usize),
    LowBalance {
        workspace_id: String,
        sequence: i64,
        balance: BalanceView,
    },
}

/// What the batch wrote: the stored rows (by index) and their events.
struct Written {
    rows: Vec<ledger_entry::Model>,
    events: Vec<BalanceEvent>,
}

impl Charging {
    fn new(wallet: wallet::Model, grants: Vec<credit_grant::Model>, due: bool) -> Self {
        Self {
            original: wallet.clone(),
            wallet,
            grants,
            due,
            keys: HashMap::new(),
        }
    }

    fn balance(&self) -> BalanceView {
        BalanceView::from_grants(&self.grants)
    }

    fn pending(&self, outcome: SpendOutcome, bound: Option<Bound>, cost: i64) -> Decided {
        Decided::Answer(Pending {
            outcome,
            bound,
            balance: self.balance(),
            cost,
            next_reset_at: self.wallet.period_end_at,
        })
    }

    /// One spend, by the rules of `spend.rs`, against the state so far.
    fn decide(
        &mut self,
        scope: &WalletScope,
        request: &SpendRequest,
        cost: i64,
        batch: &mut Batch,
    ) -> AppResult<Decided> {
        let fingerprint = spend_fingerprint(request.action.as_str(), request.reference.as_deref());
        let key = request.idempotency_key.as_str();
        let bound = self
            .keys
            .get(key)
            .map(|(bound_fingerprint, bound)| (bound_fingerprint.as_str(), *bound));
        let burns = match answer_spend(bound, &fingerprint, &spendable(&self.grants)?, cost) {
            SpendAnswer::Conflict => return Ok(Decided::Refused(conflict())),
            SpendAnswer::Duplicate(bound) => {
                return Ok(self.pending(SpendOutcome::Duplicate, Some(bound), cost));
            }
            SpendAnswer::Fresh(SpendDecision::Insufficient { .. }) => {
                return Ok(self.pending(SpendOutcome::InsufficientCredits, None, cost));
            }
            SpendAnswer::Fresh(SpendDecision::Charge(burns)) => burns,
        };
        for burn in &burns {
            if let Some(grant) = self.grants.iter_mut().find(|grant| grant.id == burn.grant_id) {
                grant.remaining_credits -= burn.credits;
            }
        }
        self.wallet.balance_credits -= cost;
        self.wallet.last_sequence += 1;
        let balance = self.balance();
        let row = batch.rows.len();
        batch.rows.push(NewRow {
            wallet_id: self.wallet.id,
            sequence: self.wallet.last_sequence,
            kind: LedgerKind::Spend.as_str(),
            amount_credits: -cost,
            balance_after_credits: self.wallet.balance_credits,
            allocation_after_credits: balance.split.allocation,
            purchased_after_credits: balance.split.purchased,
            bonus_after_credits: balance.split.bonus,
            reference: request.reference.clone(),
            action: Some(request.action.as_str()),
            actor: scope.actor().to_owned(),
            idempotency_key: Some(key.to_owned()),
            idempotency_fingerprint: Some(fingerprint.clone()),
        });
        batch
            .moves
            .push(burns.iter().map(|burn| (burn.grant_id, -burn.credits)).collect());
        batch.events.push(EventDraft::Row(row));
        self.keys.insert(key.to_owned(), (fingerprint, Bound::New(row)));
        Ok(self.pending(SpendOutcome::Charged, Some(Bound::New(row)), cost))
    }

    /// Alerts once when the balance is below the threshold, re-arms at or
    /// above it: as a single spend's commit does.
    fn check_low_balance(&mut self, now: DateTime<Utc>, batch: &mut Batch) {
        let balance = self.balance();
        if let Some(threshold) = low_balance_step(&mut self.wallet, balance.total, now) {
            batch.alerts.push(low_balance_alert::ActiveModel {
                wallet_id: Set(self.wallet.id),
                threshold_credits: Set(threshold),
                balance_credits: Set(balance.total),
                ledger_sequence: Set(self.wallet.last_sequence),
                created_at: Set(now),
                ..Default::default()
            });
            batch.events.push(EventDraft::LowBalance {
                workspace_id: self.wallet.workspace_id.clone(),
                sequence: self.wallet.last_sequence,
                balance,
            });
        }
    }
}

impl Batch {
    /// Writes the rows (each with its key), their grant moves, the grants, the alerts
    /// and the changed wallet heads (guarded), and notifies other instances.
    async fn write(
        self,
        txn: &sea_orm::DatabaseTransaction,
        notify_channel: &str,
        states: HashMap<String, Charging>,
        now: DateTime<Utc>,
    ) -> AppResult<Written> {
        let wanted: Vec<(i64, i64)> = self
            .rows
            .iter()
            .map(|row| (row.wallet_id, row.sequence))
            .collect();
        let mut writes = SpendWrites::default();
        let mut deltas: HashMap<i64, i64> = HashMap::new();
        for (row, row_moves) in self.rows.iter().zip(&self.moves) {
            for (grant_id, credits) in row_moves {
                writes.moves.push(RowMove {
                    wallet_id: row.wallet_id,
                    sequence: row.sequence,
                    credit_grant_id: *grant_id,
                    amount_credits: *credits,
                });
                *deltas.entry(*grant_id).or_default() += credits;
            }
        }
        writes.deltas = deltas.into_iter().collect();
        writes.deltas.sort_unstable();
        let mut workspaces: HashMap<i64, String> = HashMap::new();
        for state in states.into_values() {
            workspaces.insert(state.wallet.id, state.wallet.workspace_id.clone());
            if state.wallet.last_sequence != state.original.last_sequence {
                writes.notifications.push(store::notify::payload(
                    state.wallet.last_sequence,
                    &state.wallet.workspace_id,
                ));
            }
            if state.wallet != state.original {
                writes.heads.push((state.wallet, state.original.last_sequence));
            }
        }
        writes.heads.sort_unstable_by_key(|(wallet, _)| wallet.id);
        writes.rows = self.rows;
        let heads = writes.heads.clone();
        let mut stored: HashMap<(i64, i64), ledger_entry::Model> =
            store::batch::write_spends(txn, notify_channel, writes, now)
                .await
                .map_err(db_error)?
                .into_iter()
                .map(|entry| ((entry.wallet_id, entry.sequence), entry))
                .collect();
        let rows: Vec<ledger_entry::Model> = wanted
            .iter()
            .map(|at| {
                stored.remove(at).ok_or_else(|| {
                    AppError::Internal(anyhow::anyhow!("a batch row was not returned by its insert"))
                })
            })
            .collect::<AppResult<_>>()?;
        store::batch::insert_alerts(txn, self.alerts)
            .await
            .map_err(db_error)?;
        check_heads(txn, &heads).await?;
        let events = self
            .events
            .into_iter()
            .map(|draft| match draft {
                EventDraft::Row(index) => {
                    let row = &rows[index];
                    let workspace_id = workspaces.get(&row.wallet_id).map_or("", String::as_str);
                    crate::service::views::row_event(workspace_id, row)
                }
                EventDraft::LowBalance {
                    workspace_id,
                    sequence,
                    balance,
                } => Ok(BalanceEvent::low_balance(workspace_id, sequence, balance, now)),
            })
            .collect::<AppResult<_>>()?;
        Ok(Written { rows, events })
    }
}
