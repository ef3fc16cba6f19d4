//! `sarlink-ground`: accepts drones and observers, writes every received record, runs the
//! coordinator over the drone's and its own receiver, fans records and decisions out to
//! observers, relays operator commands, and serves Prometheus metrics. This library is the
//! binary's wiring, kept here so tests can reach it.

#![forbid(unsafe_code)]

#[path = "../../common/layered.rs"]
pub mod layered;
#[path = "../../common/record.rs"]
pub mod record;
#[path = "../../common/source.rs"]
pub mod source;
#[path = "../../common/units.rs"]
pub mod units;

pub mod cmd;
pub mod demo;
pub mod load;
pub mod metrics_http;
pub mod output;
pub mod receiver;

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use sarlink_coord::{
    Config as CoordConfig, Coordinator, LinkHealth, LinkState as CoordLinkState, Reason,
};
use sarlink_link::driver::{ConnId, Server, ServerConfig, ServerEvent};
use sarlink_link::{LinkState, PreSharedKey, SessionConfig};
use sarlink_monitor::metrics::{Counter, Gauge, Histogram, LocalHistogram, Registry};
use sarlink_schema::{Ack, AckCode, Cmd, Decision, Message, NodeName, Role, RssiRecord, SourceId};
use sarlink_sdr::Gain;

use crate::layered::{ConfigError, Layers};
use crate::output::{Format, Origin, Output};
use crate::source::SourceSpec;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7355";

/// Options of the ground station (the default command). Each can also be given as
/// `SARLINK_<OPTION>` or in the `--config` TOML file; command line > environment > file >
/// default.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Address to listen on [default: 127.0.0.1:7355]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// This station's node name [default: ground]
    #[arg(long)]
    pub node: Option<String>,
    /// The ground's own receiver: sim, file:PATH, rtl_tcp:HOST:PORT, rtlsdr or rtlsdr:INDEX [default: none]
    #[arg(long)]
    pub source: Option<String>,
    /// Beacon frequency for the own receiver, e.g. 406.028e6 [default: 406.028 MHz]
    #[arg(long)]
    pub frequency: Option<String>,
    /// Sample rate of the own receiver [default: 1.024M]
    #[arg(long)]
    pub sample_rate: Option<String>,
    /// Gain of the own receiver in dB, or `auto` [default: auto]
    #[arg(long)]
    pub gain: Option<String>,
    /// File holding the pre-shared key (at least 16 bytes); drones must prove it
    #[arg(long)]
    pub key_file: Option<String>,
    /// Most drones and observers connected at once [default: 64]
    #[arg(long)]
    pub max_clients: Option<String>,
    /// jsonl, csv or none [default: jsonl]
    #[arg(long)]
    pub output: Option<String>,
    /// Write output here (appending) instead of stdout; also where the stream positions are
    /// recovered from after a restart
    #[arg(long, value_name = "FILE")]
    pub output_file: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Stop after this many seconds [default: run until SIGINT/SIGTERM]
    #[arg(long)]
    pub seconds: Option<String>,
    /// No status line on stderr
    #[arg(long, short)]
    pub quiet: bool,
    /// TOML file with any of the options above
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Keys a configuration file may hold.
pub const FILE_KEYS: &[&str] = &[
    "listen",
    "node",
    "source",
    "frequency",
    "sample_rate",
    "gain",
    "key_file",
    "max_clients",
    "output",
    "output_file",
    "metrics",
    "seconds",
    "quiet",
];

/// The ground station's resolved configuration.
#[derive(Debug, Clone)]
pub struct GroundConfig {
    /// Listen address.
    pub listen: String,
    /// Node name.
    pub node: NodeName,
    /// Own receiver.
    pub source: Option<SourceSpec>,
    /// Beacon frequency for the own receiver.
    pub frequency_hz: u64,
    /// Own receiver's sample rate.
    pub sample_rate_hz: u32,
    /// Own receiver's gain.
    pub gain: Gain,
    /// Pre-shared key.
    pub key: Option<PreSharedKey>,
    /// Client limit.
    pub max_clients: usize,
    /// Output format.
    pub output: Format,
    /// Output file (stdout when `None`).
    pub output_file: Option<PathBuf>,
    /// Metrics address.
    pub metrics: Option<String>,
    /// Run time limit.
    pub seconds: Option<f64>,
    /// No status line.
    pub quiet: bool,
}

impl GroundConfig {
    /// Resolves every option from the command line, the environment and the file.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key, its value and where it came from.
    pub fn resolve(args: &RunArgs, layers: &Layers) -> Result<GroundConfig, ConfigError> {
        layers.check_file_keys(FILE_KEYS)?;
        Ok(GroundConfig {
            listen: layers
                .get_with(
                    "listen",
                    args.listen.clone(),
                    || DEFAULT_LISTEN.to_owned(),
                    units::parse_host_port,
                )?
                .0,
            node: layers
                .get_with(
                    "node",
                    args.node.clone(),
                    || NodeName::new("ground").expect("valid"),
                    |s| NodeName::new(s).map_err(|e| e.to_string()),
                )?
                .0,
            source: layers.get_opt("source", args.source.clone())?,
            frequency_hz: layers
                .get_with(
                    "frequency",
                    args.frequency.clone(),
                    || 406_028_000,
                    units::parse_hz_u64,
                )?
                .0,
            sample_rate_hz: layers
                .get_with(
                    "sample_rate",
                    args.sample_rate.clone(),
                    || 1_024_000,
                    units::parse_sample_rate,
                )?
                .0,
            gain: layers
                .get_with("gain", args.gain.clone(), || Gain::Auto, units::parse_gain)?
                .0,
            key: layers
                .get_with(
                    "key_file",
                    args.key_file.clone(),
                    || None,
                    |s| units::parse_key_file(s).map(Some),
                )?
                .0,
            max_clients: layers
                .get_with(
                    "max_clients",
                    args.max_clients.clone(),
                    || 64,
                    |s| match s.parse::<usize>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err("must be a positive whole number".to_owned()),
                    },
                )?
                .0,
            output: layers.get("output", args.output.clone(), Format::Jsonl)?,
            output_file: layers.get_opt::<PathBuf>("output_file", args.output_file.clone())?,
            metrics: layers
                .get_with(
                    "metrics",
                    args.metrics.clone(),
                    || None,
                    |s| units::parse_host_port(s).map(Some),
                )?
                .0,
            seconds: layers
                .get_with(
                    "seconds",
                    args.seconds.clone(),
                    || None,
                    |s| units::parse_seconds(s).map(Some),
                )?
                .0,
            quiet: args.quiet || layers.get("quiet", None, false)?,
        })
    }
}

/// Recovers the next expected sequence number per (node, stream) from an existing JSON-lines
/// or CSV output file, so a restarted ground resumes exactly where its output stops.
/// Unreadable or partial lines are skipped.
pub fn resume_from_output(path: &Path) -> Vec<(String, u64, u64)> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut next: BTreeMap<(String, u64), u64> = BTreeMap::new();
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        let (node, stream, seq) = if line.starts_with('{') {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["type"] != "rssi" {
                continue;
            }
            match (v["node"].as_str(), v["stream"].as_u64(), v["seq"].as_u64()) {
                (Some(n), Some(s), Some(q)) => (n.to_owned(), s, q),
                _ => continue,
            }
        } else {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 4 || f[0] != "rssi" {
                continue;
            }
            match (f[2].parse(), f[3].parse()) {
                (Ok(s), Ok(q)) => (f[1].trim_matches('"').to_owned(), s, q),
                _ => continue,
            }
        };
        let e = next.entry((node, stream)).or_insert(0);
        *e = (*e).max(seq + 1);
    }
    next.into_iter().map(|((n, s), q)| (n, s, q)).collect()
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Per-drone coordination state.
#[derive(Debug)]
pub struct DroneTrack {
    /// The drone's connection (`None` while disconnected).
    pub conn: Option<ConnId>,
    /// Its coordinator (drone source vs the ground's own receiver).
    pub coordinator: Coordinator,
    /// The latest decision published.
    pub decision: Option<Decision>,
    /// Link state of its connection.
    pub link: LinkState,
    /// Latest RTT measured on its connection.
    pub rtt: Option<Duration>,
    /// Latest record from it.
    pub latest: Option<RssiRecord>,
    /// Records received from it.
    pub received: u64,
    /// Sequence gaps (records it dropped before sending).
    pub gaps: u64,
    /// Source switches decided.
    pub switches: u64,
    /// Times a fallback began.
    pub fallbacks: u64,
    /// Times a fallback ended (recovery).
    pub recoveries: u64,
    /// Records seen again (a check on the link's exactly-once delivery; should stay 0).
    pub duplicates: u64,
    /// Next expected sequence number per stream of this node.
    pub next_seq: HashMap<u64, u64>,
    /// From each link loss to the decision that fell back (most recent 1024).
    pub fallback_delays: Vec<Duration>,
    /// From each reconnection to the decision that ended the fallback (most recent 1024).
    pub recovery_delays: Vec<Duration>,
    lost_at: Option<Instant>,
    healthy_at: Option<Instant>,
}

fn push_bounded(v: &mut Vec<Duration>, d: Duration) {
    if v.len() == 1024 {
        v.remove(0);
    }
    v.push(d);
}

struct Metrics {
    registry: Registry,
    records: Counter,
    decisions: Counter,
    connections: Gauge,
    rtt: Histogram,
    latency: Histogram,
    /// Latency recorded on the ground's thread since the last flush into `latency`.
    latency_local: LocalHistogram,
    /// Latency since the last [`Ground::take_window_latency`].
    window_latency: LocalHistogram,
}

/// The ground station's core: owns the server, the output, the coordinators and the relay
/// table. [`Ground::step`] processes whatever arrived; [`run`] loops it.
pub struct Ground {
    server: Server,
    output: Output,
    node: NodeName,
    own_stream: u64,
    own_seq: u64,
    own: Option<receiver::OwnReceiver>,
    own_latest: Option<RssiRecord>,
    drones: BTreeMap<String, DroneTrack>,
    conn_node: HashMap<ConnId, (String, Role)>,
    relays: HashMap<(ConnId, u32), (ConnId, u32)>,
    next_relay_id: u32,
    metrics: Metrics,
    next_decide: Instant,
}

impl std::fmt::Debug for Ground {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ground")
            .field("addr", &self.server.local_addr())
            .field("drones", &self.drones.len())
            .finish_non_exhaustive()
    }
}

impl Ground {
    /// Starts listening (and the own receiver, if configured).
    ///
    /// # Errors
    /// When the address cannot be bound, the output file cannot be opened or the own
    /// receiver cannot start.
    pub fn start(config: &GroundConfig) -> anyhow::Result<Ground> {
        let mut session = SessionConfig::new(Role::Ground, config.node.clone(), rand::random());
        session.key = config.key.clone();
        let mut server_config = ServerConfig::new(session);
        server_config.max_clients = config.max_clients;
        let out: Box<dyn std::io::Write + Send> = match &config.output_file {
            Some(path) => {
                server_config.resume = resume_from_output(path);
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                Box::new(BufWriter::with_capacity(64 * 1024, file))
            }
            None => Box::new(BufWriter::with_capacity(64 * 1024, std::io::stdout())),
        };
        let server = Server::bind(config.listen.as_str(), server_config)
            .with_context(|| format!("listening on {}", config.listen))?;
        let own = match &config.source {
            Some(spec) => Some(
                receiver::OwnReceiver::start(
                    spec,
                    config.frequency_hz,
                    config.sample_rate_hz,
                    config.gain,
                    10.0,
                )
                .map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        let registry = Registry::new();
        let metrics = Metrics {
            records: registry.counter(
                "sarlink_ground_records",
                "RSSI records received from drones.",
                &[],
            )?,
            decisions: registry.counter(
                "sarlink_ground_decisions",
                "Coordinator decisions published.",
                &[],
            )?,
            connections: registry.gauge(
                "sarlink_ground_connections",
                "Drones and observers connected.",
                &[],
            )?,
            rtt: registry.histogram(
                "sarlink_ground_link_rtt",
                "Ping round-trip time of drone links.",
                &[],
            )?,
            latency: registry.histogram(
                "sarlink_ground_record_latency",
                "Time from a record's timestamp to its output line.",
                &[],
            )?,
            latency_local: LocalHistogram::new(),
            window_latency: LocalHistogram::new(),
            registry,
        };
        Ok(Ground {
            server,
            output: Output::new(config.output, out),
            node: config.node.clone(),
            own_stream: rand::random(),
            own_seq: 0,
            own,
            own_latest: None,
            drones: BTreeMap::new(),
            conn_node: HashMap::new(),
            relays: HashMap::new(),
            next_relay_id: 1,
            metrics,
            next_decide: Instant::now(),
        })
    }

    /// Where drones connect.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    /// The metrics registry (for `/metrics`).
    pub fn registry(&self) -> Registry {
        self.metrics.registry.clone()
    }

    /// Per-drone state, by node name.
    pub fn drones(&self) -> &BTreeMap<String, DroneTrack> {
        &self.drones
    }

    /// The latest record of the ground's own receiver.
    pub fn own_latest(&self) -> Option<&RssiRecord> {
        self.own_latest.as_ref()
    }

    /// Processes everything that arrives until `deadline`, deciding at 10 Hz.
    ///
    /// # Errors
    /// When the output cannot be written.
    pub fn step(&mut self, deadline: Instant) -> anyhow::Result<()> {
        loop {
            let now = Instant::now();
            if now >= self.next_decide {
                self.next_decide = now + Duration::from_millis(100);
                self.decide()?;
            }
            if let Some(own) = &self.own {
                let records: Vec<RssiRecord> = own.records().try_iter().collect();
                for record in &records {
                    self.own_record(*record)?;
                }
                if !records.is_empty() {
                    self.output.flush()?;
                }
            }
            let wait = deadline
                .min(self.next_decide)
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(20));
            match self.server.events().recv_timeout(wait) {
                Ok(event) => {
                    self.handle(event)?;
                    // Drain what else is waiting before deciding again.
                    while let Ok(event) = self.server.events().try_recv() {
                        self.handle(event)?;
                    }
                    self.output.flush()?;
                }
                Err(_) => {
                    if Instant::now() >= deadline {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn own_record(&mut self, record: RssiRecord) -> anyhow::Result<()> {
        let seq = self.own_seq;
        self.own_seq += 1;
        self.output.record(
            Origin {
                node: self.node.as_str(),
                stream: self.own_stream,
                seq,
            },
            &record,
        )?;
        let t = Duration::from_nanos(u64::try_from(record.timestamp_ns).unwrap_or(0));
        for track in self.drones.values_mut() {
            track.coordinator.update_record(&record, t.max(unix_now()));
        }
        self.own_latest = Some(record);
        let _ = self.server.broadcast_sample(Role::Observer, record);
        Ok(())
    }

    fn track(&mut self, node: &str) -> &mut DroneTrack {
        self.drones
            .entry(node.to_owned())
            .or_insert_with(|| DroneTrack {
                conn: None,
                coordinator: Coordinator::new(CoordConfig::default())
                    .expect("default configuration is valid"),
                decision: None,
                link: LinkState::Healthy,
                rtt: None,
                latest: None,
                received: 0,
                gaps: 0,
                switches: 0,
                fallbacks: 0,
                recoveries: 0,
                duplicates: 0,
                next_seq: HashMap::new(),
                fallback_delays: Vec::new(),
                recovery_delays: Vec::new(),
                lost_at: None,
                healthy_at: None,
            })
    }

    fn handle(&mut self, event: ServerEvent) -> anyhow::Result<()> {
        match event {
            ServerEvent::Connected {
                conn,
                peer,
                resume_seq,
                addr,
            } => {
                tracing::info!(node = %peer.node, role = %peer.role, %addr, resume_seq, "connected");
                self.conn_node
                    .insert(conn, (peer.node.as_str().to_owned(), peer.role));
                if peer.role == Role::Drone {
                    let now = unix_now();
                    let track = self.track(peer.node.as_str());
                    track.conn = Some(conn);
                    track.link = LinkState::Healthy;
                    track.healthy_at = Some(Instant::now());
                    track
                        .coordinator
                        .update_link(SourceId::GROUND, LinkHealth::HEALTHY, now);
                }
                self.metrics.connections.set(self.conn_node.len() as f64);
            }
            ServerEvent::Samples {
                node,
                stream,
                seq,
                records,
                gap,
                ..
            } => {
                let now = unix_now();
                for (i, record) in records.iter().enumerate() {
                    self.output.record(
                        Origin {
                            node: node.as_str(),
                            stream,
                            seq: seq + i as u64,
                        },
                        record,
                    )?;
                    // From the end of the record's measurement window to its output line.
                    let age_ns = record::unix_ns().saturating_sub(record.timestamp_ns).max(0);
                    let age = Duration::from_nanos(age_ns as u64);
                    self.metrics.latency_local.record(age);
                    self.metrics.window_latency.record(age);
                }
                self.metrics.records.add(records.len() as u64);
                let track = self.track(node.as_str());
                let next = track.next_seq.entry(stream).or_insert(0);
                track.duplicates += next.saturating_sub(seq).min(records.len() as u64);
                *next = (*next).max(seq + records.len() as u64);
                track.received += records.len() as u64;
                track.gaps += gap;
                for record in &records {
                    track.coordinator.update_record(record, now);
                }
                track.latest = records.last().copied();
                for record in records {
                    let _ = self.server.broadcast_sample(Role::Observer, record);
                }
            }
            ServerEvent::LinkState { conn, state } => {
                if let Some((node, Role::Drone)) = self.conn_node.get(&conn).cloned() {
                    let now = unix_now();
                    let track = self.track(&node);
                    track.link = state;
                    match state {
                        LinkState::Lost => {
                            track.lost_at.get_or_insert_with(Instant::now);
                        }
                        LinkState::Healthy => {
                            track.healthy_at.get_or_insert_with(Instant::now);
                        }
                        LinkState::Degraded => {}
                    }
                    let health = match state {
                        LinkState::Healthy => LinkHealth::HEALTHY,
                        LinkState::Degraded => LinkHealth {
                            state: CoordLinkState::Degraded,
                            ..LinkHealth::HEALTHY
                        },
                        LinkState::Lost => LinkHealth::LOST,
                    };
                    track.coordinator.update_link(SourceId::GROUND, health, now);
                }
            }
            ServerEvent::Rtt { conn, rtt } => {
                self.metrics.rtt.record(rtt);
                if let Some((node, Role::Drone)) = self.conn_node.get(&conn).cloned() {
                    self.track(&node).rtt = Some(rtt);
                }
            }
            ServerEvent::Disconnected {
                conn, node, reason, ..
            } => {
                tracing::info!(?node, %reason, "disconnected");
                if let Some((node, Role::Drone)) = self.conn_node.remove(&conn) {
                    let now = unix_now();
                    let track = self.track(&node);
                    if track.conn == Some(conn) {
                        track.conn = None;
                        track.link = LinkState::Lost;
                        track.lost_at.get_or_insert_with(Instant::now);
                        track.healthy_at = None;
                        track
                            .coordinator
                            .update_link(SourceId::GROUND, LinkHealth::LOST, now);
                    }
                }
                // Commands relayed to or from this connection will get no answer.
                self.relays
                    .retain(|(to, _), (from, _)| *to != conn && *from != conn);
                self.metrics.connections.set(self.conn_node.len() as f64);
            }
            ServerEvent::Command { conn, cmd } => self.relay_command(conn, cmd),
            ServerEvent::Ack { conn, ack } => {
                if let Some((observer, id)) = self.relays.remove(&(conn, ack.id)) {
                    self.server.send(observer, Message::Ack(Ack { id, ..ack }));
                }
            }
            ServerEvent::Status { conn, status } => {
                if let Some((node, _)) = self.conn_node.get(&conn) {
                    tracing::debug!(%node, cpu = status.cpu_pct, level = %status.level, queued = status.queued, "status");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Relays an operator's command to its target drone under a fresh id, remembering
    /// where the answer goes.
    fn relay_command(&mut self, from: ConnId, cmd: Cmd) {
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
            self.server.send(
                from,
                Message::Ack(Ack::refuse(cmd.id, AckCode::from_wire("offline"), why)),
            );
            return;
        };
        let relay_id = self.next_relay_id;
        self.next_relay_id = self.next_relay_id.wrapping_add(1).max(1);
        self.relays.insert((drone_conn, relay_id), (from, cmd.id));
        if !self.server.send(
            drone_conn,
            Message::Cmd(Cmd {
                id: relay_id,
                ..cmd
            }),
        ) {
            self.relays.remove(&(drone_conn, relay_id));
        }
    }

    fn decide(&mut self) -> anyhow::Result<()> {
        // Publish what the hot path recorded (the registry's histogram is read elsewhere).
        self.metrics.latency_local.flush_into(&self.metrics.latency);
        let now = unix_now();
        let mut published = Vec::new();
        for (node, track) in &mut self.drones {
            let d = track.coordinator.decide(now);
            let message = Decision::from(d);
            let was_fallback = track.decision.as_ref().is_some_and(|p| p.fallback);
            let changed = track.decision.as_ref().is_none_or(|p| {
                p.source_id != message.source_id
                    || p.reason != message.reason
                    || p.fallback != message.fallback
            });
            if d.switched_from.is_some() {
                track.switches += 1;
            }
            if message.fallback && !was_fallback {
                track.fallbacks += 1;
                if let Some(at) = track.lost_at.take() {
                    push_bounded(&mut track.fallback_delays, at.elapsed());
                }
            }
            if !message.fallback && was_fallback && d.reason != Reason::Recovering {
                track.recoveries += 1;
                if let Some(at) = track.healthy_at.take() {
                    push_bounded(&mut track.recovery_delays, at.elapsed());
                }
            }
            if !message.fallback {
                track.lost_at = None;
            }
            if changed {
                published.push((node.clone(), message.clone()));
            }
            track.decision = Some(message);
        }
        for (node, decision) in published {
            self.output.decision(&node, &decision)?;
            self.metrics.decisions.inc();
            let _ = self
                .server
                .broadcast(Role::Observer, &Message::Decision(decision));
        }
        Ok(())
    }

    /// Flushes output and closes every connection with `bye shutdown`.
    pub fn shutdown(mut self) {
        let _ = self.output.flush();
        self.server.shutdown();
    }

    /// Record-to-output latency since the previous call (a fresh window starts).
    pub fn take_window_latency(&mut self) -> sarlink_monitor::metrics::HistogramSnapshot {
        let snapshot = self.metrics.window_latency.snapshot();
        self.metrics.window_latency.clear();
        snapshot
    }

    /// Link RTT percentiles over every drone connection.
    pub fn rtt_snapshot(&self) -> sarlink_monitor::metrics::HistogramSnapshot {
        self.metrics.rtt.snapshot()
    }

    /// Record-to-output latency histogram.
    pub fn latency(&mut self) -> &Histogram {
        self.metrics.latency_local.flush_into(&self.metrics.latency);
        &self.metrics.latency
    }
}

/// Runs the ground station until `stop` is set (or `seconds` pass).
///
/// # Errors
/// When it cannot start, or output fails.
pub fn run(config: &GroundConfig, stop: &AtomicBool) -> anyhow::Result<()> {
    let mut ground = Ground::start(config)?;
    let _metrics = match &config.metrics {
        Some(addr) => Some(
            metrics_http::MetricsServer::start(addr, ground.registry())
                .with_context(|| format!("metrics on {addr}"))?,
        ),
        None => None,
    };
    if !config.quiet {
        eprintln!("sarlink-ground: listening on {}", ground.local_addr());
    }
    let start = Instant::now();
    let deadline = config.seconds.map(|s| start + Duration::from_secs_f64(s));
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        ground.step(Instant::now() + Duration::from_secs(1))?;
        if !config.quiet {
            for (node, t) in ground.drones() {
                let d = t.decision.as_ref();
                eprintln!(
                    "[{:>6.1}s] {node}: {} records, link {:?}{} | source {} ({}){}",
                    start.elapsed().as_secs_f64(),
                    t.received,
                    t.link,
                    t.rtt.map_or(String::new(), |r| format!(
                        " rtt {:.2} ms",
                        r.as_secs_f64() * 1e3
                    )),
                    d.map_or("-".to_owned(), |d| if d.source_id == SourceId::DRONE {
                        "drone".to_owned()
                    } else {
                        "ground".to_owned()
                    }),
                    d.map_or("-", |d| d.reason.as_str()),
                    if d.is_some_and(|d| d.fallback) {
                        " FALLBACK"
                    } else {
                        ""
                    },
                );
            }
        }
    }
    ground.shutdown();
    Ok(())
}
