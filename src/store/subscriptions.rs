//! Subscriptions at the payment provider: the price → plan map, each
//! subscription's latest state, and the events handled
//! (`docs/design/payments.md`).

use chrono::{DateTime, Utc};
use entity::{stripe_price, stripe_subscription};
use sea_orm::sea_query::{LockType, OnConflict};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QuerySelect, Set, Statement};

use super::{Result, is_sqlite};
use domain::catalogue::{GrantSource, LedgerKind};

pub use stripe_subscription::Model as Subscription;

/// Sets the plan each price buys (the rest of the map stays).
pub async fn map_prices(db: &impl ConnectionTrait, prices: &[(String, String)]) -> Result<()> {
    for (price_id, plan_code) in prices {
        stripe_price::Entity::insert(stripe_price::ActiveModel {
            price_id: Set(price_id.clone()),
            plan_code: Set(plan_code.clone()),
        })
        .on_conflict(
            OnConflict::column(stripe_price::Column::PriceId)
                .update_column(stripe_price::Column::PlanCode)
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

/// The plan a price buys, if it is mapped.
pub async fn plan_of_price(db: &impl ConnectionTrait, price_id: &str) -> Result<Option<String>> {
    Ok(stripe_price::Entity::find_by_id(price_id.to_owned())
        .one(db)
        .await?
        .map(|price| price.plan_code))
}

/// Records that event `event_id` is handled; `false` when it was already
/// (also when another transaction records it at the same moment: the
/// insert waits for it and then does nothing).
pub async fn record_event(
    txn: &impl ConnectionTrait,
    event_id: &str,
    event_type: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let inserted = txn
        .query_one_raw(super::statement(
            txn,
            "INSERT INTO stripe_event (event_id, event_type, received_at) VALUES (?, ?, ?) \
             ON CONFLICT DO NOTHING RETURNING event_id",
            vec![
                event_id.to_owned().into(),
                event_type.to_owned().into(),
                now.into(),
            ],
        ))
        .await?;
    Ok(inserted.is_some())
}

/// A subscription's stored state, without a lock.
pub async fn subscription(db: &impl ConnectionTrait, subscription_id: &str) -> Result<Option<Subscription>> {
    Ok(
        stripe_subscription::Entity::find_by_id(subscription_id.to_owned())
            .one(db)
            .await?,
    )
}

/// A subscription's stored row, locked until the transaction ends; created
/// empty (no event applied: `event_id` is empty, status `incomplete`) when
/// new, so that two first events of one subscription queue on the row.
pub async fn lock_subscription(
    txn: &impl ConnectionTrait,
    subscription_id: &str,
    now: DateTime<Utc>,
) -> Result<Subscription> {
    stripe_subscription::Entity::insert(stripe_subscription::ActiveModel {
        subscription_id: Set(subscription_id.to_owned()),
        workspace_id: Set(None),
        customer_id: Set(None),
        status: Set("incomplete".to_owned()),
        price_id: Set(None),
        current_period_start: Set(None),
        current_period_end: Set(None),
        billing_cycle_anchor: Set(None),
        cancel_at_period_end: Set(false),
        event_created: Set(i64::MIN),
        event_rank: Set(-1),
        event_id: Set(String::new()),
        past_due_since: Set(None),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(stripe_subscription::Column::SubscriptionId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    let mut query = stripe_subscription::Entity::find_by_id(subscription_id.to_owned());
    if !is_sqlite(txn) {
        query = query.lock(LockType::Update);
    }
    query
        .one(txn)
        .await?
        .ok_or_else(|| super::internal(format!("subscription {subscription_id} vanished under its lock")))
}

/// Writes the locked subscription's row as it now is.
pub async fn save_subscription(txn: &impl ConnectionTrait, subscription: Subscription) -> Result<()> {
    subscription.into_active_model().reset_all().update(txn).await?;
    Ok(())
}

/// Credits of a wallet's allocation for the period starting at `start`
/// that were used (spent, less reversals, or adjusted away): what a plan
/// that ended and starts again in the same period already had.
pub async fn allocation_used(db: &impl ConnectionTrait, wallet_id: i64, start: DateTime<Utc>) -> Result<i64> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            super::placeholders(
                backend,
                &format!(
                    "SELECT CAST(COALESCE(-SUM(m.amount_credits), 0) AS BIGINT) AS used \
                     FROM credit_grant g JOIN ledger_entry_grant m ON m.credit_grant_id = g.id \
                     JOIN ledger_entry e ON e.id = m.ledger_entry_id \
                     WHERE g.wallet_id = ? AND g.source = '{}' AND g.period_start_at = ? \
                     AND e.kind NOT IN ('{}', '{}')",
                    GrantSource::Allocation.as_str(),
                    LedgerKind::Grant.as_str(),
                    LedgerKind::Expire.as_str(),
                ),
            ),
            [wallet_id.into(), start.into()],
        ))
        .await?;
    Ok(row
        .map(|row| row.try_get::<i64>("", "used"))
        .transpose()?
        .unwrap_or(0)
        .max(0))
}
