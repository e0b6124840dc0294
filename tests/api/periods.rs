//! Goal: monthly allocations are granted exactly once per period, on the
//! workspace's own billing date, whatever happens to the servers; plan
//! changes and trial expiry write exactly the rows the rules say.
//! Method: a manual clock crosses month ends; the sweep is called directly
//! (and concurrently, and from two instances); the ledger rows are read
//! from the database and compared whole.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::future::join_all;
use serde_json::json;

use crate::both_backends;
use crate::helpers::client::rows;
use crate::helpers::{Options, TestApp, start_time};

fn at(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, 10, 0, 0).unwrap()
}

/// A workspace on PRO since the start (Jan 31 10:00), with no trial credits.
async fn pro_workspace(app: &TestApp, workspace: &str) -> String {
    app.set_trial_credits(0).await;
    app.create_workspace(workspace).await;
    let admin = app.token("admin", Some(workspace));
    app.set_plan(&admin, "PRO", None).await.data();
    admin
}

async fn period_of(app: &TestApp, token: &str) -> (String, String) {
    let wallet = app.wallet(token, None).await;
    let period = &wallet.data()["wallet"]["currentPeriod"];
    (
        period["start"].as_str().unwrap().to_owned(),
        period["end"].as_str().unwrap().to_owned(),
    )
}

fn iso(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339()
}

async fn renewal_run_twice_and_concurrently_grants_once(app: TestApp) {
    let admin = pro_workspace(&app, "ws-renew").await;
    let service = app.token("service", Some("ws-renew"));
    for i in 0..10 {
        app.spend_ok(&service, "TRIAGE", &format!("r{i}")).await;
    }
    app.clock.set(at(2026, 2, 28));

    let reports = join_all((0..4).map(|_| app.ledger.roll_over_periods(at(2026, 2, 28)))).await;
    let again = app.ledger.roll_over_periods(at(2026, 2, 28)).await.unwrap();

    let reports: Vec<_> = reports.into_iter().map(Result::unwrap).collect();
    let changed: u64 = reports.iter().map(|report| report.wallets_changed).sum();
    let examined: u64 = reports.iter().map(|report| report.wallets_examined).sum();
    assert_eq!(changed, 1, "one of the concurrent sweeps renewed the wallet");
    assert_eq!(examined, 1, "and only that one counted it");
    assert_eq!(again.wallets_changed, 0);
    let mut expected = vec![("GRANT", 1000)];
    expected.extend(std::iter::repeat_n(("SPEND", -1), 10));
    expected.extend([("EXPIRE", -990), ("GRANT", 1000)]);
    assert_eq!(app.ledger_rows("ws-renew").await, rows(&expected));
    let (start, end) = period_of(&app, &admin).await;
    assert_eq!((start, end), (iso(at(2026, 2, 28)), iso(at(2026, 3, 31))));
}

async fn two_instances_sweeping_at_once_grant_each_period_once(app: TestApp) {
    let sibling = app.spawn_sibling().await;
    for i in 0..6 {
        pro_workspace(&app, &format!("ws-pair-{i}")).await;
    }
    let now = at(2026, 3, 1);
    app.clock.set(now);

    let (first, second) = tokio::join!(
        app.ledger.roll_over_periods(now),
        sibling.ledger.roll_over_periods(now)
    );

    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.wallets_changed + second.wallets_changed, 6);
    assert_eq!(
        first.wallets_examined + second.wallets_examined,
        6,
        "a wallet one sweep settled is not counted by the other"
    );
    for i in 0..6 {
        assert_eq!(
            app.ledger_rows(&format!("ws-pair-{i}")).await,
            rows(&[("GRANT", 1000), ("EXPIRE", -1000), ("GRANT", 1000)])
        );
    }
}

async fn a_scheduler_down_for_three_months_catches_up_once(app: TestApp) {
    let admin = pro_workspace(&app, "ws-down").await;
    let now = at(2026, 5, 15);
    app.clock.set(now);

    let report = app.ledger.roll_over_periods(now).await.unwrap();
    let again = app.ledger.roll_over_periods(now).await.unwrap();

    assert_eq!(report.wallets_changed, 1);
    assert_eq!(again.wallets_changed, 0);
    assert_eq!(
        app.ledger_rows("ws-down").await,
        rows(&[("GRANT", 1000), ("EXPIRE", -1000), ("GRANT", 1000)])
    );
    // Anchored on the 31st: Feb 28, Mar 31, Apr 30, May 31.
    assert_eq!(
        period_of(&app, &admin).await,
        (iso(at(2026, 4, 30)), iso(at(2026, 5, 31)))
    );
    let wallet = app.wallet(&admin, None).await;
    assert_eq!(wallet.data()["wallet"]["balance"]["allocation"], 1000);
}

async fn a_spend_after_the_period_end_sees_the_new_allocation(app: TestApp) {
    pro_workspace(&app, "ws-lazy").await;
    let service = app.token("service", Some("ws-lazy"));
    app.spend_ok(&service, "TRIAGE", "before").await;
    app.clock.set(at(2026, 2, 28) + Duration::seconds(1));

    let spent = app.spend_ok(&service, "TRIAGE", "after").await;

    assert_eq!(spent["outcome"], "CHARGED");
    assert_eq!(spent["balance"]["allocation"], 999);
    assert_eq!(
        app.ledger_rows("ws-lazy").await,
        rows(&[
            ("GRANT", 1000),
            ("SPEND", -1),
            ("EXPIRE", -999),
            ("GRANT", 1000),
            ("SPEND", -1)
        ])
    );
}

/// A top-up after the period's end is one change creating two grants (the
/// renewal's allocation, then the pack): each is stored holding its own
/// credits, with its own kind and period, whatever order the database
/// assigns their ids in.
async fn a_top_up_after_the_period_end_writes_both_new_grants_apart(app: TestApp) {
    pro_workspace(&app, "ws-two").await;
    app.clock.set(at(2026, 2, 28) + Duration::seconds(1));

    let topped = app
        .top_up(&app.operator(), Some("ws-two"), "PACK_500", "pay-after-end")
        .await;

    let balance = &topped.data()["purchaseTopUp"]["balance"];
    assert_eq!(balance["allocation"], 1000);
    assert_eq!(balance["purchased"], 500);
    assert_eq!(
        app.ledger_rows("ws-two").await,
        rows(&[
            ("GRANT", 1000),
            ("EXPIRE", -1000),
            ("GRANT", 1000),
            ("TOP_UP", 500)
        ])
    );
    let grant = |condition: &str| {
        format!(
            "SELECT COUNT(*) FROM credit_grant g JOIN wallet w ON w.id = g.wallet_id \
             WHERE w.workspace_id = 'ws-two' AND g.expired_at IS NULL AND {condition}"
        )
    };
    assert_eq!(
        app.query_i64(&grant(
            "g.source = 'ALLOCATION' AND g.granted_credits = 1000 AND g.remaining_credits = 1000 \
             AND g.pack_code IS NULL AND g.period_start_at IS NOT NULL"
        ))
        .await,
        1
    );
    assert_eq!(
        app.query_i64(&grant(
            "g.source = 'PURCHASE' AND g.granted_credits = 500 AND g.remaining_credits = 500 \
             AND g.pack_code = 'PACK_500' AND g.expires_at IS NULL"
        ))
        .await,
        1
    );
    // Each row moved its own grant.
    assert_eq!(
        app.query_i64(
            "SELECT COUNT(*) FROM ledger_entry e JOIN ledger_entry_grant m ON m.ledger_entry_id = e.id \
             JOIN credit_grant g ON g.id = m.credit_grant_id JOIN wallet w ON w.id = e.wallet_id \
             WHERE w.workspace_id = 'ws-two' AND e.sequence IN (3, 4) \
             AND ((e.kind = 'GRANT' AND g.source = 'ALLOCATION') OR (e.kind = 'TOP_UP' AND g.source = 'PURCHASE'))"
        )
        .await,
        2
    );
}

async fn an_upgrade_raises_the_allocation_less_what_was_used(app: TestApp) {
    let admin = pro_workspace(&app, "ws-up").await;
    let service = app.token("service", Some("ws-up"));
    for i in 0..100 {
        app.spend_ok(&service, "TRIAGE", &format!("u{i}")).await;
    }

    let upgraded = app.set_plan(&admin, "BUSINESS", None).await;

    let wallet = &upgraded.data()["changePlan"]["wallet"];
    assert_eq!(wallet["plan"], "BUSINESS");
    assert_eq!(wallet["balance"]["allocation"], 2400, "2500 less the 100 used");
    let ledger = app.ledger_rows("ws-up").await;
    assert_eq!(ledger.last().unwrap(), &("GRANT".to_owned(), 1500));
    assert_eq!(ledger.len(), 102);
    // The next period grants the full new allocation.
    app.clock.set(at(2026, 2, 28));
    app.ledger.roll_over_periods(at(2026, 2, 28)).await.unwrap();
    assert_eq!(
        app.ledger_rows("ws-up").await[102..].to_vec(),
        rows(&[("EXPIRE", -2400), ("GRANT", 2500)])
    );
}

async fn a_downgrade_waits_for_the_next_reset(app: TestApp) {
    let admin = pro_workspace(&app, "ws-down-plan").await;

    let changed = app.set_plan(&admin, "STARTER", None).await;

    let wallet = &changed.data()["changePlan"]["wallet"];
    assert_eq!(wallet["plan"], "PRO");
    assert_eq!(wallet["pendingPlan"], "STARTER");
    assert_eq!(wallet["balance"]["allocation"], 1000);
    assert_eq!(app.ledger_rows("ws-down-plan").await, rows(&[("GRANT", 1000)]));
    app.clock.set(at(2026, 2, 28));
    app.ledger.roll_over_periods(at(2026, 2, 28)).await.unwrap();
    let wallet = app.wallet(&admin, None).await;
    assert_eq!(wallet.data()["wallet"]["plan"], "STARTER");
    assert_eq!(wallet.data()["wallet"]["pendingPlan"], json!(null));
    assert_eq!(
        app.ledger_rows("ws-down-plan").await,
        rows(&[("GRANT", 1000), ("EXPIRE", -1000), ("GRANT", 250)])
    );
}

async fn downgrade_then_upgrade_in_one_period_grants_no_second_allowance(app: TestApp) {
    let admin = pro_workspace(&app, "ws-zigzag").await;

    app.set_plan(&admin, "STARTER", None).await.data();
    let back = app.set_plan(&admin, "PRO", None).await;
    assert_eq!(back.data()["changePlan"]["wallet"]["pendingPlan"], json!(null));
    app.set_plan(&admin, "STARTER", None).await.data();
    let up = app.set_plan(&admin, "BUSINESS", None).await;

    assert_eq!(up.data()["changePlan"]["wallet"]["plan"], "BUSINESS");
    assert_eq!(up.data()["changePlan"]["wallet"]["pendingPlan"], json!(null));
    assert_eq!(up.data()["changePlan"]["wallet"]["balance"]["allocation"], 2500);
    assert_eq!(
        app.ledger_rows("ws-zigzag").await,
        rows(&[("GRANT", 1000), ("GRANT", 1500)])
    );
}

async fn trial_to_paid_starts_the_anchor_and_keeps_trial_credits_to_their_end(app: TestApp) {
    app.create_workspace("ws-convert").await;
    let admin = app.token("admin", Some("ws-convert"));
    app.clock.set(start_time() + Duration::days(2));

    let paid = app.set_plan(&admin, "STARTER", None).await;

    let wallet = &paid.data()["changePlan"]["wallet"];
    assert_eq!(
        wallet["balance"],
        json!({ "total": 550, "allocation": 250, "purchased": 0, "bonus": 300 })
    );
    let anchor = start_time() + Duration::days(2);
    assert_eq!(wallet["currentPeriod"]["start"], iso(anchor));
    assert_eq!(wallet["currentPeriod"]["end"], iso(at(2026, 3, 2)));
    app.clock.set(start_time() + Duration::days(7));
    app.ledger
        .roll_over_periods(start_time() + Duration::days(7))
        .await
        .unwrap();
    assert_eq!(
        app.ledger_rows("ws-convert").await,
        rows(&[("GRANT", 300), ("GRANT", 250), ("EXPIRE", -300)])
    );
    assert_eq!(app.balance_total("ws-convert").await, 250);
}

async fn trial_expiry_pauses_ai_unless_purchased_credits_remain(app: TestApp) {
    app.create_workspace("ws-lapsed").await;
    app.create_workspace("ws-bought").await;
    app.top_up(&app.operator(), Some("ws-bought"), "PACK_100", "pay-1")
        .await
        .data();
    let end = start_time() + Duration::days(7);
    app.clock.set(end);

    let report = app.ledger.roll_over_periods(end).await.unwrap();

    assert_eq!(report.wallets_changed, 2);
    assert_eq!(
        app.ledger_rows("ws-lapsed").await,
        rows(&[("GRANT", 300), ("EXPIRE", -300)])
    );
    assert_eq!(
        app.ledger_rows("ws-bought").await,
        rows(&[("GRANT", 300), ("TOP_UP", 100), ("EXPIRE", -300)])
    );
    let lapsed = app.wallet(&app.token("agent", Some("ws-lapsed")), None).await;
    assert_eq!(lapsed.data()["wallet"]["aiPaused"], true);
    assert_eq!(lapsed.data()["wallet"]["currentPeriod"], json!(null));
    let bought = app.wallet(&app.token("agent", Some("ws-bought")), None).await;
    assert_eq!(bought.data()["wallet"]["aiPaused"], false);
    assert_eq!(bought.data()["wallet"]["balance"]["purchased"], 100);
}

async fn enterprise_allocations_are_set_per_workspace_and_renew(app: TestApp) {
    app.set_trial_credits(0).await;
    app.create_workspace("ws-ent").await;

    let set = app
        .change_plan(&app.operator(), Some("ws-ent"), "ENTERPRISE", Some(7000))
        .await;
    app.clock.set(at(2026, 2, 28));
    app.ledger.roll_over_periods(at(2026, 2, 28)).await.unwrap();

    assert_eq!(set.data()["changePlan"]["wallet"]["balance"]["allocation"], 7000);
    assert_eq!(
        app.ledger_rows("ws-ent").await,
        rows(&[("GRANT", 7000), ("EXPIRE", -7000), ("GRANT", 7000)])
    );
}

/// A plan whose allocation is zero (the catalogue is data) renews the
/// period without a grant or a GRANT row; a trial grant spent to zero
/// expires without an EXPIRE row. Both count as changed wallets in the
/// sweep's report (issue 24: the sweep's `credits > 0` and "changed" flag).
async fn zero_credit_renewals_and_empty_expiries_write_no_rows_but_count(app: TestApp) {
    let admin = pro_workspace(&app, "ws-zero").await;
    app.execute_sql("UPDATE plan SET monthly_credits = 0 WHERE code = 'PRO'")
        .await;
    app.set_trial_credits(2).await;
    app.create_workspace("ws-spent-trial").await;
    let service = app.token("service", Some("ws-spent-trial"));
    app.spend_ok(&service, "TRIAGE", "t-1").await;
    app.spend_ok(&service, "TRIAGE", "t-2").await;
    let now = at(2026, 2, 28);
    app.clock.set(now);

    let report = app.ledger.roll_over_periods(now).await.unwrap();
    let again = app.ledger.roll_over_periods(now).await.unwrap();

    assert_eq!((report.wallets_examined, report.wallets_changed), (2, 2));
    assert_eq!((again.wallets_examined, again.wallets_changed), (0, 0));
    assert_eq!(
        app.ledger_rows("ws-zero").await,
        rows(&[("GRANT", 1000), ("EXPIRE", -1000)])
    );
    assert_eq!(
        period_of(&app, &admin).await,
        (iso(at(2026, 2, 28)), iso(at(2026, 3, 31)))
    );
    assert_eq!(
        app.ledger_rows("ws-spent-trial").await,
        rows(&[("GRANT", 2), ("SPEND", -1), ("SPEND", -1)])
    );
    let live = app
        .query_i64("SELECT COUNT(*) FROM credit_grant WHERE expired_at IS NULL")
        .await;
    assert_eq!(live, 0, "the spent trial grant is closed");

    // A month on, the zero plan renews with nothing to close: only its
    // period moves, and that is a change too.
    let later = at(2026, 3, 31);
    app.clock.set(later);
    let report = app.ledger.roll_over_periods(later).await.unwrap();

    assert_eq!((report.wallets_examined, report.wallets_changed), (1, 1));
    assert_eq!(
        period_of(&app, &admin).await,
        (iso(at(2026, 3, 31)), iso(at(2026, 4, 30)))
    );
    assert_eq!(app.ledger_rows("ws-zero").await.len(), 2);
}

/// A renewal whose allocation would take the balance past the ceiling
/// (`i32::MAX`) grants what fits, whether the sweep or a writer settles it:
/// a period always renews (`domain::ceiling`). A caller's top-up past the
/// ceiling is refused and writes nothing.
async fn a_renewal_at_the_balance_ceiling_grants_what_fits(app: TestApp) {
    let ceiling = i64::from(i32::MAX);
    for workspace in ["ws-full-swept", "ws-full-spent"] {
        pro_workspace(&app, workspace).await;
        app.gql(
            Some(&app.operator()),
            "mutation($ws: ID!, $credits: Int!) { adjustCredits(input: {workspaceId: $ws, credits: $credits, reason: \"test\"}) { balance { total } } }",
            json!({ "ws": workspace, "credits": ceiling - 1000 }),
        )
        .await
        .data();
    }
    // The plan now grants more than the expiring allocation gives back.
    app.execute_sql("UPDATE plan SET monthly_credits = 2000 WHERE code = 'PRO'")
        .await;
    let now = at(2026, 2, 28);
    app.clock.set(now);

    let service = app.token("service", Some("ws-full-spent"));
    let spent = app.spend_ok(&service, "TRIAGE", "after-reset").await;
    let report = app.ledger.roll_over_periods(now).await.unwrap();
    let refused = app
        .top_up(&app.operator(), Some("ws-full-swept"), "PACK_100", "pay-full")
        .await;

    assert_eq!(spent["balance"]["total"], ceiling - 1);
    assert_eq!(report.wallets_changed, 1);
    assert_eq!(refused.code(), "BAD_USER_INPUT");
    let adjusted = ("ADJUSTMENT", ceiling - 1000);
    assert_eq!(
        app.ledger_rows("ws-full-swept").await,
        rows(&[("GRANT", 1000), adjusted, ("EXPIRE", -1000), ("GRANT", 1000)])
    );
    assert_eq!(
        app.ledger_rows("ws-full-spent").await,
        rows(&[
            ("GRANT", 1000),
            adjusted,
            ("EXPIRE", -1000),
            ("GRANT", 1000),
            ("SPEND", -1)
        ])
    );
    assert_eq!(app.balance_total("ws-full-swept").await, ceiling);
}

async fn the_cron_job_fires_and_renews_a_due_wallet(app: TestApp) {
    // The test app runs without a scheduler; this one runs the real cron
    // job every second on the same database and clock.
    pro_workspace(&app, "ws-cron").await;
    app.clock.set(at(2026, 2, 28) + Duration::minutes(1));
    let options = Options {
        renewal_cron: Some("* * * * * *".into()),
        clock: Some(app.clock.clone()),
        ..Options::default()
    };
    let _scheduled = TestApp::spawn_beside(&app, options).await;

    let mut renewed = false;
    for _ in 0..50 {
        if app.ledger_rows("ws-cron").await.len() == 3 {
            renewed = true;
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }

    assert!(renewed, "the cron job renewed the wallet");
    assert_eq!(
        app.ledger_rows("ws-cron").await,
        rows(&[("GRANT", 1000), ("EXPIRE", -1000), ("GRANT", 1000)])
    );
    app.verify_ledger().await;
}

both_backends!(
    renewal_run_twice_and_concurrently_grants_once,
    two_instances_sweeping_at_once_grant_each_period_once,
    a_scheduler_down_for_three_months_catches_up_once,
    a_spend_after_the_period_end_sees_the_new_allocation,
    a_top_up_after_the_period_end_writes_both_new_grants_apart,
    an_upgrade_raises_the_allocation_less_what_was_used,
    a_downgrade_waits_for_the_next_reset,
    downgrade_then_upgrade_in_one_period_grants_no_second_allowance,
    trial_to_paid_starts_the_anchor_and_keeps_trial_credits_to_their_end,
    trial_expiry_pauses_ai_unless_purchased_credits_remain,
    enterprise_allocations_are_set_per_workspace_and_renew,
    zero_credit_renewals_and_empty_expiries_write_no_rows_but_count,
    a_renewal_at_the_balance_ceiling_grants_what_fits,
    the_cron_job_fires_and_renews_a_due_wallet,
);

mod constraint {
    //! The unique key, not only the lock, refuses a second allocation.
    use domain::catalogue::GrantSource;
    use domain::wallet::{Change, Grant, NEW_GRANT_ID_BASE};
    use protodesk_credits::store;

    use super::*;

    async fn the_database_refuses_a_second_allocation_for_one_period(app: TestApp) {
        pro_workspace(&app, "ws-unique").await;
        let txn = store::begin_write(app.db()).await.unwrap();
        let state = store::wallets::lock(&txn, "ws-unique").await.unwrap().unwrap();
        // A change that only creates a second allocation grant for the
        // current period, written through the one applier.
        let change = Change {
            wallet_id: state.head.id,
            workspace_id: state.head.workspace_id.clone(),
            sequence_read: state.head.last_sequence,
            available_read: state.balance().available(),
            rows: Vec::new(),
            new_grants: vec![Grant {
                id: NEW_GRANT_ID_BASE,
                source: GrantSource::Allocation,
                granted: 1000,
                remaining: 0,
                held: 0,
                expires_at: state.head.period_end,
                period_start_at: state.head.period_start,
                purchase: None,
            }],
            deltas: Vec::new(),
            closes: Vec::new(),
            alerts: Vec::new(),
            counters: Vec::new(),
            exhausted: Vec::new(),
            head: None,
            happened: Vec::new(),
            renewals: 0,
            expiry_moves: Vec::new(),
            notices: Vec::new(),
            auto_top_up: None,
            told: Vec::new(),
            budget_writes: Vec::new(),
            holds: Vec::new(),
        };

        let second = store::apply::apply(&txn, "unused", &[change], start_time()).await;

        let error = second.expect_err("a second allocation for the period is refused");
        // The store names the constraint (by PostgreSQL's index name, by
        // SQLite's columns): a named conflict, not a message to parse.
        assert!(
            matches!(
                error,
                protodesk_credits::store::Error::Conflict {
                    constraint: protodesk_credits::store::Constraint::Allocation,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    both_backends!(the_database_refuses_a_second_allocation_for_one_period);
}
