//! Goal: every subcommand of the one binary does what its help says,
//! against a live database: `migrate` (up/down/status), `verify` (finds a
//! corrupted wallet, exit 1), `renew` (rolls periods over at a given time),
//! `token` (a token the server accepts), `sdl` (the checked-in schema), and
//! `--help` on each.
//! Method: run the compiled binary beside a running app on its database.

use std::process::{Command, Output};

use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::both_backends;
use crate::helpers::TestApp;

const BINARY: &str = env!("CARGO_BIN_EXE_protodesk-credits");

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(output)
}

/// Migration names and statuses, in order, from `migrate` output.
fn statuses(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect()
}

async fn migrate_reports_reverts_and_reapplies(app: TestApp) {
    // Keys bound before the last migration is reverted and applied again.
    app.create_workspace("ws-keys").await;
    let keyed = app.token("service", Some("ws-keys"));
    assert_eq!(
        app.spend_ok(&keyed, "TRIAGE", "kept-key").await["outcome"],
        "CHARGED"
    );
    assert_eq!(
        app.top_up(&app.operator(), Some("ws-keys"), "PACK_100", "pay-kept")
            .await
            .data()["purchaseTopUp"]["outcome"],
        "APPLIED"
    );

    let applied = statuses(&succeeded(&app.run_binary(&["migrate", "status"]).await));
    assert_eq!(applied.len(), 11, "{applied:?}");
    assert!(
        applied.iter().all(|(status, _)| status == "Applied"),
        "{applied:?}"
    );
    assert!(applied[3].1.starts_with("m20261130_000004"), "{applied:?}");
    assert!(applied[4].1.starts_with("m20261203_000005"), "{applied:?}");
    assert!(applied[5].1.starts_with("m20261204_000006"), "{applied:?}");
    assert!(applied[6].1.starts_with("m20261204_000007"), "{applied:?}");
    assert!(applied[7].1.starts_with("m20261207_000008"), "{applied:?}");
    assert!(applied[8].1.starts_with("m20261207_000009"), "{applied:?}");
    assert!(applied[9].1.starts_with("m20261207_000010"), "{applied:?}");
    assert!(applied[10].1.starts_with("m20261207_000011"), "{applied:?}");

    // Migration 11 (the lean hot path), 10 (holds), 9 (webhook queues), 8 (paid credits), 7
    // (outbox), 6 (refunds), 5 (budgets), then 4 (keys on their rows).
    let after_down = statuses(&succeeded(
        &app.run_binary(&["migrate", "down", "--steps", "8"]).await,
    ));
    assert_eq!(
        after_down
            .iter()
            .map(|(status, _)| status.as_str())
            .collect::<Vec<_>>(),
        [
            "Applied", "Applied", "Applied", "Pending", "Pending", "Pending", "Pending", "Pending",
            "Pending", "Pending", "Pending"
        ]
    );
    let db = app.db();
    for gone in [
        "SELECT id FROM credit_hold",
        "SELECT held_credits FROM wallet",
        "SELECT hold_id FROM ledger_entry",
        "SELECT endpoint_id FROM webhook_queue",
        "SELECT payment_reference FROM stripe_payment",
        "SELECT subscription_id FROM stripe_subscription",
        "SELECT once_key FROM outbox_once",
        "SELECT subscription_id FROM wallet",
        "SELECT id FROM outbox_event",
        "SELECT wallet_id FROM auto_top_up",
        "SELECT auto_top_up_threshold_credits FROM wallet",
        "SELECT id FROM webhook_endpoint",
        "SELECT id FROM webhook_delivery",
        "SELECT payment_reference FROM payment_refund",
        "SELECT id FROM budget",
        "SELECT budget_version FROM wallet",
        "SELECT agent_id FROM ledger_entry",
    ] {
        let read = db
            .query_all_raw(sea_orm::Statement::from_string(db.get_database_backend(), gone))
            .await;
        assert!(read.is_err(), "migrations 10 to 5 reverted: {gone}");
    }
    let column = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT idempotency_fingerprint FROM ledger_entry",
        ))
        .await;
    assert!(column.is_err(), "the reverted migration's column is gone");
    let records = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT r.scope, r.key, r.fingerprint FROM idempotency_record r \
             JOIN ledger_entry e ON e.id = r.ledger_entry_id \
             WHERE e.idempotency_key = r.key ORDER BY r.id",
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| {
            let text = |column: &str| row.try_get::<String>("", column).unwrap();
            [text("scope"), text("key"), text("fingerprint")]
        })
        .collect::<Vec<_>>();
    assert_eq!(
        records,
        [
            ["SPEND".to_owned(), "kept-key".to_owned(), "TRIAGE|0|".to_owned()],
            ["TOP_UP".to_owned(), "pay-kept".to_owned(), "PACK_100".to_owned()],
        ],
        "the keys are back in their records, each beside its row"
    );

    let after_up = statuses(&succeeded(&app.run_binary(&["migrate", "up"]).await));
    assert_eq!(after_up, applied);
    // The keys moved back onto their rows still answer repeats and refuse
    // conflicting reuses.
    let repeat = app.spend_ok(&keyed, "TRIAGE", "kept-key").await;
    assert_eq!(repeat["outcome"], "DUPLICATE");
    assert_eq!(repeat["balance"]["total"], 299 + 100);
    assert_eq!(
        app.spend(&keyed, "SIDEKICK", "kept-key", None).await.code(),
        "IDEMPOTENCY_CONFLICT"
    );
    assert_eq!(
        app.top_up(&app.operator(), Some("ws-keys"), "PACK_100", "pay-kept")
            .await
            .data()["purchaseTopUp"]["outcome"],
        "DUPLICATE"
    );
    assert_eq!(
        app.top_up(&app.operator(), Some("ws-keys"), "PACK_500", "pay-kept")
            .await
            .code(),
        "IDEMPOTENCY_CONFLICT"
    );
    app.create_workspace("ws-migrated").await;
    let service = app.token("service", Some("ws-migrated"));
    let spent = app.spend_ok(&service, "TRIAGE", "after-migrations").await;
    assert_eq!(spent["outcome"], "CHARGED");
}

async fn verify_passes_then_names_the_broken_wallet(app: TestApp) {
    app.create_workspace("ws-good").await;
    app.create_workspace("ws-bad").await;
    let service = app.token("service", Some("ws-bad"));
    app.spend_ok(&service, "TRIAGE", "v1").await;
    let healthy = succeeded(&app.run_binary(&["verify"]).await);
    assert_eq!(healthy.trim(), "ok: 2 wallets, every invariant holds");

    app.execute_sql("UPDATE wallet SET balance_credits = balance_credits + 5 WHERE workspace_id = 'ws-bad'")
        .await;
    let broken = app.run_binary(&["verify"]).await;
    assert_eq!(broken.status.code(), Some(1));
    let report = stdout(&broken);
    assert_eq!(
        report.trim(),
        "BROKEN ws-bad: balance 304 != sum of ledger amounts 299",
        "only the broken wallet is named, with its first broken equality"
    );
    assert!(String::from_utf8_lossy(&broken.stderr).contains("1 violations in 2 wallets"));
    // Restore, so the harness's own audit after the scenario holds.
    app.execute_sql("UPDATE wallet SET balance_credits = balance_credits - 5 WHERE workspace_id = 'ws-bad'")
        .await;
}

/// Each check of the audit fires on the damage it is for, names the
/// wallet, and only that wallet. Method: damage one wallet's rows by hand
/// (lifting the database's own guard where there is one), audit, repair.
async fn verify_finds_each_kind_of_damage(app: TestApp) {
    use protodesk_credits::store::verify::audit;
    use sea_orm::TransactionTrait;
    app.create_workspace("ws-fine").await;
    app.create_workspace("ws-hurt").await;
    let admin = app.token("admin", Some("ws-hurt"));
    app.set_plan(&admin, "PRO", None).await.data();
    let service = app.token("service", Some("ws-hurt"));
    app.spend_ok(&service, "TRIAGE", "d1").await;
    let db = app.db();
    let problems = || async {
        let found = audit(db).await.unwrap();
        assert_eq!(found.wallets, 2);
        found
            .violations
            .into_iter()
            .map(|violation| {
                assert_eq!(violation.workspace_id, "ws-hurt");
                violation.problem
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(problems().await, Vec::<String>::new());
    let balance = app.balance_total("ws-hurt").await;
    let wallet = "(SELECT id FROM wallet WHERE workspace_id = 'ws-hurt')";
    let newest = format!("(SELECT MAX(sequence) FROM ledger_entry WHERE wallet_id = {wallet})");

    // Live grants that do not sum to the balance.
    let one_grant = format!(
        "(SELECT MIN(id) FROM credit_grant WHERE wallet_id = {wallet} AND expired_at IS NULL AND remaining_credits > 0)"
    );
    app.execute_sql(&format!(
        "UPDATE credit_grant SET remaining_credits = remaining_credits - 1 WHERE id = {one_grant}"
    ))
    .await;
    assert_eq!(
        problems().await,
        [format!("balance {balance} != sum of live grants {}", balance - 1)]
    );
    app.execute_sql(&format!(
        "UPDATE credit_grant SET remaining_credits = remaining_credits + 1 WHERE id = (SELECT MIN(id) FROM credit_grant WHERE wallet_id = {wallet} AND expired_at IS NULL AND remaining_credits < granted_credits)"
    ))
    .await;
    assert_eq!(problems().await, Vec::<String>::new());

    // The newest row's balance after, out of step.
    app.execute_sql(&format!(
        "UPDATE ledger_entry SET balance_after_credits = balance_after_credits + 1 WHERE wallet_id = {wallet} AND sequence = {newest}"
    ))
    .await;
    assert_eq!(
        problems().await,
        [format!(
            "balance {balance} != newest row's balance after {}",
            balance + 1
        )]
    );
    app.execute_sql(&format!(
        "UPDATE ledger_entry SET balance_after_credits = balance_after_credits - 1 WHERE wallet_id = {wallet} AND sequence = {newest}"
    ))
    .await;

    // A gap in the sequence.
    app.execute_sql(&format!(
        "UPDATE ledger_entry SET sequence = sequence + 10 WHERE wallet_id = {wallet} AND sequence = {newest}"
    ))
    .await;
    let last = app.wallet(&service, None).await.data()["wallet"]["lastSequence"]
        .as_i64()
        .unwrap();
    assert_eq!(
        problems().await,
        [format!("ledger sequences are not dense 1..={last}")]
    );
    app.execute_sql(&format!(
        "UPDATE ledger_entry SET sequence = sequence - 10 WHERE wallet_id = {wallet} AND sequence = {newest}"
    ))
    .await;
    assert_eq!(problems().await, Vec::<String>::new());

    // A doubled allocation (past the unique index, dropped for the
    // damage): an expired copy of the period's grant, so sums still hold.
    app.execute_sql("DROP INDEX credit_grant_wallet_period_key").await;
    app.execute_sql(&format!(
        "INSERT INTO credit_grant (wallet_id, source, granted_credits, remaining_credits, expires_at, expired_at, period_start_at, created_at)
         SELECT wallet_id, source, granted_credits, 0, expires_at, created_at, period_start_at, created_at
         FROM credit_grant WHERE wallet_id = {wallet} AND source = 'ALLOCATION'"
    ))
    .await;
    let doubled = problems().await;
    assert_eq!(doubled.len(), 1, "{doubled:?}");
    assert!(
        doubled[0].starts_with("the allocation of the period starting ")
            && doubled[0].ends_with(" was granted more than once"),
        "{doubled:?}"
    );
    app.execute_sql(&format!(
        "DELETE FROM credit_grant WHERE wallet_id = {wallet} AND source = 'ALLOCATION' AND remaining_credits = 0 AND expired_at IS NOT NULL"
    ))
    .await;
    assert_eq!(problems().await, Vec::<String>::new());

    // A negative balance, past the CHECK that refuses one (lifted on the
    // damaging connection only).
    let txn = db.begin().await.unwrap();
    if app.backend == crate::helpers::Backend::Sqlite {
        txn.execute_unprepared("PRAGMA ignore_check_constraints = ON")
            .await
            .unwrap();
    } else {
        txn.execute_unprepared(
            "DO $$ DECLARE c text; BEGIN
               FOR c IN SELECT conname FROM pg_constraint WHERE conrelid = 'wallet'::regclass AND contype = 'c'
                          AND pg_get_constraintdef(oid) LIKE '%balance_credits%' LOOP
                 EXECUTE format('ALTER TABLE wallet DROP CONSTRAINT %I', c);
               END LOOP; END $$",
        )
        .await
        .unwrap();
    }
    txn.execute_unprepared(&format!(
        "UPDATE wallet SET balance_credits = -1 WHERE id = {wallet}"
    ))
    .await
    .unwrap();
    if app.backend == crate::helpers::Backend::Sqlite {
        txn.execute_unprepared("PRAGMA ignore_check_constraints = OFF")
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();
    assert_eq!(problems().await, ["balance -1 is negative".to_owned()]);
    app.execute_sql(&format!(
        "UPDATE wallet SET balance_credits = {balance} WHERE id = {wallet}"
    ))
    .await;
    assert_eq!(problems().await, Vec::<String>::new());
}

async fn renew_rolls_over_at_the_given_time(app: TestApp) {
    app.set_trial_credits(0).await;
    app.create_workspace("ws-renew-cli").await;
    let admin = app.token("admin", Some("ws-renew-cli"));
    app.set_plan(&admin, "PRO", None).await.data();
    let service = app.token("service", Some("ws-renew-cli"));
    app.spend_ok(&service, "TRIAGE", "before-reset").await;

    let early = succeeded(&app.run_binary(&["renew", "--at", "2026-02-27T10:00:00Z"]).await);
    assert_eq!(
        early.trim(),
        "rolled over to 2026-02-27T10:00:00+00:00: 0 wallets due, 0 changed"
    );
    let due = succeeded(&app.run_binary(&["renew", "--at", "2026-02-28T10:00:00Z"]).await);
    assert_eq!(
        due.trim(),
        "rolled over to 2026-02-28T10:00:00+00:00: 1 wallets due, 1 changed"
    );
    let kinds: Vec<(String, i64)> = app.ledger_rows("ws-renew-cli").await;
    let pro = kinds[0].1;
    assert_eq!(
        kinds,
        crate::helpers::client::rows(&[
            ("GRANT", pro),
            ("SPEND", -1),
            ("EXPIRE", -(pro - 1)),
            ("GRANT", pro)
        ])
    );
    let again = succeeded(&app.run_binary(&["renew", "--at", "2026-02-28T10:00:00Z"]).await);
    assert!(again.contains("0 changed"), "{again}");

    let bad = app.run_binary(&["renew", "--at", "yesterday"]).await;
    assert_eq!(
        bad.status.code(),
        Some(2),
        "clap refuses a time that is not RFC 3339"
    );
}

async fn minted_token_is_accepted_by_the_server(app: TestApp) {
    app.create_workspace("ws-cli-token").await;
    let token = succeeded(
        &app.run_binary(&["token", "--role", "service", "--workspace", "ws-cli-token"])
            .await,
    );
    let wallet = app
        .gql(Some(token.trim()), "{ wallet { balance { total } } }", json!({}))
        .await;
    assert_eq!(wallet.data()["wallet"]["balance"]["total"], 300);
}

both_backends!(
    verify_finds_each_kind_of_damage,
    migrate_reports_reverts_and_reapplies,
    verify_passes_then_names_the_broken_wallet,
    renew_rolls_over_at_the_given_time,
    minted_token_is_accepted_by_the_server,
);

#[test]
fn sdl_prints_the_checked_in_schema() {
    let output = Command::new(BINARY).arg("sdl").output().unwrap();
    let checked_in = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert_eq!(succeeded(&output), checked_in);
}

#[test]
fn every_subcommand_has_help() {
    let cases: [(&[&str], &str); 10] = [
        (&["--help"], "Meters and bills Protodesk AI credits"),
        (&["serve", "--help"], "Serve GraphQL over HTTP and WebSocket"),
        (
            &["migrate", "--help"],
            "Apply, revert or list the database migrations",
        ),
        (&["migrate", "up", "--help"], "Apply every pending migration"),
        (&["migrate", "down", "--help"], "--steps"),
        (&["migrate", "status", "--help"], "List each migration"),
        (&["token", "--help"], "--workspace"),
        (&["verify", "--help"], "Check the ledger invariants"),
        (&["sdl", "--help"], "Print the GraphQL schema"),
        (&["renew", "--help"], "--at"),
    ];
    for (args, expected) in cases {
        let help = succeeded(&Command::new(BINARY).args(args).output().unwrap());
        assert!(help.contains(expected), "{args:?}: {help}");
    }
    let unknown = Command::new(BINARY).arg("frobnicate").output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}
