//! When 110 calls arrive: a non-homogeneous Poisson process over the day.
//!
//! From synthetic-city.md: ~15,000 calls a day on average today (2003: ~8,000), peak day
//! 1.7× the mean; hourly weights 00–23
//! `3.5 2.8 2.2 1.7 1.4 1.3 1.8 2.8 4.0 4.6 4.8 4.9 4.9 4.8 4.8 5.0 5.3 5.6 5.6 5.5 5.4 5.2 4.9 4.3`;
//! Friday and Saturday nights +15–20 %. Arrivals are drawn by thinning (Lewis & Shedler):
//! candidates at the peak rate, each kept with probability rate(t) / peak.

use fangkong_core::time::Timestamp;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MILLIS_PER_HOUR: i64 = 3_600_000;
const MILLIS_PER_DAY: i64 = 24 * MILLIS_PER_HOUR;

/// The shape and size of the call load.
#[derive(Clone, Debug, PartialEq)]
pub struct CallProfile {
    /// Mean calls per day.
    pub calls_per_day: f64,
    /// Relative weight of each local hour 00–23 (any scale; normalised on use).
    pub hourly_weights: [f64; 24],
    /// Multiplier for Friday and Saturday evenings and the nights after them.
    pub weekend_night_factor: f64,
    /// Offset of local time from UTC in hours (Shenzhen: +8).
    pub utc_offset_hours: i64,
}

impl Default for CallProfile {
    fn default() -> CallProfile {
        CallProfile {
            calls_per_day: 15_000.0,
            hourly_weights: [
                3.5, 2.8, 2.2, 1.7, 1.4, 1.3, 1.8, 2.8, 4.0, 4.6, 4.8, 4.9, 4.9, 4.8, 4.8, 5.0, 5.3, 5.6, 5.6, 5.5,
                5.4, 5.2, 4.9, 4.3,
            ],
            weekend_night_factor: 1.175,
            utc_offset_hours: 8,
        }
    }
}

impl CallProfile {
    /// The 2003 preset: ~8,000 calls a day, same daily shape.
    pub fn year_2003() -> CallProfile {
        CallProfile { calls_per_day: 8_000.0, ..CallProfile::default() }
    }

    /// Expected calls per hour at instant `at`.
    pub fn rate_per_hour(&self, at: Timestamp) -> f64 {
        let local = at.as_millis() + self.utc_offset_hours * MILLIS_PER_HOUR;
        let hour = local.rem_euclid(MILLIS_PER_DAY) / MILLIS_PER_HOUR;
        // 1970-01-01 was a Thursday: day 0 → Thursday, so Friday = 1, Saturday = 2.
        let weekday = local.div_euclid(MILLIS_PER_DAY).rem_euclid(7);
        let total: f64 = self.hourly_weights.iter().sum();
        let base = self.calls_per_day * self.hourly_weights[hour as usize] / total;
        // "Friday/Saturday nights": 19:00–23:59 on Fri and Sat, and 00:00–02:59 after them.
        let weekend_night = (matches!(weekday, 1 | 2) && hour >= 19) || (matches!(weekday, 2 | 3) && hour < 3);
        if weekend_night { base * self.weekend_night_factor } else { base }
    }

    fn peak_rate_per_hour(&self) -> f64 {
        let total: f64 = self.hourly_weights.iter().sum();
        let max = self.hourly_weights.iter().copied().fold(0.0, f64::max);
        self.calls_per_day * max / total * self.weekend_night_factor.max(1.0)
    }
}

/// The arrival instants of calls from `start` on, in order; deterministic for a seed.
#[derive(Debug)]
pub struct Arrivals {
    profile: CallProfile,
    peak_per_milli: f64,
    rng: ChaCha8Rng,
    at_millis: f64,
}

impl Arrivals {
    pub fn new(profile: CallProfile, seed: u64, start: Timestamp) -> Arrivals {
        let peak_per_milli = profile.peak_rate_per_hour() / MILLIS_PER_HOUR as f64;
        Arrivals { profile, peak_per_milli, rng: ChaCha8Rng::seed_from_u64(seed), at_millis: start.as_millis() as f64 }
    }
}

impl Iterator for Arrivals {
    type Item = Timestamp;

    fn next(&mut self) -> Option<Timestamp> {
        if self.peak_per_milli <= 0.0 {
            return None;
        }
        loop {
            // Exponential gap at the peak rate; 1 - u is in (0, 1], so the log is finite.
            let u: f64 = self.rng.random();
            self.at_millis += -(1.0 - u).ln() / self.peak_per_milli;
            let candidate = Timestamp::from_millis(self.at_millis as i64);
            let keep = self.profile.rate_per_hour(candidate) / (self.peak_per_milli * MILLIS_PER_HOUR as f64);
            if self.rng.random::<f64>() < keep {
                return Some(candidate);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monday 2026-11-23 00:00 in Shenzhen (UTC+8).
    const MONDAY: Timestamp = Timestamp::from_millis(1_795_363_200_000);

    fn count_between(arrivals: Arrivals, end: Timestamp) -> Vec<Timestamp> {
        arrivals.take_while(|t| *t < end).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_calls() {
        let a: Vec<_> = Arrivals::new(CallProfile::default(), 7, MONDAY).take(1000).collect();
        let b: Vec<_> = Arrivals::new(CallProfile::default(), 7, MONDAY).take(1000).collect();
        let c: Vec<_> = Arrivals::new(CallProfile::default(), 8, MONDAY).take(1000).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.windows(2).all(|w| w[0] <= w[1]), "in order");
    }

    #[test]
    fn a_week_has_the_expected_volume() {
        let profile = CallProfile::default();
        let week_end = MONDAY.plus_seconds(7 * 86_400);
        let calls = count_between(Arrivals::new(profile.clone(), 1, MONDAY), week_end);
        // Expected: 7 days × 15,000 plus the weekend-night surplus (computed from the model).
        let expected: f64 = (0..7 * 24).map(|h| profile.rate_per_hour(MONDAY.plus_seconds(h * 3600))).sum();
        let ratio = calls.len() as f64 / expected;
        assert!((0.98..1.02).contains(&ratio), "{} calls, expected {expected:.0}", calls.len());
        assert!(expected > 7.0 * 15_000.0, "weekend nights add calls");
    }

    #[test]
    fn calls_follow_the_hourly_curve() {
        let calls = count_between(Arrivals::new(CallProfile::default(), 2, MONDAY), MONDAY.plus_seconds(14 * 86_400));
        let mut by_hour = [0usize; 24];
        for call in &calls {
            let local = call.as_millis() + 8 * MILLIS_PER_HOUR;
            by_hour[(local.rem_euclid(MILLIS_PER_DAY) / MILLIS_PER_HOUR) as usize] += 1;
        }
        // 17:00 (weight 5.6) sees ~4.3× the calls of 05:00 (weight 1.3).
        let ratio = by_hour[17] as f64 / by_hour[5] as f64;
        assert!((3.8..4.9).contains(&ratio), "17h/05h = {ratio:.2}, by hour {by_hour:?}");
    }

    #[test]
    fn friday_and_saturday_nights_are_busier() {
        let profile = CallProfile::default();
        let thursday_21h = MONDAY.plus_seconds(3 * 86_400 + 21 * 3600);
        let friday_21h = MONDAY.plus_seconds(4 * 86_400 + 21 * 3600);
        let saturday_01h = MONDAY.plus_seconds(5 * 86_400 + 3600);
        let friday_10h = MONDAY.plus_seconds(4 * 86_400 + 10 * 3600);
        let thursday_10h = MONDAY.plus_seconds(3 * 86_400 + 10 * 3600);
        assert!((profile.rate_per_hour(friday_21h) / profile.rate_per_hour(thursday_21h) - 1.175).abs() < 1e-9);
        assert!(profile.rate_per_hour(saturday_01h) > profile.rate_per_hour(MONDAY.plus_seconds(3600)));
        assert_eq!(profile.rate_per_hour(friday_10h), profile.rate_per_hour(thursday_10h));
    }

    #[test]
    fn a_silent_profile_generates_nothing() {
        let silent = CallProfile { calls_per_day: 0.0, ..CallProfile::default() };
        assert_eq!(Arrivals::new(silent, 1, MONDAY).next(), None);
    }
}
