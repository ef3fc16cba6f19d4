//! The ground station's sans-IO core: one table of drones keyed once, records and decisions
//! to write, records relayed to drones and observers, commands relayed to drones.
//!
//! [`GroundCore`] owns no socket, no file and no clock. The caller (the ground's driver in
//! [`crate::node::ground`], the demo, the load tool, or a test) feeds it the link's
//! [`ServerEvent`]s and its own receiver's records as [`GroundInput`]s, then drains
//! [`GroundCore::poll_output`]:
//!
//! ```
//! use std::time::Duration;
//! use sarlink_schema::{Dbm, FrequencyHz, NodeName, QualityScore, Role, RssiRecord, SourceId};
//! use sarlink_station::ground::{GroundCore, GroundInput, GroundOutput};
//! use sarlink_station::output::Entry;
//!
//! let mut core = GroundCore::new(NodeName::new("ground")?, 7);
//! let record = RssiRecord {
//!     timestamp_ns: 1_764_000_000_000_000_000,
//!     rssi_dbm: Dbm::new(-71.5)?,
//!     frequency_hz: FrequencyHz::new(406_028_000)?,
//!     source_id: SourceId::GROUND,
//!     quality_score: QualityScore::new(80)?,
//!     snr_db: None,
//!     noise_dbm: None,
//!     beacon: sarlink_schema::BeaconFields::NONE,
//! };
//! core.handle(Duration::from_secs(1_764_000_000), GroundInput::OwnRecord(record));
//! let mut written = Vec::new();
//! while let Some(out) = core.poll_output() {
//!     match out {
//!         GroundOutput::Write(Entry::Record { node, seq, .. }) => written.push((node, seq)),
//!         // No drone or observer is connected: nothing to relay.
//!         GroundOutput::RelaySample { role: Role::Drone | Role::Observer, .. } => {
//!             unreachable!()
//!         }
//!         _ => {}
//!     }
//! }
//! assert_eq!(written, vec![("ground".into(), 0)]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The rules:
//! - The ground's own records are written under its own node and stream, and relayed to
//!   every connected drone (whose coordinator weighs them against its own receiver) and
//!   observer.
//! - Records from a drone are written with their (node, stream, seq) and relayed to the
//!   connected observers. The link delivers each at most once; the core counts any it sees again.
//! - Drones decide; the ground keeps no coordinator. A drone's decision is written under
//!   the drone's node and relayed to observers.
//! - An observer's command goes to its target drone under a fresh id; the drone's `ack`
//!   goes back to the observer under the observer's id. A command from elsewhere (MQTT,
//!   [`GroundInput::RemoteCommand`]) takes the same path; its answer comes out as
//!   [`GroundOutput::RemoteAck`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use sarlink_link::LinkState;
use sarlink_link::driver::{ConnId, ServerEvent};
use sarlink_monitor::degradation::{
    Action, ControllerConfig, DegradationController, FeatureId, Priority, Readings,
};
use sarlink_monitor::quality::{JitterEstimator, LinkStats, QualityConfig, assess};
use sarlink_monitor::thresholds::{
    Alert, Level, MetricKind, Observation, ThresholdConfig, Thresholds,
};
use sarlink_schema::{Ack, AckCode, Cmd, Decision, Message, NodeName, Role, RssiRecord, Status};
use sarlink_schema::{CloseCode, RssiUnits};

use crate::output::Entry;

/// An input to [`GroundCore::handle`].
#[derive(Debug, Clone, PartialEq)]
pub enum GroundInput {
    /// Something happened on the link server.
    Link(ServerEvent),
    /// A record of the ground's own receiver.
    OwnRecord(RssiRecord),
    /// Every [`GroundOutput::Write`] emitted so far is written (handed to the operating
    /// system, or synced to storage, as the output's mode promises).
    Written,
    /// Writing failed: the [`GroundOutput::Write`]s emitted since the last
    /// [`GroundInput::Written`] are not safe.
    WriteFailed {
        /// Why, for humans.
        reason: String,
    },
    /// Whole-machine resource readings (about once a second): they step the ground's
    /// degradation controller and its CPU, memory and temperature alerts.
    Resources(Readings),
    /// An operator command that did not come over the link (from MQTT): relayed to
    /// `cmd.target` exactly like an observer's, its answer returned as
    /// [`GroundOutput::RemoteAck`] under `cmd.id`.
    RemoteCommand(Cmd),
}

/// What [`GroundCore::poll_output`] asks the caller to do or tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum GroundOutput {
    /// Write this to the output.
    Write(Entry),
    /// Send this message on connection `conn`.
    Send {
        /// The connection.
        conn: ConnId,
        /// The message.
        message: Message,
    },
    /// Send this message to every connected peer of `role`.
    Broadcast {
        /// Who receives it.
        role: Role,
        /// The message.
        message: Message,
    },
    /// The drone on `conn` may forget the samples of its `stream` below `upto`: they are
    /// written. Carry out with `Server::confirm`.
    Confirm {
        /// The connection.
        conn: ConnId,
        /// The drone.
        node: Arc<str>,
        /// Its stream.
        stream: u64,
        /// Every sample below this is written.
        upto: u64,
    },
    /// Close connection `conn` with `bye`.
    Close {
        /// The connection.
        conn: ConnId,
        /// The code.
        code: CloseCode,
        /// Why.
        reason: String,
    },
    /// Append this record to the sample stream of every connected peer of `role` (only
    /// asked while one is connected).
    RelaySample {
        /// Who receives it.
        role: Role,
        /// The record.
        record: RssiRecord,
    },
    /// The answer to a [`GroundInput::RemoteCommand`] for drone `node`, under the
    /// command's own id: the drone's `ack`, or the ground's refusal when the drone is not
    /// connected (or disconnects before answering: code `offline`).
    RemoteAck {
        /// The drone the command was for.
        node: Arc<str>,
        /// The answer.
        ack: Ack,
    },
    /// Something a human may want to know.
    Event(GroundEvent),
}

/// Notable things, for logs, status lines and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum GroundEvent {
    /// A drone's decision changed.
    Decision {
        /// The drone.
        node: Arc<str>,
        /// Its decision.
        decision: Decision,
    },
    /// Writing the output failed (`ok: false`, with the reason) or works again.
    Output {
        /// Whether it works.
        ok: bool,
        /// Why it failed.
        reason: Option<String>,
    },
    /// A drone refused a command.
    Refused {
        /// The drone.
        node: Arc<str>,
        /// Its answer (with the operator's id).
        ack: Ack,
    },
    /// The ground's degradation controller shed or restored features.
    Degradation {
        /// What changed.
        event: sarlink_monitor::degradation::Event,
        /// The features it sheds or restores, by name (empty for a thermal change).
        features: Vec<&'static str>,
        /// The level after it (`normal` or `shedding-N`).
        level: String,
        /// The readings that caused it.
        readings: Readings,
    },
    /// One of the ground's own alerts (CPU, memory, temperature, output errors) was raised
    /// or cleared.
    Alert(Alert),
    /// A drone's `status` reports an alert it did not report before (or with another
    /// severity), or no longer reports one (`severity` `cleared`).
    DroneAlert {
        /// The drone.
        node: Arc<str>,
        /// The alert's kind as the drone names it (`link_rtt`, `cpu`, ...).
        kind: String,
        /// `warning`, `critical`, or `cleared`.
        severity: String,
    },
    /// A drone's `status` reports another degradation level than its previous one.
    DroneLevel {
        /// The drone.
        node: Arc<str>,
        /// The new level (`normal`, `shedding-N`).
        level: String,
        /// The features it sheds now.
        disabled: Vec<String>,
    },
}

/// The ground's optional features, which its degradation controller may shed (see
/// [`GroundCore::is_enabled`]); the table is in `docs/OPERATIONS.md`. Writing records,
/// acknowledging them, relaying records to drones and relaying commands are registered as
/// never shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroundFeature {
    /// Class 4: the configured `--fsync` interval; shed, the output is synced 4 times less
    /// often (at most every 60 s, the option's bound). Acknowledgements wait for the sync,
    /// so drones hold records longer.
    OutputFsync,
    /// Class 4: the MQTT status publications at their rate (the ground's every second,
    /// each drone's every 5 s); shed, every 5 s and every 30 s. Records, decisions and
    /// alerts are never held back.
    MqttStatusRate,
    /// Class 5: dashboard clients up to the HTTP limit; shed, new connections beyond 8 are
    /// refused with 503 (those open stay).
    DashboardClients,
    /// Class 5: dashboard and per-drone series published every second; shed, every 5 s.
    DashboardRate,
    /// Class 6: the status lines on stderr.
    StatusLine,
}

impl GroundFeature {
    /// Every optional feature, most important first.
    pub const ALL: [GroundFeature; 5] = [
        GroundFeature::OutputFsync,
        GroundFeature::MqttStatusRate,
        GroundFeature::DashboardClients,
        GroundFeature::DashboardRate,
        GroundFeature::StatusLine,
    ];

    /// The name it is registered, logged and reported under.
    pub fn as_str(self) -> &'static str {
        match self {
            GroundFeature::OutputFsync => "fsync-interval",
            GroundFeature::MqttStatusRate => "mqtt-status-rate",
            GroundFeature::DashboardClients => "dashboard-clients",
            GroundFeature::DashboardRate => "dashboard-rate",
            GroundFeature::StatusLine => "status-line",
        }
    }

    /// Its priority class.
    pub fn priority(self) -> Priority {
        match self {
            GroundFeature::OutputFsync | GroundFeature::MqttStatusRate => Priority::Enhanced,
            GroundFeature::DashboardClients | GroundFeature::DashboardRate => {
                Priority::Optimisation
            }
            GroundFeature::StatusLine => Priority::Convenience,
        }
    }
}

/// Features of the ground that are registered with the controller but never shed.
pub const GROUND_NEVER_SHED: [(&str, Priority); 4] = [
    ("record-writing", Priority::CriticalSafety),
    ("acknowledgements", Priority::CriticalSafety),
    ("drone-relay", Priority::CriticalSafety),
    ("command-relay", Priority::EssentialOperation),
];

/// The ground's degradation controller and alerts, fed by [`GroundInput::Resources`] and
/// the output's results.
#[derive(Debug)]
struct Monitor {
    controller: DegradationController,
    /// The ids of [`GroundFeature::ALL`], in that order.
    features: Vec<FeatureId>,
    thresholds: Thresholds,
    readings: Readings,
    output_errors: u64,
}

impl Monitor {
    fn new(degradation: ControllerConfig, thresholds: ThresholdConfig) -> Monitor {
        let mut controller = DegradationController::new(degradation);
        // Fewer than MAX_FEATURES with distinct names: registration cannot fail.
        for (name, priority) in GROUND_NEVER_SHED {
            let _ = controller.register(name, priority, true);
        }
        let features = GroundFeature::ALL
            .iter()
            .filter_map(|f| controller.register(f.as_str(), f.priority(), false).ok())
            .collect();
        Monitor {
            controller,
            features,
            thresholds: Thresholds::new(thresholds),
            readings: Readings::default(),
            output_errors: 0,
        }
    }

    fn name_of(&self, id: FeatureId) -> Option<&'static str> {
        self.features
            .iter()
            .position(|f| *f == id)
            .and_then(|i| GroundFeature::ALL.get(i))
            .map(|f| f.as_str())
    }

    fn level(&self) -> String {
        self.controller.shed_from().map_or_else(
            || "normal".to_owned(),
            |p| format!("shedding-{}", p.class()),
        )
    }
}

/// What the ground knows of one drone.
#[derive(Debug, Clone)]
pub struct DroneTrack {
    /// Its node name.
    pub node: Arc<str>,
    /// Its connection (`None` while disconnected).
    pub conn: Option<ConnId>,
    /// The latest decision it reported.
    pub decision: Option<Decision>,
    /// Link state of its connection.
    pub link: LinkState,
    /// Latest RTT measured on its connection.
    pub rtt: Option<Duration>,
    /// Connection quality 0-100 from RTT and jitter (`sarlink_monitor::quality`).
    pub quality: Option<u8>,
    /// Latest record from it.
    pub latest: Option<RssiRecord>,
    /// Its latest `status`.
    pub status: Option<Status>,
    /// Records received from it.
    pub received: u64,
    /// Sequence gaps (records it dropped before sending).
    pub gaps: u64,
    /// Records seen again and not written again (after a reconnection that resent what was
    /// written but not yet confirmed).
    pub duplicates: u64,
    /// Decisions it reported.
    pub decisions: u64,
    /// Fallbacks it reported beginning.
    pub fallbacks: u64,
    /// Fallbacks it reported ending.
    pub recoveries: u64,
    /// Next sequence number to write per stream of this node (written or on its way).
    /// (Ordered maps: a drone has a stream or two, for which a search is cheaper than a
    /// hash.)
    pub next_seq: BTreeMap<u64, u64>,
    /// Next sequence number not yet confirmed written, per stream.
    pub written: BTreeMap<u64, u64>,
    /// Units its records are in (from its `hello`).
    pub units: RssiUnits,
    /// Its stream on the current connection.
    stream: Option<u64>,
    jitter: JitterEstimator,
}

impl DroneTrack {
    fn new(node: &str) -> DroneTrack {
        DroneTrack {
            node: Arc::from(node),
            conn: None,
            decision: None,
            link: LinkState::Lost,
            rtt: None,
            quality: None,
            latest: None,
            status: None,
            received: 0,
            gaps: 0,
            duplicates: 0,
            decisions: 0,
            fallbacks: 0,
            recoveries: 0,
            next_seq: BTreeMap::new(),
            written: BTreeMap::new(),
            units: RssiUnits::Dbm,
            stream: None,
            jitter: JitterEstimator::new(),
        }
    }
}

/// Every drone a [`GroundCore`] has heard of: each kept once, found by node name and
/// walked in name order. (The core reaches a drone's track from its connection without a
/// search by name: see [`GroundCore::handle`].)
#[derive(Debug, Default)]
pub struct Drones {
    tracks: Vec<DroneTrack>,
    by_name: BTreeMap<Arc<str>, usize>,
}

impl Drones {
    /// The drone named `node`.
    pub fn get(&self, node: &str) -> Option<&DroneTrack> {
        self.by_name.get(node).map(|&i| &self.tracks[i])
    }

    /// How many drones.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// The drones in node-name order.
    pub fn values(&self) -> impl Iterator<Item = &DroneTrack> + '_ {
        self.by_name.values().map(|&i| &self.tracks[i])
    }

    /// (node name, drone) in node-name order.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &DroneTrack)> + '_ {
        self.by_name.iter().map(|(n, &i)| (n, &self.tracks[i]))
    }

    /// The index of the drone named `node`, made if it is new.
    fn index_or_insert(&mut self, node: &str) -> usize {
        if let Some(&i) = self.by_name.get(node) {
            return i;
        }
        let track = DroneTrack::new(node);
        let i = self.tracks.len();
        self.by_name.insert(Arc::clone(&track.node), i);
        self.tracks.push(track);
        i
    }
}

impl std::ops::Index<&str> for Drones {
    type Output = DroneTrack;

    /// # Panics
    /// When no drone is named `node`.
    fn index(&self, node: &str) -> &DroneTrack {
        self.get(node)
            .unwrap_or_else(|| panic!("no drone named {node:?}"))
    }
}

/// Counters of a [`GroundCore`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroundStats {
    /// Records received from drones.
    pub records: u64,
    /// Records of the ground's own receiver.
    pub own_records: u64,
    /// Decisions reported by drones.
    pub decisions: u64,
    /// Commands relayed to drones.
    pub commands: u64,
    /// Records seen again and dropped (written before).
    pub duplicates: u64,
    /// Failed writes reported.
    pub write_failures: u64,
}

/// Who is on a connection, as the ground core keeps it.
#[derive(Debug, Clone, Copy)]
enum Peer {
    /// A drone: its track's index in [`Drones`], so that its events need no search by name.
    Drone(usize),
    /// A ground or an observer.
    Other(Role),
}

impl Peer {
    fn role(self) -> Role {
        match self {
            Peer::Drone(_) => Role::Drone,
            Peer::Other(role) => role,
        }
    }
}

/// Who sent a command the ground relays.
#[derive(Debug, Clone, PartialEq)]
enum Asker {
    /// An observer on this connection.
    Conn(ConnId),
    /// [`GroundInput::RemoteCommand`], for this drone.
    Remote(Arc<str>),
}

/// The ground's core. See the module documentation for the rules.
#[derive(Debug)]
pub struct GroundCore {
    node: Arc<str>,
    own_stream: u64,
    own_seq: u64,
    own_latest: Option<RssiRecord>,
    drones: Drones,
    /// Who is on each connection.
    conns: HashMap<ConnId, Peer>,
    /// How many of `conns` have each role (drone, ground, observer): a record is relayed
    /// to a role only while a peer of it is connected.
    roles: [usize; 3],
    /// (drone connection, relayed id) -> who asked, and under which id.
    relays: HashMap<(ConnId, u32), (Asker, u32)>,
    next_relay_id: u32,
    out: VecDeque<GroundOutput>,
    stats: GroundStats,
    quality: QualityConfig,
    output_ok: bool,
    /// Drones (indices in `drones`) with records written (or on their way) but not yet
    /// confirmed.
    unconfirmed: Vec<usize>,
    monitor: Monitor,
}

impl GroundCore {
    /// A core for ground `node`, whose own receiver's records are numbered in `own_stream`.
    pub fn new(node: NodeName, own_stream: u64) -> GroundCore {
        GroundCore {
            node: Arc::from(node.as_str()),
            own_stream,
            own_seq: 0,
            own_latest: None,
            drones: Drones::default(),
            conns: HashMap::new(),
            roles: [0; 3],
            relays: HashMap::new(),
            next_relay_id: 1,
            out: VecDeque::new(),
            stats: GroundStats::default(),
            quality: QualityConfig::default(),
            output_ok: true,
            unconfirmed: Vec::new(),
            monitor: Monitor::new(ControllerConfig::default(), ThresholdConfig::default()),
        }
    }

    /// Replaces the degradation controller's thresholds and the alert thresholds (call
    /// before the first [`GroundInput::Resources`]; the state starts afresh).
    pub fn set_monitoring(&mut self, degradation: ControllerConfig, thresholds: ThresholdConfig) {
        self.monitor = Monitor::new(degradation, thresholds);
    }

    /// Whether the degradation controller currently lets `feature` run.
    pub fn is_enabled(&self, feature: GroundFeature) -> bool {
        GroundFeature::ALL
            .iter()
            .position(|f| *f == feature)
            .and_then(|i| self.monitor.features.get(i))
            .is_some_and(|id| self.monitor.controller.is_enabled(*id))
    }

    /// The ground's own degradation level: `normal` or `shedding-N`.
    pub fn level(&self) -> String {
        self.monitor.level()
    }

    /// The ground's degradation controller (features, levels).
    pub fn degradation(&self) -> &DegradationController {
        &self.monitor.controller
    }

    /// The ground's alerts in force (announced and not yet cleared), with their level.
    pub fn active_alerts(&self) -> impl Iterator<Item = (MetricKind, Level)> + '_ {
        self.monitor.thresholds.active()
    }

    /// The latest resource readings.
    pub fn readings(&self) -> &Readings {
        &self.monitor.readings
    }

    fn observe(&mut self, now: Duration, observation: Observation) {
        if let Some(alert) = self.monitor.thresholds.observe(now, observation) {
            self.out
                .push_back(GroundOutput::Event(GroundEvent::Alert(alert)));
        }
    }

    fn resources(&mut self, now: Duration, r: Readings) {
        self.monitor.readings = r;
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
        let events = self.monitor.controller.step(now, r).to_vec();
        for event in events {
            let features = match event.action {
                Action::Disable(set) | Action::Enable(set) => set
                    .iter()
                    .filter_map(|id| self.monitor.name_of(id))
                    .collect(),
                // The ground has no report rate: a thermal step shows in the level only.
                Action::SetReportRate { .. } => Vec::new(),
            };
            self.out
                .push_back(GroundOutput::Event(GroundEvent::Degradation {
                    event,
                    features,
                    level: self.monitor.level(),
                    readings: r,
                }));
        }
    }

    /// Positions recovered from the output after a restart: (node, stream, next seq). Those
    /// records are written; the same numbers arriving again are not written twice.
    pub fn resume_from(&mut self, positions: &[(String, u64, u64)]) {
        for (node, stream, next) in positions {
            if **node == *self.node {
                continue;
            }
            let t = self.track(node);
            t.next_seq.insert(*stream, *next);
            t.written.insert(*stream, *next);
        }
    }

    /// Feeds one input at `now` (wall-clock time since the Unix epoch).
    pub fn handle(&mut self, now: Duration, input: GroundInput) {
        match input {
            GroundInput::OwnRecord(record) => self.own_record(record),
            GroundInput::Link(event) => self.link(event),
            GroundInput::Written => {
                if self.monitor.output_errors > 0 {
                    self.monitor.output_errors = 0;
                    self.observe(now, Observation::OutputErrors(0));
                }
                self.written();
            }
            GroundInput::WriteFailed { reason } => {
                self.monitor.output_errors += 1;
                let n = self.monitor.output_errors;
                self.observe(now, Observation::OutputErrors(n));
                self.write_failed(reason);
            }
            GroundInput::Resources(readings) => self.resources(now, readings),
            GroundInput::RemoteCommand(cmd) => {
                let target = cmd
                    .target
                    .as_ref()
                    .map_or_else(|| Arc::from(""), |t| Arc::from(t.as_str()));
                self.relay_command(Asker::Remote(target), cmd);
            }
        }
    }

    fn written(&mut self) {
        if !self.output_ok {
            self.output_ok = true;
            self.out.push_back(GroundOutput::Event(GroundEvent::Output {
                ok: true,
                reason: None,
            }));
        }
        // Only the drones with records on their way since the last report. (The list's
        // allocation is kept for the next round.)
        let mut unconfirmed = std::mem::take(&mut self.unconfirmed);
        for i in unconfirmed.drain(..) {
            let track = &mut self.drones.tracks[i];
            for (stream, next) in &track.next_seq {
                let w = track.written.entry(*stream).or_insert(0);
                if *next > *w {
                    *w = *next;
                    if let (Some(conn), Some(s)) = (track.conn, track.stream) {
                        if s == *stream {
                            self.out.push_back(GroundOutput::Confirm {
                                conn,
                                node: Arc::clone(&track.node),
                                stream: s,
                                upto: *next,
                            });
                        }
                    }
                }
            }
        }
        self.unconfirmed = unconfirmed;
    }

    fn write_failed(&mut self, reason: String) {
        self.stats.write_failures += 1;
        if self.output_ok {
            self.output_ok = false;
            self.out.push_back(GroundOutput::Event(GroundEvent::Output {
                ok: false,
                reason: Some(reason.clone()),
            }));
        }
        for track in &mut self.drones.tracks {
            let mut lost = false;
            for (stream, next) in track.next_seq.iter_mut() {
                let w = track.written.get(stream).copied().unwrap_or(0);
                if *next > w {
                    *next = w;
                    lost = true;
                }
            }
            // The drone still holds what was not confirmed; closing makes it reconnect and
            // resend from the last confirmed position.
            if let (true, Some(conn)) = (lost, track.conn) {
                self.out.push_back(GroundOutput::Close {
                    conn,
                    code: CloseCode::Overload,
                    reason: format!(
                        "the ground cannot write its output ({reason}); keep the records and resend"
                    ),
                });
            }
        }
    }

    /// Whether the output works (no failed write since the last successful one).
    pub fn output_ok(&self) -> bool {
        self.output_ok
    }

    /// The next output, or `None` when there is nothing more until the next input.
    pub fn poll_output(&mut self) -> Option<GroundOutput> {
        self.out.pop_front()
    }

    fn own_record(&mut self, record: RssiRecord) {
        let seq = self.own_seq;
        self.own_seq += 1;
        self.stats.own_records += 1;
        self.own_latest = Some(record);
        self.out.push_back(GroundOutput::Write(Entry::Record {
            node: Arc::clone(&self.node),
            stream: self.own_stream,
            seq,
            // The ground's own receiver has no calibration.
            units: RssiUnits::Dbfs,
            record,
        }));
        for role in [Role::Drone, Role::Observer] {
            if self.is_connected(role) {
                self.out
                    .push_back(GroundOutput::RelaySample { role, record });
            }
        }
    }

    fn track(&mut self, node: &str) -> &mut DroneTrack {
        let i = self.drones.index_or_insert(node);
        &mut self.drones.tracks[i]
    }

    /// The index of the track of drone `node`, which sent on `conn`: found from the
    /// connection (no search by name) when that connection belongs to `node`.
    fn track_index(&mut self, conn: ConnId, node: &str) -> usize {
        match self.drone_of(conn) {
            Some(i) if *self.drones.tracks[i].node == *node => i,
            _ => self.drones.index_or_insert(node),
        }
    }

    fn role_index(role: Role) -> usize {
        match role {
            Role::Drone => 0,
            Role::Ground => 1,
            Role::Observer => 2,
        }
    }

    /// Whether a peer of `role` is connected.
    fn is_connected(&self, role: Role) -> bool {
        self.roles[Self::role_index(role)] > 0
    }

    fn connect(&mut self, conn: ConnId, peer: Peer) {
        if let Some(old) = self.conns.insert(conn, peer) {
            self.roles[Self::role_index(old.role())] -= 1;
        }
        self.roles[Self::role_index(peer.role())] += 1;
    }

    fn disconnect(&mut self, conn: ConnId) -> Option<Peer> {
        let peer = self.conns.remove(&conn)?;
        self.roles[Self::role_index(peer.role())] -= 1;
        Some(peer)
    }

    /// The track index of the drone on `conn`, if a drone is on it.
    fn drone_of(&self, conn: ConnId) -> Option<usize> {
        match self.conns.get(&conn) {
            Some(Peer::Drone(i)) => Some(*i),
            _ => None,
        }
    }

    /// The track of the drone on `conn`, if a drone is on it.
    fn drone_on(&mut self, conn: ConnId) -> Option<&mut DroneTrack> {
        let i = self.drone_of(conn)?;
        Some(&mut self.drones.tracks[i])
    }

    fn link(&mut self, event: ServerEvent) {
        match event {
            ServerEvent::Connected {
                conn, peer, addr, ..
            } => {
                tracing::info!(node = %peer.node, role = %peer.role, %addr, "connected");
                let kept = if peer.role == Role::Drone {
                    let i = self.drones.index_or_insert(peer.node.as_str());
                    let track = &mut self.drones.tracks[i];
                    track.conn = Some(conn);
                    track.link = LinkState::Healthy;
                    track.units = peer.rssi_units;
                    track.stream = Some(peer.stream);
                    Peer::Drone(i)
                } else {
                    Peer::Other(peer.role)
                };
                self.connect(conn, kept);
            }
            ServerEvent::Samples {
                conn,
                node,
                stream,
                seq,
                records,
                gap,
                ..
            } => {
                // No search by name: the connection knows its drone's track.
                let index = self.track_index(conn, node.as_str());
                let track = &mut self.drones.tracks[index];
                let next = track.next_seq.entry(stream).or_insert(0);
                // Written before (and resent because not yet confirmed): not again.
                let skip = next.saturating_sub(seq).min(records.len() as u64);
                *next = (*next).max(seq + records.len() as u64);
                track.duplicates += skip;
                track.received += records.len() as u64 - skip;
                track.gaps += gap;
                track.latest = records.last().copied();
                let (node, units) = (Arc::clone(&track.node), track.units);
                if skip < records.len() as u64 && !self.unconfirmed.contains(&index) {
                    self.unconfirmed.push(index);
                }
                self.stats.records += records.len() as u64 - skip;
                self.stats.duplicates += skip;
                let relay = self.is_connected(Role::Observer);
                for (i, record) in records.into_iter().enumerate().skip(skip as usize) {
                    self.out.push_back(GroundOutput::Write(Entry::Record {
                        node: Arc::clone(&node),
                        stream,
                        seq: seq + i as u64,
                        units,
                        record,
                    }));
                    if relay {
                        self.out.push_back(GroundOutput::RelaySample {
                            role: Role::Observer,
                            record,
                        });
                    }
                }
            }
            ServerEvent::Decision { conn, decision } => {
                let Some(track) = self.drone_on(conn) else {
                    return;
                };
                let node = Arc::clone(&track.node);
                let was_fallback = track.decision.as_ref().is_some_and(|d| d.fallback);
                track.decisions += 1;
                if decision.fallback && !was_fallback {
                    track.fallbacks += 1;
                }
                if !decision.fallback && was_fallback {
                    track.recoveries += 1;
                }
                track.decision = Some(decision.clone());
                self.stats.decisions += 1;
                self.out.push_back(GroundOutput::Write(Entry::Decision {
                    node: Arc::clone(&node),
                    decision: decision.clone(),
                }));
                self.out.push_back(GroundOutput::Broadcast {
                    role: Role::Observer,
                    message: Message::Decision(decision.clone()),
                });
                self.out
                    .push_back(GroundOutput::Event(GroundEvent::Decision {
                        node,
                        decision,
                    }));
            }
            ServerEvent::LinkState { conn, state } => {
                if let Some(track) = self.drone_on(conn) {
                    track.link = state;
                }
            }
            ServerEvent::Rtt { conn, rtt } => {
                let quality = self.quality;
                if let Some(track) = self.drone_on(conn) {
                    track.rtt = Some(rtt);
                    track.jitter.observe(rtt);
                    let stats = LinkStats {
                        rtt,
                        loss_ratio: 0.0,
                        jitter: track.jitter.jitter(),
                    };
                    track.quality = Some(assess(&stats, &quality).score.value());
                }
            }
            ServerEvent::Status { conn, status } => {
                if let Some(track) = self.drone_on(conn) {
                    tracing::debug!(node = %track.node, cpu = status.cpu_pct, level = %status.level, "status");
                    let previous = track.status.as_ref();
                    // The first status of a drone that is not shedding is no news.
                    let changed =
                        previous.map_or(status.level != "normal", |p| p.level != status.level);
                    let alerts =
                        alert_changes(previous.map_or(&[][..], |p| &p.alerts[..]), &status.alerts);
                    let level = changed.then(|| (status.level.clone(), status.disabled.clone()));
                    let name = Arc::clone(&track.node);
                    track.status = Some(status);
                    if let Some((level, disabled)) = level {
                        let event = GroundEvent::DroneLevel {
                            node: Arc::clone(&name),
                            level,
                            disabled,
                        };
                        self.out.push_back(GroundOutput::Event(event));
                    }
                    for (kind, severity) in alerts {
                        let event = GroundEvent::DroneAlert {
                            node: Arc::clone(&name),
                            kind,
                            severity,
                        };
                        self.out.push_back(GroundOutput::Event(event));
                    }
                }
            }
            ServerEvent::Disconnected {
                conn, node, cause, ..
            } => {
                tracing::info!(?node, %cause, "disconnected");
                if let Some(Peer::Drone(i)) = self.disconnect(conn) {
                    let track = &mut self.drones.tracks[i];
                    if track.conn == Some(conn) {
                        track.conn = None;
                        track.link = LinkState::Lost;
                    }
                }
                // Commands relayed to or from this connection will get no answer. Remote
                // askers hear so; an observer that left hears nothing.
                let mut orphaned = Vec::new();
                self.relays.retain(|(to, _), (from, id)| {
                    let keep = *to != conn && *from != Asker::Conn(conn);
                    if let (false, Asker::Remote(node)) = (keep, &*from) {
                        orphaned.push((Arc::clone(node), *id));
                    }
                    keep
                });
                orphaned.sort_by_key(|(_, id)| *id);
                for (node, id) in orphaned {
                    let ack = Ack::refuse(
                        id,
                        AckCode::from_wire("offline"),
                        format!("drone {node} disconnected before answering"),
                    );
                    self.out.push_back(GroundOutput::RemoteAck { node, ack });
                }
            }
            ServerEvent::Command { conn, cmd } => self.relay_command(Asker::Conn(conn), cmd),
            ServerEvent::Ack { conn, ack } => {
                if let Some((asker, id)) = self.relays.remove(&(conn, ack.id)) {
                    let ack = Ack { id, ..ack };
                    if !ack.ok {
                        if let Some(track) = self.drone_on(conn) {
                            let node = Arc::clone(&track.node);
                            self.out
                                .push_back(GroundOutput::Event(GroundEvent::Refused {
                                    node,
                                    ack: ack.clone(),
                                }));
                        }
                    }
                    self.out.push_back(match asker {
                        Asker::Conn(observer) => GroundOutput::Send {
                            conn: observer,
                            message: Message::Ack(ack),
                        },
                        Asker::Remote(node) => GroundOutput::RemoteAck { node, ack },
                    });
                }
            }
            _ => {}
        }
    }

    /// Relays an operator's command to its target drone under a fresh id, remembering
    /// where the answer goes.
    fn relay_command(&mut self, from: Asker, cmd: Cmd) {
        let target = cmd.target.as_ref().map(|t| t.as_str().to_owned());
        let drone_conn = target
            .as_deref()
            .and_then(|t| self.drones.get(t))
            .and_then(|d| d.conn);
        let Some(drone_conn) = drone_conn else {
            let why = target.map_or_else(
                || "a command needs a target drone".to_owned(),
                |t| format!("drone {t} is not connected"),
            );
            let ack = Ack::refuse(cmd.id, AckCode::from_wire("offline"), why);
            self.out.push_back(match from {
                Asker::Conn(conn) => GroundOutput::Send {
                    conn,
                    message: Message::Ack(ack),
                },
                Asker::Remote(node) => GroundOutput::RemoteAck { node, ack },
            });
            return;
        };
        let relay_id = self.next_relay_id;
        self.next_relay_id = self.next_relay_id.wrapping_add(1).max(1);
        self.relays.insert((drone_conn, relay_id), (from, cmd.id));
        self.stats.commands += 1;
        self.out.push_back(GroundOutput::Send {
            conn: drone_conn,
            message: Message::Cmd(Cmd {
                id: relay_id,
                ..cmd
            }),
        });
    }

    /// The relay of a command could not be queued: forget it (a remote asker is answered
    /// with a refusal, code `offline`).
    pub fn relay_failed(&mut self, conn: ConnId, id: u32) {
        if let Some((Asker::Remote(node), id)) = self.relays.remove(&(conn, id)) {
            let ack = Ack::refuse(
                id,
                AckCode::from_wire("offline"),
                format!("the command could not be queued for drone {node}"),
            );
            self.out.push_back(GroundOutput::RemoteAck { node, ack });
        }
    }

    /// Every drone the ground has heard of, by node name.
    pub fn drones(&self) -> &Drones {
        &self.drones
    }

    /// The newest record of the ground's own receiver.
    pub fn own_latest(&self) -> Option<&RssiRecord> {
        self.own_latest.as_ref()
    }

    /// The ground's node name.
    pub fn node(&self) -> &Arc<str> {
        &self.node
    }

    /// Counters.
    pub fn stats(&self) -> &GroundStats {
        &self.stats
    }

    /// Connections that completed the handshake (drones and observers).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }
}

/// What changed between two `status.alerts` lists (`KIND:SEVERITY` each): alerts raised or
/// changed in severity, then kinds no longer reported, as (`kind`, `severity`) with
/// `cleared` for the latter. An entry without `:` counts as a warning of that kind.
fn alert_changes(before: &[String], after: &[String]) -> Vec<(String, String)> {
    let split = |a: &String| -> (String, String) {
        match a.split_once(':') {
            Some((k, s)) => (k.to_owned(), s.to_owned()),
            None => (a.clone(), "warning".to_owned()),
        }
    };
    let before: Vec<(String, String)> = before.iter().map(split).collect();
    let after: Vec<(String, String)> = after.iter().map(split).collect();
    let mut changes: Vec<(String, String)> = after
        .iter()
        .filter(|a| !before.contains(a))
        .cloned()
        .collect();
    changes.extend(
        before
            .iter()
            .filter(|(k, _)| !after.iter().any(|(ak, _)| ak == k))
            .map(|(k, _)| (k.clone(), "cleared".to_owned())),
    );
    changes
}
