//! Goal: the balance subscription delivers a snapshot, then every committed
//! change once and in ledger order; reconnecting with `afterSequence`
//! replays what was missed; tokens are checked at connection_init and at
//! subscribe. Method: a real graphql-transport-ws client against the
//! running server.

use chrono::Duration;
use serde_json::json;

use crate::both_backends;
use crate::helpers::TestApp;
use crate::helpers::ws::Init;

async fn a_subscriber_gets_a_snapshot_then_every_change_in_order(app: TestApp) {
    app.set_trial_credits(10).await;
    app.create_workspace("ws-live").await;
    let agent = app.token("agent", Some("ws-live"));
    let admin = app.token("admin", Some("ws-live"));
    let service = app.token("service", Some("ws-live"));
    let mut client = app.ws(&agent).await;
    client.subscribe_balance("1", None, None).await;
    let snapshot = client.next_event().await;
    app.spend_ok(&service, "TRIAGE", "l1").await;
    app.top_up(&app.operator(), Some("ws-live"), "PACK_100", "pay-live")
        .await
        .data();
    app.gql(
        Some(&admin),
        "mutation { setLowBalanceThreshold(input: {threshold: 109}) { wallet { lowBalanceThreshold } } }",
        json!({}),
    )
    .await
    .data();
    app.spend_ok(&service, "SIDEKICK", "l2").await;

    assert_eq!(
        snapshot,
        json!({ "kind": "SNAPSHOT", "sequence": 1, "transactionId": null, "delta": 0,
        "balance": { "total": 10, "allocation": 0, "purchased": 0, "bonus": 10 } })
    );
    let spend = client.next_event().await;
    assert_eq!(
        (
            spend["kind"].clone(),
            spend["sequence"].clone(),
            spend["delta"].clone()
        ),
        (json!("SPEND"), json!(2), json!(-1))
    );
    assert_eq!(spend["balance"]["total"], 9);
    let top_up = client.next_event().await;
    assert_eq!(
        (top_up["kind"].clone(), top_up["sequence"].clone()),
        (json!("TOP_UP"), json!(3))
    );
    assert_eq!(
        top_up["balance"],
        json!({ "total": 109, "allocation": 0, "purchased": 100, "bonus": 9 })
    );
    let second_spend = client.next_event().await;
    assert_eq!(
        (second_spend["kind"].clone(), second_spend["sequence"].clone()),
        (json!("SPEND"), json!(4))
    );
    let low = client.next_event().await;
    assert_eq!(
        (low["kind"].clone(), low["sequence"].clone()),
        (json!("LOW_BALANCE"), json!(4))
    );
    assert_eq!(low["balance"]["total"], 108);
}

async fn grants_and_expiries_arrive_too(app: TestApp) {
    app.create_workspace("ws-expiry").await;
    let agent = app.token("agent", Some("ws-expiry"));
    let mut client = app.ws(&agent).await;
    client.subscribe_balance("s", None, None).await;
    client.next_event().await;

    app.clock.advance(Duration::days(7));
    app.ledger.roll_over_periods(app.clock_now()).await.unwrap();
    app.set_plan(&app.token("admin", Some("ws-expiry")), "PRO", None)
        .await
        .data();

    let expired = client.next_event().await;
    assert_eq!(
        (expired["kind"].clone(), expired["delta"].clone()),
        (json!("EXPIRE"), json!(-300))
    );
    let granted = client.next_event().await;
    assert_eq!(
        (granted["kind"].clone(), granted["delta"].clone()),
        (json!("GRANT"), json!(1000))
    );
    assert_eq!(granted["balance"]["allocation"], 1000);
}

async fn reconnecting_with_after_sequence_replays_what_was_missed(app: TestApp) {
    app.create_workspace("ws-replay").await;
    let service = app.token("service", Some("ws-replay"));
    for key in ["m1", "m2", "m3"] {
        app.spend_ok(&service, "TRIAGE", key).await;
    }
    let mut client = app.ws(&service).await;

    client.subscribe_balance("r", None, Some(2)).await;

    let first = client.next_event().await;
    let second = client.next_event().await;
    assert_eq!(
        (first["sequence"].clone(), first["balance"]["total"].clone()),
        (json!(3), json!(298))
    );
    assert_eq!(
        (second["sequence"].clone(), second["balance"]["total"].clone()),
        (json!(4), json!(297))
    );
    app.spend_ok(&service, "TRIAGE", "m4").await;
    let live = client.next_event().await;
    assert_eq!(live["sequence"], 5);
}

async fn tokens_are_checked_at_connection_init_and_at_subscribe(app: TestApp) {
    app.create_workspace("ws-sub-a").await;
    app.create_workspace("ws-sub-b").await;

    for payload in [
        json!({}),
        json!({ "Authorization": "Bearer not-a-token" }),
        json!({ "token": "x.y.z" }),
    ] {
        match app.ws_connect(payload.clone()).await {
            Init::Closed(code, reason) => {
                assert_eq!(code, 4403, "{payload}");
                assert!(reason.contains("UNAUTHENTICATED"), "{payload}: {reason}");
            }
            Init::Acked(_) => panic!("{payload} was accepted"),
        }
    }
    let token_field = app
        .ws_connect(json!({ "token": app.token("agent", Some("ws-sub-a")) }))
        .await;
    assert!(
        matches!(token_field, Init::Acked(_)),
        "the token field is accepted"
    );
    let mut client = app.ws(&app.token("agent", Some("ws-sub-a"))).await;
    client.subscribe_balance("foreign", Some("ws-sub-b"), None).await;
    let refused = client.next_message().await;
    // async-graphql answers a refused subscribe with a `next` carrying errors.
    let code = match refused["type"].as_str() {
        Some("error") => refused["payload"][0]["extensions"]["code"].clone(),
        _ => refused["payload"]["errors"][0]["extensions"]["code"].clone(),
    };
    assert_eq!(code, "NOT_FOUND", "{refused}");
    assert!(refused["payload"]["data"].is_null() || refused["type"] == "error");
}

both_backends!(
    a_subscriber_gets_a_snapshot_then_every_change_in_order,
    grants_and_expiries_arrive_too,
    reconnecting_with_after_sequence_replays_what_was_missed,
    tokens_are_checked_at_connection_init_and_at_subscribe,
);

mod instances;

mod limits;

mod slow_consumer;

mod listener_loss;

mod protocol;
