//! Monitoring that acts, with real processes: a real `sarlink-drone` streaming from its
//! simulator to a real `sarlink-ground` on loopback.
//!
//! - Busy loops pin every core of this machine: the drone sheds (log line, `status` to the
//!   ground, `/metrics`) within 7 s, keeps streaming with nothing lost, and restores every
//!   feature, one class at a time, within 20 s of the load ending.
//! - 60 ms of latency on the link (the fault proxy): a critical RTT alert within 10 s, and
//!   its clear within 15 s of the latency ending.
//!
//! Both read the whole machine's CPU, so they need a machine that is not already above the
//! controller's recovery threshold (70 %) before they add their own load: they wait for
//! that (up to 3 minutes) and fail saying so if it never comes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// The two tests run one after the other: the RTT test's processes would otherwise be
/// load on the machine the busy-loop test measures.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whole-machine busy share over `over`, from `/proc/stat` (`None` without it).
fn machine_cpu(over: Duration) -> Option<f64> {
    let read = || -> Option<(u64, u64)> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let line = text.lines().next()?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|w| w.parse().ok())
            .collect();
        let total: u64 = v.iter().sum();
        let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
        Some((total, idle))
    };
    let (t0, i0) = read()?;
    std::thread::sleep(over);
    let (t1, i1) = read()?;
    let dt = t1.checked_sub(t0)?;
    (dt > 0).then(|| 100.0 * (dt - (i1 - i0)) as f64 / dt as f64)
}

/// Waits until the machine has been below 60 % busy for 3 s in a row.
fn wait_for_a_calm_machine() {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut calm = 0;
    let mut last = 0.0;
    while calm < 3 {
        assert!(
            Instant::now() < deadline,
            "this machine stayed busy ({last:.0} % CPU) for 3 minutes: the drone would rightly shed on its own and never recover, so this test cannot run now"
        );
        last = machine_cpu(Duration::from_secs(1)).expect("/proc/stat");
        calm = if last < 60.0 { calm + 1 } else { 0 };
    }
}

/// Busy loops, one per CPU, killed when dropped.
struct Load(Vec<Child>);

impl Load {
    fn start() -> Load {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        Load(
            (0..n)
                .map(|_| {
                    Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap()
                })
                .collect(),
        )
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A drone with its stderr (the log) in `log`.
fn drone_logging(port: u16, log: &Path, extra: &[&str]) -> Proc {
    let mut c = clean(Command::new(drone_bin()));
    c.args(["--connect", &format!("127.0.0.1:{port}"), "--quiet"])
        .args(["--sample-rate", "250k"])
        .args(extra)
        .args(insecure_unless_protected(extra))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    Proc(c.spawn().unwrap())
}

fn log_lines(log: &Path, containing: &str) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(containing))
        .map(str::to_owned)
        .collect()
}

/// The value of `name{labels}` in Prometheus text from `addr`.
fn metric(addr: &str, series: &str) -> Option<f64> {
    let (_, body) = http_get(addr, "/metrics")?;
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// `features=a,b` of a degradation log line.
fn features_of(line: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("features="))
        .unwrap_or("")
        .to_owned()
}

/// The `rssi` records of `node` in the ground's JSON lines: (stream, seq, timestamp_ns).
fn records(path: &Path, node: &str) -> Vec<(String, u64, i64)> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter(|v| v["type"] == "rssi" && v["node"] == node)
        .map(|v| {
            (
                v["stream"].as_str().unwrap_or("").to_owned(),
                v["seq"].as_u64().unwrap_or(u64::MAX),
                v["timestamp_ns"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

fn unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

#[test]
fn busy_loops_on_every_core_make_the_drone_shed_within_7_s_and_restore_within_20_s() {
    // The drone rightly reads the whole machine: when other work on this shared machine
    // pushes it over the recovery threshold after our load ends, the drone must not
    // recover, and the attempt proves nothing either way. Such an attempt (seen by this
    // test's own /proc/stat readings) is run again; a drone that does not recover while
    // the machine is calm fails at once.
    let _serial = one_at_a_time();
    for attempt in 1..=3 {
        wait_for_a_calm_machine();
        if busy_attempt(attempt) {
            return;
        }
        eprintln!(
            "attempt {attempt}: other work held this machine at 70 % or more while the drone should recover; trying again"
        );
    }
    panic!("three attempts disturbed by other work on this machine");
}

/// One run of the scenario; false when the machine itself was busy during recovery.
fn busy_attempt(attempt: u32) -> bool {
    let dir = temp_dir(&format!("busy-{attempt}"));
    let out = dir.join("out.jsonl");
    let log = dir.join("drone.log");
    let port = free_port();
    let ground_http = format!("127.0.0.1:{}", free_port());
    let drone_http = format!("127.0.0.1:{}", free_port());
    let _g = ground(
        port,
        &[
            "--output-file",
            out.to_str().unwrap(),
            "--http",
            &ground_http,
        ],
    );
    let mut d = drone_logging(
        port,
        &log,
        &["--node", "busy", "--rate", "10", "--http", &drone_http],
    );
    let level = "sarlink_drone_degradation_level{node=\"busy\"}";
    // Streaming, and reported normal, before the load.
    wait_for("the drone's first status", Duration::from_secs(20), || {
        metric(&ground_http, level) == Some(0.0) && records(&out, "busy").len() >= 20
    });
    assert!(log_lines(&log, "degradation:").is_empty(), "calm so far");

    let load = Load::start();
    let load_start = Instant::now();
    let load_start_ns = unix_ns();
    // The first shed feature, logged and reported to the ground, within 7 s.
    let mut logged = None;
    let mut reported = None;
    while (logged.is_none() || reported.is_none()) && load_start.elapsed() < Duration::from_secs(7)
    {
        if logged.is_none() && !log_lines(&log, "degradation: shedding").is_empty() {
            logged = Some(load_start.elapsed());
        }
        if reported.is_none() && metric(&ground_http, level).is_some_and(|l| l >= 3.0) {
            reported = Some(load_start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let shed = log_lines(&log, "degradation: shedding");
    assert!(
        logged.is_some(),
        "no shed logged within 7 s of the load; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        reported.is_some(),
        "the ground saw no shedding level within 7 s"
    );
    // The log line names the features and the readings that caused it.
    assert!(shed[0].contains("status-line"), "{}", shed[0]);
    assert!(shed[0].contains("cpu "), "{}", shed[0]);
    // The drone's own metrics say so too.
    assert_eq!(
        metric(
            &drone_http,
            "sarlink_feature_enabled{feature=\"status-line\"}"
        ),
        Some(0.0)
    );
    // Hold the load for 15 s in all, then end it.
    std::thread::sleep(Duration::from_secs(15).saturating_sub(load_start.elapsed()));
    drop(load);
    let load_end = Instant::now();
    let load_end_ns = unix_ns();

    // Every feature back within 20 s, one class at a time, unless other work keeps the
    // machine busy (the first second after the load may still hold some of it).
    let mut disturbed = None;
    while log_lines(&log, "degradation: restoring").len() < 3
        && load_end.elapsed() < Duration::from_secs(20)
    {
        let cpu = machine_cpu(Duration::from_secs(1)).unwrap_or(0.0);
        if cpu >= 70.0 && load_end.elapsed() > Duration::from_millis(2500) {
            disturbed = Some(cpu);
        }
    }
    let restores = log_lines(&log, "degradation: restoring").len();
    if restores < 3 {
        if let Some(cpu) = disturbed {
            eprintln!("the machine was at {cpu:.0} % while the drone should have recovered");
            return false;
        }
        panic!(
            "{restores} of 3 classes restored within 20 s of the load ending on a calm machine; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let restored: Vec<String> = log_lines(&log, "degradation: restoring")
        .iter()
        .map(|l| features_of(l))
        .collect();
    assert_eq!(
        restored,
        [
            "status-detail,mavlink-extras",
            "smoothing,dashboard-rate",
            "status-line"
        ],
        "one class at a time, most important first"
    );
    eprintln!(
        "shed logged {:.1} s and reported {:.1} s after the load started; every feature back {:.1} s after it ended",
        logged.unwrap_or_default().as_secs_f64(),
        reported.unwrap_or_default().as_secs_f64(),
        load_end.elapsed().as_secs_f64()
    );
    wait_for("the ground to see normal", Duration::from_secs(5), || {
        metric(&ground_http, level) == Some(0.0)
    });

    // Nothing lost: one stream, every seq from 0, and records all through the load.
    d.signal("-TERM");
    assert!(d.wait_exit(Duration::from_secs(10)).is_some());
    std::thread::sleep(Duration::from_millis(500));
    let recs = records(&out, "busy");
    assert!(recs.iter().all(|r| r.0 == recs[0].0), "one stream");
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.1, i as u64, "seq {i} missing or out of order");
    }
    let during = recs
        .iter()
        .filter(|r| (load_start_ns..load_end_ns).contains(&r.2))
        .count();
    let seconds = (load_end_ns - load_start_ns) as f64 / 1e9;
    // High pressure keeps the configured 10 Hz (class 3 is not shed); a debug build under
    // full load may measure a little late, but it keeps streaming.
    assert!(
        during as f64 >= 5.0 * seconds,
        "{during} records in {seconds:.1} s of load"
    );
    true
}

#[test]
fn latency_on_the_link_raises_a_critical_rtt_alert_and_clears_it() {
    let _serial = one_at_a_time();
    let dir = temp_dir("rtt");
    let log = dir.join("drone.log");
    let port = free_port();
    let drone_http = format!("127.0.0.1:{}", free_port());
    let _g = ground(port, &[]);
    let proxy = sarlink_testkit::proxy::FaultProxy::start("127.0.0.1:0", ("127.0.0.1", port))
        .expect("proxy");
    let _d = drone_logging(
        proxy.local_addr().port(),
        &log,
        &["--node", "far", "--http", &drone_http],
    );
    let critical = "sarlink_alerts_active{kind=\"link_rtt\",severity=\"critical\"}";
    wait_for("the link and its metrics", Duration::from_secs(20), || {
        metric(&drone_http, critical) == Some(0.0)
            && metric(&drone_http, "sarlink_drone_link_rtt_seconds{node=\"far\"}")
                .is_some_and(f64::is_finite)
    });
    // A few pings on the fast link first.
    std::thread::sleep(Duration::from_secs(3));
    assert!(log_lines(&log, "link_rtt").is_empty(), "no RTT alert yet");

    proxy.set_latency(Duration::from_millis(60), Duration::ZERO);
    let start = Instant::now();
    wait_for("a critical RTT alert", Duration::from_secs(10), || {
        log_lines(&log, "alert raised")
            .iter()
            .any(|l| l.contains("kind=\"link_rtt\"") || l.contains("kind=link_rtt"))
            && metric(&drone_http, critical) == Some(1.0)
    });
    let raised = log_lines(&log, "alert raised");
    assert!(raised.iter().any(|l| l.contains("critical")), "{raised:?}");
    // Keep the latency 12 s in all (the clear is rate limited to 10 s after the raise).
    std::thread::sleep(Duration::from_secs(12).saturating_sub(start.elapsed()));
    proxy.set_latency(Duration::ZERO, Duration::ZERO);
    wait_for("the RTT alert to clear", Duration::from_secs(15), || {
        log_lines(&log, "alert cleared")
            .iter()
            .any(|l| l.contains("link_rtt"))
            && metric(&drone_http, critical) == Some(0.0)
    });
}
