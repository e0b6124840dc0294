//! Holds under real concurrency: never more held than available, keys
//! bound once, captures charged once, budgets counting what is held.

use std::collections::HashSet;

use futures_util::future::join_all;

use super::{Ask, hold_id, wallet_of};
use crate::both_backends;
use crate::budgets::Budget;
use crate::helpers::TestApp;

/// Outcomes of `reserveCredits` answers, counted as (HELD, other).
fn count(payloads: &[serde_json::Value], outcome: &str) -> usize {
    payloads
        .iter()
        .filter(|payload| payload["outcome"] == outcome)
        .count()
}

async fn twenty_holds_of_75_on_500_hold_exactly_6(app: TestApp) {
    let service = wallet_of(&app, "ws-hold-race", 500).await;
    let payloads = join_all((0..20).map(|i| {
        let (app, service) = (app.clone(), service.clone());
        async move { app.reserve_ok(&service, &format!("h-{i}"), &Ask::of(75)).await }
    }))
    .await;
    assert_eq!(count(&payloads, "HELD"), 6);
    assert_eq!(count(&payloads, "INSUFFICIENT_CREDITS"), 14);
    assert_eq!(app.held_balance(&service).await, (500, 50, 450));
    // Every refusal saw at most 74 available (else it would have held).
    for payload in payloads
        .iter()
        .filter(|payload| payload["outcome"] == "INSUFFICIENT_CREDITS")
    {
        assert!(
            payload["balance"]["available"].as_i64().unwrap() < 75,
            "{payload}"
        );
        assert!(payload["hold"].is_null());
    }
    let held: Vec<String> = payloads
        .iter()
        .filter(|payload| payload["outcome"] == "HELD")
        .map(hold_id)
        .collect();
    assert_eq!(held.iter().collect::<HashSet<_>>().len(), 6);
    app.verify_ledger().await;
    // Three captured (one short, one exact, one above with 50 available),
    // three released: the ledger says what happened to each credit.
    let short = app.capture(&service, &held[0], Some(30)).await;
    assert_eq!(short.data()["captureHold"]["transaction"]["amount"], -30);
    app.capture(&service, &held[1], None).await.data();
    let above = app.capture(&service, &held[2], Some(200)).await;
    let above = &above.data()["captureHold"];
    // 75 held + the 50 available then (the short capture gave 45 back: 95).
    assert_eq!(above["hold"]["capturedCredits"], 170);
    assert_eq!(above["hold"]["uncollectedCredits"], 30);
    for id in &held[3..] {
        app.release(&service, id, "model provider answered 500")
            .await
            .data();
    }
    // 500 - 30 - 75 - 170 = 225, nothing held.
    assert_eq!(app.held_balance(&service).await, (225, 225, 0));
    let rows = app.ledger_rows("ws-hold-race").await;
    let kinds = |kind: &str| rows.iter().filter(|(k, _)| k == kind).count();
    assert_eq!((kinds("HOLD"), kinds("SPEND"), kinds("RELEASE")), (6, 3, 3));
}

async fn two_instances_hold_exactly_6_between_them(app: TestApp) {
    let other = TestApp::spawn_beside(&app, crate::helpers::Options::default()).await;
    let service = wallet_of(&app, "ws-hold-two", 500).await;
    let payloads = join_all((0..20).map(|i| {
        let (app, service) = (
            if i % 2 == 0 { app.clone() } else { other.clone() },
            service.clone(),
        );
        async move { app.reserve_ok(&service, &format!("h-{i}"), &Ask::of(75)).await }
    }))
    .await;
    assert_eq!(count(&payloads, "HELD"), 6);
    assert_eq!(count(&payloads, "INSUFFICIENT_CREDITS"), 14);
    assert_eq!(other.held_balance(&service).await, (500, 50, 450));
    app.verify_ledger().await;
}

/// Holds of 10 and spends of 1 at once on 200 credits: what is held plus
/// what is spent never passes the balance, and every refusal was right.
async fn holds_and_spends_mixed_never_overdraw(app: TestApp) {
    let service = wallet_of(&app, "ws-hold-mixed", 200).await;
    let holds = join_all((0..15).map(|i| {
        let (app, service) = (app.clone(), service.clone());
        async move { app.reserve_ok(&service, &format!("h-{i}"), &Ask::of(10)).await }
    }));
    let spends = join_all((0..80).map(|i| {
        let (app, service) = (app.clone(), service.clone());
        async move { app.spend_ok(&service, "TRIAGE", &format!("s-{i}")).await }
    }));
    let (holds, spends) = tokio::join!(holds, spends);
    let held = count(&holds, "HELD") as i64;
    let charged = spends
        .iter()
        .filter(|payload| payload["outcome"] == "CHARGED")
        .count() as i64;
    assert!(10 * held + charged <= 200, "held {held}, charged {charged}");
    let (total, available, in_holds) = app.held_balance(&service).await;
    assert_eq!((total, in_holds), (200 - charged, 10 * held));
    assert_eq!(available, 200 - charged - 10 * held);
    // Over-subscribed (230 asked of 200): the wallet ends with less than a
    // hold's worth free, or every request got through.
    assert!(available < 10 || held == 15, "available {available}");
    app.verify_ledger().await;
}

/// A HARD budget of 5 counts held credits: 20 holds of 1 at once → 5.
async fn a_hard_budget_of_5_holds_exactly_5_of_20(app: TestApp) {
    let service = wallet_of(&app, "ws-hold-budget", 100).await;
    let admin = app.token("admin", Some("ws-hold-budget"));
    app.set_budget(&admin, None, &Budget::hard("daily", "WORKSPACE", 5))
        .await
        .data();
    let payloads = join_all((0..20).map(|i| {
        let (app, service) = (app.clone(), service.clone());
        async move { app.reserve_ok(&service, &format!("b-{i}"), &Ask::of(1)).await }
    }))
    .await;
    assert_eq!(count(&payloads, "HELD"), 5);
    assert_eq!(count(&payloads, "BUDGET_EXCEEDED"), 15);
    assert_eq!(app.held_balance(&service).await, (100, 95, 5));
    // A release gives its budget back: the next hold fits, the one after
    // does not.
    let first = payloads
        .iter()
        .find(|payload| payload["outcome"] == "HELD")
        .unwrap();
    app.release(&service, &hold_id(first), "never started")
        .await
        .data();
    assert_eq!(
        app.reserve_ok(&service, "b-again", &Ask::of(1)).await["outcome"],
        "HELD"
    );
    assert_eq!(
        app.reserve_ok(&service, "b-over", &Ask::of(1)).await["outcome"],
        "BUDGET_EXCEEDED"
    );
}

/// One hold key ten times at once: one hold; the others replay it.
async fn a_hold_key_sent_ten_times_at_once_holds_once(app: TestApp) {
    let service = wallet_of(&app, "ws-hold-key", 100).await;
    let payloads = join_all((0..10).map(|_| {
        let (app, service) = (app.clone(), service.clone());
        async move { app.reserve_ok(&service, "same", &Ask::of(7)).await }
    }))
    .await;
    assert_eq!(count(&payloads, "HELD"), 1);
    assert_eq!(count(&payloads, "DUPLICATE"), 9);
    let ids: HashSet<String> = payloads.iter().map(hold_id).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(app.held_balance(&service).await, (100, 93, 7));
    // Another request under the key is a conflict, and writes nothing.
    let conflict = app.reserve(&service, "same", &Ask::of(8)).await;
    assert_eq!(conflict.code(), "IDEMPOTENCY_CONFLICT");
    // A spend's keys are apart from holds' keys.
    assert_eq!(
        app.spend_ok(&service, "TRIAGE", "same").await["outcome"],
        "CHARGED"
    );
    assert_eq!(app.held_balance(&service).await, (99, 92, 7));
}

/// A capture retried (ten at once) charges once; the others replay.
async fn a_capture_retried_charges_once(app: TestApp) {
    let service = wallet_of(&app, "ws-hold-capture", 100).await;
    let id = hold_id(&app.reserve_ok(&service, "c", &Ask::of(5)).await);
    let answers = join_all((0..10).map(|_| {
        let (app, service, id) = (app.clone(), service.clone(), id.clone());
        async move { app.capture(&service, &id, Some(4)).await }
    }))
    .await;
    let payloads: Vec<&serde_json::Value> = answers
        .iter()
        .map(|answer| &answer.data()["captureHold"])
        .collect();
    assert_eq!(
        payloads
            .iter()
            .filter(|payload| payload["replayed"] == false)
            .count(),
        1
    );
    let transactions: HashSet<String> = payloads
        .iter()
        .map(|payload| payload["transaction"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(transactions.len(), 1, "every answer names the one SPEND");
    assert_eq!(app.held_balance(&service).await, (96, 96, 0));
    let spends = app.ledger_rows("ws-hold-capture").await;
    assert_eq!(spends.iter().filter(|(kind, _)| kind == "SPEND").count(), 1);
    // Asking another amount of a captured hold is refused, nothing written.
    assert_eq!(
        app.capture(&service, &id, Some(5)).await.code(),
        "HOLD_NOT_ACTIVE"
    );
    assert_eq!(app.ledger_rows("ws-hold-capture").await, spends);
}

both_backends!(
    twenty_holds_of_75_on_500_hold_exactly_6,
    two_instances_hold_exactly_6_between_them,
    holds_and_spends_mixed_never_overdraw,
    a_hard_budget_of_5_holds_exactly_5_of_20,
    a_hold_key_sent_ten_times_at_once_holds_once,
    a_capture_retried_charges_once,
);

mod unbatched {
    use super::*;

    both_backends!(
        options = crate::helpers::Options { unbatched: true, ..crate::helpers::Options::default() };
        twenty_holds_of_75_on_500_hold_exactly_6,
        a_hold_key_sent_ten_times_at_once_holds_once,
    );
}
