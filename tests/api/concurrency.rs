//! Goal: no race can overdraw a wallet or charge a key twice.
//! Method: real concurrent HTTP requests against the real database
//! (SQLite file in WAL mode, or PostgreSQL), then count answers and rows.

use futures_util::future::join_all;

use crate::both_backends;
use crate::helpers::TestApp;

/// The `spendCredit` outcome of each answer.
fn outcomes(answers: &[crate::helpers::client::Answer]) -> Vec<String> {
    answers
        .iter()
        .map(|answer| {
            answer.data()["spendCredit"]["outcome"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Credits in the wallet under test.
const K: i64 = 25;

async fn ten_times_k_concurrent_spends_charge_exactly_k(app: TestApp) {
    app.set_trial_credits(K).await;
    app.create_workspace("ws-race").await;
    let service = app.token("service", Some("ws-race"));

    let answers = join_all((0..10 * K).map(|i| {
        let app = app.clone();
        let service = service.clone();
        async move { app.spend(&service, "TRIAGE", &format!("race-{i}"), None).await }
    }))
    .await;

    let outcomes = outcomes(&answers);
    let charged = outcomes.iter().filter(|outcome| *outcome == "CHARGED").count() as i64;
    let refused = outcomes
        .iter()
        .filter(|outcome| *outcome == "INSUFFICIENT_CREDITS")
        .count() as i64;
    assert_eq!(charged, K);
    assert_eq!(refused, 9 * K);
    assert_eq!(app.balance_total("ws-race").await, 0);
    let rows = app.transactions("ws-race").await;
    assert_eq!(rows.iter().filter(|row| row["kind"] == "SPEND").count() as i64, K);
    let mut balances: Vec<i64> = rows
        .iter()
        .filter(|row| row["kind"] == "SPEND")
        .map(|row| row["balanceAfter"].as_i64().unwrap())
        .collect();
    balances.sort_unstable();
    assert_eq!(
        balances,
        (0..K).collect::<Vec<_>>(),
        "each charge left a distinct balance"
    );
}

async fn one_key_repeated_concurrently_charges_once(app: TestApp) {
    app.create_workspace("ws-same-key").await;
    let service = app.token("service", Some("ws-same-key"));

    let answers = join_all((0..20).map(|_| {
        let app = app.clone();
        let service = service.clone();
        async move {
            app.spend(&service, "AUTO_RESOLVE", "same-key", Some("ticket-1"))
                .await
        }
    }))
    .await;

    let outcomes = outcomes(&answers);
    assert_eq!(outcomes.iter().filter(|o| *o == "CHARGED").count(), 1);
    assert_eq!(outcomes.iter().filter(|o| *o == "DUPLICATE").count(), 19);
    let ids: std::collections::HashSet<_> = answers
        .iter()
        .map(|answer| answer.data()["spendCredit"]["transaction"]["id"].clone())
        .collect();
    assert_eq!(ids.len(), 1, "every answer names the one charge");
    assert_eq!(app.balance_total("ws-same-key").await, 299);
}

async fn concurrent_spends_on_many_wallets_stay_exact(app: TestApp) {
    app.set_trial_credits(5).await;
    let workspaces: Vec<String> = (0..4).map(|i| format!("ws-many-{i}")).collect();
    for workspace in &workspaces {
        app.create_workspace(workspace).await;
    }

    join_all(
        workspaces
            .iter()
            .flat_map(|workspace| {
                let token = app.token("service", Some(workspace));
                (0..8).map(move |i| (token.clone(), i))
            })
            .map(|(token, i)| {
                let app = app.clone();
                async move { app.spend(&token, "TRIAGE", &format!("k-{i}"), None).await }
            }),
    )
    .await;

    for workspace in &workspaces {
        assert_eq!(app.balance_total(workspace).await, 0);
        let spends = app
            .transactions(workspace)
            .await
            .into_iter()
            .filter(|row| row["kind"] == "SPEND")
            .count();
        assert_eq!(spends, 5);
    }
}

/// 200 writes of every kind at once, on 8 wallets: none fails (on SQLite
/// each waits for the write lock instead of answering `database is
/// locked`), and the audit after the scenario finds every wallet exact.
async fn two_hundred_mixed_writes_at_once_all_succeed(app: TestApp) {
    const WALLETS: usize = 8;
    let operator = app.operator();
    let mut spends = Vec::new();
    for w in 0..WALLETS {
        let workspace = format!("ws-mix-{w}");
        app.create_workspace(&workspace).await;
        let service = app.token("service", Some(&workspace));
        // Spends made now, to be reversed during the burst.
        for n in 0..4 {
            let spent = app.spend_ok(&service, "TRIAGE", &format!("before-{n}")).await;
            spends.push(spent["transaction"]["id"].as_str().unwrap().to_owned());
        }
    }

    let answers = join_all((0..200usize).map(|i| {
        let app = app.clone();
        let operator = operator.clone();
        let workspace = format!("ws-mix-{}", i % WALLETS);
        let reversal = spends.get(i / 8).cloned();
        async move {
            let service = app.token("service", Some(&workspace));
            let (what, answer) = match i % 8 {
                0 => ("create", app.gql(Some(&operator), "mutation($id: ID!) { createWorkspace(input: {workspaceId: $id, name: \"New\"}) { wallet { plan } } }", serde_json::json!({ "id": format!("ws-new-{i}") })).await),
                1 => ("top-up", app.top_up(&operator, Some(&workspace), "PACK_100", &format!("pay-{i}")).await),
                2 => ("adjust", app.gql(Some(&operator), "mutation($ws: ID!) { adjustCredits(input: {workspaceId: $ws, credits: 5, reason: \"goodwill\"}) { __typename } }", serde_json::json!({ "ws": workspace })).await),
                3 => ("plan", app.change_plan(&operator, Some(&workspace), if i % 16 == 3 { "PRO" } else { "STARTER" }, None).await),
                4 => ("threshold", app.gql(Some(&operator), "mutation($ws: ID, $t: Int) { setLowBalanceThreshold(input: {workspaceId: $ws, threshold: $t}) { __typename } }", serde_json::json!({ "ws": workspace, "t": i })).await),
                5 => ("reversal", app.gql(Some(&operator), "mutation($id: ID!) { reverseTransaction(input: {transactionId: $id, reason: \"refund\"}) { __typename } }", serde_json::json!({ "id": reversal })).await),
                _ => ("spend", app.spend(&service, "TRIAGE", &format!("burst-{i}"), None).await),
            };
            (what, answer)
        }
    }))
    .await;

    for (what, answer) in &answers {
        assert!(
            answer.body.get("errors").is_none(),
            "a concurrent {what} failed: {}",
            answer.body
        );
    }
    let charged = answers
        .iter()
        .filter(|(what, answer)| {
            *what == "spend" && answer.body["data"]["spendCredit"]["outcome"] == "CHARGED"
        })
        .count();
    assert_eq!(charged, 50, "every spend of the burst is charged");
}

/// Two instances on one database, each with its own group-commit workers:
/// only the database orders their writes. 10×K distinct keys, each sent
/// to both instances at once (500 requests): exactly K keys charge, each
/// charged key's other request is a DUPLICATE of it, every other request
/// is refused, and the ledger holds K spends.
async fn two_instances_split_oversubscribed_spends_and_repeats(app: TestApp) {
    app.set_trial_credits(K).await;
    app.create_workspace("ws-two").await;
    let other = TestApp::spawn_beside(&app, crate::helpers::Options::default()).await;
    let service = app.token("service", Some("ws-two"));

    let answers = join_all((0..10 * K).flat_map(|i| {
        [&app, &other].map(|instance| {
            let instance = instance.clone();
            let service = service.clone();
            async move {
                (
                    i,
                    instance
                        .spend(&service, "TRIAGE", &format!("two-{i}"), None)
                        .await,
                )
            }
        })
    }))
    .await;

    let mut by_key: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for (i, answer) in &answers {
        let payload = &answer.data()["spendCredit"];
        by_key
            .entry(*i)
            .or_default()
            .push(payload["outcome"].as_str().unwrap().to_owned());
    }
    let mut charged = 0;
    for (key, mut outcomes) in by_key {
        outcomes.sort();
        match outcomes.as_slice() {
            [a, b] if a == "CHARGED" && b == "DUPLICATE" => charged += 1,
            [a, b] if a == "INSUFFICIENT_CREDITS" && b == "INSUFFICIENT_CREDITS" => {}
            other => panic!("key two-{key}: {other:?}"),
        }
    }
    assert_eq!(charged, K);
    assert_eq!(app.balance_total("ws-two").await, 0);
    let spends = app
        .transactions("ws-two")
        .await
        .iter()
        .filter(|row| row["kind"] == "SPEND")
        .count() as i64;
    assert_eq!(spends, K);
    app.verify_ledger().await;
}

both_backends!(
    two_instances_split_oversubscribed_spends_and_repeats,
    two_hundred_mixed_writes_at_once_all_succeed,
    ten_times_k_concurrent_spends_charge_exactly_k,
    one_key_repeated_concurrently_charges_once,
    concurrent_spends_on_many_wallets_stay_exact,
);
