//! Benchmark: a webhook backlog drains, and another workspace's spends.
//!
//! Starts the release server binary on a fresh database (SQLite by
//! default; `postgres` uses 127.0.0.1:5432 in a schema of its own), with a
//! receiver on loopback that answers 200 at once. Workspace `noisy` gets an
//! endpoint and N queued deliveries (written as the outbox writes them);
//! then, in the same run:
//! - workspace `quiet`'s spend latency, one after another, with nothing
//!   queued (the baseline) and while the backlog drains: p50, p99, ratio;
//! - how long the backlog takes to drain, hence deliveries per second.
//!
//! ```sh
//! cargo build --release && cargo run --release --example webhook_bench -- sqlite 3000
//! cargo run --release --example webhook_bench -- postgres 3000
//! ```

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use protodesk_credits::auth::{Claims, mint_hs256};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

const SECRET: &str = "bench-secret-bench-secret";
const SPENDS: usize = 500;

fn token(role: &str, workspace: Option<&str>) -> String {
    mint_hs256(
        SECRET,
        &Claims {
            sub: format!("{role}-bench"),
            workspace_id: workspace.map(str::to_owned),
            role: role.to_owned(),
            exp: Utc::now().timestamp() + 3600,
            iss: None,
            aud: None,
        },
    )
    .expect("token")
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(directory: &std::path::Path, database: &str, schema: Option<&str>) -> Server {
    let log = directory.join("server.log");
    let mut command =
        Command::new(env!("CARGO_MANIFEST_DIR").to_owned() + "/target/release/protodesk-credits");
    command
        .current_dir(directory)
        .env("JWT_SECRET", SECRET)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("DATABASE_URL", database)
        .env("WEBHOOK_ALLOW_PRIVATE", "on")
        .env("WEBHOOK_POLL_MS", "20")
        .env("RATE_LIMIT_SUBJECT_PER_SECOND", "off")
        .env("RATE_LIMIT_WORKSPACE_PER_SECOND", "off")
        .env("RENEWAL_CRON", "off")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"));
    if let Some(schema) = schema {
        command.env("DATABASE_SCHEMA", schema);
    }
    let mut server = Server {
        child: command.spawn().expect("build the release binary first"),
        base: String::new(),
    };
    for _ in 0..200 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(at) = text.find("serving GraphQL at http://") {
            let address: String = text[at + "serving GraphQL at ".len()..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"')
                .collect();
            server.base = address.trim_end_matches("/graphql").to_owned();
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the server did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

async fn post(client: &reqwest::Client, base: &str, token: &str, query: &str, variables: Value) -> Value {
    client
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON")
}

async fn spends(client: &reqwest::Client, base: &str, token: &str, prefix: &str) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(SPENDS);
    for i in 0..SPENDS {
        let started = Instant::now();
        let answer = post(
            client,
            base,
            token,
            "mutation($k: String!) { spendCredit(input: {action: TRIAGE, idempotencyKey: $k}) { outcome } }",
            json!({ "k": format!("{prefix}-{i}") }),
        )
        .await;
        assert_eq!(answer["data"]["spendCredit"]["outcome"], "CHARGED", "{answer}");
        latencies.push(started.elapsed());
    }
    latencies.sort_unstable();
    latencies
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let backend = args.next().unwrap_or_else(|| "sqlite".to_owned());
    let queued: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(3_000);
    let directory = tempfile::tempdir().expect("temp dir");
    let schema = format!("bench_webhooks_{}", std::process::id());
    let (database, schema) = match backend.as_str() {
        "postgres" => (
            "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
            Some(schema.as_str()),
        ),
        _ => (
            format!(
                "sqlite://{}?mode=rwc",
                directory.path().join("bench.db").display()
            ),
            None,
        ),
    };
    let server = start(directory.path(), &database, schema).await;
    let client = reqwest::Client::new();

    let received = Arc::new(AtomicUsize::new(0));
    let counted = received.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let operator = token("operator", None);
    for workspace in ["noisy", "quiet"] {
        post(
            &client,
            &server.base,
            &operator,
            "mutation($id: ID!) { createWorkspace(input: {workspaceId: $id, name: \"bench\"}) { wallet { workspaceId } } }",
            json!({ "id": workspace }),
        )
        .await;
        post(
            &client,
            &server.base,
            &operator,
            "mutation($ws: ID!) { adjustCredits(input: {workspaceId: $ws, credits: 100000, reason: \"bench\"}) { transaction { id } } }",
            json!({ "ws": workspace }),
        )
        .await;
    }
    let admin = token("admin", Some("noisy"));
    post(
        &client,
        &server.base,
        &admin,
        "mutation($url: String!) { createWebhookEndpoint(input: {url: $url, eventTypes: [\"credits.top_up_applied\"]}) { secret } }",
        json!({ "url": hook }),
    )
    .await;

    let quiet = token("service", Some("quiet"));
    spends(&client, &server.base, &quiet, "warm").await;
    let before = spends(&client, &server.base, &quiet, "before").await;

    // The backlog, written as the outbox writes it.
    let db = Database::connect(database.clone()).await.expect("database");
    let (search_path, now) = match schema {
        Some(schema) => (
            format!("SET search_path TO \"{schema}\"; "),
            format!("CAST('{}' AS TIMESTAMP WITH TIME ZONE)", Utc::now().to_rfc3339()),
        ),
        None => (String::new(), format!("'{}'", Utc::now().to_rfc3339())),
    };
    for sql in [
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {queued}) \
             INSERT INTO outbox_event (event_type, workspace_id, data, created_at) \
             SELECT 'credits.top_up_applied', 'noisy', '{{}}', {now} FROM n"
        ),
        "INSERT INTO webhook_delivery (endpoint_id, event_id, workspace_id, status, attempts, next_attempt_at, \
         created_at, redelivery) SELECT p.id, e.id, e.workspace_id, 'PENDING', 0, e.created_at, e.created_at, false \
         FROM outbox_event e JOIN webhook_endpoint p ON p.workspace_id = e.workspace_id ORDER BY e.id"
            .to_owned(),
        "INSERT INTO webhook_queue (endpoint_id, workspace_id, next_due_at, pending) \
         SELECT endpoint_id, workspace_id, MIN(next_attempt_at), COUNT(*) FROM webhook_delivery \
         WHERE status = 'PENDING' GROUP BY endpoint_id, workspace_id"
            .to_owned(),
    ] {
        db.execute_unprepared(&format!("{search_path}{sql}")).await.expect("backlog");
    }
    let queued_at = Instant::now();
    let during = spends(&client, &server.base, &quiet, "during").await;
    let delivered_during = received.load(Ordering::Relaxed);
    while received.load(Ordering::Relaxed) < queued {
        assert!(
            queued_at.elapsed() < Duration::from_secs(300),
            "the backlog did not drain"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained = queued_at.elapsed();
    if schema.is_some() {
        db.execute_unprepared(&format!(
            "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
            schema.unwrap_or_default()
        ))
        .await
        .ok();
    }

    let (p50_before, p99_before) = (percentile(&before, 50), percentile(&before, 99));
    let (p50_during, p99_during) = (percentile(&during, 50), percentile(&during, 99));
    println!(
        "backend {backend}, {queued} deliveries queued for one endpoint, {SPENDS} spends of another workspace each side"
    );
    println!(
        "spend p50 {p50_before:?} -> {p50_during:?} (x{:.2})",
        p50_during.as_secs_f64() / p50_before.as_secs_f64()
    );
    println!(
        "spend p99 {p99_before:?} -> {p99_during:?} (x{:.2})",
        p99_during.as_secs_f64() / p99_before.as_secs_f64()
    );
    println!(
        "{delivered_during} delivered while the spends ran; all {queued} in {drained:?}: {:.0} deliveries/s",
        queued as f64 / drained.as_secs_f64()
    );
}
