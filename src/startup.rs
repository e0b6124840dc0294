//! Building the application from a [`Config`] value, and running it until
//! a shutdown signal. Tests build it the same way, with port 0, a fresh
//! database and a manual clock.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::auth::TokenVerifier;
use crate::clock::Clock;
use crate::config::Config;
use crate::events::{EventBus, notify_channel, relay_notifications};
use crate::graphql::{Live, TrustedDocuments, build_schema};
use crate::http::{AppState, WsShared, router};
use crate::scheduler::Scheduler;
use crate::service::Ledger;
use crate::store;

/// A built application: bound, migrated, not yet serving.
pub struct App {
    listener: TcpListener,
    db: DatabaseConnection,
    state: AppState,
    renewal_cron: Option<String>,
    http_idle_timeout: std::time::Duration,
    /// PostgreSQL only: (url, channel, bus) of the cross-instance relay.
    relay: Option<(String, String, EventBus)>,
}

impl App {
    /// Connects and migrates the database, builds the schema, binds the port.
    pub async fn build(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let verifier = Arc::new(TokenVerifier::from_config(&config.jwt)?);
        let db = store::connect_and_migrate(&config.database).await?;
        let events = EventBus::new(config.event_bus_capacity);
        let channel = notify_channel(config.database.schema.as_deref());
        let relay =
            (!store::is_sqlite(&db)).then(|| (config.database.url.clone(), channel.clone(), events.clone()));
        store::subscriptions::map_prices(&db, &config.stripe_price_plans).await?;
        let mut ledger = Ledger::with_notify_channel(db.clone(), clock, events, channel)
            .with_webhooks(config.webhooks)
            .with_subscription_grace(config.subscription_grace);
        if let Some(settings) = config.group_commit {
            ledger = ledger.with_group_commit(settings, &config.database).await?;
        }
        ledger.metrics().pool_max(config.database.max_connections);
        let schema = build_schema(Some(ledger.clone()), config.introspection);
        let trusted = trusted_documents(&config.trusted_documents)?;
        let listener = TcpListener::bind(config.bind_addr)
            .await
            .with_context(|| format!("binding BIND_ADDR {}", config.bind_addr))?;
        Ok(Self {
            renewal_cron: config.renewal_cron.clone(),
            http_idle_timeout: config.http_idle_timeout,
            relay,
            listener,
            db,
            state: AppState {
                ws: WsShared {
                    live: Live::new(schema.clone(), Some(ledger.metrics().clone())),
                    verifier: verifier.clone(),
                    connections: Arc::default(),
                    keepalive: config.ws_keepalive,
                    trusted: trusted.clone(),
                },
                trusted,
                schema,
                verifier,
                ledger,
                cors_allowed_origins: config.cors_allowed_origins.clone().into(),
                stripe_webhook_secret: config.stripe_webhook_secret.clone().map(Arc::new),
                limiter: Arc::new(crate::http::rate::RequestLimiter::new(config.rate_limits)),
            },
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener.local_addr().context("reading the bound address")
    }

    /// The service, for callers that run beside the server (tests, jobs).
    pub fn ledger(&self) -> Ledger {
        self.state.ledger.clone()
    }

    /// The server's pool, for callers that run beside it (tests, audits).
    pub fn database(&self) -> DatabaseConnection {
        self.db.clone()
    }

    /// Starts the scheduler (when configured) and serves until `shutdown`
    /// completes; then drains open requests and stops the scheduler.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let scheduler = match &self.renewal_cron {
            Some(cron) => Some(Scheduler::start(self.state.ledger.clone(), cron).await?),
            None => None,
        };
        let relay = self
            .relay
            .map(|(url, channel, bus)| tokio::spawn(relay_notifications(url, channel, bus)));
        let settings = self.state.ledger.webhook_settings();
        let deliveries = settings.deliver.then(|| {
            let ledger = &self.state.ledger;
            tokio::spawn(crate::webhooks::run(
                ledger.pool(),
                settings,
                ledger.metrics().clone(),
                store::is_sqlite(&self.db),
            ))
        });
        let checkpoints = store::is_sqlite(&self.db).then(|| tokio::spawn(checkpoint_continually(self.db)));
        let router = router(self.state);
        crate::http::serve(self.listener, router, self.http_idle_timeout, shutdown).await;
        if let Some(scheduler) = scheduler {
            scheduler.shutdown().await;
        }
        if let Some(relay) = relay {
            relay.abort();
        }
        if let Some(checkpoints) = checkpoints {
            checkpoints.abort();
        }
        if let Some(deliveries) = deliveries {
            deliveries.abort();
        }
        Ok(())
    }
}

/// SQLite: checkpoints the WAL every [`store::SQLITE_CHECKPOINT_EVERY`].
async fn checkpoint_continually(db: sea_orm::DatabaseConnection) {
    let mut every = tokio::time::interval(store::SQLITE_CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let started = std::time::Instant::now();
        match store::checkpoint_wal(&db).await {
            Ok(Some(done)) => tracing::debug!(
                frames = done.checkpointed_frames,
                busy = done.busy,
                took_us = started.elapsed().as_micros() as u64,
                "WAL checkpoint"
            ),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "a WAL checkpoint failed; commits checkpoint by themselves meanwhile")
            }
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining");
}

/// The trusted documents configured (none without a manifest).
fn trusted_documents(config: &crate::config::TrustedDocumentsConfig) -> anyhow::Result<TrustedDocuments> {
    let Some(path) = &config.manifest else {
        return Ok(TrustedDocuments::default());
    };
    let json = std::fs::read_to_string(path)
        .with_context(|| format!("reading TRUSTED_DOCUMENTS_MANIFEST {}", path.display()))?;
    let trusted = TrustedDocuments::from_manifest(&json, config.enforce)
        .map_err(|error| anyhow::anyhow!("TRUSTED_DOCUMENTS_MANIFEST {}: {error}", path.display()))?;
    tracing::info!(
        documents = trusted.len(),
        enforce = config.enforce,
        "trusted documents loaded"
    );
    Ok(trusted)
}
