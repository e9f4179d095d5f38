//! Pacing for the workers' statements: a lease or a write has a fixed cost in Postgres (planning,
//! index probes, a commit) whether it carries one row or a hundred, so under load the delivery
//! worker and the webhook dispatcher space them out and let the rows batch up meanwhile.

use std::time::Duration;

/// Spaces events `interval` apart on average while letting up to `burst` of them through
/// back to back (the generic cell rate algorithm: a theoretical time of the next event that
/// advances by `interval` with each one). Below one event per interval nothing waits; above,
/// events are paced to that rate and the work batches up meanwhile.
#[derive(Debug)]
pub struct Pace {
    interval: Duration,
    /// How far ahead of now the theoretical time may run before an event must wait.
    slack: Duration,
    theoretical: Option<tokio::time::Instant>,
}

impl Pace {
    #[must_use]
    pub fn new(interval: Duration, burst: u32) -> Self {
        Self {
            interval,
            slack: interval * burst.saturating_sub(1),
            theoretical: None,
        }
    }

    /// When the event that wants to happen at `now` may happen; counts it as done then.
    pub fn next(&mut self, now: tokio::time::Instant) -> tokio::time::Instant {
        let theoretical = self.theoretical.map_or(now, |t| t.max(now));
        let at = theoretical
            .checked_sub(self.slack)
            .map_or(now, |earliest| earliest.max(now));
        self.theoretical = Some(theoretical + self.interval);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn pace_lets_a_slow_stream_through_at_once() {
        let mut pace = Pace::new(10 * MS, 4);
        let start = tokio::time::Instant::now();
        // One event every 25 ms, for a long time: none waits.
        for i in 0..100 {
            let now = start + 25 * MS * i;
            assert_eq!(pace.next(now), now);
        }
    }

    #[test]
    fn pace_allows_a_burst_then_spaces_events_by_the_interval() {
        let mut pace = Pace::new(10 * MS, 4);
        let now = tokio::time::Instant::now();
        let times: Vec<Duration> = (0..7).map(|_| pace.next(now) - now).collect();
        assert_eq!(times, [0, 0, 0, 0, 10, 20, 30].map(|n| n * MS));
        // Once the queue of them is past, the credit comes back with time.
        let later = now + 200 * MS;
        assert_eq!(pace.next(later), later);
    }

    #[test]
    fn pace_without_burst_spaces_every_event() {
        let mut pace = Pace::new(10 * MS, 1);
        let now = tokio::time::Instant::now();
        assert_eq!(pace.next(now), now);
        assert_eq!(pace.next(now + 3 * MS), now + 10 * MS);
        assert_eq!(pace.next(now + 30 * MS), now + 30 * MS);
    }
}
