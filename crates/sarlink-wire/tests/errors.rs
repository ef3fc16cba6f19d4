//! Every decode error, each fed whole, byte by byte and split at every offset; the check
//! order; raw_len lies in both directions; single-byte corruption anywhere in a frame.

mod common;

use bytes::BytesMut;
use common::*;
use sarlink_wire::{
    CloseCode, DecodeError, DecoderConfig, EncoderConfig, FrameDecoder, FrameEncoder, Lz4Error,
    MAX_MESSAGE,
};

fn accepting() -> DecoderConfig {
    DecoderConfig::default().accept_compressed(true)
}

/// A frame our encoder compressed: `records(n)` as payload.
fn compressed_frame(payload: &[u8]) -> Vec<u8> {
    let mut encoder = FrameEncoder::new(EncoderConfig::default());
    let mut out = BytesMut::new();
    assert!(encoder.encode(payload, &mut out).unwrap().compressed);
    out.to_vec()
}

/// The LZ4 frame inside a compressed sarlink frame.
fn lz4_of(frame: &[u8]) -> &[u8] {
    &frame[9..frame.len() - 8]
}

#[test]
fn reserved_flag_bits_are_rejected_from_the_first_byte() {
    for bit in 4..8 {
        let flags = 1_u8 << bit;
        let mut frame = unhex(PING_FRAME);
        frame[0] = flags;
        let frame = reseal(frame);
        assert_eq!(
            decode_all_ways(&accepting(), &frame).err(),
            DecodeError::ReservedBits { flags }
        );
        assert_eq!(
            feed(&accepting(), [&frame[..1]]).err(),
            DecodeError::ReservedBits { flags }
        );
    }
}

#[test]
fn unknown_codecs_and_codec_bits_without_compression_are_rejected() {
    for codec in 1..8_u8 {
        let frame = make_frame(0x01 | codec << 1, 5, 10, b"hello");
        assert_eq!(
            decode_all_ways(&accepting(), &frame).err(),
            DecodeError::UnknownCodec { codec }
        );
        let flags = codec << 1;
        let frame = frame_with_flags(flags);
        assert_eq!(
            decode_all_ways(&accepting(), &frame).err(),
            DecodeError::CodecWithoutCompression { flags }
        );
    }
}

fn frame_with_flags(flags: u8) -> Vec<u8> {
    make_frame(flags, 5, 0, b"hello")
}

#[test]
fn reserved_bits_are_checked_before_the_codec_and_the_length() {
    // Every field is wrong; the first check in the spec's order wins.
    let frame = make_frame(0xFF, 0, 0, b"");
    assert_eq!(
        feed(&accepting(), [&frame[..]]).err(),
        DecodeError::ReservedBits { flags: 0xFF }
    );
    let frame = frame_for(0x0F, u32::MAX);
    assert_eq!(
        feed(&accepting(), [&frame[..]]).err(),
        DecodeError::UnknownCodec { codec: 7 }
    );
}

fn frame_for(flags: u8, wire_len: u32) -> Vec<u8> {
    let mut header = vec![flags];
    header.extend_from_slice(&wire_len.to_be_bytes());
    header.extend_from_slice(&[0; 4]);
    header
}

#[test]
fn compressed_frames_are_refused_until_accepted() {
    let frame = compressed_frame(&records(100));
    let config = DecoderConfig::default();
    assert_eq!(
        decode_all_ways(&config, &frame).err(),
        DecodeError::CompressedNotAccepted
    );
    assert_eq!(
        DecodeError::CompressedNotAccepted.close_code(),
        CloseCode::Protocol
    );

    let mut decoder = FrameDecoder::new(config);
    decoder.set_accept_compressed(true);
    let mut src = BytesMut::from(&frame[..]);
    assert_eq!(decoder.decode(&mut src).unwrap().unwrap(), records(100));
}

#[test]
fn empty_frames_are_rejected() {
    let frame = make_frame(0x00, 0, 0, b"");
    assert_eq!(
        decode_all_ways(&accepting(), &frame).err(),
        DecodeError::EmptyFrame
    );
}

#[test]
fn too_large_lengths_are_rejected_from_the_header_alone() {
    // Only the first five bytes of a frame claiming one byte over the ceiling: rejected
    // at once, nothing reserved for the payload.
    let claim = MAX_MESSAGE + 1;
    let header = frame_for(0x00, claim);
    let mut decoder = FrameDecoder::new(DecoderConfig::default());
    let mut src = BytesMut::from(&header[..5]);
    let capacity = src.capacity();
    assert_eq!(
        decoder.decode(&mut src),
        Err(DecodeError::FrameTooLarge {
            len: claim,
            max: MAX_MESSAGE
        })
    );
    assert_eq!(
        src.capacity(),
        capacity,
        "no room was reserved for the claimed payload"
    );
    assert_eq!(decoder.decode(&mut src), Err(DecodeError::Poisoned));

    // Byte by byte, the error comes with the fifth byte.
    let mut decoder = FrameDecoder::new(DecoderConfig::default());
    let mut src = BytesMut::new();
    for &byte in &header[..4] {
        src.extend_from_slice(&[byte]);
        assert_eq!(decoder.decode(&mut src), Ok(None));
    }
    src.extend_from_slice(&header[4..5]);
    assert!(matches!(
        decoder.decode(&mut src),
        Err(DecodeError::FrameTooLarge { .. })
    ));
}

#[test]
fn limits_follow_the_configured_maximum() {
    let config = DecoderConfig::default()
        .max_message(100)
        .accept_compressed(true);
    // Plain: wire_len up to the limit.
    let ok = make_frame(0x00, 100, 0, &[7; 100]);
    assert_eq!(decode_all_ways(&config, &ok).ok(), [vec![7; 100]]);
    let big = make_frame(0x00, 101, 0, &[7; 101]);
    assert_eq!(
        decode_all_ways(&config, &big).err(),
        DecodeError::FrameTooLarge { len: 101, max: 100 }
    );
    // Compressed: wire_len up to the limit + 65,536 passes the header check...
    let header = frame_for(0x01, 100 + 65_536);
    let mut decoder = FrameDecoder::new(config.clone());
    let mut src = BytesMut::from(&header[..]);
    assert_eq!(decoder.decode(&mut src), Ok(None));
    assert_eq!(decoder.pending_frame_len(), Some(9 + 100 + 65_536 + 8));
    // ...one more does not.
    let header = frame_for(0x01, 100 + 65_537);
    assert_eq!(
        feed(&config, [&header[..]]).err(),
        DecodeError::FrameTooLarge {
            len: 100 + 65_537,
            max: 100 + 65_536
        }
    );
    // The maximum is clamped to the spec's ceiling.
    let config = DecoderConfig::default().max_message(u32::MAX);
    assert_eq!(config.max_message_bytes(), MAX_MESSAGE);
}

#[test]
fn checksum_mismatches_report_both_values() {
    let good = unhex(PING_FRAME);
    let sent = u64::from_be_bytes(good[39..].try_into().unwrap());
    let mut bad = good.clone();
    bad[46] ^= 0x01;
    assert_eq!(
        decode_all_ways(&accepting(), &bad).err(),
        DecodeError::ChecksumMismatch {
            expected: sent ^ 0x01,
            actual: sent
        }
    );
}

#[test]
fn plain_frames_must_have_raw_len_zero() {
    let frame = with_raw_len(&unhex(PING_FRAME), 30);
    assert_eq!(
        decode_all_ways(&accepting(), &frame).err(),
        DecodeError::RawLenNotZero { raw_len: 30 }
    );
}

#[test]
fn compressed_frames_must_have_a_raw_len_within_the_limit() {
    let payload = records(100);
    let frame = compressed_frame(&payload);
    assert_eq!(
        decode_all_ways(&accepting(), &with_raw_len(&frame, 0)).err(),
        DecodeError::RawLenZero
    );
    let config = accepting().max_message(payload.len() as u32 - 1);
    assert_eq!(
        decode_all_ways(&config, &frame).err(),
        DecodeError::MessageTooLarge {
            len: payload.len() as u32,
            max: payload.len() as u32 - 1
        }
    );
    let claim = with_raw_len(&frame, MAX_MESSAGE + 1);
    assert_eq!(
        decode_byte_by_byte(&accepting(), &claim).err(),
        DecodeError::MessageTooLarge {
            len: MAX_MESSAGE + 1,
            max: MAX_MESSAGE
        }
    );
}

#[test]
fn raw_len_lies_are_detected_in_both_directions() {
    // Our frames carry no LZ4 content size: the lie surfaces while decompressing.
    let payload = records(100);
    let len = payload.len() as u32;
    let frame = compressed_frame(&payload);
    assert_eq!(
        decode_all_ways(&accepting(), &with_raw_len(&frame, len - 1)).err(),
        DecodeError::RawLenExceeded { raw_len: len - 1 }
    );
    assert_eq!(
        decode_all_ways(&accepting(), &with_raw_len(&frame, len + 1)).err(),
        DecodeError::RawLenMismatch {
            raw_len: len + 1,
            actual: u64::from(len)
        }
    );
    assert_eq!(
        decode_byte_by_byte(&accepting(), &with_raw_len(&frame, 1)).err(),
        DecodeError::RawLenExceeded { raw_len: 1 }
    );
    // The golden vector carries the content size (1323), which must agree with raw_len.
    let golden = unhex(RSSI16_FRAME);
    for lie in [1322, 1324] {
        assert_eq!(
            decode_byte_by_byte(&accepting(), &with_raw_len(&golden, lie)).err(),
            DecodeError::RawLenMismatch {
                raw_len: lie,
                actual: 1323
            }
        );
    }
    // Python's frame without a content size, lying both ways.
    let lz4 = include_bytes!("data/py_max4mb_nosize.lz4");
    let real = records(2000).len() as u32;
    let lying = make_frame(0x01, lz4.len() as u32, real - 1000, lz4);
    assert_eq!(
        decode_byte_by_byte(&accepting(), &lying).err(),
        DecodeError::RawLenExceeded {
            raw_len: real - 1000
        }
    );
    let lying = make_frame(0x01, lz4.len() as u32, real + 1000, lz4);
    assert_eq!(
        decode_byte_by_byte(&accepting(), &lying).err(),
        DecodeError::RawLenMismatch {
            raw_len: real + 1000,
            actual: u64::from(real)
        }
    );
}

#[test]
fn a_decompression_bomb_stops_at_raw_len() {
    // 8 MiB of zeros compresses to a few KiB; claiming 1 KiB must fail, not expand.
    let zeros = vec![0_u8; 8 << 20];
    let frame = compressed_frame(&zeros);
    assert!(frame.len() < 64 << 10, "{}", frame.len());
    assert_eq!(
        feed(&accepting(), [&with_raw_len(&frame, 1024)[..]]).err(),
        DecodeError::RawLenExceeded { raw_len: 1024 }
    );
    assert_eq!(feed(&accepting(), [&frame[..]]).ok(), [zeros]);
}

#[test]
fn malformed_lz4_frames_are_decompression_errors() {
    let payload = records(100);
    let good = compressed_frame(&payload);
    let lz4 = lz4_of(&good).to_vec();
    let raw_len = payload.len() as u32;
    let case = |lz4: &[u8]| -> DecodeError {
        let frame = make_frame(0x01, lz4.len() as u32, raw_len, lz4);
        let err = decode_byte_by_byte(&accepting(), &frame).err();
        assert_eq!(err.close_code(), CloseCode::Decompress, "{err}");
        err
    };
    let lz4err = |source| DecodeError::Decompress { source };

    let mut bad = lz4.clone();
    bad[0] = 0x05;
    assert_eq!(
        case(&bad),
        lz4err(Lz4Error::BadMagic { magic: 0x184D_2205 })
    );
    let mut bad = lz4.clone();
    bad[4] = 0x80 | (bad[4] & 0x3F);
    assert_eq!(
        case(&bad),
        lz4err(Lz4Error::UnsupportedVersion { version: 2 })
    );
    let mut bad = lz4.clone();
    bad[4] |= 0x02;
    assert!(matches!(
        case(&bad),
        DecodeError::Decompress {
            source: Lz4Error::ReservedBits { .. }
        }
    ));
    let mut bad = lz4.clone();
    bad[5] = 0x30;
    assert_eq!(case(&bad), lz4err(Lz4Error::BadBlockSizeId { id: 3 }));
    let mut bad = lz4.clone();
    bad[6] ^= 0xFF;
    assert_eq!(
        case(&bad),
        lz4err(Lz4Error::HeaderChecksum {
            expected: lz4[6] ^ 0xFF,
            actual: lz4[6]
        })
    );
    assert_eq!(case(&lz4[..lz4.len() - 1]), lz4err(Lz4Error::Truncated));
    assert_eq!(case(&lz4[..7]), lz4err(Lz4Error::Truncated));
    let mut bad = lz4.clone();
    bad.extend_from_slice(b"xyz");
    assert_eq!(case(&bad), lz4err(Lz4Error::TrailingBytes { count: 3 }));
    // A block whose size is over the 64 KiB block maximum.
    let mut bad = lz4[..7].to_vec();
    bad.extend_from_slice(&(64 * 1024 + 1_u32).to_le_bytes());
    assert_eq!(
        case(&bad),
        lz4err(Lz4Error::BlockTooLarge {
            size: 64 * 1024 + 1,
            max: 64 * 1024
        })
    );
    // A match offset pointing before the start of the output.
    let mut bad = lz4[..7].to_vec();
    bad.extend_from_slice(&4_u32.to_le_bytes());
    bad.extend_from_slice(&[0x10, b'a', 0x09, 0x00]);
    bad.extend_from_slice(&0_u32.to_le_bytes());
    assert_eq!(case(&bad), lz4err(Lz4Error::CorruptBlock));
}

#[test]
fn lz4_block_and_content_checksums_are_verified() {
    // Python frame with block and content checksums; corrupt each, keep the sarlink frame valid.
    let lz4 = include_bytes!("data/py_checksums_large.lz4").to_vec();
    let raw_len = records(2000).len() as u32;
    let run = |lz4: &[u8]| {
        decode_byte_by_byte(
            &accepting(),
            &make_frame(0x01, lz4.len() as u32, raw_len, lz4),
        )
    };
    assert_eq!(run(&lz4).ok(), [records(2000)]);
    let header_len = 4 + 2 + 8 + 1;
    let mut bad = lz4.clone();
    bad[header_len + 4 + 10] ^= 0x01; // inside the first block's data
    assert!(matches!(
        run(&bad).err(),
        DecodeError::Decompress {
            source: Lz4Error::BlockChecksum { .. }
        }
    ));
    let mut bad = lz4.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01; // the content checksum
    assert!(matches!(
        run(&bad).err(),
        DecodeError::Decompress {
            source: Lz4Error::ContentChecksum { .. }
        }
    ));
}

#[test]
fn a_stream_ending_inside_a_frame_is_truncated() {
    let frame = unhex(PING_FRAME);
    for cut in 1..frame.len() {
        assert_eq!(
            feed(&accepting(), [&frame[..cut]]).err(),
            DecodeError::Truncated { buffered: cut },
            "cut at {cut}"
        );
    }
    assert_eq!(
        DecodeError::Truncated { buffered: 1 }.close_code(),
        CloseCode::Protocol
    );
}

#[test]
fn after_an_error_the_decoder_refuses_even_valid_frames() {
    let mut decoder = FrameDecoder::new(accepting());
    let mut src = BytesMut::from(&[0xF0_u8][..]);
    assert!(decoder.decode(&mut src).is_err());
    assert!(decoder.is_poisoned());
    let mut good = BytesMut::from(&unhex(PING_FRAME)[..]);
    assert_eq!(decoder.decode(&mut good), Err(DecodeError::Poisoned));
    assert_eq!(decoder.decode_eof(&mut good), Err(DecodeError::Poisoned));
    assert_eq!(good.len(), 47, "nothing consumed");
    assert_eq!(decoder.stats().frames, 0);
}

#[test]
fn errors_map_to_the_spec_close_codes() {
    use DecodeError as E;
    let cases = [
        (E::ReservedBits { flags: 0x10 }, CloseCode::Protocol),
        (E::UnknownCodec { codec: 1 }, CloseCode::Protocol),
        (
            E::CodecWithoutCompression { flags: 0x02 },
            CloseCode::Protocol,
        ),
        (E::CompressedNotAccepted, CloseCode::Protocol),
        (E::EmptyFrame, CloseCode::Protocol),
        (E::FrameTooLarge { len: 2, max: 1 }, CloseCode::TooLarge),
        (
            E::ChecksumMismatch {
                expected: 1,
                actual: 2,
            },
            CloseCode::Checksum,
        ),
        (E::RawLenNotZero { raw_len: 1 }, CloseCode::Protocol),
        (E::RawLenZero, CloseCode::Protocol),
        (E::MessageTooLarge { len: 2, max: 1 }, CloseCode::TooLarge),
        (
            E::Decompress {
                source: Lz4Error::CorruptBlock,
            },
            CloseCode::Decompress,
        ),
        (E::RawLenExceeded { raw_len: 1 }, CloseCode::Decompress),
        (
            E::RawLenMismatch {
                raw_len: 2,
                actual: 1,
            },
            CloseCode::Decompress,
        ),
        (E::Truncated { buffered: 1 }, CloseCode::Protocol),
        (E::Poisoned, CloseCode::Protocol),
    ];
    for (err, code) in cases {
        assert_eq!(err.close_code(), code, "{err}");
        assert_eq!(CloseCode::from(&err), code);
        let text = err.to_string();
        assert!(
            !text.ends_with('.') && text.starts_with(|c: char| !c.is_uppercase()),
            "{text}"
        );
    }
}

/// Flips every bit pattern of every byte of `frame`, appends a valid frame and ends the
/// stream: the corruption must always surface as an error and never as a payload.
fn every_single_byte_corruption_is_detected(name: &str, frame: &[u8], config: &DecoderConfig) {
    let follower = unhex(PING_FRAME);
    let mut stream = frame.to_vec();
    stream.extend_from_slice(&follower);
    for at in 0..frame.len() {
        for mask in 1..=255_u8 {
            stream[at] ^= mask;
            let outcome = feed(config, [&stream[..]]);
            assert!(
                outcome.payloads.is_empty(),
                "{name}: byte {at} ^ {mask:#04x} yielded a payload"
            );
            let err = outcome.error.expect("an error");
            let allowed = match at {
                0 => matches!(
                    err,
                    DecodeError::ReservedBits { .. }
                        | DecodeError::UnknownCodec { .. }
                        | DecodeError::CodecWithoutCompression { .. }
                        | DecodeError::CompressedNotAccepted
                        | DecodeError::ChecksumMismatch { .. }
                ),
                1..=4 => matches!(
                    err,
                    DecodeError::FrameTooLarge { .. }
                        | DecodeError::EmptyFrame
                        | DecodeError::ChecksumMismatch { .. }
                        | DecodeError::Truncated { .. }
                ),
                _ => matches!(err, DecodeError::ChecksumMismatch { .. }),
            };
            assert!(allowed, "{name}: byte {at} ^ {mask:#04x} gave {err}");
            stream[at] ^= mask;
        }
    }
    // Sanity: uncorrupted, the stream decodes.
    assert_eq!(feed(config, [&stream[..]]).ok().len(), 2);
}

#[test]
fn flipping_any_single_byte_of_a_valid_frame_is_detected() {
    let compressed = compressed_frame(&b"rssi -70.0 dBm at 406.025 MHz; ".repeat(60));
    assert!(compressed.len() < 200, "{}", compressed.len());
    for config in [DecoderConfig::default(), accepting()] {
        every_single_byte_corruption_is_detected("ping", &unhex(PING_FRAME), &config);
        every_single_byte_corruption_is_detected("rssi", &unhex(RSSI1_FRAME), &config);
    }
    every_single_byte_corruption_is_detected("rssi16", &unhex(RSSI16_FRAME), &accepting());
    every_single_byte_corruption_is_detected("ours", &compressed, &accepting());
}

#[test]
fn single_byte_corruption_is_detected_when_fed_byte_by_byte() {
    let frame = unhex(PING_FRAME);
    let mut stream = frame.clone();
    stream.extend_from_slice(&frame);
    for at in 0..frame.len() {
        for mask in [0x01, 0x10, 0x80, 0xFF] {
            stream[at] ^= mask;
            let outcome = decode_byte_by_byte(&accepting(), &stream);
            assert!(
                outcome.payloads.is_empty() && outcome.error.is_some(),
                "byte {at} ^ {mask}"
            );
            stream[at] ^= mask;
        }
    }
}
