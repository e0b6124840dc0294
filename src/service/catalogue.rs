//! The catalogue: plans, top-up packs and action costs, read from data.

use super::{ActionCostView, Ledger, PackView, PlanView};
use crate::error::{AppError, AppResult};
use crate::store;

impl Ledger {
    /// Every plan.
    pub async fn plans(&self) -> AppResult<Vec<PlanView>> {
        store::catalogue::plans(&self.db).await.map_err(AppError::from)
    }

    /// Every top-up pack.
    pub async fn packs(&self) -> AppResult<Vec<PackView>> {
        store::catalogue::packs(&self.db).await.map_err(AppError::from)
    }

    /// Every action's cost.
    pub async fn action_costs(&self) -> AppResult<Vec<ActionCostView>> {
        store::catalogue::action_costs(&self.db)
            .await
            .map_err(AppError::from)
    }
}
