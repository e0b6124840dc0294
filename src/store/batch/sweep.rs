//! The sweep's read: lock the due wallets.

use chrono::{DateTime, Utc};
use entity::{credit_grant, credit_hold, wallet};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::store::Result;
use crate::store::is_sqlite;

/// Locks and returns up to `limit` wallets due at `now`, after `after_id`.
///
/// PostgreSQL: `FOR UPDATE SKIP LOCKED`, so instances sweeping together
/// split the work instead of queueing, and a wallet a request is writing is
/// left to that request (which settles it first anyway). SQLite: the
/// caller's transaction, from `store::begin_write` (`BEGIN IMMEDIATE`),
/// already holds the database's single write lock.
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
    // A hold past its expiry (`credit_hold_due`); its wallet also holds a
    // grant or a period due, or its hold expires at the next write.
    let holds_due = Query::select()
        .expr(Expr::val(1))
        .from(credit_hold::Entity)
        .and_where(
            Expr::col((credit_hold::Entity, credit_hold::Column::WalletId))
                .equals((wallet::Entity, wallet::Column::Id)),
        )
        .and_where(Expr::col((credit_hold::Entity, credit_hold::Column::State)).eq("HELD"))
        .and_where(Expr::col((credit_hold::Entity, credit_hold::Column::ExpiresAt)).lte(now))
        .to_owned();
    let query = wallet::Entity::find()
        .filter(wallet::Column::Id.gt(after_id))
        .filter(
            Condition::any()
                .add(wallet::Column::PeriodEndAt.lte(now))
                .add(wallet::Column::StandingUntilAt.lte(now))
                .add(Expr::exists(expiring))
                .add(wallet::Column::HeldCredits.gt(0).and(Expr::exists(holds_due))),
        )
        .order_by_asc(wallet::Column::Id)
        .limit(limit);
    if is_sqlite(txn) {
        query.all(txn).await.map_err(Into::into)
    } else {
        query
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(txn)
            .await
            .map_err(Into::into)
    }
}

/// [`lock_due_wallets`], each with its live grants and (while it is on)
/// its automatic top-up, as states.
pub async fn lock_due_states(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    after_id: i64,
    limit: u64,
) -> Result<Vec<domain::wallet::WalletState>> {
    let wallets = lock_due_wallets(txn, now, after_id, limit).await?;
    if wallets.is_empty() {
        return Ok(Vec::new());
    }
    let grants = super::live_grants_of(txn, wallets.iter().map(|wallet| wallet.id).collect()).await?;
    let topping_up: Vec<i64> = wallets
        .iter()
        .filter(|wallet| wallet.auto_top_up_threshold_credits.is_some())
        .map(|wallet| wallet.id)
        .collect();
    let autos = if topping_up.is_empty() {
        Vec::new()
    } else {
        crate::store::auto_top_up::of_wallets(txn, topping_up).await?
    };
    let holds =
        super::live_holds_of(txn, wallets.iter().map(|wallet| (wallet.id, wallet.held_credits))).await?;
    let mut states = crate::store::rows::states(wallets, grants, holds)?;
    crate::store::rows::attach_auto_top_ups(&mut states, autos);
    Ok(states)
}
