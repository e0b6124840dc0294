//! Payments from the provider, in whatever order its events arrive
//! (`docs/design/payments.md`). Each payment intent has one row across the
//! service (`store::payments`), locked while any event of it is handled:
//!
//! - a confirmed payment applies its pack once, to one workspace, and only
//!   for the pack's price in its currency; refunded before it arrived, it
//!   applies nothing (or, refunded in part, applies and tells);
//! - refunds accumulate: each larger refunded amount is handled once; a
//!   full refund of an unspent top-up reverses it, anything else is told
//!   to an operator (`credits.refund_needs_review`);
//! - a dispute is recorded and told; a lost one is a full refund.
//!
//! Lock order: the wallet, then the payment. A refund or dispute of a
//! payment not applied yet locks only the payment; finding it applied
//! meanwhile, it starts again the other way round.

use serde_json::json;

use super::top_up::Packed;
use super::{Ledger, Locked, TopUpRequest};
use crate::error::{AppError, AppResult};
use crate::store;
use crate::store::payments::{APPLIED, PENDING, Payment, REVIEW};
use domain::catalogue::{LedgerKind, PackCode};
use domain::ids::{IdempotencyKey, WorkspaceId};
use domain::outbox::{self, NewEvent};
use domain::wallet::Entry;

/// A payment the provider confirmed, as its event states it.
#[derive(Debug, Clone)]
pub struct PaymentReceived {
    /// The workspace its metadata names.
    pub workspace: WorkspaceId,
    /// The pack its metadata names.
    pub pack: PackCode,
    /// The payment intent: the top-up's key, unique across the service.
    pub reference: IdempotencyKey,
    /// What was charged before discounts, in the currency's minor unit.
    pub amount_cents: i64,
    /// The currency charged (ISO 4217, any case).
    pub currency: String,
    /// The automatic top-up request it pays, if any.
    pub auto_top_up_request: Option<String>,
}

/// What a confirmed payment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// The pack was applied.
    Applied,
    /// This payment was applied before, here, for this pack.
    Duplicate,
    /// Nothing applied; an operator was told why (`reason`).
    NeedsReview(&'static str),
}

impl PaymentOutcome {
    /// The answered name.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentOutcome::Applied => "APPLIED",
            PaymentOutcome::Duplicate => "DUPLICATE",
            PaymentOutcome::NeedsReview(_) => "NEEDS_REVIEW",
        }
    }
}

/// What a refund (or a lost dispute) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundOutcome {
    /// The top-up was unspent and is reversed: its credits are gone.
    Reversed,
    /// Some of the top-up was spent: nothing reversed, told to an operator.
    Unrecovered,
    /// A partial refund: nothing reversed, told to an operator (a later
    /// full refund still reverses an unspent top-up).
    Partial,
    /// The payment was not applied yet: the refund is recorded, and the
    /// payment, when it arrives, is applied accordingly.
    Recorded,
    /// Nothing more was refunded than already handled.
    Duplicate,
}

impl RefundOutcome {
    /// The stored and answered name.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundOutcome::Reversed => "REVERSED",
            RefundOutcome::Unrecovered => "UNRECOVERED",
            RefundOutcome::Partial => "PARTIAL",
            RefundOutcome::Recorded => "RECORDED",
            RefundOutcome::Duplicate => "DUPLICATE",
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

/// A dispute as the provider reports it.
#[derive(Debug, Clone)]
pub struct Dispute {
    /// The disputed payment's reference.
    pub reference: String,
    /// The provider's status (`needs_response`, `won`, `lost`…).
    pub status: String,
    /// The amount disputed, in cents.
    pub amount_cents: i64,
}

/// A payment's row locked, with its wallet's when it was applied.
enum PaymentLock {
    Applied(Box<Locked>, Payment, i64),
    Unapplied(store::Tx, Payment),
}

impl Ledger {
    /// Applies a confirmed payment (see the module's rules).
    pub async fn receive_payment(&self, received: &PaymentReceived) -> AppResult<PaymentOutcome> {
        let now = self.now();
        let mut locked = self.lock_settled(received.workspace.as_str(), now).await?;
        let reference = received.reference.as_str();
        let mut payment = store::payments::lock_payment(&locked.txn, reference, now).await?;
        let workspace = received.workspace.as_str();
        let pack_code = received.pack.as_str();
        let request = TopUpRequest {
            pack: received.pack,
            payment_reference: received.reference.clone(),
            auto_top_up_request: received.auto_top_up_request.clone(),
        };
        let review = |reason: &'static str, detail: serde_json::Value| {
            outbox::payment_needs_review(workspace, reference, reason, detail)
        };
        let pack = store::catalogue::pack(&locked.txn, pack_code)
            .await?
            .ok_or_else(|| AppError::invalid("metadata.pack", "is not a top-up pack of the catalogue"))?;
        let (outcome, tell) = match payment.status.as_str() {
            APPLIED
                if payment.workspace_id.as_deref() == Some(workspace)
                    && payment.pack_code.as_deref() == Some(pack_code) =>
            {
                Self::apply_pack(&mut locked, "stripe", &request).await?;
                (PaymentOutcome::Duplicate, None)
            }
            APPLIED => {
                let reason = "payment_already_applied";
                let detail = json!({
                    "appliedTo": payment.workspace_id,
                    "appliedPack": payment.pack_code,
                    "namedPack": pack_code,
                });
                (PaymentOutcome::NeedsReview(reason), Some(review(reason, detail)))
            }
            _ if received.amount_cents != pack.price_cents
                || !received.currency.eq_ignore_ascii_case(&pack.currency) =>
            {
                let reason = "amount_mismatch";
                let detail = json!({
                    "pack": pack_code,
                    "paidCents": received.amount_cents,
                    "paidCurrency": received.currency,
                    "priceCents": pack.price_cents,
                    "priceCurrency": pack.currency,
                });
                payment.status = REVIEW.to_owned();
                (PaymentOutcome::NeedsReview(reason), Some(review(reason, detail)))
            }
            _ if payment.refunded || payment.dispute_status.as_deref() == Some("lost") => {
                let reason = "refunded_before_applied";
                let detail = json!({
                    "pack": pack_code,
                    "amountRefundedCents": payment.amount_refunded_cents,
                    "disputeStatus": payment.dispute_status,
                });
                payment.status = REVIEW.to_owned();
                (PaymentOutcome::NeedsReview(reason), Some(review(reason, detail)))
            }
            _ => match Self::apply_pack(&mut locked, "stripe", &request).await? {
                // Applied before this row existed (an operator's
                // purchaseTopUp naming the payment): it is applied.
                Packed::Duplicate(_) => {
                    payment.status = APPLIED.to_owned();
                    (PaymentOutcome::Duplicate, None)
                }
                Packed::Applied(_) => {
                    payment.status = APPLIED.to_owned();
                    // Refunded in part before it arrived: applied, and told.
                    let tell = (payment.amount_refunded_cents > 0).then(|| {
                        review(
                            "partly_refunded_before_applied",
                            json!({ "pack": pack_code, "amountRefundedCents": payment.amount_refunded_cents }),
                        )
                    });
                    (PaymentOutcome::Applied, tell)
                }
            },
        };
        if payment.status != APPLIED || payment.workspace_id.is_none() {
            payment.workspace_id = Some(workspace.to_owned());
            payment.pack_code = Some(pack_code.to_owned());
            payment.amount_cents = Some(received.amount_cents);
            payment.currency = Some(received.currency.to_ascii_uppercase());
        }
        store::payments::save_payment(&locked.txn, payment, now).await?;
        if let Some(event) = &tell {
            tracing::error!(
                workspace,
                payment_reference = reference,
                data = %event.data,
                "a confirmed payment needs an operator's review"
            );
        }
        if let Some(event) = tell {
            locked.wallet.tell(event);
        }
        self.finish(locked, now).await?;
        Ok(outcome)
    }

    /// Handles a refund once per refunded amount (see the module's rules).
    pub async fn refund_payment(&self, refund: &Refund) -> AppResult<RefundOutcome> {
        self.refund_or_dispute(refund, None).await
    }

    /// Records a dispute and tells it; a lost one is a full refund.
    pub async fn dispute_payment(&self, dispute: &Dispute) -> AppResult<RefundOutcome> {
        // Only a lost dispute takes the money back; an open or won one
        // refunds nothing.
        let lost = dispute.status == "lost";
        let refund = Refund {
            reference: dispute.reference.clone(),
            amount_refunded_cents: if lost { dispute.amount_cents } else { 0 },
            full: lost,
        };
        self.refund_or_dispute(&refund, Some(dispute)).await
    }

    async fn refund_or_dispute(
        &self,
        refund: &Refund,
        dispute: Option<&Dispute>,
    ) -> AppResult<RefundOutcome> {
        let now = self.now();
        let disputed = |payment: &Payment| {
            dispute.is_some_and(|dispute| payment.dispute_status.as_deref() != Some(dispute.status.as_str()))
        };
        match self.lock_payment(&refund.reference, now).await? {
            PaymentLock::Unapplied(txn, mut payment) => {
                let more = refund.amount_refunded_cents > payment.amount_refunded_cents
                    || (refund.full && !payment.refunded);
                if !more && !disputed(&payment) {
                    store::commit(txn).await?;
                    return Ok(RefundOutcome::Duplicate);
                }
                payment.amount_refunded_cents =
                    payment.amount_refunded_cents.max(refund.amount_refunded_cents);
                payment.refunded |= refund.full;
                if let Some(dispute) = dispute {
                    payment.dispute_status = Some(dispute.status.clone());
                }
                store::payments::save_payment(&txn, payment, now).await?;
                store::commit(txn).await?;
                Ok(RefundOutcome::Recorded)
            }
            PaymentLock::Applied(locked, mut payment, entry_id) => {
                let mut locked = *locked;
                let workspace = locked.wallet.head().workspace_id.clone();
                let more = refund.amount_refunded_cents > payment.amount_refunded_cents
                    || (refund.full && !payment.refunded);
                let mut told: Vec<NewEvent> = Vec::new();
                if let Some(dispute) = dispute.filter(|_| disputed(&payment)) {
                    payment.dispute_status = Some(dispute.status.clone());
                    told.push(outbox::payment_disputed(
                        &workspace,
                        &refund.reference,
                        &dispute.status,
                        dispute.amount_cents,
                    ));
                }
                if !more {
                    let outcome = if told.is_empty() {
                        RefundOutcome::Duplicate
                    } else {
                        RefundOutcome::Recorded
                    };
                    store::payments::save_payment(&locked.txn, payment, now).await?;
                    told.into_iter().for_each(|event| locked.wallet.tell(event));
                    self.finish(locked, now).await?;
                    return Ok(outcome);
                }
                let outcome = if refund.full {
                    self.reverse_top_up(&mut locked, entry_id, &refund.reference, now)
                        .await?
                } else {
                    RefundOutcome::Partial
                };
                payment.amount_refunded_cents =
                    payment.amount_refunded_cents.max(refund.amount_refunded_cents);
                payment.refunded |= refund.full;
                payment.refund_outcome = Some(outcome.as_str().to_owned());
                let amount = payment.amount_refunded_cents;
                store::payments::save_payment(&locked.txn, payment, now).await?;
                if outcome != RefundOutcome::Reversed {
                    told.push(outbox::refund_needs_review(
                        &workspace,
                        &refund.reference,
                        outcome.as_str(),
                        entry_id,
                        amount,
                    ));
                    tracing::error!(
                        workspace,
                        payment_reference = refund.reference,
                        transaction_id = entry_id,
                        outcome = outcome.as_str(),
                        "a refunded payment's top-up was not reversed; an operator must decide (reverseTransaction or adjustCredits)"
                    );
                }
                told.into_iter().for_each(|event| locked.wallet.tell(event));
                self.finish(locked, now).await?;
                Ok(outcome)
            }
        }
    }

    /// Reverses an unspent top-up (`REVERSED`; one an operator reversed
    /// already counts too); a spent one stays (`UNRECOVERED`).
    async fn reverse_top_up(
        &self,
        locked: &mut Locked,
        entry_id: i64,
        reference: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> AppResult<RefundOutcome> {
        let original = store::ledger::reversed(&locked.txn, entry_id)
            .await?
            .ok_or(AppError::NotFound("transaction"))?;
        if original.is_reversed {
            return Ok(RefundOutcome::Reversed);
        }
        let entry = Entry::by(LedgerKind::Reversal, "stripe", format!("refund of {reference}"));
        Ok(match locked.wallet.reverse(&original, entry, now) {
            Ok(_) => RefundOutcome::Reversed,
            Err(error) => {
                tracing::warn!(%error, transaction_id = entry_id, "a refunded top-up cannot be reversed");
                RefundOutcome::Unrecovered
            }
        })
    }

    /// Locks a payment's row: with its wallet first when it was applied
    /// (the TOP_UP row's id comes with it), alone otherwise.
    async fn lock_payment(
        &self,
        reference: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> AppResult<PaymentLock> {
        // Two rounds at most: a payment applied between the look and the
        // lock is found applied under the lock, and locked again in order.
        for _ in 0..2 {
            let known = store::payments::payment(&self.db, reference).await?;
            let workspace = match known {
                Some(payment) if payment.status == APPLIED => payment.workspace_id,
                // A top-up applied by an operator's purchaseTopUp, or before
                // payments had rows: found by its reference.
                _ => match store::payments::top_ups_by_reference(&self.db, reference)
                    .await?
                    .as_slice()
                {
                    [] => None,
                    [(_, workspace)] => Some(workspace.clone()),
                    _ => {
                        return Err(AppError::IdempotencyConflict(
                            "this payment reference bought top-ups in several workspaces".to_owned(),
                        ));
                    }
                },
            };
            if let Some(workspace) = workspace {
                let locked = self.lock_settled(&workspace, now).await?;
                let mut payment = store::payments::lock_payment(&locked.txn, reference, now).await?;
                let entry = store::ledger::keyed_entry(
                    &locked.txn,
                    locked.wallet.head().id,
                    LedgerKind::TopUp,
                    reference,
                )
                .await?
                .ok_or_else(|| {
                    AppError::Internal(anyhow::anyhow!("payment {reference} has no TOP_UP row"))
                })?;
                if payment.status != APPLIED {
                    payment.status = APPLIED.to_owned();
                    payment.workspace_id = Some(workspace);
                    payment.pack_code = entry.idempotency_fingerprint.clone();
                }
                return Ok(PaymentLock::Applied(Box::new(locked), payment, entry.id));
            }
            let txn = store::begin_write(&self.db).await?;
            let payment = store::payments::lock_payment(&txn, reference, now).await?;
            if payment.status == APPLIED {
                store::rollback(txn).await?;
                continue;
            }
            debug_assert!(payment.status == PENDING || payment.status == REVIEW);
            return Ok(PaymentLock::Unapplied(txn, payment));
        }
        Err(AppError::Unavailable(anyhow::anyhow!(
            "the payment changed twice while it was being locked; retry"
        )))
    }
}
