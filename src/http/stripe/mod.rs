//! `POST /webhooks/stripe`: what Stripe confirms becomes credits, once,
//! whatever order its events arrive in (`docs/design/payments.md`).
//!
//! The signature is checked on the raw body before anything is parsed.
//! Then: paid Checkout Sessions and automatic top-up's payment intents
//! apply their pack (`Ledger::receive_payment`: once across the service,
//! for the pack's price only); `charge.refunded` and disputes
//! (`Ledger::refund_payment`, `dispute_payment`); a Checkout Session in
//! subscription mode links its subscription to its workspace, and
//! `customer.subscription.*` events put the wallet on the subscription's
//! plan (`Ledger::apply_subscription_event`). Every other event is
//! acknowledged and ignored. Answers: 200 when done, recorded or ignored
//! (the body's `outcome` says which); 400 when the signature, its
//! timestamp or the body is bad, or metadata names a workspace or pack that
//! cannot be; 404 for an unknown workspace; 503 when the database is
//! unavailable (Stripe retries every non-2xx).

mod subscription;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::AppState;
use super::export::refuse;
use crate::auth::WalletScope;
use crate::auth::stripe::verify;
use crate::error::AppError;
use crate::service::Refund;
use crate::service::{Dispute, PaymentReceived};
use domain::auto_top_up::parse_request_id;
use domain::catalogue::PackCode;
use domain::ids::{IdempotencyKey, WorkspaceId};

/// The part of a Stripe event read here.
#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    created: i64,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: serde_json::Value,
}

/// The part of a Checkout Session read here.
#[derive(Deserialize)]
struct Session {
    mode: Option<String>,
    payment_status: Option<String>,
    payment_intent: Option<String>,
    subscription: Option<String>,
    amount_subtotal: Option<i64>,
    currency: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

/// What was paid: the amount before discounts and its currency.
struct Paid<'a> {
    amount_cents: Option<i64>,
    currency: Option<&'a str>,
}

/// What became of an event.
pub(super) fn done(outcome: &str) -> Response {
    axum::Json(serde_json::json!({ "received": true, "outcome": outcome })).into_response()
}

/// The handler.
pub async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = &state.stripe_webhook_secret else {
        return refuse(AppError::NotFound(
            "Stripe endpoint (STRIPE_WEBHOOK_SECRET is not set)",
        ));
    };
    let header = headers
        .get("stripe-signature")
        .and_then(|value| value.to_str().ok());
    if let Err(error) = verify(
        secret.expose_secret().as_bytes(),
        header,
        &body,
        crate::clock::wall(),
    ) {
        tracing::warn!(%error, "a Stripe webhook was refused");
        return refuse(AppError::invalid("Stripe-Signature", error.to_string()));
    }
    let event: Event = match serde_json::from_slice(&body) {
        Ok(event) => event,
        Err(error) => {
            return refuse(AppError::invalid(
                "body",
                format!("is not a Stripe event: {error}"),
            ));
        }
    };
    match event.kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            match serde_json::from_value::<Session>(event.data.object) {
                Ok(session) => checkout_paid(&state, &event.id, session).await,
                Err(error) => refuse(AppError::invalid(
                    "data.object",
                    format!("is not a Checkout Session: {error}"),
                )),
            }
        }
        "payment_intent.succeeded" | "payment_intent.payment_failed" => {
            match serde_json::from_value::<PaymentIntent>(event.data.object) {
                Ok(intent) if !intent.metadata.contains_key("auto_top_up_request") => {
                    // Checkout's own payments arrive as checkout events.
                    done("IGNORED")
                }
                Ok(intent) if event.kind == "payment_intent.succeeded" => {
                    let paid = Paid {
                        amount_cents: intent.amount_received,
                        currency: intent.currency.as_deref(),
                    };
                    apply_payment(
                        &state,
                        &event.id,
                        &intent.metadata,
                        Some(intent.id.as_str()),
                        paid,
                    )
                    .await
                }
                Ok(intent) => auto_top_up_failed(&state, &event.id, &intent.metadata).await,
                Err(error) => refuse(AppError::invalid(
                    "data.object",
                    format!("is not a PaymentIntent: {error}"),
                )),
            }
        }
        "charge.refunded" => match serde_json::from_value::<Charge>(event.data.object) {
            Ok(charge) => charge_refunded(&state, &event.id, charge).await,
            Err(error) => refuse(AppError::invalid(
                "data.object",
                format!("is not a Charge: {error}"),
            )),
        },
        "charge.dispute.created" | "charge.dispute.closed" => {
            match serde_json::from_value::<DisputeObject>(event.data.object) {
                Ok(dispute) => disputed(&state, &event.id, dispute).await,
                Err(error) => refuse(AppError::invalid(
                    "data.object",
                    format!("is not a Dispute: {error}"),
                )),
            }
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => {
            match serde_json::from_value::<subscription::SubscriptionObject>(event.data.object) {
                Ok(subscription) => {
                    subscription::changed(&state, &event.id, &event.kind, event.created, subscription).await
                }
                Err(error) => refuse(AppError::invalid(
                    "data.object",
                    format!("is not a Subscription: {error}"),
                )),
            }
        }
        _ => done("IGNORED"),
    }
}

/// The part of a Dispute read here.
#[derive(Deserialize)]
struct DisputeObject {
    payment_intent: Option<String>,
    #[serde(default)]
    amount: i64,
    status: String,
}

/// A dispute opened or closed: recorded and told; lost, a full refund.
async fn disputed(state: &AppState, event_id: &str, dispute: DisputeObject) -> Response {
    let reference = match payment_reference(dispute.payment_intent) {
        Ok(Some(reference)) => reference,
        Ok(None) => return done("IGNORED"),
        Err(error) => return refuse(error),
    };
    let dispute = Dispute {
        reference,
        status: dispute.status,
        amount_cents: dispute.amount,
    };
    tracing::warn!(
        event_id,
        payment_reference = dispute.reference,
        status = dispute.status,
        "a Stripe dispute arrived"
    );
    answer(event_id, "dispute", state.ledger.dispute_payment(&dispute).await)
}

/// The payment intent a refund or dispute names, bounded like every payment
/// reference (it is the top-up's key); `None`: it names none.
fn payment_reference(reference: Option<String>) -> Result<Option<String>, AppError> {
    let Some(reference) = reference else {
        return Ok(None);
    };
    IdempotencyKey::parse("payment_intent", &reference)?;
    Ok(Some(reference))
}

/// The answer to a refund or a dispute, logged.
fn answer(event_id: &str, what: &str, handled: Result<crate::service::RefundOutcome, AppError>) -> Response {
    match handled {
        Ok(outcome) => {
            tracing::info!(
                event_id,
                what,
                outcome = outcome.as_str(),
                "a Stripe {what} was handled"
            );
            done(outcome.as_str())
        }
        Err(error) => {
            tracing::error!(event_id, what, error = %error.message(), "a Stripe {what} could not be handled");
            refuse(error)
        }
    }
}

/// The part of a PaymentIntent read here: automatic top-up's payments,
/// whose metadata carry `workspace_id`, `pack` and `auto_top_up_request`.
#[derive(Deserialize)]
struct PaymentIntent {
    id: String,
    amount_received: Option<i64>,
    currency: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

/// An automatic top-up's payment failed (`Ledger::report_auto_top_up_failed`).
async fn auto_top_up_failed(
    state: &AppState,
    event_id: &str,
    metadata: &HashMap<String, String>,
) -> Response {
    let parsed = (|| {
        let workspace = metadata
            .get("workspace_id")
            .ok_or_else(|| AppError::invalid("metadata.workspace_id", "is missing"))?;
        let request = metadata.get("auto_top_up_request").map_or("", String::as_str);
        Ok::<_, AppError>((
            WalletScope::payment_provider(WorkspaceId::parse("metadata.workspace_id", workspace)?),
            parse_request_id("metadata.auto_top_up_request", request)?,
        ))
    })();
    let reported = match parsed {
        Ok((scope, request)) => state.ledger.report_auto_top_up_failed(&scope, &request).await,
        Err(error) => Err(error),
    };
    match reported {
        Ok(outcome) => {
            tracing::info!(
                event_id,
                outcome = outcome.as_str(),
                "an automatic top-up payment failed"
            );
            done(outcome.as_str())
        }
        Err(error) => {
            tracing::error!(event_id, error = %error.message(), "a failed automatic top-up could not be recorded");
            refuse(error)
        }
    }
}

/// The part of a Charge read here.
#[derive(Deserialize)]
struct Charge {
    payment_intent: Option<String>,
    #[serde(default)]
    refunded: bool,
    #[serde(default)]
    amount_refunded: i64,
}

/// A refunded charge: the top-up its payment bought is reversed while
/// unspent; otherwise recorded for an operator (`Ledger::refund_payment`).
async fn charge_refunded(state: &AppState, event_id: &str, charge: Charge) -> Response {
    let reference = match payment_reference(charge.payment_intent) {
        Ok(Some(reference)) => reference,
        Ok(None) => return done("IGNORED"),
        Err(error) => return refuse(error),
    };
    let refund = Refund {
        reference,
        amount_refunded_cents: charge.amount_refunded,
        full: charge.refunded,
    };
    answer(event_id, "refund", state.ledger.refund_payment(&refund).await)
}

/// A completed Checkout Session: its pack, once, when it is paid and ours;
/// in subscription mode, the link from its subscription to its workspace.
async fn checkout_paid(state: &AppState, event_id: &str, session: Session) -> Response {
    if session.mode.as_deref() == Some("subscription") {
        return subscription::linked(state, event_id, &session.metadata, session.subscription).await;
    }
    if session.payment_status.as_deref() != Some("paid") {
        // An asynchronous payment method: `async_payment_succeeded` follows.
        return done("IGNORED");
    }
    let paid = Paid {
        amount_cents: session.amount_subtotal,
        currency: session.currency.as_deref(),
    };
    apply_payment(
        state,
        event_id,
        &session.metadata,
        session.payment_intent.as_deref(),
        paid,
    )
    .await
}

/// A confirmed payment: the pack its metadata names, once per payment
/// intent; it closes the automatic top-up request it names.
async fn apply_payment(
    state: &AppState,
    event_id: &str,
    metadata: &HashMap<String, String>,
    payment_intent: Option<&str>,
    paid: Paid<'_>,
) -> Response {
    let (Some(workspace), Some(pack)) = (metadata.get("workspace_id"), metadata.get("pack")) else {
        tracing::info!(
            event_id,
            "a paid Checkout Session without workspace_id and pack metadata was ignored"
        );
        return done("IGNORED");
    };
    let request = (|| {
        let workspace = WorkspaceId::parse("metadata.workspace_id", workspace)?;
        let pack = pack
            .parse::<PackCode>()
            .map_err(|_| AppError::invalid("metadata.pack", "is not a top-up pack of the catalogue"))?;
        let reference = payment_intent
            .ok_or_else(|| AppError::invalid("payment_intent", "is missing from a paid session"))?;
        let payment_reference = IdempotencyKey::parse("payment_intent", reference)?;
        let auto_top_up_request = metadata
            .get("auto_top_up_request")
            .map(|id| parse_request_id("metadata.auto_top_up_request", id))
            .transpose()?;
        let amount_cents = paid
            .amount_cents
            .ok_or_else(|| AppError::invalid("amount_subtotal", "is missing from a paid payment"))?;
        let currency = paid
            .currency
            .filter(|currency| currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_alphabetic()))
            .ok_or_else(|| AppError::invalid("currency", "is missing or not an ISO 4217 code"))?;
        Ok::<_, AppError>(PaymentReceived {
            workspace,
            pack,
            reference: payment_reference,
            amount_cents,
            currency: currency.to_owned(),
            auto_top_up_request,
        })
    })();
    let applied = match request {
        Ok(received) => state.ledger.receive_payment(&received).await,
        Err(error) => Err(error),
    };
    match applied {
        Ok(outcome) => {
            tracing::info!(
                event_id,
                outcome = outcome.as_str(),
                "a Stripe payment was handled"
            );
            done(outcome.as_str())
        }
        Err(error) => {
            tracing::error!(event_id, error = %error.message(), "a confirmed payment could not be applied");
            refuse(error)
        }
    }
}
