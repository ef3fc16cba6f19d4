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
