//! The drone's sans-IO core: coordination, safety authority over ground commands, rate and
//! degradation policy, and what to stream, send and record.
//!
//! [`DroneCore`] owns no socket, no receiver and no clock. The caller (the drone's driver in
//! [`crate::node::drone`], the demo, the load tool, or a test) feeds it [`DroneInput`]s with
//! the current wall-clock time, then drains [`DroneCore::poll_output`] until it returns
//! `None`, and calls [`DroneInput::Tick`] again by [`DroneCore::poll_timeout`]:
//!
//! ```
//! use std::time::Duration;
//! use sarlink_schema::NodeName;
//! use sarlink_station::drone::{DroneConfig, DroneCore, DroneInput, DroneOutput};
//!
//! let mut core = DroneCore::new(DroneConfig::new(NodeName::new("drone-1")?))?;
//! let now = Duration::from_secs(1_764_000_000);
//! core.handle(now, DroneInput::LinkUp {
//!     ground: NodeName::new("ground")?,
//!     units: sarlink_schema::RssiUnits::Dbfs,
//! });
//! core.handle(now + Duration::from_millis(100), DroneInput::Tick);
//! while let Some(out) = core.poll_output() {
//!     if let DroneOutput::Send(message) = out {
//!         println!("to the ground: {}", message.kind().as_str());
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The rules:
//! - Every record of the drone's own receiver is streamed (unless the ground switched the
//!   stream off) and offered to the coordinator; records of the ground's receiver reach the
//!   coordinator too. Ground records are judged fresh by their age as seen on this drone
//!   (the ground's clock may differ from ours): the smallest recent difference between our
//!   clock and their stamps is taken as the clock offset plus the quickest delivery.
//! - The coordinator decides every [`DroneConfig::decide_interval`]. A link reported lost
//!   (or down) makes the next decision fall back to the drone's own receiver; recovery comes
//!   after the coordinator's hold-down. Each changed decision is recorded, and sent to the
//!   ground (held while the link is down, the newest 64, and sent on reconnection).
//! - Commands pass range checks, then the safety authority ([`sarlink_coord::SafetyState`]):
//!   `communication` while the link is degraded, `signal` for a while after the drone's own
//!   lock on the beacon is lost, `resources` while the degradation controller sheds work. A
//!   refused command gets `ack` `ok: false` with code `safety` and the rule that refused it.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use sarlink_coord::{
    Config as CoordConfig, ConfigError as CoordConfigError, Coordinator, LinkHealth,
    LinkState as CoordLinkState, Reason, SafetyLevel, SafetyState,
};
use sarlink_link::LinkState;
use sarlink_monitor::Percent;
use sarlink_monitor::baseline::{Baseline, BaselineConfig, Deviation};
use sarlink_monitor::degradation::{
    Action, ControllerConfig, DegradationController, FeatureId, Priority, Readings, RegisterError,
};
use sarlink_monitor::thresholds::{
    Alert, Level, MetricKind, Observation, RttWindow, ThresholdConfig, Thresholds,
};
use sarlink_schema::{
    Ack, AckCode, Cmd, CmdOp, Decision, Message, NodeName, RssiRecord, RssiUnits, SourceId, Status,
};
use sarlink_sdr::Gain;

use crate::output::Entry;

/// Frequencies an RTL-SDR (R820T/R828D tuner) can receive.
pub const TUNABLE_HZ: RangeInclusive<u64> = 24_000_000..=1_766_000_000;
/// RSSI report rates a command may ask for.
pub const RATE_RANGE_HZ: RangeInclusive<f32> = 0.1..=50.0;
/// Gains a command may ask for, dB.
pub const GAIN_RANGE_DB: RangeInclusive<f32> = -10.0..=70.0;
/// Decisions held for the ground while the link is down (the newest are kept).
pub const HELD_DECISIONS: usize = 64;
/// Fallback and recovery delays kept for inspection (the newest are kept).
const DELAYS_KEPT: usize = 1024;
/// Ground records whose arrival offsets are kept to estimate the clock offset.
const OFFSET_WINDOW: usize = 64;

/// Settings of a [`DroneCore`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DroneConfig {
    /// This drone's node name (it names the flight recorder's own records).
    pub node: NodeName,
    /// The coordinator's tuning (hysteresis, dwell, hold-down, freshness).
    pub coord: CoordConfig,
    /// The configured RSSI report rate. Default 10 Hz.
    pub report_rate_hz: f32,
    /// How often the coordinator decides. Default 100 ms.
    pub decide_interval: Duration,
    /// After the drone's own receiver loses the beacon it had detected, the `signal` safety
    /// level holds this long (no retuning or gain change while re-acquiring). Default 10 s.
    pub reacquire_window: Duration,
    /// Offset of the beacon from the receiver's centre frequency, Hz: a `tune` to `f`
    /// centres the receiver at `f - channel_offset_hz`. Default 0.
    pub channel_offset_hz: f64,
    /// EWMA smoothing of RSSI (`alpha`), `None` for none. Default `None`.
    pub smoothing: Option<f32>,
    /// Units of the drone's own records (dBm when calibrated). Default dBFS.
    pub units: RssiUnits,
    /// The degradation controller's thresholds.
    pub degradation: ControllerConfig,
    /// Alert thresholds (link RTT p95, measurement cycle load, CPU, memory, temperature,
    /// backlog, output errors, baseline deviations).
    pub thresholds: ThresholdConfig,
    /// The window the link RTT's p95 is taken over for its alert. Default 5 s.
    pub rtt_window: Duration,
}

impl DroneConfig {
    /// Defaults for drone `node`.
    pub fn new(node: NodeName) -> Self {
        DroneConfig {
            node,
            coord: CoordConfig::default(),
            report_rate_hz: 10.0,
            decide_interval: Duration::from_millis(100),
            reacquire_window: Duration::from_secs(10),
            channel_offset_hz: 0.0,
            smoothing: None,
            units: RssiUnits::Dbfs,
            degradation: ControllerConfig::default(),
            thresholds: ThresholdConfig::default(),
            rtt_window: Duration::from_secs(5),
        }
    }
}

/// A [`DroneConfig`] that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DroneConfigError {
    /// The coordinator's settings are invalid.
    #[error("coordinator: {0}")]
    Coordinator(#[from] CoordConfigError),
    /// The report rate is outside [`RATE_RANGE_HZ`].
    #[error("report rate {0} Hz is outside 0.1-50")]
    Rate(f32),
    /// The decision interval is zero.
    #[error("the decision interval must be above zero")]
    DecideInterval,
    /// A feature could not be registered with the degradation controller.
    #[error("degradation controller: {0}")]
    Degradation(#[from] RegisterError),
}

/// What happened to a receiver setting the core asked for ([`DroneOutput::Control`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlOutcome {
    /// Applied.
    Applied,
    /// The receiver cannot do this (a recording cannot retune).
    Unsupported(String),
    /// The receiver refused the value or failed to apply it.
    Failed(String),
}

/// A receiver setting for the caller to apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Control {
    /// Retune so the beacon at `beacon_hz` is measured: centre the receiver at `center_hz`.
    /// Answer with [`DroneInput::ControlDone`] carrying `cmd_id`.
    Tune {
        /// The command being carried out.
        cmd_id: u32,
        /// The beacon's frequency.
        beacon_hz: u64,
        /// The receiver's new centre frequency.
        center_hz: u64,
    },
    /// Set the tuner gain. Answer with [`DroneInput::ControlDone`] carrying `cmd_id`.
    Gain {
        /// The command being carried out.
        cmd_id: u32,
        /// The gain.
        gain: Gain,
    },
    /// Report at this rate from now on (no answer needed).
    ReportRate {
        /// Reports per second.
        hz: f32,
    },
    /// Smooth RSSI with this EWMA alpha, or not at all (no answer needed).
    Smoothing {
        /// The alpha, or `None`.
        alpha: Option<f32>,
    },
}

/// The drone's optional features, which the degradation controller may shed (see
/// [`DroneCore::is_enabled`]); the table with their classes is in `docs/OPERATIONS.md`.
/// Measuring, the sample stream, the coordinator's fallback, the safety authority, the
/// `status` message and the flight recorder are registered as never shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DroneFeature {
    /// Class 3: reporting at the configured rate; shed (extreme pressure only), the rate
    /// is halved.
    FullReportRate,
    /// Class 4: the receiver's delivery detail in `status` (`source`, `data_age_ms`); the
    /// level and the list of shed features are always sent.
    StatusDetail,
    /// Class 4: MAVLink extras: STATUSTEXT notices and the extra NAMED_VALUE_FLOATs (the
    /// RSSI value itself is kept).
    MavlinkExtras,
    /// Class 5: EWMA smoothing of RSSI (records then say `smoothing` is off).
    Smoothing,
    /// Class 5: dashboard and per-drone series published every second; shed, every 5 s.
    DashboardRate,
    /// Class 6: the status line on stderr.
    StatusLine,
}

impl DroneFeature {
    /// Every optional feature, most important first.
    pub const ALL: [DroneFeature; 6] = [
        DroneFeature::FullReportRate,
        DroneFeature::StatusDetail,
        DroneFeature::MavlinkExtras,
        DroneFeature::Smoothing,
        DroneFeature::DashboardRate,
        DroneFeature::StatusLine,
    ];

    /// The name it is registered, logged and reported under.
    pub fn as_str(self) -> &'static str {
        match self {
            DroneFeature::FullReportRate => "full-report-rate",
            DroneFeature::StatusDetail => "status-detail",
            DroneFeature::MavlinkExtras => "mavlink-extras",
            DroneFeature::Smoothing => "smoothing",
            DroneFeature::DashboardRate => "dashboard-rate",
            DroneFeature::StatusLine => "status-line",
        }
    }

    /// Its priority class.
    pub fn priority(self) -> Priority {
        match self {
            DroneFeature::FullReportRate => Priority::PrimaryFunction,
            DroneFeature::StatusDetail | DroneFeature::MavlinkExtras => Priority::Enhanced,
            DroneFeature::Smoothing | DroneFeature::DashboardRate => Priority::Optimisation,
            DroneFeature::StatusLine => Priority::Convenience,
        }
    }
}

/// Features of the drone that are registered with the controller but never shed.
pub const DRONE_NEVER_SHED: [(&str, Priority); 6] = [
    ("measuring", Priority::CriticalSafety),
    ("rssi-stream", Priority::CriticalSafety),
    ("coordinator-fallback", Priority::CriticalSafety),
    ("safety-authority", Priority::CriticalSafety),
    ("status-message", Priority::EssentialOperation),
    ("flight-recorder", Priority::EssentialOperation),
];

/// Whole-machine resource readings, taken about once a second by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ResourceSample {
    /// What the degradation controller acts on (whole-machine CPU, memory, temperature).
    pub readings: Readings,
    /// This process's resident memory, bytes (reported in `status`).
    pub rss_bytes: Option<u64>,
}

/// An input to [`DroneCore::handle`].
#[derive(Debug, Clone, PartialEq)]
pub enum DroneInput<'a> {
    /// A record of the drone's own receiver, and whether the beacon is detected in it.
    Measured {
        /// The record (stamped with the end of its window on this drone's clock).
        record: RssiRecord,
        /// The estimator's detection state after this record.
        detected: bool,
    },
    /// Records of the ground's receiver, relayed by the ground.
    GroundRecords {
        /// Sequence number of the first in the ground's stream for this connection.
        seq: u64,
        /// The records.
        records: &'a [RssiRecord],
    },
    /// The link to the ground is up (the handshake completed).
    LinkUp {
        /// The ground's node name.
        ground: NodeName,
        /// Units of the ground's records (from its `welcome`).
        units: RssiUnits,
    },
    /// The link to the ground is down (closed, or could not be made).
    LinkDown,
    /// The session's view of the link's health.
    LinkState(LinkState),
    /// A round-trip time measured on the link.
    Rtt(Duration),
    /// The link's congestion advice: report at most this rate.
    AdviseRate(f32),
    /// A command from the ground.
    Command(Cmd),
    /// The answer to a [`Control::Tune`] or [`Control::Gain`].
    ControlDone {
        /// The command it carried out.
        cmd_id: u32,
        /// What happened.
        outcome: ControlOutcome,
    },
    /// How long the measurement cycle behind the latest report took.
    CycleTime(Duration),
    /// Resource readings (about once a second).
    Resources(ResourceSample),
    /// Records held on the drone for the link (about once a second, before
    /// [`DroneInput::Resources`]): evaluated against the ring's capacity.
    Backlog {
        /// Records held.
        held: u64,
        /// The ring's capacity.
        capacity: u64,
    },
    /// The flight recorder's failed writes since its last successful one (0 once it
    /// writes again).
    OutputErrors(u64),
    /// How a live receiver delivers (about once a second; recordings and the simulator
    /// send none): `streaming`, `stalled`, `reconnecting` or `stale`, and the age of its
    /// newest samples. Reported in `status`.
    Source {
        /// The state.
        state: String,
        /// Age of the newest samples.
        data_age: Option<Duration>,
    },
    /// Time passed (call by [`DroneCore::poll_timeout`]).
    Tick,
}

/// What [`DroneCore::poll_output`] asks the caller to do or tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum DroneOutput {
    /// Append this own record to the link's sample stream.
    Sample(RssiRecord),
    /// Send this message to the ground (`ack`, `decision`, `status`).
    Send(Message),
    /// Write this to the local flight recorder (when one is configured).
    Write(Entry),
    /// Apply this receiver setting.
    Control(Control),
    /// Something a human may want to know.
    Event(DroneEvent),
}

/// Notable things the core did, for logs, status lines and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum DroneEvent {
    /// The coordinator's decision changed.
    Decision(Decision),
    /// A ground command was refused.
    Refused {
        /// The command.
        cmd: Cmd,
        /// The answer sent.
        ack: Ack,
    },
    /// A command was carried out.
    Accepted {
        /// The command.
        cmd: Cmd,
    },
    /// The safety state changed.
    Safety(SafetyState),
    /// The degradation controller shed or restored features or changed the report rate.
    Degradation {
        /// What changed.
        event: sarlink_monitor::degradation::Event,
        /// The features it sheds or restores, by name (empty for a rate change).
        features: Vec<&'static str>,
        /// The level after it (`normal` or `shedding-N`).
        level: String,
        /// The readings that caused it.
        readings: Readings,
    },
    /// An alert was raised or cleared.
    Alert(Alert),
    /// A link RTT or measurement cycle time strayed from its own recent baseline (an
    /// exponentially weighted mean and deviation), though it may be within the alert
    /// thresholds.
    Deviation {
        /// What strayed ([`MetricKind::LinkRtt`] or [`MetricKind::CycleProcessing`]).
        metric: MetricKind,
        /// By how much.
        deviation: Deviation,
    },
}

/// Counters of a [`DroneCore`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DroneStats {
    /// Own records measured.
    pub measured: u64,
    /// Own records handed to the link.
    pub streamed: u64,
    /// Ground records received.
    pub ground_records: u64,
    /// Commands received.
    pub commands: u64,
    /// Commands refused (any code).
    pub refused: u64,
    /// Decisions that changed the active source, reason or fallback.
    pub decisions: u64,
    /// Source switches.
    pub switches: u64,
    /// Fallbacks begun.
    pub fallbacks: u64,
    /// Fallbacks ended.
    pub recoveries: u64,
    /// Times the link came up.
    pub connections: u64,
    /// Decisions dropped because more than [`HELD_DECISIONS`] waited for the link.
    pub decisions_dropped: u64,
}

/// The drone's core. See the module documentation for the call order and the rules.
#[derive(Debug)]
pub struct DroneCore {
    config: DroneConfig,
    coordinator: Coordinator,
    controller: DegradationController,
    /// The ids of [`DroneFeature::ALL`], in that order.
    features: Vec<FeatureId>,
    thresholds: Thresholds,
    rtt_window: RttWindow,
    rtt_baseline: Baseline,
    cycle_baseline: Baseline,
    out: VecDeque<DroneOutput>,
    node: Arc<str>,
    // Link.
    ground: Option<Arc<str>>,
    ground_units: RssiUnits,
    link: Option<LinkState>,
    rtt: Option<Duration>,
    held: VecDeque<Decision>,
    epoch: u64,
    offsets: VecDeque<i128>,
    // Receiver and rate.
    rate_hz: f32,
    advised_hz: f32,
    shed_factor: f32,
    applied_hz: f32,
    smoothing_applied: Option<f32>,
    streaming: bool,
    detected_at: Option<Duration>,
    lock_lost_at: Option<Duration>,
    own_seq: u64,
    own_latest: Option<RssiRecord>,
    ground_latest: Option<RssiRecord>,
    own_detected: bool,
    // Decisions.
    safety: SafetyState,
    vehicle: SafetyState,
    decision: Option<Decision>,
    next_decide: Duration,
    lost_at: Option<Duration>,
    up_at: Option<Duration>,
    fallback_delays: VecDeque<Duration>,
    recovery_delays: VecDeque<Duration>,
    pending: Vec<Cmd>,
    stats: DroneStats,
    readings: ResourceSample,
    source: Option<(String, Option<Duration>)>,
    backlog_held: u64,
}

fn health(state: LinkState, rtt: Option<Duration>) -> LinkHealth {
    LinkHealth {
        state: match state {
            LinkState::Healthy => CoordLinkState::Healthy,
            LinkState::Degraded => CoordLinkState::Degraded,
            LinkState::Lost => CoordLinkState::Lost,
        },
        rtt,
        ..LinkHealth::HEALTHY
    }
}

fn push_bounded<T>(v: &mut VecDeque<T>, cap: usize, item: T) -> bool {
    let full = v.len() >= cap;
    if full {
        v.pop_front();
    }
    v.push_back(item);
    full
}

fn ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl DroneCore {
    /// A core with `config`, the link down, no records yet.
    ///
    /// # Errors
    /// [`DroneConfigError`] when a setting is out of range.
    pub fn new(config: DroneConfig) -> Result<DroneCore, DroneConfigError> {
        if !RATE_RANGE_HZ.contains(&config.report_rate_hz) {
            return Err(DroneConfigError::Rate(config.report_rate_hz));
        }
        if config.decide_interval.is_zero() {
            return Err(DroneConfigError::DecideInterval);
        }
        let coordinator = Coordinator::new(config.coord.clone())?;
        let mut controller = DegradationController::new(config.degradation);
        for (name, priority) in DRONE_NEVER_SHED {
            controller.register(name, priority, true)?;
        }
        let features = DroneFeature::ALL
            .iter()
            .map(|f| controller.register(f.as_str(), f.priority(), false))
            .collect::<Result<Vec<_>, _>>()?;
        let rate = config.report_rate_hz;
        Ok(DroneCore {
            thresholds: Thresholds::new(config.thresholds),
            rtt_window: RttWindow::new(config.rtt_window),
            rtt_baseline: Baseline::new(BaselineConfig::default()),
            cycle_baseline: Baseline::new(BaselineConfig::default()),
            smoothing_applied: config.smoothing,
            coordinator,
            controller,
            features,
            out: VecDeque::new(),
            node: Arc::from(config.node.as_str()),
            ground: None,
            ground_units: RssiUnits::Dbfs,
            link: None,
            rtt: None,
            held: VecDeque::new(),
            epoch: 0,
            offsets: VecDeque::with_capacity(OFFSET_WINDOW),
            rate_hz: rate,
            advised_hz: f32::INFINITY,
            shed_factor: 1.0,
            applied_hz: rate,
            streaming: true,
            detected_at: None,
            lock_lost_at: None,
            own_seq: 0,
            own_latest: None,
            ground_latest: None,
            own_detected: false,
            safety: SafetyState::NOMINAL,
            vehicle: SafetyState::NOMINAL,
            decision: None,
            next_decide: Duration::ZERO,
            lost_at: None,
            up_at: None,
            fallback_delays: VecDeque::new(),
            recovery_delays: VecDeque::new(),
            pending: Vec::new(),
            stats: DroneStats::default(),
            readings: ResourceSample::default(),
            source: None,
            backlog_held: 0,
            config,
        })
    }

    /// Feeds one input at `now` (wall-clock time since the Unix epoch, the clock the
    /// drone's own records are stamped with).
    pub fn handle(&mut self, now: Duration, input: DroneInput<'_>) {
        match input {
            DroneInput::Measured { record, detected } => self.measured(now, record, detected),
            DroneInput::GroundRecords { seq, records } => self.ground_records(now, seq, records),
            DroneInput::LinkUp { ground, units } => {
                self.ground_units = units;
                self.stats.connections += 1;
                self.epoch += 1;
                self.ground = Some(Arc::from(ground.as_str()));
                self.link = Some(LinkState::Healthy);
                self.up_at = Some(now);
                self.offsets.clear();
                self.coordinator
                    .update_link(SourceId::GROUND, LinkHealth::HEALTHY, now);
                // The ground learns whatever it missed, or else the decision in force.
                let missed = !self.held.is_empty();
                for d in self.held.drain(..) {
                    self.out.push_back(DroneOutput::Send(Message::Decision(d)));
                }
                if let (false, Some(d)) = (missed, &self.decision) {
                    self.out
                        .push_back(DroneOutput::Send(Message::Decision(d.clone())));
                }
            }
            DroneInput::LinkDown => {
                if self.link.is_some() {
                    self.lost_at.get_or_insert(now);
                }
                self.link = None;
                self.up_at = None;
                self.coordinator
                    .update_link(SourceId::GROUND, LinkHealth::LOST, now);
            }
            DroneInput::LinkState(state) => {
                if self.link.is_none() {
                    return;
                }
                self.link = Some(state);
                match state {
                    LinkState::Lost => {
                        self.lost_at.get_or_insert(now);
                        self.up_at = None;
                    }
                    LinkState::Healthy => {
                        self.up_at.get_or_insert(now);
                    }
                    LinkState::Degraded => {}
                }
                self.coordinator
                    .update_link(SourceId::GROUND, health(state, self.rtt), now);
            }
            DroneInput::Rtt(rtt) => {
                self.rtt = Some(rtt);
                if let Some(state) = self.link {
                    self.coordinator
                        .update_link(SourceId::GROUND, health(state, Some(rtt)), now);
                }
                let p95 = self.rtt_window.observe(now, rtt);
                let sigmas = self.baseline_sigmas(MetricKind::LinkRtt, rtt);
                self.observe(now, Observation::LinkRtt(p95));
                self.observe(now, Observation::RttDeviation(sigmas));
            }
            DroneInput::AdviseRate(hz) => {
                self.advised_hz = hz;
                self.apply_rate();
            }
            DroneInput::Command(cmd) => self.command(now, cmd),
            DroneInput::ControlDone { cmd_id, outcome } => self.control_done(cmd_id, outcome),
            DroneInput::CycleTime(d) => {
                let sigmas = self.baseline_sigmas(MetricKind::CycleProcessing, d);
                // The share of the report period the cycle took (the period in force).
                let period = 1.0 / f64::from(self.current_rate_hz().max(0.01));
                let load = Percent::saturating(100.0 * d.as_secs_f64() / period);
                self.observe(now, Observation::CycleLoad(load));
                self.observe(now, Observation::CycleDeviation(sigmas));
            }
            DroneInput::Resources(sample) => self.resources(now, sample),
            DroneInput::Backlog { held, capacity } => {
                self.backlog_held = held;
                let share = 100.0 * held as f64 / capacity.max(1) as f64;
                self.observe(now, Observation::Backlog(Percent::saturating(share)));
            }
            DroneInput::OutputErrors(n) => self.observe(now, Observation::OutputErrors(n)),
            DroneInput::Source { state, data_age } => self.source = Some((state, data_age)),
            DroneInput::Tick => {}
        }
        self.update_safety(now);
        if now >= self.next_decide {
            self.decide(now);
        }
    }

    /// The next output, or `None` when there is nothing more until the next input.
    pub fn poll_output(&mut self) -> Option<DroneOutput> {
        self.out.pop_front()
    }

    /// When to call [`DroneInput::Tick`] next (wall-clock time since the Unix epoch).
    pub fn poll_timeout(&self) -> Duration {
        self.next_decide
    }

    fn measured(&mut self, now: Duration, record: RssiRecord, detected: bool) {
        self.stats.measured += 1;
        if detected {
            self.detected_at = Some(now);
            self.lock_lost_at = None;
        } else if self.own_detected {
            self.lock_lost_at = Some(now);
        }
        self.own_detected = detected;
        self.own_latest = Some(record);
        self.coordinator.update_record(&record, now);
        if self.streaming {
            self.stats.streamed += 1;
            self.out.push_back(DroneOutput::Sample(record));
        }
        let seq = self.own_seq;
        self.own_seq += 1;
        self.out.push_back(DroneOutput::Write(Entry::Record {
            node: Arc::clone(&self.node),
            stream: 0,
            seq,
            units: self.config.units,
            record,
        }));
    }

    fn ground_records(&mut self, now: Duration, seq: u64, records: &[RssiRecord]) {
        let ground = self.ground.clone().unwrap_or_else(|| Arc::from("ground"));
        for (i, record) in records.iter().enumerate() {
            self.stats.ground_records += 1;
            // Age as seen here: the smallest recent (our clock - their stamp) is the clock
            // offset plus the quickest delivery; what exceeds it is this record's delay.
            let diff = i128::from(ns(now)) - i128::from(record.timestamp_ns);
            push_bounded(&mut self.offsets, OFFSET_WINDOW, diff);
            let offset = self.offsets.iter().copied().min().unwrap_or(diff);
            let age_ns = u64::try_from((diff - offset).max(0)).unwrap_or(u64::MAX);
            let seen = now.saturating_sub(Duration::from_nanos(age_ns));
            let mut local = *record;
            local.timestamp_ns = ns(seen);
            local.source_id = SourceId::GROUND;
            self.coordinator.update_record(&local, now);
            self.ground_latest = Some(*record);
            self.out.push_back(DroneOutput::Write(Entry::Record {
                node: Arc::clone(&ground),
                stream: self.epoch,
                seq: seq + i as u64,
                units: self.ground_units,
                record: *record,
            }));
        }
    }

    /// Folds `value` into its baseline; a deviation is reported as an event, and its
    /// distance in standard deviations returned (0 within the baseline) for the alert.
    fn baseline_sigmas(&mut self, metric: MetricKind, value: Duration) -> f64 {
        let baseline = if metric == MetricKind::LinkRtt {
            &mut self.rtt_baseline
        } else {
            &mut self.cycle_baseline
        };
        let Some(deviation) = baseline.update(value.as_secs_f64() * 1000.0) else {
            return 0.0;
        };
        self.out
            .push_back(DroneOutput::Event(DroneEvent::Deviation {
                metric,
                deviation,
            }));
        deviation.sigmas
    }

    fn observe(&mut self, now: Duration, observation: Observation) {
        if let Some(alert) = self.thresholds.observe(now, observation) {
            self.out
                .push_back(DroneOutput::Event(DroneEvent::Alert(alert)));
        }
    }

    fn resources(&mut self, now: Duration, sample: ResourceSample) {
        self.readings = sample;
        let r = sample.readings;
        for o in [
            r.cpu.map(Observation::Cpu),
            r.memory.map(Observation::Memory),
            r.temperature.map(Observation::Temperature),
        ]
        .into_iter()
        .flatten()
        {
            self.observe(now, o);
        }
        let events = self.controller.step(now, r).to_vec();
        for event in events {
            let set = match event.action {
                Action::SetReportRate { hz } => {
                    // Stepped down relative to the configured rate: the controller's rates
                    // are for a 10 Hz drone.
                    let normal = self.config.degradation.report_rates_hz[0].max(1);
                    self.shed_factor = hz as f32 / normal as f32;
                    None
                }
                Action::Disable(set) | Action::Enable(set) => Some(set),
            };
            let features = set
                .map(|set| {
                    set.iter()
                        .filter_map(|id| {
                            self.features
                                .iter()
                                .position(|f| *f == id)
                                .map(|i| DroneFeature::ALL[i].as_str())
                        })
                        .collect()
                })
                .unwrap_or_default();
            let level = self.level();
            self.out
                .push_back(DroneOutput::Event(DroneEvent::Degradation {
                    event,
                    features,
                    level,
                    readings: r,
                }));
        }
        self.apply_rate();
        let alpha = if self.is_enabled(DroneFeature::Smoothing) {
            self.config.smoothing
        } else {
            None
        };
        if alpha != self.smoothing_applied {
            self.smoothing_applied = alpha;
            self.out
                .push_back(DroneOutput::Control(Control::Smoothing { alpha }));
        }
        if self.link.is_some() {
            let status = self.status(now);
            self.out
                .push_back(DroneOutput::Send(Message::Status(status)));
        }
    }

    /// The `status` message the drone sends once a second.
    fn status(&self, now: Duration) -> Status {
        // The level and the shed features are always sent: the ground must see them.
        let detail = self.is_enabled(DroneFeature::StatusDetail);
        let disabled = self
            .controller
            .disabled()
            .iter()
            .filter_map(|id| self.controller.feature(id).map(|f| f.name.clone()))
            .collect();
        let r = self.readings;
        Status {
            t_ns: ns(now),
            cpu_pct: r.readings.cpu.map_or(f32::NAN, |p| p.value() as f32),
            mem_bytes: r.rss_bytes.unwrap_or(0),
            temp_c: r.readings.temperature.map(|c| c.value() as f32),
            level: self.level(),
            disabled,
            dropped: 0,
            // Records held for the link (u32 is plenty: the ring holds 65,536).
            queued: u32::try_from(self.backlog_held).unwrap_or(u32::MAX),
            rate_hz: self.current_rate_hz(),
            source: self
                .source
                .as_ref()
                .filter(|_| detail)
                .map(|(s, _)| s.clone()),
            data_age_ms: self
                .source
                .as_ref()
                .filter(|_| detail)
                .and_then(|(_, age)| *age)
                .map(|a| u32::try_from(a.as_millis()).unwrap_or(u32::MAX)),
            // Never shed with the detail: an operator must see what is wrong.
            alerts: self
                .active_alerts()
                .filter_map(|(kind, level)| {
                    let severity = match level {
                        Level::Warning => "warning",
                        Level::Critical => "critical",
                        Level::Normal => return None,
                    };
                    Some(format!("{}:{severity}", kind.as_str()))
                })
                .collect(),
        }
    }

    /// The degradation level as the `status` message names it: `normal` or
    /// `shedding-N` (N the highest priority class being shed).
    pub fn level(&self) -> String {
        self.controller.shed_from().map_or_else(
            || "normal".to_owned(),
            |p| format!("shedding-{}", p.class()),
        )
    }

    /// The report rate in force: the configured (or commanded) rate, capped by the link's
    /// advice, then stepped down by the thermal level (relative to the configured rate:
    /// 1/2, 1/5, 1/10 at Warm, Hot, Critical by default) and halved while
    /// [`DroneFeature::FullReportRate`] is shed; never below 0.1 Hz.
    pub fn current_rate_hz(&self) -> f32 {
        let mut hz = self.rate_hz.min(self.advised_hz) * self.shed_factor;
        if !self.is_enabled(DroneFeature::FullReportRate) {
            hz /= 2.0;
        }
        hz.max(*RATE_RANGE_HZ.start())
    }

    /// Whether the degradation controller currently lets `feature` run.
    pub fn is_enabled(&self, feature: DroneFeature) -> bool {
        DroneFeature::ALL
            .iter()
            .position(|f| *f == feature)
            .and_then(|i| self.features.get(i))
            .is_some_and(|id| self.controller.is_enabled(*id))
    }

    /// The alerts in force (announced and not yet cleared), with their level.
    pub fn active_alerts(&self) -> impl Iterator<Item = (MetricKind, Level)> + '_ {
        self.thresholds.active()
    }

    /// The latest resource readings.
    pub fn readings(&self) -> &ResourceSample {
        &self.readings
    }

    fn apply_rate(&mut self) {
        let hz = self.current_rate_hz();
        if hz != self.applied_hz {
            self.applied_hz = hz;
            self.out
                .push_back(DroneOutput::Control(Control::ReportRate { hz }));
        }
    }

    fn update_safety(&mut self, now: Duration) {
        let mut s = SafetyState::NOMINAL;
        if matches!(self.link, Some(LinkState::Degraded | LinkState::Lost)) {
            s = s.with(SafetyLevel::Communication);
        }
        if self
            .lock_lost_at
            .is_some_and(|at| now.saturating_sub(at) < self.config.reacquire_window)
        {
            s = s.with(SafetyLevel::Signal);
        }
        if self.controller.shed_from().is_some() {
            s = s.with(SafetyLevel::Resources);
        }
        if s != self.safety {
            self.safety = s;
            self.out
                .push_back(DroneOutput::Event(DroneEvent::Safety(s)));
        }
        // The coordinator is not given these levels: the link's own state already drives
        // fallback, and a weak own signal or a busy machine is no reason to trust the
        // ground's receiver less. Vehicle levels reach it through `set_vehicle_safety`.
    }

    /// Sets vehicle safety levels (emergency stop, flight mode, geofence, battery) from the
    /// flight controller. Those force fallback to the drone's own receiver and take part in
    /// command authority. Pass [`SafetyState::NOMINAL`] when there is no vehicle.
    pub fn set_vehicle_safety(&mut self, now: Duration, vehicle: SafetyState) {
        self.vehicle = vehicle;
        self.coordinator.set_safety(vehicle, now);
    }

    fn decide(&mut self, now: Duration) {
        // Catch up without bursts when a caller ticks late.
        self.next_decide = (self.next_decide + self.config.decide_interval).max(now);
        if self.next_decide == now {
            self.next_decide = now + self.config.decide_interval;
        }
        let d = self.coordinator.decide(now);
        let message = Decision::from(d);
        let switched = d.switched_from.is_some();
        let recovering = d.reason == Reason::Recovering;
        let was_fallback = self.decision.as_ref().is_some_and(|p| p.fallback);
        let changed = self.decision.as_ref().is_none_or(|p| {
            p.source_id != message.source_id
                || p.reason != message.reason
                || p.fallback != message.fallback
        });
        if switched {
            self.stats.switches += 1;
        }
        if message.fallback && !was_fallback {
            self.stats.fallbacks += 1;
            if let Some(at) = self.lost_at.take() {
                push_bounded(
                    &mut self.fallback_delays,
                    DELAYS_KEPT,
                    now.saturating_sub(at),
                );
            }
        }
        if !message.fallback && was_fallback && !recovering {
            self.stats.recoveries += 1;
            if let Some(at) = self.up_at {
                push_bounded(
                    &mut self.recovery_delays,
                    DELAYS_KEPT,
                    now.saturating_sub(at),
                );
            }
        }
        if !message.fallback {
            self.lost_at = None;
        }
        if changed {
            self.stats.decisions += 1;
            self.out.push_back(DroneOutput::Write(Entry::Decision {
                node: Arc::clone(&self.node),
                decision: message.clone(),
            }));
            self.out
                .push_back(DroneOutput::Event(DroneEvent::Decision(message.clone())));
            if self.link.is_some() {
                self.out
                    .push_back(DroneOutput::Send(Message::Decision(message.clone())));
            } else if push_bounded(&mut self.held, HELD_DECISIONS, message.clone()) {
                self.stats.decisions_dropped += 1;
            }
        }
        self.decision = Some(message);
    }

    fn refuse(&mut self, cmd: Cmd, code: AckCode, reason: String) {
        let ack = Ack::refuse(cmd.id, code, reason);
        self.stats.refused += 1;
        self.out
            .push_back(DroneOutput::Send(Message::Ack(ack.clone())));
        self.out
            .push_back(DroneOutput::Event(DroneEvent::Refused { cmd, ack }));
    }

    fn accept(&mut self, cmd: Cmd) {
        self.out
            .push_back(DroneOutput::Send(Message::Ack(Ack::ok(cmd.id))));
        self.out
            .push_back(DroneOutput::Event(DroneEvent::Accepted { cmd }));
    }

    fn command(&mut self, now: Duration, cmd: Cmd) {
        self.stats.commands += 1;
        self.update_safety(now);
        // Range first: a value that can never be honoured is `range` whatever the state.
        let range = match &cmd.op {
            CmdOp::Tune { frequency_hz } if !TUNABLE_HZ.contains(&frequency_hz.get()) => {
                Some(format!("{} Hz is outside 24-1766 MHz", frequency_hz.get()))
            }
            CmdOp::Gain { gain_db } if !GAIN_RANGE_DB.contains(gain_db) => {
                Some(format!("gain {gain_db} dB is outside -10 to 70"))
            }
            CmdOp::Rate { hz } if !RATE_RANGE_HZ.contains(hz) => {
                Some(format!("{hz} Hz is outside 0.1-50"))
            }
            _ => None,
        };
        if let Some(reason) = range {
            return self.refuse(cmd, AckCode::Range, reason);
        }
        let state =
            SafetyState::from_bits(self.safety.bits() | self.vehicle.bits()).unwrap_or(self.safety);
        if let Err(refusal) = state.authorize_cmd(&cmd) {
            return self.refuse(cmd, refusal.ack_code(), refusal.to_string());
        }
        match cmd.op {
            CmdOp::Tune { frequency_hz } => {
                let hz = frequency_hz.get();
                let center = (hz as f64 - self.config.channel_offset_hz).round();
                if center <= 0.0 {
                    return self.refuse(cmd, AckCode::Range, format!("{hz} Hz cannot be centred"));
                }
                self.out.push_back(DroneOutput::Control(Control::Tune {
                    cmd_id: cmd.id,
                    beacon_hz: hz,
                    center_hz: center as u64,
                }));
                self.pending.push(cmd);
            }
            CmdOp::Gain { gain_db } => {
                self.out.push_back(DroneOutput::Control(Control::Gain {
                    cmd_id: cmd.id,
                    gain: Gain::Db(gain_db),
                }));
                self.pending.push(cmd);
            }
            CmdOp::GainAuto => {
                self.out.push_back(DroneOutput::Control(Control::Gain {
                    cmd_id: cmd.id,
                    gain: Gain::Auto,
                }));
                self.pending.push(cmd);
            }
            CmdOp::Rate { hz } => {
                self.rate_hz = hz;
                self.apply_rate();
                self.accept(cmd);
            }
            CmdOp::Stream { on } => {
                self.streaming = on;
                self.accept(cmd);
            }
            ref other => {
                let reason = format!("op {} is not supported", other.as_str());
                self.refuse(cmd, AckCode::Unsupported, reason);
            }
        }
        // A pending list that never hears back must not grow without bound.
        if self.pending.len() > 64 {
            self.pending.remove(0);
        }
    }

    fn control_done(&mut self, cmd_id: u32, outcome: ControlOutcome) {
        let Some(i) = self.pending.iter().position(|c| c.id == cmd_id) else {
            return;
        };
        let cmd = self.pending.remove(i);
        match outcome {
            ControlOutcome::Applied => self.accept(cmd),
            ControlOutcome::Unsupported(why) => self.refuse(cmd, AckCode::Unsupported, why),
            ControlOutcome::Failed(why) => self.refuse(cmd, AckCode::Range, why),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &DroneStats {
        &self.stats
    }

    /// The latest decision, if the coordinator has decided.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// The newest record of the drone's own receiver.
    pub fn own_latest(&self) -> Option<&RssiRecord> {
        self.own_latest.as_ref()
    }

    /// The newest record of the ground's receiver.
    pub fn ground_latest(&self) -> Option<&RssiRecord> {
        self.ground_latest.as_ref()
    }

    /// The link's state (`None` while down).
    pub fn link(&self) -> Option<LinkState> {
        self.link
    }

    /// The latest RTT measured on the link.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Whether own records are streamed (the ground may switch this off).
    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// The safety state computed from the link, the signal and the resources.
    pub fn safety(&self) -> SafetyState {
        self.safety
    }

    /// From each link loss to the decision that fell back (the newest 1024).
    pub fn fallback_delays(&self) -> impl ExactSizeIterator<Item = Duration> + '_ {
        self.fallback_delays.iter().copied()
    }

    /// From each reconnection to the decision that ended the fallback (the newest 1024).
    pub fn recovery_delays(&self) -> impl ExactSizeIterator<Item = Duration> + '_ {
        self.recovery_delays.iter().copied()
    }

    /// The degradation controller (features, levels).
    pub fn degradation(&self) -> &DegradationController {
        &self.controller
    }
}
