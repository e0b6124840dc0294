//! The raw baseline: one transaction per spend, straight to the database.

use super::*;

/// The raw baseline's pool: sqlx itself, under the service's own
/// connection settings, so the baseline's client costs what a thin driver
/// costs (as pgbench's would), not an ORM's.
#[derive(Clone)]
pub(super) enum RawPool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// Spends in one transaction: for each, a conditional decrement of the
/// wallet, then its ledger row. `$n` placeholders serve both backends.
macro_rules! raw_spends {
    ($pool:expr, $spends:expr) => {{
        let mut txn = $pool.begin().await?;
        for (wallet, key) in $spends {
            raw_spend!(txn, wallet, key);
        }
        txn.commit().await?;
    }};
}

/// One spend's two statements inside `$txn`.
macro_rules! raw_spend {
    ($txn:expr, $wallet:expr, $key:expr) => {{
        let (sequence, balance): (i64, i64) = sqlx::query_as(
            "UPDATE wallet SET balance_credits = balance_credits - 1, last_sequence = last_sequence + 1 \
             WHERE id = $1 AND balance_credits >= 1 RETURNING last_sequence, balance_credits",
        )
        .bind($wallet)
        .fetch_optional(&mut *$txn)
        .await?
        .ok_or_else(|| anyhow::anyhow!("wallet {} is empty", $wallet))?;
        sqlx::query(
            "INSERT INTO ledger_entry (wallet_id, sequence, kind, amount_credits, balance_after_credits, action, \
             actor, idempotency_key, created_at) VALUES ($1, $2, 'SPEND', -1, $3, 'TRIAGE', 'bench', $4, $5)",
        )
        .bind($wallet)
        .bind(sequence)
        .bind(balance)
        .bind($key)
        .bind(Utc::now())
        .execute(&mut *$txn)
        .await?;
    }};
}

impl RawPool {
    pub(super) fn of(db: &DatabaseConnection) -> Self {
        if db.get_database_backend() == DbBackend::Postgres {
            Self::Postgres(db.get_postgres_connection_pool().clone())
        } else {
            Self::Sqlite(db.get_sqlite_connection_pool().clone())
        }
    }

    /// `spends` (wallet, key) in one transaction.
    pub(super) async fn spend(&self, spends: Vec<(i64, String)>) -> anyhow::Result<()> {
        match self {
            Self::Postgres(pool) => raw_spends!(pool, spends),
            Self::Sqlite(pool) => raw_spends!(pool, spends),
        }
        Ok(())
    }
}

/// `per_commit` spends per transaction (1: the raw baseline; 20: the
/// batched ceiling a group commit approaches), straight to the database.
/// Latencies are per transaction.
pub(super) async fn raw(
    db: &DatabaseConnection,
    shape: &'static str,
    clients: u64,
    seconds: u64,
    phase: &'static str,
    per_commit: u64,
) -> anyhow::Result<Phase> {
    let pool = RawPool::of(db);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks = (0..clients).map(|client| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while Instant::now() < deadline {
                let spends = (i..i + per_commit)
                    .map(|n| {
                        (
                            wallet_for(shape, client, n) as i64,
                            format!("{phase}-{client}-{n}"),
                        )
                    })
                    .collect();
                let begun = Instant::now();
                pool.spend(spends).await?;
                let latency = begun.elapsed().as_secs_f64() * 1000.0;
                // One latency per spend, so that the rate counts spends.
                latencies.extend(std::iter::repeat_n((latency, latency), per_commit as usize));
                i += per_commit;
            }
            anyhow::Ok(latencies)
        })
    });
    Phase::gather(tasks, started).await
}
