//! Outbound webhooks: the delivery worker, Standard Webhooks signatures and
//! the target rules (`docs/design/webhooks.md`).
//!
//! Each instance runs one worker. It claims due deliveries with a lease
//! longer than an attempt can take, so no two workers send one delivery at
//! once; a worker that dies mid-send leaves the lease to run out, and the
//! delivery is sent again (at least once).

pub mod signing;
pub mod target;

use std::time::Duration;

use chrono::Utc;
use futures_util::future::join_all;

use crate::config::{WEBHOOK_RETRY_CAP, WebhookSettings};
use crate::domain::outbox::{body, event_id};
use crate::metrics::Metrics;
use crate::store::{self, outbox::Attempted, outbox::Claimed};

/// Deliveries one worker claims at a time (and sends concurrently).
pub const CLAIM_BATCH: u64 = 16;
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

/// How long a claim holds a delivery: well beyond an attempt's longest
/// (the timeout) and its recording, so no other worker sends it meanwhile.
pub fn lease(timeout: Duration) -> Duration {
    timeout * 2 + Duration::from_secs(5)
}

/// Runs the delivery worker until the task is dropped.
pub async fn run(db: store::Pool, settings: WebhookSettings, metrics: Metrics) {
    let client = match target::client(settings.allow_private, settings.timeout) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "the webhook client cannot be built; no webhooks are delivered");
            return;
        }
    };
    let mut backlog_read = std::time::Instant::now() - BACKLOG_EVERY;
    loop {
        if backlog_read.elapsed() >= BACKLOG_EVERY {
            backlog_read = std::time::Instant::now();
            match store::outbox::backlog(&db, Utc::now()).await {
                Ok((pending, lag)) => metrics.webhook_backlog(pending, lag),
                Err(error) => tracing::warn!(%error, "reading the webhook backlog"),
            }
        }
        match deliver_due(&db, &client, &settings, &metrics).await {
            // More may be waiting behind what was just sent.
            Ok(sent) if sent > 0 => continue,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "webhook deliveries could not be claimed; retrying"),
        }
        tokio::time::sleep(settings.poll).await;
    }
}

/// Claims and sends what is due now; returns how many were sent.
async fn deliver_due(
    db: &store::Pool,
    client: &reqwest::Client,
    settings: &WebhookSettings,
    metrics: &Metrics,
) -> store::Result<usize> {
    let now = Utc::now();
    if store::outbox::oldest_due(db, now).await?.is_none() {
        return Ok(0);
    }
    let lease = chrono::Duration::from_std(lease(settings.timeout)).unwrap_or(chrono::Duration::seconds(60));
    let claimed = store::outbox::claim(db, now, now + lease, CLAIM_BATCH).await?;
    let sent = claimed.len();
    join_all(
        claimed
            .into_iter()
            .map(|delivery| attempt(db, client, settings, metrics, delivery)),
    )
    .await;
    Ok(sent)
}

/// One attempt of a claimed delivery, recorded.
async fn attempt(
    db: &store::Pool,
    client: &reqwest::Client,
    settings: &WebhookSettings,
    metrics: &Metrics,
    delivery: Claimed,
) {
    let attempt = delivery.attempts + 1;
    let result = send(client, settings, &delivery).await;
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
                Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(6))
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
    if let Err(error) = store::outbox::record_attempt(db, delivery.id, attempt, &outcome, Utc::now()).await {
        // The lease runs out and the delivery is attempted again.
        tracing::warn!(delivery = delivery.id, %error, "a webhook attempt could not be recorded");
    }
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
    let timestamp = Utc::now().timestamp();
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
            if error.is_timeout() {
                format!("no answer within {} ms", settings.timeout.as_millis())
            } else if error.is_connect() {
                "could not connect".to_owned()
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
