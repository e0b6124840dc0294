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
use super::{Result, internal};
use crate::domain::catalogue::{Action, BalanceSplit, GrantSource, LedgerKind};

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
) -> Result<wallet::Model> {
    workspace::ActiveModel {
        id: Set(workspace_id.to_owned()),
        name: Set(name.to_owned()),
        created_by: Set(actor.to_owned()),
        created_at: Set(now),
    }
    .insert(txn)
    .await?;
    wallet::ActiveModel {
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
    .await
    .map_err(Into::into)
}

/// Writes the wallet's head (balance, sequence, plan and period fields)
/// back, guarded on the sequence read under the lock: if anything else had
/// appended meanwhile, the update matches no row and the transaction fails
/// instead of overwriting it.
pub async fn save_wallet(
    txn: &impl ConnectionTrait,
    wallet: &wallet::Model,
    sequence_read: i64,
    now: DateTime<Utc>,
) -> Result<()> {
    let result = wallet::Entity::update_many()
        .col_expr(
            wallet::Column::BalanceCredits,
            Expr::value(wallet.balance_credits),
        )
        .col_expr(wallet::Column::LastSequence, Expr::value(wallet.last_sequence))
        .col_expr(wallet::Column::PlanCode, Expr::value(wallet.plan_code.clone()))
        .col_expr(wallet::Column::TrialEndsAt, Expr::value(wallet.trial_ends_at))
        .col_expr(
            wallet::Column::BillingAnchorAt,
            Expr::value(wallet.billing_anchor_at),
        )
        .col_expr(wallet::Column::PeriodStartAt, Expr::value(wallet.period_start_at))
        .col_expr(wallet::Column::PeriodEndAt, Expr::value(wallet.period_end_at))
        .col_expr(
            wallet::Column::PendingPlanCode,
            Expr::value(wallet.pending_plan_code.clone()),
        )
        .col_expr(
            wallet::Column::EnterpriseAllocationCredits,
            Expr::value(wallet.enterprise_allocation_credits),
        )
        .col_expr(
            wallet::Column::LowBalanceThresholdCredits,
            Expr::value(wallet.low_balance_threshold_credits),
        )
        .col_expr(
            wallet::Column::LowBalanceAlertedAt,
            Expr::value(wallet.low_balance_alerted_at),
        )
        .col_expr(wallet::Column::UpdatedAt, Expr::value(now))
        .filter(wallet::Column::Id.eq(wallet.id))
        .filter(wallet::Column::LastSequence.eq(sequence_read))
        .exec(txn)
        .await?;
    if result.rows_affected != 1 {
        return Err(internal(format!(
            "wallet {} changed under its lock (sequence {sequence_read})",
            wallet.id
        )));
    }
    Ok(())
}

/// The wallet's live grants (not closed by an expiry), oldest first.
pub async fn live_grants(db: &impl ConnectionTrait, wallet_id: i64) -> Result<Vec<credit_grant::Model>> {
    super::batch::live_grants_of(db, vec![wallet_id]).await
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

/// Whether the wallet is due at `now` (period ended or a grant expired).
pub async fn is_due(db: &impl ConnectionTrait, wallet: &wallet::Model, now: DateTime<Utc>) -> Result<bool> {
    if wallet.period_end_at.is_some_and(|end| end <= now) {
        return Ok(true);
    }
    has_due_grant(db, wallet.id, now).await
}

/// A grant to create.
#[derive(Debug, Clone)]
pub struct NewGrant {
    /// Where the credits come from.
    pub source: GrantSource,
    /// How many (positive).
    pub credits: i64,
    /// When they expire; `None` never.
    pub expires_at: Option<DateTime<Utc>>,
    /// The billing period, for allocations (one per wallet and period).
    pub period_start_at: Option<DateTime<Utc>>,
    /// The pack bought, its price and currency, for purchases.
    pub purchase: Option<(String, i64, String)>,
}

/// Inserts a grant holding all its credits.
pub async fn insert_grant(
    txn: &impl ConnectionTrait,
    wallet_id: i64,
    grant: NewGrant,
    now: DateTime<Utc>,
) -> Result<credit_grant::Model> {
    let (pack_code, price_cents, currency) = match grant.purchase {
        Some((pack, price, currency)) => (Some(pack), Some(price), Some(currency)),
        None => (None, None, None),
    };
    credit_grant::ActiveModel {
        wallet_id: Set(wallet_id),
        source: Set(grant.source.as_str().to_owned()),
        granted_credits: Set(grant.credits),
        remaining_credits: Set(grant.credits),
        expires_at: Set(grant.expires_at),
        expired_at: Set(None),
        period_start_at: Set(grant.period_start_at),
        pack_code: Set(pack_code),
        price_cents: Set(price_cents),
        currency: Set(currency),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(txn)
    .await
    .map_err(Into::into)
}

/// Moves a live grant's remaining credits by `delta` (negative to burn),
/// guarded so that it can never go below zero: a guard that fails means the
/// state changed under the lock, which fails the transaction.
pub async fn move_grant(txn: &impl ConnectionTrait, grant_id: i64, delta: i64) -> Result<()> {
    let result = credit_grant::Entity::update_many()
        .col_expr(
            credit_grant::Column::RemainingCredits,
            Expr::col(credit_grant::Column::RemainingCredits).add(delta),
        )
        .filter(credit_grant::Column::Id.eq(grant_id))
        .filter(credit_grant::Column::ExpiredAt.is_null())
        .filter(
            Expr::col(credit_grant::Column::RemainingCredits)
                .add(delta)
                .gte(0),
        )
        .exec(txn)
        .await?;
    if result.rows_affected != 1 {
        return Err(internal(format!("grant {grant_id} cannot move by {delta}")));
    }
    Ok(())
}

/// Raises a live grant's size and remaining credits by `credits` (an
/// upgrade within a period, or restoring a reversed spend).
pub async fn enlarge_grant(txn: &impl ConnectionTrait, grant_id: i64, credits: i64) -> Result<()> {
    let result = credit_grant::Entity::update_many()
        .col_expr(
            credit_grant::Column::GrantedCredits,
            Expr::col(credit_grant::Column::GrantedCredits).add(credits),
        )
        .col_expr(
            credit_grant::Column::RemainingCredits,
            Expr::col(credit_grant::Column::RemainingCredits).add(credits),
        )
        .filter(credit_grant::Column::Id.eq(grant_id))
        .filter(credit_grant::Column::ExpiredAt.is_null())
        .exec(txn)
        .await?;
    if result.rows_affected != 1 {
        return Err(internal(format!("grant {grant_id} cannot be enlarged")));
    }
    Ok(())
}

/// Closes a grant: it expired, and what was left is written off.
pub async fn close_grant(txn: &impl ConnectionTrait, grant_id: i64, now: DateTime<Utc>) -> Result<()> {
    credit_grant::Entity::update_many()
        .col_expr(credit_grant::Column::RemainingCredits, Expr::value(0i64))
        .col_expr(credit_grant::Column::ExpiredAt, Expr::value(now))
        .filter(credit_grant::Column::Id.eq(grant_id))
        .exec(txn)
        .await?;
    Ok(())
}

/// An idempotency key and the identity of the request it binds, stored on
/// the row that request wrote.
#[derive(Debug, Clone)]
pub struct KeyBinding {
    /// The key.
    pub key: String,
    /// The request's identity (a repeat carries the same).
    pub fingerprint: String,
}

/// A ledger row to append.
#[derive(Debug, Clone)]
pub struct EntryDraft {
    /// Its kind.
    pub kind: LedgerKind,
    /// Signed change of the balance.
    pub amount: i64,
    /// The action paid, for spends.
    pub action: Option<Action>,
    /// The caller's reference (ticket, payment, reason).
    pub reference: Option<String>,
    /// Who caused it: the token's subject, or `system`.
    pub actor: String,
    /// The key it binds, if any.
    pub idempotency: Option<KeyBinding>,
    /// The row it reverses, for reversals.
    pub reverses_entry_id: Option<i64>,
    /// How it moved each grant: (grant id, signed credits).
    pub grant_moves: Vec<(i64, i64)>,
}

/// Appends one row at the wallet's next sequence, with its grant moves,
/// and advances the in-memory wallet head (saved later by [`save_wallet`]).
pub async fn append_entry(
    txn: &impl ConnectionTrait,
    wallet: &mut wallet::Model,
    draft: EntryDraft,
    split_after: BalanceSplit,
    now: DateTime<Utc>,
) -> Result<ledger_entry::Model> {
    debug_assert_eq!(
        draft.amount,
        draft.grant_moves.iter().map(|(_, credits)| credits).sum::<i64>(),
        "a row's amount is the sum of its grant moves"
    );
    wallet.balance_credits += draft.amount;
    wallet.last_sequence += 1;
    let (idempotency_key, idempotency_fingerprint) = draft
        .idempotency
        .map(|binding| (binding.key, binding.fingerprint))
        .unzip();
    let entry = ledger_entry::ActiveModel {
        wallet_id: Set(wallet.id),
        sequence: Set(wallet.last_sequence),
        kind: Set(draft.kind.as_str().to_owned()),
        amount_credits: Set(draft.amount),
        balance_after_credits: Set(wallet.balance_credits),
        action: Set(draft.action.map(|action| action.as_str().to_owned())),
        reference: Set(draft.reference),
        actor: Set(draft.actor),
        idempotency_key: Set(idempotency_key),
        idempotency_fingerprint: Set(idempotency_fingerprint),
        reverses_entry_id: Set(draft.reverses_entry_id),
        created_at: Set(now),
        allocation_after_credits: Set(split_after.allocation),
        purchased_after_credits: Set(split_after.purchased),
        bonus_after_credits: Set(split_after.bonus),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    if !draft.grant_moves.is_empty() {
        let moves = draft
            .grant_moves
            .iter()
            .map(|(grant_id, credits)| ledger_entry_grant::ActiveModel {
                ledger_entry_id: Set(entry.id),
                credit_grant_id: Set(*grant_id),
                amount_credits: Set(*credits),
                ..Default::default()
            });
        ledger_entry_grant::Entity::insert_many(moves).exec(txn).await?;
    }
    Ok(entry)
}

/// Records one low-balance alert.
pub async fn insert_low_balance_alert(
    txn: &impl ConnectionTrait,
    wallet_id: i64,
    threshold: i64,
    balance: i64,
    ledger_sequence: i64,
    now: DateTime<Utc>,
) -> Result<()> {
    low_balance_alert::ActiveModel {
        wallet_id: Set(wallet_id),
        threshold_credits: Set(threshold),
        balance_credits: Set(balance),
        ledger_sequence: Set(ledger_sequence),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    Ok(())
}

/// A wallet's latest low-balance alerts, newest first.
pub async fn low_balance_alerts(
    db: &impl ConnectionTrait,
    wallet_id: i64,
    limit: u64,
) -> Result<Vec<low_balance_alert::Model>> {
    low_balance_alert::Entity::find()
        .filter(low_balance_alert::Column::WalletId.eq(wallet_id))
        .order_by_desc(low_balance_alert::Column::Id)
        .limit(limit)
        .all(db)
        .await
        .map_err(Into::into)
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
/// (time, action, credits).
pub async fn net_spends(
    db: &impl ConnectionTrait,
    wallet_id: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, Option<String>, i64)>> {
    let reversed = ledger_entry::Entity::find()
        .select_only()
        .column(ledger_entry::Column::ReversesEntryId)
        .filter(ledger_entry::Column::WalletId.eq(wallet_id))
        .filter(ledger_entry::Column::ReversesEntryId.is_not_null())
        .into_query();
    ledger_entry::Entity::find()
        .select_only()
        .column(ledger_entry::Column::CreatedAt)
        .column(ledger_entry::Column::Action)
        .column(ledger_entry::Column::AmountCredits)
        .filter(ledger_entry::Column::WalletId.eq(wallet_id))
        .filter(ledger_entry::Column::Kind.eq(LedgerKind::Spend.as_str()))
        .filter(ledger_entry::Column::CreatedAt.gte(from))
        .filter(ledger_entry::Column::CreatedAt.lt(to))
        .filter(ledger_entry::Column::Id.not_in_subquery(reversed))
        .into_tuple()
        .all(db)
        .await
        .map_err(Into::into)
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

pub use crate::domain::views::EntryFilter;

/// Up to `limit` rows of a wallet, newest first, strictly older than
/// `before_sequence` when given.
pub async fn list_entries(
    db: &impl ConnectionTrait,
    wallet_id: i64,
    filter: &EntryFilter,
    before_sequence: Option<i64>,
    limit: u64,
) -> Result<Vec<ledger_entry::Model>> {
    let mut condition = Condition::all().add(ledger_entry::Column::WalletId.eq(wallet_id));
    if let Some(before) = before_sequence {
        condition = condition.add(ledger_entry::Column::Sequence.lt(before));
    }
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
    ledger_entry::Entity::find()
        .filter(condition)
        .order_by_desc(ledger_entry::Column::Sequence)
        .limit(limit)
        .all(db)
        .await
        .map_err(Into::into)
}

/// The newest row of a wallet.
pub async fn newest_entry(db: &impl ConnectionTrait, wallet_id: i64) -> Result<Option<ledger_entry::Model>> {
    ledger_entry::Entity::find()
        .filter(ledger_entry::Column::WalletId.eq(wallet_id))
        .order_by_desc(ledger_entry::Column::Sequence)
        .one(db)
        .await
        .map_err(Into::into)
}

/// Up to `limit` rows of a wallet after sequence `after` (up to `until`),
/// oldest first.
pub async fn entries_after(
    db: &impl ConnectionTrait,
    wallet_id: i64,
    after: i64,
    until: Option<i64>,
    limit: u64,
) -> Result<Vec<ledger_entry::Model>> {
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
        .await
        .map_err(Into::into)
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
