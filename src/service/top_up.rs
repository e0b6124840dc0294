//! `purchaseTopUp`: a paid pack becomes a never-expiring grant, exactly
//! once per payment reference.

use super::{BalanceView, Ledger, Locked, TransactionView};
use crate::auth::WalletScope;
use crate::error::{AppError, AppResult};
use crate::store;
use domain::catalogue::{LedgerKind, PackCode};
use domain::ids::IdempotencyKey;
use domain::wallet::{Entry, KeyBinding, Purchase};

/// A validated top-up request.
#[derive(Debug, Clone)]
pub struct TopUpRequest {
    /// The pack bought.
    pub pack: PackCode,
    /// The payment's reference; also the idempotency key.
    pub payment_reference: IdempotencyKey,
    /// The automatic top-up request this payment answers; it closes.
    pub auto_top_up_request: Option<String>,
}

/// What a top-up did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopUpOutcome {
    /// The pack's credits were granted.
    Applied,
    /// This payment reference was already applied; nothing was granted again.
    Duplicate,
}

/// The answer to a top-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopUpResult {
    /// What happened.
    pub outcome: TopUpOutcome,
    /// The TOP_UP row (the original one for DUPLICATE).
    pub transaction: TransactionView,
    /// The wallet's balance now.
    pub balance: BalanceView,
}

/// A pack applied to a locked wallet: its row's index in the change, or
/// the TOP_UP row that already bound the payment reference.
pub(super) enum Packed {
    /// Row `n` of the change grants the pack.
    Applied(usize),
    /// The reference was applied before (this row).
    Duplicate(TransactionView),
}

impl Ledger {
    /// Grants a purchased pack.
    pub async fn purchase_top_up(
        &self,
        scope: &WalletScope,
        request: TopUpRequest,
    ) -> AppResult<TopUpResult> {
        let now = self.now();
        let mut locked = self.lock_settled(scope.workspace_id().as_str(), now).await?;
        let packed = Self::apply_pack(&mut locked, scope.actor(), &request).await?;
        let balance = locked.wallet.balance();
        match packed {
            Packed::Duplicate(original) => {
                self.finish(locked, now).await?;
                Ok(TopUpResult {
                    outcome: TopUpOutcome::Duplicate,
                    transaction: original,
                    balance,
                })
            }
            Packed::Applied(row) => {
                let written = self.finish(locked, now).await?;
                Ok(TopUpResult {
                    outcome: TopUpOutcome::Applied,
                    transaction: written.transaction(row)?,
                    balance,
                })
            }
        }
    }

    /// Applies `request`'s pack to the locked wallet once per payment
    /// reference (a reference bound to another pack is a conflict), and
    /// closes the automatic top-up request it answers.
    pub(super) async fn apply_pack(
        locked: &mut Locked,
        actor: &str,
        request: &TopUpRequest,
    ) -> AppResult<Packed> {
        let key = request.payment_reference.as_str();
        let fingerprint = request.pack.as_str();
        let bound =
            store::ledger::keyed(&locked.txn, locked.wallet.head().id, LedgerKind::TopUp, key).await?;
        // A confirmed payment closes the request it answers (if still open).
        if let Some(request_id) = &request.auto_top_up_request {
            locked.wallet.close_top_up_request(request_id, true);
        }
        if let Some((bound_fingerprint, original)) = bound {
            if bound_fingerprint != fingerprint {
                return Err(AppError::IdempotencyConflict(
                    "paymentReference was already used for a different pack".to_owned(),
                ));
            }
            return Ok(Packed::Duplicate(original));
        }
        let pack = store::catalogue::pack(&locked.txn, fingerprint)
            .await?
            .ok_or_else(|| AppError::invalid("pack", "is not in the catalogue"))?;
        let row = locked.wallet.top_up(
            pack.credits,
            Purchase {
                pack: fingerprint.to_owned(),
                price_cents: pack.price_cents,
                currency: pack.currency,
            },
            Entry {
                kind: LedgerKind::TopUp,
                action: None,
                reference: Some(key.to_owned()),
                actor: actor.to_owned(),
                key: Some(KeyBinding {
                    key: key.to_owned(),
                    fingerprint: fingerprint.to_owned(),
                }),
                reverses: None,
                agent_id: None,
                hold: None,
            },
        )?;
        Ok(Packed::Applied(row))
    }
}
