//! Link health as reported by the monitor, and how the coordinator judges it.

use std::time::Duration;

/// The monitor's label for a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// Frames flow normally.
    Healthy,
    /// Frames flow, but RTT or loss is elevated.
    Degraded,
    /// No frame within the liveness timeout (wire spec, section 5).
    Lost,
}

/// A loss fraction; always finite and in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct LossRatio(f32);

impl LossRatio {
    /// No loss.
    pub const ZERO: LossRatio = LossRatio(0.0);

    /// Validates a loss fraction.
    ///
    /// # Errors
    /// [`LinkHealthError::LossOutOfRange`] when `ratio` is NaN or outside `0.0..=1.0`.
    pub fn new(ratio: f32) -> Result<Self, LinkHealthError> {
        if (0.0..=1.0).contains(&ratio) {
            Ok(LossRatio(ratio))
        } else {
            Err(LinkHealthError::LossOutOfRange { ratio })
        }
    }

    /// The fraction, `0.0..=1.0`.
    pub fn get(self) -> f32 {
        self.0
    }
}

/// Why a link value was rejected.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkHealthError {
    /// A loss ratio outside `0.0..=1.0` (or NaN).
    #[error("loss ratio {ratio} is outside 0..=1")]
    LossOutOfRange {
        /// The rejected value.
        ratio: f32,
    },
}

/// Health of the link that carries one source's records, as measured by the monitor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkHealth {
    /// The monitor's label.
    pub state: LinkState,
    /// Latest round-trip time, if one has been measured.
    pub rtt: Option<Duration>,
    /// Recent loss fraction.
    pub loss: LossRatio,
}

impl LinkHealth {
    /// A healthy link with no measurements (no RTT, no loss).
    pub const HEALTHY: LinkHealth = LinkHealth {
        state: LinkState::Healthy,
        rtt: None,
        loss: LossRatio::ZERO,
    };
    /// A lost link.
    pub const LOST: LinkHealth = LinkHealth {
        state: LinkState::Lost,
        rtt: None,
        loss: LossRatio::ZERO,
    };
}

/// The coordinator's judgement of a link after applying [`LinkThresholds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkVerdict {
    /// Usable: not lost and within both thresholds.
    Usable,
    /// Degraded past a threshold: RTT above `max_rtt` or loss above `max_loss`.
    Degraded,
    /// Lost.
    Lost,
}

/// When a link counts as "degraded past its threshold" and triggers fallback.
///
/// A link is judged [`LinkVerdict::Lost`] when the monitor says [`LinkState::Lost`];
/// otherwise [`LinkVerdict::Degraded`] when its RTT is above `max_rtt` or its loss above
/// `max_loss`, whatever the monitor's label (a [`LinkState::Degraded`] label within both
/// thresholds is still usable); otherwise [`LinkVerdict::Usable`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkThresholds {
    /// Highest acceptable RTT. Default 500 ms: a one-way delay of half of it already
    /// eats half of the default 500 ms freshness window.
    pub max_rtt: Duration,
    /// Highest acceptable loss. Default 0.2 (20 %): beyond it TCP retransmissions make
    /// record delivery bursty and late.
    pub max_loss: LossRatio,
}

impl Default for LinkThresholds {
    fn default() -> Self {
        LinkThresholds {
            max_rtt: Duration::from_millis(500),
            max_loss: LossRatio(0.2),
        }
    }
}

impl LinkThresholds {
    /// Judges one health report.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use sarlink_coord::{LinkHealth, LinkState, LinkThresholds, LinkVerdict, LossRatio};
    ///
    /// let t = LinkThresholds::default();
    /// let slow = LinkHealth {
    ///     state: LinkState::Degraded,
    ///     rtt: Some(Duration::from_millis(800)),
    ///     loss: LossRatio::ZERO,
    /// };
    /// assert_eq!(t.judge(&slow), LinkVerdict::Degraded);
    /// assert_eq!(t.judge(&LinkHealth::HEALTHY), LinkVerdict::Usable);
    /// ```
    pub fn judge(&self, health: &LinkHealth) -> LinkVerdict {
        if health.state == LinkState::Lost {
            return LinkVerdict::Lost;
        }
        let rtt_bad = health.rtt.is_some_and(|rtt| rtt > self.max_rtt);
        if rtt_bad || health.loss > self.max_loss {
            LinkVerdict::Degraded
        } else {
            LinkVerdict::Usable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_ratio_validates() {
        assert!(LossRatio::new(0.5).is_ok());
        assert!(LossRatio::new(1.5).is_err());
        assert!(LossRatio::new(f32::NAN).is_err());
    }

    #[test]
    fn degraded_label_within_thresholds_is_usable() {
        let t = LinkThresholds::default();
        let h = LinkHealth {
            state: LinkState::Degraded,
            rtt: Some(Duration::from_millis(500)),
            loss: LossRatio::new(0.2).unwrap(),
        };
        assert_eq!(t.judge(&h), LinkVerdict::Usable);
        let lossy = LinkHealth {
            loss: LossRatio::new(0.21).unwrap(),
            ..h
        };
        assert_eq!(t.judge(&lossy), LinkVerdict::Degraded);
        assert_eq!(t.judge(&LinkHealth::LOST), LinkVerdict::Lost);
    }
}
