//! Deterministic RSSI records for tests and benchmarks.

use sarlink_schema::{Db, Dbm, FrequencyHz, QualityScore, RssiRecord, SourceId};

/// Timestamp of [`record(0)`](record): 2025-11-24T16:00:00Z, in ns since the Unix epoch.
pub const RECORD_EPOCH_NS: i64 = 1_764_000_000_000_000_000;

/// The `i`-th record of a deterministic 10 Hz stream from the drone's receiver.
///
/// Timestamps start at [`RECORD_EPOCH_NS`] and advance 100 ms per record; the RSSI varies
/// (-70 dBm down to -79.5 dBm in 0.5 dB steps, repeating every 20 records) so consecutive
/// records differ; the other fields are fixed: 406.025 MHz, [`SourceId::DRONE`], quality
/// 80, SNR 15 dB, noise floor -95 dBm. Equal `i` give equal records, so a receiver can
/// check what arrived against `record(seq)`.
///
/// # Panics
/// If `i` is so large that the timestamp overflows `i64` (beyond about 92 years of records
/// at 10 Hz).
///
/// # Examples
/// ```
/// let r = sarlink_testkit::record(3);
/// assert_eq!(r.timestamp_ns, sarlink_testkit::RECORD_EPOCH_NS + 300_000_000);
/// assert_eq!(r, sarlink_testkit::record(3));
/// assert_ne!(r, sarlink_testkit::record(4));
/// ```
pub fn record(i: u64) -> RssiRecord {
    let offset_ns = i64::try_from(i)
        .ok()
        .and_then(|i| i.checked_mul(100_000_000))
        .and_then(|d| RECORD_EPOCH_NS.checked_add(d))
        .expect("record index too large for an i64 timestamp");
    record_at(i, offset_ns)
}

/// [`record(i)`](record) stamped `timestamp_ns` instead (e.g. the current time, for a load
/// generator whose receiver measures latency from the record's timestamp).
///
/// Change other fields with struct update syntax:
/// ```
/// use sarlink_schema::{RssiRecord, SourceId};
///
/// let ground = RssiRecord { source_id: SourceId::GROUND, ..sarlink_testkit::record_at(7, 0) };
/// assert_eq!(ground.rssi_dbm, sarlink_testkit::record(7).rssi_dbm);
/// ```
pub fn record_at(i: u64, timestamp_ns: i64) -> RssiRecord {
    // Cast invariant: `i % 20` is below 20, exact in f32.
    let step = (i % 20) as f32;
    RssiRecord {
        timestamp_ns,
        rssi_dbm: Dbm::new(-70.0 - step * 0.5).expect("finite"),
        frequency_hz: FrequencyHz::new(406_025_000).expect("non-zero"),
        source_id: SourceId::DRONE,
        quality_score: QualityScore::new(80).expect("at most 100"),
        snr_db: Some(Db::new(15.0).expect("finite")),
        noise_dbm: Some(Dbm::new(-95.0).expect("finite")),
        beacon: sarlink_schema::BeaconFields::NONE,
    }
}
