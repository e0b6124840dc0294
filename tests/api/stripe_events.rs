//! Stripe events as Stripe's API sends them: the whole event envelope and
//! the whole object (field for field as the API reference lists them for
//! API version [`API_VERSION`], unknown fields included), built here with
//! this project's own values. Tests change only the fields they are about.

use serde_json::{Value, json};

/// The API version the events are rendered in.
pub const API_VERSION: &str = "2026-08-26.dahlia";

/// The envelope of `object` as event `id` of `kind`, created at `created`.
pub fn event(id: &str, kind: &str, created: i64, object: Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": API_VERSION,
        "context": null,
        "created": created,
        "data": { "object": object, "previous_attributes": {} },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": format!("req_{id}"), "idempotency_key": null },
        "type": kind,
    })
    .to_string()
}

/// A Checkout Session in `mode: payment` buying `pack` for `subtotal`
/// cents (`currency`), paid by `intent`, with `status` as its payment status.
pub fn checkout_session(
    workspace: &str,
    pack: &str,
    intent: &str,
    subtotal: i64,
    currency: &str,
    status: &str,
) -> Value {
    json!({
        "id": format!("cs_test_{intent}"),
        "object": "checkout.session",
        "adaptive_pricing": { "enabled": false },
        "after_expiration": null,
        "allow_promotion_codes": null,
        "amount_subtotal": subtotal,
        "amount_total": subtotal,
        "automatic_tax": { "enabled": false, "liability": null, "provider": null, "status": null },
        "billing_address_collection": null,
        "cancel_url": "https://app.protodesk.example/billing?canceled=1",
        "client_reference_id": workspace,
        "client_secret": null,
        "collected_information": null,
        "consent": null,
        "consent_collection": null,
        "created": 1_769_853_600,
        "currency": currency,
        "currency_conversion": null,
        "custom_fields": [],
        "custom_text": { "after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null },
        "customer": "cus_Protodesk001",
        "customer_account": null,
        "customer_creation": null,
        "customer_details": { "address": null, "email": "billing@acme.example", "name": "Acme", "phone": null, "tax_exempt": "none", "tax_ids": [] },
        "customer_email": null,
        "discounts": [],
        "expires_at": 1_769_940_000,
        "integration_identifier": null,
        "invoice": null,
        "invoice_creation": null,
        "livemode": false,
        "locale": null,
        "metadata": { "workspace_id": workspace, "pack": pack },
        "mode": "payment",
        "origin_context": null,
        "payment_intent": intent,
        "payment_link": null,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": null,
        "payment_method_options": { "card": { "request_three_d_secure": "automatic" } },
        "payment_method_types": ["card"],
        "payment_status": status,
        "permissions": null,
        "phone_number_collection": { "enabled": false },
        "recovered_from": null,
        "saved_payment_method_options": null,
        "setup_intent": null,
        "shipping_address_collection": null,
        "shipping_cost": null,
        "shipping_options": [],
        "status": if status == "paid" { "complete" } else { "open" },
        "submit_type": null,
        "subscription": null,
        "success_url": "https://app.protodesk.example/billing?paid=1",
        "total_details": { "amount_discount": 0, "amount_shipping": 0, "amount_tax": 0 },
        "ui_mode": "hosted",
        "url": null,
        "wallet_options": null,
    })
}

/// A Checkout Session in `mode: subscription` that created `subscription`
/// for `workspace`.
pub fn subscription_session(workspace: &str, subscription: &str) -> Value {
    let mut session = checkout_session(workspace, "", "", 2999, "usd", "paid");
    session["mode"] = json!("subscription");
    session["payment_intent"] = Value::Null;
    session["subscription"] = json!(subscription);
    session["invoice"] = json!(format!("in_{subscription}_1"));
    session["metadata"] = json!({ "workspace_id": workspace });
    session
}

/// The Charge of `intent` for `amount` cents, of which `refunded` were
/// refunded (`full` when all of it).
pub fn charge(intent: &str, amount: i64, refunded: i64, full: bool) -> Value {
    json!({
        "id": format!("ch_{intent}"),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": refunded,
        "application": null,
        "application_fee": null,
        "application_fee_amount": null,
        "balance_transaction": format!("txn_{intent}"),
        "billing_details": { "address": null, "email": "billing@acme.example", "name": "Acme", "phone": null, "tax_id": null },
        "calculated_statement_descriptor": "PROTODESK",
        "captured": true,
        "created": 1_769_853_600,
        "currency": "usd",
        "customer": "cus_Protodesk001",
        "description": null,
        "disputed": false,
        "failure_balance_transaction": null,
        "failure_code": null,
        "failure_message": null,
        "fraud_details": {},
        "livemode": false,
        "metadata": {},
        "on_behalf_of": null,
        "outcome": { "network_status": "approved_by_network", "reason": null, "risk_level": "normal", "seller_message": "Payment complete.", "type": "authorized" },
        "paid": true,
        "payment_intent": intent,
        "payment_method": "pm_card_visa",
        "payment_method_details": { "card": { "brand": "visa", "country": "US", "exp_month": 12, "exp_year": 2030, "last4": "4242", "network": "visa" }, "type": "card" },
        "receipt_email": null,
        "receipt_number": null,
        "receipt_url": "https://pay.stripe.com/receipts/test",
        "refunded": full,
        "refunds": { "object": "list", "data": [], "has_more": false, "url": format!("/v1/charges/ch_{intent}/refunds") },
        "review": null,
        "shipping": null,
        "source": null,
        "source_transfer": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": "succeeded",
        "transfer_data": null,
        "transfer_group": null,
    })
}

/// A Dispute of `intent`'s charge for `amount` cents, in `status`.
pub fn dispute(intent: &str, amount: i64, status: &str) -> Value {
    json!({
        "id": format!("dp_{intent}"),
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": format!("ch_{intent}"),
        "created": 1_769_853_600,
        "currency": "usd",
        "enhanced_eligibility_types": [],
        "evidence": { "access_activity_log": null, "billing_address": null, "customer_email_address": null, "product_description": null, "uncategorized_text": null },
        "evidence_details": { "due_by": 1_770_681_599, "has_evidence": false, "past_due": false, "submission_count": 0 },
        "is_charge_refundable": false,
        "livemode": false,
        "metadata": {},
        "payment_intent": intent,
        "payment_method_details": { "card": { "brand": "visa", "case_type": "chargeback", "network_reason_code": "10.4" }, "type": "card" },
        "reason": "fraudulent",
        "status": status,
    })
}

/// Subscription `id` for `workspace` (in its metadata when `named`) on
/// `price`, in `status`, with its current period `[start, end)` (unix
/// seconds) on its item, as API versions since 2025-03-31.basil put it.
pub fn subscription(
    id: &str,
    workspace: Option<&str>,
    price: &str,
    status: &str,
    period: (i64, i64),
    anchor: i64,
) -> Value {
    let metadata = match workspace {
        Some(workspace) => json!({ "workspace_id": workspace }),
        None => json!({}),
    };
    json!({
        "id": id,
        "object": "subscription",
        "application": null,
        "application_fee_percent": null,
        "automatic_tax": { "disabled_reason": null, "enabled": false, "liability": null },
        "billing_cycle_anchor": anchor,
        "billing_cycle_anchor_config": null,
        "billing_mode": { "type": "flexible", "flexible": { "proration_discounts": "included" } },
        "billing_thresholds": null,
        "cancel_at": null,
        "cancel_at_period_end": false,
        "canceled_at": null,
        "cancellation_details": { "comment": null, "feedback": null, "reason": null },
        "collection_method": "charge_automatically",
        "created": anchor,
        "currency": "usd",
        "customer": "cus_Protodesk001",
        "customer_account": null,
        "days_until_due": null,
        "default_payment_method": "pm_card_visa",
        "default_source": null,
        "default_tax_rates": [],
        "description": null,
        "discounts": [],
        "ended_at": null,
        "invoice_settings": { "account_tax_ids": null, "issuer": { "type": "self" } },
        "items": {
            "object": "list",
            "data": [{
                "id": format!("si_{id}"),
                "object": "subscription_item",
                "billing_thresholds": null,
                "created": anchor,
                "current_period_end": period.1,
                "current_period_start": period.0,
                "discounts": [],
                "metadata": {},
                "price": {
                    "id": price,
                    "object": "price",
                    "active": true,
                    "billing_scheme": "per_unit",
                    "created": 1_767_225_600,
                    "currency": "usd",
                    "custom_unit_amount": null,
                    "livemode": false,
                    "lookup_key": null,
                    "metadata": {},
                    "nickname": null,
                    "product": "prod_ProtodeskPlan",
                    "recurring": { "interval": "month", "interval_count": 1, "meter": null, "trial_period_days": null, "usage_type": "licensed" },
                    "tax_behavior": "unspecified",
                    "tiers_mode": null,
                    "transform_quantity": null,
                    "type": "recurring",
                    "unit_amount": 2999,
                    "unit_amount_decimal": "2999",
                },
                "quantity": 1,
                "subscription": id,
                "tax_rates": [],
            }],
            "has_more": false,
            "url": format!("/v1/subscription_items?subscription={id}"),
        },
        "latest_invoice": format!("in_{id}_{}", period.0),
        "livemode": false,
        "metadata": metadata,
        "next_pending_invoice_item_invoice": null,
        "on_behalf_of": null,
        "pause_collection": null,
        "payment_settings": { "payment_method_options": null, "payment_method_types": null, "save_default_payment_method": "off" },
        "pending_invoice_item_interval": null,
        "pending_setup_intent": null,
        "pending_update": null,
        "schedule": null,
        "start_date": anchor,
        "status": status,
        "test_clock": null,
        "transfer_data": null,
        "trial_end": null,
        "trial_settings": { "end_behavior": { "missing_payment_method": "create_invoice" } },
        "trial_start": null,
    })
}

/// Automatic top-up's PaymentIntent `id` for `pack` (`amount` cents
/// received) of `workspace`, answering `request`, in `status`.
pub fn payment_intent(
    id: &str,
    workspace: &str,
    pack: &str,
    request: &str,
    amount: i64,
    status: &str,
) -> Value {
    json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": { "tip": {} },
        "amount_received": if status == "succeeded" { amount } else { 0 },
        "application": null,
        "application_fee_amount": null,
        "automatic_payment_methods": null,
        "canceled_at": null,
        "cancellation_reason": null,
        "capture_method": "automatic",
        "client_secret": format!("{id}_secret_test"),
        "confirmation_method": "automatic",
        "created": 1_769_853_600,
        "currency": "usd",
        "customer": "cus_Protodesk001",
        "customer_account": null,
        "description": null,
        "excluded_payment_method_types": null,
        "last_payment_error": if status == "succeeded" { Value::Null } else { json!({ "code": "card_declined", "type": "card_error" }) },
        "latest_charge": format!("ch_{id}"),
        "livemode": false,
        "metadata": { "workspace_id": workspace, "pack": pack, "auto_top_up_request": request },
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": "pm_card_visa",
        "payment_method_configuration_details": null,
        "payment_method_options": { "card": { "request_three_d_secure": "automatic" } },
        "payment_method_types": ["card"],
        "processing": null,
        "receipt_email": null,
        "review": null,
        "setup_future_usage": "off_session",
        "shipping": null,
        "source": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": status,
        "transfer_data": null,
        "transfer_group": null,
    })
}
