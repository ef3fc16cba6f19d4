//! Beacon detection with hysteresis and debounce, driven by report times (no clock).

use std::time::Duration;

/// Thresholds and debounce of a [`Detector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectionConfig {
    /// SNR at or above which a beacon starts to count as present; default 12 dB.
    pub trigger_snr_db: f32,
    /// SNR below which a present beacon starts to count as lost; default 6 dB.
    pub release_snr_db: f32,
    /// How long the SNR must stay beyond a threshold before the state flips, both ways;
    /// default 300 ms.
    pub debounce: Duration,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            trigger_snr_db: 12.0,
            release_snr_db: 6.0,
            debounce: Duration::from_millis(300),
        }
    }
}

/// Detection state machine: not detected until the SNR has stayed at or above the trigger
/// for the debounce time, then detected until it has stayed below the release threshold for
/// the debounce time.
///
/// Call [`Detector::update`] with each SNR measurement and its time (any epoch, never going
/// backwards); a report in between that crosses back restarts the debounce.
#[derive(Debug, Clone)]
pub struct Detector {
    config: DetectionConfig,
    detected: bool,
    pending_since: Option<Duration>,
}

impl Detector {
    /// A detector in the "not detected" state.
    #[must_use]
    pub fn new(config: DetectionConfig) -> Self {
        Detector {
            config,
            detected: false,
            pending_since: None,
        }
    }

    /// Whether the beacon currently counts as detected.
    #[must_use]
    pub fn is_detected(&self) -> bool {
        self.detected
    }

    /// Feeds one SNR measurement taken at `now`; returns the (possibly new) state.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sarlink_sdr::{DetectionConfig, Detector};
    ///
    /// let mut d = Detector::new(DetectionConfig::default());
    /// let ms = Duration::from_millis;
    /// assert!(!d.update(ms(0), 20.0));
    /// assert!(!d.update(ms(200), 20.0));
    /// assert!(d.update(ms(300), 20.0)); // above 12 dB for 300 ms
    /// ```
    pub fn update(&mut self, now: Duration, snr_db: f32) -> bool {
        let crossing = if self.detected {
            snr_db < self.config.release_snr_db
        } else {
            snr_db >= self.config.trigger_snr_db
        };
        if crossing {
            let since = *self.pending_since.get_or_insert(now);
            if now.saturating_sub(since) >= self.config.debounce {
                self.detected = !self.detected;
                self.pending_since = None;
            }
        } else {
            self.pending_since = None;
        }
        self.detected
    }

    /// Returns to "not detected" and forgets any pending crossing.
    pub fn reset(&mut self) {
        self.detected = false;
        self.pending_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(d: &mut Detector, snrs: &[f32]) -> Vec<bool> {
        snrs.iter()
            .enumerate()
            .map(|(i, &s)| d.update(Duration::from_millis(100 * i as u64), s))
            .collect()
    }

    #[test]
    fn triggers_after_debounce_and_releases_with_hysteresis() {
        let mut d = Detector::new(DetectionConfig::default());
        let snr = [
            0.0, 13.0, 13.0, 13.0, 13.0, 8.0, 8.0, 5.0, 5.0, 5.0, 5.0, 5.0,
        ];
        let want = [
            false, false, false, false, true, true, true, true, true, true, false, false,
        ];
        assert_eq!(run(&mut d, &snr), want);
    }

    #[test]
    fn a_dip_restarts_the_debounce() {
        let mut d = Detector::new(DetectionConfig::default());
        let snr = [13.0, 13.0, 13.0, 11.9, 13.0, 13.0, 13.0, 13.0];
        let want = [false, false, false, false, false, false, false, true];
        assert_eq!(run(&mut d, &snr), want);
    }

    #[test]
    fn snr_between_thresholds_keeps_state() {
        let mut d = Detector::new(DetectionConfig::default());
        assert_eq!(run(&mut d, &[9.0; 10]), [false; 10]);
        d.reset();
        run(&mut d, &[20.0; 5]);
        assert!(d.is_detected());
        assert!(d.update(Duration::from_secs(10), 9.0));
    }
}
