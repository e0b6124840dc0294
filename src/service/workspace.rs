//! `createWorkspace`: a new wallet on the trial, with its one-time credits.

use chrono::Duration;

use super::{Ledger, Locked, WalletView};
use crate::auth::WalletScope;
use crate::error::{AppError, AppResult};
use crate::store;
use domain::catalogue::PlanCode;
use domain::ids::WorkspaceId;

pub use super::plan::ChangePlanRequest;

/// A validated workspace creation.
#[derive(Debug, Clone)]
pub struct CreateWorkspaceRequest {
    /// The workspace's id in Protodesk.
    pub workspace_id: WorkspaceId,
    /// Its display name.
    pub name: String,
}

/// Longest display name, in characters.
pub const WORKSPACE_NAME_LENGTH_MAX: usize = 200;

impl Ledger {
    /// Creates a workspace and its wallet on PRO_TRIAL: the trial plan's
    /// one-time credits are granted at once (one GRANT row, sequence 1) and
    /// expire when the trial ends. `scope` is the operator's, for the new
    /// workspace.
    pub async fn create_workspace(
        &self,
        scope: &WalletScope,
        request: CreateWorkspaceRequest,
    ) -> AppResult<WalletView> {
        let now = self.now();
        let workspace_id = request.workspace_id.as_str();
        let trial = store::catalogue::plan(&self.db, PlanCode::ProTrial.as_str())
            .await?
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("the catalogue has no PRO_TRIAL plan")))?;
        let trial_ends_at = now + Duration::days(i64::from(trial.trial_days.unwrap_or(7)));
        let trial_credits = trial.monthly_credits.unwrap_or(0);

        let already = || AppError::invalid("workspaceId", "is already taken by another workspace");
        // One transaction: the workspace never exists without its trial grant.
        let txn = store::begin_write(&self.db).await?;
        if store::ledger::workspace_exists(&txn, workspace_id).await? {
            return Err(already());
        }
        let state = store::ledger::insert_workspace(
            &txn,
            workspace_id,
            &request.name,
            scope.actor(),
            PlanCode::ProTrial.as_str(),
            Some(trial_ends_at),
            now,
        )
        .await
        .map_err(|error| match error {
            // Two creations of one id raced; the loser is told, not failed.
            store::Error::Conflict {
                constraint: store::Constraint::Workspace,
                ..
            } => already(),
            error => AppError::from(error),
        })?;
        let mut wallet = super::open_wallet(state);
        wallet.grant_trial(trial_credits, trial_ends_at, scope.actor())?;
        self.finish(Locked { txn, wallet }, now).await?;
        self.wallet(scope).await
    }
}
