//! Mutation roots: spending, buying, plans, workspaces.

use async_graphql::{Context, ID, InputObject, MergedObject, Object};

use super::types::{
    Action, ChangePlanPayload, CreateWorkspacePayload, PlanCode, PurchaseTopUpPayload, SpendCreditPayload,
    TopUpPackCode, Wallet,
};
use super::{caller, ledger, scope};
use crate::auth::{Operation, WalletScope, authorize_operator};
use crate::domain::ids::{IdempotencyKey, WorkspaceId, parse_reference};
use crate::error::{AppError, GraphqlResult};
use crate::service::WORKSPACE_NAME_LENGTH_MAX;
use crate::service::{ChangePlanRequest, CreateWorkspaceRequest, SpendRequest, TopUpRequest};

/// Input of `spendCredit`.
#[derive(InputObject)]
pub struct SpendCreditInput {
    /// The workspace to charge; defaults to the token's.
    pub workspace_id: Option<ID>,
    /// The action to pay for.
    pub action: Action,
    /// 1 to 200 characters, unique per workspace for the life of the ledger;
    /// a retry with the same key and input is answered DUPLICATE.
    pub idempotency_key: String,
    /// Your reference (ticket or thread id), at most 200 characters.
    pub reference: Option<String>,
}

/// Input of `purchaseTopUp`.
#[derive(InputObject)]
pub struct PurchaseTopUpInput {
    /// The workspace to credit; defaults to the token's.
    pub workspace_id: Option<ID>,
    /// The pack bought.
    pub pack: TopUpPackCode,
    /// The payment's reference, 1 to 200 characters; also the idempotency key.
    pub payment_reference: String,
}

/// Input of `changePlan`.
#[derive(InputObject)]
pub struct ChangePlanInput {
    /// The workspace; defaults to the token's.
    pub workspace_id: Option<ID>,
    /// The plan to move to.
    pub plan: PlanCode,
    /// ENTERPRISE only (operators): credits per billing period, 1 or more.
    pub enterprise_monthly_credits: Option<i32>,
}

/// Input of `createWorkspace`.
#[derive(InputObject)]
pub struct CreateWorkspaceInput {
    /// The workspace's id in Protodesk: 1 to 64 characters of A-Z a-z 0-9 _ -.
    pub workspace_id: ID,
    /// Its display name, 1 to 200 characters.
    pub name: String,
}

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

/// The mutation root.
#[derive(MergedObject, Default)]
pub struct MutationRoot(SpendMutation, AccountMutation);
