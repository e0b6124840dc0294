use sea_orm::entity::prelude::*;

/// What one budget's current window used, per subject (the agent, or `""`
/// for a workspace budget). A counter of an older window counts as 0.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Deserialize)]
#[sea_orm(table_name = "budget_counter")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub budget_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub subject: String,
    pub window_start: DateTimeUtc,
    pub used_credits: i64,
    /// When the window was first exhausted (its event sent once).
    pub exhausted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
