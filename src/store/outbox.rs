//! The outbox, webhook endpoints and their delivery queue
//! (`docs/design/webhooks.md`).
//!
//! Events are inserted in the caller's transaction and fanned out there to
//! the endpoints subscribed at that moment, one `webhook_delivery` row
//! each. Workers claim due deliveries by setting a lease; on PostgreSQL the
//! claim skips rows another instance is claiming (`FOR UPDATE SKIP LOCKED`).

use chrono::{DateTime, Utc};
use entity::{webhook_delivery, webhook_endpoint};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use super::{Result, internal, statement};
use domain::outbox::{DeliveryView, EndpointView, NewEvent};

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

/// A new endpoint.
pub struct NewEndpoint<'a> {
    /// Its workspace; `None`: every workspace.
    pub workspace_id: Option<&'a str>,
    /// Where to post.
    pub url: &'a str,
    /// Space-separated types; empty: all.
    pub event_types: String,
    /// The caller's note.
    pub description: &'a str,
    /// The signing secret.
    pub secret: &'a str,
}

fn endpoint_view(model: webhook_endpoint::Model) -> EndpointView {
    EndpointView {
        id: model.id,
        workspace_id: model.workspace_id,
        url: model.url,
        event_types: model.event_types.split_whitespace().map(str::to_owned).collect(),
        description: model.description,
        secret: model.secret,
        created_at: model.created_at,
    }
}

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

/// Stores an endpoint.
pub async fn create_endpoint(
    db: &impl ConnectionTrait,
    endpoint: NewEndpoint<'_>,
    now: DateTime<Utc>,
) -> Result<EndpointView> {
    let model = webhook_endpoint::ActiveModel {
        workspace_id: Set(endpoint.workspace_id.map(str::to_owned)),
        url: Set(endpoint.url.to_owned()),
        event_types: Set(endpoint.event_types),
        description: Set(endpoint.description.to_owned()),
        secret: Set(endpoint.secret.to_owned()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(endpoint_view(model))
}

/// An endpoint by id.
pub async fn endpoint(db: &impl ConnectionTrait, id: i64) -> Result<Option<EndpointView>> {
    Ok(webhook_endpoint::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(endpoint_view))
}

/// Endpoints of `workspace_id` (and, with `with_global`, those for every
/// workspace), oldest first.
pub async fn endpoints(
    db: &impl ConnectionTrait,
    workspace_id: Option<&str>,
    with_global: bool,
) -> Result<Vec<EndpointView>> {
    let mut condition = sea_orm::Condition::any();
    if let Some(workspace_id) = workspace_id {
        condition = condition.add(webhook_endpoint::Column::WorkspaceId.eq(workspace_id));
    }
    if with_global {
        condition = condition.add(webhook_endpoint::Column::WorkspaceId.is_null());
    }
    Ok(webhook_endpoint::Entity::find()
        .filter(condition)
        .order_by_asc(webhook_endpoint::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(endpoint_view)
        .collect())
}

/// Replaces an endpoint's secret.
pub async fn set_secret(db: &impl ConnectionTrait, id: i64, secret: &str) -> Result<()> {
    let result = webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::Secret, Expr::value(secret))
        .filter(webhook_endpoint::Column::Id.eq(id))
        .exec(db)
        .await?;
    if result.rows_affected != 1 {
        return Err(internal(format!("endpoint {id} vanished")));
    }
    Ok(())
}

/// Deletes an endpoint and its deliveries.
pub async fn delete_endpoint(db: &impl ConnectionTrait, id: i64) -> Result<()> {
    db.execute_raw(statement(
        db,
        "DELETE FROM webhook_queue WHERE endpoint_id = ?",
        vec![id.into()],
    ))
    .await?;
    webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::EndpointId.eq(id))
        .exec(db)
        .await?;
    webhook_endpoint::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
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

/// The workspace and type of stored event `event_id`.
pub async fn event_owner(db: &impl ConnectionTrait, event_id: i64) -> Result<Option<(String, String)>> {
    Ok(entity::outbox_event::Entity::find_by_id(event_id)
        .one(db)
        .await?
        .map(|event| (event.workspace_id, event.event_type)))
}

/// Serializes changes to the endpoints of `workspace_id` (every
/// workspace's when `None`) until the transaction ends. SQLite's write
/// transaction already holds the database's lock.
pub async fn lock_endpoints_of(txn: &impl ConnectionTrait, workspace_id: Option<&str>) -> Result<()> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let key = format!("webhook_endpoints:{}", workspace_id.unwrap_or("*"));
    txn.execute_raw(statement(
        txn,
        "SELECT pg_advisory_xact_lock(hashtext(?))",
        vec![key.into()],
    ))
    .await?;
    Ok(())
}

/// How many endpoints `workspace_id` has (every workspace's when `None`).
pub async fn count_endpoints(db: &impl ConnectionTrait, workspace_id: Option<&str>) -> Result<u64> {
    let query = webhook_endpoint::Entity::find();
    let query = match workspace_id {
        Some(workspace_id) => query.filter(webhook_endpoint::Column::WorkspaceId.eq(workspace_id)),
        None => query.filter(webhook_endpoint::Column::WorkspaceId.is_null()),
    };
    Ok(sea_orm::PaginatorTrait::count(query, db).await?)
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

/// Trial wallets whose trial ends in `(now, until]` and whose
/// `credits.trial_ending` was not written yet: (workspace, trial end).
pub async fn trials_ending(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<(String, DateTime<Utc>)>> {
    let rows = db
        .query_all_raw(statement(
            db,
            &format!(
                "SELECT w.workspace_id, w.trial_ends_at FROM wallet w \
                 WHERE w.trial_ends_at > ? AND w.trial_ends_at <= ? AND w.plan_code = '{}' \
                 AND NOT EXISTS (SELECT 1 FROM outbox_once o WHERE o.once_key = '{}' || w.workspace_id)",
                domain::catalogue::PlanCode::ProTrial.as_str(),
                domain::outbox::TRIAL_ENDING_KEY_PREFIX,
            ),
            vec![now.into(), until.into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("", "workspace_id")?,
                row.try_get("", "trial_ends_at")?,
            ))
        })
        .collect()
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

/// Wallets with a SPEND row after ledger row `after_id`, and the largest
/// row id seen (the next call's `after_id`).
pub async fn wallets_spending_since(db: &impl ConnectionTrait, after_id: i64) -> Result<(Vec<String>, i64)> {
    let rows = db
        .query_all_raw(statement(
            db,
            &format!(
                "SELECT w.workspace_id, MAX(e.id) AS last_id FROM ledger_entry e JOIN wallet w ON w.id = e.wallet_id \
                 WHERE e.id > ? AND e.kind = '{}' GROUP BY w.workspace_id",
                domain::catalogue::LedgerKind::Spend.as_str()
            ),
            vec![after_id.into()],
        ))
        .await?;
    let mut last = after_id;
    let mut workspaces = Vec::with_capacity(rows.len());
    for row in &rows {
        workspaces.push(row.try_get::<String>("", "workspace_id")?);
        last = last.max(row.try_get::<i64>("", "last_id")?);
    }
    Ok((workspaces, last))
}

/// The largest ledger row id (0 for an empty ledger).
pub async fn last_ledger_id(db: &impl ConnectionTrait) -> Result<i64> {
    let row = db
        .query_one_raw(statement(
            db,
            "SELECT COALESCE(MAX(id), 0) AS last_id FROM ledger_entry",
            Vec::new(),
        ))
        .await?;
    Ok(row
        .map(|row| row.try_get::<i64>("", "last_id"))
        .transpose()?
        .unwrap_or(0))
}
