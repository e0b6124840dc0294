//! Budgets inside the wallet (`docs/design/budgets.md`): the workspace's
//! time zone and a budget version on the wallet head, the agent on ledger
//! rows, the budgets and one usage counter per budget and subject.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for column in [
            string_len("time_zone", 64).default("UTC"),
            big_integer("budget_version").default(0),
        ] {
            manager
                .alter_table(Table::alter().table("wallet").add_column(column).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("ledger_entry")
                    .add_column(string_len_null("agent_id", 200))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("budget")
                    .col(big_pk_auto("id"))
                    .col(big_integer("wallet_id"))
                    .col(string_len("name", 64))
                    .col(string_len("applies_to", 16))
                    .col(string_len_null("agent_id", 200))
                    .col(string_len_null("action", 32))
                    .col(string_len("budget_window", 16))
                    .col(big_integer("limit_credits"))
                    .col(string_len("mode", 8))
                    .col(timestamp_with_time_zone("counting_since"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("budget_wallet_fk")
                            .from("budget", "wallet_id")
                            .to("wallet", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("budget_wallet_name")
                    .table("budget")
                    .col("wallet_id")
                    .col("name")
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Counters are written with the spends they count, often one new
        // row per spend (an agent's first spend of the day on a wallet):
        // no foreign key (its check locked the budget row on every insert;
        // counters are deleted with their budget, under the wallet's lock,
        // by the same code) and, on SQLite, clustered on its key (one B-tree
        // insert instead of a table row and an index entry).
        let mut counters = Table::create();
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Sqlite {
            counters.extra("WITHOUT ROWID");
        }
        manager
            .create_table(
                counters
                    .table("budget_counter")
                    .col(big_integer("budget_id"))
                    .col(string_len("subject", 200))
                    .col(timestamp_with_time_zone("window_start"))
                    .col(big_integer("used_credits"))
                    .col(timestamp_with_time_zone_null("exhausted_at"))
                    .primary_key(Index::create().col("budget_id").col("subject"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("budget_counter").to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table("budget").to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("ledger_entry")
                    .drop_column("agent_id")
                    .to_owned(),
            )
            .await?;
        for column in ["time_zone", "budget_version"] {
            manager
                .alter_table(Table::alter().table("wallet").drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
