//! Set-based reads and writes for the scheduler's sweep and the spends'
//! group commit: a batch of wallets settled (or charged) in one transaction
//! with a handful of statements, instead of a dozen round trips per wallet.
//! The rows themselves are decided in `service`; this module only writes
//! them, and reads the batch under lock.

use chrono::{DateTime, Utc};
use entity::{action_cost, credit_grant, ledger_entry, ledger_entry_grant, low_balance_alert, wallet};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, ExprTrait, FromQueryResult,
    QueryFilter, QueryOrder, QuerySelect, Set, Statement, Value,
};
use serde::Serialize;

use super::is_sqlite;
use crate::domain::catalogue::LedgerKind;

/// Locks and returns up to `limit` wallets due at `now`, after `after_id`.
///
/// PostgreSQL: `FOR UPDATE SKIP LOCKED`, so instances sweeping together
/// split the work instead of queueing, and a wallet a request is writing is
/// left to that request (which settles it first anyway). SQLite: a no-op
/// write first takes the database's single write lock.
pub async fn lock_due_wallets(
    txn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    after_id: i64,
    limit: u64,
) -> Result<Vec<wallet::Model>, DbErr> {
    // EXISTS, correlated on the wallet, probes credit_grant_live_idx per
    // wallet; an IN (subquery) would hash every due grant on every batch,
    // making a sweep quadratic in the number of wallets.
    let expiring = Query::select()
        .expr(Expr::val(1))
        .from(credit_grant::Entity)
        .and_where(
            Expr::col((credit_grant::Entity, credit_grant::Column::WalletId))
                .equals((wallet::Entity, wallet::Column::Id)),
        )
        .and_where(Expr::col((credit_grant::Entity, credit_grant::Column::ExpiredAt)).is_null())
        .and_where(Expr::col((credit_grant::Entity, credit_grant::Column::ExpiresAt)).lte(now))
        .to_owned();
    let query = wallet::Entity::find()
        .filter(wallet::Column::Id.gt(after_id))
        .filter(
            Condition::any()
                .add(wallet::Column::PeriodEndAt.lte(now))
                .add(Expr::exists(expiring)),
        )
        .order_by_asc(wallet::Column::Id)
        .limit(limit);
    if is_sqlite(txn) {
        take_sqlite_write_lock(txn).await?;
        query.all(txn).await
    } else {
        query
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(txn)
            .await
    }
}

/// The live grants of many wallets.
pub async fn live_grants_of(
    db: &impl ConnectionTrait,
    wallet_ids: Vec<i64>,
) -> Result<Vec<credit_grant::Model>, DbErr> {
    credit_grant::Entity::find()
        .filter(credit_grant::Column::WalletId.is_in(wallet_ids))
        .filter(credit_grant::Column::ExpiredAt.is_null())
        .order_by_asc(credit_grant::Column::Id)
        .all(db)
        .await
}

/// Closes many grants at once.
pub async fn close_grants(
    txn: &impl ConnectionTrait,
    ids: Vec<i64>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    credit_grant::Entity::update_many()
        .col_expr(credit_grant::Column::RemainingCredits, Expr::value(0i64))
        .col_expr(credit_grant::Column::ExpiredAt, Expr::value(now))
        .filter(credit_grant::Column::Id.is_in(ids))
        .exec(txn)
        .await?;
    Ok(())
}

/// A new allocation grant of the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct NewAllocation {
    /// The wallet.
    pub wallet_id: i64,
    /// Credits granted.
    pub credits: i64,
    /// The period's start.
    pub period_start_at: DateTime<Utc>,
    /// The period's end, when the grant expires.
    pub expires_at: DateTime<Utc>,
}

/// A ledger row of a batch: EXPIRE or GRANT by the system (the sweep), or
/// SPEND (the group commit).
#[derive(Debug, Clone, Serialize)]
pub struct NewRow {
    /// The wallet.
    pub wallet_id: i64,
    /// Its ledger sequence.
    pub sequence: i64,
    /// Its kind.
    pub kind: &'static str,
    /// Signed credits.
    pub amount_credits: i64,
    /// Balance after it, and its split.
    pub balance_after_credits: i64,
    /// Allocation bucket after it.
    pub allocation_after_credits: i64,
    /// Purchased bucket after it.
    pub purchased_after_credits: i64,
    /// Bonus bucket after it.
    pub bonus_after_credits: i64,
    /// Its reference.
    pub reference: Option<String>,
    /// The action paid, for spends.
    pub action: Option<&'static str>,
    /// Who caused it: the token's subject, or `system`.
    pub actor: String,
    /// The key that bound it, for spends.
    pub idempotency_key: Option<String>,
    /// The identity of the request that bound the key.
    pub idempotency_fingerprint: Option<String>,
}

/// A grant move of the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct NewMove {
    /// The row.
    pub ledger_entry_id: i64,
    /// The grant.
    pub credit_grant_id: i64,
    /// Signed credits.
    pub amount_credits: i64,
}

/// Ids as one text parameter for [`any_id`].
///
/// An UPDATE … FROM json_to_recordset(…) alone is planned for the
/// function's default estimate of 100 rows: a hash join over a sequential
/// scan of the whole table, for every batch. This extra condition gives
/// the planner an index scan on the ids instead.
fn id_list(ids: impl Iterator<Item = i64>) -> Value {
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
fn any_id(column: &str, ids: &str) -> String {
    format!("{column} = ANY(ARRAY(SELECT unnest(string_to_array({ids}, ','))::bigint))")
}

/// PostgreSQL: `INSERT INTO ledger_entry … RETURNING *` of the JSON rows in
/// parameter `rows`, stamped with parameter `now` (e.g. `"$1"`, `"$2"`).
fn insert_rows_sql(rows: &str, now: &str) -> String {
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
fn move_grants_sql(deltas: &str, ids: &str) -> String {
    format!(
        "UPDATE credit_grant SET remaining_credits = credit_grant.remaining_credits + v.delta \
         FROM json_to_recordset({deltas}::json) AS v(id bigint, delta bigint) \
         WHERE credit_grant.id = v.id AND {}",
        any_id("credit_grant.id", ids)
    )
}

/// PostgreSQL: writes the JSON [`WalletHead`]s in parameter `heads`, each
/// guarded on the sequence read; parameter `ids` lists the wallet ids.
fn save_heads_sql(heads: &str, now: &str, ids: &str) -> String {
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

fn json(rows: &impl Serialize) -> Result<Value, DbErr> {
    serde_json::to_string(rows)
        .map(Value::from)
        .map_err(|error| DbErr::Custom(format!("encoding a batch: {error}")))
}

/// Inserts allocation grants; returns (wallet id, grant id).
///
/// PostgreSQL takes the whole batch as one JSON parameter
/// (`json_to_recordset`): one small statement instead of a VALUES list
/// with thousands of parameters to parse and plan. SQLite takes the
/// multi-row INSERT, which it executes cheaply.
pub async fn insert_allocations(
    txn: &impl ConnectionTrait,
    grants: Vec<NewAllocation>,
    now: DateTime<Utc>,
) -> Result<Vec<(i64, i64)>, DbErr> {
    if grants.is_empty() {
        return Ok(Vec::new());
    }
    if is_sqlite(txn) {
        let models = grants.into_iter().map(|grant| credit_grant::ActiveModel {
            wallet_id: Set(grant.wallet_id),
            source: Set("ALLOCATION".to_owned()),
            granted_credits: Set(grant.credits),
            remaining_credits: Set(grant.credits),
            expires_at: Set(Some(grant.expires_at)),
            expired_at: Set(None),
            period_start_at: Set(Some(grant.period_start_at)),
            pack_code: Set(None),
            price_cents: Set(None),
            currency: Set(None),
            created_at: Set(now),
            ..Default::default()
        });
        let inserted = credit_grant::Entity::insert_many(models)
            .exec_with_returning(txn)
            .await?;
        return Ok(inserted
            .into_iter()
            .map(|grant| (grant.wallet_id, grant.id))
            .collect());
    }
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO credit_grant (wallet_id, source, granted_credits, remaining_credits, expires_at, \
             period_start_at, created_at) \
             SELECT x.wallet_id, 'ALLOCATION', x.credits, x.credits, x.expires_at, x.period_start_at, $2 \
             FROM json_to_recordset($1::json) AS x(wallet_id bigint, credits bigint, period_start_at timestamptz, \
             expires_at timestamptz) RETURNING wallet_id, id",
            [json(&grants)?, Value::from(now)],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get::<i64>("", "wallet_id")?,
                row.try_get::<i64>("", "id")?,
            ))
        })
        .collect()
}

/// Inserts ledger rows; returns them as stored, in no particular order.
pub async fn insert_rows(
    txn: &impl ConnectionTrait,
    rows: Vec<NewRow>,
    now: DateTime<Utc>,
) -> Result<Vec<ledger_entry::Model>, DbErr> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    if is_sqlite(txn) {
        let models = rows.into_iter().map(|row| ledger_entry::ActiveModel {
            wallet_id: Set(row.wallet_id),
            sequence: Set(row.sequence),
            kind: Set(row.kind.to_owned()),
            amount_credits: Set(row.amount_credits),
            balance_after_credits: Set(row.balance_after_credits),
            action: Set(row.action.map(str::to_owned)),
            reference: Set(row.reference),
            actor: Set(row.actor),
            idempotency_key: Set(row.idempotency_key),
            idempotency_fingerprint: Set(row.idempotency_fingerprint),
            reverses_entry_id: Set(None),
            created_at: Set(now),
            allocation_after_credits: Set(row.allocation_after_credits),
            purchased_after_credits: Set(row.purchased_after_credits),
            bonus_after_credits: Set(row.bonus_after_credits),
            ..Default::default()
        });
        return ledger_entry::Entity::insert_many(models)
            .exec_with_returning(txn)
            .await;
    }
    ledger_entry::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            DbBackend::Postgres,
            insert_rows_sql("$1", "$2"),
            [json(&rows)?, Value::from(now)],
        ))
        .all(txn)
        .await
}

/// SQLite: takes the database's write lock and reads the wallets of these
/// workspaces, in id order.
async fn lock_wallets_sqlite(
    txn: &impl ConnectionTrait,
    workspace_ids: Vec<&str>,
) -> Result<Vec<wallet::Model>, DbErr> {
    take_sqlite_write_lock(txn).await?;
    wallet::Entity::find()
        .filter(wallet::Column::WorkspaceId.is_in(workspace_ids))
        .order_by_asc(wallet::Column::Id)
        .all(txn)
        .await
}

/// SQLite: an UPDATE that matches nothing still makes the transaction the
/// writer, waiting through the busy timeout, so what it reads next is read
/// under the lock.
async fn take_sqlite_write_lock(txn: &impl ConnectionTrait) -> Result<(), DbErr> {
    wallet::Entity::update_many()
        .col_expr(
            wallet::Column::LastSequence,
            Expr::col(wallet::Column::LastSequence),
        )
        .filter(wallet::Column::Id.eq(-1))
        .exec(txn)
        .await?;
    Ok(())
}

/// SQLite: the statement of [`keyed_spends`] for `pairs` pairs (public so
/// that a test can read its plan): parameters are each pair's wallet id
/// and key, then the kind.
pub fn sqlite_keyed_spends_sql(pairs: usize) -> String {
    format!(
        "WITH v(wallet_id, key) AS (VALUES {}) \
         SELECT e.* FROM v CROSS JOIN ledger_entry e \
         ON e.wallet_id + 0 = v.wallet_id AND e.kind = ? AND e.idempotency_key = v.key",
        vec!["(?, ?)"; pairs].join(", ")
    )
}

/// SQLite: the SPEND rows that these (wallet id, key) pairs bound, each
/// pair probed once on the keys' unique index (on `wallet_id + 0`, see
/// migration 4).
///
/// The pairs are a `VALUES` list, `CROSS JOIN`ed so that SQLite keeps it
/// as the outer loop. Written as `wallet_id IN (…) AND key IN (…)`, SQLite
/// probed the index with every wallet and every key: n² probes for n
/// spends over n wallets. On a copy of the benchmark's tables (10,000
/// wallets, 60,000 keys): 35 pairs 729 µs against 45 µs, 256 pairs (a
/// full batch) 31 ms against 0.29 ms.
async fn keyed_spends(
    txn: &impl ConnectionTrait,
    pairs: &[(i64, String)],
) -> Result<Vec<ledger_entry::Model>, DbErr> {
    let mut pairs: Vec<&(i64, String)> = pairs.iter().collect();
    pairs.sort_unstable();
    pairs.dedup();
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let mut values: Vec<Value> = Vec::with_capacity(pairs.len() * 2 + 1);
    for (wallet_id, key) in &pairs {
        values.push(Value::from(*wallet_id));
        values.push(Value::from(key.as_str()));
    }
    values.push(Value::from(LedgerKind::Spend.as_str()));
    ledger_entry::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sqlite_keyed_spends_sql(pairs.len()),
            values,
        ))
        .all(txn)
        .await
}

/// What a batch of spends reads under its wallets' locks.
#[derive(Debug)]
pub struct SpendReads {
    /// The wallets found, locked, in id order.
    pub wallets: Vec<wallet::Model>,
    /// Their live grants, in id order.
    pub grants: Vec<credit_grant::Model>,
    /// The SPEND rows that keys asked for already bound.
    pub bound: Vec<ledger_entry::Model>,
    /// The catalogue's action costs.
    pub costs: Vec<action_cost::Model>,
}

/// PostgreSQL: everything a batch of spends reads, in one statement (public
/// so that a test can read its plan). Parameters: the workspace ids and the
/// (workspace_id, key) pairs, each as JSON text, then the kind.
///
/// `w` locks the wallets (`FOR UPDATE`, in id order); the other parts read
/// the statement's snapshot, taken before any wait for those locks. `seen`
/// returns each wallet's sequence in that snapshot: every change to a
/// wallet's grants or keys moves its sequence, so when each locked
/// sequence equals the one seen, what was read is what the lock protects.
/// (The one change that does not, closing an expired grant already at
/// zero, leaves a stale read showing that grant due, and a wallet with a
/// due grant is left to the single-spend path, which reads under its lock.)
/// Keys are probed one by one (`LATERAL … LIMIT 1`, all three columns of
/// the keys' unique index equal; `wallet_id + 0` as that index has it, see
/// migration 4, so that no other index on the wallet can be chosen instead):
/// the earlier `key IN (…)` beside
/// `wallet_id IN (…)` was planned, before the table had statistics, as an
/// index scan on the wallet alone with the keys as a filter over the
/// wallet's whole history, so every batch of a busy wallet was slower than
/// the one before.
pub const SPEND_READS_SQL: &str = "\
    WITH w AS (SELECT * FROM wallet \
      WHERE workspace_id = ANY(ARRAY(SELECT json_array_elements_text($1::json))) ORDER BY id FOR UPDATE), \
    s AS (SELECT id, workspace_id, last_sequence FROM wallet \
      WHERE workspace_id = ANY(ARRAY(SELECT json_array_elements_text($1::json)))), \
    k AS (SELECT r.* FROM json_to_recordset($2::json) AS x(workspace_id text, key text) \
      JOIN s ON s.workspace_id = x.workspace_id \
      CROSS JOIN LATERAL (SELECT * FROM ledger_entry e \
        WHERE e.wallet_id + 0 = s.id AND e.kind = $3 AND e.idempotency_key = x.key LIMIT 1) AS r) \
    SELECT (SELECT COALESCE(json_agg(w ORDER BY w.id), '[]') FROM w)::text AS wallets, \
      (SELECT COALESCE(json_agg(s), '[]') FROM s)::text AS seen, \
      (SELECT COALESCE(json_agg(g ORDER BY g.id), '[]') FROM credit_grant g \
        WHERE g.wallet_id = ANY(ARRAY(SELECT id FROM s)) AND g.expired_at IS NULL)::text AS grants, \
      (SELECT COALESCE(json_agg(k), '[]') FROM k)::text AS bound, \
      (SELECT COALESCE(json_agg(c), '[]') FROM action_cost c)::text AS costs";

/// A wallet's sequence as the snapshot of [`SPEND_READS_SQL`] saw it.
#[derive(serde::Deserialize)]
struct Seen {
    id: i64,
    last_sequence: i64,
}

/// Locks the wallets of the workspaces in these (workspace, key) pairs (in
/// id order, so batches sharing wallets cannot deadlock) and reads, under
/// those locks, their live grants, the SPEND rows the pairs' keys already
/// bound, and the action costs.
///
/// PostgreSQL: one statement (see [`SPEND_READS_SQL`]), run a second time
/// (the locks then held, its snapshot fresh) when a wallet changed between
/// its snapshot and its lock. SQLite: one statement each, after taking the
/// database's write lock.
pub async fn read_spends(txn: &impl ConnectionTrait, keys: &[(String, String)]) -> Result<SpendReads, DbErr> {
    let mut workspace_ids: Vec<&str> = keys
        .iter()
        .map(|(workspace_id, _)| workspace_id.as_str())
        .collect();
    workspace_ids.sort_unstable();
    workspace_ids.dedup();
    if is_sqlite(txn) {
        return read_spends_sqlite(txn, workspace_ids, keys).await;
    }
    #[derive(Serialize)]
    struct Key<'a> {
        workspace_id: &'a str,
        key: &'a str,
    }
    let keys: Vec<Key<'_>> = keys
        .iter()
        .map(|(workspace_id, key)| Key { workspace_id, key })
        .collect();
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        SPEND_READS_SQL,
        [
            json(&workspace_ids)?,
            json(&keys)?,
            Value::from(LedgerKind::Spend.as_str()),
        ],
    );
    for _ in 0..2 {
        let row = txn
            .query_one_raw(statement.clone())
            .await?
            .ok_or_else(|| DbErr::Custom("the batch read returned no row".to_owned()))?;
        let column = |name: &str| row.try_get::<String>("", name);
        let reads = SpendReads {
            wallets: from_json(&column("wallets")?)?,
            grants: from_json(&column("grants")?)?,
            bound: from_json(&column("bound")?)?,
            costs: from_json(&column("costs")?)?,
        };
        let seen: Vec<Seen> = from_json(&column("seen")?)?;
        let current = reads.wallets.iter().all(|wallet| {
            seen.iter()
                .any(|seen| seen.id == wallet.id && seen.last_sequence == wallet.last_sequence)
        });
        if current {
            return Ok(reads);
        }
    }
    Err(DbErr::Custom(
        "wallets changed under their locks while a batch read them".to_owned(),
    ))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, DbErr> {
    serde_json::from_str(text).map_err(|error| DbErr::Custom(format!("decoding a batch read: {error}")))
}

async fn read_spends_sqlite(
    txn: &impl ConnectionTrait,
    workspace_ids: Vec<&str>,
    keys: &[(String, String)],
) -> Result<SpendReads, DbErr> {
    let wallets = lock_wallets_sqlite(txn, workspace_ids).await?;
    let grants = live_grants_of(txn, wallets.iter().map(|wallet| wallet.id).collect()).await?;
    let pairs: Vec<(i64, String)> = keys
        .iter()
        .filter_map(|(workspace_id, key)| {
            let wallet = wallets
                .iter()
                .find(|wallet| wallet.workspace_id == *workspace_id)?;
            Some((wallet.id, key.clone()))
        })
        .collect();
    let bound = keyed_spends(txn, &pairs).await?;
    let costs = super::catalogue::action_costs(txn).await?;
    Ok(SpendReads {
        wallets,
        grants,
        bound,
        costs,
    })
}

#[derive(Serialize)]
struct GrantDelta {
    id: i64,
    delta: i64,
}

/// Most grants one SQLite statement moves (two parameters each).
const SQLITE_GRANTS_PER_STATEMENT: usize = 4_000;

/// SQLite: moves many live grants' remaining credits by signed deltas, one
/// per grant, in as few statements as the parameter limit allows. Each
/// move is guarded as a single spend's is (live, never below zero): a
/// grant that does not match fails the whole batch.
async fn move_grants_sqlite(txn: &impl ConnectionTrait, deltas: &[(i64, i64)]) -> Result<(), DbErr> {
    for chunk in deltas.chunks(SQLITE_GRANTS_PER_STATEMENT) {
        let values: Vec<Value> = chunk
            .iter()
            .flat_map(|(id, delta)| [Value::from(*id), Value::from(*delta)])
            .collect();
        let rows = vec!["(?, ?)"; chunk.len()].join(", ");
        let result = txn
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!(
                    "WITH v(id, delta) AS (VALUES {rows}) \
                     UPDATE credit_grant SET remaining_credits = credit_grant.remaining_credits + v.delta \
                     FROM v WHERE credit_grant.id = v.id AND credit_grant.expired_at IS NULL \
                     AND credit_grant.remaining_credits + v.delta >= 0"
                ),
                values,
            ))
            .await?;
        if result.rows_affected() != chunk.len() as u64 {
            return Err(DbErr::Custom(format!(
                "{} of {} grants cannot move",
                chunk.len() as u64 - result.rows_affected(),
                chunk.len()
            )));
        }
    }
    Ok(())
}

/// Inserts grant moves.
pub async fn insert_moves(txn: &impl ConnectionTrait, moves: Vec<NewMove>) -> Result<(), DbErr> {
    if moves.is_empty() {
        return Ok(());
    }
    if is_sqlite(txn) {
        let models = moves.into_iter().map(|movement| ledger_entry_grant::ActiveModel {
            ledger_entry_id: Set(movement.ledger_entry_id),
            credit_grant_id: Set(movement.credit_grant_id),
            amount_credits: Set(movement.amount_credits),
            ..Default::default()
        });
        ledger_entry_grant::Entity::insert_many(models)
            .exec_without_returning(txn)
            .await?;
        return Ok(());
    }
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO ledger_entry_grant (ledger_entry_id, credit_grant_id, amount_credits) \
         SELECT x.ledger_entry_id, x.credit_grant_id, x.amount_credits \
         FROM json_to_recordset($1::json) AS x(ledger_entry_id bigint, credit_grant_id bigint, amount_credits bigint)",
        [json(&moves)?],
    ))
    .await?;
    Ok(())
}

/// Inserts low-balance alerts.
pub async fn insert_alerts(
    txn: &impl ConnectionTrait,
    alerts: Vec<low_balance_alert::ActiveModel>,
) -> Result<(), DbErr> {
    if alerts.is_empty() {
        return Ok(());
    }
    low_balance_alert::Entity::insert_many(alerts)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

fn placeholder(backend: DbBackend, index: usize) -> String {
    if backend == DbBackend::Postgres {
        format!("${index}")
    } else {
        "?".to_owned()
    }
}

/// Writes many wallet heads in one statement, each guarded on the sequence
/// read under the lock. Fails if any wallet changed meanwhile.
pub async fn save_wallets(
    txn: &impl ConnectionTrait,
    wallets: &[(wallet::Model, i64)],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if wallets.is_empty() {
        return Ok(());
    }
    let backend = txn.get_database_backend();
    if backend == DbBackend::Postgres {
        return save_wallets_postgres(txn, wallets, now).await;
    }
    let mut values: Vec<Value> = Vec::with_capacity(wallets.len() * 9 + 1);
    let mut rows = Vec::with_capacity(wallets.len());
    for (wallet, sequence_read) in wallets {
        let mut slots = Vec::with_capacity(9);
        for value in [
            Value::from(wallet.id),
            Value::from(*sequence_read),
            Value::from(wallet.balance_credits),
            Value::from(wallet.last_sequence),
            Value::from(wallet.plan_code.clone()),
            Value::from(wallet.pending_plan_code.clone()),
            Value::from(wallet.period_start_at),
            Value::from(wallet.period_end_at),
            Value::from(wallet.low_balance_alerted_at),
        ] {
            values.push(value);
            slots.push(placeholder(backend, values.len()));
        }
        rows.push(format!("({})", slots.join(", ")));
    }
    values.push(Value::from(now));
    let now_slot = placeholder(backend, values.len());
    let sql = format!(
        "WITH v(id, sequence_read, balance_credits, last_sequence, plan_code, pending_plan_code, period_start_at, \
         period_end_at, low_balance_alerted_at) AS (VALUES {}) \
         UPDATE wallet SET balance_credits = v.balance_credits, last_sequence = v.last_sequence, \
         plan_code = v.plan_code, pending_plan_code = v.pending_plan_code, period_start_at = v.period_start_at, \
         period_end_at = v.period_end_at, low_balance_alerted_at = v.low_balance_alerted_at, updated_at = {now_slot} \
         FROM v WHERE wallet.id = v.id AND wallet.last_sequence = v.sequence_read",
        rows.join(", ")
    );
    let result = txn
        .execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    all_saved(wallets.len(), result.rows_affected())
}

/// Every guarded head write must have matched its wallet.
fn all_saved(expected: usize, saved: u64) -> Result<(), DbErr> {
    if saved == expected as u64 {
        return Ok(());
    }
    Err(DbErr::Custom(format!(
        "{} of {expected} wallets changed under their lock",
        expected as u64 - saved
    )))
}

#[derive(Serialize)]
struct WalletHead<'a> {
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
async fn save_wallets_postgres(
    txn: &impl ConnectionTrait,
    wallets: &[(wallet::Model, i64)],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
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

/// Longest NOTIFY payload sent (PostgreSQL's limit is 8,000 bytes).
const NOTIFY_PAYLOAD_MAX_BYTES: usize = 7_000;

/// Payloads joined with `,` into as few as fit PostgreSQL's limit.
fn notify_chunks(payloads: Vec<String>) -> Vec<String> {
    let mut chunks: Vec<String> = Vec::new();
    for payload in payloads {
        match chunks.last_mut() {
            Some(chunk) if chunk.len() + 1 + payload.len() <= NOTIFY_PAYLOAD_MAX_BYTES => {
                chunk.push(',');
                chunk.push_str(&payload);
            }
            _ => chunks.push(payload),
        }
    }
    chunks
}

/// `NOTIFY` many payloads on one channel (PostgreSQL): joined with `,` into
/// as few notifications as fit the payload limit, all in one statement.
pub async fn notify_many(
    txn: &impl ConnectionTrait,
    channel: &str,
    payloads: Vec<String>,
) -> Result<(), DbErr> {
    if payloads.is_empty() || is_sqlite(txn) {
        return Ok(());
    }
    let chunks = notify_chunks(payloads);
    let mut values: Vec<Value> = vec![channel.into()];
    let mut rows = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        values.push(chunk.into());
        rows.push(format!("(${})", values.len()));
    }
    let sql = format!(
        "SELECT pg_notify($1, p) FROM (VALUES {}) AS t(p)",
        rows.join(", ")
    );
    txn.query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
        .await?;
    Ok(())
}

/// A grant move of a row not yet written, named by (wallet, sequence).
#[derive(Debug, Clone, Serialize)]
pub struct RowMove {
    /// The row's wallet.
    pub wallet_id: i64,
    /// The row's sequence.
    pub sequence: i64,
    /// The grant.
    pub credit_grant_id: i64,
    /// Signed credits.
    pub amount_credits: i64,
}

/// Everything a batch of spends writes.
#[derive(Debug, Default)]
pub struct SpendWrites {
    /// The SPEND rows.
    pub rows: Vec<NewRow>,
    /// Their grant moves.
    pub moves: Vec<RowMove>,
    /// Net change of each grant touched: (grant id, signed credits).
    pub deltas: Vec<(i64, i64)>,
    /// Changed wallet heads, each with the sequence read under the lock.
    pub heads: Vec<(wallet::Model, i64)>,
    /// NOTIFY payloads for other instances (PostgreSQL).
    pub notifications: Vec<String>,
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
) -> Result<Vec<ledger_entry::Model>, DbErr> {
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
                Value::from(notify_chunks(writes.notifications).join("\u{1f}")),
            ],
        ))
        .await?
        .map(|row| row.try_get::<i64>("", "heads_saved"))
        .transpose()?
        .unwrap_or(0);
    all_saved(writes.heads.len(), u64::try_from(saved).unwrap_or(0))?;
    rows.iter()
        .map(|row| ledger_entry::Model::from_query_result(row, ""))
        .collect()
}

async fn write_spends_sqlite(
    txn: &impl ConnectionTrait,
    writes: SpendWrites,
    now: DateTime<Utc>,
) -> Result<Vec<ledger_entry::Model>, DbErr> {
    let stored = insert_rows(txn, writes.rows, now).await?;
    let id_of = |wallet_id: i64, sequence: i64| {
        stored
            .iter()
            .find(|row| row.wallet_id == wallet_id && row.sequence == sequence)
            .map(|row| row.id)
            .ok_or_else(|| DbErr::Custom("a batch row was not returned by its insert".to_owned()))
    };
    let moves = writes
        .moves
        .iter()
        .map(|movement| {
            Ok(NewMove {
                ledger_entry_id: id_of(movement.wallet_id, movement.sequence)?,
                credit_grant_id: movement.credit_grant_id,
                amount_credits: movement.amount_credits,
            })
        })
        .collect::<Result<_, DbErr>>()?;
    insert_moves(txn, moves).await?;
    move_grants_sqlite(txn, &writes.deltas).await?;
    save_wallets(txn, &writes.heads, now).await?;
    Ok(stored)
}
