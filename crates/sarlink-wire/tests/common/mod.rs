//! Shared helpers of the integration tests: golden vectors, framing helpers and a driver
//! that feeds a byte stream to a decoder whole, byte by byte and split at every offset.
#![allow(dead_code, unreachable_pub)] // each test binary uses a different subset

use bytes::{Bytes, BytesMut};
use sarlink_wire::{DecodeError, DecoderConfig, FrameDecoder, HEADER_LEN};
use xxhash_rust::xxh64::xxh64;

/// Spec section 6: `ping` (seq 7, t_ns 1700000000123456789).
pub const PING_PAYLOAD: &str = "83a474797065a470696e67a373657107a4745f6e73cf17979cfe3d85cd15";
pub const PING_FRAME: &str = "000000001e0000000083a474797065a470696e67a373657107a4745f6e73cf17979cfe3d85cd1550bd8ca6a1a542df";
/// Spec section 6: `rssi` with seq 42 and one record (plain, 150 bytes).
pub const RSSI1_FRAME: &str = "00000000850000000083a474797065a472737369a37365712aa773616d706c65739187ac74696d657374616d705f6e73cf187afca767ca0000a8727373695f64626dcac28f0000ac6672657175656e63795f687ace18337328a9736f757263655f696400ad7175616c6974795f73636f726557a6736e725f6462ca41920000a96e6f6973655f64626dcac2b38000d53136629987a592";
/// Spec section 6: `rssi` with seq 0 and 16 records, compressed by the reference LZ4 library.
pub const RSSI16_FRAME: &str = "01000000f70000052b04224d1868402b0500000000000069e0000000f02483a474797065a472737369a373657100a773616d706c6573dc001085ac74696d657374616d705f6e73cf187afca767ca0000a82c00ff265f64626dcac28c0000ac6672657175656e63795f687ace18337328a9736f757263655f696400ad7175616c6974795f73636f72655a5100003f6dbfe151003b3f73b5c251003b3f79aba351003b3f7fa18451003b3f85976551003b3f8b8d4651003b3f91832751003b3f97790851003b3f9d6ee951003b3fa364ca51003b3fa95aab51003b3faf508c51003b3fb5466d51003b3fbb3c4e51003b3fc1322f51002350636f72655a000000005ed105272429ff33";

pub fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("valid hex")
}

/// The 1,323-byte MessagePack payload of the compressed golden vector, written out by hand
/// from the spec's description (so the decoder is checked against an independent source).
pub fn rssi16_payload() -> Vec<u8> {
    fn str8(out: &mut Vec<u8>, s: &str) {
        assert!(s.len() < 32);
        out.push(0xa0 | s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
    let mut out = vec![0x83];
    str8(&mut out, "type");
    str8(&mut out, "rssi");
    str8(&mut out, "seq");
    out.push(0x00);
    str8(&mut out, "samples");
    out.extend_from_slice(&[0xdc, 0x00, 0x10]);
    for i in 0..16_u64 {
        out.push(0x85);
        str8(&mut out, "timestamp_ns");
        out.push(0xcf);
        out.extend_from_slice(&(1_764_000_000_000_000_000 + i * 100_000_000).to_be_bytes());
        str8(&mut out, "rssi_dbm");
        out.push(0xca);
        out.extend_from_slice(&(-70.0_f32).to_be_bytes());
        str8(&mut out, "frequency_hz");
        out.push(0xce);
        out.extend_from_slice(&406_025_000_u32.to_be_bytes());
        str8(&mut out, "source_id");
        out.push(0x00);
        str8(&mut out, "quality_score");
        out.push(90);
    }
    out
}

/// Payload of the Python fixtures (see tests/data/make_lz4_fixtures.py).
pub fn records(n: u32) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            format!(
                "seq {i} rssi -{}.{} dBm freq 406025000 q {}\n",
                60 + i % 37,
                i % 10,
                i % 101
            )
            .into_bytes()
        })
        .collect()
}

/// Incompressible bytes of the Python fixtures (the same LCG as the generator script).
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = (x * 1_103_515_245 + 12_345) % (1 << 31);
            (x >> 16) as u8
        })
        .collect()
}

/// Builds a frame from its fields, with a correct checksum (for forging frames that lie).
pub fn make_frame(flags: u8, wire_len: u32, raw_len: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&wire_len.to_be_bytes());
    out.extend_from_slice(&raw_len.to_be_bytes());
    out.extend_from_slice(payload);
    let checksum = xxh64(&out, 0);
    out.extend_from_slice(&checksum.to_be_bytes());
    out
}

/// Recomputes the checksum of a (modified) frame so that only the intended lie remains.
pub fn reseal(mut frame: Vec<u8>) -> Vec<u8> {
    let body = frame.len() - 8;
    let checksum = xxh64(&frame[..body], 0);
    frame[body..].copy_from_slice(&checksum.to_be_bytes());
    frame
}

/// Sets the header's raw_len and reseals.
pub fn with_raw_len(frame: &[u8], raw_len: u32) -> Vec<u8> {
    let mut frame = frame.to_vec();
    frame[5..HEADER_LEN].copy_from_slice(&raw_len.to_be_bytes());
    reseal(frame)
}

/// What a decoder made of a whole stream: the payloads, then the error that stopped it.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub payloads: Vec<Bytes>,
    pub error: Option<DecodeError>,
}

impl Outcome {
    pub fn ok(self) -> Vec<Bytes> {
        assert_eq!(
            self.error,
            None,
            "stream failed after {} payloads",
            self.payloads.len()
        );
        self.payloads
    }

    pub fn err(self) -> DecodeError {
        assert!(
            self.payloads.is_empty(),
            "corrupt stream yielded {} payloads",
            self.payloads.len()
        );
        self.error.expect("an error")
    }
}

/// Feeds the chunks to a fresh decoder, decoding after each, then ends the stream.
pub fn feed<'a>(config: &DecoderConfig, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut decoder = FrameDecoder::new(config.clone());
    let mut src = BytesMut::new();
    let mut payloads = Vec::new();
    for chunk in chunks {
        src.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut src) {
                Ok(Some(payload)) => payloads.push(payload),
                Ok(None) => break,
                Err(err) => return failed(&mut decoder, &mut src, payloads, err),
            }
        }
    }
    loop {
        match decoder.decode_eof(&mut src) {
            Ok(Some(payload)) => payloads.push(payload),
            Ok(None) => {
                return Outcome {
                    payloads,
                    error: None,
                };
            }
            Err(err) => return failed(&mut decoder, &mut src, payloads, err),
        }
    }
}

fn failed(
    decoder: &mut FrameDecoder,
    src: &mut BytesMut,
    payloads: Vec<Bytes>,
    err: DecodeError,
) -> Outcome {
    assert!(decoder.is_poisoned(), "decoder accepts input after {err}");
    assert_eq!(decoder.decode(src), Err(DecodeError::Poisoned));
    Outcome {
        payloads,
        error: Some(err),
    }
}

/// Feeds `stream` whole and byte by byte.
pub fn decode_byte_by_byte(config: &DecoderConfig, stream: &[u8]) -> Outcome {
    let whole = feed(config, [stream]);
    let bytes = feed(config, stream.chunks(1));
    assert_eq!(
        bytes, whole,
        "byte-by-byte feeding disagrees with whole feeding"
    );
    whole
}

/// Feeds `stream` whole, byte by byte, and split in two at every offset; all must agree.
pub fn decode_all_ways(config: &DecoderConfig, stream: &[u8]) -> Outcome {
    let whole = decode_byte_by_byte(config, stream);
    for at in 1..stream.len() {
        let (a, b) = stream.split_at(at);
        assert_eq!(
            feed(config, [a, b]),
            whole,
            "split at {at} disagrees with whole feeding"
        );
    }
    whole
}
