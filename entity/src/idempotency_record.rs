use sea_orm::entity::prelude::*;

/// A key that bound a charge: `scope` is SPEND or TOP_UP, `fingerprint`
/// is the request's identity (action and reference, or pack), so a repeat can
/// be told apart from a conflicting reuse.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Deserialize)]
#[sea_orm(table_name = "idempotency_record")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub wallet_id: i64,
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
    pub ledger_entry_id: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
