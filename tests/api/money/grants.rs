//! Top-ups, adjustments and reversals: what each grants or takes back,
//! exactly once, and which grants paid for each transaction.

use super::*;
use crate::both_backends;

async fn top_up_repeats_under_concurrency_grant_once(app: TestApp) {
    app.create_workspace("ws-pay").await;

    let answers = join_all((0..20).map(|_| {
        let app = app.clone();
        async move {
            app.top_up(&app.operator(), Some("ws-pay"), "PACK_500", "stripe_pi_123")
                .await
        }
    }))
    .await;
    let conflict = app
        .top_up(&app.operator(), Some("ws-pay"), "PACK_100", "stripe_pi_123")
        .await;

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
    app.top_up(&app.operator(), Some("ws-keep"), "PACK_100", "pay-keep")
        .await
        .data();
    app.set_plan(&admin, "STARTER", None).await.data();

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
    let unspent = app
        .top_up(&app.operator(), Some("ws-rev"), "PACK_100", "pay-a")
        .await;
    let unspent_id = unspent.data()["purchaseTopUp"]["transaction"]["id"].clone();
    let undone = reverse(&app, &unspent_id).await;
    assert_eq!(undone.data()["reverseTransaction"]["transaction"]["amount"], -100);
    let spent_pack = app
        .top_up(&app.operator(), Some("ws-rev"), "PACK_100", "pay-b")
        .await;
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

async fn each_transaction_shows_which_grants_paid_for_it(app: TestApp) {
    app.set_trial_credits(1).await;
    app.create_workspace("ws-grants").await;
    app.top_up(&app.operator(), Some("ws-grants"), "PACK_100", "pay-g")
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
        app.set_plan(&admin, "PRO", None).await.data();
        let pending = app.set_plan(&admin, "STARTER", None).await;
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
    top_up_repeats_under_concurrency_grant_once,
    purchased_credits_survive_resets_and_trial_expiry_and_are_spent_last,
    reversals_follow_the_rules_and_link_to_what_they_undo,
    adjustments_add_bonus_grants_and_burn_but_never_below_zero,
    each_transaction_shows_which_grants_paid_for_it,
    concurrent_reversals_of_one_transaction_reverse_it_once,
    a_pending_downgrade_is_applied_by_a_writer,
);
