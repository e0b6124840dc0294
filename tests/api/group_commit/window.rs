//! The batching window and the batch's maximum.

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{LocalBoxFuture, join_all};
use protodesk_credits::service::GroupCommitSettings;
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use serde_json::Value;

use super::*;
use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp};

/// Batch sizes so far, from the histogram: how many batches held at most
/// 1, 2 and 4 spends, and how many there were.
async fn batch_sizes(app: &TestApp) -> [f64; 4] {
    let bucket = |le: &str| format!("credits_spend_batch_size_bucket{{le=\"{le}\"}}");
    [
        app.metric(&bucket("1")).await,
        app.metric(&bucket("2")).await,
        app.metric(&bucket("4")).await,
        batches(app).await,
    ]
}

/// A spend's future, polled once: its job is then in its worker's queue
/// (the spend path enqueues before its first wait).
async fn queued<'a>(app: &'a TestApp, key: &str) -> LocalBoxFuture<'a, Value> {
    let mut answer = spend(app, request("ws-a", Action::Triage, key, None)).boxed_local();
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(answer.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "{key} was answered before its batch ran");
    answer
}

/// Holds ws-a's wallet so that the worker's next batch (`first`, alone)
/// waits on it, queues `keys` behind it, lets go, and returns their
/// answers' futures once `first` is charged: the worker then finds them
/// queued together.
async fn behind_a_held_wallet<'a>(
    app: &'a TestApp,
    first: &str,
    keys: &[&str],
) -> Vec<LocalBoxFuture<'a, Value>> {
    let db = app.db().clone();
    let holder = db.begin().await.unwrap();
    holder
        .execute_raw(Statement::from_string(
            db.get_database_backend(),
            "UPDATE wallet SET updated_at = updated_at WHERE workspace_id = 'ws-a'",
        ))
        .await
        .unwrap();
    let before = batches(app).await;
    let held = queued(app, first).await;
    while batches(app).await < before + 1.0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut answers = Vec::new();
    for key in keys {
        answers.push(queued(app, key).await);
    }
    holder.commit().await.unwrap();
    assert_eq!(held.await["outcome"], "CHARGED");
    answers
}

/// The batching window: a lone spend never waits for it; a worker that
/// found company waits up to the window for more; a batch never holds more
/// than its maximum, whether taken from the queue at once or gathered in
/// the window. One worker, a 2 s window, at most 4 spends a batch.
async fn a_worker_waits_for_company_only_when_it_has_some(backend: Backend) {
    let app = prepared(
        backend,
        Options {
            group_commit: Some(GroupCommitSettings {
                max_batch: 4,
                window: Duration::from_secs(2),
                workers: Some(1),
            }),
            ..Options::default()
        },
    )
    .await;
    let started = std::time::Instant::now();
    let lone = spend(&app, request("ws-b", Action::Triage, "lone", None)).await;
    assert_eq!(lone["outcome"], "CHARGED", "{lone}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a lone spend waited {:?} for company",
        started.elapsed()
    );
    assert_eq!(batch_sizes(&app).await, [1.0, 1.0, 1.0, 1.0]);

    // Hold ws-a's wallet so the worker's next batch (x) waits, and queue a
    // and b behind it: released, the worker finds them together.
    app.top_up(&app.operator(), Some("ws-a"), "PACK_100", "pay-window")
        .await
        .data();

    // Queued together behind a held wallet: the worker takes four at once
    // (its maximum), the fifth rides the next batch.
    let burst = behind_a_held_wallet(&app, "x", &["a", "b", "c", "d", "e"]).await;
    let answers = join_all(burst).await;
    assert!(
        answers.iter().all(|answer| answer["outcome"] == "CHARGED"),
        "{answers:?}"
    );
    // Batches: lone, x, [a b c d], [e].
    assert_eq!(batch_sizes(&app).await, [3.0, 3.0, 4.0, 4.0]);

    // f and g found together, then h, i and j well after they were taken
    // but inside the window: h and i join them (the batch is then full),
    // j starts the next.
    let mut pair = behind_a_held_wallet(&app, "y", &["f", "g"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for key in ["h", "i", "j"] {
        pair.push(queued(&app, key).await);
    }
    let answers = join_all(pair).await;

    assert!(
        answers.iter().all(|answer| answer["outcome"] == "CHARGED"),
        "{answers:?}"
    );
    // Batches: lone, x, [a b c d], [e], y, [f g h i], [j].
    assert_eq!(batch_sizes(&app).await, [5.0, 5.0, 7.0, 7.0]);
    assert_eq!(failed_batches(&app).await, 0.0);
    app.verify_ledger().await;
    app.teardown().await;
}

both_backends!(each_backend: a_worker_waits_for_company_only_when_it_has_some);
