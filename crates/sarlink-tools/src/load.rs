//! `sarlink-ground load`: many simulated drones (real clients, real sockets) against a ground
//! station, in this process (the real ground core, measured from the inside) or at an address.
//!
//! Modes, combinable: steady load (`--drones`, `--rate`, `--seconds`); spikes
//! (`--spike-every`, `--spike-seconds`, `--spike-factor` multiply the rate periodically);
//! saturation (`--backlog N`: every drone queues N records while the ground is unreachable,
//! then the ground comes up and ingests them all); failures (`--latency-ms`, `--jitter-ms`,
//! `--drop-percent`, `--stall-every`: a fault-injecting proxy between drones and ground);
//! endurance (long
//! `--seconds`, with per-interval memory and latency). It prints a progress line per interval
//! and a summary, writes JSON with `--json`, and exits 1 when records were lost or
//! duplicated (beyond `--max-lost`) or a fallback/recovery missed its bound. Each simulated
//! drone runs the real drone core on its link's events, so fallbacks and recoveries are
//! decided and timed where a real drone decides them. With `--one-loop` the drones' sessions
//! run on one event loop ([`crate::swarm`]) instead of a `Client` (two threads) each, so one
//! process can hold 10,000 of them.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use parking_lot::Mutex;
use sarlink_link::SessionConfig;
use sarlink_link::driver::{Backoff, Client, ClientConfig, ClientEvent};
use sarlink_monitor::metrics::{Histogram, HistogramSnapshot};
use sarlink_schema::{NodeName, Role, RssiRecord};
use sarlink_station::config::GroundSettings;
use sarlink_station::drone::{DroneConfig, DroneCore, DroneInput};
use sarlink_station::node::ground::GroundNode;
use sarlink_station::output::Format;
use sarlink_station::record::{unix_now, unix_ns};
use sarlink_testkit::proxy::{FaultProxy, Faults};

use crate::swarm::Swarm;
use serde_json::json;

/// Arguments of `sarlink-ground load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// A ground station to load, HOST:PORT [default: one started in this process]
    #[arg(long)]
    pub target: Option<String>,
    /// Simulated drones (each a client with its own connection)
    #[arg(long, default_value_t = 10)]
    pub drones: usize,
    /// RSSI records per second per drone
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// How long to stream (after any backlog is ingested)
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Start a spike every this many seconds [default: no spikes]
    #[arg(long)]
    pub spike_every: Option<f64>,
    /// How long each spike lasts
    #[arg(long, default_value_t = 2.0)]
    pub spike_seconds: f64,
    /// Rate multiplier during a spike
    #[arg(long, default_value_t = 5.0)]
    pub spike_factor: f64,
    /// Saturation: records each drone queues while the ground is unreachable, then sends at once
    #[arg(long, default_value_t = 0)]
    pub backlog: u64,
    /// Added one-way latency (through the fault proxy), ms
    #[arg(long, default_value_t = 0.0)]
    pub latency_ms: f64,
    /// Random extra one-way delay, up to this many ms
    #[arg(long, default_value_t = 0.0)]
    pub jitter_ms: f64,
    /// Each second, each connection is cut with this probability (percent)
    #[arg(long, default_value_t = 0.0)]
    pub drop_percent: f64,
    /// Stall all traffic (connections stay open) every this many seconds [default: never]
    #[arg(long)]
    pub stall_every: Option<f64>,
    /// How long each stall lasts
    #[arg(long, default_value_t = 1.0)]
    pub stall_seconds: f64,
    /// Progress line every this many seconds
    #[arg(long, default_value_t = 5.0)]
    pub interval: f64,
    /// Write the results as JSON to this file
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Records that may be lost before the run counts as failed
    #[arg(long, default_value_t = 0)]
    pub max_lost: u64,
    /// Drive every simulated drone's session on one event loop (one thread) instead of a
    /// client with two threads each: for thousands of drones
    #[arg(long)]
    pub one_loop: bool,
    /// TLS with the fleet CA in this directory (`sarlink-ground ca init DIR`): each
    /// simulated drone `load-N` gets a certificate there unless it has one, and so does the
    /// in-process ground. Without it the drones speak plaintext
    #[arg(long, value_name = "DIR")]
    pub tls: Option<std::path::PathBuf>,
    /// With --tls: the name the ground's certificate must carry
    #[arg(long, default_value = "ground")]
    pub ground_name: String,
}

/// Drone `node`'s TLS from the fleet CA in `dir`, issuing its certificate first if it has
/// none.
fn fleet_tls(
    dir: &std::path::Path,
    node: &str,
    ground: &str,
) -> anyhow::Result<sarlink_link::tls::ClientTls> {
    if !dir.join(format!("{node}.pem")).exists() {
        sarlink_station::ca::issue(dir, node)
            .with_context(|| format!("issuing a certificate for {node} in {}", dir.display()))?;
    }
    sarlink_station::ca::client_tls(dir, node, ground)
        .with_context(|| format!("TLS of {node} from {}", dir.display()))
}

/// The simulated drones' link ends: a `Client` each, or one event loop for all.
enum Fleet {
    Clients(Vec<Client>),
    Swarm(Swarm),
}

impl Fleet {
    fn len(&self) -> usize {
        match self {
            Fleet::Clients(c) => c.len(),
            Fleet::Swarm(s) => s.len(),
        }
    }

    fn push_sample(&self, drone: usize, record: RssiRecord) -> bool {
        match self {
            Fleet::Clients(c) => c[drone].push_sample(record),
            Fleet::Swarm(s) => s.push_sample(drone, record),
        }
    }

    fn push_sample_blocking(&self, drone: usize, record: RssiRecord) -> bool {
        match self {
            Fleet::Clients(c) => c[drone].push_sample_blocking(record),
            Fleet::Swarm(s) => s.push_sample(drone, record),
        }
    }

    /// (produced, resent, ring drops, connections) of one drone.
    fn counters(&self, drone: usize) -> (u64, u64, u64, u64) {
        match self {
            Fleet::Clients(c) => {
                let s = c[drone].counters().snapshot();
                (
                    s.samples_produced,
                    s.samples_resent,
                    s.samples_dropped,
                    s.connections,
                )
            }
            Fleet::Swarm(s) => {
                let c = s.counters(drone);
                let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
                (
                    get(&c.samples_produced),
                    get(&c.samples_resent),
                    get(&c.samples_dropped),
                    get(&c.connections),
                )
            }
        }
    }

    /// Every event that waits, with its drone's index.
    fn drain(&self, mut f: impl FnMut(usize, ClientEvent)) {
        match self {
            Fleet::Clients(c) => {
                for (i, c) in c.iter().enumerate() {
                    for e in c.events().try_iter() {
                        f(i, e);
                    }
                }
            }
            Fleet::Swarm(s) => {
                for (i, e) in s.events().try_iter() {
                    f(i, e);
                }
            }
        }
    }

    fn close(self) {
        match self {
            Fleet::Clients(c) => {
                for c in c {
                    c.close();
                }
            }
            Fleet::Swarm(s) => s.close(),
        }
    }
}

fn record(i: u64) -> RssiRecord {
    sarlink_testkit::record_at(i, unix_ns())
}

/// CPU time, in ns, of this process's live threads whose names start with `prefix`, from
/// `/proc/self/task/*/schedstat` (exact run time; `stat`'s utime/stime are 10 ms ticks, too
/// coarse for many threads that each run in short bursts).
fn thread_cpu_ns(prefix: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|task| {
            let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
            if !name.trim_end().starts_with(prefix) {
                return None;
            }
            let schedstat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            schedstat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    sarlink_monitor::resources::parse_status_rss(&status).ok()?
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn lat_json(s: &HistogramSnapshot) -> serde_json::Value {
    json!({"count": s.count, "p50_ms": ms(s.p50), "p95_ms": ms(s.p95), "p99_ms": ms(s.p99), "max_ms": ms(s.max)})
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct LoadOutcome {
    /// Everything measured, as written with `--json`.
    pub json: serde_json::Value,
    /// Whether the run met its checks (no loss beyond `--max-lost`, no duplicates, bounds).
    pub passed: bool,
}

#[derive(Default)]
struct Phase {
    records: u64,
    seconds: f64,
    worst_p99: Duration,
}

/// Runs the load test, printing progress and a summary to `out`.
///
/// # Errors
/// When the ground, the proxy or the clients cannot start.
pub fn run(args: &LoadArgs, out: &mut dyn Write, stop: &AtomicBool) -> anyhow::Result<LoadOutcome> {
    anyhow::ensure!(
        args.drones > 0 && args.rate > 0.0 && args.seconds > 0.0,
        "--drones, --rate and --seconds must be positive"
    );
    // The ground: ours, stepped on a thread named like the server's so its CPU is counted.
    let ground = match &args.target {
        Some(_) => None,
        None => {
            let config = GroundSettings {
                listen: "127.0.0.1:0".into(),
                node: NodeName::new("ground").expect("valid"),
                source: None,
                frequency_hz: 406_028_000,
                sample_rate_hz: 1_024_000,
                gain: sarlink_sdr::Gain::Auto,
                ppm: None,
                bias_tee: false,
                sample_rate_given: false,
                key: None,
                tls_dir: args.tls.clone(),
                max_clients: args.drones + 8,
                // Every simulated drone connects from 127.0.0.1 at once.
                max_handshakes_per_addr: args.drones + 8,
                output: Format::None,
                output_file: None,
                fsync: None,
                http: None,
                seconds: None,
                mqtt: None,
                resources: sarlink_station::monitoring::ResourceSettings::default(),
                quiet: true,
                // In-process load test on loopback: plaintext unless --tls.
                insecure: args.tls.is_none(),
            };
            if let Some(dir) = &args.tls {
                if !dir.join("ground.pem").exists() {
                    sarlink_station::ca::issue(dir, "ground").with_context(|| {
                        format!("issuing the ground's certificate in {}", dir.display())
                    })?;
                }
            }
            Some(Arc::new(Mutex::new(GroundNode::start(&config)?)))
        }
    };
    let ground_addr: SocketAddr = match (&ground, &args.target) {
        (Some(g), _) => g.lock().local_addr(),
        (None, Some(t)) => std::net::ToSocketAddrs::to_socket_addrs(t.as_str())?
            .next()
            .context("--target resolves to nothing")?,
        (None, None) => unreachable!("one of the two is set"),
    };
    let faulty = args.latency_ms > 0.0
        || args.jitter_ms > 0.0
        || args.drop_percent > 0.0
        || args.backlog > 0
        || args.stall_every.is_some();
    let proxy = if faulty {
        let p = FaultProxy::start("127.0.0.1:0", ground_addr)?;
        p.set_latency(
            Duration::from_secs_f64(args.latency_ms / 1e3),
            Duration::from_secs_f64(args.jitter_ms / 1e3),
        );
        Some(p)
    } else {
        None
    };
    let connect_to = proxy.as_ref().map_or(ground_addr, FaultProxy::local_addr);
    if args.backlog > 0 {
        proxy
            .as_ref()
            .expect("backlog uses the proxy")
            .set_down(true);
    }
    let running = Arc::new(AtomicBool::new(true));
    let ground_thread = ground.as_ref().map(|g| {
        let (g, running) = (Arc::clone(g), Arc::clone(&running));
        std::thread::Builder::new()
            .name("sl-srv-app".into())
            .spawn(move || {
                while running.load(Ordering::Relaxed) {
                    let r = g.lock().step(Instant::now() + Duration::from_millis(20));
                    if let Err(e) = r {
                        tracing::error!(error = %e, "ground step failed");
                        break;
                    }
                }
            })
            .expect("spawn ground thread")
    });

    let backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
        jitter: 0.2,
    };
    let mut sessions = Vec::with_capacity(args.drones);
    for i in 0..args.drones {
        let name = format!("load-{i}");
        let tls = match &args.tls {
            Some(dir) => Some(fleet_tls(dir, &name, &args.ground_name)?),
            None => None,
        };
        let mut s = SessionConfig::new(
            Role::Drone,
            NodeName::new(name).expect("short"),
            sarlink_station::record::new_stream_id(),
        );
        s.rssi_units = Some(sarlink_schema::RssiUnits::Dbfs);
        sessions.push((s, tls));
    }
    let clients = if args.one_loop {
        Fleet::Swarm(Swarm::spawn(sessions, connect_to, backoff)?)
    } else {
        Fleet::Clients(
            sessions
                .into_iter()
                .map(|(s, tls)| {
                    let mut c = ClientConfig::new(s, connect_to.to_string());
                    c.backoff = backoff;
                    c.tls = tls;
                    Client::spawn(c)
                })
                .collect::<Result<_, _>>()?,
        )
    };
    // Each simulated drone decides as a real one does: its own core, fed its link's events,
    // so fallback on link loss and recovery after the hold-down are measured where they
    // happen.
    let mut cores: Vec<DroneCore> = (0..args.drones)
        .map(|i| {
            DroneCore::new(DroneConfig::new(
                NodeName::new(format!("load-{i}")).expect("short"),
            ))
        })
        .collect::<Result<_, _>>()?;
    writeln!(
        out,
        "sarlink load: {} drones x {} Hz for {} s against {}{}{}",
        args.drones,
        args.rate,
        args.seconds,
        args.target.as_deref().unwrap_or("an in-process ground"),
        if faulty {
            format!(
                " through a proxy (latency {} ms, jitter {} ms, drops {} %/s)",
                args.latency_ms, args.jitter_ms, args.drop_percent
            )
        } else {
            String::new()
        },
        if args.backlog > 0 {
            format!(", after a backlog of {} records per drone", args.backlog)
        } else {
            String::new()
        },
    )?;

    let produced = Arc::new(AtomicU64::new(0));
    let mut saturation = serde_json::Value::Null;
    if args.backlog > 0 {
        for d in 0..clients.len() {
            for i in 0..args.backlog {
                anyhow::ensure!(
                    clients.push_sample_blocking(d, record(i + d as u64)),
                    "client stopped"
                );
            }
        }
        let total = args.backlog * args.drones as u64;
        // Let every client take its backlog into its ring before the link comes up.
        while (0..clients.len())
            .map(|d| clients.counters(d).0)
            .sum::<u64>()
            < total
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        produced.store(total, Ordering::Relaxed);
        let g = ground
            .as_ref()
            .context("--backlog needs the in-process ground to count ingestion")?;
        let t0 = Instant::now();
        proxy.as_ref().expect("proxy").set_down(false);
        let deadline = t0 + Duration::from_secs(120);
        let received = loop {
            let r: u64 = g.lock().core().drones().values().map(|t| t.received).sum();
            if r >= total || Instant::now() > deadline || stop.load(Ordering::Relaxed) {
                break r;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let secs = t0.elapsed().as_secs_f64();
        writeln!(
            out,
            "  backlog: {received} of {total} records ingested in {secs:.3} s = {:.0} records/s",
            received as f64 / secs
        )?;
        saturation = json!({"records": received, "seconds": secs, "records_per_sec": received as f64 / secs});
        g.lock().take_window_latency();
    } else {
        // Wait for every drone to connect before measuring.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut connected = 0;
        while connected < clients.len() && Instant::now() < deadline {
            connected = (0..clients.len())
                .filter(|d| clients.counters(*d).3 > 0)
                .count();
            std::thread::sleep(Duration::from_millis(10));
        }
        anyhow::ensure!(
            connected == clients.len(),
            "only {connected} of {} drones connected",
            clients.len()
        );
    }

    // The producer: one thread pushing to every drone at the (spiking) rate.
    let spiking = AtomicBool::new(false);
    let producing = AtomicBool::new(true);
    let refused = AtomicU64::new(0);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.seconds);
    let mut phases = [Phase::default(), Phase::default()];
    let mut intervals = Vec::new();
    let client_rtt = Histogram::new();
    let mut disconnects = 0u64;
    // Ground CPU over the whole streaming phase: (ns at its start, when).
    let mut run_cpu_start = (0u64, Instant::now());
    std::thread::scope(|scope| -> anyhow::Result<()> {
        scope.spawn(|| {
            // Independent drones are not phase-locked: each tick serves the next drone, so
            // the drones' reports are spread evenly over each period.
            let mut next = Instant::now();
            let mut i = args.backlog * args.drones as u64;
            while producing.load(Ordering::Relaxed) && Instant::now() < end {
                let hz = if spiking.load(Ordering::Relaxed) {
                    args.rate * args.spike_factor
                } else {
                    args.rate
                };
                if clients.push_sample((i % args.drones as u64) as usize, record(i)) {
                    produced.fetch_add(1, Ordering::Relaxed);
                } else {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
                next += Duration::from_secs_f64(1.0 / (hz * args.drones as f64));
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    // Sleeps under a millisecond are imprecise: batch ticks that fall due together.
                    if wait > Duration::from_micros(200) {
                        std::thread::sleep(wait);
                    }
                } else if Instant::now() > next + Duration::from_millis(100) {
                    next = Instant::now(); // fell behind: do not burst to catch up
                }
            }
        });
        let mut last_t = Instant::now();
        let mut last_cpu_ns = thread_cpu_ns("sl-srv");
        run_cpu_start = (last_cpu_ns, Instant::now());
        let mut last_received = 0u64;
        // Loop iterations of the current interval, and how many of them were in a spike.
        let (mut ticks_in_interval, mut spike_ticks) = (0u32, 0u32);
        let mut next_drop = Instant::now() + Duration::from_secs(1);
        while Instant::now() < end && !stop.load(Ordering::Relaxed) {
            let t = start.elapsed().as_secs_f64();
            let in_spike = args
                .spike_every
                .is_some_and(|every| every > 0.0 && t >= every && (t % every) < args.spike_seconds);
            spiking.store(in_spike, Ordering::Relaxed);
            ticks_in_interval += 1;
            spike_ticks += u32::from(in_spike);
            if let (Some(p), Some(every)) = (&proxy, args.stall_every.filter(|e| *e > 0.0)) {
                let stalled = t >= every && (t % every) < args.stall_seconds;
                if p.faults().stalled != stalled {
                    p.set_stalled(stalled);
                }
            }
            if let (Some(p), true) = (&proxy, args.drop_percent > 0.0) {
                if Instant::now() >= next_drop {
                    p.drop_random(args.drop_percent / 100.0);
                    next_drop += Duration::from_secs(1);
                }
            }
            clients.drain(|d, e| {
                let input = match e {
                    ClientEvent::Rtt(r) => {
                        client_rtt.record(r);
                        DroneInput::Rtt(r)
                    }
                    ClientEvent::Disconnected { .. } => {
                        disconnects += 1;
                        DroneInput::LinkDown
                    }
                    ClientEvent::Connected {
                        peer, rssi_units, ..
                    } => DroneInput::LinkUp {
                        ground: peer,
                        units: rssi_units,
                    },
                    ClientEvent::LinkState(s) => DroneInput::LinkState(s),
                    _ => return,
                };
                cores[d].handle(unix_now(), input);
            });
            for core in &mut cores {
                core.handle(unix_now(), DroneInput::Tick);
                while core.poll_output().is_some() {}
            }
            std::thread::sleep(
                Duration::from_millis(50).min(end.saturating_duration_since(Instant::now())),
            );
            // Per-interval accounting.
            let now = Instant::now();
            let dt = now.duration_since(last_t).as_secs_f64();
            if dt >= args.interval.min(args.seconds) || now >= end {
                // An interval counts as a spike when most of it was spent in one.
                let in_spike = spike_ticks * 2 > ticks_in_interval;
                (ticks_in_interval, spike_ticks) = (0, 0);
                let (received, lat) = match &ground {
                    Some(g) => {
                        let mut g = g.lock();
                        (
                            g.core().drones().values().map(|t| t.received).sum::<u64>(),
                            g.take_window_latency(),
                        )
                    }
                    None => (0, client_rtt.snapshot()),
                };
                let cpu_ns_now = thread_cpu_ns("sl-srv");
                // Threads that ended since the last look take their time with them: saturate.
                let cpu = cpu_ns_now.saturating_sub(last_cpu_ns) as f64 / 1e9 / dt * 100.0;
                let rps = (received - last_received) as f64 / dt;
                let phase = &mut phases[usize::from(in_spike)];
                phase.records += received - last_received;
                phase.seconds += dt;
                phase.worst_p99 = phase.worst_p99.max(lat.p99);
                let rss = rss_bytes();
                writeln!(
                    out,
                    "  [{:>6.1}s]{} {:>9.0} records/s  latency p50 {:.3} ms p99 {:.3} ms max {:.3} ms  ground cpu {:5.1} %  rss {}",
                    start.elapsed().as_secs_f64(),
                    if in_spike { " SPIKE" } else { "      " },
                    rps,
                    ms(lat.p50),
                    ms(lat.p99),
                    ms(lat.max),
                    cpu,
                    rss.map_or("?".to_owned(), |b| format!("{:.1} MB", b as f64 / 1e6)),
                )?;
                out.flush()?;
                intervals.push(json!({
                    "t_s": start.elapsed().as_secs_f64(), "spike": in_spike, "records_per_sec": rps,
                    "latency": lat_json(&lat), "ground_cpu_pct": cpu, "rss_bytes": rss,
                }));
                last_t = now;
                last_cpu_ns = cpu_ns_now;
                last_received = received;
            }
        }
        producing.store(false, Ordering::Relaxed);
        Ok(())
    })?;

    // Drain: everything produced should arrive (the proxy is healed first).
    if let Some(p) = &proxy {
        p.set_faults(Faults::default());
    }
    let produced_total = produced.load(Ordering::Relaxed);
    let drain_deadline = Instant::now() + Duration::from_secs(20);
    if let Some(g) = &ground {
        while Instant::now() < drain_deadline {
            if g.lock()
                .core()
                .drones()
                .values()
                .map(|t| t.received)
                .sum::<u64>()
                >= produced_total
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let resent: u64 = (0..clients.len()).map(|d| clients.counters(d).1).sum();
    let ring_dropped: u64 = (0..clients.len()).map(|d| clients.counters(d).2).sum();
    let ground_cpu_pct = thread_cpu_ns("sl-srv").saturating_sub(run_cpu_start.0) as f64
        / 1e9
        / run_cpu_start.1.elapsed().as_secs_f64().max(1e-9)
        * 100.0;
    let refused = refused.load(Ordering::Relaxed);
    let (received, duplicates, gaps, latency, fallback_max, recovery, fallbacks) = match &ground {
        Some(g) => {
            let mut g = g.lock();
            let latency = g.latency().snapshot();
            let tracks = g.core().drones();
            let fb: Vec<Duration> = cores.iter().flat_map(|c| c.fallback_delays()).collect();
            let rec: Vec<Duration> = cores.iter().flat_map(|c| c.recovery_delays()).collect();
            (
                tracks.values().map(|t| t.received).sum::<u64>(),
                tracks.values().map(|t| t.duplicates).sum::<u64>(),
                tracks.values().map(|t| t.gaps).sum::<u64>(),
                latency,
                fb.iter().max().copied(),
                (
                    rec.iter().min().copied(),
                    rec.iter().max().copied(),
                    rec.len(),
                ),
                fb.len(),
            )
        }
        None => (0, 0, 0, client_rtt.snapshot(), None, (None, None, 0), 0),
    };
    // Only now stop the drones (their goodbyes would otherwise count as link losses).
    clients.close();
    running.store(false, Ordering::Relaxed);
    if let Some(t) = ground_thread {
        let _ = t.join();
    }
    let lost = if ground.is_some() {
        produced_total.saturating_sub(received)
    } else {
        0
    };
    // Bounds: fallback within a decision step (100 ms) of the link loss being seen; recovery
    // after the 5 s hold-down and within a step of it.
    let fallback_ok = fallback_max.is_none_or(|d| d <= Duration::from_millis(250));
    let recovery_ok = recovery.0.is_none_or(|d| d >= Duration::from_millis(4900))
        && recovery.1.is_none_or(|d| d <= Duration::from_millis(5400));
    let passed = lost <= args.max_lost && duplicates == 0 && fallback_ok && recovery_ok;
    let elapsed = args.seconds;
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .map(|kb| kb * 1024)
        });
    writeln!(out, "\nsummary")?;
    writeln!(
        out,
        "  records produced {produced_total}, received {received}, lost {lost}, duplicates {duplicates}, gaps {gaps}, resent {resent}, ring drops {ring_dropped}, refused by full channels {refused}"
    )?;
    writeln!(
        out,
        "  latency (record to ground output{}) p50 {:.3} ms  p95 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        if args.backlog > 0 {
            ", backlog queueing included"
        } else {
            ""
        },
        ms(latency.p50),
        ms(latency.p95),
        ms(latency.p99),
        ms(latency.max)
    )?;
    writeln!(
        out,
        "  disconnects {disconnects}, fallbacks {fallbacks} (slowest {:.0} ms after the loss), recoveries {} ({} to {} ms after reconnecting)",
        fallback_max.map_or(0.0, ms),
        recovery.2,
        recovery.0.map_or("-".into(), |d| format!("{:.0}", ms(d))),
        recovery.1.map_or("-".into(), |d| format!("{:.0}", ms(d)))
    )?;
    writeln!(
        out,
        "  ground cpu {ground_cpu_pct:.1} % of one core over the run"
    )?;
    writeln!(
        out,
        "  peak memory {}",
        peak.map_or("?".into(), |b| format!("{:.1} MB", b as f64 / 1e6))
    )?;
    writeln!(out, "  {}", if passed { "PASS" } else { "FAIL" })?;
    let json = json!({
        "config": {"drones": args.drones, "rate_hz": args.rate, "seconds": args.seconds, "spike_every_s": args.spike_every,
                   "spike_seconds": args.spike_seconds, "spike_factor": args.spike_factor, "backlog": args.backlog,
                   "latency_ms": args.latency_ms, "jitter_ms": args.jitter_ms, "drop_percent": args.drop_percent,
                   "stall_every_s": args.stall_every, "stall_seconds": args.stall_seconds,
                   "target": args.target},
        "records_produced": produced_total, "records_received": received, "records_per_sec": received as f64 / elapsed.max(1e-9),
        "lost": lost, "duplicates": duplicates, "gaps": gaps, "resends": resent, "ring_drops": ring_dropped, "refused": refused,
        "errors": {"disconnects": disconnects},
        "latency": lat_json(&latency),
        "latency_includes_backlog": args.backlog > 0,
        "ground_cpu_pct": ground_cpu_pct,
        "fallbacks": fallbacks, "fallback_max_ms": fallback_max.map(ms),
        "recoveries": recovery.2, "recovery_min_ms": recovery.0.map(ms), "recovery_max_ms": recovery.1.map(ms),
        "phases": {
            "baseline": {"records_per_sec": phases[0].records as f64 / phases[0].seconds.max(1e-9), "seconds": phases[0].seconds, "worst_interval_p99_ms": ms(phases[0].worst_p99)},
            "spike": {"records_per_sec": phases[1].records as f64 / phases[1].seconds.max(1e-9), "seconds": phases[1].seconds, "worst_interval_p99_ms": ms(phases[1].worst_p99)},
        },
        "saturation": saturation,
        "intervals": intervals,
        "peak_rss_bytes": peak,
        "passed": passed,
    });
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    drop(proxy);
    if let Some(g) = ground {
        if let Ok(g) = Arc::try_unwrap(g) {
            g.into_inner().shutdown();
        }
    }
    Ok(LoadOutcome { json, passed })
}
