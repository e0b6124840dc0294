//! Wallets, grants and ledger rows (with the idempotency keys they bound).
//!
//! Writers always start with [`lock_wallet`]: every change to a wallet, its
//! grants and its ledger happens while holding that wallet's lock, so the
//! decisions made in `domain` see a state nobody else is changing.

use chrono::{DateTime, Utc};
use entity::{credit_grant, ledger_entry, ledger_entry_grant, low_balance_alert, wallet, workspace};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set,
};

use super::is_sqlite;
use super::rows::{balance_after, stored, transaction};
use super::{Result, internal};
use domain::catalogue::{Action, LedgerKind};
use domain::views::{BalanceView, GrantMoveView, LowBalanceAlertView, TransactionView};
use domain::wallet::{Head, Reversed, WalletState};

/// Locks one wallet for the rest of the transaction and returns it.
///
/// PostgreSQL: `SELECT … FOR UPDATE` takes the row lock, so concurrent
/// writers to *this* wallet queue while other wallets proceed.
/// SQLite: there are no row locks and a deferred transaction that reads
/// first could fail to upgrade to a writer (SQLITE_BUSY without waiting).
/// A no-op UPDATE as the first statement takes the database's write lock
/// at once, waiting through the busy timeout, so the read that follows is
/// already under the lock.
pub async fn lock_wallet(txn: &impl ConnectionTrait, workspace_id: &str) -> Result<Option<wallet::Model>> {
    if is_sqlite(txn) {
        wallet::Entity::update_many()
            .col_expr(
                wallet::Column::LastSequence,
                Expr::col(wallet::Column::LastSequence),
            )
            .filter(wallet::Column::WorkspaceId.eq(workspace_id))
            .exec(txn)
            .await?;
        wallet::Entity::find()
            .filter(wallet::Column::WorkspaceId.eq(workspace_id))
            .one(txn)
            .await
            .map_err(Into::into)
    } else {
        wallet::Entity::find()
            .filter(wallet::Column::WorkspaceId.eq(workspace_id))
            .lock_exclusive()
            .one(txn)
            .await
            .map_err(Into::into)
    }
}

/// Reads a wallet without locking it.
pub async fn find_wallet(db: &impl ConnectionTrait, workspace_id: &str) -> Result<Option<wallet::Model>> {
    wallet::Entity::find()
        .filter(wallet::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await
        .map_err(Into::into)
}

/// The workspace owning a wallet.
pub async fn workspace_of_wallet(db: &impl ConnectionTrait, wallet_id: i64) -> Result<Option<String>> {
    Ok(wallet::Entity::find_by_id(wallet_id)
        .one(db)
        .await?
        .map(|wallet| wallet.workspace_id))
}

/// Whether a workspace id is taken.
pub async fn workspace_exists(db: &impl ConnectionTrait, workspace_id: &str) -> Result<bool> {
    Ok(workspace::Entity::find_by_id(workspace_id.to_owned())
        .one(db)
        .await?
        .is_some())
}

/// Inserts a workspace and its empty wallet (balance 0, no ledger rows).
pub async fn insert_workspace(
    txn: &impl ConnectionTrait,
    workspace_id: &str,
    name: &str,
    actor: &str,
    plan_code: &str,
    trial_ends_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<WalletState> {
    workspace::ActiveModel {
        id: Set(workspace_id.to_owned()),
        name: Set(name.to_owned()),
        created_by: Set(actor.to_owned()),
        created_at: Set(now),
    }
    .insert(txn)
    .await?;
    let wallet = wallet::ActiveModel {
        workspace_id: Set(workspace_id.to_owned()),
        plan_code: Set(plan_code.to_owned()),
        balance_credits: Set(0),
        last_sequence: Set(0),
        trial_ends_at: Set(trial_ends_at),
        billing_anchor_at: Set(None),
        period_start_at: Set(None),
        period_end_at: Set(None),
        pending_plan_code: Set(None),
        enterprise_allocation_credits: Set(None),
        low_balance_threshold_credits: Set(None),
        low_balance_alerted_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    Ok(WalletState {
        budgets: Vec::new(),
        counters: Vec::new(),
        head: super::rows::head(wallet)?,
        grants: Vec::new(),
        auto_top_up: None,
        holds: Vec::new(),
    })
}

/// Whether the wallet has a live grant whose expiry has passed.
pub async fn has_due_grant(db: &impl ConnectionTrait, wallet_id: i64, now: DateTime<Utc>) -> Result<bool> {
    Ok(credit_grant::Entity::find()
        .filter(credit_grant::Column::WalletId.eq(wallet_id))
        .filter(credit_grant::Column::ExpiredAt.is_null())
        .filter(credit_grant::Column::ExpiresAt.lte(now))
        .one(db)
        .await?
        .is_some())
}

/// Whether the wallet is due at `now` (period ended, a grant expired, or
/// a hold is past its expiry).
pub async fn is_due(db: &impl ConnectionTrait, wallet: &Head, now: DateTime<Utc>) -> Result<bool> {
    if wallet.period_end.is_some_and(|end| end <= now) {
        return Ok(true);
    }
    if wallet.held > 0 && super::holds::any_due(db, wallet.id, now).await? {
        return Ok(true);
    }
    has_due_grant(db, wallet.id, now).await
}

/// A wallet's latest low-balance alerts, newest first.
pub async fn low_balance_alerts(
    db: &impl ConnectionTrait,
    wallet_id: i64,
    limit: u64,
) -> Result<Vec<LowBalanceAlertView>> {
    Ok(low_balance_alert::Entity::find()
        .filter(low_balance_alert::Column::WalletId.eq(wallet_id))
        .order_by_desc(low_balance_alert::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|alert| LowBalanceAlertView {
            threshold: alert.threshold_credits,
            balance: alert.balance_credits,
            sequence: alert.ledger_sequence,
            created_at: alert.created_at,
        })
        .collect())
}

/// Grants by id (live or not).
pub async fn grants_by_id(db: &impl ConnectionTrait, ids: Vec<i64>) -> Result<Vec<credit_grant::Model>> {
    credit_grant::Entity::find()
        .filter(credit_grant::Column::Id.is_in(ids))
        .all(db)
        .await
        .map_err(Into::into)
}

/// The row reversing `entry_id`, if any.
pub async fn reversal_of(db: &impl ConnectionTrait, entry_id: i64) -> Result<Option<ledger_entry::Model>> {
    ledger_entry::Entity::find()
        .filter(ledger_entry::Column::ReversesEntryId.eq(entry_id))
        .one(db)
        .await
        .map_err(Into::into)
}

/// SPEND rows of a wallet created in `[from, to)` that no REVERSAL undid:
/// (time, action, signed credits).
pub async fn net_spends(
    db: &impl ConnectionTrait,
    wallet_id: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<(DateTime<Utc>, Action, i64, Option<String>)>> {
    let reversed = reversed_ids(wallet_id);
    ledger_entry::Entity::find()
        .select_only()
        .column(ledger_entry::Column::CreatedAt)
        .column(ledger_entry::Column::Action)
        .column(ledger_entry::Column::AmountCredits)
        .column(ledger_entry::Column::AgentId)
        .filter(ledger_entry::Column::WalletId.eq(wallet_id))
        .filter(ledger_entry::Column::Kind.eq(LedgerKind::Spend.as_str()))
        .filter(ledger_entry::Column::CreatedAt.gte(from))
        .filter(ledger_entry::Column::CreatedAt.lt(to))
        .filter(ledger_entry::Column::Id.not_in_subquery(reversed))
        .limit(limit)
        .into_tuple::<(DateTime<Utc>, Option<String>, i64, Option<String>)>()
        .all(db)
        .await?
        .into_iter()
        .filter_map(|(at, action, amount, agent)| Some((at, action?, amount, agent)))
        .map(|(at, action, amount, agent)| Ok((at, stored(&action)?, amount, agent)))
        .collect()
}

/// When the wallet's first row was written (on the rows' `(wallet_id,
/// created_at)` index).
pub async fn first_row_at(db: &impl ConnectionTrait, wallet_id: i64) -> Result<Option<DateTime<Utc>>> {
    Ok(ledger_entry::Entity::find()
        .filter(ledger_entry::Column::WalletId.eq(wallet_id))
        .order_by_asc(ledger_entry::Column::CreatedAt)
        .one(db)
        .await?
        .map(|row| row.created_at))
}

/// The ids of the wallet's rows that a REVERSAL undid, as a sub-query.
fn reversed_ids(wallet_id: i64) -> sea_orm::sea_query::SelectStatement {
    ledger_entry::Entity::find()
        .select_only()
        .column(ledger_entry::Column::ReversesEntryId)
        .filter(ledger_entry::Column::WalletId.eq(wallet_id))
        .filter(ledger_entry::Column::ReversesEntryId.is_not_null())
        .into_query()
}

/// Credits spent over `[from, to)` per agent and action, net of
/// reversals, summed by the database: (agent, action, credits).
pub async fn spends_by_agent(
    db: &impl ConnectionTrait,
    wallet_id: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: Option<u64>,
) -> Result<Vec<(Option<String>, Action, i64)>> {
    let reversed = reversed_ids(wallet_id);
    ledger_entry::Entity::find()
        .select_only()
        .column(ledger_entry::Column::AgentId)
        .column(ledger_entry::Column::Action)
        // PostgreSQL sums a bigint into a numeric.
        .column_as(Expr::cust("CAST(SUM(amount_credits) AS BIGINT)"), "credits")
        .filter(ledger_entry::Column::WalletId.eq(wallet_id))
        .filter(ledger_entry::Column::Kind.eq(LedgerKind::Spend.as_str()))
        .filter(ledger_entry::Column::CreatedAt.gte(from))
        .filter(ledger_entry::Column::CreatedAt.lt(to))
        .filter(ledger_entry::Column::Id.not_in_subquery(reversed))
        .group_by(ledger_entry::Column::AgentId)
        .group_by(ledger_entry::Column::Action)
        .limit(limit)
        .into_tuple::<(Option<String>, Option<String>, i64)>()
        .all(db)
        .await?
        .into_iter()
        .filter_map(|(agent, action, credits)| Some((agent, action?, -credits)))
        .map(|(agent, action, credits)| Ok((agent, stored(&action)?, credits)))
        .collect()
}

/// The row of this kind that a key bound in this wallet, if any (one probe
/// of the keys' unique index, which has the wallet as `wallet_id + 0`: see
/// migration 4).
pub async fn keyed_entry(
    db: &impl ConnectionTrait,
    wallet_id: i64,
    kind: LedgerKind,
    key: &str,
) -> Result<Option<ledger_entry::Model>> {
    ledger_entry::Entity::find()
        .filter(Expr::cust("wallet_id + 0").eq(wallet_id))
        .filter(ledger_entry::Column::Kind.eq(kind.as_str()))
        .filter(ledger_entry::Column::IdempotencyKey.eq(key))
        .one(db)
        .await
        .map_err(Into::into)
}

/// One ledger row by id.
pub async fn entry(db: &impl ConnectionTrait, id: i64) -> Result<Option<ledger_entry::Model>> {
    ledger_entry::Entity::find_by_id(id)
        .one(db)
        .await
        .map_err(Into::into)
}

pub use domain::views::EntryFilter;

/// Up to `limit` rows of a wallet, newest first, strictly older than
/// `before_sequence` when given.
pub async fn list_entries(
    db: &impl ConnectionTrait,
    wallet_id: i64,
    filter: &EntryFilter,
    before_sequence: Option<i64>,
    limit: u64,
) -> Result<Vec<TransactionView>> {
    let mut condition = filtered(wallet_id, filter);
    if let Some(before) = before_sequence {
        condition = condition.add(ledger_entry::Column::Sequence.lt(before));
    }
    ledger_entry::Entity::find()
        .filter(condition)
        .order_by_desc(ledger_entry::Column::Sequence)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(transaction)
        .collect()
}

/// Up to `limit` rows of a wallet matching `filter` after sequence
/// `after`, oldest first (an export's pages).
pub async fn matching_after(
    db: &impl ConnectionTrait,
    wallet_id: i64,
    filter: &EntryFilter,
    after: i64,
    limit: u64,
) -> Result<Vec<TransactionView>> {
    ledger_entry::Entity::find()
        .filter(filtered(wallet_id, filter).add(ledger_entry::Column::Sequence.gt(after)))
        .order_by_asc(ledger_entry::Column::Sequence)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(transaction)
        .collect()
}

/// A wallet's rows matching `filter`.
fn filtered(wallet_id: i64, filter: &EntryFilter) -> Condition {
    let mut condition = Condition::all().add(ledger_entry::Column::WalletId.eq(wallet_id));
    if !filter.kinds.is_empty() {
        condition =
            condition.add(ledger_entry::Column::Kind.is_in(filter.kinds.iter().map(|kind| kind.as_str())));
    }
    if !filter.actions.is_empty() {
        condition = condition
            .add(ledger_entry::Column::Action.is_in(filter.actions.iter().map(|action| action.as_str())));
    }
    if let Some(from) = filter.from {
        condition = condition.add(ledger_entry::Column::CreatedAt.gte(from));
    }
    if let Some(to) = filter.to {
        condition = condition.add(ledger_entry::Column::CreatedAt.lt(to));
    }
    if let Some(reference) = &filter.reference {
        condition = condition.add(ledger_entry::Column::Reference.eq(reference.clone()));
    }
    condition
}

/// The sequence of a wallet's newest row and the balance after it.
pub async fn newest_balance(db: &impl ConnectionTrait, wallet_id: i64) -> Result<Option<(i64, BalanceView)>> {
    Ok(ledger_entry::Entity::find()
        .filter(ledger_entry::Column::WalletId.eq(wallet_id))
        .order_by_desc(ledger_entry::Column::Sequence)
        .one(db)
        .await?
        .map(|row| (row.sequence, balance_after(&row))))
}

/// Up to `limit` rows of a wallet after sequence `after` (up to `until`),
/// oldest first, each with the balance after it.
pub async fn entries_after(
    db: &impl ConnectionTrait,
    wallet_id: i64,
    after: i64,
    until: Option<i64>,
    limit: u64,
) -> Result<Vec<(TransactionView, BalanceView)>> {
    let mut query = ledger_entry::Entity::find()
        .filter(ledger_entry::Column::WalletId.eq(wallet_id))
        .filter(ledger_entry::Column::Sequence.gt(after));
    if let Some(until) = until {
        query = query.filter(ledger_entry::Column::Sequence.lte(until));
    }
    query
        .order_by_asc(ledger_entry::Column::Sequence)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|row| {
            let balance = balance_after(&row);
            Ok((transaction(row)?, balance))
        })
        .collect()
}

/// The grant moves of some ledger rows.
pub async fn grant_moves(
    db: &impl ConnectionTrait,
    entry_ids: Vec<i64>,
) -> Result<Vec<ledger_entry_grant::Model>> {
    ledger_entry_grant::Entity::find()
        .filter(ledger_entry_grant::Column::LedgerEntryId.is_in(entry_ids))
        .order_by_asc(ledger_entry_grant::Column::Id)
        .all(db)
        .await
        .map_err(Into::into)
}

/// The row of this kind a key bound in this wallet, with the identity of
/// the request that bound it.
pub async fn keyed(
    db: &impl ConnectionTrait,
    wallet_id: i64,
    kind: LedgerKind,
    key: &str,
) -> Result<Option<(String, TransactionView)>> {
    let Some(row) = keyed_entry(db, wallet_id, kind, key).await? else {
        return Ok(None);
    };
    let fingerprint = row.idempotency_fingerprint.clone().unwrap_or_default();
    Ok(Some((fingerprint, transaction(row)?)))
}

/// The workspace of a ledger row, if the row exists.
pub async fn workspace_of_entry(db: &impl ConnectionTrait, entry_id: i64) -> Result<Option<String>> {
    let Some(row) = entry(db, entry_id).await? else {
        return Ok(None);
    };
    workspace_of_wallet(db, row.wallet_id).await
}

/// A row as a reversal needs it: its kind, action and grant moves, and
/// whether it was already reversed (read under its wallet's lock).
pub async fn reversed(db: &impl ConnectionTrait, entry_id: i64) -> Result<Option<Reversed>> {
    let Some(row) = entry(db, entry_id).await? else {
        return Ok(None);
    };
    let is_reversed = reversal_of(db, entry_id).await?.is_some();
    let moves = grant_moves(db, vec![entry_id])
        .await?
        .into_iter()
        .map(|movement| (movement.credit_grant_id, movement.amount_credits))
        .collect();
    Ok(Some(Reversed {
        id: row.id,
        kind: stored(&row.kind)?,
        action: row.action.as_deref().map(stored).transpose()?,
        moves,
        is_reversed,
        agent_id: row.agent_id,
        created_at: row.created_at,
    }))
}

/// How each of these rows moved each grant: (row id, the move).
pub async fn moved_grants(
    db: &impl ConnectionTrait,
    entry_ids: Vec<i64>,
) -> Result<Vec<(i64, GrantMoveView)>> {
    let moves = grant_moves(db, entry_ids).await?;
    let grants = grants_by_id(
        db,
        moves.iter().map(|movement| movement.credit_grant_id).collect(),
    )
    .await?;
    moves
        .into_iter()
        .map(|movement| {
            let grant = grants
                .iter()
                .find(|grant| grant.id == movement.credit_grant_id)
                .ok_or_else(|| internal("a move without its grant".to_owned()))?;
            Ok((
                movement.ledger_entry_id,
                GrantMoveView {
                    grant_id: grant.id,
                    source: stored(&grant.source)?,
                    expires_at: grant.expires_at,
                    credits: movement.amount_credits,
                },
            ))
        })
        .collect()
}
