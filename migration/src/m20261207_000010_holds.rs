//! Holds (`docs/design/holds.md`): credits reserved for an action that
//! started, then captured or released. A hold's id is the id of its HOLD
//! ledger row (so the key it was placed under is that row's, unique as a
//! spend's); its pins (grant, credits) are kept on it as JSON, read only
//! with the hold. The wallet keeps what its live holds pin, and each ledger
//! row the held credits after it and the hold it concerns.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("credit_hold")
                    .col(big_integer("id").primary_key())
                    .col(big_integer("wallet_id"))
                    .col(string_len("hold_key", 200))
                    .col(string_len("state", 16))
                    .col(string_len("action", 32))
                    .col(string_len_null("agent_id", 200))
                    .col(string_len_null("reference", 500))
                    .col(string_len("actor", 200))
                    .col(big_integer("credits"))
                    .col(big_integer("captured_credits").default(0))
                    .col(big_integer("uncollected_credits").default(0))
                    .col(text("pins"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("resolved_at"))
                    .col(string_len_null("reason", 200))
                    .check(Expr::cust(
                        "credits > 0 AND captured_credits >= 0 AND uncollected_credits >= 0",
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("credit_hold_wallet_fk")
                            .from("credit_hold", "wallet_id")
                            .to("wallet", "id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("credit_hold_entry_fk")
                            .from("credit_hold", "id")
                            .to("ledger_entry", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("wallet")
                    .add_column(big_integer("held_credits").default(0))
                    .to_owned(),
            )
            .await?;
        for column in [
            big_integer("held_after_credits").default(0).to_owned(),
            big_integer_null("hold_id").to_owned(),
        ] {
            manager
                .alter_table(Table::alter().table("ledger_entry").add_column(column).to_owned())
                .await?;
        }
        let connection = manager.get_connection();
        for statement in [
            // A wallet's holds, newest first (`Wallet.holds`), and its live
            // ones (read with the wallet while it holds any).
            "CREATE INDEX credit_hold_wallet ON credit_hold (wallet_id, id)",
            "CREATE INDEX credit_hold_live ON credit_hold (wallet_id) WHERE state = 'HELD'",
            // The sweep's due holds.
            "CREATE INDEX credit_hold_due ON credit_hold (expires_at) WHERE state = 'HELD'",
            // A hold's capture and release rows.
            "CREATE INDEX ledger_entry_hold ON ledger_entry (hold_id) WHERE hold_id IS NOT NULL",
        ] {
            connection.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        connection
            .execute_unprepared("DROP INDEX ledger_entry_hold")
            .await?;
        for column in ["held_after_credits", "hold_id"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("ledger_entry")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("wallet")
                    .drop_column("held_credits")
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table("credit_hold").to_owned())
            .await
    }
}
