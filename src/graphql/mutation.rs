//! Mutation roots: spending, buying, plans, workspaces.

use async_graphql::{Context, ID, MergedObject, Object};

use super::types::{
    AdjustCreditsInput, AutoTopUp, ChangePlanInput, ChangePlanPayload, CreateWorkspaceInput,
    CreateWorkspacePayload, LedgerChangePayload, PurchaseTopUpInput, PurchaseTopUpPayload, RemoveBudgetInput,
    RemoveBudgetPayload, ReportAutoTopUpFailedInput, ReportAutoTopUpFailedPayload, ReverseTransactionInput,
    SetAutoTopUpInput, SetAutoTopUpPayload, SetBudgetInput, SetBudgetPayload, SetLowBalanceThresholdInput,
    SetLowBalanceThresholdPayload, SetTimeZoneInput, SetTimeZonePayload, SpendCreditInput,
    SpendCreditPayload, Wallet, Workspace,
};
use super::{caller, ledger, scope};
use crate::auth::{Caller, Operation, WalletScope, authorize_operator};
use crate::error::AppError;
use crate::graphql::errors::GraphqlResult;
use crate::service::{
    AdjustRequest, AutoTopUpRequest, BudgetInput, ChangePlanRequest, CreateWorkspaceRequest,
    ThresholdRequest, TopUpRequest, parse_reason,
};
use crate::service::{Ledger, WORKSPACE_NAME_LENGTH_MAX};
use domain::auto_top_up::parse_request_id;
use domain::budget::{check_agent_id, check_budget, parse_time_zone};
use domain::ids::{IdempotencyKey, WorkspaceId};

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
        let (scope, request) = super::spender(
            ctx,
            input.workspace_id.as_ref(),
            input.action.into(),
            ("idempotencyKey", &input.idempotency_key),
            input.reference.as_deref(),
            input.agent_id,
        )
        .gql()?;
        let result = ledger(ctx).gql()?.spend(&scope, request).await.gql()?;
        Ok(result.into())
    }

    /// Credits a purchased pack, once per payment reference: operators only (the
    /// billing back office); admins buy through Stripe Checkout, whose payments
    /// arrive at `/webhooks/stripe`.
    async fn purchase_top_up(
        &self,
        ctx: &Context<'_>,
        input: PurchaseTopUpInput,
    ) -> async_graphql::Result<PurchaseTopUpPayload> {
        let (scope, request) = (|| -> Result<(WalletScope, TopUpRequest), AppError> {
            let request = TopUpRequest {
                pack: input.pack.into(),
                payment_reference: IdempotencyKey::parse("paymentReference", &input.payment_reference)?,
                auto_top_up_request: input
                    .auto_top_up_request_id
                    .as_deref()
                    .map(|id| parse_request_id("autoTopUpRequestId", id))
                    .transpose()?,
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
            if name.is_empty()
                || name.chars().count() > WORKSPACE_NAME_LENGTH_MAX
                || domain::ids::has_control_or_bidi(name)
            {
                return Err(AppError::invalid(
                    "name",
                    format!(
                        "must be 1 to {WORKSPACE_NAME_LENGTH_MAX} characters, without control or bidirectional formatting characters"
                    ),
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

/// Budgets and the workspace's time zone (admin or operator).
#[derive(Default)]
pub struct BudgetMutation;

#[Object]
impl BudgetMutation {
    /// Creates or updates (by name) a budget: a cap on the credits spends
    /// may use per window, checked with each charge.
    async fn set_budget(
        &self,
        ctx: &Context<'_>,
        input: SetBudgetInput,
    ) -> async_graphql::Result<SetBudgetPayload> {
        let (scope, request) = (|| -> Result<(WalletScope, BudgetInput), AppError> {
            let agent_id = input.agent_id.map(|agent| agent.0);
            if let Some(agent) = &agent_id {
                check_agent_id(agent)?;
            }
            let request = BudgetInput {
                name: input.name,
                applies_to: input.applies_to.into(),
                agent_id,
                action: input.action.map(Into::into),
                window: input.window.into(),
                limit: i64::from(input.limit),
                mode: input.mode.into(),
            };
            check_budget(
                &request.name,
                request.applies_to,
                request.agent_id.as_deref(),
                request.limit,
            )?;
            Ok((
                scope(ctx, input.workspace_id.as_ref(), Operation::Configure)?,
                request,
            ))
        })()
        .gql()?;
        let budget = ledger(ctx).gql()?.set_budget(&scope, request).await.gql()?;
        Ok(SetBudgetPayload {
            budget: budget.into(),
        })
    }

    /// Removes a budget and what it counted.
    async fn remove_budget(
        &self,
        ctx: &Context<'_>,
        input: RemoveBudgetInput,
    ) -> async_graphql::Result<RemoveBudgetPayload> {
        let scope = scope(ctx, input.workspace_id.as_ref(), Operation::Configure).gql()?;
        ledger(ctx)
            .gql()?
            .remove_budget(&scope, &input.name)
            .await
            .gql()?;
        Ok(RemoveBudgetPayload { name: input.name })
    }

    /// Sets automatic top-up (admin or operator): a change that leaves the
    /// balance below the threshold sends `credits.auto_top_up_requested`
    /// with a request id, one open at a time and at most `maxPerPeriod` a
    /// billing period; credits come only with the confirmed payment.
    async fn set_auto_top_up(
        &self,
        ctx: &Context<'_>,
        input: SetAutoTopUpInput,
    ) -> async_graphql::Result<SetAutoTopUpPayload> {
        let scope = scope(ctx, input.workspace_id.as_ref(), Operation::Configure).gql()?;
        let request = AutoTopUpRequest {
            enabled: input.enabled,
            threshold: i64::from(input.threshold),
            pack: input.pack.into(),
            max_per_period: input.max_per_period,
        };
        let ledger = ledger(ctx).gql()?;
        ledger.set_auto_top_up(&scope, request).await.gql()?;
        let auto_top_up = auto_top_up_now(ledger, &scope)
            .await
            .and_then(|view| {
                view.ok_or_else(|| AppError::Internal(anyhow::anyhow!("automatic top-up was not saved")))
            })
            .gql()?;
        Ok(SetAutoTopUpPayload { auto_top_up })
    }

    /// Records that the payment of an automatic top-up request failed
    /// (operators: the payment system; Stripe's `payment_intent.payment_failed`
    /// does the same). The third failure in a row switches it off.
    async fn report_auto_top_up_failed(
        &self,
        ctx: &Context<'_>,
        input: ReportAutoTopUpFailedInput,
    ) -> async_graphql::Result<ReportAutoTopUpFailedPayload> {
        let (scope, request_id) = (|| -> Result<_, AppError> {
            Ok((
                scope(ctx, input.workspace_id.as_ref(), Operation::TopUp)?,
                parse_request_id("requestId", &input.request_id)?,
            ))
        })()
        .gql()?;
        let ledger = ledger(ctx).gql()?;
        let outcome = ledger
            .report_auto_top_up_failed(&scope, &request_id)
            .await
            .gql()?;
        Ok(ReportAutoTopUpFailedPayload {
            outcome: outcome.into(),
            auto_top_up: auto_top_up_now(ledger, &scope).await.gql()?,
        })
    }

    /// Sets the workspace's IANA time zone: DAY budgets end at its midnight.
    async fn set_time_zone(
        &self,
        ctx: &Context<'_>,
        input: SetTimeZoneInput,
    ) -> async_graphql::Result<SetTimeZonePayload> {
        let scope = (|| -> Result<WalletScope, AppError> {
            parse_time_zone(&input.time_zone)?;
            scope(ctx, input.workspace_id.as_ref(), Operation::Configure)
        })()
        .gql()?;
        let ledger = ledger(ctx).gql()?;
        ledger.set_time_zone(&scope, &input.time_zone).await.gql()?;
        Ok(SetTimeZonePayload {
            workspace: Workspace {
                id: ID(scope.workspace_id().as_str().to_owned()),
                time_zone: ledger.time_zone(&scope).await.gql()?,
            },
        })
    }
}

/// The wallet's automatic top-up after a change to it, counted in the
/// wallet's current period.
async fn auto_top_up_now(ledger: &Ledger, scope: &WalletScope) -> Result<Option<AutoTopUp>, AppError> {
    let wallet = ledger.wallet(scope).await?;
    Ok(ledger.auto_top_up(scope, &wallet).await?.map(Into::into))
}

/// The mutation root.
#[derive(MergedObject, Default)]
pub struct MutationRoot(
    SpendMutation,
    AccountMutation,
    OperatorMutation,
    BudgetMutation,
    super::webhooks::WebhookMutation,
    super::holds::HoldMutation,
);
