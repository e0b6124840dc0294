//! Protodesk credits: the service that meters and bills AI credits.
//!
//! Module map (dependencies point down this list, never up; the rules
//! themselves are the `domain` crate, which depends on none of these):
//!
//! - [`startup`]: wiring: configuration in, the server and its workers out.
//! - [`http`]: the axum router, token extraction, WebSocket `connection_init`,
//!   the Stripe endpoint, rate limits.
//! - [`graphql`]: the public contract: schema roots, types, cursors.
//! - [`scheduler`]: the cron jobs that call `service`.
//! - [`service`]: one function per use case, one transaction each.
//! - [`webhooks`]: the delivery worker: signed POSTs from the outbox.
//! - [`metrics`]: Prometheus series, and the live counts `events` feeds.
//! - [`events`]: committed balance events, broadcast after commit.
//! - [`auth`]: JWT verification into a `Caller`; the role policy.
//! - [`error`]: the boundary error type.
//! - [`store`]: every SeaORM query; backend differences; constraint mapping.
//! - [`config`], [`clock`]: configuration; the one source of the time.

pub mod auth;
pub mod clock;
pub mod config;
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
