use sea_orm::entity::prelude::*;

/// One event to one endpoint: `PENDING` until a 2xx (`DELIVERED`) or its
/// last attempt (`FAILED`). Its queue (`webhook_queue`, by endpoint and
/// workspace) is what a worker leases; `leased_until` is no longer written.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_delivery")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub endpoint_id: i64,
    pub event_id: i64,
    pub workspace_id: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub leased_until: Option<DateTimeUtc>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    /// Queued by `redeliverWebhookEvent` (their rate is limited).
    pub redelivery: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
