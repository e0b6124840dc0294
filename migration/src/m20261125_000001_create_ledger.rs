//! The ledger's tables. Every amount is an integer number of credits or cents.
//!
//! Constraints here are the last line of defence, behind the service's locks:
//! - `wallet.balance_credits >= 0`: no overdraft can ever commit;
//! - `credit_grant` remaining within `0..=granted`;
//! - `ledger_entry (wallet_id, sequence)` unique: one row per ledger position;
//! - `ledger_entry.reverses_entry_id` unique: a transaction is reversed once;
//! - `idempotency_record (wallet_id, scope, key)` unique: a key binds once;
//! - `credit_grant (wallet_id, source, period_start_at)` unique: one
//!   allocation per wallet and period (NULL periods never collide).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("plan")
                    .col(string_len("code", 32).primary_key())
                    .col(string_len("display_name", 64))
                    .col(big_integer_null("price_cents"))
                    .col(string_len("currency", 3))
                    .col(big_integer_null("monthly_credits").check(Expr::col("monthly_credits").gte(0)))
                    .col(boolean("is_trial"))
                    .col(integer_null("trial_days"))
                    .col(integer("sort_order"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("top_up_pack")
                    .col(string_len("code", 32).primary_key())
                    .col(big_integer("price_cents").check(Expr::col("price_cents").gt(0)))
                    .col(string_len("currency", 3))
                    .col(big_integer("credits").check(Expr::col("credits").gt(0)))
                    .col(integer("sort_order"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("action_cost")
                    .col(string_len("action", 32).primary_key())
                    .col(big_integer("credits").check(Expr::col("credits").gt(0)))
                    .col(string_len("description", 200))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("workspace")
                    .col(string_len("id", 64).primary_key())
                    .col(string_len("name", 200))
                    .col(string_len("created_by", 200))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("wallet")
                    .col(big_pk_auto("id"))
                    .col(string_len_uniq("workspace_id", 64))
                    .col(string_len("plan_code", 32))
                    .col(big_integer("balance_credits").check(Expr::col("balance_credits").gte(0)))
                    .col(big_integer("last_sequence").check(Expr::col("last_sequence").gte(0)))
                    .col(timestamp_with_time_zone_null("trial_ends_at"))
                    .col(timestamp_with_time_zone_null("billing_anchor_at"))
                    .col(timestamp_with_time_zone_null("period_start_at"))
                    .col(timestamp_with_time_zone_null("period_end_at"))
                    .col(string_len_null("pending_plan_code", 32))
                    .col(big_integer_null("enterprise_allocation_credits"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("wallet_workspace_fk")
                            .from("wallet", "workspace_id")
                            .to("workspace", "id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("wallet_plan_fk")
                            .from("wallet", "plan_code")
                            .to("plan", "code"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("credit_grant")
                    .col(big_pk_auto("id"))
                    .col(big_integer("wallet_id"))
                    .col(string_len("source", 16))
                    .col(big_integer("granted_credits").check(Expr::col("granted_credits").gt(0)))
                    .col(
                        big_integer("remaining_credits")
                            .check(Expr::col("remaining_credits").gte(0))
                            .check(Expr::col("remaining_credits").lte(Expr::col("granted_credits"))),
                    )
                    .col(timestamp_with_time_zone_null("expires_at"))
                    .col(timestamp_with_time_zone_null("expired_at"))
                    .col(timestamp_with_time_zone_null("period_start_at"))
                    .col(string_len_null("pack_code", 32))
                    .col(big_integer_null("price_cents"))
                    .col(string_len_null("currency", 3))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("credit_grant_wallet_fk")
                            .from("credit_grant", "wallet_id")
                            .to("wallet", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("credit_grant_wallet_period_key")
                    .table("credit_grant")
                    .col("wallet_id")
                    .col("source")
                    .col("period_start_at")
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The spend path reads the wallet's live grants in burn-down order.
        manager
            .create_index(
                Index::create()
                    .name("credit_grant_live_idx")
                    .table("credit_grant")
                    .col("wallet_id")
                    .col("expired_at")
                    .col("expires_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("ledger_entry")
                    .col(big_pk_auto("id"))
                    .col(big_integer("wallet_id"))
                    .col(big_integer("sequence").check(Expr::col("sequence").gt(0)))
                    .col(string_len("kind", 16))
                    .col(big_integer("amount_credits"))
                    .col(
                        big_integer("balance_after_credits").check(Expr::col("balance_after_credits").gte(0)),
                    )
                    .col(string_len_null("action", 32))
                    .col(string_len_null("reference", 200))
                    .col(string_len("actor", 200))
                    .col(string_len_null("idempotency_key", 200))
                    .col(big_integer_null("reverses_entry_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("ledger_entry_wallet_fk")
                            .from("ledger_entry", "wallet_id")
                            .to("wallet", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ledger_entry_wallet_sequence_key")
                    .table("ledger_entry")
                    .col("wallet_id")
                    .col("sequence")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ledger_entry_reverses_key")
                    .table("ledger_entry")
                    .col("reverses_entry_id")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("ledger_entry_grant")
                    .col(big_pk_auto("id"))
                    .col(big_integer("ledger_entry_id"))
                    .col(big_integer("credit_grant_id"))
                    .col(big_integer("amount_credits"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("ledger_entry_grant_entry_fk")
                            .from("ledger_entry_grant", "ledger_entry_id")
                            .to("ledger_entry", "id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("ledger_entry_grant_grant_fk")
                            .from("ledger_entry_grant", "credit_grant_id")
                            .to("credit_grant", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ledger_entry_grant_entry_idx")
                    .table("ledger_entry_grant")
                    .col("ledger_entry_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("idempotency_record")
                    .col(big_pk_auto("id"))
                    .col(big_integer("wallet_id"))
                    .col(string_len("scope", 16))
                    .col(string_len("key", 200))
                    .col(string_len("fingerprint", 300))
                    .col(big_integer("ledger_entry_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("idempotency_record_entry_fk")
                            .from("idempotency_record", "ledger_entry_id")
                            .to("ledger_entry", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idempotency_record_key")
                    .table("idempotency_record")
                    .col("wallet_id")
                    .col("scope")
                    .col("key")
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "idempotency_record",
            "ledger_entry_grant",
            "ledger_entry",
            "credit_grant",
            "wallet",
            "workspace",
            "action_cost",
            "top_up_pack",
            "plan",
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
