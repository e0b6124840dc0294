//! Goal: `Wallet.transactions` is a Relay connection, newest first, whose
//! cursors page through the whole ledger exactly once, with filters.
//! Method: write a known ledger, page through it, filter it.

use chrono::Duration;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, start_time};

const PAGE: &str = "query($first: Int, $after: String, $filter: TransactionFilter) {
  wallet { transactions(first: $first, after: $after, filter: $filter) {
    edges { cursor node { sequence kind action reference amount } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  } } }";

async fn page(app: &TestApp, token: &str, variables: Value) -> Value {
    app.gql(Some(token), PAGE, variables).await.data()["wallet"]["transactions"].clone()
}

fn sequences(connection: &Value) -> Vec<i64> {
    connection["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"]["sequence"].as_i64().unwrap())
        .collect()
}

async fn cursors_page_through_the_ledger_newest_first(app: TestApp) {
    app.create_workspace("ws-pages").await;
    let service = app.token("service", Some("ws-pages"));
    for i in 0..6 {
        app.spend_ok(&service, "TRIAGE", &format!("p{i}")).await;
    }

    let first = page(&app, &service, json!({ "first": 3 })).await;
    let second = page(
        &app,
        &service,
        json!({ "first": 3, "after": first["pageInfo"]["endCursor"] }),
    )
    .await;
    let third = page(
        &app,
        &service,
        json!({ "first": 3, "after": second["pageInfo"]["endCursor"] }),
    )
    .await;

    assert_eq!(sequences(&first), vec![7, 6, 5]);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    assert_eq!(first["pageInfo"]["hasPreviousPage"], false);
    assert_eq!(sequences(&second), vec![4, 3, 2]);
    assert_eq!(second["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(sequences(&third), vec![1]);
    assert_eq!(third["pageInfo"]["hasNextPage"], false);
}

async fn filters_select_by_kind_action_reference_and_time(app: TestApp) {
    app.create_workspace("ws-filter").await;
    let service = app.token("service", Some("ws-filter"));
    app.spend(&service, "TRIAGE", "f1", Some("ticket-1")).await.data();
    app.clock.advance(Duration::hours(1));
    app.spend(&service, "SIDEKICK", "f2", Some("thread-9"))
        .await
        .data();
    app.clock.advance(Duration::hours(1));
    app.spend(&service, "AUTO_RESOLVE", "f3", Some("ticket-1"))
        .await
        .data();

    let spends = page(&app, &service, json!({ "filter": { "kinds": ["SPEND"] } })).await;
    let grants = page(&app, &service, json!({ "filter": { "kinds": ["GRANT"] } })).await;
    let sidekick = page(&app, &service, json!({ "filter": { "actions": ["SIDEKICK"] } })).await;
    let ticket = page(&app, &service, json!({ "filter": { "reference": "ticket-1" } })).await;
    let window = page(
        &app,
        &service,
        json!({ "filter": {
            "from": (start_time() + Duration::minutes(30)).to_rfc3339(),
            "to": (start_time() + Duration::minutes(90)).to_rfc3339(),
        } }),
    )
    .await;
    let paged = page(
        &app,
        &service,
        json!({ "first": 1, "filter": { "kinds": ["SPEND"] } }),
    )
    .await;
    let rest = page(
        &app,
        &service,
        json!({ "first": 5, "after": paged["pageInfo"]["endCursor"], "filter": { "kinds": ["SPEND"] } }),
    )
    .await;

    assert_eq!(sequences(&spends), vec![4, 3, 2]);
    assert_eq!(sequences(&grants), vec![1]);
    assert_eq!(sequences(&sidekick), vec![3]);
    assert_eq!(sequences(&ticket), vec![4, 2]);
    assert_eq!(sequences(&window), vec![3]);
    assert_eq!(sequences(&paged), vec![4]);
    assert_eq!(sequences(&rest), vec![3, 2]);
    let inverted = app
        .gql(
            Some(&service),
            PAGE,
            json!({ "filter": { "from": start_time().to_rfc3339(), "to": (start_time() - Duration::hours(1)).to_rfc3339() } }),
        )
        .await;
    assert_eq!(inverted.code(), "BAD_USER_INPUT");
}

both_backends!(
    cursors_page_through_the_ledger_newest_first,
    filters_select_by_kind_action_reference_and_time,
);
