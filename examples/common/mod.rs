//! What the benchmarks share (not an example itself: cargo only builds
//! `examples/*.rs`).

use sea_orm::{ConnectionTrait, DbBackend};

/// After rows were inserted with explicit ids: moves PostgreSQL's id
/// sequences past them, so the service's own inserts do not collide.
pub async fn align_id_sequences(db: &impl ConnectionTrait) -> anyhow::Result<()> {
    if db.get_database_backend() == DbBackend::Postgres {
        for table in ["wallet", "credit_grant", "ledger_entry", "ledger_entry_grant"] {
            db.execute_unprepared(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
            ))
            .await?;
        }
    }
    Ok(())
}
