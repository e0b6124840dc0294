//! PostgreSQL's side of the batch writes: each part a statement fed by one
//! JSON parameter, so a batch costs the same round trips whatever its size.

use chrono::{DateTime, Utc};
use sea_orm::Value;
use serde::Serialize;

use super::HEAD_SET;
use crate::store::{Result, internal};
use domain::wallet::Head;

/// Ids as one text parameter for [`any_id`].
///
/// An UPDATE … FROM json_to_recordset(…) alone is planned for the
/// function's default estimate of 100 rows: a hash join over a sequential
/// scan of the whole table, for every batch. This extra condition gives
/// the planner an index scan on the ids instead.
pub(crate) fn id_list(ids: impl Iterator<Item = i64>) -> Value {
    Value::from(ids.map(|id| id.to_string()).collect::<Vec<_>>().join(","))
}

/// PostgreSQL: `column = ANY(…)` of the ids in text parameter `ids` (see
/// [`id_list`]).
///
/// The array is built by a sub-select, which the planner cannot see into:
/// every plan counts on a few ids and the statement keeps its cached plan
/// (with `string_to_array($n, ',')` a custom plan was made afresh at every
/// execution at low load; `docs/benchmarks.md`, planner traps).
pub(crate) fn any_id(column: &str, ids: &str) -> String {
    format!("{column} = ANY(ARRAY(SELECT unnest(string_to_array({ids}, ','))::bigint))")
}

/// PostgreSQL: `INSERT INTO ledger_entry … RETURNING {returning}` of the
/// JSON rows in parameter `rows`, stamped with parameter `now` (e.g. `"$1"`,
/// `"$2"`).
pub(crate) fn insert_rows_sql(rows: &str, now: &str, returning: &str) -> String {
    format!(
        "INSERT INTO ledger_entry (wallet_id, sequence, kind, amount_credits, balance_after_credits, reference, \
         action, actor, idempotency_key, idempotency_fingerprint, reverses_entry_id, created_at, \
         allocation_after_credits, purchased_after_credits, bonus_after_credits, agent_id, \
         held_after_credits, hold_id) \
         SELECT x.wallet_id, x.sequence, x.kind, x.amount_credits, x.balance_after_credits, x.reference, \
         x.action, x.actor, x.idempotency_key, x.idempotency_fingerprint, x.reverses_entry_id, {now}, \
         x.allocation_after_credits, x.purchased_after_credits, x.bonus_after_credits, x.agent_id, \
         x.held_after_credits, x.hold_id \
         FROM json_to_recordset({rows}::json) AS x(wallet_id bigint, sequence bigint, kind text, \
         amount_credits bigint, balance_after_credits bigint, allocation_after_credits bigint, \
         purchased_after_credits bigint, bonus_after_credits bigint, reference text, action text, \
         actor text, idempotency_key text, idempotency_fingerprint text, reverses_entry_id bigint, \
         agent_id text, held_after_credits bigint, hold_id bigint) \
         RETURNING {returning}"
    )
}

/// PostgreSQL: moves live grants by the JSON (id, delta, granted) deltas
/// in parameter `deltas`, never below zero (a grant that does not match is
/// counted missing by the caller); parameter `ids` lists the ids and
/// `wallets` their wallets' ids (see [`id_list`]): with the live grants'
/// index led by its wallet, no plan can read that index whole.
pub(crate) fn move_grants_sql(deltas: &str, ids: &str, wallets: &str) -> String {
    format!(
        "UPDATE credit_grant SET remaining_credits = credit_grant.remaining_credits + v.delta, \
         granted_credits = credit_grant.granted_credits + v.granted \
         FROM json_to_recordset({deltas}::json) AS v(id bigint, delta bigint, granted bigint) \
         WHERE credit_grant.id = v.id AND credit_grant.expired_at IS NULL \
         AND credit_grant.remaining_credits + v.delta >= 0 AND {} AND {}",
        any_id("credit_grant.id", ids),
        any_id("credit_grant.wallet_id", wallets)
    )
}

/// PostgreSQL: writes the JSON [`WalletHead`]s in parameter `heads`, each
/// guarded on the sequence read; parameter `ids` lists the wallet ids.
pub(crate) fn save_heads_sql(heads: &str, now: &str, ids: &str) -> String {
    format!(
        "UPDATE wallet SET {HEAD_SET}, updated_at = {now} \
         FROM json_to_recordset({heads}::json) AS v(id bigint, sequence_read bigint, balance_credits bigint, \
         last_sequence bigint, plan_code text, pending_plan_code text, billing_anchor_at timestamptz, \
         period_start_at timestamptz, period_end_at timestamptz, enterprise_allocation_credits bigint, \
         low_balance_threshold_credits bigint, low_balance_alerted_at timestamptz, time_zone text, \
         budget_version bigint, subscription_id text, standing_until_at timestamptz, \
         auto_top_up_threshold_credits bigint, held_credits bigint) \
         WHERE wallet.id = v.id AND wallet.last_sequence = v.sequence_read \
         AND {}",
        any_id("wallet.id", ids)
    )
}

pub(crate) fn json(rows: &impl Serialize) -> Result<Value> {
    serde_json::to_string(rows)
        .map(Value::from)
        .map_err(|error| internal(format!("encoding a batch: {error}")))
}

/// A wallet head as [`save_heads_sql`] and SQLite's head write read it.
#[derive(Serialize)]
pub(crate) struct WalletHead<'a> {
    id: i64,
    sequence_read: i64,
    balance_credits: i64,
    last_sequence: i64,
    plan_code: &'static str,
    pending_plan_code: Option<&'static str>,
    #[serde(serialize_with = "super::stored_time::optional")]
    billing_anchor_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "super::stored_time::optional")]
    period_start_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "super::stored_time::optional")]
    period_end_at: Option<DateTime<Utc>>,
    enterprise_allocation_credits: Option<i64>,
    low_balance_threshold_credits: Option<i64>,
    #[serde(serialize_with = "super::stored_time::optional")]
    low_balance_alerted_at: Option<DateTime<Utc>>,
    time_zone: &'a str,
    budget_version: i64,
    subscription_id: Option<&'a str>,
    #[serde(serialize_with = "super::stored_time::optional")]
    standing_until_at: Option<DateTime<Utc>>,
    auto_top_up_threshold_credits: Option<i64>,
    held_credits: i64,
    #[serde(skip)]
    head: std::marker::PhantomData<&'a Head>,
}

impl<'a> WalletHead<'a> {
    pub(crate) fn of(head: &'a Head, sequence_read: i64) -> Self {
        Self {
            id: head.id,
            sequence_read,
            balance_credits: head.balance,
            last_sequence: head.last_sequence,
            plan_code: head.plan.as_str(),
            pending_plan_code: head.pending_plan.map(|plan| plan.as_str()),
            billing_anchor_at: head.anchor,
            period_start_at: head.period_start,
            period_end_at: head.period_end,
            enterprise_allocation_credits: head.enterprise_allocation,
            low_balance_threshold_credits: head.threshold,
            low_balance_alerted_at: head.alerted_at,
            time_zone: &head.time_zone,
            budget_version: head.budget_version,
            subscription_id: head.subscription_id.as_deref(),
            standing_until_at: head.standing_until,
            auto_top_up_threshold_credits: head.auto_top_up_threshold,
            held_credits: head.held,
            head: std::marker::PhantomData,
        }
    }
}
