//! The per-source RSSI reading the coordinator scores.

use std::time::Duration;

use sarlink_schema::{QualityScore, RssiRecord};

/// Why a [`SourceReading`] could not be built.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadingError {
    /// The RSSI was NaN or infinite.
    #[error("rssi {rssi_dbm} is not finite")]
    RssiNotFinite {
        /// The rejected value.
        rssi_dbm: f32,
    },
    /// The SNR was NaN or infinite.
    #[error("snr {snr_db} is not finite")]
    SnrNotFinite {
        /// The rejected value.
        snr_db: f32,
    },
}

/// The newest measurement of one source: what the coordinator scores.
///
/// Invariant: `rssi_dbm` and `snr_db` (when present) are finite. `timestamp` is the end of
/// the measurement window on the same clock (same epoch) as the `now` given to the
/// [`Coordinator`](crate::Coordinator).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceReading {
    rssi_dbm: f32,
    snr_db: Option<f32>,
    quality: QualityScore,
    timestamp: Duration,
}

impl SourceReading {
    /// Validates and builds a reading.
    ///
    /// # Errors
    /// [`ReadingError::RssiNotFinite`] or [`ReadingError::SnrNotFinite`] for NaN or
    /// infinite values.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use sarlink_coord::{QualityScore, SourceReading};
    ///
    /// let q = QualityScore::new(90).unwrap();
    /// let r = SourceReading::new(-71.5, Some(18.0), q, Duration::from_millis(100))?;
    /// assert_eq!(r.snr_db(), Some(18.0));
    /// assert!(SourceReading::new(f32::NAN, None, q, Duration::ZERO).is_err());
    /// # Ok::<(), sarlink_coord::ReadingError>(())
    /// ```
    pub fn new(
        rssi_dbm: f32,
        snr_db: Option<f32>,
        quality: QualityScore,
        timestamp: Duration,
    ) -> Result<Self, ReadingError> {
        if !rssi_dbm.is_finite() {
            return Err(ReadingError::RssiNotFinite { rssi_dbm });
        }
        if let Some(snr_db) = snr_db {
            if !snr_db.is_finite() {
                return Err(ReadingError::SnrNotFinite { snr_db });
            }
        }
        Ok(SourceReading {
            rssi_dbm,
            snr_db,
            quality,
            timestamp,
        })
    }

    /// Channel power (dBm when calibrated, else dBFS).
    pub fn rssi_dbm(&self) -> f32 {
        self.rssi_dbm
    }

    /// Channel power over the noise floor, when the source measured it.
    pub fn snr_db(&self) -> Option<f32> {
        self.snr_db
    }

    /// Measurement quality.
    pub fn quality(&self) -> QualityScore {
        self.quality
    }

    /// End of the measurement window, on the coordinator's clock.
    pub fn timestamp(&self) -> Duration {
        self.timestamp
    }

    pub(crate) fn with_timestamp(mut self, timestamp: Duration) -> Self {
        self.timestamp = timestamp;
        self
    }
}

/// Converts a wire record; the caller's epoch is then the Unix epoch.
///
/// The schema has already validated RSSI and SNR (finite) and quality (0-100). A timestamp
/// before the Unix epoch maps to the epoch itself: a record far too old to be fresh.
impl From<&RssiRecord> for SourceReading {
    fn from(record: &RssiRecord) -> Self {
        SourceReading {
            rssi_dbm: record.rssi_dbm.get(),
            snr_db: record.snr_db.map(|snr| snr.get()),
            quality: record.quality_score,
            timestamp: Duration::from_nanos(u64::try_from(record.timestamp_ns).unwrap_or(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sarlink_schema::{Db, Dbm, FrequencyHz, SourceId};

    #[test]
    fn converts_wire_records() {
        let mut record = RssiRecord {
            timestamp_ns: 1_764_000_000_000_000_000,
            rssi_dbm: Dbm::new(-71.5).unwrap(),
            frequency_hz: FrequencyHz::new(406_025_000).unwrap(),
            source_id: SourceId::DRONE,
            quality_score: QualityScore::new(87).unwrap(),
            snr_db: Some(Db::new(18.25).unwrap()),
            noise_dbm: None,
            beacon: sarlink_schema::BeaconFields::NONE,
        };
        let r = SourceReading::from(&record);
        assert_eq!(
            r.timestamp(),
            Duration::from_nanos(1_764_000_000_000_000_000)
        );
        assert_eq!(
            (r.rssi_dbm(), r.snr_db(), r.quality().get()),
            (-71.5, Some(18.25), 87)
        );
        record.timestamp_ns = -5;
        assert_eq!(SourceReading::from(&record).timestamp(), Duration::ZERO);
    }

    #[test]
    fn reading_rejects_non_finite_snr() {
        let err = SourceReading::new(
            -70.0,
            Some(f32::INFINITY),
            QualityScore::MAX,
            Duration::ZERO,
        );
        assert_eq!(
            err,
            Err(ReadingError::SnrNotFinite {
                snr_db: f32::INFINITY
            })
        );
    }
}
