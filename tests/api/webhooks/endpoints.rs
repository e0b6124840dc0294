//! Endpoints: who may manage them, which events each receives, secret
//! rotation, deletion, and the targets refused.

use std::time::Duration;

use serde_json::json;

use super::receiver::{Receiver, signature_is_valid};
use super::{create_endpoint, delivering, endpoint, settled_deliveries};
use crate::both_backends;
use crate::budgets::Budget;
use crate::helpers::{Backend, Options, TestApp};

async fn each_endpoint_gets_its_workspace_s_subscribed_events(app: TestApp) {
    let (own, everyone) = (Receiver::start().await, Receiver::start().await);
    app.create_workspace("ws-a").await;
    app.create_workspace("ws-b").await;
    let admin_a = app.token("admin", Some("ws-a"));
    let operator = app.operator();
    let (own_id, _) = endpoint(&app, &admin_a, None, &own.url, &["credits.top_up_applied"]).await;
    let (everyone_id, _) = endpoint(&app, &operator, None, &everyone.url, &[]).await;

    app.top_up(&operator, Some("ws-a"), "PACK_100", "pay-a")
        .await
        .data();
    app.top_up(&operator, Some("ws-b"), "PACK_100", "pay-b")
        .await
        .data();
    app.gql(
        Some(&admin_a),
        "mutation { setLowBalanceThreshold(input: {threshold: 1000}) { wallet { balance { total } } } }",
        json!({}),
    )
    .await
    .data();
    let service_a = app.token("service", Some("ws-a"));
    app.spend_ok(&service_a, "TRIAGE", "below").await;

    let everything = everyone.wait_for(Duration::from_secs(10), |r| r.len() >= 3).await;
    let seen: Vec<(String, String)> = everything
        .iter()
        .map(|r| {
            let body = r.json();
            (
                body["workspaceId"].as_str().unwrap().to_owned(),
                body["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        seen.contains(&("ws-a".into(), "credits.top_up_applied".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("ws-b".into(), "credits.top_up_applied".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("ws-a".into(), "credits.low_balance".into())),
        "{seen:?}"
    );
    settled_deliveries(&app, &operator, &everyone_id, 3).await;
    let mine = settled_deliveries(&app, &admin_a, &own_id, 1).await;
    assert_eq!(mine[0]["eventType"], "credits.top_up_applied");
    let only = own.received();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].json()["workspaceId"], "ws-a");

    // Another workspace's admin sees none of it.
    let admin_b = app.token("admin", Some("ws-b"));
    let listed = app
        .gql(Some(&admin_b), "{ webhookEndpoints { id } }", json!({}))
        .await;
    assert_eq!(listed.data()["webhookEndpoints"], json!([]));
    let foreign = app
        .gql(
            Some(&admin_b),
            "query($id: ID!) { webhookDeliveries(endpointId: $id) { nodes { id } } }",
            json!({ "id": own_id }),
        )
        .await;
    assert_eq!(foreign.code(), "NOT_FOUND");
    let listed = app
        .gql(
            Some(&operator),
            "{ webhookEndpoints { id workspaceId } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed.data()["webhookEndpoints"],
        json!([{ "id": everyone_id, "workspaceId": null }]),
        "an operator's list without a workspace: the endpoints for every workspace"
    );
}

async fn only_admins_and_operators_manage_endpoints_and_bad_input_changes_nothing(app: TestApp) {
    app.create_workspace("ws-roles").await;
    let receiver = Receiver::start().await;
    for role in ["agent", "service"] {
        let token = app.token(role, Some("ws-roles"));
        let refused = create_endpoint(&app, &token, None, &receiver.url, &[]).await;
        assert_eq!(refused.code(), "FORBIDDEN", "{role}");
    }
    let admin = app.token("admin", Some("ws-roles"));
    let other = create_endpoint(&app, &admin, Some("ws-elsewhere"), &receiver.url, &[]).await;
    assert_eq!(other.code(), "NOT_FOUND");
    let unknown_type = create_endpoint(&app, &admin, None, &receiver.url, &["credits.nope"]).await;
    assert_eq!(unknown_type.code(), "BAD_USER_INPUT");
    let not_a_url = create_endpoint(&app, &admin, None, "not a url", &[]).await;
    assert_eq!(not_a_url.code(), "BAD_USER_INPUT");
    let bad_id = app
        .gql(
            Some(&admin),
            "mutation { deleteWebhookEndpoint(input: {endpointId: \"x\"}) { endpointId } }",
            json!({}),
        )
        .await;
    assert_eq!(bad_id.code(), "BAD_USER_INPUT");
    let bad_event = app
        .gql(
            Some(&admin),
            "mutation { redeliverWebhookEvent(input: {endpointId: \"1\", eventId: \"1\"}) { delivery { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(bad_event.code(), "BAD_USER_INPUT");
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM webhook_endpoint").await, 0);
}

async fn a_rotated_secret_signs_at_once_and_a_deleted_endpoint_gets_nothing(app: TestApp) {
    let receiver = Receiver::start().await;
    app.create_workspace("ws-rotate").await;
    let admin = app.token("admin", Some("ws-rotate"));
    let operator = app.operator();
    let (id, old) = endpoint(&app, &admin, None, &receiver.url, &[]).await;
    let rotated = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { rotateWebhookSecret(input: {endpointId: $id}) { endpoint { id } secret } }",
            json!({ "id": id }),
        )
        .await;
    let new = rotated.data()["rotateWebhookSecret"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, old);
    app.top_up(&operator, Some("ws-rotate"), "PACK_100", "pay-rot-1")
        .await
        .data();
    let received = receiver
        .wait_for(Duration::from_secs(10), |r| !r.is_empty())
        .await;
    assert!(signature_is_valid(&new, &received[0]));
    assert!(!signature_is_valid(&old, &received[0]));

    let deleted = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { deleteWebhookEndpoint(input: {endpointId: $id}) { endpointId } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(deleted.data()["deleteWebhookEndpoint"]["endpointId"], id.as_str());
    app.top_up(&operator, Some("ws-rotate"), "PACK_100", "pay-rot-2")
        .await
        .data();
    // Deliveries are rows written with the event: none was queued for the
    // deleted endpoint, so nothing can be sent to it.
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM outbox_event WHERE event_type = 'credits.top_up_applied'")
            .await,
        2,
        "the second top-up's event was written"
    );
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM webhook_delivery").await,
        0,
        "a deleted endpoint gets no delivery (its old ones went with it)"
    );
    assert_eq!(receiver.received().len(), 1);
    let gone = app
        .gql(
            Some(&admin),
            "query($id: ID!) { webhookDeliveries(endpointId: $id) { nodes { id } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(gone.code(), "NOT_FOUND");
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM outbox_event").await,
        2,
        "events are written whether or not anyone listens"
    );
}

async fn a_budget_used_up_is_told_once(app: TestApp) {
    let receiver = Receiver::start().await;
    app.create_workspace("ws-budget").await;
    let admin = app.token("admin", Some("ws-budget"));
    endpoint(&app, &admin, None, &receiver.url, &["credits.budget_exceeded"]).await;
    app.set_budget(&admin, None, &Budget::hard("cap", "WORKSPACE", 2))
        .await
        .data();
    let service = app.token("service", Some("ws-budget"));
    let mut outcomes = Vec::new();
    for i in 0..4 {
        outcomes.push(app.spend_ok(&service, "TRIAGE", &format!("b-{i}")).await["outcome"].clone());
    }
    assert_eq!(
        outcomes,
        ["CHARGED", "CHARGED", "BUDGET_EXCEEDED", "BUDGET_EXCEEDED"]
    );
    let received = receiver
        .wait_for(Duration::from_secs(10), |r| !r.is_empty())
        .await;
    let body = received[0].json();
    assert_eq!(body["type"], "credits.budget_exceeded");
    assert_eq!(body["data"]["budget"], "cap");
    // Told once: one event, so one delivery row to the one endpoint.
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM outbox_event WHERE event_type = 'credits.budget_exceeded'")
            .await,
        1,
        "once per window"
    );
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM webhook_delivery").await, 1);
}

both_backends!(
    options = crate::webhooks::with_delivery();
    a_budget_used_up_is_told_once,
    each_endpoint_gets_its_workspace_s_subscribed_events,
    only_admins_and_operators_manage_endpoints_and_bad_input_changes_nothing,
    a_rotated_secret_signs_at_once_and_a_deleted_endpoint_gets_nothing,
);

/// Without `WEBHOOK_ALLOW_PRIVATE`, private, loopback and link-local
/// targets and plain http are refused, and nothing is stored.
async fn private_targets_are_refused_without_the_setting(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            webhooks: Some(protodesk_credits::config::WebhookSettings {
                allow_private: false,
                ..delivering()
            }),
            ..Options::default()
        },
    )
    .await;
    app.create_workspace("ws-ssrf").await;
    let admin = app.token("admin", Some("ws-ssrf"));
    let receiver = Receiver::start().await;
    let https_receiver = receiver.url.replace("http://", "https://");
    for target in [
        receiver.url.as_str(),
        https_receiver.as_str(),
        "https://localhost/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/hook",
        "https://192.168.1.10/hook",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://0.0.0.0/hook",
        "http://8.8.8.8/hook",
    ] {
        let refused = create_endpoint(&app, &admin, None, target, &[]).await;
        assert_eq!(refused.code(), "BAD_USER_INPUT", "{target}: {:?}", refused.body);
    }
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM webhook_endpoint").await, 0);
    assert!(deliveries_are_empty(&app).await);
    app.teardown().await;
}

/// The guard at delivery time: an endpoint row that points at a private
/// address (written past the creation check, as a DNS change or an old row
/// would make it) receives nothing while private targets are refused, by
/// a literal address or by a name that resolves to one; each delivery
/// settles FAILED with the refusal as its error.
async fn a_target_turned_private_receives_nothing(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        Options {
            webhooks: Some(protodesk_credits::config::WebhookSettings {
                allow_private: false,
                max_attempts: 1,
                ..delivering()
            }),
            ..Options::default()
        },
    )
    .await;
    app.create_workspace("ws-turned").await;
    let admin = app.token("admin", Some("ws-turned"));
    let receiver = Receiver::start().await;
    // By a literal address, and by a name that resolves to one (https,
    // as a target must be: the resolver refuses before any connection).
    let by_name = receiver.url.replace("http://127.0.0.1", "https://localhost");
    for url in [receiver.url.as_str(), by_name.as_str()] {
        app.execute_sql(&format!(
            "INSERT INTO webhook_endpoint (workspace_id, url, event_types, description, secret, created_at) \
             VALUES ('ws-turned', '{url}', '', 'turned private', 'whsec_dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0', CURRENT_TIMESTAMP)"
        ))
        .await;
    }
    app.top_up(&app.operator(), Some("ws-turned"), "PACK_100", "pay-turned")
        .await
        .data();
    let endpoints = app
        .gql(Some(&admin), "{ webhookEndpoints { id url } }", json!({}))
        .await
        .data()["webhookEndpoints"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(endpoints.len(), 2, "{endpoints:?}");
    for endpoint in &endpoints {
        let id = endpoint["id"].as_str().unwrap();
        let events = app.query_i64("SELECT COUNT(*) FROM outbox_event").await as usize;
        let listed = crate::webhooks::settled_deliveries(&app, &admin, id, events).await;
        for delivery in &listed {
            assert_eq!(delivery["status"], "FAILED", "{endpoint}: {delivery}");
            assert_eq!(
                delivery["lastResponseCode"],
                serde_json::Value::Null,
                "{delivery}"
            );
            let error = delivery["lastError"].as_str().unwrap_or_default();
            assert!(error.contains("private"), "{endpoint}: {error}");
        }
    }
    assert!(
        receiver.received().is_empty(),
        "a private target received a request"
    );
    app.verify_ledger().await;
    app.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_target_turned_private_receives_nothing() {
    a_target_turned_private_receives_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_target_turned_private_receives_nothing() {
    a_target_turned_private_receives_nothing(Backend::Postgres).await;
}

async fn deliveries_are_empty(app: &TestApp) -> bool {
    app.query_i64("SELECT COUNT(*) FROM webhook_delivery").await == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_private_targets_are_refused_without_the_setting() {
    private_targets_are_refused_without_the_setting(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_private_targets_are_refused_without_the_setting() {
    private_targets_are_refused_without_the_setting(Backend::Postgres).await;
}
