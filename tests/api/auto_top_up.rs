//! Automatic top-up: concurrent spends below the threshold open one
//! request; at most `maxPerPeriod` a billing period; credits only with a
//! confirmed payment (Stripe, or `purchaseTopUp` naming the request); three
//! failed payments in a row switch it off (`docs/design/auto-top-up.md`).

use chrono::TimeZone;
use futures_util::future::join_all;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::TestApp;
use crate::payments::{acknowledged, deliver};

const AUTO: &str = "{ wallet { balance { total } autoTopUp { enabled threshold pack maxPerPeriod requestsThisPeriod openRequestId consecutiveFailures } } }";

async fn auto(app: &TestApp, token: &str) -> Value {
    app.gql(Some(token), AUTO, json!({})).await.data()["wallet"].clone()
}

async fn set(
    app: &TestApp,
    token: &str,
    enabled: bool,
    threshold: i64,
    max: i64,
) -> crate::helpers::client::Answer {
    app.gql(
        Some(token),
        "mutation($on: Boolean!, $t: Int!, $max: Int!) {
           setAutoTopUp(input: {enabled: $on, threshold: $t, pack: PACK_100, maxPerPeriod: $max}) {
             autoTopUp { enabled threshold pack maxPerPeriod requestsThisPeriod openRequestId consecutiveFailures }
           }
         }",
        json!({ "on": enabled, "t": threshold, "max": max }),
    )
    .await
}

/// The `credits.auto_top_up_requested` events' request ids, oldest first.
async fn requests(app: &TestApp) -> Vec<String> {
    events(app, "credits.auto_top_up_requested")
        .await
        .iter()
        .map(|data| data["requestId"].as_str().unwrap().to_owned())
        .collect()
}

async fn events(app: &TestApp, event_type: &str) -> Vec<Value> {
    let db = app.db();
    db.query_all_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        format!("SELECT data FROM outbox_event WHERE event_type = '{event_type}' ORDER BY id"),
    ))
    .await
    .unwrap()
    .iter()
    .map(|row| serde_json::from_str(&row.try_get::<String>("", "data").unwrap()).unwrap())
    .collect()
}

/// Spends `count` at once, each CHARGED.
async fn spend(app: &TestApp, workspace: &str, prefix: &str, count: usize) {
    let service = app.token("service", Some(workspace));
    let keys: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    let answers = join_all(keys.iter().map(|key| app.spend_ok(&service, "TRIAGE", key))).await;
    assert!(
        answers.iter().all(|answer| answer["outcome"] == "CHARGED"),
        "{answers:?}"
    );
}

/// An automatic top-up's payment intent event from Stripe.
fn payment_intent(event_type: &str, event: &str, workspace: &str, intent: &str, request: &str) -> String {
    let status = if event_type == "payment_intent.succeeded" {
        "succeeded"
    } else {
        "requires_payment_method"
    };
    crate::stripe_events::event(
        event,
        event_type,
        chrono::Utc::now().timestamp(),
        crate::stripe_events::payment_intent(intent, workspace, "PACK_100", request, 500, status),
    )
}

/// PRO at 30 credits a period, PACK_100 at 5 credits: small numbers.
async fn small_pro(app: &TestApp, workspace: &str) -> String {
    app.set_trial_credits(0).await;
    app.execute_sql("UPDATE plan SET monthly_credits = 30 WHERE code = 'PRO'")
        .await;
    app.execute_sql("UPDATE top_up_pack SET credits = 5 WHERE code = 'PACK_100'")
        .await;
    app.create_workspace(workspace).await;
    let admin = app.token("admin", Some(workspace));
    app.set_plan(&admin, "PRO", None).await.data();
    admin
}

async fn concurrent_spends_open_one_request_paid_only_on_confirmation(app: TestApp) {
    let admin = small_pro(&app, "ws-auto").await;
    let set_answer = set(&app, &admin, true, 20, 2).await;
    assert_eq!(
        set_answer.data()["setAutoTopUp"]["autoTopUp"],
        json!({ "enabled": true, "threshold": 20, "pack": "PACK_100", "maxPerPeriod": 2,
                "requestsThisPeriod": 0, "openRequestId": null, "consecutiveFailures": 0 })
    );

    // Twelve spends at once take 30 to 18: one request, no credits yet.
    spend(&app, "ws-auto", "a", 12).await;
    let opened = requests(&app).await;
    assert_eq!(opened.len(), 1, "one request however many spends crossed");
    let wallet = auto(&app, &admin).await;
    assert_eq!(wallet["balance"]["total"], 18);
    assert_eq!(wallet["autoTopUp"]["openRequestId"], opened[0].as_str());
    assert_eq!(wallet["autoTopUp"]["requestsThisPeriod"], 1);
    let data = &events(&app, "credits.auto_top_up_requested").await[0];
    assert_eq!(data["pack"], "PACK_100");
    assert_eq!(data["threshold"], 20);
    spend(&app, "ws-auto", "b", 2).await;
    assert_eq!(requests(&app).await.len(), 1, "one request open at a time");
    assert_eq!(app.balance_total("ws-auto").await, 16);

    // The payment arrives from Stripe: the pack, once, and the request closes.
    let paid = payment_intent(
        "payment_intent.succeeded",
        "evt_a",
        "ws-auto",
        "pi_auto_1",
        &opened[0],
    );
    assert_eq!(acknowledged(deliver(&app, &paid).await), "APPLIED");
    assert_eq!(acknowledged(deliver(&app, &paid).await), "DUPLICATE");
    let wallet = auto(&app, &admin).await;
    assert_eq!(wallet["balance"]["total"], 21);
    assert_eq!(wallet["autoTopUp"]["openRequestId"], Value::Null);

    // Below again: the second request of the period, paid through purchaseTopUp.
    spend(&app, "ws-auto", "c", 2).await;
    let opened = requests(&app).await;
    assert_eq!(opened.len(), 2);
    let bought = app
        .gql(
            Some(&app.operator()),
            "mutation($req: String!) { purchaseTopUp(input: {workspaceId: \"ws-auto\", pack: PACK_100,
               paymentReference: \"pi_auto_2\", autoTopUpRequestId: $req}) { outcome } }",
            json!({ "req": opened[1] }),
        )
        .await;
    assert_eq!(bought.data()["purchaseTopUp"]["outcome"], "APPLIED");
    assert_eq!(
        auto(&app, &admin).await["autoTopUp"]["openRequestId"],
        Value::Null
    );
    assert_eq!(app.balance_total("ws-auto").await, 24);

    // The cap: a third time below the threshold in this period asks nothing.
    spend(&app, "ws-auto", "d", 6).await;
    assert_eq!(app.balance_total("ws-auto").await, 18);
    assert_eq!(requests(&app).await.len(), 2, "at most two a period");
    assert_eq!(auto(&app, &admin).await["autoTopUp"]["requestsThisPeriod"], 2);

    // The next period counts afresh.
    app.clock
        .set(chrono::Utc.with_ymd_and_hms(2026, 2, 28, 10, 0, 0).unwrap());
    app.ledger.roll_over_periods(app.clock_now()).await.unwrap();
    let total = app.balance_total("ws-auto").await;
    assert_eq!(total, 40, "30 allocated and 10 purchased");
    spend(&app, "ws-auto", "e", 21).await;
    assert_eq!(requests(&app).await.len(), 3);
    assert_eq!(auto(&app, &admin).await["autoTopUp"]["requestsThisPeriod"], 1);
    app.verify_ledger().await;
}

async fn three_failed_payments_in_a_row_switch_it_off(app: TestApp) {
    let admin = small_pro(&app, "ws-fail").await;
    set(&app, &admin, true, 29, 10).await.data();
    let operator = app.operator();
    let report = |request: String| {
        let operator = operator.clone();
        let app = &app;
        async move {
            app.gql(
                Some(&operator),
                "mutation($req: String!) { reportAutoTopUpFailed(input: {workspaceId: \"ws-fail\", requestId: $req}) {
                   outcome autoTopUp { enabled consecutiveFailures openRequestId } } }",
                json!({ "req": request }),
            )
            .await
            .data()["reportAutoTopUpFailed"]
                .clone()
        }
    };

    spend(&app, "ws-fail", "a", 2).await;
    let first = requests(&app).await[0].clone();
    let answer = report(first.clone()).await;
    assert_eq!(answer["outcome"], "RECORDED");
    assert_eq!(answer["autoTopUp"]["consecutiveFailures"], 1);
    assert_eq!(
        report(first).await["outcome"],
        "NOT_OPEN",
        "a repeat changes nothing"
    );

    spend(&app, "ws-fail", "b", 1).await;
    let second = requests(&app).await[1].clone();
    assert_eq!(report(second).await["outcome"], "RECORDED");

    spend(&app, "ws-fail", "c", 1).await;
    let third = requests(&app).await[2].clone();
    let failed = payment_intent(
        "payment_intent.payment_failed",
        "evt_f3",
        "ws-fail",
        "pi_fail_3",
        &third,
    );
    assert_eq!(acknowledged(deliver(&app, &failed).await), "DISABLED");
    assert_eq!(acknowledged(deliver(&app, &failed).await), "NOT_OPEN");
    let disabled = events(&app, "credits.auto_top_up_disabled").await;
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0]["consecutiveFailures"], 3);
    assert_eq!(disabled[0]["lastRequestId"], third.as_str());
    let wallet = auto(&app, &admin).await;
    assert_eq!(wallet["autoTopUp"]["enabled"], false);
    assert_eq!(wallet["autoTopUp"]["consecutiveFailures"], 3);

    spend(&app, "ws-fail", "d", 1).await;
    assert_eq!(requests(&app).await.len(), 3, "off: no more requests");
    assert_eq!(
        app.balance_total("ws-fail").await,
        25,
        "no credits without a payment"
    );

    // Switched on again, failures are forgotten and it asks at once.
    let on = set(&app, &admin, true, 29, 10).await;
    assert_eq!(on.data()["setAutoTopUp"]["autoTopUp"]["consecutiveFailures"], 0);
    spend(&app, "ws-fail", "e", 1).await;
    assert_eq!(requests(&app).await.len(), 4);
}

async fn settings_are_for_admins_and_bad_ones_change_nothing(app: TestApp) {
    app.create_workspace("ws-roles").await;
    for role in ["agent", "service"] {
        let refused = set(&app, &app.token(role, Some("ws-roles")), true, 10, 1).await;
        assert_eq!(refused.code(), "FORBIDDEN", "{role}");
    }
    let admin = app.token("admin", Some("ws-roles"));
    for (threshold, max) in [(0, 1), (10, 0), (10, 101), (1_000_001, 1)] {
        assert_eq!(
            set(&app, &admin, true, threshold, max).await.code(),
            "BAD_USER_INPUT"
        );
    }
    assert_eq!(auto(&app, &admin).await["autoTopUp"], Value::Null);
    let reported = app
        .gql(
            Some(&admin),
            "mutation { reportAutoTopUpFailed(input: {requestId: \"atr_1\"}) { outcome } }",
            json!({}),
        )
        .await;
    assert_eq!(
        reported.code(),
        "FORBIDDEN",
        "only the payment system reports failures"
    );
    let bad = app
        .gql(
            Some(&app.operator()),
            "mutation { reportAutoTopUpFailed(input: {workspaceId: \"ws-roles\", requestId: \"pi_1\"}) { outcome } }",
            json!({}),
        )
        .await;
    assert_eq!(bad.code(), "BAD_USER_INPUT");
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM auto_top_up").await, 0);
}

both_backends!(
    concurrent_spends_open_one_request_paid_only_on_confirmation,
    three_failed_payments_in_a_row_switch_it_off,
    settings_are_for_admins_and_bad_ones_change_nothing,
);
