//! PostgreSQL: a change committed on one instance reaches a subscriber
//! connected to another, through NOTIFY, with the rows read from the ledger.
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_spend_on_instance_a_reaches_a_subscriber_on_instance_b() {
    let a = TestApp::spawn(crate::helpers::Backend::Postgres).await;
    let b = a.spawn_sibling().await;
    a.create_workspace("ws-fan").await;
    let service = a.token("service", Some("ws-fan"));
    let mut client = b.ws(&a.token("agent", Some("ws-fan"))).await;
    client.subscribe_balance("x", None, None).await;
    assert_eq!(client.next_event().await["kind"], "SNAPSHOT");
    // B's relay (and A's) listen before the spend is committed on A.
    crate::helpers::wait_for_listeners(a.pg_schema.as_deref().unwrap(), 2).await;

    a.spend_ok(&service, "TRIAGE", "fan-1").await;
    a.spend_ok(&service, "TRIAGE", "fan-2").await;

    let first = client.next_event().await;
    let second = client.next_event().await;
    assert_eq!(
        (first["kind"].clone(), first["sequence"].clone()),
        (json!("SPEND"), json!(2))
    );
    assert_eq!(
        (second["sequence"].clone(), second["balance"]["total"].clone()),
        (json!(3), json!(298))
    );

    // A single write (a top-up, outside group commit) notifies as well.
    a.top_up(&a.operator(), Some("ws-fan"), "PACK_100", "fan-pay")
        .await
        .data();
    let third = client.next_event().await;
    assert_eq!(
        (
            third["kind"].clone(),
            third["sequence"].clone(),
            third["balance"]["total"].clone()
        ),
        (json!("TOP_UP"), json!(4), json!(398))
    );
    a.verify_ledger().await;
    a.teardown().await;
}

/// The sweep's rows reach other instances too (its NOTIFY is written
/// apart from the single writes' and the group commit's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_renewal_swept_on_instance_a_reaches_a_subscriber_on_instance_b() {
    let a = TestApp::spawn(crate::helpers::Backend::Postgres).await;
    let b = a.spawn_sibling().await;
    a.set_trial_credits(0).await;
    a.create_workspace("ws-swept").await;
    a.set_plan(&a.token("admin", Some("ws-swept")), "PRO", None)
        .await
        .data();
    let mut client = b.ws(&a.token("agent", Some("ws-swept"))).await;
    client.subscribe_balance("x", None, None).await;
    assert_eq!(client.next_event().await["kind"], "SNAPSHOT");
    crate::helpers::wait_for_listeners(a.pg_schema.as_deref().unwrap(), 2).await;
    let now = crate::helpers::start_time() + Duration::days(40);
    a.clock.set(now);

    let report = a.ledger.roll_over_periods(now).await.unwrap();

    assert_eq!(report.wallets_changed, 1);
    let expired = client.next_event().await;
    let granted = client.next_event().await;
    assert_eq!(
        (expired["kind"].clone(), expired["sequence"].clone()),
        (json!("EXPIRE"), json!(2))
    );
    assert_eq!(
        (
            granted["kind"].clone(),
            granted["sequence"].clone(),
            granted["balance"]["total"].clone()
        ),
        (json!("GRANT"), json!(3), json!(1000))
    );
    a.verify_ledger().await;
    a.teardown().await;
}
