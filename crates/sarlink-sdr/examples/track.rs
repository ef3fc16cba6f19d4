//! A simulated beacon approaching and then receding, printed at 10 Hz (no hardware, not paced
//! to real time).
//!
//! ```text
//! cargo run -p sarlink-sdr --example track
//! ```

use sarlink_sdr::source::sim::{BeaconMode, SimConfig, Simulator};
use sarlink_sdr::{Estimator, EstimatorConfig, Gain, IqBlock, IqSource};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sim = Simulator::new(SimConfig {
        beacon: BeaconMode::Pulsed {
            period: std::time::Duration::from_millis(500),
            on_time: std::time::Duration::from_millis(450),
        },
        seed: 7,
        ..SimConfig::default()
    });
    let gain = Gain::Db(sim.config().rf_gain_db as f32);
    let config = EstimatorConfig::new(sim.sample_rate_hz())
        .center_frequency_hz(sim.center_frequency_hz())
        .channel(sim.config().beacon_offset_hz, 10_000.0)
        .ewma(Some(EstimatorConfig::DEFAULT_EWMA_ALPHA))
        .calibrate(gain, sim.calibration_offset_db() as f32)
        .gain(gain);
    let mut est = Estimator::new(config)?;
    // 2.5 ms blocks. A time-compressed flight: 1 km/s from 3 km in to 100 m, then out again.
    let mut block = IqBlock::with_capacity(625);
    let duration_s = 6.0;
    let speed_m_per_s: f64 = 1000.0;
    println!(
        "beacon {:.3} MHz, tx {} dBm; distance by free-space path loss",
        (sim.center_frequency_hz() as f64 + sim.config().beacon_offset_hz) / 1e6,
        sim.config().tx_power_dbm
    );
    println!(
        "{:>6} {:>9} {:>10} {:>10} {:>8} {:>7}  detected",
        "t (s)", "dist (m)", "rssi", "noise", "snr dB", "quality"
    );
    let mut t: f64 = 0.0;
    while t < duration_s {
        let distance = 100.0 + (2900.0 - speed_m_per_s * t).abs();
        sim.set_distance_m(distance);
        let _ = sim.read_block(&mut block)?;
        est.process_block(&block, |r| {
            println!(
                "{:>6.1} {:>9.0} {:>6.1} {:<3} {:>6.1} {:<3} {:>8.1} {:>7}  {}",
                r.timestamp_ns as f64 / 1e9,
                distance,
                r.rssi,
                r.units.as_str(),
                r.noise,
                r.units.as_str(),
                r.snr_db,
                r.quality_score.value(),
                if r.detected { "yes" } else { "-" }
            );
        })?;
        t += block.len() as f64 / f64::from(sim.sample_rate_hz());
    }
    Ok(())
}
