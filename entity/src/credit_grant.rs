use sea_orm::entity::prelude::*;

/// A block of credits: where credits live until they are spent or expire.
/// `source` is TRIAL, ALLOCATION, PURCHASE or ADJUSTMENT. A grant is live
/// while `expired_at` is NULL; expiring it sets `remaining_credits` to 0.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Deserialize)]
#[sea_orm(table_name = "credit_grant")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub wallet_id: i64,
    pub source: String,
    pub granted_credits: i64,
    pub remaining_credits: i64,
    pub expires_at: Option<DateTimeUtc>,
    pub expired_at: Option<DateTimeUtc>,
    pub period_start_at: Option<DateTimeUtc>,
    pub pack_code: Option<String>,
    pub price_cents: Option<i64>,
    pub currency: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
