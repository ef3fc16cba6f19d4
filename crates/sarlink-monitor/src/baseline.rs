//! Baselines (exponential moving average and variance) with deviation detection, and
//! [`Preset`]s that adapt thresholds and deviation sensitivity to the kind of run.
//!
//! # Formula
//!
//! For each finite sample `x` (with `alpha` = 0.1 by default):
//!
//! ```text
//! d = x - mean;  mean += alpha * d;  var = (1 - alpha) * (var + alpha * d * d)
//! ```
//!
//! (the exponentially weighted mean and variance; the first sample sets `mean = x`,
//! `var = 0`). The baseline is *established* after 50 samples. A sample *deviates* when the
//! baseline is established and, against the baseline **before** that sample is folded in,
//! `|x - mean| >= deviation_sigmas * sqrt(var)` **and**
//! `|x - mean| >= min_relative_deviation * |mean|`. The relative floor keeps a very steady
//! signal (variance near zero) from flagging noise. Deviating samples are still folded in,
//! so the baseline follows a lasting change.

use crate::thresholds::{Limits, MetricKind, ThresholdConfig};
use std::time::Duration;

/// Default EMA smoothing factor: 0.1.
pub const DEFAULT_ALPHA: f64 = 0.1;

/// Default number of samples before a baseline is established: 50.
pub const DEFAULT_WARMUP_SAMPLES: u32 = 50;

/// Parameters of a [`Baseline`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineConfig {
    /// Smoothing factor in `(0, 1]`; out-of-range values are clamped. Default 0.1.
    pub alpha: f64,
    /// Samples before the baseline is established. Default 50.
    pub warmup_samples: u32,
    /// Deviation threshold in EW standard deviations. Default 3.
    pub deviation_sigmas: f64,
    /// Minimum deviation relative to the mean. Default 0.1 (10 %).
    pub min_relative_deviation: f64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            alpha: DEFAULT_ALPHA,
            warmup_samples: DEFAULT_WARMUP_SAMPLES,
            deviation_sigmas: 3.0,
            min_relative_deviation: 0.1,
        }
    }
}

/// A sample that strayed from an established baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deviation {
    /// The sample.
    pub value: f64,
    /// The baseline mean before the sample.
    pub mean: f64,
    /// The baseline standard deviation before the sample.
    pub std_dev: f64,
    /// `(value - mean) / std_dev`: signed, infinite when `std_dev` is 0.
    pub sigmas: f64,
}

/// An exponentially weighted baseline of one signal.
///
/// # Examples
///
/// ```
/// use sarlink_monitor::baseline::{Baseline, BaselineConfig};
///
/// let mut b = Baseline::new(BaselineConfig::default());
/// for i in 0..50 {
///     assert_eq!(b.update(20.0 + (i % 3) as f64), None);
/// }
/// assert!(b.is_established());
/// let d = b.update(45.0).expect("far outside the baseline");
/// assert!(d.sigmas > 3.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    config: BaselineConfig,
    mean: f64,
    variance: f64,
    samples: u32,
}

impl Baseline {
    /// An empty baseline.
    pub fn new(config: BaselineConfig) -> Self {
        Self {
            config,
            mean: 0.0,
            variance: 0.0,
            samples: 0,
        }
    }

    /// Folds in one sample and reports whether it deviates from the baseline as it was
    /// before. Non-finite samples are ignored.
    pub fn update(&mut self, value: f64) -> Option<Deviation> {
        if !value.is_finite() {
            return None;
        }
        let deviation = self.deviation_of(value);
        if self.samples == 0 {
            self.mean = value;
            self.variance = 0.0;
        } else {
            let alpha = self.config.alpha.clamp(f64::MIN_POSITIVE, 1.0);
            let d = value - self.mean;
            self.mean += alpha * d;
            self.variance = (1.0 - alpha) * (self.variance + alpha * d * d);
        }
        self.samples = self.samples.saturating_add(1);
        deviation
    }

    /// Whether `value` would count as a deviation now (without folding it in).
    pub fn deviation_of(&self, value: f64) -> Option<Deviation> {
        if !self.is_established() || !value.is_finite() {
            return None;
        }
        let std_dev = self.std_dev();
        let diff = value - self.mean;
        let far = diff.abs() >= self.config.deviation_sigmas * std_dev;
        let big = diff.abs() >= self.config.min_relative_deviation * self.mean.abs();
        (far && big && diff != 0.0).then(|| Deviation {
            value,
            mean: self.mean,
            std_dev,
            sigmas: if std_dev > 0.0 {
                diff / std_dev
            } else {
                diff.signum() * f64::INFINITY
            },
        })
    }

    /// Whether enough samples were seen ([`BaselineConfig::warmup_samples`]).
    pub fn is_established(&self) -> bool {
        self.samples >= self.config.warmup_samples
    }

    /// The moving average, `None` before the first sample.
    pub fn mean(&self) -> Option<f64> {
        (self.samples > 0).then_some(self.mean)
    }

    /// The exponentially weighted standard deviation (0 before two samples).
    pub fn std_dev(&self) -> f64 {
        self.variance.max(0.0).sqrt()
    }

    /// Samples folded in so far.
    pub fn samples(&self) -> u32 {
        self.samples
    }
}

/// Operating profiles that adapt thresholds and baseline sensitivity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Preset {
    /// Real mission: limits at 80 % of the given ones, 2-sample debounce, notifications
    /// every 5 s at most, deviations from 2.5 sigmas.
    MissionCritical,
    /// The defaults unchanged (3-sample debounce, 10 s, 3 sigmas).
    #[default]
    Standard,
    /// Bench and CI runs on busy machines: limits at 125 % (percentages capped at 100),
    /// 5-sample debounce, notifications every 60 s at most, deviations from 4 sigmas.
    Testing,
}

impl Preset {
    /// The preset applied to the default [`ThresholdConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// use sarlink_monitor::baseline::Preset;
    /// use sarlink_monitor::thresholds::MetricKind;
    ///
    /// let rtt = Preset::MissionCritical.thresholds().rule(MetricKind::LinkRtt).limits;
    /// assert_eq!((rtt.warning(), rtt.critical()), (24.0, 40.0));
    /// ```
    pub fn thresholds(self) -> ThresholdConfig {
        self.adapt(&ThresholdConfig::default())
    }

    /// The preset applied to an existing configuration: limits scaled, debounce and
    /// notification interval replaced.
    pub fn adapt(self, config: &ThresholdConfig) -> ThresholdConfig {
        let (factor, debounce, interval) = match self {
            Self::MissionCritical => (0.8, 2, Duration::from_secs(5)),
            Self::Standard => return *config,
            Self::Testing => (1.25, 5, Duration::from_secs(60)),
        };
        let mut out = *config;
        for kind in MetricKind::ALL {
            let rule = out.rule_mut(kind);
            let cap = if matches!(kind, MetricKind::Cpu | MetricKind::Memory) {
                100.0
            } else {
                f64::MAX
            };
            let w = (rule.limits.warning() * factor).min(cap);
            let c = (rule.limits.critical() * factor).min(cap);
            // Scaling by a positive factor and capping both at the same value keeps
            // `w <= c` and finiteness, so validation cannot fail; keep the old limits if
            // it somehow did.
            rule.limits = Limits::new(w, c).unwrap_or(rule.limits);
            rule.debounce_samples = debounce;
            rule.min_notify_interval = interval;
        }
        out
    }

    /// Baseline parameters for this preset.
    pub fn baseline_config(self) -> BaselineConfig {
        let deviation_sigmas = match self {
            Self::MissionCritical => 2.5,
            Self::Standard => 3.0,
            Self::Testing => 4.0,
        };
        BaselineConfig {
            deviation_sigmas,
            ..BaselineConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_converges_with_alpha_point_one() {
        let mut b = Baseline::new(BaselineConfig::default());
        assert_eq!(b.mean(), None);
        b.update(0.0);
        b.update(10.0);
        assert!((b.mean().unwrap() - 1.0).abs() < 1e-12);
        for _ in 0..200 {
            b.update(10.0);
        }
        assert!((b.mean().unwrap() - 10.0).abs() < 1e-6);
    }

    #[test]
    fn established_after_exactly_fifty_samples() {
        let mut b = Baseline::new(BaselineConfig::default());
        for _ in 0..49 {
            b.update(1.0);
        }
        assert!(!b.is_established());
        assert_eq!(
            b.update(100.0),
            None,
            "49 prior samples: not yet established"
        );
        assert!(b.is_established());
    }

    #[test]
    fn steady_signal_flags_only_relative_jumps() {
        let mut b = Baseline::new(BaselineConfig::default());
        for _ in 0..60 {
            b.update(20.0);
        }
        // Variance is 0: a 5 % wobble is below the 10 % floor.
        assert_eq!(b.deviation_of(21.0), None);
        let d = b.deviation_of(30.0).unwrap();
        assert_eq!(d.sigmas, f64::INFINITY);
        assert!(b.deviation_of(10.0).unwrap().sigmas < 0.0);
        assert_eq!(b.update(f64::NAN), None);
        assert_eq!(b.samples(), 60);
    }

    #[test]
    fn presets_tighten_and_loosen() {
        let mc = Preset::MissionCritical.thresholds();
        let st = Preset::Standard.thresholds();
        let te = Preset::Testing.thresholds();
        for kind in MetricKind::ALL {
            assert!(mc.rule(kind).limits.warning() < st.rule(kind).limits.warning());
            assert!(te.rule(kind).limits.critical() >= st.rule(kind).limits.critical());
        }
        assert_eq!(st, ThresholdConfig::default());
        let cpu = te.rule(MetricKind::Cpu).limits;
        assert_eq!((cpu.warning(), cpu.critical()), (87.5, 100.0));
        assert_eq!(mc.rule(MetricKind::Cpu).debounce_samples, 2);
        assert!(
            Preset::MissionCritical.baseline_config().deviation_sigmas
                < Preset::Testing.baseline_config().deviation_sigmas
        );
    }
}
