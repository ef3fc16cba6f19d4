//! The block of samples every source fills, the gain setting and the cu8 conversion table.

use std::time::Duration;

use num_complex::Complex;

/// Conversion table from one unsigned 8-bit RTL-SDR sample component to `f32`.
///
/// Maps `v` to `(v - 127.5) / 127.5`, so the 8-bit range covers `[-1.0, 1.0]` and a complex
/// sinusoid that swings over the whole range has power 1.0, which this crate calls 0 dBFS.
pub static CU8_LUT: [f32; 256] = build_lut();

const fn build_lut() -> [f32; 256] {
    let mut lut = [0.0f32; 256];
    let mut i = 0;
    while i < 256 {
        lut[i] = (i as f32 - 127.5) / 127.5;
        i += 1;
    }
    lut
}

/// Receiver gain setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gain {
    /// Automatic gain control by the tuner.
    Auto,
    /// A fixed tuner gain in dB. `Db(0.0)` is a manual gain of 0 dB, not automatic gain
    /// (`rtl_tcp -g 0` and rtl_433 use 0 to mean automatic; here that is [`Gain::Auto`]).
    Db(f32),
}

impl Gain {
    /// Whether two gain settings are the same, treating gains within 0.05 dB as equal.
    #[must_use]
    pub fn matches(self, other: Gain) -> bool {
        match (self, other) {
            (Gain::Auto, Gain::Auto) => true,
            (Gain::Db(a), Gain::Db(b)) => (a - b).abs() < 0.05,
            _ => false,
        }
    }
}

/// A caller-owned, reusable block of complex samples with the stream metadata that belongs
/// to it.
///
/// Sources fill it with [`IqSource::read_block`](crate::IqSource::read_block) up to its
/// [capacity](IqBlock::capacity); the last block of a finite stream may be shorter. Filling it
/// never allocates once it exists.
#[derive(Debug, Clone)]
pub struct IqBlock {
    samples: Vec<Complex<f32>>,
    capacity: usize,
    sample_rate_hz: u32,
    center_frequency_hz: u64,
    timestamp: Duration,
}

impl IqBlock {
    /// Creates an empty block that sources fill with up to `capacity` samples.
    ///
    /// # Panics
    ///
    /// Panics if `capacity` is 0.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        assert!(
            capacity > 0,
            "an IqBlock needs room for at least one sample"
        );
        IqBlock {
            samples: Vec::with_capacity(capacity),
            capacity,
            sample_rate_hz: 0,
            center_frequency_hz: 0,
            timestamp: Duration::ZERO,
        }
    }

    /// The number of samples a source puts in this block at most.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The samples, full scale being magnitude 1.0.
    #[must_use]
    pub fn samples(&self) -> &[Complex<f32>] {
        &self.samples
    }

    /// Number of samples in the block.
    #[must_use]
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the block holds no samples.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Sample rate of the samples, Hz.
    #[must_use]
    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// Centre frequency the receiver was tuned to, Hz.
    #[must_use]
    pub fn center_frequency_hz(&self) -> u64 {
        self.center_frequency_hz
    }

    /// Time of the first sample, counted from the start of the stream by the number of samples
    /// the source has delivered (sources read no clock).
    #[must_use]
    pub fn timestamp(&self) -> Duration {
        self.timestamp
    }

    /// Empties the block and sets the metadata of the samples about to be added (for
    /// implementors of [`IqSource`](crate::IqSource)).
    pub fn start(&mut self, sample_rate_hz: u32, center_frequency_hz: u64, timestamp: Duration) {
        self.samples.clear();
        self.sample_rate_hz = sample_rate_hz;
        self.center_frequency_hz = center_frequency_hz;
        self.timestamp = timestamp;
    }

    /// Room left before the block reaches its capacity, in samples.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.capacity.saturating_sub(self.samples.len())
    }

    /// Appends interleaved unsigned 8-bit I/Q bytes (an odd trailing byte is ignored), up to
    /// the block's capacity; returns how many samples were added.
    pub fn extend_from_cu8(&mut self, bytes: &[u8]) -> usize {
        let n = (bytes.len() / 2).min(self.remaining());
        self.samples.extend(
            bytes[..2 * n]
                .chunks_exact(2)
                .map(|p| Complex::new(CU8_LUT[usize::from(p[0])], CU8_LUT[usize::from(p[1])])),
        );
        n
    }

    /// Appends samples up to the block's capacity; returns how many were added.
    pub fn extend_from_slice(&mut self, samples: &[Complex<f32>]) -> usize {
        let n = samples.len().min(self.remaining());
        self.samples.extend_from_slice(&samples[..n]);
        n
    }

    /// Appends one sample; hands it back when the block is full.
    ///
    /// # Errors
    ///
    /// Returns the sample when the block is at capacity.
    pub fn push(&mut self, sample: Complex<f32>) -> Result<(), Complex<f32>> {
        if self.remaining() == 0 {
            return Err(sample);
        }
        self.samples.push(sample);
        Ok(())
    }
}

/// Converts a sample count at a sample rate into a duration (saturating; rate must be > 0).
pub(crate) fn samples_to_duration(samples: u64, sample_rate_hz: u32) -> Duration {
    if sample_rate_hz == 0 {
        return Duration::ZERO;
    }
    let rate = u64::from(sample_rate_hz);
    let secs = samples / rate;
    let rem = samples % rate;
    // rem < rate <= u32::MAX, so rem * 1e9 fits in u64 (< 4.3e18).
    let nanos = rem * 1_000_000_000 / rate;
    Duration::from_secs(secs) + Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lut_is_symmetric_and_spans_full_scale() {
        assert_eq!(CU8_LUT[0], -1.0);
        assert_eq!(CU8_LUT[255], 1.0);
        for i in 0..128 {
            assert_eq!(CU8_LUT[i], -CU8_LUT[255 - i]);
        }
    }

    #[test]
    fn extend_stops_at_capacity_without_growing() {
        let mut b = IqBlock::with_capacity(3);
        b.start(1000, 5, Duration::ZERO);
        assert_eq!(b.extend_from_cu8(&[0, 255, 255, 0, 128, 128, 1, 1, 9]), 3);
        assert_eq!(b.len(), 3);
        assert_eq!(b.samples()[0], Complex::new(-1.0, 1.0));
        assert_eq!(b.push(Complex::new(0.0, 0.0)), Err(Complex::new(0.0, 0.0)));
    }

    #[test]
    fn sample_counts_convert_exactly() {
        assert_eq!(
            samples_to_duration(250_000, 250_000),
            Duration::from_secs(1)
        );
        assert_eq!(
            samples_to_duration(25_000, 250_000),
            Duration::from_millis(100)
        );
        assert_eq!(samples_to_duration(3, 0), Duration::ZERO);
    }

    #[test]
    fn gain_matching_tolerates_rounding() {
        assert!(Gain::Db(49.6).matches(Gain::Db(49.62)));
        assert!(!Gain::Db(49.6).matches(Gain::Auto));
        assert!(Gain::Auto.matches(Gain::Auto));
    }
}
