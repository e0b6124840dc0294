//! `customer.subscription.*` and subscription-mode Checkout Sessions at
//! `/webhooks/stripe` (`docs/design/payments.md`): the subscription object
//! as Stripe sends it, read for what the wallet follows.

use std::collections::HashMap;

use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::done;
use crate::error::AppError;
use crate::http::AppState;
use crate::http::export::refuse;
use crate::service::{SubscriptionEvent, SubscriptionState};
use domain::ids::{IdempotencyKey, WorkspaceId};
use domain::period::Period;

/// The part of a Subscription read here. The current period is on each
/// item since API version 2025-03-31.basil, and at the top level before.
#[derive(Deserialize)]
pub(super) struct SubscriptionObject {
    id: String,
    customer: Option<String>,
    status: String,
    #[serde(default)]
    cancel_at_period_end: bool,
    billing_cycle_anchor: Option<i64>,
    current_period_start: Option<i64>,
    current_period_end: Option<i64>,
    items: Option<Items>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

#[derive(Deserialize)]
struct Items {
    #[serde(default)]
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    price: Option<Price>,
    current_period_start: Option<i64>,
    current_period_end: Option<i64>,
}

#[derive(Deserialize)]
struct Price {
    id: String,
}

fn time(seconds: Option<i64>) -> Option<DateTime<Utc>> {
    seconds.and_then(|seconds| DateTime::from_timestamp(seconds, 0))
}

impl SubscriptionObject {
    fn state(self) -> Result<SubscriptionState, AppError> {
        bounded("data.object.id", &self.id)?;
        let item = self.items.and_then(|items| items.data.into_iter().next());
        let (item_start, item_end, price) = match item {
            Some(item) => (item.current_period_start, item.current_period_end, item.price),
            None => (None, None, None),
        };
        let start = time(item_start.or(self.current_period_start));
        let end = time(item_end.or(self.current_period_end));
        let price_id = price.map(|price| price.id);
        if let Some(price) = &price_id {
            bounded("items.data.price.id", price)?;
        }
        let workspace = self
            .metadata
            .get("workspace_id")
            .map(|workspace| WorkspaceId::parse("metadata.workspace_id", workspace))
            .transpose()?;
        Ok(SubscriptionState {
            id: self.id,
            customer: self.customer,
            status: self.status,
            price_id,
            period: start.zip(end).map(|(start, end)| Period { start, end }),
            anchor: time(self.billing_cycle_anchor),
            cancel_at_period_end: self.cancel_at_period_end,
            workspace,
        })
    }
}

/// Stripe ids are bounded like every key the service stores.
fn bounded(field: &'static str, id: &str) -> Result<(), AppError> {
    IdempotencyKey::parse(field, id).map(|_| ()).map_err(Into::into)
}

/// A subscription created, updated or deleted.
pub(super) async fn changed(
    state: &AppState,
    event_id: &str,
    kind: &str,
    created: i64,
    subscription: SubscriptionObject,
) -> Response {
    let applied = match subscription.state() {
        Ok(mut subscription) => {
            if kind == "customer.subscription.deleted" {
                // Stripe sends the final object; its status says canceled
                // (or incomplete_expired), but a deletion ends it whatever.
                if !matches!(subscription.status.as_str(), "canceled" | "incomplete_expired") {
                    subscription.status = "canceled".to_owned();
                }
            }
            let event = SubscriptionEvent {
                event_id: event_id.to_owned(),
                event_type: kind.to_owned(),
                created,
                state: subscription,
            };
            if let Err(error) = bounded("id", event_id) {
                Err(error)
            } else {
                state.ledger.apply_subscription_event(&event).await
            }
        }
        Err(error) => Err(error),
    };
    match applied {
        Ok(outcome) => {
            tracing::info!(
                event_id,
                kind,
                outcome = outcome.as_str(),
                "a Stripe subscription event was handled"
            );
            done(outcome.as_str())
        }
        Err(error) => {
            tracing::error!(event_id, error = %error.message(), "a Stripe subscription event could not be handled");
            refuse(error)
        }
    }
}

/// A Checkout Session in subscription mode: its subscription pays for the
/// workspace its metadata names.
pub(super) async fn linked(
    state: &AppState,
    event_id: &str,
    metadata: &HashMap<String, String>,
    subscription: Option<String>,
) -> Response {
    let (Some(workspace), Some(subscription)) = (metadata.get("workspace_id"), subscription) else {
        tracing::info!(
            event_id,
            "a subscription Checkout Session without workspace_id metadata was ignored"
        );
        return done("IGNORED");
    };
    let linked = match (
        WorkspaceId::parse("metadata.workspace_id", workspace).map_err(AppError::from),
        bounded("subscription", &subscription).and(bounded("id", event_id)),
    ) {
        (Ok(workspace), Ok(())) => {
            state
                .ledger
                .link_subscription(event_id, &subscription, &workspace)
                .await
        }
        (Err(error), _) | (_, Err(error)) => Err(error),
    };
    match linked {
        Ok(outcome) => done(outcome.as_str()),
        Err(error) => {
            tracing::error!(event_id, error = %error.message(), "a subscription Checkout Session could not be handled");
            refuse(error)
        }
    }
}
