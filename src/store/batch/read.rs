//! The spend batch's read under lock: wallets, live grants, keys already
//! bound, action costs, budgets and their counters: one statement on each
//! backend.

use std::collections::HashMap;

use entity::{
    action_cost, auto_top_up, budget, budget_counter, credit_grant, credit_hold, ledger_entry, wallet,
};
use sea_orm::{ConnectionTrait, DbBackend, IdenStatic, Iterable, Statement};
use serde::Serialize;

use super::postgres::*;
use crate::store::is_sqlite;
use crate::store::{Result, internal};
use domain::budget::Counter;
use domain::catalogue::LedgerKind;
use domain::views::{ActionCostView, TransactionView};
use domain::wallet::WalletState;

/// What a batch of spends reads under its wallets' locks, as stored.
#[derive(Debug)]
pub(super) struct SpendReads {
    /// The wallets found, locked, in id order.
    pub wallets: Vec<wallet::Model>,
    /// Their live grants, in id order.
    pub grants: Vec<credit_grant::Model>,
    /// The SPEND or HOLD rows that keys asked for already bound.
    pub bound: Vec<ledger_entry::Model>,
    /// The catalogue's action costs.
    pub costs: Vec<action_cost::Model>,
    /// The wallets' budgets.
    pub budgets: Vec<budget::Model>,
    /// Their counters for the batch's subjects.
    pub counters: Vec<budget_counter::Model>,
    /// The automatic top-ups of the wallets that have it on.
    pub autos: Vec<auto_top_up::Model>,
    /// The live holds of the wallets that hold credits.
    pub holds: Vec<credit_hold::Model>,
}

/// A key some spend already bound.
#[derive(Debug, Clone)]
pub struct BoundSpend {
    /// The wallet.
    pub wallet_id: i64,
    /// The key.
    pub key: String,
    /// The identity of the request that bound it.
    pub fingerprint: String,
    /// The row it bound.
    pub transaction: TransactionView,
}

/// What a batch of spends reads under its wallets' locks.
#[derive(Debug)]
pub struct SpendBatch {
    /// The wallets found, locked, in id order.
    pub states: Vec<WalletState>,
    /// The SPEND or HOLD rows that keys asked for already bound.
    pub bound: Vec<BoundSpend>,
    /// The catalogue's action costs.
    pub costs: Vec<ActionCostView>,
}

impl SpendReads {
    fn parse(self) -> Result<SpendBatch> {
        let bound = self
            .bound
            .into_iter()
            .filter_map(|row| {
                let key = row.idempotency_key.clone()?;
                Some((row.wallet_id, key, row))
            })
            .map(|(wallet_id, key, row)| {
                Ok(BoundSpend {
                    wallet_id,
                    key,
                    fingerprint: row.idempotency_fingerprint.clone().unwrap_or_default(),
                    transaction: crate::store::rows::transaction(row)?,
                })
            })
            .collect::<Result<_>>()?;
        let mut states = crate::store::rows::states(self.wallets, self.grants, self.holds)?;
        crate::store::rows::attach_auto_top_ups(&mut states, self.autos);
        // Budgets in id order (the first HARD budget over its limit is the
        // one a refusal names), each with its counters, on its wallet.
        let mut budgets = self.budgets;
        budgets.sort_unstable_by_key(|budget| budget.id);
        let mut counters: HashMap<i64, Vec<Counter>> = HashMap::new();
        for model in self.counters {
            counters
                .entry(model.budget_id)
                .or_default()
                .push(crate::store::rows::counter(model));
        }
        let at: HashMap<i64, usize> = states
            .iter()
            .enumerate()
            .map(|(index, state)| (state.head.id, index))
            .collect();
        for model in budgets {
            let Some(&index) = at.get(&model.wallet_id) else {
                continue;
            };
            let budget = crate::store::rows::budget(model)?;
            let state = &mut states[index];
            state
                .counters
                .extend(counters.remove(&budget.id).unwrap_or_default());
            state.budgets.push(budget);
        }
        Ok(SpendBatch {
            states,
            bound,
            costs: self
                .costs
                .into_iter()
                .map(crate::store::catalogue::cost_view)
                .collect::<Result<_>>()?,
        })
    }
}

/// PostgreSQL: everything a batch of spends reads, in one statement (public
/// so that a test can read its plan). Parameters: the workspace ids and the
/// (workspace_id, key, kind) triples (a spend's key binds a SPEND row, a
/// hold's a HOLD row), each as JSON text, then the (workspace_id, subject) pairs whose budget counters to read (each
/// spend's agent, and `""` for the workspace) as JSON text.
///
/// `s` finds the wallets, one probe per workspace; `w` locks them (`FOR
/// UPDATE`, in id order); the other parts read the statement's snapshot,
/// taken before any wait for those locks. `seen` returns each wallet's
/// sequence in that snapshot: every change to a
/// wallet's grants or keys moves its sequence, so when each locked
/// sequence equals the one seen, what was read is what the lock protects.
/// (The one change that does not, closing an expired grant already at
/// zero, leaves a stale read showing that grant due; settling closes it
/// again, which changes nothing, and appends no row, as it holds nothing.)
/// Budgets are probed per wallet (at most 100 each), and counters per
/// (budget, subject) pair on their primary key; the `LIMIT`s keep PostgreSQL
/// from flattening the `LATERAL` probes into joins it may plan as scans of
/// the whole table. Keys are probed one by one (`LATERAL … LIMIT 1`, all three columns of
/// the keys' unique index equal; `wallet_id + 0` as that index has it, see
/// migration 4, so that no other index on the wallet can be chosen instead):
/// the earlier `key IN (…)` beside
/// `wallet_id IN (…)` was planned, before the table had statistics, as an
/// index scan on the wallet alone with the keys as a filter over the
/// wallet's whole history, so every batch of a busy wallet was slower than
/// the one before.
pub const SPEND_READS_SQL: &str = "\
    WITH s AS (SELECT r.* FROM json_array_elements_text($1::json) AS x(workspace_id) \
      CROSS JOIN LATERAL (SELECT id, workspace_id, last_sequence, budget_version FROM wallet \
        WHERE wallet.workspace_id = x.workspace_id LIMIT 1) AS r), \
    w AS (SELECT * FROM wallet WHERE id = ANY(ARRAY(SELECT id FROM s)) ORDER BY id FOR UPDATE), \
    k AS (SELECT r.* FROM json_to_recordset($2::json) AS x(workspace_id text, key text, kind text) \
      JOIN s ON s.workspace_id = x.workspace_id \
      CROSS JOIN LATERAL (SELECT * FROM ledger_entry e \
        WHERE e.wallet_id + 0 = s.id AND e.kind = x.kind AND e.idempotency_key = x.key LIMIT 1) AS r), \
    b AS (SELECT r.* FROM s CROSS JOIN LATERAL (SELECT * FROM budget WHERE budget.wallet_id = s.id LIMIT 100) AS r), \
    u AS (SELECT c.* FROM json_to_recordset($3::json) AS x(workspace_id text, subject text) \
      JOIN s ON s.workspace_id = x.workspace_id JOIN b ON b.wallet_id = s.id \
      CROSS JOIN LATERAL (SELECT * FROM budget_counter \
        WHERE budget_counter.budget_id = b.id AND budget_counter.subject = x.subject LIMIT 1) AS c) \
    SELECT (SELECT COALESCE(json_agg(w ORDER BY w.id), '[]') FROM w)::text AS wallets, \
      (SELECT COALESCE(json_agg(s), '[]') FROM s)::text AS seen, \
      (SELECT COALESCE(json_agg(g ORDER BY g.id), '[]') FROM credit_grant g \
        WHERE g.wallet_id = ANY(ARRAY(SELECT id FROM s)) AND g.expired_at IS NULL)::text AS grants, \
      (SELECT COALESCE(json_agg(k), '[]') FROM k)::text AS bound, \
      (SELECT COALESCE(json_agg(c), '[]') FROM action_cost c)::text AS costs, \
      (SELECT COALESCE(json_agg(b ORDER BY b.id), '[]') FROM b)::text AS budgets, \
      (SELECT COALESCE(json_agg(u), '[]') FROM u)::text AS counters, \
      (SELECT COALESCE(json_agg(a), '[]') FROM auto_top_up a WHERE a.wallet_id = ANY(ARRAY( \
        SELECT id FROM w WHERE w.auto_top_up_threshold_credits IS NOT NULL)))::text AS autos, \
      (SELECT COALESCE(json_agg(h ORDER BY h.id), '[]') FROM credit_hold h WHERE h.state = 'HELD' \
        AND h.wallet_id = ANY(ARRAY(SELECT id FROM w WHERE w.held_credits > 0)))::text AS holds";

/// A wallet's sequence as the snapshot of [`SPEND_READS_SQL`] saw it.
#[derive(serde::Deserialize)]
pub(super) struct Seen {
    id: i64,
    last_sequence: i64,
    budget_version: i64,
}

/// Locks the wallets of `workspaces` (in id order, so batches sharing
/// wallets cannot deadlock) and reads, under those locks, their live grants
/// and live holds, the SPEND or HOLD rows that the (workspace, key, kind)
/// `keys` already bound, the action costs, the wallets' budgets and their
/// counters for the (workspace, subject) pairs in `subjects`.
///
/// PostgreSQL: one statement (see [`SPEND_READS_SQL`]), run a second time
/// (the locks then held, its snapshot fresh) when a wallet changed between
/// its snapshot and its lock. SQLite: one statement too, read under the
/// database's write lock, which the caller's transaction holds: it must be
/// one from [`crate::store::begin_write`] (`BEGIN IMMEDIATE`).
pub async fn read_spends(
    txn: &impl ConnectionTrait,
    workspaces: &[&str],
    keys: &[(String, String, LedgerKind)],
    subjects: &[(String, String)],
) -> Result<SpendBatch> {
    read_stored(txn, workspaces, keys, subjects).await?.parse()
}

async fn read_stored(
    txn: &impl ConnectionTrait,
    workspaces: &[&str],
    keys: &[(String, String, LedgerKind)],
    subjects: &[(String, String)],
) -> Result<SpendReads> {
    let mut workspace_ids: Vec<&str> = workspaces.to_vec();
    workspace_ids.sort_unstable();
    workspace_ids.dedup();
    // A key asked twice in a batch is probed once.
    let mut keys: Vec<Key<'_>> = keys
        .iter()
        .map(|(workspace_id, key, kind)| Key {
            workspace_id,
            key,
            kind: kind.as_str(),
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let subjects: Vec<Subject<'_>> = subjects
        .iter()
        .map(|(workspace_id, subject)| Subject {
            workspace_id,
            subject,
        })
        .collect();
    if is_sqlite(txn) {
        return read_spends_sqlite(txn, workspace_ids, &keys, &subjects).await;
    }
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        SPEND_READS_SQL,
        [json(&workspace_ids)?, json(&keys)?, json(&subjects)?],
    );
    for _ in 0..2 {
        let row = txn
            .query_one_raw(statement.clone())
            .await?
            .ok_or_else(|| internal("the batch read returned no row".to_owned()))?;
        let column = |name: &str| row.try_get::<String>("", name);
        let reads = SpendReads {
            wallets: from_json(&column("wallets")?)?,
            grants: from_json(&column("grants")?)?,
            bound: from_json(&column("bound")?)?,
            costs: from_json(&column("costs")?)?,
            budgets: from_json(&column("budgets")?)?,
            counters: from_json(&column("counters")?)?,
            autos: from_json(&column("autos")?)?,
            holds: from_json(&column("holds")?)?,
        };
        let seen: Vec<Seen> = from_json(&column("seen")?)?;
        let current = reads.wallets.iter().all(|wallet| {
            seen.iter().any(|seen| {
                seen.id == wallet.id
                    && seen.last_sequence == wallet.last_sequence
                    && seen.budget_version == wallet.budget_version
            })
        });
        if current {
            return Ok(reads);
        }
    }
    Err(internal(
        "wallets changed under their locks while a batch read them".to_owned(),
    ))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|error| internal(format!("decoding a batch read: {error}")))
}

/// A JSON object of every column of `C`'s table under `alias`, each named
/// as its entity's field (the entities rename none), so the read cannot
/// drift from the entities it is decoded into.
fn json_row<C: Iterable + IdenStatic>(alias: &str) -> String {
    let pairs: Vec<String> = C::iter()
        .map(|column| format!("'{0}', {alias}.{0}", column.as_str()))
        .collect();
    format!("json_object({})", pairs.join(", "))
}

/// SQLite: everything a batch of spends reads, in one statement returning
/// one row of JSON columns, as on PostgreSQL (public so that a test can
/// read its plan); each statement is a round trip to sqlx's SQLite thread
/// (`docs/benchmarks.md`, a lone spend). Parameters: the workspace ids,
/// the (workspace_id, key) pairs and the (workspace_id, subject) pairs, each
/// as JSON text. Read under the write lock (`BEGIN IMMEDIATE` took it: a
/// statement to take it again was a trip for nothing), so it is what the
/// lock protects. Keys and counters are probed per pair (`CROSS JOIN` keeps the
/// pairs as the outer loop; keys on `wallet_id + 0`, see migration 4,
/// compared with `w.id + 0`: against the bare rowid SQLite scanned the
/// ledger instead).
pub static SQLITE_SPEND_READS_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let wallet = json_row::<wallet::Column>("w");
    let grant = json_row::<credit_grant::Column>("g");
    let entry = json_row::<ledger_entry::Column>("e");
    let cost = json_row::<action_cost::Column>("c");
    let hold = json_row::<credit_hold::Column>("h");
    let budget = json_row::<budget::Column>("b");
    let counter = json_row::<budget_counter::Column>("u");
    // SQLite keeps a boolean as 0 or 1: JSON's `true`/`false` for serde.
    let auto = json_row::<auto_top_up::Column>("a").replace(
        "'enabled', a.enabled",
        "'enabled', json(iif(a.enabled, 'true', 'false'))",
    );
    format!(
        "SELECT \
         (SELECT json_group_array({wallet}) FROM json_each(?1) AS x \
           CROSS JOIN wallet w ON w.workspace_id = x.value) AS wallets, \
         (SELECT json_group_array({grant}) FROM json_each(?1) AS x \
           CROSS JOIN wallet w ON w.workspace_id = x.value \
           CROSS JOIN credit_grant g ON g.wallet_id = w.id AND g.expired_at IS NULL) AS grants, \
         (SELECT json_group_array({entry}) FROM jsonb_each(?2) AS v \
           CROSS JOIN wallet w ON w.workspace_id = json_extract(v.value, '$.workspace_id') \
           CROSS JOIN ledger_entry e ON e.wallet_id + 0 = w.id + 0 \
             AND e.kind = json_extract(v.value, '$.kind') \
             AND e.idempotency_key = json_extract(v.value, '$.key')) AS bound, \
         (SELECT json_group_array({cost}) FROM action_cost c) AS costs, \
         (SELECT json_group_array({budget}) FROM json_each(?1) AS x \
           CROSS JOIN wallet w ON w.workspace_id = x.value \
           CROSS JOIN budget b ON b.wallet_id = w.id) AS budgets, \
         (SELECT json_group_array({counter}) FROM jsonb_each(?3) AS v \
           CROSS JOIN wallet w ON w.workspace_id = json_extract(v.value, '$.workspace_id') \
           CROSS JOIN budget b ON b.wallet_id = w.id \
           CROSS JOIN budget_counter u ON u.budget_id = b.id \
             AND u.subject = json_extract(v.value, '$.subject')) AS counters, \
         (SELECT json_group_array({auto}) FROM json_each(?1) AS x \
           CROSS JOIN wallet w ON w.workspace_id = x.value \
           CROSS JOIN auto_top_up a ON a.wallet_id = w.id \
           WHERE w.auto_top_up_threshold_credits IS NOT NULL) AS autos, \
         (SELECT json_group_array({hold}) FROM json_each(?1) AS x \
           CROSS JOIN wallet w ON w.workspace_id = x.value \
           CROSS JOIN credit_hold h ON h.wallet_id = w.id AND h.state = 'HELD' \
           WHERE w.held_credits > 0) AS holds"
    )
});

/// A (workspace, key) pair as both backends' statements read it.
#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct Key<'a> {
    workspace_id: &'a str,
    key: &'a str,
    kind: &'a str,
}

/// A (workspace, budget subject) pair as both backends' statements read it.
#[derive(Serialize)]
struct Subject<'a> {
    workspace_id: &'a str,
    subject: &'a str,
}

async fn read_spends_sqlite(
    txn: &impl ConnectionTrait,
    workspace_ids: Vec<&str>,
    keys: &[Key<'_>],
    subjects: &[Subject<'_>],
) -> Result<SpendReads> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            SQLITE_SPEND_READS_SQL.as_str(),
            [json(&workspace_ids)?, json(&keys)?, json(&subjects)?],
        ))
        .await?
        .ok_or_else(|| internal("the batch read returned no row".to_owned()))?;
    let column = |name: &str| row.try_get::<String>("", name);
    let mut wallets: Vec<wallet::Model> = from_json(&column("wallets")?)?;
    wallets.sort_unstable_by_key(|wallet| wallet.id);
    let mut grants: Vec<credit_grant::Model> = from_json(&column("grants")?)?;
    grants.sort_unstable_by_key(|grant| grant.id);
    Ok(SpendReads {
        wallets,
        grants,
        bound: from_json(&column("bound")?)?,
        costs: from_json(&column("costs")?)?,
        budgets: from_json(&column("budgets")?)?,
        counters: from_json(&column("counters")?)?,
        autos: from_json(&column("autos")?)?,
        holds: from_json(&column("holds")?)?,
    })
}
