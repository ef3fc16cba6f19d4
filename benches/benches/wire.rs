//! Benchmarks for sarlink-wire: small-frame encode/decode latency, plain decode throughput
//! and LZ4 compression throughput on RSSI-like MessagePack data.
//! Figures and commands: docs/BENCHMARKS.md.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_main};
use sarlink_wire::{DecoderConfig, EncoderConfig, FrameDecoder, FrameEncoder};

/// An `rssi` message as MessagePack, written by hand (no schema dependency): `{type, seq,
/// samples: [record...]}` with records shaped like spec section 3.1, timestamps 100 ms
/// apart and RSSI, SNR and quality varying like a real track, until `min_len` bytes.
fn rssi_batch(min_len: usize) -> Vec<u8> {
    fn key(out: &mut Vec<u8>, s: &str) {
        out.push(0xa0 | s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
    let mut records = Vec::new();
    let mut count: u16 = 0;
    let mut state: u32 = 12_345;
    while records.len() < min_len {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let jitter = (state >> 16) % 60;
        let i = u64::from(count);
        records.push(0x87);
        key(&mut records, "timestamp_ns");
        records.push(0xcf);
        records.extend_from_slice(
            &(1_764_000_000_000_000_000 + i * 100_000_000 + u64::from(jitter)).to_be_bytes(),
        );
        key(&mut records, "rssi_dbm");
        records.push(0xca);
        records.extend_from_slice(
            &(-90.0 + (i % 400) as f32 * 0.05 + jitter as f32 * 0.1).to_be_bytes(),
        );
        key(&mut records, "frequency_hz");
        records.push(0xce);
        records.extend_from_slice(&406_025_000_u32.to_be_bytes());
        key(&mut records, "source_id");
        records.push(0x00);
        key(&mut records, "quality_score");
        records.push(50 + (jitter % 50) as u8);
        key(&mut records, "snr_db");
        records.push(0xca);
        records.extend_from_slice(&(10.0 + jitter as f32 * 0.25).to_be_bytes());
        key(&mut records, "noise_dbm");
        records.push(0xca);
        records.extend_from_slice(&(-100.0 - (jitter % 7) as f32 * 0.5).to_be_bytes());
        count += 1;
    }
    let mut out = vec![0x83];
    key(&mut out, "type");
    key(&mut out, "rssi");
    key(&mut out, "seq");
    out.extend_from_slice(&[0xcd, 0x04, 0xd2]);
    key(&mut out, "samples");
    out.push(0xdc);
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&records);
    out
}

fn small_frames(c: &mut Criterion) {
    let payload = [0x5a_u8; 64];
    let mut group = c.benchmark_group("wire");
    group.throughput(Throughput::Elements(1));

    let mut encoder = FrameEncoder::new(EncoderConfig::default());
    let mut dst = BytesMut::with_capacity(4096);
    group.bench_function("encode_64B", |b| {
        b.iter(|| {
            dst.clear();
            black_box(encoder.encode(black_box(&payload), &mut dst).unwrap());
        })
    });

    let mut frame = BytesMut::new();
    encoder.encode(&payload, &mut frame).unwrap();
    let mut decoder = FrameDecoder::new(DecoderConfig::default());
    let mut src = BytesMut::with_capacity(4096);
    // Steady state: the frame's 81 bytes land in a reused buffer and are decoded from it
    // (the copy stands in for the socket read and is included).
    group.bench_function("decode_64B", |b| {
        b.iter(|| {
            src.extend_from_slice(black_box(&frame));
            black_box(decoder.decode(&mut src).unwrap().unwrap());
        })
    });
    group.finish();
}

fn large_frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire");

    let plain: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 + i / 255) as u8).collect();
    let mut encoder = FrameEncoder::new(EncoderConfig::default().compression(false));
    let mut frame = BytesMut::new();
    encoder.encode(&plain, &mut frame).unwrap();
    let mut decoder = FrameDecoder::new(DecoderConfig::default());
    group.throughput(Throughput::Bytes(plain.len() as u64));
    // The frame is put in the buffer outside the measurement: this is the decoder's own
    // cost (header checks, XXH64 over 64 KiB, zero-copy split).
    group.bench_function("decode_plain_64KiB", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&frame[..]),
            |src| black_box(decoder.decode(src).unwrap().unwrap()),
            BatchSize::SmallInput,
        )
    });

    let batch = rssi_batch(64 * 1024);
    let mut encoder = FrameEncoder::new(EncoderConfig::default());
    let mut dst = BytesMut::with_capacity(2 * batch.len());
    let info = encoder.encode(&batch, &mut dst).unwrap();
    assert!(info.compressed);
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("compress_rssi_64KiB", |b| {
        b.iter(|| {
            dst.clear();
            black_box(encoder.encode(black_box(&batch), &mut dst).unwrap());
        })
    });

    let mut frame = BytesMut::new();
    encoder.encode(&batch, &mut frame).unwrap();
    let mut decoder = FrameDecoder::new(DecoderConfig::default().accept_compressed(true));
    let mut src = BytesMut::with_capacity(2 * frame.len());
    group.bench_function("decompress_rssi_64KiB", |b| {
        b.iter(|| {
            src.extend_from_slice(&frame);
            black_box(decoder.decode(&mut src).unwrap().unwrap());
        })
    });
    group.finish();

    eprintln!(
        "rssi batch: {} bytes -> {}-byte frame (ratio {:.2})",
        batch.len(),
        info.frame_len(),
        batch.len() as f64 / info.frame_len() as f64
    );
}

/// Runs every wire benchmark with criterion's command-line configuration.
///
/// Written out rather than with `criterion_group!`, whose generated `pub fn` has no docs.
fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    small_frames(&mut criterion);
    large_frames(&mut criterion);
}

criterion_main!(benches);
