//! Cron wiring only: the renewal job calls `service` and nothing else.
//!
//! The job runs on a six-field cron expression (seconds first), evaluated
//! in UTC. A run that is still going when the next tick fires makes that
//! tick a no-op (tokio-cron-scheduler does not prevent overlap by itself).
//! One run happens at start-up, so a scheduler that was down catches up at
//! once. Several instances may run the job together: each wallet is
//! settled under its own lock and a period's allocation has a unique key,
//! so nothing is ever granted twice.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler};
use tracing::Instrument;

use crate::service::{Ledger, NoticeCursor};

/// A running scheduler; [`Scheduler::shutdown`] stops it.
pub struct Scheduler {
    inner: JobScheduler,
}

async fn run_once(ledger: &Ledger, guard: &Mutex<NoticeCursor>) {
    let Ok(mut cursor) = guard.try_lock() else {
        tracing::info!("credits.roll_over_periods still running; this tick is skipped");
        return;
    };
    let now = ledger.now();
    let span = tracing::info_span!("job.roll_over_periods", %now);
    match ledger.roll_over_periods(now).instrument(span.clone()).await {
        Ok(report) if report.wallets_examined > 0 => {
            let _entered = span.enter();
            tracing::info!(
                examined = report.wallets_examined,
                changed = report.wallets_changed,
                "periods rolled over"
            );
        }
        Ok(_) => {}
        Err(error) => {
            let _entered = span.enter();
            let code = error.code();
            error.log();
            tracing::warn!(code, "roll-over failed; the next tick retries");
        }
    }
    // Trial-ending and runway notices (`docs/design/webhooks.md`).
    match ledger.send_notices(&mut cursor, now).await {
        Ok(0) => {}
        Ok(sent) => tracing::info!(sent, "notices written to the outbox"),
        Err(error) => {
            let code = error.code();
            error.log();
            tracing::warn!(code, "notices failed; the next tick retries");
        }
    }
    match ledger.prune_outbox(&mut cursor, now).await {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "old outbox events removed"),
        Err(error) => {
            let code = error.code();
            error.log();
            tracing::warn!(code, "pruning the outbox failed; the next tick retries");
        }
    }
}

impl Scheduler {
    /// Starts the renewal job on `cron` (six fields, UTC) and runs it once
    /// now. Fails on an invalid expression.
    pub async fn start(ledger: Ledger, cron: &str) -> anyhow::Result<Self> {
        let guard = Arc::new(Mutex::new(NoticeCursor::default()));
        let job_ledger = ledger.clone();
        let job_guard = guard.clone();
        let job = Job::new_async(cron, move |_id, _scheduler| {
            let ledger = job_ledger.clone();
            let guard = job_guard.clone();
            Box::pin(async move { run_once(&ledger, &guard).await })
        })
        .with_context(|| {
            format!(
                "RENEWAL_CRON {cron:?} is not a six-field cron expression (sec min hour day month weekday)"
            )
        })?;
        let inner = JobScheduler::new().await.context("creating the scheduler")?;
        inner.add(job).await.context("adding the renewal job")?;
        inner.start().await.context("starting the scheduler")?;
        tokio::spawn(async move { run_once(&ledger, &guard).await });
        Ok(Self { inner })
    }

    /// Stops the scheduler; a run in progress finishes its current wallet's
    /// transaction (each is atomic).
    pub async fn shutdown(mut self) {
        if let Err(error) = self.inner.shutdown().await {
            tracing::warn!(%error, "scheduler shutdown");
        }
    }
}
