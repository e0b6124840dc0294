//! Mutation roots: spending, buying, plans, workspaces.

use async_graphql::{Context, MergedObject, Object};

use super::types::{
    AdjustCreditsInput, ChangePlanInput, ChangePlanPayload, CreateWorkspaceInput, CreateWorkspacePayload,
    LedgerChangePayload, PurchaseTopUpInput, PurchaseTopUpPayload, ReverseTransactionInput,
    SetLowBalanceThresholdInput, SetLowBalanceThresholdPayload, SpendCreditInput, SpendCreditPayload, Wallet,
};
use super::{caller, ledger, scope};
use crate::auth::{Caller, Operation, WalletScope, authorize_operator};
use crate::domain::ids::{IdempotencyKey, WorkspaceId, parse_reference};
use crate::error::{AppError, GraphqlResult};
use crate::service::WORKSPACE_NAME_LENGTH_MAX;
use crate::service::{
    AdjustRequest, ChangePlanRequest, CreateWorkspaceRequest, SpendRequest, ThresholdRequest, TopUpRequest,
    parse_reason,
};

/// Spending and buying credits.
#[derive(Default)]
pub struct SpendMutation;

#[Object]
impl SpendMutation {
    /// Pays for one AI action. Running out is the outcome
    /// INSUFFICIENT_CREDITS, not an error.
    async fn spend_credit(
        &self,
        ctx: &Context<'_>,
        input: SpendCreditInput,
    ) -> async_graphql::Result<SpendCreditPayload> {
        let (scope, request) = (|| -> Result<(WalletScope, SpendRequest), AppError> {
            let request = SpendRequest {
                action: input.action.into(),
                idempotency_key: IdempotencyKey::parse("idempotencyKey", &input.idempotency_key)?,
                reference: parse_reference("reference", input.reference.as_deref())?,
            };
            Ok((
                scope(ctx, input.workspace_id.as_ref(), Operation::Spend(request.action))?,
                request,
            ))
        })()
        .gql()?;
        let result = ledger(ctx).gql()?.spend(&scope, request).await.gql()?;
        Ok(result.into())
    }

    /// Credits a purchased pack (admin or operator), once per payment reference.
    async fn purchase_top_up(
        &self,
        ctx: &Context<'_>,
        input: PurchaseTopUpInput,
    ) -> async_graphql::Result<PurchaseTopUpPayload> {
        let (scope, request) = (|| -> Result<(WalletScope, TopUpRequest), AppError> {
            let request = TopUpRequest {
                pack: input.pack.into(),
                payment_reference: IdempotencyKey::parse("paymentReference", &input.payment_reference)?,
            };
            Ok((
                scope(ctx, input.workspace_id.as_ref(), Operation::TopUp)?,
                request,
            ))
        })()
        .gql()?;
        let result = ledger(ctx).gql()?.purchase_top_up(&scope, request).await.gql()?;
        Ok(result.into())
    }
}

/// Plans and workspaces.
#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Changes the plan (admin or operator): upgrades at once, downgrades at
    /// the next reset. ENTERPRISE is set by operators.
    async fn change_plan(
        &self,
        ctx: &Context<'_>,
        input: ChangePlanInput,
    ) -> async_graphql::Result<ChangePlanPayload> {
        let (scope, request) = (|| -> Result<(WalletScope, ChangePlanRequest), AppError> {
            let enterprise_monthly_credits = match input.enterprise_monthly_credits {
                Some(credits) if credits < 1 => {
                    return Err(AppError::invalid("enterpriseMonthlyCredits", "must be 1 or more"));
                }
                other => other.map(i64::from),
            };
            let request = ChangePlanRequest {
                plan: input.plan.into(),
                enterprise_monthly_credits,
            };
            Ok((
                scope(ctx, input.workspace_id.as_ref(), Operation::ChangePlan)?,
                request,
            ))
        })()
        .gql()?;
        let ledger = ledger(ctx).gql()?;
        let view = ledger.change_plan(&scope, request).await.gql()?;
        Ok(ChangePlanPayload {
            wallet: Wallet { view, scope },
        })
    }

    /// Creates a workspace and its wallet on the trial (operator only).
    async fn create_workspace(
        &self,
        ctx: &Context<'_>,
        input: CreateWorkspaceInput,
    ) -> async_graphql::Result<CreateWorkspacePayload> {
        let (scope, request) = (|| -> Result<(WalletScope, CreateWorkspaceRequest), AppError> {
            let caller = caller(ctx)?;
            authorize_operator(caller)?;
            let workspace_id = WorkspaceId::parse("workspaceId", &input.workspace_id)?;
            let name = input.name.trim();
            if name.is_empty() || name.chars().count() > WORKSPACE_NAME_LENGTH_MAX {
                return Err(AppError::invalid(
                    "name",
                    format!("must be 1 to {WORKSPACE_NAME_LENGTH_MAX} characters"),
                ));
            }
            let scope = crate::auth::authorize(caller, Some(workspace_id.clone()), Operation::Operate)?;
            Ok((
                scope,
                CreateWorkspaceRequest {
                    workspace_id,
                    name: name.to_owned(),
                },
            ))
        })()
        .gql()?;
        let view = ledger(ctx).gql()?.create_workspace(&scope, request).await.gql()?;
        Ok(CreateWorkspacePayload {
            wallet: Wallet { view, scope },
        })
    }
}

/// Operator corrections and wallet settings.
#[derive(Default)]
pub struct OperatorMutation;

#[Object]
impl OperatorMutation {
    /// Adds or removes credits (operator), with a required reason.
    async fn adjust_credits(
        &self,
        ctx: &Context<'_>,
        input: AdjustCreditsInput,
    ) -> async_graphql::Result<LedgerChangePayload> {
        let (scope, request) = (|| -> Result<(WalletScope, AdjustRequest), AppError> {
            if input.credits == 0 {
                return Err(AppError::invalid("credits", "must not be zero"));
            }
            let request = AdjustRequest {
                credits: i64::from(input.credits),
                reason: parse_reason(&input.reason)?,
                expires_at: input.expires_at,
            };
            Ok((
                scope(ctx, Some(&input.workspace_id), Operation::Operate)?,
                request,
            ))
        })()
        .gql()?;
        let change = ledger(ctx).gql()?.adjust_credits(&scope, request).await.gql()?;
        Ok(change.into())
    }

    /// Reverses a SPEND (credits return to their grants) or an unspent
    /// TOP_UP, at most once (operator).
    async fn reverse_transaction(
        &self,
        ctx: &Context<'_>,
        input: ReverseTransactionInput,
    ) -> async_graphql::Result<LedgerChangePayload> {
        let (caller, transaction_id, reason) = (|| -> Result<(&Caller, i64, String), AppError> {
            let caller = caller(ctx)?;
            crate::auth::authorize_operator(caller)?;
            let transaction_id = input
                .transaction_id
                .parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| AppError::invalid("transactionId", "is not a transaction id"))?;
            Ok((caller, transaction_id, parse_reason(&input.reason)?))
        })()
        .gql()?;
        let change = ledger(ctx)
            .gql()?
            .reverse_transaction(caller, transaction_id, reason)
            .await
            .gql()?;
        Ok(change.into())
    }

    /// Sets the low-balance threshold (admin or operator).
    async fn set_low_balance_threshold(
        &self,
        ctx: &Context<'_>,
        input: SetLowBalanceThresholdInput,
    ) -> async_graphql::Result<SetLowBalanceThresholdPayload> {
        let (scope, request) = (|| -> Result<(WalletScope, ThresholdRequest), AppError> {
            if input.threshold.is_some_and(|threshold| threshold < 1) {
                return Err(AppError::invalid(
                    "threshold",
                    "must be 1 or more, or null to turn alerts off",
                ));
            }
            let request = ThresholdRequest {
                threshold: input.threshold.map(i64::from),
            };
            Ok((
                scope(ctx, input.workspace_id.as_ref(), Operation::Configure)?,
                request,
            ))
        })()
        .gql()?;
        let ledger = ledger(ctx).gql()?;
        ledger.set_low_balance_threshold(&scope, request).await.gql()?;
        let view = ledger.wallet(&scope).await.gql()?;
        Ok(SetLowBalanceThresholdPayload {
            wallet: Wallet { view, scope },
        })
    }
}

/// The mutation root.
#[derive(MergedObject, Default)]
pub struct MutationRoot(SpendMutation, AccountMutation, OperatorMutation);
