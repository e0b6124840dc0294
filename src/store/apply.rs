//! The one writer of wallet changes: every `domain::wallet::Change`, from a
//! single write, a batch of spends or the renewal sweep, is written here,
//! in a few set-based statements whatever the number of wallets
//! (`docs/design/write-path.md`).
//!
//! Order: budgets set or removed, new grants (their real ids replace the provisional ones), closes,
//! rows with their grant moves, grant deltas, guarded heads, budget
//! counters and NOTIFY, alerts; then, in debug builds, the invariant over every written wallet;
//! then holds (a new one takes its HOLD row's id), automatic top-up's rows and the outbox
//! events the changes cause.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{credit_grant, low_balance_alert};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Set, Statement, Value};
use serde::Serialize;

use super::batch::{NewRow, RowMove, all_saved, json};
use super::{Result, internal, is_sqlite};
use domain::budget::Counter;
use domain::outbox::{NewEvent, events_of_change};
use domain::wallet::{Change, Head, NEW_GRANT_ID_BASE};

/// Writes every change in the caller's transaction; returns, per change,
/// the ids of its rows in row order. Fails, writing nothing that commits,
/// if any wallet moved since it was read (its head write is guarded on the
/// sequence read) or a grant would go below zero.
pub async fn apply(
    txn: &impl ConnectionTrait,
    channel: &str,
    changes: &[Change],
    now: DateTime<Utc>,
) -> Result<Vec<Vec<i64>>> {
    for change in changes {
        super::budgets::write(txn, change.wallet_id, &change.budget_writes, now).await?;
    }
    let new_ids = insert_grants(txn, changes, now).await?;
    let resolve = |wallet_id: i64, grant_id: i64| -> Result<i64> {
        if grant_id < NEW_GRANT_ID_BASE {
            return Ok(grant_id);
        }
        new_ids
            .get(&(wallet_id, grant_id))
            .copied()
            .ok_or_else(|| internal(format!("grant {grant_id} of wallet {wallet_id} was not created")))
    };
    close_grants(
        txn,
        changes
            .iter()
            .flat_map(|change| change.closes.iter().copied())
            .collect(),
        now,
    )
    .await?;
    // A provider's period whose end moved (rare: one statement each).
    for (grant_id, expires_at) in changes.iter().flat_map(|change| &change.expiry_moves) {
        credit_grant::Entity::update_many()
            .col_expr(credit_grant::Column::ExpiresAt, Expr::value(*expires_at))
            .filter(credit_grant::Column::Id.eq(*grant_id))
            .filter(credit_grant::Column::ExpiredAt.is_null())
            .exec(txn)
            .await?;
    }

    let mut writes = Writes::default();
    for change in changes {
        for row in &change.rows {
            writes.rows.push(NewRow::of(change.wallet_id, row));
            for (grant_id, credits) in &row.moves {
                writes.moves.push(RowMove {
                    wallet_id: change.wallet_id,
                    sequence: row.sequence,
                    credit_grant_id: resolve(change.wallet_id, *grant_id)?,
                    amount_credits: *credits,
                });
            }
        }
        writes.counters.extend(&change.counters);
        writes.deltas.extend(change.deltas.iter().map(|delta| GrantDelta {
            wallet_id: change.wallet_id,
            id: delta.id,
            delta: delta.remaining,
            granted: delta.granted,
        }));
        if let Some(head) = &change.head {
            if head.last_sequence != change.sequence_read {
                writes
                    .notifications
                    .push(super::notify::payload(head.last_sequence, &head.workspace_id));
            }
            writes.heads.push((head, change.sequence_read));
        }
    }
    writes.deltas.sort_unstable_by_key(|delta| delta.id);
    writes.heads.sort_unstable_by_key(|(head, _)| head.id);
    let ids = if is_sqlite(txn) {
        write_sqlite(txn, &writes, now).await?
    } else {
        write_postgres(txn, channel, &writes, now).await?
    };
    insert_alerts(txn, changes, now).await?;
    check_heads(txn, &writes.heads).await?;

    let ids = changes
        .iter()
        .map(|change| {
            change
                .rows
                .iter()
                .map(|row| {
                    ids.get(&(change.wallet_id, row.sequence))
                        .copied()
                        .ok_or_else(|| internal("a row was not returned by its insert".to_owned()))
                })
                .collect()
        })
        .collect::<Result<Vec<Vec<i64>>>>()?;
    super::holds::write(txn, changes, &ids, resolve).await?;
    for change in changes {
        if let Some(auto) = &change.auto_top_up {
            super::auto_top_up::write(txn, change.wallet_id, auto, now).await?;
        }
    }
    // The outbox, in this same transaction (`docs/design/webhooks.md`).
    let events: Vec<NewEvent> = changes
        .iter()
        .zip(&ids)
        .flat_map(|(change, ids)| events_of_change(change, ids))
        .collect();
    apply_events(txn, &events, now).await?;
    Ok(ids)
}

/// Writes events that belong to no wallet's change (the sweeps' notices:
/// a trial ending, a runway running short), as `apply` writes a change's:
/// the store's one writer of events. Returns how many were new.
pub async fn apply_events(
    txn: &impl ConnectionTrait,
    events: &[NewEvent],
    now: DateTime<Utc>,
) -> Result<usize> {
    if events.is_empty() {
        return Ok(0);
    }
    super::outbox::insert_events(txn, events, now, crate::clock::wall()).await
}

/// What one batch writes after its grants exist.
#[derive(Default)]
struct Writes<'a> {
    rows: Vec<NewRow>,
    moves: Vec<RowMove>,
    deltas: Vec<GrantDelta>,
    heads: Vec<(&'a Head, i64)>,
    notifications: Vec<String>,
    counters: Vec<&'a Counter>,
}

impl Writes<'_> {
    /// The counters and heads as both backends' statements read them.
    fn counters_and_heads(
        &self,
    ) -> (
        Vec<super::budgets::CounterRow<'_>>,
        Vec<super::batch::WalletHead<'_>>,
    ) {
        let counters = self
            .counters
            .iter()
            .map(|counter| super::budgets::CounterRow::of(counter))
            .collect();
        let heads = self
            .heads
            .iter()
            .map(|(head, sequence_read)| super::batch::WalletHead::of(head, *sequence_read))
            .collect();
        (counters, heads)
    }
}

/// How a stored grant moves.
#[derive(Debug, Clone, Copy, Serialize)]
struct GrantDelta {
    #[serde(skip)]
    wallet_id: i64,
    id: i64,
    delta: i64,
    granted: i64,
}

/// A grant to insert, with its provisional id.
#[derive(Serialize)]
struct NewGrant<'a> {
    id: i64,
    wallet_id: i64,
    provisional: i64,
    source: &'static str,
    granted_credits: i64,
    remaining_credits: i64,
    expires_at: Option<DateTime<Utc>>,
    period_start_at: Option<DateTime<Utc>>,
    pack_code: Option<&'a str>,
    price_cents: Option<i64>,
    currency: Option<&'a str>,
}

/// Inserts the changes' new grants, holding what they hold at the end of
/// their change; returns (wallet id, provisional id) → id.
///
/// Ids are chosen before the insert, so no RETURNING order is relied on:
/// PostgreSQL draws them from the table's sequence in the same statement;
/// SQLite, holding the database's write lock, counts up from the largest.
async fn insert_grants(
    txn: &impl ConnectionTrait,
    changes: &[Change],
    now: DateTime<Utc>,
) -> Result<HashMap<(i64, i64), i64>> {
    let mut grants: Vec<NewGrant<'_>> = changes
        .iter()
        .flat_map(|change| {
            change.new_grants.iter().map(|grant| NewGrant {
                id: 0,
                wallet_id: change.wallet_id,
                provisional: grant.id,
                source: grant.source.as_str(),
                granted_credits: grant.granted,
                remaining_credits: grant.remaining,
                expires_at: grant.expires_at,
                period_start_at: grant.period_start_at,
                pack_code: grant.purchase.as_ref().map(|purchase| purchase.pack.as_str()),
                price_cents: grant.purchase.as_ref().map(|purchase| purchase.price_cents),
                currency: grant.purchase.as_ref().map(|purchase| purchase.currency.as_str()),
            })
        })
        .collect();
    if grants.is_empty() {
        return Ok(HashMap::new());
    }
    if is_sqlite(txn) {
        let largest = txn
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT COALESCE(MAX(id), 0) AS largest FROM credit_grant",
            ))
            .await?
            .map(|row| row.try_get::<i64>("", "largest"))
            .transpose()?
            .unwrap_or(0);
        for (offset, grant) in (1..).zip(grants.iter_mut()) {
            grant.id = largest + offset;
        }
        let models = grants.iter().map(|grant| credit_grant::ActiveModel {
            id: Set(grant.id),
            wallet_id: Set(grant.wallet_id),
            source: Set(grant.source.to_owned()),
            granted_credits: Set(grant.granted_credits),
            remaining_credits: Set(grant.remaining_credits),
            expires_at: Set(grant.expires_at),
            expired_at: Set(None),
            period_start_at: Set(grant.period_start_at),
            pack_code: Set(grant.pack_code.map(str::to_owned)),
            price_cents: Set(grant.price_cents),
            currency: Set(grant.currency.map(str::to_owned)),
            created_at: Set(now),
        });
        credit_grant::Entity::insert_many(models)
            .exec_without_returning(txn)
            .await?;
        return Ok(grants
            .iter()
            .map(|grant| ((grant.wallet_id, grant.provisional), grant.id))
            .collect());
    }
    // `n` calls nextval, so PostgreSQL evaluates it once (materialised) for
    // both the insert and the answer.
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "WITH n AS (SELECT x.*, nextval(pg_get_serial_sequence('credit_grant', 'id')) AS new_id \
             FROM json_to_recordset($1::json) AS x(wallet_id bigint, provisional bigint, source text, \
             granted_credits bigint, remaining_credits bigint, expires_at timestamptz, \
             period_start_at timestamptz, pack_code text, price_cents bigint, currency text)), \
             i AS (INSERT INTO credit_grant (id, wallet_id, source, granted_credits, remaining_credits, \
             expires_at, period_start_at, pack_code, price_cents, currency, created_at) \
             SELECT new_id, wallet_id, source, granted_credits, remaining_credits, expires_at, \
             period_start_at, pack_code, price_cents, currency, $2 FROM n RETURNING id) \
             SELECT n.wallet_id, n.provisional, n.new_id, (SELECT COUNT(*) FROM i) AS inserted FROM n",
            [json(&grants)?, Value::from(now)],
        ))
        .await?;
    let mut ids = HashMap::with_capacity(rows.len());
    for row in &rows {
        ids.insert(
            (
                row.try_get::<i64>("", "wallet_id")?,
                row.try_get::<i64>("", "provisional")?,
            ),
            row.try_get::<i64>("", "new_id")?,
        );
    }
    if ids.len() != grants.len() {
        return Err(internal(format!(
            "{} of {} new grants were inserted",
            ids.len(),
            grants.len()
        )));
    }
    Ok(ids)
}

/// Closes expired grants (still live: a grant already closed stays as it
/// was closed).
async fn close_grants(txn: &impl ConnectionTrait, ids: Vec<i64>, now: DateTime<Utc>) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    credit_grant::Entity::update_many()
        .col_expr(credit_grant::Column::RemainingCredits, Expr::value(0i64))
        .col_expr(credit_grant::Column::ExpiredAt, Expr::value(now))
        .filter(credit_grant::Column::Id.is_in(ids))
        .filter(credit_grant::Column::ExpiredAt.is_null())
        .exec(txn)
        .await?;
    Ok(())
}

/// PostgreSQL: two statements, each part a data-modifying CTE fed by a
/// JSON parameter: the rows and their moves (whose foreign-key checks lock
/// the wallet and grant rows), then the updates of those rows, and NOTIFY.
/// Updated in the inserts' statement, each key check chased the rows' new
/// versions (`docs/benchmarks.md`, planner traps).
async fn write_postgres(
    txn: &impl ConnectionTrait,
    channel: &str,
    writes: &Writes<'_>,
    now: DateTime<Utc>,
) -> Result<HashMap<(i64, i64), i64>> {
    let mut ids = HashMap::with_capacity(writes.rows.len());
    if !writes.rows.is_empty() {
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
                     SELECT id, wallet_id, sequence FROM r",
                    super::batch::insert_rows_sql("$2", "$1", "id, wallet_id, sequence")
                ),
                [Value::from(now), json(&writes.rows)?, json(&writes.moves)?],
            ))
            .await?;
        for row in &rows {
            ids.insert(
                (
                    row.try_get::<i64>("", "wallet_id")?,
                    row.try_get::<i64>("", "sequence")?,
                ),
                row.try_get::<i64>("", "id")?,
            );
        }
    }
    if writes.deltas.is_empty() && writes.heads.is_empty() && writes.counters.is_empty() {
        return Ok(ids);
    }
    let (counters, heads) = writes.counters_and_heads();
    let saved = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "WITH g AS ({} RETURNING credit_grant.id), h AS ({} RETURNING wallet.id), \
                 c AS ({} RETURNING 1), \
                 n AS (SELECT pg_notify($6, p) FROM unnest(string_to_array($7, chr(31))) AS p) \
                 SELECT (SELECT COUNT(*) FROM g) AS grants_moved, (SELECT COUNT(*) FROM h) AS heads_saved, \
                 (SELECT COUNT(*) FROM c) AS counters_written, (SELECT COUNT(*) FROM n) AS notified",
                super::batch::move_grants_sql("$1", "$2", "$9"),
                super::batch::save_heads_sql("$4", "$3", "$5"),
                super::budgets::counters_upsert_sql("$8"),
            ),
            [
                json(&writes.deltas)?,
                super::batch::id_list(writes.deltas.iter().map(|delta| delta.id)),
                Value::from(now),
                json(&heads)?,
                super::batch::id_list(writes.heads.iter().map(|(head, _)| head.id)),
                Value::from(channel),
                Value::from(super::notify::chunks(writes.notifications.clone()).join("\u{1f}")),
                json(&counters)?,
                super::batch::id_list(writes.deltas.iter().map(|delta| delta.wallet_id)),
            ],
        ))
        .await?
        .ok_or_else(|| internal("the batch update returned no row".to_owned()))?;
    let count =
        |column: &str| -> Result<u64> { Ok(u64::try_from(saved.try_get::<i64>("", column)?).unwrap_or(0)) };
    grants_moved(writes.deltas.len(), count("grants_moved")?)?;
    all_saved(writes.heads.len(), count("heads_saved")?)?;
    if count("counters_written")? != writes.counters.len() as u64 {
        return Err(internal("budget counters were not all written".to_owned()));
    }
    Ok(ids)
}

/// Every guarded grant move must have matched its grant.
fn grants_moved(expected: usize, moved: u64) -> Result<()> {
    if moved == expected as u64 {
        return Ok(());
    }
    Err(internal(format!(
        "{} of {expected} grants cannot move",
        expected as u64 - moved
    )))
}

/// SQLite: the same writes as one string of statements, one trip to sqlx's
/// SQLite thread ([`super::batch::SQLITE_WRITES`]); the rows changed are
/// counted against what was asked (a grant that would go below zero, or a
/// head that moved since it was read, changes nothing and falls short).
async fn write_sqlite(
    txn: &impl ConnectionTrait,
    writes: &Writes<'_>,
    now: DateTime<Utc>,
) -> Result<HashMap<(i64, i64), i64>> {
    let asked = writes.rows.len()
        + writes.moves.len()
        + writes.deltas.len()
        + writes.heads.len()
        + writes.counters.len();
    if asked == 0 {
        // A batch that only answered repeats and refusals writes nothing.
        return Ok(HashMap::new());
    }
    let (counters, heads) = writes.counters_and_heads();
    let rows = json(&writes.rows)?;
    let read = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            super::batch::SQLITE_WRITES_SQL.as_str(),
            [
                Value::from(now),
                rows.clone(),
                json(&writes.moves)?,
                json(&writes.deltas)?,
                Value::from(now),
                json(&heads)?,
                json(&counters)?,
                rows,
            ],
        ))
        .await?;
    let [before, after] = read.as_slice() else {
        return Err(internal(format!(
            "the batch write returned {} rows, not 2",
            read.len()
        )));
    };
    let changed = after.try_get::<i64>("", "changes")? - before.try_get::<i64>("", "changes")?;
    if changed != asked as i64 {
        return Err(internal(format!(
            "the batch changed {changed} rows of {asked}: a grant cannot move or a wallet moved under its lock"
        )));
    }
    let ids: Vec<(i64, i64, i64)> = super::batch::from_json(&after.try_get::<String>("", "ids")?)?;
    if ids.len() != writes.rows.len() {
        return Err(internal(format!(
            "{} of {} rows were found",
            ids.len(),
            writes.rows.len()
        )));
    }
    Ok(ids
        .into_iter()
        .map(|(id, wallet_id, sequence)| ((wallet_id, sequence), id))
        .collect())
}

/// Records the changes' low-balance alerts.
async fn insert_alerts(txn: &impl ConnectionTrait, changes: &[Change], now: DateTime<Utc>) -> Result<()> {
    let alerts: Vec<low_balance_alert::ActiveModel> = changes
        .iter()
        .flat_map(|change| {
            change.alerts.iter().map(|alert| low_balance_alert::ActiveModel {
                wallet_id: Set(change.wallet_id),
                threshold_credits: Set(alert.threshold),
                balance_credits: Set(alert.balance.total),
                ledger_sequence: Set(alert.sequence),
                created_at: Set(now),
                ..Default::default()
            })
        })
        .collect();
    if alerts.is_empty() {
        return Ok(());
    }
    low_balance_alert::Entity::insert_many(alerts)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Debug builds: every written head equals the sum of its ledger and of its
/// live grants, and is not negative. Release builds rely on the
/// constraints and the tests.
async fn check_heads(txn: &impl ConnectionTrait, heads: &[(&Head, i64)]) -> Result<()> {
    if !cfg!(debug_assertions) || heads.is_empty() {
        return Ok(());
    }
    let ids = heads.iter().map(|(head, _)| head.id).collect();
    for (wallet_id, ledger_sum, grants_sum) in super::verify::batch_sums(txn, ids).await? {
        let balance = heads
            .iter()
            .find(|(head, _)| head.id == wallet_id)
            .map_or(0, |(head, _)| head.balance);
        if balance != ledger_sum || balance != grants_sum || balance < 0 {
            return Err(internal(format!(
                "ledger invariant broken for wallet {wallet_id}: balance {balance}, ledger {ledger_sum}, grants {grants_sum}"
            )));
        }
    }
    Ok(())
}
