//! Reads of the catalogue tables (plans, packs, action costs).

use super::Result;
use entity::{action_cost, plan, top_up_pack};
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder};

/// Every plan, in catalogue order.
pub async fn plans(db: &impl ConnectionTrait) -> Result<Vec<plan::Model>> {
    plan::Entity::find()
        .order_by_asc(plan::Column::SortOrder)
        .all(db)
        .await
        .map_err(Into::into)
}

/// One plan by code.
pub async fn plan(db: &impl ConnectionTrait, code: &str) -> Result<Option<plan::Model>> {
    plan::Entity::find_by_id(code.to_owned())
        .one(db)
        .await
        .map_err(Into::into)
}

/// Every top-up pack, in catalogue order.
pub async fn packs(db: &impl ConnectionTrait) -> Result<Vec<top_up_pack::Model>> {
    top_up_pack::Entity::find()
        .order_by_asc(top_up_pack::Column::SortOrder)
        .all(db)
        .await
        .map_err(Into::into)
}

/// One pack by code.
pub async fn pack(db: &impl ConnectionTrait, code: &str) -> Result<Option<top_up_pack::Model>> {
    top_up_pack::Entity::find_by_id(code.to_owned())
        .one(db)
        .await
        .map_err(Into::into)
}

/// Every action's cost.
pub async fn action_costs(db: &impl ConnectionTrait) -> Result<Vec<action_cost::Model>> {
    action_cost::Entity::find()
        .order_by_asc(action_cost::Column::Action)
        .all(db)
        .await
        .map_err(Into::into)
}

/// One action's cost.
pub async fn action_cost(db: &impl ConnectionTrait, action: &str) -> Result<Option<action_cost::Model>> {
    action_cost::Entity::find_by_id(action.to_owned())
        .one(db)
        .await
        .map_err(Into::into)
}
