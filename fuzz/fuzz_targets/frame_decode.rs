#![no_main]
//! Arbitrary bytes into the frame decoder: it never panics, never asks for more than the
//! limit allows, and every frame it accepts is genuine: a plain frame re-encodes to exactly
//! the bytes it was decoded from, a compressed one round-trips through our encoder.
//!
//! Random bytes rarely carry a valid XXH64, so in "seal" mode (control bit 2) the input is
//! made into one frame with a correct checksum first; that drives the fuzzer into the
//! `raw_len` checks and the LZ4 frame parser.

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sarlink_wire::{
    CHECKSUM_LEN, COMPRESSED_WIRE_SLACK, DecodeError, DecoderConfig, EncoderConfig, FrameDecoder,
    FrameEncoder, HEADER_LEN, MAX_MESSAGE,
};

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    // The first byte picks the configuration.
    let max = if control & 0x02 != 0 {
        4096
    } else {
        MAX_MESSAGE
    };
    let config = DecoderConfig::default()
        .max_message(max)
        .accept_compressed(control & 0x01 != 0);
    let limit = HEADER_LEN + (max + COMPRESSED_WIRE_SLACK) as usize + CHECKSUM_LEN;
    let mut src = BytesMut::from(stream);
    if control & 0x04 != 0 {
        seal(&mut src, &config);
    }
    let mut decoder = FrameDecoder::new(config.clone());
    loop {
        let before = src.clone();
        match decoder.decode_eof(&mut src) {
            Ok(Some(payload)) => {
                let consumed = &before[..before.len() - src.len()];
                assert!(payload.len() <= max as usize);
                if consumed[0] == 0x00 {
                    let mut encoder =
                        FrameEncoder::new(EncoderConfig::default().compression(false));
                    let mut again = BytesMut::new();
                    encoder
                        .encode(&payload, &mut again)
                        .expect("a decoded payload re-encodes");
                    assert_eq!(&again[..], consumed, "plain frame re-encodes differently");
                } else {
                    let mut encoder =
                        FrameEncoder::new(EncoderConfig::default().compression_threshold(0));
                    let mut again = BytesMut::new();
                    encoder
                        .encode(&payload, &mut again)
                        .expect("a decoded payload re-encodes");
                    let mut check = FrameDecoder::new(config.clone());
                    let decoded = check.decode(&mut again).expect("our frame decodes");
                    assert_eq!(decoded.as_deref(), Some(&payload[..]));
                }
            }
            Ok(None) => break,
            Err(_) => {
                assert!(decoder.is_poisoned());
                break;
            }
        }
        assert!(decoder.pending_frame_len().is_none_or(|len| len <= limit));
    }
});

/// Makes `frame` a single frame spanning all its bytes, with the checksum the decoder
/// computes (learnt from its own `ChecksumMismatch`, so no hashing code is needed here).
fn seal(frame: &mut BytesMut, config: &DecoderConfig) {
    let Some(wire_len) = frame.len().checked_sub(HEADER_LEN + CHECKSUM_LEN) else {
        return;
    };
    let Ok(wire_len) = u32::try_from(wire_len) else {
        return;
    };
    frame[1..5].copy_from_slice(&wire_len.to_be_bytes());
    let mut probe = frame.clone();
    if let Err(DecodeError::ChecksumMismatch { actual, .. }) =
        FrameDecoder::new(config.clone()).decode(&mut probe)
    {
        let end = frame.len();
        frame[end - CHECKSUM_LEN..].copy_from_slice(&actual.to_be_bytes());
    }
}
