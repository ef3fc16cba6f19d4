#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod close;
mod config;
mod decoder;
mod encoder;
mod error;
mod lz4f;

pub use close::CloseCode;
pub use config::{DecoderConfig, EncoderConfig};
pub use decoder::{DecoderStats, FrameDecoder};
pub use encoder::{EncoderStats, FrameEncoder, FrameInfo, FrameStart};
pub use error::{DecodeError, EncodeError, Lz4Error};

/// Length of a frame header: `flags` (1), `wire_len` (4), `raw_len` (4).
pub const HEADER_LEN: usize = 9;
/// Length of the XXH64 checksum that ends every frame.
pub const CHECKSUM_LEN: usize = 8;
/// The specification's ceiling on a message, uncompressed: 16 MiB. Peers may announce less.
pub const MAX_MESSAGE: u32 = 16 * 1024 * 1024;
/// Payloads longer than this are compressed by default (when compression pays).
pub const DEFAULT_COMPRESSION_THRESHOLD: usize = 1024;
/// How far a compressed frame's `wire_len` may exceed the message limit (LZ4 framing
/// overhead on incompressible data).
pub const COMPRESSED_WIRE_SLACK: u32 = 65_536;
/// Bit 0 of the flags byte: the payload is compressed.
pub const FLAG_COMPRESSED: u8 = 0x01;
