//! The batch and its database: locks, the WAL, durability pragmas, a
//! pool of its own, the keys' index.

use std::time::Duration;

use protodesk_credits::store::batch::{SPEND_READS_SQL, SQLITE_SPEND_READS_SQL, SQLITE_WRITES};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use serde_json::json;

use super::*;
use crate::both_backends;
use crate::helpers::{Backend, Options, TestApp};

/// A batch that waits for a wallet's lock decides on what the lock's
/// holder committed: here 3 credits granted while the batch waited (on
/// PostgreSQL its statement's snapshot predates them; without the re-read
/// it would answer INSUFFICIENT_CREDITS).
async fn a_batch_waiting_for_a_lock_sees_what_its_holder_committed(backend: Backend) {
    let app = prepared(backend, Options::default()).await;
    let db = app.db().clone();
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
    // The holder's server process: the spend must be blocked by it, not by
    // some other test's lock on the shared server.
    let holder_pid = if backend == Backend::Postgres {
        holder
            .query_one_raw(Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT pg_backend_pid() AS pid",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i32>("", "pid")
            .unwrap()
    } else {
        0
    };
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
                .query_all_raw(Statement::from_sql_and_values(
                    sea_orm::DbBackend::Postgres,
                    "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                    [holder_pid.into()],
                ))
                .await
                .unwrap();
            if !waits.is_empty() {
                blocked = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(blocked, "the spend never waited for the holder's lock");
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
    let db = app.db();
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
    pragmas(app.db(), 10).await;
    let config = protodesk_credits::config::DatabaseConfig {
        url: app.database_url.clone(),
        max_connections: 4,
        ..protodesk_credits::config::DatabaseConfig::default()
    };
    let workers_like = protodesk_credits::store::open_pool(&config).await.unwrap();
    pragmas(&workers_like, 4).await;
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
    while let Ok(txn) = app.db().begin().await {
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

/// The batch read probes a spend's key on the keys' unique index even with
/// a generic plan made while the ledger is nearly empty, as a new
/// database's first batches make it (PostgreSQL then keeps that plan for
/// the connection's life). With the wallet as a plain column, PostgreSQL
/// chose the `(wallet_id, created_at)` index and filtered the wallet's whole
/// history for the key: the hot-wallet benchmark fell to a fifth.
async fn keys_are_probed_on_their_index_from_the_start(backend: Backend) {
    let app = prepared(backend, Options::default()).await;
    let txn = app.db().begin().await.unwrap();
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
                    r#"EXPLAIN EXECUTE reads('["ws-a"]', '[{"workspace_id":"ws-a","key":"k","kind":"SPEND"}]', '[{"workspace_id":"ws-a","subject":""}]')"#,
                ))
                .await
                .unwrap();
            txn.execute_unprepared("DEALLOCATE reads").await.unwrap();
            rows.iter()
                .map(|row| row.try_get::<String>("", "QUERY PLAN").unwrap())
                .collect()
        }
        Backend::Sqlite => sqlite_plan(&txn).await,
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

/// SQLite: the batch read's plan, for one key and one subject.
async fn sqlite_plan(db: &impl ConnectionTrait) -> Vec<String> {
    db.query_all_raw(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        format!("EXPLAIN QUERY PLAN {}", SQLITE_SPEND_READS_SQL.as_str()),
        [
            r#"["ws-a"]"#.into(),
            r#"[{"workspace_id":"ws-a","key":"k","kind":"SPEND"}]"#.into(),
            r#"[{"workspace_id":"ws-a","subject":"agent-1"}]"#.into(),
        ],
    ))
    .await
    .unwrap()
    .iter()
    .map(|row| row.try_get::<String>("", "detail").unwrap())
    .collect()
}

both_backends!(
    each_backend: a_batch_waiting_for_a_lock_sees_what_its_holder_committed,
    the_wal_is_checkpointed_apart_from_commits,
    batches_have_a_pool_of_their_own,
    keys_are_probed_on_their_index_from_the_start,
);

mod sqlite_only {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_connection_commits_with_synchronous_full() {
        let app = TestApp::spawn(Backend::Sqlite).await;
        super::every_sqlite_connection_commits_with_synchronous_full(&app).await;
        app.teardown().await;
    }

    /// The batch read finds wallets by workspace, grants and budgets by
    /// wallet, keys and counters by their keys: no table of the spend path
    /// is scanned (the catalogue's few rows are).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_batch_read_probes_every_table_on_its_keys() {
        let app = prepared(Backend::Sqlite, Options::default()).await;
        let plan = super::sqlite_plan(app.db()).await.join("\n");
        for probe in [
            "SEARCH w USING INDEX",
            "SEARCH g USING INDEX",
            "SEARCH e USING INDEX ledger_entry_key",
            "SEARCH b USING INDEX",
            "SEARCH u USING PRIMARY KEY (budget_id=? AND subject=?)",
        ] {
            assert!(plan.contains(probe), "{probe}: {plan}");
        }
        for table in ["w", "g", "e", "b", "u"] {
            assert!(
                !plan.lines().any(|line| line.contains(&format!("SCAN {table} "))
                    || line.ends_with(&format!("SCAN {table}"))),
                "{table} scanned: {plan}"
            );
        }
        app.teardown().await;
    }

    /// The batch's writes (one string of statements) find every row they
    /// change or join on a key: no table is scanned, whatever its size.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_batch_writes_probe_every_table_on_its_keys() {
        let app = prepared(Backend::Sqlite, Options::default()).await;
        let now: sea_orm::Value = chrono::Utc::now().into();
        let params: [Vec<sea_orm::Value>; 5] = [
            vec![
                now.clone(),
                r#"[{"wallet_id":1,"sequence":9,"kind":"SPEND","amount_credits":-1,"balance_after_credits":1,"actor":"t"}]"#.into(),
            ],
            vec![r#"[{"wallet_id":1,"sequence":9,"credit_grant_id":1,"amount_credits":-1}]"#.into()],
            vec![r#"[{"id":1,"delta":-1,"granted":0}]"#.into()],
            vec![
                now,
                r#"[{"id":1,"sequence_read":8,"balance_credits":1,"last_sequence":9}]"#.into(),
            ],
            vec![r#"[{"budget_id":1,"subject":"","window_start":"2026-01-01T00:00:00+00:00","used_credits":1}]"#.into()],
        ];
        let probes = [
            "SEARCH ledger_entry_grant USING COVERING INDEX",
            "SEARCH e USING COVERING INDEX ledger_entry_wallet_sequence_key (wallet_id=? AND sequence=?)",
            "SEARCH credit_grant USING INTEGER PRIMARY KEY (rowid=?)",
            "SEARCH wallet USING INTEGER PRIMARY KEY (rowid=?)",
            "SCAN jsonb_each VIRTUAL TABLE",
        ];
        for ((statement, params), probe) in SQLITE_WRITES.iter().zip(params).zip(probes) {
            let plan: Vec<String> = app
                .db()
                .query_all_raw(Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    format!("EXPLAIN QUERY PLAN {statement}"),
                    params,
                ))
                .await
                .unwrap()
                .iter()
                .map(|row| row.try_get::<String>("", "detail").unwrap())
                .collect();
            let plan = plan.join("\n");
            assert!(plan.contains(probe), "{probe}: {statement}: {plan}");
            for table in ["wallet", "credit_grant", "ledger_entry", "budget_counter", "e"] {
                assert!(
                    !plan.lines().any(|line| line.contains(&format!("SCAN {table} "))
                        || line.ends_with(&format!("SCAN {table}"))),
                    "{table} scanned by {statement}: {plan}"
                );
            }
        }
        app.teardown().await;
    }

    /// Timestamps a batch writes from its JSON are stored in the text the
    /// SQLite driver binds (RFC 3339 with `+00:00`), so SQL compares and
    /// sorts them with bound ones (a `Z` would sort after any `+00:00`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn timestamps_written_from_json_are_stored_as_bound() {
        let app = prepared(Backend::Sqlite, Options::default()).await;
        for key in 0..4 {
            let answer = spend(&app, request("ws-a", Action::Triage, &format!("t-{key}"), None)).await;
            assert_eq!(answer["outcome"], "CHARGED", "{answer}");
        }
        let row = app
            .db()
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT low_balance_alerted_at AS alerted, updated_at FROM wallet WHERE workspace_id = 'ws-a'",
            ))
            .await
            .unwrap()
            .unwrap();
        for column in ["alerted", "updated_at"] {
            let text: String = row.try_get("", column).unwrap();
            let parsed = chrono::DateTime::parse_from_rfc3339(&text).unwrap();
            assert_eq!(
                parsed.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
                text,
                "{column} is stored as the driver binds it"
            );
        }
        app.teardown().await;
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
}
