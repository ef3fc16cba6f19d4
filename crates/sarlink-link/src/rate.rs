//! Bandwidth cap (token bucket) and congestion advice.

use std::time::{Duration, Instant};

/// A token bucket in bytes: `rate` bytes per second, holding at most `burst` bytes.
///
/// A send larger than the whole burst is allowed when the bucket is full and leaves it in
/// debt, so one large frame can never block the link for ever.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling at `bytes_per_sec`, holding at most `burst` bytes.
    ///
    /// # Panics
    /// When `bytes_per_sec` is zero.
    pub fn new(bytes_per_sec: u64, burst: u64, now: Instant) -> Self {
        assert!(bytes_per_sec > 0, "a bandwidth cap must be positive");
        let burst = burst.max(1) as f64;
        Self {
            rate: bytes_per_sec as f64,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.last = self.last.max(now);
    }

    /// Takes `bytes` if the bucket allows it now.
    pub fn try_take(&mut self, now: Instant, bytes: usize) -> bool {
        self.refill(now);
        let need = bytes as f64;
        if self.tokens >= need || self.tokens >= self.burst {
            self.tokens -= need;
            true
        } else {
            false
        }
    }

    /// Whether any tokens are left (the next send may go, possibly into debt).
    pub fn has_tokens(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens > 0.0
    }

    /// Charges `bytes` that were sent, going into debt if need be.
    pub fn consume(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
    }

    /// When [`has_tokens`](Self::has_tokens) will next be true, as of the last refill.
    pub fn ready_at(&self) -> Instant {
        if self.tokens > 0.0 {
            self.last
        } else {
            // A little past the instant the debt is paid, so the bucket is positive then.
            self.last + Duration::from_secs_f64((-self.tokens + 1.0) / self.rate)
        }
    }

    /// How long until `bytes` can be taken (zero if now).
    pub fn wait_for(&mut self, now: Instant, bytes: usize) -> Duration {
        self.refill(now);
        let need = (bytes as f64).min(self.burst);
        if self.tokens >= need {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((need - self.tokens) / self.rate)
        }
    }
}

/// The RSSI report rates congestion advice steps through, fastest first.
pub const RATE_STEPS_HZ: [f32; 4] = [10.0, 5.0, 2.0, 1.0];

/// Thresholds of the [`CongestionAdvisor`].
#[derive(Debug, Clone)]
pub struct CongestionConfig {
    /// Samples waiting to be sent above which the link is congested (default 50).
    pub backlog_high: usize,
    /// Samples waiting below which the link may be clear (default 5).
    pub backlog_low: usize,
    /// RTT p95 above which the link is congested (default 50 ms).
    pub rtt_p95_high: Duration,
    /// RTT p95 below which the link may be clear (default 30 ms).
    pub rtt_p95_low: Duration,
    /// Least time between two steps down (default 2 s).
    pub step_down_interval: Duration,
    /// How long the link must stay clear before one step up (default 10 s).
    pub step_up_hold: Duration,
}

impl Default for CongestionConfig {
    fn default() -> Self {
        Self {
            backlog_high: 50,
            backlog_low: 5,
            rtt_p95_high: Duration::from_millis(50),
            rtt_p95_low: Duration::from_millis(30),
            step_down_interval: Duration::from_secs(2),
            step_up_hold: Duration::from_secs(10),
        }
    }
}

/// Advises the sender to step its RSSI rate 10 -> 5 -> 2 -> 1 Hz under congestion and
/// back up, one step at a time, after the link has stayed clear for a hold period.
#[derive(Debug, Clone)]
pub struct CongestionAdvisor {
    config: CongestionConfig,
    level: usize,
    last_change: Option<Instant>,
    clear_since: Option<Instant>,
}

impl CongestionAdvisor {
    /// Starts at the fastest rate.
    pub fn new(config: CongestionConfig) -> Self {
        Self {
            config,
            level: 0,
            last_change: None,
            clear_since: None,
        }
    }

    /// The currently advised rate in Hz.
    pub fn rate_hz(&self) -> f32 {
        RATE_STEPS_HZ[self.level]
    }

    /// Feeds one observation; returns the new advised rate when it changes.
    pub fn observe(
        &mut self,
        now: Instant,
        backlog: usize,
        rtt_p95: Option<Duration>,
    ) -> Option<f32> {
        let c = &self.config;
        let congested = backlog > c.backlog_high || rtt_p95.is_some_and(|r| r > c.rtt_p95_high);
        let clear = backlog < c.backlog_low && rtt_p95.is_none_or(|r| r < c.rtt_p95_low);
        if congested {
            self.clear_since = None;
            let may_step = self
                .last_change
                .is_none_or(|t| now.saturating_duration_since(t) >= c.step_down_interval);
            if may_step && self.level + 1 < RATE_STEPS_HZ.len() {
                self.level += 1;
                self.last_change = Some(now);
                return Some(self.rate_hz());
            }
        } else if clear {
            let since = *self.clear_since.get_or_insert(now);
            if self.level > 0 && now.saturating_duration_since(since) >= c.step_up_hold {
                self.level -= 1;
                self.last_change = Some(now);
                self.clear_since = Some(now);
                return Some(self.rate_hz());
            }
        } else {
            self.clear_since = None;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_limits_the_average_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 100, t0);
        assert!(b.try_take(t0, 100));
        assert!(!b.try_take(t0, 1));
        assert_eq!(b.wait_for(t0, 50), Duration::from_millis(50));
        assert!(b.try_take(t0 + Duration::from_millis(50), 50));
        // Over 10 s, never more than rate * t + burst.
        let mut sent = 0;
        for ms in 0..10_000u64 {
            if b.try_take(t0 + Duration::from_millis(50 + ms), 10) {
                sent += 10;
            }
        }
        assert!(sent <= 10_000 + 100, "{sent}");
        assert!(sent >= 9_900, "{sent}");
    }

    #[test]
    fn bucket_lets_an_oversized_send_through_when_full() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 100, t0);
        assert!(b.try_take(t0, 500));
        // In debt by 400 bytes: 0.5 s until the burst is back.
        assert!(!b.try_take(t0 + Duration::from_millis(400), 100));
        assert!(b.try_take(t0 + Duration::from_millis(500), 100));
    }

    #[test]
    fn advisor_steps_down_and_recovers_with_hysteresis() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut a = CongestionAdvisor::new(CongestionConfig::default());
        assert_eq!(a.observe(t0, 100, None), Some(5.0));
        // Not again before the step-down interval.
        assert_eq!(a.observe(t0 + s(1), 100, None), None);
        assert_eq!(a.observe(t0 + s(2), 100, None), Some(2.0));
        assert_eq!(
            a.observe(t0 + s(4), 0, Some(Duration::from_millis(80))),
            Some(1.0)
        );
        assert_eq!(
            a.observe(t0 + s(6), 100, None),
            None,
            "already at the floor"
        );
        // Clear, but in the band between thresholds: no progress toward recovery.
        assert_eq!(a.observe(t0 + s(7), 10, None), None);
        assert_eq!(a.observe(t0 + s(20), 10, None), None);
        // Clear for 10 s: one step up, then another 10 s for the next.
        assert_eq!(a.observe(t0 + s(21), 0, None), None);
        assert_eq!(a.observe(t0 + s(30), 0, None), None);
        assert_eq!(a.observe(t0 + s(31), 0, None), Some(2.0));
        assert_eq!(a.observe(t0 + s(35), 0, None), None);
        assert_eq!(a.observe(t0 + s(41), 0, None), Some(5.0));
        assert_eq!(a.observe(t0 + s(51), 0, None), Some(10.0));
        assert_eq!(a.observe(t0 + s(70), 0, None), None);
        assert_eq!(a.rate_hz(), 10.0);
    }
}
