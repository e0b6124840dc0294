//! `balanceChanged` tells holds in ledger order (placed, captured,
//! released, expired), with `available` and `held`, and resumes across them.

use chrono::Duration;
use serde_json::{Value, json};

use super::{Ask, hold_id, wallet_of};
use crate::both_backends;
use crate::helpers::TestApp;
use crate::helpers::ws::WsClient;

const EVENTS: &str = "subscription($after: Int) { balanceChanged(afterSequence: $after) {
    kind sequence delta holdId balance { total available held } } }";

async fn subscribe(client: &mut WsClient, id: &str, after: Option<i64>) {
    client
        .send(json!({
            "id": id, "type": "subscribe",
            "payload": { "query": EVENTS, "variables": { "after": after } }
        }))
        .await;
}

/// (kind, sequence, holdId given, total, available, held) of an event.
fn seen(event: &Value) -> (String, i64, bool, i64, i64, i64) {
    let balance = &event["balance"];
    (
        event["kind"].as_str().unwrap().to_owned(),
        event["sequence"].as_i64().unwrap(),
        !event["holdId"].is_null(),
        balance["total"].as_i64().unwrap(),
        balance["available"].as_i64().unwrap(),
        balance["held"].as_i64().unwrap(),
    )
}

async fn hold_events_arrive_in_order_and_resume(app: TestApp) {
    let service = wallet_of(&app, "ws-hold-stream", 100).await;
    let mut client = app.ws(&service).await;
    subscribe(&mut client, "live", None).await;
    let snapshot = client.next_event().await;
    assert_eq!(snapshot["kind"], "SNAPSHOT");
    let captured = hold_id(&app.reserve_ok(&service, "a", &Ask::of(10)).await);
    let released = hold_id(&app.reserve_ok(&service, "b", &Ask::of(20)).await);
    app.reserve_ok(
        &service,
        "c",
        &Ask {
            ttl: Some(30),
            ..Ask::of(5)
        },
    )
    .await;
    app.capture(&service, &captured, Some(8)).await.data();
    app.release(&service, &released, "never ran").await.data();
    app.clock.set(app.clock_now() + Duration::seconds(31));
    app.ledger.roll_over_periods(app.clock_now()).await.unwrap();
    let expected = vec![
        ("HOLD".to_owned(), 2, true, 100, 90, 10),
        ("HOLD".to_owned(), 3, true, 100, 70, 30),
        ("HOLD".to_owned(), 4, true, 100, 65, 35),
        ("SPEND".to_owned(), 5, true, 92, 67, 25),
        ("RELEASE".to_owned(), 6, true, 92, 87, 5),
        ("HOLD_EXPIRED".to_owned(), 7, true, 92, 92, 0),
    ];
    let mut live = Vec::new();
    for _ in 0..expected.len() {
        live.push(seen(&client.next_event().await));
    }
    assert_eq!(live, expected);
    // Resuming after the first hold replays the rest from the ledger, the
    // same events.
    let mut again = app.ws(&service).await;
    subscribe(&mut again, "resume", Some(2)).await;
    let mut replayed = Vec::new();
    for _ in 1..expected.len() {
        replayed.push(seen(&again.next_event().await));
    }
    assert_eq!(replayed, expected[1..]);
}

both_backends!(hold_events_arrive_in_order_and_resume);
