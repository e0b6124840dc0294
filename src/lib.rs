//! Protodesk credits: the service that meters and bills AI credits.
//!
//! Module map (dependencies point down this list, never up):
//!
//! - [`http`]: the axum router, token extraction, WebSocket `connection_init`.
//! - [`graphql`]: the public contract: schema roots, types, cursors.
//! - [`scheduler`]: the cron job that calls `service::roll_over_periods`.
//! - [`service`]: one function per use case, one transaction each.
//! - [`auth`]: JWT verification into a `Caller`; the role policy.
//! - [`events`]: committed balance events, broadcast after commit.
//! - [`store`]: every SeaORM query; backend differences; constraint mapping.
//! - [`domain`]: the ledger rules, pure: burn-down, spend, periods, invariant.
//! - [`config`], [`startup`], [`error`]: configuration, wiring, the one
//!   boundary error type.

pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod scheduler;
pub mod service;
pub mod startup;
pub mod store;
pub mod webhooks;
