//! Delivery: signed, in order, retried with growing delays under one
//! `webhook-id`, given up and redelivered; events of a batch and of the
//! sweep; once per event across two PostgreSQL instances; after kill -9.

use std::collections::HashMap;
use std::time::Duration;

use chrono::TimeZone;
use futures_util::future::join_all;
use serde_json::json;

use super::receiver::{Receiver, Reply, signature_is_valid};
use super::{endpoint, settled_deliveries, with_delivery};
use crate::both_backends;
use crate::helpers::server::RealServer;
use crate::helpers::{Backend, Options, TestApp, postgres_database, start_time};

async fn a_batch_s_events_are_signed_and_delivered_in_order(app: TestApp) {
    let receiver = Receiver::start().await;
    app.set_trial_credits(3).await;
    app.create_workspace("ws-hooks").await;
    let admin = app.token("admin", Some("ws-hooks"));
    let (endpoint_id, secret) = endpoint(&app, &admin, None, &receiver.url, &[]).await;
    app.gql(
        Some(&admin),
        "mutation { setLowBalanceThreshold(input: {threshold: 2}) { wallet { balance { total } } } }",
        json!({}),
    )
    .await
    .data();

    // Three spends at once through group commit empty the wallet.
    let service = app.token("service", Some("ws-hooks"));
    let keys: Vec<String> = (0..3).map(|i| format!("k{i}")).collect();
    let answers = join_all(keys.iter().map(|key| app.spend_ok(&service, "TRIAGE", key))).await;
    assert!(
        answers.iter().all(|answer| answer["outcome"] == "CHARGED"),
        "{answers:?}"
    );
    let refused = app.spend_ok(&service, "TRIAGE", "k-over").await;
    assert_eq!(refused["outcome"], "INSUFFICIENT_CREDITS");
    app.top_up(&app.operator(), Some("ws-hooks"), "PACK_100", "pay-hooks")
        .await
        .data();

    let received = receiver.wait_for(Duration::from_secs(10), |r| r.len() >= 4).await;
    let types: Vec<String> = received
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "credits.low_balance",
            "credits.ai_paused",
            "credits.top_up_applied",
            "credits.ai_resumed"
        ]
    );
    for request in &received {
        assert!(signature_is_valid(&secret, request), "{request:?}");
        assert!(!signature_is_valid(
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            request
        ));
        let body = request.json();
        assert_eq!(body["id"], request.id.as_str(), "webhook-id is the body's id");
        assert_eq!(body["workspaceId"], "ws-hooks");
        assert!(
            body["createdAt"]
                .as_str()
                .unwrap()
                .starts_with("2026-01-31T10:00:00")
        );
    }
    let data: Vec<serde_json::Value> = received.iter().map(|r| r.json()["data"].clone()).collect();
    assert_eq!(data[0]["threshold"], 2);
    assert_eq!(data[0]["balance"]["total"], 1);
    assert_eq!(data[1]["balance"]["total"], 0);
    assert_eq!(data[2]["pack"], "PACK_100");
    assert_eq!(data[2]["paymentReference"], "pay-hooks");
    assert_eq!(data[2]["amount"], 100);
    assert_eq!(
        data[3]["balance"],
        json!({"total": 100, "allocation": 0, "purchased": 100, "bonus": 0, "available": 100, "held": 0})
    );

    let listed = settled_deliveries(&app, &admin, &endpoint_id, 4).await;
    for delivery in &listed {
        assert_eq!(delivery["status"], "DELIVERED", "{delivery}");
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["lastResponseCode"], 200);
        assert_eq!(delivery["nextAttemptAt"], serde_json::Value::Null);
    }
    // Each event was written once, with its change.
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM outbox_event").await, 4);
    // Nothing was sent twice: every delivery is settled after one attempt,
    // and a settled delivery is never claimed again.
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM webhook_delivery WHERE status = 'DELIVERED' AND attempts = 1")
            .await,
        4
    );
    assert_eq!(receiver.received().len(), 4, "nothing was sent twice");
}

async fn failures_are_retried_with_growing_delays_under_one_id(app: TestApp) {
    let receiver = Receiver::start().await;
    receiver.script(&[
        Reply::Status(500),
        Reply::Status(503),
        Reply::Hang(Duration::from_millis(1_500)),
        Reply::Status(200),
    ]);
    app.create_workspace("ws-retry").await;
    let admin = app.token("admin", Some("ws-retry"));
    let (endpoint_id, secret) =
        endpoint(&app, &admin, None, &receiver.url, &["credits.top_up_applied"]).await;
    app.top_up(&app.operator(), Some("ws-retry"), "PACK_100", "pay-retry")
        .await
        .data();

    let received = receiver.wait_for(Duration::from_secs(15), |r| r.len() >= 4).await;
    assert!(received.iter().all(|r| r.id == received[0].id), "one webhook-id");
    assert!(received.iter().all(|r| signature_is_valid(&secret, r)));
    let gaps: Vec<Duration> = received.windows(2).map(|pair| pair[1].at - pair[0].at).collect();
    // 150 ms, then 300 ms (±10%), then the 400 ms timeout and 600 ms. A
    // busy machine only lengthens a gap, so each is checked against the
    // least its doubled delay allows: a retry that did not wait longer
    // each time (300 ms at least, then 940) fails, whatever the stalls.
    assert!(gaps[0] >= Duration::from_millis(135), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(270), "{gaps:?}");
    assert!(gaps[2] >= Duration::from_millis(940), "{gaps:?}");

    let listed = settled_deliveries(&app, &admin, &endpoint_id, 1).await;
    assert_eq!(listed[0]["status"], "DELIVERED");
    assert_eq!(listed[0]["attempts"], 4);
    assert_eq!(listed[0]["lastResponseCode"], 200);
    assert_eq!(
        app.metric("credits_webhook_attempts_total{result=\"retry\"}")
            .await,
        3.0
    );
    assert_eq!(
        app.metric("credits_webhook_attempts_total{result=\"delivered\"}")
            .await,
        1.0
    );
}

async fn the_last_failure_gives_up_and_a_redelivery_sends_again(app: TestApp) {
    let receiver = Receiver::start().await;
    receiver.script(&[Reply::Status(500); 4]);
    app.create_workspace("ws-give-up").await;
    let admin = app.token("admin", Some("ws-give-up"));
    let (endpoint_id, _) = endpoint(&app, &admin, None, &receiver.url, &[]).await;
    app.top_up(&app.operator(), Some("ws-give-up"), "PACK_100", "pay-give-up")
        .await
        .data();

    let listed = settled_deliveries(&app, &admin, &endpoint_id, 1).await;
    assert_eq!(listed[0]["status"], "FAILED", "{listed:?}");
    assert_eq!(listed[0]["attempts"], 4);
    assert_eq!(listed[0]["lastResponseCode"], 500);
    assert_eq!(listed[0]["lastError"], "answered 500");
    assert_eq!(receiver.received().len(), 4);
    assert_eq!(
        app.metric("credits_webhook_attempts_total{result=\"failed\"}")
            .await,
        1.0
    );

    let event_id = listed[0]["eventId"].as_str().unwrap().to_owned();
    let again = app
        .gql(
            Some(&admin),
            "mutation($endpoint: ID!, $event: ID!) { redeliverWebhookEvent(input: {endpointId: $endpoint, eventId: $event}) {
               delivery { eventId eventType status attempts } } }",
            json!({ "endpoint": endpoint_id, "event": event_id }),
        )
        .await;
    assert_eq!(
        again.data()["redeliverWebhookEvent"]["delivery"],
        json!({ "eventId": event_id, "eventType": "credits.top_up_applied", "status": "PENDING", "attempts": 0 })
    );
    let received = receiver.wait_for(Duration::from_secs(10), |r| r.len() >= 5).await;
    assert_eq!(received[4].id, event_id, "the same event, under its id");
    let listed = settled_deliveries(&app, &admin, &endpoint_id, 2).await;
    assert_eq!(listed[0]["status"], "DELIVERED");
    assert_eq!(listed[1]["status"], "FAILED");
}

async fn the_sweep_s_renewals_and_notices_are_delivered_once(app: TestApp) {
    let receiver = Receiver::start().await;
    let operator = app.operator();
    let (endpoint_id, secret) = endpoint(&app, &operator, None, &receiver.url, &[]).await;
    // A plan that renews, and a trial that ends.
    app.set_trial_credits(0).await;
    app.create_workspace("ws-plan").await;
    let admin = app.token("admin", Some("ws-plan"));
    app.set_plan(&admin, "PRO", None).await.data();
    app.create_workspace("ws-trial").await;

    // The trial (7 days from creation) ends within 48 hours on day 6.
    let mut cursor = protodesk_credits::service::NoticeCursor::default();
    let day = |days: i64| start_time() + chrono::Duration::days(days);
    assert_eq!(app.ledger.send_notices(&mut cursor, day(4)).await.unwrap(), 0);
    assert_eq!(app.ledger.send_notices(&mut cursor, day(6)).await.unwrap(), 1);
    assert_eq!(
        app.ledger.send_notices(&mut cursor, day(6)).await.unwrap(),
        0,
        "once per trial"
    );

    app.clock
        .set(chrono::Utc.with_ymd_and_hms(2026, 2, 28, 10, 0, 0).unwrap());
    let report = app.ledger.roll_over_periods(app.clock_now()).await.unwrap();
    assert!(report.wallets_changed >= 1, "{report:?}");

    // The plan's change is told too: wait for the two this test is about.
    let received = receiver
        .wait_for(Duration::from_secs(10), |r| {
            let types: Vec<String> = r
                .iter()
                .map(|r| r.json()["type"].as_str().unwrap_or("").to_owned())
                .collect();
            types.iter().any(|t| t == "credits.trial_ending")
                && types.iter().any(|t| t == "credits.period_renewed")
        })
        .await;
    let by_type: HashMap<String, serde_json::Value> = received
        .iter()
        .map(|r| (r.json()["type"].as_str().unwrap().to_owned(), r.json()))
        .collect();
    assert!(received.iter().all(|r| signature_is_valid(&secret, r)));
    let trial = &by_type["credits.trial_ending"];
    assert_eq!(trial["workspaceId"], "ws-trial");
    assert_eq!(trial["data"]["endsAt"], "2026-02-07T10:00:00Z");
    let renewed = &by_type["credits.period_renewed"];
    assert_eq!(renewed["workspaceId"], "ws-plan");
    assert_eq!(renewed["data"]["kind"], "GRANT");
    assert!(renewed["data"]["amount"].as_i64().unwrap() > 0);
    settled_deliveries(&app, &operator, &endpoint_id, received.len()).await;
}

async fn a_runway_too_short_for_the_period_is_told_once(app: TestApp) {
    let receiver = Receiver::start().await;
    app.set_trial_credits(0).await;
    app.execute_sql("UPDATE plan SET monthly_credits = 20 WHERE code = 'STARTER'")
        .await;
    // A 31-day period (Jul 31 to Aug 31): longer than the outbox's retention.
    let start = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 7, 31, 10, 0, 0).unwrap();
    app.clock.set(start);
    app.create_workspace("ws-runway").await;
    let admin = app.token("admin", Some("ws-runway"));
    app.set_plan(&admin, "STARTER", None).await.data();
    let (endpoint_id, _) = endpoint(&app, &admin, None, &receiver.url, &["credits.runway_low"]).await;

    let mut cursor = protodesk_credits::service::NoticeCursor::default();
    let now = app.clock_now();
    assert_eq!(app.ledger.send_notices(&mut cursor, now).await.unwrap(), 0);
    let service = app.token("service", Some("ws-runway"));
    for i in 0..10 {
        app.spend_ok(&service, "TRIAGE", &format!("burn-{i}")).await;
    }
    // Ten a day (a young wallet counts one day at least), ten left: one
    // day's runway against a month's period.
    let now = now + chrono::Duration::hours(1);
    app.clock.set(now);
    assert_eq!(app.ledger.send_notices(&mut cursor, now).await.unwrap(), 1);
    app.spend_ok(&service, "TRIAGE", "burn-more").await;
    // Another instance, started after the spends, looks at them: told already.
    let mut fresh = protodesk_credits::service::NoticeCursor::default();
    assert_eq!(
        app.ledger.send_notices(&mut fresh, now).await.unwrap(),
        0,
        "once per period, whichever instance looks"
    );
    let received = receiver
        .wait_for(Duration::from_secs(10), |r| !r.is_empty())
        .await;
    let body = received[0].json();
    assert_eq!(body["type"], "credits.runway_low");
    assert_eq!(body["data"]["dailyBurn"], 10.0);
    assert_eq!(body["data"]["balance"]["total"], 10);
    settled_deliveries(&app, &admin, &endpoint_id, 1).await;

    // Thirty days on, still in the period: the event is pruned, and a new
    // spend looked at by a fresh instance tells nothing again.
    let late = start + chrono::Duration::days(30) + chrono::Duration::hours(12);
    app.clock.set(late);
    let mut pruning = protodesk_credits::service::NoticeCursor::default();
    assert!(app.ledger.prune_outbox(&mut pruning, late).await.unwrap() >= 1);
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM outbox_event WHERE event_type = 'credits.runway_low'")
            .await,
        0,
        "the told event is gone with the retention"
    );
    app.spend_ok(&service, "TRIAGE", "burn-late").await;
    let mut later = protodesk_credits::service::NoticeCursor::default();
    assert_eq!(
        app.ledger.send_notices(&mut later, late).await.unwrap(),
        0,
        "told once a period, however long the period"
    );
}

/// Events older than the retention whose deliveries are settled go, with
/// their deliveries; a pending delivery keeps its event however old.
async fn old_settled_events_are_pruned_and_pending_ones_kept(backend: Backend) {
    // No worker: the deliveries' states are set by hand.
    let app = TestApp::spawn(backend).await;
    app.create_workspace("ws-prune").await;
    let admin = app.token("admin", Some("ws-prune"));
    endpoint(&app, &admin, None, "http://127.0.0.1:9/hook", &[]).await;
    let operator = app.operator();
    app.top_up(&operator, Some("ws-prune"), "PACK_100", "pay-old-1")
        .await
        .data();
    app.top_up(&operator, Some("ws-prune"), "PACK_100", "pay-old-2")
        .await
        .data();
    app.clock.set(start_time() + chrono::Duration::days(20));
    app.top_up(&operator, Some("ws-prune"), "PACK_100", "pay-young")
        .await
        .data();
    let first = app.query_i64("SELECT MIN(id) FROM webhook_delivery").await;
    let last = app.query_i64("SELECT MAX(id) FROM webhook_delivery").await;
    app.execute_sql(&format!(
        "UPDATE webhook_delivery SET status = 'DELIVERED' WHERE id IN ({first}, {last})"
    ))
    .await;
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM outbox_event").await, 3);

    let mut cursor = protodesk_credits::service::NoticeCursor::default();
    let later = start_time() + protodesk_credits::service::OUTBOX_RETENTION + chrono::Duration::days(1);
    assert_eq!(app.ledger.prune_outbox(&mut cursor, later).await.unwrap(), 1);
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM webhook_delivery").await,
        2,
        "the old pending delivery and the young delivered one stay"
    );
    assert_eq!(
        app.query_i64(&format!(
            "SELECT COUNT(*) FROM webhook_delivery WHERE id = {first}"
        ))
        .await,
        0
    );
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM outbox_event").await, 2);
    // Once an hour at most.
    app.execute_sql("UPDATE webhook_delivery SET status = 'FAILED'")
        .await;
    assert_eq!(app.ledger.prune_outbox(&mut cursor, later).await.unwrap(), 0);
    let an_hour_on = later + chrono::Duration::hours(1);
    assert_eq!(app.ledger.prune_outbox(&mut cursor, an_hour_on).await.unwrap(), 1);
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM outbox_event").await,
        1,
        "the young one stays"
    );
    app.verify_ledger().await;
    app.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_old_settled_events_are_pruned_and_pending_ones_kept() {
    old_settled_events_are_pruned_and_pending_ones_kept(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_old_settled_events_are_pruned_and_pending_ones_kept() {
    old_settled_events_are_pruned_and_pending_ones_kept(Backend::Postgres).await;
}

both_backends!(
    options = crate::webhooks::with_delivery();
    a_batch_s_events_are_signed_and_delivered_in_order,
    failures_are_retried_with_growing_delays_under_one_id,
    the_last_failure_gives_up_and_a_redelivery_sends_again,
    the_sweep_s_renewals_and_notices_are_delivered_once,
    a_runway_too_short_for_the_period_is_told_once,
);

/// Two PostgreSQL instances share the queue: every event is sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances_deliver_each_event_once() {
    let first = TestApp::spawn_with(Backend::Postgres, with_delivery()).await;
    let second = TestApp::spawn_beside(
        &first,
        Options {
            clock: Some(first.clock.clone()),
            ..with_delivery()
        },
    )
    .await;
    let receiver = Receiver::start().await;
    let operator = first.operator();
    endpoint(
        &first,
        &operator,
        None,
        &receiver.url,
        &["credits.top_up_applied"],
    )
    .await;
    let workspaces: Vec<String> = (0..30).map(|i| format!("ws-pair-{i}")).collect();
    for workspace in &workspaces {
        first.create_workspace(workspace).await;
    }
    join_all(workspaces.iter().enumerate().map(|(i, workspace)| {
        let app = if i % 2 == 0 { &first } else { &second };
        let operator = operator.clone();
        async move {
            app.top_up(
                &operator,
                Some(workspace),
                "PACK_100",
                &format!("pay-{workspace}"),
            )
            .await
            .data();
        }
    }))
    .await;
    receiver
        .wait_for(Duration::from_secs(15), |r| r.len() >= 30)
        .await;
    // Every delivery settled after exactly one attempt by one instance: a
    // settled delivery is never claimed again, and a claim is exclusive.
    for _ in 0..200 {
        if first
            .query_i64("SELECT COUNT(*) FROM webhook_delivery WHERE status <> 'DELIVERED'")
            .await
            == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        first
            .query_i64("SELECT COUNT(*) FROM webhook_delivery WHERE status = 'DELIVERED' AND attempts = 1")
            .await,
        30
    );
    let mut counts: HashMap<String, usize> = HashMap::new();
    for request in receiver.received() {
        *counts.entry(request.id).or_default() += 1;
    }
    assert_eq!(counts.len(), 30);
    assert!(counts.values().all(|count| *count == 1), "{counts:?}");
    let attempted = first
        .metric("credits_webhook_attempts_total{result=\"delivered\"}")
        .await
        + second
            .metric("credits_webhook_attempts_total{result=\"delivered\"}")
            .await;
    assert_eq!(attempted, 30.0);
    first.verify_ledger().await;
    first.teardown().await;
}

/// A delivery in flight when the server is killed is sent again after the
/// restart, under the same id.
async fn a_kill_9_mid_delivery_delivers_after_restart(database: Option<(String, String)>) {
    let receiver = Receiver::start().await;
    receiver.script(&[Reply::Hang(Duration::from_secs(5))]);
    let env = [
        ("WEBHOOK_ALLOW_PRIVATE", "on"),
        ("WEBHOOK_TIMEOUT_MS", "1000"),
        ("WEBHOOK_POLL_MS", "50"),
        ("WEBHOOK_RETRY_BASE_MS", "100"),
    ];
    let mut server = RealServer::start_with_env(database.as_ref(), &env).await;
    server.create_acme().await;
    let operator = server.mint(&["--role", "operator"]);
    let created = server
        .post(
            &operator,
            &format!(
                "mutation {{ createWebhookEndpoint(input: {{url: \"{}\", eventTypes: [\"credits.top_up_applied\"]}}) {{ endpoint {{ id }} secret }} }}",
                receiver.url
            ),
        )
        .await;
    let secret = created["data"]["createWebhookEndpoint"]["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let topped = server
        .post(
            &operator,
            "mutation { purchaseTopUp(input: {workspaceId: \"acme\", pack: PACK_100, paymentReference: \"pay-kill\"}) { outcome } }",
        )
        .await;
    assert_eq!(topped["data"]["purchaseTopUp"]["outcome"], "APPLIED", "{topped}");
    let first = receiver
        .wait_for(Duration::from_secs(10), |r| !r.is_empty())
        .await;
    server.stop();

    server.spawn().await;
    let received = receiver.wait_for(Duration::from_secs(20), |r| r.len() >= 2).await;
    assert_eq!(received[1].id, first[0].id, "the same event, under its id");
    assert!(signature_is_valid(&secret, &received[1]));
    let endpoint_id = created["data"]["createWebhookEndpoint"]["endpoint"]["id"]
        .as_str()
        .unwrap();
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        let listed = server
            .post(
                &operator,
                &format!(
                    "query {{ webhookDeliveries(endpointId: \"{endpoint_id}\") {{ nodes {{ status }} }} }}"
                ),
            )
            .await;
        status = listed["data"]["webhookDeliveries"]["nodes"][0]["status"].clone();
        if status == "DELIVERED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "DELIVERED");
    server.verify();
    server.stop();
    if let Some((_, schema)) = &database {
        crate::helpers::drop_schema(schema).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_kill_9_mid_delivery_delivers_after_restart() {
    a_kill_9_mid_delivery_delivers_after_restart(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_kill_9_mid_delivery_delivers_after_restart() {
    a_kill_9_mid_delivery_delivers_after_restart(Some(postgres_database("webhook_kill"))).await;
}
