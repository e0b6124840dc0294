//! An idempotency key lives on the ledger row it bound: the row gains the
//! request's fingerprint, and `(wallet_id, kind, idempotency_key)` is
//! unique. The separate `idempotency_record` (one more
//! row, two more index entries and a foreign-key check per charge) goes,
//! its fingerprints moved onto their rows.

use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Rows without a key are NULL in it, and NULLs never collide. The wallet
/// is indexed as `wallet_id + 0`, and every key probe says
/// `wallet_id + 0 = …`, which no other index can serve. With the plain
/// column, PostgreSQL's generic plan made while the table was nearly empty
/// costed this index and `(wallet_id, created_at)` the same and kept the
/// older one, probing a key by scanning its wallet's whole history: the
/// hot-wallet benchmark fell from ~9,600 to 1,500–2,500 spends/s, slower
/// with every run. The same statement on both backends.
const CREATE_KEY_INDEX: &str =
    "CREATE UNIQUE INDEX ledger_entry_key ON ledger_entry ((wallet_id + 0), kind, idempotency_key)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // Every keyed row was written with its record; one without would
        // have no fingerprint to tell a repeat from a conflicting reuse.
        let orphans = db
            .query_one_raw(Statement::from_string(
                manager.get_database_backend(),
                "SELECT COUNT(*) AS n FROM ledger_entry e WHERE e.idempotency_key IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM idempotency_record r WHERE r.ledger_entry_id = e.id)",
            ))
            .await?
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0);
        if orphans > 0 {
            return Err(DbErr::Migration(format!(
                "{orphans} keyed ledger rows have no idempotency record; nothing was changed"
            )));
        }
        manager
            .alter_table(
                Table::alter()
                    .table("ledger_entry")
                    .add_column(string_len_null("idempotency_fingerprint", 300))
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(
            "UPDATE ledger_entry SET idempotency_fingerprint = \
               (SELECT r.fingerprint FROM idempotency_record r WHERE r.ledger_entry_id = ledger_entry.id) \
             WHERE idempotency_key IS NOT NULL",
        )
        .await?;
        db.execute_unprepared(CREATE_KEY_INDEX).await?;
        manager
            .drop_table(Table::drop().table("idempotency_record").to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        manager
            .create_table(
                Table::create()
                    .table("idempotency_record")
                    .col(big_pk_auto("id"))
                    .col(big_integer("wallet_id"))
                    .col(string_len("scope", 16))
                    .col(string_len("key", 200))
                    .col(string_len("fingerprint", 300))
                    .col(big_integer("ledger_entry_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("idempotency_record_entry_fk")
                            .from("idempotency_record", "ledger_entry_id")
                            .to("ledger_entry", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idempotency_record_key")
                    .table("idempotency_record")
                    .col("wallet_id")
                    .col("scope")
                    .col("key")
                    .unique()
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(
            "INSERT INTO idempotency_record (wallet_id, scope, key, fingerprint, ledger_entry_id, created_at) \
             SELECT wallet_id, kind, idempotency_key, idempotency_fingerprint, id, created_at FROM ledger_entry \
             WHERE idempotency_key IS NOT NULL ORDER BY id",
        )
        .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ledger_entry_key")
                    .table("ledger_entry")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("ledger_entry")
                    .drop_column("idempotency_fingerprint")
                    .to_owned(),
            )
            .await
    }
}
