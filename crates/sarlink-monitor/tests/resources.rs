//! Resource parsing on fixture text, the reading layer on fixture trees, and a plausibility
//! check on this machine.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sarlink_monitor::resources::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap()
}

#[test]
fn pid_stat_fixtures() {
    assert_eq!(parse_pid_stat(&fixture("proc/self/stat")), Ok(1234 + 567));
    assert_eq!(
        parse_pid_stat(&fixture("odd/pid_stat_parens_in_comm")),
        Ok(42 + 8)
    );
    assert_eq!(
        parse_pid_stat(&fixture("odd/pid_stat_truncated")),
        Err(ParseError::MissingField { field: "utime" })
    );
    assert_eq!(
        parse_pid_stat(&fixture("odd/pid_stat_no_comm")),
        Err(ParseError::MissingField { field: "comm" })
    );
    assert_eq!(
        parse_pid_stat(&fixture("odd/pid_stat_bad_utime")),
        Err(ParseError::InvalidNumber {
            field: "utime",
            text: "12a".into()
        })
    );
    assert!(parse_pid_stat("").is_err());
}

#[test]
fn stat_fixtures() {
    let s = parse_stat(&fixture("proc/stat")).unwrap();
    assert_eq!(
        s,
        SystemCpuTimes {
            total: 90321 + 1204 + 30112 + 1785002 + 5211 + 2034,
            idle: 1785002 + 5211,
            cpus: 4
        }
    );
    let old = parse_stat(&fixture("odd/stat_old_kernel")).unwrap();
    assert_eq!(
        old,
        SystemCpuTimes {
            total: 550,
            idle: 400,
            cpus: 1
        }
    );
    assert_eq!(
        parse_stat(&fixture("odd/stat_three_fields")),
        Err(ParseError::MissingField { field: "idle" })
    );
    assert_eq!(
        parse_stat(&fixture("odd/stat_no_cpu_line")),
        Err(ParseError::MissingField { field: "cpu" })
    );
}

#[test]
fn status_and_meminfo_fixtures() {
    assert_eq!(
        parse_status_rss(&fixture("proc/self/status")),
        Ok(Some(24084 * 1024))
    );
    assert_eq!(
        parse_status_rss(&fixture("odd/status_kernel_thread")),
        Ok(None)
    );
    assert!(matches!(
        parse_status_rss(&fixture("odd/status_bad_rss")),
        Err(ParseError::InvalidNumber { field: "VmRSS", .. })
    ));

    let m = parse_meminfo(&fixture("proc/meminfo")).unwrap();
    assert_eq!(
        m,
        MemInfo {
            total_bytes: 3884160 * 1024,
            available_bytes: 3107328 * 1024
        }
    );
    let used = m.used_percent().unwrap().value();
    assert!((used - 100.0 * (3884160.0 - 3107328.0) / 3884160.0).abs() < 1e-9);

    let old = parse_meminfo(&fixture("odd/meminfo_old_kernel")).unwrap();
    assert_eq!(old.available_bytes, (512000 + 12000 + 100000) * 1024);
    assert_eq!(
        parse_meminfo(&fixture("odd/meminfo_no_total")),
        Err(ParseError::MissingField { field: "MemTotal" })
    );
}

#[test]
fn sampler_on_fixture_tree_prefers_cpu_zones_and_skips_broken_ones() {
    let mut s = ResourceSampler::with_roots(fixtures().join("proc"), fixtures().join("sys"));
    let r = s.sample(Duration::ZERO).unwrap();
    assert_eq!(r.rss_bytes, Some(24084 * 1024));
    assert!(r.system_memory.is_some());
    // acpitz is hotter (90 C) but not a CPU zone; the x86_pkg_temp zone is unreadable.
    assert_eq!(r.cpu_temperature.unwrap().value(), 61.234);
    assert_eq!((r.process_cpu, r.system_cpu), (None, None));
    // Same files again: no ticks passed, so the system figure stays unknown and the
    // process figure is 0 %.
    let r2 = s.sample(Duration::from_secs(1)).unwrap();
    assert_eq!(r2.system_cpu, None);
    assert_eq!(r2.process_cpu.unwrap().value(), 0.0);
}

#[test]
fn sampler_computes_cpu_deltas_between_samples() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("monitor-proc-deltas");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("self")).unwrap();
    let write_proc = |utime: u64, busy: u64, idle: u64| {
        std::fs::write(
            dir.join("self/stat"),
            format!("9 (t) S 1 9 9 0 -1 0 0 0 0 0 {utime} 0 0 0 20 0 1 0 1 1 1\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join("stat"),
            format!("cpu  {busy} 0 0 {idle} 0 0 0 0\ncpu0 0 0 0 0\ncpu1 0 0 0 0\n"),
        )
        .unwrap();
    };
    // No status, meminfo or thermal files: those readings are unknown, not errors.
    let mut s = ResourceSampler::with_roots(&dir, dir.join("no-sys"));
    write_proc(1000, 5000, 5000);
    let first = s.sample(Duration::from_secs(10)).unwrap();
    assert_eq!(first, ResourceReadings::default());
    // 2 s later: the process used 100 ticks = 1 s of CPU out of 2 s x 2 CPUs = 25 %;
    // the machine did 300 busy and 100 idle ticks = 75 %.
    write_proc(1100, 5300, 5100);
    let second = s.sample(Duration::from_secs(12)).unwrap();
    assert_eq!(second.process_cpu.unwrap().value(), 25.0);
    assert_eq!(second.system_cpu.unwrap().value(), 75.0);
    assert_eq!(second.rss_bytes, None);
    assert_eq!(second.cpu_temperature, None);

    std::fs::write(dir.join("meminfo"), "garbage\n").unwrap();
    let err = s.sample(Duration::from_secs(13)).unwrap_err();
    assert!(matches!(err, SampleError::Parse { ref path, .. } if path.ends_with("meminfo")));

    // Each reading on its own: an unreadable /proc/stat (a directory stands in for a
    // file the container denies) makes CPU unknown, not 0, and memory is still read.
    std::fs::write(
        dir.join("meminfo"),
        "MemTotal: 1000 kB\nMemAvailable: 250 kB\n",
    )
    .unwrap();
    std::fs::remove_file(dir.join("stat")).unwrap();
    std::fs::create_dir(dir.join("stat")).unwrap();
    let mut failures = Vec::new();
    let r = s.sample_each(Duration::from_secs(14), |e| failures.push(e));
    assert_eq!(r.system_cpu, None);
    assert_eq!(r.process_cpu, None);
    assert_eq!(r.system_memory.unwrap().value(), 75.0);
    assert!(
        matches!(&failures[..], [SampleError::Io { path, .. }] if path.ends_with("stat")),
        "{failures:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn real_machine_readings_are_plausible() {
    let start = Instant::now();
    let mut s = ResourceSampler::new();
    let first = s.sample(start.elapsed()).unwrap();
    // Burn some CPU so that ticks advance between the samples.
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(100) {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
    }
    let second = s.sample(start.elapsed()).unwrap();
    for r in [first, second] {
        let rss = r.rss_bytes.expect("VmRSS is present for a user process");
        assert!(rss > 1024 * 1024 && rss < 1 << 40, "rss {rss}");
        let mem = r.system_memory.expect("meminfo is readable").value();
        assert!(mem > 0.0 && mem < 100.0, "memory {mem}");
        if let Some(t) = r.cpu_temperature {
            assert!((-40.0..=150.0).contains(&t.value()), "temperature {t}");
        }
    }
    assert!(second.process_cpu.is_some(), "{second:?}");
}
