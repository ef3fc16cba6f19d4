//! The ground station's driver: the link server, the own receiver, the output, the metrics
//! and the HTTP endpoint around a [`GroundCore`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crossbeam_channel::select;
use sarlink_link::SessionConfig;
use sarlink_link::driver::{ResumePosition, Server, ServerConfig, ServerEvent};
use sarlink_monitor::ScopeTimer;
use sarlink_monitor::metrics::{
    Counter, Gauge, Histogram, HistogramSnapshot, LocalHistogram, Registry,
};
use sarlink_schema::{Message, Role, SourceId};

use crate::config::GroundSettings;
use crate::dashboard::{
    Dashboard, DroneSeries, DroneView, LinkView, MAX_DRONES, Reading, ReceiverSeries, Severity,
    source_name,
};
use crate::ground::{
    DroneTrack, GroundCore, GroundEvent, GroundFeature, GroundInput, GroundOutput,
};
use crate::http::{HttpConfig, HttpServer, Hub};
use crate::monitoring::{MonitorMetrics, ResourceSettings, degradation_text};
use crate::mqtt::{
    Alert, AlertKind, GroundStatus, Topics, ack_message, drone_status_message, map_output,
};
use crate::node::mqtt::MqttPublisher;
use crate::output::{Entry, Output, recover};
use crate::pipeline::{
    Measurement, PipelineConfig, PipelineEvent, ReceiverThread, tuning_offset_hz,
};
use crate::record::{unix_now, unix_ns};
use crate::source::Tuning;

struct Metrics {
    registry: Registry,
    records: Counter,
    write_failures: Counter,
    output_ok: Gauge,
    decisions: Counter,
    connections: Gauge,
    rtt: Histogram,
    latency: Histogram,
    /// Time to process one batch of events and write what it produced.
    step: Histogram,
    /// Latency recorded on the ground's thread since the last flush into `latency`.
    latency_local: LocalHistogram,
    /// Latency since the last [`GroundNode::take_window_latency`].
    window_latency: LocalHistogram,
    mqtt_published: Counter,
    mqtt_overflow: Counter,
    mqtt_queued: Gauge,
    mqtt_connected: Gauge,
    mqtt_commands: Counter,
}

impl Metrics {
    fn new() -> anyhow::Result<Metrics> {
        let registry = Registry::new();
        Ok(Metrics {
            records: registry.counter(
                "sarlink_ground_records",
                "RSSI records received from drones.",
                &[],
            )?,
            write_failures: registry.counter(
                "sarlink_ground_output_write_failures",
                "Writes (or syncs) of the output that failed; records were not acknowledged.",
                &[],
            )?,
            output_ok: registry.gauge(
                "sarlink_ground_output_ok",
                "1 while the output is written, 0 while writing fails.",
                &[],
            )?,
            decisions: registry.counter(
                "sarlink_ground_decisions",
                "Coordinator decisions reported by drones.",
                &[],
            )?,
            connections: registry.gauge(
                "sarlink_ground_connections",
                "Drones and observers connected.",
                &[],
            )?,
            rtt: registry.histogram(
                "sarlink_ground_link_rtt_seconds",
                "Ping round-trip time of drone links, seconds (every drone together).",
                &[],
            )?,
            latency: registry.histogram(
                "sarlink_ground_record_latency_seconds",
                "Time from a record's timestamp to its output line, seconds.",
                &[],
            )?,
            step: registry.histogram(
                "sarlink_ground_step_seconds",
                "Time to process one batch of link events and write their output.",
                &[],
            )?,
            latency_local: LocalHistogram::new(),
            window_latency: LocalHistogram::new(),
            mqtt_published: registry.counter(
                "sarlink_ground_mqtt_published",
                "MQTT messages the broker acknowledged (PUBACK).",
                &[],
            )?,
            mqtt_overflow: registry.counter(
                "sarlink_ground_mqtt_overflow",
                "MQTT messages dropped because the publish queue was full.",
                &[],
            )?,
            mqtt_queued: registry.gauge(
                "sarlink_ground_mqtt_queued",
                "MQTT messages held for the broker (waiting or unacknowledged).",
                &[],
            )?,
            mqtt_connected: registry.gauge(
                "sarlink_ground_mqtt_connected",
                "1 while connected to the MQTT broker, 0 otherwise.",
                &[],
            )?,
            mqtt_commands: registry.counter(
                "sarlink_ground_mqtt_commands",
                "Commands received over MQTT (relayed or refused).",
                &[],
            )?,
            registry,
        })
    }
}

/// The HTTP side of a ground: the server, and what the main loop publishes to it.
struct Web {
    hub: Hub,
    board: Dashboard,
    series: HashMap<String, DroneSeries>,
    ground_rx: ReceiverSeries,
    next_publish: Instant,
    /// Once the dashboard and the per-drone series are both full, the drones they hold never
    /// change (neither forgets a drone, nor does the core forget a track): their names, so
    /// that a publication builds their views without asking about every other drone.
    shown: Option<Vec<Arc<str>>>,
    // Last: dropping it stops the server.
    server: HttpServer,
}

impl Web {
    fn start(addr: &str, registry: &Registry, node: &str) -> anyhow::Result<Web> {
        let hub = Hub::new();
        let server = HttpServer::start(addr, HttpConfig::default(), registry.clone(), hub.clone())
            .with_context(|| format!("HTTP on {addr}"))?;
        Ok(Web {
            hub,
            board: Dashboard::new(node, "ground"),
            series: HashMap::new(),
            ground_rx: ReceiverSeries::new(registry, node)?,
            next_publish: Instant::now(),
            shown: None,
            server,
        })
    }

    /// Builds the view of `track` for the dashboard and its per-drone series.
    fn show(&mut self, registry: &Registry, unix: Duration, track: &DroneTrack) {
        let view = drone_view(track);
        // Bounded like the dashboard: at most MAX_DRONES drones get series.
        if !self.series.contains_key(view.node.as_str()) && self.series.len() < MAX_DRONES {
            match DroneSeries::new(registry, &view.node) {
                Ok(s) => {
                    self.series.insert(view.node.clone(), s);
                }
                Err(e) => tracing::warn!(error = %e, "per-drone metrics"),
            }
        }
        if let Some(series) = self.series.get_mut(view.node.as_str()) {
            series.set(&view);
        }
        self.board.update(unix, view);
    }
}

/// What the dashboard shows of the drone `track`.
pub fn drone_view(track: &DroneTrack) -> DroneView {
    let decision = track.decision.as_ref();
    let status = track.status.as_ref();
    let link = LinkView::from_state(track.conn.map(|_| track.link));
    DroneView {
        node: track.node.to_string(),
        link,
        // Microsecond resolution is plenty and keeps the live stream short.
        rtt_ms: track.rtt.map(|r| (r.as_secs_f64() * 1e6).round() / 1e3),
        // A lost link has no quality: the last score would only mislead.
        quality: track.quality.filter(|_| link != LinkView::Lost),
        source: decision.map(|d| source_name(d.source_id)),
        fallback: decision.is_some_and(|d| d.fallback),
        reason: decision.map(|d| d.reason.clone()),
        level: status.map(|s| s.level.clone()),
        shed: status.map(|s| s.disabled.clone()).unwrap_or_default(),
        drone_rx: track.latest.as_ref().map(Reading::from_record),
        records: track.received,
        gaps: track.gaps,
    }
}

/// A running ground station: server, optional own receiver, output, metrics, HTTP, core.
pub struct GroundNode {
    server: Server,
    core: GroundCore,
    output: Output,
    fsync: Option<Duration>,
    /// Committed to the OS but not yet synced (with `fsync`), since this instant.
    unsynced: Option<Instant>,
    own: Option<ReceiverThread>,
    metrics: Metrics,
    web: Option<Web>,
    mqtt: Option<Mqtt>,
    resources: ResourceSettings,
    sampler: sarlink_monitor::resources::ResourceSampler,
    /// When the sampler was created (its clock's epoch).
    sampler_start: Instant,
    next_sample: Instant,
    sample_warned: bool,
    monitor: MonitorMetrics,
    /// Confirmations the core asked for and not yet handed to the server: they go together
    /// ([`Server::confirm_all`]) before the next output for the server of another kind, and
    /// at the end of each [`GroundNode::drain`].
    confirms: Vec<(sarlink_link::driver::ConnId, Arc<str>, u64, u64)>,
    /// Records to relay to every peer of a role, held like `confirms`
    /// ([`Server::broadcast_samples`]).
    relays: Option<(Role, Vec<sarlink_schema::RssiRecord>)>,
    /// The emptied vector of `relays`, for the next run.
    relay_buf: Option<Vec<sarlink_schema::RssiRecord>>,
}

/// Dashboard connections allowed while [`GroundFeature::DashboardClients`] is shed.
pub const SHED_DASHBOARD_CONNECTIONS: usize = 8;

/// The MQTT publisher and what the driver remembers about it.
#[derive(Debug)]
struct Mqtt {
    publisher: MqttPublisher,
    topics: Topics,
    /// Counters at the last [`GroundNode::publish_metrics`].
    last: crate::mqtt::QueueStats,
    ticks: u64,
    /// Records and decisions formatted for the output and not yet committed: published
    /// once the commit succeeds, dropped when it fails (the drones resend those records).
    uncommitted: Vec<crate::mqtt::MqttMessage>,
}

impl std::fmt::Debug for GroundNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroundNode")
            .field("addr", &self.server.local_addr())
            .field("drones", &self.core.drones().len())
            .finish_non_exhaustive()
    }
}

impl GroundNode {
    /// Starts listening, the own receiver and the metrics endpoint, as `settings` say.
    ///
    /// # Errors
    /// When the address cannot be bound, the output file cannot be opened or the own
    /// receiver cannot start.
    pub fn start(settings: &GroundSettings) -> anyhow::Result<GroundNode> {
        let own = match &settings.source {
            Some(spec) => {
                let mut pipeline = PipelineConfig::new(SourceId::GROUND);
                pipeline.gain = settings.gain;
                let tuning = Tuning {
                    beacon_hz: Some(settings.frequency_hz),
                    sample_rate_hz: settings.sample_rate_hz,
                    sample_rate_given: settings.sample_rate_given,
                    gain: settings.gain,
                    ppm: settings.ppm,
                    bias_tee: settings.bias_tee,
                    tuning_offset_hz: tuning_offset_hz(settings.sample_rate_hz),
                    seed: rand::random(),
                };
                let m = Measurement::open(spec, &tuning, &pipeline)
                    .with_context(|| format!("opening the own receiver {spec}"))?;
                Some(ReceiverThread::spawn(m).context("starting the own receiver")?)
            }
            None => None,
        };
        GroundNode::with_receiver(settings, own)
    }

    /// Starts with an own receiver already running (or none): the demo's is a simulator.
    ///
    /// # Errors
    /// As [`GroundNode::start`].
    pub fn with_receiver(
        settings: &GroundSettings,
        own: Option<ReceiverThread>,
    ) -> anyhow::Result<GroundNode> {
        let mut session = SessionConfig::new(
            Role::Ground,
            settings.node.clone(),
            crate::record::new_stream_id(),
        );
        session.key = settings.key.clone();
        // The own receiver has no calibration: its records, streamed to drones, are dBFS.
        session.rssi_units = Some(sarlink_schema::RssiUnits::Dbfs);
        // A record is acknowledged to its drone only once the output has it.
        session.confirm_delivery = true;
        // The backstop only: the `rx` rides with the pong each drone ping gets (about once a
        // second) and costs no write of its own (docs/PROTOCOL.md section 4.3).
        session.rx_interval = std::time::Duration::from_secs(1);
        let own_stream = session.stream;
        let mut server_config = ServerConfig::new(session);
        if let Some(dir) = &settings.tls_dir {
            server_config.tls = Some(
                crate::ca::server_tls(dir, settings.node.as_str())
                    .with_context(|| format!("TLS from {}", dir.display()))?,
            );
        } else if settings.key.is_none() {
            anyhow::ensure!(
                settings.insecure,
                "no TLS (--tls DIR) and no key (--key-file): any client could claim any drone's name; pass --insecure to run unprotected anyway"
            );
            tracing::warn!(
                "--insecure: any client can claim any drone's name and read or rewrite the traffic (see docs/SECURITY.md)"
            );
        }
        server_config.max_clients = settings.max_clients;
        server_config.max_handshakes_per_addr = settings.max_handshakes_per_addr;
        server_config.max_handshakes = server_config
            .max_handshakes
            .max(settings.max_handshakes_per_addr);
        let mut core = GroundCore::new(settings.node.clone(), own_stream);
        core.set_monitoring(
            settings.resources.degradation,
            sarlink_monitor::thresholds::ThresholdConfig::default(),
        );
        if let Some(path) = &settings.output_file {
            let recovered = recover(path)
                .with_context(|| format!("recovering stream positions from {}", path.display()))?;
            if recovered.skipped_long + recovered.skipped_other > 0 {
                tracing::warn!(
                    long = recovered.skipped_long,
                    other = recovered.skipped_other,
                    "skipped lines of the output that are not whole records"
                );
            }
            core.resume_from(&recovered.positions);
            server_config.resume = recovered
                .positions
                .into_iter()
                .map(|(node, stream, next_seq)| ResumePosition {
                    node,
                    stream,
                    next_seq,
                })
                .collect();
        }
        let output = Output::open(settings.output, settings.output_file.as_deref())
            .context("opening the output")?;
        let server = Server::bind(settings.listen.as_str(), server_config)
            .with_context(|| format!("listening on {}", settings.listen))?;
        let metrics = Metrics::new()?;
        let web = match &settings.http {
            Some(addr) => Some(Web::start(addr, &metrics.registry, settings.node.as_str())?),
            None => None,
        };
        metrics.output_ok.set(1.0);
        let mqtt = match &settings.mqtt {
            Some(m) => {
                let topics = Topics::new(&settings.node);
                let publisher = MqttPublisher::start(m, topics.clone())
                    .with_context(|| format!("MQTT publishing to {}", m.url))?;
                Some(Mqtt {
                    publisher,
                    topics,
                    last: Default::default(),
                    ticks: 0,
                    uncommitted: Vec::new(),
                })
            }
            None => None,
        };
        let monitor = MonitorMetrics::new(&metrics.registry, core.degradation())?;
        let now = Instant::now();
        Ok(GroundNode {
            resources: settings.resources.clone(),
            sampler: settings.resources.sampler(),
            sampler_start: now,
            next_sample: now + settings.resources.interval,
            sample_warned: false,
            monitor,
            confirms: Vec::new(),
            relays: None,
            relay_buf: None,
            mqtt,
            core,
            server,
            output,
            fsync: settings.fsync,
            unsynced: None,
            own,
            metrics,
            web,
        })
    }

    /// The HTTP endpoint's address, when it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.web.as_ref().map(|w| w.server.local_addr())
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The core (drones, counters).
    pub fn core(&self) -> &GroundCore {
        &self.core
    }

    /// Metrics registry (what `/metrics` serves).
    pub fn registry(&self) -> Registry {
        self.metrics.registry.clone()
    }

    /// Processes everything that arrives until `deadline`.
    ///
    /// # Errors
    /// When the output cannot be written.
    pub fn step(&mut self, deadline: Instant) -> anyhow::Result<()> {
        loop {
            let mut until = deadline.min(self.next_sample);
            if let (Some(since), Some(every)) = (self.unsynced, self.fsync_interval()) {
                until = until.min(since + every);
            }
            let mut wait = until.saturating_duration_since(Instant::now());
            if let Some(web) = &self.web {
                wait = wait.min(web.next_publish.saturating_duration_since(Instant::now()));
            }
            if self.own.is_none() && self.mqtt.is_none() {
                // Only the link can wake us: select on its channel alone (what the select
                // below does then, without registering with three channels per wake; and
                // not `recv_timeout`, which spins and yields before it parks).
                let events = self.server.events();
                let mut sel = crossbeam_channel::Select::new();
                sel.recv(events);
                let first = match sel.select_timeout(wait) {
                    Ok(op) => op.recv(events).ok(),
                    Err(_) => None,
                };
                if let Some(ev) = first {
                    self.link_event(ev);
                    while let Ok(ev) = self.server.events().try_recv() {
                        self.link_event(ev);
                    }
                }
                self.after_wake();
                if Instant::now() >= deadline {
                    return Ok(());
                }
                continue;
            }
            let never = crossbeam_channel::never();
            let own = self.own.as_ref().map_or(&never, |o| o.events());
            let never_cmd = crossbeam_channel::never();
            let mqtt_cmds = self
                .mqtt
                .as_ref()
                .map_or(&never_cmd, |m| m.publisher.commands())
                .clone();
            select! {
                recv(mqtt_cmds) -> cmd => {
                    if let Ok(cmd) = cmd {
                        self.mqtt_command(cmd);
                    }
                },
                recv(self.server.events()) -> ev => {
                    if let Ok(ev) = ev {
                        self.link_event(ev);
                    }
                    while let Ok(ev) = self.server.events().try_recv() {
                        self.link_event(ev);
                    }
                },
                recv(own) -> ev => match ev {
                    Ok(PipelineEvent::Measured(m)) => {
                        self.core.handle(unix_now(), GroundInput::OwnRecord(m.record));
                    }
                    Ok(PipelineEvent::End) | Err(_) => self.own = None,
                    Ok(_) => {}
                },
                default(wait) => {},
            }
            self.after_wake();
            if Instant::now() >= deadline {
                return Ok(());
            }
        }
    }

    /// What [`GroundNode::step`] does after each wait: drain the core, sample the
    /// resources, sync when due, publish the dashboard.
    fn after_wake(&mut self) {
        self.drain();
        self.sample_resources();
        if let (Some(since), Some(every)) = (self.unsynced, self.fsync_interval()) {
            if since.elapsed() >= every {
                self.unsynced = None;
                let result = self.output.sync();
                self.written(result);
                self.drain();
            }
        }
        self.publish();
    }

    /// The fsync interval in force: the configured one, or 4 times it (at most 60 s, the
    /// option's bound) while [`GroundFeature::OutputFsync`] is shed.
    fn fsync_interval(&self) -> Option<Duration> {
        let every = self.fsync?;
        if self.core.is_enabled(GroundFeature::OutputFsync) {
            Some(every)
        } else {
            Some((every * 4).min(Duration::from_secs(60)).max(every))
        }
    }

    /// Samples the machine when due and feeds the core (degradation, resource alerts).
    fn sample_resources(&mut self) {
        let now = Instant::now();
        if now < self.next_sample {
            return;
        }
        self.next_sample = (self.next_sample + self.resources.interval).max(now);
        // A file that exists but cannot be read makes its readings unknown, never 0.
        let warned = &mut self.sample_warned;
        let r = self.sampler.sample_each(now - self.sampler_start, |e| {
            if !*warned {
                *warned = true;
                let cause =
                    std::error::Error::source(&e).map_or_else(String::new, |c| c.to_string());
                tracing::warn!(error = %e, %cause, "a resource reading is unavailable: it is unknown, never 0");
            }
        });
        let readings = sarlink_monitor::degradation::Readings {
            cpu: r.system_cpu,
            memory: r.system_memory,
            temperature: r.cpu_temperature,
        };
        self.core
            .handle(unix_now(), GroundInput::Resources(readings));
        self.drain();
        self.monitor.update(
            self.core.degradation(),
            self.core.readings(),
            self.core.active_alerts(),
        );
        if let Some(web) = &self.web {
            let shed = !self.core.is_enabled(GroundFeature::DashboardClients);
            web.server
                .set_connection_cap(shed.then_some(SHED_DASHBOARD_CONNECTIONS));
        }
    }

    /// Whether the status lines are printed now (shed under load).
    pub fn status_lines_enabled(&self) -> bool {
        self.core.is_enabled(GroundFeature::StatusLine)
    }

    /// Tells the core how the latest commit (or sync) went.
    fn written(&mut self, result: Result<(), crate::output::OutputError>) {
        match result {
            Ok(()) => self.core.handle(unix_now(), GroundInput::Written),
            Err(e) => {
                self.metrics.write_failures.inc();
                let reason = match std::error::Error::source(&e) {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                };
                self.core
                    .handle(unix_now(), GroundInput::WriteFailed { reason });
            }
        }
    }

    /// A command from MQTT: relayed by the core like an observer's, or refused here when it
    /// does not parse (the refusal is published on `.../ack` when it names an id).
    fn mqtt_command(
        &mut self,
        cmd: Result<sarlink_schema::Cmd, (String, crate::mqtt::CommandError)>,
    ) {
        self.metrics.mqtt_commands.inc();
        match cmd {
            Ok(cmd) => {
                tracing::info!(
                    target = cmd.target.as_ref().map_or("", |t| t.as_str()),
                    id = cmd.id,
                    "command from MQTT"
                );
                self.core
                    .handle(unix_now(), GroundInput::RemoteCommand(cmd));
            }
            Err((node, e)) => {
                tracing::warn!(%node, error = %e, "MQTT command refused");
                if let (crate::mqtt::CommandError::Invalid { id, reason }, Some(m)) =
                    (&e, &self.mqtt)
                {
                    let ack = sarlink_schema::Ack::refuse(
                        *id,
                        sarlink_schema::AckCode::from_wire("invalid"),
                        reason.clone(),
                    );
                    m.publisher.publish(ack_message(&m.topics, &node, &ack));
                }
            }
        }
    }

    fn link_event(&mut self, ev: ServerEvent) {
        if let ServerEvent::Rtt { rtt, .. } = &ev {
            self.metrics.rtt.record(*rtt);
        }
        self.core.handle(unix_now(), GroundInput::Link(ev));
    }

    fn drain(&mut self) {
        let step = self.metrics.step.clone();
        let _timer = ScopeTimer::new(&step);
        let mut wrote = false;
        while let Some(out) = self.core.poll_output() {
            // Runs of confirmations and of relayed records go to the server together; any
            // other request for the server comes after what was asked before it.
            match out {
                GroundOutput::Confirm {
                    conn,
                    node,
                    stream,
                    upto,
                } => {
                    self.flush_relays();
                    self.confirms.push((conn, node, stream, upto));
                    continue;
                }
                GroundOutput::RelaySample { role, record } => {
                    self.flush_confirms();
                    match &mut self.relays {
                        Some((held, records)) if *held == role => records.push(record),
                        _ => {
                            self.flush_relays();
                            let mut records = self.relay_buf.take().unwrap_or_default();
                            records.push(record);
                            self.relays = Some((role, records));
                        }
                    }
                    continue;
                }
                GroundOutput::Send { .. }
                | GroundOutput::Broadcast { .. }
                | GroundOutput::Close { .. } => self.flush_server(),
                _ => {}
            }
            if let Some(m) = &mut self.mqtt {
                if let Some(msg) = map_output(&m.topics, &out, unix_ns()) {
                    // MQTT carries what the output has: entries wait for their commit.
                    if matches!(out, GroundOutput::Write(_)) {
                        m.uncommitted.push(msg);
                    } else {
                        m.publisher.publish(msg);
                    }
                }
            }
            match out {
                GroundOutput::RemoteAck { node, ack } => {
                    tracing::info!(%node, id = ack.id, ok = ack.ok, "answer to an MQTT command");
                }
                GroundOutput::Write(entry) => {
                    match &entry {
                        Entry::Record { record, node, .. } => {
                            if **node != **self.core.node() {
                                self.metrics.records.inc();
                                // From the end of the record's window to its output line.
                                let age = unix_ns().saturating_sub(record.timestamp_ns).max(0);
                                let age = Duration::from_nanos(u64::try_from(age).unwrap_or(0));
                                self.metrics.latency_local.record(age);
                                self.metrics.window_latency.record(age);
                            }
                        }
                        Entry::Decision { .. } => self.metrics.decisions.inc(),
                    }
                    self.output.write(&entry);
                    wrote = true;
                }
                // Collected above.
                GroundOutput::Confirm { .. } => {}
                GroundOutput::Close { conn, code, reason } => {
                    self.server.disconnect(conn, code, &reason);
                }
                GroundOutput::Event(GroundEvent::Output { ok, reason }) => {
                    self.metrics.output_ok.set(if ok { 1.0 } else { 0.0 });
                    if ok {
                        tracing::warn!("the output is written again; acknowledging records again");
                    } else {
                        tracing::error!(
                            reason = reason.as_deref().unwrap_or(""),
                            "the output cannot be written: records are no longer acknowledged; drones keep them and resend"
                        );
                    }
                }
                GroundOutput::Send { conn, message } => {
                    let relayed = match &message {
                        Message::Cmd(c) => Some(c.id),
                        _ => None,
                    };
                    if !self.server.send(conn, message) {
                        if let Some(id) = relayed {
                            self.core.relay_failed(conn, id);
                        }
                    }
                }
                GroundOutput::Broadcast { role, message } => {
                    self.server.broadcast(role, &message);
                }
                // Collected above.
                GroundOutput::RelaySample { .. } => {}
                GroundOutput::Event(GroundEvent::Decision { node, decision }) => {
                    tracing::info!(%node, source = decision.source_id.get(), fallback = decision.fallback, reason = %decision.reason, "decision");
                }
                GroundOutput::Event(GroundEvent::Alert(a)) => {
                    super::drone::log_alert(&a);
                    if let Some(web) = &mut self.web {
                        let severity = match a.severity {
                            sarlink_monitor::thresholds::Severity::Critical => Severity::Critical,
                            sarlink_monitor::thresholds::Severity::Warning => Severity::Warning,
                            sarlink_monitor::thresholds::Severity::Cleared => Severity::Info,
                        };
                        let node = self.core.node().to_string();
                        web.board
                            .alert(unix_now(), &node, severity, format!("alert: {a}"));
                    }
                }
                GroundOutput::Event(GroundEvent::Degradation {
                    event,
                    features,
                    level,
                    readings,
                }) => {
                    super::drone::log_degradation(&event, &features, &level, &readings);
                    if let Some(web) = &mut self.web {
                        let severity = if matches!(
                            event.action,
                            sarlink_monitor::degradation::Action::Enable(_)
                        ) {
                            Severity::Info
                        } else {
                            Severity::Warning
                        };
                        let node = self.core.node().to_string();
                        let text = degradation_text(&event, &features, &level, &readings);
                        web.board.alert(unix_now(), &node, severity, text);
                    }
                }
                GroundOutput::Event(GroundEvent::DroneAlert {
                    node,
                    kind,
                    severity,
                }) => {
                    tracing::warn!(%node, kind, severity, "drone alert");
                    if let Some(web) = &mut self.web {
                        let level = match severity.as_str() {
                            "critical" => Severity::Critical,
                            "cleared" => Severity::Info,
                            _ => Severity::Warning,
                        };
                        let text = format!("alert {kind}: {severity}");
                        web.board.alert(unix_now(), &node, level, text);
                    }
                }
                GroundOutput::Event(GroundEvent::DroneLevel {
                    node,
                    level,
                    disabled,
                }) => {
                    tracing::warn!(%node, level, disabled = %disabled.join(","), "drone degradation level");
                }
                GroundOutput::Event(GroundEvent::Refused { node, ack }) => {
                    let reason = ack.reason.as_deref().unwrap_or("");
                    tracing::warn!(%node, id = ack.id, reason, "command refused");
                    if let Some(web) = &mut self.web {
                        let code = ack.code.as_ref().map_or("?", |c| c.as_str());
                        let text = format!("command {} refused ({code}): {reason}", ack.id);
                        web.board.alert(unix_now(), &node, Severity::Warning, text);
                    }
                }
            }
        }
        self.flush_server();
        if wrote {
            let result = self.output.commit();
            if let Some(m) = &mut self.mqtt {
                if result.is_ok() {
                    m.publisher.publish_all(m.uncommitted.drain(..));
                } else {
                    m.uncommitted.clear();
                }
            }
            match (result, self.fsync_interval()) {
                (Ok(()), Some(_)) => {
                    self.unsynced.get_or_insert_with(Instant::now);
                }
                (result, _) => {
                    self.written(result);
                    // What the core asks after hearing (confirmations, or closes).
                    self.drain();
                }
            }
        }
        self.metrics.connections.set(self.core.connections() as f64);
    }

    /// Hands the collected confirmations to the server, in the order the core asked.
    fn flush_confirms(&mut self) {
        if !self.confirms.is_empty() {
            self.server.confirm_all(&self.confirms);
            self.confirms.clear();
        }
    }

    /// Hands the collected relayed records to the server, in the order the core asked.
    fn flush_relays(&mut self) {
        if let Some((role, mut records)) = self.relays.take() {
            self.server.broadcast_samples(role, &records);
            records.clear();
            self.relay_buf = Some(records);
        }
    }

    /// Hands everything collected for the server over (only one kind is held at a time).
    fn flush_server(&mut self) {
        self.flush_confirms();
        self.flush_relays();
    }

    /// Publishes the dashboard and the per-drone series when [`PUBLISH_INTERVAL`](crate::dashboard::PUBLISH_INTERVAL) has
    /// passed (nothing without `--http`). Never waits: a publication the HTTP side is busy
    /// reading is dropped, and the next follows one interval later.
    fn publish(&mut self) {
        let Some(web) = &mut self.web else {
            return;
        };
        let full_rate = self.core.is_enabled(GroundFeature::DashboardRate);
        if !super::publish_due(&mut web.next_publish, full_rate) {
            return;
        }
        let unix = unix_now();
        let own = self.core.own_latest().map(Reading::from_record);
        web.board.set_ground_rx(own);
        web.ground_rx.set(own);
        web.board.begin_publication();
        let drones = self.core.drones();
        let registry = &self.metrics.registry;
        if web.shown.is_none() && web.board.is_full() && web.series.len() >= MAX_DRONES {
            let shown = drones
                .values()
                .filter(|t| web.board.has_room_for(&t.node) || web.series.contains_key(&*t.node))
                .map(|t| Arc::clone(&t.node))
                .collect();
            web.shown = Some(shown);
        }
        if let Some(shown) = web.shown.take() {
            for track in shown.iter().filter_map(|node| drones.get(node)) {
                web.show(registry, unix, track);
            }
            web.board
                .count_hidden_many(drones.len().saturating_sub(shown.len()));
            web.shown = Some(shown);
        } else {
            for track in drones.values() {
                // A drone past both bounds (board and series) would have its view built
                // only to be counted as hidden: count it without building it.
                if !web.board.has_room_for(&track.node)
                    && web.series.len() >= MAX_DRONES
                    && !web.series.contains_key(&*track.node)
                {
                    web.board.count_hidden();
                    continue;
                }
                web.show(registry, unix, track);
            }
        }
        web.board.tick(unix);
        web.hub
            .publish(web.board.live_json(unix), web.board.history());
    }

    /// Reads the TLS files again (the revocation list above all); on failure the old
    /// settings stay and the problem is logged.
    pub fn reload_tls(&self, settings: &GroundSettings) {
        let Some(dir) = &settings.tls_dir else { return };
        match crate::ca::server_tls(dir, settings.node.as_str()) {
            Ok(tls) => {
                self.server.set_tls(tls);
                tracing::info!(dir = %dir.display(), "TLS files and revocation list read again");
            }
            Err(e) => tracing::warn!(error = %e, "TLS files not reloaded; keeping the old ones"),
        }
    }

    /// Flushes the output, closes every connection with `bye shutdown`, and gives the MQTT
    /// publisher up to 2 s to publish what it holds and the offline status.
    pub fn shutdown(mut self) {
        let _ = self.output.commit();
        let _ = self.output.sync();
        self.own = None;
        self.server.shutdown();
        if let Some(m) = self.mqtt.take() {
            let left = m.publisher.shutdown(Duration::from_secs(2));
            if left.queued > 0 {
                tracing::warn!(
                    unpublished = left.queued,
                    "MQTT messages not published before shutdown"
                );
            }
        }
    }

    /// The MQTT publish queue's counters and whether the broker is connected (`None`
    /// without `--mqtt`).
    pub fn mqtt_stats(&self) -> Option<(crate::mqtt::QueueStats, bool)> {
        self.mqtt
            .as_ref()
            .map(|m| (m.publisher.stats(), m.publisher.is_connected()))
    }

    /// Once a second: the ground's status (retained), every 5 s each drone's, and an alert,
    /// a log line and the overflow metric when the publish queue dropped messages.
    fn mqtt_tick(&mut self) {
        let Some(m) = &mut self.mqtt else {
            return;
        };
        let now = unix_ns();
        let stats = m.publisher.stats();
        let connected = m.publisher.is_connected();
        self.metrics
            .mqtt_published
            .add(stats.published.saturating_sub(m.last.published));
        let dropped = stats.overflow.saturating_sub(m.last.overflow);
        self.metrics.mqtt_overflow.add(dropped);
        self.metrics.mqtt_queued.set(stats.queued as f64);
        self.metrics
            .mqtt_connected
            .set(if connected { 1.0 } else { 0.0 });
        if dropped > 0 {
            tracing::error!(
                dropped,
                total = stats.overflow,
                "the MQTT publish queue is full: messages dropped (raise --mqtt-queue or fix the broker)"
            );
            m.publisher.publish(
                Alert {
                    metric: None,
                    severity: None,
                    node: std::sync::Arc::clone(m.topics.ground()),
                    kind: AlertKind::MqttOverflow,
                    timestamp_ns: now,
                    reason: Some(format!(
                        "the publish queue was full: {dropped} messages dropped ({} in all)",
                        stats.overflow
                    )),
                    count: Some(dropped),
                    id: None,
                }
                .message(&m.topics),
            );
        }
        m.last = stats;
        // Shed, the ground's status goes every 5 s and each drone's every 30 s.
        let full = self.core.is_enabled(GroundFeature::MqttStatusRate);
        let (ground_every, drone_every) = if full { (1, 5) } else { (5, 30) };
        let tick = m.ticks;
        m.ticks += 1;
        if tick % ground_every != 0 {
            return;
        }
        m.publisher.publish(
            GroundStatus {
                timestamp_ns: now,
                drones: self.core.drones().len(),
                connections: self.core.connections(),
                records: self.core.stats().records,
                output_ok: self.core.output_ok(),
                queue: stats,
            }
            .message(&m.topics),
        );
        if tick % drone_every == 0 {
            for track in self.core.drones().values() {
                m.publisher
                    .publish(drone_status_message(&m.topics, track, now));
            }
        }
    }

    /// Record-to-output latency since the previous call (a fresh window starts).
    pub fn take_window_latency(&mut self) -> HistogramSnapshot {
        let snapshot = self.metrics.window_latency.snapshot();
        self.metrics.window_latency.clear();
        snapshot
    }

    /// Link RTT percentiles over every drone connection.
    pub fn rtt_snapshot(&self) -> HistogramSnapshot {
        self.metrics.rtt.snapshot()
    }

    /// Record-to-output latency histogram.
    pub fn latency(&mut self) -> &Histogram {
        self.metrics.latency_local.flush_into(&self.metrics.latency);
        &self.metrics.latency
    }

    /// Publishes what the hot path recorded into the shared histograms (call about once a
    /// second).
    pub fn publish_metrics(&mut self) {
        self.metrics.latency_local.flush_into(&self.metrics.latency);
        self.mqtt_tick();
    }
}

/// Runs the ground station until `stop` is set (or `seconds` pass), printing a status line
/// per drone each second unless quiet.
///
/// # Errors
/// When it cannot start, or output fails.
/// When `reload` is set (SIGHUP), the TLS files are read again: a new revocation list
/// applies to every connection from then on.
pub fn run(
    settings: &GroundSettings,
    stop: &AtomicBool,
    reload: &AtomicBool,
) -> anyhow::Result<()> {
    let mut ground = GroundNode::start(settings)?;
    if !settings.quiet {
        eprintln!("sarlink-ground: listening on {}", ground.local_addr());
    }
    let start = Instant::now();
    let deadline = settings.seconds.map(|s| start + Duration::from_secs_f64(s));
    let mut next_line = start + Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        ground.step(Instant::now() + Duration::from_millis(250))?;
        if reload.swap(false, Ordering::Relaxed) {
            ground.reload_tls(settings);
        }
        if Instant::now() >= next_line {
            next_line += Duration::from_secs(1);
            ground.publish_metrics();
            if !settings.quiet {
                // Shed under load; the MQTT line still says when something is wrong.
                let lines = ground.status_lines_enabled();
                if lines {
                    // One write for the whole block (the same bytes as a line each): with
                    // a thousand drones, two thousand unbuffered writes a second otherwise.
                    let mut block = String::new();
                    for line in status_lines(&ground, start.elapsed()) {
                        block.push_str(&line);
                        block.push('\n');
                    }
                    // As eprintln!, minus its panic: a status line is not worth stopping for.
                    let _ =
                        std::io::Write::write_all(&mut std::io::stderr().lock(), block.as_bytes());
                }
                if let Some((q, connected)) = ground
                    .mqtt_stats()
                    .filter(|(q, connected)| lines || !connected || q.overflow > 0)
                {
                    eprintln!(
                        "[{:>6.1}s] mqtt: {}, {} queued ({} in flight), {} published{}",
                        start.elapsed().as_secs_f64(),
                        if connected {
                            "connected"
                        } else {
                            "BROKER UNREACHABLE"
                        },
                        q.queued,
                        q.in_flight,
                        q.published,
                        if q.overflow > 0 {
                            format!(", {} DROPPED (queue full)", q.overflow)
                        } else {
                            String::new()
                        }
                    );
                }
            }
        }
    }
    ground.shutdown();
    Ok(())
}

/// One status line per drone: records, link, quality, and the drone's decision.
pub fn status_lines(ground: &GroundNode, elapsed: Duration) -> Vec<String> {
    ground
        .core()
        .drones()
        .iter()
        .map(|(node, t)| {
            let d = t.decision.as_ref();
            format!(
                "[{:>6.1}s] {node}: {} records{}, link {:?}{}{} | drone decides {} ({}){}",
                elapsed.as_secs_f64(),
                t.received,
                if ground.core().output_ok() {
                    ""
                } else {
                    " (OUTPUT FAILING: not acknowledged)"
                },
                t.link,
                t.rtt.map_or(String::new(), |r| format!(
                    " rtt {:.2} ms",
                    r.as_secs_f64() * 1e3
                )),
                t.quality.map_or(String::new(), |q| format!(" quality {q}")),
                d.map_or("-", |d| if d.source_id == SourceId::DRONE {
                    "drone"
                } else {
                    "ground"
                }),
                d.map_or("-", |d| d.reason.as_str()),
                if d.is_some_and(|d| d.fallback) {
                    " FALLBACK"
                } else {
                    ""
                },
            )
        })
        .collect()
}
