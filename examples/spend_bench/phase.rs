//! One phase's throughput and latency, and which wallet a spend takes.

use super::*;

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Throughput and latency of one phase.
pub(super) struct Phase {
    pub(super) per_second: f64,
    /// Milliseconds, sorted.
    pub(super) latencies: Vec<f64>,
    /// Open loop: milliseconds from each spend's scheduled time, sorted
    /// (the same as `latencies` in a closed loop).
    pub(super) from_schedule: Vec<f64>,
}

/// One spend's latency, and its latency counted from its scheduled time.
pub(super) type Sample = (f64, f64);

impl Phase {
    /// Waits for the clients' samples.
    pub(super) async fn gather(
        tasks: impl Iterator<Item = tokio::task::JoinHandle<anyhow::Result<Vec<Sample>>>>,
        started: Instant,
    ) -> anyhow::Result<Self> {
        let (mut latencies, mut from_schedule) = (Vec::new(), Vec::new());
        for task in futures_util::future::join_all(tasks).await {
            let (latency, scheduled): (Vec<f64>, Vec<f64>) = task??.into_iter().unzip();
            latencies.extend(latency);
            from_schedule.extend(scheduled);
        }
        latencies.sort_by(f64::total_cmp);
        from_schedule.sort_by(f64::total_cmp);
        Ok(Self {
            per_second: latencies.len() as f64 / started.elapsed().as_secs_f64(),
            latencies,
            from_schedule,
        })
    }

    pub(super) fn latency(&self) -> String {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms",
            percentile(&self.latencies, 0.50),
            percentile(&self.latencies, 0.99),
        )
    }

    pub(super) fn row(&self) -> String {
        format!(
            "{:>8.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  p999 {:>6.2} ms",
            self.per_second,
            percentile(&self.latencies, 0.50),
            percentile(&self.latencies, 0.99),
            percentile(&self.latencies, 0.999),
        )
    }
}

/// Which wallet the `i`-th spend of a client goes to.
pub(super) fn wallet_for(shape: &str, client: u64, i: u64) -> u64 {
    if shape == "hot" {
        1
    } else {
        // A cheap, well-spread sequence over the wallets.
        (client * 7919 + i * 104_729) % UNIFORM_WALLETS + 1
    }
}
