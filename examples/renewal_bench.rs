//! Benchmark: how long one sweep takes to renew N due wallets.
//!
//! Fills a fresh database with N wallets on PRO whose period has ended
//! (bulk SQL), then times `roll_over_periods` once, for N = 10,000 and
//! N = 100,000, on SQLite and on PostgreSQL, and prints the time, the rate
//! and the growth from 10k to 100k. The baseline, measured in the same run
//! on a fresh database of 5,000 wallets, settles each wallet in its own
//! transaction (what a writer does for one wallet). Every run ends with the
//! ledger audit of a sample of wallets.
//!
//! ```sh
//! cargo run --release --example renewal_bench            # both backends
//! cargo run --release --example renewal_bench -- postgres 10000 100000
//! ```

mod common;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use domain::invariant::check_totals;
use protodesk_credits::clock::ManualClock;
use protodesk_credits::config::DatabaseConfig;
use protodesk_credits::events::EventBus;
use protodesk_credits::service::Ledger;
use protodesk_credits::store;
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

fn config(backend: &str, directory: &std::path::Path, n: u64) -> DatabaseConfig {
    let (database_url, database_schema) = match backend {
        "sqlite" => (
            format!("sqlite://{}/bench-{n}.db?mode=rwc", directory.display()),
            None,
        ),
        _ => (
            std::env::var("TEST_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
            Some(format!("bench_renewal_{n}_{}", std::process::id())),
        ),
    };
    DatabaseConfig {
        url: database_url,
        schema: database_schema,
        max_connections: 10,
        ..DatabaseConfig::default()
    }
}

/// Turns a template with `{A}` (anchor) and `{E}` (period end) markers into
/// SQL with the backend's placeholders and the values in binding order.
fn bind(
    template: &str,
    backend: DbBackend,
    anchor: DateTime<Utc>,
    end: DateTime<Utc>,
) -> (String, Vec<Value>) {
    let mut sql = String::new();
    let mut values: Vec<Value> = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        sql.push_str(&rest[..start]);
        let marker = &rest[start..start + 3];
        let value = if marker == "{A}" { anchor } else { end };
        if backend == DbBackend::Postgres {
            let index = if marker == "{A}" { 1 } else { 2 };
            sql.push_str(&format!("${index}"));
            if values.len() < index {
                values = vec![anchor.into(), end.into()];
            }
        } else {
            sql.push('?');
            values.push(value.into());
        }
        rest = &rest[start + 3..];
    }
    sql.push_str(rest);
    if backend == DbBackend::Postgres && !template.contains("{E}") {
        values.truncate(1);
    }
    (sql, values)
}

async fn fill(db: &impl ConnectionTrait, n: u64) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let anchor = Utc
        .with_ymd_and_hms(2026, 1, 31, 10, 0, 0)
        .single()
        .expect("date");
    let end = Utc
        .with_ymd_and_hms(2026, 2, 28, 10, 0, 0)
        .single()
        .expect("date");
    let series = format!("WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n})");
    let templates = [
        "INSERT INTO workspace (id, name, created_by, created_at) SELECT 'bench-' || n, 'bench', 'bench', {A} FROM s",
        "INSERT INTO wallet (id, workspace_id, plan_code, balance_credits, last_sequence, billing_anchor_at, \
         period_start_at, period_end_at, created_at, updated_at) \
         SELECT n, 'bench-' || n, 'PRO', 1000, 1, {A}, {A}, {E}, {A}, {A} FROM s",
        "INSERT INTO credit_grant (id, wallet_id, source, granted_credits, remaining_credits, expires_at, \
         period_start_at, created_at) SELECT n, n, 'ALLOCATION', 1000, 1000, {E}, {A}, {A} FROM s",
        "INSERT INTO ledger_entry (id, wallet_id, sequence, kind, amount_credits, balance_after_credits, \
         reference, actor, created_at) SELECT n, n, 1, 'GRANT', 1000, 1000, 'plan:PRO', 'bench', {A} FROM s",
        "INSERT INTO ledger_entry_grant (id, ledger_entry_id, credit_grant_id, amount_credits) \
         SELECT n, n, n, 1000 FROM s",
    ];
    for template in templates {
        let (sql, values) = bind(&format!("{series} {template}"), backend, anchor, end);
        db.execute_raw(Statement::from_sql_and_values(backend, &sql, values))
            .await?;
    }
    common::align_id_sequences(db).await
}

/// Settles `n` wallets one transaction each; returns wallets per second.
async fn baseline(backend: &str, n: u64) -> anyhow::Result<f64> {
    let directory = tempfile::tempdir()?;
    let config = config(backend, directory.path(), n + 1);
    let db = store::connect_and_migrate(&config).await?;
    fill(&db, n).await?;
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).single().expect("date");
    let ledger = Ledger::new(db.clone(), Arc::new(ManualClock::new(now)), EventBus::default());
    let started = Instant::now();
    for index in 1..=n {
        ledger
            .settle_workspace(&format!("bench-{index}"), now)
            .await
            .map_err(|error| anyhow::anyhow!("settle failed: {}", error.code()))?;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    if let Some(schema) = &config.schema {
        db.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await?;
    }
    Ok(rate)
}

async fn run(backend: &str, n: u64) -> anyhow::Result<f64> {
    let directory = tempfile::tempdir()?;
    let config = config(backend, directory.path(), n);
    let db = store::connect_and_migrate(&config).await?;
    fill(&db, n).await?;
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).single().expect("date");
    let ledger = Ledger::new(db.clone(), Arc::new(ManualClock::new(now)), EventBus::default());

    let started = Instant::now();
    let report = ledger
        .roll_over_periods(now)
        .await
        .map_err(|error| anyhow::anyhow!("roll-over failed: {}", error.code()))?;
    let seconds = started.elapsed().as_secs_f64();

    assert_eq!(report.wallets_changed, n, "every due wallet was renewed");
    let wallets = store::verify::all_wallets(&db).await?;
    for wallet in wallets.iter().step_by((n / 100).max(1) as usize) {
        let totals = store::verify::wallet_totals(&db, wallet).await?;
        check_totals(&totals).map_err(anyhow::Error::msg)?;
        assert_eq!(wallet.last_sequence, 3, "EXPIRE and GRANT, once");
    }
    println!(
        "{backend:>8} {n:>7} wallets: {seconds:>7.2} s  {:>7.0} wallets/s  (sample of {} audited)",
        n as f64 / seconds,
        wallets.len().div_ceil((n / 100).max(1) as usize)
    );
    if let Some(schema) = &config.schema {
        db.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await?;
    }
    Ok(seconds)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let backends: Vec<String> = match args.first().map(String::as_str) {
        Some("sqlite") | Some("postgres") => vec![args[0].clone()],
        _ => vec!["sqlite".into(), "postgres".into()],
    };
    let sizes: Vec<u64> = args.iter().filter_map(|arg| arg.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    println!("renewal sweep: N due wallets on PRO, one roll_over_periods call");
    for backend in backends {
        let baseline_rate = baseline(&backend, 5_000).await?;
        println!(
            "{backend:>8} baseline, one transaction per wallet (5000 wallets): {baseline_rate:>7.0} wallets/s"
        );
        let mut times = Vec::new();
        for n in &sizes {
            times.push((*n, run(&backend, *n).await?));
        }
        if let (Some((small_n, small)), Some((large_n, large))) = (times.first(), times.last())
            && large_n > small_n
        {
            println!(
                "{backend:>8} growth {small_n} -> {large_n}: x{:.1} time for x{:.0} wallets; sweep rate at {large_n} = x{:.1} the baseline",
                large / small,
                *large_n as f64 / *small_n as f64,
                *large_n as f64 / large / baseline_rate
            );
        }
    }
    Ok(())
}
