//! The live balance stream behind `Subscription.balanceChanged`.
//!
//! The ledger is the source of truth; the event bus only says "something
//! was committed". A subscriber registers with the bus *before* reading its
//! starting point, then yields, in ledger order and without gaps or
//! duplicates:
//! - without `after_sequence`: a SNAPSHOT of the current balance, then one
//!   event per committed row;
//! - with `after_sequence`: the rows it missed, read from the ledger, then
//!   live rows (or a fresh SNAPSHOT if it missed more than
//!   [`REPLAY_ROWS_MAX`]).
//!
//! A bus event whose sequence is ahead of the last one delivered makes the
//! stream read the rows in between from the ledger; one at or behind it is a
//! duplicate and is dropped. A subscriber that lags behind the bounded bus
//! catches up from the ledger the same way, so memory per subscriber stays
//! bounded whatever its speed: the stream is a state machine polled by the
//! connection, with no queue of its own beyond one catch-up.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::{BalanceView, Ledger};
use crate::auth::WalletScope;
use crate::error::{AppError, AppResult};
use crate::events::{BalanceEvent, BudgetRef, EventKind};
use crate::store;
use domain::catalogue::LedgerKind;

/// Most rows replayed from the ledger at once; beyond it, a fresh snapshot.
pub const REPLAY_ROWS_MAX: u64 = 1000;

/// What one stream item reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The current balance (first item, or after falling too far behind).
    Snapshot,
    /// A committed ledger row.
    Ledger(LedgerKind),
    /// The balance crossed below the low-balance threshold.
    LowBalance,
    /// A budget's window was exhausted (once per window).
    BudgetExceeded,
}

/// One item of the balance stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceChange {
    /// What happened.
    pub kind: ChangeKind,
    /// The wallet's ledger sequence this item brings the subscriber to.
    pub sequence: i64,
    /// The ledger row, for row items.
    pub transaction_id: Option<i64>,
    /// The signed change (0 for snapshots and alerts).
    pub delta: i64,
    /// The balance after it.
    pub balance: BalanceView,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The budget, for BudgetExceeded.
    pub budget: Option<BudgetRef>,
    /// The hold a row concerns.
    pub hold_id: Option<i64>,
}

fn from_row((row, balance): (super::TransactionView, BalanceView)) -> BalanceChange {
    BalanceChange {
        kind: ChangeKind::Ledger(row.kind),
        sequence: row.sequence,
        transaction_id: Some(row.id),
        delta: row.amount,
        balance,
        at: row.created_at,
        budget: None,
        hold_id: row.hold_id,
    }
}

struct Cursor {
    ledger: Ledger,
    wallet_id: i64,
    last: i64,
    /// Whether the subscriber asked to replay from `last` (no snapshot).
    replay: bool,
}

impl Cursor {
    /// A snapshot of now, read from the newest ledger row (whose balance
    /// after is the wallet's balance); moves the cursor to it. One query,
    /// so a reconnect storm costs the database little.
    async fn snapshot(&mut self) -> AppResult<BalanceChange> {
        let (sequence, balance) = store::ledger::newest_balance(&self.ledger.db, self.wallet_id)
            .await?
            .unwrap_or_default();
        self.last = sequence;
        Ok(BalanceChange {
            kind: ChangeKind::Snapshot,
            sequence,
            transaction_id: None,
            delta: 0,
            balance,
            at: self.ledger.now(),
            budget: None,
            hold_id: None,
        })
    }

    /// The rows after the cursor up to `until` (or the head), or a snapshot
    /// when there are too many.
    async fn catch_up(&mut self, until: Option<i64>) -> AppResult<Vec<BalanceChange>> {
        let rows = store::ledger::entries_after(
            &self.ledger.db,
            self.wallet_id,
            self.last,
            until,
            REPLAY_ROWS_MAX + 1,
        )
        .await?;
        if rows.len() as u64 > REPLAY_ROWS_MAX {
            return Ok(vec![self.snapshot().await?]);
        }
        let changes: Vec<BalanceChange> = rows.into_iter().map(from_row).collect();
        if let Some(last) = changes.last() {
            self.last = last.sequence;
        }
        Ok(changes)
    }

    /// What a bus event means for this subscriber.
    async fn on_event(&mut self, event: BalanceEvent) -> AppResult<Vec<BalanceChange>> {
        match event.kind {
            EventKind::LowBalance | EventKind::BudgetExceeded => {
                let mut changes = if event.sequence > self.last {
                    self.catch_up(Some(event.sequence)).await?
                } else {
                    Vec::new()
                };
                changes.push(BalanceChange {
                    kind: if event.kind == EventKind::LowBalance {
                        ChangeKind::LowBalance
                    } else {
                        ChangeKind::BudgetExceeded
                    },
                    sequence: event.sequence,
                    transaction_id: None,
                    delta: 0,
                    balance: event.balance,
                    at: event.created_at,
                    budget: event.budget,
                    hold_id: None,
                });
                Ok(changes)
            }
            EventKind::Remote if event.sequence > self.last => self.catch_up(Some(event.sequence)).await,
            EventKind::Remote | EventKind::Resync => Ok(Vec::new()),
            EventKind::Ledger(kind) => {
                if event.sequence <= self.last {
                    return Ok(Vec::new());
                }
                if event.sequence > self.last + 1 {
                    return self.catch_up(Some(event.sequence)).await;
                }
                self.last = event.sequence;
                Ok(vec![BalanceChange {
                    kind: ChangeKind::Ledger(kind),
                    sequence: event.sequence,
                    transaction_id: Some(event.transaction_id),
                    delta: event.delta,
                    balance: event.balance,
                    at: event.created_at,
                    budget: None,
                    hold_id: event.hold_id,
                }])
            }
        }
    }
}

impl Ledger {
    /// The live balance stream of the scope's wallet (see the module docs).
    pub async fn balance_stream(
        &self,
        scope: WalletScope,
        after_sequence: Option<i64>,
    ) -> AppResult<impl Stream<Item = AppResult<BalanceChange>> + Send + use<>> {
        // Register before reading the starting point, so nothing committed
        // in between is missed.
        let receiver = self.events.subscribe(scope.workspace_id().as_str());
        let wallet = store::wallets::find(&self.db, scope.workspace_id().as_str())
            .await?
            .ok_or(AppError::NotFound("workspace"))?;
        if after_sequence.is_some_and(|after| after < 0 || after > wallet.last_sequence) {
            return Err(AppError::invalid(
                "afterSequence",
                "must be between 0 and the wallet's last sequence",
            ));
        }
        let cursor = Cursor {
            ledger: self.clone(),
            wallet_id: wallet.id,
            last: after_sequence.unwrap_or(0),
            replay: after_sequence.is_some(),
        };
        let state = StreamState {
            cursor,
            receiver,
            workspace_id: wallet.workspace_id,
            pending: VecDeque::new(),
            started: false,
        };
        // The stream is a plain state machine, polled by the connection: no
        // task or queue of its own. While it is not polled it consumes
        // nothing; the bus ring moves on and it catches up from the ledger.
        Ok(futures_util::stream::unfold(Some(state), |state| async move {
            let mut state = state?;
            match state.next().await {
                Ok(change) => Some((Ok(change), Some(state))),
                // An error ends the stream after it is reported.
                Err(error) => Some((Err(error), None)),
            }
        }))
    }
}

/// The state of one subscriber's stream.
struct StreamState {
    cursor: Cursor,
    receiver: tokio::sync::broadcast::Receiver<BalanceEvent>,
    workspace_id: String,
    /// Changes decided but not yet yielded (at most one catch-up's worth).
    pending: VecDeque<BalanceChange>,
    started: bool,
}

impl StreamState {
    async fn next(&mut self) -> AppResult<BalanceChange> {
        if !self.started {
            self.started = true;
            // Boxed: the database futures are large, and an idle subscriber's
            // state should hold only what waiting for the bus needs.
            let first = if self.cursor.replay {
                Box::pin(self.cursor.catch_up(None)).await?
            } else {
                vec![Box::pin(self.cursor.snapshot()).await?]
            };
            self.pending.extend(first);
        }
        loop {
            if let Some(change) = self.pending.pop_front() {
                return Ok(change);
            }
            let changes = match self.receiver.recv().await {
                Ok(event) if event.kind == EventKind::Resync => Box::pin(self.cursor.catch_up(None)).await?,
                Ok(event) if event.workspace_id == self.workspace_id => {
                    Box::pin(self.cursor.on_event(event)).await?
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => Box::pin(self.cursor.catch_up(None)).await?,
                Err(RecvError::Closed) => std::future::pending().await,
            };
            self.pending.extend(changes);
        }
    }
}
