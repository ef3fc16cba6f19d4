//! Steady-state paths allocate nothing: the estimator per block (including the reports it
//! makes) and the file and simulator sources per block.

use std::time::Duration;

use sarlink_sdr::source::file::{FileSource, SampleFormat};
use sarlink_sdr::source::sim::{SimConfig, Simulator};
use sarlink_sdr::{Estimator, EstimatorConfig, Gain, IqBlock, IqSource, ReadStatus};
use sarlink_testkit::{CountingAlloc, allocations_during};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn sim_bytes(n_samples: usize) -> Vec<u8> {
    let mut sim = Simulator::new(SimConfig {
        distance_m: 500.0,
        ..SimConfig::default()
    });
    let mut out = vec![0u8; 2 * n_samples];
    sim.read_cu8(&mut out);
    out
}

#[test]
fn estimator_allocates_nothing_per_block() {
    let bytes = sim_bytes(250_000);
    let cfg = EstimatorConfig::new(250_000)
        .channel(50_000.0, 10_000.0)
        .ewma(Some(0.3))
        .calibrate(Gain::Db(40.0), -80.0)
        .gain(Gain::Db(40.0));
    let mut est = Estimator::new(cfg).unwrap();
    let mut reports = 0;
    // Warm-up: the first interval.
    est.process_cu8(&bytes[..60_000], Duration::ZERO, |_| reports += 1);
    let (n, ()) = allocations_during(|| {
        // Odd-sized blocks so frames and samples span calls.
        let mut t = 30_000u64;
        for chunk in bytes[60_000..].chunks(16_383) {
            est.process_cu8(chunk, Duration::from_micros(t * 4), |_| reports += 1);
            t += chunk.len() as u64 / 2;
        }
    });
    assert_eq!(n, 0, "allocations while processing cu8");
    assert!(reports >= 9, "reports {reports}");

    let mut block = IqBlock::with_capacity(8192);
    block.start(250_000, 433_920_000, Duration::ZERO);
    block.extend_from_cu8(&bytes[..16_384]);
    let (n, ()) = allocations_during(|| {
        for _ in 0..40 {
            est.process_block(&block, |_| reports += 1).unwrap();
        }
    });
    assert_eq!(n, 0, "allocations while processing complex blocks");
}

#[test]
fn file_sources_allocate_nothing_per_block() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let bytes = sim_bytes(50_001);
    let cu8 = dir.join("alloc_433.92M_250k.cu8");
    std::fs::write(&cu8, &bytes).unwrap();
    let ci16 = dir.join("alloc.ci16");
    let wide: Vec<u8> = bytes
        .iter()
        .flat_map(|&b| ((i16::from(b) - 128) * 256).to_le_bytes())
        .collect();
    std::fs::write(&ci16, &wide).unwrap();

    let sources = [
        FileSource::open_cu8(&cu8).unwrap().looping(true),
        FileSource::open_raw(&ci16, SampleFormat::Ci16Le, 250_000, 433_920_000)
            .unwrap()
            .looping(true),
    ];
    for mut src in sources {
        let mut block = IqBlock::with_capacity(4096);
        assert_eq!(src.read_block(&mut block).unwrap(), ReadStatus::Data);
        let (n, ()) = allocations_during(|| {
            // 200 blocks of 4096 run through the 50 001-sample file more than 16 times.
            for _ in 0..200 {
                assert_eq!(src.read_block(&mut block).unwrap(), ReadStatus::Data);
                assert_eq!(block.len(), 4096);
            }
        });
        assert_eq!(n, 0, "allocations reading {:?}", src.format());
    }
}

#[test]
fn simulator_allocates_nothing_per_block() {
    let mut sim = Simulator::new(SimConfig::default());
    let mut block = IqBlock::with_capacity(4096);
    assert_eq!(sim.read_block(&mut block).unwrap(), ReadStatus::Data);
    let (n, ()) = allocations_during(|| {
        for i in 0..50 {
            sim.set_distance_m(100.0 + f64::from(i));
            assert_eq!(sim.read_block(&mut block).unwrap(), ReadStatus::Data);
        }
    });
    assert_eq!(n, 0);
}
