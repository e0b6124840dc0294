//! Noisy neighbours: the quotas that keep one workspace's mistakes or
//! malice its own, each exact under concurrency and refused with a clear
//! code; refusals that write nothing per attempt; texts people read that
//! cannot rewrite what they see.

use futures_util::future::join_all;
use serde_json::json;

use crate::both_backends;
use crate::budgets::Budget;
use crate::helpers::TestApp;
use crate::webhooks::{create_endpoint, endpoint};

const HOOK: &str = "http://127.0.0.1:9/hook";

/// 50 creates at once: exactly the cap of 20 is created; the rest are
/// LIMIT_EXCEEDED. Operators' endpoints for every workspace have a cap too.
async fn endpoints_are_capped_exactly_under_concurrency(app: TestApp) {
    app.create_workspace("ws-cap").await;
    let admin = app.token("admin", Some("ws-cap"));
    let answers = join_all((0..50).map(|_| create_endpoint(&app, &admin, None, HOOK, &[]))).await;
    let created = answers
        .iter()
        .filter(|answer| answer.body.get("errors").is_none())
        .count();
    assert_eq!(created, 20);
    for refused in answers
        .iter()
        .filter(|answer| answer.body.get("errors").is_some())
    {
        assert_eq!(refused.code(), "LIMIT_EXCEEDED", "{:?}", refused.body);
    }
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM webhook_endpoint WHERE workspace_id = 'ws-cap'")
            .await,
        20
    );

    let operator = app.operator();
    let global = join_all((0..30).map(|_| create_endpoint(&app, &operator, None, HOOK, &[]))).await;
    assert_eq!(
        global
            .iter()
            .filter(|answer| answer.body.get("errors").is_none())
            .count(),
        20
    );
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM webhook_endpoint WHERE workspace_id IS NULL")
            .await,
        20
    );
}

const REDELIVER: &str = "mutation($endpoint: ID!, $event: ID!) {
    redeliverWebhookEvent(input: {endpointId: $endpoint, eventId: $event}) { delivery { id } } }";

/// 100 redeliveries an hour per endpoint, exactly: of 200 at once, 100 are refused with
/// LIMIT_EXCEEDED; an event of a type the endpoint does not take is refused.
async fn redeliveries_are_limited_and_only_of_subscribed_types(app: TestApp) {
    app.create_workspace("ws-again").await;
    let admin = app.token("admin", Some("ws-again"));
    let (endpoint_id, _) = endpoint(&app, &admin, None, HOOK, &["credits.top_up_applied"]).await;
    app.top_up(&app.operator(), Some("ws-again"), "PACK_100", "pay-again")
        .await
        .data();
    let top_up = app
        .query_i64("SELECT id FROM outbox_event WHERE workspace_id = 'ws-again' AND event_type = 'credits.top_up_applied'")
        .await;
    let answers = join_all((0..200).map(|_| {
        app.gql(
            Some(&admin),
            REDELIVER,
            json!({ "endpoint": endpoint_id, "event": format!("evt_{top_up}") }),
        )
    }))
    .await;
    let accepted = answers
        .iter()
        .filter(|answer| answer.body.get("errors").is_none())
        .count();
    assert_eq!(accepted, 100);
    for refused in answers
        .iter()
        .filter(|answer| answer.body.get("errors").is_some())
    {
        assert_eq!(refused.code(), "LIMIT_EXCEEDED", "{:?}", refused.body);
        assert_eq!(refused.body["errors"][0]["extensions"]["retryAfterSeconds"], 60);
    }
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM webhook_delivery WHERE redelivery")
            .await,
        100
    );

    // Another endpoint, another type: its events are not this endpoint's.
    let (other_endpoint, _) = endpoint(&app, &admin, None, HOOK, &["credits.low_balance"]).await;
    let refused = app
        .gql(
            Some(&admin),
            REDELIVER,
            json!({ "endpoint": other_endpoint, "event": format!("evt_{top_up}") }),
        )
        .await;
    assert_eq!(refused.code(), "BAD_USER_INPUT", "{:?}", refused.body);
}

/// Under a HARD EACH_AGENT budget of 0, 3,000 refused spends with fresh
/// agents write no counter and tell `credits.budget_exceeded` once.
async fn refused_spends_of_new_agents_write_nothing_each(app: TestApp) {
    use futures_util::StreamExt;

    app.create_workspace("ws-refuse").await;
    let admin = app.token("admin", Some("ws-refuse"));
    app.set_budget(&admin, None, &Budget::hard("no-agents", "EACH_AGENT", 0))
        .await
        .data();
    let rows_before = app.query_i64("SELECT COUNT(*) FROM budget_counter").await;
    let service = app.token("service", Some("ws-refuse"));
    let answers: Vec<_> = futures_util::stream::iter(0..3_000)
        .map(|i| {
            let (service, app) = (service.clone(), &app);
            async move {
                app.spend_for_ok(
                    &service,
                    "TRIAGE",
                    &format!("fresh-{i}"),
                    Some(&format!("agent-{i}")),
                )
                .await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for answer in &answers {
        assert_eq!(answer["outcome"], "BUDGET_EXCEEDED", "{answer}");
    }
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM budget_counter").await,
        rows_before,
        "no counter per refused agent"
    );
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM outbox_event WHERE event_type = 'credits.budget_exceeded'")
            .await,
        1,
        "told once per budget window"
    );
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM ledger_entry WHERE kind = 'SPEND'")
            .await,
        0
    );
}

/// Agent ids, budget names, workspace names, endpoint descriptions and
/// reasons refuse control and bidirectional formatting characters, as a
/// token's `sub` does.
async fn texts_people_read_refuse_bidi_and_control_characters(app: TestApp) {
    app.create_workspace("ws-text").await;
    let admin = app.token("admin", Some("ws-text"));
    let service = app.token("service", Some("ws-text"));
    let spoofed = "agent\u{202E}gnp.exe";
    let spend = app.spend_for(&service, "TRIAGE", "bidi", Some(spoofed)).await;
    assert_eq!(spend.code(), "BAD_USER_INPUT");
    let budget = app
        .set_budget(&admin, None, &Budget::hard("cap\u{2066}", "WORKSPACE", 5))
        .await;
    assert_eq!(budget.code(), "BAD_USER_INPUT");
    let workspace = app
        .gql(
            Some(&app.operator()),
            "mutation { createWorkspace(input: {workspaceId: \"ws-bidi\", name: \"Acme\\u202e\"}) { wallet { workspaceId } } }",
            json!({}),
        )
        .await;
    assert_eq!(workspace.code(), "BAD_USER_INPUT");
    let described = app
        .gql(
            Some(&admin),
            "mutation($url: String!) { createWebhookEndpoint(input: {url: $url, description: \"hook\\u200f\"}) { secret } }",
            json!({ "url": HOOK }),
        )
        .await;
    assert_eq!(described.code(), "BAD_USER_INPUT");
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM ledger_entry WHERE kind = 'SPEND'")
            .await,
        0
    );
}

/// A token over its rate is answered 429 with `Retry-After` and code
/// RATE_LIMITED; another workspace's requests, and operators', go on.
async fn a_rate_limited_token_does_not_limit_others(app: TestApp) {
    app.create_workspace("ws-fast").await;
    app.create_workspace("ws-calm").await;
    let fast = app.token("service", Some("ws-fast"));
    let calm = app.token("service", Some("ws-calm"));
    let read = |token: String| {
        let app = &app;
        async move {
            app.http
                .post(format!("{}/graphql", app.address))
                .bearer_auth(token)
                .json(&json!({ "query": "{ wallet { balance { total } } }" }))
                .send()
                .await
                .unwrap()
        }
    };
    let started = std::time::Instant::now();
    let answers = join_all((0..40).map(|_| read(fast.clone()))).await;
    let elapsed = started.elapsed().as_secs_f64();
    let limited: Vec<_> = answers
        .iter()
        .filter(|response| response.status() == 429)
        .collect();
    assert!(!limited.is_empty(), "40 at once against a burst of 10");
    // The burst, and what the bucket refilled while they were answered.
    let allowed = answers.iter().filter(|response| response.status() == 200).count();
    assert!(
        allowed as f64 <= 10.0 + (10.0 * elapsed).ceil(),
        "{allowed} allowed in {elapsed:.2} s"
    );
    let retry_after: u64 = limited[0].headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = answers
        .into_iter()
        .find(|response| response.status() == 429)
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    // Another workspace, and the operator, are not held back.
    assert_eq!(read(calm).await.status(), 200);
    let operator = app
        .gql(
            Some(&app.operator()),
            "query { wallet(workspaceId: \"ws-fast\") { balance { total } } }",
            json!({}),
        )
        .await;
    assert!(operator.body.get("errors").is_none(), "{:?}", operator.body);
}

mod rated {
    use super::*;

    pub(crate) fn options() -> crate::helpers::Options {
        crate::helpers::Options {
            rate_limits: Some(protodesk_credits::config::RateLimits {
                per_subject: std::num::NonZeroU32::new(10),
                per_workspace: std::num::NonZeroU32::new(1_000),
            }),
            ..crate::helpers::Options::default()
        }
    }

    both_backends!(options = crate::neighbours::rated::options(); a_rate_limited_token_does_not_limit_others);
}

both_backends!(
    endpoints_are_capped_exactly_under_concurrency,
    redeliveries_are_limited_and_only_of_subscribed_types,
    refused_spends_of_new_agents_write_nothing_each,
    texts_people_read_refuse_bidi_and_control_characters,
);

/// A line of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The export of a 100,000-row ledger streams from the database: the
/// binary's peak memory grows by less than 32 MiB; ten at once are limited
/// with LIMIT_EXCEEDED, and another workspace's reads keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_large_export_streams_in_constant_memory() {
    use crate::helpers::server::RealServer;
    use sea_orm::ConnectionTrait;

    let server = RealServer::start_with_env(None, &[("RATE_LIMIT_SUBJECT_PER_SECOND", "off")]).await;
    server.create_acme().await;
    let operator = server.mint(&["--role", "operator"]);
    server
        .post(&operator, r#"mutation { createWorkspace(input: {workspaceId: "other", name: "Other"}) { wallet { workspaceId } } }"#)
        .await;
    // 100,000 rows of acme's ledger written straight into its database,
    // each continuing the balance (amount 0: the audit still holds).
    let url = format!(
        "sqlite://{}?mode=rw",
        server.directory.path().join("protodesk-credits.db").display()
    );
    let db = sea_orm::Database::connect(url).await.unwrap();
    db.execute_unprepared(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) \
         INSERT INTO ledger_entry (wallet_id, sequence, kind, amount_credits, balance_after_credits, \
         allocation_after_credits, purchased_after_credits, bonus_after_credits, reference, actor, created_at) \
         SELECT w.id, w.last_sequence + n.i, 'ADJUSTMENT', 0, w.balance_credits, 0, 0, w.balance_credits, \
         'a reference of some length, row ' || n.i, 'operator-user', '2026-06-01T00:00:00+00:00' \
         FROM wallet w, n WHERE w.workspace_id = 'acme'",
    )
    .await
    .unwrap();
    db.execute_unprepared(
        "UPDATE wallet SET last_sequence = last_sequence + 100000 WHERE workspace_id = 'acme'",
    )
    .await
    .unwrap();
    db.close().await.unwrap();

    let admin = server.mint(&["--role", "admin", "--workspace", "acme"]);
    let client = reqwest::Client::new();
    let export = |token: String| {
        let client = client.clone();
        let url = format!(
            "{}/export/transactions.csv?from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z",
            server.base
        );
        async move { client.get(url).bearer_auth(token).send().await.unwrap() }
    };
    // Warm: the server's allocator and pools at their working size.
    export(admin.clone()).await.bytes().await.unwrap();
    let before = status_kib(server.pid(), "VmHWM:");
    let body = export(admin.clone()).await.bytes().await.unwrap();
    let lines = body.iter().filter(|byte| **byte == b'\n').count();
    assert!(lines > 100_000, "{lines}");
    let grown = status_kib(server.pid(), "VmHWM:").saturating_sub(before);
    println!(
        "export of {} bytes ({lines} lines): peak memory grew {grown} KiB",
        body.len()
    );
    assert!(grown < 32 * 1024, "peak memory grew {grown} KiB");

    // Ten at once: at most two run; the rest are told why. Another
    // workspace reads meanwhile.
    let other = server.mint(&["--role", "agent", "--workspace", "other"]);
    let (answers, read) = tokio::join!(
        futures_util::future::join_all((0..10).map(|_| export(admin.clone()))),
        server.post(&other, "{ wallet { balance { total } } }"),
    );
    assert!(read.get("errors").is_none(), "{read}");
    let mut refused = 0;
    for answer in answers {
        if answer.status() == 429 {
            refused += 1;
            let body: serde_json::Value = answer.json().await.unwrap();
            assert_eq!(
                body["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED",
                "{body}"
            );
        } else {
            assert_eq!(answer.status(), 200);
            answer.bytes().await.unwrap();
        }
    }
    assert!(refused >= 1, "ten exports at once, two allowed");
}

/// The spends a workspace floods one group-commit worker with fill only
/// what the others leave: another workspace's spend, sent after 2,000 of
/// them are queued, is answered within a few batches, not behind them (batches of 32, one
/// worker). The spends go to the service itself, so that the queue measured
/// is the worker's, not the HTTP server's.
async fn a_flood_of_spends_does_not_queue_another_workspaces(app: TestApp) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use domain::catalogue::Action;
    use domain::ids::{IdempotencyKey, WorkspaceId};
    use protodesk_credits::auth::WalletScope;
    use protodesk_credits::service::SpendRequest;

    app.set_trial_credits(10_000).await;
    app.create_workspace("ws-flood").await;
    app.create_workspace("ws-other").await;
    let scope = |workspace: &str| WalletScope::system(WorkspaceId::parse("w", workspace).unwrap());
    let request = |key: String| SpendRequest {
        action: Action::Triage,
        idempotency_key: IdempotencyKey::parse("k", &key).unwrap(),
        reference: None,
        agent_id: None,
    };
    let answered = Arc::new(AtomicUsize::new(0));
    let flood_scope = scope("ws-flood");
    let spends = (0..2_000).map(|i| {
        let (ledger, scope, answered) = (app.ledger.clone(), flood_scope.clone(), answered.clone());
        let request = request(format!("flood-{i}"));
        tokio::spawn(async move {
            ledger.spend(&scope, request).await.unwrap();
            answered.fetch_add(1, Ordering::Relaxed);
        })
    });
    let spends: Vec<_> = spends.collect();
    // The flood is queued (the first batches are answered).
    while answered.load(Ordering::Relaxed) < 32 {
        tokio::task::yield_now().await;
    }
    app.ledger
        .spend(&scope("ws-other"), request("lone".to_owned()))
        .await
        .unwrap();
    let before = answered.load(Ordering::Relaxed);
    for spend in spends {
        spend.await.unwrap();
    }
    println!(
        "{:?}: the other workspace's spend was answered after {before} of 2000",
        app.backend
    );
    assert!(before < 500, "answered after {before} of the flood's 2000 spends");
}

mod one_worker {
    use super::*;

    pub(crate) fn options() -> crate::helpers::Options {
        crate::helpers::Options {
            group_commit: Some(protodesk_credits::config::GroupCommitSettings {
                max_batch: 32,
                window: std::time::Duration::ZERO,
                workers: Some(1),
            }),
            ..crate::helpers::Options::default()
        }
    }

    both_backends!(options = crate::neighbours::one_worker::options(); a_flood_of_spends_does_not_queue_another_workspaces);
}
