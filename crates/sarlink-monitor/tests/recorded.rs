//! The degradation controller driven by recorded readings, through the same parsers the
//! drivers use: a CPU spike as `/proc/stat` snapshots, memory creeping up in
//! `/proc/meminfo`, and a thermal ramp written into a copy of the `/sys` fixture. Each
//! asserts the order of shedding and of recovery.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sarlink_monitor::degradation::*;
use sarlink_monitor::resources::{
    ResourceSampler, SystemCpuTimes, parse_meminfo, parse_stat, system_cpu_percent,
};

/// The drone's matrix, in miniature: one feature per sheddable class and the never-shed
/// ones.
struct Matrix {
    c: DegradationController,
    stream: FeatureId,
    full_rate: FeatureId,
    detail: FeatureId,
    smoothing: FeatureId,
    status_line: FeatureId,
}

fn matrix() -> Matrix {
    let mut c = DegradationController::new(ControllerConfig::default());
    let stream = c
        .register("rssi-stream", Priority::CriticalSafety, true)
        .unwrap();
    c.register("coordinator-fallback", Priority::CriticalSafety, true)
        .unwrap();
    let full_rate = c
        .register("full-report-rate", Priority::PrimaryFunction, false)
        .unwrap();
    let detail = c
        .register("status-detail", Priority::Enhanced, false)
        .unwrap();
    let smoothing = c
        .register("smoothing", Priority::Optimisation, false)
        .unwrap();
    let status_line = c
        .register("status-line", Priority::Convenience, false)
        .unwrap();
    Matrix {
        c,
        stream,
        full_rate,
        detail,
        smoothing,
        status_line,
    }
}

/// What happened, in order: ("disable" | "enable" | "rate", sample index, classes or Hz).
fn run(m: &mut Matrix, readings: &[Readings]) -> Vec<(&'static str, usize, Vec<u8>)> {
    let mut log = Vec::new();
    for (i, r) in readings.iter().enumerate() {
        let events = m.c.step(Duration::from_secs(i as u64), *r).to_vec();
        for e in events {
            let classes = |s: FeatureSet| {
                let mut v: Vec<u8> = s
                    .iter()
                    .map(|id| m.c.feature(id).unwrap().priority.class())
                    .collect();
                v.dedup();
                v
            };
            log.push(match e.action {
                Action::Disable(s) => ("disable", i, classes(s)),
                Action::Enable(s) => ("enable", i, classes(s)),
                Action::SetReportRate { hz } => ("rate", i, vec![hz as u8]),
            });
        }
        assert!(m.c.is_enabled(m.stream), "the stream is never shed");
    }
    log
}

/// `/proc/stat` text whose aggregate line has `busy` and `idle` ticks (2 CPUs).
fn stat_text(busy: u64, idle: u64) -> String {
    format!(
        "cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0 0 0\nintr 1\n"
    )
}

#[test]
fn cpu_spike_from_proc_stat_sheds_classes_4_to_6_then_restores_4_5_6() {
    // 1 Hz snapshots on 2 CPUs (200 ticks a second): 20 s at 20 % busy, a 20 s spike at
    // 99 %, then 30 s at 10 %.
    let mut busy_pct = vec![20u64; 20];
    busy_pct.extend([99; 20]);
    busy_pct.extend([10; 30]);
    let (mut busy, mut idle) = (10_000u64, 50_000u64);
    let mut texts = vec![stat_text(busy, idle)];
    for p in &busy_pct {
        busy += 2 * p;
        idle += 200 - 2 * p;
        texts.push(stat_text(busy, idle));
    }
    let times: Vec<SystemCpuTimes> = texts.iter().map(|t| parse_stat(t).unwrap()).collect();
    let memory = Some(sarlink_monitor::Percent::new(40.0).unwrap());
    let readings: Vec<Readings> = times
        .windows(2)
        .map(|w| Readings {
            cpu: system_cpu_percent(w[0], w[1]),
            memory,
            temperature: None,
        })
        .collect();
    assert_eq!(readings[25].cpu.unwrap().value(), 99.0);

    let mut m = matrix();
    let log = run(&mut m, &readings);
    // The spike starts at sample 20: the fifth high sample (24) sheds 4, 5 and 6 at once;
    // class 3 (the full report rate) is kept: this is high, not extreme, pressure.
    // Calm from sample 40: 10 calm samples restore class 4, then one class per 3 more.
    assert_eq!(
        log,
        [
            ("disable", 24, vec![4, 5, 6]),
            ("enable", 49, vec![4]),
            ("enable", 52, vec![5]),
            ("enable", 55, vec![6]),
        ]
    );
    assert!(m.c.is_enabled(m.full_rate));
    assert!(m.c.is_enabled(m.status_line));
    assert_eq!(m.c.shed_from(), None);
}

#[test]
fn cpu_spike_with_a_blip_during_recovery_waits_ten_again() {
    let high = |cpu: f64| Readings {
        cpu: Some(sarlink_monitor::Percent::new(cpu).unwrap()),
        memory: Some(sarlink_monitor::Percent::new(30.0).unwrap()),
        temperature: None,
    };
    let mut readings = vec![high(95.0); 6];
    readings.extend(vec![high(20.0); 10]); // restores class 4 at sample 15
    readings.push(high(75.0)); // not calm, not high: the run restarts
    readings.extend(vec![high(20.0); 12]);
    let mut m = matrix();
    let log = run(&mut m, &readings);
    assert_eq!(
        log,
        [
            ("disable", 4, vec![4, 5, 6]),
            ("enable", 15, vec![4]),
            ("enable", 26, vec![5]),
        ]
    );
    assert!(!m.c.is_enabled(m.status_line));
}

#[test]
fn memory_creep_from_meminfo_sheds_at_85_and_recovers_below_75() {
    // 8 GiB total; available shrinks by 2 % of total a second from 70 % used to 96 %, holds,
    // then the hog exits and use falls to 50 %.
    let total_kib = 8 * 1024 * 1024u64;
    let mut used_pct: Vec<u64> = (35..=48).map(|x| x * 2).collect();
    used_pct.extend([96; 5]);
    used_pct.extend([50; 20]);
    let readings: Vec<Readings> = used_pct
        .iter()
        .map(|p| {
            let available = total_kib * (100 - p) / 100;
            let text = format!(
                "MemTotal:       {total_kib} kB\nMemFree:         1000 kB\nMemAvailable:   {available} kB\nCached:          5000 kB\n"
            );
            Readings {
                cpu: Some(sarlink_monitor::Percent::new(30.0).unwrap()),
                memory: parse_meminfo(&text).unwrap().used_percent(),
                temperature: None,
            }
        })
        .collect();
    // Sample 8 is the first at or above 85 % (86 %); the fifth in a row is sample 12.
    assert!(readings[7].memory.unwrap().value() < 85.0);
    assert!(readings[8].memory.unwrap().value() >= 85.0);
    let mut m = matrix();
    let log = run(&mut m, &readings);
    // Use drops to 50 % at sample 19: calm from there.
    assert_eq!(
        log,
        [
            ("disable", 12, vec![4, 5, 6]),
            ("enable", 28, vec![4]),
            ("enable", 31, vec![5]),
            ("enable", 34, vec![6]),
        ]
    );
    assert!(m.c.is_enabled(m.detail) && m.c.is_enabled(m.smoothing));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn thermal_ramp_on_a_sys_fixture_steps_the_rate_and_sheds_then_cools_one_step_at_a_time() {
    // A copy of the fixture tree: zone0 is `acpitz` at 90 C (not the CPU, ignored), zone1
    // `cpu-thermal` (the SoC), zone2 `x86_pkg_temp` unreadable. The ramp is written into
    // zone1's `temp`, once per sample.
    let sys = std::env::temp_dir().join(format!("sarlink-thermal-ramp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&sys);
    copy_dir(&fixtures().join("sys"), &sys);
    let temp_file = sys.join("class/thermal/thermal_zone1/temp");
    let mut sampler = ResourceSampler::with_roots(fixtures().join("no-proc"), &sys);

    // 60 C, up 2 C a second to 88 C, hold, then down to 60 C.
    let mut ramp: Vec<i64> = (0..=14).map(|i| 60 + 2 * i).collect();
    ramp.extend([88; 3]);
    ramp.extend([60; 40]);
    let mut readings = Vec::new();
    for (i, c) in ramp.iter().enumerate() {
        std::fs::write(&temp_file, format!("{}\n", c * 1000)).unwrap();
        let r = sampler.sample(Duration::from_secs(i as u64)).unwrap();
        // No /proc here: CPU and memory are unknown, never 0.
        assert_eq!((r.system_cpu, r.system_memory), (None, None));
        readings.push(Readings {
            cpu: Some(sarlink_monitor::Percent::new(20.0).unwrap()),
            memory: Some(sarlink_monitor::Percent::new(30.0).unwrap()),
            temperature: r.cpu_temperature,
        });
    }
    let _ = std::fs::remove_dir_all(&sys);
    assert_eq!(readings[0].temperature.unwrap().value(), 60.0);

    let mut m = matrix();
    let log = run(&mut m, &readings);
    // 70 C at sample 5: Warm, 5 Hz. 80 C at 10: Hot, 2 Hz, classes 5-6 off. 86 C at 13:
    // Critical, 1 Hz, class 4 off too. From sample 18 it is 60 C: each level falls after 10
    // cool samples; class 4 comes back when the level leaves Critical, 5 and 6 when it
    // leaves Hot (the calm CPU has been waiting for the thermal level).
    assert_eq!(
        log,
        [
            ("rate", 5, vec![5]),
            ("rate", 10, vec![2]),
            ("disable", 10, vec![5, 6]),
            ("rate", 13, vec![1]),
            ("disable", 13, vec![4]),
            ("rate", 27, vec![2]),
            ("enable", 27, vec![4]),
            ("rate", 37, vec![5]),
            ("enable", 37, vec![5]),
            ("enable", 40, vec![6]),
            ("rate", 47, vec![10]),
        ]
    );
    assert_eq!(m.c.disabled(), FeatureSet::EMPTY);
}
