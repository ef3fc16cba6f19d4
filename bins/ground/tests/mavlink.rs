//! The drone and its flight controller, with real processes on loopback: pymavlink (an
//! independent MAVLink implementation, `tests/mavlink_vehicle.py`) plays the vehicle, a
//! real `sarlink-ground` relays operator commands from `sarlink-ground cmd`, and a real
//! `sarlink-drone --mavlink udpout:...` measures a simulated beacon.
//!
//! Skipped, saying so, when pymavlink cannot be imported (`pip install pymavlink`); CI
//! installs it.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

mod common;
use common::{calm_proc_root, clean, drone_bin, ground_bin};

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn unix_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn pymavlink_available() -> bool {
    Command::new("python3")
        .args(["-c", "import pymavlink"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn own_records(path: &Path, node: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut v: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "rssi" && v["node"] == node)
        .collect();
    v.sort_by_key(|r| r["seq"].as_u64());
    v
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

#[test]
fn a_pymavlink_vehicle_gets_rssi_geotags_refusals_and_silence_handled() {
    if !pymavlink_available() {
        eprintln!(
            "SKIPPED: pymavlink is not importable here (pip install pymavlink); CI runs this test"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("sarlink-mavlink-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let recorder = dir.join("drone.jsonl");
    let report = dir.join("vehicle.json");
    let ground_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let udp_port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let _ground = Proc(
        clean(Command::new(ground_bin()))
            .args(["--listen", &format!("127.0.0.1:{ground_port}"), "--quiet"])
            .arg("--insecure")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", ground_port)).is_err() {
        assert!(Instant::now() < deadline, "the ground never listened");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The vehicle listens first.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mavlink_vehicle.py");
    let mut vehicle = Proc(
        Command::new("python3")
            .arg(&script)
            .args([
                &udp_port.to_string(),
                ground_bin().to_str().unwrap(),
                &ground_port.to_string(),
                "mav1",
                report.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut vehicle_out = BufReader::new(vehicle.0.stdout.take().unwrap());
    let mut line = String::new();
    vehicle_out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the vehicle script did not start");

    let spawned_at = unix_s();
    let mut drone = Proc(
        clean(Command::new(drone_bin()))
            .arg("--insecure")
            .args([
                "--connect",
                &format!("127.0.0.1:{ground_port}"),
                "--node",
                "mav1",
                "--source",
                "sim:300",
                "--sample-rate",
                "250k",
                "--rate",
                "2",
                "--quiet",
                "--mavlink",
                &format!("udpout:127.0.0.1:{udp_port}"),
                // Room for every value: the budget's thinning is unit-tested.
                "--mavlink-budget",
                "100000",
                "--output-file",
                recorder.to_str().unwrap(),
                // Every value is expected: the machine's load must not shed the extras.
                "--proc-root",
                calm_proc_root(&dir).to_str().unwrap(),
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The drone's log lines, stamped as they arrive.
    let log: Arc<Mutex<Vec<(f64, String)>>> = Arc::default();
    {
        let log = Arc::clone(&log);
        let stderr = drone.0.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push((unix_s(), line));
            }
        });
    }

    // The scenario takes about 25 s.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = vehicle.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the vehicle script did not finish"
        );
        assert!(
            drone.0.try_wait().unwrap().is_none(),
            "the drone exited during the scenario: {:?}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "the vehicle script failed");
    // Random bytes and silence did not take the drone down; it stops cleanly.
    assert!(drone.0.try_wait().unwrap().is_none(), "the drone died");
    let _ = Command::new("kill")
        .args(["-TERM", &drone.0.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = drone.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the drone did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "drone exit {exit:?}");

    let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let records = own_records(&recorder, "mav1");
    assert!(records.len() > 20, "{} records", records.len());
    let log = log.lock().unwrap().clone();

    // The drone's heartbeat: an onboard controller, component 191, as the vehicle's system.
    let hbs = v["drone_heartbeats"].as_array().unwrap();
    assert!(hbs.len() >= 10, "{hbs:?}");
    let last = hbs.last().unwrap();
    assert_eq!(last["type"], 18, "MAV_TYPE_ONBOARD_CONTROLLER");
    assert_eq!(last["component"], 191);
    assert_eq!(last["system"], 7, "the vehicle's system id");
    let gaps: Vec<f64> = hbs
        .windows(2)
        .map(|w| f(&w[1]["t"]) - f(&w[0]["t"]))
        .collect();
    let mean_gap = gaps.iter().sum::<f64>() / gaps.len() as f64;
    assert!(
        (0.8..1.2).contains(&mean_gap),
        "heartbeat every {mean_gap:.2} s"
    );

    // NAMED_VALUE_FLOAT as pymavlink decodes it, grouped by time_boot_ms.
    let mut groups: std::collections::BTreeMap<u64, Vec<(String, f64)>> = Default::default();
    for n in v["nvf"].as_array().unwrap() {
        let name = n[0].as_str().unwrap().to_owned();
        assert!(name.len() <= 10, "{name}");
        groups
            .entry(n[2].as_u64().unwrap())
            .or_default()
            .push((name, f(&n[1])));
    }
    assert!(groups.len() > 20, "{} groups", groups.len());
    // time_boot_ms counts from the drone's start: record time minus it is the start time.
    let mut offsets: Vec<f64> = Vec::new();
    let mut matched = 0;
    for (boot_ms, values) in &groups {
        let get = |name: &str| values.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        let rssi = get("SAR_RSSI").expect("SAR_RSSI in every group");
        // time_boot_ms counts from the drone's start, so start + time_boot_ms is when the
        // values went out: just after their record was stamped. Records are 500 ms apart.
        let sent_s = spawned_at + *boot_ms as f64 / 1e3;
        let Some(r) = records.iter().min_by(|a, b| {
            let d = |r: &Value| (f(&r["timestamp_ns"]) / 1e9 - sent_s).abs();
            d(a).total_cmp(&d(b))
        }) else {
            continue;
        };
        if (f(&r["timestamp_ns"]) / 1e9 - sent_s).abs() > 0.2 {
            continue;
        }
        assert!((f(&r["rssi"]) - rssi).abs() <= 0.01, "{values:?} vs {r}");
        matched += 1;
        offsets.push(f(&r["timestamp_ns"]) / 1e9 - *boot_ms as f64 / 1e3);
        assert!(
            (get("SAR_SNR").unwrap() - f(&r["snr_db"])).abs() <= 0.01,
            "{values:?} vs {r}"
        );
        assert!(
            (get("SAR_QUAL").unwrap() - f(&r["quality_score"])).abs() <= 0.01,
            "{values:?} vs {r}"
        );
        let det = if r["detected"] == true { 1.0 } else { 0.0 };
        assert_eq!(get("SAR_DET"), Some(det), "{r}");
        if let Some(p) = r["last_pulse"].as_f64() {
            assert!((get("SAR_PULSE").unwrap() - p).abs() <= 0.01);
        }
        let src = get("SAR_SRC").unwrap();
        assert!(src == 0.0 || src == 1.0, "{src}");
    }
    assert!(
        matched * 100 >= groups.len() * 95,
        "{matched} of {} value groups match a record",
        groups.len()
    );
    let spread = offsets.iter().copied().fold(f64::MIN, f64::max)
        - offsets.iter().copied().fold(f64::MAX, f64::min);
    assert!(
        spread < 0.5,
        "time_boot_ms drifts from the records' clock: {spread:.3} s"
    );

    // Geotags: exactly the positions the vehicle sent; none once it fell silent.
    let sent: Vec<(i64, i64, f64, f64)> = v["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_i64().unwrap(),
                p[1].as_i64().unwrap(),
                f(&p[2]) / 1000.0,
                f(&p[3]) / 100.0,
            )
        })
        .collect();
    let tagged: Vec<&Value> = records.iter().filter(|r| r["lat_e7"].is_i64()).collect();
    assert!(tagged.len() > 15, "{} geotagged", tagged.len());
    for r in &tagged {
        let (lat, lon) = (r["lat_e7"].as_i64().unwrap(), r["lon_e7"].as_i64().unwrap());
        let p = sent
            .iter()
            .find(|p| p.0 == lat && p.1 == lon)
            .unwrap_or_else(|| panic!("geotag {lat},{lon} was never sent"));
        assert!((f(&r["alt_m"]) - p.2).abs() < 1e-3, "{r}");
        assert!((f(&r["heading_deg"]) - p.3).abs() < 1e-3, "{r}");
    }
    // The last position went out when the vehicle fell silent; 1 s later none is fresh.
    let silent_from = f(&v["events"]["silent"]) + 1.2;
    assert!(
        records
            .iter()
            .filter(|r| f(&r["timestamp_ns"]) / 1e9 > silent_from)
            .all(|r| r["lat_e7"].is_null()),
        "records geotagged from stale positions"
    );

    // Commands: accepted when nominal, refused by the rules, accepted again.
    let c = |name: &str| {
        let c = &v["cmds"][name];
        (
            c["code"].as_i64().unwrap(),
            c["out"].as_str().unwrap().to_owned(),
        )
    };
    let (code, out) = c("tune_nominal");
    assert_eq!(code, 0, "{out}");
    let (code, out) = c("tune_land");
    assert!(
        code != 0 && out.contains("safety") && out.contains("flight_mode"),
        "{out}"
    );
    let (code, out) = c("tune_breach");
    assert!(
        code != 0 && out.contains("safety") && out.contains("geofence"),
        "{out}"
    );
    let (code, out) = c("tune_cleared");
    assert_eq!(code, 0, "{out}");
    let (code, out) = c("tune_after_garbage");
    assert_eq!(code, 0, "{out}");
    let (code, out) = c("tune_silent");
    assert!(code != 0 && out.contains("safety"), "{out}");

    // How fast the breach reached the authority: the tune was sent 200 ms after it (and
    // refused); the drone's STATUSTEXT shows when the state changed.
    let breach = f(&v["events"]["breach"]);
    let issued = f(&v["cmds"]["tune_breach"]["t0"]) - breach;
    let texts = v["texts"].as_array().unwrap();
    let geofence_text = texts
        .iter()
        .find(|t| t[0].as_str().unwrap().contains("geofence") && f(&t[2]) >= breach)
        .map(|t| f(&t[2]) - breach)
        .expect("a STATUSTEXT for the breach");
    eprintln!(
        "breach -> tune issued {:.0} ms (refused); breach -> STATUSTEXT {:.0} ms",
        issued * 1e3,
        geofence_text * 1e3
    );
    assert!(
        issued < 0.6,
        "the tune went out {issued:.3} s after the breach"
    );
    assert!(geofence_text < 1.0, "{geofence_text:.3} s");

    // Silence reported (log and STATUSTEXT) within 3.5 s of the last heartbeat (+1 s for a
    // loaded machine).
    let last_hb = f(&v["events"]["last_heartbeat"]);
    let logged = log
        .iter()
        .find(|(t, l)| l.contains("vehicle lost") && *t >= last_hb)
        .map(|(t, _)| t - last_hb)
        .unwrap_or_else(|| panic!("no 'vehicle lost' in the log: {log:?}"));
    let texted = texts
        .iter()
        .find(|t| t[0].as_str().unwrap().contains("vehicle lost"))
        .map(|t| f(&t[2]) - last_hb)
        .expect("a STATUSTEXT for the silence");
    eprintln!("last heartbeat -> 'vehicle lost' logged {logged:.2} s, STATUSTEXT {texted:.2} s");
    assert!((3.0..4.5).contains(&logged), "{logged:.2} s");
    assert!((3.0..4.5).contains(&texted), "{texted:.2} s");

    // Refusals, detection and the vehicle's state reached the operator as STATUSTEXT.
    let said = |w: &str| texts.iter().any(|t| t[0].as_str().unwrap().contains(w));
    assert!(said("tune") && said("refused"), "{texts:?}");
    // After the garbage the drone kept sending values.
    let garbage_end = f(&v["events"]["garbage_end"]);
    assert!(
        v["nvf"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| f(&n[3]) > garbage_end)
            .count()
            > 10
    );
    let _ = std::fs::remove_dir_all(&dir);
}
