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

both_backends!(
    each_backend: batched_and_sequential_spends_agree,
    bound_keys_are_matched_by_workspace_and_key,
    concurrent_spends_keep_their_shape_batched_and_unbatched,
);
