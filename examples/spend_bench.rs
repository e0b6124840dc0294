//! Benchmark: the spend path against the database's own limit.
//!
//! For each backend (SQLite, PostgreSQL) and each load shape (uniform over
//! 10,000 wallets; one hot wallet), in one run:
//! 1. the raw baseline: the same number of clients issue, straight to the
//!    same database (a copy of the same tables and rows), one transaction
//!    per spend: a conditional decrement of the wallet and one ledger
//!    insert, as pgbench would;
//! 2. the service: the release server binary as its own process, driven
//!    over HTTP GraphQL (`spendCredit`, service tokens, distinct keys) by
//!    the same number of clients, each with its own connection;
//! 3. the service again at half its measured maximum rate (open loop,
//!    after a second at that rate that is not counted, so the phase
//!    measures that load rather than the backlog of the one before; a
//!    spend held back by its client's previous answer counts from its
//!    scheduled time);
//! 4. one client alone for a second, against the baseline and the service:
//!    the database's own cost of one transaction on this machine (what the
//!    ratios are taken against) and a lone spend's latency.
//!
//! It prints throughput, p50/p99/p999 latency and the ratio to the raw
//! baseline; the server's cold start to ready, idle and peak memory; CPU
//! per spend of the server, of this driver, of the whole machine and (on a
//! local PostgreSQL) of the database server; and ends each case by
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

mod common;

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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Throughput and latency of one phase.
struct Phase {
    per_second: f64,
    /// Milliseconds, sorted.
    latencies: Vec<f64>,
    /// Open loop: milliseconds from each spend's scheduled time, sorted
    /// (the same as `latencies` in a closed loop).
    from_schedule: Vec<f64>,
}

/// One spend's latency, and its latency counted from its scheduled time.
type Sample = (f64, f64);

impl Phase {
    /// Waits for the clients' samples.
    async fn gather(
        tasks: impl Iterator<Item = tokio::task::JoinHandle<anyhow::Result<Vec<Sample>>>>,
        started: Instant,
    ) -> anyhow::Result<Self> {
        let (mut latencies, mut from_schedule) = (Vec::new(), Vec::new());
        for task in futures_util::future::join_all(tasks).await {
            let (latency, scheduled): (Vec<f64>, Vec<f64>) = task??.into_iter().unzip();
            latencies.extend(latency);
            from_schedule.extend(scheduled);
        }
        latencies.sort_by(f64::total_cmp);
        from_schedule.sort_by(f64::total_cmp);
        Ok(Self {
            per_second: latencies.len() as f64 / started.elapsed().as_secs_f64(),
            latencies,
            from_schedule,
        })
    }

    fn latency(&self) -> String {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms",
            percentile(&self.latencies, 0.50),
            percentile(&self.latencies, 0.99),
        )
    }

    fn row(&self) -> String {
        format!(
            "{:>8.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  p999 {:>6.2} ms",
            self.per_second,
            percentile(&self.latencies, 0.50),
            percentile(&self.latencies, 0.99),
            percentile(&self.latencies, 0.999),
        )
    }
}

/// Which wallet the `i`-th spend of a client goes to.
fn wallet_for(shape: &str, client: u64, i: u64) -> u64 {
    if shape == "hot" {
        1
    } else {
        // A cheap, well-spread sequence over the wallets.
        (client * 7919 + i * 104_729) % UNIFORM_WALLETS + 1
    }
}

/// The raw baseline's pool: sqlx itself, under the service's own
/// connection settings, so the baseline's client costs what a thin driver
/// costs (as pgbench's would), not an ORM's.
#[derive(Clone)]
enum RawPool {
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
    fn of(db: &DatabaseConnection) -> Self {
        if db.get_database_backend() == DbBackend::Postgres {
            Self::Postgres(db.get_postgres_connection_pool().clone())
        } else {
            Self::Sqlite(db.get_sqlite_connection_pool().clone())
        }
    }

    async fn spend(&self, wallet: i64, key: String) -> anyhow::Result<()> {
        match self {
            Self::Postgres(pool) => raw_spend!(pool, wallet, key),
            Self::Sqlite(pool) => raw_spend!(pool, wallet, key),
        }
        Ok(())
    }
}

/// One transaction per spend, straight to the database.
async fn raw(
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

fn kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// CPU time of a `/proc/<pid>/stat` line: user and system (the 14th and
/// 15th fields, in clock ticks of 100 per second), and with `children`
/// also that of its exited children (16th and 17th).
fn stat_cpu(stat: &str, children: bool) -> Duration {
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(if children { 4 } else { 2 })
                .filter_map(|n| n.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// CPU time (user + system) a process has used so far.
fn cpu_time(pid: u32) -> Duration {
    stat_cpu(
        &std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default(),
        false,
    )
}

/// The machine's CPU time so far, busy and in all, summed over its cores
/// (`/proc/stat`; idle and I/O wait count as not busy).
fn machine_cpu() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    let all: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (
        Duration::from_millis(all.saturating_sub(idle) * 10),
        Duration::from_millis(all * 10),
    )
}

/// The share of the machine's CPU that was busy between two readings of
/// [`machine_cpu`].
fn busy_share(before: (Duration, Duration), after: (Duration, Duration)) -> f64 {
    let busy = after.0.saturating_sub(before.0).as_secs_f64();
    let all = after.1.saturating_sub(before.1).as_secs_f64();
    if all > 0.0 { busy / all } else { 0.0 }
}

/// CPU time used so far by the local PostgreSQL server: every `postgres`
/// process, and the backends that have exited (in the postmaster's
/// children's time). Zero when the server is not on this machine.
fn postgres_cpu() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    entries
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("stat")).ok())
        .filter(|stat| stat.contains(" (postgres) "))
        .map(|stat| stat_cpu(&stat, true))
        .sum()
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

fn token(workspace: u64) -> String {
    mint_hs256(
        SECRET,
        &Claims {
            sub: "bench".to_owned(),
            workspace_id: Some(format!("w-{workspace}")),
            role: "service".to_owned(),
            exp: Utc::now().timestamp() + 3600,
            iss: None,
            aud: None,
        },
    )
    .expect("token")
}

const SPEND: &str =
    "mutation($k: String!) { spendCredit(input: {action: TRIAGE, idempotencyKey: $k}) { outcome } }";

/// The same spend for an agent (`BUDGETS=on`).
const SPEND_FOR_AGENT: &str = "mutation($k: String!, $a: ID) { spendCredit(input: {action: TRIAGE, idempotencyKey: $k, agentId: $a}) { outcome } }";

/// Agents the spends are spread over with `BUDGETS=on`.
const AGENTS: u64 = 1_000;

/// Whether `BUDGETS=on`.
fn with_budgets() -> bool {
    env_or("BUDGETS", String::new()) == "on"
}

/// `BUDGETS=on`: a HARD daily EACH_AGENT budget on every wallet, with a
/// limit no run reaches (written as `setBudget` would).
async fn add_budgets(db: &DatabaseConnection, n: u64) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().expect("date");
    let placeholder = if backend == DbBackend::Postgres { "$1" } else { "?" };
    let sql = format!(
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) \
         INSERT INTO budget (wallet_id, name, applies_to, budget_window, limit_credits, mode, counting_since, \
         created_at, updated_at) SELECT n, 'per-agent', 'EACH_AGENT', 'DAY', 1000000000, 'HARD', {p}, {p}, {p} FROM s",
        p = placeholder
    );
    let values: Vec<Value> = if backend == DbBackend::Postgres {
        vec![at.into()]
    } else {
        vec![at.into(); 3]
    };
    db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    Ok(())
}

/// What drives the server: where, as whom, how hard; and the CHARGED count.
#[derive(Clone)]
struct Load {
    address: std::net::SocketAddr,
    tokens: Arc<Vec<String>>,
    shape: &'static str,
    clients: u64,
    seconds: u64,
    charged: Arc<AtomicU64>,
}

/// One keep-alive HTTP/1.1 connection that posts prepared requests, as a
/// load generator such as wrk does: the request is written as bytes and
/// only the status, `Content-Length` and body of the answer are read, so
/// the generator's own CPU time, which shares the machine with the server
/// and the database, stays small.
struct Connection {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(address: std::net::SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(4096),
        })
    }

    /// Posts `body` to `/graphql` with a bearer token; the answer's body.
    async fn post(&mut self, token: &str, body: &str) -> anyhow::Result<&[u8]> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = format!(
            "POST /graphql HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(request.as_bytes()).await?;
        self.buffer.clear();
        let (head, length) = loop {
            if let Some(end) = self.buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buffer[..end])?;
                anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "answered {head}");
                let length = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .ok_or_else(|| anyhow::anyhow!("no content-length in {head}"))?;
                break (end + 4, length);
            }
            anyhow::ensure!(
                self.stream.read_buf(&mut self.buffer).await? > 0,
                "connection closed"
            );
        };
        while self.buffer.len() < head + length {
            anyhow::ensure!(
                self.stream.read_buf(&mut self.buffer).await? > 0,
                "connection closed"
            );
        }
        Ok(&self.buffer[head..head + length])
    }
}

/// The part of a spend's answer the benchmark checks.
#[derive(serde::Deserialize)]
struct Answer<'a> {
    #[serde(borrow)]
    data: Option<AnswerData<'a>>,
}

#[derive(serde::Deserialize)]
struct AnswerData<'a> {
    #[serde(rename = "spendCredit", borrow)]
    spend_credit: SpendAnswer<'a>,
}

#[derive(serde::Deserialize)]
struct SpendAnswer<'a> {
    outcome: &'a str,
}

/// Spends over HTTP: closed loop (`rate` None) or open loop at `rate`/s.
async fn service(load: &Load, rate: Option<f64>, phase: &'static str) -> anyhow::Result<Phase> {
    let Load {
        address,
        tokens,
        shape,
        clients,
        seconds,
        charged,
    } = load;
    let (address, shape, clients, seconds) = (*address, *shape, *clients, *seconds);
    let started = Instant::now();
    let counted_from = started + rate.map_or(Duration::ZERO, |_| OPEN_LOOP_WARM_UP);
    let deadline = counted_from + Duration::from_secs(seconds);
    let tasks = (0..clients).map(|client| {
        let tokens = tokens.clone();
        let charged = charged.clone();
        tokio::spawn(async move {
            // One connection per client.
            let mut connection = Connection::open(address).await?;
            let interval = rate.map(|rate| Duration::from_secs_f64(clients as f64 / rate));
            let budgets = with_budgets();
            let query = serde_json::to_string(if budgets { SPEND_FOR_AGENT } else { SPEND })?;
            let mut latencies = Vec::new();
            let mut answered = started;
            let mut i = 0u64;
            loop {
                let scheduled = match interval {
                    // Spread the clients' first sends over one interval.
                    Some(interval) => started + interval.mul_f64(i as f64 + client as f64 / clients as f64),
                    None => Instant::now(),
                };
                if scheduled >= deadline {
                    break;
                }
                if interval.is_some() {
                    // Not in a closed loop: sleeping until now would still
                    // wait for the timer's next tick (up to 1 ms).
                    tokio::time::sleep_until(scheduled.into()).await;
                }
                let sent = Instant::now();
                let wallet = wallet_for(shape, client, i);
                let body = if budgets {
                    let agent = (client * 7919 + i * 31) % AGENTS;
                    format!(r#"{{"query":{query},"variables":{{"k":"{phase}-{client}-{i}","a":"agent-{agent}"}}}}"#)
                } else {
                    format!(r#"{{"query":{query},"variables":{{"k":"{phase}-{client}-{i}"}}}}"#)
                };
                let answer = connection.post(&tokens[(wallet - 1) as usize], &body).await?;
                // A spend held back by this client's previous answer counts
                // from its scheduled time (no coordinated omission); one
                // sent late only by the driver's timer (Tokio's ticks are
                // 1 ms) counts from when it was sent.
                let from = if answered > scheduled { scheduled } else { sent };
                answered = Instant::now();
                if scheduled >= counted_from {
                    latencies.push((
                        answered.duration_since(from).as_secs_f64() * 1000.0,
                        answered.duration_since(scheduled).as_secs_f64() * 1000.0,
                    ));
                }
                let outcome = serde_json::from_slice::<Answer<'_>>(answer)
                    .ok()
                    .and_then(|answer| answer.data)
                    .map(|data| data.spend_credit.outcome);
                anyhow::ensure!(
                    outcome == Some("CHARGED"),
                    "spend answered {}",
                    String::from_utf8_lossy(answer)
                );
                charged.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            anyhow::Ok(latencies)
        })
    });
    Phase::gather(tasks, counted_from).await
}

async fn spend_rows(db: &DatabaseConnection) -> anyhow::Result<u64> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM ledger_entry WHERE kind = 'SPEND'",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no count"))?;
    Ok(row.try_get::<i64>("", "n")? as u64)
}

async fn case(backend: &str, shape: &'static str, clients: u64, seconds: u64) -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let wallets = if shape == "hot" { 1 } else { UNIFORM_WALLETS };

    let raw_config = database(backend, directory.path(), &format!("raw_{shape}"), clients as u32);
    let raw_db = store::connect_and_migrate(&raw_config).await?;
    fill(&raw_db, wallets).await?;
    let own = std::process::id();
    let own_before = cpu_time(own);
    let (database_before, machine_before) = (postgres_cpu(), machine_cpu());
    let baseline = raw(&raw_db, shape, clients, seconds, "raw").await?;
    let raw_busy = busy_share(machine_before, machine_cpu());
    let raw_generator_cpu = cpu_time(own).saturating_sub(own_before);
    let raw_database_cpu = postgres_cpu().saturating_sub(database_before);
    let raw_lone = raw(&raw_db, shape, 1, LONE_SECONDS, "lone").await?;
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
    let busy = busy_share(machine_before, machine_cpu());
    let server_cpu = cpu_time(pid).saturating_sub(cpu_before);
    let generator_cpu = cpu_time(own).saturating_sub(own_before);
    let database_cpu = postgres_cpu().saturating_sub(database_before);
    let half = service(&load, Some(max.per_second / 2.0), "half").await?;
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
        "{backend:>8} {shape:<7} service {}  = x{:.2} raw",
        max.row(),
        max.per_second / baseline.per_second
    );
    println!(
        "{backend:>8} {shape:<7} half    {}  (open loop at {:.0}/s; from the scheduled times p50 {:.2} ms, p99 {:.2} ms)",
        half.row(),
        max.per_second / 2.0,
        percentile(&half.from_schedule, 0.50),
        percentile(&half.from_schedule, 0.99),
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
