//! The scheduler's sweep, set-based: a batch of due wallets is settled in
//! one transaction. For each wallet the rules are exactly those of a single
//! settle (`period.rs`, `domain::settlement`): due grants expire (one EXPIRE
//! row each for what they held), then an ended period renews into the
//! period containing `now` (one GRANT row). The rows of the whole batch are
//! then written with a few bulk statements, the wallet heads in one guarded
//! UPDATE, and the events published after the commit.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{credit_grant, low_balance_alert, wallet};
use sea_orm::Set;

use super::period::{apply_renewal, settlement};
use super::{BalanceView, Ledger, RollOverReport, check_heads, low_balance_step};
use crate::domain::catalogue::{GrantSource, LedgerKind};
use crate::domain::settlement::renewal_reference;
use crate::error::{AppError, AppResult, db_error};
use crate::events::BalanceEvent;
use crate::store;
use crate::store::batch::{NewAllocation, NewMove, NewRow};

/// Wallets settled per transaction by the sweep.
pub const SWEEP_BATCH_SIZE: u64 = 1000;
/// Batches in flight at once on PostgreSQL (each holds one connection).
pub const SWEEP_WORKERS: usize = 3;

/// A row of the batch, before it has an id.
struct PendingRow {
    sequence: i64,
    kind: LedgerKind,
    amount: i64,
    balance: BalanceView,
    reference: String,
    /// `None`: the wallet's new allocation grant.
    grant_id: Option<i64>,
}

/// One wallet of the batch, settled in memory.
struct Settled {
    /// Whether its period renewed.
    is_renewed: bool,
    /// Whether anything about the wallet changed.
    changed: bool,
    wallet: wallet::Model,
    sequence_read: i64,
    rows: Vec<PendingRow>,
    new_grant: Option<NewAllocation>,
    closes: Vec<i64>,
    alert: Option<(i64, BalanceView)>,
}

fn settle_in_memory(
    mut wallet: wallet::Model,
    mut grants: Vec<credit_grant::Model>,
    plans: &[entity::plan::Model],
    now: DateTime<Utc>,
) -> AppResult<Settled> {
    let original = wallet.clone();
    let sequence_read = wallet.last_sequence;
    let mut rows = Vec::new();
    let mut closes = Vec::new();
    let settlement = settlement(&wallet, &grants, plans, now)?;
    for expiry in settlement.expiries {
        grants.retain(|grant| grant.id != expiry.grant_id);
        closes.push(expiry.grant_id);
        if expiry.credits > 0 {
            wallet.last_sequence += 1;
            wallet.balance_credits -= expiry.credits;
            rows.push(PendingRow {
                sequence: wallet.last_sequence,
                kind: LedgerKind::Expire,
                amount: -expiry.credits,
                balance: BalanceView::from_grants(&grants),
                reference: expiry.reference,
                grant_id: Some(expiry.grant_id),
            });
        }
    }
    let mut new_grant = None;
    let is_renewed = settlement.renewal.is_some();
    if let Some((renewal, credits)) = settlement.renewal {
        apply_renewal(&mut wallet, &renewal);
        if credits > 0 {
            let grant = NewAllocation {
                wallet_id: wallet.id,
                credits,
                period_start_at: renewal.period.start,
                expires_at: renewal.period.end,
            };
            new_grant = Some(grant);
            wallet.last_sequence += 1;
            wallet.balance_credits += credits;
            let mut balance = BalanceView::from_grants(&grants);
            balance.split.add(GrantSource::Allocation, credits);
            balance.total = balance.split.total();
            rows.push(PendingRow {
                sequence: wallet.last_sequence,
                kind: LedgerKind::Grant,
                amount: credits,
                balance,
                reference: renewal_reference(&renewal),
                grant_id: None,
            });
        }
    }
    let balance_now = rows
        .last()
        .map_or_else(|| BalanceView::from_grants(&grants), |row| row.balance);
    let alert =
        low_balance_step(&mut wallet, balance_now.total, now).map(|threshold| (threshold, balance_now));
    Ok(Settled {
        is_renewed,
        changed: wallet != original || !closes.is_empty(),
        wallet,
        sequence_read,
        rows,
        new_grant,
        closes,
        alert,
    })
}

impl Ledger {
    /// Settles every wallet that is due at `now` (a period ended, or a grant
    /// expired), [`SWEEP_BATCH_SIZE`] wallets per transaction. Safe to run on
    /// several instances at once: the batch is locked (PostgreSQL skips
    /// wallets another sweep or request holds), every wallet head is written
    /// back guarded on the sequence read, and the allocation's unique key
    /// refuses a second grant for a period.
    pub async fn roll_over_periods(&self, now: DateTime<Utc>) -> AppResult<RollOverReport> {
        let plans = store::catalogue::plans(&self.db).await.map_err(db_error)?;
        // PostgreSQL: workers lock disjoint batches (SKIP LOCKED) and use the
        // server's cores in parallel. SQLite has one writer: one worker.
        let workers = if store::is_sqlite(&self.db) {
            1
        } else {
            SWEEP_WORKERS
        };
        let reports =
            futures_util::future::join_all((0..workers).map(|_| self.sweep_worker(now, &plans))).await;
        let mut report = RollOverReport::default();
        for worker in reports {
            let worker = worker?;
            report.wallets_examined += worker.wallets_examined;
            report.wallets_changed += worker.wallets_changed;
        }
        Ok(report)
    }

    async fn sweep_worker(
        &self,
        now: DateTime<Utc>,
        plans: &[entity::plan::Model],
    ) -> AppResult<RollOverReport> {
        let mut report = RollOverReport::default();
        let mut after_id = 0;
        loop {
            let txn = store::begin_write(&self.db).await.map_err(db_error)?;
            let wallets = store::batch::lock_due_wallets(&txn, now, after_id, SWEEP_BATCH_SIZE)
                .await
                .map_err(db_error)?;
            let Some(last) = wallets.last() else {
                txn.commit().await.map_err(db_error)?;
                return Ok(report);
            };
            after_id = last.id;
            let ids: Vec<i64> = wallets.iter().map(|wallet| wallet.id).collect();
            let mut grants_by_wallet: HashMap<i64, Vec<credit_grant::Model>> = HashMap::new();
            for grant in store::batch::live_grants_of(&txn, ids).await.map_err(db_error)? {
                grants_by_wallet.entry(grant.wallet_id).or_default().push(grant);
            }
            self.metrics.sweep_batch(wallets.len());
            let mut settled = Vec::with_capacity(wallets.len());
            for wallet in wallets {
                let grants = grants_by_wallet.remove(&wallet.id).unwrap_or_default();
                report.wallets_examined += 1;
                let one = settle_in_memory(wallet, grants, plans, now)?;
                if one.changed {
                    report.wallets_changed += 1;
                }
                settled.push(one);
            }
            let renewals = settled.iter().filter(|one| one.is_renewed).count() as u64;
            let expiries = settled.iter().map(|one| one.closes.len() as u64).sum();
            let events = write_batch(&txn, &self.notify_channel, settled, now).await?;
            txn.commit().await.map_err(db_error)?;
            self.metrics.settled(renewals, expiries);
            self.committed(events);
        }
    }
}

/// Writes a settled batch; returns its events, in ledger order per wallet.
async fn write_batch(
    txn: &sea_orm::DatabaseTransaction,
    notify_channel: &str,
    settled: Vec<Settled>,
    now: DateTime<Utc>,
) -> AppResult<Vec<BalanceEvent>> {
    let closes: Vec<i64> = settled
        .iter()
        .flat_map(|one| one.closes.iter().copied())
        .collect();
    store::batch::close_grants(txn, closes, now)
        .await
        .map_err(db_error)?;
    let new_grants: Vec<NewAllocation> = settled.iter().filter_map(|one| one.new_grant.clone()).collect();
    let new_grant_ids: HashMap<i64, i64> = store::batch::insert_allocations(txn, new_grants, now)
        .await
        .map_err(db_error)?
        .into_iter()
        .collect();
    let mut rows = Vec::new();
    for one in &settled {
        for row in &one.rows {
            rows.push(NewRow {
                wallet_id: one.wallet.id,
                sequence: row.sequence,
                kind: row.kind.as_str(),
                amount_credits: row.amount,
                balance_after_credits: row.balance.total,
                allocation_after_credits: row.balance.split.allocation,
                purchased_after_credits: row.balance.split.purchased,
                bonus_after_credits: row.balance.split.bonus,
                reference: Some(row.reference.clone()),
                action: None,
                actor: "system".to_owned(),
                idempotency_key: None,
                idempotency_fingerprint: None,
            });
        }
    }
    let entry_ids: HashMap<(i64, i64), i64> = store::batch::insert_rows(txn, rows, now)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|entry| ((entry.wallet_id, entry.sequence), entry.id))
        .collect();
    let missing = || AppError::Internal(anyhow::anyhow!("a batch row was not returned by its insert"));
    let mut moves = Vec::new();
    let mut events = Vec::new();
    let mut alerts = Vec::new();
    let mut heads = Vec::new();
    let mut notifications = Vec::new();
    for one in settled {
        for row in &one.rows {
            let entry_id = *entry_ids
                .get(&(one.wallet.id, row.sequence))
                .ok_or_else(missing)?;
            let grant_id = match row.grant_id {
                Some(grant_id) => grant_id,
                None => *new_grant_ids.get(&one.wallet.id).ok_or_else(missing)?,
            };
            moves.push(NewMove {
                ledger_entry_id: entry_id,
                credit_grant_id: grant_id,
                amount_credits: row.amount,
            });
            events.push(BalanceEvent::row(
                one.wallet.workspace_id.clone(),
                row.sequence,
                entry_id,
                row.kind,
                row.amount,
                row.balance,
                now,
            ));
        }
        if let Some((threshold, balance)) = one.alert {
            alerts.push(low_balance_alert::ActiveModel {
                wallet_id: Set(one.wallet.id),
                threshold_credits: Set(threshold),
                balance_credits: Set(balance.total),
                ledger_sequence: Set(one.wallet.last_sequence),
                created_at: Set(now),
                ..Default::default()
            });
            events.push(BalanceEvent::low_balance(
                one.wallet.workspace_id.clone(),
                one.wallet.last_sequence,
                balance,
                now,
            ));
        }
        if one.wallet.last_sequence != one.sequence_read {
            notifications.push(store::notify::payload(
                one.wallet.last_sequence,
                &one.wallet.workspace_id,
            ));
        }
        if one.changed {
            heads.push((one.wallet, one.sequence_read));
        }
    }
    store::batch::insert_moves(txn, moves).await.map_err(db_error)?;
    store::batch::insert_alerts(txn, alerts).await.map_err(db_error)?;
    store::batch::save_wallets(txn, &heads, now)
        .await
        .map_err(db_error)?;
    store::notify::many(txn, notify_channel, notifications)
        .await
        .map_err(db_error)?;
    check_heads(txn, &heads).await?;
    Ok(events)
}
