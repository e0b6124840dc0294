//! SQLite's side of the batch: its writes as one string of statements.

use std::sync::LazyLock;

use super::HEAD_SET;

/// `value->>'name' AS name` for each name: the fields of a `jsonb_each`
/// element (a JSONB object, parsed once however many fields are read).
fn fields(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("value->>'{name}' AS {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The ledger columns a row is written with, beside `created_at`.
const ROW_COLUMNS: [&str; 17] = [
    "wallet_id",
    "sequence",
    "kind",
    "amount_credits",
    "balance_after_credits",
    "reference",
    "action",
    "actor",
    "idempotency_key",
    "idempotency_fingerprint",
    "reverses_entry_id",
    "allocation_after_credits",
    "purchased_after_credits",
    "bonus_after_credits",
    "agent_id",
    "held_after_credits",
    "hold_id",
];

/// The fields of a head write ([`super::WalletHead`]).
const HEAD_FIELDS: [&str; 18] = [
    "id",
    "sequence_read",
    "balance_credits",
    "last_sequence",
    "plan_code",
    "pending_plan_code",
    "billing_anchor_at",
    "period_start_at",
    "period_end_at",
    "enterprise_allocation_credits",
    "low_balance_threshold_credits",
    "low_balance_alerted_at",
    "time_zone",
    "budget_version",
    "subscription_id",
    "standing_until_at",
    "auto_top_up_threshold_credits",
    "held_credits",
];

/// SQLite: a batch's writes, in order: its ledger rows, their grant moves
/// (each finding its row by wallet and sequence), the grant deltas (never
/// below zero), the heads (each guarded on the sequence read) and the
/// budget counters. Each is fed by one JSON array, so the text is the same
/// whatever the batch (prepared once), and they run as one string: one trip
/// to sqlx's SQLite thread instead of one each (`docs/benchmarks.md`).
///
/// Parameters are plain `?`, bound in the order they appear across the
/// statements (sqlx binds a numbered one only up to the first gap in each
/// statement's numbering): the time and the rows, the moves, the deltas,
/// the time and the heads, the counters (each JSON text).
pub static SQLITE_WRITES: LazyLock<[String; 5]> = LazyLock::new(|| {
    let columns = ROW_COLUMNS.join(", ");
    let row_values = ROW_COLUMNS
        .iter()
        .map(|name| format!("value->>'{name}'"))
        .collect::<Vec<_>>()
        .join(", ");
    [
        format!(
            "INSERT INTO ledger_entry ({columns}, created_at) \
             SELECT {row_values}, ? FROM jsonb_each(?) ORDER BY key"
        ),
        format!(
            "INSERT INTO ledger_entry_grant (ledger_entry_id, credit_grant_id, amount_credits) \
             SELECT e.id, m.value->>'credit_grant_id', m.value->>'amount_credits' FROM jsonb_each(?) AS m \
             CROSS JOIN {ROW_OF_ELEMENT} ORDER BY m.key"
        ),
        format!(
            "UPDATE credit_grant SET remaining_credits = credit_grant.remaining_credits + v.delta, \
             granted_credits = credit_grant.granted_credits + v.granted \
             FROM (SELECT {} FROM jsonb_each(?)) AS v \
             WHERE credit_grant.id = v.id AND credit_grant.expired_at IS NULL \
             AND credit_grant.remaining_credits + v.delta >= 0",
            fields(&["id", "delta", "granted"])
        ),
        format!(
            "UPDATE wallet SET {HEAD_SET}, updated_at = ? \
             FROM (SELECT {} FROM jsonb_each(?)) AS v \
             WHERE wallet.id = v.id AND wallet.last_sequence = v.sequence_read",
            fields(&HEAD_FIELDS)
        ),
        format!(
            "INSERT INTO budget_counter (budget_id, subject, window_start, used_credits, exhausted_at) \
             SELECT {} FROM jsonb_each(?) WHERE true \
             ON CONFLICT (budget_id, subject) DO UPDATE SET window_start = excluded.window_start, \
             used_credits = excluded.used_credits, exhausted_at = excluded.exhausted_at",
            fields(&[
                "budget_id",
                "subject",
                "window_start",
                "used_credits",
                "exhausted_at"
            ])
        ),
    ]
});

/// The ledger row of JSON element `m` (a row's wallet and sequence), on the
/// rows' unique index.
const ROW_OF_ELEMENT: &str =
    "ledger_entry e ON e.wallet_id = m.value->>'wallet_id' AND e.sequence = m.value->>'sequence'";

/// [`SQLITE_WRITES`] as the one string that runs them, between two reads
/// of the connection's count of rows changed, the second with the new
/// rows' ids (the rows again as its parameter): two rows come back to the
/// caller, which compares the count with what it asked.
pub(crate) static SQLITE_WRITES_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT total_changes() AS changes, NULL AS ids;\n{};\n\
         SELECT total_changes() AS changes, \
         (SELECT json_group_array(json_array(e.id, e.wallet_id, e.sequence)) FROM jsonb_each(?) AS m \
         CROSS JOIN {ROW_OF_ELEMENT}) AS ids",
        SQLITE_WRITES.join(";\n")
    )
});
