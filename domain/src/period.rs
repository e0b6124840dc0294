//! Billing periods, anchored on the workspace's billing date, in UTC.
//!
//! Period `n` starts `n` calendar months after the anchor, on the anchor's
//! day of month, at the anchor's time of day. When the month is too short
//! for that day, the period starts on the month's last day instead, and the
//! next month returns to the anchor day: an anchor on Jan 31 renews on
//! Feb 28 (Feb 29 in a leap year), then Mar 31, Apr 30, May 31. Periods are
//! computed from the anchor, never from the previous period, so clamping
//! never drifts.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};

/// A half-open billing period `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First instant of the period.
    pub start: DateTime<Utc>,
    /// First instant after the period (the next period's start).
    pub end: DateTime<Utc>,
}

fn last_day_of_month(year: i32, month: u32) -> u32 {
    if month == 12 {
        return 31;
    }
    // Day 1 of any month in chrono's range exists; the previous day of it
    // is this month's last day.
    NaiveDate::from_ymd_opt(year, month + 1, 1)
        .and_then(|date| date.pred_opt())
        .map_or(28, |date| date.day())
}

/// The start of period `index` for `anchor` (index 0 is the anchor itself).
pub fn period_start(anchor: DateTime<Utc>, index: u32) -> DateTime<Utc> {
    // `checked_add_months` already clamps to the month's last day; it is
    // applied to the anchor each time, so the anchor day comes back.
    let shifted = anchor
        .checked_add_months(Months::new(index))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    debug_assert!(
        shifted.day()
            == anchor
                .day()
                .min(last_day_of_month(shifted.year(), shifted.month()))
    );
    shifted
}

/// The period of `anchor` that contains `now`; before the anchor, period 0.
pub fn period_containing(anchor: DateTime<Utc>, now: DateTime<Utc>) -> Period {
    let months_between = (now.year() - anchor.year()) * 12 + now.month() as i32 - anchor.month() as i32;
    let mut index = u32::try_from(months_between.max(0)).unwrap_or(0);
    // Period `index` starts in now's calendar month, so period `index + 1`
    // starts next month: the estimate is never too low. It is one too high
    // when now is before this month's renewal.
    if index > 0 && period_start(anchor, index) > now {
        index -= 1;
    }
    debug_assert!(index == 0 || period_start(anchor, index) <= now);
    debug_assert!(period_start(anchor, index + 1) > now);
    Period {
        start: period_start(anchor, index),
        end: period_start(anchor, index + 1),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn date(year: i32, month: u32, day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(year, month, day, 9, 30, 0)
            .single()
            .expect("valid date")
    }

    /// Anchors on the 1st, 15th, 28th, 29th, 30th and 31st, over 14 months
    /// that include the leap February of 2028 and the plain one of 2029.
    #[test]
    fn period_starts_keep_the_anchor_day_and_clamp_to_month_end() {
        let cases: [(u32, [u32; 14]); 6] = [
            (1, [1; 14]),
            (15, [15; 14]),
            (28, [28; 14]),
            // Jan..Dec 2028, Jan..Feb 2029
            (29, [29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 29, 28]),
            (30, [30, 29, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 28]),
            (31, [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31, 28]),
        ];
        for (anchor_day, expected_days) in cases {
            let anchor = date(2028, 1, anchor_day);
            for (index, expected_day) in expected_days.iter().enumerate() {
                let start = period_start(anchor, index as u32);
                let month = (index % 12) as u32 + 1;
                let year = 2028 + (index / 12) as i32;
                assert_eq!(
                    start,
                    date(year, month, *expected_day),
                    "anchor day {anchor_day}, period {index}"
                );
            }
        }
    }

    #[test]
    fn the_31st_renews_on_feb_29_then_mar_31() {
        let anchor = date(2028, 1, 31);
        assert_eq!(period_start(anchor, 1), date(2028, 2, 29));
        assert_eq!(period_start(anchor, 2), date(2028, 3, 31));
    }

    #[test]
    fn the_containing_period_is_half_open() {
        let anchor = date(2028, 1, 31);
        let at_renewal = period_containing(anchor, date(2028, 2, 29));
        assert_eq!(
            at_renewal,
            Period {
                start: date(2028, 2, 29),
                end: date(2028, 3, 31)
            }
        );
        let just_before = period_containing(anchor, date(2028, 2, 29) - chrono::Duration::seconds(1));
        assert_eq!(
            just_before,
            Period {
                start: date(2028, 1, 31),
                end: date(2028, 2, 29)
            }
        );
        let before_anchor = period_containing(anchor, date(2027, 6, 1));
        assert_eq!(before_anchor.start, anchor);
        let years_later = period_containing(anchor, date(2031, 7, 15));
        assert_eq!(
            years_later,
            Period {
                start: date(2031, 6, 30),
                end: date(2031, 7, 31)
            }
        );
    }
}
