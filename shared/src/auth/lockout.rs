//! Per-account lockout, pure. `threshold` failures inside one window lock the
//! account for `duration`. While locked, failures are not counted and do not
//! extend the lock, so an attacker can delay a user by at most one duration
//! per window, never lock them out indefinitely with a steady trickle.

use crate::config::LockoutPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attempts {
    pub failed: u32,
    pub window_started_at: Option<i64>,
    pub locked_until: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// The account was already locked: nothing changes.
    AlreadyLocked,
    /// Counted; `locked` says whether this failure crossed the threshold.
    Counted { next: Attempts, locked: bool },
}

impl Attempts {
    pub fn is_locked(&self, now: i64) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    pub fn after_failure(&self, policy: &LockoutPolicy, now: i64) -> FailureOutcome {
        if self.is_locked(now) {
            return FailureOutcome::AlreadyLocked;
        }
        let window_open =
            self.window_started_at.is_some_and(|start| now < start.saturating_add(policy.window_seconds));
        let (failed, window_started_at) = if window_open {
            (self.failed.saturating_add(1), self.window_started_at)
        } else {
            (1, Some(now))
        };
        if failed >= policy.threshold {
            let next = Attempts {
                failed: 0,
                window_started_at: None,
                locked_until: Some(now.saturating_add(policy.duration_seconds)),
            };
            FailureOutcome::Counted { next, locked: true }
        } else {
            FailureOutcome::Counted {
                next: Attempts { failed, window_started_at, locked_until: None },
                locked: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: LockoutPolicy = LockoutPolicy { threshold: 3, window_seconds: 60, duration_seconds: 300 };

    fn fail(a: Attempts, now: i64) -> (Attempts, bool) {
        match a.after_failure(&POLICY, now) {
            FailureOutcome::Counted { next, locked } => (next, locked),
            FailureOutcome::AlreadyLocked => (a, false),
        }
    }

    #[test]
    fn locks_after_threshold_within_window() {
        let (a, l1) = fail(Attempts::default(), 0);
        let (a, l2) = fail(a, 10);
        let (a, l3) = fail(a, 20);
        assert_eq!((l1, l2, l3), (false, false, true));
        assert!(a.is_locked(21));
        assert!(a.is_locked(319));
        assert!(!a.is_locked(320));
    }

    #[test]
    fn window_expiry_restarts_the_count() {
        let (a, _) = fail(Attempts::default(), 0);
        let (a, _) = fail(a, 10);
        let (a, locked) = fail(a, 61);
        assert!(!locked);
        assert_eq!(a.failed, 1);
        assert_eq!(a.window_started_at, Some(61));
    }

    #[test]
    fn failures_while_locked_neither_count_nor_extend() {
        let locked = Attempts { failed: 0, window_started_at: None, locked_until: Some(100) };
        assert_eq!(locked.after_failure(&POLICY, 50), FailureOutcome::AlreadyLocked);
        let (after, _) = fail(locked, 100);
        assert_eq!(after.failed, 1);
        assert_eq!(after.locked_until, None);
    }
}
