//! Benchmark: the spend path against the database's own limit.
//!
//! For each backend (SQLite, PostgreSQL) and each load shape (uniform over
//! 10,000 wallets; one hot wallet), in one run:
//! 1. the raw baseline: the same number of clients issue, straight to the
//!    same database (a copy of the same tables and rows), one transaction
//!    per spend: a conditional decrement of the wallet and one ledger
//!    insert, as pgbench would; then the raw ceiling: the same statements,
//!    20 spends a commit (what group commit can at best approach);
//! 2. the service: the release server binary as its own process, driven
//!    over HTTP GraphQL (`spendCredit`, service tokens, distinct keys) by
//!    the same number of clients, each with its own connection;
//! 3. the service again at half its measured maximum rate (open loop,
//!    after a second at that rate that is not counted, so the phase
//!    measures that load rather than the backlog of the one before; a
//!    spend held back by its client's previous answer counts from its
//!    scheduled time);
//! 4. the service again, each client sending a `reserveCredits` of one
//!    credit and its `captureHold` instead of a spend: pairs per second,
//!    and what a pair costs against a spend (the aim: at most twice);
//! 5. one client alone for a second, against the baseline and the service:
//!    the database's own cost of one transaction on this machine (what the
//!    ratios are taken against) and a lone spend's latency.
//!
//! It prints throughput, p50/p99/p999 latency and the ratio to the raw
//! baseline; the server's cold start to ready, idle and peak memory; CPU
//! per spend of the server, of this driver, of the whole machine (and of
//! the machine less this driver, service against raw) and (on a local
//! PostgreSQL) of the database server; and ends each case by
//! checking that the number of CHARGED answers equals the number of SPEND
//! rows and that the ledger invariant holds for every wallet.
//!
//! ```sh
//! cargo build --release && cargo run --release --example spend_bench
//! ```
//! Options (environment): `CLIENTS` (default 64), `SECONDS` per phase
//! (default 5), `BACKENDS` (`sqlite,postgres`), `SHAPES` (`uniform,hot`),
//! `TEST_DATABASE_URL` (default: the local server over TCP without TLS,
//! for the baseline and the service alike), `SERVER_LOG` (the server's
//! `RUST_LOG`), `BUDGETS=on` (every service wallet gets a HARD daily
//! EACH_AGENT budget that never refuses, and each spend names one of
//! 1,000 agents, so every charge is checked against and counted in it).

#[path = "../common/mod.rs"]
mod common;
mod load;
mod machine;
mod phase;
mod raw;

use load::*;
use machine::*;
use phase::*;
use raw::*;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use protodesk_credits::auth::{Claims, mint_hs256};
use protodesk_credits::config::DatabaseConfig;
use protodesk_credits::store;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};

const SECRET: &str = "bench-secret-bench-secret";
const UNIFORM_WALLETS: u64 = 10_000;
/// Length of the one-client phases: a lone spend's latency, and the
/// database's own cost of one transaction (what the ratios are taken
/// against).
const LONE_SECONDS: u64 = 1;
/// An open loop runs this long at its rate before its spends are counted.
const OPEN_LOOP_WARM_UP: Duration = Duration::from_secs(1);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// A database of its own: a SQLite file or a PostgreSQL schema.
fn database(backend: &str, directory: &std::path::Path, name: &str, clients: u32) -> DatabaseConfig {
    match backend {
        "sqlite" => DatabaseConfig {
            url: format!("sqlite://{}/{name}.db?mode=rwc", directory.display()),
            schema: None,
            max_connections: clients,
            ..DatabaseConfig::default()
        },
        _ => DatabaseConfig {
            url: std::env::var("TEST_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into()),
            schema: Some(format!("bench_spend_{name}_{}", std::process::id())),
            max_connections: clients,
            ..DatabaseConfig::default()
        },
    }
}

/// `n` workspaces `w-1` … `w-n`, each with a never-expiring bonus (adjustment) grant of
/// 10,000,000 credits and its GRANT row: a state the service itself could write.
async fn fill(db: &DatabaseConnection, n: u64) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().expect("date");
    let series = format!("WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n})");
    let placeholder = if backend == DbBackend::Postgres { "$1" } else { "?" };
    for template in [
        "INSERT INTO workspace (id, name, created_by, created_at) SELECT 'w-' || n, 'bench', 'bench', {T} FROM s",
        "INSERT INTO wallet (id, workspace_id, plan_code, balance_credits, last_sequence, created_at, updated_at) \
         SELECT n, 'w-' || n, 'PRO_TRIAL', 10000000, 1, {T}, {T} FROM s",
        "INSERT INTO credit_grant (id, wallet_id, source, granted_credits, remaining_credits, created_at) \
         SELECT n, n, 'ADJUSTMENT', 10000000, 10000000, {T} FROM s",
        "INSERT INTO ledger_entry (id, wallet_id, sequence, kind, amount_credits, balance_after_credits, \
         reference, actor, created_at, bonus_after_credits) \
         SELECT n, n, 1, 'GRANT', 10000000, 10000000, 'bench', 'bench', {T}, 10000000 FROM s",
        "INSERT INTO ledger_entry_grant (id, ledger_entry_id, credit_grant_id, amount_credits) \
         SELECT n, n, n, 10000000 FROM s",
    ] {
        let sql = format!("{series} {}", template.replace("{T}", placeholder));
        let count = sql.matches(placeholder).count();
        let values: Vec<Value> = if backend == DbBackend::Postgres {
            vec![at.into()]
        } else {
            vec![at.into(); count]
        };
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    if backend == DbBackend::Postgres && env_or("ANALYZE_AFTER_FILL", String::new()) == "on" {
        // Statistics taken while the keys table is empty: the state in
        // which cached generic plans go wrong (see the README's benchmarks).
        db.execute_unprepared("ANALYZE").await?;
    }
    common::align_id_sequences(db).await
}

async fn drop_database(config: &DatabaseConfig, db: &DatabaseConnection) {
    if let Some(schema) = &config.schema {
        let _ = db
            .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await;
    }
}

struct Server {
    child: std::process::Child,
    base: String,
    cold_start: Duration,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_server(config: &DatabaseConfig, http: &reqwest::Client) -> anyhow::Result<Server> {
    // SERVER_BINARY: another build, to compare binaries alternated in one sitting.
    let binary = std::env::var("SERVER_BINARY").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/protodesk-credits"),
        PathBuf::from,
    );
    anyhow::ensure!(binary.exists(), "build the server first: cargo build --release");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let started = Instant::now();
    let mut command = std::process::Command::new(&binary);
    command
        .env("DATABASE_URL", &config.url)
        .env("JWT_SECRET", SECRET)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("RENEWAL_CRON", "off")
        // The spend path's capacity is measured, not the per-workspace
        // rate limit (which would cap the hot wallet at 1,000 a second).
        .env("RATE_LIMIT_SUBJECT_PER_SECOND", "off")
        .env("RATE_LIMIT_WORKSPACE_PER_SECOND", "off")
        .env(
            "RUST_LOG",
            std::env::var("SERVER_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .env_remove("DATABASE_SCHEMA");
    if let Some(schema) = &config.schema {
        command.env("DATABASE_SCHEMA", schema);
    }
    let child = command.spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    loop {
        if let Ok(response) = http.get(format!("{base}/readyz")).send().await
            && response.status() == 200
        {
            break;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "server not ready");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(Server {
        child,
        base,
        cold_start: started.elapsed(),
    })
}

/// Spends per transaction of the raw ceiling.
const RAW_PER_COMMIT: u64 = 20;

async fn case(backend: &str, shape: &'static str, clients: u64, seconds: u64) -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let wallets = if shape == "hot" { 1 } else { UNIFORM_WALLETS };

    let raw_config = database(backend, directory.path(), &format!("raw_{shape}"), clients as u32);
    let raw_db = store::connect_and_migrate(&raw_config).await?;
    fill(&raw_db, wallets).await?;
    let own = std::process::id();
    let own_before = cpu_time(own);
    let (database_before, machine_before) = (postgres_cpu(), machine_cpu());
    let baseline = raw(&raw_db, shape, clients, seconds, "raw", 1).await?;
    let machine_after = machine_cpu();
    let raw_busy = busy_share(machine_before, machine_after);
    let raw_machine = machine_after.0.saturating_sub(machine_before.0);
    let raw_generator_cpu = cpu_time(own).saturating_sub(own_before);
    let raw_database_cpu = postgres_cpu().saturating_sub(database_before);
    let ceiling = raw(&raw_db, shape, clients, seconds, "batched", RAW_PER_COMMIT).await?;
    let raw_lone = raw(&raw_db, shape, 1, LONE_SECONDS, "lone", 1).await?;
    drop_database(&raw_config, &raw_db).await;
    raw_db.close().await?;

    let config = database(backend, directory.path(), &format!("svc_{shape}"), clients as u32);
    let db = store::connect_and_migrate(&config).await?;
    fill(&db, wallets).await?;
    if with_budgets() {
        add_budgets(&db, wallets).await?;
    }
    let http = reqwest::Client::new();
    let server = start_server(&config, &http).await?;
    let pid = server.child.id();
    let idle_kib = kib(pid, "VmRSS:");
    let load = Load {
        address: server.base.trim_start_matches("http://").parse()?,
        tokens: Arc::new((1..=wallets).map(token).collect()),
        shape,
        clients,
        seconds,
        charged: Arc::new(AtomicU64::new(0)),
    };
    let (cpu_before, own_before, database_before) = (cpu_time(pid), cpu_time(own), postgres_cpu());
    let machine_before = machine_cpu();
    let max = service(&load, None, "max").await?;
    let machine_after = machine_cpu();
    let busy = busy_share(machine_before, machine_after);
    let service_machine = machine_after.0.saturating_sub(machine_before.0);
    let server_cpu = cpu_time(pid).saturating_sub(cpu_before);
    let generator_cpu = cpu_time(own).saturating_sub(own_before);
    let database_cpu = postgres_cpu().saturating_sub(database_before);
    let half = service(&load, Some(max.per_second / 2.0), "half").await?;
    let pairs = service(&load, None, "pairs").await?;
    let lone = service(
        &Load {
            clients: 1,
            seconds: LONE_SECONDS,
            ..load.clone()
        },
        None,
        "lone",
    )
    .await?;
    let peak_kib = kib(pid, "VmHWM:");
    let cold_start = server.cold_start;
    drop(server);

    let rows = spend_rows(&db).await?;
    let audit = store::verify::audit(&db).await?;
    let charged = load.charged.load(Ordering::Relaxed);
    println!("{backend:>8} {shape:<7} raw     {}", baseline.row());
    println!(
        "{backend:>8} {shape:<7} raw{RAW_PER_COMMIT:<4} {:.0}/s  the raw ceiling: {RAW_PER_COMMIT} spends a commit",
        ceiling.per_second
    );
    println!(
        "{backend:>8} {shape:<7} service {}  = x{:.2} raw, {:.2} of the ceiling",
        max.row(),
        max.per_second / baseline.per_second,
        max.per_second / ceiling.per_second
    );
    println!(
        "{backend:>8} {shape:<7} half    {}  (open loop at {:.0}/s; from the scheduled times p50 {:.2} ms, p99 {:.2} ms)",
        half.row(),
        max.per_second / 2.0,
        percentile(&half.from_schedule, 0.50),
        percentile(&half.from_schedule, 0.99),
    );
    println!(
        "{backend:>8} {shape:<7} pairs   {}  reserve+capture; a pair costs x{:.2} a spend",
        pairs.row(),
        max.per_second / pairs.per_second
    );
    println!(
        "{backend:>8} {shape:<7} lone    one client, {LONE_SECONDS} s each: raw {}; service {}",
        raw_lone.latency(),
        lone.latency()
    );
    println!(
        "{backend:>8} {shape:<7} checks  CHARGED {charged} = SPEND rows {rows}: {}; invariant over {} wallets: {}",
        if charged == rows { "ok" } else { "MISMATCH" },
        audit.wallets,
        if audit.violations.is_empty() {
            "ok".to_owned()
        } else {
            format!("{} VIOLATIONS", audit.violations.len())
        },
    );
    println!(
        "{backend:>8} {shape:<7} server  cold start to ready {:.0} ms; memory idle {:.1} MiB, peak {:.1} MiB; \
         CPU {:.0} us per spend at the maximum",
        cold_start.as_secs_f64() * 1000.0,
        idle_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0,
        server_cpu.as_secs_f64() * 1e6 / max.latencies.len().max(1) as f64
    );
    let per_spend =
        |cpu: Duration, phase: &Phase| cpu.as_secs_f64() * 1e6 / phase.latencies.len().max(1) as f64;
    println!(
        "{backend:>8} {shape:<7} driver  CPU per spend of this process: raw {:.0} us{}, service {:.0} us",
        per_spend(raw_generator_cpu, &baseline),
        if backend == "sqlite" {
            " (SQLite runs inside it)"
        } else {
            ""
        },
        per_spend(generator_cpu, &max),
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    println!(
        "{backend:>8} {shape:<7} machine CPU busy (every process, {cores} cores): raw {:.0}% ({:.0} us per spend), \
         service {:.0}% ({:.0} us per spend) at the maximum",
        raw_busy * 100.0,
        raw_busy * cores * 1e6 / baseline.per_second,
        busy * 100.0,
        busy * cores * 1e6 / max.per_second,
    );
    // All the machine's work per spend but the load generator's (on SQLite
    // the raw baseline's database runs inside this process: not told).
    let machine_less_driver =
        |machine: Duration, driver: Duration, phase: &Phase| per_spend(machine.saturating_sub(driver), phase);
    println!(
        "{backend:>8} {shape:<7} machine CPU per spend less this driver: {}service {:.0} us",
        if backend == "postgres" {
            format!(
                "raw {:.0} us, ",
                machine_less_driver(raw_machine, raw_generator_cpu, &baseline)
            )
        } else {
            String::new()
        },
        machine_less_driver(service_machine, generator_cpu, &max),
    );
    if backend == "postgres" && !database_cpu.is_zero() {
        println!(
            "{backend:>8} {shape:<7} database  CPU per spend of the PostgreSQL server: raw {:.0} us, service {:.0} us \
             at the maximum",
            per_spend(raw_database_cpu, &baseline),
            per_spend(database_cpu, &max),
        );
    }
    drop_database(&config, &db).await;
    anyhow::ensure!(charged == rows && audit.violations.is_empty(), "checks failed");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients: u64 = env_or("CLIENTS", 64);
    let seconds: u64 = env_or("SECONDS", 5);
    println!(
        "spend path: {clients} clients, {seconds} s per phase; latencies per spend{}",
        if with_budgets() {
            "; an EACH_AGENT budget on every wallet, spends over 1,000 agents"
        } else {
            ""
        }
    );
    for backend in list("BACKENDS", "sqlite,postgres") {
        for shape in list("SHAPES", "uniform,hot") {
            let shape: &'static str = if shape == "hot" { "hot" } else { "uniform" };
            case(&backend, shape, clients, seconds).await?;
        }
    }
    Ok(())
}
