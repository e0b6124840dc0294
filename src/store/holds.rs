//! Holds' rows (`docs/design/holds.md`): read with their wallet while it
//! holds any, written only by the applier (`store::apply`), listed and
//! found for readers.

use chrono::{DateTime, Utc};
use entity::{credit_hold, ledger_entry};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    Statement,
};
use serde::Serialize;

use super::batch::json;
use super::rows::hold;
use super::{Result, internal, is_sqlite};
use domain::catalogue::LedgerKind;
use domain::hold::{Hold, HoldState};
use domain::wallet::Change;

/// A hold by id, with its wallet's id.
pub async fn find(db: &impl ConnectionTrait, id: i64) -> Result<Option<(i64, Hold)>> {
    match credit_hold::Entity::find_by_id(id).one(db).await? {
        Some(model) => Ok(Some((model.wallet_id, hold(model)?))),
        None => Ok(None),
    }
}

/// A hold by id, with its wallet's workspace, in one read.
pub async fn find_with_workspace(db: &impl ConnectionTrait, id: i64) -> Result<Option<(String, Hold)>> {
    let found = credit_hold::Entity::find_by_id(id)
        .find_also_related(entity::wallet::Entity)
        .one(db)
        .await?;
    match found {
        Some((model, Some(wallet))) => Ok(Some((wallet.workspace_id, hold(model)?))),
        _ => Ok(None),
    }
}

/// The SPEND row that captured hold `id`.
pub async fn capture_row(db: &impl ConnectionTrait, id: i64) -> Result<Option<ledger_entry::Model>> {
    ledger_entry::Entity::find()
        .filter(ledger_entry::Column::HoldId.eq(id))
        .filter(ledger_entry::Column::Kind.eq(LedgerKind::Spend.as_str()))
        .one(db)
        .await
        .map_err(Into::into)
}

/// A wallet's holds newest first, in `state` if given, with ids below
/// `before`; at most `limit`.
pub async fn list(
    db: &impl ConnectionTrait,
    wallet_id: i64,
    state: Option<HoldState>,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<Hold>> {
    let mut query = credit_hold::Entity::find().filter(credit_hold::Column::WalletId.eq(wallet_id));
    if let Some(state) = state {
        query = query.filter(credit_hold::Column::State.eq(state.as_str()));
    }
    if let Some(before) = before {
        query = query.filter(credit_hold::Column::Id.lt(before));
    }
    query
        .order_by_desc(credit_hold::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(hold)
        .collect()
}

/// Writes the changes' holds: new ones with the id of their HOLD row
/// (`ids`: per change, its rows' ids), moved ones in place. Pins naming a
/// grant the change created are given its stored id by `resolve`.
pub(super) async fn write(
    txn: &impl ConnectionTrait,
    changes: &[Change],
    ids: &[Vec<i64>],
    resolve: impl Fn(i64, i64) -> Result<i64>,
) -> Result<()> {
    let mut new = Vec::new();
    let mut moves = Vec::new();
    for (change, ids) in changes.iter().zip(ids) {
        for hold in &change.holds {
            let pins: Vec<(i64, i64)> = hold
                .pins
                .iter()
                .map(|(grant_id, credits)| Ok((resolve(change.wallet_id, *grant_id)?, *credits)))
                .collect::<Result<_>>()?;
            if !hold.is_new() {
                moves.push(HoldMove {
                    id: hold.id,
                    state: hold.state.as_str(),
                    captured_credits: hold.captured,
                    uncollected_credits: hold.uncollected,
                    expires_at: hold.expires_at,
                    resolved_at: hold.resolved_at,
                    reason: hold.reason.as_deref(),
                });
                continue;
            }
            let pins = serde_json::to_string(&pins).map_err(|error| internal(error.to_string()))?;
            let row = change
                .rows
                .iter()
                .position(|row| row.entry.kind == LedgerKind::Hold && row.entry.hold == Some(hold.id))
                .and_then(|index| ids.get(index))
                .ok_or_else(|| internal(format!("hold {} has no HOLD row", hold.id)))?;
            new.push(credit_hold::ActiveModel {
                id: Set(*row),
                wallet_id: Set(change.wallet_id),
                hold_key: Set(hold.key.clone()),
                state: Set(hold.state.as_str().to_owned()),
                action: Set(hold.action.as_str().to_owned()),
                agent_id: Set(hold.agent_id.clone()),
                reference: Set(hold.reference.clone()),
                actor: Set(hold.actor.clone()),
                credits: Set(hold.credits),
                captured_credits: Set(hold.captured),
                uncollected_credits: Set(hold.uncollected),
                pins: Set(pins),
                expires_at: Set(hold.expires_at),
                created_at: Set(hold.created_at),
                resolved_at: Set(hold.resolved_at),
                reason: Set(hold.reason.clone()),
            });
        }
    }
    if !new.is_empty() {
        credit_hold::Entity::insert_many(new)
            .exec_without_returning(txn)
            .await?;
    }
    update(txn, &moves).await
}

/// A stored hold as it moves: its state, what was captured, its expiry
/// (its pins never change once placed).
#[derive(Serialize)]
struct HoldMove<'a> {
    id: i64,
    state: &'static str,
    captured_credits: i64,
    uncollected_credits: i64,
    #[serde(serialize_with = "super::batch::stored_time::required")]
    expires_at: DateTime<Utc>,
    #[serde(serialize_with = "super::batch::stored_time::optional")]
    resolved_at: Option<DateTime<Utc>>,
    reason: Option<&'a str>,
}

/// Moves stored holds in one statement, each only while HELD (under its
/// wallet's lock nothing else moves it): one trip for a batch of captures,
/// not one per hold.
async fn update(txn: &impl ConnectionTrait, holds: &[HoldMove<'_>]) -> Result<()> {
    if holds.is_empty() {
        return Ok(());
    }
    let set = "state = v.state, captured_credits = v.captured_credits, \
        uncollected_credits = v.uncollected_credits, expires_at = v.expires_at, \
        resolved_at = v.resolved_at, reason = v.reason";
    let statement = if is_sqlite(txn) {
        Statement::from_sql_and_values(
            DbBackend::Sqlite,
            format!(
                "UPDATE credit_hold SET {set} FROM (SELECT value->>'id' AS id, value->>'state' AS state, \
                 value->>'captured_credits' AS captured_credits, \
                 value->>'uncollected_credits' AS uncollected_credits, value->>'expires_at' AS expires_at, \
                 value->>'resolved_at' AS resolved_at, value->>'reason' AS reason FROM jsonb_each(?)) AS v \
                 WHERE credit_hold.id = v.id AND credit_hold.state = 'HELD'"
            ),
            [json(&holds)?],
        )
    } else {
        Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "UPDATE credit_hold SET {set} FROM json_to_recordset($1::json) AS v(id bigint, state text, \
                 captured_credits bigint, uncollected_credits bigint, expires_at timestamptz, \
                 resolved_at timestamptz, reason text) \
                 WHERE credit_hold.id = v.id AND credit_hold.state = 'HELD' AND {}",
                super::batch::any_id("credit_hold.id", "$2")
            ),
            [
                json(&holds)?,
                super::batch::id_list(holds.iter().map(|hold| hold.id)),
            ],
        )
    };
    let updated = txn.execute_raw(statement).await?;
    if updated.rows_affected() != holds.len() as u64 {
        return Err(internal(format!(
            "{} of {} holds were not live when written",
            holds.len() as u64 - updated.rows_affected(),
            holds.len()
        )));
    }
    Ok(())
}

/// Whether a live hold of the wallet is past its expiry at `now`.
pub async fn any_due(db: &impl ConnectionTrait, wallet_id: i64, now: DateTime<Utc>) -> Result<bool> {
    Ok(credit_hold::Entity::find()
        .filter(credit_hold::Column::WalletId.eq(wallet_id))
        .filter(credit_hold::Column::State.eq(HoldState::Held.as_str()))
        .filter(credit_hold::Column::ExpiresAt.lte(now))
        .one(db)
        .await?
        .is_some())
}
