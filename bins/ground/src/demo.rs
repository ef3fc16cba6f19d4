//! `sarlink-ground demo`: the whole system in one process over real loopback TCP.
//!
//! A ground station with its own simulated receiver (1.5 km from the beacon), and a
//! simulated drone flying a search pattern toward the beacon, connected through a
//! fault-injecting proxy. Near the middle, the link goes down for several seconds and
//! comes back. Once a second the demo prints both sources' RSSI, the coordinator's choice
//! and why, and the link; at the end, a summary.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sarlink_link::driver::{Backoff, Client, ClientConfig, ClientEvent};
use sarlink_link::proxy::FaultProxy;
use sarlink_link::{LinkState, SessionConfig};
use sarlink_schema::{NodeName, Role, RssiRecord, SourceId};
use sarlink_sdr::Gain;
use sarlink_sdr::source::sim::{SimConfig, Simulator};

use crate::output::Format;
use crate::receiver::Measurement;
use crate::source::SourceSpec;
use crate::{Ground, GroundConfig};

/// Arguments of `sarlink-ground demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How long the demo flies
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
}

const BEACON_HZ: u64 = 406_028_000;
const SAMPLE_RATE_HZ: u32 = 250_000;
const OFFSET_HZ: f64 = 50_000.0;

/// The drone's distance to the beacon at `t` of a flight lasting `total`: a lawnmower search
/// closing from 3 km to about 100 m, the legs swinging the range by +-15 %.
pub fn flight_distance_m(t: f64, total: f64) -> f64 {
    let progress = (t / total).clamp(0.0, 1.0);
    let closing = 3000.0 - 2900.0 * progress;
    closing * (1.0 + 0.15 * (std::f64::consts::TAU * t / 8.0).sin())
}

/// What the demo measured, printed at the end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DemoSummary {
    /// Samples the drone produced.
    pub sent: u64,
    /// Records the ground received from the drone.
    pub received: u64,
    /// Samples the drone sent again after reconnecting.
    pub resent: u64,
    /// Samples produced but never received.
    pub lost: u64,
    /// Link RTT percentiles.
    pub rtt_p50: Duration,
    /// Link RTT percentiles.
    pub rtt_p99: Duration,
    /// Source switches.
    pub switches: u64,
    /// Fallbacks begun.
    pub fallbacks: u64,
    /// Fallbacks ended.
    pub recoveries: u64,
    /// Peak resident memory of the process, bytes.
    pub peak_memory_bytes: Option<u64>,
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

/// Runs the demo, printing to `out`.
///
/// # Errors
/// When a part of the system cannot start.
pub fn run(args: &DemoArgs, out: &mut dyn Write, stop: &AtomicBool) -> anyhow::Result<DemoSummary> {
    let total = args.seconds.max(5.0);
    let config = GroundConfig {
        listen: "127.0.0.1:0".into(),
        node: NodeName::new("ground").expect("valid"),
        source: Some(SourceSpec::Sim),
        frequency_hz: BEACON_HZ,
        sample_rate_hz: SAMPLE_RATE_HZ,
        gain: Gain::Auto,
        key: None,
        max_clients: 8,
        output: Format::None,
        output_file: None,
        metrics: None,
        seconds: None,
        quiet: true,
    };
    let mut ground = Ground::start(&config)?;
    let proxy =
        FaultProxy::start("127.0.0.1:0", ground.local_addr()).context("starting the link proxy")?;

    // The drone: its own simulator (moved along the flight), estimator and link client.
    let mut session = SessionConfig::new(
        Role::Drone,
        NodeName::new("drone-1").expect("valid"),
        rand::random(),
    );
    session.rssi_units = Some(sarlink_schema::RssiUnits::Dbfs);
    let mut client_config = ClientConfig::new(session, proxy.local_addr().to_string());
    client_config.backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
        jitter: 0.2,
    };
    let client = Arc::new(Client::spawn(client_config)?);
    let sim = Simulator::new(SimConfig {
        sample_rate_hz: SAMPLE_RATE_HZ,
        center_frequency_hz: BEACON_HZ - OFFSET_HZ as u64,
        beacon_offset_hz: OFFSET_HZ,
        distance_m: flight_distance_m(0.0, total),
        seed: 7,
        ..SimConfig::default()
    });
    let mut drone =
        Measurement::with_source(sim, OFFSET_HZ, true, Gain::Auto, 10.0, SourceId::DRONE)
            .map_err(anyhow::Error::msg)?;
    let flying = Arc::new(AtomicBool::new(true));
    let produced = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let drone_thread = {
        let (client, flying, produced) = (
            Arc::clone(&client),
            Arc::clone(&flying),
            Arc::clone(&produced),
        );
        std::thread::Builder::new()
            .name("demo-drone".into())
            .spawn(move || {
                while flying.load(Ordering::Relaxed) {
                    drone
                        .source
                        .set_distance_m(flight_distance_m(start.elapsed().as_secs_f64(), total));
                    let r = drone.step(|record| {
                        if client.push_sample_blocking(record) {
                            produced.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    if r.is_err() {
                        break;
                    }
                }
            })?
    };

    let drop_at = total * 0.4;
    let drop_for = (total * 0.1).clamp(3.0, 8.0);
    writeln!(
        out,
        "sarlink demo: ground {} with its own receiver, drone-1 closing in from 3 km; the link drops at {drop_at:.0} s for {drop_for:.0} s",
        ground.local_addr()
    )?;
    writeln!(
        out,
        "{:>5} | {:^35} | {:^35} | {:<32} | link",
        "t", "drone receiver", "ground receiver", "active source (why)"
    )?;
    let mut last_reason = String::new();
    let mut link_down = false;
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
                "  ** link down: the drone keeps measuring and holds its samples **"
            )?;
        } else if link_down && t >= drop_at + drop_for {
            link_down = false;
            proxy.set_down(false);
            writeln!(
                out,
                "  ** link back: the drone reconnects and resends what the ground missed **"
            )?;
        }
        for event in client.events().try_iter() {
            if let ClientEvent::Connected { resume_seq, .. } = event {
                if resume_seq > 0 {
                    writeln!(
                        out,
                        "  ** reconnected; resuming from sample {resume_seq} **"
                    )?;
                }
            }
        }
        let track = ground.drones().get("drone-1");
        let decision = track.and_then(|t| t.decision.as_ref());
        let active = decision.map_or_else(
            || "-".to_owned(),
            |d| {
                let who = if d.source_id == SourceId::DRONE {
                    "drone"
                } else {
                    "ground"
                };
                format!(
                    "{who}{} ({})",
                    if d.fallback { " FALLBACK" } else { "" },
                    d.reason
                )
            },
        );
        if let Some(d) = decision {
            if d.reason != last_reason && !last_reason.is_empty() {
                writeln!(out, "  -> decision: {active}")?;
            }
            last_reason.clone_from(&d.reason);
        }
        let link = match track {
            Some(t) if t.conn.is_some() => match (t.link, t.rtt) {
                (LinkState::Healthy, Some(rtt)) => {
                    format!("up, rtt {:.2} ms", rtt.as_secs_f64() * 1e3)
                }
                (state, _) => format!("{state:?}").to_lowercase(),
            },
            _ => format!(
                "DOWN ({} samples waiting on the drone)",
                client.counters().backlog.load(Ordering::Relaxed)
            ),
        };
        writeln!(
            out,
            "{t:>4.0}s | {} | {} | {active:<32} | {link}",
            fmt_source(track.and_then(|t| t.latest.as_ref())),
            fmt_source(ground.own_latest())
        )?;
        out.flush()?;
    }
    // Land: stop producing, let the link drain, and count.
    flying.store(false, Ordering::Relaxed);
    let _ = drone_thread.join();
    let sent = produced.load(Ordering::Relaxed);
    let drain_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < drain_until
        && ground.drones().get("drone-1").map_or(0, |t| t.received) < sent
    {
        ground.step(Instant::now() + Duration::from_millis(100))?;
    }
    let track = ground.drones().get("drone-1");
    let (rtt_p50, rtt_p99) = ground_rtt(&ground);
    let summary = DemoSummary {
        sent,
        received: track.map_or(0, |t| t.received),
        resent: client.counters().samples_resent.load(Ordering::Relaxed),
        lost: sent.saturating_sub(track.map_or(0, |t| t.received)),
        rtt_p50,
        rtt_p99,
        switches: track.map_or(0, |t| t.switches),
        fallbacks: track.map_or(0, |t| t.fallbacks),
        recoveries: track.map_or(0, |t| t.recoveries),
        peak_memory_bytes: peak_rss(),
    };
    writeln!(out, "\nsummary")?;
    writeln!(
        out,
        "  records sent {}, received {}, resent {}, lost {}",
        summary.sent, summary.received, summary.resent, summary.lost
    )?;
    writeln!(
        out,
        "  link rtt p50 {:.3} ms, p99 {:.3} ms",
        summary.rtt_p50.as_secs_f64() * 1e3,
        summary.rtt_p99.as_secs_f64() * 1e3
    )?;
    writeln!(
        out,
        "  source switches {}, fallbacks {}, recoveries {}",
        summary.switches, summary.fallbacks, summary.recoveries
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
    if let Ok(c) = Arc::try_unwrap(client) {
        c.close();
    }
    drop(proxy);
    ground.shutdown();
    Ok(summary)
}

fn ground_rtt(ground: &Ground) -> (Duration, Duration) {
    let snap = ground.rtt_snapshot();
    (snap.p50, snap.p99)
}
