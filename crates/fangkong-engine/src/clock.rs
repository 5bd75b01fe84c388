//! Where the engine gets the time. The core never reads a clock; the engine reads this one,
//! and tests and the simulator substitute a [`ManualClock`] they can move.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use fangkong_core::time::Timestamp;

pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp::from_millis(millis)
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock { millis: Arc::new(AtomicI64::new(start.as_millis())) }
    }

    pub fn set(&self, at: Timestamp) {
        self.millis.store(at.as_millis(), Ordering::SeqCst);
    }

    pub fn advance_millis(&self, millis: i64) {
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

/// The wall clock sped up: from its start, `factor` seconds pass for every real second (the
/// demo's simulated city). It can be moved forward (never back), so a demo restarted on
/// its old data resumes after the last simulated moment instead of before it.
#[derive(Debug)]
pub struct ScaledClock {
    started: std::time::Instant,
    origin_millis: AtomicI64,
    factor: f64,
}

impl ScaledClock {
    /// Starts at the wall clock's now.
    pub fn new(factor: f64) -> ScaledClock {
        ScaledClock {
            started: std::time::Instant::now(),
            origin_millis: AtomicI64::new(SystemClock.now().as_millis()),
            factor: factor.max(0.0),
        }
    }

    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// Moves the clock on to `at` if it is behind it.
    pub fn advance_to(&self, at: Timestamp) {
        let behind = at.millis_since(self.now());
        if behind > 0 {
            self.origin_millis.fetch_add(behind, Ordering::SeqCst);
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        let scaled = self.started.elapsed().as_secs_f64() * 1000.0 * self.factor;
        Timestamp::from_millis(self.origin_millis.load(Ordering::SeqCst) + scaled as i64)
    }
}

#[cfg(test)]
mod scaled_tests {
    use super::*;

    #[test]
    fn a_scaled_clock_runs_faster_and_only_moves_forward() {
        let clock = ScaledClock::new(1_000.0);
        let start = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let later = clock.now();
        assert!(later.millis_since(start) >= 20_000, "{} ms passed", later.millis_since(start));
        clock.advance_to(start); // behind: ignored
        assert!(clock.now() >= later);
        let ahead = later.plus_seconds(86_400);
        clock.advance_to(ahead);
        assert!(clock.now() >= ahead);
    }
}
