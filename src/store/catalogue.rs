//! Reads of the catalogue tables (plans, packs, action costs), as
//! `domain::views`.

use entity::{action_cost, plan, top_up_pack};
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder};

use super::Result;
use super::rows::stored;
use domain::views::{ActionCostView, PackView, PlanView};

fn plan_view(model: plan::Model) -> Result<PlanView> {
    Ok(PlanView {
        code: stored(&model.code)?,
        name: model.display_name,
        price_cents: model.price_cents,
        currency: model.currency,
        monthly_credits: model.monthly_credits,
        is_trial: model.is_trial,
        trial_days: model.trial_days,
    })
}

fn pack_view(model: top_up_pack::Model) -> Result<PackView> {
    Ok(PackView {
        code: stored(&model.code)?,
        price_cents: model.price_cents,
        currency: model.currency,
        credits: model.credits,
    })
}

pub(super) fn cost_view(model: action_cost::Model) -> Result<ActionCostView> {
    Ok(ActionCostView {
        action: stored(&model.action)?,
        credits: model.credits,
        description: model.description,
    })
}

/// Every plan, in catalogue order.
pub async fn plans(db: &impl ConnectionTrait) -> Result<Vec<PlanView>> {
    plan::Entity::find()
        .order_by_asc(plan::Column::SortOrder)
        .all(db)
        .await?
        .into_iter()
        .map(plan_view)
        .collect()
}

/// One plan by code.
pub async fn plan(db: &impl ConnectionTrait, code: &str) -> Result<Option<PlanView>> {
    plan::Entity::find_by_id(code.to_owned())
        .one(db)
        .await?
        .map(plan_view)
        .transpose()
}

/// Every top-up pack, in catalogue order.
pub async fn packs(db: &impl ConnectionTrait) -> Result<Vec<PackView>> {
    top_up_pack::Entity::find()
        .order_by_asc(top_up_pack::Column::SortOrder)
        .all(db)
        .await?
        .into_iter()
        .map(pack_view)
        .collect()
}

/// One pack by code.
pub async fn pack(db: &impl ConnectionTrait, code: &str) -> Result<Option<PackView>> {
    top_up_pack::Entity::find_by_id(code.to_owned())
        .one(db)
        .await?
        .map(pack_view)
        .transpose()
}

/// Every action's cost.
pub async fn action_costs(db: &impl ConnectionTrait) -> Result<Vec<ActionCostView>> {
    action_cost::Entity::find()
        .order_by_asc(action_cost::Column::Action)
        .all(db)
        .await?
        .into_iter()
        .map(cost_view)
        .collect()
}

/// One action's cost.
pub async fn action_cost(db: &impl ConnectionTrait, action: &str) -> Result<Option<ActionCostView>> {
    action_cost::Entity::find_by_id(action.to_owned())
        .one(db)
        .await?
        .map(cost_view)
        .transpose()
}
