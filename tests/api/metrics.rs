//! Goal: `/metrics` counts what happened, exactly: spends by action and
//! outcome, their latency, ledger rows by kind (renewals, expiries), sweep
//! batch sizes, live subscribers, errors by code, and the pool.
//! Method: make a known mix of requests, scrape, and compare each counter
//! with the number of requests that should have moved it.

use std::collections::HashMap;

use chrono::Duration;
use serde_json::json;

use crate::both_backends;
use crate::helpers::TestApp;

/// The scraped samples, keyed by `name{labels}` as printed.
async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let response = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    response
        .text()
        .await
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn sample(samples: &HashMap<String, f64>, name: &str) -> f64 {
    *samples
        .get(name)
        .unwrap_or_else(|| panic!("no sample {name} in {samples:#?}"))
}

async fn metrics_count_spends_rows_errors_and_subscribers(app: TestApp) {
    app.set_trial_credits(2).await;
    app.create_workspace("ws-metrics").await;
    app.create_workspace("ws-metrics-idle").await;
    app.create_workspace("ws-metrics-pro").await;
    let pro_admin = app.token("admin", Some("ws-metrics-pro"));
    app.set_plan(&pro_admin, "PRO", None).await.data();
    let service = app.token("service", Some("ws-metrics"));
    app.spend_ok(&service, "TRIAGE", "m1").await;
    app.spend_ok(&service, "TRIAGE", "m1").await;
    app.spend_ok(&service, "SIDEKICK", "m2").await;
    let refused = app.spend_ok(&service, "TRIAGE", "m3").await;
    assert_eq!(refused["outcome"], "INSUFFICIENT_CREDITS");
    let conflict = app.spend(&service, "SIDEKICK", "m1", None).await;
    assert_eq!(conflict.code(), "IDEMPOTENCY_CONFLICT");
    let bad = app.spend(&service, "TRIAGE", "", None).await;
    assert_eq!(bad.code(), "BAD_USER_INPUT");
    let anonymous = app.gql(None, "{ wallet { lastSequence } }", json!({})).await;
    assert_eq!(anonymous.code(), "UNAUTHENTICATED");
    let mut subscriber = app.ws(&service).await;
    subscriber.subscribe_balance("1", None, None).await;
    assert_eq!(subscriber.next_event().await["kind"], "SNAPSHOT");

    let samples = scrape(&app).await;
    for (name, expected) in [
        (r#"credits_spends_total{action="TRIAGE",outcome="CHARGED"}"#, 1.0),
        (
            r#"credits_spends_total{action="TRIAGE",outcome="DUPLICATE"}"#,
            1.0,
        ),
        (
            r#"credits_spends_total{action="SIDEKICK",outcome="CHARGED"}"#,
            1.0,
        ),
        (
            r#"credits_spends_total{action="TRIAGE",outcome="INSUFFICIENT_CREDITS"}"#,
            1.0,
        ),
        (
            r#"credits_spends_total{action="SIDEKICK",outcome="IDEMPOTENCY_CONFLICT"}"#,
            1.0,
        ),
        // The empty key is refused before the service: not a spend.
        ("credits_spend_duration_seconds_count", 5.0),
        (r#"credits_ledger_rows_total{kind="GRANT"}"#, 4.0),
        (r#"credits_ledger_rows_total{kind="SPEND"}"#, 2.0),
        (r#"credits_graphql_errors_total{code="BAD_USER_INPUT"}"#, 1.0),
        (
            r#"credits_graphql_errors_total{code="IDEMPOTENCY_CONFLICT"}"#,
            1.0,
        ),
        (r#"credits_graphql_errors_total{code="UNAUTHENTICATED"}"#, 1.0),
        ("credits_live_subscribers", 1.0),
        (r#"credits_db_pool_connections{state="max"}"#, 10.0),
    ] {
        assert_eq!(sample(&samples, name), expected, "{name}");
    }
    // Three connections held by the test show as in use (background
    // checkpoints may briefly hold one more), never more than the pool.
    {
        use sea_orm::TransactionTrait;
        let mut held = Vec::new();
        for _ in 0..3 {
            let txn = app.db().begin().await.unwrap();
            // A statement makes the transaction take its connection for sure.
            sea_orm::ConnectionTrait::execute_unprepared(&txn, "SELECT 1")
                .await
                .unwrap();
            held.push(txn);
        }
        let pool = scrape(&app).await;
        let in_use = sample(&pool, r#"credits_db_pool_connections{state="in_use"}"#);
        let idle = sample(&pool, r#"credits_db_pool_connections{state="idle"}"#);
        assert!(in_use >= 3.0, "{in_use} in use while the test holds 3");
        assert!(in_use + idle <= 10.0, "{in_use} + {idle} over the pool's 10");
    }
    assert!(sample(&samples, "credits_spend_duration_seconds_sum") > 0.0);

    subscriber.close().await;
    // The count drops when the server has seen the close: wait for it (up
    // to 10 s) rather than for a fixed time.
    let mut gone = false;
    for _ in 0..500 {
        if sample(&scrape(&app).await, "credits_live_subscribers") == 0.0 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(gone, "a closed subscription is no longer counted");

    // The trials end: the sweep settles the three wallets, in one batch on
    // SQLite and in one to three on PostgreSQL (its workers lock disjoint
    // batches at once); the three trial grants close, two of them still
    // held credits.
    app.clock.set(app.clock_now() + Duration::days(8));
    let report = app.ledger.roll_over_periods(app.clock_now()).await.unwrap();
    assert_eq!(report.wallets_examined, 3);
    let samples = scrape(&app).await;
    for (name, expected) in [
        (r#"credits_ledger_rows_total{kind="EXPIRE"}"#, 2.0),
        ("credits_grants_expired_total", 3.0),
        ("credits_renewals_total", 0.0),
        ("credits_renewal_batch_wallets_sum", 3.0),
    ] {
        assert_eq!(sample(&samples, name), expected, "{name}");
    }
    let batches = sample(&samples, "credits_renewal_batch_wallets_count");
    if protodesk_credits::store::is_sqlite(app.db()) {
        assert_eq!(batches, 1.0, "one batch on SQLite");
    } else {
        let workers = protodesk_credits::service::SWEEP_WORKERS as f64;
        assert!(
            (1.0..=workers).contains(&batches),
            "{batches} batches for 3 wallets"
        );
    }

    // The PRO period ends; a spend settles the wallet first: one renewal
    // (the old allocation expires, the new one is granted).
    app.clock
        .set(crate::helpers::start_time() + Duration::days(28) + Duration::hours(1));
    let pro_service = app.token("service", Some("ws-metrics-pro"));
    app.spend_ok(&pro_service, "TRIAGE", "after-reset").await;
    let samples = scrape(&app).await;
    for (name, expected) in [
        ("credits_renewals_total", 1.0),
        ("credits_grants_expired_total", 4.0),
        (r#"credits_ledger_rows_total{kind="GRANT"}"#, 5.0),
    ] {
        assert_eq!(sample(&samples, name), expected, "{name}");
    }
}

both_backends!(metrics_count_spends_rows_errors_and_subscribers);
