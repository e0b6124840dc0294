//! The webhook delivery queue (`docs/design/webhooks.md`): each endpoint
//! and workspace pair is one queue (`webhook_queue`) with its own next due
//! time, lease and count of pending deliveries. A claim reads the queues
//! that are due, in due order, never the deliveries behind them; the worker
//! holding a queue sends its due deliveries in order, records them in one
//! short transaction, and releases it. Its cost is bounded by what it
//! claims, whatever is queued.

use chrono::{DateTime, Utc};
use entity::webhook_delivery;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter};

use super::statement;
use super::{Result, begin_write, commit};
use domain::outbox::{DELIVERED, FAILED, PENDING};

/// Most pending deliveries one queue holds: beyond it the oldest are given
/// up (FAILED, with the reason) as new ones arrive.
pub const QUEUE_PENDING_MAX: i64 = 10_000;

/// A queue: an endpoint's deliveries for one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// The endpoint.
    pub endpoint_id: i64,
    /// The workspace.
    pub workspace_id: String,
}

/// A delivery a worker sends, with what it sends.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The delivery.
    pub id: i64,
    /// Attempts before this one.
    pub attempts: i32,
    /// Where.
    pub url: String,
    /// Signing secret (`whsec_…`).
    pub secret: String,
    /// The event's stored id.
    pub event_id: i64,
    /// Its type.
    pub event_type: String,
    /// Its workspace.
    pub workspace_id: String,
    /// Its data, JSON text.
    pub data: String,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempted {
    /// 2xx.
    Delivered { status: u16 },
    /// Another answer or none; retry at `retry_at`, or give up when `None`.
    Failed {
        status: Option<u16>,
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
}

/// Which new deliveries [`enqueue`] counts.
pub enum NewDeliveries<'a> {
    /// Every delivery of these events (their first).
    OfEvents(&'a str),
    /// This one delivery (a redelivery).
    One(i64),
}

/// Counts the deliveries just written into their queues
/// (created when new; due no later than the earliest of them), then gives
/// up the oldest pending of any queue past [`QUEUE_PENDING_MAX`]. Returns
/// how many were given up. Runs in the events' transaction.
pub async fn enqueue(txn: &impl ConnectionTrait, new: NewDeliveries<'_>, now: DateTime<Utc>) -> Result<u64> {
    let which = match new {
        NewDeliveries::OfEvents(event_ids) => format!("event_id IN ({event_ids})"),
        NewDeliveries::One(id) => format!("id = {id}"),
    };
    let over: Vec<(i64, String, i64)> = txn
        .query_all_raw(statement(
            txn,
            &format!(
                "INSERT INTO webhook_queue (endpoint_id, workspace_id, next_due_at, pending) \
                 SELECT endpoint_id, workspace_id, MIN(next_attempt_at), COUNT(*) FROM webhook_delivery \
                 WHERE {which} AND status = '{PENDING}' GROUP BY endpoint_id, workspace_id \
                 ON CONFLICT (endpoint_id, workspace_id) DO UPDATE SET \
                 pending = webhook_queue.pending + excluded.pending, \
                 next_due_at = CASE WHEN webhook_queue.next_due_at IS NULL \
                 OR excluded.next_due_at < webhook_queue.next_due_at \
                 THEN excluded.next_due_at ELSE webhook_queue.next_due_at END \
                 RETURNING endpoint_id, workspace_id, pending"
            ),
            Vec::new(),
        ))
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get("", "endpoint_id")?,
                row.try_get("", "workspace_id")?,
                row.try_get::<i32>("", "pending").map(i64::from)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .filter(|(_, _, pending)| *pending > QUEUE_PENDING_MAX)
        .collect();
    let mut given_up = 0;
    for (endpoint_id, workspace_id, pending) in over {
        let excess = pending - QUEUE_PENDING_MAX;
        let dropped = txn
            .execute_raw(statement(
                txn,
                &format!(
                    "UPDATE webhook_delivery SET status = '{FAILED}', next_attempt_at = ?, \
                     last_error = 'given up: more than {QUEUE_PENDING_MAX} deliveries were queued for this endpoint' \
                     WHERE id IN (SELECT id FROM webhook_delivery WHERE endpoint_id = ? AND workspace_id = ? \
                     AND status = '{PENDING}' ORDER BY id LIMIT {excess})"
                ),
                vec![now.into(), endpoint_id.into(), workspace_id.clone().into()],
            ))
            .await?
            .rows_affected();
        settle_queue_count(txn, endpoint_id, &workspace_id, dropped).await?;
        tracing::warn!(
            endpoint_id,
            workspace_id,
            dropped,
            "a webhook endpoint's queue is full; its oldest pending deliveries were given up"
        );
        given_up += dropped;
    }
    Ok(given_up)
}

async fn settle_queue_count(
    txn: &impl ConnectionTrait,
    endpoint_id: i64,
    workspace_id: &str,
    settled: u64,
) -> Result<()> {
    if settled == 0 {
        return Ok(());
    }
    txn.execute_raw(statement(
        txn,
        "UPDATE webhook_queue SET pending = CASE WHEN pending > ? THEN pending - ? ELSE 0 END \
         WHERE endpoint_id = ? AND workspace_id = ?",
        vec![
            i64::try_from(settled).unwrap_or(i64::MAX).into(),
            i64::try_from(settled).unwrap_or(i64::MAX).into(),
            endpoint_id.into(),
            workspace_id.to_owned().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Whether any queue is due at `now` and free (a cheap read before a
/// claim, which writes).
pub async fn any_due(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<bool> {
    Ok(db
        .query_one_raw(statement(
            db,
            "SELECT 1 AS due FROM webhook_queue WHERE next_due_at <= ? \
             AND (leased_until IS NULL OR leased_until < ?) LIMIT 1",
            vec![now.into(), now.into()],
        ))
        .await?
        .is_some())
}

/// Leases up to `limit` due queues until `lease_until`, earliest due first,
/// leaving out the endpoints in `busy` (this worker's per-endpoint limit).
pub async fn claim_queues(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
    busy: &[i64],
) -> Result<Vec<Queue>> {
    let skip_locked = if db.get_database_backend() == DbBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let not_busy = if busy.is_empty() {
        String::new()
    } else {
        let list = busy.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        format!(" AND endpoint_id NOT IN ({list})")
    };
    let free = "(leased_until IS NULL OR leased_until < ?)";
    db.query_all_raw(statement(
        db,
        &format!(
            "UPDATE webhook_queue SET leased_until = ? WHERE (endpoint_id, workspace_id) IN ( \
             SELECT endpoint_id, workspace_id FROM webhook_queue WHERE next_due_at <= ? AND {free}{not_busy} \
             ORDER BY next_due_at LIMIT {limit}{skip_locked}) AND {free} \
             RETURNING endpoint_id, workspace_id"
        ),
        vec![lease_until.into(), now.into(), now.into(), now.into()],
    ))
    .await?
    .iter()
    .map(|row| {
        Ok(Queue {
            endpoint_id: row.try_get("", "endpoint_id")?,
            workspace_id: row.try_get("", "workspace_id")?,
        })
    })
    .collect()
}

/// Up to `limit` of a queue's deliveries due at `now`, in order.
pub async fn due_in(
    db: &impl ConnectionTrait,
    queue: &Queue,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Claimed>> {
    db.query_all_raw(statement(
        db,
        &format!(
            "SELECT d.id, d.attempts, p.url, p.secret, e.id AS event_id, e.event_type, e.workspace_id, \
             e.data, e.created_at FROM webhook_delivery d \
             JOIN webhook_endpoint p ON p.id = d.endpoint_id JOIN outbox_event e ON e.id = d.event_id \
             WHERE d.endpoint_id = ? AND d.workspace_id = ? AND d.status = '{PENDING}' AND d.next_attempt_at <= ? \
             ORDER BY d.id LIMIT {limit}"
        ),
        vec![queue.endpoint_id.into(), queue.workspace_id.clone().into(), now.into()],
    ))
    .await?
    .iter()
    .map(|row| {
        Ok(Claimed {
            id: row.try_get("", "id")?,
            attempts: row.try_get("", "attempts")?,
            url: row.try_get("", "url")?,
            secret: row.try_get("", "secret")?,
            event_id: row.try_get("", "event_id")?,
            event_type: row.try_get("", "event_type")?,
            workspace_id: row.try_get("", "workspace_id")?,
            data: row.try_get("", "data")?,
            created_at: row.try_get("", "created_at")?,
        })
    })
    .collect()
}

/// Records a turn's attempts (each 1-based attempt with its outcome) and
/// releases the queue, in one transaction: the queue is due again at its
/// earliest pending delivery, but not before `now`, so that a queue with a
/// backlog goes behind the queues that waited meanwhile.
pub async fn finish_turn(
    db: &super::Pool,
    queue: &Queue,
    attempts: &[(i64, i32, Attempted)],
    now: DateTime<Utc>,
) -> Result<()> {
    let txn = begin_write(db).await?;
    // The queue's row first: an enqueue in flight is committed before the
    // earliest due time is read below.
    txn.query_one_raw(statement(
        &txn,
        &format!(
            "SELECT pending FROM webhook_queue WHERE endpoint_id = ? AND workspace_id = ?{}",
            if txn.get_database_backend() == DbBackend::Postgres {
                " FOR UPDATE"
            } else {
                ""
            }
        ),
        vec![queue.endpoint_id.into(), queue.workspace_id.clone().into()],
    ))
    .await?;
    // Delivered ones in one statement per answer code (a turn stops at its
    // first failure, so the rest is at most one row): the write lock is
    // held for a statement or two, whatever the turn's size.
    let mut settled = 0;
    let mut delivered: std::collections::BTreeMap<u16, Vec<i64>> = std::collections::BTreeMap::new();
    for (id, attempt, outcome) in attempts {
        match outcome {
            Attempted::Delivered { status } => delivered.entry(*status).or_default().push(*id),
            Attempted::Failed { .. } => {
                if record_attempt(&txn, *id, *attempt, outcome, now).await? {
                    settled += 1;
                }
            }
        }
    }
    for (code, ids) in delivered {
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        settled += txn
            .execute_raw(statement(
                &txn,
                &format!(
                    "UPDATE webhook_delivery SET status = '{DELIVERED}', attempts = attempts + 1, \
                     last_status_code = ?, last_error = NULL, next_attempt_at = ?, delivered_at = ? \
                     WHERE id IN ({list}) AND status = '{PENDING}'"
                ),
                vec![i32::from(code).into(), now.into(), now.into()],
            ))
            .await?
            .rows_affected();
    }
    settle_queue_count(&txn, queue.endpoint_id, &queue.workspace_id, settled).await?;
    txn.execute_raw(statement(
        &txn,
        &format!(
            "UPDATE webhook_queue SET leased_until = NULL, next_due_at = ( \
             SELECT CASE WHEN MIN(d.next_attempt_at) < ? THEN ? ELSE MIN(d.next_attempt_at) END \
             FROM webhook_delivery d WHERE d.endpoint_id = ? AND d.workspace_id = ? AND d.status = '{PENDING}') \
             WHERE endpoint_id = ? AND workspace_id = ?"
        ),
        vec![
            now.into(),
            now.into(),
            queue.endpoint_id.into(),
            queue.workspace_id.clone().into(),
            queue.endpoint_id.into(),
            queue.workspace_id.clone().into(),
        ],
    ))
    .await?;
    commit(txn).await
}

/// Records attempt `attempt` (1-based) of a delivery; whether it settled
/// (delivered, or failed for good).
/// (A failed attempt; delivered ones are recorded together above.)
async fn record_attempt(
    db: &impl ConnectionTrait,
    id: i64,
    attempt: i32,
    outcome: &Attempted,
    now: DateTime<Utc>,
) -> Result<bool> {
    let (status, code, error, next, delivered_at) = match outcome {
        Attempted::Delivered { status } => (DELIVERED, Some(*status), None, now, Some(now)),
        Attempted::Failed {
            status,
            error,
            retry_at,
        } => (
            if retry_at.is_some() { PENDING } else { FAILED },
            *status,
            Some(error.chars().take(500).collect::<String>()),
            retry_at.unwrap_or(now),
            None,
        ),
    };
    let updated = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Status, Expr::value(status))
        .col_expr(webhook_delivery::Column::Attempts, Expr::value(attempt))
        .col_expr(
            webhook_delivery::Column::LastStatusCode,
            Expr::value(code.map(i32::from)),
        )
        .col_expr(webhook_delivery::Column::LastError, Expr::value(error))
        .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(next))
        .col_expr(webhook_delivery::Column::DeliveredAt, Expr::value(delivered_at))
        .filter(webhook_delivery::Column::Id.eq(id))
        .filter(webhook_delivery::Column::Status.eq(PENDING))
        .exec(db)
        .await?;
    Ok(updated.rows_affected == 1 && status != PENDING)
}

/// Pending deliveries and the age in seconds of the oldest due one (the
/// outbox lag), for the metrics.
pub async fn backlog(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<(i64, f64)> {
    let pending = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Status.eq(PENDING))
        .count(db)
        .await?;
    let oldest = db
        .query_one_raw(statement(
            db,
            &format!(
                "SELECT next_attempt_at FROM webhook_delivery WHERE status = '{PENDING}' \
                 AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT 1"
            ),
            vec![now.into()],
        ))
        .await?
        .map(|row| row.try_get::<DateTime<Utc>>("", "next_attempt_at"))
        .transpose()?;
    let lag = oldest.map_or(0.0, |due| (now - due).num_milliseconds().max(0) as f64 / 1000.0);
    Ok((i64::try_from(pending).unwrap_or(i64::MAX), lag))
}
