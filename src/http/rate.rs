//! Request rates per token subject and per workspace: token buckets
//! (`governor`), so that one workspace's flood cannot take the service from
//! the others (`docs/operations.md`, limits). Operators are not limited: the
//! back office and the billing system act for every workspace.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::auth::Caller;
use crate::config::RateLimits;
use domain::catalogue::Role;

/// Checks between two sweeps of idle buckets (their memory is freed).
const SWEEP_EVERY: u64 = 10_000;

/// The limiters of one instance.
pub struct RequestLimiter {
    subjects: Option<DefaultKeyedRateLimiter<String>>,
    workspaces: Option<DefaultKeyedRateLimiter<String>>,
    checks: AtomicU64,
}

impl RequestLimiter {
    /// Limiters for `limits`.
    pub fn new(limits: RateLimits) -> Self {
        let keyed = |rate: Option<NonZeroU32>| rate.map(|rate| RateLimiter::keyed(Quota::per_second(rate)));
        Self {
            subjects: keyed(limits.per_subject),
            workspaces: keyed(limits.per_workspace),
            checks: AtomicU64::new(0),
        }
    }

    /// `Ok` when `caller` may send a request now; otherwise how long to
    /// wait. A refusal by the workspace's bucket does not spend the
    /// subject's, and the other way round.
    pub fn check(&self, caller: &Caller) -> Result<(), Duration> {
        if caller.role == Role::Operator {
            return Ok(());
        }
        let workspace = caller.workspace_id.as_ref().map_or("", |id| id.as_str());
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            for limiter in [&self.subjects, &self.workspaces].into_iter().flatten() {
                limiter.retain_recent();
            }
        }
        let now = DefaultClock::default().now();
        if let Some(subjects) = &self.subjects {
            subjects
                .check_key(&format!("{workspace}\u{0}{}", caller.subject))
                .map_err(|not_until| not_until.wait_time_from(now))?;
        }
        if let Some(workspaces) = &self.workspaces {
            workspaces
                .check_key(&workspace.to_owned())
                .map_err(|not_until| not_until.wait_time_from(now))?;
        }
        Ok(())
    }
}

/// The answer to a request over its rate: 429, `Retry-After` in whole
/// seconds (at least one), and a GraphQL error with code `RATE_LIMITED`.
pub fn too_many(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = super::protocol::refusal(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        format!("too many requests from this token or workspace; retry in {seconds} s"),
    );
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
