//! Low-balance alerts, and the balance split after each ledger row (so a
//! subscriber replaying the ledger gets exact buckets, not only totals).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for column in [
            big_integer_null("low_balance_threshold_credits"),
            timestamp_with_time_zone_null("low_balance_alerted_at"),
        ] {
            manager
                .alter_table(Table::alter().table("wallet").add_column(column).to_owned())
                .await?;
        }
        for name in [
            "allocation_after_credits",
            "purchased_after_credits",
            "bonus_after_credits",
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("ledger_entry")
                        .add_column(big_integer(name).default(0))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("low_balance_alert")
                    .col(big_pk_auto("id"))
                    .col(big_integer("wallet_id"))
                    .col(big_integer("threshold_credits"))
                    .col(big_integer("balance_credits"))
                    .col(big_integer("ledger_sequence"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("low_balance_alert_wallet_fk")
                            .from("low_balance_alert", "wallet_id")
                            .to("wallet", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("low_balance_alert_wallet_idx")
                    .table("low_balance_alert")
                    .col("wallet_id")
                    .to_owned(),
            )
            .await?;
        // Usage and exports read a wallet's rows by time.
        manager
            .create_index(
                Index::create()
                    .name("ledger_entry_wallet_created_idx")
                    .table("ledger_entry")
                    .col("wallet_id")
                    .col("created_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("low_balance_alert").to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ledger_entry_wallet_created_idx")
                    .table("ledger_entry")
                    .to_owned(),
            )
            .await?;
        for name in [
            "allocation_after_credits",
            "purchased_after_credits",
            "bonus_after_credits",
        ] {
            manager
                .alter_table(Table::alter().table("ledger_entry").drop_column(name).to_owned())
                .await?;
        }
        for name in ["low_balance_threshold_credits", "low_balance_alerted_at"] {
            manager
                .alter_table(Table::alter().table("wallet").drop_column(name).to_owned())
                .await?;
        }
        Ok(())
    }
}
