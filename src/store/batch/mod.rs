//! Set-based reads and the statements of the applier (`store::apply`): a
//! batch of wallets read under lock and written in one transaction with a
//! handful of statements, instead of a dozen round trips per wallet. The
//! rows themselves are decided in `domain::wallet`.

use domain::hold::HoldState;
use entity::{credit_grant, credit_hold};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;

use super::{Result, internal};

mod postgres;
mod read;
mod sqlite;
mod sweep;

pub(super) use postgres::*;
pub use read::*;
pub use sqlite::SQLITE_WRITES;
pub(super) use sqlite::SQLITE_WRITES_SQL;
pub use sweep::*;

/// Timestamps in a batch's JSON as the SQLite driver binds them
/// (RFC 3339, `+00:00`), so a value written from JSON compares and sorts
/// in SQL as one bound directly; PostgreSQL parses either form.
pub(crate) mod stored_time {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::Serializer;

    fn text(time: &DateTime<Utc>) -> String {
        time.to_rfc3339_opts(SecondsFormat::AutoSi, false)
    }

    pub(crate) fn required<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&text(time))
    }

    #[allow(clippy::ref_option)]
    pub(crate) fn optional<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => serializer.serialize_str(&text(time)),
            None => serializer.serialize_none(),
        }
    }
}

/// The live grants of many wallets.
pub async fn live_grants_of(
    db: &impl ConnectionTrait,
    wallet_ids: Vec<i64>,
) -> Result<Vec<credit_grant::Model>> {
    credit_grant::Entity::find()
        .filter(credit_grant::Column::WalletId.is_in(wallet_ids))
        .filter(credit_grant::Column::ExpiredAt.is_null())
        .order_by_asc(credit_grant::Column::Id)
        .all(db)
        .await
        .map_err(Into::into)
}

/// The live holds of those of `wallets` (id, held credits) that hold any.
pub async fn live_holds_of(
    db: &impl ConnectionTrait,
    wallets: impl IntoIterator<Item = (i64, i64)>,
) -> Result<Vec<credit_hold::Model>> {
    let ids: Vec<i64> = wallets
        .into_iter()
        .filter(|(_, held)| *held > 0)
        .map(|(id, _)| id)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    credit_hold::Entity::find()
        .filter(credit_hold::Column::WalletId.is_in(ids))
        .filter(credit_hold::Column::State.eq(HoldState::Held.as_str()))
        .order_by_asc(credit_hold::Column::Id)
        .all(db)
        .await
        .map_err(Into::into)
}

/// A ledger row to insert.
#[derive(Debug, Clone, Serialize)]
pub struct NewRow {
    /// The wallet.
    pub wallet_id: i64,
    /// Its ledger sequence.
    pub sequence: i64,
    /// Its kind.
    pub kind: &'static str,
    /// Signed credits.
    pub amount_credits: i64,
    /// Balance after it, and its split.
    pub balance_after_credits: i64,
    /// Allocation bucket after it.
    pub allocation_after_credits: i64,
    /// Purchased bucket after it.
    pub purchased_after_credits: i64,
    /// Bonus bucket after it.
    pub bonus_after_credits: i64,
    /// Its reference.
    pub reference: Option<String>,
    /// The action paid, for spends.
    pub action: Option<&'static str>,
    /// Who caused it: the token's subject, or `system`.
    pub actor: String,
    /// The key that bound it, for spends.
    pub idempotency_key: Option<String>,
    /// The identity of the request that bound the key.
    pub idempotency_fingerprint: Option<String>,
    /// The row it reverses.
    pub reverses_entry_id: Option<i64>,
    /// The agent a spend was for.
    pub agent_id: Option<String>,
    /// Credits held after it.
    pub held_after_credits: i64,
    /// The hold a capture or release concerns (a HOLD row is the hold).
    pub hold_id: Option<i64>,
}

impl NewRow {
    /// A row of wallet `wallet_id`, as `domain::wallet` decided it.
    pub fn of(wallet_id: i64, row: &domain::wallet::Row) -> Self {
        let (idempotency_key, idempotency_fingerprint) = row
            .entry
            .key
            .as_ref()
            .map(|binding| (binding.key.clone(), binding.fingerprint.clone()))
            .unzip();
        Self {
            wallet_id,
            sequence: row.sequence,
            kind: row.entry.kind.as_str(),
            amount_credits: row.amount,
            balance_after_credits: row.balance.total,
            allocation_after_credits: row.balance.split.allocation,
            purchased_after_credits: row.balance.split.purchased,
            bonus_after_credits: row.balance.split.bonus,
            reference: row.entry.reference.clone(),
            action: row.entry.action.map(|action| action.as_str()),
            actor: row.entry.actor.clone(),
            idempotency_key,
            idempotency_fingerprint,
            reverses_entry_id: row.entry.reverses,
            agent_id: row.entry.agent_id.clone(),
            held_after_credits: row.balance.held,
            hold_id: row
                .entry
                .hold
                .filter(|_| row.entry.kind != domain::catalogue::LedgerKind::Hold),
        }
    }
}

/// The SET list of a head write from `v`.
pub(super) const HEAD_SET: &str = "balance_credits = v.balance_credits, last_sequence = v.last_sequence, \
    plan_code = v.plan_code, pending_plan_code = v.pending_plan_code, billing_anchor_at = v.billing_anchor_at, \
    period_start_at = v.period_start_at, period_end_at = v.period_end_at, \
    enterprise_allocation_credits = v.enterprise_allocation_credits, \
    low_balance_threshold_credits = v.low_balance_threshold_credits, \
    low_balance_alerted_at = v.low_balance_alerted_at, time_zone = v.time_zone, \
    budget_version = v.budget_version, subscription_id = v.subscription_id, \
    standing_until_at = v.standing_until_at, \
    auto_top_up_threshold_credits = v.auto_top_up_threshold_credits, held_credits = v.held_credits";

/// Every guarded head write must have matched its wallet.
pub(crate) fn all_saved(expected: usize, saved: u64) -> Result<()> {
    if saved == expected as u64 {
        return Ok(());
    }
    Err(internal(format!(
        "{} of {expected} wallets changed under their lock",
        expected as u64 - saved
    )))
}

/// A grant move of a row not yet written, named by (wallet, sequence).
#[derive(Debug, Clone, Serialize)]
pub struct RowMove {
    /// The row's wallet.
    pub wallet_id: i64,
    /// The row's sequence.
    pub sequence: i64,
    /// The grant.
    pub credit_grant_id: i64,
    /// Signed credits.
    pub amount_credits: i64,
}
