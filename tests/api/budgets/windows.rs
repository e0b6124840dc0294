//! Windows: DAY rolls at the workspace's local midnight (an injected
//! clock, Los Angeles and Kolkata side by side), BILLING_PERIOD follows the
//! wallet's period, the trial counting as one.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::*;
use crate::both_backends;

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

async fn outcome(app: &TestApp, workspace: &str, key: &str) -> String {
    let service = app.token("service", Some(workspace));
    app.spend_for_ok(&service, "TRIAGE", key, None).await["outcome"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The clock starts at 2026-01-31 10:00 UTC: 02:00 in Los Angeles (UTC−8),
/// 15:30 in Kolkata (UTC+5:30). Kolkata's day ends at 18:30 UTC, Los
/// Angeles' at 08:00 UTC the next morning.
async fn days_roll_at_local_midnight(app: TestApp) {
    let zones = [("ws-la", "America/Los_Angeles"), ("ws-kol", "Asia/Kolkata")];
    for (workspace, zone) in zones {
        app.create_workspace(workspace).await;
        let admin = app.token("admin", Some(workspace));
        let set = app
            .gql(
                Some(&admin),
                "mutation($tz: String!) { setTimeZone(input: {timeZone: $tz}) { workspace { id timeZone } } }",
                json!({ "tz": zone }),
            )
            .await;
        assert_eq!(
            set.data()["setTimeZone"]["workspace"],
            json!({ "id": workspace, "timeZone": zone })
        );
        app.set_budget(&admin, None, &Budget::hard("daily", "WORKSPACE", 1))
            .await
            .data();
        assert_eq!(outcome(&app, workspace, "d1").await, "CHARGED");
        let refused = app
            .spend_for_ok(&app.token("service", Some(workspace)), "TRIAGE", "d2", None)
            .await;
        assert_eq!(refused["outcome"], "BUDGET_EXCEEDED");
        let resets = refused["budget"]["resetsAt"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap();
        let expected = if zone == "Asia/Kolkata" {
            utc("2026-01-31T18:30:00Z")
        } else {
            utc("2026-02-01T08:00:00Z")
        };
        assert_eq!(resets, expected, "{zone}");
    }

    app.clock.set(utc("2026-01-31T18:29:59Z"));
    assert_eq!(outcome(&app, "ws-kol", "k3").await, "BUDGET_EXCEEDED");
    app.clock.set(utc("2026-01-31T18:30:00Z"));
    assert_eq!(
        outcome(&app, "ws-kol", "k4").await,
        "CHARGED",
        "Kolkata's new day"
    );
    assert_eq!(
        outcome(&app, "ws-la", "l3").await,
        "BUDGET_EXCEEDED",
        "still the same day in LA"
    );
    app.clock.set(utc("2026-02-01T07:59:59Z"));
    assert_eq!(outcome(&app, "ws-la", "l4").await, "BUDGET_EXCEEDED");
    app.clock.set(utc("2026-02-01T08:00:00Z"));
    assert_eq!(outcome(&app, "ws-la", "l5").await, "CHARGED", "LA's new day");
    assert_eq!(outcome(&app, "ws-la", "l6").await, "BUDGET_EXCEEDED");

    let admin = app.token("admin", Some("ws-la"));
    let bad = app
        .gql(
            Some(&admin),
            "mutation { setTimeZone(input: {timeZone: \"Mars/Olympus\"}) { workspace { timeZone } } }",
            json!({}),
        )
        .await;
    assert_eq!(bad.code(), "BAD_USER_INPUT");
    let agent = app
        .gql(
            Some(&app.token("agent", Some("ws-la"))),
            "mutation { setTimeZone(input: {timeZone: \"UTC\"}) { workspace { timeZone } } }",
            json!({}),
        )
        .await;
    assert_eq!(agent.code(), "FORBIDDEN");
    let read = app
        .gql(Some(&admin), "{ wallet { workspace { timeZone } } }", json!({}))
        .await;
    assert_eq!(
        read.data()["wallet"]["workspace"]["timeZone"],
        "America/Los_Angeles"
    );
    app.verify_ledger().await;
}

/// BILLING_PERIOD counts the trial as one period, then each paid period:
/// the counter starts again when the period renews.
async fn billing_period_budgets_roll_at_renewal(app: TestApp) {
    app.create_workspace("ws-period").await;
    let admin = app.token("admin", Some("ws-period"));
    let period = Budget {
        window: "BILLING_PERIOD",
        ..Budget::hard("monthly", "WORKSPACE", 2)
    };
    app.set_budget(&admin, None, &period).await.data();
    let trial_end = app.wallet(&admin, None).await.data()["wallet"]["trialEndsAt"].clone();
    assert_eq!(outcome(&app, "ws-period", "p1").await, "CHARGED");
    assert_eq!(outcome(&app, "ws-period", "p2").await, "CHARGED");
    let refused = app
        .spend_for_ok(&app.token("service", Some("ws-period")), "TRIAGE", "p3", None)
        .await;
    assert_eq!(refused["outcome"], "BUDGET_EXCEEDED");
    assert_eq!(
        refused["budget"]["resetsAt"], trial_end,
        "the trial is one period"
    );

    app.set_plan(&admin, "PRO", None).await.data();
    assert_eq!(
        outcome(&app, "ws-period", "p4").await,
        "CHARGED",
        "the paid period is a new window"
    );
    assert_eq!(outcome(&app, "ws-period", "p5").await, "CHARGED");
    assert_eq!(outcome(&app, "ws-period", "p6").await, "BUDGET_EXCEEDED");
    let wallet = app.wallet(&admin, None).await;
    let end: DateTime<Utc> = wallet.data()["wallet"]["currentPeriod"]["end"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    app.clock.set(end - Duration::seconds(1));
    assert_eq!(outcome(&app, "ws-period", "p7").await, "BUDGET_EXCEEDED");
    app.clock.set(end + Duration::seconds(1));
    assert_eq!(
        outcome(&app, "ws-period", "p8").await,
        "CHARGED",
        "renewed inside the spend's own change, then counted afresh"
    );
    assert_eq!(
        app.budget_usage(&admin, None).await,
        [("monthly".to_owned(), 1, 1)]
    );
    app.verify_ledger().await;
}

/// `resetsAt` of a DAY budget, as `budgetUsage` answers it at `now`, for a
/// new workspace in Los Angeles.
async fn day_resets_at(app: &TestApp, workspace: &str, now: &str) -> DateTime<Utc> {
    app.clock.set(utc(now));
    app.create_workspace(workspace).await;
    let admin = app.token("admin", Some(workspace));
    app.gql(
        Some(&admin),
        "mutation { setTimeZone(input: {timeZone: \"America/Los_Angeles\"}) { workspace { timeZone } } }",
        json!({}),
    )
    .await
    .data();
    app.set_budget(&admin, None, &Budget::hard("daily", "WORKSPACE", 3))
        .await
        .data();
    let usage = app
        .gql(
            Some(&admin),
            "{ wallet { budgetUsage { budget { name } used resetsAt } } }",
            json!({}),
        )
        .await;
    usage.data()["wallet"]["budgetUsage"][0]["resetsAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The days the clocks change, through the API: Los Angeles's fall-back
/// day (2026-11-01) lasts 25 hours and ends at 08:00 UTC; its
/// spring-forward day (2026-03-08) lasts 23 and ends at 07:00 UTC.
async fn days_of_25_and_23_hours_reset_at_local_midnight(app: TestApp) {
    assert_eq!(
        day_resets_at(&app, "ws-fall", "2026-11-01T12:00:00Z").await,
        utc("2026-11-02T08:00:00Z"),
        "the fall-back day"
    );
    assert_eq!(
        day_resets_at(&app, "ws-spring", "2026-03-08T12:00:00Z").await,
        utc("2026-03-09T07:00:00Z"),
        "the spring-forward day"
    );
    app.verify_ledger().await;
}

/// A burst that straddles local midnight: the spends before it count in
/// the old day (3 charged, the rest refused), the ones after it in the new
/// day, which starts from 0 whatever the old one used.
async fn a_window_rolls_over_mid_burst(app: TestApp) {
    app.clock.set(utc("2026-03-10T06:59:00Z"));
    app.create_workspace("ws-burst").await;
    let admin = app.token("admin", Some("ws-burst"));
    app.gql(
        Some(&admin),
        "mutation { setTimeZone(input: {timeZone: \"America/Los_Angeles\"}) { workspace { timeZone } } }",
        json!({}),
    )
    .await
    .data();
    app.set_budget(&admin, None, &Budget::hard("daily", "WORKSPACE", 3))
        .await
        .data();
    let service = app.token("service", Some("ws-burst"));
    let burst = |prefix: &'static str| {
        let app = &app;
        let service = service.clone();
        async move {
            let answers = futures_util::future::join_all((0..8).map(|n| {
                let service = service.clone();
                async move {
                    app.spend_for_ok(&service, "TRIAGE", &format!("{prefix}-{n}"), None)
                        .await["outcome"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                }
            }))
            .await;
            answers.iter().filter(|outcome| *outcome == "CHARGED").count()
        }
    };
    assert_eq!(burst("before").await, 3, "the old day's limit");
    app.clock.set(utc("2026-03-10T07:00:00Z"));
    assert_eq!(burst("after").await, 3, "the new day starts from 0");
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM ledger_entry WHERE kind = 'SPEND'")
            .await,
        6
    );
    app.verify_ledger().await;
}

both_backends!(
    days_of_25_and_23_hours_reset_at_local_midnight,
    a_window_rolls_over_mid_burst,
    days_roll_at_local_midnight,
    billing_period_budgets_roll_at_renewal
);
