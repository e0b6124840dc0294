//! Property tests of the domain rules: for any grants, debit, anchor and
//! instant that proptest can think of, the rules keep their promises.
//! A failure prints the shrunk input; proptest replays it from
//! `proptest-regressions/` on the next run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use domain::burn_down::{GrantBalance, plan_burn, sort_for_burn_down};
use domain::catalogue::GrantSource;
use domain::period::{period_containing, period_start};
use domain::reversal::{LowBalance, low_balance};
use domain::usage::{Bucket, bucket_start, next_bucket};
use proptest::prelude::*;

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 2020-01-01 .. 2040-01-01, to the second.
    (1_577_836_800_i64..2_208_988_800).prop_map(|seconds| Utc.timestamp_opt(seconds, 0).unwrap())
}

fn grants() -> impl Strategy<Value = Vec<GrantBalance>> {
    prop::collection::vec(
        (
            0_i64..50,
            prop::option::of(0_i64..40),
            prop::sample::select(vec![
                GrantSource::Trial,
                GrantSource::Allocation,
                GrantSource::Purchase,
                GrantSource::Adjustment,
            ]),
        ),
        0..8,
    )
    .prop_map(|specs| {
        let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        specs
            .into_iter()
            .enumerate()
            .map(|(index, (remaining, days, source))| GrantBalance {
                id: index as i64 + 1,
                source,
                remaining,
                expires_at: days.map(|days| base + Duration::days(days)),
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn a_burn_is_exact_all_or_nothing_and_in_burn_down_order(grants in grants(), debit in 1_i64..200) {
        let held: i64 = grants.iter().map(|grant| grant.remaining).sum();
        match plan_burn(&grants, debit) {
            None => prop_assert!(held < debit, "refused although {held} >= {debit}"),
            Some(burns) => {
                prop_assert!(held >= debit);
                prop_assert_eq!(burns.iter().map(|burn| burn.credits).sum::<i64>(), debit);
                // The contract's order, written out here rather than taken
                // from the code under test: soonest expiry first, never-
                // expiring last, ties by age (id).
                let mut sorted = grants.clone();
                sorted.sort_by_key(|grant| (grant.expires_at.is_none(), grant.expires_at, grant.id));
                let mut left = debit;
                let mut expected = Vec::new();
                for grant in sorted.iter().filter(|grant| grant.remaining > 0) {
                    if left == 0 {
                        break;
                    }
                    let take = grant.remaining.min(left);
                    expected.push((grant.id, take));
                    left -= take;
                }
                let actual: Vec<(i64, i64)> = burns.iter().map(|burn| (burn.grant_id, burn.credits)).collect();
                prop_assert_eq!(actual, expected, "each grant emptied before the next is touched");
                for burn in &burns {
                    let grant = grants.iter().find(|grant| grant.id == burn.grant_id).unwrap();
                    prop_assert!(burn.credits > 0 && burn.credits <= grant.remaining);
                }
            }
        }
    }

    #[test]
    fn burn_down_takes_the_soonest_expiry_first_and_never_expiring_last(grants in grants()) {
        let mut sorted = grants;
        sort_for_burn_down(&mut sorted);
        for pair in sorted.windows(2) {
            match (pair[0].expires_at, pair[1].expires_at) {
                (Some(a), Some(b)) => prop_assert!(a < b || (a == b && pair[0].id < pair[1].id)),
                (Some(_), None) => {}
                (None, Some(_)) => prop_assert!(false, "a never-expiring grant before an expiring one"),
                (None, None) => prop_assert!(pair[0].id < pair[1].id),
            }
        }
    }

    #[test]
    fn the_period_containing_an_instant_contains_it_on_the_anchor_day(anchor in instant(), offset in 0_i64..4_000) {
        let now = anchor + Duration::days(offset) + Duration::seconds(offset * 37 % 86_400);
        let period = period_containing(anchor, now);
        prop_assert!(period.start <= now && now < period.end);
        for edge in [period.start, period.end] {
            prop_assert_eq!(edge.time(), anchor.time());
            let last = (edge + Duration::days(1)).month() != edge.month();
            prop_assert!(edge.day() == anchor.day() || (edge.day() < anchor.day() && last),
                "{edge} is neither the anchor day nor a clamped month end");
        }
        prop_assert!(period.end - period.start >= Duration::days(28));
        prop_assert!(period.end - period.start <= Duration::days(31));
    }

    #[test]
    fn periods_follow_each_other_without_gap_or_drift(anchor in instant(), index in 0_u32..240) {
        let start = period_start(anchor, index);
        let next = period_start(anchor, index + 1);
        prop_assert!(start < next);
        prop_assert_eq!(period_containing(anchor, start).start, start);
        prop_assert_eq!(period_containing(anchor, next - Duration::seconds(1)).end, next);
        // Computed from the anchor, never from the previous period: the day
        // is the anchor's, or the month's last day when the month is shorter.
        let first_of_next = if start.month() == 12 {
            chrono::NaiveDate::from_ymd_opt(start.year() + 1, 1, 1)
        } else {
            chrono::NaiveDate::from_ymd_opt(start.year(), start.month() + 1, 1)
        };
        let last_day = first_of_next.unwrap().pred_opt().unwrap().day();
        prop_assert_eq!(start.day(), anchor.day().min(last_day));
    }

    #[test]
    fn usage_buckets_tile_time(now in instant(), which in 0_usize..3) {
        let bucket = [Bucket::Day, Bucket::Week, Bucket::Month][which];
        let start = bucket_start(now, bucket);
        let next = next_bucket(start, bucket).expect("instants here are far inside chrono's range");
        prop_assert!(start <= now && now < next);
        prop_assert_eq!(bucket_start(next, bucket), next);
        prop_assert_eq!(bucket_start(next - Duration::seconds(1), bucket), start);
        if bucket == Bucket::Week {
            prop_assert_eq!(start.weekday(), chrono::Weekday::Mon);
        }
    }

    #[test]
    fn a_low_balance_alert_fires_once_per_crossing(threshold in 0_i64..100, balances in prop::collection::vec(0_i64..150, 1..40)) {
        let mut alerted = false;
        let mut alerts = 0;
        let mut below_runs = 0;
        let mut was_below = false;
        for balance in balances {
            match low_balance(Some(threshold), alerted, balance) {
                LowBalance::Alert => { alerts += 1; alerted = true; }
                LowBalance::Rearm => alerted = false,
                LowBalance::Unchanged => {}
            }
            let below = balance < threshold;
            if below && !was_below { below_runs += 1; }
            was_below = below;
            prop_assert_eq!(alerted, below, "alerted exactly while below the threshold");
        }
        prop_assert_eq!(alerts, below_runs);
    }
}
