use sea_orm::entity::prelude::*;

/// A payment Stripe told us of, once across the service, keyed by its
/// payment intent: where it was applied (`APPLIED`), that it was not and an
/// operator was told (`REVIEW`), or only that a refund or dispute came first
/// (`PENDING`); with what was refunded and disputed so far.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stripe_payment")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub payment_reference: String,
    pub workspace_id: Option<String>,
    pub pack_code: Option<String>,
    pub status: String,
    pub amount_cents: Option<i64>,
    pub currency: Option<String>,
    pub amount_refunded_cents: i64,
    pub refunded: bool,
    pub dispute_status: Option<String>,
    pub refund_outcome: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
