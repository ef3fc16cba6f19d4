//! Heap use of the codec, measured with a counting global allocator (its own test binary,
//! with a single test so that no other test allocates while it measures).
//!
//! - Steady state allocates nothing per frame when the caller reuses its buffers and drops
//!   each payload before the next: plain encode and decode, and compressed decode.
//! - Compressed *encoding* allocates once per 64 KiB LZ4 block: `lz4_flex`'s block compressor
//!   builds its hash table per call and offers no way to reuse one.
//! - Decoding arbitrary or hostile bytes never allocates more than the configured limit
//!   allows (a frame's worth of input plus at most `raw_len` of output).

mod common;

use bytes::BytesMut;
use common::{make_frame, records};
use sarlink_testkit::{CountingAlloc, alloc_stats_during, allocations_during};
use sarlink_wire::{
    CHECKSUM_LEN, COMPRESSED_WIRE_SLACK, DecoderConfig, EncoderConfig, FrameDecoder, FrameEncoder,
    HEADER_LEN,
};

// Counts per thread: the measured code runs on the test's own thread.
#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const ROUNDS: usize = 200;

/// Runs `round` a few times to warm the buffers up, then counts allocations over `ROUNDS`.
fn allocations_in_steady_state(mut round: impl FnMut()) -> u64 {
    for _ in 0..5 {
        round();
    }
    let (allocations, ()) = allocations_during(|| {
        for _ in 0..ROUNDS {
            round();
        }
    });
    allocations
}

/// Encoder output goes to `tx`, which is "sent": copied into the receiver's `rx`.
struct Link {
    encoder: FrameEncoder,
    decoder: FrameDecoder,
    tx: BytesMut,
    rx: BytesMut,
}

impl Link {
    fn new(threshold: usize) -> Link {
        Link {
            encoder: FrameEncoder::new(EncoderConfig::default().compression_threshold(threshold)),
            decoder: FrameDecoder::new(DecoderConfig::default().accept_compressed(true)),
            tx: BytesMut::with_capacity(1 << 16),
            rx: BytesMut::with_capacity(1 << 16),
        }
    }

    fn send(&mut self, payload: &[u8]) {
        self.tx.clear();
        self.encoder.encode(payload, &mut self.tx).unwrap();
        self.rx.extend_from_slice(&self.tx);
    }

    fn receive(&mut self, expected: &[u8]) {
        let payload = self
            .decoder
            .decode(&mut self.rx)
            .unwrap()
            .expect("a whole frame");
        assert_eq!(&payload[..], expected);
        // `payload` is dropped here, so its buffer can be reclaimed for the next frame.
    }
}

fn plain_frames_allocate_nothing() {
    let payload = b"a 64-byte rssi message: timestamp, rssi_dbm, frequency_hz, ...!";
    let mut link = Link::new(1024);
    let allocations = allocations_in_steady_state(|| {
        link.send(payload);
        link.receive(payload);
    });
    assert_eq!(allocations, 0, "plain encode + decode allocated");
    assert_eq!(link.decoder.stats().frames, ROUNDS as u64 + 5);

    // Large plain frames (over the threshold but incompressible: compression disabled).
    let payload = common::noise(40_000, 3);
    let mut link = Link::new(1024);
    link.encoder.set_compression(false);
    let allocations = allocations_in_steady_state(|| {
        link.send(&payload);
        link.receive(&payload);
    });
    assert_eq!(allocations, 0, "large plain frames allocated");

    // Several frames per read, decoded from one buffer.
    let mut link = Link::new(1024);
    let payloads: Vec<Vec<u8>> = (1..=5).map(|n| vec![n as u8; n * 100]).collect();
    let allocations = allocations_in_steady_state(|| {
        for p in &payloads {
            link.tx.clear();
            link.encoder.encode(p, &mut link.tx).unwrap();
            link.rx.extend_from_slice(&link.tx);
        }
        for p in &payloads {
            link.receive(p);
        }
    });
    assert_eq!(allocations, 0, "batched plain frames allocated");
}

fn compressed_decoding_allocates_nothing() {
    let payload = records(500);
    let mut encoder = FrameEncoder::new(EncoderConfig::default());
    let mut frame = BytesMut::new();
    assert!(encoder.encode(&payload, &mut frame).unwrap().compressed);

    let mut decoder = FrameDecoder::new(DecoderConfig::default().accept_compressed(true));
    let mut rx = BytesMut::with_capacity(1 << 16);
    let allocations = allocations_in_steady_state(|| {
        rx.extend_from_slice(&frame);
        let decoded = decoder.decode(&mut rx).unwrap().unwrap();
        assert_eq!(decoded, payload);
    });
    assert_eq!(allocations, 0, "compressed decode allocated");
    assert_eq!(decoder.stats().compressed_frames, ROUNDS as u64 + 5);
}

fn compressed_encoding_allocates_once_per_lz4_block() {
    for (n, blocks) in [(100, 1), (500, 1), (4000, 3)] {
        let payload = records(n);
        assert_eq!(payload.len().div_ceil(64 * 1024), blocks);
        let mut link = Link::new(1024);
        let allocations = allocations_in_steady_state(|| {
            link.send(&payload);
            link.receive(&payload);
        });
        assert_eq!(link.encoder.stats().compressed_frames, ROUNDS as u64 + 5);
        assert!(
            allocations <= (ROUNDS * blocks) as u64,
            "{allocations} allocations for {ROUNDS} frames of {blocks} blocks"
        );
    }
}

/// A small xorshift generator for reproducible arbitrary input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn hostile_input_allocates_within_the_limit() {
    let max: u32 = 4096;
    // Input side: one frame of at most this; output side: at most raw_len <= max.
    let frame_limit = HEADER_LEN + (max + COMPRESSED_WIRE_SLACK) as usize + CHECKSUM_LEN;
    let budget = (2 * frame_limit + max as usize + 1024) as u64;
    let config = DecoderConfig::default()
        .max_message(max)
        .accept_compressed(true);

    let mut rng = Rng(0x5EED);
    let mut worst = 0;
    for _ in 0..2000 {
        let len = (rng.next() % 64) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Often make the header plausible so the deeper checks are reached.
        if rng.next() % 2 == 0 && len > 0 {
            bytes[0] &= 0x01;
        }
        let mut decoder = FrameDecoder::new(config.clone());
        let mut src = BytesMut::new();
        let (stats, ()) = alloc_stats_during(|| {
            for chunk in bytes.chunks(7) {
                src.extend_from_slice(chunk);
                if !matches!(decoder.decode(&mut src), Ok(Some(_)) | Ok(None)) {
                    break;
                }
            }
        });
        worst = worst.max(stats.bytes_allocated);
    }
    assert!(
        worst <= budget,
        "arbitrary input allocated {worst} bytes (budget {budget})"
    );

    // Frames with a valid checksum whose header claims the most the limit allows.
    for (flags, wire_len, raw_len) in [(0x00, max, 0), (0x01, max + COMPRESSED_WIRE_SLACK, max)] {
        let header = &make_frame(flags, wire_len, raw_len, &[])[..HEADER_LEN];
        let mut decoder = FrameDecoder::new(config.clone());
        let mut src = BytesMut::from(header);
        let (stats, result) = alloc_stats_during(|| decoder.decode(&mut src));
        assert_eq!(result, Ok(None));
        let allocated = stats.bytes_allocated;
        assert!(
            allocated <= budget,
            "a header claim made the decoder allocate {allocated}"
        );
    }

    // A decompression bomb: 8 MiB of zeros (a few KiB compressed) claiming raw_len = max.
    let mut encoder = FrameEncoder::new(EncoderConfig::default());
    let mut frame = BytesMut::new();
    encoder.encode(&vec![0; 8 << 20], &mut frame).unwrap();
    let lz4 = &frame[HEADER_LEN..frame.len() - CHECKSUM_LEN];
    let bomb = make_frame(0x01, lz4.len() as u32, max, lz4);
    let mut decoder = FrameDecoder::new(config.clone());
    let mut src = BytesMut::from(&bomb[..]);
    let (stats, result) = alloc_stats_during(|| decoder.decode(&mut src));
    assert!(result.is_err());
    let allocated = stats.bytes_allocated;
    assert!(
        allocated <= u64::from(max) + 1024,
        "the bomb made the decoder allocate {allocated}"
    );
}

#[test]
fn heap_use() {
    // The counter works: a fresh vector is one allocation of its size.
    let (stats, v) = alloc_stats_during(|| std::hint::black_box(vec![1_u8; 10]));
    assert_eq!((stats.allocations, stats.bytes_allocated), (1, 10));
    drop(v);

    plain_frames_allocate_nothing();
    compressed_decoding_allocates_nothing();
    compressed_encoding_allocates_once_per_lz4_block();
    hostile_input_allocates_within_the_limit();
}
