//! `POST /webhooks/stripe`: payments confirmed by Stripe become top-ups,
//! exactly once per payment intent (`docs/design/payments.md`).
//!
//! The signature is checked on the raw body before anything is parsed. A
//! paid Checkout Session carrying `metadata.workspace_id` and
//! `metadata.pack` applies that pack with its payment intent as the
//! payment reference (the top-up's idempotency key), so a redelivered event
//! finds the reference bound and grants nothing. Every other event is
//! acknowledged and ignored, but `charge.refunded`: the top-up its payment
//! bought is reversed while none of it was spent, and otherwise the refund
//! is recorded and logged for an operator; and automatic top-up's payment
//! intents (metadata `auto_top_up_request`): `payment_intent.succeeded`
//! applies the pack as a checkout does and closes the request,
//! `payment_intent.payment_failed` counts a failure. Answers: 200 when done or ignored; 400 when
//! the signature, its timestamp or the body is bad, or the session names a
//! workspace or pack that cannot be; 404 for an unknown workspace; 409 when
//! the payment intent was already applied for another pack; 503 when the
//! database is unavailable (Stripe retries every non-2xx).

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
use crate::domain::auto_top_up::parse_request_id;
use crate::domain::catalogue::PackCode;
use crate::domain::ids::{IdempotencyKey, WorkspaceId};
use crate::error::AppError;
use crate::service::{Refund, RefundOutcome, TopUpOutcome, TopUpRequest};

/// The part of a Stripe event read here.
#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: serde_json::Value,
}

/// The part of a Checkout Session read here.
#[derive(Deserialize)]
struct Session {
    payment_status: Option<String>,
    payment_intent: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

/// What became of an event.
fn done(outcome: &str) -> Response {
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
        chrono::Utc::now(),
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
                    apply_payment(&state, &event.id, &intent.metadata, Some(intent.id.as_str())).await
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
        _ => done("IGNORED"),
    }
}

/// The part of a PaymentIntent read here: automatic top-up's payments,
/// whose metadata carry `workspace_id`, `pack` and `auto_top_up_request`.
#[derive(Deserialize)]
struct PaymentIntent {
    id: String,
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
    let Some(reference) = charge.payment_intent else {
        return done("IGNORED");
    };
    // Bounded like every payment reference (it is the top-up's key).
    if let Err(error) = IdempotencyKey::parse("payment_intent", &reference) {
        return refuse(error.into());
    }
    let refund = Refund {
        reference,
        amount_refunded_cents: charge.amount_refunded,
        full: charge.refunded,
    };
    match state.ledger.refund_payment(&refund).await {
        Ok(RefundOutcome::UnknownPayment) => done("IGNORED"),
        Ok(outcome) => {
            tracing::info!(
                event_id,
                outcome = outcome.as_str(),
                "a Stripe refund was handled"
            );
            done(outcome.as_str())
        }
        Err(error) => {
            tracing::error!(event_id, error = %error.message(), "a Stripe refund could not be handled");
            refuse(error)
        }
    }
}

/// A completed Checkout Session: its pack, once, when it is paid and ours.
async fn checkout_paid(state: &AppState, event_id: &str, session: Session) -> Response {
    if session.payment_status.as_deref() != Some("paid") {
        // An asynchronous payment method: `async_payment_succeeded` follows.
        return done("IGNORED");
    }
    apply_payment(
        state,
        event_id,
        &session.metadata,
        session.payment_intent.as_deref(),
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
        Ok::<_, AppError>((
            WalletScope::payment_provider(workspace),
            TopUpRequest {
                pack,
                payment_reference,
                auto_top_up_request,
            },
        ))
    })();
    let applied = match request {
        Ok((scope, request)) => state.ledger.purchase_top_up(&scope, request).await,
        Err(error) => Err(error),
    };
    match applied {
        Ok(result) => {
            let outcome = match result.outcome {
                TopUpOutcome::Applied => "APPLIED",
                TopUpOutcome::Duplicate => "DUPLICATE",
            };
            tracing::info!(event_id, outcome, "a Stripe payment was applied");
            done(outcome)
        }
        Err(error) => {
            tracing::error!(event_id, error = %error.message(), "a confirmed payment could not be applied");
            refuse(error)
        }
    }
}
