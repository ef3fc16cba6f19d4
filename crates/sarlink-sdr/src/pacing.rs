//! Real-time pacing of recorded or simulated streams.
//!
//! [`Pacer::delay`] is pure (time passed in); [`Pacer::wait`] is the thin layer that reads the
//! clock and sleeps.

use std::time::{Duration, Instant};

use crate::block::samples_to_duration;

/// Spaces blocks so that samples are delivered no faster than their sample rate.
#[derive(Debug, Clone)]
pub struct Pacer {
    sample_rate_hz: u32,
    start: Option<Instant>,
    samples: u64,
}

impl Pacer {
    /// A pacer for a stream at `sample_rate_hz`; the first block sets time zero.
    #[must_use]
    pub fn new(sample_rate_hz: u32) -> Self {
        Pacer {
            sample_rate_hz,
            start: None,
            samples: 0,
        }
    }

    /// How long to wait at `now` before delivering `samples` more samples; counts them as
    /// delivered.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use sarlink_sdr::pacing::Pacer;
    ///
    /// let mut p = Pacer::new(1000);
    /// let t0 = Instant::now();
    /// assert_eq!(p.delay(t0, 500), Duration::ZERO);
    /// // The first 500 samples cover 0.5 s; at t0 + 0.2 s the next block waits 0.3 s.
    /// assert_eq!(p.delay(t0 + Duration::from_millis(200), 500), Duration::from_millis(300));
    /// ```
    pub fn delay(&mut self, now: Instant, samples: usize) -> Duration {
        let start = *self.start.get_or_insert(now);
        let due = start + samples_to_duration(self.samples, self.sample_rate_hz);
        self.samples += samples as u64;
        due.saturating_duration_since(now)
    }

    /// Sleeps until `samples` more samples are due (reads the clock).
    pub fn wait(&mut self, samples: usize) {
        let d = self.delay(Instant::now(), samples);
        if !d.is_zero() {
            std::thread::sleep(d);
        }
    }

    /// Restarts timing at the next block (after a pause or a rate change).
    pub fn restart(&mut self, sample_rate_hz: u32) {
        *self = Pacer::new(sample_rate_hz);
    }
}
