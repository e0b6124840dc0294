//! The outbox and its webhook deliveries (`docs/design/webhooks.md`):
//! events are written in the transaction of the ledger change that caused
//! them, and fanned out to the endpoints subscribed at that moment. And
//! automatic top-up (`docs/design/auto-top-up.md`): its settings and its
//! one open request per wallet, with the threshold mirrored on the wallet
//! so that the spend path reads it with the head.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("outbox_event")
                    .col(big_pk_auto("id"))
                    .col(string_len("event_type", 64))
                    .col(string_len("workspace_id", 64))
                    .col(text("data"))
                    // Events sent once per occasion (trial ending, runway
                    // low) carry a key; a second insert of it does nothing.
                    .col(string_len_null("once_key", 200).unique_key())
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_endpoint")
                    .col(big_pk_auto("id"))
                    // NULL: every workspace's events (operators only).
                    .col(string_len_null("workspace_id", 64))
                    .col(string_len("url", 2048))
                    // Space-separated event types; empty: every type.
                    .col(text("event_types"))
                    .col(string_len("description", 500))
                    .col(string_len("secret", 100))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_delivery")
                    .col(big_pk_auto("id"))
                    .col(big_integer("endpoint_id"))
                    .col(big_integer("event_id"))
                    .col(string_len("workspace_id", 64))
                    .col(string_len("status", 16))
                    .col(integer("attempts"))
                    .col(timestamp_with_time_zone("next_attempt_at"))
                    .col(timestamp_with_time_zone_null("leased_until"))
                    .col(integer_null("last_status_code"))
                    .col(string_len_null("last_error", 500))
                    .col(timestamp_with_time_zone_null("delivered_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("webhook_delivery_endpoint_fk")
                            .from("webhook_delivery", "endpoint_id")
                            .to("webhook_endpoint", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("webhook_delivery_event_fk")
                            .from("webhook_delivery", "event_id")
                            .to("outbox_event", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        let connection = manager.get_connection();
        // The workers' queue: only what is still to send is indexed.
        connection
            .execute_unprepared(
                "CREATE INDEX webhook_delivery_pending ON webhook_delivery (next_attempt_at, id) \
                 WHERE status = 'PENDING'",
            )
            .await?;
        // Order per endpoint and workspace, and each endpoint's history.
        connection
            .execute_unprepared(
                "CREATE INDEX webhook_delivery_endpoint ON webhook_delivery (endpoint_id, workspace_id, id)",
            )
            .await?;
        connection
            .execute_unprepared("CREATE INDEX webhook_endpoint_workspace ON webhook_endpoint (workspace_id)")
            .await?;
        // Retention: old events first, then their deliveries.
        connection
            .execute_unprepared("CREATE INDEX outbox_event_created_at ON outbox_event (created_at)")
            .await?;
        connection
            .execute_unprepared("CREATE INDEX webhook_delivery_event ON webhook_delivery (event_id)")
            .await?;
        // The scheduler's look for trials ending within 48 hours (the
        // column is never rewritten by a spend, so updates stay HOT).
        connection
            .execute_unprepared("CREATE INDEX wallet_trial_ends_at ON wallet (trial_ends_at)")
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("wallet")
                    .add_column(big_integer_null("auto_top_up_threshold_credits"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("auto_top_up")
                    .col(big_integer("wallet_id").primary_key())
                    .col(boolean("enabled"))
                    .col(big_integer("threshold_credits"))
                    .col(string_len("pack_code", 32))
                    .col(integer("max_per_period"))
                    // The billing period requests are counted in.
                    .col(string_len("period_key", 40))
                    .col(integer("requests_in_period"))
                    .col(string_len_null("open_request_id", 64))
                    .col(timestamp_with_time_zone_null("open_request_at"))
                    .col(integer("consecutive_failures"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("auto_top_up_wallet_fk")
                            .from("auto_top_up", "wallet_id")
                            .to("wallet", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX wallet_trial_ends_at")
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("wallet")
                    .drop_column("auto_top_up_threshold_credits")
                    .to_owned(),
            )
            .await?;
        for table in [
            "auto_top_up",
            "webhook_delivery",
            "webhook_endpoint",
            "outbox_event",
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
