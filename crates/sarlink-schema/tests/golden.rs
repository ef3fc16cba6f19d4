//! The golden vectors of the specification (section 6): encode byte-exact, decode.

mod common;

use bytes::BytesMut;
use common::golden_record;
use sarlink_schema::*;
use sarlink_wire::{DecoderConfig, EncoderConfig, FrameDecoder, FrameEncoder, HEADER_LEN};

const PING_PAYLOAD: &str = "83a474797065a470696e67a373657107a4745f6e73cf17979cfe3d85cd15";
const PING_FRAME: &str = "000000001e0000000083a474797065a470696e67a373657107a4745f6e73cf17979cfe3d85cd1550bd8ca6a1a542df";
const RSSI_FRAME: &str = "00000000850000000083a474797065a472737369a37365712aa773616d706c65739187ac74696d657374616d705f6e73cf187afca767ca0000a8727373695f64626dcac28f0000ac6672657175656e63795f687ace18337328a9736f757263655f696400ad7175616c6974795f73636f726557a6736e725f6462ca41920000a96e6f6973655f64626dcac2b38000d53136629987a592";
const RSSI16_FRAME: &str = "01000000f70000052b04224d1868402b0500000000000069e0000000f02483a474797065a472737369a373657100a773616d706c6573dc001085ac74696d657374616d705f6e73cf187afca767ca0000a82c00ff265f64626dcac28c0000ac6672657175656e63795f687ace18337328a9736f757263655f696400ad7175616c6974795f73636f72655a5100003f6dbfe151003b3f73b5c251003b3f79aba351003b3f7fa18451003b3f85976551003b3f8b8d4651003b3f91832751003b3f97790851003b3f9d6ee951003b3fa364ca51003b3fa95aab51003b3faf508c51003b3fb5466d51003b3fbb3c4e51003b3fc1322f51002350636f72655a000000005ed105272429ff33";

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// The payload inside a plain frame: bytes 9 .. 9 + wire_len.
fn payload_of(frame: &[u8]) -> &[u8] {
    let wire_len = u32::from_be_bytes(frame[1..5].try_into().unwrap()) as usize;
    &frame[HEADER_LEN..HEADER_LEN + wire_len]
}

fn ping() -> Message {
    Message::Ping(Ping {
        seq: 7,
        t_ns: 1_700_000_000_123_456_789,
    })
}

fn rssi() -> Message {
    Message::Rssi(Rssi::single(42, golden_record()))
}

fn rssi16() -> Message {
    let samples = (0..16)
        .map(|i| RssiRecord {
            timestamp_ns: 1_764_000_000_000_000_000 + i * 100_000_000,
            rssi_dbm: Dbm::new(-70.0).unwrap(),
            frequency_hz: FrequencyHz::new(406_025_000).unwrap(),
            source_id: SourceId::DRONE,
            quality_score: QualityScore::new(90).unwrap(),
            snr_db: None,
            noise_dbm: None,
            beacon: BeaconFields::NONE,
        })
        .collect();
    Message::Rssi(Rssi::new(0, samples).unwrap())
}

fn frame_of(msg: &Message) -> Vec<u8> {
    let mut encoder = FrameEncoder::new(EncoderConfig::default());
    let mut out = BytesMut::new();
    encode_frame(msg, &mut encoder, &mut out).unwrap();
    out.to_vec()
}

#[test]
fn ping_payload_and_frame_are_byte_exact() {
    assert_eq!(payload_of(&unhex(PING_FRAME)), unhex(PING_PAYLOAD));
    assert_eq!(hex::encode(ping().encode_to_vec()), PING_PAYLOAD);
    assert_eq!(hex::encode(frame_of(&ping())), PING_FRAME);
}

#[test]
fn ping_decodes() {
    assert_eq!(Message::decode(&unhex(PING_PAYLOAD)).unwrap(), ping());
}

#[test]
fn rssi_payload_and_frame_are_byte_exact() {
    let frame = unhex(RSSI_FRAME);
    assert_eq!(rssi().encode_to_vec(), payload_of(&frame));
    assert_eq!(hex::encode(frame_of(&rssi())), RSSI_FRAME);
    // Into a BytesMut that already holds something: appended, not overwritten.
    let mut buf = BytesMut::from(&b"xyz"[..]);
    rssi().encode(&mut buf);
    assert_eq!(&buf[..3], b"xyz");
    assert_eq!(&buf[3..], payload_of(&frame));
}

#[test]
fn rssi_decodes_with_every_field() {
    let msg = Message::decode(payload_of(&unhex(RSSI_FRAME))).unwrap();
    let Message::Rssi(batch) = &msg else {
        panic!("not rssi: {msg:?}")
    };
    assert_eq!(batch.seq(), 42);
    let r = batch.samples()[0];
    assert_eq!(r.timestamp_ns, 1_764_000_000_000_000_000);
    assert_eq!(r.rssi_dbm.get(), -71.5);
    assert_eq!(r.frequency_hz.get(), 406_025_000);
    assert_eq!(r.source_id, SourceId::DRONE);
    assert_eq!(r.quality_score.get(), 87);
    assert_eq!(r.snr_db.map(Db::get), Some(18.25));
    assert_eq!(r.noise_dbm.map(Dbm::get), Some(-89.75));
    assert_eq!(msg, rssi());
}

#[test]
fn compressed_16_record_frame_decodes() {
    let mut decoder = FrameDecoder::new(DecoderConfig::default().accept_compressed(true));
    let mut src = BytesMut::from(&unhex(RSSI16_FRAME)[..]);
    let msg = decode_frame(&mut decoder, &mut src).unwrap().unwrap();
    assert!(src.is_empty());
    assert_eq!(msg, rssi16());
    // Our canonical payload is the 1,323 bytes the reference encoder compressed.
    assert_eq!(rssi16().encode_to_vec().len(), 1323);
    let mut src = BytesMut::from(&unhex(RSSI16_FRAME)[..]);
    let mut decoder = FrameDecoder::new(DecoderConfig::default().accept_compressed(true));
    let payload = decoder.decode(&mut src).unwrap().unwrap();
    assert_eq!(rssi16().encode_to_vec(), payload);
}

#[test]
fn our_compressed_frame_of_the_16_records_round_trips() {
    let mut encoder = FrameEncoder::new(EncoderConfig::default());
    let mut out = BytesMut::new();
    let info = encode_frame(&rssi16(), &mut encoder, &mut out).unwrap();
    assert!(
        info.compressed,
        "1,323 bytes exceed the 1,024-byte threshold"
    );
    assert_eq!(info.raw_len, 1323);
    let mut decoder = FrameDecoder::new(DecoderConfig::default().accept_compressed(true));
    assert_eq!(
        decode_frame(&mut decoder, &mut out).unwrap(),
        Some(rssi16())
    );
}

#[test]
fn frames_decode_in_any_chunking() {
    let stream: Vec<u8> = [unhex(PING_FRAME), unhex(RSSI_FRAME), unhex(RSSI16_FRAME)].concat();
    let want = [ping(), rssi(), rssi16()];
    for chunk in [1, 2, 3, 7, 64, stream.len()] {
        let mut decoder = FrameDecoder::new(DecoderConfig::default().accept_compressed(true));
        let mut src = BytesMut::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            src.extend_from_slice(piece);
            while let Some(msg) = decode_frame(&mut decoder, &mut src).unwrap() {
                got.push(msg);
            }
        }
        assert_eq!(got, want, "chunks of {chunk}");
    }
    // Split in two at every offset.
    for split in 0..=stream.len() {
        let mut decoder = FrameDecoder::new(DecoderConfig::default().accept_compressed(true));
        let mut src = BytesMut::from(&stream[..split]);
        let mut got = Vec::new();
        while let Some(msg) = decode_frame(&mut decoder, &mut src).unwrap() {
            got.push(msg);
        }
        src.extend_from_slice(&stream[split..]);
        while let Some(msg) = decode_frame(&mut decoder, &mut src).unwrap() {
            got.push(msg);
        }
        assert_eq!(got, want, "split at {split}");
    }
}

#[test]
fn every_strict_prefix_of_a_golden_payload_is_truncated() {
    for payload in [unhex(PING_PAYLOAD), payload_of(&unhex(RSSI_FRAME)).to_vec()] {
        for end in 1..payload.len() {
            let err = Message::decode(&payload[..end]).unwrap_err();
            assert!(
                matches!(err, DecodeError::Truncated { .. }),
                "prefix {end}: {err:?}"
            );
        }
        assert!(matches!(
            Message::decode(&[]),
            Err(DecodeError::NotAMap { .. })
        ));
    }
}

#[test]
fn a_bad_payload_in_a_sound_frame_is_a_message_error() {
    let mut encoder = FrameEncoder::new(EncoderConfig::default());
    let mut out = BytesMut::new();
    // {"type": "rx"}: no seq.
    encoder.encode(b"\x81\xa4type\xa2rx", &mut out).unwrap();
    let mut decoder = FrameDecoder::new(DecoderConfig::default());
    let err = decode_frame(&mut decoder, &mut out).unwrap_err();
    assert_eq!(
        err,
        ReadError::Message(DecodeError::MissingField {
            message: "rx",
            field: "seq"
        })
    );
    assert_eq!(err.close_code(), CloseCode::Protocol);
    assert!(out.is_empty(), "the frame was consumed");
    assert!(!decoder.is_poisoned());

    // A corrupted frame is a frame error with the frame's close code.
    let mut corrupt = BytesMut::from(&unhex(PING_FRAME)[..]);
    corrupt[12] ^= 1;
    let err = decode_frame(&mut decoder, &mut corrupt).unwrap_err();
    assert!(matches!(err, ReadError::Frame(_)));
    assert_eq!(CloseCode::from(&err), CloseCode::Checksum);
}

#[test]
fn a_message_over_the_peer_limit_is_refused_and_leaves_the_buffer_unchanged() {
    let mut encoder = FrameEncoder::new(EncoderConfig::default().max_message(100));
    let mut out = BytesMut::from(&b"before"[..]);
    let err = encode_frame(&rssi(), &mut encoder, &mut out).unwrap_err();
    assert!(matches!(
        err,
        sarlink_wire::EncodeError::MessageTooLarge { len: 133, max: 100 }
    ));
    assert_eq!(&out[..], b"before");
}

/// Protocol 1.1: the golden record with every beacon key (a 440 ms burst that ended with the
/// window), packed independently by Python's msgpack (`use_single_float=True`): 18 keys, so a
/// map 16 header (`de0012`), the beacon keys after `noise_dbm` in the spec's order.
const RSSI_BEACON_PAYLOAD: &str = "83a474797065a472737369a37365712aa773616d706c657391de0012ac74696d657374616d705f6e73cf187afca767ca0000a8727373695f64626dcac28f0000ac6672657175656e63795f687ace18337328a9736f757263655f696400ad7175616c6974795f73636f726557a6736e725f6462ca41920000a96e6f6973655f64626dcac2b38000a86465746563746564c3a670756c73657301a970756c73655f64626dcac27a0000ae70756c73655f77696474685f7573ce0006b6c0ae70756c73655f73746172745f6e73cf187afca752ed6c80b170756c73655f696e74657276616c5f6d73cdc350ae6c6173745f70756c73655f64626dcac27a0000b16c6173745f70756c73655f6167655f6d7300a56275727374c3a96f66667365745f687aca449c4000ad636c69705f6672616374696f6eca00000000";

fn rssi_beacon() -> Message {
    let record = RssiRecord {
        beacon: BeaconFields {
            detected: Some(true),
            pulses: Some(1),
            pulse_dbm: Some(Dbm::new(-62.5).unwrap()),
            pulse_width_us: Some(440_000),
            pulse_start_ns: Some(1_763_999_999_650_000_000),
            pulse_interval_ms: Some(50_000),
            last_pulse_dbm: Some(Dbm::new(-62.5).unwrap()),
            last_pulse_age_ms: Some(0),
            burst: Some(true),
            offset_hz: Some(OffsetHz::new(1250.0).unwrap()),
            clip_fraction: Some(ClipFraction::ZERO),
            smoothing: None,
            stale: None,
            ..BeaconFields::NONE
        },
        ..golden_record()
    };
    Message::Rssi(Rssi::single(42, record))
}

#[test]
fn beacon_record_encodes_to_the_independent_packing_and_back() {
    let bytes = unhex(RSSI_BEACON_PAYLOAD);
    assert_eq!(rssi_beacon().encode_to_vec(), bytes);
    assert_eq!(Message::decode(&bytes).unwrap(), rssi_beacon());
    // Every strict prefix is refused (truncated), never a panic.
    for cut in 0..bytes.len() {
        assert!(Message::decode(&bytes[..cut]).is_err(), "prefix {cut}");
    }
}

#[test]
fn a_v1_0_record_is_unchanged_by_the_beacon_keys() {
    // No beacon key: the 1.0 golden bytes, so 1.0 peers see nothing new.
    assert!(golden_record().beacon.is_empty());
    assert_eq!(
        rssi().encode_to_vec(),
        payload_of(&unhex(RSSI_FRAME)).to_vec()
    );
}

#[test]
fn beacon_fuzz_seeds_decode() {
    // The canonical one is the golden beacon payload itself.
    let seed = include_bytes!("../../../fuzz/seeds/message_decode/rssi_beacon");
    assert_eq!(seed.as_slice(), unhex(RSSI_BEACON_PAYLOAD));
    // Held values only, and a record with `burst` out of the canonical order.
    let held = include_bytes!("../../../fuzz/seeds/message_decode/rssi_beacon_held");
    let Ok(Message::Rssi(batch)) = Message::decode(held) else {
        panic!("held seed refused")
    };
    let b = batch.samples()[1].beacon;
    assert_eq!(
        (b.burst, b.pulses, b.last_pulse_age_ms),
        (Some(false), Some(0), Some(100))
    );
    assert_eq!(b.clip_fraction.map(ClipFraction::get), Some(1.0));
    let canonical = Message::Rssi(batch).encode_to_vec();
    assert_ne!(canonical, held.as_slice());
    assert_eq!(
        Message::decode(&canonical).unwrap().encode_to_vec(),
        canonical
    );
}
