//! Usage analytics: credits spent per action per calendar bucket, in UTC.
//!
//! Buckets are DAY (midnight to midnight), WEEK (ISO weeks, Monday 00:00)
//! and MONTH (the 1st, 00:00). A spend that was later reversed counts for
//! nothing: usage is net of reversals, attributed to the spend's own time.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};

use crate::DomainError;
use crate::catalogue::Action;

/// Most buckets one usage query may return.
pub const USAGE_BUCKETS_MAX: usize = 400;
/// Earliest instant a time input may name (no ledger row is older).
pub const TIME_MIN: &str = "1970-01-01T00:00:00Z";
/// Latest instant a time input may name: every bucket and period
/// computed from it stays far inside chrono's range.
pub const TIME_MAX: &str = "9999-12-31T23:59:59Z";

/// Checks that a time input lies in `[TIME_MIN, TIME_MAX]`: calendar
/// arithmetic near chrono's own bounds (year ±262,142) would overflow.
pub fn check_instant(field: &'static str, instant: DateTime<Utc>) -> Result<(), DomainError> {
    let in_range = (1970..=9999).contains(&instant.year());
    if !in_range {
        return Err(DomainError::invalid(
            field,
            format!("must be between {TIME_MIN} and {TIME_MAX}"),
        ));
    }
    Ok(())
}

/// A calendar bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// One UTC day.
    Day,
    /// One ISO week, from Monday.
    Week,
    /// One calendar month.
    Month,
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// The start of the bucket containing `instant`.
pub fn bucket_start(instant: DateTime<Utc>, bucket: Bucket) -> DateTime<Utc> {
    let date = instant.date_naive();
    match bucket {
        Bucket::Day => midnight(date),
        Bucket::Week => midnight(
            date.checked_sub_days(Days::new(u64::from(date.weekday().num_days_from_monday())))
                .unwrap_or(date),
        ),
        Bucket::Month => midnight(date.with_day(1).unwrap_or(date)),
    }
}

/// The start of the bucket after the one starting at `start`; `None`
/// past chrono's range (never for instants that passed [`check_instant`]).
pub fn next_bucket(start: DateTime<Utc>, bucket: Bucket) -> Option<DateTime<Utc>> {
    match bucket {
        Bucket::Day => start.checked_add_days(Days::new(1)),
        Bucket::Week => start.checked_add_days(Days::new(7)),
        Bucket::Month => start.checked_add_months(Months::new(1)),
    }
}

/// One bucket's usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageBucket {
    /// First instant of the bucket.
    pub start: DateTime<Utc>,
    /// First instant after it.
    pub end: DateTime<Utc>,
    /// Credits spent per action (every action present, zero included).
    pub credits_by_action: Vec<(Action, i64)>,
    /// The same per agent, when asked for ([`split_by_agent`]): agents by
    /// id, then spends that named none; agents that spent nothing omitted.
    pub by_agent: Vec<AgentCredits>,
}

/// Credits one agent (or no agent) spent per action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCredits {
    /// The agent; `None` for spends that named none.
    pub agent_id: Option<String>,
    /// Credits spent per action (every action present, zero included).
    pub credits_by_action: Vec<(Action, i64)>,
}

/// Fills each bucket's `by_agent` from spends `(time, action, credits,
/// agent)`, the same spends `aggregate` bucketed.
pub fn split_by_agent(buckets: &mut [UsageBucket], spends: &[(DateTime<Utc>, Action, i64, Option<String>)]) {
    for bucket in buckets.iter_mut() {
        let mut agents: BTreeMap<(bool, Option<&str>), BTreeMap<Action, i64>> = BTreeMap::new();
        for (at, action, credits, agent) in spends {
            if *at >= bucket.start && *at < bucket.end {
                *agents
                    .entry((agent.is_none(), agent.as_deref()))
                    .or_default()
                    .entry(*action)
                    .or_default() += credits;
            }
        }
        bucket.by_agent = agents
            .into_iter()
            .map(|((_, agent), credits)| AgentCredits {
                agent_id: agent.map(str::to_owned),
                credits_by_action: Action::ALL
                    .iter()
                    .map(|action| (*action, credits.get(action).copied().unwrap_or(0)))
                    .collect(),
            })
            .collect();
    }
}

/// Checks a usage range: `from` before `to`, and not too many buckets.
pub fn check_range(from: DateTime<Utc>, to: DateTime<Utc>, bucket: Bucket) -> Result<(), DomainError> {
    check_instant("from", from)?;
    check_instant("to", to)?;
    if from >= to {
        return Err(DomainError::invalid("from", "must be before to"));
    }
    let mut start = bucket_start(from, bucket);
    let mut count = 0;
    while start < to {
        count += 1;
        if count > USAGE_BUCKETS_MAX {
            return Err(DomainError::invalid(
                "to",
                format!(
                    "spans more than {USAGE_BUCKETS_MAX} buckets; narrow the range or use a larger bucket"
                ),
            ));
        }
        start = next_bucket(start, bucket)
            .ok_or_else(|| DomainError::invalid("to", format!("must be before {TIME_MAX}")))?;
    }
    Ok(())
}

/// Aggregates spends `(time, action, credits)` into every bucket that
/// overlaps `[from, to)`, empty buckets included.
pub fn aggregate(
    spends: &[(DateTime<Utc>, Action, i64)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    bucket: Bucket,
) -> Vec<UsageBucket> {
    let mut totals: BTreeMap<(DateTime<Utc>, Action), i64> = BTreeMap::new();
    for (at, action, credits) in spends {
        if *at >= from && *at < to {
            *totals.entry((bucket_start(*at, bucket), *action)).or_default() += credits;
        }
    }
    let mut buckets = Vec::new();
    let mut start = bucket_start(from, bucket);
    while start < to {
        let credits_by_action = Action::ALL
            .iter()
            .map(|action| (*action, totals.get(&(start, *action)).copied().unwrap_or(0)))
            .collect();
        // check_range keeps every bucket inside chrono's range.
        let Some(end) = next_bucket(start, bucket) else {
            break;
        };
        buckets.push(UsageBucket {
            start,
            end,
            credits_by_action,
            by_agent: Vec::new(),
        });
        start = end;
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(month: u32, day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, month, day, hour, 0, 0).unwrap()
    }

    #[test]
    fn bucket_starts_in_utc() {
        // 2026-02-01 is a Sunday; its ISO week started Monday Jan 26.
        assert_eq!(bucket_start(at(2, 1, 23), Bucket::Day), at(2, 1, 0));
        assert_eq!(bucket_start(at(2, 1, 23), Bucket::Week), at(1, 26, 0));
        assert_eq!(bucket_start(at(2, 1, 23), Bucket::Month), at(2, 1, 0));
        assert_eq!(next_bucket(at(1, 1, 0), Bucket::Month), Some(at(2, 1, 0)));
        assert_eq!(next_bucket(DateTime::<Utc>::MAX_UTC, Bucket::Day), None);
    }

    #[test]
    fn buckets_split_by_agent_agents_first() {
        let spends = [
            (at(1, 31, 22), Action::Triage, 1, None),
            (at(1, 31, 23), Action::Sidekick, 2, Some("bob".to_owned())),
            (at(1, 31, 23), Action::Sidekick, 1, Some("ana".to_owned())),
            (at(2, 1, 9), Action::Triage, 1, Some("bob".to_owned())),
        ];
        let plain: Vec<_> = spends
            .iter()
            .map(|(at, action, credits, _)| (*at, *action, *credits))
            .collect();
        let mut days = aggregate(&plain, at(1, 31, 0), at(2, 2, 0), Bucket::Day);
        split_by_agent(&mut days, &spends);
        let agents: Vec<(Option<&str>, i64)> = days[0]
            .by_agent
            .iter()
            .map(|agent| {
                (
                    agent.agent_id.as_deref(),
                    agent.credits_by_action.iter().map(|(_, credits)| credits).sum(),
                )
            })
            .collect();
        assert_eq!(agents, [(Some("ana"), 1), (Some("bob"), 2), (None, 1)]);
        assert_eq!(days[1].by_agent.len(), 1);
        assert_eq!(days[1].by_agent[0].credits_by_action[0], (Action::Triage, 1));
    }

    #[test]
    fn usage_is_bucketed_across_a_month_boundary() {
        let spends = [
            (at(1, 31, 22), Action::Triage, 1),
            (at(1, 31, 23), Action::Triage, 1),
            (at(2, 1, 0), Action::Sidekick, 1),
            (at(2, 1, 9), Action::Triage, 1),
        ];
        let days = aggregate(&spends, at(1, 31, 0), at(2, 2, 0), Bucket::Day);
        assert_eq!(days.len(), 2);
        assert_eq!(
            days[0].credits_by_action,
            vec![
                (Action::Triage, 2),
                (Action::AutoResolve, 0),
                (Action::Sidekick, 0)
            ]
        );
        assert_eq!(
            days[1].credits_by_action,
            vec![
                (Action::Triage, 1),
                (Action::AutoResolve, 0),
                (Action::Sidekick, 1)
            ]
        );
        let months = aggregate(&spends, at(1, 1, 0), at(3, 1, 0), Bucket::Month);
        assert_eq!(months[0].credits_by_action[0], (Action::Triage, 2));
        assert_eq!(months[1].credits_by_action[0], (Action::Triage, 1));
    }

    #[test]
    fn instants_near_chronos_bounds_are_refused_not_panicked_on() {
        let far = |year: i32| Utc.with_ymd_and_hms(year, 12, 30, 0, 0, 0).unwrap();
        for bucket in [Bucket::Day, Bucket::Week, Bucket::Month] {
            for (from, to, field) in [
                (far(262_142), DateTime::<Utc>::MAX_UTC, "from"),
                (DateTime::<Utc>::MIN_UTC, at(1, 1, 0), "from"),
                (far(9_999), far(10_000), "to"),
                (far(1_969), at(1, 1, 0), "from"),
            ] {
                let refused = check_range(from, to, bucket).unwrap_err();
                assert_eq!(
                    refused,
                    DomainError::invalid(field, format!("must be between {TIME_MIN} and {TIME_MAX}"))
                );
            }
            // The last supported day still aggregates.
            let last = Utc.with_ymd_and_hms(9_999, 12, 31, 0, 0, 0).unwrap();
            let latest = Utc.with_ymd_and_hms(9_999, 12, 31, 23, 59, 59).unwrap();
            assert_eq!(check_range(last, latest, bucket).err(), None);
            assert_eq!(aggregate(&[], last, latest, bucket).len(), 1);
        }
    }

    #[test]
    fn ranges_hold_at_most_400_buckets_and_aggregate_half_open() {
        let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let days = |n: u64| from + Days::new(n);
        assert_eq!(check_range(from, days(400), Bucket::Day), Ok(()));
        assert!(check_range(from, days(401), Bucket::Day).is_err());
        assert_eq!(aggregate(&[], from, days(400), Bucket::Day).len(), 400);
        // [from, to) cuts buckets in the middle: a spend before `from` or at
        // `to` counts nowhere, even inside a bucket that is shown.
        let noon = from + chrono::Duration::hours(12);
        let hours = |n: i64| from + chrono::Duration::hours(n);
        let spends = [
            (hours(6), Action::Triage, 1),
            (hours(13), Action::Triage, 1),
            (hours(35), Action::Triage, 1),
            (hours(36), Action::Triage, 1),
        ];
        let buckets = aggregate(&spends, noon, hours(36), Bucket::Day);
        let totals: Vec<i64> = buckets
            .iter()
            .map(|bucket| bucket.credits_by_action[0].1)
            .collect();
        assert_eq!(totals, vec![1, 1]);
    }

    #[test]
    fn ranges_are_checked() {
        assert!(check_range(at(2, 1, 0), at(1, 1, 0), Bucket::Day).is_err());
        assert!(check_range(at(1, 1, 0), at(12, 31, 0), Bucket::Day).is_ok());
        assert!(
            check_range(
                Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap(),
                at(1, 1, 0),
                Bucket::Day
            )
            .is_err()
        );
    }
}
