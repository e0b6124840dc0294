//! A wallet with something to settle (a grant past its expiry, a trial
//! ended) leaves the batch: its spend takes the single-spend path, which
//! settles first, so no spend burns credits that have expired.

use chrono::Duration;
use serde_json::json;

use super::*;
use crate::helpers::client::rows;
use crate::helpers::start_time;

/// A dated bonus past its expiry (the period has not ended) and a trial
/// past its end: each spend expires them first, then decides.
async fn a_wallet_due_to_settle_leaves_the_batch_and_settles_first(app: TestApp) {
    app.create_workspace("ws-bonus").await;
    app.create_workspace("ws-ended").await;
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
    assert_eq!(settled_first(&app).await, 2.0, "both left their batch");
}

crate::both_backends!(a_wallet_due_to_settle_leaves_the_batch_and_settles_first);
