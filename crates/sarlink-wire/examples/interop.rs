//! Driver for `interop/frames.py`, which checks sarlink-wire against an independent Python
//! implementation (msgpack, lz4.frame, xxhash).
//!
//! - `interop encode [THRESHOLD]`: reads payloads from stdin, each as a u32 big-endian
//!   length and its bytes, and writes their frames to stdout (compression enabled, default
//!   threshold 1024).
//! - `interop decode`: reads a stream of frames from stdin and writes each payload to
//!   stdout as a u32 big-endian length and its bytes. On a decode error it prints the error
//!   and its close code to stderr and exits with status 2.
//!
//! Counters go to stderr.

use std::io::{self, Read, Write};
use std::process::ExitCode;

use bytes::BytesMut;
use sarlink_wire::{DecoderConfig, EncoderConfig, FrameDecoder, FrameEncoder};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut input = Vec::new();
    if let Err(err) = io::stdin().read_to_end(&mut input) {
        eprintln!("error: reading stdin: {err}");
        return ExitCode::FAILURE;
    }
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["encode"] => encode(&input, 1024),
        ["encode", threshold] => match threshold.parse() {
            Ok(threshold) => encode(&input, threshold),
            Err(err) => Err(format!("bad threshold {threshold:?}: {err}")),
        },
        ["decode"] => return decode(&input),
        _ => Err("usage: interop encode [THRESHOLD] | interop decode".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn encode(mut input: &[u8], threshold: usize) -> Result<(), String> {
    let mut encoder = FrameEncoder::new(EncoderConfig::default().compression_threshold(threshold));
    let mut out = BytesMut::new();
    while !input.is_empty() {
        let (len, rest) = input
            .split_first_chunk::<4>()
            .ok_or("truncated length prefix")?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err("truncated payload".to_owned());
        }
        let (payload, rest) = rest.split_at(len);
        encoder
            .encode(payload, &mut out)
            .map_err(|err| err.to_string())?;
        input = rest;
    }
    io::stdout()
        .write_all(&out)
        .map_err(|err| err.to_string())?;
    let s = encoder.stats();
    eprintln!(
        "encoded {} frames ({} compressed, {} bytes saved), {} bytes out",
        s.frames, s.compressed_frames, s.bytes_saved, s.bytes_out
    );
    Ok(())
}

fn decode(input: &[u8]) -> ExitCode {
    let mut decoder = FrameDecoder::new(DecoderConfig::default().accept_compressed(true));
    let mut src = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match decoder.decode_eof(&mut src) {
            Ok(Some(payload)) => {
                // Payloads are at most 16 MiB, so the length fits in a u32.
                out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                out.extend_from_slice(&payload);
            }
            Ok(None) => break,
            Err(err) => {
                eprintln!("decode error: {err} (close code {})", err.close_code());
                return ExitCode::from(2);
            }
        }
    }
    if let Err(err) = io::stdout().write_all(&out) {
        eprintln!("error: writing stdout: {err}");
        return ExitCode::FAILURE;
    }
    let s = decoder.stats();
    eprintln!(
        "decoded {} frames ({} compressed, {} bytes saved), {} payload bytes",
        s.frames, s.compressed_frames, s.bytes_saved, s.bytes_out
    );
    ExitCode::SUCCESS
}
