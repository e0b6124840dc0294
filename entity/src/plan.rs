use sea_orm::entity::prelude::*;

/// A plan of the catalogue. `monthly_credits` is NULL for ENTERPRISE, whose
/// allocation is set per wallet; `price_cents` is NULL for a custom price.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "plan")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub code: String,
    pub display_name: String,
    pub price_cents: Option<i64>,
    pub currency: String,
    pub monthly_credits: Option<i64>,
    pub is_trial: bool,
    pub trial_days: Option<i32>,
    pub sort_order: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
