//! Benchmarks for sarlink-pool: buffer checkout+return against a fresh allocation, and
//! ring buffer push/pop and force_push at full.

use std::hint::black_box;

use bytes::{BufMut, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use sarlink_pool::{BufferPool, RingBuffer};

/// Bytes written into each buffer so the allocation is really touched: about one RSSI
/// message frame.
const FRAME_BYTES: usize = 64;

fn buffers(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool/buffer");
    for size in [4 * 1024, 64 * 1024] {
        let label = format!("{}KiB", size / 1024);
        let pool = BufferPool::builder()
            .buffer_capacity(size)
            .max_buffer_capacity(size)
            .max_pooled(4)
            .prefill(1)
            .build()
            .expect("valid config");

        // Checkout, write one frame, return: the per-frame cost the link pays.
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("fresh_frame", &label), |b| {
            b.iter(|| {
                let mut buf = BytesMut::with_capacity(black_box(size));
                buf.put_bytes(0xA5, FRAME_BYTES);
                black_box(&buf);
            });
        });
        group.bench_function(BenchmarkId::new("pooled_frame", &label), |b| {
            b.iter(|| {
                let mut buf = pool.checkout();
                buf.put_bytes(0xA5, FRAME_BYTES);
                black_box(&*buf);
            });
        });

        // Checkout, fill the whole capacity, return.
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("fresh_fill", &label), |b| {
            b.iter(|| {
                let mut buf = BytesMut::with_capacity(black_box(size));
                buf.put_bytes(0xA5, size);
                black_box(&buf);
            });
        });
        group.bench_function(BenchmarkId::new("pooled_fill", &label), |b| {
            b.iter(|| {
                let mut buf = pool.checkout();
                buf.put_bytes(0xA5, size);
                black_box(&*buf);
            });
        });
        let stats = pool.stats();
        assert!(
            stats.recycling_rate() > 0.99,
            "bench pool should only hit: {stats:?}"
        );
    }
    group.finish();
}

/// Roughly the shape of an RSSI record kept for history or awaiting acknowledgement.
#[derive(Clone, Copy)]
struct Sample {
    seq: u64,
    timestamp_us: u64,
    frequency_hz: u32,
    rssi_centi_dbm: i16,
}

fn sample(seq: u64) -> Sample {
    Sample {
        seq,
        timestamp_us: seq * 100_000,
        frequency_hz: 433_920_000,
        rssi_centi_dbm: -7_250,
    }
}

fn ring(c: &mut Criterion) {
    const CAPACITY: usize = 1024;
    let mut group = c.benchmark_group("pool/ring");
    group.throughput(Throughput::Elements(1));

    // Half full: one push and one pop per iteration, the steady state of an ack window.
    let mut half = RingBuffer::new(CAPACITY);
    for seq in 0..(CAPACITY / 2) as u64 {
        half.push(sample(seq)).ok().expect("room");
    }
    let mut seq = CAPACITY as u64;
    group.bench_function("push_pop", |b| {
        b.iter(|| {
            seq += 1;
            if half.push(black_box(sample(seq))).is_err() {
                unreachable!("half-full ring has room");
            }
            black_box(half.pop());
        });
    });

    // Full: every force_push evicts the oldest, the steady state of an RSSI history.
    let mut full = RingBuffer::new(CAPACITY);
    for seq in 0..CAPACITY as u64 {
        full.push(sample(seq)).ok().expect("room");
    }
    group.bench_function("force_push_full", |b| {
        b.iter(|| {
            seq += 1;
            black_box(full.force_push(black_box(sample(seq))));
        });
    });
    let mut checksum = 0_u64;
    for s in full.iter() {
        checksum = checksum.wrapping_add(s.seq ^ s.timestamp_us ^ u64::from(s.frequency_hz));
        checksum = checksum.wrapping_add(s.rssi_centi_dbm.unsigned_abs().into());
    }
    black_box(checksum);
    group.finish();
}

/// Runs every pool benchmark with criterion's command-line configuration.
///
/// Written out rather than with `criterion_group!`, whose generated `pub fn` has no docs.
fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    buffers(&mut criterion);
    ring(&mut criterion);
}

criterion_main!(benches);
