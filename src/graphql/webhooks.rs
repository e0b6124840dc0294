//! Webhook endpoints: admins for their workspace, operators for any or all
//! (`docs/design/webhooks.md`).

use async_graphql::{Context, ID, Object};

use super::types::{
    CreateWebhookEndpointInput, DeleteWebhookEndpointPayload, RedeliverWebhookEventInput,
    RedeliverWebhookEventPayload, WebhookDelivery, WebhookDeliveryPage, WebhookEndpoint,
    WebhookEndpointInput, WebhookEndpointWithSecret,
};
use super::{caller, ledger, scope};
use crate::auth::Operation;
use crate::error::AppError;
use crate::graphql::errors::GraphqlResult;
use crate::service::{DELIVERIES_PAGE_MAX, EndpointOwner, EndpointRequest};
use domain::catalogue::Role;
use domain::outbox::EndpointView;
use domain::outbox::EventType;

/// Whose endpoints the caller manages: an operator's, everyone's unless a
/// workspace is named; anyone else's, their workspace's (admins only).
fn owner(ctx: &Context<'_>, workspace_id: Option<&ID>) -> Result<EndpointOwner, AppError> {
    if workspace_id.is_none() && caller(ctx)?.role == Role::Operator {
        return Ok(EndpointOwner::Everyone);
    }
    Ok(EndpointOwner::Workspace(scope(
        ctx,
        workspace_id,
        Operation::Configure,
    )?))
}

/// A numeric id of `field`.
fn numeric_id(field: &'static str, id: &ID) -> Result<i64, AppError> {
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| AppError::invalid(field, "is not an id returned by this service"))
}

/// The caller's view of endpoint `id` (operators: every endpoint) and its number.
fn owned_endpoint(ctx: &Context<'_>, id: &ID) -> Result<(EndpointOwner, i64), AppError> {
    Ok((owner(ctx, None)?, numeric_id("endpointId", id)?))
}

/// An event id, `evt_` and a number.
fn event_number(id: &ID) -> Result<i64, AppError> {
    id.strip_prefix("evt_")
        .and_then(|digits| digits.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| AppError::invalid("eventId", "is not an event id (evt_…)"))
}

fn with_secret(view: EndpointView) -> WebhookEndpointWithSecret {
    WebhookEndpointWithSecret {
        secret: view.secret.clone(),
        endpoint: view.into(),
    }
}

/// Webhook reads.
#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// The workspace's webhook endpoints (an operator without `workspaceId`:
    /// the endpoints that receive every workspace's events).
    async fn webhook_endpoints(
        &self,
        ctx: &Context<'_>,
        workspace_id: Option<ID>,
    ) -> async_graphql::Result<Vec<WebhookEndpoint>> {
        let owner = owner(ctx, workspace_id.as_ref()).gql()?;
        let endpoints = ledger(ctx).gql()?.webhook_endpoints(&owner).await.gql()?;
        Ok(endpoints.into_iter().map(Into::into).collect())
    }

    /// An endpoint's deliveries, newest first: status, attempts, the last
    /// answer or error, the next attempt.
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        endpoint_id: ID,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<WebhookDeliveryPage> {
        let (owner, id, first, after) = (|| -> Result<_, AppError> {
            let first = u64::try_from(first)
                .ok()
                .filter(|first| (1..=DELIVERIES_PAGE_MAX).contains(first))
                .ok_or_else(|| AppError::invalid("first", "must be from 1 to 100"))?;
            let after = after.map(|cursor| numeric_id("after", &ID(cursor))).transpose()?;
            let (owner, id) = owned_endpoint(ctx, &endpoint_id)?;
            Ok((owner, id, first, after))
        })()
        .gql()?;
        let page = ledger(ctx)
            .gql()?
            .webhook_deliveries(&owner, id, first + 1, after)
            .await
            .gql()?;
        let more = page.len() as u64 > first;
        let nodes: Vec<WebhookDelivery> = page
            .into_iter()
            .take(usize::try_from(first).unwrap_or(usize::MAX))
            .map(Into::into)
            .collect();
        let end_cursor = more
            .then(|| nodes.last().map(|node| node.id.to_string()))
            .flatten();
        Ok(WebhookDeliveryPage { nodes, end_cursor })
    }
}

/// Webhook endpoint changes.
#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Creates an endpoint; the answer carries its signing secret, shown
    /// this once.
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookEndpointInput,
    ) -> async_graphql::Result<WebhookEndpointWithSecret> {
        let (owner, request) = (|| -> Result<_, AppError> {
            let event_types = input
                .event_types
                .unwrap_or_default()
                .iter()
                .map(|name| {
                    name.parse::<EventType>().map_err(|_| {
                        AppError::invalid(
                            "eventTypes",
                            format!(
                                "{name:?} is not an event type ({})",
                                EventType::ALL
                                    .iter()
                                    .map(|event_type| event_type.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((
                owner(ctx, input.workspace_id.as_ref())?,
                EndpointRequest {
                    url: input.url,
                    event_types,
                    description: input.description.unwrap_or_default(),
                },
            ))
        })()
        .gql()?;
        let view = ledger(ctx)
            .gql()?
            .create_webhook_endpoint(&owner, request)
            .await
            .gql()?;
        Ok(with_secret(view))
    }

    /// Replaces an endpoint's signing secret; the old one stops signing at once.
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointInput,
    ) -> async_graphql::Result<WebhookEndpointWithSecret> {
        let (owner, id) = owned_endpoint(ctx, &input.endpoint_id).gql()?;
        let view = ledger(ctx).gql()?.rotate_webhook_secret(&owner, id).await.gql()?;
        Ok(with_secret(view))
    }

    /// Deletes an endpoint; its pending deliveries are dropped.
    async fn delete_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointInput,
    ) -> async_graphql::Result<DeleteWebhookEndpointPayload> {
        let (owner, id) = owned_endpoint(ctx, &input.endpoint_id).gql()?;
        ledger(ctx)
            .gql()?
            .delete_webhook_endpoint(&owner, id)
            .await
            .gql()?;
        Ok(DeleteWebhookEndpointPayload {
            endpoint_id: input.endpoint_id,
        })
    }

    /// Sends an event to an endpoint again, as a new delivery due now.
    async fn redeliver_webhook_event(
        &self,
        ctx: &Context<'_>,
        input: RedeliverWebhookEventInput,
    ) -> async_graphql::Result<RedeliverWebhookEventPayload> {
        let ((owner, endpoint), event) = (|| {
            Ok::<_, AppError>((
                owned_endpoint(ctx, &input.endpoint_id)?,
                event_number(&input.event_id)?,
            ))
        })()
        .gql()?;
        let delivery = ledger(ctx)
            .gql()?
            .redeliver_webhook_event(&owner, endpoint, event)
            .await
            .gql()?;
        Ok(RedeliverWebhookEventPayload {
            delivery: delivery.into(),
        })
    }
}
