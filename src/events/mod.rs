//! Balance events: committed ledger rows, published after their commit.
//!
//! The bus is an in-process, bounded broadcast. Publishing never blocks and
//! never fails: a subscriber that falls behind loses events from the bus
//! and must recover them from the ledger, which stays the source of truth
//! (every event carries its per-wallet ledger sequence, so gaps are visible).

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use domain::catalogue::LedgerKind;
use domain::views::BalanceView;
use domain::wallet::{Change, Happened};

pub use crate::config::EVENT_BUS_CAPACITY_DEFAULT as EVENT_BUS_CAPACITY;

/// What an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A ledger row of this kind was committed.
    Ledger(LedgerKind),
    /// The balance crossed below the wallet's low-balance threshold (no
    /// ledger row of its own; `sequence` is the row that crossed).
    LowBalance,
    /// A budget's window was exhausted for the first time (`budget` names
    /// it; `sequence` is the row it follows).
    BudgetExceeded,
    /// Another instance committed rows up to `sequence` (relayed through
    /// PostgreSQL NOTIFY); subscribers read them from the ledger.
    Remote,
    /// Notifications may have been lost (the relay's connection dropped and
    /// came back): every subscriber reads what it missed from the ledger.
    Resync,
}

/// Size of the per-wallet channel map from which idle channels are swept.
const CHANNELS_SWEEP_AT: usize = 1024;

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
    /// The budget, for BudgetExceeded.
    pub budget: Option<BudgetRef>,
    /// The hold a HOLD, RELEASE or HOLD_EXPIRED row (or a capture's SPEND)
    /// concerns.
    pub hold_id: Option<i64>,
}

/// A budget window named by an event: the budget and the agent counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRef {
    /// The budget's name.
    pub name: String,
    /// The agent, for agent budgets.
    pub agent_id: Option<String>,
}

impl BalanceEvent {
    /// The events of a committed change, in the order they happened: one
    /// per row (with `ids`, the rows' stored ids) and one per alert.
    pub fn of_change(change: &Change, ids: &[i64], created_at: DateTime<Utc>) -> Vec<Self> {
        change
            .happened
            .iter()
            .filter_map(|happened| match *happened {
                Happened::Row(index) => {
                    let row = change.rows.get(index)?;
                    let id = *ids.get(index)?;
                    Some(Self {
                        hold_id: row.view(id, created_at).hold_id,
                        ..Self::row(
                            change.workspace_id.clone(),
                            row.sequence,
                            id,
                            row.entry.kind,
                            row.amount,
                            row.balance,
                            created_at,
                        )
                    })
                }
                Happened::Alert(index) => {
                    let alert = change.alerts.get(index)?;
                    Some(Self::low_balance(
                        change.workspace_id.clone(),
                        alert.sequence,
                        alert.balance,
                        created_at,
                    ))
                }
                Happened::Exhausted(index) => {
                    let exhausted = change.exhausted.get(index)?;
                    Some(Self {
                        kind: EventKind::BudgetExceeded,
                        budget: Some(BudgetRef {
                            name: exhausted.budget.clone(),
                            agent_id: exhausted.agent_id.clone(),
                        }),
                        ..Self::low_balance(
                            change.workspace_id.clone(),
                            exhausted.sequence,
                            exhausted.balance,
                            created_at,
                        )
                    })
                }
            })
            .collect()
    }

    /// The event of a committed ledger row. Every writer builds its
    /// events here (or through `service`'s stored-row form of it).
    pub fn row(
        workspace_id: String,
        sequence: i64,
        transaction_id: i64,
        kind: LedgerKind,
        delta: i64,
        balance: BalanceView,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            workspace_id,
            sequence,
            transaction_id,
            kind: EventKind::Ledger(kind),
            delta,
            balance,
            created_at,
            budget: None,
            hold_id: None,
        }
    }

    /// The event of a low-balance alert recorded at `sequence` (no row of
    /// its own: no id, no change).
    pub fn low_balance(
        workspace_id: String,
        sequence: i64,
        balance: BalanceView,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            transaction_id: 0,
            kind: EventKind::LowBalance,
            delta: 0,
            ..Self::row(
                workspace_id,
                sequence,
                0,
                LedgerKind::Grant,
                0,
                balance,
                created_at,
            )
        }
    }
}

/// The in-process broadcast of committed balance events, one bounded
/// channel per wallet that has subscribers, so an event wakes only the
/// subscribers of its own wallet. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    channels: Arc<Mutex<HashMap<String, broadcast::Sender<BalanceEvent>>>>,
    capacity: usize,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(EVENT_BUS_CAPACITY)
    }
}

impl EventBus {
    /// A bus holding up to `capacity` events per wallet for a lagging
    /// subscriber (beyond that it reads the ledger).
    pub fn new(capacity: usize) -> Self {
        Self {
            channels: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<BalanceEvent>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes committed events, in ledger order. A Resync event goes to
    /// every wallet's subscribers.
    pub fn publish(&self, events: impl IntoIterator<Item = BalanceEvent>) {
        let mut channels = self.channels();
        for event in events {
            if event.kind == EventKind::Resync {
                channels.retain(|_, sender| sender.send(event.clone()).is_ok());
                continue;
            }
            if let Some(sender) = channels.get(&event.workspace_id)
                && sender.send(event.clone()).is_err()
            {
                // Nobody listens any more: drop the wallet's channel.
                channels.remove(&event.workspace_id);
            }
        }
    }

    /// Subscribes to the events of one wallet published from now on.
    pub fn subscribe(&self, workspace_id: &str) -> broadcast::Receiver<BalanceEvent> {
        let mut channels = self.channels();
        // Channels of wallets whose subscribers all left are dropped here too
        // (not only at their next event), whenever the map doubles.
        if channels.len() >= CHANNELS_SWEEP_AT && channels.len().is_power_of_two() {
            channels.retain(|_, sender| sender.receiver_count() > 0);
        }
        match channels.get(workspace_id) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = broadcast::channel(self.capacity);
                channels.insert(workspace_id.to_owned(), sender);
                receiver
            }
        }
    }
}

/// The NOTIFY channel of a database schema: one per schema, so several
/// deployments (or test runs) on one server never hear each other.
pub fn notify_channel(schema: Option<&str>) -> String {
    let schema: String = schema
        .unwrap_or("public")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect();
    format!("credits_{schema}")
}

/// Relays other instances' commits from PostgreSQL to the local bus, until
/// the process ends. `NOTIFY` is sent inside each writing transaction, so
/// PostgreSQL delivers it only once the rows are committed. A payload
/// (`store::notify`) names wallets and their newest sequences; the ledger
/// stays the source of truth, and a subscriber reads the rows themselves. A lost notification is recovered by
/// the next one for that wallet (the subscriber reads every row it missed).
pub async fn relay_notifications(database_url: String, channel: String, bus: EventBus) {
    use sea_orm::sqlx::postgres::PgListener;
    loop {
        let listener = async {
            let mut listener = PgListener::connect(&database_url).await?;
            listener.listen(&channel).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        }
        .await;
        let mut listener = match listener {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "event relay cannot listen; retrying in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        // Listening (again): whatever was committed while nobody listened is
        // read from the ledger by every subscriber.
        bus.publish([resync_event()]);
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let events = crate::store::notify::parse(notification.payload()).map(
                        |(sequence, workspace_id)| BalanceEvent {
                            workspace_id: workspace_id.to_owned(),
                            sequence,
                            transaction_id: 0,
                            kind: EventKind::Remote,
                            delta: 0,
                            balance: BalanceView::default(),
                            created_at: crate::clock::wall(),
                            budget: None,
                            hold_id: None,
                        },
                    );
                    bus.publish(events.collect::<Vec<_>>());
                }
                // The connection was lost: listen again on a fresh one, then resync.
                Ok(None) => {
                    tracing::warn!("event relay lost its connection; listening again");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "event relay failed; listening again in 1 s");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

/// An event telling every subscriber to catch up from the ledger.
pub fn resync_event() -> BalanceEvent {
    BalanceEvent {
        workspace_id: String::new(),
        sequence: 0,
        transaction_id: 0,
        kind: EventKind::Resync,
        delta: 0,
        balance: BalanceView::default(),
        created_at: crate::clock::wall(),
        budget: None,
        hold_id: None,
    }
}
