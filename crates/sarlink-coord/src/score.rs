//! The per-source score, in dB-equivalent units.
//!
//! ```text
//! snr_eff_db = clamp(snr_db, snr_floor_db, snr_cap_db)                  when the source measured SNR
//!            = clamp(quality * snr_db_per_quality_point, floor, cap)   otherwise
//! score_db   = snr_eff_db
//!            + rssi_weight * rssi_dbm
//!            - quality_penalty_db * (100 - quality) / 100
//! ```
//!
//! computed on the inputs quantised to 0.5 dB (RSSI) and 0.2 dB (SNR); see [`ScoreKey`].
//!
//! Why: receivers have different gains, antennas and (often) no calibration, so raw RSSI in
//! dBFS is not comparable between them; a 20 dB gain difference would look like a 20 dB
//! better receiver. SNR (channel power over the noise floor) cancels the gain, so it is the
//! base of the score, and keeps dB units so the 3 dB hysteresis margin means "twice the
//! signal-to-noise power". The SNR is clamped: above 40 dB both receivers hear the beacon
//! perfectly and very high values usually mean clipping. The quality score (which also
//! covers clipping and incomplete windows) costs up to 6 dB, i.e. two margins: a
//! zero-quality reading must beat a perfect one by 6 dB of SNR. A source that reports no SNR
//! falls back to its quality as an SNR proxy (0.3 dB per point: quality 100 ~ 30 dB). RSSI
//! is weighted 0 by default; give it a weight only when every source reports calibrated dBm.
//! The quantisation is far below the measurement noise (typically 1 dB or more) and makes
//! the score a pure function of a small key.

use crate::source::SourceReading;

/// Parameters of the score; see the [module documentation](self) for the formula.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreConfig {
    /// Upper clamp of the effective SNR. Default 40 dB.
    pub snr_cap_db: f32,
    /// Lower clamp of the effective SNR. Default -20 dB.
    pub snr_floor_db: f32,
    /// Score lost by a zero-quality reading (linear in quality). Default 6 dB.
    pub quality_penalty_db: f32,
    /// Weight of the raw RSSI. Default 0 (gains differ between receivers).
    pub rssi_weight: f32,
    /// SNR proxy per quality point when a source reports no SNR. Default 0.3 dB.
    pub snr_db_per_quality_point: f32,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            snr_cap_db: 40.0,
            snr_floor_db: -20.0,
            quality_penalty_db: 6.0,
            rssi_weight: 0.0,
            snr_db_per_quality_point: 0.3,
        }
    }
}

impl ScoreConfig {
    /// The first parameter that is not finite (or a floor above the cap), by name.
    pub(crate) fn invalid_parameter(&self) -> Option<(&'static str, f32)> {
        let params = [
            ("snr_cap_db", self.snr_cap_db),
            ("snr_floor_db", self.snr_floor_db),
            ("quality_penalty_db", self.quality_penalty_db),
            ("rssi_weight", self.rssi_weight),
            ("snr_db_per_quality_point", self.snr_db_per_quality_point),
        ];
        if let Some(bad) = params.into_iter().find(|(_, v)| !v.is_finite()) {
            return Some(bad);
        }
        (self.snr_floor_db > self.snr_cap_db).then_some(("snr_floor_db", self.snr_floor_db))
    }
}

/// A reading's inputs quantised for scoring: RSSI in 0.5 dB steps, SNR in 0.2 dB steps
/// (or absent), quality in points.
///
/// Invariant: the score is a pure function of this key and the [`ScoreConfig`], so equal
/// keys give bit-identical scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScoreKey {
    rssi_half_db: i16,
    snr_fifth_db: Option<i16>,
    quality: u8,
}

/// Rounds `value / step` to the nearest integer and saturates to `i16` (values beyond
/// +-6553 dB of SNR or +-16383 dB of RSSI are not physical).
fn quantise(value: f32, steps_per_db: f32) -> i16 {
    let q = (value * steps_per_db).round();
    // Cast invariant: the clamp keeps q within i16; `as` from a finite in-range f32 is exact.
    q.clamp(f32::from(i16::MIN + 1), f32::from(i16::MAX)) as i16
}

impl ScoreKey {
    /// Quantises a reading.
    pub fn new(reading: &SourceReading) -> Self {
        ScoreKey {
            rssi_half_db: quantise(reading.rssi_dbm(), 2.0),
            snr_fifth_db: reading.snr_db().map(|snr| quantise(snr, 5.0)),
            quality: reading.quality().get(),
        }
    }

    /// The quantised RSSI in dB.
    pub fn rssi_dbm(&self) -> f32 {
        f32::from(self.rssi_half_db) / 2.0
    }

    /// The quantised SNR in dB.
    pub fn snr_db(&self) -> Option<f32> {
        self.snr_fifth_db.map(|q| f32::from(q) / 5.0)
    }

    /// The score in dB-equivalent units (see the [module documentation](self)).
    pub fn score_db(&self, config: &ScoreConfig) -> f32 {
        let quality = f32::from(self.quality);
        let snr_eff = match self.snr_db() {
            Some(snr) => snr,
            None => quality * config.snr_db_per_quality_point,
        };
        // max/min rather than clamp: clamp panics if floor > cap, which `Config` rejects
        // but a caller scoring directly could pass.
        let snr_eff = snr_eff.max(config.snr_floor_db).min(config.snr_cap_db);
        snr_eff + config.rssi_weight * self.rssi_dbm()
            - config.quality_penalty_db * (100.0 - quality) / 100.0
    }
}

/// Scores a reading directly (quantise, then [`ScoreKey::score_db`]).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use sarlink_coord::{QualityScore, ScoreConfig, SourceReading, score_db};
///
/// let cfg = ScoreConfig::default();
/// let q = QualityScore::new(100).unwrap();
/// let a = SourceReading::new(-60.0, Some(20.0), q, Duration::ZERO)?;
/// // 20 dB less raw power (another gain), same SNR: the same score.
/// let b = SourceReading::new(-80.0, Some(20.0), q, Duration::ZERO)?;
/// assert_eq!(score_db(&a, &cfg), 20.0);
/// assert_eq!(score_db(&a, &cfg), score_db(&b, &cfg));
/// # Ok::<(), sarlink_coord::ReadingError>(())
/// ```
pub fn score_db(reading: &SourceReading, config: &ScoreConfig) -> f32 {
    ScoreKey::new(reading).score_db(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sarlink_schema::QualityScore;
    use std::time::Duration;

    fn reading(rssi: f32, snr: Option<f32>, q: u8) -> SourceReading {
        SourceReading::new(rssi, snr, QualityScore::new(q).unwrap(), Duration::ZERO).unwrap()
    }

    #[test]
    fn quality_penalty_and_proxy() {
        let cfg = ScoreConfig::default();
        // Zero quality costs the full 6 dB.
        assert_eq!(score_db(&reading(-70.0, Some(10.0), 0), &cfg), 4.0);
        // No SNR: quality 50 -> 15 dB proxy - 3 dB penalty.
        assert!((score_db(&reading(-70.0, None, 50), &cfg) - 12.0).abs() < 1e-5);
        // The clamp caps absurd SNR.
        assert_eq!(score_db(&reading(-70.0, Some(90.0), 100), &cfg), 40.0);
    }

    #[test]
    fn keys_quantise_to_steps() {
        let a = ScoreKey::new(&reading(-70.24, Some(10.09), 80));
        let b = ScoreKey::new(&reading(-69.76, Some(9.91), 80));
        assert_eq!(a, b);
        let c = ScoreKey::new(&reading(-70.24, Some(10.11), 80));
        assert_ne!(a, c, "a 0.2 dB SNR step must change the key");
        assert_ne!(ScoreKey::new(&reading(-70.0, None, 80)), a);
    }
}
