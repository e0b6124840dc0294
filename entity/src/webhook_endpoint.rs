use sea_orm::entity::prelude::*;

/// Where events are posted: one workspace's, or every workspace's when
/// `workspace_id` is NULL.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoint")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: Option<String>,
    pub url: String,
    /// Space-separated event types; empty: every type.
    pub event_types: String,
    pub description: String,
    /// `whsec_` and the base64 key deliveries are signed with.
    pub secret: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
