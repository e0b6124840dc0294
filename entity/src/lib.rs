//! SeaORM entities: one file per table, storage shape only.
//!
//! No rules live here and no GraphQL derives: the public types are in
//! `src/graphql/types.rs` of the main crate, so a column rename can never
//! change the API.

pub mod action_cost;
pub mod auto_top_up;
pub mod budget;
pub mod budget_counter;
pub mod credit_grant;
pub mod credit_hold;
pub mod ledger_entry;
pub mod ledger_entry_grant;
pub mod low_balance_alert;
pub mod outbox_event;
pub mod plan;
pub mod prelude;
pub mod stripe_payment;
pub mod stripe_price;
pub mod stripe_subscription;
pub mod top_up_pack;
pub mod wallet;
pub mod webhook_delivery;
pub mod webhook_endpoint;
pub mod workspace;
