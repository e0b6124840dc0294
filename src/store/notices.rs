//! What the scheduler's notices read (`docs/design/webhooks.md`): trials
//! about to end without their notice, and the wallets that spent since the
//! sweep last looked (their runway is forecast).

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::{Result, statement};

/// Trial wallets whose trial ends in `(now, until]` and whose
/// `credits.trial_ending` was not written yet: (workspace, trial end).
pub async fn trials_ending(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<(String, DateTime<Utc>)>> {
    let rows = db
        .query_all_raw(statement(
            db,
            &format!(
                "SELECT w.workspace_id, w.trial_ends_at FROM wallet w \
                 WHERE w.trial_ends_at > ? AND w.trial_ends_at <= ? AND w.plan_code = '{}' \
                 AND NOT EXISTS (SELECT 1 FROM outbox_once o WHERE o.once_key = '{}' || w.workspace_id)",
                domain::catalogue::PlanCode::ProTrial.as_str(),
                domain::outbox::TRIAL_ENDING_KEY_PREFIX,
            ),
            vec![now.into(), until.into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("", "workspace_id")?,
                row.try_get("", "trial_ends_at")?,
            ))
        })
        .collect()
}

/// Wallets with a SPEND row after ledger row `after_id`, and the largest
/// row id seen (the next call's `after_id`).
pub async fn wallets_spending_since(db: &impl ConnectionTrait, after_id: i64) -> Result<(Vec<String>, i64)> {
    let rows = db
        .query_all_raw(statement(
            db,
            &format!(
                "SELECT w.workspace_id, MAX(e.id) AS last_id FROM ledger_entry e JOIN wallet w ON w.id = e.wallet_id \
                 WHERE e.id > ? AND e.kind = '{}' GROUP BY w.workspace_id",
                domain::catalogue::LedgerKind::Spend.as_str()
            ),
            vec![after_id.into()],
        ))
        .await?;
    let mut last = after_id;
    let mut workspaces = Vec::with_capacity(rows.len());
    for row in &rows {
        workspaces.push(row.try_get::<String>("", "workspace_id")?);
        last = last.max(row.try_get::<i64>("", "last_id")?);
    }
    Ok((workspaces, last))
}

/// The largest ledger row id (0 for an empty ledger).
pub async fn last_ledger_id(db: &impl ConnectionTrait) -> Result<i64> {
    let row = db
        .query_one_raw(statement(
            db,
            "SELECT COALESCE(MAX(id), 0) AS last_id FROM ledger_entry",
            Vec::new(),
        ))
        .await?;
    Ok(row
        .map(|row| row.try_get::<i64>("", "last_id"))
        .transpose()?
        .unwrap_or(0))
}
