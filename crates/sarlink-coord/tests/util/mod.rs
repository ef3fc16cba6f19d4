//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use sarlink_coord::{Coordinator, QualityScore, SourceId, SourceReading};

pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

pub fn reading(snr_db: f32, quality: u8, at: Duration) -> SourceReading {
    SourceReading::new(-70.0, Some(snr_db), QualityScore::new(quality).unwrap(), at).unwrap()
}

/// Feeds one fresh record per source (SNR given, quality 100) at `t` and decides.
pub fn step(
    c: &mut Coordinator,
    t: Duration,
    drone_snr: f32,
    ground_snr: f32,
) -> sarlink_coord::Decision {
    c.update_reading(SourceId::DRONE, reading(drone_snr, 100, t), t);
    c.update_reading(SourceId::GROUND, reading(ground_snr, 100, t), t);
    *c.decide(t)
}

/// A deterministic xorshift generator for reproducible traces.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}
