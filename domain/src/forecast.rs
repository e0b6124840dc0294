//! The runway: how fast a wallet burns credits and when its pool runs out
//! at that pace (`Wallet.forecast`; README, "Decisions").

use chrono::{DateTime, Duration, Utc};

/// How far back spends are counted.
pub const FORECAST_WINDOW_DAYS: i64 = 7;

/// A runway longer than this is no date at all (and some would not fit a
/// timestamp): `depletes_at` is then `None`.
const HORIZON_DAYS: f64 = 36_525.0;

/// The shortest span a burn rate is taken over: a wallet an hour old that
/// spent 10 credits burns 10 a day, not 240.
const MIN_SPAN_DAYS: f64 = 1.0;

/// A wallet's runway.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Credits spent a day, net of reversals, over the trailing window (or
    /// the wallet's life, if shorter; at least a day).
    pub daily_burn: f64,
    /// When the pool runs out at that pace; `None` when nothing is spent or
    /// not within a hundred years.
    pub depletes_at: Option<DateTime<Utc>>,
    /// Whether the pool lasts until the next reset; `None` without one (a
    /// trial, or a plan whose period has not started).
    pub covers_until_reset: Option<bool>,
}

/// The runway of a pool of `balance` credits that spent `spent` credits
/// since `since` (the later of the window's start and the wallet's first
/// row), at `now`, with the next reset at `next_reset`.
pub fn forecast(
    balance: i64,
    spent: i64,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    next_reset: Option<DateTime<Utc>>,
) -> Forecast {
    let span_days = ((now - since).num_seconds() as f64 / 86_400.0).max(MIN_SPAN_DAYS);
    let daily_burn = spent.max(0) as f64 / span_days;
    let runway_days = balance.max(0) as f64 / daily_burn;
    let depletes_at = (daily_burn > 0.0 && runway_days <= HORIZON_DAYS)
        .then(|| now + Duration::seconds((runway_days * 86_400.0) as i64));
    let covers_until_reset = next_reset.map(|reset| depletes_at.is_none_or(|depletes| depletes >= reset));
    Forecast {
        daily_burn,
        depletes_at,
        covers_until_reset,
    }
}

/// Where the window of spends starts: seven days back, or the wallet's
/// first row if that is later.
pub fn window_start(now: DateTime<Utc>, first_row_at: Option<DateTime<Utc>>) -> DateTime<Utc> {
    let week = now - Duration::days(FORECAST_WINDOW_DAYS);
    first_row_at.map_or(week, |first| first.max(week))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
    }

    #[test]
    fn a_week_of_spends_burns_a_seventh_a_day() {
        let now = at(8, 0);
        let runway = forecast(
            70,
            140,
            window_start(now, Some(at(1, 0) - Duration::days(30))),
            now,
            Some(at(20, 0)),
        );
        assert_eq!(runway.daily_burn, 20.0);
        assert_eq!(runway.depletes_at, Some(now + Duration::hours(84)));
        assert_eq!(runway.covers_until_reset, Some(false));
    }

    #[test]
    fn a_young_wallet_burns_over_its_life_but_at_least_a_day() {
        let now = at(8, 0);
        let two_days = forecast(100, 20, window_start(now, Some(at(6, 0))), now, None);
        assert_eq!(two_days.daily_burn, 10.0);
        assert_eq!(two_days.depletes_at, Some(at(18, 0)));
        assert_eq!(two_days.covers_until_reset, None);
        let one_hour = forecast(100, 10, window_start(now, Some(at(7, 23))), now, None);
        assert_eq!(one_hour.daily_burn, 10.0);
    }

    #[test]
    fn nothing_spent_never_depletes_and_covers_any_reset() {
        let now = at(8, 0);
        let idle = forecast(5, 0, window_start(now, None), now, Some(at(9, 0)));
        assert_eq!((idle.daily_burn, idle.depletes_at), (0.0, None));
        assert_eq!(idle.covers_until_reset, Some(true));
    }

    #[test]
    fn an_empty_pool_is_depleted_now_and_a_slow_burn_outlasts_the_calendar() {
        let now = at(8, 0);
        assert_eq!(
            forecast(0, 7, window_start(now, None), now, None).depletes_at,
            Some(now)
        );
        let glacial = forecast(
            i64::from(i32::MAX),
            1,
            window_start(now, None),
            now,
            Some(at(9, 0)),
        );
        assert_eq!(glacial.depletes_at, None, "not within a century");
        assert_eq!(glacial.covers_until_reset, Some(true));
    }
}
