//! A wallet with something to settle (a grant past its expiry, a trial
//! ended, a period ended) settles inside its spend's batch, before the
//! spend decides: no spend burns credits that have expired, and a spend
//! after a period's end sees the new allocation.

use chrono::Duration;
use serde_json::json;

use super::*;
use crate::helpers::client::rows;
use crate::helpers::start_time;

/// A dated bonus past its expiry (the period has not ended), a trial past
/// its end and a paid period past its end: each spend settles first, in
/// its batch, then decides.
async fn a_wallet_due_to_settle_settles_inside_its_batch(app: TestApp) {
    app.create_workspace("ws-bonus").await;
    app.create_workspace("ws-ended").await;
    app.set_trial_credits(0).await;
    app.create_workspace("ws-renews").await;
    let renews = app.token("admin", Some("ws-renews"));
    app.set_plan(&renews, "PRO", None).await.data();
    app.gql(
        Some(&app.operator()),
        "mutation($ws: ID!, $at: DateTime) { adjustCredits(input: {workspaceId: $ws, credits: 5, reason: \"goodwill\", expiresAt: $at}) { balance { total } } }",
        json!({ "ws": "ws-bonus", "at": (start_time() + Duration::days(1)).to_rfc3339() }),
    )
    .await
    .data();
    app.clock.set(start_time() + Duration::days(2));

    let bonus = app
        .spend(
            &app.token("service", Some("ws-bonus")),
            "TRIAGE",
            "after-bonus",
            None,
        )
        .await;
    app.clock.set(start_time() + Duration::days(8));
    let ended = app
        .spend(
            &app.token("service", Some("ws-ended")),
            "TRIAGE",
            "after-trial",
            None,
        )
        .await;

    // Burn-down takes the soonest expiry first: unsettled, the spend would
    // have burned the expired bonus (and the ended trial's credits).
    assert_eq!(bonus.data()["spendCredit"]["outcome"], "CHARGED");
    assert_eq!(
        app.ledger_rows("ws-bonus").await,
        rows(&[("GRANT", 300), ("ADJUSTMENT", 5), ("EXPIRE", -5), ("SPEND", -1)])
    );
    assert_eq!(ended.data()["spendCredit"]["outcome"], "INSUFFICIENT_CREDITS");
    assert_eq!(
        app.ledger_rows("ws-ended").await,
        rows(&[("GRANT", 300), ("EXPIRE", -300)])
    );
    app.clock.set(start_time() + Duration::days(40));
    let renewed = app
        .spend(
            &app.token("service", Some("ws-renews")),
            "TRIAGE",
            "after-renewal",
            None,
        )
        .await;
    assert_eq!(renewed.data()["spendCredit"]["outcome"], "CHARGED");
    assert_eq!(renewed.data()["spendCredit"]["balance"]["total"], 999);
    assert_eq!(
        app.ledger_rows("ws-renews").await,
        rows(&[("GRANT", 1000), ("EXPIRE", -1000), ("GRANT", 1000), ("SPEND", -1)])
    );
    assert_eq!(batches(&app).await, 3.0, "each spend went through a batch");
    assert_eq!(
        failed_batches(&app).await,
        0.0,
        "and no batch fell back to single spends"
    );
}

crate::both_backends!(a_wallet_due_to_settle_settles_inside_its_batch);
