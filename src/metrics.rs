//! Prometheus metrics, served at `/metrics` in the text exposition format.
//!
//! Each [`Metrics`] owns its registry (no process-wide state), so several
//! apps in one process (the tests) count apart. The service records what
//! it commits; the GraphQL layer records error codes and live subscribers;
//! the database pool is read at scrape time.

use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::events::{BalanceEvent, EventKind};

/// Spend latency buckets, in seconds: 0.5 ms to 2.5 s.
const SPEND_SECONDS_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Group-commit batch size buckets, in spends.
const BATCH_SPENDS_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Renewal batch size buckets, in wallets.
const BATCH_WALLETS_BUCKETS: [f64; 8] = [1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

/// The service's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    spends: IntCounterVec,
    spend_seconds: Histogram,
    ledger_rows: IntCounterVec,
    renewals: IntCounter,
    expiries: IntCounter,
    sweep_batch_wallets: Histogram,
    spend_batch_size: Histogram,
    spend_batches_failed: IntCounter,
    subscribers: IntGauge,
    errors: IntCounterVec,
    pool_connections: IntGaugeVec,
    webhook_attempts: IntCounterVec,
    webhook_pending: IntGauge,
    outbox_lag: prometheus::Gauge,
    /// Spends being answered now: background work on SQLite (webhook
    /// turns) waits while any is, so a spend never queues behind it.
    spends_in_flight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Counts a spend in flight until dropped.
pub struct SpendInFlight(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for SpendInFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Metrics")
    }
}

fn registered<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    // Registration fails only for a name registered twice in this registry,
    // which the constructor below never does.
    registry
        .register(Box::new(metric.clone()))
        .unwrap_or_else(|error| unreachable!("metric registered twice: {error}"));
    metric
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|error| unreachable!("invalid metric {name}: {error}"))
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).unwrap_or_else(|error| unreachable!("invalid metric {name}: {error}"))
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .unwrap_or_else(|error| unreachable!("invalid metric {name}: {error}"))
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let metrics = Self {
            spends: registered(
                &registry,
                counter_vec(
                    "credits_spends_total",
                    "Spends answered, by action and outcome (CHARGED, DUPLICATE, INSUFFICIENT_CREDITS, or an error code).",
                    &["action", "outcome"],
                ),
            ),
            spend_seconds: registered(
                &registry,
                histogram(
                    "credits_spend_duration_seconds",
                    "Time to answer a spend, from the service call to its commit.",
                    &SPEND_SECONDS_BUCKETS,
                ),
            ),
            ledger_rows: registered(
                &registry,
                counter_vec(
                    "credits_ledger_rows_total",
                    "Ledger rows committed by this instance, by kind (GRANT counts renewals, EXPIRE expiries).",
                    &["kind"],
                ),
            ),
            renewals: registered(
                &registry,
                counter(
                    "credits_renewals_total",
                    "Billing periods renewed (by the sweep or by a writer settling first).",
                ),
            ),
            expiries: registered(
                &registry,
                counter(
                    "credits_grants_expired_total",
                    "Grants closed at their expiry (an EXPIRE row is written when they still held credits).",
                ),
            ),
            sweep_batch_wallets: registered(
                &registry,
                histogram(
                    "credits_renewal_batch_wallets",
                    "Wallets settled per renewal sweep transaction.",
                    &BATCH_WALLETS_BUCKETS,
                ),
            ),
            spend_batch_size: registered(
                &registry,
                histogram(
                    "credits_spend_batch_size",
                    "Spends applied per group-commit transaction.",
                    &BATCH_SPENDS_BUCKETS,
                ),
            ),
            spend_batches_failed: registered(
                &registry,
                counter(
                    "credits_spend_batches_failed_total",
                    "Group-commit transactions that failed, whose spends were then applied one by one.",
                ),
            ),
            subscribers: registered(
                &registry,
                IntGauge::new(
                    "credits_live_subscribers",
                    "balanceChanged subscriptions open on this instance.",
                )
                .unwrap_or_else(|error| unreachable!("invalid metric: {error}")),
            ),
            errors: registered(
                &registry,
                counter_vec(
                    "credits_graphql_errors_total",
                    "GraphQL errors answered, by extensions.code.",
                    &["code"],
                ),
            ),
            pool_connections: registered(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "credits_db_pool_connections",
                        "Database pool connections, by state (idle, in_use, max).",
                    ),
                    &["state"],
                )
                .unwrap_or_else(|error| unreachable!("invalid metric: {error}")),
            ),
            webhook_attempts: registered(
                &registry,
                counter_vec(
                    "credits_webhook_attempts_total",
                    "Webhook delivery attempts by this instance, by result (delivered, retry, failed: the last attempt failed).",
                    &["result"],
                ),
            ),
            webhook_pending: registered(
                &registry,
                IntGauge::new(
                    "credits_webhook_deliveries_pending",
                    "Webhook deliveries not yet delivered or failed, read by this instance's worker.",
                )
                .unwrap_or_else(|error| unreachable!("invalid metric: {error}")),
            ),
            outbox_lag: registered(
                &registry,
                prometheus::Gauge::new(
                    "credits_outbox_lag_seconds",
                    "How long the oldest due webhook delivery has waited, read by this instance's worker.",
                )
                .unwrap_or_else(|error| unreachable!("invalid metric: {error}")),
            ),
            registry,
            spends_in_flight: std::sync::Arc::default(),
        };
        // Every result a delivery can have is exported from the start, at
        // 0: a dashboard (or a test) can tell "none yet" from "renamed".
        for result in ["delivered", "retry", "failed"] {
            metrics.webhook_attempts.with_label_values(&[result]);
        }
        metrics
    }
}

impl Metrics {
    /// Marks a spend in flight until the guard drops.
    pub fn spend_in_flight(&self) -> SpendInFlight {
        self.spends_in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        SpendInFlight(self.spends_in_flight.clone())
    }

    /// Whether any spend is being answered.
    pub fn spends_waiting(&self) -> bool {
        self.spends_in_flight.load(std::sync::atomic::Ordering::Relaxed) > 0
    }
}

/// Decrements the live subscriber gauge when the subscription ends.
#[derive(Debug)]
pub struct SubscriberGuard(IntGauge);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Records one answered spend.
    pub fn spend_answered(&self, action: &str, outcome: &str, elapsed: Duration) {
        self.spends.with_label_values(&[action, outcome]).inc();
        self.spend_seconds.observe(elapsed.as_secs_f64());
    }

    /// Records committed ledger rows by kind (events from other instances
    /// are theirs to count).
    pub fn rows_committed(&self, events: &[BalanceEvent]) {
        for event in events {
            if let EventKind::Ledger(kind) = event.kind {
                self.ledger_rows.with_label_values(&[kind.as_str()]).inc();
            }
        }
    }

    /// Records committed settlements: periods renewed, grants expired.
    pub fn settled(&self, renewals: u64, expiries: u64) {
        self.renewals.inc_by(renewals);
        self.expiries.inc_by(expiries);
    }

    /// Records the size of one renewal sweep batch.
    pub fn sweep_batch(&self, wallets: usize) {
        self.sweep_batch_wallets.observe(wallets as f64);
    }

    /// Records the size of one group-commit batch of spends.
    pub fn spend_batch(&self, spends: usize) {
        self.spend_batch_size.observe(spends as f64);
    }

    /// Counts a group-commit transaction that failed (its spends are then
    /// applied one by one).
    pub fn spend_batch_failed(&self) {
        self.spend_batches_failed.inc();
    }

    /// Counts a subscription as live until the guard is dropped.
    pub fn subscriber(&self) -> SubscriberGuard {
        self.subscribers.inc();
        SubscriberGuard(self.subscribers.clone())
    }

    /// Counts one webhook delivery attempt by its result.
    pub fn webhook_attempt(&self, result: &str) {
        self.webhook_attempts.with_label_values(&[result]).inc();
    }

    /// Records the delivery backlog: pending deliveries and the outbox lag.
    pub fn webhook_backlog(&self, pending: i64, lag_seconds: f64) {
        self.webhook_pending.set(pending);
        self.outbox_lag.set(lag_seconds);
    }

    /// Records one GraphQL error by its code.
    pub fn error(&self, code: &str) {
        self.errors.with_label_values(&[code]).inc();
    }

    /// Records the pool's configured size.
    pub fn pool_max(&self, connections: u32) {
        self.pool_connections
            .with_label_values(&["max"])
            .set(i64::from(connections));
    }

    /// The text exposition of every metric, the pool read now.
    pub fn render(&self, pool_size: u32, pool_idle: usize) -> String {
        let idle = i64::try_from(pool_idle).unwrap_or(i64::MAX);
        self.pool_connections.with_label_values(&["idle"]).set(idle);
        self.pool_connections
            .with_label_values(&["in_use"])
            .set(i64::from(pool_size) - idle);
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|error| format!("# metrics could not be encoded: {error}\n"))
    }
}
