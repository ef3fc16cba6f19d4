//! MQTT fan-out end to end with real processes: a mosquitto broker (started here, on a free
//! loopback port, with its own configuration), two `sarlink-ground --mqtt` stations, four
//! simulated `sarlink-drone`s and a `mosquitto_sub` subscriber.
//!
//! Skips (saying so) when `mosquitto` or `mosquitto_sub` is not installed; CI (`.ci/run`)
//! installs both, so there it always runs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// `name` on the PATH, or in /usr/sbin (where Debian puts `mosquitto`).
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn wait_listening(port: u16, what: &str) {
    wait_for(what, Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// `user root` when the tests run as root: mosquitto started as root otherwise switches to
/// the `mosquitto` user, which cannot read the test's files (keys, persistence directory).
fn run_as() -> &'static str {
    let uid = Command::new("id").arg("-u").output().ok();
    if uid.is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0") {
        "user root\n"
    } else {
        ""
    }
}

/// mosquitto on `port` with persistence in `dir`: the subscriber's persistent session and
/// the messages queued for it survive an orderly restart (SIGTERM), as in production.
fn broker(mosquitto: &Path, dir: &Path, port: u16) -> Proc {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "{}listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 0\nlog_dest file {}/mosquitto.log\n",
            run_as(),
            dir.display(),
            dir.display()
        ),
    )
    .unwrap();
    let p = Proc(
        Command::new(mosquitto)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(port, "mosquitto to listen");
    p
}

fn ground(port: u16, broker: u16, node: &str, out: &Path, extra: &[&str]) -> Proc {
    let mut c = clean(Command::new(ground_bin()));
    c.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--node",
        node,
        "--mqtt",
        &format!("mqtt://127.0.0.1:{broker}"),
        "--output-file",
        out.to_str().unwrap(),
        "--quiet",
        "--insecure",
    ])
    .args(extra)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let p = Proc(c.spawn().unwrap());
    wait_listening(port, "a ground to listen");
    p
}

fn drone(port: u16, node: &str) -> Proc {
    let mut c = clean(Command::new(drone_bin()));
    c.args([
        "--connect",
        &format!("127.0.0.1:{port}"),
        "--node",
        node,
        "--source",
        "sim",
        // Real time in a debug build on a shared machine.
        "--sample-rate",
        "250k",
        "--quiet",
        "--insecure",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    Proc(c.spawn().unwrap())
}

/// Lines `topic payload` the subscriber printed.
fn received(path: &Path) -> Vec<(String, String)> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| l.split_once(' ').map(|(t, p)| (t.to_owned(), p.to_owned())))
        .collect()
}

type Key = (String, String, u64);

fn key(v: &serde_json::Value) -> Key {
    (
        v["node"].as_str().unwrap().to_owned(),
        v["stream"].as_str().unwrap().to_owned(),
        v["seq"].as_u64().unwrap(),
    )
}

/// Record lines of an output file by (node, stream, seq).
fn written(path: &Path) -> BTreeMap<Key, String> {
    let Ok(f) = std::fs::File::open(path) else {
        return BTreeMap::new();
    };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).ok()?;
            (v["type"] == "rssi").then(|| (key(&v), l))
        })
        .collect()
}

/// Records the subscriber got, duplicates removed by (node, stream, seq), each with its
/// payload; and how many messages that took.
fn records_by_key(path: &Path) -> (BTreeMap<Key, String>, usize) {
    let mut n = 0;
    let mut by_key = BTreeMap::new();
    for (topic, payload) in received(path) {
        if !topic.ends_with("/rssi") {
            continue;
        }
        n += 1;
        let v: serde_json::Value = serde_json::from_str(&payload)
            .unwrap_or_else(|e| panic!("{topic}: not JSON ({e}): {payload}"));
        assert!(
            topic.starts_with(&format!("sarlink/g1/{}/", v["node"].as_str().unwrap()))
                || topic.starts_with(&format!("sarlink/g2/{}/", v["node"].as_str().unwrap())),
            "{topic} names the record's node"
        );
        let k = key(&v);
        if let Some(before) = by_key.insert(k.clone(), payload.clone()) {
            assert_eq!(before, payload, "a duplicate of {k:?} is the same message");
        }
    }
    (by_key, n)
}

fn retained_status(sub: &Path, port: u16, ground: &str) -> serde_json::Value {
    let out = Command::new(sub)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", &format!("sarlink/{ground}/{ground}/status")])
        .args(["-C", "1", "-W", "10"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "a retained status for {ground}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn two_grounds_publish_every_record_through_a_broker_restart_and_a_killed_ground_shows_offline() {
    let (Some(mosquitto), Some(mosquitto_sub), Some(mosquitto_pub)) = (
        find_tool("mosquitto"),
        find_tool("mosquitto_sub"),
        find_tool("mosquitto_pub"),
    ) else {
        eprintln!(
            "SKIPPED: mosquitto and mosquitto-clients are not installed \
             (apt-get install mosquitto mosquitto-clients); .ci/run installs them"
        );
        return;
    };
    let dir = temp_dir("fanout");
    let port = free_port();
    let mut broker_proc = broker(&mosquitto, &dir, port);

    // A subscriber with a persistent session (-c, fixed id, QoS 1): what is published while
    // it reconnects is kept for it. `-v`: one line `topic payload` per message.
    let sub_out = dir.join("sub.txt");
    let _sub = Proc(
        Command::new(&mosquitto_sub)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-q", "1", "-c", "-i", "sarlink-test-sub", "-v"])
            .args(["-t", "sarlink/#"])
            .stdout(std::fs::File::create(&sub_out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(
        "the subscriber to subscribe",
        Duration::from_secs(15),
        || {
            let _ = Command::new(&mosquitto_pub)
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
                .args(["-t", "sarlink/probe", "-m", "{}"])
                .status();
            received(&sub_out).iter().any(|(t, _)| t == "sarlink/probe")
        },
    );

    let (p1, p2) = (free_port(), free_port());
    let (out1, out2) = (dir.join("g1.jsonl"), dir.join("g2.jsonl"));
    // Only g1 takes commands from MQTT.
    let mut g1 = ground(p1, port, "g1", &out1, &["--mqtt-commands"]);
    let mut g2 = ground(p2, port, "g2", &out2, &[]);
    let mut drones = vec![
        drone(p1, "d1"),
        drone(p1, "d2"),
        drone(p2, "d3"),
        drone(p2, "d4"),
    ];
    let total = || written(&out1).len() + written(&out2).len();
    wait_for(
        "records from all four drones",
        Duration::from_secs(30),
        || {
            let w: BTreeSet<String> = written(&out1)
                .into_keys()
                .chain(written(&out2).into_keys())
                .map(|k| k.0)
                .collect();
            w.len() == 4
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let g2_online = retained_status(&mosquitto_sub, port, "g2");
    assert_eq!(g2_online["online"], true, "{g2_online}");

    // Commands: g1 relays one to its drone and publishes the drone's answer; an invalid one
    // is refused under its id; g2, without --mqtt-commands, ignores them.
    let command = |topic: &str, json: &str| {
        let ok = Command::new(&mosquitto_pub)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(["-t", topic, "-m", json])
            .status()
            .unwrap()
            .success();
        assert!(ok, "mosquitto_pub {topic}");
    };
    command(
        "sarlink/g2/d3/cmd",
        r#"{"id":90,"op":"stream","value":"on"}"#,
    );
    command(
        "sarlink/g1/d1/cmd",
        r#"{"id":91,"op":"stream","value":"on"}"#,
    );
    command("sarlink/g1/d2/cmd", r#"{"id":92,"op":"warp","value":"9"}"#);
    let acks = || -> Vec<(String, serde_json::Value)> {
        received(&sub_out)
            .into_iter()
            .filter(|(t, _)| t.ends_with("/ack"))
            .map(|(t, p)| (t, serde_json::from_str(&p).unwrap()))
            .collect()
    };
    wait_for("the answers on .../ack", Duration::from_secs(20), || {
        acks().len() >= 2
    });
    std::thread::sleep(Duration::from_secs(1));
    let acks = acks();
    let by_id = |id: u64| acks.iter().find(|(_, v)| v["id"] == id).cloned();
    let (topic, ack) = by_id(91).expect("the drone's answer to command 91");
    assert_eq!(topic, "sarlink/g1/d1/ack");
    assert_eq!(ack["ok"], true, "{ack}");
    let (topic, ack) = by_id(92).expect("a refusal of the invalid command 92");
    assert_eq!(topic, "sarlink/g1/d2/ack");
    assert_eq!(ack["ok"], false, "{ack}");
    assert!(by_id(90).is_none(), "g2 takes no MQTT commands: {acks:?}");

    // The broker goes away mid-run; the drones keep measuring.
    broker_proc.signal("-TERM");
    assert!(
        broker_proc.wait_exit(Duration::from_secs(10)).is_some(),
        "mosquitto stops"
    );
    let at_outage = total();
    std::thread::sleep(Duration::from_secs(4));
    let after_outage = total();
    assert!(
        after_outage > at_outage + 20,
        "records were written while the broker was down ({at_outage} -> {after_outage}), so the outage is tested"
    );
    let _broker_again = broker(&mosquitto, &dir, port);
    std::thread::sleep(Duration::from_secs(4));

    // The drones stop: the outputs are final. g1 stops in order, g2 is killed.
    for d in &mut drones {
        d.signal("-TERM");
    }
    for d in &mut drones {
        assert!(
            d.wait_exit(Duration::from_secs(15)).is_some(),
            "a drone stops"
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    g1.signal("-TERM");
    assert!(g1.wait_exit(Duration::from_secs(15)).is_some(), "g1 stops");
    g2.signal("-KILL");
    assert!(g2.wait_exit(Duration::from_secs(5)).is_some());

    let mut expected = written(&out1);
    expected.extend(written(&out2));
    assert!(expected.len() > 100, "{} records written", expected.len());
    let nodes: BTreeSet<&str> = expected.keys().map(|k| k.0.as_str()).collect();
    assert_eq!(nodes, BTreeSet::from(["d1", "d2", "d3", "d4"]));

    // Every record arrives; after removing duplicates by (node, stream, seq), exactly the
    // written ones, each byte for byte its output line.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (got, messages) = loop {
        let (got, n) = records_by_key(&sub_out);
        if got.len() >= expected.len() || Instant::now() > deadline {
            break (got, n);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let missing: Vec<&Key> = expected.keys().filter(|k| !got.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} records never reached the subscriber, e.g. {:?}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(5)]
    );
    let extra: Vec<&Key> = got.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(extra.is_empty(), "records nobody wrote: {extra:?}");
    for (k, line) in &expected {
        assert_eq!(&got[k], line, "the payload of {k:?} is its output line");
    }
    eprintln!(
        "{} records written, {} messages received ({} duplicates removed)",
        expected.len(),
        messages,
        messages - got.len()
    );

    // The retained status says which ground is gone: g2 by its last will, g1 by its last word.
    let g2_status = retained_status(&mosquitto_sub, port, "g2");
    assert_eq!(g2_status["online"], false, "{g2_status}");
    let g1_status = retained_status(&mosquitto_sub, port, "g1");
    assert_eq!(g1_status["online"], false, "{g1_status}");
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate (CN `tls-ground`), in
/// `dir`.
fn make_certs(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=sarlink test CA",
    ]);
    openssl(dir, &ca);
    // Extensions make them X.509 v3 certificates, which webpki requires.
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, cn, ext) in [
        ("server", "/CN=127.0.0.1", "server.ext"),
        ("client", "/CN=tls-ground", "client.ext"),
    ] {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", cn]);
        openssl(dir, &req);
        let sign = [
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            ext,
        ];
        openssl(dir, &sign);
    }
}

#[test]
fn grounds_publish_over_tls_with_a_client_certificate_and_with_a_password() {
    let (Some(mosquitto), Some(mosquitto_sub), Some(mosquitto_passwd), Some(_)) = (
        find_tool("mosquitto"),
        find_tool("mosquitto_sub"),
        find_tool("mosquitto_passwd"),
        find_tool("openssl"),
    ) else {
        eprintln!(
            "SKIPPED: mosquitto, mosquitto-clients or openssl is not installed; .ci/run installs them"
        );
        return;
    };
    let dir = temp_dir("tls");
    make_certs(&dir);
    let pw = dir.join("passwords");
    let ok = Command::new(&mosquitto_passwd)
        .args(["-b", "-c", pw.to_str().unwrap(), "pw-ground", "s3cret pass"])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mosquitto_passwd");
    let (plain, tls) = (free_port(), free_port());
    let d = dir.display();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "{}per_listener_settings true\n\
             listener {plain} 127.0.0.1\nallow_anonymous false\npassword_file {d}/passwords\n\
             listener {tls} 127.0.0.1\nallow_anonymous false\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\nrequire_certificate true\nuse_identity_as_username true\n\
             log_dest file {d}/mosquitto.log\n",
            run_as()
        ),
    )
    .unwrap();
    let _broker = Proc(
        Command::new(&mosquitto)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(plain, "mosquitto to listen");
    wait_listening(tls, "mosquitto to listen with TLS");
    std::fs::write(dir.join("pw.txt"), "s3cret pass\n").unwrap();
    let sub_out = dir.join("sub.txt");
    let _sub = Proc(
        Command::new(&mosquitto_sub)
            .args(["-h", "127.0.0.1", "-p", &tls.to_string(), "-q", "1", "-v"])
            .args(["--cafile", &format!("{d}/ca.pem")])
            .args([
                "--cert",
                &format!("{d}/client.pem"),
                "--key",
                &format!("{d}/client.key"),
            ])
            .args(["-t", "sarlink/+/+/rssi"])
            .stdout(std::fs::File::create(&sub_out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_secs(1));
    let start = |port: u16, node: &str, mqtt: &[String]| {
        let mut c = clean(Command::new(ground_bin()));
        c.args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--node",
            node,
            "--quiet",
            "--insecure",
        ])
        .args(["--output", "none"])
        .args(mqtt)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let p = Proc(c.spawn().unwrap());
        wait_listening(port, "a ground to listen");
        p
    };
    let (pt, pp) = (free_port(), free_port());
    let _g_tls = start(
        pt,
        "g-tls",
        &[
            "--mqtt".into(),
            format!("mqtts://127.0.0.1:{tls}"),
            "--mqtt-ca".into(),
            format!("{d}/ca.pem"),
            "--mqtt-cert".into(),
            format!("{d}/client.pem"),
            "--mqtt-key".into(),
            format!("{d}/client.key"),
        ],
    );
    let _g_pw = start(
        pp,
        "g-pw",
        &[
            "--mqtt".into(),
            format!("mqtt://pw-ground@127.0.0.1:{plain}"),
            "--mqtt-password-file".into(),
            format!("{d}/pw.txt"),
        ],
    );
    // A third ground with a wrong password never gets a record through.
    std::fs::write(dir.join("bad.txt"), "wrong\n").unwrap();
    let pb = free_port();
    let _g_bad = start(
        pb,
        "g-bad",
        &[
            "--mqtt".into(),
            format!("mqtt://pw-ground@127.0.0.1:{plain}"),
            "--mqtt-password-file".into(),
            format!("{d}/bad.txt"),
        ],
    );
    let _d1 = drone(pt, "t1");
    let _d2 = drone(pp, "p1");
    let _d3 = drone(pb, "b1");
    wait_for(
        "records through TLS and through the password login",
        Duration::from_secs(40),
        || {
            let r = received(&sub_out);
            r.iter().any(|(t, _)| t == "sarlink/g-tls/t1/rssi")
                && r.iter().any(|(t, _)| t == "sarlink/g-pw/p1/rssi")
        },
    );
    let r = received(&sub_out);
    assert!(
        !r.iter().any(|(t, _)| t.starts_with("sarlink/g-bad/")),
        "a wrong password publishes nothing"
    );
}

#[test]
fn a_full_publish_queue_is_counted_and_reported_never_silent() {
    let (Some(mosquitto), Some(mosquitto_sub)) =
        (find_tool("mosquitto"), find_tool("mosquitto_sub"))
    else {
        eprintln!(
            "SKIPPED: mosquitto and mosquitto-clients are not installed; .ci/run installs them"
        );
        return;
    };
    let dir = temp_dir("overflow");
    // The broker is not there yet: the queue (20 messages) fills and overflows.
    let broker_port = free_port();
    let (port, metrics) = (free_port(), free_port());
    let stderr = dir.join("ground.err");
    let mut c = clean(Command::new(ground_bin()));
    c.args(["--listen", &format!("127.0.0.1:{port}"), "--node", "gq"])
        .arg("--insecure")
        .args(["--output", "none", "--mqtt-queue", "20"])
        .args(["--mqtt", &format!("mqtt://127.0.0.1:{broker_port}")])
        .args(["--metrics", &format!("127.0.0.1:{metrics}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let _g = Proc(c.spawn().unwrap());
    wait_listening(port, "the ground to listen");
    let _d = drone(port, "dq");
    let overflow_metric = || -> u64 {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", metrics)) else {
            return 0;
        };
        use std::io::{Read, Write};
        let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text.lines()
            .find_map(|l| l.strip_prefix("sarlink_ground_mqtt_overflow_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    wait_for(
        "the overflow metric to count drops",
        Duration::from_secs(30),
        || overflow_metric() > 0,
    );
    wait_for("the status line to say so", Duration::from_secs(10), || {
        std::fs::read_to_string(&stderr).is_ok_and(|s| s.contains("DROPPED (queue full)"))
    });
    // The broker comes: the retained status carries the count too.
    let _broker = broker(&mosquitto, &dir, broker_port);
    wait_for(
        "a retained status counting the overflow",
        Duration::from_secs(30),
        || {
            let out = Command::new(&mosquitto_sub)
                .args(["-h", "127.0.0.1", "-p", &broker_port.to_string()])
                .args(["-t", "sarlink/gq/gq/status", "-C", "1", "-W", "3"])
                .output()
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .is_ok_and(|v| v["online"] == true && v["mqtt_overflow"].as_u64() > Some(0))
        },
    );
}
