//! Benchmark: many live balance subscribers on one server instance.
//!
//! Starts the release server binary (a separate process, so its memory is
//! its own) on a fresh database, opens N graphql-transport-ws connections,
//! each with one `balanceChanged` subscription (N / 100 per workspace over
//! 100 workspaces), and measures:
//! - the server's resident memory before any connection, with N
//!   acknowledged connections that subscribe to nothing (the baseline), and
//!   with all N subscribers idle, hence the memory per idle subscriber and
//!   the subscription's share of it;
//! - while spends run, the delay from each event's commit time (its `at`,
//!   stamped in the committing transaction, so this is an upper bound) to
//!   its receipt, p50/p99/max, next to the spends' own HTTP round trip
//!   measured in the same run as the baseline;
//! - that every subscriber received every event of its workspace, in order.
//!
//! ```sh
//! cargo build --release && cargo run --release --example subscribers_bench -- 10000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use protodesk_credits::auth::{Claims, mint_hs256};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SECRET: &str = "bench-secret-bench-secret";
const WORKSPACES: usize = 100;
const SPENDS: usize = 400;

fn token(role: &str, workspace: Option<&str>, sub: &str) -> String {
    mint_hs256(
        SECRET,
        &Claims {
            sub: sub.to_owned(),
            workspace_id: workspace.map(str::to_owned),
            role: role.to_owned(),
            exp: Utc::now().timestamp() + 3600,
            iss: None,
            aud: None,
        },
    )
    .expect("token")
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let subscribers: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let binary = std::env::current_exe()?
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("protodesk-credits"))
        .ok_or_else(|| anyhow::anyhow!("cannot locate the server binary"))?;
    anyhow::ensure!(
        binary.exists(),
        "build the server first: cargo build --release ({})",
        binary.display()
    );
    let directory = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let server = Server(
        std::process::Command::new(&binary)
            .current_dir(directory.path())
            .env("JWT_SECRET", SECRET)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("RENEWAL_CRON", "off")
            .env("RUST_LOG", "warn")
            .spawn()?,
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    while http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let operator = token("operator", None, "bench");
    for w in 0..WORKSPACES {
        let query = format!(
            "mutation {{ createWorkspace(input: {{workspaceId: \"bench-{w}\", name: \"b\"}}) {{ wallet {{ workspaceId }} }} }}"
        );
        http.post(format!("{base}/graphql"))
            .bearer_auth(&operator)
            .json(&json!({ "query": query }))
            .send()
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kib = rss_kib(server.0.id());

    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let received: Arc<Mutex<Vec<(usize, i64)>>> = Arc::default();
    // Connections first (acknowledged, nothing subscribed), measured; then
    // every connection subscribes, measured again.
    let (acked_sender, mut acked) = tokio::sync::mpsc::channel::<()>(subscribers);
    let (ready_sender, mut ready) = tokio::sync::mpsc::channel::<()>(subscribers);
    let (go_sender, go) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    for index in 0..subscribers {
        let workspace = format!("bench-{}", index % WORKSPACES);
        let token = token("agent", Some(&workspace), &format!("reader-{index}"));
        let url = format!("ws://127.0.0.1:{port}/graphql");
        let latencies = latencies.clone();
        let received = received.clone();
        let ready_sender = ready_sender.clone();
        let acked_sender = acked_sender.clone();
        let mut go = go.clone();
        tokio::spawn(async move {
            let mut request = url.into_client_request().expect("request");
            request.headers_mut().insert(
                "sec-websocket-protocol",
                "graphql-transport-ws".parse().expect("header"),
            );
            let Ok((mut socket, _)) = tokio_tungstenite::connect_async(request).await else {
                return;
            };
            let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
            let subscribe = json!({ "id": "1", "type": "subscribe", "payload": {
                "query": "subscription { balanceChanged { kind sequence at balance { total } } }" } });
            if socket.send(Message::text(init.to_string())).await.is_err() {
                return;
            }
            let mut subscribed = false;
            let mut last_sequence = 0;
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else { continue };
                let value: Value = serde_json::from_str(&text).unwrap_or_default();
                match value["type"].as_str() {
                    Some("connection_ack") if !subscribed => {
                        subscribed = true;
                        let _ = acked_sender.send(()).await;
                        if go.wait_for(|go| *go).await.is_err() {
                            return;
                        }
                        let _ = socket.send(Message::text(subscribe.to_string())).await;
                    }
                    Some("next") => {
                        let change = &value["payload"]["data"]["balanceChanged"];
                        let sequence = change["sequence"].as_i64().unwrap_or(0);
                        if change["kind"] == "SNAPSHOT" {
                            last_sequence = sequence;
                            let _ = ready_sender.send(()).await;
                            continue;
                        }
                        if let Some(at) = change["at"]
                            .as_str()
                            .and_then(|at| at.parse::<DateTime<Utc>>().ok())
                        {
                            let delay = (Utc::now() - at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                            latencies.lock().await.push(delay);
                        }
                        let in_order = sequence == last_sequence + 1;
                        last_sequence = sequence;
                        received.lock().await.push((index, if in_order { 1 } else { 0 }));
                    }
                    _ => {}
                }
            }
        });
    }
    drop(ready_sender);
    drop(acked_sender);
    let mut connections = 0;
    while connections < subscribers {
        match tokio::time::timeout(Duration::from_secs(60), acked.recv()).await {
            Ok(Some(())) => connections += 1,
            _ => break,
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connected_kib = rss_kib(server.0.id());
    go_sender.send(true)?;
    let mut connected = 0;
    while connected < connections {
        match tokio::time::timeout(Duration::from_secs(60), ready.recv()).await {
            Ok(Some(())) => connected += 1,
            _ => break,
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded_kib = rss_kib(server.0.id());

    let mut round_trips = Vec::with_capacity(SPENDS);
    let spend_started = Instant::now();
    for spend in 0..SPENDS {
        let workspace = format!("bench-{}", spend % WORKSPACES);
        let service = token("service", Some(&workspace), "worker");
        let query = format!(
            "mutation {{ spendCredit(input: {{action: TRIAGE, idempotencyKey: \"s-{spend}\"}}) {{ outcome }} }}"
        );
        let sent = Instant::now();
        http.post(format!("{base}/graphql"))
            .bearer_auth(&service)
            .json(&json!({ "query": query }))
            .send()
            .await?;
        round_trips.push(sent.elapsed().as_secs_f64() * 1000.0);
        // About 100 spends per second, each fanning out to N / 100 subscribers.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let spend_seconds = spend_started.elapsed().as_secs_f64();
    let expected = SPENDS * (connected / WORKSPACES);
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.lock().await.len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = received.lock().await;
    let in_order = received.iter().map(|(_, ok)| ok).sum::<i64>();
    let mut latencies = latencies.lock().await.clone();
    latencies.sort_by(|a, b| a.total_cmp(b));
    round_trips.sort_by(|a, b| a.total_cmp(b));

    println!("subscribers: {connected} of {subscribers} connected and subscribed in {connect_seconds:.1} s");
    println!(
        "server RSS: idle {:.1} MiB; {connections} connections, nothing subscribed, {:.1} MiB -> {:.1} KiB per connection",
        idle_kib as f64 / 1024.0,
        connected_kib as f64 / 1024.0,
        (connected_kib.saturating_sub(idle_kib)) as f64 / connections.max(1) as f64
    );
    println!(
        "server RSS: with {connected} idle subscribers {:.1} MiB -> {:.1} KiB per subscriber ({:.1} KiB of it the subscription)",
        loaded_kib as f64 / 1024.0,
        (loaded_kib.saturating_sub(idle_kib)) as f64 / connected.max(1) as f64,
        (loaded_kib.saturating_sub(connected_kib)) as f64 / connected.max(1) as f64
    );
    println!(
        "events: {} received of {expected} expected, {in_order} in order ({SPENDS} spends in {spend_seconds:.1} s)",
        received.len()
    );
    println!(
        "commit -> receipt: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "baseline, spend HTTP round trip in the same run: p50 {:.1} ms, p99 {:.1} ms (event p99 / spend p99 = {:.2})",
        percentile(&round_trips, 0.50),
        percentile(&round_trips, 0.99),
        percentile(&latencies, 0.99) / percentile(&round_trips, 0.99)
    );
    Ok(())
}
