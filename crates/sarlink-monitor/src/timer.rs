//! RAII scope timer. This is the one place in the crate that reads a clock.

use std::time::{Duration, Instant};

use crate::metrics::Histogram;

/// Measures the time from its creation to its drop (or [`ScopeTimer::stop`]) and records it
/// into a [`Histogram`]. For profiling hot paths.
///
/// # Examples
///
/// ```
/// use sarlink_monitor::ScopeTimer;
/// use sarlink_monitor::metrics::Histogram;
///
/// let h = Histogram::new();
/// {
///     let _t = ScopeTimer::new(&h);
///     // ... work ...
/// }
/// let elapsed = h.start_timer().stop();
/// assert_eq!(h.snapshot().count, 2);
/// assert!(elapsed <= h.snapshot().max + h.snapshot().max / 500);
/// ```
#[derive(Debug)]
#[must_use = "a timer records when dropped; bind it to a named variable such as `_timer`"]
pub struct ScopeTimer<'a> {
    histogram: &'a Histogram,
    start: Instant,
    recorded: bool,
}

impl<'a> ScopeTimer<'a> {
    /// Starts timing now.
    pub fn new(histogram: &'a Histogram) -> Self {
        Self {
            histogram,
            start: Instant::now(),
            recorded: false,
        }
    }

    /// Time elapsed since the timer started, without recording.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records the elapsed time now and returns it (instead of at the end of the scope).
    pub fn stop(mut self) -> Duration {
        let elapsed = self.start.elapsed();
        self.histogram.record(elapsed);
        self.recorded = true;
        elapsed
    }

    /// Drops the timer without recording anything (e.g. on an error path that would skew
    /// the latency distribution).
    pub fn discard(mut self) {
        self.recorded = true;
    }
}

impl Drop for ScopeTimer<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.histogram.record(self.start.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_once_on_drop_stop_and_not_on_discard() {
        let h = Histogram::new();
        drop(ScopeTimer::new(&h));
        assert_eq!(h.snapshot().count, 1);
        let _ = h.start_timer().stop();
        assert_eq!(h.snapshot().count, 2);
        h.start_timer().discard();
        assert_eq!(h.snapshot().count, 2);
    }
}
