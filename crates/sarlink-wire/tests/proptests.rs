//! Property tests: round trips over arbitrary payloads, thresholds and chunkings; arbitrary
//! and corrupted input never panics, never yields a wrong payload and never makes the
//! decoder ask for more than the limit allows.

mod common;

use bytes::{Bytes, BytesMut};
use common::feed;
use proptest::prelude::*;
use sarlink_wire::{
    CHECKSUM_LEN, COMPRESSED_WIRE_SLACK, DecodeError, DecoderConfig, EncoderConfig, FrameDecoder,
    FrameEncoder, HEADER_LEN,
};

/// Payloads of every kind: random bytes, and repetitive ones that compress well.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..3000),
        (prop::collection::vec(any::<u8>(), 1..24), 1..400_usize)
            .prop_map(|(unit, times)| unit.repeat(times)),
    ]
}

/// Splits `bytes` into chunks whose sizes cycle through `sizes`.
fn chunked<'a>(bytes: &'a [u8], sizes: &'a [usize]) -> impl Iterator<Item = &'a [u8]> {
    let mut rest = bytes;
    let mut i = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = sizes[i % sizes.len()].min(rest.len());
        i += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

fn encode_all(payloads: &[Vec<u8>], config: EncoderConfig) -> (BytesMut, FrameEncoder) {
    let mut encoder = FrameEncoder::new(config);
    let mut wire = BytesMut::new();
    for p in payloads {
        encoder.encode(p, &mut wire).unwrap();
    }
    (wire, encoder)
}

proptest! {
    #[test]
    fn round_trip_over_payloads_thresholds_and_chunkings(
        payloads in prop::collection::vec(payload(), 1..6),
        threshold in 0..2048_usize,
        compression in any::<bool>(),
        sizes in prop::collection::vec(1..700_usize, 1..8),
    ) {
        let config = EncoderConfig::default().compression_threshold(threshold).compression(compression);
        let (wire, encoder) = encode_all(&payloads, config);
        let decoded = feed(&DecoderConfig::default().accept_compressed(true), chunked(&wire, &sizes)).ok();
        prop_assert_eq!(&decoded, &payloads);

        let e = *encoder.stats();
        prop_assert_eq!(e.frames, payloads.len() as u64);
        prop_assert_eq!(e.bytes_out, wire.len() as u64);
        prop_assert_eq!(e.bytes_in, payloads.iter().map(|p| p.len() as u64).sum::<u64>());
        prop_assert_eq!(e.bytes_in - e.bytes_saved + e.frames * 17, e.bytes_out);
        if !compression {
            prop_assert_eq!(e.compressed_frames, 0);
        }
        // Every compressed frame was above the threshold and smaller than its payload.
        let mut decoder = FrameDecoder::new(DecoderConfig::default().accept_compressed(true));
        let mut src = wire.clone();
        for p in &payloads {
            let compressed = src[0] == 0x01;
            let wire_len = u32::from_be_bytes(src[1..5].try_into().unwrap()) as usize;
            if compressed {
                prop_assert!(compression && p.len() > threshold && wire_len < p.len());
            } else {
                prop_assert_eq!(wire_len, p.len());
            }
            let decoded = decoder.decode(&mut src).unwrap();
            prop_assert_eq!(decoded.as_deref(), Some(&p[..]));
        }
        let d = *decoder.stats();
        prop_assert_eq!(
            (d.frames, d.bytes_in, d.bytes_out, d.compressed_frames, d.bytes_saved),
            (e.frames, e.bytes_out, e.bytes_in, e.compressed_frames, e.bytes_saved)
        );
    }

    #[test]
    fn the_same_stream_decodes_the_same_whatever_the_chunking(
        payloads in prop::collection::vec(payload(), 1..4),
        sizes in prop::collection::vec(1..64_usize, 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut encoder = FrameEncoder::new(EncoderConfig::default().compression_threshold(16));
        let mut wire = BytesMut::new();
        let mut ends = vec![0];
        for p in &payloads {
            encoder.encode(p, &mut wire).unwrap();
            ends.push(wire.len());
        }
        let config = DecoderConfig::default().accept_compressed(true);
        let whole = feed(&config, [&wire[..]]);
        prop_assert_eq!(&feed(&config, chunked(&wire, &sizes)), &whole);
        // Cut short, it yields the frames before the cut, then Truncated unless the cut
        // falls between two frames.
        let at = cut.index(wire.len());
        let partial = feed(&config, chunked(&wire[..at], &sizes));
        let complete = ends.iter().filter(|&&end| end > 0 && end <= at).count();
        prop_assert_eq!(&partial.payloads[..], &whole.payloads[..complete]);
        if ends.contains(&at) {
            prop_assert_eq!(partial.error, None);
        } else {
            let buffered = at - ends[complete];
            prop_assert_eq!(partial.error, Some(DecodeError::Truncated { buffered }));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_claim_more_than_the_limit(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        sizes in prop::collection::vec(1..40_usize, 1..5),
        max in 0..5000_u32,
        accept in any::<bool>(),
    ) {
        let config = DecoderConfig::default().max_message(max).accept_compressed(accept);
        let limit = HEADER_LEN + (max + COMPRESSED_WIRE_SLACK) as usize + CHECKSUM_LEN;
        let mut decoder = FrameDecoder::new(config);
        let mut src = BytesMut::new();
        for chunk in chunked(&bytes, &sizes) {
            src.extend_from_slice(chunk);
            match decoder.decode(&mut src) {
                Ok(Some(payload)) => prop_assert!(payload.len() <= max as usize),
                Ok(None) => {}
                Err(_) => break,
            }
            if let Some(pending) = decoder.pending_frame_len() {
                prop_assert!(pending <= limit);
                prop_assert!(src.capacity() <= limit.max(src.len()) * 2 + 64);
            }
        }
    }

    #[test]
    fn corrupted_streams_never_yield_a_wrong_payload(
        payloads in prop::collection::vec(payload(), 1..4),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1..=255_u8), 1..4),
        sizes in prop::collection::vec(1..300_usize, 1..4),
    ) {
        let (wire, _) = encode_all(&payloads, EncoderConfig::default().compression_threshold(64));
        let mut bad = wire.to_vec();
        for (at, mask) in &flips {
            let at = at.index(bad.len());
            bad[at] ^= mask;
        }
        let outcome = feed(&DecoderConfig::default().accept_compressed(true), chunked(&bad, &sizes));
        let expected: Vec<Bytes> = payloads.iter().map(|p| Bytes::copy_from_slice(p)).collect();
        prop_assert!(expected.starts_with(&outcome.payloads), "a corrupted frame decoded");
        if bad != wire.to_vec() {
            prop_assert!(outcome.error.is_some(), "corruption went unnoticed");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn payloads_over_several_lz4_blocks_round_trip(
        unit in prop::collection::vec(any::<u8>(), 1..64),
        len in 65_000..300_000_usize,
        sizes in prop::collection::vec(1000..70_000_usize, 1..4),
    ) {
        let payload: Vec<u8> = unit.iter().copied().cycle().take(len).collect();
        let (wire, encoder) = encode_all(std::slice::from_ref(&payload), EncoderConfig::default());
        prop_assert_eq!(encoder.stats().compressed_frames, 1);
        let decoded = feed(&DecoderConfig::default().accept_compressed(true), chunked(&wire, &sizes)).ok();
        prop_assert_eq!(decoded, [payload]);
    }
}
