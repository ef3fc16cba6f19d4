//! Helpers shared by the real-process tests: the binaries, free ports, temp dirs, children
//! killed on drop.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn ground_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sarlink-ground"))
}

pub fn drone_bin() -> PathBuf {
    let path =
        ground_bin().with_file_name(format!("sarlink-drone{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p sarlink-drone`) so both binaries are built",
        path.display()
    );
    path
}

pub fn clean(mut c: Command) -> Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("SARLINK_") {
            c.env_remove(k);
        }
    }
    c
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sarlink-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A child process killed when dropped, so a failing test leaves nothing running.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub fn signal(&mut self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status();
    }

    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.0.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Plaintext without a key must be asked for: tests that do not use TLS or a key say so.
pub fn insecure_unless_protected(extra: &[&str]) -> &'static [&'static str] {
    if extra
        .iter()
        .any(|a| a.starts_with("--tls") || a.starts_with("--key-file"))
    {
        &[]
    } else {
        &["--insecure"]
    }
}

pub fn ground(port: u16, extra: &[&str]) -> Proc {
    let mut c = clean(Command::new(ground_bin()));
    c.args(["--listen", &format!("127.0.0.1:{port}"), "--quiet"])
        .args(extra)
        .args(insecure_unless_protected(extra))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let p = Proc(c.spawn().unwrap());
    // Wait until it listens.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "ground never listened on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

pub fn drone(port: u16, extra: &[&str]) -> Proc {
    let mut c = clean(Command::new(drone_bin()));
    c.args(["--connect", &format!("127.0.0.1:{port}"), "--quiet"])
        .args(extra)
        .args(insecure_unless_protected(extra));
    // A simulator at 250 kS/s keeps real time in a debug build while many tests share the
    // machine; recordings keep their own rate.
    let simulated = !extra.iter().any(|a| a.starts_with("file:"));
    if simulated && !extra.contains(&"--sample-rate") {
        c.args(["--sample-rate", "250k"]);
    }
    c.stdout(Stdio::null()).stderr(Stdio::null());
    Proc(c.spawn().unwrap())
}

pub fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET path` on `addr` (HTTP/1.1, one request per connection): status line and body.
pub fn http_get(addr: &str, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_owned(), body.to_owned()))
}

/// True when `program --version` runs (it is installed).
pub fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether this run is CI (`.ci/run` sets `CI=true`), where a missing tool is a failure
/// rather than a reason to skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A `/proc` stand-in under `dir` whose readings never change: CPU is unknown (no ticks pass)
/// and memory 25 % used. A drone given it with `--proc-root` never sheds, whatever else
/// this shared machine runs: for tests of other things than degradation (the monitoring
/// tests read the real `/proc`).
pub fn calm_proc_root(dir: &std::path::Path) -> PathBuf {
    let root = dir.join("calm-proc");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("stat"),
        "cpu  1000 0 1000 8000 0 0 0 0 0 0\ncpu0 500 0 500 4000 0 0 0 0 0 0\ncpu1 500 0 500 4000 0 0 0 0 0 0\n",
    )
    .unwrap();
    std::fs::write(
        root.join("meminfo"),
        "MemTotal:        4000000 kB\nMemFree:         2000000 kB\nMemAvailable:    3000000 kB\n",
    )
    .unwrap();
    root
}
