//! The sweep's statements: lock the due wallets, close expired grants,
//! insert the new period's allocation grants.

use chrono::{DateTime, Utc};
use entity::{credit_grant, wallet};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, ExprTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, Statement, Value,
};
use serde::Serialize;

use super::postgres::*;
use super::sqlite::*;
use crate::store::Result;
use crate::store::is_sqlite;

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
) -> Result<Vec<wallet::Model>> {
    // EXISTS, correlated on the wallet, probes credit_grant_live_idx per
    // wallet; an IN (subquery) would hash every due grant on every batch,
    // making a sweep quadratic in the number of wallets.
    let expiring = Query::select()
        .expr(Expr::val(1))
        .from(credit_grant::Entity)
        .and_where(
            Expr::col((credit_grant::Entity, credit_grant::Column::WalletId))
                .equals((wallet::Entity, wallet::Column::Id)),
        )
        .and_where(Expr::col((credit_grant::Entity, credit_grant::Column::ExpiredAt)).is_null())
        .and_where(Expr::col((credit_grant::Entity, credit_grant::Column::ExpiresAt)).lte(now))
        .to_owned();
    let query = wallet::Entity::find()
        .filter(wallet::Column::Id.gt(after_id))
        .filter(
            Condition::any()
                .add(wallet::Column::PeriodEndAt.lte(now))
                .add(Expr::exists(expiring)),
        )
        .order_by_asc(wallet::Column::Id)
        .limit(limit);
    if is_sqlite(txn) {
        take_sqlite_write_lock(txn).await?;
        query.all(txn).await.map_err(Into::into)
    } else {
        query
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(txn)
            .await
            .map_err(Into::into)
    }
}

/// Closes many grants at once.
pub async fn close_grants(txn: &impl ConnectionTrait, ids: Vec<i64>, now: DateTime<Utc>) -> Result<()> {
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

/// A new allocation grant of the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct NewAllocation {
    /// The wallet.
    pub wallet_id: i64,
    /// Credits granted.
    pub credits: i64,
    /// The period's start.
    pub period_start_at: DateTime<Utc>,
    /// The period's end, when the grant expires.
    pub expires_at: DateTime<Utc>,
}

/// Inserts allocation grants; returns (wallet id, grant id).
///
/// PostgreSQL takes the whole batch as one JSON parameter
/// (`json_to_recordset`): one small statement instead of a VALUES list
/// with thousands of parameters to parse and plan. SQLite takes the
/// multi-row INSERT, which it executes cheaply.
pub async fn insert_allocations(
    txn: &impl ConnectionTrait,
    grants: Vec<NewAllocation>,
    now: DateTime<Utc>,
) -> Result<Vec<(i64, i64)>> {
    if grants.is_empty() {
        return Ok(Vec::new());
    }
    if is_sqlite(txn) {
        let models = grants.into_iter().map(|grant| credit_grant::ActiveModel {
            wallet_id: Set(grant.wallet_id),
            source: Set("ALLOCATION".to_owned()),
            granted_credits: Set(grant.credits),
            remaining_credits: Set(grant.credits),
            expires_at: Set(Some(grant.expires_at)),
            expired_at: Set(None),
            period_start_at: Set(Some(grant.period_start_at)),
            pack_code: Set(None),
            price_cents: Set(None),
            currency: Set(None),
            created_at: Set(now),
            ..Default::default()
        });
        let inserted = credit_grant::Entity::insert_many(models)
            .exec_with_returning(txn)
            .await?;
        return Ok(inserted
            .into_iter()
            .map(|grant| (grant.wallet_id, grant.id))
            .collect());
    }
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO credit_grant (wallet_id, source, granted_credits, remaining_credits, expires_at, \
             period_start_at, created_at) \
             SELECT x.wallet_id, 'ALLOCATION', x.credits, x.credits, x.expires_at, x.period_start_at, $2 \
             FROM json_to_recordset($1::json) AS x(wallet_id bigint, credits bigint, period_start_at timestamptz, \
             expires_at timestamptz) RETURNING wallet_id, id",
            [json(&grants)?, Value::from(now)],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get::<i64>("", "wallet_id")?,
                row.try_get::<i64>("", "id")?,
            ))
        })
        .collect()
}
