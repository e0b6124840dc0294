//! Webhook delivery by queue (`docs/design/webhooks.md`): each endpoint and
//! workspace pair is one queue with its own next due time and lease, so a
//! claim reads the queues due, never the deliveries queued behind them;
//! redeliveries are marked, so that their rate can be limited.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("webhook_queue")
                    .col(big_integer("endpoint_id"))
                    .col(string_len("workspace_id", 64))
                    // The earliest due time of its pending deliveries; NULL
                    // when none is pending.
                    .col(timestamp_with_time_zone_null("next_due_at"))
                    // A worker sends its deliveries, in order, until then.
                    .col(timestamp_with_time_zone_null("leased_until"))
                    .col(integer("pending").default(0))
                    .primary_key(Index::create().col("endpoint_id").col("workspace_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("webhook_queue_endpoint_fk")
                            .from("webhook_queue", "endpoint_id")
                            .to("webhook_endpoint", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let connection = manager.get_connection();
        for statement in [
            "CREATE INDEX webhook_queue_due ON webhook_queue (next_due_at) WHERE next_due_at IS NOT NULL",
            // A queue's deliveries in order, and its earliest due one.
            "CREATE INDEX webhook_delivery_queue_order ON webhook_delivery (endpoint_id, workspace_id, id) \
             WHERE status = 'PENDING'",
            "CREATE INDEX webhook_delivery_queue_due ON webhook_delivery (endpoint_id, workspace_id, next_attempt_at) \
             WHERE status = 'PENDING'",
            "INSERT INTO webhook_queue (endpoint_id, workspace_id, next_due_at, pending) \
             SELECT endpoint_id, workspace_id, MIN(next_attempt_at), COUNT(*) FROM webhook_delivery \
             WHERE status = 'PENDING' GROUP BY endpoint_id, workspace_id",
        ] {
            connection.execute_unprepared(statement).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("webhook_delivery")
                    .add_column(boolean("redelivery").default(false))
                    .to_owned(),
            )
            .await?;
        connection
            .execute_unprepared(
                "CREATE INDEX webhook_delivery_redeliveries ON webhook_delivery (endpoint_id, created_at) \
                 WHERE redelivery",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        for statement in [
            "DROP INDEX webhook_delivery_redeliveries",
            "DROP INDEX webhook_delivery_queue_due",
            "DROP INDEX webhook_delivery_queue_order",
        ] {
            connection.execute_unprepared(statement).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("webhook_delivery")
                    .drop_column("redelivery")
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table("webhook_queue").to_owned())
            .await?;
        Ok(())
    }
}
