//! A leaner hot path on PostgreSQL (`docs/benchmarks.md`, "Work per
//! spend"); SQLite keeps its schema (its DDL across pooled connections is
//! not worth the risk for one index):
//! - `ledger_entry_reverses_key` gives way to `ledger_entry_reversed_once`,
//!   which covers only the rows that reverse one (every spend used to add a
//!   NULL entry to it, for reads that look up non-NULL values only); a
//!   transaction is still reversed at most once.
//! - the rows a spend updates in place (wallet head, grants,
//!   budget counters, holds) leave room in their pages, so an update that
//!   changes no indexed column can be a HOT update (no index entries, no
//!   new page). Existing pages follow as they are rewritten.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Tables updated in place on the spend path, and the share of each page
/// filled by inserts.
const FILLFACTOR: &[(&str, u8)] = &[
    ("wallet", 70),
    ("credit_grant", 80),
    ("budget_counter", 70),
    ("credit_hold", 80),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        let connection = manager.get_connection();
        connection
            .execute_unprepared(
                "CREATE UNIQUE INDEX ledger_entry_reversed_once ON ledger_entry (reverses_entry_id) \
                 WHERE reverses_entry_id IS NOT NULL",
            )
            .await?;
        connection
            .execute_unprepared("DROP INDEX ledger_entry_reverses_key")
            .await?;
        for (table, fill) in FILLFACTOR {
            connection
                .execute_unprepared(&format!("ALTER TABLE {table} SET (fillfactor = {fill})"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
            return Ok(());
        }
        let connection = manager.get_connection();
        for (table, _) in FILLFACTOR {
            connection
                .execute_unprepared(&format!("ALTER TABLE {table} RESET (fillfactor)"))
                .await?;
        }
        connection
            .execute_unprepared(
                "CREATE UNIQUE INDEX ledger_entry_reverses_key ON ledger_entry (reverses_entry_id)",
            )
            .await?;
        connection
            .execute_unprepared("DROP INDEX ledger_entry_reversed_once")
            .await?;
        Ok(())
    }
}
