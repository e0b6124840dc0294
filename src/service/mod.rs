//! Use cases: one async function per operation, each one database
//! transaction.
//!
//! Every writer follows the same steps: lock the wallet
//! ([`store::ledger::lock_wallet`]), settle grants whose expiry has passed,
//! check the idempotency key, let `domain` decide, write through `store`,
//! check the invariant (debug builds), commit. Events are published only
//! after the commit.
#![warn(missing_docs)]

mod adjust;
mod catalogue;
mod group_commit;
mod period;
mod plan;
mod spend;
mod stream;
mod sweep;
mod top_up;
mod usage;
mod views;
mod wallet;
mod workspace;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{credit_grant, wallet as wallet_entity};
use sea_orm::{DatabaseConnection, DatabaseTransaction};

pub use crate::config::{GroupCommitSettings, MAX_BATCH_DEFAULT, POSTGRES_WORKERS_DEFAULT, WINDOW_DEFAULT};
pub use adjust::{AdjustRequest, LedgerChange, REASON_LENGTH_MAX, ThresholdRequest, parse_reason};
pub use period::RollOverReport;
pub use spend::{SpendRequest, SpendResult};
pub use stream::{BalanceChange, ChangeKind, REPLAY_ROWS_MAX};
pub use sweep::SWEEP_BATCH_SIZE;
pub use top_up::{TopUpOutcome, TopUpRequest, TopUpResult};
pub use usage::{EXPORT_ROWS_MAX, GrantMoveView, LOW_BALANCE_ALERTS_MAX, LowBalanceAlertView};
pub use views::{
    ActionCostView, BalanceView, EntryFilter, PackView, PeriodView, PlanView, TransactionPage,
    TransactionView, WalletView,
};
pub use wallet::{TRANSACTIONS_PAGE_DEFAULT, TRANSACTIONS_PAGE_MAX, TransactionQuery};
pub use workspace::{ChangePlanRequest, CreateWorkspaceRequest, WORKSPACE_NAME_LENGTH_MAX};

use crate::domain::catalogue::GrantSource;
use crate::domain::ceiling::check_ceiling;
use crate::domain::clock::Clock;
use crate::domain::invariant::check_totals;
use crate::domain::reversal::{LowBalance, low_balance};
use crate::error::{AppError, AppResult, db_error};
use crate::events::{BalanceEvent, EventBus};
use crate::metrics::Metrics;
use crate::store::{self, ledger::EntryDraft};

/// The ledger service: the one facade the GraphQL layer and the scheduler
/// call. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    events: EventBus,
    notify_channel: String,
    metrics: Metrics,
    /// Where spends go when group commit is on.
    group_commit: Option<group_commit::GroupCommit>,
}

impl Ledger {
    /// This service over another pool of the same database.
    fn on_database(&self, db: DatabaseConnection) -> Self {
        Self { db, ..self.clone() }
    }

    /// A service over `db`, reading time from `clock`, publishing committed
    /// changes on `events`.
    pub fn new(db: DatabaseConnection, clock: Arc<dyn Clock>, events: EventBus) -> Self {
        Self::with_notify_channel(db, clock, events, crate::events::notify_channel(None))
    }

    /// As [`Ledger::new`], notifying other instances on `notify_channel`.
    pub fn with_notify_channel(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        events: EventBus,
        notify_channel: String,
    ) -> Self {
        Self {
            db,
            clock,
            events,
            notify_channel,
            metrics: Metrics::default(),
            group_commit: None,
        }
    }

    /// This service's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The bus committed balance events are published on.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> AppResult<()> {
        store::ping(&self.db).await.map_err(db_error)
    }

    /// Every metric in Prometheus text, with the pool's use read now.
    pub fn render_metrics(&self) -> String {
        let pool = store::pool_use(&self.db);
        self.metrics.render(pool.size, pool.idle)
    }

    /// The current time, from the injected clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

/// One write transaction holding one wallet's lock.
struct LockedWallet {
    txn: DatabaseTransaction,
    wallet: wallet_entity::Model,
    /// The wallet as read under the lock; saved back only if it differs.
    original: wallet_entity::Model,
    /// Live grants, oldest first, kept in step with what is written.
    grants: Vec<credit_grant::Model>,
    /// Events of the rows appended, published once committed.
    appended: Vec<BalanceEvent>,
    /// Where other instances hear of this commit (PostgreSQL).
    notify_channel: String,
    /// Periods renewed and grants expired by this transaction.
    settled: Settled,
}

/// What settling wrote: counted in the metrics once committed.
#[derive(Debug, Clone, Copy, Default)]
struct Settled {
    renewals: u64,
    expiries: u64,
}

impl Ledger {
    /// Begins a transaction, locks the workspace's wallet and loads its live
    /// grants. A workspace that does not exist is NOT_FOUND.
    async fn lock(&self, workspace_id: &str) -> AppResult<LockedWallet> {
        let txn = store::begin_write(&self.db).await.map_err(db_error)?;
        let wallet = store::ledger::lock_wallet(&txn, workspace_id)
            .await
            .map_err(db_error)?
            .ok_or(AppError::NotFound("workspace"))?;
        let grants = store::ledger::live_grants(&txn, wallet.id)
            .await
            .map_err(db_error)?;
        Ok(LockedWallet::new(
            txn,
            wallet,
            grants,
            self.notify_channel.clone(),
        ))
    }
}

impl LockedWallet {
    fn new(
        txn: DatabaseTransaction,
        wallet: wallet_entity::Model,
        grants: Vec<credit_grant::Model>,
        notify_channel: String,
    ) -> Self {
        Self {
            notify_channel,
            txn,
            original: wallet.clone(),
            wallet,
            grants,
            appended: Vec::new(),
            settled: Settled::default(),
        }
    }

    /// Inserts a new grant holding its credits in the database, tracked in
    /// memory as empty until the row that grants it is appended (which
    /// moves it up by its size). Returns the grant's id.
    async fn add_grant(&mut self, grant: store::ledger::NewGrant, now: DateTime<Utc>) -> AppResult<i64> {
        let mut row = store::ledger::insert_grant(&self.txn, self.wallet.id, grant, now)
            .await
            .map_err(db_error)?;
        let id = row.id;
        row.remaining_credits = 0;
        self.grants.push(row);
        Ok(id)
    }

    /// Appends a row and keeps the in-memory grants in step with its moves
    /// (the caller has already changed the grant rows themselves).
    async fn append(
        &mut self,
        draft: EntryDraft,
        now: DateTime<Utc>,
    ) -> AppResult<entity::ledger_entry::Model> {
        for (grant_id, delta) in &draft.grant_moves {
            if let Some(grant) = self.grants.iter_mut().find(|grant| grant.id == *grant_id) {
                grant.remaining_credits += delta;
            }
        }
        check_ceiling(self.wallet.balance_credits, draft.amount)?;
        let balance = BalanceView::from_grants(&self.grants);
        let entry = store::ledger::append_entry(&self.txn, &mut self.wallet, draft, balance.split, now)
            .await
            .map_err(db_error)?;
        self.appended
            .push(views::row_event(&self.wallet.workspace_id, &entry)?);
        Ok(entry)
    }

    /// Saves the wallet head, checks the invariant in debug builds, commits.
    async fn commit(mut self, now: DateTime<Utc>) -> AppResult<(wallet_entity::Model, Vec<BalanceEvent>)> {
        self.check_low_balance(now).await?;
        if self.wallet == self.original {
            // Nothing changed: release the lock without writing.
            self.txn.commit().await.map_err(db_error)?;
            return Ok((self.wallet, self.appended));
        }
        store::ledger::save_wallet(&self.txn, &self.wallet, self.original.last_sequence, now)
            .await
            .map_err(db_error)?;
        if self.wallet.last_sequence != self.original.last_sequence {
            // Delivered by PostgreSQL only if and when this commits.
            store::notify::many(
                &self.txn,
                &self.notify_channel,
                vec![store::notify::payload(
                    self.wallet.last_sequence,
                    &self.wallet.workspace_id,
                )],
            )
            .await
            .map_err(db_error)?;
        }
        if cfg!(debug_assertions) {
            let totals = store::verify::wallet_totals(&self.txn, &self.wallet)
                .await
                .map_err(db_error)?;
            check_totals(&totals).map_err(|broken| {
                AppError::Internal(anyhow::anyhow!(
                    "ledger invariant broken for wallet {}: {broken}",
                    self.wallet.id
                ))
            })?;
        }
        self.txn.commit().await.map_err(db_error)?;
        Ok((self.wallet, self.appended))
    }

    /// Alerts once when the balance is below the wallet's threshold, and
    /// re-arms once it is back at or above it.
    async fn check_low_balance(&mut self, now: DateTime<Utc>) -> AppResult<()> {
        let balance = self.balance();
        if let Some(threshold) = low_balance_step(&mut self.wallet, balance.total, now) {
            store::ledger::insert_low_balance_alert(
                &self.txn,
                self.wallet.id,
                threshold,
                balance.total,
                self.wallet.last_sequence,
                now,
            )
            .await
            .map_err(db_error)?;
            self.appended.push(BalanceEvent::low_balance(
                self.wallet.workspace_id.clone(),
                self.wallet.last_sequence,
                balance,
                now,
            ));
        }
        Ok(())
    }

    /// The live grants as the burn-down rule sees them.
    fn spendable_grants(&self) -> AppResult<Vec<crate::domain::burn_down::GrantBalance>> {
        spendable(&self.grants)
    }

    /// Takes each burn's credits from its grant; returns the row's moves.
    async fn burn(&self, burns: &[crate::domain::burn_down::Burn]) -> AppResult<Vec<(i64, i64)>> {
        for burn in burns {
            store::ledger::move_grant(&self.txn, burn.grant_id, -burn.credits)
                .await
                .map_err(db_error)?;
        }
        Ok(burns.iter().map(|burn| (burn.grant_id, -burn.credits)).collect())
    }

    /// The balance split of the live grants.
    fn balance(&self) -> BalanceView {
        BalanceView::from_grants(&self.grants)
    }
}

impl Ledger {
    /// Commits a locked wallet's changes, then publishes their events.
    async fn finish(&self, locked: LockedWallet, now: DateTime<Utc>) -> AppResult<wallet_entity::Model> {
        let settled = locked.settled;
        let (wallet, events) = locked.commit(now).await?;
        self.metrics.settled(settled.renewals, settled.expiries);
        self.committed(events);
        Ok(wallet)
    }

    /// Counts and publishes the events of committed rows.
    fn committed(&self, events: Vec<BalanceEvent>) {
        self.metrics.rows_committed(&events);
        self.events.publish(events);
    }
}

/// Debug builds: checks, inside a batch's transaction, that every written
/// wallet head equals the sum of its ledger and of its live grants, and is
/// not negative. Release builds rely on the constraints and the tests.
async fn check_heads(txn: &DatabaseTransaction, heads: &[(wallet_entity::Model, i64)]) -> AppResult<()> {
    if !cfg!(debug_assertions) {
        return Ok(());
    }
    let ids = heads.iter().map(|(wallet, _)| wallet.id).collect();
    for (wallet_id, ledger_sum, grants_sum) in store::verify::batch_sums(txn, ids).await.map_err(db_error)? {
        let balance = heads
            .iter()
            .find(|(wallet, _)| wallet.id == wallet_id)
            .map_or(0, |(wallet, _)| wallet.balance_credits);
        if balance != ledger_sum || balance != grants_sum || balance < 0 {
            return Err(AppError::Internal(anyhow::anyhow!(
                "ledger invariant broken by a batch for wallet {wallet_id}: balance {balance}, ledger {ledger_sum}, grants {grants_sum}"
            )));
        }
    }
    Ok(())
}

/// Applies the low-balance rule to a wallet head after a change of its
/// balance: marks it alerted (returning the threshold crossed: the caller
/// records the alert) or re-arms it at or above the threshold.
fn low_balance_step(wallet: &mut wallet_entity::Model, balance: i64, now: DateTime<Utc>) -> Option<i64> {
    match low_balance(
        wallet.low_balance_threshold_credits,
        wallet.low_balance_alerted_at.is_some(),
        balance,
    ) {
        LowBalance::Alert => {
            wallet.low_balance_alerted_at = Some(now);
            Some(wallet.low_balance_threshold_credits.unwrap_or(0))
        }
        LowBalance::Rearm => {
            wallet.low_balance_alerted_at = None;
            None
        }
        LowBalance::Unchanged => None,
    }
}

/// Live grants as the burn-down rule sees them.
fn spendable(grants: &[credit_grant::Model]) -> AppResult<Vec<crate::domain::burn_down::GrantBalance>> {
    grants
        .iter()
        .map(|grant| {
            Ok(crate::domain::burn_down::GrantBalance {
                id: grant.id,
                source: grant_source(grant)?,
                remaining: grant.remaining_credits,
                expires_at: grant.expires_at,
            })
        })
        .collect()
}

/// A source's balance bucket, for a stored source name.
fn grant_source(grant: &credit_grant::Model) -> AppResult<GrantSource> {
    grant
        .source
        .parse()
        .map_err(|error| AppError::Internal(anyhow::Error::new(error)))
}
