//! Low-balance alerts: once per crossing, at once above the balance, and
//! from the sweep's expiries.

use super::*;
use crate::both_backends;

async fn the_low_balance_alert_fires_once_per_crossing(app: TestApp) {
    app.set_trial_credits(8).await;
    app.create_workspace("ws-low").await;
    let admin = app.token("admin", Some("ws-low"));
    let service = app.token("service", Some("ws-low"));
    let mut events = app.ledger.events().subscribe("ws-low");
    let set = "mutation($t: Int) { setLowBalanceThreshold(input: {threshold: $t}) { wallet { lowBalanceThreshold lowBalanceAlertedAt } } }";
    let set_answer = app.gql(Some(&admin), set, json!({ "t": 5 })).await;
    assert_eq!(
        set_answer.data()["setLowBalanceThreshold"]["wallet"]["lowBalanceThreshold"],
        5
    );

    for key in ["a", "b", "c"] {
        app.spend_ok(&service, "TRIAGE", key).await; // 7, 6, 5: at the threshold, no alert
    }
    let at_threshold = app.wallet(&admin, None).await;
    app.spend_ok(&service, "TRIAGE", "d").await; // 4: crosses, one alert
    app.spend_ok(&service, "TRIAGE", "e").await; // 3: still below, no new alert
    app.top_up(&app.operator(), Some("ws-low"), "PACK_100", "pay-low")
        .await
        .data(); // 103: re-armed
    app.gql(
        Some(&app.operator()),
        ADJUST,
        json!({ "ws": "ws-low", "credits": -100, "reason": "test" }),
    )
    .await
    .data(); // 3: crosses again

    assert_eq!(at_threshold.body["data"]["wallet"]["balance"]["total"], 5);
    let alerts = app
        .gql(
            Some(&admin),
            "{ wallet { lowBalanceAlertedAt lowBalanceAlerts { threshold balance sequence } } }",
            json!({}),
        )
        .await;
    let wallet = &alerts.data()["wallet"];
    assert_eq!(
        wallet["lowBalanceAlerts"],
        json!([{ "threshold": 5, "balance": 3, "sequence": 8 }, { "threshold": 5, "balance": 4, "sequence": 5 }])
    );
    assert!(wallet["lowBalanceAlertedAt"].is_string());
    let mut low_balance_events = 0;
    while let Ok(event) = events.try_recv() {
        if event.kind == EventKind::LowBalance {
            low_balance_events += 1;
        }
    }
    assert_eq!(
        low_balance_events, 2,
        "one event per crossing on the balance stream"
    );
    let off = app.gql(Some(&admin), set, json!({ "t": 0 })).await;
    assert_eq!(off.code(), "BAD_USER_INPUT");
    let agent = app
        .gql(Some(&app.token("agent", Some("ws-low"))), set, json!({ "t": 9 }))
        .await;
    assert_eq!(agent.code(), "FORBIDDEN");
}

/// A threshold set above the current balance alerts at once (the wallet
/// is already below it); setting the same one again does not, a new one
/// (a new promise to the admin) does.
async fn a_threshold_above_the_balance_alerts_at_once(app: TestApp) {
    app.create_workspace("ws-above").await;
    let admin = app.token("admin", Some("ws-above"));
    let mut events = app.ledger.events().subscribe("ws-above");
    let set = "mutation($t: Int) { setLowBalanceThreshold(input: {threshold: $t}) { wallet { lowBalanceAlerts { threshold balance sequence } } } }";

    let first = app.gql(Some(&admin), set, json!({ "t": 500 })).await;
    let same = app.gql(Some(&admin), set, json!({ "t": 500 })).await;
    let lower = app.gql(Some(&admin), set, json!({ "t": 400 })).await;

    let one = json!([{ "threshold": 500, "balance": 300, "sequence": 1 }]);
    assert_eq!(
        first.data()["setLowBalanceThreshold"]["wallet"]["lowBalanceAlerts"],
        one
    );
    assert_eq!(
        same.data()["setLowBalanceThreshold"]["wallet"]["lowBalanceAlerts"],
        one
    );
    assert_eq!(
        lower.data()["setLowBalanceThreshold"]["wallet"]["lowBalanceAlerts"],
        json!([
            { "threshold": 400, "balance": 300, "sequence": 1 },
            { "threshold": 500, "balance": 300, "sequence": 1 }
        ])
    );
    let alerts = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|event| event.kind == EventKind::LowBalance)
        .count();
    assert_eq!(alerts, 2);
}

/// The renewal sweep alerts when an expiry takes the balance below the
/// threshold: trial credits expire, a purchased pack is left.
async fn the_sweep_alerts_when_an_expiry_crosses_the_threshold(app: TestApp) {
    app.create_workspace("ws-sweep-low").await;
    let admin = app.token("admin", Some("ws-sweep-low"));
    app.top_up(&app.operator(), Some("ws-sweep-low"), "PACK_100", "pay-sweep")
        .await
        .data();
    app.gql(
        Some(&admin),
        "mutation { setLowBalanceThreshold(input: {threshold: 200}) { __typename } }",
        json!({}),
    )
    .await
    .data();

    app.clock.advance(Duration::days(8));
    app.ledger.roll_over_periods(app.clock_now()).await.unwrap();

    let wallet = app
        .gql(
            Some(&admin),
            "{ wallet { balance { total } lastSequence lowBalanceAlerts { threshold balance sequence } } }",
            json!({}),
        )
        .await;
    let wallet = &wallet.data()["wallet"];
    assert_eq!(wallet["balance"]["total"], 100);
    // The EXPIRE row (sequence 3, after the GRANT and the TOP_UP) crossed.
    assert_eq!(wallet["lastSequence"], 3);
    assert_eq!(
        wallet["lowBalanceAlerts"],
        json!([{ "threshold": 200, "balance": 100, "sequence": 3 }])
    );
}

both_backends!(
    the_low_balance_alert_fires_once_per_crossing,
    a_threshold_above_the_balance_alerts_at_once,
    the_sweep_alerts_when_an_expiry_crosses_the_threshold,
);
