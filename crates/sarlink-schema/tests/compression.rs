//! LZ4 (through sarlink-wire's encoder) shrinks a realistic 64-record batch to at most 30 %
//! of its plain size. A size ratio, not a timing: deterministic.

use bytes::BytesMut;
use sarlink_schema::*;
use sarlink_wire::{DecoderConfig, EncoderConfig, FrameDecoder, FrameEncoder};

/// Records like a real track (the same generator as `benches/benches/schema.rs`):
/// timestamps 100 ms apart with microseconds of jitter, RSSI drifting slowly with 0.1 dB of
/// noise, a noisy noise floor, SNR and quality derived; every float uses its full mantissa.
fn track(n: usize) -> Vec<RssiRecord> {
    let mut state: u32 = 0x2545_f491;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state as f32 / u32::MAX as f32) - 0.5
    };
    (0..n)
        .map(|i| {
            let t = i as f32;
            let rssi = -75.0 + 4.0 * (t / 20.0).sin() + 0.2 * noise();
            let floor = -92.0 + 0.4 * noise();
            let snr = rssi - floor;
            RssiRecord {
                timestamp_ns: 1_764_000_000_000_000_000
                    + i as i64 * 100_000_000
                    + (noise() * 20_000.0) as i64,
                rssi_dbm: Dbm::new(rssi).unwrap(),
                frequency_hz: FrequencyHz::new(406_025_000).unwrap(),
                source_id: SourceId::DRONE,
                quality_score: QualityScore::new((snr * 4.0).clamp(0.0, 100.0) as u8).unwrap(),
                snr_db: Some(Db::new(snr).unwrap()),
                noise_dbm: Some(Dbm::new(floor).unwrap()),
                beacon: BeaconFields::NONE,
            }
        })
        .collect()
}

#[test]
fn lz4_shrinks_a_64_record_batch_to_at_most_30_percent() {
    let msg = Message::Rssi(Rssi::new(0, track(64)).unwrap());
    let plain = msg.encode_to_vec().len();
    let mut encoder = FrameEncoder::new(EncoderConfig::default());
    let mut wire = BytesMut::new();
    let info = encode_frame(&msg, &mut encoder, &mut wire).unwrap();
    assert!(info.compressed);
    assert_eq!(info.raw_len as usize, plain);
    let ratio = f64::from(info.wire_len) / plain as f64;
    assert!(
        ratio <= 0.30,
        "compressed to {:.1} % of {plain} bytes",
        ratio * 100.0
    );
    // And it reads back.
    let mut decoder = FrameDecoder::new(DecoderConfig::default().accept_compressed(true));
    assert_eq!(decode_frame(&mut decoder, &mut wire).unwrap(), Some(msg));
}
