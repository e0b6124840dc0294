//! PostgreSQL: the spend path reads wallets, grants, keys and budgets by
//! their indexes only, with the generic plans PostgreSQL caches after a
//! statement's fifth run made while the tables were small, with and
//! without statistics (this machine kind runs with autovacuum off, so they
//! may never have any), and after `ANALYZE`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::budgets::Budget;
use crate::helpers::{Backend, TestApp};

const WORKSPACES: usize = 1_500;
/// Workspaces while the first plans are made.
const SMALL: usize = 30;
const ROUNDS: usize = 12;
const PER_ROUND: usize = 48;
/// The tables a spend reads or writes.
const TABLES: [&str; 6] = [
    "wallet",
    "credit_grant",
    "ledger_entry",
    "ledger_entry_grant",
    "budget",
    "budget_counter",
];

/// Per table, as the statistics say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    sequential_scans: i64,
    rows_inserted: i64,
    /// Rows fetched, by either kind of scan.
    rows_read: i64,
}

/// The counts once every connection has reported what it did.
async fn settled(app: &TestApp) -> BTreeMap<String, Counts> {
    let mut last = counters(app).await;
    loop {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let now = counters(app).await;
        if now == last {
            return now;
        }
        last = now;
    }
}

async fn counters(app: &TestApp) -> BTreeMap<String, Counts> {
    let schema = app.pg_schema.clone().expect("a PostgreSQL schema");
    let db = app.db();
    db.execute_unprepared("SELECT pg_stat_clear_snapshot()")
        .await
        .unwrap();
    db.query_all_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT relname::text AS name, seq_scan, n_tup_ins, seq_tup_read + COALESCE(idx_tup_fetch, 0) AS read \
         FROM pg_stat_user_tables WHERE schemaname = $1",
        [schema.into()],
    ))
    .await
    .unwrap()
    .iter()
    .map(|row| {
        (
            row.try_get::<String>("", "name").unwrap(),
            Counts {
                sequential_scans: row.try_get("", "seq_scan").unwrap(),
                rows_inserted: row.try_get("", "n_tup_ins").unwrap(),
                rows_read: row.try_get("", "read").unwrap(),
            },
        )
    })
    .filter(|(name, _)| TABLES.contains(&name.as_str()))
    .collect()
}

/// Rounds of concurrent spends over the first `workspaces` wallets (some
/// with budgets, half for an agent); returns how many were charged.
async fn spend_rounds(app: &TestApp, workspaces: usize, label: &str) -> i64 {
    let mut charged = 0;
    for round in 0..ROUNDS {
        let outcomes: Vec<String> = stream::iter(0..PER_ROUND)
            .map(|n| async move {
                let workspace = format!("ws-{}", (round * 97 + n * 31) % workspaces);
                let service = app.token("service", Some(&workspace));
                let agent = (n % 2 == 0).then_some("agent-1");
                app.spend_for_ok(&service, "TRIAGE", &format!("{label}-{round}-{n}"), agent)
                    .await["outcome"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .buffer_unordered(PER_ROUND)
            .collect()
            .await;
        charged += outcomes.iter().filter(|outcome| *outcome == "CHARGED").count() as i64;
    }
    charged
}

/// Waits until the statistics count `charged` more rows inserted into the
/// ledger than `before` (each server connection reports its counts when it
/// goes idle, within about a second), then once more after a second, and
/// returns per table the sequential scans and the rows read since `before`.
async fn since(
    app: &TestApp,
    before: &BTreeMap<String, Counts>,
    charged: i64,
) -> BTreeMap<String, (i64, i64)> {
    let inserted = |now: &BTreeMap<String, Counts>| {
        now["ledger_entry"].rows_inserted - before["ledger_entry"].rows_inserted
    };
    let mut now = counters(app).await;
    for _ in 0..150 {
        if inserted(&now) >= charged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = counters(app).await;
    }
    assert!(
        inserted(&now) >= charged,
        "the statistics never counted the {charged} SPEND rows: {now:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    now = counters(app).await;
    now.iter()
        .map(|(name, counts)| {
            let before = before[name];
            (
                name.clone(),
                (
                    counts.sequential_scans - before.sequential_scans,
                    counts.rows_read - before.rows_read,
                ),
            )
        })
        .collect()
}

/// Workspaces `from..to`, a budget on every tenth.
async fn create(app: &TestApp, from: usize, to: usize) {
    stream::iter(from..to)
        .for_each_concurrent(16, |n| async move {
            app.create_workspace(&format!("ws-{n}")).await;
            if n % 10 == 0 {
                let admin = app.token("admin", Some(&format!("ws-{n}")));
                app.set_budget(&admin, None, &Budget::hard("cap", "EACH_AGENT", 1_000))
                    .await
                    .data();
            }
        })
        .await;
}

/// Spends over every wallet read no table whole, and a few rows each.
async fn measure(app: &TestApp, label: &str) {
    let before = settled(app).await;
    assert_eq!(before.len(), TABLES.len());
    let charged = spend_rounds(app, WORKSPACES, label).await;
    assert!(charged > (ROUNDS * PER_ROUND / 2) as i64, "{charged}");
    let seen = since(app, &before, charged).await;
    assert!(
        seen.values().all(|(scans, _)| *scans == 0),
        "sequential scans during {charged} spends ({label}): {seen:?}"
    );
    // A spend reads a few rows of each table: its wallet found, locked and
    // updated, its grants, its key's probe, a budget and its counter (and,
    // in this debug build, the invariant's check: each written wallet's
    // grants and rows). A batch of at most 48 spends reading one of these
    // tables whole would add at least 1,500 / 48 = 31 rows a spend.
    assert!(
        seen.values().all(|(_, read)| *read <= 10 * charged),
        "rows read during {charged} spends ({label}): {seen:?}"
    );
}

/// Plans made while there were 30 wallets (with statistics taken then, or
/// none), kept while the tables grew fiftyfold, then made afresh after
/// `ANALYZE`.
async fn planned_small(analyzed_small: bool) {
    let app = TestApp::spawn(Backend::Postgres).await;
    create(&app, 0, SMALL).await;
    if analyzed_small {
        app.execute_sql("ANALYZE").await;
    }
    spend_rounds(&app, SMALL, "small").await;
    create(&app, SMALL, WORKSPACES).await;
    measure(
        &app,
        if analyzed_small {
            "statistics of 30 wallets"
        } else {
            "no statistics"
        },
    )
    .await;
    app.execute_sql("ANALYZE").await;
    measure(&app, "analyzed").await;
    app.verify_ledger().await;
    app.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_spends_scan_no_table_planned_without_statistics() {
    planned_small(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_spends_scan_no_table_planned_on_statistics_of_a_small_table() {
    planned_small(true).await;
}
