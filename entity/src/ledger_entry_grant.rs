use sea_orm::entity::prelude::*;

/// How one ledger entry moved one grant's remaining credits (signed).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ledger_entry_grant")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub ledger_entry_id: i64,
    pub credit_grant_id: i64,
    pub amount_credits: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
