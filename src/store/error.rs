//! What went wrong in the store, sorted once, here, for the layers above:
//! by the driver's error code (PostgreSQL's SQLSTATE, SQLite's result
//! code) and, for a unique constraint, by its name, never by the text of a
//! message.

use sea_orm::sqlx::Error as Sqlx;
use sea_orm::sqlx::error::{DatabaseError, ErrorKind};
use sea_orm::sqlx::sqlite::SqliteError;
use sea_orm::{DbErr, RuntimeErr};

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database did not answer in time, or the connection was lost, or
    /// SQLite's lock wait ran out: the caller may retry.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] DbErr),
    /// A unique constraint refused the write.
    #[error("a unique constraint refused the write: {constraint:?}")]
    Conflict {
        /// Which one.
        constraint: Constraint,
        /// The driver's error.
        #[source]
        cause: DbErr,
    },
    /// Anything else: a bug, a broken invariant, a schema out of step.
    #[error("database error: {0}")]
    Internal(#[source] DbErr),
}

/// The unique constraints a caller answers for, by the schema's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// A workspace (and its wallet) of this id exists.
    Workspace,
    /// The period's allocation was already granted (one per wallet,
    /// source and period).
    Allocation,
    /// Another constraint: PostgreSQL's name for it, or SQLite's columns.
    Other(String),
}

impl Constraint {
    /// PostgreSQL names the constraint (the index); SQLite, which names
    /// none, reports the columns after "UNIQUE constraint failed: ".
    fn named(name: &str) -> Self {
        match name {
            "workspace_pkey" | "workspace.id" | "wallet_workspace_id_key" | "wallet.workspace_id" => {
                Self::Workspace
            }
            "credit_grant_wallet_period_key"
            | "credit_grant.wallet_id, credit_grant.source, credit_grant.period_start_at" => Self::Allocation,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// SQLSTATEs after which a retry may succeed: the connection failed
/// (class 08), the server ran short (53), it is shutting down or starting
/// (57P01 to 57P03), a statement timed out (57014), a lock was not
/// available (55P03), or the transaction lost a serialization race
/// (40001, 40P01).
fn postgres_transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "57014" | "55P03" | "40001" | "40P01"
        )
}

/// SQLite's primary result codes (the low byte of the extended code) after
/// which a retry may succeed: BUSY, LOCKED, IOERR, FULL, CANTOPEN.
fn sqlite_transient(code: i64) -> bool {
    matches!(code & 0xff, 5 | 6 | 10 | 13 | 14)
}

/// How the database sorted a failure.
enum Sorted {
    Conflict(Constraint),
    Transient,
    Other,
}

fn sort(database: &dyn DatabaseError) -> Sorted {
    if database.kind() == ErrorKind::UniqueViolation {
        let name = database
            .constraint()
            .map(str::to_owned)
            .or_else(|| {
                database
                    .message()
                    .split_once("constraint failed: ")
                    .map(|(_, columns)| columns.to_owned())
            })
            .unwrap_or_default();
        return Sorted::Conflict(Constraint::named(&name));
    }
    let Some(code) = database.code() else {
        return Sorted::Other;
    };
    let transient = if database.try_downcast_ref::<SqliteError>().is_some() {
        code.parse::<i64>().is_ok_and(sqlite_transient)
    } else {
        postgres_transient(&code)
    };
    if transient {
        Sorted::Transient
    } else {
        Sorted::Other
    }
}

impl From<DbErr> for Error {
    fn from(error: DbErr) -> Self {
        let sqlx = match &error {
            DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => return Self::Unavailable(error),
            DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => sqlx,
            _ => return Self::Internal(error),
        };
        let sorted = match sqlx.as_ref() {
            Sqlx::Io(_) | Sqlx::Tls(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed => {
                Sorted::Transient
            }
            Sqlx::Database(database) => sort(database.as_ref()),
            _ => Sorted::Other,
        };
        match sorted {
            Sorted::Conflict(constraint) => Self::Conflict {
                constraint,
                cause: error,
            },
            Sorted::Transient => Self::Unavailable(error),
            Sorted::Other => Self::Internal(error),
        }
    }
}

/// An internal error of the store's own making (a guard that did not
/// match, a row not returned).
pub(crate) fn internal(message: impl Into<String>) -> Error {
    Error::Internal(DbErr::Custom(message.into()))
}

/// A store result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
