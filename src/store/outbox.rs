//! The outbox's events (`docs/design/webhooks.md`): written in the caller's
//! transaction and fanned out there to the endpoints subscribed at that
//! moment (one queued delivery each, `delivery.rs`); read back by id;
//! pruned once every delivery of them is settled. The applier
//! (`apply.rs`) is their one writer.

use chrono::{DateTime, Utc};
use entity::webhook_delivery;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::{Result, statement};
use domain::outbox::NewEvent;

pub use domain::outbox::{DELIVERED, FAILED, PENDING};

/// Writes `events` (an event whose once-key exists is dropped) and a
/// delivery of each to every endpoint subscribed to it; returns how many
/// events were written. `due` is when their first attempt is due.
pub(super) async fn insert_events(
    txn: &impl ConnectionTrait,
    events: &[NewEvent],
    created_at: DateTime<Utc>,
    due: DateTime<Utc>,
) -> Result<usize> {
    let mut ids = Vec::with_capacity(events.len());
    for event in events {
        // Once-keys outlive the events' retention (`outbox_once`), so an
        // occasion is told once however long ago it was.
        if let Some(once_key) = &event.once_key {
            let first = txn
                .query_one_raw(statement(
                    txn,
                    "INSERT INTO outbox_once (once_key, created_at) VALUES (?, ?) \
                     ON CONFLICT DO NOTHING RETURNING once_key",
                    vec![once_key.clone().into(), created_at.into()],
                ))
                .await?;
            if first.is_none() {
                continue;
            }
        }
        let inserted = txn
            .query_one_raw(statement(
                txn,
                "INSERT INTO outbox_event (event_type, workspace_id, data, once_key, created_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
                vec![
                    event.event_type.as_str().into(),
                    event.workspace_id.clone().into(),
                    event.data.to_string().into(),
                    event.once_key.clone().into(),
                    created_at.into(),
                ],
            ))
            .await?;
        if let Some(row) = inserted {
            ids.push(row.try_get::<i64>("", "id")?);
        }
    }
    if ids.is_empty() {
        return Ok(0);
    }
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    txn.execute_raw(statement(
        txn,
        &format!(
            "INSERT INTO webhook_delivery (endpoint_id, event_id, workspace_id, status, attempts, \
             next_attempt_at, created_at) \
             SELECT p.id, e.id, e.workspace_id, '{PENDING}', 0, ?, ? FROM outbox_event e \
             JOIN webhook_endpoint p ON (p.workspace_id = e.workspace_id OR p.workspace_id IS NULL) \
             AND (p.event_types = '' OR (' ' || p.event_types || ' ') LIKE ('% ' || e.event_type || ' %')) \
             WHERE e.id IN ({list}) ORDER BY e.id, p.id"
        ),
        vec![due.into(), created_at.into()],
    ))
    .await?;
    super::delivery::enqueue(txn, super::delivery::NewDeliveries::OfEvents(&list), due).await?;
    Ok(ids.len())
}

/// The workspace and type of stored event `event_id`.
pub async fn event_owner(db: &impl ConnectionTrait, event_id: i64) -> Result<Option<(String, String)>> {
    Ok(entity::outbox_event::Entity::find_by_id(event_id)
        .one(db)
        .await?
        .map(|event| (event.workspace_id, event.event_type)))
}

/// Most events one pruning statement removes.
pub const PRUNE_BATCH: u64 = 10_000;

/// Removes events written before `before` whose deliveries are all settled
/// (delivered or failed), with those deliveries; at most [`PRUNE_BATCH`]
/// events. Returns how many events were removed. Pending deliveries keep
/// their events however old.
pub async fn prune(txn: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64> {
    let old = format!(
        "SELECT e.id FROM outbox_event e WHERE e.created_at < ? \
         AND NOT EXISTS (SELECT 1 FROM webhook_delivery p WHERE p.event_id = e.id AND p.status = '{PENDING}') \
         ORDER BY e.created_at LIMIT {PRUNE_BATCH}"
    );
    let ids: Vec<i64> = txn
        .query_all_raw(statement(txn, &old, vec![before.into()]))
        .await?
        .iter()
        .map(|row| row.try_get::<i64>("", "id"))
        .collect::<std::result::Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(0);
    }
    webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::EventId.is_in(ids.clone()))
        .exec(txn)
        .await?;
    let removed = entity::outbox_event::Entity::delete_many()
        .filter(entity::outbox_event::Column::Id.is_in(ids))
        .exec(txn)
        .await?;
    Ok(removed.rows_affected)
}

/// Whether an event with `once_key` was written (however long ago).
pub async fn once_key_exists(db: &impl ConnectionTrait, once_key: &str) -> Result<bool> {
    Ok(db
        .query_one_raw(statement(
            db,
            "SELECT 1 AS found FROM outbox_once WHERE once_key = ?",
            vec![once_key.to_owned().into()],
        ))
        .await?
        .is_some())
}
