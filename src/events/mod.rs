//! Balance events: committed ledger rows, published after their commit.
//!
//! The bus is an in-process, bounded broadcast. Publishing never blocks and
//! never fails: a subscriber that falls behind loses events from the bus
//! and must recover them from the ledger, which stays the source of truth
//! (every event carries its per-wallet ledger sequence, so gaps are visible).

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::domain::catalogue::LedgerKind;
use crate::service::BalanceView;

/// How many events the bus holds for slow subscribers before they lag.
pub const EVENT_BUS_CAPACITY: usize = 4096;

/// What an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A ledger row of this kind was committed.
    Ledger(LedgerKind),
    /// The balance crossed below the wallet's low-balance threshold (no
    /// ledger row of its own; `sequence` is the row that crossed).
    LowBalance,
}

/// One committed change of a wallet's balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceEvent {
    /// The workspace whose wallet changed.
    pub workspace_id: String,
    /// The row's per-wallet ledger sequence.
    pub sequence: i64,
    /// The row's id.
    pub transaction_id: i64,
    /// What happened.
    pub kind: EventKind,
    /// The signed change.
    pub delta: i64,
    /// The balance after the row, split.
    pub balance: BalanceView,
    /// When the row was written.
    pub created_at: DateTime<Utc>,
}

/// The in-process broadcast of committed balance events. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<BalanceEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(EVENT_BUS_CAPACITY)
    }
}

impl EventBus {
    /// A bus holding up to `capacity` events per lagging subscriber.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self { sender }
    }

    /// Publishes committed events, in ledger order.
    pub fn publish(&self, events: impl IntoIterator<Item = BalanceEvent>) {
        for event in events {
            // No subscriber is not an error: nobody is watching.
            let _ = self.sender.send(event);
        }
    }

    /// Subscribes to every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<BalanceEvent> {
        self.sender.subscribe()
    }
}
