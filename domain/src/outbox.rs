//! The events other systems are told about, derived from a change as it is
//! written (`docs/design/webhooks.md`). Pure: the store writes them into the
//! outbox in the change's own transaction.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::catalogue::LedgerKind;
use crate::views::BalanceView;
use crate::wallet::{Change, Happened, Notice, Row};

pub use crate::event::{EventType, NewEvent};

/// A delivery still to send (its first attempt or a retry).
pub const PENDING: &str = "PENDING";
/// Answered 2xx.
pub const DELIVERED: &str = "DELIVERED";
/// Its last attempt failed; no more are made.
pub const FAILED: &str = "FAILED";

/// A webhook endpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointView {
    /// Its id.
    pub id: i64,
    /// Its workspace; `None`: every workspace.
    pub workspace_id: Option<String>,
    /// Where events go.
    pub url: String,
    /// The types sent; empty: all.
    pub event_types: Vec<String>,
    /// Its note.
    pub description: String,
    /// Its signing secret (answered only when created or rotated).
    pub secret: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// One event's delivery to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryView {
    /// Its id.
    pub id: i64,
    /// The stored event's id.
    pub event_id: i64,
    /// The event's type.
    pub event_type: String,
    /// PENDING, DELIVERED or FAILED.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// The last answer's status.
    pub last_status_code: Option<i32>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the next attempt is due (meaningful while PENDING).
    pub next_attempt_at: DateTime<Utc>,
    /// When a 2xx came.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

/// The body posted for a stored event: `{id, type, createdAt, workspaceId, data}`.
pub fn body(
    id: &str,
    event_type: &str,
    created_at: DateTime<Utc>,
    workspace_id: &str,
    data: &Value,
) -> Value {
    json!({
        "id": id,
        "type": event_type,
        "createdAt": created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "workspaceId": workspace_id,
        "data": data,
    })
}

/// The public id of stored event `id` (its `webhook-id`, stable across retries).
pub fn event_id(id: i64) -> String {
    format!("evt_{id}")
}

/// A balance as events carry it.
pub fn balance_json(balance: &BalanceView) -> Value {
    json!({
        "total": balance.total,
        "allocation": balance.split.allocation,
        "purchased": balance.split.purchased,
        "bonus": balance.split.bonus,
        "available": balance.available(),
        "held": balance.held,
    })
}

/// The events of `change`, in the order they happened; `ids` are its rows'
/// stored ids.
pub fn events_of_change(change: &Change, ids: &[i64]) -> Vec<NewEvent> {
    let event = |event_type: EventType, data: Value| NewEvent {
        event_type,
        workspace_id: change.workspace_id.clone(),
        data,
        once_key: None,
    };
    let mut events = Vec::new();
    for happened in &change.happened {
        match *happened {
            Happened::Row(index) => {
                let (Some(row), Some(&id)) = (change.rows.get(index), ids.get(index)) else {
                    continue;
                };
                events.extend(
                    row_events(change, row, id)
                        .into_iter()
                        .map(|(event_type, data)| event(event_type, data)),
                );
            }
            Happened::Alert(index) => {
                if let Some(alert) = change.alerts.get(index) {
                    events.push(event(
                        EventType::LowBalance,
                        json!({
                            "threshold": alert.threshold,
                            "sequence": alert.sequence,
                            "balance": balance_json(&alert.balance),
                        }),
                    ));
                }
            }
            Happened::Exhausted(index) => {
                if let Some(exhausted) = change.exhausted.get(index) {
                    // Once per window and subject; a refused agent without a
                    // counter, once per window of the budget.
                    let once_key = format!(
                        "budget_exceeded:{}:{}:{}",
                        exhausted.budget_id,
                        exhausted.subject.as_deref().unwrap_or("*"),
                        exhausted.window_start.timestamp()
                    );
                    events.push(NewEvent {
                        once_key: Some(once_key),
                        ..event(
                            EventType::BudgetExceeded,
                            json!({
                                "budget": exhausted.budget,
                                "agentId": exhausted.agent_id,
                                "sequence": exhausted.sequence,
                                "balance": balance_json(&exhausted.balance),
                            }),
                        )
                    });
                }
            }
        }
    }
    events.extend(
        pause_change(change, ids)
            .into_iter()
            .map(|(event_type, data)| event(event_type, data)),
    );
    events.extend(change.notices.iter().map(|notice| notice_event(change, notice)));
    events.extend(change.told.iter().cloned());
    events
}

/// What a plan change tells.
fn notice_event(change: &Change, notice: &Notice) -> NewEvent {
    let plain = |event_type: EventType, data: Value| NewEvent {
        event_type,
        workspace_id: change.workspace_id.clone(),
        data,
        once_key: None,
    };
    let head = change.head.as_ref();
    let period = json!({
        "start": head.and_then(|head| head.period_start).map(time_json),
        "end": head.and_then(|head| head.period_end).map(time_json),
    });
    match notice {
        Notice::PlanChanged {
            from,
            plan,
            pending_plan,
        } => plain(
            EventType::PlanChanged,
            json!({
                "from": from.as_str(),
                "plan": plan.as_str(),
                "pendingPlan": pending_plan.map(|plan| plan.as_str()),
                "currentPeriod": period,
            }),
        ),
        Notice::PastDue {
            subscription_id,
            grace_ends_at,
        } => plain(
            EventType::SubscriptionPastDue,
            json!({
                "subscriptionId": subscription_id,
                "graceEndsAt": time_json(*grace_ends_at),
            }),
        ),
        Notice::PlanEnded { subscription_id } => plain(
            EventType::SubscriptionEnded,
            json!({
                "subscriptionId": subscription_id,
                "plan": head.map(|head| head.plan.as_str()),
            }),
        ),
        Notice::TopUpRequested {
            request_id,
            pack,
            threshold,
            balance,
        } => auto_top_up_requested(&change.workspace_id, request_id, pack, *threshold, balance),
        Notice::TopUpDisabled { request_id, failures } => {
            auto_top_up_disabled(&change.workspace_id, request_id, *failures)
        }
    }
}

fn time_json(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The balance reaching zero (AI pauses) or leaving it (AI resumes) over
/// the whole change, so that an expiry followed by a renewal's grant, or a
/// spend reversed in the same batch, tells nothing.
fn pause_change(change: &Change, ids: &[i64]) -> Option<(EventType, Value)> {
    let first = change.rows.first()?;
    let (last, &id) = change.rows.last().zip(ids.last())?;
    let before = change.available_read;
    let after = last.balance.available();
    let data = || {
        json!({
            "transactionId": id.to_string(),
            "sequence": last.sequence,
            "balance": balance_json(&last.balance),
        })
    };
    if before > 0 && after == 0 {
        return Some((EventType::AiPaused, data()));
    }
    // The wallet's first row opens it: a wallet never paused does not resume.
    if before <= 0 && after > 0 && first.sequence > 1 {
        return Some((EventType::AiResumed, data()));
    }
    None
}

/// What one row tells: a top-up, or a renewal's allocation.
fn row_events(change: &Change, row: &Row, id: i64) -> Vec<(EventType, Value)> {
    let mut events = Vec::new();
    let common = |extra: Value| {
        let mut data = json!({
            "transactionId": id.to_string(),
            "sequence": row.sequence,
            "kind": row.entry.kind.as_str(),
            "amount": row.amount,
            "balance": balance_json(&row.balance),
        });
        if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
            data.extend(extra);
        }
        data
    };
    match row.entry.kind {
        LedgerKind::HoldExpired => {
            if let Some(hold) = change.holds.iter().find(|hold| Some(hold.id) == row.entry.hold) {
                events.push((
                    EventType::HoldExpired,
                    common(json!({
                        "holdId": hold.id.to_string(),
                        "holdKey": hold.key,
                        "credits": hold.credits,
                        "action": hold.action.as_str(),
                        "agentId": hold.agent_id,
                        "reference": hold.reference,
                        "placedAt": time_json(hold.created_at),
                        "expiresAt": time_json(hold.expires_at),
                    })),
                ));
            }
        }
        LedgerKind::TopUp => {
            let pack = row.moves.iter().find_map(|(grant_id, _)| {
                change
                    .new_grants
                    .iter()
                    .find(|grant| grant.id == *grant_id)
                    .and_then(|grant| grant.purchase.as_ref())
                    .map(|purchase| purchase.pack.clone())
            });
            events.push((
                EventType::TopUpApplied,
                common(json!({
                    "pack": pack,
                    "paymentReference": row.entry.key.as_ref().map(|binding| binding.key.clone()),
                })),
            ));
        }
        // A renewal's GRANT; the trial's GRANT opens a wallet, renewing nothing.
        LedgerKind::Grant if change.renewals > 0 => {
            events.push((EventType::PeriodRenewed, common(json!({}))));
        }
        _ => {}
    }
    events
}

/// Automatic top-up asks for `pack`; the payment system charges it with
/// `request_id` as its idempotency key and in the payment's metadata.
pub fn auto_top_up_requested(
    workspace_id: &str,
    request_id: &str,
    pack: &str,
    threshold: i64,
    balance: &BalanceView,
) -> NewEvent {
    NewEvent {
        event_type: EventType::AutoTopUpRequested,
        workspace_id: workspace_id.to_owned(),
        data: json!({
            "requestId": request_id,
            "pack": pack,
            "threshold": threshold,
            "balance": balance_json(balance),
        }),
        once_key: Some(format!("auto_top_up:{request_id}")),
    }
}

/// Automatic top-up switched off after `failures` failed payments in a row.
pub fn auto_top_up_disabled(workspace_id: &str, request_id: &str, failures: i32) -> NewEvent {
    NewEvent {
        event_type: EventType::AutoTopUpDisabled,
        workspace_id: workspace_id.to_owned(),
        data: json!({ "lastRequestId": request_id, "consecutiveFailures": failures }),
        once_key: Some(format!("auto_top_up_disabled:{request_id}")),
    }
}

/// A refund an operator must look at.
pub fn refund_needs_review(
    workspace_id: &str,
    payment_reference: &str,
    outcome: &str,
    top_up_transaction_id: i64,
    amount_refunded_cents: i64,
) -> NewEvent {
    NewEvent {
        event_type: EventType::RefundNeedsReview,
        workspace_id: workspace_id.to_owned(),
        data: json!({
            "paymentReference": payment_reference,
            "outcome": outcome,
            "topUpTransactionId": top_up_transaction_id.to_string(),
            "amountRefundedCents": amount_refunded_cents,
        }),
        once_key: Some(format!(
            "refund:{payment_reference}:{outcome}:{amount_refunded_cents}"
        )),
    }
}

/// A confirmed payment that was not applied as it came, or was applied
/// though refunded in part before it arrived: `reason` says which.
pub fn payment_needs_review(
    workspace_id: &str,
    payment_reference: &str,
    reason: &str,
    detail: Value,
) -> NewEvent {
    NewEvent {
        event_type: EventType::PaymentNeedsReview,
        workspace_id: workspace_id.to_owned(),
        data: json!({
            "paymentReference": payment_reference,
            "reason": reason,
            "detail": detail,
        }),
        once_key: Some(format!("payment:{payment_reference}:{reason}:{workspace_id}")),
    }
}

/// A dispute of a payment that bought credits here.
pub fn payment_disputed(
    workspace_id: &str,
    payment_reference: &str,
    status: &str,
    amount_cents: i64,
) -> NewEvent {
    NewEvent {
        event_type: EventType::PaymentDisputed,
        workspace_id: workspace_id.to_owned(),
        data: json!({
            "paymentReference": payment_reference,
            "status": status,
            "amountCents": amount_cents,
        }),
        once_key: Some(format!("dispute:{payment_reference}:{status}")),
    }
}

/// The once-key of a workspace's trial ending: a workspace has one trial.
pub fn trial_ending_key(workspace_id: &str) -> String {
    format!("{TRIAL_ENDING_KEY_PREFIX}{workspace_id}")
}

/// What [`trial_ending_key`] puts before the workspace id.
pub const TRIAL_ENDING_KEY_PREFIX: &str = "trial_ending:";

/// The once-key of a runway found too short for the period ending at `period_end`.
pub fn runway_low_key(workspace_id: &str, period_end: DateTime<Utc>) -> String {
    format!("runway_low:{workspace_id}:{}", period_end.timestamp())
}

/// The data of a trial ending, and its once-per-trial key.
pub fn trial_ending(workspace_id: &str, ends_at: DateTime<Utc>, balance: &BalanceView) -> NewEvent {
    NewEvent {
        event_type: EventType::TrialEnding,
        workspace_id: workspace_id.to_owned(),
        data: json!({
            "endsAt": ends_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "balance": balance_json(balance),
        }),
        once_key: Some(trial_ending_key(workspace_id)),
    }
}

/// The data of a runway too short for the period, once per period.
pub fn runway_low(
    workspace_id: &str,
    period_end: DateTime<Utc>,
    depletes_at: DateTime<Utc>,
    daily_burn: f64,
    balance: &BalanceView,
) -> NewEvent {
    NewEvent {
        event_type: EventType::RunwayLow,
        workspace_id: workspace_id.to_owned(),
        data: json!({
            "depletesAt": depletes_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "resetsAt": period_end.to_rfc3339_opts(SecondsFormat::Secs, true),
            "dailyBurn": daily_burn,
            "balance": balance_json(balance),
        }),
        once_key: Some(runway_low_key(workspace_id, period_end)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip_their_public_names() {
        for event_type in EventType::ALL {
            assert_eq!(event_type.as_str().parse::<EventType>(), Ok(*event_type));
            assert!(event_type.as_str().starts_with("credits."));
        }
        assert_eq!(EventType::ALL.len(), 17);
    }

    #[test]
    fn the_body_has_the_documented_fields() {
        let at = DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let body = body("evt_7", "credits.ai_paused", at, "ws-1", &json!({"a": 1}));
        assert_eq!(
            body,
            json!({"id": "evt_7", "type": "credits.ai_paused", "createdAt": "2026-12-04T10:00:00.000000Z",
                   "workspaceId": "ws-1", "data": {"a": 1}})
        );
    }
}
