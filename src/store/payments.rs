//! Refunds from the payment provider: the top-up a payment reference
//! bought, and each refund's record (`docs/design/payments.md`).

use chrono::{DateTime, Utc};
use entity::payment_refund;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Set, Statement};

use super::Result;
use crate::domain::catalogue::LedgerKind;

/// The statement of [`top_ups_by_reference`] (public so that a test can
/// read its plan): the kind is written out, as the partial index of
/// migration 6 has it, for SQLite uses a partial index only for a
/// condition it can match before any parameter is bound.
pub fn top_ups_by_reference_sql(backend: DbBackend) -> String {
    let top_up = LedgerKind::TopUp.as_str();
    super::outbox::placeholders(
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

/// What a refund of `reference` already did, if one was recorded.
pub async fn refund_outcome(db: &impl ConnectionTrait, reference: &str) -> Result<Option<String>> {
    Ok(payment_refund::Entity::find_by_id(reference.to_owned())
        .one(db)
        .await?
        .map(|refund| refund.outcome))
}

/// A refund as recorded.
pub struct RefundRecord<'a> {
    /// The payment's reference (the top-up's key).
    pub reference: &'a str,
    /// The workspace the top-up was for.
    pub workspace_id: &'a str,
    /// The TOP_UP row.
    pub top_up_entry_id: i64,
    /// What became of it.
    pub outcome: &'a str,
    /// How much of the payment the provider refunded so far.
    pub amount_refunded_cents: i64,
}

/// Records a refund, or what a later one of the same payment did.
pub async fn record_refund(
    db: &impl ConnectionTrait,
    record: RefundRecord<'_>,
    now: DateTime<Utc>,
) -> Result<()> {
    payment_refund::Entity::insert(payment_refund::ActiveModel {
        payment_reference: Set(record.reference.to_owned()),
        workspace_id: Set(record.workspace_id.to_owned()),
        top_up_entry_id: Set(record.top_up_entry_id),
        outcome: Set(record.outcome.to_owned()),
        amount_refunded_cents: Set(record.amount_refunded_cents),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(payment_refund::Column::PaymentReference)
            .update_columns([
                payment_refund::Column::Outcome,
                payment_refund::Column::AmountRefundedCents,
                payment_refund::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec(db)
    .await?;
    Ok(())
}
