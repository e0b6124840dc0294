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

use crate::helpers::client::rows;
use crate::helpers::{TestApp, mint, start_time};

mod alerts;
mod grants;
mod reports;

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
