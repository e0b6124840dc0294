//! Goal: group commit changes no outcome. The same spends give the same
//! answers, the same ledger rows and the same low-balance alerts whether
//! they are applied in batches or one transaction each; under real
//! concurrency, repeats and refusals keep their exact shape.
//! Method: (1) one ordered sequence of spends over two wallets (repeats, a
//! conflicting reuse, an unknown workspace, a threshold crossing, running
//! dry) is queued at once into a batching service and, apart, applied one
//! by one by an unbatched service; answers and stored rows are compared
//! whole. (2) 120 concurrent HTTP spends (30 keys × 4 repeats) on a wallet
//! holding 10 credits, against a batching and an unbatched server.
//! (3) A batch that waits for a wallet's lock held by another writer
//! decides on what that writer committed. (4) SQLite's WAL is checkpointed
//! apart from the commits that answer spends. (5) Keys bound earlier are
//! found by (workspace, key): a batch mixing three workspaces' keys
//! charges every pair not yet bound. (6) The batches run on a pool of
//! their own: with every connection of the server's pool held, a spend is
//! still charged by a batch; an in-memory SQLite database (which a second
//! pool would not see) batches on the server's pool.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::join_all;
use protodesk_credits::auth::{Caller, Operation, authorize};
use protodesk_credits::domain::catalogue::{Action, Role};
use protodesk_credits::domain::ids::{IdempotencyKey, WorkspaceId};
use protodesk_credits::service::{GroupCommitSettings, SpendRequest, SpendResult};
use protodesk_credits::store::batch::{SPEND_READS_SQL, sqlite_keyed_spends_sql};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use serde_json::{Value, json};

use crate::helpers::{Backend, Options, TestApp};

/// (workspace, action, key, reference), in arrival order.
const SEQUENCE: [(&str, Action, &str, Option<&str>); 16] = [
    ("ws-a", Action::Triage, "k1", None),
    ("ws-b", Action::Triage, "k1", None),
    ("ws-a", Action::Sidekick, "k2", Some("t-1")),
    ("ws-a", Action::Triage, "k1", None),
    ("ws-a", Action::AutoResolve, "k3", None),
    ("ws-a", Action::Sidekick, "k2", Some("t-2")),
    ("ws-a", Action::Triage, "k4", None),
    ("ws-nope", Action::Triage, "k1", None),
    ("ws-a", Action::Triage, "k5", None),
    ("ws-a", Action::Sidekick, "k6", None),
    ("ws-a", Action::Triage, "k7", None),
    ("ws-b", Action::Sidekick, "k2", None),
    ("ws-a", Action::Triage, "k7", None),
    ("ws-a", Action::Sidekick, "k6", None),
    ("ws-b", Action::Triage, "k1", None),
    ("ws-b", Action::AutoResolve, "k1", None),
];

async fn prepared(backend: Backend, options: Options) -> TestApp {
    let app = TestApp::spawn_with(backend, options).await;
    app.set_trial_credits(6).await;
    app.create_workspace("ws-a").await;
    app.create_workspace("ws-b").await;
    let admin = app.token("admin", Some("ws-a"));
    app.gql(
        Some(&admin),
        "mutation { setLowBalanceThreshold(input: {threshold: 3}) { wallet { lowBalanceThreshold } } }",
        json!({}),
    )
    .await
    .data();
    app
}

fn request(workspace: &str, action: Action, key: &str, reference: Option<&str>) -> (Caller, SpendRequest) {
    let caller = Caller {
        subject: "worker-7".to_owned(),
        workspace_id: Some(WorkspaceId::parse("workspaceId", workspace).unwrap()),
        role: Role::Service,
    };
    let request = SpendRequest {
        action,
        idempotency_key: IdempotencyKey::parse("idempotencyKey", key).unwrap(),
        reference: reference.map(str::to_owned),
    };
    (caller, request)
}

/// Everything an answer says, but ids and timestamps.
fn summary(result: Result<SpendResult, protodesk_credits::error::AppError>) -> Value {
    match result {
        Err(error) => json!({ "error": error.code() }),
        Ok(answer) => json!({
            "outcome": answer.outcome.as_str(),
            "balance": [answer.balance.total, answer.balance.split.allocation,
                        answer.balance.split.purchased, answer.balance.split.bonus],
            "cost": answer.cost,
            "nextResetAt": answer.next_reset_at.map(|at| at.to_rfc3339()),
            "suggestedTopUp": answer.suggested_top_up.map(|pack| format!("{:?}", pack.code)),
            "transaction": answer.transaction.map(|row| json!([
                row.sequence, row.amount, row.balance_after, row.action.map(|action| action.as_str()),
                row.reference, row.actor, row.idempotency_key,
            ])),
        }),
    }
}

async fn spend(app: &TestApp, (caller, request): (Caller, SpendRequest)) -> Value {
    let scope = match authorize(&caller, None, Operation::Spend(request.action)) {
        Ok(scope) => scope,
        Err(error) => return json!({ "error": error.code() }),
    };
    summary(app.ledger.spend(&scope, request).await)
}

/// Every stored row and alert that the spends wrote, in ledger order.
async fn stored(app: &TestApp) -> Vec<Value> {
    let db = app.ledger.db();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT w.workspace_id, e.sequence, e.kind, e.amount_credits, e.balance_after_credits, \
             e.allocation_after_credits, e.purchased_after_credits, e.bonus_after_credits, e.action, \
             e.reference, e.actor, e.idempotency_key, e.idempotency_fingerprint, \
             (SELECT COUNT(*) FROM ledger_entry_grant g WHERE g.ledger_entry_id = e.id) AS moves, \
             (SELECT COUNT(*) FROM low_balance_alert a WHERE a.wallet_id = w.id AND a.ledger_sequence = e.sequence) AS alerts \
             FROM ledger_entry e JOIN wallet w ON w.id = e.wallet_id ORDER BY w.workspace_id, e.sequence",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            let text = |column: &str| row.try_get::<Option<String>>("", column).unwrap();
            let int = |column: &str| row.try_get::<i64>("", column).unwrap();
            json!([
                text("workspace_id"),
                int("sequence"),
                text("kind"),
                int("amount_credits"),
                int("balance_after_credits"),
                int("allocation_after_credits"),
                int("purchased_after_credits"),
                int("bonus_after_credits"),
                text("action"),
                text("reference"),
                text("actor"),
                text("idempotency_key"),
                text("idempotency_fingerprint"),
                int("moves"),
                int("alerts"),
            ])
        })
        .collect()
}

/// Group-commit transactions formed so far.
async fn batches(app: &TestApp) -> f64 {
    app.metric("credits_spend_batch_size_count").await
}

/// Group-commit transactions that failed (their spends then ran alone,
/// which would hide a wrong batch read behind right answers).
async fn failed_batches(app: &TestApp) -> f64 {
    app.metric("credits_spend_batches_failed_total").await
}

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

/// A batch that waits for a wallet's lock decides on what the lock's
/// holder committed: here 3 credits granted while the batch waited (on
/// PostgreSQL its statement's snapshot predates them; without the re-read
/// it would answer INSUFFICIENT_CREDITS).
async fn a_batch_waiting_for_a_lock_sees_what_its_holder_committed(backend: Backend) {
    let app = prepared(backend, Options::default()).await;
    let db = app.ledger.db().clone();
    let sql = |text: &str| {
        let text = match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => text.replace('?', "$1"),
            _ => text.to_owned(),
        };
        Statement::from_sql_and_values(db.get_database_backend(), text, [chrono::Utc::now().into()])
    };
    // Drain ws-a's 6 trial credits first, then hold its lock.
    for key in 0..6 {
        let answer = spend(
            &app,
            request("ws-a", Action::Sidekick, &format!("drain-{key}"), None),
        )
        .await;
        assert_eq!(answer["outcome"], "CHARGED", "{answer}");
    }
    let holder = db.begin().await.unwrap();
    for statement in [
        "UPDATE wallet SET balance_credits = balance_credits + 3, last_sequence = last_sequence + 1, \
         updated_at = ? WHERE workspace_id = 'ws-a'",
        "INSERT INTO credit_grant (wallet_id, source, granted_credits, remaining_credits, created_at) \
         SELECT id, 'ADJUSTMENT', 3, 3, ? FROM wallet WHERE workspace_id = 'ws-a'",
        "INSERT INTO ledger_entry (wallet_id, sequence, kind, amount_credits, balance_after_credits, \
         bonus_after_credits, reference, actor, created_at) \
         SELECT id, last_sequence, 'ADJUSTMENT', 3, balance_credits, balance_credits, 'held', 'test', ? FROM wallet WHERE workspace_id = 'ws-a'",
    ] {
        holder.execute_raw(sql(statement)).await.unwrap();
    }
    holder
        .execute_raw(Statement::from_string(
            db.get_database_backend(),
            "INSERT INTO ledger_entry_grant (ledger_entry_id, credit_grant_id, amount_credits) \
             SELECT (SELECT MAX(id) FROM ledger_entry), (SELECT MAX(id) FROM credit_grant), 3",
        ))
        .await
        .unwrap();
    let waiting = {
        let app = app.clone();
        tokio::spawn(async move { spend(&app, request("ws-a", Action::Triage, "after-grant", None)).await })
    };
    if backend == Backend::Postgres {
        // Wait until the batch really waits on the lock: its snapshot then
        // predates the holder's commit, which is what this test is about.
        let mut blocked = false;
        for _ in 0..1_000 {
            let waits = db
                .query_all_raw(Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    "SELECT pid FROM pg_locks WHERE NOT granted",
                ))
                .await
                .unwrap();
            if !waits.is_empty() {
                blocked = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(blocked, "the spend never waited for the wallet's lock");
    } else {
        // SQLite's wait (the busy handler at BEGIN IMMEDIATE) cannot be
        // observed from SQL; there is no snapshot to go stale either, so the
        // answer below is the same whenever the spend reaches the lock.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !waiting.is_finished(),
        "the spend did not wait for the wallet's lock"
    );
    holder.commit().await.unwrap();
    let answer = waiting.await.unwrap();
    assert_eq!(answer["outcome"], "CHARGED", "{answer}");
    assert_eq!(answer["balance"], json!([2, 0, 0, 2]), "{answer}");
    assert_eq!(answer["transaction"][0], 9, "{answer}");
    app.verify_ledger().await;
    app.teardown().await;
}

/// SQLite's WAL is copied back by `checkpoint_wal` (the server's
/// background checkpointer), not by whichever commit crosses SQLite's
/// default 1,000-page threshold; PostgreSQL has nothing to checkpoint.
async fn the_wal_is_checkpointed_apart_from_commits(backend: Backend) {
    let app = prepared(backend, Options::default()).await;
    for key in 0..4 {
        let answer = spend(&app, request("ws-a", Action::Triage, &format!("wal-{key}"), None)).await;
        assert_eq!(answer["outcome"], "CHARGED", "{answer}");
    }
    let db = app.ledger.db();
    let checkpoint = protodesk_credits::store::checkpoint_wal(db).await.unwrap();
    if backend == Backend::Postgres {
        assert_eq!(checkpoint, None);
    } else {
        let checkpoint = checkpoint.expect("a SQLite checkpoint");
        assert!(!checkpoint.busy, "{checkpoint:?}");
        assert_eq!(
            checkpoint.checkpointed_frames, checkpoint.wal_frames,
            "{checkpoint:?}"
        );
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "PRAGMA wal_autocheckpoint",
            ))
            .await
            .unwrap()
            .unwrap();
        // The documented figure (docs/design/group-commit.md), not the constant.
        assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 16_384);
    }
    app.teardown().await;
}

/// The durability claim rests on every SQLite connection committing with
/// `synchronous=FULL` in WAL mode: the server's pool (every connection of
/// it, held at once) and a pool opened as the spend workers open theirs
/// (`store::open_pool`, the one constructor of both).
async fn every_sqlite_connection_commits_with_synchronous_full(app: &TestApp) {
    use sea_orm::TransactionTrait;
    async fn pragmas(db: &sea_orm::DatabaseConnection, connections: usize) {
        let mut held = Vec::new();
        for _ in 0..connections {
            held.push(db.begin().await.unwrap());
        }
        for txn in &held {
            let synchronous = txn
                .query_one_raw(Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    "PRAGMA synchronous",
                ))
                .await
                .unwrap()
                .unwrap();
            // 2 is FULL (0 OFF, 1 NORMAL, 3 EXTRA).
            assert_eq!(synchronous.try_get_by_index::<i64>(0).unwrap(), 2);
            let journal = txn
                .query_one_raw(Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    "PRAGMA journal_mode",
                ))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(journal.try_get_by_index::<String>(0).unwrap(), "wal");
        }
    }
    pragmas(app.ledger.db(), 10).await;
    let config = protodesk_credits::config::DatabaseConfig {
        url: app.database_url.clone(),
        max_connections: 4,
        ..protodesk_credits::config::DatabaseConfig::default()
    };
    let workers_like = protodesk_credits::store::open_pool(&config).await.unwrap();
    pragmas(&workers_like, 4).await;
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_connection_commits_with_synchronous_full() {
        let app = TestApp::spawn(Backend::Sqlite).await;
        super::every_sqlite_connection_commits_with_synchronous_full(&app).await;
        app.teardown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_have_a_pool_of_their_own() {
        super::batches_have_a_pool_of_their_own(Backend::Sqlite).await;
    }

    /// A second pool on `sqlite::memory:` would be another, empty database:
    /// there the batches share the server's pool, and still charge.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_in_memory_database_batches_on_the_servers_pool() {
        let app = prepared(
            Backend::Sqlite,
            Options {
                database_url: Some("sqlite::memory:".to_owned()),
                ..Options::default()
            },
        )
        .await;
        let answer = spend(&app, request("ws-a", Action::Triage, "k1", None)).await;
        assert_eq!(answer["outcome"], "CHARGED", "{answer}");
        assert_eq!(batches(&app).await, 1.0);
        assert_eq!(failed_batches(&app).await, 0.0);
        app.verify_ledger().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batched_and_sequential_spends_agree() {
        super::batched_and_sequential_spends_agree(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_spends_keep_their_shape_batched_and_unbatched() {
        super::concurrent_spends_keep_their_shape_batched_and_unbatched(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bound_keys_are_matched_by_workspace_and_key() {
        super::bound_keys_are_matched_by_workspace_and_key(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_waiting_for_a_lock_sees_what_its_holder_committed() {
        super::a_batch_waiting_for_a_lock_sees_what_its_holder_committed(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_checkpointed_apart_from_commits() {
        super::the_wal_is_checkpointed_apart_from_commits(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_are_probed_on_their_index_from_the_start() {
        super::keys_are_probed_on_their_index_from_the_start(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_waits_for_company_only_when_it_has_some() {
        super::a_worker_waits_for_company_only_when_it_has_some(Backend::Sqlite).await;
    }
}

/// With every connection of the server's pool held (say, by a burst of
/// other requests), a spend is still charged, by a batch.
async fn batches_have_a_pool_of_their_own(backend: Backend) {
    let app = prepared(
        backend,
        Options {
            acquire_timeout: Some(Duration::from_secs(1)),
            ..Options::default()
        },
    )
    .await;
    let before = batches(&app).await;
    let mut held = Vec::new();
    while let Ok(txn) = app.ledger.db().begin().await {
        held.push(txn);
        assert!(held.len() <= 10, "the server's pool has 10 connections");
    }
    assert_eq!(held.len(), 10, "every connection of the server's pool is held");

    let answer = spend(&app, request("ws-a", Action::Triage, "k-held", None)).await;
    assert_eq!(answer["outcome"], "CHARGED", "{answer}");
    assert_eq!(answer["balance"][0], 5);
    drop(held);
    assert_eq!(batches(&app).await, before + 1.0);
    assert_eq!(failed_batches(&app).await, 0.0);
    app.verify_ledger().await;
    app.teardown().await;
}

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
async fn queued<'a>(
    app: &'a TestApp,
    key: &str,
) -> std::pin::Pin<Box<impl std::future::Future<Output = Value> + 'a>> {
    let mut answer = Box::pin(spend(app, request("ws-a", Action::Triage, key, None)));
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(answer.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "{key} was answered before its batch ran");
    answer
}

/// The batching window: a lone spend never waits for it; a worker that
/// found company waits up to the window for more; a batch never holds more
/// than its maximum. One worker, a 2 s window, at most 4 spends a batch.
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
    let db = app.ledger.db().clone();
    let holder = db.begin().await.unwrap();
    holder
        .execute_raw(Statement::from_string(
            db.get_database_backend(),
            "UPDATE wallet SET updated_at = updated_at WHERE workspace_id = 'ws-a'",
        ))
        .await
        .unwrap();
    let x = queued(&app, "x").await;
    while batches(&app).await < 2.0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let a = queued(&app, "a").await;
    let b = queued(&app, "b").await;
    holder.commit().await.unwrap();
    assert_eq!(x.await["outcome"], "CHARGED");
    // c, d and e arrive well after a and b were taken, inside the window:
    // c and d join them (the batch is then full), e starts the next.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (c, d, e) = (
        queued(&app, "c").await,
        queued(&app, "d").await,
        queued(&app, "e").await,
    );
    let answers = join_all([a, b, c, d, e]).await;

    assert!(
        answers.iter().all(|answer| answer["outcome"] == "CHARGED"),
        "{answers:?}"
    );
    // Batches: lone, x, [a b c d], [e].
    assert_eq!(batch_sizes(&app).await, [3.0, 3.0, 4.0, 4.0]);
    assert_eq!(failed_batches(&app).await, 0.0);
    app.verify_ledger().await;
    app.teardown().await;
}

/// The batch read probes a spend's key on the keys' unique index even with
/// a generic plan made while the ledger is nearly empty, as a new
/// database's first batches make it (PostgreSQL then keeps that plan for
/// the connection's life). With the wallet as a plain column, PostgreSQL
/// chose the `(wallet_id, created_at)` index and filtered the wallet's whole
/// history for the key: the hot-wallet benchmark fell to a fifth.
async fn keys_are_probed_on_their_index_from_the_start(backend: Backend) {
    let app = prepared(backend, Options::default()).await;
    let txn = app.ledger.db().begin().await.unwrap();
    let plan: Vec<String> = match backend {
        Backend::Postgres => {
            for sql in [
                "SET LOCAL plan_cache_mode = force_generic_plan".to_owned(),
                format!("PREPARE reads(text, text, text) AS {SPEND_READS_SQL}"),
            ] {
                txn.execute_unprepared(&sql).await.unwrap();
            }
            let rows = txn
                .query_all_raw(Statement::from_string(
                    DbBackend::Postgres,
                    r#"EXPLAIN EXECUTE reads('["ws-a"]', '[{"workspace_id":"ws-a","key":"k"}]', 'SPEND')"#,
                ))
                .await
                .unwrap();
            txn.execute_unprepared("DEALLOCATE reads").await.unwrap();
            rows.iter()
                .map(|row| row.try_get::<String>("", "QUERY PLAN").unwrap())
                .collect()
        }
        Backend::Sqlite => txn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!("EXPLAIN QUERY PLAN {}", sqlite_keyed_spends_sql(1)),
                [1_i64.into(), "k".into(), "SPEND".into()],
            ))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<String>("", "detail").unwrap())
            .collect(),
    };
    txn.rollback().await.unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("ledger_entry_key"), "{plan}");
    assert!(
        !plan
            .lines()
            .any(|line| line.contains("Filter") && line.contains("idempotency_key")),
        "no key is filtered out of a wallet's rows: {plan}"
    );
    app.teardown().await;
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_are_probed_on_their_index_from_the_start() {
        super::keys_are_probed_on_their_index_from_the_start(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_waits_for_company_only_when_it_has_some() {
        super::a_worker_waits_for_company_only_when_it_has_some(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_have_a_pool_of_their_own() {
        super::batches_have_a_pool_of_their_own(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batched_and_sequential_spends_agree() {
        super::batched_and_sequential_spends_agree(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_spends_keep_their_shape_batched_and_unbatched() {
        super::concurrent_spends_keep_their_shape_batched_and_unbatched(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bound_keys_are_matched_by_workspace_and_key() {
        super::bound_keys_are_matched_by_workspace_and_key(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_waiting_for_a_lock_sees_what_its_holder_committed() {
        super::a_batch_waiting_for_a_lock_sees_what_its_holder_committed(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_checkpointed_apart_from_commits() {
        super::the_wal_is_checkpointed_apart_from_commits(Backend::Postgres).await;
    }
}
