//! Budgets and their counters (`docs/design/budgets.md`). Counters are
//! written by the applier with the change that counted them; budgets too,
//! as `setBudget` and `removeBudget` decided them (`BudgetWrite`).

use chrono::{DateTime, Utc};
use entity::{budget, budget_counter};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, Set,
    Statement,
};

use super::Result;
use super::rows::{budget as parse_budget, counter as parse_counter};
use domain::budget::{Budget, BudgetWrite, Counter};

/// A wallet's budgets, by id.
pub async fn of_wallet(db: &impl ConnectionTrait, wallet_id: i64) -> Result<Vec<Budget>> {
    budget::Entity::find()
        .filter(budget::Column::WalletId.eq(wallet_id))
        .order_by_asc(budget::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(parse_budget)
        .collect()
}

/// The counters of these (budget, subject) pairs, each probed on the
/// primary key (`IN` on both columns would probe every combination).
pub async fn counter_rows(
    db: &impl ConnectionTrait,
    pairs: Vec<(i64, &str)>,
) -> Result<Vec<budget_counter::Model>> {
    let mut pairs = pairs;
    pairs.sort_unstable();
    pairs.dedup();
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    // One fixed statement per backend, fed by a JSON list of pairs; SQLite's
    // CROSS JOIN keeps the pairs as the outer loop.
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT u.* FROM json_to_recordset($1::json) AS v(budget_id bigint, subject text) \
             CROSS JOIN LATERAL (SELECT * FROM budget_counter \
               WHERE budget_counter.budget_id = v.budget_id AND budget_counter.subject = v.subject LIMIT 1) AS u"
        }
        _ => {
            "SELECT u.* FROM jsonb_each(?) AS v CROSS JOIN budget_counter u \
             ON u.budget_id = json_extract(v.value, '$.budget_id') AND u.subject = json_extract(v.value, '$.subject')"
        }
    };
    let pairs: Vec<PairRow<'_>> = pairs
        .iter()
        .map(|(budget_id, subject)| PairRow {
            budget_id: *budget_id,
            subject,
        })
        .collect();
    budget_counter::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            backend,
            sql,
            [super::batch::json(&pairs)?],
        ))
        .all(db)
        .await
        .map_err(Into::into)
}

/// A (budget, subject) pair as the statements of [`counter_rows`] read it.
#[derive(serde::Serialize)]
struct PairRow<'a> {
    budget_id: i64,
    subject: &'a str,
}

/// One wallet's budgets and, for each, its counter for `agent`'s spends
/// (the workspace's for a WORKSPACE budget, the agent's otherwise).
pub async fn load(
    db: &impl ConnectionTrait,
    wallet_id: i64,
    agent: Option<&str>,
) -> Result<(Vec<Budget>, Vec<Counter>)> {
    let budgets = of_wallet(db, wallet_id).await?;
    let subjects: Vec<(i64, String)> = budgets
        .iter()
        .map(|budget| (budget.id, budget.subject(agent)))
        .collect();
    let pairs = subjects
        .iter()
        .map(|(budget_id, subject)| (*budget_id, subject.as_str()))
        .collect();
    let counters = counter_rows(db, pairs)
        .await?
        .into_iter()
        .map(parse_counter)
        .collect();
    Ok((budgets, counters))
}

/// Writes a change's budgets as `domain::budget::revise` decided them: a
/// new one inserted, one updated (its counters dropped when it restarts),
/// one removed with its counters.
pub(super) async fn write(
    txn: &impl ConnectionTrait,
    wallet_id: i64,
    writes: &[BudgetWrite],
    now: DateTime<Utc>,
) -> Result<()> {
    for write in writes {
        let (id, restart) = match write {
            BudgetWrite::Remove { id } => (*id, true),
            BudgetWrite::Save { budget, restart } => (budget.id, *restart),
        };
        if restart {
            budget_counter::Entity::delete_many()
                .filter(budget_counter::Column::BudgetId.eq(id))
                .exec(txn)
                .await?;
        }
        let BudgetWrite::Save { budget, .. } = write else {
            budget::Entity::delete_by_id(id).exec(txn).await?;
            continue;
        };
        let mut model = budget::ActiveModel {
            wallet_id: Set(wallet_id),
            name: Set(budget.name.clone()),
            applies_to: Set(budget.applies_to.as_str().to_owned()),
            agent_id: Set(budget.agent_id.clone()),
            action: Set(budget.action.map(|action| action.as_str().to_owned())),
            budget_window: Set(budget.window.as_str().to_owned()),
            limit_credits: Set(budget.limit),
            mode: Set(budget.mode.as_str().to_owned()),
            counting_since: Set(budget.counting_since),
            created_at: Set(budget.created_at),
            updated_at: Set(now),
            ..Default::default()
        };
        if budget.id == 0 {
            model.insert(txn).await?;
        } else {
            model.id = Set(budget.id);
            model.update(txn).await?;
        }
    }
    Ok(())
}

/// PostgreSQL: the counters in JSON parameter `$n` upserted, as a
/// data-modifying CTE of the applier's second statement (one fixed
/// statement text whatever the batch).
pub fn counters_upsert_sql(counters: &str) -> String {
    format!(
        "INSERT INTO budget_counter (budget_id, subject, window_start, used_credits, exhausted_at) \
         SELECT x.budget_id, x.subject, x.window_start, x.used_credits, x.exhausted_at \
         FROM json_to_recordset({counters}::json) AS x(budget_id bigint, subject text, window_start timestamptz, \
         used_credits bigint, exhausted_at timestamptz) \
         ON CONFLICT (budget_id, subject) DO UPDATE SET window_start = excluded.window_start, \
         used_credits = excluded.used_credits, exhausted_at = excluded.exhausted_at"
    )
}

/// A counter as [`counters_upsert_sql`] reads it.
#[derive(serde::Serialize)]
pub struct CounterRow<'a> {
    budget_id: i64,
    subject: &'a str,
    #[serde(serialize_with = "super::batch::stored_time::required")]
    window_start: DateTime<Utc>,
    used_credits: i64,
    #[serde(serialize_with = "super::batch::stored_time::optional")]
    exhausted_at: Option<DateTime<Utc>>,
}

impl<'a> CounterRow<'a> {
    /// The row of `counter`.
    pub fn of(counter: &'a Counter) -> Self {
        Self {
            budget_id: counter.budget_id,
            subject: &counter.subject,
            window_start: counter.window_start,
            used_credits: counter.used,
            exhausted_at: counter.exhausted_at,
        }
    }
}
