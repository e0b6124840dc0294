//! Set-based reads and writes for the scheduler's sweep and the spends'
//! group commit: a batch of wallets settled (or charged) in one transaction
//! with a handful of statements, instead of a dozen round trips per wallet.
//! The rows themselves are decided in `service`; this module only writes
//! them, and reads the batch under lock.

use chrono::{DateTime, Utc};
use entity::{credit_grant, ledger_entry, ledger_entry_grant, low_balance_alert, wallet};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, Set, Statement, Value,
};
use serde::Serialize;

use super::{Result, internal, is_sqlite};

mod postgres;
mod read;
mod sqlite;
mod sweep;

pub use postgres::write_spends;
use postgres::*;
pub use read::*;
use sqlite::*;
pub use sweep::*;

/// The live grants of many wallets.
pub async fn live_grants_of(
    db: &impl ConnectionTrait,
    wallet_ids: Vec<i64>,
) -> Result<Vec<credit_grant::Model>> {
    credit_grant::Entity::find()
        .filter(credit_grant::Column::WalletId.is_in(wallet_ids))
        .filter(credit_grant::Column::ExpiredAt.is_null())
        .order_by_asc(credit_grant::Column::Id)
        .all(db)
        .await
        .map_err(Into::into)
}

/// A ledger row of a batch: EXPIRE or GRANT by the system (the sweep), or
/// SPEND (the group commit).
#[derive(Debug, Clone, Serialize)]
pub struct NewRow {
    /// The wallet.
    pub wallet_id: i64,
    /// Its ledger sequence.
    pub sequence: i64,
    /// Its kind.
    pub kind: &'static str,
    /// Signed credits.
    pub amount_credits: i64,
    /// Balance after it, and its split.
    pub balance_after_credits: i64,
    /// Allocation bucket after it.
    pub allocation_after_credits: i64,
    /// Purchased bucket after it.
    pub purchased_after_credits: i64,
    /// Bonus bucket after it.
    pub bonus_after_credits: i64,
    /// Its reference.
    pub reference: Option<String>,
    /// The action paid, for spends.
    pub action: Option<&'static str>,
    /// Who caused it: the token's subject, or `system`.
    pub actor: String,
    /// The key that bound it, for spends.
    pub idempotency_key: Option<String>,
    /// The identity of the request that bound the key.
    pub idempotency_fingerprint: Option<String>,
}

/// A grant move of the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct NewMove {
    /// The row.
    pub ledger_entry_id: i64,
    /// The grant.
    pub credit_grant_id: i64,
    /// Signed credits.
    pub amount_credits: i64,
}

/// Inserts ledger rows; returns them as stored, in no particular order.
pub async fn insert_rows(
    txn: &impl ConnectionTrait,
    rows: Vec<NewRow>,
    now: DateTime<Utc>,
) -> Result<Vec<ledger_entry::Model>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    if is_sqlite(txn) {
        let models = rows.into_iter().map(|row| ledger_entry::ActiveModel {
            wallet_id: Set(row.wallet_id),
            sequence: Set(row.sequence),
            kind: Set(row.kind.to_owned()),
            amount_credits: Set(row.amount_credits),
            balance_after_credits: Set(row.balance_after_credits),
            action: Set(row.action.map(str::to_owned)),
            reference: Set(row.reference),
            actor: Set(row.actor),
            idempotency_key: Set(row.idempotency_key),
            idempotency_fingerprint: Set(row.idempotency_fingerprint),
            reverses_entry_id: Set(None),
            created_at: Set(now),
            allocation_after_credits: Set(row.allocation_after_credits),
            purchased_after_credits: Set(row.purchased_after_credits),
            bonus_after_credits: Set(row.bonus_after_credits),
            ..Default::default()
        });
        return ledger_entry::Entity::insert_many(models)
            .exec_with_returning(txn)
            .await
            .map_err(Into::into);
    }
    ledger_entry::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            DbBackend::Postgres,
            insert_rows_sql("$1", "$2"),
            [json(&rows)?, Value::from(now)],
        ))
        .all(txn)
        .await
        .map_err(Into::into)
}

/// Inserts grant moves.
pub async fn insert_moves(txn: &impl ConnectionTrait, moves: Vec<NewMove>) -> Result<()> {
    if moves.is_empty() {
        return Ok(());
    }
    if is_sqlite(txn) {
        let models = moves.into_iter().map(|movement| ledger_entry_grant::ActiveModel {
            ledger_entry_id: Set(movement.ledger_entry_id),
            credit_grant_id: Set(movement.credit_grant_id),
            amount_credits: Set(movement.amount_credits),
            ..Default::default()
        });
        ledger_entry_grant::Entity::insert_many(models)
            .exec_without_returning(txn)
            .await?;
        return Ok(());
    }
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO ledger_entry_grant (ledger_entry_id, credit_grant_id, amount_credits) \
         SELECT x.ledger_entry_id, x.credit_grant_id, x.amount_credits \
         FROM json_to_recordset($1::json) AS x(ledger_entry_id bigint, credit_grant_id bigint, amount_credits bigint)",
        [json(&moves)?],
    ))
    .await?;
    Ok(())
}

/// Inserts low-balance alerts.
pub async fn insert_alerts(
    txn: &impl ConnectionTrait,
    alerts: Vec<low_balance_alert::ActiveModel>,
) -> Result<()> {
    if alerts.is_empty() {
        return Ok(());
    }
    low_balance_alert::Entity::insert_many(alerts)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Writes many wallet heads in one statement, each guarded on the sequence
/// read under the lock. Fails if any wallet changed meanwhile.
pub async fn save_wallets(
    txn: &impl ConnectionTrait,
    wallets: &[(wallet::Model, i64)],
    now: DateTime<Utc>,
) -> Result<()> {
    if wallets.is_empty() {
        return Ok(());
    }
    let backend = txn.get_database_backend();
    if backend == DbBackend::Postgres {
        return save_wallets_postgres(txn, wallets, now).await;
    }
    let mut values: Vec<Value> = Vec::with_capacity(wallets.len() * 9 + 1);
    let mut rows = Vec::with_capacity(wallets.len());
    for (wallet, sequence_read) in wallets {
        let mut slots = Vec::with_capacity(9);
        for value in [
            Value::from(wallet.id),
            Value::from(*sequence_read),
            Value::from(wallet.balance_credits),
            Value::from(wallet.last_sequence),
            Value::from(wallet.plan_code.clone()),
            Value::from(wallet.pending_plan_code.clone()),
            Value::from(wallet.period_start_at),
            Value::from(wallet.period_end_at),
            Value::from(wallet.low_balance_alerted_at),
        ] {
            values.push(value);
            slots.push(placeholder(backend, values.len()));
        }
        rows.push(format!("({})", slots.join(", ")));
    }
    values.push(Value::from(now));
    let now_slot = placeholder(backend, values.len());
    let sql = format!(
        "WITH v(id, sequence_read, balance_credits, last_sequence, plan_code, pending_plan_code, period_start_at, \
         period_end_at, low_balance_alerted_at) AS (VALUES {}) \
         UPDATE wallet SET balance_credits = v.balance_credits, last_sequence = v.last_sequence, \
         plan_code = v.plan_code, pending_plan_code = v.pending_plan_code, period_start_at = v.period_start_at, \
         period_end_at = v.period_end_at, low_balance_alerted_at = v.low_balance_alerted_at, updated_at = {now_slot} \
         FROM v WHERE wallet.id = v.id AND wallet.last_sequence = v.sequence_read",
        rows.join(", ")
    );
    let result = txn
        .execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    all_saved(wallets.len(), result.rows_affected())
}

/// Every guarded head write must have matched its wallet.
pub(super) fn all_saved(expected: usize, saved: u64) -> Result<()> {
    if saved == expected as u64 {
        return Ok(());
    }
    Err(internal(format!(
        "{} of {expected} wallets changed under their lock",
        expected as u64 - saved
    )))
}

/// A grant move of a row not yet written, named by (wallet, sequence).
#[derive(Debug, Clone, Serialize)]
pub struct RowMove {
    /// The row's wallet.
    pub wallet_id: i64,
    /// The row's sequence.
    pub sequence: i64,
    /// The grant.
    pub credit_grant_id: i64,
    /// Signed credits.
    pub amount_credits: i64,
}

/// Everything a batch of spends writes.
#[derive(Debug, Default)]
pub struct SpendWrites {
    /// The SPEND rows.
    pub rows: Vec<NewRow>,
    /// Their grant moves.
    pub moves: Vec<RowMove>,
    /// Net change of each grant touched: (grant id, signed credits).
    pub deltas: Vec<(i64, i64)>,
    /// Changed wallet heads, each with the sequence read under the lock.
    pub heads: Vec<(wallet::Model, i64)>,
    /// NOTIFY payloads for other instances (PostgreSQL).
    pub notifications: Vec<String>,
}
