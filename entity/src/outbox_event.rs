use sea_orm::entity::prelude::*;

/// An event for other systems, written in the transaction of the change
/// that caused it; `once_key` makes an occasion's event unique.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_event")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub event_type: String,
    pub workspace_id: String,
    /// The event's `data`, as JSON text.
    pub data: String,
    pub once_key: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
