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

/// One spend as one transaction: a conditional decrement of the wallet,
/// then its ledger row. `$n` placeholders serve both backends.
macro_rules! raw_spend {
    ($pool:expr, $wallet:expr, $key:expr) => {{
        let mut txn = $pool.begin().await?;
        let (sequence, balance): (i64, i64) = sqlx::query_as(
            "UPDATE wallet SET balance_credits = balance_credits - 1, last_sequence = last_sequence + 1 \
             WHERE id = $1 AND balance_credits >= 1 RETURNING last_sequence, balance_credits",
        )
        .bind($wallet)
        .fetch_optional(&mut *txn)
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
        .execute(&mut *txn)
        .await?;
        txn.commit().await?;
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

    pub(super) async fn spend(&self, wallet: i64, key: String) -> anyhow::Result<()> {
        match self {
            Self::Postgres(pool) => raw_spend!(pool, wallet, key),
            Self::Sqlite(pool) => raw_spend!(pool, wallet, key),
        }
        Ok(())
    }
}

/// One transaction per spend, straight to the database.
pub(super) async fn raw(
    db: &DatabaseConnection,
    shape: &'static str,
    clients: u64,
    seconds: u64,
    phase: &'static str,
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
                let wallet = wallet_for(shape, client, i) as i64;
                let begun = Instant::now();
                pool.spend(wallet, format!("{phase}-{client}-{i}")).await?;
                let latency = begun.elapsed().as_secs_f64() * 1000.0;
                latencies.push((latency, latency));
                i += 1;
            }
            anyhow::Ok(latencies)
        })
    });
    Phase::gather(tasks, started).await
}
