//! Accuracy against synthetic signals with known truth.

use std::time::Duration;

use num_complex::Complex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sarlink_sdr::source::sim::{SimConfig, Simulator};
use sarlink_sdr::{
    CU8_LUT, Estimator, EstimatorConfig, Gain, IqBlock, IqSource, ReadStatus, Report, RssiUnits,
};

const FS: u32 = 250_000;
const OFFSET: f64 = 50_000.0;

fn db(x: f64) -> f64 {
    10.0 * x.log10()
}
fn lin(x: f64) -> f64 {
    10f64.powf(x / 10.0)
}

/// `n` samples: complex white Gaussian noise of total power `noise_dbfs` plus tones
/// `(power_dbfs, frequency_hz)`.
fn synth(n: usize, noise_dbfs: f64, tones: &[(f64, f64)], seed: u64) -> Vec<Complex<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let sigma = (lin(noise_dbfs) / 2.0).sqrt();
    (0..n)
        .map(|i| {
            let u1: f64 = 1.0 - rng.r#gen::<f64>();
            let u2: f64 = rng.r#gen::<f64>();
            let r = (-2.0 * u1.ln()).sqrt() * sigma;
            let (s, c) = (2.0 * std::f64::consts::PI * u2).sin_cos();
            let mut z = Complex::new(r * c, r * s);
            for &(p, f) in tones {
                let ph = 2.0 * std::f64::consts::PI * f * i as f64 / f64::from(FS);
                z += Complex::from_polar(lin(p).sqrt(), ph);
            }
            Complex::new(z.re as f32, z.im as f32)
        })
        .collect()
}

fn reports(est: &mut Estimator, samples: &[Complex<f32>]) -> Vec<Report> {
    let mut out = Vec::new();
    // Odd-sized pieces: frames span calls.
    let mut t = 0u64;
    for chunk in samples.chunks(3001) {
        let ts = Duration::from_nanos(t * 1_000_000_000 / u64::from(FS));
        est.process_samples(chunk, ts, |r| out.push(*r));
        t += chunk.len() as u64;
    }
    out
}

fn estimator(cfg: EstimatorConfig) -> Estimator {
    Estimator::new(cfg).expect("valid config")
}

fn base() -> EstimatorConfig {
    EstimatorConfig::new(FS).channel(OFFSET, 10_000.0)
}

#[test]
fn tone_over_noise_gives_channel_power_within_half_a_db_and_snr_within_1_db() {
    let noise_dbfs = -40.0;
    for (i, snr) in [3.0, 6.0, 10.0, 20.0, 40.0].into_iter().enumerate() {
        for fft in [256, 1024, 4096] {
            let mut est = estimator(base().fft_size(fft));
            let noise_ch = noise_dbfs + db(est.channel_bandwidth_hz() / f64::from(FS));
            let tone = noise_ch + snr;
            // Off the bin grid on purpose.
            // Half a second plus one frame, so the last interval's closing frame is complete.
            let x = synth(
                FS as usize / 2 + fft,
                noise_dbfs,
                &[(tone, OFFSET + 123.4)],
                10 + i as u64,
            );
            let rs = reports(&mut est, &x);
            assert_eq!(rs.len(), 5);
            let truth_ch = db(lin(tone) + lin(noise_ch));
            let worst = |f: fn(&Report) -> f32, truth: f64| {
                rs.iter()
                    .map(|r| (f64::from(f(r)) - truth).abs())
                    .fold(0.0, f64::max)
            };
            eprintln!(
                "fft {fft:>4} snr {snr:>4} dB: worst error rssi {:.3} dB, snr {:.3} dB, noise {:.3} dB",
                worst(|r| r.rssi, truth_ch),
                worst(|r| r.snr_db, snr),
                worst(|r| r.noise, noise_ch)
            );
            for r in &rs {
                assert_eq!(r.units, RssiUnits::Dbfs);
                assert!(
                    (f64::from(r.rssi) - truth_ch).abs() < 0.5,
                    "fft {fft} snr {snr}: rssi {} want {truth_ch}",
                    r.rssi
                );
                assert!(
                    (f64::from(r.snr_db) - snr).abs() < 1.0,
                    "fft {fft} snr {snr}: got {}",
                    r.snr_db
                );
                assert!(
                    (f64::from(r.noise) - noise_ch).abs() < 0.5,
                    "fft {fft}: noise {} want {noise_ch}",
                    r.noise
                );
            }
        }
    }
}

#[test]
fn strong_carrier_outside_the_channel_moves_the_noise_floor_by_at_most_1_db() {
    let noise_dbfs = -40.0;
    let x = synth(FS as usize, noise_dbfs, &[], 3);
    let y = synth(
        FS as usize,
        noise_dbfs,
        &[(-3.0, -60_000.0), (-10.0, 100_000.0)],
        3,
    );
    let clean = reports(&mut estimator(base()), &x);
    let jammed = reports(&mut estimator(base()), &y);
    let shift = clean
        .iter()
        .zip(&jammed)
        .map(|(a, b)| (a.noise - b.noise).abs())
        .fold(0.0, f32::max);
    eprintln!(
        "carriers at -3 and -10 dBFS outside the channel: noise floor moved {shift:.3} dB at most"
    );
    for (a, b) in clean.iter().zip(&jammed) {
        assert!(
            (a.noise - b.noise).abs() <= 1.0,
            "noise {} -> {}",
            a.noise,
            b.noise
        );
        // Nor does it leak into the channel.
        assert!(
            (a.rssi - b.rssi).abs() <= 1.0,
            "rssi {} -> {}",
            a.rssi,
            b.rssi
        );
    }
}

#[test]
fn dc_offset_does_not_raise_the_noise_floor() {
    let x = synth(FS as usize, -40.0, &[], 4);
    let with_dc: Vec<_> = x.iter().map(|z| z + Complex::new(0.05, -0.03)).collect();
    let a = reports(&mut estimator(base()), &x);
    let b = reports(&mut estimator(base()), &with_dc);
    for (a, b) in a.iter().zip(&b) {
        assert!(
            (a.noise - b.noise).abs() < 0.2,
            "noise {} -> {}",
            a.noise,
            b.noise
        );
    }
}

#[test]
fn channel_over_dc_replaces_the_dc_bins_by_the_noise_floor() {
    let x: Vec<_> = synth(FS as usize, -40.0, &[], 5)
        .iter()
        .map(|z| z + Complex::new(0.1, 0.0))
        .collect();
    let rs = reports(
        &mut estimator(EstimatorConfig::new(FS).channel(0.0, 10_000.0)),
        &x,
    );
    for r in &rs {
        // Without the replacement the -20 dBFS DC offset would dominate the channel.
        assert!(r.snr_db < 1.0, "snr {}", r.snr_db);
    }
}

#[test]
fn averaging_is_linear_over_the_interval() {
    // Tone on for the first half of each 100 ms interval only: the report must show half its
    // power (-3 dB), not the mean of the dB values.
    let mut x = synth(FS as usize, -60.0, &[(-10.0, OFFSET)], 6);
    let quiet = synth(FS as usize, -60.0, &[], 7);
    for (i, z) in x.iter_mut().enumerate() {
        if i % 25_000 >= 12_500 {
            *z = quiet[i];
        }
    }
    let rs = reports(&mut estimator(base().fft_size(250)), &x);
    assert_eq!(rs.len(), 10);
    for r in &rs {
        assert!(
            (f64::from(r.rssi) - (-13.01)).abs() < 0.3,
            "rssi {}",
            r.rssi
        );
    }
}

#[test]
fn reports_come_at_the_configured_rate_with_sample_timestamps() {
    let x = synth(2 * FS as usize + 1024, -40.0, &[], 8);
    let rs = reports(
        &mut estimator(
            base()
                .fft_size(1024)
                .report_interval(Duration::from_millis(250)),
        ),
        &x,
    );
    assert_eq!(rs.len(), 8);
    for (i, r) in rs.iter().enumerate() {
        let want = (i as u64 + 1) * 250_000_000;
        // Reports end on a frame boundary: within one 1024-sample frame (4.1 ms) of the ideal.
        assert!(
            r.timestamp_ns >= want && r.timestamp_ns - want < 4_096_000,
            "report {i} at {}",
            r.timestamp_ns
        );
    }
    let total: u32 = rs.iter().map(|r| r.frames).sum();
    assert_eq!(
        total as usize,
        rs.last().unwrap().timestamp_ns as usize * FS as usize / 1_000_000_000 / 1024
    );
}

#[test]
fn ewma_smooths_in_the_linear_domain() {
    let mut x = synth(FS as usize, -50.0, &[(-40.0, OFFSET)], 9);
    let loud = synth(FS as usize, -50.0, &[(-20.0, OFFSET)], 9);
    x[FS as usize / 2..].copy_from_slice(&loud[FS as usize / 2..]);
    let raw = reports(&mut estimator(base().fft_size(250)), &x);
    let smooth = reports(
        &mut estimator(
            base()
                .fft_size(250)
                .ewma(Some(EstimatorConfig::DEFAULT_EWMA_ALPHA)),
        ),
        &x,
    );
    let mut s = lin(f64::from(raw[0].rssi));
    assert!((f64::from(smooth[0].rssi) - db(s)).abs() < 1e-3);
    for (r, m) in raw.iter().zip(&smooth).skip(1) {
        s = 0.3 * lin(f64::from(r.rssi)) + 0.7 * s;
        assert!(
            (f64::from(m.rssi) - db(s)).abs() < 1e-3,
            "smoothed {} want {}",
            m.rssi,
            db(s)
        );
    }
    // The step is visible but delayed.
    assert!(smooth[5].rssi < raw[5].rssi - 3.0);
}

#[test]
fn cu8_fast_path_matches_the_complex_path() {
    let x = synth(FS as usize / 2 + 1024, -30.0, &[(-20.0, OFFSET)], 11);
    let bytes: Vec<u8> = x
        .iter()
        .flat_map(|z| [z.re, z.im].map(|v| (v * 127.5 + 127.5).round().clamp(0.0, 255.0) as u8))
        .collect();
    let mut block = IqBlock::with_capacity(bytes.len() / 2);
    block.start(FS, 0, Duration::ZERO);
    block.extend_from_cu8(&bytes);
    let mut a = Vec::new();
    estimator(base()).process_samples(block.samples(), Duration::ZERO, |r| a.push(*r));
    let mut b = Vec::new();
    let mut est = estimator(base());
    let mut t_samples = 0.0f64;
    // Odd-sized byte chunks: samples split across calls.
    for chunk in bytes.chunks(777) {
        // The time of the sample the chunk's first byte belongs to.
        let ts = Duration::from_nanos((t_samples.floor() * 1e9 / f64::from(FS)).round() as u64);
        est.process_cu8(chunk, ts, |r| b.push(*r));
        t_samples += chunk.len() as f64 / 2.0;
    }
    assert_eq!(a.len(), 5);
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(&b) {
        assert_eq!((a.rssi, a.noise, a.snr_db), (b.rssi, b.noise, b.snr_db));
        assert_eq!(a.timestamp_ns, b.timestamp_ns);
    }
    assert_eq!(CU8_LUT[bytes[0] as usize], block.samples()[0].re);
}

#[test]
fn calibration_turns_dbfs_into_dbm_for_the_configured_gain_only() {
    let x = synth(FS as usize / 2, -40.0, &[(-20.0, OFFSET)], 12);
    let cfg = base().calibrate(Gain::Db(40.0), -60.0).gain(Gain::Db(40.0));
    let mut est = estimator(cfg);
    let dbm = reports(&mut est, &x);
    est.set_gain(Gain::Db(20.0));
    let dbfs = reports(&mut est, &x);
    for (m, f) in dbm.iter().zip(&dbfs) {
        assert_eq!(m.units, RssiUnits::Dbm);
        assert_eq!(f.units, RssiUnits::Dbfs);
        assert!((m.rssi - (f.rssi - 60.0)).abs() < 0.3);
        assert!((m.snr_db - f.snr_db).abs() < 0.3);
    }
}

#[test]
fn simulator_power_in_dbm_is_recovered_through_its_calibration() {
    for distance in [300.0, 1000.0, 3000.0] {
        let mut sim = Simulator::new(SimConfig {
            distance_m: distance,
            ..SimConfig::default()
        });
        let gain = Gain::Db(sim.config().rf_gain_db as f32);
        let cfg = EstimatorConfig::new(FS)
            .channel(sim.config().beacon_offset_hz, 10_000.0)
            .calibrate(gain, sim.calibration_offset_db() as f32)
            .gain(gain);
        let mut est = estimator(cfg);
        let noise_ch = sim.noise_power_dbm() + db(est.channel_bandwidth_hz() / f64::from(FS));
        let truth = db(lin(sim.received_power_dbm()) + lin(noise_ch));
        let mut block = IqBlock::with_capacity(16_384);
        let mut rs = Vec::new();
        for _ in 0..16 {
            assert_eq!(sim.read_block(&mut block).unwrap(), ReadStatus::Data);
            est.process_block(&block, |r| rs.push(*r)).unwrap();
        }
        assert!(!rs.is_empty());
        for r in &rs {
            assert_eq!(r.units, RssiUnits::Dbm);
            assert_eq!(r.frequency_hz, 433_970_000);
            // 8-bit quantisation adds a little noise: 1 dB allowance.
            assert!(
                (f64::from(r.rssi) - truth).abs() < 1.0,
                "{distance} m: rssi {} want {truth}",
                r.rssi
            );
            assert!(
                (f64::from(r.noise) - noise_ch).abs() < 1.0,
                "{distance} m: noise {} want {noise_ch}",
                r.noise
            );
        }
    }
}

#[test]
fn approaching_beacon_is_detected_after_the_debounce_and_released_when_gone() {
    let mut sim = Simulator::new(SimConfig {
        distance_m: 100_000.0,
        ..SimConfig::default()
    });
    // 1024-point frames: the interval ending at 1.0 s closes on a frame that ends 880 samples
    // into the near part (the timing asserted below).
    let mut est = estimator(
        EstimatorConfig::new(FS)
            .fft_size(1024)
            .channel(50_000.0, 10_000.0),
    );
    let mut block = IqBlock::with_capacity(25_000);
    let mut states = Vec::new();
    // One extra block so the last interval's closing frame arrives.
    for step in 0..31 {
        // Far for 1 s, near for 1 s, far again.
        sim.set_distance_m(if (10..20).contains(&step) {
            200.0
        } else {
            100_000.0
        });
        assert_eq!(sim.read_block(&mut block).unwrap(), ReadStatus::Data);
        est.process_block(&block, |r| states.push((r.snr_db, r.detected)))
            .unwrap();
    }
    assert_eq!(states.len(), 30);
    assert!(states[..10].iter().all(|&(_, d)| !d));
    // Near from t = 1.0 s (report 9, at 1.0 s, already ends with a frame of near samples):
    // SNR high at once, detection at the 1.3 s report.
    assert!(states[10].0 > 20.0, "snr {}", states[10].0);
    assert!(!states[11].1);
    assert!(states[12].1 && states[19].1);
    // Gone from report 20: released 300 ms later.
    assert!(states[22].1);
    assert!(!states[23].1 && !states[29].1);
}
