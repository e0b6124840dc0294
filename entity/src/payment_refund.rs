use sea_orm::entity::prelude::*;

/// A refund the payment provider reported, once per payment reference, and
/// what became of the top-up it bought (`REVERSED`, `UNRECOVERED`: its
/// credits were spent, `PARTIAL`: left to an operator).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_refund")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub payment_reference: String,
    pub workspace_id: String,
    pub top_up_entry_id: i64,
    pub outcome: String,
    pub amount_refunded_cents: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
