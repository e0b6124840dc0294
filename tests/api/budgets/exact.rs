//! Exactness under 10x oversubscription: 50 concurrent spends for one
//! agent against a HARD budget of 5 give exactly 5 CHARGED, through group
//! commit, through single spends, and on two PostgreSQL instances at once.

use futures_util::future::join_all;

use super::*;
use crate::both_backends;
use crate::helpers::Backend;

async fn oversubscribe(apps: &[&TestApp], workspace: &str) {
    let first = apps[0];
    first.create_workspace(workspace).await;
    let admin = first.token("admin", Some(workspace));
    let service = first.token("service", Some(workspace));
    first
        .set_budget(&admin, None, &Budget::hard("sidekick-cap", "EACH_AGENT", 5))
        .await
        .data();
    let before = first.wallet(&admin, None).await.data()["wallet"]["balance"]["total"]
        .as_i64()
        .unwrap();

    let spends = (0..50).map(|n| {
        let app = apps[n % apps.len()];
        let service = service.clone();
        async move {
            app.spend_for_ok(&service, "SIDEKICK", &format!("k-{n}"), Some("ana"))
                .await["outcome"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    });
    let batches_before = first.metric("credits_spend_batch_size_count").await;
    let outcomes = join_all(spends).await;
    // Through group commit the fifty really shared batches (with it off
    // no batch is counted: each spend is its own batch of one, unmetered).
    let batches = first.metric("credits_spend_batch_size_count").await - batches_before;
    if apps.len() == 1 && batches > 0.0 {
        assert!(batches < 50.0, "the spends shared batches ({batches} for 50)");
    }
    let charged = outcomes.iter().filter(|outcome| *outcome == "CHARGED").count();
    let exceeded = outcomes
        .iter()
        .filter(|outcome| *outcome == "BUDGET_EXCEEDED")
        .count();
    assert_eq!((charged, exceeded), (5, 45), "{outcomes:?}");

    let after = first.wallet(&admin, None).await.data()["wallet"]["balance"]["total"]
        .as_i64()
        .unwrap();
    assert_eq!(before - after, 5, "the pool went down by exactly the charges");
    assert_eq!(
        first.budget_usage(&admin, Some("ana")).await,
        [("sidekick-cap".to_owned(), 5, 0)]
    );
    assert_eq!(
        first
            .query_i64("SELECT COUNT(*) FROM ledger_entry WHERE kind = 'SPEND' AND agent_id = 'ana'")
            .await,
        5
    );
    first.verify_ledger().await;
}

async fn fifty_spends_against_a_budget_of_five_through_group_commit(app: TestApp) {
    oversubscribe(&[&app], "ws-over").await;
}

async fn fifty_spends_against_a_budget_of_five_one_by_one(app: TestApp) {
    oversubscribe(&[&app], "ws-over-single").await;
}

both_backends!(fifty_spends_against_a_budget_of_five_through_group_commit);

mod unbatched {
    use super::*;
    both_backends!(
        options = crate::helpers::Options { unbatched: true, ..crate::helpers::Options::default() };
        fifty_spends_against_a_budget_of_five_one_by_one
    );
}

/// PostgreSQL, two instances of one database: a WORKSPACE budget of 5 spent
/// by ten agents at once is charged exactly 5 times, and its
/// `credits.budget_exceeded` is told once, though both instances refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_budget_shared_by_agents_on_two_postgres_instances_charges_five_and_tells_once() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let other = app.spawn_sibling().await;
    app.create_workspace("ws-shared").await;
    let admin = app.token("admin", Some("ws-shared"));
    let service = app.token("service", Some("ws-shared"));
    app.set_budget(&admin, None, &Budget::hard("team-cap", "WORKSPACE", 5))
        .await
        .data();
    let outcomes = join_all((0..40).map(|n| {
        let app = if n % 2 == 0 { &app } else { &other };
        let service = service.clone();
        async move {
            let agent = format!("agent-{}", n % 10);
            app.spend_for_ok(&service, "TRIAGE", &format!("s-{n}"), Some(&agent))
                .await["outcome"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    }))
    .await;
    let charged = outcomes.iter().filter(|outcome| *outcome == "CHARGED").count();
    assert_eq!(charged, 5, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|outcome| outcome == "CHARGED" || outcome == "BUDGET_EXCEEDED"),
        "{outcomes:?}"
    );
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM outbox_event WHERE event_type = 'credits.budget_exceeded'")
            .await,
        1,
        "told once, though both instances refused"
    );
    app.verify_ledger().await;
    app.teardown().await;
}

/// PostgreSQL: the same spends split across two instances of one database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_spends_across_two_postgres_instances_charge_five() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let other = app.spawn_sibling().await;
    oversubscribe(&[&app, &other], "ws-over-two").await;
    app.verify_ledger().await;
    app.teardown().await;
}
