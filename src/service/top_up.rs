//! `purchaseTopUp`: a paid pack becomes a never-expiring grant, exactly
//! once per payment reference.

use super::{BalanceView, Ledger, TransactionView};
use crate::auth::WalletScope;
use crate::domain::catalogue::{GrantSource, LedgerKind, PackCode};
use crate::domain::ids::IdempotencyKey;
use crate::error::{AppError, AppResult, db_error};
use crate::store;
use crate::store::ledger::{EntryDraft, KeyBinding, NewGrant};

/// A validated top-up request.
#[derive(Debug, Clone)]
pub struct TopUpRequest {
    /// The pack bought.
    pub pack: PackCode,
    /// The payment's reference; also the idempotency key.
    pub payment_reference: IdempotencyKey,
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

impl Ledger {
    /// Grants a purchased pack.
    pub async fn purchase_top_up(
        &self,
        scope: &WalletScope,
        request: TopUpRequest,
    ) -> AppResult<TopUpResult> {
        let now = self.now();
        let mut locked = self.lock(scope.workspace_id().as_str()).await?;
        let key = request.payment_reference.as_str();
        let fingerprint = request.pack.as_str();
        locked.settle(now).await?;
        if let Some(original) =
            store::ledger::keyed_entry(&locked.txn, locked.wallet.id, LedgerKind::TopUp, key)
                .await
                .map_err(db_error)?
        {
            if original.idempotency_fingerprint.as_deref() != Some(fingerprint) {
                return Err(AppError::IdempotencyConflict(
                    "paymentReference was already used for a different pack".to_owned(),
                ));
            }
            let balance = locked.balance();
            self.finish(locked, now).await?;
            return Ok(TopUpResult {
                outcome: TopUpOutcome::Duplicate,
                transaction: TransactionView::from_model(original)?,
                balance,
            });
        }
        let pack = store::catalogue::pack(&locked.txn, request.pack.as_str())
            .await
            .map_err(db_error)?
            .ok_or_else(|| AppError::invalid("pack", "is not in the catalogue"))?;
        let grant_id = locked
            .add_grant(
                NewGrant {
                    source: GrantSource::Purchase,
                    credits: pack.credits,
                    expires_at: None,
                    period_start_at: None,
                    purchase: Some((pack.code.clone(), pack.price_cents, pack.currency.clone())),
                },
                now,
            )
            .await?;
        let entry = locked
            .append(
                EntryDraft {
                    kind: LedgerKind::TopUp,
                    amount: pack.credits,
                    action: None,
                    reference: Some(key.to_owned()),
                    actor: scope.actor().to_owned(),
                    idempotency: Some(KeyBinding {
                        key: key.to_owned(),
                        fingerprint: fingerprint.to_owned(),
                    }),
                    reverses_entry_id: None,
                    grant_moves: vec![(grant_id, pack.credits)],
                },
                now,
            )
            .await?;
        let balance = locked.balance();
        self.finish(locked, now).await?;
        Ok(TopUpResult {
            outcome: TopUpOutcome::Applied,
            transaction: TransactionView::from_model(entry)?,
            balance,
        })
    }
}
