// A one-off probe, kept so the measurement in docs/BENCHMARKS.md ("Prometheus exposition:
// hand-written or prometheus-client") can be repeated. It is not part of the workspace (it
// would add prometheus-client to the lock file only to lose to it). To run it:
//   cargo new --bin /tmp/probe && cp docs/probes/prometheus_encoders.rs /tmp/probe/src/main.rs
//   cd /tmp/probe && cargo add prometheus-client@0.26 && \
//     cargo add sarlink-monitor --path <this repository>/crates/sarlink-monitor
//   cargo run --release
// One-off comparison for issue 17: the hand-written exporter of sarlink-monitor against
// prometheus-client 0.26, on the ground's per-drone series (64 drones x 10 series).
use std::time::Instant;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::atomic::AtomicU64;

const GAUGES: [&str; 8] = ["sarlink_rssi_dbm", "sarlink_snr_db", "sarlink_drone_link_state",
  "sarlink_drone_link_rtt_seconds", "sarlink_drone_link_quality", "sarlink_drone_active_source",
  "sarlink_drone_fallback", "sarlink_drone_degradation_level"];
const COUNTERS: [&str; 2] = ["sarlink_drone_records", "sarlink_drone_record_gaps"];

fn main() {
    let drones = 64;
    let iters = 2000;
    // Ours.
    let r = sarlink_monitor::metrics::Registry::new();
    for d in 0..drones {
        let node = format!("drone-{d}");
        for g in GAUGES { r.gauge(g, "help text", &[("node", &node)]).unwrap().set(-71.25 + d as f64); }
        for c in COUNTERS { r.counter(c, "help text", &[("node", &node)]).unwrap().add(12345 + d); }
    }
    let mut bytes = 0;
    let t = Instant::now();
    for _ in 0..iters { bytes = r.snapshot().to_prometheus_text().len(); }
    let ours = t.elapsed() / iters;
    let t = Instant::now();
    let mut direct_bytes = 0;
    for _ in 0..iters { direct_bytes = r.to_prometheus_text().len(); }
    let direct = t.elapsed() / iters;
    assert_eq!(direct_bytes, bytes);
    // prometheus-client.
    let mut reg = prometheus_client::registry::Registry::default();
    let gauges: Vec<Family<Vec<(String, String)>, Gauge<f64, AtomicU64>>> = GAUGES.iter().map(|g| {
        let f = Family::<Vec<(String, String)>, Gauge<f64, AtomicU64>>::default();
        reg.register(*g, "help text", f.clone()); f }).collect();
    let counters: Vec<Family<Vec<(String, String)>, Counter>> = COUNTERS.iter().map(|c| {
        let f = Family::<Vec<(String, String)>, Counter>::default();
        reg.register(*c, "help text", f.clone()); f }).collect();
    for d in 0..drones {
        let l = vec![("node".to_owned(), format!("drone-{d}"))];
        for g in &gauges { g.get_or_create(&l).set(-71.25 + d as f64); }
        for c in &counters { c.get_or_create(&l).inc_by(12345 + d); }
    }
    let mut theirs_bytes = 0;
    let t = Instant::now();
    for _ in 0..iters { let mut s = String::new(); encode(&mut s, &reg).unwrap(); theirs_bytes = s.len(); }
    let theirs = t.elapsed() / iters;
    // Setting one gauge (the data plane's cost per series per publication).
    let g = r.gauge("sarlink_rssi_dbm", "", &[("node", "drone-1")]).unwrap();
    let n = 10_000_000u32;
    let t = Instant::now();
    for i in 0..n { g.set(f64::from(i)); }
    let ours_set = t.elapsed() / n;
    let pg = gauges[0].get_or_create(&vec![("node".to_owned(), "drone-1".to_owned())]);
    let t = Instant::now();
    for i in 0..n { pg.set(f64::from(i)); }
    let theirs_set = t.elapsed() / n;
    println!("{drones} drones x 10 series: hand-written via Snapshot {ours:?} per /metrics ({bytes} B), hand-written direct {direct:?}, prometheus-client {theirs:?} ({theirs_bytes} B); gauge set: ours {ours_set:?}, theirs {theirs_set:?}");
}
