//! Webhook endpoints (`docs/design/webhooks.md`): stored, listed, their
//! secrets rotated, removed with their deliveries; changes to one
//! workspace's endpoints serialized, so its caps hold across instances.

use chrono::{DateTime, Utc};
use entity::{webhook_delivery, webhook_endpoint};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, Set,
};

use super::{Result, internal, statement};
use domain::outbox::EndpointView;

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
