//! End to end with real processes on loopback: `sarlink-ground` and `sarlink-drone`.
//!
//! The drone binary is found beside the ground binary; `cargo test --workspace` builds both.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// Output lines of type `rssi` from `node`, as JSON.
fn records(path: &Path, node: &str) -> Vec<serde_json::Value> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter(|v| v["type"] == "rssi" && v["node"] == node)
        .collect()
}

#[test]
fn a_drone_streams_a_real_capture_and_the_ground_writes_every_field() {
    let Some(capture) = sarlink_testkit::iq_capture("g001_433.92M_250k.cu8") else {
        return;
    };
    let dir = temp_dir("capture");
    let out = dir.join("out.jsonl");
    let port = free_port();
    let _g = ground(port, &["--output-file", out.to_str().unwrap()]);
    let mut d = drone(
        port,
        &[
            "--node",
            "cap",
            "--source",
            &format!("file:{}", capture.display()),
            "--seconds",
            "3",
        ],
    );
    assert!(
        d.wait_exit(Duration::from_secs(20))
            .is_some_and(|s| s.success()),
        "the drone exits cleanly after --seconds"
    );
    wait_for("records", Duration::from_secs(5), || {
        records(&out, "cap").len() >= 20
    });
    let recs = records(&out, "cap");
    let stream = recs[0]["stream"].as_str().unwrap().to_owned();
    assert!(
        stream.parse::<u64>().is_ok(),
        "a 64-bit id as a string: {stream}"
    );
    let mut last_ts = 0;
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(
            r["seq"].as_u64(),
            Some(i as u64),
            "seq in order, none missing"
        );
        assert_eq!(r["stream"].as_str(), Some(stream.as_str()));
        assert_eq!(
            r["frequency_hz"].as_u64(),
            Some(433_920_000),
            "the capture's own centre"
        );
        assert_eq!(r["source_id"].as_u64(), Some(0));
        let q = r["quality_score"].as_u64().unwrap();
        assert!(q <= 100);
        assert_eq!(r["units"], "dbfs", "an uncalibrated drone says so");
        let rssi = r["rssi"].as_f64().unwrap();
        assert!(
            (-120.0..=0.0).contains(&rssi),
            "dBFS of a real capture: {rssi}"
        );
        let ts = r["timestamp_ns"].as_i64().unwrap();
        assert!(ts > last_ts, "timestamps increase");
        last_ts = ts;
    }
}

#[test]
fn a_ground_killed_mid_stream_loses_and_duplicates_nothing_on_restart() {
    let dir = temp_dir("restart");
    let out = dir.join("out.jsonl");
    let port = free_port();
    let out_arg = out.to_str().unwrap().to_owned();
    let mut g = ground(port, &["--output-file", &out_arg]);
    let mut d = drone(port, &["--node", "r1", "--rate", "20"]);
    wait_for("first records", Duration::from_secs(10), || {
        records(&out, "r1").len() >= 20
    });
    g.signal("-KILL");
    g.wait_exit(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(1500)); // the drone measures alone meanwhile
    let before = records(&out, "r1").len();
    let _g = ground(port, &["--output-file", &out_arg]);
    wait_for("the drone to catch up", Duration::from_secs(20), || {
        records(&out, "r1").len() >= before + 60
    });
    d.signal("-TERM");
    assert!(
        d.wait_exit(Duration::from_secs(5))
            .is_some_and(|s| s.success()),
        "SIGTERM exits 0"
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    for r in records(&out, "r1") {
        *seen.entry(r["seq"].as_u64().unwrap()).or_default() += 1;
    }
    let n = seen.len() as u64;
    assert!(n >= 80);
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>(),
        "no seq missing"
    );
    assert!(
        seen.values().all(|c| *c == 1),
        "no seq twice: {:?}",
        seen.iter().filter(|(_, c)| **c > 1).collect::<Vec<_>>()
    );
}

fn cmd(port: u16, words: &[&str]) -> (i32, String) {
    let out = clean(Command::new(ground_bin()))
        .args([
            "cmd",
            "--connect",
            &format!("127.0.0.1:{port}"),
            "--target",
            "c1",
        ])
        .args(words)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn commands_change_the_reported_frequency_and_out_of_range_is_refused() {
    let dir = temp_dir("cmd");
    let out = dir.join("out.jsonl");
    let port = free_port();
    let _g = ground(port, &["--output-file", out.to_str().unwrap()]);
    let _d = drone(
        port,
        &["--node", "c1", "--source", "sim", "--frequency", "406.028M"],
    );
    wait_for("records", Duration::from_secs(10), || {
        !records(&out, "c1").is_empty()
    });
    assert_eq!(
        records(&out, "c1")[0]["frequency_hz"].as_u64(),
        Some(406_028_000)
    );
    let (code, text) = cmd(port, &["tune", "406.5e6"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok"), "{text}");
    wait_for("the new frequency", Duration::from_secs(5), || {
        records(&out, "c1")
            .last()
            .is_some_and(|r| r["frequency_hz"].as_u64() == Some(406_500_000))
    });
    let (code, text) = cmd(port, &["tune", "5e6"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("refused (range)"), "{text}");
    let (code, text) = cmd(port, &["rate", "500"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("range"), "{text}");
}

#[test]
fn keys_admit_the_right_drone_and_keep_others_out() {
    let dir = temp_dir("keys");
    let key = dir.join("key");
    std::fs::write(&key, "correct horse battery staple\n").unwrap();
    let wrong = dir.join("wrong");
    std::fs::write(&wrong, "a different sixteen+ byte key\n").unwrap();
    let out = dir.join("out.jsonl");
    let port = free_port();
    let key_arg = format!("--key-file={}", key.display());
    let _g = ground(port, &["--output-file", out.to_str().unwrap(), &key_arg]);
    let _right = drone(port, &["--node", "right", &key_arg]);
    let _wrong = drone(
        port,
        &[
            "--node",
            "wrong",
            &format!("--key-file={}", wrong.display()),
        ],
    );
    let _none = drone(port, &["--node", "keyless"]);
    wait_for("the keyed drone's records", Duration::from_secs(30), || {
        records(&out, "right").len() >= 10
    });
    assert!(records(&out, "wrong").is_empty(), "a wrong key is rejected");
    assert!(records(&out, "keyless").is_empty(), "no key is rejected");

    // A drone holding a key refuses a ground that cannot prove it (a keyless ground).
    let out2 = dir.join("out2.jsonl");
    let port2 = free_port();
    let _g2 = ground(port2, &["--output-file", out2.to_str().unwrap()]);
    let _k = drone(port2, &["--node", "careful", &key_arg]);
    let _control = drone(port2, &["--node", "control"]);
    wait_for(
        "the control drone's records",
        Duration::from_secs(30),
        || records(&out2, "control").len() >= 10,
    );
    assert!(
        records(&out2, "careful").is_empty(),
        "the keyed drone sent nothing to an unproven ground"
    );
}

#[test]
fn the_demo_shows_a_fallback_and_a_recovery() {
    let out = clean(Command::new(ground_bin()))
        .args(["demo", "--seconds", "20"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("FALLBACK (link_lost)"), "{text}");
    let summary = text.split("summary").nth(1).expect("a summary");
    assert!(
        summary.contains("decided on the drone:") && summary.contains("fallbacks 1, recoveries 1"),
        "{summary}"
    );
    assert!(
        summary.contains("the ground heard 1 fallbacks"),
        "{summary}"
    );
    assert!(summary.contains(", lost 0"), "{summary}");
}

#[test]
fn the_demo_with_a_simulated_vehicle_geotags_records_that_close_on_the_beacon() {
    let out = clean(Command::new(ground_bin()))
        .args(["demo", "--seconds", "16", "--mavlink", "sim"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // "  5s | -60.1 dBFS snr ... | at -33.84, 151.20990, 120 m"
    let tagged: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let rssi: f64 = l
                .split('|')
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            let lat: f64 = l
                .split("| at ")
                .nth(1)?
                .split(',')
                .next()?
                .trim()
                .parse()
                .ok()?;
            Some((rssi, lat))
        })
        .collect();
    assert!(tagged.len() >= 8, "{text}");
    let (first, last) = (tagged[0], tagged[tagged.len() - 1]);
    // The vehicle flies south to the beacon at -33.865143: closer, and louder.
    assert!(
        last.1 < first.1 && last.1 > -33.8652,
        "{first:?} -> {last:?}\n{text}"
    );
    assert!(
        last.0 > first.0 + 10.0,
        "RSSI {first:?} -> {last:?}\n{text}"
    );
    assert!(
        text.contains("flight controller sim: ") && text.contains("show a geotagged record"),
        "{text}"
    );
}

#[test]
fn observers_get_records_and_decisions_and_sigterm_says_bye_and_exits_0() {
    use sarlink_link::SessionConfig;
    use sarlink_link::driver::{Client, ClientConfig, ClientEvent};
    use sarlink_schema::{NodeName, Role};
    let port = free_port();
    let mut g = ground(port, &["--output", "none"]);
    let _d = drone(port, &["--node", "o1", "--source", "sim"]);
    let observer = Client::spawn(ClientConfig::new(
        SessionConfig::new(Role::Observer, NodeName::new("watcher").unwrap(), 9),
        format!("127.0.0.1:{port}"),
    ))
    .unwrap();
    let (mut records, mut decisions) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while (records < 10 || decisions < 1) && Instant::now() < deadline {
        match observer.events().recv_timeout(Duration::from_millis(200)) {
            Ok(ClientEvent::Samples { records: r, .. }) => {
                assert!(
                    r.iter().all(|x| x.source_id.get() == 0),
                    "the drone's records, relayed"
                );
                records += r.len();
            }
            Ok(ClientEvent::Decision(d)) => {
                assert!(!d.reason.is_empty());
                decisions += 1;
            }
            _ => {}
        }
    }
    assert!(
        records >= 10 && decisions >= 1,
        "observer saw {records} records and {decisions} decisions"
    );
    g.signal("-TERM");
    let status = g
        .wait_exit(Duration::from_secs(5))
        .expect("the ground exits on SIGTERM");
    assert!(status.success(), "{status:?}");
    let code = loop {
        match observer
            .events()
            .recv_timeout(Duration::from_secs(5))
            .expect("the observer hears the ground leave")
        {
            ClientEvent::Disconnected { cause, .. } => break cause.code(),
            _ => continue,
        }
    };
    assert_eq!(code, Some(sarlink_wire::CloseCode::Shutdown), "a clean bye");
    observer.close();
}

/// Decision lines the drone's flight recorder wrote: (t_ns, source_id, fallback, reason).
fn decisions(path: &Path) -> Vec<(i64, u64, bool, String)> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter(|v| v["type"] == "decision")
        .map(|v| {
            (
                v["timestamp_ns"].as_i64().unwrap(),
                v["source_id"].as_u64().unwrap(),
                v["fallback"].as_bool().unwrap(),
                v["reason"].as_str().unwrap().to_owned(),
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
fn the_drone_decides_falls_back_when_the_ground_dies_and_recovers_after_the_hold_down() {
    let dir = temp_dir("coordination");
    let local = dir.join("drone.jsonl");
    let ground_out = dir.join("ground.jsonl");
    let port = free_port();
    // The ground's own receiver is 300 m from the beacon; the drone's is 3 km away.
    // 250 kS/s keeps the simulators real-time in a debug build on a busy machine.
    let ground_args = [
        "--source",
        "sim:300",
        "--sample-rate",
        "250k",
        "--output-file",
        ground_out.to_str().unwrap(),
    ];
    let mut g = ground(port, &ground_args);
    let _d = drone(
        port,
        &[
            "--node",
            "homer",
            "--source",
            "sim:3000",
            "--sample-rate",
            "250k",
            "--output-file",
            local.to_str().unwrap(),
        ],
    );
    // 1. The drone hears both receivers and chooses the ground's within 2 s of its first
    //    record.
    wait_for(
        "the drone to choose the ground",
        Duration::from_secs(20),
        || decisions(&local).iter().any(|d| d.1 == 1) && !records(&local, "homer").is_empty(),
    );
    let first_record = records(&local, "homer")[0]["timestamp_ns"]
        .as_i64()
        .unwrap();
    let chose_ground = decisions(&local).iter().find(|d| d.1 == 1).unwrap().0;
    assert!(
        chose_ground - first_record <= 2_000_000_000,
        "chose the ground {} ms after its first record",
        (chose_ground - first_record) / 1_000_000
    );
    assert!(
        !records(&local, "ground").is_empty(),
        "the ground's records reach the drone's recorder"
    );
    // The ground writes the drone's decisions (it decides nothing itself).
    wait_for(
        "the ground to write the decision",
        Duration::from_secs(5),
        || {
            std::fs::read_to_string(&ground_out)
                .unwrap_or_default()
                .lines()
                .any(|l| l.contains("\"type\":\"decision\"") && l.contains("\"node\":\"homer\""))
        },
    );
    // 2. Kill the ground: the drone falls back to its own receiver within 3.5 s.
    std::thread::sleep(Duration::from_secs(1));
    let killed_at = unix_ns();
    g.signal("-KILL");
    g.wait_exit(Duration::from_secs(5));
    wait_for("the fallback", Duration::from_secs(10), || {
        decisions(&local)
            .iter()
            .any(|d| d.0 >= killed_at && d.2 && d.1 == 0)
    });
    let fallback = decisions(&local)
        .into_iter()
        .find(|d| d.0 >= killed_at && d.2)
        .unwrap();
    assert!(
        fallback.0 - killed_at <= 3_500_000_000,
        "fell back {} ms after the kill ({fallback:?})",
        (fallback.0 - killed_at) / 1_000_000
    );
    // 3. Restart the ground: recovery follows the 5 s hold-down.
    std::thread::sleep(Duration::from_secs(1));
    let restarted_at = unix_ns();
    let _g = ground(port, &ground_args);
    wait_for("the recovery", Duration::from_secs(20), || {
        decisions(&local)
            .iter()
            .any(|d| d.0 >= restarted_at && !d.2)
    });
    let recovery = decisions(&local)
        .into_iter()
        .find(|d| d.0 >= restarted_at && !d.2)
        .unwrap();
    let after_ms = (recovery.0 - restarted_at) / 1_000_000;
    assert!(
        after_ms >= 5_000,
        "recovered {after_ms} ms after the restart, before the hold-down: {recovery:?}"
    );
    assert_eq!(
        recovery.1, 1,
        "back on the stronger ground receiver: {recovery:?}"
    );
}

/// Every (seq -> count) of node `node`'s records in a JSON-lines file, skipping lines that
/// are not whole records (a line cut short by a full disk).
fn seq_counts(path: &Path, node: &str) -> BTreeMap<u64, u32> {
    let mut seen = BTreeMap::new();
    for r in records(path, node) {
        *seen.entry(r["seq"].as_u64().unwrap()).or_default() += 1;
    }
    seen
}

fn assert_exactly_once(seen: &BTreeMap<u64, u32>, at_least: u64) {
    let n = seen.len() as u64;
    assert!(n >= at_least, "only {n} records");
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>(),
        "no seq missing"
    );
    assert!(
        seen.values().all(|c| *c == 1),
        "no seq twice: {:?}",
        seen.iter().filter(|(_, c)| **c > 1).collect::<Vec<_>>()
    );
}

#[test]
fn twenty_kill_9s_at_random_points_lose_and_duplicate_nothing() {
    let dir = temp_dir("kills");
    let out = dir.join("out.jsonl");
    let out_arg = out.to_str().unwrap().to_owned();
    let port = free_port();
    let mut seed = u64::from(std::process::id()) ^ unix_ns() as u64;
    println!("seed {seed}");
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed >> 33
    };
    let mut g = ground(port, &["--output-file", &out_arg]);
    let mut d = drone(port, &["--node", "k1", "--rate", "50"]);
    wait_for("first records", Duration::from_secs(10), || {
        !records(&out, "k1").is_empty()
    });
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100 + next() % 500));
        g.signal("-KILL");
        g.wait_exit(Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(next() % 300));
        g = ground(port, &["--output-file", &out_arg]);
    }
    let before = records(&out, "k1").len();
    wait_for("the drone to catch up", Duration::from_secs(30), || {
        records(&out, "k1").len() >= before + 100
    });
    d.signal("-TERM");
    assert!(
        d.wait_exit(Duration::from_secs(5))
            .is_some_and(|s| s.success())
    );
    std::thread::sleep(Duration::from_millis(300));
    drop(g);
    assert_exactly_once(&seq_counts(&out, "k1"), 200);
}

#[test]
fn an_output_that_is_a_device_or_a_fifo_is_refused_at_start() {
    let dir = temp_dir("notfile");
    let fifo = dir.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for target in [PathBuf::from("/dev/full"), fifo] {
        let port = free_port();
        let mut c = clean(Command::new(ground_bin()));
        c.args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--quiet",
            "--insecure",
            "--output-file",
        ])
        .arg(&target)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut p = Proc(c.spawn().unwrap());
        let status = p
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{} was not refused at start", target.display()));
        assert!(!status.success());
        let mut err = String::new();
        std::io::Read::read_to_string(p.0.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(
            err.contains("not a regular file"),
            "{}: {err}",
            target.display()
        );
    }
}

/// A tmpfs of `kib` KiB mounted at `dir` for the test's life (needs root: skipped without).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, kib: u32) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_loses_no_acknowledged_record_and_the_held_ones_arrive_when_space_returns() {
    let dir = temp_dir("full");
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let Some(_fs) = Tmpfs::mount(&mnt, 256) else {
        eprintln!("skipping: cannot mount a tmpfs here (needs root)");
        return;
    };
    let out = mnt.join("out.jsonl");
    // Leave room for about 70 records, then the disk is full.
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 256 * 1024 - 20 * 1024]).unwrap();
    let port = free_port();
    let mut g = ground(port, &["--output-file", out.to_str().unwrap()]);
    // 250 kS/s keeps the simulator real-time in a debug build.
    let mut d = drone(
        port,
        &["--node", "f1", "--rate", "20", "--sample-rate", "250k"],
    );
    // Records arrive until the disk is full; then the output stops growing.
    wait_for("the disk to fill", Duration::from_secs(30), || {
        let a = std::fs::metadata(&out).map_or(0, |m| m.len());
        std::thread::sleep(Duration::from_millis(1500));
        a > 0 && a == std::fs::metadata(&out).map_or(0, |m| m.len())
    });
    let written_while_full = seq_counts(&out, "f1").len() as u64;
    // Meanwhile the drone measures on and holds what was not acknowledged.
    std::thread::sleep(Duration::from_secs(2));
    std::fs::remove_file(&filler).unwrap();
    // Two seconds and more at 20 Hz were held on the drone: they arrive, then more.
    wait_for(
        "the held records to arrive",
        Duration::from_secs(40),
        || seq_counts(&out, "f1").len() as u64 >= written_while_full + 100,
    );
    d.signal("-TERM");
    assert!(
        d.wait_exit(Duration::from_secs(5))
            .is_some_and(|s| s.success())
    );
    std::thread::sleep(Duration::from_millis(300));
    g.signal("-TERM");
    g.wait_exit(Duration::from_secs(5));
    assert_exactly_once(&seq_counts(&out, "f1"), written_while_full + 100);
}

#[test]
fn the_ground_prints_its_config_as_toml_that_config_accepts() {
    let run = |args: &[&str]| {
        let out = clean(Command::new(ground_bin()))
            .args(args)
            .arg("--print-config")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let printed = run(&["--fsync", "200ms", "--max-clients", "9", "--output", "csv"]);
    assert!(
        printed.contains("fsync = \"200ms\"  # from command line"),
        "{printed}"
    );
    let dir = temp_dir("printcfg");
    let file = dir.join("ground.toml");
    std::fs::write(&file, &printed).unwrap();
    let again = run(&["--config", file.to_str().unwrap()]);
    let values = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split("  # ").next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(values(&again), values(&printed));
}

/// Commands an rtl_tcp server received (command byte, value), per connection.
type CommandLog = std::sync::Arc<std::sync::Mutex<Vec<Vec<(u8, u32)>>>>;

/// A minimal rtl_tcp server written from osmocom's `rtl_tcp.c`: a 12-byte header ("RTL0",
/// tuner type and gain count, big-endian), then 5-byte commands in (1 byte, u32 BE) and
/// unsigned 8-bit I/Q out. Each connection streams noise for `serve_for`, then closes.
struct RtlTcpServer {
    port: u16,
    commands: CommandLog,
}

impl RtlTcpServer {
    fn start(serve_for: Duration, rate: u32) -> RtlTcpServer {
        Self::start_with_stall(serve_for, rate, None)
    }

    /// Like [`RtlTcpServer::start`], the first connection going silent (open, no samples)
    /// from `stall.0` for `stall.1`.
    fn start_with_stall(
        serve_for: Duration,
        rate: u32,
        stall: Option<(Duration, Duration)>,
    ) -> RtlTcpServer {
        use std::io::{Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let commands: CommandLog = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&commands);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let index = {
                    let mut l = log.lock().unwrap();
                    l.push(Vec::new());
                    l.len() - 1
                };
                let mut header = b"RTL0".to_vec();
                header.extend_from_slice(&5u32.to_be_bytes()); // R820T
                header.extend_from_slice(&29u32.to_be_bytes());
                if stream.write_all(&header).is_err() {
                    continue;
                }
                let mut reader = stream.try_clone().unwrap();
                let log2 = std::sync::Arc::clone(&log);
                std::thread::spawn(move || {
                    let mut cmd = [0u8; 5];
                    while reader.read_exact(&mut cmd).is_ok() {
                        let value = u32::from_be_bytes([cmd[1], cmd[2], cmd[3], cmd[4]]);
                        log2.lock().unwrap()[index].push((cmd[0], value));
                    }
                });
                let started = Instant::now();
                let chunk = (rate as usize / 50) * 2; // 20 ms of I/Q
                let mut noise = vec![0u8; chunk];
                let mut x = 12_345u32;
                while started.elapsed() < serve_for {
                    if let Some((at, len)) = stall.filter(|_| index == 0) {
                        let t = started.elapsed();
                        if t >= at && t < at + len {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    }
                    for b in &mut noise {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        *b = 127 + ((x >> 16) % 7) as u8;
                    }
                    if stream.write_all(&noise).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        });
        RtlTcpServer { port, commands }
    }

    fn connections(&self) -> Vec<Vec<(u8, u32)>> {
        self.commands.lock().unwrap().clone()
    }
}

#[test]
fn a_drone_on_rtl_tcp_reconnects_resends_its_settings_and_keeps_streaming() {
    let dir = temp_dir("rtltcp");
    let out = dir.join("out.jsonl");
    let server = RtlTcpServer::start(Duration::from_secs(2), 250_000);
    let port = free_port();
    let _g = ground(port, &["--output-file", out.to_str().unwrap()]);
    let source = format!("rtl_tcp:127.0.0.1:{}", server.port);
    let _d = drone(
        port,
        &[
            "--node", "t1", "--source", &source, "-f", "406.028M", "-g", "20",
        ],
    );
    wait_for(
        "a reconnection and records after it",
        Duration::from_secs(20),
        || server.connections().len() >= 2 && records(&out, "t1").len() >= 40,
    );
    let before = records(&out, "t1").len();
    wait_for(
        "records from the second connection",
        Duration::from_secs(10),
        || records(&out, "t1").len() >= before + 5,
    );
    let conns = server.connections();
    let center = 406_028_000 - 62_500; // the beacon sits a quarter of 250 kS/s above
    for (i, cmds) in conns.iter().take(2).enumerate() {
        assert!(
            cmds.contains(&(0x01, center)),
            "frequency on connection {i}: {cmds:?}"
        );
        assert!(
            cmds.contains(&(0x02, 250_000)),
            "sample rate on connection {i}: {cmds:?}"
        );
        assert!(
            cmds.contains(&(0x03, 1)),
            "manual gain mode on connection {i}: {cmds:?}"
        );
        assert!(
            cmds.contains(&(0x04, 200)),
            "20 dB in tenths on connection {i}: {cmds:?}"
        );
        assert!(
            !cmds.iter().any(|c| c.0 == 0x05),
            "no frequency correction without --ppm: {cmds:?}"
        );
    }
}

#[test]
fn records_made_while_an_rtl_tcp_server_stalls_are_marked_stale() {
    let dir = temp_dir("stale");
    let out = dir.join("out.jsonl");
    let server = RtlTcpServer::start_with_stall(
        Duration::from_secs(8),
        250_000,
        Some((Duration::from_secs(2), Duration::from_secs(2))),
    );
    let port = free_port();
    let _g = ground(port, &["--output-file", out.to_str().unwrap()]);
    let source = format!("rtl_tcp:127.0.0.1:{}", server.port);
    let _d = drone(port, &["--node", "s1", "--source", &source]);
    let stale = |r: &serde_json::Value| r["stale"].as_bool();
    wait_for(
        "stale records, then fresh ones again",
        Duration::from_secs(20),
        || {
            let recs = records(&out, "s1");
            let first_stale = recs.iter().position(|r| stale(r) == Some(true));
            first_stale.is_some_and(|i| recs[i..].iter().any(|r| stale(r) == Some(false)))
        },
    );
    let recs = records(&out, "s1");
    assert_eq!(stale(&recs[0]), Some(false), "fresh before the stall");
    assert!(
        recs.iter().all(|r| stale(r).is_some()),
        "every record of a live source says whether it is stale"
    );
}

/// Writes `seconds` of cu8 at 250 kS/s: complex noise of `noise_dbfs` over the whole band and
/// a carrier `offset_hz` above the centre, `pulse` long every second at `pulse_dbfs`.
fn write_pulsed_cu8(path: &Path, seconds: f64, noise_dbfs: f64, pulse_dbfs: f64, pulse: Duration) {
    let rate = 250_000.0;
    let offset_hz = 50_000.0;
    let n = (seconds * rate) as usize;
    let sigma = (10f64.powf(noise_dbfs / 10.0) / 2.0).sqrt();
    let amp = 10f64.powf(pulse_dbfs / 20.0);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut bytes = Vec::with_capacity(2 * n);
    let on = pulse.as_secs_f64();
    for k in 0..n {
        let t = k as f64 / rate;
        let (u1, u2) = (uniform(), uniform());
        let r = (-2.0 * u1.ln()).sqrt() * sigma;
        let (mut i, mut q) = (
            r * (std::f64::consts::TAU * u2).cos(),
            r * (std::f64::consts::TAU * u2).sin(),
        );
        // Pulses start 300 ms into each second.
        if (t % 1.0) >= 0.3 && (t % 1.0) < 0.3 + on {
            let ph = std::f64::consts::TAU * offset_hz * t;
            i += amp * ph.cos();
            q += amp * ph.sin();
        }
        let cu8 = |v: f64| (127.5 + 127.5 * v).round().clamp(0.0, 255.0) as u8;
        bytes.push(cu8(i));
        bytes.push(cu8(q));
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_tracking_tags_pulses_reach_the_ground_with_their_power_width_and_a_held_level() {
    let dir = temp_dir("pulses");
    let capture = dir.join("tag_148.525M_250k.cu8");
    // Noise at -30 dBFS over 250 kHz is -44 dBFS in the 10 kHz channel; the pulse is 15 dB
    // above that.
    let pulse_dbfs = -29.0;
    write_pulsed_cu8(&capture, 4.0, -30.0, pulse_dbfs, Duration::from_millis(20));
    let out = dir.join("out.jsonl");
    let port = free_port();
    let _g = ground(port, &["--output-file", out.to_str().unwrap()]);
    let source = format!("file:{}", capture.display());
    let _d = drone(
        port,
        &["--node", "tag", "--source", &source, "-f", "148.575M"],
    );
    let pulsed = |recs: &[serde_json::Value]| -> Vec<serde_json::Value> {
        recs.iter()
            .filter(|r| r["pulses"].as_u64().unwrap_or(0) > 0)
            .cloned()
            .collect()
    };
    wait_for("five pulses at the ground", Duration::from_secs(30), || {
        pulsed(&records(&out, "tag")).len() >= 5
    });
    let recs = records(&out, "tag");
    for r in pulsed(&recs) {
        let p = r["pulse"].as_f64().unwrap();
        assert!(
            (p - pulse_dbfs).abs() <= 1.0,
            "pulse power {p} dBFS, truth {pulse_dbfs}: {r}"
        );
        let w = r["pulse_width_us"].as_u64().unwrap();
        assert!((18_000..=22_000).contains(&w), "pulse width {w} us: {r}");
        let start = r["pulse_start_ns"].as_i64().unwrap();
        let end = r["timestamp_ns"].as_i64().unwrap();
        assert!(
            start < end && end - start < 150_000_000,
            "the pulse started in the window: {r}"
        );
        assert_eq!(r["detected"], true);
    }
    // Between pulses every record holds the last pulse's level and its growing age.
    let first = recs
        .iter()
        .position(|r| r["pulses"].as_u64().unwrap_or(0) > 0)
        .unwrap();
    let held: Vec<&serde_json::Value> = recs[first + 1..]
        .iter()
        .take_while(|r| r["pulses"].as_u64() == Some(0))
        .collect();
    assert!(held.len() >= 5, "records between pulses: {}", held.len());
    let mut last_age = 0;
    for r in held {
        let level = r["last_pulse"].as_f64().unwrap();
        assert!((level - pulse_dbfs).abs() <= 1.0, "held level {level}: {r}");
        let age = r["last_pulse_age_ms"].as_u64().unwrap();
        assert!(age > last_age, "the age grows: {r}");
        last_age = age;
    }
}

#[test]
fn a_tls_fleet_admits_drones_by_certificate_name_and_sighup_rereads_revocations() {
    let dir = temp_dir("tls");
    let ca = dir.join("ca");
    let run_ca = |args: &[&str]| {
        let out = clean(Command::new(ground_bin()))
            .arg("ca")
            .arg("--dir")
            .arg(&ca)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ca {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run_ca(&["init"]);
    for node in ["ground", "drone-1", "drone-2"] {
        run_ca(&["issue", node]);
    }
    // An impostor holds drone-2's valid certificate and calls itself drone-3.
    let imp = dir.join("imp");
    std::fs::create_dir_all(&imp).unwrap();
    std::fs::copy(ca.join("ca.pem"), imp.join("ca.pem")).unwrap();
    std::fs::copy(ca.join("drone-2.pem"), imp.join("drone-3.pem")).unwrap();
    std::fs::copy(ca.join("drone-2.key"), imp.join("drone-3.key")).unwrap();

    let out = dir.join("out.jsonl");
    let port = free_port();
    let tls = format!("--tls={}", ca.display());
    let mut g = ground(port, &["--output-file", out.to_str().unwrap(), &tls]);
    let d1 = drone(port, &["--node", "drone-1", &tls]);
    let _imp = drone(
        port,
        &["--node", "drone-3", &format!("--tls={}", imp.display())],
    );
    let _plain = drone(port, &["--node", "plain"]);
    wait_for(
        "drone-1's records over TLS",
        Duration::from_secs(30),
        || records(&out, "drone-1").len() >= 10,
    );
    assert!(
        records(&out, "drone-3").is_empty(),
        "a borrowed certificate"
    );
    assert!(
        records(&out, "plain").is_empty(),
        "plaintext to a TLS ground"
    );

    // A key file others can read is refused with a clear error.
    let key = ca.join("drone-2.key");
    let status = Command::new("chmod").arg("644").arg(&key).status().unwrap();
    assert!(status.success());
    let refused = clean(Command::new(drone_bin()))
        .args(["--connect", &format!("127.0.0.1:{port}"), "--quiet"])
        .args(["--node", "drone-2", &tls, "--seconds", "5"])
        .args(["--sample-rate", "250k"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("readable by others"), "{stderr}");

    // Revoke drone-1; after SIGHUP the ground refuses its next connection.
    drop(d1);
    run_ca(&["revoke", "drone-1"]);
    g.signal("-HUP");
    std::thread::sleep(Duration::from_millis(1000));
    let before = records(&out, "drone-1").len();
    let _d1_again = drone(port, &["--node", "drone-1", &tls]);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        records(&out, "drone-1").len(),
        before,
        "a revoked drone streams nothing"
    );
}

#[test]
fn plaintext_without_a_key_must_be_asked_for() {
    let out = clean(Command::new(ground_bin()))
        .args(["--listen", "127.0.0.1:0", "--seconds", "5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--insecure"), "{stderr}");
    let out = clean(Command::new(drone_bin()))
        .args(["--connect", "127.0.0.1:9", "--seconds", "5"])
        .args(["--sample-rate", "250k"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--insecure"), "{stderr}");
}
