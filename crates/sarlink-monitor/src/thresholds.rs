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

/// Default number of consecutive samples a baseline deviation must last before it alerts: 5.
pub const DEFAULT_DEVIATION_SAMPLES: u32 = 5;

/// Default minimum interval between two notifications of one rule: 10 s.
pub const DEFAULT_MIN_NOTIFY_INTERVAL: Duration = Duration::from_secs(10);

/// What is measured. Each kind has a fixed unit for its limits (see [`MetricKind::unit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricKind {
    /// Round-trip time of the ground link, in milliseconds (the drone feeds the p95 over a
    /// short window, see [`RttWindow`]).
    LinkRtt,
    /// Processing time of one RSSI cycle, in milliseconds.
    CycleProcessing,
    /// CPU load, in percent.
    Cpu,
    /// Memory use, in percent.
    Memory,
    /// CPU temperature, in degrees Celsius.
    Temperature,
    /// Processing time of one RSSI cycle as a share of the report period, in percent.
    CycleLoad,
    /// Records held for the link as a share of the ring's capacity, in percent.
    Backlog,
    /// Failed output writes since the last successful one (a count).
    OutputErrors,
    /// How far the link RTT sits from its EWMA baseline, in standard deviations.
    RttDeviation,
    /// How far the RSSI cycle time sits from its EWMA baseline, in standard deviations.
    CycleDeviation,
}

/// Number of [`MetricKind`]s.
const KINDS: usize = 10;

impl MetricKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; KINDS] = [
        Self::LinkRtt,
        Self::CycleProcessing,
        Self::Cpu,
        Self::Memory,
        Self::Temperature,
        Self::CycleLoad,
        Self::Backlog,
        Self::OutputErrors,
        Self::RttDeviation,
        Self::CycleDeviation,
    ];

    /// The unit of limits and alert values for this kind: `"ms"`, `"%"`, `"C"`, `"errors"`
    /// or `"sigma"`.
    pub fn unit(self) -> &'static str {
        match self {
            Self::LinkRtt | Self::CycleProcessing => "ms",
            Self::Cpu | Self::Memory | Self::CycleLoad | Self::Backlog => "%",
            Self::Temperature => "C",
            Self::OutputErrors => "errors",
            Self::RttDeviation | Self::CycleDeviation => "sigma",
        }
    }

    /// A short machine name (`link_rtt`, `cycle_time`, `cpu`, `memory`, `temperature`,
    /// `cycle_load`, `backlog`, `output_errors`, `rtt_deviation`, `cycle_deviation`): the
    /// `kind` label of the active-alerts gauge and of alerts on MQTT.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LinkRtt => "link_rtt",
            Self::CycleProcessing => "cycle_time",
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Temperature => "temperature",
            Self::CycleLoad => "cycle_load",
            Self::Backlog => "backlog",
            Self::OutputErrors => "output_errors",
            Self::RttDeviation => "rtt_deviation",
            Self::CycleDeviation => "cycle_deviation",
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
            Self::CycleLoad => "rssi cycle load",
            Self::Backlog => "link backlog",
            Self::OutputErrors => "output write errors",
            Self::RttDeviation => "link rtt off its baseline",
            Self::CycleDeviation => "rssi cycle time off its baseline",
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
    /// Cycle time as a share of the report period.
    CycleLoad(Percent),
    /// Share of the link ring held.
    Backlog(Percent),
    /// Failed output writes since the last successful one.
    OutputErrors(u64),
    /// Distance of the link RTT from its baseline, standard deviations (0 when within it).
    RttDeviation(f64),
    /// Distance of the cycle time from its baseline, standard deviations.
    CycleDeviation(f64),
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
            Self::CycleLoad(_) => MetricKind::CycleLoad,
            Self::Backlog(_) => MetricKind::Backlog,
            Self::OutputErrors(_) => MetricKind::OutputErrors,
            Self::RttDeviation(_) => MetricKind::RttDeviation,
            Self::CycleDeviation(_) => MetricKind::CycleDeviation,
        }
    }

    /// The value in the kind's unit ([`MetricKind::unit`]).
    pub fn value(&self) -> f64 {
        match self {
            Self::LinkRtt(d) | Self::CycleProcessing(d) => d.as_secs_f64() * 1000.0,
            Self::Cpu(p) | Self::Memory(p) | Self::CycleLoad(p) | Self::Backlog(p) => p.value(),
            Self::Temperature(c) => c.value(),
            Self::OutputErrors(n) => *n as f64,
            // Non-finite distances (a baseline with no spread) count as very far.
            Self::RttDeviation(s) | Self::CycleDeviation(s) => {
                if s.is_nan() {
                    0.0
                } else {
                    s.abs().min(1e6)
                }
            }
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
    /// CPU 70/85 % and memory 75/85 % (approaching, then at, the degradation controller's
    /// high-pressure threshold), temperature 70/80 C (its first two thermal steps), cycle
    /// load 50/100 % of the report period, backlog 50/90 % of the ring, output errors 1/1
    /// (critical at the first failed write), baseline deviations 3/6 sigma.
    pub fn default_for(kind: MetricKind) -> Self {
        let (warning, critical) = match kind {
            MetricKind::LinkRtt => (30.0, 50.0),
            MetricKind::CycleProcessing => (75.0, 100.0),
            MetricKind::Cpu => (70.0, 85.0),
            MetricKind::Memory => (75.0, 85.0),
            MetricKind::Temperature => (70.0, 80.0),
            MetricKind::CycleLoad => (50.0, 100.0),
            MetricKind::Backlog => (50.0, 90.0),
            MetricKind::OutputErrors => (1.0, 1.0),
            MetricKind::RttDeviation | MetricKind::CycleDeviation => (3.0, 6.0),
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
    /// The default rule for `kind`: [`Limits::default_for`], the default interval, and the
    /// default debounce except for output errors (1 sample: a failed write is announced at
    /// once) and baseline deviations ([`DEFAULT_DEVIATION_SAMPLES`]: the N samples in a row
    /// a deviation must last).
    pub fn default_for(kind: MetricKind) -> Self {
        let debounce_samples = match kind {
            MetricKind::OutputErrors => 1,
            MetricKind::RttDeviation | MetricKind::CycleDeviation => DEFAULT_DEVIATION_SAMPLES,
            _ => DEFAULT_DEBOUNCE_SAMPLES,
        };
        Self {
            limits: Limits::default_for(kind),
            debounce_samples,
            min_notify_interval: DEFAULT_MIN_NOTIFY_INTERVAL,
        }
    }
}

/// One rule per [`MetricKind`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdConfig {
    rules: [ThresholdRule; KINDS],
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
    states: [RuleState; KINDS],
}

impl Thresholds {
    /// An evaluator with every rule at [`Level::Normal`].
    pub fn new(config: ThresholdConfig) -> Self {
        Self {
            config,
            states: [RuleState::default(); KINDS],
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

    /// The severity last announced for `kind` ([`Level::Normal`] once cleared): what an
    /// operator has been told is active.
    pub fn notified(&self, kind: MetricKind) -> Level {
        self.states[kind.index()].notified
    }

    /// Every kind whose last announcement is a warning or critical, with that level.
    pub fn active(&self) -> impl Iterator<Item = (MetricKind, Level)> + '_ {
        MetricKind::ALL
            .into_iter()
            .map(|k| (k, self.notified(k)))
            .filter(|(_, l)| *l != Level::Normal)
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

/// Most RTT samples an [`RttWindow`] holds.
pub const RTT_WINDOW_CAPACITY: usize = 64;

/// The 95th percentile of the link RTTs measured over a sliding time window (nearest
/// rank). With one ping a second and the default 5 s window this is the slowest of the last
/// five: an alert is raised within a few pings of latency appearing, and clears a window
/// plus the debounce after it ends.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sarlink_monitor::thresholds::RttWindow;
///
/// let ms = Duration::from_millis;
/// let mut w = RttWindow::new(Duration::from_secs(5));
/// assert_eq!(w.observe(Duration::from_secs(1), ms(10)), ms(10));
/// assert_eq!(w.observe(Duration::from_secs(2), ms(120)), ms(120));
/// // Six seconds later the slow sample has left the window.
/// assert_eq!(w.observe(Duration::from_secs(8), ms(12)), ms(12));
/// ```
#[derive(Debug, Clone)]
pub struct RttWindow {
    window: Duration,
    samples: std::collections::VecDeque<(Duration, Duration)>,
    scratch: Vec<Duration>,
}

impl RttWindow {
    /// An empty window `window` long.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            samples: std::collections::VecDeque::with_capacity(RTT_WINDOW_CAPACITY),
            scratch: Vec::with_capacity(RTT_WINDOW_CAPACITY),
        }
    }

    /// Adds the RTT measured at `now` (samples older than the window, and past
    /// [`RTT_WINDOW_CAPACITY`] the oldest, are dropped) and returns the p95 of the window.
    pub fn observe(&mut self, now: Duration, rtt: Duration) -> Duration {
        while self
            .samples
            .front()
            .is_some_and(|&(at, _)| now.saturating_sub(at) > self.window)
            || self.samples.len() >= RTT_WINDOW_CAPACITY
        {
            self.samples.pop_front();
        }
        self.samples.push_back((now, rtt));
        self.p95().unwrap_or(rtt)
    }

    /// The p95 of the samples held, `None` when empty.
    pub fn p95(&mut self) -> Option<Duration> {
        self.scratch.clear();
        self.scratch.extend(self.samples.iter().map(|&(_, r)| r));
        self.scratch.sort_unstable();
        // Nearest rank: ceil(0.95 n), 1-based; n >= 1 here so the index is in range.
        let n = self.scratch.len();
        let rank = (n * 95).div_ceil(100).max(1);
        self.scratch.get(rank - 1).copied()
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
                (75.0, 85.0),
                (70.0, 80.0),
                (50.0, 100.0),
                (50.0, 90.0),
                (1.0, 1.0),
                (3.0, 6.0),
                (3.0, 6.0)
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
