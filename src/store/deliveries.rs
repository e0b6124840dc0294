//! An endpoint's deliveries as an admin sees them, and redelivery on
//! request (`docs/design/webhooks.md`). The queue that sends them is
//! `delivery.rs`.

use chrono::{DateTime, Utc};
use entity::webhook_delivery;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::{Result, statement};
use domain::outbox::{DeliveryView, PENDING};

fn delivery_view(model: webhook_delivery::Model, event_type: String) -> DeliveryView {
    DeliveryView {
        id: model.id,
        event_id: model.event_id,
        event_type,
        status: model.status,
        attempts: model.attempts,
        last_status_code: model.last_status_code,
        last_error: model.last_error,
        next_attempt_at: model.next_attempt_at,
        delivered_at: model.delivered_at,
        created_at: model.created_at,
    }
}

/// A page of an endpoint's deliveries, newest first, after delivery id
/// `after` (exclusive), at most `limit`.
pub async fn deliveries(
    db: &impl ConnectionTrait,
    endpoint_id: i64,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<DeliveryView>> {
    let mut query =
        webhook_delivery::Entity::find().filter(webhook_delivery::Column::EndpointId.eq(endpoint_id));
    if let Some(after) = after {
        query = query.filter(webhook_delivery::Column::Id.lt(after));
    }
    let rows = query
        .order_by_desc(webhook_delivery::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    let ids: Vec<i64> = rows.iter().map(|row| row.event_id).collect();
    let types: std::collections::HashMap<i64, String> = entity::outbox_event::Entity::find()
        .filter(entity::outbox_event::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|event| (event.id, event.event_type))
        .collect();
    Ok(rows
        .into_iter()
        .map(|row| {
            let event_type = types.get(&row.event_id).cloned().unwrap_or_default();
            delivery_view(row, event_type)
        })
        .collect())
}

/// A new delivery of event `event_id` to endpoint `endpoint_id`, due now,
/// with the event's type; `None` when the event does not exist.
pub async fn redeliver(
    db: &impl ConnectionTrait,
    endpoint_id: i64,
    event_id: i64,
    now: DateTime<Utc>,
) -> Result<Option<DeliveryView>> {
    let Some(event) = entity::outbox_event::Entity::find_by_id(event_id).one(db).await? else {
        return Ok(None);
    };
    let delivery = webhook_delivery::ActiveModel {
        endpoint_id: Set(endpoint_id),
        event_id: Set(event.id),
        workspace_id: Set(event.workspace_id),
        status: Set(PENDING.to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        leased_until: Set(None),
        last_status_code: Set(None),
        last_error: Set(None),
        delivered_at: Set(None),
        created_at: Set(now),
        redelivery: Set(true),
        ..Default::default()
    }
    .insert(db)
    .await?;
    super::delivery::enqueue(db, super::delivery::NewDeliveries::One(delivery.id), now).await?;
    Ok(Some(delivery_view(delivery, event.event_type)))
}

/// Redeliveries queued for an endpoint since `since`, counted up to `cap`.
pub async fn redeliveries_since(
    db: &impl ConnectionTrait,
    endpoint_id: i64,
    since: DateTime<Utc>,
    cap: u64,
) -> Result<u64> {
    let row = db
        .query_one_raw(statement(
            db,
            &format!(
                "SELECT COUNT(*) AS n FROM (SELECT 1 FROM webhook_delivery \
                 WHERE endpoint_id = ? AND redelivery AND created_at > ? LIMIT {cap}) AS recent"
            ),
            vec![endpoint_id.into(), since.into()],
        ))
        .await?;
    Ok(row
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}
