//! FFT-based channel power, noise floor, SNR, carrier tracking, pulses, clipping and
//! detection: the RSSI estimator.
//!
//! # Method
//!
//! Samples are cut into consecutive, non-overlapping frames of `fft_size` samples (every
//! sample is used exactly once; a frame may span blocks). The default size makes a frame
//! about 1 ms long ([`EstimatorConfig::default_fft_size`]). Each frame is multiplied by a
//! periodic Hann window, transformed, and `|X[k]|^2` is accumulated per bin; the bins around
//! the channel are also kept per frame until the report. At the end of each report interval
//! the accumulated spectrum `S[k]` over `K` frames gives:
//!
//! - **noise floor**: a low quantile (default the 10th percentile,
//!   [`EstimatorConfig::noise_quantile`]) of `S[k]` over the bins outside the channel, its
//!   carrier search window and its guard band (and outside the DC bins), interpolated between
//!   order statistics, then divided by the same quantile of a sum of `K` exponential
//!   variables (Gamma(K)) to give the mean per-bin power. A low quantile ignores the bins a
//!   strong carrier or a wideband signal occupies: with 60 % of the bins occupied it reads the
//!   25th percentile of the free ones, a bias under 0.6 dB for `K >= 25`;
//! - **carrier tracking**: the strongest bin of `S[k]` within
//!   [`EstimatorConfig::tracking`] (default +-8 kHz) of the nominal channel centre, located to
//!   a fraction of a bin by a parabola through the log powers of it and its neighbours, when it
//!   stands clearly out of the noise (beyond the 4.5-sigma point of Gamma(K)); the channel is
//!   then centred on it, and [`Report::offset_hz`] says where. Without such a peak the channel
//!   stays where the last one put it (the nominal centre at first);
//! - **channel power**: `sum(c[k] S[k]) / (K * N * sum(w^2))`, where `c[k]` is the share of bin
//!   `k` (a bin spans `[k - 1/2, k + 1/2]`) inside `[centre - B/2, centre + B/2]`: a window of
//!   exactly the configured width `B`, centred where the carrier is, edge bins counted by their
//!   fraction inside. By Parseval it is the mean power of the samples in the channel;
//! - **DC**: the RTL-SDR's DC spike lands in bin 0 and, through the Hann window, bins +-1.
//!   Those bins (`dc_exclusion_bins` either side) are never used for the noise floor nor found
//!   as a carrier; inside the channel their power is replaced by the noise floor's;
//! - **SNR**: `(channel - noise) / noise`, floored at -30 dB when the channel holds no more
//!   than the noise;
//! - **pulses**: the channel power of each frame of the interval (same channel, same noise)
//!   goes through the [pulse tracker](crate::pulse): pulses and bursts, their power (noise
//!   subtracted), width and start, held last-pulse values;
//! - **clipping**: the fraction of I and Q values at the rails (see
//!   [`Report::clip_fraction`]).
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
use crate::pulse::{PulseConfig, PulseReport, PulseTracker};
use crate::quality::QualityScore;

/// A sample component at or beyond this magnitude counts as clipped: the cu8 codes 0 and 255
/// (exactly -1.0 and 1.0 through [`CU8_LUT`]), and the extremes of 16-bit samples.
pub const RAIL: f32 = 0.999;

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
    /// Width of the channel actually measured, Hz: the configured width (edge bins are counted
    /// by the fraction of them inside the channel).
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
    /// Measured carrier offset from the nominal channel centre (`frequency_hz`), Hz: `Some`
    /// when carrier tracking found a carrier in its search window during this report (the
    /// channel was then centred on it), `None` otherwise (no carrier clearly above the noise,
    /// or tracking off).
    pub offset_hz: Option<f32>,
    /// Fraction of this report's 8-bit values (I and Q counted apart, 0 to 1) at the rails,
    /// 0 or 255 (magnitude [`RAIL`] or more for complex input): the receiver is clipping, and
    /// `rssi` and `snr_db` may read low. See [`Report::is_clipping`].
    pub clip_fraction: f32,
    /// Pulses and bursts ended during this report, and the last pulse held; never smoothed.
    pub pulse: PulseReport,
}

impl Report {
    /// Whether clipping may have lowered this report's `rssi`: any value at a rail at all
    /// ([`Report::clip_fraction`] above 0). Receiver noise alone at a sane gain never reaches
    /// the rails (at -30 dBFS they are 45 standard deviations away), so any rail sample means a
    /// signal near full scale; `docs/ACCURACY.md` shows errors above 0.5 dB only with
    /// fractions far above the first clipped sample.
    #[must_use]
    pub fn is_clipping(&self) -> bool {
        self.clip_fraction > 0.0
    }

    /// How long before the end of the report the latest pulse ended in it started, if any:
    /// subtract it from the wall-clock time of the report's end to place the pulse on another
    /// clock (a record's `timestamp_ns`).
    #[must_use]
    pub fn pulse_start_before_end(&self) -> Option<Duration> {
        self.pulse
            .start_ns
            .map(|start| Duration::from_nanos(self.timestamp_ns.saturating_sub(start)))
    }
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
    /// The noise quantile is not in `(0, 1)`.
    #[error("noise quantile {quantile} is not in (0, 1)")]
    InvalidQuantile {
        /// Requested quantile.
        quantile: f64,
    },
    /// The carrier search half-width is negative or not finite.
    #[error("carrier search half-width {hz} Hz is not a finite value >= 0")]
    InvalidTracking {
        /// Requested half-width.
        hz: f64,
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
    noise_quantile: f64,
    tracking_hz: Option<f64>,
    pulse: PulseConfig,
}

impl EstimatorConfig {
    /// Default EWMA weight of the newest report when smoothing is enabled.
    pub const DEFAULT_EWMA_ALPHA: f32 = 0.3;
    /// Smallest FFT size accepted.
    pub const MIN_FFT_SIZE: usize = 64;
    /// Fewest bins accepted for the noise floor.
    pub const MIN_NOISE_BINS: usize = 16;
    /// Default quantile of the out-of-channel bins taken as the noise floor.
    pub const DEFAULT_NOISE_QUANTILE: f64 = 0.1;
    /// Default half-width of the carrier search window, Hz.
    pub const DEFAULT_TRACKING_HZ: f64 = 8_000.0;

    /// The default FFT size at `sample_rate_hz`: the power of two nearest to one millisecond of
    /// samples (in the log domain), at least [`Self::MIN_FFT_SIZE`] and at most 65 536. 256 at
    /// 250 kS/s, 1024 at 1.024 MS/s, 2048 at 2.048 and 2.4 MS/s: frames of 0.85 to 1.02 ms
    /// (pulse timing) and bins of 0.98 to 1.17 kHz (a 10 kHz channel spans about 10 bins).
    #[must_use]
    pub fn default_fft_size(sample_rate_hz: u32) -> usize {
        let per_ms = (f64::from(sample_rate_hz) / 1000.0).max(1.0);
        // log2 of at most 4.3e6: the cast is exact after rounding.
        let exp = per_ms.log2().round().clamp(6.0, 16.0) as u32;
        1usize << exp
    }

    /// A configuration for samples at `sample_rate_hz`, with every other setting at its
    /// default.
    #[must_use]
    pub fn new(sample_rate_hz: u32) -> Self {
        EstimatorConfig {
            sample_rate_hz,
            center_frequency_hz: 0,
            fft_size: Self::default_fft_size(sample_rate_hz),
            channel_offset_hz: 0.0,
            channel_bandwidth_hz: 10_000.0,
            guard_hz: 5_000.0,
            dc_exclusion_bins: 1,
            report_interval: Duration::from_millis(100),
            ewma_alpha: None,
            calibration: Vec::new(),
            gain: Gain::Auto,
            detection: DetectionConfig::default(),
            noise_quantile: Self::DEFAULT_NOISE_QUANTILE,
            tracking_hz: Some(Self::DEFAULT_TRACKING_HZ),
            pulse: PulseConfig::default(),
        }
    }

    /// Receiver centre frequency, used for [`Report::frequency_hz`] until a block says
    /// otherwise; default 0.
    #[must_use]
    pub fn center_frequency_hz(mut self, hz: u64) -> Self {
        self.center_frequency_hz = hz;
        self
    }

    /// FFT size in samples; default [`Self::default_fft_size`] (about 1 ms of samples). Pulse
    /// edges are resolved to a fraction of a frame, but two pulses closer than a few frames
    /// merge, and pulses narrower than two frames are measured on one frame.
    #[must_use]
    pub fn fft_size(mut self, n: usize) -> Self {
        self.fft_size = n;
        self
    }

    /// The beacon channel: its nominal offset from the centre frequency and its width, Hz;
    /// default offset 0 and width 10 kHz. The channel should span at least 5 FFT bins so a
    /// tone's whole Hann main lobe falls inside it; with carrier tracking on it moves to the
    /// carrier (see [`Self::tracking`]).
    #[must_use]
    pub fn channel(mut self, offset_hz: f64, bandwidth_hz: f64) -> Self {
        self.channel_offset_hz = offset_hz;
        self.channel_bandwidth_hz = bandwidth_hz;
        self
    }

    /// Band on each side of the channel's search window excluded from the noise floor, Hz;
    /// default 5 kHz.
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

    /// The EWMA smoothing weight set with [`Self::ewma`], `None` when not smoothing.
    pub fn ewma_alpha(&self) -> Option<f32> {
        self.ewma_alpha
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

    /// Quantile of the out-of-channel bins taken as the noise floor, in `(0, 1)`; default
    /// [`Self::DEFAULT_NOISE_QUANTILE`] (0.1). Lower resists busier bands; 0.5 is the median.
    #[must_use]
    pub fn noise_quantile(mut self, quantile: f64) -> Self {
        self.noise_quantile = quantile;
        self
    }

    /// Carrier tracking: the half-width, Hz, of the window around the nominal channel centre
    /// searched for the carrier each report (a beacon off its nominal frequency, a dongle's
    /// crystal error); the channel is centred on the carrier found. Default
    /// `Some(`[`Self::DEFAULT_TRACKING_HZ`]`)` (+-8 kHz); `None` keeps the channel at its nominal
    /// place. The window is narrowed to what fits in the sampled band.
    #[must_use]
    pub fn tracking(mut self, half_width_hz: Option<f64>) -> Self {
        self.tracking_hz = half_width_hz;
        self
    }

    /// Pulse and burst measurement thresholds; default [`PulseConfig::default`].
    #[must_use]
    pub fn pulse(mut self, pulse: PulseConfig) -> Self {
        self.pulse = pulse;
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
    /// FFT indices of the bins around the channel (the search window, the channel's half
    /// width and one bin more on each side), lowest frequency first; `region_lo` is the signed
    /// bin number of the first.
    region: Vec<usize>,
    region_lo: i64,
    /// Whether each region bin is a DC bin.
    region_dc: Vec<bool>,
    /// Channel weight of each region bin for the current report.
    weights: Vec<f64>,
    /// Region bins' `|X[k]|^2` of each frame of the current interval, frame after frame.
    frame_bins: Vec<f32>,
    /// Sample-clock time (ns) of the start of each frame of the current interval.
    frame_starts: Vec<f64>,
    /// Frames the buffers above can hold (frames beyond are left out of pulse measurement).
    max_frames: usize,
    /// Nominal channel centre and carrier search half-width, in bins; the channel's current
    /// centre (the last carrier found), in bins.
    nominal_bin: f64,
    search_bins: f64,
    centre_bin: f64,
    half_width_bins: f64,
    noise_bins: Vec<usize>,
    quantile_scratch: Vec<f32>,
    /// The standard normal deviate of the noise quantile.
    noise_z: f64,
    interval_samples: f64,
    samples_framed: u64,
    next_report_at: f64,
    clipped: u64,
    smoothed: Option<(f64, f64)>,
    detector: Detector,
    pulses: PulseTracker,
    /// The most recent accepted pulse's power in report units (held).
    last_pulse_power: Option<f32>,
    calibration_offset_db: Option<f32>,
    pending_byte: Option<u8>,
}

impl fmt::Debug for Estimator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Estimator")
            .field("config", &self.config)
            .field("channel_width_bins", &(2.0 * self.half_width_bins))
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
        if !(config.noise_quantile > 0.0 && config.noise_quantile < 1.0) {
            return Err(ConfigError::InvalidQuantile {
                quantile: config.noise_quantile,
            });
        }
        let search_hz = match config.tracking_hz {
            None => 0.0,
            Some(hz) if hz.is_finite() && hz >= 0.0 => hz,
            Some(hz) => return Err(ConfigError::InvalidTracking { hz }),
        };
        // In bins: the nominal centre, the channel's half width, the search window narrowed to
        // what fits in the band with one spare bin each side.
        let nominal_bin = offset / bin_hz;
        let half_width_bins = half_bw / bin_hz;
        let half_n = (n / 2) as f64;
        let room = (half_n - 2.0 - (nominal_bin.abs() + half_width_bins)).max(0.0);
        let search_bins = (search_hz / bin_hz).min(room);
        let lo = (nominal_bin - search_bins - half_width_bins - 1.0).floor();
        let hi = (nominal_bin + search_bins + half_width_bins + 1.0).ceil();
        // Within +-N/2 by the checks above: the casts are exact.
        let (lo, hi) = (lo.max(-half_n) as i64, hi.min(half_n - 1.0) as i64);
        let index = |signed: i64| -> usize {
            // signed is in [-N/2, N/2): adding N keeps it non-negative.
            (signed + n as i64) as usize % n
        };
        let is_dc = |signed: i64| signed.unsigned_abs() <= config.dc_exclusion_bins as u64;
        let region: Vec<usize> = (lo..=hi).map(index).collect();
        let region_dc: Vec<bool> = (lo..=hi).map(is_dc).collect();
        let guard_bins = guard / bin_hz;
        let mut noise_bins = Vec::new();
        for k in 0..n {
            // Signed bin index: bins above N/2 are negative frequencies.
            let signed = if k < n / 2 {
                k as i64
            } else {
                k as i64 - n as i64
            };
            let distance = (signed as f64 - nominal_bin).abs();
            if distance > search_bins + half_width_bins + guard_bins + 0.5 && !is_dc(signed) {
                noise_bins.push(k);
            }
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
        // A report closes on the first frame that reaches its boundary: at most
        // ceil(interval / N) + 1 frames.
        let max_frames = (interval_samples / n as f64).ceil() as usize + 2;
        let region_len = region.len();
        Ok(Estimator {
            fft,
            window,
            bin_scale: 1.0 / (n as f64 * window_power),
            frame: vec![Complex::new(0.0, 0.0); n],
            fill: 0,
            scratch,
            psd: vec![0.0; n],
            frames: 0,
            region,
            region_lo: lo,
            region_dc,
            weights: vec![0.0; region_len],
            frame_bins: vec![0.0; region_len * max_frames],
            frame_starts: vec![0.0; max_frames],
            max_frames,
            nominal_bin,
            search_bins,
            centre_bin: nominal_bin,
            half_width_bins,
            quantile_scratch: Vec::with_capacity(noise_bins.len()),
            noise_bins,
            noise_z: normal_quantile(config.noise_quantile),
            interval_samples,
            samples_framed: 0,
            next_report_at: interval_samples,
            clipped: 0,
            smoothed: None,
            detector: Detector::new(config.detection),
            pulses: PulseTracker::new(config.pulse),
            last_pulse_power: None,
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

    /// Width of the measured channel, Hz: the configured width (edge bins count by the
    /// fraction of them inside the channel).
    #[must_use]
    pub fn channel_bandwidth_hz(&self) -> f64 {
        2.0 * self.half_width_bins * self.bin_hz()
    }

    /// Half-width of the carrier search window actually used, Hz (0 with tracking off; may be
    /// narrower than configured when the band is too narrow).
    #[must_use]
    pub fn tracking_hz(&self) -> f64 {
        self.search_bins * self.bin_hz()
    }

    fn bin_hz(&self) -> f64 {
        f64::from(self.config.sample_rate_hz) / self.config.fft_size as f64
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

    /// Drops the partial frame and interval, smoothing, detection, carrier tracking and pulse
    /// state (after a retune or a gap in the stream). The next report comes one full interval after the next sample.
    pub fn reset(&mut self) {
        self.fill = 0;
        self.psd.iter_mut().for_each(|p| *p = 0.0);
        self.frames = 0;
        self.samples_framed = 0;
        self.next_report_at = self.interval_samples;
        self.smoothed = None;
        self.detector.reset();
        self.pending_byte = None;
        self.clipped = 0;
        self.centre_bin = self.nominal_bin;
        self.pulses.reset();
        self.last_pulse_power = None;
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
            let src = &samples[pos..pos + take];
            for ((d, s), &w) in dst.iter_mut().zip(src).zip(win) {
                *d = s * w;
            }
            self.clipped += src
                .iter()
                .map(|s| u64::from(s.re.abs() >= RAIL) + u64::from(s.im.abs() >= RAIL))
                .sum::<u64>();
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
            self.clipped += u64::from(is_rail(first)) + u64::from(is_rail(second));
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
            self.clipped += count_rails(src);
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
        let n = self.config.fft_size;
        let ns_per_sample = 1e9 / f64::from(self.config.sample_rate_hz);
        let t_ns = base_ns + samples_done * ns_per_sample;
        let f = self.frames as usize;
        if f < self.max_frames {
            let len = self.region.len();
            let dst = &mut self.frame_bins[f * len..(f + 1) * len];
            for (d, &k) in dst.iter_mut().zip(&self.region) {
                *d = self.frame[k].norm_sqr();
            }
            self.frame_starts[f] = t_ns - n as f64 * ns_per_sample;
        }
        self.fill = 0;
        self.frames += 1;
        self.samples_framed += n as u64;
        if self.samples_framed as f64 >= self.next_report_at {
            // The detector runs on the nominal interval boundaries (exact multiples of the
            // interval), so its debounce does not depend on where frames happen to end.
            let nominal_ns =
                t_ns - (self.samples_framed as f64 - self.next_report_at) * ns_per_sample;
            while self.samples_framed as f64 >= self.next_report_at {
                self.next_report_at += self.interval_samples;
            }
            let report = self.make_report(
                t_ns,
                Duration::from_nanos(nominal_ns.round().max(0.0) as u64),
            );
            on_report(&report);
        }
    }

    /// The noise floor's mean power per bin (linear, dBFS scale) from the accumulated
    /// spectrum of `k` frames.
    fn noise_per_bin(&mut self, k: f64) -> f64 {
        self.quantile_scratch.clear();
        self.quantile_scratch
            .extend(self.noise_bins.iter().map(|&i| self.psd[i]));
        let q = quantile(&mut self.quantile_scratch, self.config.noise_quantile);
        q / gamma_quantile(k, self.config.noise_quantile, self.noise_z) * self.bin_scale
    }

    /// Searches the window for a carrier clearly above `noise_acc` (the expected accumulated
    /// noise per bin); moves the channel onto it. Returns its offset from the nominal centre in
    /// bins.
    fn track_carrier(&mut self, k: f64, noise_acc: f64) -> Option<f64> {
        if self.search_bins <= 0.0 {
            return None;
        }
        let threshold = noise_acc * gamma_quantile_z(k, 4.5) / k;
        // The bins holding the window's ends are searched too (a carrier at the very end may
        // peak there); the result is clamped to the window below. The region has a spare bin
        // beyond them for the interpolation.
        let first = (self.nominal_bin - self.search_bins).floor() as i64;
        let last = (self.nominal_bin + self.search_bins).ceil() as i64;
        let mut best: Option<(usize, f32)> = None;
        for signed in first..=last {
            // Inside the region by construction: the index is in range.
            let i = (signed - self.region_lo) as usize;
            if self.region_dc[i] {
                continue;
            }
            let p = self.psd[self.region[i]];
            if best.is_none_or(|(_, b)| p > b) {
                best = Some((i, p));
            }
        }
        let (i, peak) = best?;
        if f64::from(peak) <= threshold {
            return None;
        }
        // A parabola through the log powers of the peak and its neighbours (when they are
        // usable) places the carrier between bins.
        let mut delta = 0.0;
        if i > 0 && i + 1 < self.region.len() && !self.region_dc[i - 1] && !self.region_dc[i + 1] {
            let ln = |j: usize| f64::from(self.psd[self.region[j]]).max(1e-30).ln();
            let (a, b, c) = (ln(i - 1), ln(i), ln(i + 1));
            let den = a - 2.0 * b + c;
            if den < 0.0 {
                delta = (0.5 * (a - c) / den).clamp(-0.5, 0.5);
            }
        }
        let at = (self.region_lo + i as i64) as f64 + delta;
        let at = at.clamp(
            self.nominal_bin - self.search_bins,
            self.nominal_bin + self.search_bins,
        );
        self.centre_bin = at;
        Some(at - self.nominal_bin)
    }

    /// Sets `weights` for a channel centred on `centre_bin`.
    fn set_weights(&mut self) {
        let (lo_edge, hi_edge) = (
            self.centre_bin - self.half_width_bins,
            self.centre_bin + self.half_width_bins,
        );
        for (i, w) in self.weights.iter_mut().enumerate() {
            let k = (self.region_lo + i as i64) as f64;
            *w = ((k + 0.5).min(hi_edge) - (k - 0.5).max(lo_edge)).max(0.0);
        }
    }

    /// Channel power (linear) of region powers `bins` (one frame or the accumulated
    /// spectrum), with DC bins replaced by `dc_value` each.
    fn channel_power(&self, bins: impl Iterator<Item = f32>, dc_value: f64) -> f64 {
        let mut sum = 0.0;
        let mut dc = 0.0;
        for ((p, &w), &is_dc) in bins.zip(&self.weights).zip(&self.region_dc) {
            if is_dc {
                dc += w;
            } else {
                sum += w * f64::from(p);
            }
        }
        sum * self.bin_scale + dc * dc_value
    }

    fn make_report(&mut self, t_ns: f64, nominal: Duration) -> Report {
        const FLOOR: f64 = 1e-20;
        let k = f64::from(self.frames.max(1));
        let noise_bin = self.noise_per_bin(k);
        let offset_bins = self.track_carrier(k, noise_bin / self.bin_scale * k);
        self.set_weights();
        let psd = &self.psd;
        let mut channel = self.channel_power(self.region.iter().map(|&i| psd[i]), noise_bin) / k;
        let mut noise = noise_bin * 2.0 * self.half_width_bins;
        let offset = self.calibration_offset_db.unwrap_or(0.0);

        // Pulses, frame by frame, on this report's channel and noise.
        let frames = self.frames;
        let stored = (frames as usize).min(self.max_frames);
        let len = self.region.len();
        let frame_ns = self.config.fft_size as f64 * 1e9 / f64::from(self.config.sample_rate_hz);
        let mut pulse = PulseReport::default();
        let mut pulse_sum = 0.0;
        for f in 0..stored {
            let bins = &self.frame_bins[f * len..(f + 1) * len];
            let p = self.channel_power(bins.iter().copied(), noise_bin);
            let start = self.frame_starts[f];
            if let Some((found, previous)) = self.pulses.frame(p, noise, start, frame_ns) {
                pulse.count += 1;
                pulse_sum += found.power;
                pulse.width = Some(Duration::from_nanos(
                    (found.end_ns - found.start_ns).round().max(0.0) as u64,
                ));
                pulse.start_ns = Some(found.start_ns.round().max(0.0) as u64);
                pulse.interval = previous.map(|prev| {
                    Duration::from_nanos((found.start_ns - prev).round().max(0.0) as u64)
                });
                pulse.burst |= self.pulses.is_burst(&found);
                self.last_pulse_power = Some((10.0 * found.power.log10()) as f32 + offset);
            }
        }
        if pulse.count > 0 {
            pulse.power =
                Some((10.0 * (pulse_sum / f64::from(pulse.count)).log10()) as f32 + offset);
        }
        pulse.last_power = self.last_pulse_power;
        let last = self.pulses.last();
        pulse.last_age =
            last.map(|p| Duration::from_nanos((t_ns - p.end_ns).round().max(0.0) as u64));
        let recent_pulse = last.is_some_and(|p| {
            t_ns - p.end_ns <= self.pulses.config().detection_hold.as_nanos() as f64
        });

        self.psd.iter_mut().for_each(|p| *p = 0.0);
        self.frames = 0;
        // Two values (I and Q) per sample.
        let clip_fraction = (self.clipped as f64
            / (2.0 * f64::from(frames) * self.config.fft_size as f64))
            .min(1.0);
        self.clipped = 0;
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
        let steady = self.detector.update(nominal, snr_db);
        let frequency = self.config.center_frequency_hz as f64 + self.config.channel_offset_hz;
        Report {
            timestamp_ns: t_ns.max(0.0) as u64,
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
            detected: steady || recent_pulse,
            frames,
            offset_hz: offset_bins.map(|b| (b * self.bin_hz()) as f32),
            clip_fraction: clip_fraction as f32,
            pulse,
        }
    }
}

/// How many of `bytes` are at a rail (0 or 255). Counted 255 bytes at a time into a `u8`
/// (at most 255 hits: no overflow), which the compiler turns into byte-wide vector compares
/// and adds; a wider counter costs about a third of the estimator's whole budget.
fn count_rails(bytes: &[u8]) -> u64 {
    let mut total = 0u64;
    for chunk in bytes.chunks(255) {
        let mut hits = 0u8;
        for &v in chunk {
            // 0 wraps to 255 and 255 becomes 254: both >= 254, nothing else is.
            hits += u8::from(v.wrapping_sub(1) >= 254);
        }
        total += u64::from(hits);
    }
    total
}

/// Whether a cu8 code is at a rail.
#[inline]
fn is_rail(v: u8) -> bool {
    v == 0 || v == 255
}

/// The `q` quantile of `values` (reordered), interpolated between the two order statistics
/// around rank `(len - 1) q` (Hyndman and Fan's type 7; for `q = 0.5` and an even count, the
/// mean of the two middle values). 0 for an empty slice.
fn quantile(values: &mut [f32], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let h = (values.len() - 1) as f64 * q.clamp(0.0, 1.0);
    // 0 <= h <= len - 1: the cast is exact after floor.
    let lo = h.floor() as usize;
    let (_, at, above) = values.select_nth_unstable_by(lo, f32::total_cmp);
    let a = f64::from(*at);
    let next = above.iter().copied().min_by(f32::total_cmp);
    match next {
        Some(b) => a + (h - lo as f64) * (f64::from(b) - a),
        None => a,
    }
}

/// The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The `q` quantile of Gamma(k, 1) (a sum of `k` unit-mean exponentials), `z` being the
/// standard normal quantile of `q`: exact for `k = 1` (`-ln(1 - q)`), the Wilson-Hilferty
/// cube approximation above (error under 1 % from `k = 2` for `0.05 <= q <= 0.95`).
fn gamma_quantile(k: f64, q: f64, z: f64) -> f64 {
    if k <= 1.0 {
        -(1.0 - q).ln()
    } else {
        gamma_quantile_z(k, z)
    }
}

/// The Wilson-Hilferty approximation of the Gamma(k, 1) quantile at standard normal deviate
/// `z` (floored at a tiny positive value).
fn gamma_quantile_z(k: f64, z: f64) -> f64 {
    let c = 1.0 / (9.0 * k);
    (k * (1.0 - c + z * c.sqrt()).powi(3)).max(1e-12)
}

fn lookup(calibration: &[(Gain, f32)], gain: Gain) -> Option<f32> {
    calibration
        .iter()
        .find(|(g, _)| g.matches(gain))
        .map(|&(_, offset)| offset)
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

    /// P(Gamma(k, 1) <= x) for whole `k`: `1 - exp(-x) sum_{i<k} x^i / i!`.
    fn gamma_cdf(k: u32, x: f64) -> f64 {
        let (mut term, mut sum) = (1.0, 1.0);
        for i in 1..k {
            term *= x / f64::from(i);
            sum += term;
        }
        1.0 - (-x).exp() * sum
    }

    #[test]
    fn gamma_quantiles_match_the_exact_distribution() {
        for k in [1u32, 2, 5, 10, 25, 100, 400] {
            for q in [0.05, 0.1, 0.25, 0.5, 0.9] {
                let x = gamma_quantile(f64::from(k), q, normal_quantile(q));
                let p = gamma_cdf(k, x);
                // Within 1 % of probability (1 dB would be far more).
                assert!((p - q).abs() < 0.01, "k {k} q {q}: cdf {p}");
            }
        }
        assert!((normal_quantile(0.1) + 1.281_551_565_5).abs() < 1e-8);
        assert!(normal_quantile(0.5).abs() < 1e-12);
        assert!((normal_quantile(0.999) - 3.090_232_306).abs() < 1e-7);
    }

    #[test]
    fn quantile_interpolates_and_the_median_of_an_even_count_is_the_middle_mean() {
        let mut v = [4.0f32, 1.0, 3.0, 2.0];
        // The old `sort()[len / 2]` gave 3.
        assert_eq!(quantile(&mut v, 0.5), 2.5);
        assert_eq!(quantile(&mut [5.0f32, 1.0, 3.0], 0.5), 3.0);
        assert_eq!(quantile(&mut [1.0f32, 2.0, 3.0, 4.0, 5.0], 0.1), 1.4);
        assert_eq!(quantile(&mut [7.0f32], 0.1), 7.0);
        assert_eq!(quantile(&mut [], 0.1), 0.0);
    }

    #[test]
    fn rails_are_counted_on_every_byte_whatever_the_length() {
        let bytes: Vec<u8> = (0..2000u32).map(|i| (i * 37 % 256) as u8).collect();
        for len in [0, 1, 254, 255, 256, 511, 2000] {
            let naive = bytes[..len].iter().filter(|&&v| v == 0 || v == 255).count();
            assert_eq!(count_rails(&bytes[..len]), naive as u64, "{len}");
        }
        assert_eq!(count_rails(&[0; 1000]), 1000);
        assert_eq!(count_rails(&[255; 300]), 300);
        assert_eq!(count_rails(&[1, 254, 128]), 0);
    }

    #[test]
    fn clipped_values_are_counted_alike_from_cu8_and_complex_input() {
        let cfg = || {
            EstimatorConfig::new(256_000)
                .fft_size(256)
                .channel(20_000.0, 10_000.0)
                .report_interval(Duration::from_millis(10))
        };
        // 2560 samples: every 4th sample has I at 255, every 10th Q at 0.
        let bytes: Vec<u8> = (0..2560 + 256)
            .flat_map(|i| {
                let re = if i % 4 == 0 { 255 } else { 140 };
                let im = if i % 10 == 0 { 0 } else { 120 };
                [re, im]
            })
            .collect();
        let mut a = Vec::new();
        Estimator::new(cfg())
            .unwrap()
            .process_cu8(&bytes, Duration::ZERO, |r| a.push(r.clip_fraction));
        let mut block = IqBlock::with_capacity(bytes.len() / 2);
        block.start(256_000, 0, Duration::ZERO);
        block.extend_from_cu8(&bytes);
        let mut b = Vec::new();
        Estimator::new(cfg())
            .unwrap()
            .process_samples(block.samples(), Duration::ZERO, |r| b.push(r.clip_fraction));
        assert_eq!(a, b);
        // (1/4 + 1/10) of the samples, over two values each.
        assert!((a[0] - 0.175).abs() < 1e-6, "{a:?}");
    }

    #[test]
    fn default_fft_is_about_one_millisecond() {
        for (rate, n) in [
            (250_000, 256),
            (1_024_000, 1024),
            (2_048_000, 2048),
            (2_400_000, 2048),
            (3_200_000, 4096),
            (8_000, 64),
        ] {
            assert_eq!(EstimatorConfig::default_fft_size(rate), n, "{rate}");
        }
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
        for q in [0.0, 1.0, f64::NAN] {
            assert!(matches!(
                Estimator::new(EstimatorConfig::new(250_000).noise_quantile(q)),
                Err(ConfigError::InvalidQuantile { .. })
            ));
        }
        for hz in [-1.0, f64::INFINITY, f64::NAN] {
            assert!(matches!(
                Estimator::new(EstimatorConfig::new(250_000).tracking(Some(hz))),
                Err(ConfigError::InvalidTracking { .. })
            ));
        }
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
    fn channel_width_is_the_configured_width_with_fractional_edges() {
        let e = Estimator::new(
            EstimatorConfig::new(256_000)
                .fft_size(256)
                .channel(20_000.0, 10_500.0),
        )
        .unwrap();
        // 1 kHz bins: whole bins would give 11 kHz (the old behaviour).
        assert!((e.channel_bandwidth_hz() - 10_500.0).abs() < 1e-9);
        assert_eq!(e.tracking_hz(), 8_000.0);
    }
}
