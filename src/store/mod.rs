//! Every SeaORM query, and every difference between the backends.
//!
//! Functions take `&impl ConnectionTrait`, so the caller (a `service`
//! function) owns the transaction. `DbErr` never leaves this module raw:
//! [`Error`] sorts it by code and constraint (`error.rs`): Unavailable (retry
//! later), a named Conflict, or Internal.

pub mod apply;
pub mod auto_top_up;
pub mod batch;
pub mod budgets;
pub mod catalogue;
pub mod deliveries;
pub mod delivery;
pub mod endpoints;
mod error;
pub mod holds;
pub mod ledger;
pub mod notices;
pub mod notify;
pub mod outbox;
pub mod payments;
pub mod rows;
pub mod subscriptions;
pub mod verify;
pub mod wallets;

use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr};

use crate::config::DatabaseConfig;
pub(crate) use error::internal;
pub use error::{Constraint, Error, Result};

/// How long a SQLite writer waits for the single write lock before giving
/// up; a burst of spends queues here rather than failing.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// WAL pages after which a SQLite commit checkpoints by itself (SQLite's
/// default is 1,000); see [`checkpoint_wal`].
pub const SQLITE_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// Each SQLite connection's page cache, in KiB (SQLite's default is 2,000):
/// the spend path's wallets, grants, budgets and index pages stay in memory.
pub const SQLITE_CACHE_KIB: u32 = 32_768;

/// How often the server checkpoints a SQLite database's WAL.
pub const SQLITE_CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// A SQLite WAL checkpoint's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Whether a writer or reader kept it from finishing.
    pub busy: bool,
    /// Frames in the WAL.
    pub wal_frames: i64,
    /// Frames copied back to the database file.
    pub checkpointed_frames: i64,
}

/// Copies what the WAL holds back into a SQLite database file, without
/// waiting for readers or the writer (`PASSIVE`). The server runs it every
/// [`SQLITE_CHECKPOINT_EVERY`] on a pool connection, so that the commit
/// that crosses SQLite's checkpoint threshold does not pay for copying and
/// syncing the pages itself (tens of milliseconds, under a CHARGED answer).
/// `None` on PostgreSQL.
pub async fn checkpoint_wal(db: &DatabaseConnection) -> Result<Option<Checkpoint>> {
    if !is_sqlite(db) {
        return Ok(None);
    }
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA wal_checkpoint(PASSIVE)",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("wal_checkpoint returned no row".to_owned()))?;
    Ok(Some(Checkpoint {
        busy: row.try_get_by_index::<i64>(0)? != 0,
        wal_frames: row.try_get_by_index(1)?,
        checkpointed_frames: row.try_get_by_index(2)?,
    }))
}

/// Opens the pool, creates the PostgreSQL schema when one is configured,
/// and runs the migrations.
pub async fn connect_and_migrate(config: &DatabaseConfig) -> anyhow::Result<DatabaseConnection> {
    let db = connect(config).await?;
    Migrator::up(&db, None).await.context("running migrations")?;
    Ok(db)
}

/// Opens the pool and creates the PostgreSQL schema when one is configured;
/// migrates nothing.
pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<DatabaseConnection> {
    if let Some(schema) = &config.schema {
        let bootstrap = Database::connect(config.url.clone())
            .await
            .context("connecting to the database to create DATABASE_SCHEMA")?;
        bootstrap
            .execute_unprepared(&format!(
                "CREATE SCHEMA IF NOT EXISTS \"{}\"",
                schema.replace('"', "")
            ))
            .await
            .context("creating DATABASE_SCHEMA")?;
        bootstrap.close().await.ok();
    }
    open_pool(config).await
}

/// Opens another pool on a database that [`connect`] has already prepared
/// (its schema exists).
///
/// PostgreSQL: its connections never plan a sequential scan where an index
/// can serve. Every statement of the service is keyed, and PostgreSQL keeps
/// a statement's generic plan for the connection's life: a plan made while
/// a table was small (or before it had statistics) read it whole on every
/// run after it grew (`docs/design/write-path.md`, "Plans (PostgreSQL)").
pub async fn open_pool(config: &DatabaseConfig) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(config.url.clone());
    options
        .max_connections(config.max_connections)
        .min_connections(1)
        .acquire_timeout(config.acquire_timeout)
        .connect_timeout(config.acquire_timeout)
        .sqlx_logging(false)
        // WAL lets readers run beside the writer; synchronous FULL makes a
        // commit durable against power loss before CHARGED is answered.
        .map_sqlx_sqlite_opts(|options| {
            options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
                // The server checkpoints in the background (see
                // `checkpoint_wal`); a commit checkpoints only when that
                // falls this far behind.
                .pragma("wal_autocheckpoint", SQLITE_AUTOCHECKPOINT_PAGES.to_string())
                .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"))
        })
        // A plan that must read a small table whole (the catalogue) then
        // costs over `jit_above_cost`, and JIT compiled it at every run
        // (380 ms): the service's statements are too short for JIT anyway.
        .map_sqlx_postgres_opts(|options| options.options([("enable_seqscan", "off"), ("jit", "off")]));
    if let Some(schema) = &config.schema {
        options.set_schema_search_path(schema.clone());
    }
    Database::connect(options)
        .await
        .context("connecting to DATABASE_URL")
}

/// A pool of connections to the database; the service holds one and hands
/// it back to the store's functions.
pub type Pool = DatabaseConnection;

/// An open write transaction (see [`begin_write`]).
pub type Tx = sea_orm::DatabaseTransaction;

/// Commits a write transaction.
pub async fn commit(txn: Tx) -> Result<()> {
    txn.commit().await.map_err(Into::into)
}

/// Rolls a transaction back: nothing it wrote is kept.
pub async fn rollback(txn: Tx) -> Result<()> {
    txn.rollback().await.map_err(Into::into)
}

/// Begins a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`:
/// it takes the write lock at once, waiting up to [`SQLITE_BUSY_TIMEOUT`]
/// for it. A deferred transaction that read first and writes later cannot
/// wait (SQLite answers `database is locked` at once rather than risk a
/// deadlock), so under the service's own concurrency writes failed instead
/// of queueing (`docs/design/hostile-input.md`).
pub async fn begin_write(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    if !is_sqlite(db) {
        return db.begin().await.map_err(Into::into);
    }
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
    .map_err(Into::into)
}

/// Whether the connection is SQLite (a single writer, no row locks).
pub fn is_sqlite(db: &impl ConnectionTrait) -> bool {
    db.get_database_backend() == DbBackend::Sqlite
}

/// Readiness: one round trip to the database.
pub async fn ping(db: &DatabaseConnection) -> Result<()> {
    db.ping().await.map_err(Into::into)
}

/// Connections of a pool, read now.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolUse {
    /// Open connections.
    pub size: u32,
    /// Of those, idle.
    pub idle: usize,
}

/// How the pool's connections are used now.
pub fn pool_use(db: &DatabaseConnection) -> PoolUse {
    let (size, idle) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => (0, 0),
    };
    PoolUse { size, idle }
}

/// Whether a `DATABASE_URL` names an in-memory SQLite database, which
/// every pool opens afresh (so a second pool would not see the first's).
pub fn is_in_memory(url: &str) -> bool {
    url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory"))
}

/// `sql` with its `?` placeholders numbered for PostgreSQL.
pub(crate) fn placeholders(backend: sea_orm::DbBackend, sql: &str) -> String {
    if backend != sea_orm::DbBackend::Postgres {
        return sql.to_owned();
    }
    let mut numbered = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for character in sql.chars() {
        if character == '?' {
            n += 1;
            numbered.push('$');
            numbered.push_str(&n.to_string());
        } else {
            numbered.push(character);
        }
    }
    numbered
}

/// A statement of `sql` (with `?` placeholders) and its values for `db`'s backend.
pub(crate) fn statement(
    db: &impl sea_orm::ConnectionTrait,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> sea_orm::Statement {
    let backend = db.get_database_backend();
    sea_orm::Statement::from_sql_and_values(backend, placeholders(backend, sql), values)
}

#[cfg(test)]
mod placeholder_tests {
    use super::*;
    use sea_orm::DbBackend;

    #[test]
    fn placeholders_are_numbered_for_postgres_only() {
        assert_eq!(
            placeholders(DbBackend::Postgres, "a = ? AND b = ?"),
            "a = $1 AND b = $2"
        );
        assert_eq!(
            placeholders(DbBackend::Sqlite, "a = ? AND b = ?"),
            "a = ? AND b = ?"
        );
    }
}
