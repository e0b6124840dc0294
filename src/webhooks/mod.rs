//! Outbound webhooks: the delivery worker, Standard Webhooks signatures and
//! the target rules (`docs/design/webhooks.md`).
//!
//! Each instance runs one worker. Deliveries wait in queues, one per
//! endpoint and workspace (`store::delivery`). The worker leases due
//! queues and serves each in its own task: up to [`TURN`] due deliveries in
//! order, stopping at the first failure, then records them and releases the
//! queue. A slow or dead endpoint holds only its own queues' tasks (at most
//! [`ENDPOINT_TASKS_MAX`] per endpoint), and a queue with a backlog goes
//! behind the others after each turn. A worker that dies mid-turn leaves the
//! lease to run out, and the queue is served again (at least once).

pub mod signing;
pub mod target;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;

use crate::config::{WEBHOOK_RETRY_CAP, WebhookSettings};
use crate::metrics::Metrics;
use crate::store::{self, delivery::Attempted, delivery::Claimed, delivery::Queue};
use domain::outbox::{body, event_id};

/// Queues one worker serves at once.
pub const QUEUES_IN_FLIGHT: usize = 32;
/// Queues of one endpoint one worker serves at once (an endpoint for
/// every workspace has one queue per workspace).
pub const ENDPOINT_TASKS_MAX: usize = 4;
/// Deliveries a queue sends per turn before it goes behind the others.
pub const TURN: u64 = 32;
/// How often the worker refreshes the backlog metrics.
const BACKLOG_EVERY: Duration = Duration::from_secs(10);

/// The delay before attempt `attempts + 1`, after `attempts` failed ones:
/// `base` doubled per failure, at most [`WEBHOOK_RETRY_CAP`], ±10% by `jitter`
/// (a number in `[0, 1)`).
pub fn retry_delay(base: Duration, attempts: u32, jitter: f64) -> Duration {
    let doubled = base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let capped = doubled.min(WEBHOOK_RETRY_CAP);
    capped.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0))
}

/// How long a queue is held: a turn starts no attempt once it has run
/// for the timeout, so it ends within twice the timeout; then its
/// recording. No other worker serves the queue meanwhile.
pub fn lease(timeout: Duration) -> Duration {
    timeout * 2 + Duration::from_secs(5)
}

/// Endpoints being served by this worker, with how many of their queues.
type Busy = Arc<Mutex<HashMap<i64, usize>>>;

/// Runs the delivery worker until the task is dropped.
/// `yield_to_spends` (SQLite): a turn waits while spends are answered.
pub async fn run(db: store::Pool, settings: WebhookSettings, metrics: Metrics, yield_to_spends: bool) {
    let client = match target::client(settings.allow_private, settings.timeout) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "the webhook client cannot be built; no webhooks are delivered");
            return;
        }
    };
    let busy: Busy = Arc::default();
    let mut tasks = JoinSet::new();
    let mut backlog_read = std::time::Instant::now() - BACKLOG_EVERY;
    loop {
        if backlog_read.elapsed() >= BACKLOG_EVERY {
            backlog_read = std::time::Instant::now();
            match store::delivery::backlog(&db, crate::clock::wall()).await {
                Ok((pending, lag)) => metrics.webhook_backlog(pending, lag),
                Err(error) => tracing::warn!(%error, "reading the webhook backlog"),
            }
        }
        while tasks.try_join_next().is_some() {}
        let free = QUEUES_IN_FLIGHT.saturating_sub(tasks.len());
        let claimed = if free == 0 {
            Ok(Vec::new())
        } else {
            claim(&db, &settings, &busy, free).await
        };
        match claimed {
            Ok(queues) if !queues.is_empty() => {
                for queue in queues {
                    *lock(&busy).entry(queue.endpoint_id).or_default() += 1;
                    let (db, client, settings, metrics, busy) = (
                        db.clone(),
                        client.clone(),
                        settings,
                        metrics.clone(),
                        busy.clone(),
                    );
                    tasks.spawn(async move {
                        serve(&db, &client, &settings, &metrics, &queue, yield_to_spends).await;
                        let mut busy = lock(&busy);
                        if let Some(count) = busy.get_mut(&queue.endpoint_id) {
                            *count -= 1;
                            if *count == 0 {
                                busy.remove(&queue.endpoint_id);
                            }
                        }
                    });
                }
                // More may be due behind what was just claimed.
                continue;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "webhook queues could not be claimed; retrying"),
        }
        // Idle, or every slot taken: wait for the poll or a finished turn.
        tokio::select! {
            () = tokio::time::sleep(settings.poll) => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

fn lock(busy: &Busy) -> std::sync::MutexGuard<'_, HashMap<i64, usize>> {
    busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Leases up to `free` due queues, none of an endpoint already served
/// [`ENDPOINT_TASKS_MAX`] times here.
async fn claim(
    db: &store::Pool,
    settings: &WebhookSettings,
    busy: &Busy,
    free: usize,
) -> store::Result<Vec<Queue>> {
    let now = crate::clock::wall();
    if !store::delivery::any_due(db, now).await? {
        return Ok(Vec::new());
    }
    let full: Vec<i64> = lock(busy)
        .iter()
        .filter(|(_, count)| **count >= ENDPOINT_TASKS_MAX)
        .map(|(endpoint, _)| *endpoint)
        .collect();
    let lease = chrono::Duration::from_std(lease(settings.timeout)).unwrap_or(chrono::Duration::minutes(10));
    let mut queues = store::delivery::claim_queues(db, now, now + lease, free as u64, &full).await?;
    // One claim may return several queues of one endpoint: keep within its limit.
    let mut taken: HashMap<i64, usize> = lock(busy).clone();
    let mut extra = Vec::new();
    queues.retain(|queue| {
        let count = taken.entry(queue.endpoint_id).or_default();
        *count += 1;
        let keep = *count <= ENDPOINT_TASKS_MAX;
        if !keep {
            extra.push(queue.clone());
        }
        keep
    });
    for queue in extra {
        // Handed back at once, due as it was.
        store::delivery::finish_turn(db, &queue, &[], now).await?;
    }
    Ok(queues)
}

/// One turn of a queue: its due deliveries in order, up to [`TURN`] and
/// for as long as the timeout, stopping at the first that fails; then
/// recorded, and the queue released.
async fn serve(
    db: &store::Pool,
    client: &reqwest::Client,
    settings: &WebhookSettings,
    metrics: &Metrics,
    queue: &Queue,
    yield_to_spends: bool,
) {
    let due = match store::delivery::due_in(db, queue, crate::clock::wall(), TURN).await {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(%error, endpoint = queue.endpoint_id, "a webhook queue could not be read");
            Vec::new()
        }
    };
    let mut attempts = Vec::with_capacity(due.len());
    let started = std::time::Instant::now();
    for delivery in due {
        if started.elapsed() >= settings.timeout {
            // The lease covers one more attempt at most (see `lease`).
            break;
        }
        if yield_to_spends {
            wait_for_spends(metrics).await;
        }
        let attempt = delivery.attempts + 1;
        let outcome = attempt_once(client, settings, metrics, &delivery, attempt).await;
        let failed = matches!(outcome, Attempted::Failed { .. });
        attempts.push((delivery.id, attempt, outcome));
        if failed {
            // The rest wait for the next turn: a failing endpoint costs one
            // attempt's time per turn.
            break;
        }
    }
    if let Err(error) = store::delivery::finish_turn(db, queue, &attempts, crate::clock::wall()).await {
        tracing::warn!(%error, endpoint = queue.endpoint_id, "a webhook turn could not be recorded; its lease runs out and it is served again");
    }
}

/// On SQLite (one writer, and a 2-core machine's CPU shared with the
/// spends), waits while spends are being answered, a few milliseconds at
/// most: a backlog drains between spends, not in their way.
async fn wait_for_spends(metrics: &Metrics) {
    for _ in 0..YIELD_TO_SPENDS_MAX_MS {
        if !metrics.spends_waiting() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Longest a delivery waits for spends in flight, in milliseconds.
const YIELD_TO_SPENDS_MAX_MS: u32 = 20;

/// One attempt of a delivery: its outcome, counted.
async fn attempt_once(
    client: &reqwest::Client,
    settings: &WebhookSettings,
    metrics: &Metrics,
    delivery: &Claimed,
    attempt: i32,
) -> Attempted {
    let result = send(client, settings, delivery).await;
    let outcome = match result {
        Ok(status) if (200..300).contains(&status) => Attempted::Delivered { status },
        failed => {
            let (status, error) = match failed {
                Ok(status) => (Some(status), format!("answered {status}")),
                Err(error) => (None, error),
            };
            let attempts = u32::try_from(attempt).unwrap_or(u32::MAX);
            let retry_at = (attempts < settings.max_attempts).then(|| {
                let delay = retry_delay(settings.retry_base, attempts, signing::unit_random());
                crate::clock::wall() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(6))
            });
            Attempted::Failed {
                status,
                error,
                retry_at,
            }
        }
    };
    let result = match &outcome {
        Attempted::Delivered { .. } => "delivered",
        Attempted::Failed {
            retry_at: Some(_), ..
        } => "retry",
        Attempted::Failed { retry_at: None, .. } => "failed",
    };
    metrics.webhook_attempt(result);
    if let Attempted::Failed {
        retry_at: None,
        error,
        ..
    } = &outcome
    {
        tracing::warn!(delivery = delivery.id, event = delivery.event_id, attempts = attempt, %error, "a webhook delivery failed for good");
    }
    outcome
}

/// Posts the delivery's event; the answer's status, or why there was none.
async fn send(
    client: &reqwest::Client,
    settings: &WebhookSettings,
    delivery: &Claimed,
) -> Result<u16, String> {
    let url = reqwest::Url::parse(&delivery.url).map_err(|_| "the endpoint URL is invalid".to_owned())?;
    if !settings.allow_private && target::is_private_literal(&url) {
        return Err("the endpoint's address is private".to_owned());
    }
    let id = event_id(delivery.event_id);
    let data: serde_json::Value =
        serde_json::from_str(&delivery.data).map_err(|_| "the stored event is not JSON".to_owned())?;
    let payload = body(
        &id,
        &delivery.event_type,
        delivery.created_at,
        &delivery.workspace_id,
        &data,
    )
    .to_string();
    let timestamp = crate::clock::wall().timestamp();
    let signature =
        signing::sign(&delivery.secret, &id, timestamp, &payload).map_err(|error| error.to_string())?;
    let response = client
        .post(url)
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .header("content-type", "application/json")
        .body(payload)
        .send()
        .await
        .map_err(|error| {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
            while let Some(cause) = source {
                if let Some(refused) = cause.downcast_ref::<target::Refused>() {
                    return refused.to_string();
                }
                source = cause.source();
            }
            if error.is_timeout() {
                format!("no answer within {} ms", settings.timeout.as_millis())
            } else if error.is_connect() {
                "could not connect".to_owned()
            } else if error.is_builder() {
                "the endpoint's URL is not https".to_owned()
            } else {
                "the request failed".to_owned()
            }
        })?;
    Ok(response.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_the_cap_with_a_tenth_of_jitter() {
        let base = Duration::from_secs(5);
        assert_eq!(retry_delay(base, 1, 0.5), Duration::from_secs(5));
        assert_eq!(retry_delay(base, 2, 0.5), Duration::from_secs(10));
        assert_eq!(retry_delay(base, 4, 0.5), Duration::from_secs(40));
        assert_eq!(retry_delay(base, 30, 0.5), WEBHOOK_RETRY_CAP);
        assert_eq!(retry_delay(base, 1, 0.0), Duration::from_millis(4_500));
        assert!(retry_delay(base, 1, 0.999) < Duration::from_millis(5_500));
        // The defaults span about a day.
        let defaults = WebhookSettings::default();
        let total: Duration = (1..defaults.max_attempts)
            .map(|attempts| retry_delay(defaults.retry_base, attempts, 0.5))
            .sum();
        assert!(
            total > Duration::from_secs(20 * 3600) && total < Duration::from_secs(28 * 3600),
            "{total:?}"
        );
    }
}
