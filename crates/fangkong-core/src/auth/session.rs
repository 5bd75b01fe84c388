//! Session lifetime: a session ends after `idle` without use or `absolute` after login,
//! whichever comes first (CJIS: session lock after inactivity; MLPS 3: session timeout).

use crate::time::Timestamp;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SessionPolicy {
    pub idle_millis: i64,
    pub absolute_millis: i64,
}

impl Default for SessionPolicy {
    fn default() -> SessionPolicy {
        SessionPolicy { idle_millis: 30 * 60 * 1000, absolute_millis: 12 * 60 * 60 * 1000 }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SessionState {
    Active,
    /// Unused for longer than the idle timeout.
    Idle,
    /// Older than the absolute lifetime.
    Expired,
}

impl SessionPolicy {
    pub fn state(&self, created_at: Timestamp, last_used_at: Timestamp, now: Timestamp) -> SessionState {
        if now.millis_since(created_at) >= self.absolute_millis {
            SessionState::Expired
        } else if now.millis_since(last_used_at) >= self.idle_millis {
            SessionState::Idle
        } else {
            SessionState::Active
        }
    }

    /// When a session used at `last_used_at` will end if not used again.
    pub fn ends_at(&self, created_at: Timestamp, last_used_at: Timestamp) -> Timestamp {
        created_at.plus_millis(self.absolute_millis).min(last_used_at.plus_millis(self.idle_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_and_absolute_limits() {
        let policy = SessionPolicy::default();
        let login = Timestamp::from_millis(0);
        let minute = 60_000;
        assert_eq!(policy.state(login, login, login.plus_millis(29 * minute)), SessionState::Active);
        assert_eq!(policy.state(login, login, login.plus_millis(30 * minute)), SessionState::Idle);
        // Used every 20 minutes, it lives until the 12-hour mark and no longer.
        let last = login.plus_millis(11 * 60 * minute + 50 * minute);
        assert_eq!(policy.state(login, last, login.plus_millis(11 * 60 * minute + 59 * minute)), SessionState::Active);
        assert_eq!(policy.state(login, last, login.plus_millis(12 * 60 * minute)), SessionState::Expired);
        assert_eq!(policy.ends_at(login, last), login.plus_millis(12 * 60 * minute));
        assert_eq!(policy.ends_at(login, login), login.plus_millis(30 * minute));
    }
}
