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

/// The fractions of the configured rate congestion advice steps through, fastest first.
pub const RATE_FACTORS: [f32; 4] = [1.0, 0.5, 0.25, 0.1];

/// Thresholds of the [`CongestionAdvisor`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CongestionConfig {
    /// The sender's configured report rate in Hz: advice is a fraction of it (see
    /// [`RATE_FACTORS`]). Default 10.
    pub full_rate_hz: f32,
    /// Samples waiting to be sent above which the link is congested, if the backlog is also
    /// not draining: since the previous observation on the same connection it grew, or
    /// shrank by less than a fifth of what is left (default 50).
    pub backlog_high: usize,
    /// Samples waiting below which the link may be clear (default 5).
    pub backlog_low: usize,
    /// Queueing delay (RTT p95 above the lowest RTT of the same connection) above which the
    /// link is congested (default 50 ms).
    pub rtt_p95_high: Duration,
    /// Queueing delay below which the link may be clear (default 30 ms).
    pub rtt_p95_low: Duration,
    /// Least time between two steps down (default 2 s).
    pub step_down_interval: Duration,
    /// How long the link must stay clear before one step up (default 10 s).
    pub step_up_hold: Duration,
}

impl Default for CongestionConfig {
    fn default() -> Self {
        Self {
            full_rate_hz: 10.0,
            backlog_high: 50,
            backlog_low: 5,
            rtt_p95_high: Duration::from_millis(50),
            rtt_p95_low: Duration::from_millis(30),
            step_down_interval: Duration::from_secs(2),
            step_up_hold: Duration::from_secs(10),
        }
    }
}

/// A backlog that would take more observations than this to drain at its current pace
/// counts as congestion.
const DRAIN_OBSERVATIONS: usize = 5;

/// What the [`CongestionAdvisor`] sees of one connection at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkObservation {
    /// Samples produced and not yet sent.
    pub backlog: usize,
    /// RTT p95 minus the lowest RTT, over round trips of this connection only (`None`
    /// before its first).
    pub queueing: Option<Duration>,
}

/// Advises the sender to step its RSSI rate down through [`RATE_FACTORS`] of the configured
/// rate under congestion, and back up, one step at a time, after the link has stayed clear
/// for a hold period.
///
/// Congestion is what the link does while it is up: a backlog that does not drain, or round
/// trips slower than the same connection's fastest. A reconnect is not congestion: call
/// [`link_up`](Self::link_up) on each new connection and the backlog it starts with (the
/// samples resent from `resume_seq`) is not held against it; RTTs are compared only
/// within one connection, so a slow link is not mistaken for a congested one either.
#[derive(Debug, Clone)]
pub struct CongestionAdvisor {
    config: CongestionConfig,
    level: usize,
    last_change: Option<Instant>,
    clear_since: Option<Instant>,
    /// The backlog at the previous observation on this connection.
    last_backlog: Option<usize>,
}

impl CongestionAdvisor {
    /// Starts at the full rate.
    pub fn new(config: CongestionConfig) -> Self {
        Self {
            config,
            level: 0,
            last_change: None,
            clear_since: None,
            last_backlog: None,
        }
    }

    /// A new connection is up: its first backlog is a baseline, not a trend.
    pub fn link_up(&mut self) {
        self.last_backlog = None;
    }

    /// The currently advised rate in Hz.
    pub fn rate_hz(&self) -> f32 {
        self.config.full_rate_hz * RATE_FACTORS[self.level]
    }

    /// Feeds one observation of the current connection; returns the new advised rate when
    /// it changes.
    pub fn observe(&mut self, now: Instant, link: LinkObservation) -> Option<f32> {
        let c = &self.config;
        // Not draining: growing, or shrinking so slowly it would take more than
        // DRAIN_OBSERVATIONS more observations to clear.
        let stuck = self.last_backlog.is_some_and(|prev| {
            let drained = prev.saturating_sub(link.backlog);
            link.backlog / DRAIN_OBSERVATIONS >= drained
        });
        self.last_backlog = Some(link.backlog);
        let congested = (link.backlog > c.backlog_high && stuck)
            || link.queueing.is_some_and(|q| q > c.rtt_p95_high);
        let clear = link.backlog < c.backlog_low && link.queueing.is_none_or(|q| q < c.rtt_p95_low);
        if congested {
            self.clear_since = None;
            let may_step = self
                .last_change
                .is_none_or(|t| now.saturating_duration_since(t) >= c.step_down_interval);
            if may_step && self.level + 1 < RATE_FACTORS.len() {
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

    fn obs(backlog: usize, queueing_ms: Option<u64>) -> LinkObservation {
        LinkObservation {
            backlog,
            queueing: queueing_ms.map(Duration::from_millis),
        }
    }

    #[test]
    fn advisor_steps_down_and_recovers_with_hysteresis() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut a = CongestionAdvisor::new(CongestionConfig::default());
        // A first backlog is a baseline; growth beyond the threshold is congestion.
        assert_eq!(a.observe(t0, obs(60, None)), None);
        assert_eq!(a.observe(t0 + s(1), obs(100, None)), Some(5.0));
        // Not again before the step-down interval.
        assert_eq!(a.observe(t0 + s(2), obs(150, None)), None);
        assert_eq!(a.observe(t0 + s(3), obs(200, None)), Some(2.5));
        assert_eq!(a.observe(t0 + s(5), obs(0, Some(80))), Some(1.0));
        assert_eq!(
            a.observe(t0 + s(7), obs(0, Some(80))),
            None,
            "already at the floor"
        );
        // Clear, but in the band between thresholds: no progress toward recovery.
        assert_eq!(a.observe(t0 + s(8), obs(10, None)), None);
        assert_eq!(a.observe(t0 + s(20), obs(10, None)), None);
        // Clear for 10 s: one step up, then another 10 s for the next.
        assert_eq!(a.observe(t0 + s(21), obs(0, None)), None);
        assert_eq!(a.observe(t0 + s(30), obs(0, None)), None);
        assert_eq!(a.observe(t0 + s(31), obs(0, None)), Some(2.5));
        assert_eq!(a.observe(t0 + s(35), obs(0, None)), None);
        assert_eq!(a.observe(t0 + s(41), obs(0, None)), Some(5.0));
        assert_eq!(a.observe(t0 + s(51), obs(0, None)), Some(10.0));
        assert_eq!(a.observe(t0 + s(70), obs(0, None)), None);
        assert_eq!(a.rate_hz(), 10.0);
    }

    #[test]
    fn advice_is_relative_to_the_configured_rate() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut a = CongestionAdvisor::new(CongestionConfig {
            full_rate_hz: 50.0,
            ..CongestionConfig::default()
        });
        assert_eq!(a.rate_hz(), 50.0);
        assert_eq!(a.observe(t0, obs(0, Some(80))), Some(25.0));
        assert_eq!(a.observe(t0 + s(2), obs(0, Some(80))), Some(12.5));
        assert_eq!(a.observe(t0 + s(4), obs(0, Some(80))), Some(5.0));
    }

    #[test]
    fn a_reconnect_backlog_that_drains_is_not_congestion() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut a = CongestionAdvisor::new(CongestionConfig::default());
        for cycle in 0..10u64 {
            // Each connection starts with the outage's samples to resend, which shrink.
            a.link_up();
            let t = t0 + s(2 * cycle);
            assert_eq!(a.observe(t, obs(500, None)), None);
            assert_eq!(a.observe(t + s(1), obs(200, None)), None);
        }
        assert_eq!(a.rate_hz(), 10.0);
        // The same backlog growing while the link is up is congestion.
        a.link_up();
        assert_eq!(a.observe(t0 + s(30), obs(200, None)), None);
        assert_eq!(a.observe(t0 + s(31), obs(300, None)), Some(5.0));
    }
}
