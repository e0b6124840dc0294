//! Refunds from the payment provider (`docs/design/payments.md`): the
//! top-up a payment reference bought is found without its wallet, and each
//! refund is recorded once, whatever became of it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A payment intent names one top-up across all wallets; the keys'
        // unique index is led by the wallet, so a refund needs its own.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX ledger_entry_top_up_reference ON ledger_entry (idempotency_key) \
                 WHERE kind = 'TOP_UP'",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("payment_refund")
                    .col(string_len("payment_reference", 200).primary_key())
                    .col(string_len("workspace_id", 64))
                    .col(big_integer("top_up_entry_id"))
                    .col(string_len("outcome", 16))
                    .col(big_integer("amount_refunded_cents"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("payment_refund").to_owned())
            .await?;
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX ledger_entry_top_up_reference")
            .await?;
        Ok(())
    }
}
