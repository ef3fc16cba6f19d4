//! Benchmarks for sarlink-coord: one decision step (two records + `decide`) and the score
//! computed directly.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use sarlink_coord::{
    Config, Coordinator, QualityScore, ScoreConfig, SourceId, SourceReading, score_db,
};

/// Readings per trace (cycled).
const TRACE_LEN: usize = 1024;

/// A deterministic, slowly varying pair of sources with about +-1 dB of noise, like the
/// crate's mission test: (drone, ground) per 100 ms step.
fn trace() -> Vec<(SourceReading, SourceReading)> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    (0..TRACE_LEN)
        .map(|i| {
            let t = Duration::from_millis(i as u64 * 100);
            let secs = t.as_secs_f32();
            let reading = |snr: f32, rssi_noise: f32| {
                let q = QualityScore::new((40.0 + 2.0 * snr).clamp(0.0, 100.0) as u8).unwrap();
                SourceReading::new(-95.0 + snr + 0.5 * rssi_noise, Some(snr), q, t).unwrap()
            };
            let drone = reading(14.0 + 2.0 * (secs / 20.0).sin() + noise(), noise());
            let ground = reading(16.0 + 1.5 * (secs / 30.0).cos() + noise(), noise());
            (drone, ground)
        })
        .collect()
}

/// Runs `decide` steps over the trace, advancing time by 100 ms per step.
fn step_bench(c: &mut Criterion) {
    let trace = trace();
    let mut group = c.benchmark_group("coord/step");
    // Two input records per step.
    group.throughput(Throughput::Elements(2));
    let mut coord = Coordinator::new(Config::default()).unwrap();
    let mut i = 0usize;
    let mut base = Duration::ZERO;
    // The id keeps the name `coord/step/2_records/direct` that docs/BENCHMARKS.md cites.
    group.bench_function(BenchmarkId::new("2_records", "direct"), |b| {
        b.iter(|| {
            let (drone, ground) = trace[i % TRACE_LEN];
            if i % TRACE_LEN == 0 && i > 0 {
                base += Duration::from_millis(TRACE_LEN as u64 * 100);
            }
            let now = base + drone.timestamp();
            // The trace's timestamps restart each cycle; shift them with `base`.
            let shift = |r: SourceReading| {
                SourceReading::new(r.rssi_dbm(), r.snr_db(), r.quality(), now).unwrap()
            };
            coord.update_reading(SourceId::DRONE, shift(drone), now);
            coord.update_reading(SourceId::GROUND, shift(ground), now);
            black_box(coord.decide(black_box(now)));
            i += 1;
        });
    });
    group.finish();
}

/// Scores the trace's readings directly.
fn score_bench(c: &mut Criterion) {
    let readings: Vec<SourceReading> = trace().into_iter().flat_map(|(d, g)| [d, g]).collect();
    let cfg = ScoreConfig::default();
    let mut group = c.benchmark_group("coord/score");
    group.throughput(Throughput::Elements(readings.len() as u64));
    group.bench_function("direct", |b| {
        b.iter(|| {
            let mut sum = 0.0f32;
            for r in &readings {
                sum += score_db(black_box(r), &cfg);
            }
            black_box(sum)
        });
    });
    group.finish();
}

/// Runs every coord benchmark with criterion's command-line configuration.
///
/// Written out rather than with `criterion_group!`, whose generated `pub fn` has no docs.
fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    step_bench(&mut criterion);
    score_bench(&mut criterion);
}

criterion_main!(benches);
