//! FFT-based channel power, noise floor, SNR and detection: the RSSI estimator.
//!
//! # Method
//!
//! Samples are cut into consecutive, non-overlapping frames of `fft_size` samples (every
//! sample is used exactly once; a frame may span blocks). Each frame is multiplied by a
//! periodic Hann window, transformed, and `|X[k]|^2` is accumulated per bin. At the end of each
//! report interval the accumulated spectrum `S[k]` over `K` frames gives:
//!
//! - **channel power**: `sum(S[k] for k in channel) / (K * N * sum(w^2))`, which by Parseval is
//!   the mean power of the samples that fall in the channel (a tone's whole main lobe, noise
//!   in proportion to the channel's width);
//! - **noise floor**: the median of `S[k]` over the bins outside the channel and its guard
//!   band (and outside the DC bins), corrected for the median of a sum of `K` exponential
//!   variables (Gamma(K): `ln 2` for one frame, `K - 1/3 + 8/(405 K)` after that) to the mean
//!   per-bin power, then scaled to the number of bins in the channel. A median ignores the few
//!   bins a strong carrier elsewhere occupies, so such a carrier barely moves it;
//! - **DC**: the RTL-SDR's DC spike lands in bin 0 and, through the Hann window, bins +-1.
//!   Those bins (`dc_exclusion_bins` either side) are never used for the noise floor; when the
//!   channel covers them their power is replaced by the noise floor's per-bin power;
//! - **SNR**: `(channel - noise) / noise`, floored at -30 dB when the channel holds no more
//!   than the noise.
//!
//! Powers are in dBFS: a complex sinusoid of magnitude 1.0 (a cu8 tone swinging over the
//! whole 0..=255 range, see [`CU8_LUT`]) is 0 dBFS. A calibration offset for the
//! current gain, when configured, turns dBFS into dBm (`dBm = dBFS + offset`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use crate::block::{CU8_LUT, Gain, IqBlock};
use crate::detect::{DetectionConfig, Detector};
use crate::quality::QualityScore;

/// Units of [`Report::rssi`] and [`Report::noise`] (the spec's `rssi_units`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RssiUnits {
    /// dBm at the antenna, through a calibration offset for the current gain.
    Dbm,
    /// dB relative to full scale (a magnitude-1.0 complex sinusoid is 0 dBFS).
    Dbfs,
}

impl RssiUnits {
    /// The spec's string for these units: `"dbm"` or `"dbfs"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RssiUnits::Dbm => "dbm",
            RssiUnits::Dbfs => "dbfs",
        }
    }
}

/// One measurement over a report interval.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Report {
    /// End of the interval (just after its last sample), nanoseconds since the epoch of the
    /// block timestamps (the start of the stream for this crate's sources).
    pub timestamp_ns: u64,
    /// Channel power (signal plus the noise inside the channel), in `units`.
    pub rssi: f32,
    /// Units of `rssi` and `noise`.
    pub units: RssiUnits,
    /// Centre frequency of the measured channel, Hz.
    pub frequency_hz: u64,
    /// Width of the channel actually measured (a whole number of FFT bins), Hz.
    pub bandwidth_hz: f64,
    /// Channel power over the noise floor, dB (floored at -30 dB).
    pub snr_db: f32,
    /// Noise floor in the channel's bandwidth, in `units`.
    pub noise: f32,
    /// Quality from SNR, see [`QualityScore`].
    pub quality_score: QualityScore,
    /// Detection state after this report, see [`Detector`].
    pub detected: bool,
    /// Number of FFT frames averaged into this report.
    pub frames: u32,
}

/// Invalid [`EstimatorConfig`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The sample rate is zero.
    #[error("sample rate must be > 0")]
    ZeroSampleRate,
    /// The FFT is too small to separate channel and noise.
    #[error("fft size {fft_size} is below the minimum {min}")]
    FftTooSmall {
        /// Requested size.
        fft_size: usize,
        /// Smallest accepted size.
        min: usize,
    },
    /// The channel does not lie inside the sampled band, or covers no bin.
    #[error(
        "channel at offset {offset_hz} Hz, {bandwidth_hz} Hz wide, does not fit in the band of {sample_rate_hz} Hz"
    )]
    ChannelOutsideBand {
        /// Channel offset from the centre.
        offset_hz: f64,
        /// Channel width.
        bandwidth_hz: f64,
        /// Sample rate (the width of the band).
        sample_rate_hz: u32,
    },
    /// Too few bins remain outside the channel, guard and DC for a noise estimate.
    #[error("only {available} bins left for the noise floor, need at least {min}")]
    TooFewNoiseBins {
        /// Bins available.
        available: usize,
        /// Bins needed.
        min: usize,
    },
    /// The report interval is shorter than one FFT frame.
    #[error("report interval {interval:?} is shorter than one fft frame ({frame:?})")]
    IntervalTooShort {
        /// Requested interval.
        interval: Duration,
        /// Duration of one frame.
        frame: Duration,
    },
    /// The EWMA weight is not in `(0, 1]`.
    #[error("ewma alpha {alpha} is not in (0, 1]")]
    InvalidAlpha {
        /// Requested weight.
        alpha: f32,
    },
}

/// A block handed to [`Estimator::process_block`] does not match the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The block's sample rate differs from the configured one.
    #[error("block sample rate {block_hz} Hz differs from the configured {configured_hz} Hz")]
    SampleRateMismatch {
        /// Rate of the block.
        block_hz: u32,
        /// Rate the estimator was configured with.
        configured_hz: u32,
    },
}

/// Configuration of an [`Estimator`]; setters document their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EstimatorConfig {
    sample_rate_hz: u32,
    center_frequency_hz: u64,
    fft_size: usize,
    channel_offset_hz: f64,
    channel_bandwidth_hz: f64,
    guard_hz: f64,
    dc_exclusion_bins: usize,
    report_interval: Duration,
    ewma_alpha: Option<f32>,
    calibration: Vec<(Gain, f32)>,
    gain: Gain,
    detection: DetectionConfig,
}

impl EstimatorConfig {
    /// Default EWMA weight of the newest report when smoothing is enabled.
    pub const DEFAULT_EWMA_ALPHA: f32 = 0.3;
    /// Smallest FFT size accepted.
    pub const MIN_FFT_SIZE: usize = 64;
    /// Fewest bins accepted for the noise floor.
    pub const MIN_NOISE_BINS: usize = 16;

    /// A configuration for samples at `sample_rate_hz`, with every other setting at its
    /// default.
    #[must_use]
    pub fn new(sample_rate_hz: u32) -> Self {
        EstimatorConfig {
            sample_rate_hz,
            center_frequency_hz: 0,
            fft_size: 1024,
            channel_offset_hz: 0.0,
            channel_bandwidth_hz: 10_000.0,
            guard_hz: 5_000.0,
            dc_exclusion_bins: 1,
            report_interval: Duration::from_millis(100),
            ewma_alpha: None,
            calibration: Vec::new(),
            gain: Gain::Auto,
            detection: DetectionConfig::default(),
        }
    }

    /// Receiver centre frequency, used for [`Report::frequency_hz`] until a block says
    /// otherwise; default 0.
    #[must_use]
    pub fn center_frequency_hz(mut self, hz: u64) -> Self {
        self.center_frequency_hz = hz;
        self
    }

    /// FFT size in samples; default 1024.
    #[must_use]
    pub fn fft_size(mut self, n: usize) -> Self {
        self.fft_size = n;
        self
    }

    /// The beacon channel: its offset from the centre frequency and its width, Hz; default
    /// offset 0 and width 10 kHz. The channel should span at least 5 FFT bins so a tone's whole
    /// Hann main lobe falls inside it.
    #[must_use]
    pub fn channel(mut self, offset_hz: f64, bandwidth_hz: f64) -> Self {
        self.channel_offset_hz = offset_hz;
        self.channel_bandwidth_hz = bandwidth_hz;
        self
    }

    /// Band on each side of the channel excluded from the noise floor, Hz; default 5 kHz.
    #[must_use]
    pub fn guard_hz(mut self, hz: f64) -> Self {
        self.guard_hz = hz;
        self
    }

    /// Bins on each side of DC excluded from the noise floor (and replaced by it inside the
    /// channel); default 1 (the periodic Hann window spreads a DC offset over exactly bins
    /// -1, 0, +1).
    #[must_use]
    pub fn dc_exclusion_bins(mut self, bins: usize) -> Self {
        self.dc_exclusion_bins = bins;
        self
    }

    /// Time between reports; default 100 ms (10 Hz).
    #[must_use]
    pub fn report_interval(mut self, interval: Duration) -> Self {
        self.report_interval = interval;
        self
    }

    /// EWMA smoothing of channel and noise power (in the linear domain) across reports, with
    /// `alpha` the weight of the newest; default `None` (no smoothing). Use
    /// [`Self::DEFAULT_EWMA_ALPHA`] for the usual 0.3.
    #[must_use]
    pub fn ewma(mut self, alpha: Option<f32>) -> Self {
        self.ewma_alpha = alpha;
        self
    }

    /// Adds a calibration offset for a gain setting: at that gain, `dBm = dBFS + offset_db`.
    /// Default: none, so reports are in dBFS.
    #[must_use]
    pub fn calibrate(mut self, gain: Gain, offset_db: f32) -> Self {
        self.calibration.retain(|(g, _)| !g.matches(gain));
        self.calibration.push((gain, offset_db));
        self
    }

    /// The receiver's gain setting, which selects the calibration offset; default
    /// [`Gain::Auto`].
    #[must_use]
    pub fn gain(mut self, gain: Gain) -> Self {
        self.gain = gain;
        self
    }

    /// Detection thresholds and debounce; default [`DetectionConfig::default`].
    #[must_use]
    pub fn detection(mut self, detection: DetectionConfig) -> Self {
        self.detection = detection;
        self
    }

    /// The configured sample rate, Hz.
    #[must_use]
    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }
}

/// Turns a stream of samples into [`Report`]s; see the [module documentation](self) for the
/// method.
///
/// Feed it with [`process_block`](Self::process_block), [`process_samples`](Self::process_samples)
/// or [`process_cu8`](Self::process_cu8) (all three may be mixed); each calls back once per
/// completed report interval. Nothing is allocated after [`Estimator::new`].
pub struct Estimator {
    config: EstimatorConfig,
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    /// Converts one frame's `|X[k]|^2` into that bin's share of the sample power.
    bin_scale: f64,
    frame: Vec<Complex<f32>>,
    fill: usize,
    scratch: Vec<Complex<f32>>,
    psd: Vec<f32>,
    frames: u32,
    channel_bins: Vec<usize>,
    channel_dc_bins: usize,
    noise_bins: Vec<usize>,
    median_scratch: Vec<f32>,
    interval_samples: f64,
    samples_framed: u64,
    next_report_at: f64,
    smoothed: Option<(f64, f64)>,
    detector: Detector,
    calibration_offset_db: Option<f32>,
    pending_byte: Option<u8>,
}

impl fmt::Debug for Estimator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Estimator")
            .field("config", &self.config)
            .field("channel_bins", &self.channel_bins.len())
            .field("noise_bins", &self.noise_bins.len())
            .field("frames", &self.frames)
            .field("detected", &self.detector.is_detected())
            .finish_non_exhaustive()
    }
}

impl Estimator {
    /// Validates `config`, plans the FFT and allocates every buffer.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError`] when the configuration cannot give a measurement: zero rate,
    /// FFT below [`EstimatorConfig::MIN_FFT_SIZE`], a channel outside the band, fewer than
    /// [`EstimatorConfig::MIN_NOISE_BINS`] noise bins, an interval shorter than a frame, or an
    /// EWMA weight outside `(0, 1]`.
    pub fn new(config: EstimatorConfig) -> Result<Self, ConfigError> {
        let rate = config.sample_rate_hz;
        if rate == 0 {
            return Err(ConfigError::ZeroSampleRate);
        }
        let n = config.fft_size;
        if n < EstimatorConfig::MIN_FFT_SIZE {
            return Err(ConfigError::FftTooSmall {
                fft_size: n,
                min: EstimatorConfig::MIN_FFT_SIZE,
            });
        }
        if let Some(alpha) = config.ewma_alpha {
            if !(alpha.is_finite() && alpha > 0.0 && alpha <= 1.0) {
                return Err(ConfigError::InvalidAlpha { alpha });
            }
        }
        let frame_duration = crate::block::samples_to_duration(n as u64, rate);
        if config.report_interval < frame_duration {
            return Err(ConfigError::IntervalTooShort {
                interval: config.report_interval,
                frame: frame_duration,
            });
        }
        let bin_hz = f64::from(rate) / n as f64;
        let half_bw = config.channel_bandwidth_hz / 2.0;
        let nyquist = f64::from(rate) / 2.0;
        let (offset, guard) = (config.channel_offset_hz, config.guard_hz.max(0.0));
        let outside = || ConfigError::ChannelOutsideBand {
            offset_hz: offset,
            bandwidth_hz: config.channel_bandwidth_hz,
            sample_rate_hz: rate,
        };
        // Written so that a NaN width or offset fails too.
        let width_ok = half_bw.is_finite() && half_bw > 0.0;
        if !width_ok
            || !offset.is_finite()
            || offset - half_bw < -nyquist
            || offset + half_bw > nyquist
        {
            return Err(outside());
        }
        let (mut channel_bins, mut noise_bins, mut channel_dc_bins) = (Vec::new(), Vec::new(), 0);
        for k in 0..n {
            // Signed bin index: bins above N/2 are negative frequencies.
            let signed = if k < n / 2 {
                k as i64
            } else {
                k as i64 - n as i64
            };
            let f = signed as f64 * bin_hz;
            let is_dc = signed.unsigned_abs() <= config.dc_exclusion_bins as u64;
            let distance = (f - offset).abs();
            if distance <= half_bw {
                if is_dc {
                    channel_dc_bins += 1;
                } else {
                    channel_bins.push(k);
                }
            } else if distance > half_bw + guard && !is_dc {
                noise_bins.push(k);
            }
        }
        if channel_bins.len() + channel_dc_bins == 0 {
            return Err(outside());
        }
        if noise_bins.len() < EstimatorConfig::MIN_NOISE_BINS {
            return Err(ConfigError::TooFewNoiseBins {
                available: noise_bins.len(),
                min: EstimatorConfig::MIN_NOISE_BINS,
            });
        }
        let fft = FftPlanner::new().plan_fft_forward(n);
        let window: Vec<f32> = (0..n)
            .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32)
            .collect();
        let window_power: f64 = window.iter().map(|&w| f64::from(w) * f64::from(w)).sum();
        let scratch = vec![Complex::new(0.0, 0.0); fft.get_inplace_scratch_len()];
        let calibration_offset_db = lookup(&config.calibration, config.gain);
        let interval_samples = config.report_interval.as_secs_f64() * f64::from(rate);
        Ok(Estimator {
            fft,
            window,
            bin_scale: 1.0 / (n as f64 * window_power),
            frame: vec![Complex::new(0.0, 0.0); n],
            fill: 0,
            scratch,
            psd: vec![0.0; n],
            frames: 0,
            median_scratch: Vec::with_capacity(noise_bins.len()),
            channel_bins,
            channel_dc_bins,
            noise_bins,
            interval_samples,
            samples_framed: 0,
            next_report_at: interval_samples,
            smoothed: None,
            detector: Detector::new(config.detection),
            calibration_offset_db,
            pending_byte: None,
            config,
        })
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &EstimatorConfig {
        &self.config
    }

    /// Width of the measured channel, Hz (whole FFT bins).
    #[must_use]
    pub fn channel_bandwidth_hz(&self) -> f64 {
        (self.channel_bins.len() + self.channel_dc_bins) as f64
            * f64::from(self.config.sample_rate_hz)
            / self.config.fft_size as f64
    }

    /// Number of FFT bins used for the noise floor.
    #[must_use]
    pub fn noise_bin_count(&self) -> usize {
        self.noise_bins.len()
    }

    /// Switches the calibration offset to the one configured for `gain` (reports become dBFS
    /// if there is none). Call it whenever the receiver's gain changes.
    pub fn set_gain(&mut self, gain: Gain) {
        self.config.gain = gain;
        self.calibration_offset_db = lookup(&self.config.calibration, gain);
    }

    /// Updates the centre frequency reported until the next block says otherwise.
    pub fn set_center_frequency_hz(&mut self, hz: u64) {
        self.config.center_frequency_hz = hz;
    }

    /// Drops the partial frame and interval, smoothing and detection state (after a retune
    /// or a gap in the stream). The next report comes one full interval after the next sample.
    pub fn reset(&mut self) {
        self.fill = 0;
        self.psd.iter_mut().for_each(|p| *p = 0.0);
        self.frames = 0;
        self.samples_framed = 0;
        self.next_report_at = self.interval_samples;
        self.smoothed = None;
        self.detector.reset();
        self.pending_byte = None;
    }

    /// Processes a block from an [`IqSource`](crate::IqSource), taking its centre frequency
    /// and timestamp; calls `on_report` for each report interval it completes.
    ///
    /// # Errors
    ///
    /// [`ProcessError::SampleRateMismatch`] if the block's rate is not the configured one
    /// (build a new estimator after changing the rate); nothing is processed then.
    pub fn process_block(
        &mut self,
        block: &IqBlock,
        on_report: impl FnMut(&Report),
    ) -> Result<(), ProcessError> {
        if block.sample_rate_hz() != self.config.sample_rate_hz {
            return Err(ProcessError::SampleRateMismatch {
                block_hz: block.sample_rate_hz(),
                configured_hz: self.config.sample_rate_hz,
            });
        }
        self.config.center_frequency_hz = block.center_frequency_hz();
        self.process_samples(block.samples(), block.timestamp(), on_report);
        Ok(())
    }

    /// Processes complex samples (magnitude 1.0 = full scale) whose first sample was taken at
    /// `timestamp`; calls `on_report` for each report interval it completes.
    pub fn process_samples(
        &mut self,
        samples: &[Complex<f32>],
        timestamp: Duration,
        mut on_report: impl FnMut(&Report),
    ) {
        let n = self.config.fft_size;
        let mut pos = 0;
        while pos < samples.len() {
            let take = (n - self.fill).min(samples.len() - pos);
            let dst = &mut self.frame[self.fill..self.fill + take];
            let win = &self.window[self.fill..self.fill + take];
            for ((d, s), &w) in dst.iter_mut().zip(&samples[pos..pos + take]).zip(win) {
                *d = s * w;
            }
            self.fill += take;
            pos += take;
            if self.fill == n {
                self.finish_frame(timestamp, pos as f64, &mut on_report);
            }
        }
    }

    /// Processes raw interleaved unsigned 8-bit I/Q bytes (the RTL-SDR format, converted with
    /// [`CU8_LUT`]); `timestamp` is the time of the sample the first byte belongs to. Calls
    /// `on_report` for each report interval it completes. An odd trailing byte is kept and
    /// paired with the next call's first byte.
    pub fn process_cu8(
        &mut self,
        bytes: &[u8],
        timestamp: Duration,
        mut on_report: impl FnMut(&Report),
    ) {
        let n = self.config.fft_size;
        let lut = &CU8_LUT;
        let mut pos = 0;
        let base = timestamp.as_nanos() as f64;
        let mut carried = 0;
        if let Some(first) = self.pending_byte {
            let Some(&second) = bytes.first() else { return };
            self.pending_byte = None;
            let w = self.window[self.fill];
            self.frame[self.fill] =
                Complex::new(lut[usize::from(first)] * w, lut[usize::from(second)] * w);
            self.fill += 1;
            pos = 1;
            carried = 1;
            if self.fill == n {
                self.finish_frame_at(base, 1.0, &mut on_report);
            }
        }
        while bytes.len() - pos >= 2 {
            let take = (n - self.fill).min((bytes.len() - pos) / 2);
            let src = &bytes[pos..pos + 2 * take];
            let dst = &mut self.frame[self.fill..self.fill + take];
            let win = &self.window[self.fill..self.fill + take];
            // Two passes: the table lookups (gathers), then the window multiply, which the
            // compiler can vectorise on its own.
            for (d, p) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = Complex::new(lut[usize::from(p[0])], lut[usize::from(p[1])]);
            }
            for (d, &w) in dst.iter_mut().zip(win) {
                *d *= w;
            }
            self.fill += take;
            pos += 2 * take;
            if self.fill == n {
                // Samples completed in this call, counting one started in the previous call.
                let done = (pos + carried) / 2;
                self.finish_frame_at(base, done as f64, &mut on_report);
            }
        }
        if pos < bytes.len() {
            self.pending_byte = Some(bytes[pos]);
        }
    }

    fn finish_frame(
        &mut self,
        timestamp: Duration,
        samples_done: f64,
        on_report: &mut impl FnMut(&Report),
    ) {
        self.finish_frame_at(timestamp.as_nanos() as f64, samples_done, on_report);
    }

    /// Transforms the full frame, accumulates its power spectrum and reports when an interval
    /// ends; the frame ends `samples_done` samples after `base_ns`.
    fn finish_frame_at(
        &mut self,
        base_ns: f64,
        samples_done: f64,
        on_report: &mut impl FnMut(&Report),
    ) {
        self.fft
            .process_with_scratch(&mut self.frame, &mut self.scratch);
        for (acc, x) in self.psd.iter_mut().zip(&self.frame) {
            *acc += x.norm_sqr();
        }
        self.fill = 0;
        self.frames += 1;
        self.samples_framed += self.config.fft_size as u64;
        if self.samples_framed as f64 >= self.next_report_at {
            let ns_per_sample = 1e9 / f64::from(self.config.sample_rate_hz);
            let t_ns = base_ns + samples_done * ns_per_sample;
            // The detector runs on the nominal interval boundaries (exact multiples of the
            // interval), so its debounce does not depend on where frames happen to end.
            let nominal_ns =
                t_ns - (self.samples_framed as f64 - self.next_report_at) * ns_per_sample;
            while self.samples_framed as f64 >= self.next_report_at {
                self.next_report_at += self.interval_samples;
            }
            let report = self.make_report(
                t_ns.max(0.0) as u64,
                Duration::from_nanos(nominal_ns.round().max(0.0) as u64),
            );
            on_report(&report);
        }
    }

    fn make_report(&mut self, timestamp_ns: u64, nominal: Duration) -> Report {
        const FLOOR: f64 = 1e-20;
        let k = f64::from(self.frames.max(1));
        self.median_scratch.clear();
        self.median_scratch
            .extend(self.noise_bins.iter().map(|&i| self.psd[i]));
        let mid = self.median_scratch.len() / 2;
        let (_, median, _) = self
            .median_scratch
            .select_nth_unstable_by(mid, f32::total_cmp);
        let noise_bin = f64::from(*median) / median_of_gamma(k) * self.bin_scale;
        let channel_sum: f64 = self
            .channel_bins
            .iter()
            .map(|&i| f64::from(self.psd[i]))
            .sum();
        let mut channel =
            channel_sum / k * self.bin_scale + self.channel_dc_bins as f64 * noise_bin;
        let mut noise = noise_bin * (self.channel_bins.len() + self.channel_dc_bins) as f64;
        self.psd.iter_mut().for_each(|p| *p = 0.0);
        let frames = self.frames;
        self.frames = 0;
        if let Some(alpha) = self.config.ewma_alpha {
            let a = f64::from(alpha);
            let (c, nz) = self.smoothed.map_or((channel, noise), |(c, nz)| {
                (a * channel + (1.0 - a) * c, a * noise + (1.0 - a) * nz)
            });
            self.smoothed = Some((c, nz));
            (channel, noise) = (c, nz);
        }
        let (channel, noise) = (channel.max(FLOOR), noise.max(FLOOR));
        let snr_db = (10.0 * (channel / noise - 1.0).max(1e-3).log10()) as f32;
        let offset = self.calibration_offset_db.unwrap_or(0.0);
        let detected = self.detector.update(nominal, snr_db);
        let frequency = self.config.center_frequency_hz as f64 + self.config.channel_offset_hz;
        Report {
            timestamp_ns,
            rssi: (10.0 * channel.log10()) as f32 + offset,
            units: if self.calibration_offset_db.is_some() {
                RssiUnits::Dbm
            } else {
                RssiUnits::Dbfs
            },
            // Rounded to whole Hz; a channel below 0 Hz (never a real tuning) reports 0.
            frequency_hz: frequency.round().max(0.0) as u64,
            bandwidth_hz: self.channel_bandwidth_hz(),
            snr_db,
            noise: (10.0 * noise.log10()) as f32 + offset,
            quality_score: QualityScore::from_snr_db(snr_db),
            detected,
            frames,
        }
    }
}

fn lookup(calibration: &[(Gain, f32)], gain: Gain) -> Option<f32> {
    calibration
        .iter()
        .find(|(g, _)| g.matches(gain))
        .map(|&(_, offset)| offset)
}

/// Median of a Gamma(k, 1) variable (the sum of `k` unit-mean exponentials): exactly `ln 2` for
/// `k = 1`, the asymptotic series `k - 1/3 + 8/(405 k) + 184/(25515 k^2)` (error < 0.1 %) above.
fn median_of_gamma(k: f64) -> f64 {
    if k <= 1.0 {
        std::f64::consts::LN_2
    } else {
        k - 1.0 / 3.0 + 8.0 / (405.0 * k) + 184.0 / (25515.0 * k * k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        #[test]
        fn arbitrary_bytes_in_arbitrary_pieces_give_finite_reports(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20_000),
            piece in 1usize..5000,
        ) {
            let cfg = EstimatorConfig::new(256_000)
                .fft_size(64)
                .channel(20_000.0, 20_000.0)
                .report_interval(Duration::from_millis(5));
            let mut e = Estimator::new(cfg).unwrap();
            let mut reports = Vec::new();
            for (i, chunk) in bytes.chunks(piece).enumerate() {
                e.process_cu8(chunk, Duration::from_micros(i as u64), |r| reports.push(*r));
            }
            // 5 ms at 256 kS/s = 1280 samples per report.
            proptest::prop_assert_eq!(reports.len(), bytes.len() / 2 / 1280);
            for r in reports {
                proptest::prop_assert!(r.rssi.is_finite() && r.noise.is_finite() && r.snr_db.is_finite());
                proptest::prop_assert!(r.snr_db >= -30.0);
            }
        }
    }

    #[test]
    fn gamma_median_matches_known_values() {
        // Medians of Gamma(2), Gamma(5) from tables: 1.67835, 4.67091.
        assert!((median_of_gamma(2.0) - 1.67835).abs() < 2e-3);
        assert!((median_of_gamma(5.0) - 4.67091).abs() < 1e-3);
        // One frame: an exponential, whose CDF is 1/2 at the median.
        assert!((1.0 - (-median_of_gamma(1.0)).exp() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        assert_eq!(
            Estimator::new(EstimatorConfig::new(0)).unwrap_err(),
            ConfigError::ZeroSampleRate
        );
        assert!(matches!(
            Estimator::new(EstimatorConfig::new(250_000).fft_size(32)),
            Err(ConfigError::FftTooSmall {
                fft_size: 32,
                min: 64
            })
        ));
        assert!(matches!(
            Estimator::new(EstimatorConfig::new(250_000).channel(120_000.0, 20_000.0)),
            Err(ConfigError::ChannelOutsideBand { .. })
        ));
        assert!(matches!(
            Estimator::new(EstimatorConfig::new(250_000).channel(0.0, 240_000.0)),
            Err(ConfigError::TooFewNoiseBins { .. })
        ));
        assert!(matches!(
            Estimator::new(
                EstimatorConfig::new(250_000).report_interval(Duration::from_micros(100))
            ),
            Err(ConfigError::IntervalTooShort { .. })
        ));
        assert!(matches!(
            Estimator::new(EstimatorConfig::new(250_000).ewma(Some(1.5))),
            Err(ConfigError::InvalidAlpha { .. })
        ));
    }

    #[test]
    fn rate_mismatch_is_an_error() {
        let mut e = Estimator::new(EstimatorConfig::new(250_000)).unwrap();
        let mut b = IqBlock::with_capacity(4);
        b.start(1_000_000, 0, Duration::ZERO);
        assert_eq!(
            e.process_block(&b, |_| {}),
            Err(ProcessError::SampleRateMismatch {
                block_hz: 1_000_000,
                configured_hz: 250_000
            })
        );
    }

    #[test]
    fn channel_width_is_whole_bins() {
        let e = Estimator::new(
            EstimatorConfig::new(256_000)
                .fft_size(256)
                .channel(20_000.0, 10_000.0),
        )
        .unwrap();
        // 1 kHz bins: offsets 15..=25 kHz are 11 bins.
        assert_eq!(e.channel_bandwidth_hz(), 11_000.0);
    }
}
