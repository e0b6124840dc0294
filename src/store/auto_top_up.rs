//! Automatic top-up's row (`docs/design/auto-top-up.md`): read with its
//! wallet, and written as `domain::wallet` left it (`Change::auto_top_up`)
//! by the applier, under the wallet's lock. No rule is decided here.

use chrono::{DateTime, Utc};
use entity::auto_top_up;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use super::Result;
use domain::auto_top_up::AutoTopUpView;

/// A stored row as the rules see it.
pub(crate) fn view(model: auto_top_up::Model) -> AutoTopUpView {
    AutoTopUpView {
        enabled: model.enabled,
        threshold: model.threshold_credits,
        pack: model.pack_code,
        max_per_period: model.max_per_period,
        requests_this_period: model.requests_in_period,
        open_request_id: model.open_request_id,
        open_request_at: model.open_request_at,
        consecutive_failures: model.consecutive_failures,
        period_key: model.period_key,
    }
}

/// The wallet's automatic top-up, if it was ever set.
pub async fn find(db: &impl ConnectionTrait, wallet_id: i64) -> Result<Option<AutoTopUpView>> {
    Ok(auto_top_up::Entity::find_by_id(wallet_id)
        .one(db)
        .await?
        .map(view))
}

/// The automatic top-ups of these wallets (only those ever set).
pub(crate) async fn of_wallets(
    db: &impl ConnectionTrait,
    wallet_ids: Vec<i64>,
) -> Result<Vec<auto_top_up::Model>> {
    Ok(auto_top_up::Entity::find()
        .filter(auto_top_up::Column::WalletId.is_in(wallet_ids))
        .all(db)
        .await?)
}

/// Writes the wallet's automatic top-up as its change left it.
pub(crate) async fn write(
    txn: &impl ConnectionTrait,
    wallet_id: i64,
    auto: &AutoTopUpView,
    now: DateTime<Utc>,
) -> Result<()> {
    auto_top_up::Entity::insert(auto_top_up::ActiveModel {
        wallet_id: Set(wallet_id),
        enabled: Set(auto.enabled),
        threshold_credits: Set(auto.threshold),
        pack_code: Set(auto.pack.clone()),
        max_per_period: Set(auto.max_per_period),
        period_key: Set(auto.period_key.clone()),
        requests_in_period: Set(auto.requests_this_period),
        open_request_id: Set(auto.open_request_id.clone()),
        open_request_at: Set(auto.open_request_at),
        consecutive_failures: Set(auto.consecutive_failures),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(auto_top_up::Column::WalletId)
            .update_columns([
                auto_top_up::Column::Enabled,
                auto_top_up::Column::ThresholdCredits,
                auto_top_up::Column::PackCode,
                auto_top_up::Column::MaxPerPeriod,
                auto_top_up::Column::PeriodKey,
                auto_top_up::Column::RequestsInPeriod,
                auto_top_up::Column::OpenRequestId,
                auto_top_up::Column::OpenRequestAt,
                auto_top_up::Column::ConsecutiveFailures,
                auto_top_up::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    Ok(())
}
