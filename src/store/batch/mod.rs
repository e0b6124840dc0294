//! Set-based reads and the statements of the applier (`store::apply`): a
//! batch of wallets read under lock and written in one transaction with a
//! handful of statements, instead of a dozen round trips per wallet. The
//! rows themselves are decided in `domain::wallet`.

use chrono::{DateTime, Utc};
use entity::{credit_grant, ledger_entry, ledger_entry_grant};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, Set, Statement, Value,
};
use serde::Serialize;

use super::{Result, internal, is_sqlite};

mod postgres;
mod read;
mod sqlite;
mod sweep;

pub(super) use postgres::*;
pub use read::*;
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

/// A ledger row to insert.
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
    /// The row it reverses.
    pub reverses_entry_id: Option<i64>,
    /// The agent a spend was for.
    pub agent_id: Option<String>,
}

impl NewRow {
    /// A row of wallet `wallet_id`, as `domain::wallet` decided it.
    pub fn of(wallet_id: i64, row: &crate::domain::wallet::Row) -> Self {
        let (idempotency_key, idempotency_fingerprint) = row
            .entry
            .key
            .as_ref()
            .map(|binding| (binding.key.clone(), binding.fingerprint.clone()))
            .unzip();
        Self {
            wallet_id,
            sequence: row.sequence,
            kind: row.entry.kind.as_str(),
            amount_credits: row.amount,
            balance_after_credits: row.balance.total,
            allocation_after_credits: row.balance.split.allocation,
            purchased_after_credits: row.balance.split.purchased,
            bonus_after_credits: row.balance.split.bonus,
            reference: row.entry.reference.clone(),
            action: row.entry.action.map(|action| action.as_str()),
            actor: row.entry.actor.clone(),
            idempotency_key,
            idempotency_fingerprint,
            reverses_entry_id: row.entry.reverses,
            agent_id: row.entry.agent_id.clone(),
        }
    }
}

/// A grant move of a stored row.
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
            reverses_entry_id: Set(row.reverses_entry_id),
            agent_id: Set(row.agent_id),
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
            insert_rows_sql("$1", "$2", "*"),
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

/// Writes many wallet heads in one statement, each guarded on the sequence
/// read under the lock. Fails if any wallet changed meanwhile.
pub(super) async fn save_heads(
    txn: &impl ConnectionTrait,
    heads: &[(&crate::domain::wallet::Head, i64)],
    now: DateTime<Utc>,
) -> Result<()> {
    if heads.is_empty() {
        return Ok(());
    }
    if !is_sqlite(txn) {
        let rows: Vec<WalletHead<'_>> = heads
            .iter()
            .map(|(head, sequence_read)| WalletHead::of(head, *sequence_read))
            .collect();
        let result = txn
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                save_heads_sql("$1", "$2", "$3"),
                [
                    json(&rows)?,
                    Value::from(now),
                    id_list(heads.iter().map(|(head, _)| head.id)),
                ],
            ))
            .await?;
        return all_saved(heads.len(), result.rows_affected());
    }
    let mut values: Vec<Value> = Vec::with_capacity(heads.len() * HEAD_COLUMNS + 1);
    for (head, sequence_read) in heads {
        values.extend([
            Value::from(head.id),
            Value::from(*sequence_read),
            Value::from(head.balance),
            Value::from(head.last_sequence),
            Value::from(head.plan.as_str()),
            Value::from(head.pending_plan.map(|plan| plan.as_str())),
            Value::from(head.anchor),
            Value::from(head.period_start),
            Value::from(head.period_end),
            Value::from(head.enterprise_allocation),
            Value::from(head.threshold),
            Value::from(head.alerted_at),
            Value::from(head.time_zone.as_str()),
            Value::from(head.budget_version),
        ]);
    }
    values.push(Value::from(now));
    let row = format!("({})", ["?"; HEAD_COLUMNS].join(", "));
    let sql = format!(
        "WITH v(id, sequence_read, balance_credits, last_sequence, plan_code, pending_plan_code, billing_anchor_at, \
         period_start_at, period_end_at, enterprise_allocation_credits, low_balance_threshold_credits, \
         low_balance_alerted_at, time_zone, budget_version) AS (VALUES {}) \
         UPDATE wallet SET {HEAD_SET}, updated_at = ? \
         FROM v WHERE wallet.id = v.id AND wallet.last_sequence = v.sequence_read",
        vec![row; heads.len()].join(", ")
    );
    let result = txn
        .execute_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, values))
        .await?;
    all_saved(heads.len(), result.rows_affected())
}

/// Columns of a head write: the id, the sequence read, and the twelve a
/// change may move.
const HEAD_COLUMNS: usize = 14;

/// The SET list of a head write from `v`.
pub(super) const HEAD_SET: &str = "balance_credits = v.balance_credits, last_sequence = v.last_sequence, \
    plan_code = v.plan_code, pending_plan_code = v.pending_plan_code, billing_anchor_at = v.billing_anchor_at, \
    period_start_at = v.period_start_at, period_end_at = v.period_end_at, \
    enterprise_allocation_credits = v.enterprise_allocation_credits, \
    low_balance_threshold_credits = v.low_balance_threshold_credits, \
    low_balance_alerted_at = v.low_balance_alerted_at, time_zone = v.time_zone, \
    budget_version = v.budget_version";

/// Every guarded head write must have matched its wallet.
pub(crate) fn all_saved(expected: usize, saved: u64) -> Result<()> {
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
