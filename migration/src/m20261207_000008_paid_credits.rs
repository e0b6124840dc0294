//! Credits only when paid (`docs/design/payments.md`): every Stripe payment
//! once across the service, with its refunds and disputes whatever their
//! order; plans from Stripe subscriptions (the price map, each
//! subscription's latest state, the events handled, and on the wallet the
//! subscription it follows and how long it stays in good standing); and
//! once-keys of outbox events kept beyond the events' retention.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("stripe_payment")
                    .col(string_len("payment_reference", 200).primary_key())
                    // The workspace it was applied to (or first named).
                    .col(string_len_null("workspace_id", 64))
                    .col(string_len_null("pack_code", 32))
                    // PENDING (only a refund or dispute seen), APPLIED, or
                    // REVIEW (not applied; an operator was told why).
                    .col(string_len("status", 16))
                    .col(big_integer_null("amount_cents"))
                    .col(string_len_null("currency", 3))
                    .col(big_integer("amount_refunded_cents").default(0))
                    .col(boolean("refunded").default(false))
                    .col(string_len_null("dispute_status", 32))
                    .col(string_len_null("refund_outcome", 16))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        let connection = manager.get_connection();
        // Every top-up Stripe applied, and every refund recorded, carried
        // over; a payment intent applied in two workspaces (possible before
        // this migration) keeps its first.
        connection
            .execute_unprepared(
                "INSERT INTO stripe_payment (payment_reference, workspace_id, pack_code, status, \
                 amount_refunded_cents, refunded, refund_outcome, created_at, updated_at) \
                 SELECT e.idempotency_key, w.workspace_id, e.idempotency_fingerprint, 'APPLIED', \
                 COALESCE(r.amount_refunded_cents, 0), \
                 COALESCE(r.outcome IN ('REVERSED', 'UNRECOVERED'), false), r.outcome, e.created_at, e.created_at \
                 FROM ledger_entry e JOIN wallet w ON w.id = e.wallet_id \
                 LEFT JOIN payment_refund r ON r.payment_reference = e.idempotency_key \
                 WHERE e.kind = 'TOP_UP' AND (e.actor = 'stripe' OR r.payment_reference IS NOT NULL) \
                 ORDER BY e.id \
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        manager
            .drop_table(Table::drop().table("payment_refund").to_owned())
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("outbox_once")
                    .col(string_len("once_key", 200).primary_key())
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        connection
            .execute_unprepared(
                "INSERT INTO outbox_once (once_key, created_at) \
                 SELECT once_key, created_at FROM outbox_event WHERE once_key IS NOT NULL",
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("stripe_price")
                    .col(string_len("price_id", 255).primary_key())
                    .col(string_len("plan_code", 32))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("stripe_subscription")
                    .col(string_len("subscription_id", 255).primary_key())
                    .col(string_len_null("workspace_id", 64))
                    .col(string_len_null("customer_id", 255))
                    .col(string_len("status", 32))
                    .col(string_len_null("price_id", 255))
                    .col(timestamp_with_time_zone_null("current_period_start"))
                    .col(timestamp_with_time_zone_null("current_period_end"))
                    .col(timestamp_with_time_zone_null("billing_cycle_anchor"))
                    .col(boolean("cancel_at_period_end"))
                    // The latest event applied: its `created`, the rank of
                    // the state it showed, and its id.
                    .col(big_integer("event_created"))
                    .col(integer("event_rank"))
                    .col(string_len("event_id", 255))
                    .col(timestamp_with_time_zone_null("past_due_since"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("stripe_event")
                    .col(string_len("event_id", 255).primary_key())
                    .col(string_len("event_type", 64))
                    .col(timestamp_with_time_zone("received_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("wallet")
                    .add_column(string_len_null("subscription_id", 255))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("wallet")
                    .add_column(timestamp_with_time_zone_null("standing_until_at"))
                    .to_owned(),
            )
            .await?;
        // The sweep looks for wallets whose grace ran out.
        connection
            .execute_unprepared(
                "CREATE INDEX wallet_standing_until ON wallet (standing_until_at) \
                 WHERE standing_until_at IS NOT NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        connection
            .execute_unprepared("DROP INDEX wallet_standing_until")
            .await?;
        for column in ["standing_until_at", "subscription_id"] {
            manager
                .alter_table(Table::alter().table("wallet").drop_column(column).to_owned())
                .await?;
        }
        for table in [
            "stripe_event",
            "stripe_subscription",
            "stripe_price",
            "outbox_once",
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("payment_refund")
                    .col(string_len("payment_reference", 200).primary_key())
                    .col(string_len("workspace_id", 64))
                    .col(big_integer("top_up_entry_id"))
                    .col(string_len("outcome", 16))
                    .col(big_integer("amount_refunded_cents"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        connection
            .execute_unprepared(
                "INSERT INTO payment_refund (payment_reference, workspace_id, top_up_entry_id, outcome, \
                 amount_refunded_cents, created_at, updated_at) \
                 SELECT p.payment_reference, p.workspace_id, e.id, p.refund_outcome, p.amount_refunded_cents, \
                 p.created_at, p.updated_at FROM stripe_payment p \
                 JOIN wallet w ON w.workspace_id = p.workspace_id \
                 JOIN ledger_entry e ON e.wallet_id = w.id AND e.kind = 'TOP_UP' \
                 AND e.idempotency_key = p.payment_reference \
                 WHERE p.refund_outcome IS NOT NULL",
            )
            .await?;
        manager
            .drop_table(Table::drop().table("stripe_payment").to_owned())
            .await?;
        Ok(())
    }
}
