//! Loopback measurements through the whole sarlink-link stack: client thread, TCP, the
//! server's event loop, and back.
//!
//! - `rtt`: ping round trips on one idle connection (pings every millisecond); prints
//!   p50/p90/p99/max.
//! - `throughput`: one connection under backlog: a producer pushes records as fast as the
//!   client takes them; prints records per second delivered to the server application.
//!
//! Each runs twice, over plaintext TCP and over TLS 1.3 with mutual authentication (a
//! throwaway fleet CA made with rcgen), so the two are compared from one run.
//!
//! Run: `cargo bench -p sarlink-benches --bench link` (set `SARLINK_BENCH_SECONDS` to
//! change the run length, default 5).

use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use sarlink_link::SessionConfig;
use sarlink_link::driver::{Client, ClientConfig, ClientEvent, Server, ServerConfig, ServerEvent};
use sarlink_link::tls::{ClientTls, ServerTls};
use sarlink_schema::{NodeName, Role};
use sarlink_testkit::record;

/// TLS settings for both ends, from a fresh fleet CA.
#[derive(Clone)]
struct Tls {
    server: ServerTls,
    client: ClientTls,
}

fn fleet() -> Tls {
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "bench CA");
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = p.self_signed(&ca_key).unwrap();
    let issue = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![name.to_owned()]).unwrap();
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (ground_cert, ground_key) = issue("ground");
    let (bench_cert, bench_key) = issue("bench");
    let ca_pem = ca.pem();
    Tls {
        server: ServerTls::from_pem(
            ca_pem.as_bytes(),
            ground_cert.as_bytes(),
            ground_key.as_bytes(),
            b"",
        )
        .unwrap(),
        client: ClientTls::from_pem(
            ca_pem.as_bytes(),
            bench_cert.as_bytes(),
            bench_key.as_bytes(),
            "ground",
        )
        .unwrap(),
    }
}

fn label(tls: &Option<Tls>) -> &'static str {
    if tls.is_some() { "tls" } else { "plaintext" }
}

fn server(tls: &Option<Tls>) -> Server {
    let mut session = SessionConfig::new(Role::Ground, NodeName::new("ground").unwrap(), 1);
    // The throughput run pushes millions of samples a second, thousands of times faster than
    // any real sender (the sample window assumes at most `max_sample_rate`, 1,000 a second):
    // whatever its ring evicts under backlog is a gap here, not a false claim.
    session.max_seq_ahead = u64::MAX;
    let mut config = ServerConfig::new(session);
    config.tls = tls.as_ref().map(|t| t.server.clone());
    Server::bind("127.0.0.1:0", config).expect("bind")
}

fn client(server: &Server, ping: Duration, tls: &Option<Tls>) -> Client {
    let mut session = SessionConfig::new(Role::Drone, NodeName::new("bench").unwrap(), 2);
    session.ping_interval = ping;
    let mut config = ClientConfig::new(session, server.local_addr().to_string());
    config.tls = tls.as_ref().map(|t| t.client.clone());
    let c = Client::spawn(config).expect("spawn");
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

fn rtt(seconds: u64, tls: &Option<Tls>) {
    let server = server(tls);
    let c = client(&server, Duration::from_millis(1), tls);
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
        "link/rtt ({}): {} pings  p50 {:.1} us  p90 {:.1} us  p99 {:.1} us  max {:.1} us",
        label(tls),
        rtts.len(),
        percentile(&rtts, 0.50).as_secs_f64() * 1e6,
        percentile(&rtts, 0.90).as_secs_f64() * 1e6,
        percentile(&rtts, 0.99).as_secs_f64() * 1e6,
        rtts.last().unwrap().as_secs_f64() * 1e6,
    );
}

fn throughput(seconds: u64, tls: &Option<Tls>) {
    let server = server(tls);
    let c = client(&server, Duration::from_secs(1), tls);
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
    // Let the backlog drain (for at most a minute), then stop.
    let drain_end = Instant::now() + Duration::from_secs(60);
    while c.counters().snapshot().backlog > 0 && Instant::now() < drain_end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let reconnects: Vec<String> = c
        .events()
        .try_iter()
        .filter_map(|e| match e {
            ClientEvent::Disconnected { cause, .. } => Some(cause.to_string()),
            _ => None,
        })
        .collect();
    if !reconnects.is_empty() {
        println!(
            "link/throughput ({}): disconnected {reconnects:?}",
            label(tls)
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    let dropped = c.counters().snapshot().samples_dropped;
    let refused = c.counters().snapshot().samples_refused;
    c.close();
    let (received, span) = counter.join().unwrap();
    server.shutdown();
    let span = span.unwrap_or_default().as_secs_f64().max(1e-9);
    println!(
        "link/throughput ({}): {received} records in {span:.2} s = {:.0} records/s delivered (pushed {i}, ring drops {dropped}, refused {refused})",
        label(tls),
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
    let modes = [None, Some(fleet())];
    for tls in &modes {
        if wanted("rtt") {
            rtt(seconds, tls);
        }
    }
    for tls in &modes {
        if wanted("throughput") {
            throughput(seconds, tls);
        }
    }
}
