//! Automatic top-up (`docs/design/auto-top-up.md`): settings, and the end of
//! a request, paid (with the top-up, `purchase_top_up`) or failed.

use super::Ledger;
use super::WalletView;
use crate::auth::WalletScope;
use crate::error::{AppError, AppResult};
use crate::store;
use domain::auto_top_up::{AutoTopUpView, check_settings, period_key};
use domain::catalogue::PackCode;
use domain::wallet::{AutoTopUpSettings, Closed};

/// Settings as asked for.
#[derive(Debug, Clone)]
pub struct AutoTopUpRequest {
    /// On or off.
    pub enabled: bool,
    /// Request a pack when a change leaves the balance below this.
    pub threshold: i64,
    /// The pack.
    pub pack: PackCode,
    /// Most requests per billing period.
    pub max_per_period: i32,
}

/// What a failed payment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Counted; automatic top-up stays on, and the next change below the
    /// threshold requests again.
    Recorded,
    /// The third in a row: automatic top-up is off.
    Disabled,
    /// Not the open request (already closed, or unknown): nothing changed.
    NotOpen,
}

impl FailureOutcome {
    /// The answered name.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureOutcome::Recorded => "RECORDED",
            FailureOutcome::Disabled => "DISABLED",
            FailureOutcome::NotOpen => "NOT_OPEN",
        }
    }
}

impl Ledger {
    /// Sets the wallet's automatic top-up; switching it on forgets earlier
    /// failures. An open request stays open.
    pub async fn set_auto_top_up(&self, scope: &WalletScope, request: AutoTopUpRequest) -> AppResult<()> {
        check_settings(request.threshold, request.max_per_period)?;
        let now = self.now();
        let mut locked = self.lock_settled(scope.workspace_id().as_str(), now).await?;
        store::catalogue::pack(&locked.txn, request.pack.as_str())
            .await?
            .ok_or_else(|| AppError::invalid("pack", "is not in the catalogue"))?;
        locked.wallet.set_auto_top_up(AutoTopUpSettings {
            enabled: request.enabled,
            threshold: request.threshold,
            pack: request.pack.as_str().to_owned(),
            max_per_period: request.max_per_period,
        });
        self.finish(locked, now).await?;
        Ok(())
    }

    /// The wallet's automatic top-up, if it was ever set, with its requests
    /// counted in the current period of `wallet` (as just read).
    pub async fn auto_top_up(
        &self,
        scope: &WalletScope,
        wallet: &WalletView,
    ) -> AppResult<Option<AutoTopUpView>> {
        let head = self.wallet_row(scope).await?;
        let period = period_key(wallet.current_period.map(|period| period.start));
        Ok(store::auto_top_up::find(&self.db, head.id)
            .await?
            .map(|view| view.counted_in(&period)))
    }

    /// A payment for request `request_id` failed: the request closes; the
    /// third failure in a row switches automatic top-up off, with a
    /// `credits.auto_top_up_disabled` event.
    pub async fn report_auto_top_up_failed(
        &self,
        scope: &WalletScope,
        request_id: &str,
    ) -> AppResult<FailureOutcome> {
        let now = self.now();
        let mut locked = self.lock_settled(scope.workspace_id().as_str(), now).await?;
        let outcome = match locked.wallet.close_top_up_request(request_id, false) {
            Closed::NotOpen | Closed::Paid => FailureOutcome::NotOpen,
            Closed::Failed { disabled: false, .. } => FailureOutcome::Recorded,
            Closed::Failed { disabled: true, .. } => FailureOutcome::Disabled,
        };
        self.finish(locked, now).await?;
        if outcome == FailureOutcome::Disabled {
            tracing::warn!(
                workspace_id = scope.workspace_id().as_str(),
                request_id,
                "automatic top-up switched off after three failed payments in a row"
            );
        }
        Ok(outcome)
    }
}
