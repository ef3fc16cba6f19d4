//! `sarlink-drone`: measures a beacon's RSSI from an I/Q source and streams it to the
//! ground station. This library is the binary's wiring, kept here so tests can reach it:
//! [`Cli`] and [`DroneConfig::resolve`] turn the command line, `SARLINK_*` variables and a
//! TOML file into a configuration; [`run`] runs the drone until told to stop.

#![forbid(unsafe_code)]

#[path = "../../common/layered.rs"]
pub mod layered;
#[path = "../../common/record.rs"]
pub mod record;
#[path = "../../common/source.rs"]
pub mod source;
#[path = "../../common/units.rs"]
pub mod units;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sarlink_link::driver::{Client, ClientConfig, ClientEvent};
use sarlink_link::{LinkState, PreSharedKey, SessionConfig};
use sarlink_monitor::degradation::{
    Action, ControllerConfig, DegradationController, FeatureId, Priority, Readings,
};
use sarlink_monitor::resources::ResourceSampler;
use sarlink_schema::{
    Ack, AckCode, Cmd, CmdOp, Message, NodeName, Role, RssiRecord, RssiUnits, SourceId, Status,
};
use sarlink_sdr::{Estimator, EstimatorConfig, Gain, IqBlock, ReadStatus};

use crate::layered::{ConfigError, Layers};
use crate::record::{to_record, unix_ns};
use crate::source::{SourceSpec, Tuning};

/// Default ground station address.
pub const DEFAULT_CONNECT: &str = "127.0.0.1:7355";
/// Default beacon frequency: 406.028 MHz, a COSPAS-SARSAT distress channel.
pub const DEFAULT_FREQUENCY_HZ: u64 = 406_028_000;
/// Frequencies an RTL-SDR (R820T/R828D tuner) can receive.
pub const TUNABLE_HZ: std::ops::RangeInclusive<u64> = 24_000_000..=1_766_000_000;
/// RSSI report rates a command may ask for.
pub const RATE_RANGE_HZ: std::ops::RangeInclusive<f32> = 0.1..=50.0;

/// The drone's command line. Every option can also be given as `SARLINK_<OPTION>` in the
/// environment or as `option = value` in the `--config` TOML file; the command line wins,
/// then the environment, then the file, then the default.
#[derive(Debug, Clone, Default, clap::Parser)]
#[command(
    name = "sarlink-drone",
    version,
    about = "Measure a distress beacon's RSSI and stream it to a sarlink ground station"
)]
pub struct Cli {
    /// Ground station address, HOST:PORT [default: 127.0.0.1:7355]
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Option<String>,
    /// This drone's node name (1-64 bytes) [default: drone]
    #[arg(long)]
    pub node: Option<String>,
    /// I/Q source: sim, file:PATH, rtl_tcp:HOST:PORT, rtlsdr or rtlsdr:INDEX [default: sim]
    #[arg(long)]
    pub source: Option<String>,
    /// Beacon frequency, e.g. 406.028e6 or 121.5M [default: 406.028 MHz; a recording keeps its own]
    #[arg(long)]
    pub frequency: Option<String>,
    /// Sample rate for sources that can set it, e.g. 2.4M [default: 1.024M]
    #[arg(long)]
    pub sample_rate: Option<String>,
    /// Tuner gain in dB, or `auto` [default: auto]
    #[arg(long)]
    pub gain: Option<String>,
    /// RSSI reports per second [default: 10]
    #[arg(long)]
    pub rate: Option<String>,
    /// File holding the pre-shared key (at least 16 bytes)
    #[arg(long)]
    pub key_file: Option<String>,
    /// Payloads above this many bytes are LZ4-compressed [default: 1024]
    #[arg(long)]
    pub compression_threshold: Option<String>,
    /// dBm = dBFS + this offset at the configured gain; without it RSSI is sent in dBFS
    #[arg(long, allow_negative_numbers = true)]
    pub calibration_db: Option<String>,
    /// Stop after this many seconds [default: run until SIGINT/SIGTERM]
    #[arg(long)]
    pub seconds: Option<String>,
    /// No status line on stderr
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the resolved configuration (and where each value came from) and exit
    #[arg(long)]
    pub print_config: bool,
    /// TOML file with any of the options above
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Keys a configuration file may hold.
pub const FILE_KEYS: &[&str] = &[
    "connect",
    "node",
    "source",
    "frequency",
    "sample_rate",
    "gain",
    "rate",
    "key_file",
    "compression_threshold",
    "calibration_db",
    "seconds",
    "quiet",
];

/// The drone's resolved configuration.
#[derive(Debug, Clone)]
pub struct DroneConfig {
    /// Ground station, HOST:PORT.
    pub connect: String,
    /// Node name.
    pub node: NodeName,
    /// I/Q source.
    pub source: SourceSpec,
    /// Beacon frequency (`None`: a recording's own centre; a tunable source: the default).
    pub frequency_hz: Option<u64>,
    /// Sample rate for sources that can set it.
    pub sample_rate_hz: u32,
    /// Tuner gain.
    pub gain: Gain,
    /// RSSI reports per second.
    pub rate_hz: f32,
    /// Pre-shared key.
    pub key: Option<PreSharedKey>,
    /// LZ4 threshold in bytes.
    pub compression_threshold: usize,
    /// dBFS -> dBm offset.
    pub calibration_db: Option<f32>,
    /// Run time limit.
    pub seconds: Option<f64>,
    /// No status line.
    pub quiet: bool,
}

impl DroneConfig {
    /// Resolves every option from the command line, the environment and the file.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key, its value and where it came from.
    pub fn resolve(cli: &Cli, layers: &Layers) -> Result<DroneConfig, ConfigError> {
        layers.check_file_keys(FILE_KEYS)?;
        let connect = layers
            .get_with(
                "connect",
                cli.connect.clone(),
                || DEFAULT_CONNECT.to_owned(),
                units::parse_host_port,
            )?
            .0;
        let node = layers
            .get_with(
                "node",
                cli.node.clone(),
                || NodeName::new("drone").expect("valid"),
                |s| NodeName::new(s).map_err(|e| e.to_string()),
            )?
            .0;
        let source = layers.get("source", cli.source.clone(), SourceSpec::Sim)?;
        let frequency_hz = layers
            .get_with(
                "frequency",
                cli.frequency.clone(),
                || None,
                |s| units::parse_hz_u64(s).map(Some),
            )?
            .0;
        let sample_rate_hz = layers
            .get_with(
                "sample_rate",
                cli.sample_rate.clone(),
                || 1_024_000,
                units::parse_sample_rate,
            )?
            .0;
        let gain = layers
            .get_with("gain", cli.gain.clone(), || Gain::Auto, units::parse_gain)?
            .0;
        let rate_hz = layers
            .get_with(
                "rate",
                cli.rate.clone(),
                || 10.0,
                |s| {
                    let hz: f32 = s.parse().map_err(|_| "not a number".to_owned())?;
                    if RATE_RANGE_HZ.contains(&hz) {
                        Ok(hz)
                    } else {
                        Err("must be 0.1 to 50 reports per second".to_owned())
                    }
                },
            )?
            .0;
        let key = layers
            .get_with(
                "key_file",
                cli.key_file.clone(),
                || None,
                |s| units::parse_key_file(s).map(Some),
            )?
            .0;
        let compression_threshold = layers.get(
            "compression_threshold",
            cli.compression_threshold.clone(),
            1024usize,
        )?;
        let calibration_db = layers.get_opt::<f32>("calibration_db", cli.calibration_db.clone())?;
        let seconds = layers
            .get_with(
                "seconds",
                cli.seconds.clone(),
                || None,
                |s| units::parse_seconds(s).map(Some),
            )?
            .0;
        let quiet = cli.quiet || layers.get("quiet", None, false)?;
        Ok(DroneConfig {
            connect,
            node,
            source,
            frequency_hz,
            sample_rate_hz,
            gain,
            rate_hz,
            key,
            compression_threshold,
            calibration_db,
            seconds,
            quiet,
        })
    }
}

/// What a run did, for the exit message and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// RSSI reports produced.
    pub reports: u64,
    /// Samples handed to the link.
    pub streamed: u64,
    /// Commands received.
    pub commands: u64,
    /// Successful connections to the ground.
    pub connections: u64,
}

/// Features the degradation controller may shed, most important first.
struct Features {
    status: FeatureId,
    smoothing: FeatureId,
    status_line: FeatureId,
}

/// The drone's mutable state between blocks.
struct Drone {
    estimator: Estimator,
    est_config: EstimatorConfig,
    channel_offset_hz: f64,
    rate_hz: f32,
    advised_hz: f32,
    shed_hz: f32,
    streaming: bool,
    connected: bool,
    link: LinkState,
    rtt: Option<Duration>,
    last: Option<RssiRecord>,
    summary: Summary,
}

/// Builds the estimator for a source and rate.
fn estimator_config(
    sample_rate_hz: u32,
    center_hz: u64,
    offset_hz: f64,
    rate_hz: f32,
    gain: Gain,
    calibration_db: Option<f32>,
) -> EstimatorConfig {
    let interval = Duration::from_secs_f32(1.0 / rate_hz);
    let mut c = EstimatorConfig::new(sample_rate_hz)
        .center_frequency_hz(center_hz)
        .channel(offset_hz, 10_000.0)
        .report_interval(interval)
        .gain(gain);
    if let Some(offset) = calibration_db {
        c = c.calibrate(gain, offset);
    }
    c
}

/// Runs the drone until `stop` is set (or `seconds` pass).
///
/// # Errors
/// When the source cannot be opened or fails for good, or the link cannot start.
pub fn run(config: &DroneConfig, stop: &AtomicBool) -> anyhow::Result<Summary> {
    let tuning = Tuning {
        beacon_hz: config.frequency_hz.or(match config.source {
            SourceSpec::File(_) => None,
            _ => Some(DEFAULT_FREQUENCY_HZ),
        }),
        sample_rate_hz: config.sample_rate_hz,
        gain: config.gain,
        tuning_offset_hz: 100_000.0_f64.min(f64::from(config.sample_rate_hz) / 4.0),
        seed: rand::random(),
    };
    let opened = source::open(&config.source, &tuning).map_err(anyhow::Error::msg)?;
    let mut src = opened.source;
    let sample_rate = src.sample_rate_hz();
    let est_config = estimator_config(
        sample_rate,
        src.center_frequency_hz(),
        opened.channel_offset_hz,
        config.rate_hz,
        config.gain,
        config.calibration_db,
    );
    let estimator = Estimator::new(est_config.clone()).context("estimator configuration")?;
    let units = if config.calibration_db.is_some() {
        RssiUnits::Dbm
    } else {
        RssiUnits::Dbfs
    };

    let mut session = SessionConfig::new(Role::Drone, config.node.clone(), rand::random());
    session.key = config.key.clone();
    session.compression_threshold = config.compression_threshold;
    session.rssi_units = Some(units);
    let client = Client::spawn(ClientConfig::new(session, config.connect.clone()))
        .context("starting the link")?;

    let mut controller = DegradationController::new(ControllerConfig::default());
    let features = Features {
        status: controller.register("status", Priority::EssentialOperation, false)?,
        smoothing: controller.register("smoothing", Priority::Optimisation, false)?,
        status_line: controller.register("status-line", Priority::Convenience, false)?,
    };
    controller.register("rssi-stream", Priority::CriticalSafety, true)?;
    let mut sampler = ResourceSampler::new();

    let mut drone = Drone {
        estimator,
        est_config,
        channel_offset_hz: opened.channel_offset_hz,
        rate_hz: config.rate_hz,
        advised_hz: 10.0,
        shed_hz: 10.0,
        streaming: true,
        connected: false,
        link: LinkState::Healthy,
        rtt: None,
        last: None,
        summary: Summary::default(),
    };
    // About 20 ms of samples per block, a whole number of FFT frames.
    let block_len = ((sample_rate as usize / 50) / 1024).max(1) * 1024;
    let mut block = IqBlock::with_capacity(block_len);
    let mut pacer = opened
        .is_sim
        .then(|| sarlink_sdr::pacing::Pacer::new(sample_rate));
    let start = Instant::now();
    let mut next_second = start + Duration::from_secs(1);
    let deadline = config.seconds.map(|s| start + Duration::from_secs_f64(s));
    let mut source_errors = 0u32;

    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        match src.read_block(&mut block) {
            Ok(ReadStatus::Data) => source_errors = 0,
            Ok(ReadStatus::End) => break,
            Err(e) => {
                source_errors += 1;
                tracing::warn!(error = %e, "source read failed");
                if source_errors > 50 {
                    return Err(anyhow::Error::new(e).context("the source keeps failing"));
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        if let Some(p) = &mut pacer {
            p.wait(block.len());
        }
        let mut reports = [None; 8];
        let mut n = 0;
        drone.estimator.process_block(&block, |r| {
            if n < reports.len() {
                reports[n] = Some(*r);
                n += 1;
            }
        })?;
        for report in reports.iter().flatten() {
            drone.summary.reports += 1;
            if let Some(record) = to_record(report, unix_ns(), SourceId::DRONE) {
                drone.last = Some(record);
                if drone.streaming && client.push_sample(record) {
                    drone.summary.streamed += 1;
                }
            }
        }
        for event in client.events().try_iter() {
            handle_event(&mut drone, &mut *src, &client, event, config);
        }
        let now = Instant::now();
        if now >= next_second {
            next_second += Duration::from_secs(1);
            let readings = sampler.sample(now - start).ok();
            let r = readings.unwrap_or_default();
            let events = controller
                .step(
                    now - start,
                    Readings {
                        cpu: r.process_cpu,
                        memory: r.system_memory,
                        temperature: r.cpu_temperature,
                    },
                )
                .to_vec();
            for event in events {
                tracing::info!(%event, "degradation");
                if let Action::SetReportRate { hz } = event.action {
                    drone.shed_hz = hz as f32;
                    apply_rate(&mut drone);
                }
            }
            let smoothing = controller.is_enabled(features.smoothing);
            if drone.est_config.clone().ewma(smoothing.then_some(0.3)) != drone.est_config {
                drone.est_config = drone.est_config.clone().ewma(smoothing.then_some(0.3));
                if let Ok(e) = Estimator::new(drone.est_config.clone()) {
                    drone.estimator = e;
                }
            }
            let disabled: Vec<String> = controller
                .disabled()
                .iter()
                .filter_map(|id| controller.feature(id).map(|f| f.name.clone()))
                .collect();
            let counters = client.counters();
            let dropped = counters.samples_dropped.load(Ordering::Relaxed)
                + counters.samples_refused.load(Ordering::Relaxed);
            let queued = counters.backlog.load(Ordering::Relaxed);
            if controller.is_enabled(features.status) && drone.connected {
                client.send(Message::Status(Status {
                    t_ns: unix_ns(),
                    cpu_pct: r.process_cpu.map_or(0.0, |p| p.value() as f32),
                    mem_bytes: r.rss_bytes.unwrap_or(0),
                    temp_c: r.cpu_temperature.map(|c| c.value() as f32),
                    level: controller.shed_from().map_or_else(
                        || "normal".to_owned(),
                        |p| format!("shedding-{}", p.class()),
                    ),
                    disabled,
                    dropped,
                    queued: u32::try_from(queued).unwrap_or(u32::MAX),
                    rate_hz: current_rate(&drone),
                }));
            }
            if !config.quiet && controller.is_enabled(features.status_line) {
                eprintln!(
                    "{}",
                    status_line(
                        &drone,
                        now - start,
                        queued,
                        dropped,
                        r.process_cpu.map(|p| p.value())
                    )
                );
            }
        }
    }
    drone.summary.connections = client.counters().connections.load(Ordering::Relaxed);
    client.close();
    Ok(drone.summary)
}

fn current_rate(d: &Drone) -> f32 {
    d.rate_hz.min(d.advised_hz).min(d.shed_hz)
}

fn apply_rate(d: &mut Drone) {
    let interval = Duration::from_secs_f32(1.0 / current_rate(d));
    let config = d.est_config.clone().report_interval(interval);
    if config != d.est_config {
        if let Ok(e) = Estimator::new(config.clone()) {
            d.est_config = config;
            d.estimator = e;
        }
    }
}

fn status_line(
    d: &Drone,
    elapsed: Duration,
    queued: u64,
    dropped: u64,
    cpu: Option<f64>,
) -> String {
    let link = if d.connected {
        match (d.link, d.rtt) {
            (LinkState::Healthy, Some(rtt)) => {
                format!("link ok rtt {:.1} ms", rtt.as_secs_f64() * 1e3)
            }
            (state, _) => format!("link {state:?}").to_lowercase(),
        }
    } else {
        "drone-only (no ground)".to_owned()
    };
    let rssi = d.last.map_or_else(
        || "no report yet".to_owned(),
        |r| {
            format!(
                "rssi {:7.2} snr {:5.1} dB q {:3}",
                r.rssi_dbm.get(),
                r.snr_db.map_or(f32::NAN, |s| s.get()),
                r.quality_score.get()
            )
        },
    );
    format!(
        "[{:>6.1}s] {rssi} | {link} | {} Hz | queued {queued} dropped {dropped} | cpu {}",
        elapsed.as_secs_f64(),
        current_rate(d),
        cpu.map_or_else(|| "?".to_owned(), |c| format!("{c:.1}%"))
    )
}

fn handle_event(
    d: &mut Drone,
    src: &mut dyn sarlink_sdr::IqSource,
    client: &Client,
    event: ClientEvent,
    config: &DroneConfig,
) {
    match event {
        ClientEvent::Connected {
            peer, resume_seq, ..
        } => {
            d.connected = true;
            tracing::info!(%peer, resume_seq, "connected to the ground");
        }
        ClientEvent::Disconnected {
            reason, retry_in, ..
        } => {
            if d.connected {
                tracing::warn!(%reason, "lost the ground; measuring drone-only");
            }
            d.connected = false;
            tracing::debug!(%reason, ?retry_in, "not connected");
        }
        ClientEvent::LinkState(s) => d.link = s,
        ClientEvent::Rtt(r) => d.rtt = Some(r),
        ClientEvent::AdviseRate(hz) => {
            d.advised_hz = hz;
            apply_rate(d);
        }
        ClientEvent::Command(cmd) => {
            d.summary.commands += 1;
            let ack = apply_command(d, src, &cmd, config);
            tracing::info!(id = cmd.id, op = cmd.op.as_str(), ok = ack.ok, "command");
            client.send(Message::Ack(ack));
        }
        _ => {}
    }
}

/// Carries out a ground command on the source and estimator, or says why not.
fn apply_command(
    d: &mut Drone,
    src: &mut dyn sarlink_sdr::IqSource,
    cmd: &Cmd,
    config: &DroneConfig,
) -> Ack {
    let refuse_control = |e: sarlink_sdr::ControlError| match e {
        sarlink_sdr::ControlError::Unsupported { .. } => {
            Ack::refuse(cmd.id, AckCode::Unsupported, e.to_string())
        }
        other => Ack::refuse(cmd.id, AckCode::Range, other.to_string()),
    };
    match &cmd.op {
        CmdOp::Tune { frequency_hz } => {
            let hz = frequency_hz.get();
            if !TUNABLE_HZ.contains(&hz) {
                return Ack::refuse(
                    cmd.id,
                    AckCode::Range,
                    format!("{hz} Hz is outside 24-1766 MHz"),
                );
            }
            let center = (hz as f64 - d.channel_offset_hz).round() as u64;
            if let Err(e) = src.set_frequency(center) {
                return refuse_control(e);
            }
            d.est_config = d.est_config.clone().center_frequency_hz(center);
            d.estimator.set_center_frequency_hz(center);
            Ack::ok(cmd.id)
        }
        CmdOp::Gain { gain_db } => {
            if !(-10.0..=70.0).contains(gain_db) {
                return Ack::refuse(
                    cmd.id,
                    AckCode::Range,
                    format!("gain {gain_db} dB is outside -10 to 70"),
                );
            }
            if let Err(e) = src.set_gain(Gain::Db(*gain_db)) {
                return refuse_control(e);
            }
            d.estimator.set_gain(Gain::Db(*gain_db));
            Ack::ok(cmd.id)
        }
        CmdOp::GainAuto => match src.set_gain(Gain::Auto) {
            Ok(()) => {
                d.estimator.set_gain(Gain::Auto);
                Ack::ok(cmd.id)
            }
            Err(e) => refuse_control(e),
        },
        CmdOp::Rate { hz } => {
            if !RATE_RANGE_HZ.contains(hz) {
                return Ack::refuse(cmd.id, AckCode::Range, format!("{hz} Hz is outside 0.1-50"));
            }
            d.rate_hz = *hz;
            apply_rate(d);
            Ack::ok(cmd.id)
        }
        CmdOp::Stream { on } => {
            d.streaming = *on;
            Ack::ok(cmd.id)
        }
        other => {
            let _ = config;
            Ack::refuse(
                cmd.id,
                AckCode::Unsupported,
                format!("op {} is not supported", other.as_str()),
            )
        }
    }
}
