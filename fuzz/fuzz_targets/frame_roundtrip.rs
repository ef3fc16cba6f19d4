#![no_main]
//! Structured input: payloads (often repetitive, so they compress), an encoder
//! configuration and a chunking. Everything encoded decodes back, in order, and the
//! encoder's and decoder's counters agree.

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sarlink_wire::{DecoderConfig, EncodeError, EncoderConfig, FrameDecoder, FrameEncoder};

#[derive(Debug, Arbitrary)]
struct Payload {
    unit: Vec<u8>,
    repeat: u8,
}

#[derive(Debug, Arbitrary)]
struct Input {
    payloads: Vec<Payload>,
    threshold: u16,
    compression: bool,
    peer_max: u32,
    chunk: u8,
}

fuzz_target!(|input: Input| {
    let max = input.peer_max % (1 << 20) + 1;
    let mut encoder = FrameEncoder::new(
        EncoderConfig::default()
            .compression_threshold(usize::from(input.threshold))
            .compression(input.compression)
            .max_message(max),
    );
    let mut wire = BytesMut::new();
    let mut sent = Vec::new();
    for p in &input.payloads {
        let payload = p.unit.repeat(usize::from(p.repeat) + 1);
        let before = wire.len();
        match encoder.encode(&payload, &mut wire) {
            Ok(info) => {
                assert_eq!(info.payload_len() as usize, payload.len());
                assert_eq!(wire.len() - before, info.frame_len());
                assert!(
                    !info.compressed
                        || (input.compression && payload.len() > usize::from(input.threshold))
                );
                sent.push(payload);
            }
            Err(err) => {
                match err {
                    EncodeError::EmptyPayload => assert!(payload.is_empty()),
                    EncodeError::MessageTooLarge { len, .. } => assert!(len > max as usize),
                    err => panic!("unexpected {err}"),
                }
                assert_eq!(wire.len(), before, "a failed encode left bytes behind");
            }
        }
    }

    let mut decoder = FrameDecoder::new(
        DecoderConfig::default()
            .accept_compressed(true)
            .max_message(max),
    );
    let mut src = BytesMut::new();
    let mut received = Vec::new();
    for chunk in wire.chunks(usize::from(input.chunk) + 1) {
        src.extend_from_slice(chunk);
        while let Some(payload) = decoder.decode(&mut src).expect("our own frames decode") {
            received.push(payload);
        }
    }
    assert!(src.is_empty());
    assert_eq!(received, sent);
    let (e, d) = (encoder.stats(), decoder.stats());
    assert_eq!(
        (e.frames, e.bytes_out, e.bytes_in),
        (d.frames, d.bytes_in, d.bytes_out)
    );
    assert_eq!(
        (e.compressed_frames, e.bytes_saved),
        (d.compressed_frames, d.bytes_saved)
    );
});
