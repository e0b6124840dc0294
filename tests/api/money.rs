//! Goal: the rest of the money surface is exact: top-ups are idempotent
//! under concurrency and never expire, adjustments and reversals follow
//! their rules and link to what they undo, usage is net of reversals, the
//! low-balance alert fires once per crossing, and exports match the ledger.
//! Method: drive the API, compare with hand-computed expectations and the
//! ledger rows themselves.

use chrono::{Duration, TimeZone, Utc};
use futures_util::future::join_all;
use protodesk_credits::auth::Claims;
use protodesk_credits::events::EventKind;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::client::rows;
use crate::helpers::{TestApp, mint, start_time};

const ADJUST: &str = "mutation($ws: ID!, $credits: Int!, $reason: String!, $expires: DateTime) {
  adjustCredits(input: {workspaceId: $ws, credits: $credits, reason: $reason, expiresAt: $expires}) {
    transaction { id kind amount balanceAfter reference grants { source credits expiresAt } }
    balance { total allocation purchased bonus } } }";
const REVERSE: &str = "mutation($id: ID!, $reason: String!) {
  reverseTransaction(input: {transactionId: $id, reason: $reason}) {
    transaction { id kind amount action reversesTransactionId grants { grantId source credits expiresAt } }
    balance { total allocation purchased bonus } } }";

async fn reverse(app: &TestApp, id: &Value) -> crate::helpers::client::Answer {
    app.gql(
        Some(&app.operator()),
        REVERSE,
        json!({ "id": id, "reason": "support ticket 42" }),
    )
    .await
}

async fn top_up_repeats_under_concurrency_grant_once(app: TestApp) {
    app.create_workspace("ws-pay").await;
    let admin = app.token("admin", Some("ws-pay"));

    let answers = join_all((0..20).map(|_| {
        let app = app.clone();
        let admin = admin.clone();
        async move { app.top_up(&admin, None, "PACK_500", "stripe_pi_123").await }
    }))
    .await;
    let conflict = app.top_up(&admin, None, "PACK_100", "stripe_pi_123").await;

    let outcomes: Vec<_> = answers
        .iter()
        .map(|a| a.data()["purchaseTopUp"]["outcome"].clone())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "APPLIED").count(), 1);
    assert_eq!(outcomes.iter().filter(|o| **o == "DUPLICATE").count(), 19);
    assert_eq!(conflict.code(), "IDEMPOTENCY_CONFLICT");
    assert_eq!(
        app.ledger_rows("ws-pay").await,
        rows(&[("GRANT", 300), ("TOP_UP", 500)])
    );
    let price = app
        .query_i64("SELECT price_cents FROM credit_grant WHERE source = 'PURCHASE'")
        .await;
    assert_eq!(price, 2000, "the pack's price is recorded in cents");
}

async fn purchased_credits_survive_resets_and_trial_expiry_and_are_spent_last(app: TestApp) {
    app.create_workspace("ws-keep").await;
    let admin = app.token("admin", Some("ws-keep"));
    let service = app.token("service", Some("ws-keep"));
    app.top_up(&admin, None, "PACK_100", "pay-keep").await.data();
    app.change_plan(&admin, None, "STARTER", None).await.data();

    let after_trial = start_time() + Duration::days(8);
    app.clock.set(after_trial);
    app.ledger.roll_over_periods(after_trial).await.unwrap();
    let period_two = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    app.clock.set(period_two);
    app.ledger.roll_over_periods(period_two).await.unwrap();
    let spent = app.spend_ok(&service, "TRIAGE", "after-reset").await;

    assert_eq!(
        spent["balance"],
        json!({ "total": 349, "allocation": 249, "purchased": 100, "bonus": 0 })
    );
    assert_eq!(
        app.ledger_rows("ws-keep").await,
        rows(&[
            ("GRANT", 300),
            ("TOP_UP", 100),
            ("GRANT", 250),
            ("EXPIRE", -300),
            ("EXPIRE", -250),
            ("GRANT", 250),
            ("SPEND", -1),
        ])
    );
}

async fn reversals_follow_the_rules_and_link_to_what_they_undo(app: TestApp) {
    app.create_workspace("ws-rev").await;
    let admin = app.token("admin", Some("ws-rev"));
    let service = app.token("service", Some("ws-rev"));
    let live = app.spend_ok(&service, "TRIAGE", "live").await;
    let expiring = app.spend_ok(&service, "SIDEKICK", "expiring").await;

    // A spend whose grant is live: the credit goes back to that grant.
    let back = reverse(&app, &live["transaction"]["id"]).await;
    let back = &back.data()["reverseTransaction"];
    assert_eq!(back["transaction"]["kind"], "REVERSAL");
    assert_eq!(back["transaction"]["amount"], 1);
    assert_eq!(back["transaction"]["action"], "TRIAGE");
    assert_eq!(
        back["transaction"]["reversesTransactionId"],
        live["transaction"]["id"]
    );
    assert_eq!(back["transaction"]["grants"][0]["source"], "TRIAL");
    assert_eq!(back["balance"]["bonus"], 299);
    // Twice is refused, and writes nothing.
    assert_eq!(
        reverse(&app, &live["transaction"]["id"]).await.code(),
        "BAD_USER_INPUT"
    );

    // A spend whose grant has expired: to a new never-expiring grant.
    app.clock.advance(Duration::days(8));
    let late = reverse(&app, &expiring["transaction"]["id"]).await;
    let late = &late.data()["reverseTransaction"];
    assert_eq!(late["transaction"]["grants"][0]["source"], "ADJUSTMENT");
    assert_eq!(late["transaction"]["grants"][0]["expiresAt"], json!(null));
    assert_eq!(
        late["balance"],
        json!({ "total": 1, "allocation": 0, "purchased": 0, "bonus": 1 })
    );

    // Top-ups: unspent is reversible; partly spent is refused.
    let unspent = app.top_up(&admin, None, "PACK_100", "pay-a").await;
    let unspent_id = unspent.data()["purchaseTopUp"]["transaction"]["id"].clone();
    let undone = reverse(&app, &unspent_id).await;
    assert_eq!(undone.data()["reverseTransaction"]["transaction"]["amount"], -100);
    let spent_pack = app.top_up(&admin, None, "PACK_100", "pay-b").await;
    let spent_pack_id = spent_pack.data()["purchaseTopUp"]["transaction"]["id"].clone();
    app.spend_ok(&service, "TRIAGE", "s1").await;
    app.spend_ok(&service, "TRIAGE", "s2").await;
    assert_eq!(reverse(&app, &spent_pack_id).await.code(), "BAD_USER_INPUT");
    // Other kinds are not reversible; unknown ids are NOT_FOUND.
    let grant_id = app.transactions("ws-rev").await.last().unwrap()["id"].clone();
    assert_eq!(reverse(&app, &grant_id).await.code(), "BAD_USER_INPUT");
    assert_eq!(reverse(&app, &json!("999999")).await.code(), "NOT_FOUND");
    assert_eq!(reverse(&app, &json!("abc")).await.code(), "BAD_USER_INPUT");
    // Only operators reverse.
    let forbidden = app
        .gql(
            Some(&admin),
            REVERSE,
            json!({ "id": spent_pack_id, "reason": "x" }),
        )
        .await;
    assert_eq!(forbidden.code(), "FORBIDDEN");
    assert_eq!(app.balance_total("ws-rev").await, 99);
}

async fn adjustments_add_bonus_grants_and_burn_but_never_below_zero(app: TestApp) {
    app.set_trial_credits(10).await;
    app.create_workspace("ws-adj").await;
    let operator = app.operator();
    let expires = (start_time() + Duration::days(30)).to_rfc3339();

    let added = app
        .gql(
            Some(&operator),
            ADJUST,
            json!({ "ws": "ws-adj", "credits": 50, "reason": "goodwill", "expires": expires }),
        )
        .await;
    let burned = app
        .gql(
            Some(&operator),
            ADJUST,
            json!({ "ws": "ws-adj", "credits": -20, "reason": "duplicate grant" }),
        )
        .await;
    let too_much = app
        .gql(
            Some(&operator),
            ADJUST,
            json!({ "ws": "ws-adj", "credits": -41, "reason": "x" }),
        )
        .await;
    let zero = app
        .gql(
            Some(&operator),
            ADJUST,
            json!({ "ws": "ws-adj", "credits": 0, "reason": "x" }),
        )
        .await;
    let no_reason = app
        .gql(
            Some(&operator),
            ADJUST,
            json!({ "ws": "ws-adj", "credits": 5, "reason": " " }),
        )
        .await;
    let admin = app
        .gql(
            Some(&app.token("admin", Some("ws-adj"))),
            ADJUST,
            json!({ "ws": "ws-adj", "credits": 5, "reason": "x" }),
        )
        .await;

    let added = &added.data()["adjustCredits"];
    assert_eq!(added["transaction"]["kind"], "ADJUSTMENT");
    assert_eq!(added["transaction"]["reference"], "goodwill");
    assert_eq!(added["transaction"]["grants"][0]["source"], "ADJUSTMENT");
    assert_eq!(added["balance"]["bonus"], 60);
    // The burn takes the soonest-expiring credits: the trial (7 days) first.
    let burned = &burned.data()["adjustCredits"];
    assert_eq!(burned["transaction"]["amount"], -20);
    assert_eq!(burned["balance"]["total"], 40);
    assert_eq!(burned["transaction"]["grants"].as_array().unwrap().len(), 2);
    assert_eq!(too_much.code(), "BAD_USER_INPUT");
    assert_eq!(zero.code(), "BAD_USER_INPUT");
    assert_eq!(no_reason.code(), "BAD_USER_INPUT");
    assert_eq!(admin.code(), "FORBIDDEN");
    assert_eq!(
        app.ledger_rows("ws-adj").await,
        rows(&[("GRANT", 10), ("ADJUSTMENT", 50), ("ADJUSTMENT", -20)])
    );
}

async fn usage_buckets_match_a_hand_computed_table_across_a_month_boundary(app: TestApp) {
    app.create_workspace("ws-usage").await;
    let service = app.token("service", Some("ws-usage"));
    // The clock starts at Jan 31 10:00 UTC.
    let plan = [
        (12, "TRIAGE"),            // Jan 31 22:00
        (13, "TRIAGE"),            // Jan 31 23:00
        (14, "SIDEKICK"),          // Feb 1 00:00
        (15, "AUTO_RESOLVE"),      // Feb 1 01:00 (reversed below)
        (23, "TRIAGE"),            // Feb 1 09:00
        (24 * 2 + 14, "SIDEKICK"), // Feb 3 00:00 (next ISO week, still in the trial)
    ];
    let mut ids = Vec::new();
    for (index, (hours, action)) in plan.iter().enumerate() {
        app.clock.set(start_time() + Duration::hours(*hours));
        ids.push(app.spend_ok(&service, action, &format!("u{index}")).await["transaction"]["id"].clone());
    }
    reverse(&app, &ids[3]).await.data();
    let query = "query($from: DateTime!, $to: DateTime!, $bucket: UsageBucketSize!) { wallet {
        usage(from: $from, to: $to, bucket: $bucket) { start total byAction { action credits } } } }";
    let usage = |from: chrono::DateTime<Utc>, to: chrono::DateTime<Utc>, bucket: &str| {
        let app = app.clone();
        let service = service.clone();
        let bucket = bucket.to_owned();
        async move {
            app.gql(
                Some(&service),
                query,
                json!({ "from": from.to_rfc3339(), "to": to.to_rfc3339(), "bucket": bucket }),
            )
            .await
            .data()["wallet"]["usage"]
                .clone()
        }
    };
    let day = |d: u32, m: u32| Utc.with_ymd_and_hms(2026, m, d, 0, 0, 0).unwrap();

    let days = usage(day(31, 1), day(2, 2), "DAY").await;
    let weeks = usage(day(26, 1), day(9, 2), "WEEK").await;
    let months = usage(day(1, 1), day(1, 3), "MONTH").await;

    let table = |buckets: &Value| -> Vec<(String, i64, Vec<i64>)> {
        buckets
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let per_action = b["byAction"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["credits"].as_i64().unwrap())
                    .collect();
                (
                    b["start"].as_str().unwrap()[..10].to_owned(),
                    b["total"].as_i64().unwrap(),
                    per_action,
                )
            })
            .collect()
    };
    // byAction order: TRIAGE, AUTO_RESOLVE, SIDEKICK.
    assert_eq!(
        table(&days),
        vec![
            ("2026-01-31".into(), 2, vec![2, 0, 0]),
            ("2026-02-01".into(), 2, vec![1, 0, 1])
        ]
    );
    assert_eq!(
        table(&weeks),
        vec![
            ("2026-01-26".into(), 4, vec![3, 0, 1]),
            ("2026-02-02".into(), 1, vec![0, 0, 1])
        ]
    );
    assert_eq!(
        table(&months),
        vec![
            ("2026-01-01".into(), 2, vec![2, 0, 0]),
            ("2026-02-01".into(), 3, vec![1, 0, 2])
        ]
    );
    let too_wide = app
        .gql(
            Some(&service),
            query,
            json!({ "from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "bucket": "DAY" }),
        )
        .await;
    assert_eq!(too_wide.code(), "BAD_USER_INPUT");
}

async fn the_low_balance_alert_fires_once_per_crossing(app: TestApp) {
    app.set_trial_credits(8).await;
    app.create_workspace("ws-low").await;
    let admin = app.token("admin", Some("ws-low"));
    let service = app.token("service", Some("ws-low"));
    let mut events = app.ledger.events().subscribe("ws-low");
    let set = "mutation($t: Int) { setLowBalanceThreshold(input: {threshold: $t}) { wallet { lowBalanceThreshold lowBalanceAlertedAt } } }";
    let set_answer = app.gql(Some(&admin), set, json!({ "t": 5 })).await;
    assert_eq!(
        set_answer.data()["setLowBalanceThreshold"]["wallet"]["lowBalanceThreshold"],
        5
    );

    for key in ["a", "b", "c"] {
        app.spend_ok(&service, "TRIAGE", key).await; // 7, 6, 5: at the threshold, no alert
    }
    let at_threshold = app.wallet(&admin, None).await;
    app.spend_ok(&service, "TRIAGE", "d").await; // 4: crosses, one alert
    app.spend_ok(&service, "TRIAGE", "e").await; // 3: still below, no new alert
    app.top_up(&admin, None, "PACK_100", "pay-low").await.data(); // 103: re-armed
    app.gql(
        Some(&app.operator()),
        ADJUST,
        json!({ "ws": "ws-low", "credits": -100, "reason": "test" }),
    )
    .await
    .data(); // 3: crosses again

    assert_eq!(at_threshold.body["data"]["wallet"]["balance"]["total"], 5);
    let alerts = app
        .gql(
            Some(&admin),
            "{ wallet { lowBalanceAlertedAt lowBalanceAlerts { threshold balance sequence } } }",
            json!({}),
        )
        .await;
    let wallet = &alerts.data()["wallet"];
    assert_eq!(
        wallet["lowBalanceAlerts"],
        json!([{ "threshold": 5, "balance": 3, "sequence": 8 }, { "threshold": 5, "balance": 4, "sequence": 5 }])
    );
    assert!(wallet["lowBalanceAlertedAt"].is_string());
    let mut low_balance_events = 0;
    while let Ok(event) = events.try_recv() {
        if event.kind == EventKind::LowBalance {
            low_balance_events += 1;
        }
    }
    assert_eq!(
        low_balance_events, 2,
        "one event per crossing on the balance stream"
    );
    let off = app.gql(Some(&admin), set, json!({ "t": 0 })).await;
    assert_eq!(off.code(), "BAD_USER_INPUT");
    let agent = app
        .gql(Some(&app.token("agent", Some("ws-low"))), set, json!({ "t": 9 }))
        .await;
    assert_eq!(agent.code(), "FORBIDDEN");
}

async fn a_period_exports_as_csv_authorized_like_the_query(app: TestApp) {
    app.create_workspace("ws-csv").await;
    app.create_workspace("ws-other").await;
    let service = app.token("service", Some("ws-csv"));
    app.spend(&service, "TRIAGE", "k,1", Some("ticket \"7\""))
        .await
        .data();
    app.clock.advance(Duration::hours(1));
    app.spend_ok(&service, "SIDEKICK", "k2").await;
    let url = format!("{}/export/transactions.csv", app.address);
    let range = [("from", "2026-01-01T00:00:00Z"), ("to", "2026-02-01T00:00:00Z")];

    let own = app
        .http
        .get(&url)
        .query(&range)
        .bearer_auth(&service)
        .send()
        .await
        .unwrap();
    let other = app
        .http
        .get(&url)
        .query(&[range[0], range[1], ("workspaceId", "ws-other")])
        .bearer_auth(&service)
        .send()
        .await
        .unwrap();
    let anonymous = app.http.get(&url).query(&range).send().await.unwrap();
    let operator = app
        .http
        .get(&url)
        .query(&[range[0], range[1], ("workspaceId", "ws-csv")])
        .bearer_auth(app.operator())
        .send()
        .await
        .unwrap();
    let bad_range = app
        .http
        .get(&url)
        .query(&[("from", "yesterday")])
        .bearer_auth(&service)
        .send()
        .await
        .unwrap();

    assert_eq!(own.status(), 200);
    assert_eq!(own.headers()["content-type"], "text/csv; charset=utf-8");
    let body = own.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 3);
    assert_eq!(&records[0][3], "GRANT");
    assert_eq!(&records[1][3], "SPEND");
    assert_eq!(&records[1][7], "ticket \"7\"");
    assert_eq!(&records[1][9], "k,1");
    assert_eq!(&records[2][6], "SIDEKICK");
    assert_eq!(other.status(), 404);
    assert_eq!(anonymous.status(), 401);
    assert_eq!(operator.status(), 200);
    assert_eq!(bad_range.status(), 400);
}

async fn each_transaction_shows_which_grants_paid_for_it(app: TestApp) {
    app.set_trial_credits(1).await;
    app.create_workspace("ws-grants").await;
    app.top_up(&app.token("admin", Some("ws-grants")), None, "PACK_100", "pay-g")
        .await
        .data();
    let service = app.token("service", Some("ws-grants"));
    app.spend_ok(&service, "TRIAGE", "g1").await;
    app.spend_ok(&service, "TRIAGE", "g2").await;

    let page = app
        .gql(
            Some(&service),
            "{ wallet { transactions(first: 2) { nodes { amount grants { source credits } } } } }",
            json!({}),
        )
        .await;

    assert_eq!(
        page.data()["wallet"]["transactions"]["nodes"],
        json!([
            { "amount": -1, "grants": [{ "source": "PURCHASE", "credits": -1 }] },
            { "amount": -1, "grants": [{ "source": "TRIAL", "credits": -1 }] },
        ])
    );
}

/// Formulas from a reference, a key and a token's subject reach the CSV
/// as text, never as live cells.
async fn exported_formulas_are_neutralised(app: TestApp) {
    app.create_workspace("ws-formula").await;
    let service = mint(Claims {
        sub: "=cmd|' /C calc'!A0".into(),
        workspace_id: Some("ws-formula".into()),
        role: "service".into(),
        exp: chrono::Utc::now().timestamp() + 600,
        iss: None,
        aud: None,
    });
    app.spend(
        &service,
        "TRIAGE",
        "+SUM(1,2)",
        Some("=HYPERLINK(\"http://evil\",\"x\")"),
    )
    .await
    .data();
    let body = app
        .http
        .get(format!("{}/export/transactions.csv", app.address))
        .query(&[("from", "2026-01-01T00:00:00Z"), ("to", "2026-02-01T00:00:00Z")])
        .bearer_auth(&service)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let spend = reader
        .deserialize::<std::collections::HashMap<String, String>>()
        .map(Result::unwrap)
        .find(|row| row["kind"] == "SPEND")
        .expect("the spend is exported");
    assert_eq!(spend["reference"], "'=HYPERLINK(\"http://evil\",\"x\")");
    assert_eq!(spend["idempotency_key"], "'+SUM(1,2)");
    assert_eq!(spend["actor"], "'=cmd|' /C calc'!A0");
    assert_eq!(spend["amount"], "-1", "numbers are left as numbers");
}

/// A threshold set above the current balance alerts at once (the wallet
/// is already below it); setting the same one again does not, a new one
/// (a new promise to the admin) does.
async fn a_threshold_above_the_balance_alerts_at_once(app: TestApp) {
    app.create_workspace("ws-above").await;
    let admin = app.token("admin", Some("ws-above"));
    let mut events = app.ledger.events().subscribe("ws-above");
    let set = "mutation($t: Int) { setLowBalanceThreshold(input: {threshold: $t}) { wallet { lowBalanceAlerts { threshold balance sequence } } } }";

    let first = app.gql(Some(&admin), set, json!({ "t": 500 })).await;
    let same = app.gql(Some(&admin), set, json!({ "t": 500 })).await;
    let lower = app.gql(Some(&admin), set, json!({ "t": 400 })).await;

    let one = json!([{ "threshold": 500, "balance": 300, "sequence": 1 }]);
    assert_eq!(
        first.data()["setLowBalanceThreshold"]["wallet"]["lowBalanceAlerts"],
        one
    );
    assert_eq!(
        same.data()["setLowBalanceThreshold"]["wallet"]["lowBalanceAlerts"],
        one
    );
    assert_eq!(
        lower.data()["setLowBalanceThreshold"]["wallet"]["lowBalanceAlerts"],
        json!([
            { "threshold": 400, "balance": 300, "sequence": 1 },
            { "threshold": 500, "balance": 300, "sequence": 1 }
        ])
    );
    let alerts = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|event| event.kind == EventKind::LowBalance)
        .count();
    assert_eq!(alerts, 2);
}

/// The renewal sweep alerts when an expiry takes the balance below the
/// threshold: trial credits expire, a purchased pack is left.
async fn the_sweep_alerts_when_an_expiry_crosses_the_threshold(app: TestApp) {
    app.create_workspace("ws-sweep-low").await;
    let admin = app.token("admin", Some("ws-sweep-low"));
    app.top_up(&app.operator(), Some("ws-sweep-low"), "PACK_100", "pay-sweep")
        .await
        .data();
    app.gql(
        Some(&admin),
        "mutation { setLowBalanceThreshold(input: {threshold: 200}) { __typename } }",
        json!({}),
    )
    .await
    .data();

    app.clock.advance(Duration::days(8));
    app.ledger.roll_over_periods(app.clock_now()).await.unwrap();

    let wallet = app
        .gql(
            Some(&admin),
            "{ wallet { balance { total } lastSequence lowBalanceAlerts { threshold balance sequence } } }",
            json!({}),
        )
        .await;
    let wallet = &wallet.data()["wallet"];
    assert_eq!(wallet["balance"]["total"], 100);
    // The EXPIRE row (sequence 3, after the GRANT and the TOP_UP) crossed.
    assert_eq!(wallet["lastSequence"], 3);
    assert_eq!(
        wallet["lowBalanceAlerts"],
        json!([{ "threshold": 200, "balance": 100, "sequence": 3 }])
    );
}

/// Ten reversals of one spend at once: one succeeds, nine are refused,
/// one REVERSAL row, the credit back once.
async fn concurrent_reversals_of_one_transaction_reverse_it_once(app: TestApp) {
    app.create_workspace("ws-rev-race").await;
    let service = app.token("service", Some("ws-rev-race"));
    let spent = app.spend_ok(&service, "TRIAGE", "to-reverse").await;
    let id = spent["transaction"]["id"].as_str().unwrap().to_owned();
    let operator = app.operator();

    let answers = join_all((0..10).map(|n| {
        let (app, operator, id) = (app.clone(), operator.clone(), id.clone());
        async move {
            app.gql(
                Some(&operator),
                REVERSE,
                json!({ "id": id, "reason": format!("race {n}") }),
            )
            .await
        }
    }))
    .await;

    let succeeded = answers
        .iter()
        .filter(|answer| answer.body.get("errors").is_none())
        .count();
    assert_eq!(succeeded, 1, "{answers:?}");
    for answer in answers
        .iter()
        .filter(|answer| answer.body.get("errors").is_some())
    {
        assert_eq!(answer.code(), "BAD_USER_INPUT", "{}", answer.body);
    }
    let rows = app.ledger_rows("ws-rev-race").await;
    assert_eq!(rows.iter().filter(|(kind, _)| kind == "REVERSAL").count(), 1);
    assert_eq!(app.balance_total("ws-rev-race").await, 300);
}

/// A downgrade waits for the period's end; past it, the first writer (a
/// batched spend on one wallet, a single-write top-up on another) settles
/// the wallet itself, on the new plan, before the sweep has run.
async fn a_pending_downgrade_is_applied_by_a_writer(app: TestApp) {
    app.set_trial_credits(0).await;
    for workspace in ["ws-down-spend", "ws-down-top-up", "ws-down-idle"] {
        app.create_workspace(workspace).await;
        let admin = app.token("admin", Some(workspace));
        app.change_plan(&admin, None, "PRO", None).await.data();
        let pending = app.change_plan(&admin, None, "STARTER", None).await;
        assert_eq!(pending.data()["changePlan"]["wallet"]["plan"], "PRO");
        assert_eq!(pending.data()["changePlan"]["wallet"]["pendingPlan"], "STARTER");
    }
    app.clock.advance(Duration::days(32));

    let service = app.token("service", Some("ws-down-spend"));
    let spent = app.spend_ok(&service, "TRIAGE", "after-reset").await;
    app.top_up(&app.operator(), Some("ws-down-top-up"), "PACK_100", "pay-down")
        .await
        .data();

    assert_eq!(spent["outcome"], "CHARGED");
    assert_eq!(spent["balance"]["allocation"], 249);
    // A wallet nobody wrote to: settling it reports a change once.
    let now = app.clock_now();
    assert!(app.ledger.settle_workspace("ws-down-idle", now).await.unwrap());
    assert!(!app.ledger.settle_workspace("ws-down-idle", now).await.unwrap());
    // Three renewals, by two writers and a direct settle, none by the sweep.
    assert_eq!(app.metric("credits_renewals_total").await, 3.0);
    for (workspace, expected) in [
        (
            "ws-down-idle",
            rows(&[("GRANT", 1000), ("EXPIRE", -1000), ("GRANT", 250)]),
        ),
        (
            "ws-down-spend",
            rows(&[("GRANT", 1000), ("EXPIRE", -1000), ("GRANT", 250), ("SPEND", -1)]),
        ),
        (
            "ws-down-top-up",
            rows(&[
                ("GRANT", 1000),
                ("EXPIRE", -1000),
                ("GRANT", 250),
                ("TOP_UP", 100),
            ]),
        ),
    ] {
        let admin = app.token("admin", Some(workspace));
        let wallet = app.wallet(&admin, None).await;
        assert_eq!(wallet.data()["wallet"]["plan"], "STARTER", "{workspace}");
        assert_eq!(wallet.data()["wallet"]["pendingPlan"], json!(null), "{workspace}");
        assert_eq!(app.ledger_rows(workspace).await, expected, "{workspace}");
    }
}

both_backends!(
    a_threshold_above_the_balance_alerts_at_once,
    the_sweep_alerts_when_an_expiry_crosses_the_threshold,
    concurrent_reversals_of_one_transaction_reverse_it_once,
    a_pending_downgrade_is_applied_by_a_writer,
    exported_formulas_are_neutralised,
    top_up_repeats_under_concurrency_grant_once,
    purchased_credits_survive_resets_and_trial_expiry_and_are_spent_last,
    reversals_follow_the_rules_and_link_to_what_they_undo,
    adjustments_add_bonus_grants_and_burn_but_never_below_zero,
    usage_buckets_match_a_hand_computed_table_across_a_month_boundary,
    the_low_balance_alert_fires_once_per_crossing,
    a_period_exports_as_csv_authorized_like_the_query,
    each_transaction_shows_which_grants_paid_for_it,
);
