//! Use cases: one async function per operation, each one database
//! transaction.
//!
//! Every writer follows the same steps: lock the wallets and read their
//! state, settle them (`domain::wallet`), check the idempotency keys, let
//! `domain` decide, hand the changes to the store's one applier
//! ([`store::apply`]), commit. Events are published only after the commit
//! (`docs/design/write-path.md`).
#![warn(missing_docs)]

mod adjust;
mod auto_top_up;
mod budgets;
mod catalogue;
mod group_commit;
mod holds;
mod payment;
mod period;
mod plan;
mod spend;
mod stream;
mod subscription;
mod sweep;
mod top_up;
mod usage;
mod views;
mod wallet;
mod webhooks;
mod workspace;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};

pub use crate::config::{GroupCommitSettings, MAX_BATCH_DEFAULT, POSTGRES_WORKERS_DEFAULT, WINDOW_DEFAULT};
pub use adjust::{AdjustRequest, LedgerChange, REASON_LENGTH_MAX, ThresholdRequest, parse_reason};
pub use auto_top_up::{AutoTopUpRequest, FailureOutcome};
pub use budgets::{AgentUsageView, BudgetInput};
pub use holds::{HoldResult, ReserveRequest, ReserveResult};
pub use payment::{Dispute, PaymentOutcome, PaymentReceived, Refund, RefundOutcome};
pub use period::RollOverReport;
pub use spend::{SpendRequest, SpendResult};
pub use stream::{BalanceChange, ChangeKind, REPLAY_ROWS_MAX};
pub use subscription::{SubscriptionEvent, SubscriptionOutcome, SubscriptionState, SubscriptionView};
pub use sweep::{SWEEP_BATCH_SIZE, SWEEP_WORKERS};
pub use top_up::{TopUpOutcome, TopUpRequest, TopUpResult};
pub use usage::{
    EXPORT_PAGE, EXPORTS_PER_WORKSPACE_MAX, Export, GrantMoveView, LOW_BALANCE_ALERTS_MAX,
    LowBalanceAlertView,
};
pub use views::{
    ActionCostView, BalanceView, EntryFilter, PackView, PeriodView, PlanView, TransactionPage,
    TransactionView, WalletView,
};
pub use wallet::{TRANSACTIONS_PAGE_DEFAULT, TRANSACTIONS_PAGE_MAX, TransactionQuery};
pub use webhooks::{
    DELIVERIES_PAGE_MAX, DESCRIPTION_LENGTH_MAX, ENDPOINTS_PER_WORKSPACE_MAX, EndpointOwner, EndpointRequest,
    NoticeCursor, OUTBOX_RETENTION, TRIAL_ENDING_NOTICE,
};
pub use workspace::{ChangePlanRequest, CreateWorkspaceRequest, WORKSPACE_NAME_LENGTH_MAX};

use crate::clock::Clock;
use crate::error::{AppError, AppResult};
use crate::events::{BalanceEvent, EventBus};
use crate::metrics::Metrics;
use crate::store;
use domain::catalogue::PlanCode;
use domain::settlement::renewal_due;
use domain::wallet::{Change, Head, Wallet, WalletState};

/// The ledger service: the one facade the GraphQL layer and the scheduler
/// call. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    db: store::Pool,
    clock: Arc<dyn Clock>,
    events: EventBus,
    notify_channel: String,
    metrics: Metrics,
    /// Where spends go when group commit is on.
    group_commit: Option<group_commit::GroupCommit>,
    /// How webhooks are checked and sent.
    webhooks: crate::config::WebhookSettings,
    /// How long a past-due subscription keeps its plan.
    subscription_grace: chrono::Duration,
    /// Exports running on this instance, per workspace.
    exports: usage::Exports,
}

impl Ledger {
    /// This service over another pool of the same database.
    fn on_database(&self, db: store::Pool) -> Self {
        Self { db, ..self.clone() }
    }

    /// A service over `db`, reading time from `clock`, publishing committed
    /// changes on `events`.
    pub fn new(db: store::Pool, clock: Arc<dyn Clock>, events: EventBus) -> Self {
        Self::with_notify_channel(db, clock, events, crate::events::notify_channel(None))
    }

    /// As [`Ledger::new`], notifying other instances on `notify_channel`.
    pub fn with_notify_channel(
        db: store::Pool,
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
            webhooks: crate::config::WebhookSettings::default(),
            subscription_grace: chrono::Duration::hours(crate::config::DEFAULT_SUBSCRIPTION_GRACE_HOURS),
            exports: usage::Exports::default(),
        }
    }

    /// This service with `grace` for past-due subscriptions.
    pub fn with_subscription_grace(self, grace: chrono::Duration) -> Self {
        Self {
            subscription_grace: grace,
            ..self
        }
    }

    /// This service with `settings` for its webhooks.
    pub fn with_webhooks(self, settings: crate::config::WebhookSettings) -> Self {
        Self {
            webhooks: settings,
            ..self
        }
    }

    /// Its webhook settings.
    pub fn webhook_settings(&self) -> crate::config::WebhookSettings {
        self.webhooks
    }

    /// The pool, for the webhook worker that runs beside the service.
    pub fn pool(&self) -> store::Pool {
        self.db.clone()
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
        store::ping(&self.db).await.map_err(AppError::from)
    }

    /// Every metric in Prometheus text, with the pool's use read now.
    pub fn render_metrics(&self) -> String {
        let pool = store::pool_use(&self.db);
        self.metrics.render(pool.size, pool.idle)
    }

    /// The current time, from the injected clock.
    /// Truncated to microseconds: what both databases store, so an answer's
    /// times equal what is read back later.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(6)
    }
}

/// One write transaction holding one wallet's lock, and the wallet's
/// change so far (`domain::wallet`).
struct Locked {
    txn: store::Tx,
    wallet: Wallet,
}

/// A change as written: its rows' stored ids, in row order.
struct Written {
    change: Change,
    ids: Vec<i64>,
    at: DateTime<Utc>,
}

impl Written {
    /// Row `index` of the change as readers see it.
    fn transaction(&self, index: usize) -> AppResult<TransactionView> {
        let missing = || AppError::Internal(anyhow::anyhow!("row {index} of a change has no id"));
        let id = self.ids.get(index).copied().ok_or_else(missing)?;
        let row = self.change.rows.get(index).ok_or_else(missing)?;
        Ok(row.view(id, self.at))
    }
}

impl Ledger {
    /// Begins a transaction, locks the workspace's wallet and reads it with
    /// its live grants. A workspace that does not exist is NOT_FOUND.
    async fn lock(&self, workspace_id: &str, now: DateTime<Utc>) -> AppResult<Locked> {
        let txn = store::begin_write(&self.db).await?;
        let mut state = store::wallets::lock(&txn, workspace_id)
            .await?
            .ok_or(AppError::NotFound("workspace"))?;
        // Holds that settling expires give their budgets back.
        load_hold_budgets(&txn, &mut state, [], now, false).await?;
        Ok(Locked {
            txn,
            wallet: open_wallet(state),
        })
    }

    /// Reads the locked wallet's budgets and their counters for `agent`'s
    /// spends (the writes that count: spends and reversals).
    async fn load_budgets(locked: &mut Locked, agent: Option<&str>) -> AppResult<()> {
        let (budgets, counters) = store::budgets::load(&locked.txn, locked.wallet.head().id, agent).await?;
        locked.wallet.load_budgets(budgets, counters);
        Ok(())
    }

    /// Locks a wallet and settles it at `now`: every writer's first step.
    async fn lock_settled(&self, workspace_id: &str, now: DateTime<Utc>) -> AppResult<Locked> {
        let mut locked = self.lock(workspace_id, now).await?;
        let plans = plans_if_renewing(&locked.txn, [locked.wallet.head()], now).await?;
        settle(&mut locked.wallet, &plans, now);
        Ok(locked)
    }

    /// Finishes a locked wallet's change, writes and commits it, then
    /// publishes its events.
    async fn finish(&self, locked: Locked, now: DateTime<Utc>) -> AppResult<Written> {
        let change = locked.wallet.finish(now);
        let ids = self
            .write(locked.txn, std::slice::from_ref(&change), now)
            .await?
            .pop()
            .unwrap_or_default();
        Ok(Written { change, ids, at: now })
    }

    /// Writes changes through the store's one applier in `txn`, commits,
    /// then counts and publishes their events. Returns each change's row ids.
    async fn write(
        &self,
        txn: store::Tx,
        changes: &[Change],
        now: DateTime<Utc>,
    ) -> AppResult<Vec<Vec<i64>>> {
        let ids = store::apply::apply(&txn, &self.notify_channel, changes, now).await?;
        store::commit(txn).await?;
        let mut events = Vec::new();
        for (change, ids) in changes.iter().zip(&ids) {
            self.metrics.settled(change.renewals, change.closes.len() as u64);
            events.extend(BalanceEvent::of_change(change, ids, now));
        }
        self.committed(events);
        Ok(ids)
    }

    /// Counts and publishes the events of committed rows.
    fn committed(&self, events: Vec<BalanceEvent>) {
        self.metrics.rows_committed(&events);
        self.events.publish(events);
    }
}

/// A wallet to change, from the state read under its lock. While it may
/// open an automatic top-up request, it is offered a random id for one
/// (the rules draw no randomness); without randomness it opens none this
/// time, and the next change tries again.
fn open_wallet(state: WalletState) -> Wallet {
    let mut wallet = Wallet::new(state);
    if wallet.may_request_top_up() {
        let mut random = [0u8; 16];
        match getrandom::fill(&mut random) {
            Ok(()) => wallet.offer_request_id(domain::auto_top_up::new_request_id(random)),
            Err(error) => tracing::error!(%error, "no randomness for an automatic top-up request"),
        }
    }
    wallet
}

/// The catalogue's plans, read only when one of these wallets' periods
/// renews at `now` (most writes renew nothing).
async fn plans_if_renewing<'a>(
    txn: &store::Tx,
    heads: impl IntoIterator<Item = &'a Head>,
    now: DateTime<Utc>,
) -> AppResult<Vec<PlanView>> {
    if heads
        .into_iter()
        .any(|head| renewal_due(&head.period_state(), now).is_some())
    {
        return store::catalogue::plans(txn).await.map_err(AppError::from);
    }
    Ok(Vec::new())
}

/// Settles a wallet at `now`: a period of `plan` grants the catalogue's
/// monthly credits, or the wallet's own allocation for ENTERPRISE.
fn settle(wallet: &mut Wallet, plans: &[PlanView], now: DateTime<Utc>) {
    let enterprise = wallet.head().enterprise_allocation;
    wallet.settle(
        |plan| {
            if plan == PlanCode::Enterprise {
                return enterprise.unwrap_or(0);
            }
            plans
                .iter()
                .find(|row| row.code == plan)
                .and_then(|row| row.monthly_credits)
                .unwrap_or(0)
        },
        now,
    );
}

/// The budgets and counters that expiring holds of `state` (and those of
/// `agents`) count in, merged into what was read, so that settling gives
/// their credits back to the right counters.
async fn load_hold_budgets<'a>(
    txn: &store::Tx,
    state: &mut WalletState,
    agents: impl IntoIterator<Item = Option<&'a str>>,
    now: DateTime<Utc>,
    budgets_read: bool,
) -> AppResult<()> {
    if budgets_read && state.budgets.is_empty() {
        // The wallet has no budget: nothing to count.
        return Ok(());
    }
    let mut subjects: Vec<Option<String>> =
        agents.into_iter().map(|agent| agent.map(str::to_owned)).collect();
    subjects.extend(
        state
            .holds
            .iter()
            .filter(|hold| hold.is_due(now))
            .map(|hold| hold.agent_id.clone()),
    );
    subjects.sort();
    subjects.dedup();
    for agent in subjects {
        let (budgets, counters) = store::budgets::load(txn, state.head.id, agent.as_deref()).await?;
        state.merge_budgets(budgets, counters);
    }
    Ok(())
}
