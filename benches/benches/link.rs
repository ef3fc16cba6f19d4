//! Loopback measurements through the whole sarlink-link stack: client thread, TCP, server
//! reader and session threads, and back.
//!
//! - `rtt`: ping round trips on one idle connection (pings every millisecond); prints
//!   p50/p90/p99/max.
//! - `throughput`: one connection under backlog: a producer pushes records as fast as the
//!   client takes them; prints records per second delivered to the server application.
//!
//! Run: `cargo bench -p sarlink-benches --bench link` (set `SARLINK_BENCH_SECONDS` to
//! change the run length, default 5).

use std::time::{Duration, Instant};

use sarlink_link::SessionConfig;
use sarlink_link::driver::{Client, ClientConfig, ClientEvent, Server, ServerConfig, ServerEvent};
use sarlink_schema::{NodeName, Role};
use sarlink_testkit::record;

fn server() -> Server {
    let session = SessionConfig::new(Role::Ground, NodeName::new("ground").unwrap(), 1);
    Server::bind("127.0.0.1:0", ServerConfig::new(session)).expect("bind")
}

fn client(server: &Server, ping: Duration) -> Client {
    let mut session = SessionConfig::new(Role::Drone, NodeName::new("bench").unwrap(), 2);
    session.ping_interval = ping;
    let c =
        Client::spawn(ClientConfig::new(session, server.local_addr().to_string())).expect("spawn");
    loop {
        if let Ok(ClientEvent::Connected { .. }) = c.events().recv_timeout(Duration::from_secs(5)) {
            return c;
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn rtt(seconds: u64) {
    let server = server();
    let c = client(&server, Duration::from_millis(1));
    let drain = std::thread::spawn({
        let events = server.events().clone();
        move || while events.recv_timeout(Duration::from_secs(1)).is_ok() {}
    });
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut rtts = Vec::new();
    while Instant::now() < end {
        if let Ok(ClientEvent::Rtt(r)) = c.events().recv_timeout(Duration::from_millis(100)) {
            rtts.push(r);
        }
    }
    c.close();
    server.shutdown();
    let _ = drain.join();
    // The first few include connection warm-up.
    let mut rtts: Vec<_> = rtts.into_iter().skip(10).collect();
    rtts.sort();
    println!(
        "link/rtt: {} pings  p50 {:.1} us  p90 {:.1} us  p99 {:.1} us  max {:.1} us",
        rtts.len(),
        percentile(&rtts, 0.50).as_secs_f64() * 1e6,
        percentile(&rtts, 0.90).as_secs_f64() * 1e6,
        percentile(&rtts, 0.99).as_secs_f64() * 1e6,
        rtts.last().unwrap().as_secs_f64() * 1e6,
    );
}

fn throughput(seconds: u64) {
    let server = server();
    let c = client(&server, Duration::from_secs(1));
    let events = server.events().clone();
    let counter = std::thread::spawn(move || {
        let mut received = 0u64;
        let mut expected = 0u64;
        let mut first: Option<Instant> = None;
        let mut last = Instant::now();
        while let Ok(e) = events.recv_timeout(Duration::from_secs(2)) {
            if let ServerEvent::Samples { seq, records, .. } = e {
                first.get_or_insert_with(Instant::now);
                assert!(seq >= expected, "out of order");
                expected = seq + records.len() as u64;
                received += records.len() as u64;
                last = Instant::now();
            }
        }
        (received, first.map(|f| last - f))
    });
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut i = 0u64;
    while Instant::now() < end {
        for _ in 0..1024 {
            assert!(c.push_sample_blocking(record(i)));
            i += 1;
        }
    }
    // Let the backlog drain, then stop.
    while c.counters().snapshot().backlog > 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    let dropped = c.counters().snapshot().samples_dropped;
    let refused = c.counters().snapshot().samples_refused;
    c.close();
    let (received, span) = counter.join().unwrap();
    server.shutdown();
    let span = span.unwrap_or_default().as_secs_f64().max(1e-9);
    println!(
        "link/throughput: {received} records in {span:.2} s = {:.0} records/s delivered (pushed {i}, ring drops {dropped}, refused {refused})",
        received as f64 / span
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run briefly then.
    let benching = std::env::args().any(|a| a == "--bench");
    let seconds = std::env::var("SARLINK_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 5 } else { 1 });
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if wanted("rtt") {
        rtt(seconds);
    }
    if wanted("throughput") {
        throughput(seconds);
    }
}
