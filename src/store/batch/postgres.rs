//! PostgreSQL's side of the batch writes: each part a statement fed by one
//! JSON parameter, so a batch costs the same round trips whatever its size.

use chrono::{DateTime, Utc};
use entity::{ledger_entry, wallet};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};
use serde::Serialize;

use super::sqlite::*;
use super::*;
use crate::store::is_sqlite;
use crate::store::{Error, Result, internal};

/// Ids as one text parameter for [`any_id`].
///
/// An UPDATE … FROM json_to_recordset(…) alone is planned for the
/// function's default estimate of 100 rows: a hash join over a sequential
/// scan of the whole table, for every batch. This extra condition gives
/// the planner an index scan on the ids instead.
pub(super) fn id_list(ids: impl Iterator<Item = i64>) -> Value {
    Value::from(ids.map(|id| id.to_string()).collect::<Vec<_>>().join(","))
}

/// PostgreSQL: `column = ANY(…)` of the ids in text parameter `ids` (see
/// [`id_list`]).
///
/// The array is built by a sub-select, which the planner cannot see into
/// in a custom plan either: both kinds of plan count on a few ids, cost the
/// same, and the statement keeps its cached plan. Written as
/// `string_to_array($n, ',')`, a custom plan counted the actual ids, so at
/// low load (batches of a few spends) the custom plan looked cheaper and
/// PostgreSQL planned the statement afresh at every execution: 280 µs of a
/// lone spend's 2.8 ms, against 15 µs for binding a cached plan. (The
/// sweep's batches of up to 1,000 wallets got a cached plan either way:
/// with `string_to_array` its first five binds took 1.1–1.8 ms, the next
/// ones 0.1 ms. Rolling 100,000 wallets over took 9.2–11.4 s with either
/// form.)
pub(super) fn any_id(column: &str, ids: &str) -> String {
    format!("{column} = ANY(ARRAY(SELECT unnest(string_to_array({ids}, ','))::bigint))")
}

/// PostgreSQL: `INSERT INTO ledger_entry … RETURNING *` of the JSON rows in
/// parameter `rows`, stamped with parameter `now` (e.g. `"$1"`, `"$2"`).
pub(super) fn insert_rows_sql(rows: &str, now: &str) -> String {
    format!(
        "INSERT INTO ledger_entry (wallet_id, sequence, kind, amount_credits, balance_after_credits, reference, \
         action, actor, idempotency_key, idempotency_fingerprint, created_at, allocation_after_credits, \
         purchased_after_credits, bonus_after_credits) \
         SELECT x.wallet_id, x.sequence, x.kind, x.amount_credits, x.balance_after_credits, x.reference, \
         x.action, x.actor, x.idempotency_key, x.idempotency_fingerprint, {now}, x.allocation_after_credits, \
         x.purchased_after_credits, x.bonus_after_credits \
         FROM json_to_recordset({rows}::json) AS x(wallet_id bigint, sequence bigint, kind text, \
         amount_credits bigint, balance_after_credits bigint, allocation_after_credits bigint, \
         purchased_after_credits bigint, bonus_after_credits bigint, reference text, action text, \
         actor text, idempotency_key text, idempotency_fingerprint text) \
         RETURNING *"
    )
}

/// PostgreSQL: moves grants by the JSON (id, delta) pairs in parameter
/// `deltas`; parameter `ids` lists the ids (see [`id_list`]).
pub(super) fn move_grants_sql(deltas: &str, ids: &str) -> String {
    format!(
        "UPDATE credit_grant SET remaining_credits = credit_grant.remaining_credits + v.delta \
         FROM json_to_recordset({deltas}::json) AS v(id bigint, delta bigint) \
         WHERE credit_grant.id = v.id AND {}",
        any_id("credit_grant.id", ids)
    )
}

/// PostgreSQL: writes the JSON [`WalletHead`]s in parameter `heads`, each
/// guarded on the sequence read; parameter `ids` lists the wallet ids.
pub(super) fn save_heads_sql(heads: &str, now: &str, ids: &str) -> String {
    format!(
        "UPDATE wallet SET balance_credits = v.balance_credits, last_sequence = v.last_sequence, \
         plan_code = v.plan_code, pending_plan_code = v.pending_plan_code, period_start_at = v.period_start_at, \
         period_end_at = v.period_end_at, low_balance_alerted_at = v.low_balance_alerted_at, updated_at = {now} \
         FROM json_to_recordset({heads}::json) AS v(id bigint, sequence_read bigint, balance_credits bigint, \
         last_sequence bigint, plan_code text, pending_plan_code text, period_start_at timestamptz, \
         period_end_at timestamptz, low_balance_alerted_at timestamptz) \
         WHERE wallet.id = v.id AND wallet.last_sequence = v.sequence_read \
         AND {}",
        any_id("wallet.id", ids)
    )
}

pub(super) fn json(rows: &impl Serialize) -> Result<Value> {
    serde_json::to_string(rows)
        .map(Value::from)
        .map_err(|error| internal(format!("encoding a batch: {error}")))
}

#[derive(Serialize)]
pub(super) struct WalletHead<'a> {
    id: i64,
    sequence_read: i64,
    balance_credits: i64,
    last_sequence: i64,
    plan_code: &'a str,
    pending_plan_code: Option<&'a str>,
    period_start_at: Option<DateTime<Utc>>,
    period_end_at: Option<DateTime<Utc>>,
    low_balance_alerted_at: Option<DateTime<Utc>>,
}

impl<'a> WalletHead<'a> {
    fn of(wallet: &'a wallet::Model, sequence_read: i64) -> Self {
        Self {
            id: wallet.id,
            sequence_read,
            balance_credits: wallet.balance_credits,
            last_sequence: wallet.last_sequence,
            plan_code: &wallet.plan_code,
            pending_plan_code: wallet.pending_plan_code.as_deref(),
            period_start_at: wallet.period_start_at,
            period_end_at: wallet.period_end_at,
            low_balance_alerted_at: wallet.low_balance_alerted_at,
        }
    }
}

/// [`save_wallets`] on PostgreSQL: the heads travel as one JSON parameter.
pub(super) async fn save_wallets_postgres(
    txn: &impl ConnectionTrait,
    wallets: &[(wallet::Model, i64)],
    now: DateTime<Utc>,
) -> Result<()> {
    let heads: Vec<WalletHead<'_>> = wallets
        .iter()
        .map(|(wallet, sequence_read)| WalletHead::of(wallet, *sequence_read))
        .collect();
    let result = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            save_heads_sql("$1", "$2", "$3"),
            [
                json(&heads)?,
                Value::from(now),
                id_list(wallets.iter().map(|(wallet, _)| wallet.id)),
            ],
        ))
        .await?;
    all_saved(wallets.len(), result.rows_affected())
}

#[derive(Serialize)]
pub(super) struct GrantDelta {
    id: i64,
    delta: i64,
}

/// Writes a batch of spends; returns the stored rows.
///
/// PostgreSQL: two statements, each part a data-modifying CTE fed by a
/// JSON parameter, so a batch costs two round trips however many spends it
/// holds. The guarded head update must match every wallet, or the whole
/// statement fails. SQLite: the same writes, one statement each.
pub async fn write_spends(
    txn: &impl ConnectionTrait,
    channel: &str,
    writes: SpendWrites,
    now: DateTime<Utc>,
) -> Result<Vec<ledger_entry::Model>> {
    if is_sqlite(txn) {
        return write_spends_sqlite(txn, writes, now).await;
    }
    let heads: Vec<WalletHead<'_>> = writes
        .heads
        .iter()
        .map(|(wallet, sequence_read)| WalletHead::of(wallet, *sequence_read))
        .collect();
    let grant_ids = id_list(writes.deltas.iter().map(|(id, _)| *id));
    let wallet_ids = id_list(writes.heads.iter().map(|(wallet, _)| wallet.id));
    let deltas: Vec<GrantDelta> = writes
        .deltas
        .iter()
        .map(|(id, delta)| GrantDelta {
            id: *id,
            delta: *delta,
        })
        .collect();
    // Two statements: the inserts (whose foreign-key checks lock the wallet
    // and grant rows), then the updates of those rows. Updating them in the
    // same statement as the inserts made each key check chase the rows'
    // new versions: one statement for a 32-spend batch took ~20 ms.
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "WITH r AS ({}), \
                 m AS ( \
                   INSERT INTO ledger_entry_grant (ledger_entry_id, credit_grant_id, amount_credits) \
                   SELECT r.id, x.credit_grant_id, x.amount_credits \
                   FROM json_to_recordset($3::json) AS x(wallet_id bigint, sequence bigint, \
                   credit_grant_id bigint, amount_credits bigint) \
                   JOIN r ON r.wallet_id = x.wallet_id AND r.sequence = x.sequence) \
                 SELECT * FROM r",
                insert_rows_sql("$2", "$1")
            ),
            [Value::from(now), json(&writes.rows)?, json(&writes.moves)?],
        ))
        .await?;
    let saved = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "WITH g AS ({}), h AS ({} RETURNING wallet.id), \
                 n AS (SELECT pg_notify($6, p) FROM unnest(string_to_array($7, chr(31))) AS p) \
                 SELECT (SELECT COUNT(*) FROM h) AS heads_saved, (SELECT COUNT(*) FROM n) AS notified",
                move_grants_sql("$1", "$2"),
                save_heads_sql("$4", "$3", "$5")
            ),
            [
                json(&deltas)?,
                grant_ids,
                Value::from(now),
                json(&heads)?,
                wallet_ids,
                Value::from(channel),
                Value::from(crate::store::notify::chunks(writes.notifications).join("\u{1f}")),
            ],
        ))
        .await?
        .map(|row| row.try_get::<i64>("", "heads_saved"))
        .transpose()?
        .unwrap_or(0);
    all_saved(writes.heads.len(), u64::try_from(saved).unwrap_or(0))?;
    rows.iter()
        .map(|row| ledger_entry::Model::from_query_result(row, "").map_err(Error::from))
        .collect()
}
