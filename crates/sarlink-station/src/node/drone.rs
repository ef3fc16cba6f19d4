//! The drone's driver: a receiver thread, the link client, the flight recorder, the HTTP
//! endpoint and the clock around a [`DroneCore`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crossbeam_channel::select;
use parking_lot::Mutex;
use sarlink_link::driver::{Backoff, Client, ClientConfig, ClientEvent};
use sarlink_link::{LinkState, SessionConfig};
use sarlink_monitor::metrics::{Gauge, Histogram, HistogramSnapshot, Registry};
use sarlink_monitor::quality::{JitterEstimator, LinkStats, QualityConfig, assess};
use sarlink_schema::{Decision, Role, RssiRecord, RssiUnits, SourceId};
use sarlink_sdr::{IqSource, SourceHealth};

use crate::config::{DEFAULT_FREQUENCY_HZ, DroneSettings};
use crate::dashboard::{
    Dashboard, DroneSeries, DroneView, LinkView, Reading, ReceiverSeries, Severity,
};
use crate::drone::{
    Control, DroneConfig, DroneCore, DroneEvent, DroneFeature, DroneInput, DroneOutput, DroneStats,
    ResourceSample,
};
use crate::http::{HttpConfig, HttpServer, Hub};
use crate::monitoring::{MonitorMetrics, ResourceSettings, degradation_text, readings_text};
use crate::output::Output;
use crate::pipeline::{
    DynSource, Measurement, PipelineConfig, PipelineEvent, ReceiverThread, tuning_offset_hz,
};
use crate::record::unix_now;
use crate::source::SourceSpec;
use crate::source::Tuning;
use crate::vehicle::{
    Telemetry, TextKind, VehicleRules, VehicleState, VehicleTracker, geotag, vehicle_safety,
};
use mavlink::dialects::ardupilotmega::MavSeverity;
use sarlink_coord::SafetyState;

use super::mavlink::{Inbound, MavlinkLink, SimFlight, since_start};

/// What the drone is doing, for status lines, the demo and tests (updated as it runs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DroneStatus {
    /// Newest record of the drone's own receiver.
    pub own: Option<RssiRecord>,
    /// Newest record of the ground's receiver.
    pub ground: Option<RssiRecord>,
    /// The coordinator's latest decision.
    pub decision: Option<Decision>,
    /// The link (`None` while down).
    pub link: Option<LinkState>,
    /// Latest link RTT.
    pub rtt: Option<Duration>,
    /// The core's counters.
    pub stats: DroneStats,
    /// Report rate in force.
    pub rate_hz: f32,
    /// Samples waiting on the drone for the link.
    pub backlog: u64,
    /// Samples sent again after reconnecting.
    pub resent: u64,
    /// Reports the receiver really produced in the last second.
    pub reports_per_s: f32,
    /// How a live source delivers (`None` for recordings and the simulator).
    pub source: Option<SourceHealth>,
    /// The latest own record was made from stale samples.
    pub stale: bool,
    /// What the flight controller reported (`None` without `--mavlink`).
    pub vehicle: Option<VehicleState>,
    /// The vehicle's safety levels in force.
    pub vehicle_safety: SafetyState,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct DroneSummary {
    /// The core's counters.
    pub stats: DroneStats,
    /// From each ground record's stamp to its arrival at the coordinator (both clocks are
    /// this machine's only on loopback; across machines this includes their clock offset).
    pub ground_latency: HistogramSnapshot,
}

/// Extra knobs for embedding a drone (the demo, tests).
#[derive(Debug, Clone)]
pub struct DroneOptions {
    /// Reconnection delays.
    pub backoff: Backoff,
    /// Seconds between status lines (`None`: none).
    pub status_every: Option<Duration>,
    /// How the simulated vehicle (`--mavlink sim`) flies; a straight approach when `None`.
    pub sim_flight: Option<SimFlight>,
}

impl Default for DroneOptions {
    fn default() -> Self {
        DroneOptions {
            backoff: Backoff::default(),
            status_every: Some(Duration::from_secs(1)),
            sim_flight: None,
        }
    }
}

/// The HTTP side of a drone: the server, and what the main loop publishes to it.
#[derive(Debug)]
struct Web {
    node: String,
    hub: Hub,
    board: Dashboard,
    series: DroneSeries,
    ground_rx: Option<ReceiverSeries>,
    backlog: Gauge,
    rate: Gauge,
    jitter: JitterEstimator,
    quality: Option<u8>,
    next_publish: Instant,
    // Last: dropping it stops the server.
    server: HttpServer,
}

/// The flight controller side of a drone: the port, what the vehicle said, the rules and
/// the telemetry going back.
#[derive(Debug)]
struct Vehicle {
    link: MavlinkLink,
    tracker: VehicleTracker,
    rules: VehicleRules,
    telemetry: Telemetry,
    safety: SafetyState,
    lost: bool,
    detected: bool,
    fallback: bool,
}

/// A drone: receiver, link and core. [`DroneNode::run`] drives it.
#[derive(Debug)]
pub struct DroneNode {
    receiver: ReceiverThread,
    client: Client,
    core: DroneCore,
    output: Option<Output>,
    view: Arc<Mutex<DroneStatus>>,
    registry: Registry,
    ground_latency: Histogram,
    ground_name: Option<String>,
    web: Option<Web>,
    options: DroneOptions,
    reports_this_second: u32,
    vehicle: Option<Vehicle>,
    resources: ResourceSettings,
    monitor: MonitorMetrics,
    /// The link's resend ring, in records (for the backlog alert).
    ring_capacity: u64,
    /// Failed flight-recorder commits since the last one that worked.
    output_errors: u64,
}

/// Opens the receiver `settings` name (with the tuning offset for tunable sources).
///
/// # Errors
/// When the source cannot be opened.
pub fn open_measurement(settings: &DroneSettings) -> anyhow::Result<Measurement<DynSource>> {
    let beacon = settings.frequency_hz.or(match settings.source {
        SourceSpec::File(_) => None,
        _ => Some(DEFAULT_FREQUENCY_HZ),
    });
    let mut pipeline = PipelineConfig::new(SourceId::DRONE);
    pipeline.rate_hz = settings.rate_hz;
    pipeline.gain = settings.gain;
    pipeline.calibration_db = settings.calibration_db;
    pipeline.smoothing = settings.smoothing;
    let tuning = Tuning {
        beacon_hz: beacon,
        sample_rate_hz: settings.sample_rate_hz,
        sample_rate_given: settings.sample_rate_given,
        gain: settings.gain,
        ppm: settings.ppm,
        bias_tee: settings.bias_tee,
        tuning_offset_hz: tuning_offset_hz(settings.sample_rate_hz),
        seed: rand::random(),
    };
    Measurement::open(&settings.source, &tuning, &pipeline)
        .with_context(|| format!("opening the source {}", settings.source))
}

impl DroneNode {
    /// Opens the source and starts the link as `settings` say.
    ///
    /// # Errors
    /// When the source, the flight recorder or the link cannot start.
    pub fn start(settings: &DroneSettings) -> anyhow::Result<DroneNode> {
        let measurement = open_measurement(settings)?;
        DroneNode::with_measurement(settings, measurement, DroneOptions::default())
    }

    /// Starts a drone measuring with `measurement` (any source: the demo flies a simulator).
    ///
    /// # Errors
    /// When the flight recorder or the link cannot start, or a setting is out of range.
    pub fn with_measurement<S: IqSource + Send + 'static>(
        settings: &DroneSettings,
        measurement: Measurement<S>,
        options: DroneOptions,
    ) -> anyhow::Result<DroneNode> {
        let mut core_config = DroneConfig::new(settings.node.clone());
        core_config.report_rate_hz = settings.rate_hz;
        core_config.channel_offset_hz = measurement.channel_offset_hz();
        core_config.smoothing = settings.smoothing;
        core_config.degradation = settings.resources.degradation;
        if settings.calibration_db.is_some() {
            core_config.units = RssiUnits::Dbm;
        }
        let core = DroneCore::new(core_config).context("drone settings")?;
        let output = match &settings.output_file {
            Some(path) => Some(Output::open(settings.output, Some(path))?),
            None => None,
        };
        let units = if settings.calibration_db.is_some() {
            RssiUnits::Dbm
        } else {
            RssiUnits::Dbfs
        };
        let mut session = SessionConfig::new(
            Role::Drone,
            settings.node.clone(),
            crate::record::new_stream_id(),
        );
        session.key = settings.key.clone();
        session.compression_threshold = settings.compression_threshold;
        session.rssi_units = Some(units);
        // Congestion advice is a fraction of the rate this drone is set to report at.
        session.congestion.full_rate_hz = settings.rate_hz;
        let ring_capacity = session.sample_ring as u64;
        let mut client_config = ClientConfig::new(session, settings.connect.clone());
        client_config.backoff = options.backoff;
        if let Some(dir) = &settings.tls_dir {
            client_config.tls = Some(
                crate::ca::client_tls(dir, settings.node.as_str(), &settings.ground_name)
                    .with_context(|| format!("TLS from {}", dir.display()))?,
            );
        } else if settings.key.is_none() {
            anyhow::ensure!(
                settings.insecure,
                "no TLS (--tls DIR) and no key (--key-file): the ground could not be told from an impostor; pass --insecure to run unprotected anyway"
            );
            tracing::warn!(
                "--insecure: the link is neither authenticated nor protected (see docs/SECURITY.md)"
            );
        }
        let client = Client::spawn(client_config).context("starting the link")?;
        let registry = Registry::new();
        let ground_latency = registry.histogram(
            "sarlink_drone_ground_record_latency_seconds",
            "Time from a ground record's timestamp to its arrival at the drone's coordinator, seconds (includes the clock offset between the two machines).",
            &[],
        )?;
        let web = match &settings.http {
            Some(addr) => {
                let hub = Hub::new();
                let server =
                    HttpServer::start(addr, HttpConfig::default(), registry.clone(), hub.clone())
                        .with_context(|| format!("HTTP on {addr}"))?;
                let node = settings.node.as_str();
                Some(Web {
                    node: node.to_owned(),
                    hub,
                    board: Dashboard::new(node, "drone"),
                    series: DroneSeries::new(&registry, node)?,
                    ground_rx: None,
                    backlog: registry.gauge(
                        "sarlink_drone_backlog",
                        "Records waiting on the drone for the link.",
                        &[],
                    )?,
                    rate: registry.gauge(
                        "sarlink_drone_report_rate_hertz",
                        "RSSI report rate in force, hertz.",
                        &[],
                    )?,
                    jitter: JitterEstimator::new(),
                    quality: None,
                    next_publish: Instant::now(),
                    server,
                })
            }
            None => None,
        };
        let vehicle = match &settings.mavlink {
            Some(url) => {
                let link =
                    MavlinkLink::spawn(url, settings.mavlink_component, options.sim_flight.clone())
                        .context("starting the MAVLink driver")?;
                Some(Vehicle {
                    link,
                    tracker: VehicleTracker::new(unix_now(), settings.mavlink_component),
                    rules: settings.vehicle_rules.clone(),
                    telemetry: Telemetry::new(settings.mavlink_budget),
                    safety: SafetyState::NOMINAL,
                    lost: false,
                    detected: false,
                    fallback: false,
                })
            }
            None => None,
        };
        let monitor = MonitorMetrics::new(&registry, core.degradation())?;
        let receiver = ReceiverThread::spawn(measurement).context("starting the receiver")?;
        Ok(DroneNode {
            resources: settings.resources.clone(),
            monitor,
            ring_capacity,
            output_errors: 0,
            receiver,
            client,
            core,
            output,
            view: Arc::new(Mutex::new(DroneStatus::default())),
            registry,
            ground_latency,
            ground_name: None,
            web,
            options,
            reports_this_second: 0,
            vehicle,
        })
    }

    /// A live view of the drone, updated as it runs.
    pub fn view(&self) -> Arc<Mutex<DroneStatus>> {
        Arc::clone(&self.view)
    }

    /// The metrics registry (what `/metrics` serves with `--http`).
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }

    /// The HTTP endpoint's address, when it runs.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.web.as_ref().map(|w| w.server.local_addr())
    }

    /// Runs until `stop` is set or `deadline` passes, then closes the link.
    ///
    /// # Errors
    /// When the flight recorder cannot be written.
    pub fn run(
        mut self,
        stop: &AtomicBool,
        deadline: Option<Instant>,
        quiet: bool,
    ) -> anyhow::Result<DroneSummary> {
        let start = Instant::now();
        let mut sampler = self.resources.sampler();
        let mut sample_warned = false;
        let mut next_second = start + Duration::from_secs(1);
        let mut next_sample = start + self.resources.interval;
        let mut next_status = self.options.status_every.map(|d| start + d);
        let vehicle_rx = self
            .vehicle
            .as_ref()
            .map_or_else(crossbeam_channel::never, |v| v.link.events().clone());
        let result = loop {
            if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                break Ok(());
            }
            let now = unix_now();
            let mut wait = self
                .core
                .poll_timeout()
                .saturating_sub(now)
                .min(Duration::from_millis(100));
            if let Some(web) = &self.web {
                wait = wait.min(web.next_publish.saturating_duration_since(Instant::now()));
            }
            select! {
                recv(self.receiver.events()) -> ev => match ev {
                    Ok(ev) => {
                        if self.pipeline_event(ev) {
                            break Ok(());
                        }
                    }
                    Err(_) => break Err(anyhow::anyhow!("the receiver stopped")),
                },
                recv(self.client.events()) -> ev => {
                    if let Ok(ev) = ev {
                        self.link_event(ev);
                    }
                },
                recv(vehicle_rx) -> m => {
                    if let Ok(m) = m {
                        self.vehicle_message(&m);
                    }
                },
                default(wait) => {},
            }
            // Take whatever else is waiting before acting on it.
            while let Ok(ev) = self.client.events().try_recv() {
                self.link_event(ev);
            }
            self.core.handle(unix_now(), DroneInput::Tick);
            self.vehicle_step();
            let now = Instant::now();
            if now >= next_second {
                next_second += Duration::from_secs(1);
                self.view.lock().reports_per_s = self.reports_this_second as f32;
                self.reports_this_second = 0;
            }
            if now >= next_sample {
                next_sample = (next_sample + self.resources.interval).max(now);
                // A file that exists but cannot be read (a container without /proc/stat
                // access) makes its readings unknown, never 0.
                let r = sampler.sample_each(now - start, |e| {
                    if !sample_warned {
                        sample_warned = true;
                        tracing::warn!(error = %e, cause = %error_cause(&e), "a resource reading is unavailable: it is unknown, never 0");
                    }
                });
                let sample = ResourceSample {
                    readings: sarlink_monitor::degradation::Readings {
                        cpu: r.system_cpu,
                        memory: r.system_memory,
                        temperature: r.cpu_temperature,
                    },
                    rss_bytes: r.rss_bytes,
                };
                let held = self.client.counters().snapshot().backlog;
                self.core.handle(
                    unix_now(),
                    DroneInput::Backlog {
                        held,
                        capacity: self.ring_capacity,
                    },
                );
                self.core.handle(unix_now(), DroneInput::Resources(sample));
                self.monitor.update(
                    self.core.degradation(),
                    &sample.readings,
                    self.core.active_alerts(),
                );
            }
            if let Err(e) = self.drain() {
                break Err(e);
            }
            self.publish();
            if let Some(at) = next_status.filter(|at| now >= *at) {
                next_status = self.options.status_every.map(|d| at + d);
                if !quiet && self.core.is_enabled(DroneFeature::StatusLine) {
                    eprintln!("{}", status_line(&self.view.lock(), now - start));
                }
            }
        };
        let summary = DroneSummary {
            stats: self.core.stats().clone(),
            ground_latency: self.ground_latency.snapshot(),
        };
        if let Some(out) = &mut self.output {
            if let Err(e) = out.commit() {
                tracing::error!(error = %e, "the flight recorder could not be written");
            }
        }
        self.client.close();
        result.map(|()| summary)
    }

    /// Publishes the dashboard and the series when [`PUBLISH_INTERVAL`](crate::dashboard::PUBLISH_INTERVAL) has passed (nothing
    /// without `--http`). Never waits on HTTP: a publication the HTTP side is busy reading
    /// is dropped.
    fn publish(&mut self) {
        let Some(web) = &mut self.web else {
            return;
        };
        let full_rate = self.core.is_enabled(DroneFeature::DashboardRate);
        if !super::publish_due(&mut web.next_publish, full_rate) {
            return;
        }
        let core = &self.core;
        let decision = core.decision();
        let controller = core.degradation();
        let shed = controller
            .disabled()
            .iter()
            .filter_map(|id| controller.feature(id).map(|f| f.name.clone()))
            .collect();
        let view = DroneView {
            node: web.node.clone(),
            link: LinkView::from_state(core.link()),
            rtt_ms: core.rtt().map(|r| (r.as_secs_f64() * 1e6).round() / 1e3),
            quality: core.link().and(web.quality),
            source: decision.map(|d| crate::dashboard::source_name(d.source_id)),
            fallback: decision.is_some_and(|d| d.fallback),
            reason: decision.map(|d| d.reason.clone()),
            level: Some(core.level()),
            shed,
            drone_rx: core.own_latest().map(Reading::from_record),
            records: core.stats().measured,
            gaps: 0,
        };
        let ground = core.ground_latest().map(Reading::from_record);
        if let (None, Some(name)) = (&web.ground_rx, &self.ground_name) {
            web.ground_rx = ReceiverSeries::new(&self.registry, name).ok();
        }
        if let Some(series) = &web.ground_rx {
            series.set(ground);
        }
        web.series.set(&view);
        web.backlog
            .set(self.client.counters().snapshot().backlog as f64);
        web.rate.set(f64::from(core.current_rate_hz()));
        let unix = unix_now();
        web.board.set_ground_rx(ground);
        web.board.update(unix, view);
        web.board.tick(unix);
        web.hub
            .publish(web.board.live_json(unix), web.board.history());
    }

    /// Feeds a receiver event to the core; true when the source ended.
    fn pipeline_event(&mut self, ev: PipelineEvent) -> bool {
        let now = unix_now();
        match ev {
            PipelineEvent::Measured(m) => {
                self.reports_this_second += 1;
                let mut v = self.view.lock();
                if m.stale != v.stale {
                    if m.stale {
                        tracing::warn!("the source delivers late or slowly: records are stale");
                    } else {
                        tracing::info!("the source delivers in real time again");
                    }
                }
                v.stale = m.stale;
                drop(v);
                let mut record = m.record;
                if let Some(v) = &self.vehicle {
                    geotag(&mut record.beacon, v.tracker.state(), now);
                }
                self.core.handle(
                    now,
                    DroneInput::Measured {
                        record,
                        detected: m.detected,
                    },
                );
                self.vehicle_record(&record, m.detected);
            }
            PipelineEvent::Cycle(d) => self.core.handle(now, DroneInput::CycleTime(d)),
            PipelineEvent::ControlDone { control, outcome } => {
                let cmd_id = match control {
                    Control::Tune { cmd_id, .. } | Control::Gain { cmd_id, .. } => cmd_id,
                    Control::ReportRate { .. } | Control::Smoothing { .. } => {
                        if outcome != crate::drone::ControlOutcome::Applied {
                            tracing::warn!(?control, ?outcome, "receiver setting failed");
                        }
                        return false;
                    }
                };
                self.core
                    .handle(now, DroneInput::ControlDone { cmd_id, outcome });
            }
            PipelineEvent::Failing(why) => tracing::warn!(%why, "the receiver keeps failing"),
            PipelineEvent::Health(h) => {
                let stale = {
                    let mut v = self.view.lock();
                    v.source = Some(h);
                    v.stale
                };
                let state = if stale { "stale" } else { h.state.as_str() };
                self.core.handle(
                    now,
                    DroneInput::Source {
                        state: state.to_owned(),
                        data_age: h.age(std::time::Instant::now()),
                    },
                );
            }
            PipelineEvent::Stalled(state) => {
                tracing::warn!(
                    state = state.as_str(),
                    "no samples from the source; its records will be marked stale"
                );
            }
            PipelineEvent::End => return true,
        }
        false
    }

    fn link_event(&mut self, ev: ClientEvent) {
        let now = unix_now();
        let input = match ev {
            ClientEvent::Connected {
                peer,
                resume_seq,
                rssi_units,
                ..
            } => {
                tracing::info!(%peer, resume_seq, "connected to the ground");
                self.ground_name = Some(peer.as_str().to_owned());
                DroneInput::LinkUp {
                    ground: peer,
                    units: rssi_units,
                }
            }
            ClientEvent::Disconnected {
                cause, retry_in, ..
            } => {
                if self.core.link().is_some() {
                    tracing::warn!(%cause, "lost the ground; deciding on the drone's own receiver");
                }
                tracing::debug!(%cause, ?retry_in, "not connected");
                DroneInput::LinkDown
            }
            ClientEvent::LinkState(s) => DroneInput::LinkState(s),
            ClientEvent::Rtt(r) => {
                if let Some(web) = &mut self.web {
                    web.jitter.observe(r);
                    let stats = LinkStats {
                        rtt: r,
                        loss_ratio: 0.0,
                        jitter: web.jitter.jitter(),
                    };
                    web.quality = Some(assess(&stats, &QualityConfig::default()).score.value());
                }
                DroneInput::Rtt(r)
            }
            ClientEvent::AdviseRate(hz) => DroneInput::AdviseRate(hz),
            ClientEvent::Command(cmd) => DroneInput::Command(cmd),
            ClientEvent::Samples { seq, records } => {
                let now_ns = crate::record::unix_ns();
                for r in &records {
                    let age = now_ns.saturating_sub(r.timestamp_ns).max(0);
                    self.ground_latency
                        .record(Duration::from_nanos(u64::try_from(age).unwrap_or(0)));
                }
                self.core.handle(
                    now,
                    DroneInput::GroundRecords {
                        seq,
                        records: &records,
                    },
                );
                return;
            }
            _ => return,
        };
        self.core.handle(now, input);
    }

    /// Carries out what the core asked for.
    fn drain(&mut self) -> anyhow::Result<()> {
        let mut wrote = false;
        while let Some(out) = self.core.poll_output() {
            match out {
                DroneOutput::Sample(record) => {
                    self.client.push_sample(record);
                }
                DroneOutput::Send(message) => {
                    self.client.send(message);
                }
                DroneOutput::Write(entry) => {
                    if let Some(o) = &mut self.output {
                        o.write(&entry);
                        wrote = true;
                    }
                }
                DroneOutput::Control(control) => {
                    if !self.receiver.control(control) {
                        tracing::warn!(?control, "receiver busy; setting not applied");
                    }
                }
                DroneOutput::Event(event) => {
                    self.vehicle_event(&event);
                    log_event(&event);
                    if let Some(web) = &mut self.web {
                        alert(&mut web.board, &web.node, &event);
                    }
                }
            }
        }
        if wrote {
            if let Some(o) = &mut self.output {
                // A full card must not stop a flying drone: it keeps measuring, streaming
                // and deciding, and says so once until writing works again.
                let was_broken = o.is_broken();
                let before = self.output_errors;
                match o.commit() {
                    Err(e) => {
                        self.output_errors += 1;
                        if !was_broken {
                            tracing::error!(error = %e, cause = %error_cause(&e), "the flight recorder cannot be written; lines are dropped until it can");
                        }
                    }
                    Ok(()) => {
                        self.output_errors = 0;
                        if was_broken {
                            tracing::warn!("the flight recorder is written again");
                        }
                    }
                }
                if self.output_errors != before {
                    let n = self.output_errors;
                    self.core.handle(unix_now(), DroneInput::OutputErrors(n));
                    // The alert it may raise is drained on the next pass.
                }
            }
        }
        let counters = self.client.counters().snapshot();
        let mut v = self.view.lock();
        v.own = self.core.own_latest().copied();
        v.ground = self.core.ground_latest().copied();
        v.decision = self.core.decision().cloned();
        v.link = self.core.link();
        v.rtt = self.core.rtt();
        v.stats.clone_from(self.core.stats());
        v.rate_hz = self.core.current_rate_hz();
        v.backlog = counters.backlog;
        v.resent = counters.samples_resent;
        if let Some(vehicle) = &self.vehicle {
            v.vehicle = Some(vehicle.tracker.state().clone());
            v.vehicle_safety = vehicle.safety;
        }
        Ok(())
    }

    /// A message from the MAVLink network.
    fn vehicle_message(&mut self, m: &Inbound) {
        let Some(v) = &mut self.vehicle else { return };
        let changed = v
            .tracker
            .handle(unix_now(), m.system_id, m.component_id, &m.message);
        if changed.found {
            if let Some(id) = v.tracker.state().system_id {
                tracing::info!(system_id = id, "found the vehicle");
                v.link.set_system_id(id);
            }
        }
        if changed.rules {
            self.vehicle_step();
        }
    }

    /// Applies the vehicle rules, reports changes, and sends what the telemetry has due.
    fn vehicle_step(&mut self) {
        let extras = self.core.is_enabled(DroneFeature::MavlinkExtras);
        let Some(v) = &mut self.vehicle else { return };
        v.telemetry.set_extras(extras);
        let now = unix_now();
        let boot = since_start();
        // Take whatever else the port delivered first.
        while let Ok(m) = v.link.events().try_recv() {
            let changed = v
                .tracker
                .handle(now, m.system_id, m.component_id, &m.message);
            if changed.found {
                if let Some(id) = v.tracker.state().system_id {
                    tracing::info!(system_id = id, "found the vehicle");
                    v.link.set_system_id(id);
                }
            }
        }
        let state = v.tracker.state();
        let lost = state.is_lost(now);
        if lost != v.lost {
            v.lost = lost;
            if lost {
                tracing::warn!(
                    "vehicle lost: no heartbeat for 3 s; ground commands that alter measuring are refused"
                );
                v.telemetry.text(
                    boot,
                    TextKind::Vehicle,
                    MavSeverity::MAV_SEVERITY_CRITICAL,
                    "SAR: vehicle lost",
                );
            } else {
                tracing::warn!("vehicle heard again");
            }
        }
        let safety = vehicle_safety(state, &v.rules, now);
        if safety != v.safety {
            v.safety = safety;
            self.core.set_vehicle_safety(now, safety);
            let names: Vec<&str> = safety.iter().map(|l| l.as_str()).collect();
            let mode = state.mode.as_ref().map_or("unknown", |m| m.as_str());
            if safety.is_nominal() {
                tracing::warn!(mode, "vehicle safety clear: ground commands accepted again");
                v.telemetry.text(
                    boot,
                    TextKind::Vehicle,
                    MavSeverity::MAV_SEVERITY_NOTICE,
                    "SAR: vehicle safety clear",
                );
            } else {
                tracing::warn!(levels = %names.join(","), mode, "vehicle safety levels active");
                let text = format!("SAR: safety {}", names.join(","));
                v.telemetry.text(
                    boot,
                    TextKind::Vehicle,
                    MavSeverity::MAV_SEVERITY_WARNING,
                    &text,
                );
            }
        }
        v.telemetry.tick(boot);
        while let Some(msg) = v.telemetry.poll() {
            v.link.send(msg);
        }
    }

    /// An own record for the flight controller: its values, and a text when the beacon is
    /// detected or lost.
    fn vehicle_record(&mut self, record: &RssiRecord, detected: bool) {
        let active = self.core.decision().map(|d| d.source_id);
        let Some(v) = &mut self.vehicle else { return };
        let boot = since_start();
        if detected != v.detected {
            v.detected = detected;
            let (severity, text) = if detected {
                (
                    MavSeverity::MAV_SEVERITY_NOTICE,
                    format!("SAR: beacon detected {:.1}", record.rssi_dbm.get()),
                )
            } else {
                (
                    MavSeverity::MAV_SEVERITY_WARNING,
                    "SAR: beacon lost".to_owned(),
                )
            };
            v.telemetry.text(boot, TextKind::Detection, severity, &text);
        }
        v.telemetry.record(boot, record, active, detected);
        while let Some(msg) = v.telemetry.poll() {
            v.link.send(msg);
        }
    }

    /// Core events the flight controller's operator should see: fallback, recovery and
    /// refused commands.
    fn vehicle_event(&mut self, event: &DroneEvent) {
        let own = self.core.safety();
        let Some(v) = &mut self.vehicle else { return };
        let boot = since_start();
        match event {
            DroneEvent::Decision(d) => {
                if d.fallback && !v.fallback {
                    let text = format!("SAR: fallback to drone rx ({})", d.reason);
                    v.telemetry.text(
                        boot,
                        TextKind::Fallback,
                        MavSeverity::MAV_SEVERITY_WARNING,
                        &text,
                    );
                } else if !d.fallback && v.fallback {
                    let text = format!("SAR: recovered, homing on {}", source_name(d.source_id));
                    v.telemetry.text(
                        boot,
                        TextKind::Recovery,
                        MavSeverity::MAV_SEVERITY_INFO,
                        &text,
                    );
                }
                v.fallback = d.fallback;
            }
            DroneEvent::Refused { cmd, ack } => {
                let combined = SafetyState::from_bits(own.bits() | v.safety.bits()).unwrap_or(own);
                let why = match combined.authorize_cmd(cmd) {
                    Err(sarlink_coord::Refusal::Safety { level, .. })
                        if ack.code == Some(sarlink_schema::AckCode::Safety) =>
                    {
                        format!("safety {level}")
                    }
                    _ => ack.code.as_ref().map_or("", |c| c.as_str()).to_owned(),
                };
                let text = format!("SAR: {} {} refused: {why}", cmd.op.as_str(), cmd.id);
                v.telemetry.text(
                    boot,
                    TextKind::Refused,
                    MavSeverity::MAV_SEVERITY_WARNING,
                    &text,
                );
            }
            _ => {}
        }
        while let Some(msg) = v.telemetry.poll() {
            v.link.send(msg);
        }
    }
}

fn error_cause(e: &dyn std::error::Error) -> String {
    e.source().map_or_else(String::new, ToString::to_string)
}

/// Puts what the operator should see of `event` on the dashboard's alert list.
fn alert(board: &mut Dashboard, node: &str, event: &DroneEvent) {
    let now = unix_now();
    match event {
        DroneEvent::Refused { cmd, ack } => {
            let code = ack.code.as_ref().map_or("?", |c| c.as_str());
            let reason = ack.reason.as_deref().unwrap_or("");
            let text = format!(
                "command {} {} refused ({code}): {reason}",
                cmd.id,
                cmd.op.as_str()
            );
            board.alert(now, node, Severity::Warning, text);
        }
        DroneEvent::Alert(a) => {
            let severity = match a.severity {
                sarlink_monitor::thresholds::Severity::Critical => Severity::Critical,
                sarlink_monitor::thresholds::Severity::Warning => Severity::Warning,
                sarlink_monitor::thresholds::Severity::Cleared => Severity::Info,
            };
            board.alert(now, node, severity, format!("alert: {a}"));
        }
        DroneEvent::Degradation {
            event,
            features,
            level,
            readings,
        } => {
            let severity = if matches!(
                event.action,
                sarlink_monitor::degradation::Action::Enable(_)
            ) {
                Severity::Info
            } else {
                Severity::Warning
            };
            let text = degradation_text(event, features, level, readings);
            board.alert(now, node, severity, text);
        }
        _ => {}
    }
}

/// The log line of a degradation change: what, the features by name, the new level, and
/// the readings that caused it.
pub(crate) fn log_degradation(
    event: &sarlink_monitor::degradation::Event,
    features: &[&str],
    level: &str,
    readings: &sarlink_monitor::degradation::Readings,
) {
    use sarlink_monitor::degradation::Action;
    let readings = readings_text(readings);
    let cause = format!("{:?}", event.cause).to_lowercase();
    match event.action {
        Action::Disable(_) => tracing::warn!(
            features = %features.join(","),
            level,
            %cause,
            %readings,
            "degradation: shedding"
        ),
        Action::Enable(_) => tracing::warn!(
            features = %features.join(","),
            level,
            %cause,
            %readings,
            "degradation: restoring"
        ),
        Action::SetReportRate { hz } => tracing::warn!(
            thermal_rate_hz = hz,
            level,
            %cause,
            %readings,
            "degradation: thermal level changed"
        ),
    }
}

/// The log line of an alert: raised ones as warnings, clears as info.
pub(crate) fn log_alert(a: &sarlink_monitor::thresholds::Alert) {
    use sarlink_monitor::thresholds::Severity as S;
    let severity = match a.severity {
        S::Warning => "warning",
        S::Critical => "critical",
        S::Cleared => "cleared",
    };
    if a.severity == S::Cleared {
        tracing::warn!(
            kind = a.kind.as_str(),
            severity,
            value = a.value,
            limit = a.limit,
            unit = a.kind.unit(),
            "alert cleared: {a}"
        );
    } else {
        tracing::warn!(
            kind = a.kind.as_str(),
            severity,
            value = a.value,
            limit = a.limit,
            unit = a.kind.unit(),
            "alert raised: {a}"
        );
    }
}

fn log_event(event: &DroneEvent) {
    match event {
        DroneEvent::Decision(d) => tracing::info!(
            source = d.source_id.get(),
            fallback = d.fallback,
            reason = %d.reason,
            "decision"
        ),
        DroneEvent::Refused { cmd, ack } => tracing::warn!(
            id = cmd.id,
            op = cmd.op.as_str(),
            code = ack.code.as_ref().map_or("", |c| c.as_str()),
            reason = ack.reason.as_deref().unwrap_or(""),
            "command refused"
        ),
        DroneEvent::Accepted { cmd } => {
            tracing::info!(id = cmd.id, op = cmd.op.as_str(), "command carried out");
        }
        DroneEvent::Safety(s) => tracing::info!(state = ?s, "safety state"),
        DroneEvent::Degradation {
            event,
            features,
            level,
            readings,
        } => log_degradation(event, features, level, readings),
        DroneEvent::Alert(a) => log_alert(a),
        DroneEvent::Deviation { metric, deviation } => tracing::info!(
            ?metric,
            value = deviation.value,
            mean = deviation.mean,
            sigmas = deviation.sigmas,
            "off its baseline"
        ),
    }
}

fn source_name(id: SourceId) -> &'static str {
    if id == SourceId::DRONE {
        "drone"
    } else if id == SourceId::GROUND {
        "ground"
    } else {
        "other"
    }
}

/// One status line: both receivers, the decision, the link.
pub fn status_line(v: &DroneStatus, elapsed: Duration) -> String {
    let rx = |r: Option<&RssiRecord>| {
        r.map_or_else(
            || "-".to_owned(),
            |r| {
                format!(
                    "{:.1} (snr {:.1})",
                    r.rssi_dbm.get(),
                    r.snr_db.map_or(f32::NAN, |s| s.get())
                )
            },
        )
    };
    let link = match (v.link, v.rtt) {
        (Some(LinkState::Healthy), Some(rtt)) => {
            format!("link ok rtt {:.1} ms", rtt.as_secs_f64() * 1e3)
        }
        (Some(state), _) => format!("link {state:?}").to_lowercase(),
        (None, _) => format!("no ground ({} waiting)", v.backlog),
    };
    let decision = v.decision.as_ref().map_or_else(
        || "-".to_owned(),
        |d| {
            format!(
                "{}{} ({})",
                source_name(d.source_id),
                if d.fallback { " FALLBACK" } else { "" },
                d.reason
            )
        },
    );
    let source = match &v.source {
        Some(h) => {
            let age = h.age(std::time::Instant::now()).map_or_else(
                || "no data yet".to_owned(),
                |a| format!("data {:.1} s old", a.as_secs_f64()),
            );
            format!(
                " | source {} {age}, {:.0} % of real time, {} reconnects",
                h.state.as_str(),
                h.rate_ratio() * 100.0,
                h.reconnects
            )
        }
        None => String::new(),
    };
    let vehicle = match &v.vehicle {
        None => String::new(),
        Some(s) if s.is_lost(crate::record::unix_now()) => " | vehicle LOST".to_owned(),
        Some(s) => {
            let levels: Vec<&str> = v.vehicle_safety.iter().map(|l| l.as_str()).collect();
            format!(
                " | vehicle {} {}{}{}",
                s.mode.as_ref().map_or("?", |m| m.as_str()),
                if s.armed { "armed" } else { "disarmed" },
                s.battery_pct
                    .map_or_else(String::new, |p| format!(" {p} %")),
                if levels.is_empty() {
                    String::new()
                } else {
                    format!(" SAFETY {}", levels.join(","))
                }
            )
        }
    };
    format!(
        "[{:>6.1}s] own {}{} | ground {} | active {decision} | {link} | {:.0} reports/s (target {} Hz){source}{vehicle}",
        elapsed.as_secs_f64(),
        rx(v.own.as_ref()),
        if v.stale { " STALE" } else { "" },
        rx(v.ground.as_ref()),
        v.reports_per_s,
        v.rate_hz
    )
}
