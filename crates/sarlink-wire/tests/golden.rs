//! The specification's golden vectors (section 6), and LZ4 frames written by Python's
//! `lz4.frame` (the reference C library) with its various settings.

mod common;

use bytes::BytesMut;
use common::*;
use sarlink_wire::{DecodeError, DecoderConfig, EncoderConfig, FrameEncoder, HEADER_LEN};

fn accepting() -> DecoderConfig {
    DecoderConfig::default().accept_compressed(true)
}

fn encode_one(payload: &[u8]) -> Vec<u8> {
    let mut encoder = FrameEncoder::new(EncoderConfig::default());
    let mut out = BytesMut::new();
    encoder.encode(payload, &mut out).unwrap();
    out.to_vec()
}

#[test]
fn ping_vector_encodes_byte_exact_and_decodes() {
    let payload = unhex(PING_PAYLOAD);
    let frame = unhex(PING_FRAME);
    assert_eq!(frame.len(), 47);
    assert_eq!(hex::encode(encode_one(&payload)), PING_FRAME);
    for config in [DecoderConfig::default(), accepting()] {
        assert_eq!(
            decode_all_ways(&config, &frame).ok(),
            std::slice::from_ref(&payload)
        );
    }
}

#[test]
fn rssi_vector_encodes_byte_exact_and_decodes() {
    let frame = unhex(RSSI1_FRAME);
    assert_eq!(frame.len(), 150);
    let payload = &frame[HEADER_LEN..frame.len() - 8];
    assert_eq!(payload.len(), 0x85);
    assert_eq!(hex::encode(encode_one(payload)), RSSI1_FRAME);
    assert_eq!(
        decode_all_ways(&DecoderConfig::default(), &frame).ok(),
        [payload]
    );
}

#[test]
fn compressed_vector_from_the_reference_library_decodes() {
    let frame = unhex(RSSI16_FRAME);
    assert_eq!(frame.len(), 264);
    let expected = rssi16_payload();
    assert_eq!(expected.len(), 1323);
    assert_eq!(decode_all_ways(&accepting(), &frame).ok(), [expected]);
}

#[test]
fn compressed_vector_is_refused_before_the_handshake() {
    let frame = unhex(RSSI16_FRAME);
    // Refused from the flags byte alone.
    assert_eq!(
        decode_all_ways(&DecoderConfig::default(), &frame).err(),
        DecodeError::CompressedNotAccepted
    );
    assert_eq!(
        feed(&DecoderConfig::default(), [&frame[..1]]).err(),
        DecodeError::CompressedNotAccepted
    );
}

#[test]
fn our_encoder_compresses_the_vector_payload_and_decodes_it_back() {
    let payload = rssi16_payload();
    let frame = encode_one(&payload);
    assert_eq!(frame[0], 0x01, "compressed with codec 0");
    let raw_len = u32::from_be_bytes(frame[5..9].try_into().unwrap());
    assert_eq!(raw_len, 1323);
    assert!(
        frame.len() < 264 + 64,
        "about as small as the reference: {}",
        frame.len()
    );
    assert_eq!(decode_all_ways(&accepting(), &frame).ok(), [payload]);
}

#[test]
fn all_vectors_in_one_stream_decode_in_order() {
    let mut stream = unhex(PING_FRAME);
    stream.extend(unhex(RSSI16_FRAME));
    stream.extend(unhex(RSSI1_FRAME));
    stream.extend(unhex(PING_FRAME));
    let rssi1 = unhex(RSSI1_FRAME);
    let payloads = decode_all_ways(&accepting(), &stream).ok();
    assert_eq!(
        payloads,
        [
            unhex(PING_PAYLOAD),
            rssi16_payload(),
            rssi1[HEADER_LEN..rssi1.len() - 8].to_vec(),
            unhex(PING_PAYLOAD)
        ]
    );
}

/// Frames written by Python's lz4.frame (tests/data/make_lz4_fixtures.py).
fn python_fixtures() -> Vec<(&'static str, Vec<u8>, &'static [u8])> {
    let mut stored = noise(70_000, 7);
    stored.extend(records(500));
    vec![
        (
            "default_small",
            records(40),
            include_bytes!("data/py_default_small.lz4"),
        ),
        (
            "default_large",
            records(2000),
            include_bytes!("data/py_default_large.lz4"),
        ),
        (
            "independent_large",
            records(2000),
            include_bytes!("data/py_independent_large.lz4"),
        ),
        (
            "checksums_large",
            records(2000),
            include_bytes!("data/py_checksums_large.lz4"),
        ),
        (
            "max4mb_nosize",
            records(2000),
            include_bytes!("data/py_max4mb_nosize.lz4"),
        ),
        (
            "hc_linked",
            records(2000),
            include_bytes!("data/py_hc_linked.lz4"),
        ),
        (
            "stored_blocks",
            stored,
            include_bytes!("data/py_stored_blocks.lz4"),
        ),
    ]
}

#[test]
fn frames_compressed_by_python_lz4_decode() {
    for (name, payload, lz4) in python_fixtures() {
        let frame = make_frame(0x01, lz4.len() as u32, payload.len() as u32, lz4);
        let out = decode_byte_by_byte(&accepting(), &frame);
        assert_eq!(out.ok(), [payload], "fixture {name}");
    }
}

#[test]
fn small_python_frame_decodes_split_at_every_offset() {
    let (_, payload, lz4) = python_fixtures().swap_remove(0);
    let frame = make_frame(0x01, lz4.len() as u32, payload.len() as u32, lz4);
    assert_eq!(decode_all_ways(&accepting(), &frame).ok(), [payload]);
}

#[test]
fn linked_blocks_really_reach_into_the_previous_block() {
    // Declaring Python's linked frame independent (and fixing its header checksum) must
    // break it: so the linked fixtures above do exercise the dictionary path.
    let mut lz4 = include_bytes!("data/py_default_large.lz4").to_vec();
    assert_eq!(lz4[4] & 0x20, 0, "the fixture uses linked blocks");
    lz4[4] |= 0x20;
    let descriptor_end = 6 + if lz4[4] & 0x08 != 0 { 8 } else { 0 };
    lz4[descriptor_end] = (xxhash_rust::xxh32::xxh32(&lz4[4..descriptor_end], 0) >> 8) as u8;
    let payload = records(2000);
    let frame = make_frame(0x01, lz4.len() as u32, payload.len() as u32, &lz4);
    let err = feed(&accepting(), [&frame[..]]).err();
    assert_eq!(
        err,
        DecodeError::Decompress {
            source: sarlink_wire::Lz4Error::CorruptBlock
        }
    );
}
