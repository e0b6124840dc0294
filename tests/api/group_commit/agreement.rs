//! Batched and unbatched agree: the same answers, rows and alerts, in
//! order and under concurrency; keys matched by (workspace, key).

use std::time::Duration;

use futures_util::future::join_all;
use protodesk_credits::service::GroupCommitSettings;
use serde_json::Value;

use super::*;
use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp};

/// Two prepared apps side by side: one gathering every spend queued within
/// 300 ms into one batch (one worker), one applying each spend alone.
async fn batching_and_unbatched(backend: Backend) -> (TestApp, TestApp) {
    let batching = prepared(
        backend,
        Options {
            group_commit: Some(GroupCommitSettings {
                max_batch: 1000,
                window: Duration::from_millis(300),
                workers: Some(1),
            }),
            ..Options::default()
        },
    )
    .await;
    let unbatched = prepared(
        backend,
        Options {
            unbatched: true,
            ..Options::default()
        },
    )
    .await;
    (batching, unbatched)
}

async fn batched_and_sequential_spends_agree(backend: Backend) {
    let (batching, unbatched) = batching_and_unbatched(backend).await;

    // Queued together (join_all enqueues in order before any answer).
    let batched_answers = join_all(SEQUENCE.iter().map(|(workspace, action, key, reference)| {
        spend(&batching, request(workspace, *action, key, *reference))
    }))
    .await;
    let mut sequential_answers = Vec::new();
    for (workspace, action, key, reference) in SEQUENCE {
        sequential_answers.push(spend(&unbatched, request(workspace, action, key, reference)).await);
    }

    for (index, (batched, sequential)) in batched_answers.iter().zip(&sequential_answers).enumerate() {
        assert_eq!(batched, sequential, "answer {index} to {:?}", SEQUENCE[index]);
    }
    let outcomes: Vec<String> = sequential_answers
        .iter()
        .map(|answer| {
            answer["outcome"]
                .as_str()
                .or(answer["error"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            "CHARGED",
            "CHARGED",
            "CHARGED",
            "DUPLICATE",
            "CHARGED",
            "IDEMPOTENCY_CONFLICT",
            "CHARGED",
            "NOT_FOUND",
            "CHARGED",
            "CHARGED",
            "INSUFFICIENT_CREDITS",
            "CHARGED",
            "INSUFFICIENT_CREDITS",
            "DUPLICATE",
            "DUPLICATE",
            "IDEMPOTENCY_CONFLICT",
        ],
        "the sequence covers every kind of answer"
    );
    let rows = stored(&unbatched).await;
    assert_eq!(stored(&batching).await, rows);
    assert_eq!(
        rows.iter().filter(|row| row[14] == 1).count(),
        1,
        "one low-balance alert, on the row that crossed below 3: {rows:#?}"
    );
    let batch_count = batches(&batching).await;
    assert!(
        batch_count < SEQUENCE.len() as f64,
        "the spends were applied in batches ({batch_count} for {})",
        SEQUENCE.len()
    );
    assert_eq!(failed_batches(&batching).await, 0.0, "every batch committed");
    for app in [batching, unbatched] {
        app.verify_ledger().await;
        app.teardown().await;
    }
}

/// Keys bound in an earlier transaction are matched by (workspace, key),
/// never by the key alone: after ws-a, ws-b and ws-c bound k1, k2 and k3
/// (one each), one batch of all nine (workspace, key) pairs of those keys
/// charges the six not bound and repeats the three bound (DUPLICATE, or
/// IDEMPOTENCY_CONFLICT for another action), exactly as the unbatched
/// path answers, and the batch commits.
async fn bound_keys_are_matched_by_workspace_and_key(backend: Backend) {
    let (batching, unbatched) = batching_and_unbatched(backend).await;
    let bound = [("ws-a", "k1"), ("ws-b", "k2"), ("ws-c", "k3")];
    let mut second: Vec<(&str, Action, &str)> = Vec::new();
    for workspace in ["ws-a", "ws-b", "ws-c"] {
        for key in ["k1", "k2", "k3"] {
            second.push((workspace, Action::Triage, key));
        }
    }
    second.push(("ws-b", Action::Sidekick, "k2"));
    let mut answers: Vec<Vec<Value>> = Vec::new();
    for (app, batched) in [(&batching, true), (&unbatched, false)] {
        app.create_workspace("ws-c").await;
        for (workspace, key) in bound {
            let answer = spend(app, request(workspace, Action::Triage, key, None)).await;
            assert_eq!(answer["outcome"], "CHARGED", "{answer}");
        }
        let round = if batched {
            let before = batches(app).await;
            let round = join_all(
                second
                    .iter()
                    .map(|(workspace, action, key)| spend(app, request(workspace, *action, key, None))),
            )
            .await;
            let used = batches(app).await - before;
            assert!(
                used < second.len() as f64,
                "the second round was batched ({used} batches for {})",
                second.len()
            );
            assert_eq!(failed_batches(app).await, 0.0, "every batch committed");
            round
        } else {
            let mut sequential = Vec::new();
            for (workspace, action, key) in &second {
                sequential.push(spend(app, request(workspace, *action, key, None)).await);
            }
            sequential
        };
        answers.push(round);
    }
    for (index, (batched, sequential)) in answers[0].iter().zip(&answers[1]).enumerate() {
        assert_eq!(batched, sequential, "answer {index} to {:?}", second[index]);
    }
    let outcomes: Vec<&str> = answers[1]
        .iter()
        .map(|answer| answer["outcome"].as_str().or(answer["error"].as_str()).unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "DUPLICATE",
            "CHARGED",
            "CHARGED",
            "CHARGED",
            "DUPLICATE",
            "CHARGED",
            "CHARGED",
            "CHARGED",
            "DUPLICATE",
            "IDEMPOTENCY_CONFLICT",
        ]
    );
    assert_eq!(stored(&batching).await, stored(&unbatched).await);
    for app in [batching, unbatched] {
        app.verify_ledger().await;
        app.teardown().await;
    }
}

/// 30 keys × 4 repeats, shuffled, at once, over HTTP, on 10 credits:
/// exactly 10 keys are charged once (their repeats DUPLICATE, naming the
/// same row); the 20 others are refused every time; nothing else written.
async fn concurrent_repeats_and_refusals(app: &TestApp) {
    app.set_trial_credits(10).await;
    app.create_workspace("ws-burst").await;
    let service = app.token("service", Some("ws-burst"));
    let mut attempts: Vec<String> = (0..120).map(|i| format!("key-{}", i % 30)).collect();
    // A fixed shuffle: stride 7 over 120 visits every slot once.
    attempts = (0..120).map(|i| attempts[(i * 7) % 120].clone()).collect();
    let answers = join_all(
        attempts
            .iter()
            .map(|key| app.spend(&service, "TRIAGE", key, None)),
    )
    .await;
    let mut by_key: HashMap<String, Vec<Value>> = HashMap::new();
    for (key, answer) in attempts.iter().zip(answers) {
        by_key
            .entry(key.clone())
            .or_default()
            .push(answer.data()["spendCredit"].clone());
    }
    let mut charged_keys = 0;
    for (key, answers) in &by_key {
        let outcomes: Vec<&str> = answers.iter().map(|a| a["outcome"].as_str().unwrap()).collect();
        let charged = outcomes.iter().filter(|o| **o == "CHARGED").count();
        if charged == 1 {
            charged_keys += 1;
            assert_eq!(
                outcomes.iter().filter(|o| **o == "DUPLICATE").count(),
                3,
                "{key}: {outcomes:?}"
            );
            let ids: Vec<&Value> = answers.iter().map(|a| &a["transaction"]["id"]).collect();
            assert!(
                ids.iter().all(|id| *id == ids[0]),
                "{key}: one row for all repeats"
            );
        } else {
            assert_eq!(charged, 0, "{key}: {outcomes:?}");
            assert!(
                outcomes.iter().all(|o| *o == "INSUFFICIENT_CREDITS"),
                "{key}: {outcomes:?}"
            );
        }
    }
    assert_eq!(charged_keys, 10);
    assert_eq!(app.balance_total("ws-burst").await, 0);
    let spends: Vec<(String, i64)> = app
        .ledger_rows("ws-burst")
        .await
        .into_iter()
        .filter(|(kind, _)| kind == "SPEND")
        .collect();
    assert_eq!(spends.len(), 10);
}

async fn concurrent_spends_keep_their_shape_batched_and_unbatched(backend: Backend) {
    for unbatched in [false, true] {
        let app = TestApp::spawn_with(
            backend,
            Options {
                unbatched,
                ..Options::default()
            },
        )
        .await;
        concurrent_repeats_and_refusals(&app).await;
        app.verify_ledger().await;
        app.teardown().await;
    }
}

/// (workspace, action, key, agent), in arrival order: an agent's HARD
/// budget refusing, a SOFT workspace budget warning, automatic top-up
/// opening a request, repeats; both wallets renew their period first.
const WITH_RULES: [(&str, Action, &str, Option<&str>); 12] = [
    ("ws-a", Action::Triage, "a1", Some("bot-1")),
    ("ws-c", Action::Triage, "c1", None),
    ("ws-a", Action::Sidekick, "a2", Some("bot-1")),
    ("ws-c", Action::Triage, "c2", None),
    ("ws-a", Action::Triage, "a3", Some("bot-1")),
    ("ws-a", Action::Triage, "a3", Some("bot-2")),
    ("ws-c", Action::Triage, "c3", None),
    ("ws-c", Action::AutoResolve, "c4", None),
    ("ws-a", Action::Triage, "a1", Some("bot-1")),
    ("ws-c", Action::Triage, "c5", None),
    ("ws-c", Action::Triage, "c1", None),
    ("ws-a", Action::Triage, "a4", None),
];

/// Both wallets on PRO (30 credits a period); ws-a with budgets, ws-c with
/// automatic top-up below 28; then the clock past the period's end, so
/// that each wallet's first spend settles a renewal first.
async fn with_rules(app: &TestApp) {
    app.execute_sql("UPDATE plan SET monthly_credits = 30 WHERE code = 'PRO'")
        .await;
    app.create_workspace("ws-c").await;
    for workspace in ["ws-a", "ws-c"] {
        let admin = app.token("admin", Some(workspace));
        app.set_plan(&admin, "PRO", None).await.data();
    }
    let admin = app.token("admin", Some("ws-a"));
    let agent_cap = crate::budgets::Budget {
        agent: Some("bot-1"),
        ..crate::budgets::Budget::hard("bot-1-cap", "AGENT", 2)
    };
    let soft = crate::budgets::Budget {
        mode: "SOFT",
        ..crate::budgets::Budget::hard("soft", "WORKSPACE", 3)
    };
    for budget in [agent_cap, soft] {
        app.set_budget(&admin, None, &budget).await.data();
    }
    let admin = app.token("admin", Some("ws-c"));
    app.gql(
        Some(&admin),
        "mutation { setAutoTopUp(input: {enabled: true, threshold: 28, pack: PACK_100, maxPerPeriod: 2}) { autoTopUp { enabled } } }",
        json!({}),
    )
    .await
    .data();
    app.clock.advance(chrono::Duration::days(31));
}

fn agent_request(workspace: &str, action: Action, key: &str, agent: Option<&str>) -> (Caller, SpendRequest) {
    let (caller, mut request) = request(workspace, action, key, None);
    request.agent_id = agent.map(str::to_owned);
    (caller, request)
}

/// Budget counters, automatic top-up requests and outbox events, without
/// ids and times.
async fn effects(app: &TestApp) -> Value {
    let counters = texts(
        app,
        "SELECT b.name, c.subject, CAST(c.used_credits AS TEXT) AS used FROM budget_counter c \
         JOIN budget b ON b.id = c.budget_id ORDER BY b.name, c.subject",
        &["name", "subject", "used"],
    )
    .await;
    let requests = texts(
        app,
        "SELECT w.workspace_id, CAST(a.requests_in_period AS TEXT) AS made, \
         CASE WHEN a.open_request_id IS NULL THEN 'none open' ELSE 'open' END AS open \
         FROM auto_top_up a JOIN wallet w ON w.id = a.wallet_id ORDER BY w.workspace_id",
        &["workspace_id", "made", "open"],
    )
    .await;
    let mut events: Vec<Value> = texts(
        app,
        "SELECT event_type, workspace_id, data FROM outbox_event",
        &["event_type", "workspace_id", "data"],
    )
    .await
    .into_iter()
    .map(|mut row| {
        let mut data: Value = serde_json::from_str(&row.pop().unwrap()).unwrap();
        if let Some(object) = data.as_object_mut() {
            object.retain(|key, _| !["requestId", "transactionId", "id"].contains(&key.as_str()));
        }
        json!([row, data])
    })
    .collect();
    events.sort_by_key(|event| event.to_string());
    json!({ "counters": counters, "requests": requests, "events": events })
}

/// Each row of `sql`'s text `columns`.
async fn texts(app: &TestApp, sql: &str, columns: &[&str]) -> Vec<Vec<String>> {
    let db = app.db();
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|column| row.try_get::<String>("", column).unwrap())
                .collect()
        })
        .collect()
}

/// The one spend path: with budgets, automatic top-up and a renewal to
/// settle first, a batch of all twelve spends and the same twelve each
/// alone (group commit off) give the same answers, rows, counters,
/// requests and events.
async fn budgets_top_ups_and_settling_agree(backend: Backend) {
    let (batching, unbatched) = batching_and_unbatched(backend).await;
    for app in [&batching, &unbatched] {
        with_rules(app).await;
    }
    let before = batches(&batching).await;
    let batched = join_all(WITH_RULES.iter().map(|(workspace, action, key, agent)| {
        spend(&batching, agent_request(workspace, *action, key, *agent))
    }))
    .await;
    // A worker takes a lone first spend at once, so a busy machine may
    // split the twelve; batched or not, they must agree.
    let used = batches(&batching).await - before;
    assert!(
        used < WITH_RULES.len() as f64,
        "the spends were batched ({used} batches)"
    );
    let mut alone = Vec::new();
    for (workspace, action, key, agent) in WITH_RULES {
        alone.push(spend(&unbatched, agent_request(workspace, action, key, agent)).await);
    }
    for (index, (batched, alone)) in batched.iter().zip(&alone).enumerate() {
        assert_eq!(batched, alone, "answer {index} to {:?}", WITH_RULES[index]);
    }
    let outcomes: Vec<&str> = alone
        .iter()
        .map(|answer| answer["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "CHARGED",
            "CHARGED",
            "CHARGED",
            "CHARGED",
            "BUDGET_EXCEEDED",
            "CHARGED",
            "CHARGED",
            "CHARGED",
            "DUPLICATE",
            "CHARGED",
            "DUPLICATE",
            "CHARGED",
        ],
        "the sequence covers every rule"
    );
    assert_eq!(alone[11]["warnings"], json!([["soft", 4]]), "{}", alone[11]);
    let rows = stored(&unbatched).await;
    assert!(
        rows.iter().filter(|row| row[2] == "GRANT").count() >= 4,
        "both wallets renewed in the spends' transactions: {rows:#?}"
    );
    assert_eq!(stored(&batching).await, rows);
    let effects_alone = effects(&unbatched).await;
    assert_eq!(
        effects_alone["requests"],
        json!([["ws-c", "1", "open"]]),
        "{effects_alone}"
    );
    assert_eq!(effects(&batching).await, effects_alone);
    assert_eq!(failed_batches(&batching).await, 0.0, "every batch committed");
    for app in [batching, unbatched] {
        app.verify_ledger().await;
        app.teardown().await;
    }
}

both_backends!(
    each_backend: batched_and_sequential_spends_agree,
    budgets_top_ups_and_settling_agree,
    bound_keys_are_matched_by_workspace_and_key,
    concurrent_spends_keep_their_shape_batched_and_unbatched,
);
