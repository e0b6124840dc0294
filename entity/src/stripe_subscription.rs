use sea_orm::entity::prelude::*;

/// The latest state of a Stripe subscription, as its newest event applied
/// showed it (`docs/design/payments.md`), and the workspace it pays for.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stripe_subscription")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub subscription_id: String,
    pub workspace_id: Option<String>,
    pub customer_id: Option<String>,
    pub status: String,
    pub price_id: Option<String>,
    pub current_period_start: Option<DateTimeUtc>,
    pub current_period_end: Option<DateTimeUtc>,
    pub billing_cycle_anchor: Option<DateTimeUtc>,
    pub cancel_at_period_end: bool,
    pub event_created: i64,
    pub event_rank: i32,
    pub event_id: String,
    pub past_due_since: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
