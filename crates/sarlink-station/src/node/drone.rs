//! The drone's driver: a receiver thread, the link client, the flight recorder and the
//! clock around a [`DroneCore`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crossbeam_channel::select;
use parking_lot::Mutex;
use sarlink_link::driver::{Backoff, Client, ClientConfig, ClientEvent};
use sarlink_link::{LinkState, SessionConfig};
use sarlink_monitor::metrics::{Histogram, HistogramSnapshot};
use sarlink_monitor::resources::ResourceSampler;
use sarlink_schema::{Decision, Role, RssiRecord, RssiUnits, SourceId};
use sarlink_sdr::{IqSource, SourceHealth};

use crate::config::{DEFAULT_FREQUENCY_HZ, DroneSettings};
use crate::drone::{
    Control, DroneConfig, DroneCore, DroneEvent, DroneInput, DroneOutput, DroneStats,
    ResourceSample,
};
use crate::output::Output;
use crate::pipeline::{
    DynSource, Measurement, PipelineConfig, PipelineEvent, ReceiverThread, tuning_offset_hz,
};
use crate::record::unix_now;
use crate::source::SourceSpec;
use crate::source::Tuning;

/// What the drone is doing, for status lines, the demo and tests (updated as it runs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DroneView {
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
}

impl Default for DroneOptions {
    fn default() -> Self {
        DroneOptions {
            backoff: Backoff::default(),
            status_every: Some(Duration::from_secs(1)),
        }
    }
}

/// A drone: receiver, link and core. [`DroneNode::run`] drives it.
#[derive(Debug)]
pub struct DroneNode {
    receiver: ReceiverThread,
    client: Client,
    core: DroneCore,
    output: Option<Output>,
    view: Arc<Mutex<DroneView>>,
    ground_latency: Histogram,
    options: DroneOptions,
    reports_this_second: u32,
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
        let receiver = ReceiverThread::spawn(measurement).context("starting the receiver")?;
        Ok(DroneNode {
            receiver,
            client,
            core,
            output,
            view: Arc::new(Mutex::new(DroneView::default())),
            ground_latency: Histogram::new(),
            options,
            reports_this_second: 0,
        })
    }

    /// A live view of the drone, updated as it runs.
    pub fn view(&self) -> Arc<Mutex<DroneView>> {
        Arc::clone(&self.view)
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
        let mut sampler = ResourceSampler::new();
        let mut next_second = start + Duration::from_secs(1);
        let mut next_status = self.options.status_every.map(|d| start + d);
        let result = loop {
            if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                break Ok(());
            }
            let now = unix_now();
            let wait = self
                .core
                .poll_timeout()
                .saturating_sub(now)
                .min(Duration::from_millis(100));
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
                default(wait) => {},
            }
            // Take whatever else is waiting before acting on it.
            while let Ok(ev) = self.client.events().try_recv() {
                self.link_event(ev);
            }
            self.core.handle(unix_now(), DroneInput::Tick);
            let now = Instant::now();
            if now >= next_second {
                next_second += Duration::from_secs(1);
                self.view.lock().reports_per_s = self.reports_this_second as f32;
                self.reports_this_second = 0;
                let r = sampler.sample(now - start).ok().unwrap_or_default();
                let sample = ResourceSample {
                    readings: sarlink_monitor::degradation::Readings {
                        cpu: r.system_cpu,
                        memory: r.system_memory,
                        temperature: r.cpu_temperature,
                    },
                    rss_bytes: r.rss_bytes,
                };
                self.core.handle(unix_now(), DroneInput::Resources(sample));
            }
            if let Err(e) = self.drain() {
                break Err(e);
            }
            if let Some(at) = next_status.filter(|at| now >= *at) {
                next_status = self.options.status_every.map(|d| at + d);
                if !quiet {
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
                self.core.handle(
                    now,
                    DroneInput::Measured {
                        record: m.record,
                        detected: m.detected,
                    },
                );
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
                peer, resume_seq, ..
            } => {
                tracing::info!(%peer, resume_seq, "connected to the ground");
                DroneInput::LinkUp { ground: peer }
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
            ClientEvent::Rtt(r) => DroneInput::Rtt(r),
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
                DroneOutput::Event(event) => log_event(&event),
            }
        }
        if wrote {
            if let Some(o) = &mut self.output {
                // A full card must not stop a flying drone: it keeps measuring, streaming
                // and deciding, and says so once until writing works again.
                let was_broken = o.is_broken();
                match o.commit() {
                    Err(e) if !was_broken => {
                        tracing::error!(error = %e, cause = %error_cause(&e), "the flight recorder cannot be written; lines are dropped until it can");
                    }
                    Ok(()) if was_broken => tracing::warn!("the flight recorder is written again"),
                    _ => {}
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
        Ok(())
    }
}

fn error_cause(e: &dyn std::error::Error) -> String {
    e.source().map_or_else(String::new, ToString::to_string)
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
        DroneEvent::Degradation(e) => tracing::info!(event = %e, "degradation"),
        DroneEvent::Alert(a) => tracing::warn!(
            metric = ?a.kind,
            severity = ?a.severity,
            value = a.value,
            limit = a.limit,
            "alert"
        ),
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
pub fn status_line(v: &DroneView, elapsed: Duration) -> String {
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
    format!(
        "[{:>6.1}s] own {}{} | ground {} | active {decision} | {link} | {:.0} reports/s (target {} Hz){source}",
        elapsed.as_secs_f64(),
        rx(v.own.as_ref()),
        if v.stale { " STALE" } else { "" },
        rx(v.ground.as_ref()),
        v.reports_per_s,
        v.rate_hz
    )
}
