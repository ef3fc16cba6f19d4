//! The report-to-record mapping: estimator reports as wire records, and the wall clock
//! they are stamped with.

use std::time::{SystemTime, UNIX_EPOCH};

use sarlink_schema::{Db, Dbm, FrequencyHz, QualityScore, RssiRecord, SourceId};
use sarlink_sdr::Report;

/// Now, as time since the Unix epoch (the clock the cores run on).
pub fn unix_now() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Now, in ns since the Unix epoch.
pub fn unix_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Maps an estimator report to the wire record of `source`, stamped `timestamp_ns` (the end
/// of its measurement window: for a live or real-time source, the moment the report is
/// complete). `None` when a value is out of the record's range (e.g. not finite).
pub fn to_record(report: &Report, timestamp_ns: i64, source: SourceId) -> Option<RssiRecord> {
    Some(RssiRecord {
        timestamp_ns,
        rssi_dbm: Dbm::new(report.rssi).ok()?,
        frequency_hz: FrequencyHz::new(report.frequency_hz).ok()?,
        source_id: source,
        quality_score: QualityScore::new(report.quality_score.value()).ok()?,
        snr_db: Db::new(report.snr_db).ok(),
        noise_dbm: Dbm::new(report.noise).ok(),
    })
}

/// A fresh random stream id below 2^53: the outputs' unique key (node, stream, seq) then
/// survives every JSON tool, including those that read numbers (or numeric strings) as
/// 64-bit floats (JavaScript, jq, pandas), exactly.
pub fn new_stream_id() -> u64 {
    rand::random::<u64>() >> 11
}
