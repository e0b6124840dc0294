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
    let outcomes = join_all(spends).await;
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

/// PostgreSQL: the same spends split across two instances of one database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_spends_across_two_postgres_instances_charge_five() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let other = app.spawn_sibling().await;
    oversubscribe(&[&app, &other], "ws-over-two").await;
    app.teardown().await;
}
