//! Threshold rules with warning and critical levels, debounced by consecutive violations,
//! producing rate-limited [`Alert`]s. Sans-IO: time and observations are passed in.
//!
//! Call order: build a [`ThresholdConfig`] (defaults, or a
//! [`Preset`](crate::baseline::Preset)), create [`Thresholds`], then call
//! [`Thresholds::observe`] for each new measurement and deliver any returned alert.
//!
//! # Semantics
//!
//! - A sample is *at warning* when `value >= warning`, *at critical* when `value >= critical`
//!   (all our metrics are "higher is worse").
//! - The level rises to warning (critical) after `debounce_samples` consecutive samples at
//!   or above warning (critical). It falls after `debounce_samples` consecutive samples below
//!   the current level, to the highest level seen during that run.
//! - Notifications: a rise above the last notified severity is announced at once (a
//!   critical condition is never held back). Any other change (a fall, a clear, a rise back
//!   after a clear) is announced only if `min_notify_interval` has passed since the rule's
//!   last notification; until then it is held, and the *latest* state is announced on the
//!   first observation after the interval. A flapping rule therefore notifies at most once per
//!   interval, plus escalations.

use std::fmt;
use std::time::Duration;

use crate::{Celsius, Percent};

/// Default number of consecutive samples that confirm a level change: 3.
pub const DEFAULT_DEBOUNCE_SAMPLES: u32 = 3;

/// Default minimum interval between two notifications of one rule: 10 s.
pub const DEFAULT_MIN_NOTIFY_INTERVAL: Duration = Duration::from_secs(10);

/// What is measured. Each kind has a fixed unit for its limits (see [`MetricKind::unit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricKind {
    /// Round-trip time of the ground link, in milliseconds.
    LinkRtt,
    /// Processing time of one RSSI cycle, in milliseconds.
    CycleProcessing,
    /// CPU load, in percent.
    Cpu,
    /// Memory use, in percent.
    Memory,
    /// CPU temperature, in degrees Celsius.
    Temperature,
}

impl MetricKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 5] = [
        Self::LinkRtt,
        Self::CycleProcessing,
        Self::Cpu,
        Self::Memory,
        Self::Temperature,
    ];

    /// The unit of limits and alert values for this kind: `"ms"`, `"%"` or `"C"`.
    pub fn unit(self) -> &'static str {
        match self {
            Self::LinkRtt | Self::CycleProcessing => "ms",
            Self::Cpu | Self::Memory => "%",
            Self::Temperature => "C",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LinkRtt => "link rtt",
            Self::CycleProcessing => "rssi cycle processing",
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Temperature => "temperature",
        })
    }
}

/// One typed measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observation {
    /// Ground-link round-trip time.
    LinkRtt(Duration),
    /// Time spent processing one RSSI cycle.
    CycleProcessing(Duration),
    /// CPU load.
    Cpu(Percent),
    /// Memory use.
    Memory(Percent),
    /// CPU temperature.
    Temperature(Celsius),
}

impl Observation {
    /// The kind measured.
    pub fn kind(&self) -> MetricKind {
        match self {
            Self::LinkRtt(_) => MetricKind::LinkRtt,
            Self::CycleProcessing(_) => MetricKind::CycleProcessing,
            Self::Cpu(_) => MetricKind::Cpu,
            Self::Memory(_) => MetricKind::Memory,
            Self::Temperature(_) => MetricKind::Temperature,
        }
    }

    /// The value in the kind's unit ([`MetricKind::unit`]).
    pub fn value(&self) -> f64 {
        match self {
            Self::LinkRtt(d) | Self::CycleProcessing(d) => d.as_secs_f64() * 1000.0,
            Self::Cpu(p) | Self::Memory(p) => p.value(),
            Self::Temperature(c) => c.value(),
        }
    }
}

/// Why [`Limits::new`] refused a pair of limits.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// A limit was NaN or infinite.
    #[error("limit {value} is not finite")]
    NotFinite {
        /// The rejected limit.
        value: f64,
    },
    /// The warning limit is above the critical one.
    #[error("warning limit {warning} is above critical limit {critical}")]
    WarningAboveCritical {
        /// The warning limit.
        warning: f64,
        /// The critical limit.
        critical: f64,
    },
}

/// A warning and a critical limit, finite, with `warning <= critical`, in the unit of the
/// rule's [`MetricKind`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    warning: f64,
    critical: f64,
}

impl Limits {
    /// Validates a pair of limits.
    ///
    /// # Errors
    ///
    /// [`LimitsError::NotFinite`] or [`LimitsError::WarningAboveCritical`].
    pub fn new(warning: f64, critical: f64) -> Result<Self, LimitsError> {
        for value in [warning, critical] {
            if !value.is_finite() {
                return Err(LimitsError::NotFinite { value });
            }
        }
        if warning > critical {
            return Err(LimitsError::WarningAboveCritical { warning, critical });
        }
        Ok(Self { warning, critical })
    }

    /// The warning limit.
    pub fn warning(self) -> f64 {
        self.warning
    }

    /// The critical limit.
    pub fn critical(self) -> f64 {
        self.critical
    }

    /// The default limits of `kind`: link RTT 30/50 ms, RSSI cycle processing 75/100 ms,
    /// CPU 70/85 %, memory 75/90 %, temperature 70/85 C.
    pub fn default_for(kind: MetricKind) -> Self {
        let (warning, critical) = match kind {
            MetricKind::LinkRtt => (30.0, 50.0),
            MetricKind::CycleProcessing => (75.0, 100.0),
            MetricKind::Cpu => (70.0, 85.0),
            MetricKind::Memory => (75.0, 90.0),
            MetricKind::Temperature => (70.0, 85.0),
        };
        Self { warning, critical }
    }

    /// The level a single value falls in.
    pub fn level_of(self, value: f64) -> Level {
        if value >= self.critical {
            Level::Critical
        } else if value >= self.warning {
            Level::Warning
        } else {
            Level::Normal
        }
    }
}

/// A threshold rule for one [`MetricKind`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdRule {
    /// Warning and critical limits.
    pub limits: Limits,
    /// Consecutive samples needed to change level; 0 is treated as 1.
    /// Default [`DEFAULT_DEBOUNCE_SAMPLES`].
    pub debounce_samples: u32,
    /// Minimum time between two non-escalating notifications of this rule.
    /// Default [`DEFAULT_MIN_NOTIFY_INTERVAL`].
    pub min_notify_interval: Duration,
}

impl ThresholdRule {
    /// The default rule for `kind` ([`Limits::default_for`] and the default debounce and
    /// interval).
    pub fn default_for(kind: MetricKind) -> Self {
        Self {
            limits: Limits::default_for(kind),
            debounce_samples: DEFAULT_DEBOUNCE_SAMPLES,
            min_notify_interval: DEFAULT_MIN_NOTIFY_INTERVAL,
        }
    }
}

/// One rule per [`MetricKind`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdConfig {
    rules: [ThresholdRule; 5],
}

impl Default for ThresholdConfig {
    fn default() -> Self {
        Self {
            rules: MetricKind::ALL.map(ThresholdRule::default_for),
        }
    }
}

impl ThresholdConfig {
    /// The rule for `kind`.
    pub fn rule(&self, kind: MetricKind) -> &ThresholdRule {
        &self.rules[kind.index()]
    }

    /// Mutable access to the rule for `kind`.
    pub fn rule_mut(&mut self, kind: MetricKind) -> &mut ThresholdRule {
        &mut self.rules[kind.index()]
    }
}

/// The level of a rule, ordered `Normal < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Level {
    /// Below the warning limit.
    #[default]
    Normal,
    /// At or above warning, below critical.
    Warning,
    /// At or above critical.
    Critical,
}

/// Severity of an [`Alert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The rule is at warning level.
    Warning,
    /// The rule is at critical level.
    Critical,
    /// The rule is back to normal.
    Cleared,
}

impl From<Level> for Severity {
    fn from(level: Level) -> Self {
        match level {
            Level::Normal => Self::Cleared,
            Level::Warning => Self::Warning,
            Level::Critical => Self::Critical,
        }
    }
}

/// A notification that a rule's level changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alert {
    /// The rule's metric.
    pub kind: MetricKind,
    /// The new severity.
    pub severity: Severity,
    /// The observation that produced the notification, in the kind's unit.
    pub value: f64,
    /// The limit involved: critical for [`Severity::Critical`], warning otherwise.
    pub limit: f64,
    /// When it was raised (the `now` passed to [`Thresholds::observe`]).
    pub at: Duration,
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = self.kind.unit();
        match self.severity {
            Severity::Cleared => write!(
                f,
                "{} cleared: {:.1} {unit} below warning {:.1} {unit}",
                self.kind, self.value, self.limit
            ),
            s => write!(
                f,
                "{} {}: {:.1} {unit} (limit {:.1} {unit})",
                self.kind,
                if s == Severity::Critical {
                    "critical"
                } else {
                    "warning"
                },
                self.value,
                self.limit
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct RuleState {
    level: Level,
    at_warning_run: u32,
    at_critical_run: u32,
    below_run: u32,
    below_run_max: Level,
    notified: Level,
    last_notified_at: Option<Duration>,
}

/// The threshold evaluator: one debounced, rate-limited state machine per [`MetricKind`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sarlink_monitor::thresholds::{Observation, Severity, ThresholdConfig, Thresholds};
///
/// let mut t = Thresholds::new(ThresholdConfig::default());
/// let rtt = Observation::LinkRtt(Duration::from_millis(60)); // critical is 50 ms
/// let s = Duration::from_secs;
/// assert_eq!(t.observe(s(0), rtt), None); // debounce: 3 samples by default
/// assert_eq!(t.observe(s(1), rtt), None);
/// let alert = t.observe(s(2), rtt).unwrap();
/// assert_eq!(alert.severity, Severity::Critical);
/// ```
#[derive(Debug, Clone)]
pub struct Thresholds {
    config: ThresholdConfig,
    states: [RuleState; 5],
}

impl Thresholds {
    /// An evaluator with every rule at [`Level::Normal`].
    pub fn new(config: ThresholdConfig) -> Self {
        Self {
            config,
            states: [RuleState::default(); 5],
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &ThresholdConfig {
        &self.config
    }

    /// Replaces the configuration (e.g. after choosing a preset), keeping each rule's state.
    pub fn set_config(&mut self, config: ThresholdConfig) {
        self.config = config;
    }

    /// The debounced level of `kind` (which may differ from the last notified severity while
    /// a notification is held by rate limiting).
    pub fn level(&self, kind: MetricKind) -> Level {
        self.states[kind.index()].level
    }

    /// Feeds one observation taken at `now` (any monotonic epoch the caller picks) and
    /// returns the notification to deliver, if any.
    pub fn observe(&mut self, now: Duration, observation: Observation) -> Option<Alert> {
        let kind = observation.kind();
        let value = observation.value();
        let rule = self.config.rules[kind.index()];
        let st = &mut self.states[kind.index()];
        let needed = rule.debounce_samples.max(1);
        let sample = rule.limits.level_of(value);

        st.at_warning_run = if sample >= Level::Warning {
            st.at_warning_run + 1
        } else {
            0
        };
        st.at_critical_run = if sample >= Level::Critical {
            st.at_critical_run + 1
        } else {
            0
        };
        if sample < st.level {
            st.below_run_max = if st.below_run == 0 {
                sample
            } else {
                st.below_run_max.max(sample)
            };
            st.below_run += 1;
        } else {
            st.below_run = 0;
        }

        let new_level = if st.at_critical_run >= needed && st.level < Level::Critical {
            Level::Critical
        } else if st.at_warning_run >= needed && st.level < Level::Warning {
            Level::Warning
        } else if st.below_run >= needed {
            st.below_run_max
        } else {
            st.level
        };
        if new_level != st.level {
            st.level = new_level;
            st.below_run = 0;
        }

        if st.level == st.notified {
            return None;
        }
        let escalation = st.level > st.notified;
        let interval_passed = st
            .last_notified_at
            .is_none_or(|t| now.saturating_sub(t) >= rule.min_notify_interval);
        if !(escalation || interval_passed) {
            return None;
        }
        st.notified = st.level;
        st.last_notified_at = Some(now);
        let severity = Severity::from(st.level);
        let limit = match severity {
            Severity::Critical => rule.limits.critical,
            Severity::Warning | Severity::Cleared => rule.limits.warning,
        };
        Some(Alert {
            kind,
            severity,
            value,
            limit,
            at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(p: f64) -> Observation {
        Observation::Cpu(Percent::new(p).unwrap())
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn defaults_are_the_documented_values() {
        let c = ThresholdConfig::default();
        let pairs: Vec<(f64, f64)> = MetricKind::ALL
            .iter()
            .map(|&k| (c.rule(k).limits.warning(), c.rule(k).limits.critical()))
            .collect();
        assert_eq!(
            pairs,
            [
                (30.0, 50.0),
                (75.0, 100.0),
                (70.0, 85.0),
                (75.0, 90.0),
                (70.0, 85.0)
            ]
        );
        assert_eq!(c.rule(MetricKind::Cpu).debounce_samples, 3);
    }

    #[test]
    fn limits_validate() {
        assert_eq!(
            Limits::new(5.0, 1.0),
            Err(LimitsError::WarningAboveCritical {
                warning: 5.0,
                critical: 1.0
            })
        );
        assert!(matches!(
            Limits::new(f64::NAN, 1.0),
            Err(LimitsError::NotFinite { .. })
        ));
    }

    #[test]
    fn interrupted_violations_do_not_alert() {
        let mut t = Thresholds::new(ThresholdConfig::default());
        for i in 0..20 {
            let p = if i % 3 == 2 { 10.0 } else { 90.0 };
            assert_eq!(t.observe(secs(i), cpu(p)), None, "sample {i}");
        }
        assert_eq!(t.level(MetricKind::Cpu), Level::Normal);
    }

    #[test]
    fn warning_then_critical_then_downgrade_then_clear() {
        let mut t = Thresholds::new(ThresholdConfig::default());
        let mut alerts = Vec::new();
        let seq = [
            72.0, 72.0, 72.0, 90.0, 90.0, 90.0, 75.0, 75.0, 75.0, 10.0, 10.0, 10.0,
        ];
        for (i, p) in seq.into_iter().enumerate() {
            // 20 s apart: rate limiting never holds anything back here.
            if let Some(a) = t.observe(secs(20 * i as u64), cpu(p)) {
                alerts.push((i, a.severity, a.limit));
            }
        }
        assert_eq!(
            alerts,
            [
                (2, Severity::Warning, 70.0),
                (5, Severity::Critical, 85.0),
                (8, Severity::Warning, 70.0),
                (11, Severity::Cleared, 70.0)
            ]
        );
    }

    #[test]
    fn escalation_bypasses_rate_limit_but_clear_waits_and_coalesces() {
        let mut t = Thresholds::new(ThresholdConfig::default());
        let ms = Duration::from_millis;
        let mut now = Duration::ZERO;
        let mut step = |t: &mut Thresholds, p: f64| {
            now += ms(100);
            t.observe(now, cpu(p))
        };
        assert_eq!(step(&mut t, 72.0), None);
        assert_eq!(step(&mut t, 72.0), None);
        assert_eq!(step(&mut t, 72.0).unwrap().severity, Severity::Warning);
        assert_eq!(step(&mut t, 95.0), None);
        assert_eq!(step(&mut t, 95.0), None);
        // 0.3 s after the warning, still notified at once.
        assert_eq!(step(&mut t, 95.0).unwrap().severity, Severity::Critical);
        // Clear after 3 samples, but held by the 10 s interval.
        for _ in 0..3 {
            assert_eq!(step(&mut t, 5.0), None);
        }
        assert_eq!(t.level(MetricKind::Cpu), Level::Normal);
        // Flap to warning and back to normal while held: nothing is sent.
        for p in [72.0, 72.0, 72.0, 5.0, 5.0, 5.0] {
            assert_eq!(step(&mut t, p), None);
        }
        // Once the interval has passed, the latest state (cleared) is sent, once.
        let a = t.observe(secs(11), cpu(5.0)).unwrap();
        assert_eq!((a.severity, a.at), (Severity::Cleared, secs(11)));
        assert_eq!(t.observe(secs(30), cpu(5.0)), None);
    }

    #[test]
    fn rules_are_independent_and_debounce_configurable() {
        let mut c = ThresholdConfig::default();
        c.rule_mut(MetricKind::Temperature).debounce_samples = 1;
        let mut t = Thresholds::new(c);
        let hot = Observation::Temperature(Celsius::new(86.0).unwrap());
        let a = t.observe(secs(0), hot).unwrap();
        assert_eq!(
            (a.kind, a.severity, a.value),
            (MetricKind::Temperature, Severity::Critical, 86.0)
        );
        assert_eq!(t.level(MetricKind::Cpu), Level::Normal);
        let rtt = Observation::CycleProcessing(Duration::from_millis(80));
        assert_eq!(rtt.value(), 80.0);
        assert_eq!(t.observe(secs(0), rtt), None);
    }
}
