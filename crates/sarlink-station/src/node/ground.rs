//! The ground station's driver: the link server, the own receiver, the output and the
//! metrics around a [`GroundCore`].

use std::net::SocketAddr;
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
use crate::ground::{GroundCore, GroundEvent, GroundInput, GroundOutput};
use crate::metrics_http::MetricsServer;
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
                "sarlink_ground_link_rtt",
                "Ping round-trip time of drone links.",
                &[],
            )?,
            latency: registry.histogram(
                "sarlink_ground_record_latency",
                "Time from a record's timestamp to its output line.",
                &[],
            )?,
            step: registry.histogram(
                "sarlink_ground_step",
                "Time to process one batch of link events and write their output.",
                &[],
            )?,
            latency_local: LocalHistogram::new(),
            window_latency: LocalHistogram::new(),
            registry,
        })
    }
}

/// A running ground station: server, optional own receiver, output, metrics, core.
pub struct GroundNode {
    server: Server,
    core: GroundCore,
    output: Output,
    fsync: Option<Duration>,
    /// Committed to the OS but not yet synced (with `fsync`), since this instant.
    unsynced: Option<Instant>,
    own: Option<ReceiverThread>,
    metrics: Metrics,
    _http: Option<MetricsServer>,
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
        // A record is acknowledged to its drone only once the output has it.
        session.confirm_delivery = true;
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
        let http = match &settings.metrics {
            Some(addr) => Some(
                MetricsServer::start(addr, metrics.registry.clone())
                    .with_context(|| format!("metrics on {addr}"))?,
            ),
            None => None,
        };
        metrics.output_ok.set(1.0);
        Ok(GroundNode {
            core,
            server,
            output,
            fsync: settings.fsync,
            unsynced: None,
            own,
            metrics,
            _http: http,
        })
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
            let mut until = deadline;
            if let (Some(since), Some(every)) = (self.unsynced, self.fsync) {
                until = until.min(since + every);
            }
            let wait = until.saturating_duration_since(Instant::now());
            let never = crossbeam_channel::never();
            let own = self.own.as_ref().map_or(&never, |o| o.events());
            select! {
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
            self.drain();
            if let (Some(since), Some(every)) = (self.unsynced, self.fsync) {
                if since.elapsed() >= every {
                    self.unsynced = None;
                    let result = self.output.sync();
                    self.written(result);
                    self.drain();
                }
            }
            if Instant::now() >= deadline {
                return Ok(());
            }
        }
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
            match out {
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
                GroundOutput::Confirm {
                    conn,
                    node,
                    stream,
                    upto,
                } => {
                    self.server.confirm(conn, &node, stream, upto);
                }
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
                GroundOutput::RelaySample { role, record } => {
                    self.server.broadcast_sample(role, record);
                }
                GroundOutput::Event(GroundEvent::Decision { node, decision }) => {
                    tracing::info!(%node, source = decision.source_id.get(), fallback = decision.fallback, reason = %decision.reason, "decision");
                }
                GroundOutput::Event(GroundEvent::Refused { node, ack }) => {
                    tracing::warn!(%node, id = ack.id, reason = ack.reason.as_deref().unwrap_or(""), "command refused");
                }
            }
        }
        if wrote {
            let result = self.output.commit();
            match (result, self.fsync) {
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

    /// Flushes the output and closes every connection with `bye shutdown`.
    pub fn shutdown(mut self) {
        let _ = self.output.commit();
        let _ = self.output.sync();
        self.own = None;
        self.server.shutdown();
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
                for line in status_lines(&ground, start.elapsed()) {
                    eprintln!("{line}");
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
