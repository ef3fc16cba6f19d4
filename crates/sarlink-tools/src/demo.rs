//! `sarlink-ground demo`: the whole system in one process over real loopback TCP.
//!
//! A ground station with its own simulated receiver (1.5 km from the beacon), and a drone
//! (the real drone node and core) flying a search pattern toward the beacon with its own
//! simulated receiver, connected through a fault-injecting proxy. The drone receives the
//! ground's records and decides which receiver to home on. Near the middle the link goes
//! down for several seconds: the drone falls back to its own receiver, keeps measuring and
//! holds its samples; when the link returns it resends them and, after the hold-down,
//! recovers. Once a second the demo prints both receivers as the drone sees them, the
//! drone's choice and why, and the link; at the end, a summary.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sarlink_link::LinkState;
use sarlink_link::driver::Backoff;
use sarlink_schema::{NodeName, RssiRecord, SourceId};
use sarlink_sdr::source::sim::{SimConfig, Simulator};
use sarlink_sdr::{ControlError, Gain, IqBlock, IqSource, ReadStatus, SourceError};
use sarlink_station::config::{DroneSettings, GroundSettings};
use sarlink_station::node::drone::{DroneNode, DroneOptions, DroneSummary};
use sarlink_station::node::ground::GroundNode;
use sarlink_station::node::mavlink::SimFlight;
use sarlink_station::output::Format;
use sarlink_station::pipeline::{Measurement, PipelineConfig, ReceiverThread};
use sarlink_station::source::SourceSpec;
use sarlink_station::vehicle::MavlinkUrl;
use sarlink_testkit::proxy::FaultProxy;

/// Arguments of `sarlink-ground demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How long the demo flies
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Flight controller for the drone: `sim` for a simulated vehicle flying the same path
    /// towards the beacon (every record is then geotagged), or any `sarlink-drone --mavlink`
    /// URL
    #[arg(long, value_name = "URL")]
    pub mavlink: Option<MavlinkUrl>,
}

const BEACON_HZ: u64 = 406_028_000;
const SAMPLE_RATE_HZ: u32 = 250_000;
const OFFSET_HZ: f64 = 50_000.0;
const GROUND_DISTANCE_M: f64 = 1_500.0;

/// The drone's distance to the beacon at `t` of a flight lasting `total`: a lawnmower search
/// closing from 3 km to about 100 m, the legs swinging the range by +-15 %.
pub fn flight_distance_m(t: f64, total: f64) -> f64 {
    let progress = (t / total).clamp(0.0, 1.0);
    let closing = 3000.0 - 2900.0 * progress;
    closing * (1.0 + 0.15 * (std::f64::consts::TAU * t / 8.0).sin())
}

/// The drone's simulated receiver, moved along the flight as it is read.
#[derive(Debug)]
pub struct FlyingSim {
    sim: Simulator,
    start: Instant,
    total: f64,
}

impl IqSource for FlyingSim {
    fn read_block(&mut self, block: &mut IqBlock) -> Result<ReadStatus, SourceError> {
        self.sim.set_distance_m(flight_distance_m(
            self.start.elapsed().as_secs_f64(),
            self.total,
        ));
        self.sim.read_block(block)
    }
    fn sample_rate_hz(&self) -> u32 {
        self.sim.sample_rate_hz()
    }
    fn center_frequency_hz(&self) -> u64 {
        self.sim.center_frequency_hz()
    }
    fn set_frequency(&mut self, frequency_hz: u64) -> Result<(), ControlError> {
        self.sim.set_frequency(frequency_hz)
    }
    fn set_gain(&mut self, gain: Gain) -> Result<(), ControlError> {
        self.sim.set_gain(gain)
    }
    fn set_sample_rate(&mut self, sample_rate_hz: u32) -> Result<(), ControlError> {
        self.sim.set_sample_rate(sample_rate_hz)
    }
}

fn simulator(distance_m: f64, seed: u64) -> Simulator {
    Simulator::new(SimConfig {
        sample_rate_hz: SAMPLE_RATE_HZ,
        center_frequency_hz: BEACON_HZ - OFFSET_HZ as u64,
        beacon_offset_hz: OFFSET_HZ,
        distance_m,
        seed,
        ..SimConfig::default()
    })
}

/// What the demo measured, printed at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSummary {
    /// Samples the drone streamed.
    pub sent: u64,
    /// Records the ground received from the drone.
    pub received: u64,
    /// Samples the drone sent again after reconnecting.
    pub resent: u64,
    /// Samples streamed but never received.
    pub lost: u64,
    /// The drone's core: decisions, switches, fallbacks, recoveries.
    pub drone: DroneSummary,
    /// Fallbacks the ground heard the drone report.
    pub fallbacks_reported: u64,
    /// Link RTT percentiles, as the ground measured them.
    pub rtt_p50: Duration,
    /// Link RTT percentiles, as the ground measured them.
    pub rtt_p99: Duration,
    /// Peak resident memory of the process, bytes.
    pub peak_memory_bytes: Option<u64>,
    /// Lines printed with a geotagged own record (with `--mavlink`).
    pub geotagged_lines: u64,
}

fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn fmt_source(r: Option<&RssiRecord>) -> String {
    r.map_or_else(
        || format!("{:>27}", "(no data)"),
        |r| {
            format!(
                "{:7.1} dBFS snr {:5.1} q {:3}",
                r.rssi_dbm.get(),
                r.snr_db.map_or(f32::NAN, |s| s.get()),
                r.quality_score.get()
            )
        },
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs the demo, printing to `out`.
///
/// # Errors
/// When a part of the system cannot start.
pub fn run(args: &DemoArgs, out: &mut dyn Write, stop: &AtomicBool) -> anyhow::Result<DemoSummary> {
    let total = args.seconds.max(5.0);
    // The link runs over TLS with a throwaway fleet CA, as a real fleet would with its own
    // (`sarlink-ground ca init`, `ca issue NODE`).
    let tls_dir = std::env::temp_dir().join(format!(
        "sarlink-demo-ca-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    ));
    sarlink_station::ca::init(&tls_dir).context("making the demo's fleet CA")?;
    for node in ["ground", "drone-1"] {
        sarlink_station::ca::issue(&tls_dir, node).context("issuing a demo certificate")?;
    }
    let ground_settings = GroundSettings {
        listen: "127.0.0.1:0".into(),
        node: NodeName::new("ground").expect("valid"),
        source: None,
        frequency_hz: BEACON_HZ,
        sample_rate_hz: SAMPLE_RATE_HZ,
        gain: Gain::Auto,
        ppm: None,
        bias_tee: false,
        sample_rate_given: true,
        key: None,
        tls_dir: Some(tls_dir.clone()),
        max_clients: 8,
        max_handshakes_per_addr: 8,
        output: Format::None,
        output_file: None,
        fsync: None,
        http: None,
        seconds: None,
        mqtt: None,
        resources: sarlink_station::monitoring::ResourceSettings::default(),
        quiet: true,
        insecure: false,
    };
    let own = Measurement::with_source(
        simulator(GROUND_DISTANCE_M, 11),
        OFFSET_HZ,
        true,
        &PipelineConfig::new(SourceId::GROUND),
    )?;
    let mut ground =
        GroundNode::with_receiver(&ground_settings, Some(ReceiverThread::spawn(own)?))?;
    let proxy =
        FaultProxy::start("127.0.0.1:0", ground.local_addr()).context("starting the link proxy")?;

    let drone_settings = DroneSettings {
        connect: proxy.local_addr().to_string(),
        node: NodeName::new("drone-1").expect("valid"),
        source: SourceSpec::Sim(None),
        frequency_hz: Some(BEACON_HZ),
        sample_rate_hz: SAMPLE_RATE_HZ,
        gain: Gain::Auto,
        ppm: None,
        bias_tee: false,
        sample_rate_given: true,
        rate_hz: 10.0,
        key: None,
        tls_dir: Some(tls_dir.clone()),
        ground_name: "ground".to_owned(),
        compression_threshold: 1024,
        calibration_db: None,
        smoothing: None,
        seconds: None,
        output: Format::None,
        output_file: None,
        http: None,
        mavlink: args.mavlink.clone(),
        mavlink_component: sarlink_station::vehicle::DEFAULT_COMPONENT_ID,
        mavlink_budget: sarlink_station::vehicle::DEFAULT_BYTE_BUDGET,
        vehicle_rules: sarlink_station::vehicle::VehicleRules::default(),
        resources: sarlink_station::monitoring::ResourceSettings::default(),
        quiet: true,
        insecure: false,
    };
    let start = Instant::now();
    let flying = FlyingSim {
        sim: simulator(flight_distance_m(0.0, total), 7),
        start,
        total,
    };
    let measurement = Measurement::with_source(
        flying,
        OFFSET_HZ,
        true,
        &PipelineConfig::new(SourceId::DRONE),
    )?;
    let drone = DroneNode::with_measurement(
        &drone_settings,
        measurement,
        DroneOptions {
            backoff: Backoff {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(1),
                jitter: 0.2,
            },
            status_every: None,
            sim_flight: Some(SimFlight(std::sync::Arc::new(move |t: Duration| {
                flight_distance_m(t.as_secs_f64(), total)
            }))),
        },
    )?;
    let view = drone.view();
    let landed = AtomicBool::new(false);

    let drop_at = total * 0.4;
    let drop_for = (total * 0.1).clamp(3.0, 8.0);
    writeln!(
        out,
        "sarlink demo: ground {} with its own receiver {:.1} km from the beacon; drone-1 closing in from 3 km decides which receiver to home on; the link drops at {drop_at:.0} s for {drop_for:.0} s",
        ground.local_addr(),
        GROUND_DISTANCE_M / 1e3
    )?;
    writeln!(
        out,
        "{:>5} | {:^35} | {:^35} | {:<34} | link",
        "t", "drone's receiver", "ground's receiver (at the drone)", "drone homes on (why)"
    )?;
    let summary = std::thread::scope(|scope| -> anyhow::Result<DemoSummary> {
        let drone_thread = scope.spawn(|| drone.run(&landed, None, true));
        let mut last_decision = String::new();
        let mut link_down = false;
        let mut geotagged_lines = 0;
        let mut next_line = start + Duration::from_secs(1);
        while start.elapsed().as_secs_f64() < total && !stop.load(Ordering::Relaxed) {
            ground.step(next_line)?;
            next_line += Duration::from_secs(1);
            let t = start.elapsed().as_secs_f64();
            if !link_down && t >= drop_at && t < drop_at + drop_for {
                link_down = true;
                proxy.set_down(true);
                writeln!(
                    out,
                    "  ** link down: the drone keeps measuring, holds its samples and decides alone **"
                )?;
            } else if link_down && t >= drop_at + drop_for {
                link_down = false;
                proxy.set_down(false);
                writeln!(
                    out,
                    "  ** link back: the drone reconnects and resends what the ground missed **"
                )?;
            }
            let v = view.lock().clone();
            let active = v.decision.as_ref().map_or_else(
                || "-".to_owned(),
                |d| {
                    let who = if d.source_id == SourceId::DRONE {
                        "own receiver"
                    } else {
                        "ground's"
                    };
                    format!(
                        "{who}{} ({})",
                        if d.fallback { " FALLBACK" } else { "" },
                        d.reason
                    )
                },
            );
            if active != last_decision && !last_decision.is_empty() {
                writeln!(out, "  -> the drone decides: {active}")?;
            }
            last_decision.clone_from(&active);
            let link = match (v.link, v.rtt) {
                (Some(LinkState::Healthy), Some(rtt)) => format!("up, rtt {:.2} ms", ms(rtt)),
                (Some(state), _) => format!("{state:?}").to_lowercase(),
                (None, _) => format!("DOWN ({} samples waiting on the drone)", v.backlog),
            };
            let at = v.own.as_ref().and_then(|r| {
                let b = &r.beacon;
                Some(format!(
                    " | at {:.5}, {:.5}, {:.0} m",
                    f64::from(b.lat_e7?) * 1e-7,
                    f64::from(b.lon_e7?) * 1e-7,
                    b.alt_m?
                ))
            });
            geotagged_lines += u64::from(at.is_some());
            writeln!(
                out,
                "{t:>4.0}s | {} | {} | {active:<34} | {link}{}",
                fmt_source(v.own.as_ref()),
                fmt_source(v.ground.as_ref()),
                at.unwrap_or_default()
            )?;
            out.flush()?;
        }
        // Land: stop the drone (it closes its link), let the ground take what is in flight.
        let streamed_before = view.lock().stats.streamed;
        let drain_until = Instant::now() + Duration::from_secs(5);
        let received = |g: &GroundNode| g.core().drones().get("drone-1").map_or(0, |t| t.received);
        while Instant::now() < drain_until && received(&ground) < streamed_before {
            ground.step(Instant::now() + Duration::from_millis(100))?;
        }
        landed.store(true, Ordering::Relaxed);
        let drone_summary = drone_thread
            .join()
            .map_err(|_| anyhow::anyhow!("the drone thread panicked"))??;
        let v = view.lock().clone();
        ground.step(Instant::now() + Duration::from_millis(200))?;
        let track = ground.core().drones().get("drone-1");
        let rtt = ground.rtt_snapshot();
        let sent = drone_summary.stats.streamed;
        let got = track.map_or(0, |t| t.received);
        Ok(DemoSummary {
            sent,
            received: got,
            resent: v.resent,
            lost: sent.saturating_sub(got),
            fallbacks_reported: track.map_or(0, |t| t.fallbacks),
            drone: drone_summary,
            rtt_p50: rtt.p50,
            rtt_p99: rtt.p99,
            peak_memory_bytes: peak_rss(),
            geotagged_lines,
        })
    })?;
    let s = &summary.drone.stats;
    writeln!(out, "\nsummary")?;
    writeln!(
        out,
        "  records streamed by the drone {}, received by the ground {}, resent {}, lost {}",
        summary.sent, summary.received, summary.resent, summary.lost
    )?;
    writeln!(
        out,
        "  the drone heard {} ground records; ground measurement to the drone's coordinator p50 {:.2} ms, p99 {:.2} ms",
        s.ground_records,
        ms(summary.drone.ground_latency.p50),
        ms(summary.drone.ground_latency.p99)
    )?;
    writeln!(
        out,
        "  decided on the drone: decisions {}, source switches {}, fallbacks {}, recoveries {} (the ground heard {} fallbacks)",
        s.decisions, s.switches, s.fallbacks, s.recoveries, summary.fallbacks_reported
    )?;
    writeln!(
        out,
        "  link rtt p50 {:.3} ms, p99 {:.3} ms",
        ms(summary.rtt_p50),
        ms(summary.rtt_p99)
    )?;
    writeln!(
        out,
        "  peak memory {}",
        summary
            .peak_memory_bytes
            .map_or("unknown".to_owned(), |b| format!(
                "{:.1} MB",
                b as f64 / 1e6
            ))
    )?;
    if let Some(url) = &args.mavlink {
        writeln!(
            out,
            "  flight controller {url}: {} of the lines above show a geotagged record",
            summary.geotagged_lines
        )?;
    }
    drop(proxy);
    ground.shutdown();
    let _ = std::fs::remove_dir_all(&tls_dir);
    Ok(summary)
}
