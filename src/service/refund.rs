//! A refund reported by the payment provider: the top-up its payment
//! bought is reversed while none of it was spent; otherwise the refund is
//! recorded and an operator is told, by the log and a
//! `credits.refund_needs_review` event (`docs/design/payments.md`).

use super::Ledger;
use crate::domain::catalogue::LedgerKind;
use crate::domain::wallet::Entry;
use crate::error::{AppError, AppResult, db_error};
use crate::store;
use crate::store::payments::RefundRecord;

/// What a refund did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundOutcome {
    /// The top-up was unspent and is reversed: its credits are gone.
    Reversed,
    /// Some of the top-up was spent: nothing reversed, the refund recorded
    /// and logged for an operator.
    Unrecovered,
    /// A partial refund: nothing reversed, recorded and logged for an
    /// operator (a later full refund still reverses an unspent top-up).
    Partial,
    /// This refund was already handled.
    Duplicate,
    /// No top-up was bought with this payment.
    UnknownPayment,
}

impl RefundOutcome {
    /// The stored and answered name.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundOutcome::Reversed => "REVERSED",
            RefundOutcome::Unrecovered => "UNRECOVERED",
            RefundOutcome::Partial => "PARTIAL",
            RefundOutcome::Duplicate => "DUPLICATE",
            RefundOutcome::UnknownPayment => "UNKNOWN_PAYMENT",
        }
    }
}

/// A refund as the provider reports it.
#[derive(Debug, Clone)]
pub struct Refund {
    /// The payment's reference (the payment intent).
    pub reference: String,
    /// How much of the payment was refunded so far, in cents.
    pub amount_refunded_cents: i64,
    /// Whether the whole payment was refunded.
    pub full: bool,
}

impl Ledger {
    /// Handles a refund once: under the wallet's lock, the record of an
    /// earlier delivery makes this one a duplicate.
    pub async fn refund_payment(&self, refund: &Refund) -> AppResult<RefundOutcome> {
        let now = self.now();
        let found = store::payments::top_ups_by_reference(&self.db, &refund.reference)
            .await
            .map_err(db_error)?;
        let (entry_id, workspace_id) = match found.as_slice() {
            [] => return Ok(RefundOutcome::UnknownPayment),
            [(entry_id, workspace_id)] => (*entry_id, workspace_id.clone()),
            _ => {
                return Err(AppError::IdempotencyConflict(
                    "this payment reference bought top-ups in several workspaces".to_owned(),
                ));
            }
        };
        let mut locked = self.lock_settled(&workspace_id, now).await?;
        let before = store::payments::refund_outcome(&locked.txn, &refund.reference)
            .await
            .map_err(db_error)?;
        let settled = before.as_deref().is_some_and(|stored| {
            [RefundOutcome::Reversed, RefundOutcome::Unrecovered]
                .iter()
                .any(|outcome| outcome.as_str() == stored)
        });
        if settled || (before.is_some() && !refund.full) {
            self.finish(locked, now).await?;
            return Ok(RefundOutcome::Duplicate);
        }
        let outcome = if refund.full {
            let original = store::ledger::reversed(&locked.txn, entry_id)
                .await
                .map_err(db_error)?
                .ok_or(AppError::NotFound("transaction"))?;
            if original.is_reversed {
                // An operator reversed it already: its credits are gone.
                RefundOutcome::Reversed
            } else {
                let entry = Entry::by(
                    LedgerKind::Reversal,
                    "stripe",
                    format!("refund of {}", refund.reference),
                );
                match locked.wallet.reverse(&original, entry, now) {
                    Ok(_) => RefundOutcome::Reversed,
                    Err(error) => {
                        tracing::warn!(%error, transaction_id = entry_id, "a refunded top-up cannot be reversed");
                        RefundOutcome::Unrecovered
                    }
                }
            }
        } else {
            RefundOutcome::Partial
        };
        store::payments::record_refund(
            &locked.txn,
            RefundRecord {
                reference: &refund.reference,
                workspace_id: &workspace_id,
                top_up_entry_id: entry_id,
                outcome: outcome.as_str(),
                amount_refunded_cents: refund.amount_refunded_cents,
            },
            now,
        )
        .await
        .map_err(db_error)?;
        if outcome != RefundOutcome::Reversed {
            // The operator is told through the outbox too (`docs/design/webhooks.md`).
            let event = crate::domain::outbox::refund_needs_review(
                &workspace_id,
                &refund.reference,
                outcome.as_str(),
                entry_id,
                refund.amount_refunded_cents,
            );
            store::outbox::insert_events(&locked.txn, &[event], now, chrono::Utc::now())
                .await
                .map_err(db_error)?;
        }
        self.finish(locked, now).await?;
        if outcome != RefundOutcome::Reversed {
            tracing::error!(
                workspace_id,
                payment_reference = refund.reference,
                transaction_id = entry_id,
                outcome = outcome.as_str(),
                "a refunded payment's top-up was not reversed; an operator must decide (reverseTransaction or adjustCredits)"
            );
        }
        Ok(outcome)
    }
}
