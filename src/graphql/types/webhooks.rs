//! Webhook endpoints and deliveries: objects, inputs and payloads.

use async_graphql::{ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use domain::outbox::{DeliveryView, EndpointView, PENDING, event_id};

/// Where events are posted, signed per the Standard Webhooks specification.
#[derive(SimpleObject)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: ID,
    /// Its workspace; null: every workspace (created by an operator).
    pub workspace_id: Option<ID>,
    /// Where events are posted.
    pub url: String,
    /// The event types sent (`credits.low_balance` …); empty: every type.
    pub event_types: Vec<String>,
    /// The creator's note.
    pub description: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<EndpointView> for WebhookEndpoint {
    fn from(endpoint: EndpointView) -> Self {
        Self {
            id: ID(endpoint.id.to_string()),
            workspace_id: endpoint.workspace_id.map(ID),
            url: endpoint.url,
            event_types: endpoint.event_types,
            description: endpoint.description,
            created_at: endpoint.created_at,
        }
    }
}

/// One event's delivery to one endpoint.
#[derive(SimpleObject)]
pub struct WebhookDelivery {
    /// Its id (also the cursor of `webhookDeliveries`).
    pub id: ID,
    /// The event (`webhook-id`, the body's `id`).
    pub event_id: ID,
    /// The event's type.
    pub event_type: String,
    /// PENDING, DELIVERED or FAILED (every attempt failed).
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// The last answer's HTTP status.
    pub last_response_code: Option<i32>,
    /// Why the last attempt failed, when it did.
    pub last_error: Option<String>,
    /// When the next attempt is due, while PENDING.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When a 2xx came.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the event was queued for the endpoint.
    pub created_at: DateTime<Utc>,
}

impl From<DeliveryView> for WebhookDelivery {
    fn from(delivery: DeliveryView) -> Self {
        let pending = delivery.status == PENDING;
        Self {
            id: ID(delivery.id.to_string()),
            event_id: ID(event_id(delivery.event_id)),
            event_type: delivery.event_type,
            status: delivery.status,
            attempts: delivery.attempts,
            last_response_code: delivery.last_status_code,
            last_error: delivery.last_error,
            next_attempt_at: pending.then_some(delivery.next_attempt_at),
            delivered_at: delivery.delivered_at,
            created_at: delivery.created_at,
        }
    }
}

/// A page of deliveries, newest first.
#[derive(SimpleObject)]
pub struct WebhookDeliveryPage {
    /// The deliveries.
    pub nodes: Vec<WebhookDelivery>,
    /// Pass as `after` for the next page; null on the last.
    pub end_cursor: Option<String>,
}

/// Input of `createWebhookEndpoint`.
#[derive(InputObject)]
pub struct CreateWebhookEndpointInput {
    /// The workspace; defaults to the token's. An operator may omit it for
    /// an endpoint that receives every workspace's events.
    pub workspace_id: Option<ID>,
    /// An `https` URL of a public address.
    pub url: String,
    /// Event types to send; omitted or empty: every type.
    pub event_types: Option<Vec<String>>,
    /// A note, at most 500 characters.
    pub description: Option<String>,
}

/// An endpoint and its signing secret, shown this once.
#[derive(SimpleObject)]
pub struct WebhookEndpointWithSecret {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// `whsec_…`: verify `webhook-signature` with it.
    pub secret: String,
}

/// Input naming an endpoint.
#[derive(InputObject)]
pub struct WebhookEndpointInput {
    /// The endpoint's id.
    pub endpoint_id: ID,
}

/// The answer to `deleteWebhookEndpoint`.
#[derive(SimpleObject)]
pub struct DeleteWebhookEndpointPayload {
    /// The endpoint deleted.
    pub endpoint_id: ID,
}

/// Input of `redeliverWebhookEvent`.
#[derive(InputObject)]
pub struct RedeliverWebhookEventInput {
    /// The endpoint to send to.
    pub endpoint_id: ID,
    /// The event (`evt_…`) to send again.
    pub event_id: ID,
}

/// The answer to `redeliverWebhookEvent`.
#[derive(SimpleObject)]
pub struct RedeliverWebhookEventPayload {
    /// The new delivery, due now.
    pub delivery: WebhookDelivery,
}
