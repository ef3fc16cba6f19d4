//! A simulated beacon as an RTL-SDR would receive it.
//!
//! Received power follows free-space path loss:
//! `P_rx = P_tx + G_tx + G_rx - (20 log10(d) + 20 log10(f) - 147.55)` (d in m, f in Hz).
//! Receiver noise is thermal, `-174 dBm/Hz + 10 log10(sample rate) + noise figure`, white over
//! the sampled band. Powers at the antenna become dBFS through the RF gain and the ADC's full
//! scale: `dBFS = dBm + rf_gain_db - adc_full_scale_dbm`, so [`Simulator::calibration_offset_db`]
//! is exactly the offset that turns the estimator's dBFS back into dBm. The sum is quantised
//! to 8 bits with clipping (`round(127.5 x + 127.5)` clamped to 0..=255), as an RTL-SDR does.
//! Output is deterministic for a given seed.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::block::{Gain, IqBlock, samples_to_duration};
use crate::source::{ControlError, IqSource, ReadStatus, SourceError};

/// How the beacon transmits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeaconMode {
    /// An unmodulated carrier, always on.
    Continuous,
    /// A carrier switched on for `on_time` at the start of every `period`.
    Pulsed {
        /// Time from one pulse start to the next.
        period: Duration,
        /// Length of each pulse.
        on_time: Duration,
    },
}

/// Parameters of a [`Simulator`]; fields document their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Sample rate, Hz; default 250 000.
    pub sample_rate_hz: u32,
    /// Receiver centre frequency, Hz; default 433 920 000.
    pub center_frequency_hz: u64,
    /// Beacon frequency relative to the initial centre frequency, Hz; default 50 000.
    pub beacon_offset_hz: f64,
    /// Beacon transmission pattern; default [`BeaconMode::Continuous`].
    pub beacon: BeaconMode,
    /// Transmit power, dBm; default -30.
    pub tx_power_dbm: f64,
    /// Transmit antenna gain, dBi; default 0.
    pub tx_antenna_gain_dbi: f64,
    /// Receive antenna gain, dBi; default 0.
    pub rx_antenna_gain_dbi: f64,
    /// Initial distance to the beacon, m; default 1000.
    pub distance_m: f64,
    /// Receiver noise figure, dB; default 6.
    pub noise_figure_db: f64,
    /// RF gain, dB; default 40 (also what [`Gain::Auto`] selects).
    pub rf_gain_db: f64,
    /// Antenna power that reaches 0 dBFS at 0 dB RF gain, dBm; default -40 (with the default
    /// gain, 250 kS/s of receiver noise then sits near -34 dBFS, as on a real RTL-SDR).
    pub adc_full_scale_dbm: f64,
    /// Seed of the noise generator; default 1.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            sample_rate_hz: 250_000,
            center_frequency_hz: 433_920_000,
            beacon_offset_hz: 50_000.0,
            beacon: BeaconMode::Continuous,
            tx_power_dbm: -30.0,
            tx_antenna_gain_dbi: 0.0,
            rx_antenna_gain_dbi: 0.0,
            distance_m: 1000.0,
            noise_figure_db: 6.0,
            rf_gain_db: 40.0,
            adc_full_scale_dbm: -40.0,
            seed: 1,
        }
    }
}

/// Free-space path loss in dB at `distance_m` metres and `frequency_hz`.
#[must_use]
pub fn free_space_path_loss_db(distance_m: f64, frequency_hz: f64) -> f64 {
    20.0 * distance_m.log10() + 20.0 * frequency_hz.log10() - 147.55
}

/// A simulated receiver with a beacon at a distance the caller moves.
#[derive(Debug, Clone)]
pub struct Simulator {
    config: SimConfig,
    beacon_frequency_hz: f64,
    rng: StdRng,
    /// Beacon phasor and its per-sample rotation.
    phase: (f64, f64),
    step: (f64, f64),
    scratch: Vec<u8>,
    delivered: u64,
}

impl Simulator {
    /// A simulator with `config`.
    ///
    /// # Panics
    ///
    /// Panics if `config.sample_rate_hz` is 0 or `config.distance_m` is not positive.
    #[must_use]
    pub fn new(config: SimConfig) -> Self {
        assert!(
            config.sample_rate_hz > 0,
            "simulator sample rate must be > 0"
        );
        assert!(config.distance_m > 0.0, "simulator distance must be > 0");
        let beacon_frequency_hz = config.center_frequency_hz as f64 + config.beacon_offset_hz;
        let mut sim = Simulator {
            rng: StdRng::seed_from_u64(config.seed),
            beacon_frequency_hz,
            phase: (1.0, 0.0),
            step: (1.0, 0.0),
            scratch: Vec::new(),
            delivered: 0,
            config,
        };
        sim.update_step();
        sim
    }

    fn update_step(&mut self) {
        let offset = self.beacon_frequency_hz - self.config.center_frequency_hz as f64;
        let w = 2.0 * std::f64::consts::PI * offset / f64::from(self.config.sample_rate_hz);
        self.step = (w.cos(), w.sin());
    }

    /// The configuration, with the current distance, gain, frequency and rate.
    #[must_use]
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Moves the beacon to `distance_m` metres (values below 1 mm are clamped to 1 mm).
    pub fn set_distance_m(&mut self, distance_m: f64) {
        self.config.distance_m = distance_m.max(1e-3);
    }

    /// Beacon power at the antenna while it transmits, dBm.
    #[must_use]
    pub fn received_power_dbm(&self) -> f64 {
        let c = &self.config;
        c.tx_power_dbm + c.tx_antenna_gain_dbi + c.rx_antenna_gain_dbi
            - free_space_path_loss_db(c.distance_m, self.beacon_frequency_hz)
    }

    /// Receiver noise over the whole sampled band, dBm.
    #[must_use]
    pub fn noise_power_dbm(&self) -> f64 {
        -174.0 + 10.0 * f64::from(self.config.sample_rate_hz).log10() + self.config.noise_figure_db
    }

    /// The offset with `dBm = dBFS + offset` at the current RF gain.
    #[must_use]
    pub fn calibration_offset_db(&self) -> f64 {
        self.config.adc_full_scale_dbm - self.config.rf_gain_db
    }

    fn transmitting(&self, sample: u64) -> bool {
        match self.config.beacon {
            BeaconMode::Continuous => true,
            BeaconMode::Pulsed { period, on_time } => {
                let period_ns = period.as_nanos();
                if period_ns == 0 {
                    return true;
                }
                let rate = u128::from(self.config.sample_rate_hz);
                let t_ns = u128::from(sample) * 1_000_000_000 / rate;
                t_ns % period_ns < on_time.as_nanos()
            }
        }
    }

    /// Fills `out` with the next `out.len() / 2` samples as unsigned 8-bit I/Q (an odd
    /// trailing byte is left untouched); returns the number of samples.
    pub fn read_cu8(&mut self, out: &mut [u8]) -> usize {
        let to_fs = -self.calibration_offset_db();
        let amp = 10f64.powf((self.received_power_dbm() + to_fs) / 20.0);
        let noise_sigma =
            10f64.powf((self.noise_power_dbm() + to_fs) / 20.0) / std::f64::consts::SQRT_2;
        let n = out.len() / 2;
        for (i, pair) in out.chunks_exact_mut(2).enumerate() {
            let (mut re, mut im) = gaussian_pair(&mut self.rng);
            re *= noise_sigma;
            im *= noise_sigma;
            if self.transmitting(self.delivered + i as u64) {
                re += amp * self.phase.0;
                im += amp * self.phase.1;
            }
            let (p, s) = (self.phase, self.step);
            self.phase = (p.0 * s.0 - p.1 * s.1, p.0 * s.1 + p.1 * s.0);
            pair[0] = quantise(re);
            pair[1] = quantise(im);
        }
        // Keep the phasor on the unit circle despite rounding.
        let norm = self.phase.0.hypot(self.phase.1);
        self.phase = (self.phase.0 / norm, self.phase.1 / norm);
        self.delivered += n as u64;
        n
    }
}

fn quantise(x: f64) -> u8 {
    // Clamped to 0..=255 first, so the cast is exact.
    (x * 127.5 + 127.5).round().clamp(0.0, 255.0) as u8
}

/// Two independent standard normal values (Box-Muller).
fn gaussian_pair(rng: &mut StdRng) -> (f64, f64) {
    // 1 - [0, 1) is (0, 1]: the logarithm stays finite.
    let u1: f64 = 1.0 - rng.r#gen::<f64>();
    let u2: f64 = rng.r#gen::<f64>();
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (2.0 * std::f64::consts::PI * u2).sin_cos();
    (r * c, r * s)
}

impl IqSource for Simulator {
    fn read_block(&mut self, block: &mut IqBlock) -> Result<ReadStatus, SourceError> {
        let want = 2 * block.capacity();
        if self.scratch.len() < want {
            self.scratch.resize(want, 0);
        }
        let ts = samples_to_duration(self.delivered, self.config.sample_rate_hz);
        block.start(
            self.config.sample_rate_hz,
            self.config.center_frequency_hz,
            ts,
        );
        let mut scratch = std::mem::take(&mut self.scratch);
        self.read_cu8(&mut scratch[..want]);
        block.extend_from_cu8(&scratch[..want]);
        self.scratch = scratch;
        Ok(ReadStatus::Data)
    }

    fn sample_rate_hz(&self) -> u32 {
        self.config.sample_rate_hz
    }

    fn center_frequency_hz(&self) -> u64 {
        self.config.center_frequency_hz
    }

    fn set_frequency(&mut self, frequency_hz: u64) -> Result<(), ControlError> {
        self.config.center_frequency_hz = frequency_hz;
        self.update_step();
        Ok(())
    }

    fn set_gain(&mut self, gain: Gain) -> Result<(), ControlError> {
        self.config.rf_gain_db = match gain {
            Gain::Auto => SimConfig::default().rf_gain_db,
            Gain::Db(db) if db.is_finite() && (-10.0..=60.0).contains(&db) => f64::from(db),
            Gain::Db(db) => {
                return Err(ControlError::OutOfRange {
                    what: "gain (dB)",
                    value: f64::from(db),
                });
            }
        };
        Ok(())
    }

    fn set_sample_rate(&mut self, sample_rate_hz: u32) -> Result<(), ControlError> {
        if sample_rate_hz == 0 {
            return Err(ControlError::OutOfRange {
                what: "sample rate (Hz)",
                value: 0.0,
            });
        }
        // Keep time continuous: re-express the samples delivered so far at the new rate.
        let t = samples_to_duration(self.delivered, self.config.sample_rate_hz);
        self.delivered = (t.as_secs_f64() * f64::from(sample_rate_hz)).round() as u64;
        self.config.sample_rate_hz = sample_rate_hz;
        self.update_step();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_loss_reference_value() {
        // 1 km at 1 GHz: 60 + 180 - 147.55 = 92.45 dB.
        assert!((free_space_path_loss_db(1000.0, 1e9) - 92.45).abs() < 1e-9);
        // Doubling the distance costs 6.02 dB.
        let d = free_space_path_loss_db(2000.0, 4e8) - free_space_path_loss_db(1000.0, 4e8);
        assert!((d - 6.0206).abs() < 1e-3);
    }

    #[test]
    fn same_seed_same_samples_other_seed_differs() {
        let mut a = Simulator::new(SimConfig::default());
        let mut b = Simulator::new(SimConfig::default());
        let mut c = Simulator::new(SimConfig {
            seed: 2,
            ..SimConfig::default()
        });
        let (mut x, mut y, mut z) = (vec![0u8; 4096], vec![0u8; 4096], vec![0u8; 4096]);
        a.read_cu8(&mut x);
        b.read_cu8(&mut y);
        c.read_cu8(&mut z);
        assert_eq!(x, y);
        assert_ne!(x, z);
    }

    fn snr_at(sim: &mut Simulator, offset_hz: f64) -> f32 {
        let cfg = crate::EstimatorConfig::new(sim.sample_rate_hz()).channel(offset_hz, 10_000.0);
        let mut est = crate::Estimator::new(cfg).unwrap();
        let mut block = IqBlock::with_capacity(26_000);
        let mut snr = f32::NAN;
        assert_eq!(sim.read_block(&mut block).unwrap(), ReadStatus::Data);
        est.process_block(&block, |r| snr = r.snr_db).unwrap();
        snr
    }

    #[test]
    fn retuning_moves_the_beacon_within_the_band() {
        let mut s = Simulator::new(SimConfig {
            distance_m: 200.0,
            ..SimConfig::default()
        });
        assert!(snr_at(&mut s, 50_000.0) > 20.0);
        // Beacon at 433.97 MHz; tuned to 433.94 MHz it sits at +30 kHz.
        s.set_frequency(433_940_000).unwrap();
        assert_eq!(s.center_frequency_hz(), 433_940_000);
        assert!(snr_at(&mut s, 30_000.0) > 20.0);
        assert!(snr_at(&mut s, 50_000.0) < 3.0);
        assert!(matches!(
            s.set_gain(Gain::Db(99.0)),
            Err(ControlError::OutOfRange { .. })
        ));
        s.set_gain(Gain::Db(30.0)).unwrap();
        assert_eq!(s.calibration_offset_db(), -70.0);
    }

    #[test]
    fn close_beacon_clips_at_eight_bits() {
        let mut s = Simulator::new(SimConfig {
            distance_m: 1.0,
            ..SimConfig::default()
        });
        let mut out = vec![0u8; 2000];
        s.read_cu8(&mut out);
        assert!(out.contains(&0) && out.contains(&255));
    }

    #[test]
    fn pulsed_beacon_is_off_between_pulses() {
        let cfg = SimConfig {
            distance_m: 10.0,
            beacon: BeaconMode::Pulsed {
                period: Duration::from_millis(10),
                on_time: Duration::from_millis(5),
            },
            ..SimConfig::default()
        };
        let mut s = Simulator::new(cfg);
        let mut out = vec![0u8; 2 * 2500]; // 10 ms
        s.read_cu8(&mut out);
        let power = |b: &[u8]| {
            b.iter()
                .map(|&v| (f64::from(v) - 127.5).powi(2))
                .sum::<f64>()
                / b.len() as f64
        };
        let (on, off) = out.split_at(2 * 1250);
        assert!(
            power(on) > 100.0 * power(off),
            "on {} off {}",
            power(on),
            power(off)
        );
    }
}
