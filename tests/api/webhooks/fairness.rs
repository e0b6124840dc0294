//! Noisy neighbours, for webhooks: one workspace's backlog or dead endpoint
//! slows neither another workspace's spends nor its webhooks
//! (`docs/design/webhooks.md`, the queues).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream;
use protodesk_credits::config::WebhookSettings;

use super::receiver::Receiver;
use super::{delivering, endpoint};
use crate::helpers::{Backend, Options, TestApp};

/// The 99th percentile of `samples`.
fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[(samples.len() * 99 / 100).min(samples.len() - 1)]
}

/// `count` spends of `workspace`, one after another: each one's latency.
async fn spend_latencies(app: &TestApp, workspace: &str, prefix: &str, count: usize) -> Vec<Duration> {
    let service = app.token("service", Some(workspace));
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        let started = Instant::now();
        app.spend_ok(&service, "TRIAGE", &format!("{prefix}-{i}")).await;
        latencies.push(started.elapsed());
    }
    latencies
}

/// `count` top-ups of `workspace` (each tells `credits.top_up_applied`),
/// eight at a time.
async fn top_ups(app: &TestApp, workspace: &str, count: usize) {
    let operator = app.operator();
    stream::iter(0..count)
        .for_each_concurrent(8, |i| {
            let operator = operator.clone();
            async move {
                app.top_up(
                    &operator,
                    Some(workspace),
                    "PACK_100",
                    &format!("{workspace}-pay-{i}"),
                )
                .await
                .data();
            }
        })
        .await;
}

/// `count` events of `workspace` written as the outbox writes them (one
/// statement: a pack per event would make the wallet's own writes the
/// slow part), with their deliveries queued to the workspace's endpoint.
async fn queue_events(app: &TestApp, workspace: &str, count: usize) {
    use sea_orm::ConnectionTrait;
    let now = chrono::Utc::now();
    let db = app.db();
    let backend = db.get_database_backend();
    let statement = |sql: String| sea_orm::Statement::from_sql_and_values(backend, sql, [now.into()]);
    let placeholder = if backend == sea_orm::DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    for sql in [
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
             INSERT INTO outbox_event (event_type, workspace_id, data, created_at) \
             SELECT 'credits.top_up_applied', '{workspace}', '{{\"n\": ' || i || '}}', {placeholder} FROM n"
        ),
        format!(
            "INSERT INTO webhook_delivery (endpoint_id, event_id, workspace_id, status, attempts, next_attempt_at, \
             created_at, redelivery) SELECT p.id, e.id, e.workspace_id, 'PENDING', 0, {placeholder}, e.created_at, false \
             FROM outbox_event e JOIN webhook_endpoint p ON p.workspace_id = e.workspace_id \
             WHERE e.workspace_id = '{workspace}' ORDER BY e.id"
        ),
        format!(
            "INSERT INTO webhook_queue (endpoint_id, workspace_id, next_due_at, pending) \
             SELECT endpoint_id, workspace_id, MIN(next_attempt_at), COUNT(*) FROM webhook_delivery \
             WHERE workspace_id = '{workspace}' AND status = 'PENDING' AND next_attempt_at <= {placeholder} \
             GROUP BY endpoint_id, workspace_id"
        ),
    ] {
        db.execute_raw(statement(sql)).await.unwrap();
    }
}

async fn pending(app: &TestApp) -> i64 {
    app.query_i64("SELECT COUNT(*) FROM webhook_delivery WHERE status = 'PENDING'")
        .await
}

/// An app whose worker delivers, waiting up to 2 s for an answer.
async fn spawn_delivering(backend: Backend) -> TestApp {
    TestApp::spawn_with(
        backend,
        Options {
            webhooks: Some(WebhookSettings {
                timeout: Duration::from_secs(2),
                ..delivering()
            }),
            ..Options::default()
        },
    )
    .await
}

/// An endpoint that answers 200 after `delay`: (its URL, how many it got).
async fn slow_receiver(delay: Duration) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counted = counted.clone();
            async move {
                tokio::time::sleep(delay).await;
                counted.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, hits)
}

/// 3,000 deliveries queued for workspace A's endpoint (answering in 20 ms,
/// so the backlog stays while it is measured) slow no spend of workspace
/// B: B's p99 stays within twice its p99 with nothing queued, the same
/// worker running, in this run.
async fn a_backlog_does_not_slow_another_workspaces_spends(backend: Backend) {
    let app = spawn_delivering(backend).await;
    app.set_trial_credits(100_000).await;
    app.create_workspace("ws-noisy").await;
    app.create_workspace("ws-quiet").await;
    let (url, delivered) = slow_receiver(Duration::from_millis(20)).await;
    let admin = app.token("admin", Some("ws-noisy"));
    endpoint(&app, &admin, None, &url, &["credits.top_up_applied"]).await;

    spend_latencies(&app, "ws-quiet", "warm", 100).await;
    let quiet = p99(spend_latencies(&app, "ws-quiet", "before", 600).await);

    queue_events(&app, "ws-noisy", 3_000).await;
    let during = spend_latencies(&app, "ws-quiet", "during", 600).await;
    let still_pending = pending(&app).await;
    let busy = p99(during);
    println!(
        "{backend:?}: spend p99 {quiet:?} with nothing queued, {busy:?} with 3000 deliveries queued \
         ({} delivered meanwhile, {still_pending} still pending)",
        delivered.load(Ordering::Relaxed)
    );
    assert!(
        delivered.load(Ordering::Relaxed) > 0,
        "the worker delivered meanwhile"
    );
    assert!(
        still_pending >= 2_000,
        "the backlog stayed while measured: {still_pending}"
    );
    assert!(
        busy <= quiet * 2,
        "another workspace's backlog slowed spends: p99 {busy:?} against {quiet:?}"
    );
    app.teardown().await;
}

/// An endpoint that accepts connections and never answers.
async fn tarpit() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    (url, held)
}

/// Workspace A's endpoint never answers and has a backlog; workspace B's
/// event still arrives within two seconds.
async fn a_tarpit_endpoint_delays_only_itself(backend: Backend) {
    let app = spawn_delivering(backend).await;
    app.set_trial_credits(1_000).await;
    let (dead, held) = tarpit().await;
    for i in 0..20 {
        let workspace = format!("ws-tarpit-{i}");
        app.create_workspace(&workspace).await;
        let admin = app.token("admin", Some(&workspace));
        endpoint(&app, &admin, None, &dead, &[]).await;
        top_ups(&app, &workspace, 10).await;
    }
    app.create_workspace("ws-live").await;
    let receiver = Receiver::start().await;
    let admin = app.token("admin", Some("ws-live"));
    endpoint(&app, &admin, None, &receiver.url, &["credits.top_up_applied"]).await;
    // Let the dead endpoints take the worker's attention first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    top_ups(&app, "ws-live", 1).await;
    receiver.wait_for(Duration::from_secs(2), |r| !r.is_empty()).await;
    println!(
        "{backend:?}: the live endpoint's event arrived in {:?}",
        sent.elapsed()
    );
    assert!(sent.elapsed() < Duration::from_secs(2));
    held.abort();
    app.teardown().await;
}

crate::both_backends!(
    each_backend: a_backlog_does_not_slow_another_workspaces_spends,
    a_tarpit_endpoint_delays_only_itself,
);
