#![no_main]
//! The same bytes, fed whole and in chunks the input chooses, decode to the same payloads
//! and the same error: the decoder's result never depends on how the stream was cut.

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sarlink_wire::{DecodeError, DecoderConfig, FrameDecoder};

/// Feeds the chunks, decoding after each, then ends the stream.
fn run<'a>(
    config: &DecoderConfig,
    chunks: impl Iterator<Item = &'a [u8]>,
) -> (Vec<Bytes>, Option<DecodeError>) {
    let mut decoder = FrameDecoder::new(config.clone());
    let mut src = BytesMut::new();
    let mut payloads = Vec::new();
    for chunk in chunks {
        src.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut src) {
                Ok(Some(payload)) => payloads.push(payload),
                Ok(None) => break,
                Err(err) => return (payloads, Some(err)),
            }
        }
    }
    loop {
        match decoder.decode_eof(&mut src) {
            Ok(Some(payload)) => payloads.push(payload),
            Ok(None) => return (payloads, None),
            Err(err) => return (payloads, Some(err)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Layout: control byte, number of chunk sizes n, n chunk sizes, then the stream.
    let [control, n, rest @ ..] = data else {
        return;
    };
    let n = usize::from(*n % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let config = DecoderConfig::default()
        .accept_compressed(control & 0x01 != 0)
        .max_message(if control & 0x02 != 0 { 4096 } else { u32::MAX });
    let whole = run(&config, std::iter::once(stream));

    let mut rest = stream;
    let mut i = 0;
    let chunks = std::iter::from_fn(|| {
        if rest.is_empty() {
            return None;
        }
        let size = sizes
            .get(i % sizes.len().max(1))
            .map_or(1, |&s| usize::from(s).max(1));
        i += 1;
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        Some(chunk)
    });
    assert_eq!(run(&config, chunks), whole);
});
