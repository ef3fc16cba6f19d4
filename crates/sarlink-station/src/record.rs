//! The report-to-record mapping: estimator reports as wire records, and the wall clock
//! they are stamped with.

use std::time::{SystemTime, UNIX_EPOCH};

use sarlink_schema::{
    BeaconFields, ClipFraction, Db, Dbm, FrequencyHz, OffsetHz, QualityScore, RssiRecord, SourceId,
};
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
        beacon: beacon_fields(report, timestamp_ns),
    })
}

/// The record's beacon keys from a report: detection, the pulses that ended in its window
/// (their start moved from the sample clock to the record's clock), the last pulse held,
/// the carrier's offset and the clipped fraction. Values out of a key's range are left out.
fn beacon_fields(report: &Report, timestamp_ns: i64) -> BeaconFields {
    let p = &report.pulse;
    let ms = |d: std::time::Duration| u32::try_from(d.as_millis()).ok();
    // `start_ns` is on the report's sample clock, which ends at `report.timestamp_ns`.
    let start = p.start_ns.and_then(|start| {
        let before_end = i64::try_from(report.timestamp_ns.checked_sub(start)?).ok()?;
        timestamp_ns.checked_sub(before_end)
    });
    let any_pulse = p.count > 0;
    BeaconFields {
        detected: Some(report.detected),
        pulses: Some(p.count),
        pulse_dbm: p.power.filter(|_| any_pulse).and_then(|v| Dbm::new(v).ok()),
        pulse_width_us: p
            .width
            .filter(|_| any_pulse)
            .and_then(|w| u32::try_from(w.as_micros()).ok()),
        pulse_start_ns: start.filter(|_| any_pulse),
        pulse_interval_ms: p.interval.filter(|_| any_pulse).and_then(ms),
        last_pulse_dbm: p.last_power.and_then(|v| Dbm::new(v).ok()),
        last_pulse_age_ms: p.last_age.and_then(ms),
        burst: any_pulse.then_some(p.burst),
        offset_hz: report.offset_hz.and_then(|o| OffsetHz::new(o).ok()),
        clip_fraction: ClipFraction::new(report.clip_fraction).ok(),
        // The pipeline says how the value was made (it knows the smoothing and the source).
        smoothing: None,
        stale: None,
        // The drone's driver geotags the record from the flight controller's state.
        ..BeaconFields::NONE
    }
}

/// A fresh random stream id below 2^53: the outputs' unique key (node, stream, seq) then
/// survives every JSON tool, including those that read numbers (or numeric strings) as
/// 64-bit floats (JavaScript, jq, pandas), exactly.
pub fn new_stream_id() -> u64 {
    rand::random::<u64>() >> 11
}
