//! Benchmarks for sarlink-monitor: histogram recording (target <= 20 ns), a degradation
//! controller step (target <= 1 us), threshold evaluation, Prometheus export, and one
//! second's monitoring work (sampling `/proc` and `/sys`, then evaluating the controller,
//! the alerts and the baselines; target under 0.5 % of a core at 1 Hz, i.e. 5 ms).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_main};
use sarlink_monitor::degradation::{ControllerConfig, DegradationController, Priority, Readings};
use sarlink_monitor::metrics::{Histogram, Registry};
use sarlink_monitor::thresholds::{Observation, ThresholdConfig, Thresholds};
use sarlink_monitor::{Celsius, Percent};

fn metrics(c: &mut Criterion) {
    let mut g = c.benchmark_group("monitor/metrics");
    g.throughput(Throughput::Elements(1));
    let h = Histogram::new();
    let mut ns = 1_000u64;
    g.bench_function("histogram_record", |b| {
        b.iter(|| {
            // Vary the value so different buckets are touched (a cheap LCG step).
            ns = (ns.wrapping_mul(6364136223846793005).wrapping_add(1) >> 40) + 1_000;
            h.record(black_box(Duration::from_nanos(ns)));
        })
    });
    let mut local = sarlink_monitor::metrics::LocalHistogram::new();
    let mut ns2 = 1_000u64;
    g.bench_function("local_histogram_record", |b| {
        b.iter(|| {
            ns2 = (ns2.wrapping_mul(6364136223846793005).wrapping_add(1) >> 40) + 1_000;
            local.record(black_box(Duration::from_nanos(ns2)));
        })
    });
    g.bench_function("scope_timer", |b| {
        b.iter(|| drop(black_box(h.start_timer())))
    });
    let registry = Registry::new();
    let counter = registry
        .counter("frames_sent", "Frames sent", &[("link", "gs1")])
        .unwrap();
    g.bench_function("counter_inc", |b| b.iter(|| black_box(&counter).inc()));
    for i in 0..10 {
        let link = format!("gs{i}");
        registry
            .counter("frames_sent", "", &[("link", &link)])
            .unwrap()
            .add(i);
        registry
            .gauge("queue_depth", "Queue depth", &[("link", &link)])
            .unwrap()
            .set(i as f64);
        let h = registry
            .histogram("rtt_seconds", "RTT", &[("link", &link)])
            .unwrap();
        (1..100).for_each(|ms| h.record(Duration::from_millis(ms)));
    }
    g.throughput(Throughput::Elements(30));
    g.bench_function("snapshot_prometheus_30_series", |b| {
        b.iter(|| black_box(registry.snapshot().to_prometheus_text()))
    });
    g.bench_function("registry_prometheus_30_series", |b| {
        b.iter(|| black_box(registry.to_prometheus_text()))
    });
    g.finish();
}

fn readings(cpu: f64, mem: f64, temp: f64) -> Readings {
    Readings {
        cpu: Some(Percent::new(cpu).unwrap()),
        memory: Some(Percent::new(mem).unwrap()),
        temperature: Some(Celsius::new(temp).unwrap()),
    }
}

fn controller(c: &mut Criterion) {
    let mut g = c.benchmark_group("monitor/controller");
    g.throughput(Throughput::Elements(1));
    let mut ctl = DegradationController::new(ControllerConfig::default());
    for (i, p) in Priority::ALL.iter().cycle().take(24).enumerate() {
        ctl.register(&format!("feature{i}"), *p, i % 7 == 0)
            .unwrap();
    }
    let mut now = Duration::ZERO;
    let calm = readings(35.0, 40.0, 55.0);
    g.bench_function("step_steady", |b| {
        b.iter(|| {
            now += Duration::from_millis(100);
            black_box(ctl.step(now, black_box(calm)).len())
        })
    });
    // A cycle that sheds (high pressure, thermal, extreme) and recovers class by class, so
    // the average includes transitions and event emission.
    let mut cycle = Vec::new();
    cycle.extend(std::iter::repeat_n(readings(90.0, 50.0, 60.0), 6));
    cycle.extend(std::iter::repeat_n(readings(95.0, 92.0, 86.0), 2));
    cycle.extend(std::iter::repeat_n(readings(20.0, 30.0, 50.0), 60));
    let mut i = 0;
    g.bench_function("step_cycle_with_transitions", |b| {
        b.iter(|| {
            now += Duration::from_millis(100);
            i = (i + 1) % cycle.len();
            black_box(ctl.step(now, black_box(cycle[i])).len())
        })
    });
    g.finish();
}

fn thresholds(c: &mut Criterion) {
    let mut g = c.benchmark_group("monitor/thresholds");
    g.throughput(Throughput::Elements(1));
    let mut t = Thresholds::new(ThresholdConfig::default());
    let obs: Vec<Observation> = (0..64u64)
        .map(|i| match i % 3 {
            0 => Observation::LinkRtt(Duration::from_millis(20 + i)),
            1 => Observation::Cpu(Percent::new((i * 3 % 100) as f64).unwrap()),
            _ => Observation::Temperature(Celsius::new(50.0 + (i % 40) as f64).unwrap()),
        })
        .collect();
    let mut now = Duration::ZERO;
    let mut i = 0;
    g.bench_function("observe", |b| {
        b.iter(|| {
            now += Duration::from_millis(100);
            i = (i + 1) % obs.len();
            black_box(t.observe(now, black_box(obs[i])))
        })
    });
    g.finish();
}

fn per_second(c: &mut Criterion) {
    use sarlink_monitor::baseline::{Baseline, BaselineConfig};
    use sarlink_monitor::resources::ResourceSampler;
    use sarlink_monitor::thresholds::RttWindow;
    let mut g = c.benchmark_group("monitor/per_second");
    g.throughput(Throughput::Elements(1));
    // The real /proc and /sys of this machine: file reads and parsing, as the drivers do.
    let mut sampler = ResourceSampler::new();
    let mut now = Duration::ZERO;
    g.bench_function("sample_proc_sys", |b| {
        b.iter(|| {
            now += Duration::from_secs(1);
            black_box(sampler.sample(now).ok())
        })
    });
    // What the drone core evaluates on each sample and each ping: the controller with the
    // drone's 12 features, CPU, memory, temperature and backlog alerts, the RTT p95 window,
    // its baseline and the RTT and deviation alerts.
    let mut ctl = DegradationController::new(ControllerConfig::default());
    for i in 0..12 {
        let p = Priority::from_class(1 + (i % 6) as u8).unwrap();
        ctl.register(&format!("f{i}"), p, i < 6).unwrap();
    }
    let mut t = Thresholds::new(ThresholdConfig::default());
    let mut window = RttWindow::new(Duration::from_secs(5));
    let mut baseline = Baseline::new(BaselineConfig::default());
    let mut k = 0u64;
    let mut now = Duration::ZERO;
    g.bench_function("evaluate", |b| {
        b.iter(|| {
            now += Duration::from_secs(1);
            k = (k + 1) % 100;
            let cpu = Percent::new((k * 7 % 100) as f64).unwrap();
            let mem = Percent::new(40.0 + (k % 50) as f64).unwrap();
            let temp = Celsius::new(50.0 + (k % 40) as f64).unwrap();
            let r = Readings {
                cpu: Some(cpu),
                memory: Some(mem),
                temperature: Some(temp),
            };
            let mut n = ctl.step(now, black_box(r)).len();
            let rtt = Duration::from_micros(500 + k * 700);
            let p95 = window.observe(now, rtt);
            let sigmas = baseline
                .update(rtt.as_secs_f64() * 1e3)
                .map_or(0.0, |d| d.sigmas);
            for o in [
                Observation::Cpu(cpu),
                Observation::Memory(mem),
                Observation::Temperature(temp),
                Observation::Backlog(Percent::new((k % 10) as f64).unwrap()),
                Observation::LinkRtt(p95),
                Observation::RttDeviation(sigmas),
                Observation::CycleLoad(Percent::new((k % 60) as f64).unwrap()),
            ] {
                n += usize::from(t.observe(now, o).is_some());
            }
            black_box(n)
        })
    });
    g.finish();
}

/// Runs every monitor benchmark with criterion's command-line configuration.
///
/// Written out rather than with `criterion_group!`, whose generated `pub fn` has no docs.
fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    metrics(&mut criterion);
    controller(&mut criterion);
    thresholds(&mut criterion);
    per_second(&mut criterion);
}

criterion_main!(benches);
