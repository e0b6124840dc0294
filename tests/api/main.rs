#![recursion_limit = "256"]
//! One integration binary for the whole suite (faster to link). Every
//! scenario runs on SQLite and on PostgreSQL: `cargo test sqlite`,
//! `cargo test postgres` select one backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod auth;
mod auto_top_up;
mod billing;
mod budgets;
mod catalogue;
mod cli;
mod concurrency;
mod crash;
mod faults;
mod forecast;
mod group_commit;
mod holds;
mod hostile;
mod input;
mod kit;
mod limits;
mod metrics;
mod model;
mod money;
mod neighbours;
mod payments;
mod periods;
mod protocol;
mod schema;
mod spend;
mod stripe_events;
mod subscriptions;
mod transactions;
mod walkthrough;
mod webhooks;
