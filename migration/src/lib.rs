//! The single, ordered history of the database schema.
//!
//! Never edit a migration that has been applied; add a new one.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_ledger;
mod m20261125_000002_seed_catalogue;
mod m20261125_000003_add_low_balance_and_splits;
mod m20261130_000004_keys_on_ledger_rows;
mod m20261203_000005_budgets;
mod m20261204_000006_payment_refunds;
mod m20261204_000007_outbox_and_auto_top_up;
mod m20261207_000008_paid_credits;
mod m20261207_000009_webhook_queues;
mod m20261207_000010_holds;
mod m20261207_000011_lean_hot_path;

/// Every migration, in the order it runs.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_ledger::Migration),
            Box::new(m20261125_000002_seed_catalogue::Migration),
            Box::new(m20261125_000003_add_low_balance_and_splits::Migration),
            Box::new(m20261130_000004_keys_on_ledger_rows::Migration),
            Box::new(m20261203_000005_budgets::Migration),
            Box::new(m20261204_000006_payment_refunds::Migration),
            Box::new(m20261204_000007_outbox_and_auto_top_up::Migration),
            Box::new(m20261207_000008_paid_credits::Migration),
            Box::new(m20261207_000009_webhook_queues::Migration),
            Box::new(m20261207_000010_holds::Migration),
            Box::new(m20261207_000011_lean_hot_path::Migration),
        ]
    }
}
