//! Account lockout: after `threshold` consecutive failed logins the account is locked for
//! `duration`. Attempts while locked are refused without counting, so an attacker cannot
//! keep a victim locked out for longer by hammering; a success resets the count.

use crate::time::Timestamp;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LockoutPolicy {
    pub threshold: u32,
    pub duration_millis: i64,
}

impl Default for LockoutPolicy {
    fn default() -> LockoutPolicy {
        LockoutPolicy { threshold: 5, duration_millis: 10 * 60 * 1000 }
    }
}

/// The login history that matters for lockout.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LoginState {
    pub failed_attempts: u32,
    pub locked_until: Option<Timestamp>,
}

impl LoginState {
    pub fn is_locked(&self, now: Timestamp) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    /// The state after a failed attempt at `now` (call only when not locked), and whether
    /// this failure locked the account.
    pub fn after_failure(self, now: Timestamp, policy: &LockoutPolicy) -> (LoginState, bool) {
        // A lock that has run out starts a fresh count.
        let previous = if self.locked_until.is_some() { 0 } else { self.failed_attempts };
        let failed_attempts = previous + 1;
        if failed_attempts >= policy.threshold {
            (LoginState { failed_attempts: 0, locked_until: Some(now.plus_millis(policy.duration_millis)) }, true)
        } else {
            (LoginState { failed_attempts, locked_until: None }, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_failure_locks_for_ten_minutes() {
        let policy = LockoutPolicy::default();
        let now = Timestamp::from_millis(1_000_000);
        let mut state = LoginState::default();
        for attempt in 1..=4 {
            let (next, locked) = state.after_failure(now, &policy);
            assert!(!locked && !next.is_locked(now), "attempt {attempt}");
            state = next;
        }
        let (state, locked) = state.after_failure(now, &policy);
        assert!(locked);
        assert!(state.is_locked(now));
        assert!(state.is_locked(now.plus_seconds(599)));
        assert!(!state.is_locked(now.plus_seconds(600)), "unlocked after the period");

        // After the lock runs out, one failure does not lock again.
        let (state, locked) = state.after_failure(now.plus_seconds(601), &policy);
        assert!(!locked);
        assert_eq!(state, LoginState { failed_attempts: 1, locked_until: None });
    }

    #[test]
    fn the_threshold_and_period_are_parameters() {
        let policy = LockoutPolicy { threshold: 2, duration_millis: 1_000 };
        let now = Timestamp::from_millis(0);
        let (state, _) = LoginState::default().after_failure(now, &policy);
        let (state, locked) = state.after_failure(now, &policy);
        assert!(locked && state.is_locked(now.plus_millis(999)) && !state.is_locked(now.plus_millis(1_000)));
    }
}
