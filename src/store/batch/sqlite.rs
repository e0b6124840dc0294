//! SQLite's side of the batch writes: multi-row statements within the
//! parameter limit, after taking the single write lock.

use chrono::{DateTime, Utc};
use entity::{ledger_entry, wallet};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement, Value};

use super::*;
use crate::store::{Result, internal};

/// SQLite: an UPDATE that matches nothing still makes the transaction the
/// writer, waiting through the busy timeout, so what it reads next is read
/// under the lock.
pub(super) async fn take_sqlite_write_lock(txn: &impl ConnectionTrait) -> Result<()> {
    wallet::Entity::update_many()
        .col_expr(
            wallet::Column::LastSequence,
            Expr::col(wallet::Column::LastSequence),
        )
        .filter(wallet::Column::Id.eq(-1))
        .exec(txn)
        .await?;
    Ok(())
}

/// Most grants one SQLite statement moves (two parameters each).
pub(super) const SQLITE_GRANTS_PER_STATEMENT: usize = 4_000;

/// SQLite: moves many live grants' remaining credits by signed deltas, one
/// per grant, in as few statements as the parameter limit allows. Each
/// move is guarded as a single spend's is (live, never below zero): a
/// grant that does not match fails the whole batch.
pub(super) async fn move_grants_sqlite(txn: &impl ConnectionTrait, deltas: &[(i64, i64)]) -> Result<()> {
    for chunk in deltas.chunks(SQLITE_GRANTS_PER_STATEMENT) {
        let values: Vec<Value> = chunk
            .iter()
            .flat_map(|(id, delta)| [Value::from(*id), Value::from(*delta)])
            .collect();
        let rows = vec!["(?, ?)"; chunk.len()].join(", ");
        let result = txn
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!(
                    "WITH v(id, delta) AS (VALUES {rows}) \
                     UPDATE credit_grant SET remaining_credits = credit_grant.remaining_credits + v.delta \
                     FROM v WHERE credit_grant.id = v.id AND credit_grant.expired_at IS NULL \
                     AND credit_grant.remaining_credits + v.delta >= 0"
                ),
                values,
            ))
            .await?;
        if result.rows_affected() != chunk.len() as u64 {
            return Err(internal(format!(
                "{} of {} grants cannot move",
                chunk.len() as u64 - result.rows_affected(),
                chunk.len()
            )));
        }
    }
    Ok(())
}

pub(super) async fn write_spends_sqlite(
    txn: &impl ConnectionTrait,
    writes: SpendWrites,
    now: DateTime<Utc>,
) -> Result<Vec<ledger_entry::Model>> {
    let stored = insert_rows(txn, writes.rows, now).await?;
    let id_of = |wallet_id: i64, sequence: i64| {
        stored
            .iter()
            .find(|row| row.wallet_id == wallet_id && row.sequence == sequence)
            .map(|row| row.id)
            .ok_or_else(|| internal("a batch row was not returned by its insert".to_owned()))
    };
    let moves = writes
        .moves
        .iter()
        .map(|movement| {
            Ok(NewMove {
                ledger_entry_id: id_of(movement.wallet_id, movement.sequence)?,
                credit_grant_id: movement.credit_grant_id,
                amount_credits: movement.amount_credits,
            })
        })
        .collect::<Result<_>>()?;
    insert_moves(txn, moves).await?;
    move_grants_sqlite(txn, &writes.deltas).await?;
    save_wallets(txn, &writes.heads, now).await?;
    Ok(stored)
}

pub(super) fn placeholder(backend: DbBackend, index: usize) -> String {
    if backend == DbBackend::Postgres {
        format!("${index}")
    } else {
        "?".to_owned()
    }
}
