//! Goal: group commit changes no outcome. The same spends give the same
//! answers, the same ledger rows and the same low-balance alerts whether
//! they are applied in batches or one transaction each; under real
//! concurrency, repeats and refusals keep their exact shape.
//! Method: (1) one ordered sequence of spends over two wallets (repeats, a
//! conflicting reuse, an unknown workspace, a threshold crossing, running
//! dry) is queued at once into a batching service and, apart, applied one
//! by one by an unbatched service; answers and stored rows are compared
//! whole. (2) 120 concurrent HTTP spends (30 keys × 4 repeats) on a wallet
//! holding 10 credits, against a batching and an unbatched server.
//! (3) A batch that waits for a wallet's lock held by another writer
//! decides on what that writer committed. (4) SQLite's WAL is checkpointed
//! apart from the commits that answer spends. (5) Keys bound earlier are
//! found by (workspace, key): a batch mixing three workspaces' keys
//! charges every pair not yet bound. (6) The batches run on a pool of
//! their own: with every connection of the server's pool held, a spend is
//! still charged by a batch; an in-memory SQLite database (which a second
//! pool would not see) batches on the server's pool. (7) PostgreSQL:
//! spends over 1,500 wallets never scan a whole table, before and after
//! `ANALYZE`.

use std::collections::HashMap;

use domain::catalogue::{Action, Role};
use domain::ids::{IdempotencyKey, WorkspaceId};
use protodesk_credits::auth::{Caller, Operation, authorize};
use protodesk_credits::service::{SpendRequest, SpendResult};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::helpers::{Backend, Options, TestApp};

mod agreement;
mod scans;
mod settle;
mod storage;
mod window;

/// (workspace, action, key, reference), in arrival order.
const SEQUENCE: [(&str, Action, &str, Option<&str>); 16] = [
    ("ws-a", Action::Triage, "k1", None),
    ("ws-b", Action::Triage, "k1", None),
    ("ws-a", Action::Sidekick, "k2", Some("t-1")),
    ("ws-a", Action::Triage, "k1", None),
    ("ws-a", Action::AutoResolve, "k3", None),
    ("ws-a", Action::Sidekick, "k2", Some("t-2")),
    ("ws-a", Action::Triage, "k4", None),
    ("ws-nope", Action::Triage, "k1", None),
    ("ws-a", Action::Triage, "k5", None),
    ("ws-a", Action::Sidekick, "k6", None),
    ("ws-a", Action::Triage, "k7", None),
    ("ws-b", Action::Sidekick, "k2", None),
    ("ws-a", Action::Triage, "k7", None),
    ("ws-a", Action::Sidekick, "k6", None),
    ("ws-b", Action::Triage, "k1", None),
    ("ws-b", Action::AutoResolve, "k1", None),
];

async fn prepared(backend: Backend, options: Options) -> TestApp {
    let app = TestApp::spawn_with(backend, options).await;
    app.set_trial_credits(6).await;
    app.create_workspace("ws-a").await;
    app.create_workspace("ws-b").await;
    let admin = app.token("admin", Some("ws-a"));
    app.gql(
        Some(&admin),
        "mutation { setLowBalanceThreshold(input: {threshold: 3}) { wallet { lowBalanceThreshold } } }",
        json!({}),
    )
    .await
    .data();
    app
}

fn request(workspace: &str, action: Action, key: &str, reference: Option<&str>) -> (Caller, SpendRequest) {
    let caller = Caller {
        subject: "worker-7".to_owned(),
        workspace_id: Some(WorkspaceId::parse("workspaceId", workspace).unwrap()),
        role: Role::Service,
    };
    let request = SpendRequest {
        action,
        idempotency_key: IdempotencyKey::parse("idempotencyKey", key).unwrap(),
        reference: reference.map(str::to_owned),
        agent_id: None,
    };
    (caller, request)
}

/// Everything an answer says, but ids and timestamps.
fn summary(result: Result<SpendResult, protodesk_credits::error::AppError>) -> Value {
    match result {
        Err(error) => json!({ "error": error.code() }),
        Ok(answer) => json!({
            "outcome": answer.outcome.as_str(),
            "balance": [answer.balance.total, answer.balance.split.allocation,
                        answer.balance.split.purchased, answer.balance.split.bonus],
            "cost": answer.cost,
            "nextResetAt": answer.next_reset_at.map(|at| at.to_rfc3339()),
            "suggestedTopUp": answer.suggested_top_up.map(|pack| format!("{:?}", pack.code)),
            "transaction": answer.transaction.map(|row| json!([
                row.sequence, row.amount, row.balance_after, row.action.map(|action| action.as_str()),
                row.reference, row.actor, row.idempotency_key,
            ])),
            "budget": answer.budget.map(|usage| json!([usage.budget.name, usage.agent_id, usage.used, usage.remaining])),
            "warnings": answer.budget_warnings.iter()
                .map(|usage| json!([usage.budget.name, usage.used])).collect::<Vec<_>>(),
        }),
    }
}

async fn spend(app: &TestApp, (caller, request): (Caller, SpendRequest)) -> Value {
    let scope = match authorize(&caller, None, Operation::Spend(request.action)) {
        Ok(scope) => scope,
        Err(error) => return json!({ "error": error.code() }),
    };
    summary(app.ledger.spend(&scope, request).await)
}

/// Every stored row and alert that the spends wrote, in ledger order.
async fn stored(app: &TestApp) -> Vec<Value> {
    let db = app.db();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT w.workspace_id, e.sequence, e.kind, e.amount_credits, e.balance_after_credits, \
             e.allocation_after_credits, e.purchased_after_credits, e.bonus_after_credits, e.action, \
             e.reference, e.actor, e.idempotency_key, e.idempotency_fingerprint, \
             (SELECT COUNT(*) FROM ledger_entry_grant g WHERE g.ledger_entry_id = e.id) AS moves, \
             (SELECT COUNT(*) FROM low_balance_alert a WHERE a.wallet_id = w.id AND a.ledger_sequence = e.sequence) AS alerts \
             FROM ledger_entry e JOIN wallet w ON w.id = e.wallet_id ORDER BY w.workspace_id, e.sequence",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            let text = |column: &str| row.try_get::<Option<String>>("", column).unwrap();
            let int = |column: &str| row.try_get::<i64>("", column).unwrap();
            json!([
                text("workspace_id"),
                int("sequence"),
                text("kind"),
                int("amount_credits"),
                int("balance_after_credits"),
                int("allocation_after_credits"),
                int("purchased_after_credits"),
                int("bonus_after_credits"),
                text("action"),
                text("reference"),
                text("actor"),
                text("idempotency_key"),
                text("idempotency_fingerprint"),
                int("moves"),
                int("alerts"),
            ])
        })
        .collect()
}

/// Group-commit transactions formed so far.
async fn batches(app: &TestApp) -> f64 {
    app.metric("credits_spend_batch_size_count").await
}

/// Group-commit transactions that failed (their spends then ran alone,
/// which would hide a wrong batch read behind right answers).
async fn failed_batches(app: &TestApp) -> f64 {
    app.metric("credits_spend_batches_failed_total").await
}
