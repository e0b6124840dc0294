//! Query roots: the public catalogue and the wallet.

use async_graphql::{Context, ID, MergedObject, Object};

use super::types::{ActionCost, Plan, TopUpPack, Wallet};
use super::{ledger, scope};
use crate::auth::Operation;
use crate::graphql::errors::GraphqlResult;

/// The catalogue; public, no token needed.
#[derive(Default)]
pub struct CatalogueQuery;

#[Object]
impl CatalogueQuery {
    /// Every plan, in catalogue order.
    async fn plans(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Plan>> {
        let plans = ledger(ctx).gql()?.plans().await.gql()?;
        Ok(plans.into_iter().map(Into::into).collect())
    }

    /// Every top-up pack.
    async fn top_up_packs(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TopUpPack>> {
        let packs = ledger(ctx).gql()?.packs().await.gql()?;
        Ok(packs.into_iter().map(Into::into).collect())
    }

    /// What each AI action costs. Everything else is free.
    async fn action_costs(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ActionCost>> {
        let costs = ledger(ctx).gql()?.action_costs().await.gql()?;
        Ok(costs.into_iter().map(Into::into).collect())
    }
}

/// Wallet reads.
#[derive(Default)]
pub struct WalletQuery;

#[Object]
impl WalletQuery {
    /// A workspace's wallet; defaults to the token's workspace. Another
    /// workspace's wallet is NOT_FOUND, exactly like a missing one.
    async fn wallet(&self, ctx: &Context<'_>, workspace_id: Option<ID>) -> async_graphql::Result<Wallet> {
        let scope = scope(ctx, workspace_id.as_ref(), Operation::Read).gql()?;
        let view = ledger(ctx).gql()?.wallet(&scope).await.gql()?;
        Ok(Wallet { view, scope })
    }
}

/// The query root.
#[derive(MergedObject, Default)]
pub struct QueryRoot(CatalogueQuery, WalletQuery, super::webhooks::WebhookQuery);
