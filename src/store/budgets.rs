//! Budgets and their counters (`docs/design/budgets.md`). Counters are
//! written by the applier with the change that counted them; budgets by
//! `setBudget` and `removeBudget`, under the wallet's lock.

use chrono::{DateTime, Utc};
use entity::{budget, budget_counter};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, Set,
    Statement,
};

use super::Result;
use super::rows::{budget as parse_budget, counter as parse_counter};
use domain::budget::{Budget, BudgetMode, BudgetTarget, BudgetWindow, Counter};
use domain::catalogue::Action;

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

/// A budget as `setBudget` sets it.
#[derive(Debug, Clone)]
pub struct BudgetInput {
    /// Its name.
    pub name: String,
    /// Whose spends it counts.
    pub applies_to: BudgetTarget,
    /// The agent, for AGENT.
    pub agent_id: Option<String>,
    /// The action, or every one.
    pub action: Option<Action>,
    /// Its window.
    pub window: BudgetWindow,
    /// Credits per window.
    pub limit: i64,
    /// Hard or soft.
    pub mode: BudgetMode,
}

/// Creates or updates the wallet's budget of this name. A budget whose
/// scope (target, agent, action, window) changes starts counting afresh;
/// one whose limit or mode changes keeps its counters.
pub async fn upsert(
    txn: &impl ConnectionTrait,
    wallet_id: i64,
    input: BudgetInput,
    now: DateTime<Utc>,
) -> Result<Budget> {
    let existing = budget::Entity::find()
        .filter(budget::Column::WalletId.eq(wallet_id))
        .filter(budget::Column::Name.eq(input.name.as_str()))
        .one(txn)
        .await?;
    let action = input.action.map(|action| action.as_str().to_owned());
    let model = match existing {
        Some(model) => {
            let same_scope = model.applies_to == input.applies_to.as_str()
                && model.agent_id == input.agent_id
                && model.action == action
                && model.budget_window == input.window.as_str();
            let id = model.id;
            let mut active: budget::ActiveModel = model.into();
            if !same_scope {
                budget_counter::Entity::delete_many()
                    .filter(budget_counter::Column::BudgetId.eq(id))
                    .exec(txn)
                    .await?;
                active.counting_since = Set(now);
            }
            active.applies_to = Set(input.applies_to.as_str().to_owned());
            active.agent_id = Set(input.agent_id);
            active.action = Set(action);
            active.budget_window = Set(input.window.as_str().to_owned());
            active.limit_credits = Set(input.limit);
            active.mode = Set(input.mode.as_str().to_owned());
            active.updated_at = Set(now);
            active.update(txn).await?
        }
        None => {
            budget::ActiveModel {
                wallet_id: Set(wallet_id),
                name: Set(input.name),
                applies_to: Set(input.applies_to.as_str().to_owned()),
                agent_id: Set(input.agent_id),
                action: Set(action),
                budget_window: Set(input.window.as_str().to_owned()),
                limit_credits: Set(input.limit),
                mode: Set(input.mode.as_str().to_owned()),
                counting_since: Set(now),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(txn)
            .await?
        }
    };
    parse_budget(model)
}

/// Removes the wallet's budget of this name and its counters; whether it
/// existed.
pub async fn remove(txn: &impl ConnectionTrait, wallet_id: i64, name: &str) -> Result<bool> {
    let Some(model) = budget::Entity::find()
        .filter(budget::Column::WalletId.eq(wallet_id))
        .filter(budget::Column::Name.eq(name))
        .one(txn)
        .await?
    else {
        return Ok(false);
    };
    budget_counter::Entity::delete_many()
        .filter(budget_counter::Column::BudgetId.eq(model.id))
        .exec(txn)
        .await?;
    budget::Entity::delete_by_id(model.id).exec(txn).await?;
    Ok(true)
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
