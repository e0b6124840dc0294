//! Payments from the provider, once across the service: each payment
//! intent's row (`stripe_payment`), locked while a payment, refund or
//! dispute of it is handled, and the top-up it bought
//! (`docs/design/payments.md`).

use chrono::{DateTime, Utc};
use entity::stripe_payment;
use sea_orm::sea_query::{LockType, OnConflict};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel, QuerySelect, Set, Statement,
};

use super::{Result, internal, is_sqlite};
use domain::catalogue::LedgerKind;

pub use stripe_payment::Model as Payment;

/// Only a refund or a dispute was seen; nothing applied yet.
pub const PENDING: &str = "PENDING";
/// The pack was applied to `workspace_id`.
pub const APPLIED: &str = "APPLIED";
/// Not applied: an operator was told why.
pub const REVIEW: &str = "REVIEW";

/// The statement of [`top_ups_by_reference`] (public so that a test can
/// read its plan): the kind is written out, as the partial index of
/// migration 6 has it, for SQLite uses a partial index only for a
/// condition it can match before any parameter is bound.
pub fn top_ups_by_reference_sql(backend: DbBackend) -> String {
    let top_up = LedgerKind::TopUp.as_str();
    super::placeholders(
        backend,
        &format!(
            "SELECT e.id, w.workspace_id FROM ledger_entry e JOIN wallet w ON w.id = e.wallet_id \
             WHERE e.kind = '{top_up}' AND e.idempotency_key = ? LIMIT 2"
        ),
    )
}

/// The TOP_UP rows (id, workspace) that `reference` bought; more than one
/// means the reference was reused across workspaces by hand.
pub async fn top_ups_by_reference(db: &impl ConnectionTrait, reference: &str) -> Result<Vec<(i64, String)>> {
    let backend = db.get_database_backend();
    db.query_all_raw(Statement::from_sql_and_values(
        backend,
        top_ups_by_reference_sql(backend),
        [reference.into()],
    ))
    .await?
    .iter()
    .map(|row| Ok((row.try_get("", "id")?, row.try_get("", "workspace_id")?)))
    .collect()
}

/// The payment's row as it stands, without a lock.
pub async fn payment(db: &impl ConnectionTrait, reference: &str) -> Result<Option<Payment>> {
    Ok(stripe_payment::Entity::find_by_id(reference.to_owned())
        .one(db)
        .await?)
}

/// The payment's row, created `PENDING` when new, locked until the
/// transaction ends (on SQLite the transaction holds the write lock).
pub async fn lock_payment(
    txn: &impl ConnectionTrait,
    reference: &str,
    now: DateTime<Utc>,
) -> Result<Payment> {
    stripe_payment::Entity::insert(stripe_payment::ActiveModel {
        payment_reference: Set(reference.to_owned()),
        workspace_id: Set(None),
        pack_code: Set(None),
        status: Set(PENDING.to_owned()),
        amount_cents: Set(None),
        currency: Set(None),
        amount_refunded_cents: Set(0),
        refunded: Set(false),
        dispute_status: Set(None),
        refund_outcome: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(stripe_payment::Column::PaymentReference)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    let mut query = stripe_payment::Entity::find_by_id(reference.to_owned());
    if !is_sqlite(txn) {
        query = query.lock(LockType::Update);
    }
    query
        .one(txn)
        .await?
        .ok_or_else(|| internal(format!("payment {reference} vanished under its lock")))
}

/// Writes the locked payment's row as it now is.
pub async fn save_payment(txn: &impl ConnectionTrait, payment: Payment, now: DateTime<Utc>) -> Result<()> {
    let mut model = payment.into_active_model().reset_all();
    model.updated_at = Set(now);
    model.update(txn).await?;
    Ok(())
}
