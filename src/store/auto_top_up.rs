//! Automatic top-up's settings and its open request
//! (`docs/design/auto-top-up.md`). Every write here runs under the wallet's
//! lock, in the transaction of the change it belongs to.

use chrono::{DateTime, Utc};
use entity::{auto_top_up, wallet};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::Result;
use super::statement;
use domain::auto_top_up::AutoTopUpView;

/// Consecutive failed payments that switch automatic top-up off.
pub const FAILURES_TO_DISABLE: i32 = 3;

/// A wallet's settings as asked for.
#[derive(Debug, Clone)]
pub struct Settings {
    /// On or off.
    pub enabled: bool,
    /// A request is made when a change leaves the balance below this.
    pub threshold: i64,
    /// The pack requested.
    pub pack: String,
    /// Most requests per billing period.
    pub max_per_period: i32,
}

/// The wallet's automatic top-up, if it was ever set.
pub async fn find(db: &impl ConnectionTrait, wallet_id: i64) -> Result<Option<AutoTopUpView>> {
    Ok(auto_top_up::Entity::find_by_id(wallet_id)
        .one(db)
        .await?
        .map(|model| AutoTopUpView {
            enabled: model.enabled,
            threshold: model.threshold_credits,
            pack: model.pack_code,
            max_per_period: model.max_per_period,
            requests_this_period: model.requests_in_period,
            open_request_id: model.open_request_id,
            open_request_at: model.open_request_at,
            consecutive_failures: model.consecutive_failures,
            period_key: model.period_key,
        }))
}

/// Saves the settings (switching on again forgets earlier failures) and
/// mirrors the threshold on the wallet while it is on.
pub async fn save(
    txn: &impl ConnectionTrait,
    wallet_id: i64,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<()> {
    auto_top_up::Entity::insert(auto_top_up::ActiveModel {
        wallet_id: Set(wallet_id),
        enabled: Set(settings.enabled),
        threshold_credits: Set(settings.threshold),
        pack_code: Set(settings.pack.clone()),
        max_per_period: Set(settings.max_per_period),
        period_key: Set(String::new()),
        requests_in_period: Set(0),
        open_request_id: Set(None),
        open_request_at: Set(None),
        consecutive_failures: Set(0),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(auto_top_up::Column::WalletId)
            .update_columns([
                auto_top_up::Column::Enabled,
                auto_top_up::Column::ThresholdCredits,
                auto_top_up::Column::PackCode,
                auto_top_up::Column::MaxPerPeriod,
                auto_top_up::Column::ConsecutiveFailures,
                auto_top_up::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    mirror_threshold(txn, wallet_id, settings.enabled.then_some(settings.threshold)).await
}

async fn mirror_threshold(txn: &impl ConnectionTrait, wallet_id: i64, threshold: Option<i64>) -> Result<()> {
    wallet::Entity::update_many()
        .col_expr(wallet::Column::AutoTopUpThresholdCredits, Expr::value(threshold))
        .filter(wallet::Column::Id.eq(wallet_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// Opens request `request_id` unless one is open, automatic top-up is off,
/// or this period's requests reached the cap; returns the pack requested.
pub async fn open_request(
    txn: &impl ConnectionTrait,
    wallet_id: i64,
    period_key: &str,
    request_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>> {
    let row = txn
        .query_one_raw(statement(
            txn,
            "UPDATE auto_top_up SET open_request_id = ?, open_request_at = ?, updated_at = ?, \
             requests_in_period = CASE WHEN period_key = ? THEN requests_in_period + 1 ELSE 1 END, \
             period_key = ? \
             WHERE wallet_id = ? AND enabled AND open_request_id IS NULL \
             AND (period_key <> ? OR requests_in_period < max_per_period) RETURNING pack_code",
            vec![
                request_id.into(),
                now.into(),
                now.into(),
                period_key.into(),
                period_key.into(),
                wallet_id.into(),
                period_key.into(),
            ],
        ))
        .await?;
    Ok(row
        .map(|row| row.try_get::<String>("", "pack_code"))
        .transpose()?)
}

/// How closing a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// It was not the open request: nothing changed.
    NotOpen,
    /// Paid: failures forgotten.
    Paid,
    /// Failed, `failures` in a row; `disabled` when that switched it off.
    Failed { failures: i32, disabled: bool },
}

/// Closes the open request `request_id`, paid or failed.
pub async fn close_request(
    txn: &impl ConnectionTrait,
    wallet_id: i64,
    request_id: &str,
    paid: bool,
    now: DateTime<Utc>,
) -> Result<Closed> {
    let failures = if paid {
        "0".to_owned()
    } else {
        "consecutive_failures + 1".to_owned()
    };
    let row = txn
        .query_one_raw(statement(
            txn,
            &format!(
                "UPDATE auto_top_up SET open_request_id = NULL, open_request_at = NULL, updated_at = ?, \
                 consecutive_failures = {failures}, \
                 enabled = CASE WHEN {failures} >= {FAILURES_TO_DISABLE} THEN FALSE ELSE enabled END \
                 WHERE wallet_id = ? AND open_request_id = ? RETURNING consecutive_failures"
            ),
            vec![now.into(), wallet_id.into(), request_id.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(Closed::NotOpen);
    };
    if paid {
        return Ok(Closed::Paid);
    }
    let failures: i32 = row.try_get("", "consecutive_failures")?;
    // The statement switched it off exactly then.
    let disabled = failures >= FAILURES_TO_DISABLE;
    if disabled {
        mirror_threshold(txn, wallet_id, None).await?;
    }
    Ok(Closed::Failed { failures, disabled })
}
