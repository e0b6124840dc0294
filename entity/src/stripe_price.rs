use sea_orm::entity::prelude::*;

/// Which plan a Stripe price buys (catalogue data; `STRIPE_PRICE_PLANS`
/// sets it at start).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stripe_price")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub price_id: String,
    pub plan_code: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
