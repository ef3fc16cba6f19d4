//! Benchmarks for sarlink-schema: `rssi` encode/decode latency (one record), 100-record
//! batch decode throughput, and the same messages through `rmp` used directly and through
//! `rmp-serde`, which is how the crate's MessagePack approach was chosen. Also prints the LZ4
//! size ratio of a 64-record batch. Figures and commands: docs/BENCHMARKS.md.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_main};
use sarlink_schema::{
    Db, Dbm, FrequencyHz, Message, QualityScore, Rssi, RssiRecord, SourceId, encode_frame,
};
use sarlink_wire::{EncoderConfig, FrameEncoder};
use serde::{Deserialize, Serialize};

/// `n` records like a real track: timestamps 100 ms apart (with a few microseconds of
/// jitter), RSSI drifting slowly with 0.1 dB of noise, noise floor near -92 dBm, SNR and
/// quality derived from them. All floats use their full mantissa.
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
                beacon: sarlink_schema::BeaconFields::NONE,
            }
        })
        .collect()
}

fn rssi_message(n: usize) -> Message {
    Message::Rssi(Rssi::new(1000, track(n)).unwrap())
}

// ----- The same message through rmp-serde (serde derive) -----

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct SerdeRecord {
    timestamp_ns: i64,
    rssi_dbm: f32,
    frequency_hz: u64,
    source_id: u8,
    quality_score: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snr_db: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    noise_dbm: Option<f32>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct SerdeRssi {
    #[serde(rename = "type")]
    kind: String,
    seq: u64,
    samples: Vec<SerdeRecord>,
}

fn serde_rssi(msg: &Message) -> SerdeRssi {
    let Message::Rssi(batch) = msg else {
        unreachable!()
    };
    SerdeRssi {
        kind: "rssi".into(),
        seq: batch.seq(),
        samples: batch
            .samples()
            .iter()
            .map(|r| SerdeRecord {
                timestamp_ns: r.timestamp_ns,
                rssi_dbm: r.rssi_dbm.get(),
                frequency_hz: r.frequency_hz.get(),
                source_id: r.source_id.get(),
                quality_score: r.quality_score.get(),
                snr_db: r.snr_db.map(Db::get),
                noise_dbm: r.noise_dbm.map(Dbm::get),
            })
            .collect(),
    }
}

// ----- The same message through rmp's writer functions -----

fn rmp_encode(msg: &SerdeRssi, out: &mut Vec<u8>) {
    use rmp::encode::*;
    write_map_len(out, 3).unwrap();
    write_str(out, "type").unwrap();
    write_str(out, &msg.kind).unwrap();
    write_str(out, "seq").unwrap();
    write_uint(out, msg.seq).unwrap();
    write_str(out, "samples").unwrap();
    write_array_len(out, msg.samples.len() as u32).unwrap();
    for r in &msg.samples {
        let n = 5 + u32::from(r.snr_db.is_some()) + u32::from(r.noise_dbm.is_some());
        write_map_len(out, n).unwrap();
        write_str(out, "timestamp_ns").unwrap();
        write_sint(out, r.timestamp_ns).unwrap();
        write_str(out, "rssi_dbm").unwrap();
        write_f32(out, r.rssi_dbm).unwrap();
        write_str(out, "frequency_hz").unwrap();
        write_uint(out, r.frequency_hz).unwrap();
        write_str(out, "source_id").unwrap();
        write_uint(out, u64::from(r.source_id)).unwrap();
        write_str(out, "quality_score").unwrap();
        write_uint(out, u64::from(r.quality_score)).unwrap();
        if let Some(v) = r.snr_db {
            write_str(out, "snr_db").unwrap();
            write_f32(out, v).unwrap();
        }
        if let Some(v) = r.noise_dbm {
            write_str(out, "noise_dbm").unwrap();
            write_f32(out, v).unwrap();
        }
    }
}

fn one_record(c: &mut Criterion) {
    let msg = rssi_message(1);
    let bytes = msg.encode_to_vec();
    let serde_msg = serde_rssi(&msg);
    // All three produce the canonical bytes, so the comparison is like for like.
    assert_eq!(rmp_serde::to_vec_named(&serde_msg).unwrap(), bytes);
    let mut rmp_bytes = Vec::new();
    rmp_encode(&serde_msg, &mut rmp_bytes);
    assert_eq!(rmp_bytes, bytes);

    let mut g = c.benchmark_group("schema/rssi_1_record");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    let mut buf = BytesMut::with_capacity(256);
    g.bench_function("encode/sarlink-schema", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&msg).encode(&mut buf);
            black_box(buf.len())
        })
    });
    let mut vec = Vec::with_capacity(256);
    g.bench_function("encode/sarlink-schema-into-vec", |b| {
        b.iter(|| {
            vec.clear();
            black_box(&msg).encode(&mut vec);
            black_box(vec.len())
        })
    });
    g.bench_function("encode/rmp-write-fns", |b| {
        b.iter(|| {
            vec.clear();
            rmp_encode(black_box(&serde_msg), &mut vec);
            black_box(vec.len())
        })
    });
    g.bench_function("encode/rmp-serde", |b| {
        b.iter(|| {
            vec.clear();
            rmp_serde::encode::write_named(&mut vec, black_box(&serde_msg)).unwrap();
            black_box(vec.len())
        })
    });
    g.bench_function("decode/sarlink-schema", |b| {
        b.iter(|| Message::decode(black_box(&bytes)).unwrap())
    });
    g.bench_function("decode/rmp-serde", |b| {
        b.iter(|| rmp_serde::from_slice::<SerdeRssi>(black_box(&bytes)).unwrap())
    });
    g.finish();
}

fn batch_100(c: &mut Criterion) {
    let msg = rssi_message(100);
    let bytes = msg.encode_to_vec();
    let mut g = c.benchmark_group("schema/rssi_100_records");
    g.throughput(Throughput::Elements(100));
    g.bench_function("decode/sarlink-schema", |b| {
        b.iter(|| Message::decode(black_box(&bytes)).unwrap())
    });
    g.bench_function("decode/rmp-serde", |b| {
        b.iter(|| rmp_serde::from_slice::<SerdeRssi>(black_box(&bytes)).unwrap())
    });
    let mut buf = BytesMut::with_capacity(16 * 1024);
    g.bench_function("encode/sarlink-schema", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&msg).encode(&mut buf);
            black_box(buf.len())
        })
    });
    g.finish();
}

fn lz4_64(c: &mut Criterion) {
    let msg = rssi_message(64);
    let plain = msg.encode_to_vec().len();
    let mut encoder = FrameEncoder::new(EncoderConfig::default());
    let mut out = BytesMut::new();
    let info = encode_frame(&msg, &mut encoder, &mut out).unwrap();
    assert!(info.compressed);
    println!(
        "schema/rssi_64_records: plain payload {plain} B, LZ4 frame payload {} B = {:.1} % of plain",
        info.wire_len,
        100.0 * f64::from(info.wire_len) / plain as f64
    );
    let mut g = c.benchmark_group("schema/rssi_64_records");
    g.throughput(Throughput::Elements(64));
    g.bench_function("encode_frame_lz4/sarlink-schema", |b| {
        b.iter(|| {
            out.clear();
            encode_frame(black_box(&msg), &mut encoder, &mut out).unwrap()
        })
    });
    g.finish();
}

/// Runs every schema benchmark with criterion's command-line configuration.
///
/// Written out rather than with `criterion_group!`, whose generated `pub fn` has no docs.
fn benches() {
    let mut criterion = Criterion::default().configure_from_args();
    one_record(&mut criterion);
    batch_100(&mut criterion);
    lz4_64(&mut criterion);
}

criterion_main!(benches);
