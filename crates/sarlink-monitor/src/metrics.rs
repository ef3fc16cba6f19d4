//! Counters, gauges, latency histograms, a named and labelled [`Registry`], plain-data
//! [`Snapshot`]s and their Prometheus text exposition ([`Snapshot::to_prometheus_text`]).
//!
//! Handles ([`Counter`], [`Gauge`], [`Histogram`]) are `Arc`s: clone them freely and record
//! from any thread. Recording never touches the registry; the registry lock is taken only to
//! create or look up a handle and to take a snapshot.

mod prometheus;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// Highest latency a [`Histogram`] resolves: 60 s. Longer durations are recorded as 60 s.
pub const HISTOGRAM_MAX: Duration = Duration::from_secs(60);

/// Significant decimal digits a [`Histogram`] keeps (relative error below 0.1 %).
pub const HISTOGRAM_SIGNIFICANT_DIGITS: u8 = 3;

/// A monotonically increasing `u64` count (events, bytes, errors).
///
/// Wraps on overflow of `u64` (which a mission never reaches).
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// A counter at zero, not attached to any registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn value(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down, stored as an `f64` (queue depth, temperature, rate).
///
/// `f64` rather than `i64` because most of our gauges are fractional (percentages,
/// degrees, hertz) and Prometheus samples are floats anyway.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicU64>);

impl Gauge {
    /// A gauge at 0.0, not attached to any registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the value.
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    /// The current value.
    pub fn value(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

#[derive(Debug)]
struct HistogramState {
    hist: hdrhistogram::Histogram<u64>,
    sum_ns: u64,
}

/// A latency histogram: records [`Duration`]s with nanosecond resolution and
/// [`HISTOGRAM_SIGNIFICANT_DIGITS`] significant digits, up to [`HISTOGRAM_MAX`].
///
/// Backed by `hdrhistogram` behind an uncontended `parking_lot` mutex; one histogram
/// holds about 216 KiB of buckets, allocated when it is created (never while recording).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sarlink_monitor::metrics::Histogram;
///
/// let h = Histogram::new();
/// for ms in 1..=100 {
///     h.record(Duration::from_millis(ms));
/// }
/// let s = h.snapshot();
/// assert_eq!(s.count, 100);
/// assert!(s.p99 >= Duration::from_millis(98) && s.p99 <= Duration::from_millis(100));
/// ```
#[derive(Debug, Clone)]
pub struct Histogram(Arc<Mutex<HistogramState>>);

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram, not attached to any registry.
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(HistogramState::new())))
    }

    /// Records one duration; values above [`HISTOGRAM_MAX`] are recorded as the maximum.
    pub fn record(&self, value: Duration) {
        self.0.lock().record(value);
    }

    /// Starts a [`ScopeTimer`](crate::ScopeTimer) that records into this histogram when dropped.
    pub fn start_timer(&self) -> crate::ScopeTimer<'_> {
        crate::ScopeTimer::new(self)
    }

    /// Summary statistics of everything recorded so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        self.0.lock().snapshot()
    }
}

impl HistogramState {
    fn new() -> Self {
        // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low,
        // sigfig <= 5), so creation cannot fail.
        let hist = hdrhistogram::Histogram::new_with_bounds(
            1,
            duration_ns(HISTOGRAM_MAX),
            HISTOGRAM_SIGNIFICANT_DIGITS,
        )
        .expect("constant histogram bounds are valid");
        HistogramState { hist, sum_ns: 0 }
    }

    #[inline]
    fn record(&mut self, value: Duration) {
        let ns = duration_ns(value.min(HISTOGRAM_MAX));
        self.hist.saturating_record(ns);
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let h = &self.hist;
        if h.is_empty() {
            return HistogramSnapshot::default();
        }
        HistogramSnapshot {
            count: h.len(),
            sum: Duration::from_nanos(self.sum_ns),
            min: Duration::from_nanos(h.min()),
            max: Duration::from_nanos(h.max()),
            // Exact (from the exact sum) and cheaper than hdrhistogram's `mean`, which walks
            // every bucket. `len() > 0` here.
            mean: Duration::from_nanos(self.sum_ns / h.len()),
            p50: Duration::from_nanos(h.value_at_quantile(0.5)),
            p95: Duration::from_nanos(h.value_at_quantile(0.95)),
            p99: Duration::from_nanos(h.value_at_quantile(0.99)),
        }
    }
}

/// A histogram owned by one thread, for hot paths: [`record`](Self::record) takes `&mut self`
/// and touches no lock and no atomic. Periodically [`flush_into`](Self::flush_into) a shared
/// [`Histogram`] (a registry's), which then reports everything recorded.
///
/// Same bounds and precision as [`Histogram`] (about 216 KiB, allocated at creation).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sarlink_monitor::metrics::{Histogram, LocalHistogram};
///
/// let shared = Histogram::new();
/// let mut local = LocalHistogram::new();
/// for us in 1..=1000 {
///     local.record(Duration::from_micros(us));
/// }
/// local.flush_into(&shared);
/// assert_eq!(shared.snapshot().count, 1000);
/// assert_eq!(local.snapshot().count, 0, "flushing empties the local histogram");
/// ```
#[derive(Debug)]
pub struct LocalHistogram(HistogramState);

impl Default for LocalHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalHistogram {
    /// An empty local histogram.
    pub fn new() -> Self {
        Self(HistogramState::new())
    }

    /// Records one duration; values above [`HISTOGRAM_MAX`] are recorded as the maximum.
    #[inline]
    pub fn record(&mut self, value: Duration) {
        self.0.record(value);
    }

    /// Summary statistics of what was recorded since the last flush.
    pub fn snapshot(&self) -> HistogramSnapshot {
        self.0.snapshot()
    }

    /// Forgets everything recorded (keeps the buckets' memory).
    pub fn clear(&mut self) {
        self.0.hist.reset();
        self.0.sum_ns = 0;
    }

    /// Adds everything recorded to `shared` and starts empty again.
    pub fn flush_into(&mut self, shared: &Histogram) {
        if self.0.hist.is_empty() {
            return;
        }
        let mut target = shared.0.lock();
        // Both sides have the same constant bounds, so adding cannot fail.
        target
            .hist
            .add(&self.0.hist)
            .expect("histograms with equal bounds add");
        target.sum_ns = target.sum_ns.saturating_add(self.0.sum_ns);
        drop(target);
        self.clear();
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Summary statistics of a [`Histogram`]; all zero when nothing was recorded.
///
/// Quantiles and extremes are exact to [`HISTOGRAM_SIGNIFICANT_DIGITS`] digits; `sum` and
/// `mean` are exact to the nanosecond (the sum saturates at `u64::MAX` ns, 584 years).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistogramSnapshot {
    /// Number of recorded values.
    pub count: u64,
    /// Sum of the recorded values.
    pub sum: Duration,
    /// Smallest recorded value.
    pub min: Duration,
    /// Largest recorded value.
    pub max: Duration,
    /// Arithmetic mean, rounded down to the nanosecond.
    pub mean: Duration,
    /// Median.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// A [`Counter`].
    Counter,
    /// A [`Gauge`].
    Gauge,
    /// A [`Histogram`].
    Histogram,
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        })
    }
}

/// Why [`Registry`] refused to create or return a metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The metric name is not `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name {name:?}")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// A label name is not `[a-zA-Z_][a-zA-Z0-9_]*`, starts with `__`, or is `quantile`
    /// (reserved for histogram summaries).
    #[error("invalid label name {label:?} on metric {name:?}")]
    InvalidLabelName {
        /// The metric name.
        name: String,
        /// The rejected label name.
        label: String,
    },
    /// The same label name was given twice.
    #[error("duplicate label name {label:?} on metric {name:?}")]
    DuplicateLabel {
        /// The metric name.
        name: String,
        /// The repeated label name.
        label: String,
    },
    /// The name is already registered with another metric type.
    #[error("metric {name:?} is a {existing}, not a {requested}")]
    TypeMismatch {
        /// The metric name.
        name: String,
        /// The type it was registered with.
        existing: MetricType,
        /// The type asked for now.
        requested: MetricType,
    },
}

#[derive(Debug, Clone)]
enum Handle {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

impl Handle {
    fn metric_type(&self) -> MetricType {
        match self {
            Self::Counter(_) => MetricType::Counter,
            Self::Gauge(_) => MetricType::Gauge,
            Self::Histogram(_) => MetricType::Histogram,
        }
    }
}

type LabelSet = Vec<(String, String)>;

#[derive(Debug)]
struct Family {
    help: String,
    metric_type: MetricType,
    series: BTreeMap<LabelSet, Handle>,
}

/// A set of named, labelled metrics.
///
/// `counter`, `gauge` and `histogram` get or create a series: asking again with the same name
/// and labels (in any order) returns a handle to the same metric. The help text of the first
/// registration of a name is kept. Cloning a registry shares it.
///
/// Call order: create handles at start-up (or whenever a new label value appears), record on
/// the handles in hot paths, and call [`Registry::snapshot`] when exporting.
///
/// # Examples
///
/// ```
/// use sarlink_monitor::metrics::{Registry, Value};
///
/// let registry = Registry::new();
/// let sent = registry.counter("frames_sent", "Frames sent", &[("link", "gs1")])?;
/// sent.inc();
/// registry.counter("frames_sent", "ignored", &[("link", "gs1")])?.add(2);
/// let snap = registry.snapshot();
/// assert_eq!(snap.value("frames_sent", &[("link", "gs1")]), Some(&Value::Counter(3)));
/// # Ok::<(), sarlink_monitor::metrics::RegisterError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Registry {
    families: Arc<Mutex<BTreeMap<String, Family>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gets or creates the counter `name` with `labels`.
    ///
    /// # Errors
    ///
    /// See [`RegisterError`]: invalid names, duplicate labels, or `name` already used by
    /// another metric type.
    pub fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<Counter, RegisterError> {
        match self.get_or_create(name, help, labels, MetricType::Counter)? {
            Handle::Counter(c) => Ok(c),
            other => Err(mismatch(name, other.metric_type(), MetricType::Counter)),
        }
    }

    /// Gets or creates the gauge `name` with `labels`.
    ///
    /// # Errors
    ///
    /// As for [`Registry::counter`].
    pub fn gauge(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<Gauge, RegisterError> {
        match self.get_or_create(name, help, labels, MetricType::Gauge)? {
            Handle::Gauge(g) => Ok(g),
            other => Err(mismatch(name, other.metric_type(), MetricType::Gauge)),
        }
    }

    /// Gets or creates the latency histogram `name` with `labels`. By Prometheus convention
    /// its name should end in `_seconds`: exposition is in seconds.
    ///
    /// # Errors
    ///
    /// As for [`Registry::counter`]; also the label name `quantile` is refused.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<Histogram, RegisterError> {
        match self.get_or_create(name, help, labels, MetricType::Histogram)? {
            Handle::Histogram(h) => Ok(h),
            other => Err(mismatch(name, other.metric_type(), MetricType::Histogram)),
        }
    }

    fn get_or_create(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        metric_type: MetricType,
    ) -> Result<Handle, RegisterError> {
        if !is_valid_metric_name(name) {
            return Err(RegisterError::InvalidName {
                name: name.to_owned(),
            });
        }
        let mut set: LabelSet = Vec::with_capacity(labels.len());
        for &(label, value) in labels {
            let reserved = metric_type == MetricType::Histogram && label == "quantile";
            if !is_valid_label_name(label) || reserved {
                return Err(RegisterError::InvalidLabelName {
                    name: name.to_owned(),
                    label: label.to_owned(),
                });
            }
            if set.iter().any(|(l, _)| l == label) {
                return Err(RegisterError::DuplicateLabel {
                    name: name.to_owned(),
                    label: label.to_owned(),
                });
            }
            set.push((label.to_owned(), value.to_owned()));
        }
        set.sort();

        let mut families = self.families.lock();
        let family = families.entry(name.to_owned()).or_insert_with(|| Family {
            help: help.to_owned(),
            metric_type,
            series: BTreeMap::new(),
        });
        if family.metric_type != metric_type {
            return Err(mismatch(name, family.metric_type, metric_type));
        }
        let handle = family
            .series
            .entry(set)
            .or_insert_with(|| match metric_type {
                MetricType::Counter => Handle::Counter(Counter::new()),
                MetricType::Gauge => Handle::Gauge(Gauge::new()),
                MetricType::Histogram => Handle::Histogram(Histogram::new()),
            });
        Ok(handle.clone())
    }

    /// Renders every metric in the Prometheus text format, exactly as
    /// `self.snapshot().to_prometheus_text()` would, without building the [`Snapshot`]:
    /// counters and gauges are written straight from their atomics, so a scrape allocates
    /// little (see `docs/BENCHMARKS.md`). Histograms are read after the registry lock is
    /// released, as in [`Registry::snapshot`].
    pub fn to_prometheus_text(&self) -> String {
        let mut segments = Vec::new();
        let mut text = String::new();
        {
            let families = self.families.lock();
            for (name, family) in families.iter() {
                if family.metric_type == MetricType::Histogram {
                    segments.push(prometheus::Segment::Text(std::mem::take(&mut text)));
                    let series = family
                        .series
                        .iter()
                        .filter_map(|(l, h)| match h {
                            Handle::Histogram(h) => Some((l.clone(), h.clone())),
                            _ => None,
                        })
                        .collect();
                    segments.push(prometheus::Segment::Histograms {
                        name: name.clone(),
                        help: family.help.clone(),
                        series,
                    });
                    continue;
                }
                prometheus::encode_scalar_family(&mut text, name, family);
            }
        }
        segments.push(prometheus::Segment::Text(text));
        prometheus::join(segments)
    }

    /// Reads every metric into plain data, families sorted by name and series by labels.
    pub fn snapshot(&self) -> Snapshot {
        // Clone the handles under the registry lock, read them after releasing it, so a
        // snapshot never holds the registry lock and a histogram lock at once.
        let pending: Vec<(FamilySnapshot, Vec<(LabelSet, Handle)>)> = self
            .families
            .lock()
            .iter()
            .map(|(name, f)| {
                let head = FamilySnapshot {
                    name: name.clone(),
                    help: f.help.clone(),
                    metric_type: f.metric_type,
                    series: Vec::with_capacity(f.series.len()),
                };
                let series = f
                    .series
                    .iter()
                    .map(|(l, h)| (l.clone(), h.clone()))
                    .collect();
                (head, series)
            })
            .collect();
        let families = pending
            .into_iter()
            .map(|(mut family, series)| {
                family
                    .series
                    .extend(series.into_iter().map(|(labels, handle)| SeriesSnapshot {
                        labels,
                        value: match handle {
                            Handle::Counter(c) => Value::Counter(c.value()),
                            Handle::Gauge(g) => Value::Gauge(g.value()),
                            Handle::Histogram(h) => Value::Histogram(h.snapshot()),
                        },
                    }));
                family
            })
            .collect();
        Snapshot { families }
    }
}

fn mismatch(name: &str, existing: MetricType, requested: MetricType) -> RegisterError {
    RegisterError::TypeMismatch {
        name: name.to_owned(),
        existing,
        requested,
    }
}

fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_valid_label_name(label: &str) -> bool {
    let mut chars = label.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !label.starts_with("__")
}

/// The value of one series in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's count.
    Counter(u64),
    /// A gauge's value.
    Gauge(f64),
    /// A histogram's summary.
    Histogram(HistogramSnapshot),
}

/// One labelled series of a family.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSnapshot {
    /// Label pairs, sorted by label name.
    pub labels: Vec<(String, String)>,
    /// The value read.
    pub value: Value,
}

/// All series sharing a metric name.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilySnapshot {
    /// The metric name as registered.
    pub name: String,
    /// The help text of the first registration.
    pub help: String,
    /// The family's type.
    pub metric_type: MetricType,
    /// Its series, sorted by labels.
    pub series: Vec<SeriesSnapshot>,
}

/// Plain-data copy of a [`Registry`] at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// Families sorted by name.
    pub families: Vec<FamilySnapshot>,
}

impl Snapshot {
    /// The value of series `name` with exactly `labels` (in any order), if present.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Value> {
        let family = self.families.iter().find(|f| f.name == name)?;
        family
            .series
            .iter()
            .find(|s| {
                s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(l, v)| s.labels.iter().any(|(sl, sv)| sl == l && sv == v))
            })
            .map(|s| &s.value)
    }

    /// Renders the snapshot in the Prometheus text exposition format, version 0.0.4.
    ///
    /// - Every family gets `# HELP` and `# TYPE` lines (help escaped: `\\`, `\n`).
    /// - Counters are exposed as `counter`s; `_total` is appended to the name unless it
    ///   already ends with it.
    /// - Gauges are `gauge`s.
    /// - Histograms are exposed as `summary`s in **seconds**: `{quantile="0.5"}`, `0.95`,
    ///   `0.99`, then `_sum` and `_count`. (A summary rather than Prometheus buckets, because
    ///   hdrhistogram's quantiles are exact to 3 digits while fixed buckets would need a
    ///   bucket layout chosen per metric.) Min, max and mean are in the [`Snapshot`] only.
    /// - Label values are escaped (`\\`, `\"`, `\n`); floats use `+Inf`, `-Inf` and `NaN`.
    ///
    /// Names are written as registered plus those suffixes; the registry does not check
    /// that, say, a counter `x` and a gauge `x_total` do not both exist, so avoid such names.
    pub fn to_prometheus_text(&self) -> String {
        prometheus::encode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_returns_same_series_for_reordered_labels() {
        let r = Registry::new();
        let a = r.gauge("g", "h", &[("a", "1"), ("b", "2")]).unwrap();
        let b = r.gauge("g", "h", &[("b", "2"), ("a", "1")]).unwrap();
        a.set(4.5);
        assert_eq!(b.value(), 4.5);
        assert_eq!(r.snapshot().families[0].series.len(), 1);
    }

    #[test]
    fn registry_rejects_bad_names_and_type_mismatch() {
        let r = Registry::new();
        assert!(matches!(
            r.counter("1abc", "", &[]),
            Err(RegisterError::InvalidName { .. })
        ));
        assert!(matches!(
            r.counter("ok", "", &[("__x", "v")]),
            Err(RegisterError::InvalidLabelName { .. })
        ));
        assert!(matches!(
            r.counter("ok", "", &[("a", "1"), ("a", "2")]),
            Err(RegisterError::DuplicateLabel { .. })
        ));
        assert!(matches!(
            r.histogram("lat", "", &[("quantile", "x")]),
            Err(RegisterError::InvalidLabelName { .. })
        ));
        r.counter("ok", "", &[]).unwrap();
        assert_eq!(
            r.gauge("ok", "", &[]).unwrap_err(),
            RegisterError::TypeMismatch {
                name: "ok".into(),
                existing: MetricType::Counter,
                requested: MetricType::Gauge
            }
        );
    }

    #[test]
    fn histogram_quantiles_and_clamping() {
        let h = Histogram::new();
        assert_eq!(h.snapshot(), HistogramSnapshot::default());
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        h.record(Duration::from_secs(3600));
        let s = h.snapshot();
        assert_eq!(s.count, 1001);
        assert_eq!(s.min, Duration::from_micros(1));
        // Clamped to the maximum, within hdrhistogram's 3-digit resolution.
        let max_err = s.max.abs_diff(HISTOGRAM_MAX);
        assert!(max_err <= HISTOGRAM_MAX / 1000, "max {:?}", s.max);
        let p50_err = s.p50.abs_diff(Duration::from_micros(501));
        assert!(p50_err <= Duration::from_micros(1), "p50 {:?}", s.p50);
        let p99_err = s.p99.abs_diff(Duration::from_micros(991));
        assert!(p99_err <= Duration::from_micros(1), "p99 {:?}", s.p99);
        assert_eq!(s.sum, Duration::from_micros(500_500) + HISTOGRAM_MAX);
        assert_eq!(
            s.mean,
            (Duration::from_micros(500_500) + HISTOGRAM_MAX) / 1001
        );
    }

    #[test]
    fn histogram_memory_is_fixed_at_creation() {
        let h = Histogram::new();
        let bytes = |h: &Histogram| h.0.lock().hist.distinct_values() * 8;
        let before = bytes(&h);
        assert_eq!(before, 27 * 1024 * 8, "the documented 216 KiB");
        h.record(Duration::from_secs(1000));
        h.record(Duration::ZERO);
        assert_eq!(bytes(&h), before);
    }

    #[test]
    fn histogram_records_from_many_threads_without_loss() {
        let h = Histogram::new();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let h = h.clone();
                s.spawn(move || (0..1000).for_each(|_| h.record(Duration::from_micros(t + 1))));
            }
        });
        let snap = h.snapshot();
        assert_eq!(snap.count, 4000);
        assert_eq!(snap.sum, Duration::from_micros(1000 * (1 + 2 + 3 + 4)));
    }

    #[test]
    fn counters_are_shared_across_threads() {
        let c = Counter::new();
        std::thread::scope(|s| {
            for _ in 0..4 {
                let c = c.clone();
                s.spawn(move || (0..1000).for_each(|_| c.inc()));
            }
        });
        assert_eq!(c.value(), 4000);
    }

    #[test]
    fn local_histograms_flush_to_exactly_what_direct_recording_gives() {
        let direct = Histogram::new();
        let shared = Histogram::new();
        let mut local = LocalHistogram::new();
        for i in 0..10_000u64 {
            let d = Duration::from_nanos(1 + (i * 7919) % 5_000_000);
            direct.record(d);
            local.record(d);
            if i % 1000 == 999 {
                local.flush_into(&shared);
            }
        }
        local.flush_into(&shared);
        assert_eq!(shared.snapshot(), direct.snapshot());
        assert_eq!(local.snapshot(), HistogramSnapshot::default());
    }
}
