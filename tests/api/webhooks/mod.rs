//! The outbox and its webhooks: events written with the change that caused
//! them, signed per the Standard Webhooks specification, retried, delivered
//! once per endpoint, after a kill -9 too, and never to a private address
//! unless allowed (`docs/design/webhooks.md`).

mod delivery;
mod endpoints;
mod fairness;
mod receiver;

use std::time::Duration;

use protodesk_credits::config::WebhookSettings;
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// Fast settings for the tests: a worker, private targets allowed, short
/// timeouts and retries.
pub fn delivering() -> WebhookSettings {
    WebhookSettings {
        deliver: true,
        allow_private: true,
        timeout: Duration::from_millis(400),
        retry_base: Duration::from_millis(150),
        max_attempts: 4,
        poll: Duration::from_millis(20),
    }
}

/// Test options with [`delivering`] settings.
pub fn with_delivery() -> crate::helpers::Options {
    crate::helpers::Options {
        webhooks: Some(delivering()),
        ..crate::helpers::Options::default()
    }
}

/// `createWebhookEndpoint`; the whole answer.
pub async fn create_endpoint(
    app: &TestApp,
    token: &str,
    workspace: Option<&str>,
    url: &str,
    types: &[&str],
) -> crate::helpers::client::Answer {
    app.gql(
        Some(token),
        "mutation($ws: ID, $url: String!, $types: [String!]) {
           createWebhookEndpoint(input: {workspaceId: $ws, url: $url, eventTypes: $types, description: \"tests\"}) {
             endpoint { id workspaceId url eventTypes description } secret
           }
         }",
        json!({ "ws": workspace, "url": url, "types": types }),
    )
    .await
}

/// Creates an endpoint that must be accepted: (id, secret).
pub async fn endpoint(
    app: &TestApp,
    token: &str,
    workspace: Option<&str>,
    url: &str,
    types: &[&str],
) -> (String, String) {
    let answer = create_endpoint(app, token, workspace, url, types).await;
    let created = &answer.data()["createWebhookEndpoint"];
    (
        created["endpoint"]["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

/// `webhookDeliveries` of an endpoint, newest first.
pub async fn deliveries(app: &TestApp, token: &str, endpoint_id: &str) -> Vec<Value> {
    app.gql(
        Some(token),
        "query($id: ID!) { webhookDeliveries(endpointId: $id, first: 100) {
           nodes { id eventId eventType status attempts lastResponseCode lastError nextAttemptAt deliveredAt }
         } }",
        json!({ "id": endpoint_id }),
    )
    .await
    .data()["webhookDeliveries"]["nodes"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until every delivery of the endpoint is settled (none PENDING)
/// and there are `count` of them.
pub async fn settled_deliveries(app: &TestApp, token: &str, endpoint_id: &str, count: usize) -> Vec<Value> {
    for _ in 0..500 {
        let listed = deliveries(app, token, endpoint_id).await;
        if listed.len() == count && listed.iter().all(|delivery| delivery["status"] != "PENDING") {
            return listed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the deliveries did not settle: {:#?}",
        deliveries(app, token, endpoint_id).await
    );
}
