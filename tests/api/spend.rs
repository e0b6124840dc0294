//! Goal: `spendCredit` behaves exactly as the contract says: one credit per
//! action, idempotent per key, burn-down order, typed refusals that change
//! nothing. Method: drive the API and check answers, balances and the
//! ledger rows themselves.

use chrono::Duration;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{TestApp, start_time};

async fn a_new_workspace_starts_on_the_trial_with_300_bonus_credits_for_7_days(app: TestApp) {
    let wallet = app.create_workspace("ws-new").await;

    assert_eq!(wallet["plan"], "PRO_TRIAL");
    assert_eq!(
        wallet["balance"],
        json!({ "total": 300, "allocation": 0, "purchased": 0, "bonus": 300 })
    );
    assert_eq!(wallet["aiPaused"], false);
    assert_eq!(wallet["lastSequence"], 1);
    let trial_end: chrono::DateTime<chrono::Utc> = wallet["trialEndsAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(trial_end, start_time() + Duration::days(7));
    let rows = app.transactions("ws-new").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["kind"], "GRANT");
    assert_eq!(rows[0]["amount"], 300);
    assert_eq!(rows[0]["balanceAfter"], 300);
    assert_eq!(rows[0]["actor"], "operator-user");
}

async fn creating_a_workspace_twice_is_refused_and_grants_nothing(app: TestApp) {
    app.create_workspace("ws-twice").await;

    let again = app
        .gql(
            Some(&app.operator()),
            "mutation { createWorkspace(input: {workspaceId: \"ws-twice\", name: \"x\"}) { wallet { workspaceId } } }",
            json!({}),
        )
        .await;

    assert_eq!(again.code(), "BAD_USER_INPUT");
    assert_eq!(app.balance_total("ws-twice").await, 300);
    assert_eq!(app.transactions("ws-twice").await.len(), 1);
}

async fn a_spend_is_charged_once_and_its_repeat_is_a_duplicate(app: TestApp) {
    app.create_workspace("ws-dup").await;
    let service = app.token("service", Some("ws-dup"));

    let first = app
        .spend(&service, "TRIAGE", "ticket-7-triage", Some("ticket-7"))
        .await;
    let repeat = app
        .spend(&service, "TRIAGE", "ticket-7-triage", Some("ticket-7"))
        .await;

    let first = &first.data()["spendCredit"];
    let repeat = &repeat.data()["spendCredit"];
    assert_eq!(first["outcome"], "CHARGED");
    assert_eq!(first["transaction"]["kind"], "SPEND");
    assert_eq!(first["transaction"]["amount"], -1);
    assert_eq!(first["transaction"]["balanceAfter"], 299);
    assert_eq!(first["transaction"]["action"], "TRIAGE");
    assert_eq!(first["transaction"]["reference"], "ticket-7");
    assert_eq!(first["transaction"]["actor"], "service-user");
    assert_eq!(first["balance"]["total"], 299);
    assert_eq!(repeat["outcome"], "DUPLICATE");
    assert_eq!(repeat["transaction"], first["transaction"]);
    assert_eq!(repeat["balance"]["total"], 299);
    let spends: Vec<_> = app
        .transactions("ws-dup")
        .await
        .into_iter()
        .filter(|row| row["kind"] == "SPEND")
        .collect();
    assert_eq!(spends.len(), 1);
}

async fn reusing_a_key_for_another_request_is_a_conflict_and_writes_nothing(app: TestApp) {
    app.create_workspace("ws-conflict").await;
    let service = app.token("service", Some("ws-conflict"));
    app.spend_ok(&service, "TRIAGE", "key-1").await;

    let other_action = app.spend(&service, "AUTO_RESOLVE", "key-1", None).await;
    let other_reference = app.spend(&service, "TRIAGE", "key-1", Some("ticket-9")).await;

    assert_eq!(other_action.code(), "IDEMPOTENCY_CONFLICT");
    assert_eq!(other_reference.code(), "IDEMPOTENCY_CONFLICT");
    assert_eq!(app.balance_total("ws-conflict").await, 299);
    assert_eq!(app.transactions("ws-conflict").await.len(), 2);
}

async fn keys_are_scoped_to_their_workspace(app: TestApp) {
    app.create_workspace("ws-a").await;
    app.create_workspace("ws-b").await;

    let a = app
        .spend_ok(&app.token("service", Some("ws-a")), "TRIAGE", "shared-key")
        .await;
    let b = app
        .spend_ok(&app.token("service", Some("ws-b")), "SIDEKICK", "shared-key")
        .await;

    assert_eq!(a["outcome"], "CHARGED");
    assert_eq!(b["outcome"], "CHARGED");
    assert_eq!(app.balance_total("ws-a").await, 299);
    assert_eq!(app.balance_total("ws-b").await, 299);
}

async fn an_empty_wallet_refuses_with_a_typed_answer_and_the_key_stays_free(app: TestApp) {
    app.set_trial_credits(1).await;
    app.create_workspace("ws-empty").await;
    let service = app.token("service", Some("ws-empty"));
    app.spend_ok(&service, "TRIAGE", "k1").await;
    let rows_before = app.transactions("ws-empty").await;

    let refused = app.spend(&service, "AUTO_RESOLVE", "k2", Some("ticket-2")).await;

    let refused = &refused.data()["spendCredit"];
    assert_eq!(refused["outcome"], "INSUFFICIENT_CREDITS");
    assert_eq!(refused["transaction"], json!(null));
    assert_eq!(refused["balance"]["total"], 0);
    assert_eq!(refused["aiPaused"], true);
    assert_eq!(refused["nextResetAt"], json!(null), "a trial has no reset");
    assert_eq!(refused["suggestedTopUp"]["code"], "PACK_100");
    assert_eq!(
        app.transactions("ws-empty").await,
        rows_before,
        "a refusal writes nothing"
    );
    let wallet = app.wallet(&service, None).await;
    assert_eq!(wallet.data()["wallet"]["aiPaused"], true);

    // Only a charge binds a key: after a top-up the same key charges.
    app.top_up(&app.operator(), Some("ws-empty"), "PACK_100", "pay-1")
        .await
        .data();
    let retried = app.spend(&service, "AUTO_RESOLVE", "k2", Some("ticket-2")).await;
    assert_eq!(retried.data()["spendCredit"]["outcome"], "CHARGED");
    assert_eq!(app.balance_total("ws-empty").await, 99);
}

async fn spends_burn_trial_then_allocation_then_purchased_credits(app: TestApp) {
    app.set_trial_credits(3).await;
    app.execute_sql("UPDATE plan SET monthly_credits = 5 WHERE code = 'PRO'")
        .await;
    app.create_workspace("ws-burn").await;
    let admin = app.token("admin", Some("ws-burn"));
    let service = app.token("service", Some("ws-burn"));
    app.top_up(&app.operator(), Some("ws-burn"), "PACK_100", "pay-burn")
        .await
        .data();
    app.set_plan(&admin, "PRO", None).await.data();
    let wallet = app.wallet(&admin, None).await;
    assert_eq!(
        wallet.data()["wallet"]["balance"],
        json!({ "total": 108, "allocation": 5, "purchased": 100, "bonus": 3 })
    );

    // The trial ends in 7 days, the period in a month: trial credits first.
    for key in ["b1", "b2", "b3"] {
        app.spend_ok(&service, "TRIAGE", key).await;
    }
    let after_trial = app.wallet(&admin, None).await;
    assert_eq!(
        after_trial.data()["wallet"]["balance"],
        json!({ "total": 105, "allocation": 5, "purchased": 100, "bonus": 0 })
    );
    // Then the allocation, then the never-expiring purchase.
    for key in ["b4", "b5", "b6", "b7", "b8", "b9"] {
        app.spend_ok(&service, "TRIAGE", key).await;
    }
    let wallet = app.wallet(&admin, None).await;
    assert_eq!(
        wallet.data()["wallet"]["balance"],
        json!({ "total": 99, "allocation": 0, "purchased": 99, "bonus": 0 })
    );
}

async fn trial_credits_expire_when_the_trial_ends(app: TestApp) {
    app.create_workspace("ws-trial").await;
    let agent = app.token("agent", Some("ws-trial"));
    app.spend_ok(&agent, "SIDEKICK", "s1").await;

    app.clock.advance(Duration::days(7));
    let wallet = app.wallet(&agent, None).await;

    assert_eq!(wallet.data()["wallet"]["balance"]["total"], 0);
    assert_eq!(wallet.data()["wallet"]["aiPaused"], true);
    let rows = app.transactions("ws-trial").await;
    assert_eq!(rows[0]["kind"], "EXPIRE");
    assert_eq!(rows[0]["amount"], -299);
    assert_eq!(rows[0]["balanceAfter"], 0);
    assert_eq!(rows[0]["actor"], "system");
    let refused = app.spend_ok(&agent, "SIDEKICK", "s2").await;
    assert_eq!(refused["outcome"], "INSUFFICIENT_CREDITS");
}

async fn reading_is_free_and_never_touches_the_wallet(app: TestApp) {
    app.create_workspace("ws-free").await;
    let agent = app.token("agent", Some("ws-free"));

    for _ in 0..3 {
        app.wallet(&agent, None).await.data();
        app.transactions("ws-free").await;
    }

    let wallet = app.wallet(&agent, None).await;
    assert_eq!(wallet.data()["wallet"]["lastSequence"], 1);
    assert_eq!(wallet.data()["wallet"]["balance"]["total"], 300);
}

both_backends!(
    a_new_workspace_starts_on_the_trial_with_300_bonus_credits_for_7_days,
    creating_a_workspace_twice_is_refused_and_grants_nothing,
    a_spend_is_charged_once_and_its_repeat_is_a_duplicate,
    reusing_a_key_for_another_request_is_a_conflict_and_writes_nothing,
    keys_are_scoped_to_their_workspace,
    an_empty_wallet_refuses_with_a_typed_answer_and_the_key_stays_free,
    spends_burn_trial_then_allocation_then_purchased_credits,
    trial_credits_expire_when_the_trial_ends,
    reading_is_free_and_never_touches_the_wallet,
);
