use sea_orm::entity::prelude::*;

/// A cap on what a wallet's spends may use per window, for the workspace,
/// every agent, or one agent; `name` is unique per wallet.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Deserialize)]
#[sea_orm(table_name = "budget")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub wallet_id: i64,
    pub name: String,
    pub applies_to: String,
    pub agent_id: Option<String>,
    pub action: Option<String>,
    pub budget_window: String,
    pub limit_credits: i64,
    pub mode: String,
    /// Spends from this instant on count (set when the budget's scope is).
    pub counting_since: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
