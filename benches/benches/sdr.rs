//! Benchmarks for sarlink-sdr: the estimator on cu8 and complex input, and the sources.
//! Figures and commands: docs/BENCHMARKS.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_main};
use sarlink_sdr::source::file::FileSource;
use sarlink_sdr::source::sim::{BeaconMode, SimConfig, Simulator};
use sarlink_sdr::{Estimator, EstimatorConfig, IqBlock, IqSource};

const RATE: u32 = 2_400_000;
/// 0.1 s at 2.4 MS/s: one report interval per iteration.
const SAMPLES: usize = 240_000;
/// An RTL-SDR USB transfer: 16 384 samples.
const CHUNK_BYTES: usize = 32_768;

fn recording() -> Vec<u8> {
    recording_of(BeaconMode::Continuous)
}

/// 0.1 s of a beacon transmitting in `mode`.
fn recording_of(beacon: BeaconMode) -> Vec<u8> {
    let mut sim = Simulator::new(SimConfig {
        sample_rate_hz: RATE,
        distance_m: 500.0,
        beacon,
        ..SimConfig::default()
    });
    let mut bytes = vec![0u8; 2 * SAMPLES];
    sim.read_cu8(&mut bytes);
    bytes
}

fn estimator(fft_size: usize) -> Estimator {
    Estimator::new(
        EstimatorConfig::new(RATE)
            .fft_size(fft_size)
            .channel(50_000.0, 10_000.0)
            .ewma(Some(0.3)),
    )
    .unwrap()
}

fn estimator_benches(c: &mut Criterion) {
    let bytes = recording();
    let mut g = c.benchmark_group("sdr/estimator");
    g.throughput(Throughput::Elements(SAMPLES as u64));
    for fft in [256usize, 1024, 4096] {
        let mut est = estimator(fft);
        g.bench_function(format!("cu8_fft{fft}"), |b| {
            b.iter(|| {
                let mut reports = 0u32;
                for chunk in bytes.chunks(CHUNK_BYTES) {
                    est.process_cu8(black_box(chunk), Duration::ZERO, |r| {
                        reports += 1;
                        black_box(r);
                    });
                }
                reports
            });
        });
    }
    // The drone's configuration: default FFT (2048 at 2.4 MS/s, about 1 ms frames), carrier
    // tracking and pulse measurement, on a tag pulsing 20 ms every 50 ms (two pulses per
    // report interval, so the pulse tracker opens and closes pulses in every iteration).
    let pulsed = recording_of(BeaconMode::Pulsed {
        period: Duration::from_millis(50),
        on_time: Duration::from_millis(20),
    });
    let mut est = Estimator::new(EstimatorConfig::new(RATE).channel(50_000.0, 10_000.0)).unwrap();
    let (mut pulses, mut samples) = (0u32, 0u64);
    g.bench_function("cu8_default_pulsed", |b| {
        b.iter(|| {
            for chunk in pulsed.chunks(CHUNK_BYTES) {
                // Timestamps that keep counting: pulse times need a monotonic clock.
                let ts = Duration::from_nanos(samples * 1_000_000_000 / u64::from(RATE));
                samples += (chunk.len() / 2) as u64;
                est.process_cu8(black_box(chunk), ts, |r| {
                    pulses += r.pulse.count;
                    black_box(r);
                });
            }
        });
    });
    assert!(pulses > 0, "the pulsed benchmark saw no pulse");
    let mut block = IqBlock::with_capacity(CHUNK_BYTES / 2);
    let mut est = estimator(1024);
    g.bench_function("complex_fft1024", |b| {
        b.iter(|| {
            for chunk in bytes.chunks(CHUNK_BYTES) {
                block.start(RATE, 433_920_000, Duration::ZERO);
                block.extend_from_cu8(chunk);
                est.process_block(black_box(&block), |r| {
                    black_box(r);
                })
                .unwrap();
            }
        });
    });
    g.finish();
}

fn source_benches(c: &mut Criterion) {
    let bytes = recording();
    let path = std::env::temp_dir().join(format!(
        "sarlink-bench-{}_433.92M_2400k.cu8",
        std::process::id()
    ));
    std::fs::write(&path, &bytes).unwrap();
    let mut g = c.benchmark_group("sdr/source");
    g.throughput(Throughput::Elements((CHUNK_BYTES / 2) as u64));
    let mut file = FileSource::open_cu8(&path).unwrap().looping(true);
    let mut block = IqBlock::with_capacity(CHUNK_BYTES / 2);
    g.bench_function("file_cu8_read_block", |b| {
        b.iter(|| file.read_block(black_box(&mut block)).unwrap())
    });
    let mut sim = Simulator::new(SimConfig {
        sample_rate_hz: RATE,
        ..SimConfig::default()
    });
    g.bench_function("sim_read_block", |b| {
        b.iter(|| sim.read_block(black_box(&mut block)).unwrap())
    });
    g.finish();
    let _ = std::fs::remove_file(&path);
}

/// Runs every sdr benchmark with criterion's command-line configuration.
///
/// Written out rather than with `criterion_group!`, whose generated `pub fn` has no docs.
fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    estimator_benches(&mut criterion);
    source_benches(&mut criterion);
}

criterion_main!(benches);
