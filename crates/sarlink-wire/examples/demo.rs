//! A tour of the frame codec: encode a small and a large message, deliver the bytes in
//! awkward chunks, show the counters, then watch a corrupted frame being rejected.
//!
//! Run with `cargo run --release -p sarlink-wire --example demo`.

use bytes::BytesMut;
use sarlink_wire::{DecoderConfig, EncoderConfig, FrameDecoder, FrameEncoder};

fn main() {
    let mut encoder = FrameEncoder::new(EncoderConfig::default());
    // Compressed frames are accepted once a handshake has agreed on LZ4; assume it has.
    let mut decoder = FrameDecoder::new(DecoderConfig::default().accept_compressed(true));

    // A small message stays plain; a batch of RSSI readings is worth compressing.
    let small = b"ping seq=7".to_vec();
    let batch: Vec<u8> = (0..200)
        .flat_map(|i| {
            format!(
                "t={} rssi_dbm=-{}.{} f_hz=406025000 q=90;",
                1_764_000_000 + i,
                70 + i % 5,
                i % 10
            )
            .into_bytes()
        })
        .collect();

    let mut wire = BytesMut::new();
    println!("encoding:");
    for (name, payload) in [("small", &small), ("rssi batch", &batch)] {
        let info = encoder
            .encode(payload, &mut wire)
            .expect("payload within limits");
        println!(
            "  {name:<10} {:>5} payload bytes -> {:>5}-byte frame ({})",
            payload.len(),
            info.frame_len(),
            if info.compressed {
                "LZ4-compressed"
            } else {
                "plain"
            }
        );
    }

    // The network may cut the stream anywhere: deliver it 13 bytes at a time.
    println!("decoding {} bytes delivered 13 at a time:", wire.len());
    let mut received = BytesMut::new();
    for chunk in wire.chunks(13) {
        received.extend_from_slice(chunk);
        while let Some(payload) = decoder.decode(&mut received).expect("valid frames") {
            let intact = payload == small || payload == batch;
            println!("  got a {}-byte payload (intact: {intact})", payload.len());
        }
    }

    let sent = encoder.stats();
    let got = decoder.stats();
    println!(
        "encoder: {} frames, {} payload bytes in, {} bytes out, {} compressed, {} bytes saved",
        sent.frames, sent.bytes_in, sent.bytes_out, sent.compressed_frames, sent.bytes_saved
    );
    println!(
        "decoder: {} frames, {} bytes in, {} payload bytes out, {} compressed, {} bytes saved",
        got.frames, got.bytes_in, got.bytes_out, got.compressed_frames, got.bytes_saved
    );

    // Flip one bit in a frame's payload: the checksum catches it, the decoder stops.
    let mut corrupt = BytesMut::new();
    encoder
        .encode(&small, &mut corrupt)
        .expect("payload within limits");
    corrupt[12] ^= 0x04;
    println!("decoding a frame with one flipped bit:");
    match decoder.decode(&mut corrupt) {
        Err(err) => println!(
            "  rejected: {err}\n  close the link with bye code \"{}\"",
            err.close_code()
        ),
        Ok(payload) => println!("  unexpectedly accepted: {payload:?}"),
    }
    println!(
        "  decoder poisoned (refuses further input): {}",
        decoder.is_poisoned()
    );
}
