use sea_orm::entity::prelude::*;

/// A wallet's automatic top-up: its settings, the request open now (at most
/// one), the requests made this billing period, and the failed payments in
/// a row (three switch it off).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Deserialize)]
#[sea_orm(table_name = "auto_top_up")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub wallet_id: i64,
    pub enabled: bool,
    pub threshold_credits: i64,
    pub pack_code: String,
    pub max_per_period: i32,
    pub period_key: String,
    pub requests_in_period: i32,
    pub open_request_id: Option<String>,
    pub open_request_at: Option<DateTimeUtc>,
    pub consecutive_failures: i32,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
