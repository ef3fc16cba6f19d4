//! Recent round-trip times.

use std::time::Duration;

/// How many recent round trips [`RttWindow`] keeps.
pub const RTT_WINDOW: usize = 64;

/// The most recent [`RTT_WINDOW`] round-trip times of a link, with percentiles over them.
///
/// A session pings once a second, so this covers about the last minute: what congestion
/// advice and link health need, in a fixed 256 bytes (microseconds, saturating at about 71
/// minutes: a server holds two windows per connection, so they are kept small). Long-run
/// distributions belong in a `sarlink_monitor` histogram fed from
/// [`Event::Rtt`](crate::Event::Rtt).
#[derive(Debug, Clone)]
pub struct RttWindow {
    samples: [u32; RTT_WINDOW],
    next: usize,
    len: usize,
    total: u64,
}

impl Default for RttWindow {
    fn default() -> Self {
        Self {
            samples: [0; RTT_WINDOW],
            next: 0,
            len: 0,
            total: 0,
        }
    }
}

/// Summary of an [`RttWindow`]; all zero when it is empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RttStats {
    /// Round trips measured in the whole session.
    pub count: u64,
    /// The latest.
    pub last: Duration,
    /// Smallest in the window: the link's delay without queueing.
    pub min: Duration,
    /// Median of the window.
    pub p50: Duration,
    /// 95th percentile of the window.
    pub p95: Duration,
    /// Largest in the window.
    pub max: Duration,
}

impl RttWindow {
    /// Adds one measurement (to the microsecond), forgetting the oldest when full.
    pub fn record(&mut self, rtt: Duration) {
        self.samples[self.next] = u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX);
        self.next = (self.next + 1) % RTT_WINDOW;
        self.len = (self.len + 1).min(RTT_WINDOW);
        self.total += 1;
    }

    /// Percentiles over the window (nearest rank; sorts a copy of at most 64 values).
    pub fn stats(&self) -> RttStats {
        if self.len == 0 {
            return RttStats::default();
        }
        let mut sorted = self.samples;
        let window = &mut sorted[..self.len];
        window.sort_unstable();
        let us = |v: u32| Duration::from_micros(u64::from(v));
        let rank =
            |q: f64| us(window[((q * self.len as f64).ceil() as usize).clamp(1, self.len) - 1]);
        let last = us(self.samples[(self.next + RTT_WINDOW - 1) % RTT_WINDOW]);
        RttStats {
            count: self.total,
            last,
            min: us(window[0]),
            p50: rank(0.5),
            p95: rank(0.95),
            max: us(window[self.len - 1]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_cover_only_the_recent_window() {
        let mut w = RttWindow::default();
        assert_eq!(w.stats(), RttStats::default());
        for ms in 1..=100u64 {
            w.record(Duration::from_millis(ms));
        }
        let s = w.stats();
        // The window holds 37..=100 ms.
        assert_eq!(s.count, 100);
        assert_eq!(s.last, Duration::from_millis(100));
        assert_eq!(s.max, Duration::from_millis(100));
        assert_eq!(s.min, Duration::from_millis(37));
        assert_eq!(s.p50, Duration::from_millis(68));
        assert_eq!(s.p95, Duration::from_millis(97));
        w.record(Duration::from_millis(1));
        assert_eq!(w.stats().last, Duration::from_millis(1));
    }
}
