//! `Subscription.balanceChanged`: the live balance, over graphql-transport-ws.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::{Context, Enum, ErrorExtensions, ID, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::start::StartSlot;
use super::types::{Balance, int};
use super::{ledger, scope};
use crate::auth::Operation;
use crate::graphql::errors::GraphqlResult;
use crate::service::{BalanceChange as Change, ChangeKind};
use domain::catalogue::LedgerKind;

/// What a balance event reports.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum BalanceChangeKind {
    /// The current balance: the first event, or a fresh start after falling behind.
    Snapshot,
    /// Credits granted.
    Grant,
    /// An AI action paid.
    Spend,
    /// Credits expired.
    Expire,
    /// A pack bought.
    TopUp,
    /// An operator's correction.
    Adjustment,
    /// A transaction undone.
    Reversal,
    /// Credits held (`holdId`); a capture is a SPEND with its `holdId`.
    Hold,
    /// A hold released.
    Release,
    /// A hold expired.
    HoldExpired,
    /// The balance fell below the low-balance threshold.
    LowBalance,
    /// A budget's window was exhausted (once per window): `budgetName` and
    /// `agentId` name it.
    BudgetExceeded,
}

/// One event of the balance stream.
#[derive(SimpleObject)]
pub struct BalanceChange {
    /// What happened.
    pub kind: BalanceChangeKind,
    /// The wallet's ledger sequence after it; pass the last one seen as
    /// `afterSequence` when reconnecting.
    pub sequence: i32,
    /// The transaction, for ledger events.
    pub transaction_id: Option<ID>,
    /// The signed change of the balance (0 for snapshots and alerts).
    pub delta: i32,
    /// The balance after it.
    pub balance: Balance,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// For BUDGET_EXCEEDED: the budget.
    pub budget_name: Option<String>,
    /// For HOLD, RELEASE, HOLD_EXPIRED and a capture's SPEND: the hold.
    pub hold_id: Option<ID>,
    /// For BUDGET_EXCEEDED of an agent's budget: the agent.
    pub agent_id: Option<ID>,
}

impl From<Change> for BalanceChange {
    fn from(change: Change) -> Self {
        let kind = match change.kind {
            ChangeKind::Snapshot => BalanceChangeKind::Snapshot,
            ChangeKind::LowBalance => BalanceChangeKind::LowBalance,
            ChangeKind::BudgetExceeded => BalanceChangeKind::BudgetExceeded,
            ChangeKind::Ledger(kind) => match kind {
                LedgerKind::Grant => BalanceChangeKind::Grant,
                LedgerKind::Spend => BalanceChangeKind::Spend,
                LedgerKind::Expire => BalanceChangeKind::Expire,
                LedgerKind::TopUp => BalanceChangeKind::TopUp,
                LedgerKind::Adjustment => BalanceChangeKind::Adjustment,
                LedgerKind::Reversal => BalanceChangeKind::Reversal,
                LedgerKind::Hold => BalanceChangeKind::Hold,
                LedgerKind::Release => BalanceChangeKind::Release,
                LedgerKind::HoldExpired => BalanceChangeKind::HoldExpired,
            },
        };
        Self {
            kind,
            sequence: int(change.sequence),
            transaction_id: change.transaction_id.map(|id| ID(id.to_string())),
            delta: int(change.delta),
            balance: change.balance.into(),
            at: change.at,
            agent_id: change
                .budget
                .as_ref()
                .and_then(|budget| budget.agent_id.clone())
                .map(ID),
            budget_name: change.budget.map(|budget| budget.name),
            hold_id: change.hold_id.map(|id| ID(id.to_string())),
        }
    }
}

/// Most subscriptions one WebSocket connection may hold at once.
pub const SUBSCRIPTIONS_PER_CONNECTION_MAX: usize = 20;

/// The count of a connection's live subscriptions (connection data).
#[derive(Debug, Clone, Default)]
pub struct SubscriptionSlots(Arc<AtomicUsize>);

/// Frees a subscription slot when its stream ends.
struct SlotGuard(Arc<AtomicUsize>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The subscription root.
#[derive(Default)]
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// The wallet's balance, live: first a SNAPSHOT (or, with
    /// `afterSequence`, the transactions missed since then), then one event
    /// per change, in ledger order.
    async fn balance_changed(
        &self,
        ctx: &Context<'_>,
        workspace_id: Option<ID>,
        after_sequence: Option<i32>,
    ) -> async_graphql::Result<BoxStream<'static, async_graphql::Result<BalanceChange>>> {
        let scope = scope(ctx, workspace_id.as_ref(), Operation::Read).gql()?;
        let guard = match ctx.data_opt::<SubscriptionSlots>() {
            Some(SubscriptionSlots(count)) => {
                if count.fetch_add(1, Ordering::SeqCst) >= SUBSCRIPTIONS_PER_CONNECTION_MAX {
                    count.fetch_sub(1, Ordering::SeqCst);
                    return Err(async_graphql::Error::new(format!(
                        "at most {SUBSCRIPTIONS_PER_CONNECTION_MAX} subscriptions per connection"
                    ))
                    .extend_with(|_, extensions| extensions.set("code", "LIMIT_EXCEEDED")));
                }
                Some(SlotGuard(count.clone()))
            }
            None => None,
        };
        let ledger = ledger(ctx).gql()?;
        let stream = ledger
            .balance_stream(scope, after_sequence.map(i64::from))
            .await
            .gql()?;
        let live = ledger.metrics().subscriber();
        let changes = stream
            .map(move |item| {
                let _held = (&guard, &live);
                item
            })
            .boxed();
        // Started by the WebSocket layer: the stream goes on without this
        // execution (see `live`).
        if let Some(slot) = ctx.data_opt::<StartSlot>() {
            if !slot.fill(changes) {
                return Err(
                    async_graphql::Error::new("a subscription selects exactly one root field")
                        .extend_with(|_, extensions| extensions.set("code", "BAD_USER_INPUT")),
                );
            }
            return Ok(futures_util::stream::empty().boxed());
        }
        Ok(changes.map(|item| item.map(BalanceChange::from).gql()).boxed())
    }
}
