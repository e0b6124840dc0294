//! The hand-over between a subscription's two phases (`live.rs`): the
//! resolver leaves its balance stream in a [`StartSlot`] of the request's
//! data, and the live phase takes it from there. Apart from both, so that
//! neither the resolver nor the live phase imports the other.

use std::sync::{Arc, Mutex};

use futures_util::stream::BoxStream;

use crate::error::AppResult;
use crate::service::BalanceChange as Change;

/// A subscriber's balance stream, as the resolver built it.
pub type Changes = BoxStream<'static, AppResult<Change>>;

/// Where the resolver leaves its stream during the start phase (request
/// data). Only one root field may subscribe.
#[derive(Clone, Default)]
pub struct StartSlot(Arc<Mutex<Start>>);

#[derive(Default)]
enum Start {
    #[default]
    Empty,
    Started(Changes),
    /// A second root field tried to subscribe.
    Refused,
}

impl StartSlot {
    /// Keeps `changes` for the live phase; `false` if a stream is already
    /// there (a subscription has exactly one root field).
    pub fn fill(&self, changes: Changes) -> bool {
        let mut start = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match *start {
            Start::Empty => {
                *start = Start::Started(changes);
                true
            }
            Start::Started(_) | Start::Refused => {
                *start = Start::Refused;
                false
            }
        }
    }

    pub(super) fn take(&self) -> Option<Changes> {
        let mut start = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match std::mem::take(&mut *start) {
            Start::Started(changes) => Some(changes),
            Start::Empty | Start::Refused => None,
        }
    }
}
