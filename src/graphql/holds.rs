//! `reserveCredits`, `captureHold`, `releaseHold`, `extendHold`
//! (`docs/design/holds.md`).

use async_graphql::{Context, ID, Object};

use super::types::{
    CaptureHoldInput, ExtendHoldInput, HoldPayload, ReleaseHoldInput, ReserveCreditsInput,
    ReserveCreditsPayload,
};
use super::{caller, ledger, scope, spender};
use crate::auth::{Operation, WalletScope};
use crate::error::AppError;
use crate::graphql::errors::GraphqlResult;
use crate::service::ReserveRequest;
use domain::catalogue::Role;
use domain::hold::Hold;
use domain::ids::WorkspaceId;

/// Holds: reserve credits when an AI action starts, capture what it cost,
/// release the rest.
#[derive(Default)]
pub struct HoldMutation;

#[Object]
impl HoldMutation {
    /// Reserves credits for an action that starts: spends and other holds
    /// see only what is left (`available`). Running short is the outcome
    /// INSUFFICIENT_CREDITS, not an error. Roles as for spending the action.
    async fn reserve_credits(
        &self,
        ctx: &Context<'_>,
        input: ReserveCreditsInput,
    ) -> async_graphql::Result<ReserveCreditsPayload> {
        let (scope, spend) = spender(
            ctx,
            input.workspace_id.as_ref(),
            input.action.into(),
            ("holdKey", &input.hold_key),
            input.reference.as_deref(),
            input.agent_id,
        )
        .gql()?;
        let request = ReserveRequest {
            spend,
            credits: input.credits.map(i64::from),
            ttl_seconds: input.ttl_seconds.map(i64::from),
        };
        Ok(ledger(ctx).gql()?.reserve(&scope, request).await.gql()?.into())
    }

    /// Charges what the held action cost (default: what is held) as one
    /// SPEND naming the hold, and gives back the rest. A retry with the
    /// same credits replays the answer (`replayed`); a hold released or
    /// expired is HOLD_NOT_ACTIVE.
    async fn capture_hold(
        &self,
        ctx: &Context<'_>,
        input: CaptureHoldInput,
    ) -> async_graphql::Result<HoldPayload> {
        let (scope, hold) = hold_scope(ctx, &input.hold_id).await.gql()?;
        let result = ledger(ctx)
            .gql()?
            .capture_hold(&scope, &hold, input.credits.map(i64::from))
            .await
            .gql()?;
        Ok(result.into())
    }

    /// Gives a hold's credits back: the action never ran.
    async fn release_hold(
        &self,
        ctx: &Context<'_>,
        input: ReleaseHoldInput,
    ) -> async_graphql::Result<HoldPayload> {
        let (scope, hold) = hold_scope(ctx, &input.hold_id).await.gql()?;
        let id = hold.id;
        let result = ledger(ctx)
            .gql()?
            .release_hold(&scope, id, &input.reason)
            .await
            .gql()?;
        Ok(result.into())
    }

    /// Moves a live hold's expiry to `ttlSeconds` from now: a long
    /// action's heartbeat.
    async fn extend_hold(
        &self,
        ctx: &Context<'_>,
        input: ExtendHoldInput,
    ) -> async_graphql::Result<HoldPayload> {
        let (scope, hold) = hold_scope(ctx, &input.hold_id).await.gql()?;
        let id = hold.id;
        let result = ledger(ctx)
            .gql()?
            .extend_hold(&scope, id, input.ttl_seconds.map(i64::from))
            .await
            .gql()?;
        Ok(result.into())
    }
}

/// The caller's scope over hold `raw`: a hold of another workspace is
/// NOT_FOUND (its existence is not told), then roles as for spending its
/// action; an agent token moves only its own holds.
async fn hold_scope(ctx: &Context<'_>, raw: &ID) -> Result<(WalletScope, Hold), AppError> {
    let id = raw
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| AppError::invalid("holdId", "is not a hold id"))?;
    let caller = caller(ctx)?;
    let (workspace, hold) = ledger(ctx)?
        .find_hold(id)
        .await?
        .ok_or(AppError::NotFound("hold"))?;
    if caller.role != Role::Operator
        && caller.workspace_id.as_ref().map(WorkspaceId::as_str) != Some(&workspace)
    {
        return Err(AppError::NotFound("hold"));
    }
    let scope = scope(ctx, Some(&ID(workspace)), Operation::Spend(hold.action))?;
    if caller.role == Role::Agent && hold.agent_id.as_deref() != Some(caller.subject.as_str()) {
        return Err(AppError::Forbidden("move another agent's hold"));
    }
    Ok((scope, hold))
}
