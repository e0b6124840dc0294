//! Goal (PostgreSQL): when the relay's LISTEN connection is killed
//! mid-stream, nothing is lost: it listens again and every subscriber
//! reads what it missed from the ledger. Method: two instances; kill
//! B's listener with pg_terminate_backend; spend on A while it is down.
use super::*;
use crate::helpers::postgres_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killing_the_listener_loses_nothing() {
    let a = TestApp::spawn(crate::helpers::Backend::Postgres).await;
    let b = a.spawn_sibling().await;
    a.create_workspace("ws-kill").await;
    let service = a.token("service", Some("ws-kill"));
    let mut client = b.ws(&a.token("agent", Some("ws-kill"))).await;
    client.subscribe_balance("k", None, None).await;
    assert_eq!(client.next_event().await["kind"], "SNAPSHOT");
    crate::helpers::wait_for_listeners(a.pg_schema.as_deref().unwrap(), 2).await;
    a.spend_ok(&service, "TRIAGE", "before").await;
    assert_eq!(client.next_event().await["sequence"], 2);

    let admin = sea_orm::Database::connect(postgres_url()).await.unwrap();
    let channel = format!("credits_{}", a.pg_schema.clone().unwrap());
    let killed = sea_orm::ConnectionTrait::query_all_raw(
        &admin,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE query LIKE 'LISTEN%{channel}%' AND pid <> pg_backend_pid()"
            ),
        ),
    )
    .await
    .unwrap();
    assert!(!killed.is_empty(), "a listener connection was found and killed");
    a.spend_ok(&service, "TRIAGE", "while-down").await;

    let missed = client.next_event().await;
    assert_eq!(
        (missed["kind"].clone(), missed["sequence"].clone()),
        (json!("SPEND"), json!(3))
    );
    assert_eq!(missed["balance"]["total"], 298);
    a.spend_ok(&service, "TRIAGE", "after").await;
    assert_eq!(client.next_event().await["sequence"], 4);
    a.verify_ledger().await;
    a.teardown().await;
}
