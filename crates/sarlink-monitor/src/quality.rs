//! Connection quality 0-100 from latency (30 %), loss (40 %) and stability (30 %).
//!
//! # Formula
//!
//! Each component is a score in `0.0..=1.0`:
//!
//! - **latency** = 1 at `rtt <= rtt_good` (30 ms), 0 at `rtt >= rtt_bad` (300 ms), linear
//!   between;
//! - **loss** = `1 - loss_ratio / loss_bad_ratio`, clamped (0 % loss = 1, 10 % or more = 0);
//!   a NaN ratio counts as total loss;
//! - **stability** = 1 at `jitter <= jitter_good` (5 ms), 0 at `jitter >= jitter_bad`
//!   (50 ms), linear between. Jitter is the smoothed variation between consecutive RTTs
//!   ([`JitterEstimator`], as in RFC 3550 section 6.4.1).
//!
//! `score = round(100 * (0.3 * latency + 0.4 * loss + 0.3 * stability))`.

use std::time::Duration;

/// A connection quality in `0..=100` (100 is perfect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QualityScore(u8);

/// The value was above 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("quality score {value} is above 100")]
pub struct QualityScoreError {
    /// The rejected value.
    pub value: u8,
}

impl QualityScore {
    /// Validates a score.
    ///
    /// # Errors
    ///
    /// [`QualityScoreError`] above 100.
    pub fn new(value: u8) -> Result<Self, QualityScoreError> {
        if value > 100 {
            Err(QualityScoreError { value })
        } else {
            Ok(Self(value))
        }
    }

    /// The score.
    pub fn value(self) -> u8 {
        self.0
    }
}

/// Bounds of the component scores. The defaults are the values in the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct QualityConfig {
    /// RTT at or below which latency scores 1. Default 30 ms (the RTT warning limit).
    pub rtt_good: Duration,
    /// RTT at or above which latency scores 0. Default 300 ms.
    pub rtt_bad: Duration,
    /// Loss ratio at or above which loss scores 0. Default 0.10.
    pub loss_bad_ratio: f64,
    /// Jitter at or below which stability scores 1. Default 5 ms.
    pub jitter_good: Duration,
    /// Jitter at or above which stability scores 0. Default 50 ms.
    pub jitter_bad: Duration,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            rtt_good: Duration::from_millis(30),
            rtt_bad: Duration::from_millis(300),
            loss_bad_ratio: 0.10,
            jitter_good: Duration::from_millis(5),
            jitter_bad: Duration::from_millis(50),
        }
    }
}

/// Link measurements over some window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkStats {
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Lost / sent in the window, `0.0..=1.0` (values outside are clamped).
    pub loss_ratio: f64,
    /// RTT variation ([`JitterEstimator::jitter`]).
    pub jitter: Duration,
}

/// A score with its components.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityBreakdown {
    /// Latency component, `0.0..=1.0`.
    pub latency: f64,
    /// Loss component, `0.0..=1.0`.
    pub loss: f64,
    /// Stability component, `0.0..=1.0`.
    pub stability: f64,
    /// The weighted score.
    pub score: QualityScore,
}

/// Scores a link.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sarlink_monitor::quality::{LinkStats, QualityConfig, assess};
///
/// let ms = Duration::from_millis;
/// let good = LinkStats { rtt: ms(20), loss_ratio: 0.0, jitter: ms(2) };
/// assert_eq!(assess(&good, &QualityConfig::default()).score.value(), 100);
/// let lossy = LinkStats { loss_ratio: 0.05, ..good };
/// assert_eq!(assess(&lossy, &QualityConfig::default()).score.value(), 80);
/// ```
pub fn assess(stats: &LinkStats, config: &QualityConfig) -> QualityBreakdown {
    let latency = falling(stats.rtt, config.rtt_good, config.rtt_bad);
    let loss_ratio = if stats.loss_ratio.is_nan() {
        1.0
    } else {
        stats.loss_ratio.clamp(0.0, 1.0)
    };
    let loss = if config.loss_bad_ratio > 0.0 {
        (1.0 - loss_ratio / config.loss_bad_ratio).clamp(0.0, 1.0)
    } else if loss_ratio > 0.0 {
        0.0
    } else {
        1.0
    };
    let stability = falling(stats.jitter, config.jitter_good, config.jitter_bad);
    let weighted = 100.0 * (0.3 * latency + 0.4 * loss + 0.3 * stability);
    // Each component is in 0..=1 and the weights sum to 1, so the rounded value is 0..=100.
    let score = QualityScore(weighted.round().clamp(0.0, 100.0) as u8);
    QualityBreakdown {
        latency,
        loss,
        stability,
        score,
    }
}

/// 1 at or below `good`, 0 at or above `bad`, linear between.
fn falling(value: Duration, good: Duration, bad: Duration) -> f64 {
    if value <= good {
        1.0
    } else if value >= bad {
        0.0
    } else {
        (bad - value).as_secs_f64() / (bad - good).as_secs_f64()
    }
}

/// Smoothed variation between consecutive RTT samples: `J += (|D| - J) / 16`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct JitterEstimator {
    last_rtt: Option<Duration>,
    jitter_s: f64,
}

impl JitterEstimator {
    /// An estimator with no samples (jitter 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds in one RTT sample.
    pub fn observe(&mut self, rtt: Duration) {
        if let Some(last) = self.last_rtt {
            let d = rtt.abs_diff(last).as_secs_f64();
            self.jitter_s += (d - self.jitter_s) / 16.0;
        }
        self.last_rtt = Some(rtt);
    }

    /// The current jitter estimate.
    pub fn jitter(&self) -> Duration {
        Duration::from_secs_f64(self.jitter_s.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn score(rtt: u64, loss: f64, jitter: u64) -> u8 {
        let s = LinkStats {
            rtt: ms(rtt),
            loss_ratio: loss,
            jitter: ms(jitter),
        };
        assess(&s, &QualityConfig::default()).score.value()
    }

    #[test]
    fn boundaries_of_each_component() {
        assert_eq!(score(30, 0.0, 5), 100);
        assert_eq!(score(300, 0.10, 50), 0);
        // Weights: each component alone at its worst.
        assert_eq!(score(300, 0.0, 5), 70);
        assert_eq!(score(30, 0.10, 5), 60);
        assert_eq!(score(30, 0.0, 50), 70);
        // Just past the good bounds, still full marks after rounding.
        assert_eq!(score(31, 0.0, 5), 100);
        // Midpoints: latency 165 ms = 0.5, jitter 27.5 ms ~ 0.5, loss 5 % = 0.5.
        assert_eq!(score(165, 0.05, 5), 100 - 15 - 20);
        // Out-of-range inputs clamp.
        assert_eq!(score(10_000, 2.0, 10_000), 0);
        assert_eq!(score(0, -1.0, 0), 100);
        assert_eq!(score(0, f64::NAN, 0), 60);
    }

    #[test]
    fn score_is_monotonic_in_loss() {
        let mut last = 101;
        for i in 0..=20 {
            let s = score(50, f64::from(i) / 100.0, 10);
            assert!(s <= last);
            last = s;
        }
    }

    #[test]
    fn jitter_follows_rtt_variation() {
        let mut j = JitterEstimator::new();
        for i in 0..200 {
            j.observe(if i % 2 == 0 { ms(20) } else { ms(40) });
        }
        let jitter = j.jitter().as_secs_f64() * 1000.0;
        assert!((jitter - 20.0).abs() < 0.5, "{jitter}");
        let mut steady = JitterEstimator::new();
        for _ in 0..10 {
            steady.observe(ms(25));
        }
        assert_eq!(steady.jitter(), Duration::ZERO);
        assert_eq!(
            QualityScore::new(101),
            Err(QualityScoreError { value: 101 })
        );
    }
}
