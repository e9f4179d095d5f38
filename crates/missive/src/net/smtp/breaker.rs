//! A circuit breaker per route: after a few attempts in a row could not get a usable
//! connection (refused, timed out, a 4xx or 5xx greeting, a failed handshake or login), the
//! route is open and its attempts are deferred at once without connecting. When the pause is
//! over, one attempt probes the route: it closes the breaker if it gets through, and doubles
//! the pause (up to [`MAX_PAUSE`]) if not. A route that is down is probed, not hammered, and
//! defers only its own mail.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Failed connections in a row that open the breaker.
pub const THRESHOLD: u32 = 3;
/// The first pause; each failed probe doubles it.
pub const FIRST_PAUSE: Duration = Duration::from_secs(5);
pub const MAX_PAUSE: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
    pause: Duration,
}

/// One route's breaker.
#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
}

/// Why an attempt was not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// Failed connections in a row.
    pub failures: u32,
    /// Until the next probe.
    pub retry_in: Duration,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                failures: 0,
                open_until: None,
                probing: false,
                pause: FIRST_PAUSE,
            }),
        }
    }
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this short lock leaves a consistent state; keep using it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether an attempt may connect now: always while closed; once the pause is over, to one
    /// probe at a time.
    ///
    /// # Errors
    /// [`Open`] while the route is paused or another attempt is probing it.
    pub fn admit(&self) -> Result<(), Open> {
        let mut state = self.lock();
        let Some(until) = state.open_until else {
            return Ok(());
        };
        let now = Instant::now();
        if now < until || state.probing {
            return Err(Open {
                failures: state.failures,
                retry_in: until.saturating_duration_since(now),
            });
        }
        state.probing = true;
        Ok(())
    }

    /// Records whether an admitted attempt got a usable connection.
    pub fn record(&self, connected: bool) {
        let mut state = self.lock();
        if connected {
            *state = State {
                failures: 0,
                open_until: None,
                probing: false,
                pause: FIRST_PAUSE,
            };
            return;
        }
        state.failures = state.failures.saturating_add(1);
        if state.probing {
            state.probing = false;
            state.pause = (state.pause * 2).min(MAX_PAUSE);
            state.open_until = Some(Instant::now() + state.pause);
        } else if state.failures >= THRESHOLD && state.open_until.is_none() {
            state.open_until = Some(Instant::now() + state.pause);
        }
    }

    /// Whether attempts are being held back now.
    #[cfg(test)]
    fn is_open(&self) -> bool {
        self.lock().open_until.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_probes_once_and_backs_off() {
        let breaker = Breaker::default();
        for _ in 0..THRESHOLD - 1 {
            breaker.admit().unwrap();
            breaker.record(false);
        }
        assert!(!breaker.is_open());
        breaker.admit().unwrap();
        breaker.record(false);
        let open = breaker.admit().unwrap_err();
        assert_eq!(open.failures, THRESHOLD);
        assert!(open.retry_in <= FIRST_PAUSE);

        tokio::time::advance(FIRST_PAUSE).await;
        breaker.admit().unwrap();
        // One probe at a time.
        assert!(breaker.admit().is_err());
        breaker.record(false);
        tokio::time::advance(FIRST_PAUSE).await;
        assert!(breaker.admit().is_err(), "the pause doubled");
        tokio::time::advance(FIRST_PAUSE).await;
        breaker.admit().unwrap();
        breaker.record(true);
        assert!(!breaker.is_open());
        breaker.admit().unwrap();
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = Breaker::default();
        for _ in 0..10 {
            breaker.record(false);
            breaker.record(true);
        }
        assert!(!breaker.is_open());
    }
}
