//! Set-based writes for the scheduler's sweep: a batch of wallets settled in
//! one transaction with a handful of statements, instead of a dozen round
//! trips per wallet. The rows themselves are decided in `service`; this
//! module only writes them, and reads the batch under lock.

use chrono::{DateTime, Utc};
use entity::{credit_grant, ledger_entry, ledger_entry_grant, low_balance_alert, wallet};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Statement, Value,
};

use super::is_sqlite;

/// Locks and returns up to `limit` wallets due at `now`, after `after_id`.
///
/// PostgreSQL: `FOR UPDATE SKIP LOCKED`, so instances sweeping together
/// split the work instead of queueing, and a wallet a request is writing is
/// left to that request (which settles it first anyway). SQLite: a no-op
/// write first takes the database's single write lock.
pub async fn lock_due_wallets(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    after_id: i64,
    limit: u64,
) -> Result<Vec<wallet::Model>, DbErr> {
    let expiring = credit_grant::Entity::find()
        .select_only()
        .column(credit_grant::Column::WalletId)
        .filter(credit_grant::Column::ExpiredAt.is_null())
        .filter(credit_grant::Column::ExpiresAt.lte(now))
        .into_query();
    let query = wallet::Entity::find()
        .filter(wallet::Column::Id.gt(after_id))
        .filter(
            Condition::any()
                .add(wallet::Column::PeriodEndAt.lte(now))
                .add(wallet::Column::Id.in_subquery(expiring)),
        )
        .order_by_asc(wallet::Column::Id)
        .limit(limit);
    if is_sqlite(txn) {
        wallet::Entity::update_many()
            .col_expr(
                wallet::Column::LastSequence,
                Expr::col(wallet::Column::LastSequence),
            )
            .filter(wallet::Column::Id.eq(-1))
            .exec(txn)
            .await?;
        query.all(txn).await
    } else {
        query
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(txn)
            .await
    }
}

/// The live grants of many wallets.
pub async fn live_grants_of(
    db: &impl ConnectionTrait,
    wallet_ids: Vec<i64>,
) -> Result<Vec<credit_grant::Model>, DbErr> {
    credit_grant::Entity::find()
        .filter(credit_grant::Column::WalletId.is_in(wallet_ids))
        .filter(credit_grant::Column::ExpiredAt.is_null())
        .order_by_asc(credit_grant::Column::Id)
        .all(db)
        .await
}

/// Closes many grants at once.
pub async fn close_grants(
    txn: &impl ConnectionTrait,
    ids: Vec<i64>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    credit_grant::Entity::update_many()
        .col_expr(credit_grant::Column::RemainingCredits, Expr::value(0i64))
        .col_expr(credit_grant::Column::ExpiredAt, Expr::value(now))
        .filter(credit_grant::Column::Id.is_in(ids))
        .exec(txn)
        .await?;
    Ok(())
}

/// Inserts grants, returning them (with their ids).
pub async fn insert_grants(
    txn: &impl ConnectionTrait,
    grants: Vec<credit_grant::ActiveModel>,
) -> Result<Vec<credit_grant::Model>, DbErr> {
    credit_grant::Entity::insert_many(grants)
        .exec_with_returning(txn)
        .await
}

/// Inserts ledger rows, returning them (with their ids).
pub async fn insert_entries(
    txn: &impl ConnectionTrait,
    entries: Vec<ledger_entry::ActiveModel>,
) -> Result<Vec<ledger_entry::Model>, DbErr> {
    ledger_entry::Entity::insert_many(entries)
        .exec_with_returning(txn)
        .await
}

/// Inserts grant moves.
pub async fn insert_moves(
    txn: &impl ConnectionTrait,
    moves: Vec<ledger_entry_grant::ActiveModel>,
) -> Result<(), DbErr> {
    ledger_entry_grant::Entity::insert_many(moves)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Inserts low-balance alerts.
pub async fn insert_alerts(
    txn: &impl ConnectionTrait,
    alerts: Vec<low_balance_alert::ActiveModel>,
) -> Result<(), DbErr> {
    low_balance_alert::Entity::insert_many(alerts)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

fn placeholder(backend: DbBackend, index: usize) -> String {
    if backend == DbBackend::Postgres {
        format!("${index}")
    } else {
        "?".to_owned()
    }
}

/// Writes many wallet heads in one statement, each guarded on the sequence
/// read under the lock. Fails if any wallet changed meanwhile.
pub async fn save_wallets(
    txn: &impl ConnectionTrait,
    wallets: &[(wallet::Model, i64)],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if wallets.is_empty() {
        return Ok(());
    }
    let backend = txn.get_database_backend();
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
    if result.rows_affected() != wallets.len() as u64 {
        return Err(DbErr::Custom(format!(
            "{} of {} wallets changed under their lock",
            wallets.len() as u64 - result.rows_affected(),
            wallets.len()
        )));
    }
    Ok(())
}

/// `NOTIFY` many payloads on one channel in one statement (PostgreSQL).
pub async fn notify_many(
    txn: &impl ConnectionTrait,
    channel: &str,
    payloads: Vec<String>,
) -> Result<(), DbErr> {
    if payloads.is_empty() || is_sqlite(txn) {
        return Ok(());
    }
    let mut values: Vec<Value> = vec![channel.into()];
    let mut rows = Vec::with_capacity(payloads.len());
    for payload in payloads {
        values.push(payload.into());
        rows.push(format!("(${})", values.len()));
    }
    let sql = format!(
        "SELECT pg_notify($1, p) FROM (VALUES {}) AS t(p)",
        rows.join(", ")
    );
    txn.query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
        .await?;
    Ok(())
}
