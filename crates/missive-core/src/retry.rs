//! When to try a deferred delivery again, and when to give up: all the retry math in one pure
//! function, so the schedule can be tested without a clock.

use std::time::Duration;

/// Exponential backoff with jitter, a cap on the interval, and a maximum age.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the second attempt.
    pub base: Duration,
    /// Longest delay between two attempts.
    pub max_interval: Duration,
    /// After this long since acceptance, a temporary failure becomes final.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(60),
            max_interval: Duration::from_secs(2 * 60 * 60),
            max_age: Duration::from_secs(3 * 24 * 60 * 60),
        }
    }
}

/// What to do after a temporary failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again after this delay.
    RetryIn(Duration),
    /// The message is too old: give up.
    GiveUp,
}

impl RetryPolicy {
    /// The decision after `attempts` failed attempts (1 after the first), for a delivery accepted
    /// `age` ago. `jitter` in `[0, 1)` spreads retries by up to ±20% so a burst of deferrals does
    /// not come back as a burst.
    #[must_use]
    pub fn after_failure(&self, attempts: u32, age: Duration, jitter: f64) -> RetryDecision {
        if age >= self.max_age {
            return RetryDecision::GiveUp;
        }
        let exponent = attempts.saturating_sub(1).min(30);
        let backoff = self
            .base
            .saturating_mul(1u32 << exponent)
            .min(self.max_interval);
        let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
        let delay = backoff.mul_f64(factor).min(self.max_interval);
        // Never schedule past the point where we would give up anyway; one last try there.
        let remaining = self.max_age.saturating_sub(age);
        RetryDecision::RetryIn(delay.min(remaining))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_the_cap() {
        let policy = RetryPolicy::default();
        let delay = |attempts| match policy.after_failure(attempts, Duration::ZERO, 0.5) {
            RetryDecision::RetryIn(d) => d,
            RetryDecision::GiveUp => panic!("gave up"),
        };
        assert_eq!(delay(1), Duration::from_secs(60));
        assert_eq!(delay(2), Duration::from_secs(120));
        assert_eq!(delay(3), Duration::from_secs(240));
        assert_eq!(delay(20), Duration::from_secs(7200));
        assert_eq!(delay(u32::MAX), Duration::from_secs(7200));
    }

    #[test]
    fn old_messages_give_up_and_the_last_retry_lands_at_the_deadline() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.after_failure(3, policy.max_age, 0.5),
            RetryDecision::GiveUp
        );
        let almost = policy.max_age - Duration::from_secs(10);
        assert_eq!(
            policy.after_failure(9, almost, 0.5),
            RetryDecision::RetryIn(Duration::from_secs(10))
        );
    }

    proptest! {
        #[test]
        fn delays_stay_within_jitter_and_cap(attempts in 1u32..100, jitter in 0.0f64..1.0, age in 0u64..300_000) {
            let policy = RetryPolicy::default();
            let age = Duration::from_secs(age);
            match policy.after_failure(attempts, age, jitter) {
                RetryDecision::RetryIn(d) => {
                    prop_assert!(d <= policy.max_interval);
                    prop_assert!(age + d <= policy.max_age);
                    prop_assert!(d > Duration::ZERO);
                }
                RetryDecision::GiveUp => prop_assert!(age >= policy.max_age),
            }
        }
    }
}
