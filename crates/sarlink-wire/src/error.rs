//! Errors of the frame codec and their close codes.

use thiserror::Error;

use crate::CloseCode;

/// Why a frame could not be decoded.
///
/// Every variant leaves the stream untrustworthy: the decoder refuses further input
/// ([`DecodeError::Poisoned`]) and the caller should send `bye` with
/// [`close_code`](DecodeError::close_code) and close the connection.
#[non_exhaustive]
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum DecodeError {
    /// The decoder already failed; it accepts no more input.
    #[error("decoder refuses input after an earlier error")]
    Poisoned,
    /// One of the reserved flag bits 4-7 is set.
    #[error("reserved flag bits set in flags {flags:#04x}")]
    ReservedBits {
        /// The flags byte as received.
        flags: u8,
    },
    /// The frame is compressed with a codec other than 0 (LZ4 frame format).
    #[error("unknown compression codec {codec}")]
    UnknownCodec {
        /// The CODEC field (bits 1-3 of the flags).
        codec: u8,
    },
    /// CODEC bits are set although COMPRESSED is clear.
    #[error("codec bits set without the compressed flag in flags {flags:#04x}")]
    CodecWithoutCompression {
        /// The flags byte as received.
        flags: u8,
    },
    /// A compressed frame arrived while compressed frames are not accepted (before the
    /// handshake completes, or when LZ4 was not agreed).
    #[error("compressed frame received while compression is not accepted")]
    CompressedNotAccepted,
    /// `wire_len` is 0; every frame carries at least one payload byte.
    #[error("frame with an empty payload (wire_len 0)")]
    EmptyFrame,
    /// `wire_len` exceeds the limit; detected from the header, before the payload is buffered.
    #[error("frame payload of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The `wire_len` claimed by the header.
        len: u32,
        /// The largest `wire_len` accepted for this kind of frame.
        max: u32,
    },
    /// The XXH64 checksum over header and payload does not match the trailer.
    #[error("frame checksum mismatch: trailer says {expected:#018x}, computed {actual:#018x}")]
    ChecksumMismatch {
        /// The checksum carried in the frame's trailer.
        expected: u64,
        /// The checksum computed over the received header and payload.
        actual: u64,
    },
    /// A plain frame has a non-zero `raw_len`.
    #[error("plain frame with non-zero raw_len {raw_len}")]
    RawLenNotZero {
        /// The `raw_len` field as received.
        raw_len: u32,
    },
    /// A compressed frame has `raw_len` 0.
    #[error("compressed frame with raw_len 0")]
    RawLenZero,
    /// A compressed frame's `raw_len` exceeds the message limit; detected before decompressing.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// The `raw_len` claimed by the header.
        len: u32,
        /// The configured message limit.
        max: u32,
    },
    /// The payload is not a valid LZ4 frame.
    #[error("lz4 decompression failed")]
    Decompress {
        /// What was wrong with the LZ4 frame.
        #[source]
        source: Lz4Error,
    },
    /// The payload decompresses to more than `raw_len` bytes (decompression stopped there:
    /// nothing beyond `raw_len` is ever written).
    #[error("decompressed data exceeds raw_len {raw_len}")]
    RawLenExceeded {
        /// The `raw_len` claimed by the header.
        raw_len: u32,
    },
    /// The payload decompresses (or, by the LZ4 frame's content size, would decompress) to a
    /// length other than `raw_len`.
    #[error("decompressed length {actual} differs from raw_len {raw_len}")]
    RawLenMismatch {
        /// The `raw_len` claimed by the header.
        raw_len: u32,
        /// The decompressed length (or the LZ4 frame's declared content size).
        actual: u64,
    },
    /// The stream ended inside a frame (reported by [`FrameDecoder::decode_eof`]).
    ///
    /// [`FrameDecoder::decode_eof`]: crate::FrameDecoder::decode_eof
    #[error("stream ended inside a frame with {buffered} bytes buffered")]
    Truncated {
        /// Bytes of the incomplete frame that had arrived.
        buffered: usize,
    },
}

impl DecodeError {
    /// The close code to send in `bye` for this error (spec sections 2 and 3).
    ///
    /// # Examples
    ///
    /// ```
    /// use sarlink_wire::{CloseCode, DecodeError};
    ///
    /// let err = DecodeError::FrameTooLarge { len: 20_000_000, max: 16_777_216 };
    /// assert_eq!(err.close_code(), CloseCode::TooLarge);
    /// ```
    pub fn close_code(&self) -> CloseCode {
        match self {
            DecodeError::FrameTooLarge { .. } | DecodeError::MessageTooLarge { .. } => {
                CloseCode::TooLarge
            }
            DecodeError::ChecksumMismatch { .. } => CloseCode::Checksum,
            DecodeError::Decompress { .. }
            | DecodeError::RawLenExceeded { .. }
            | DecodeError::RawLenMismatch { .. } => CloseCode::Decompress,
            DecodeError::Poisoned
            | DecodeError::ReservedBits { .. }
            | DecodeError::UnknownCodec { .. }
            | DecodeError::CodecWithoutCompression { .. }
            | DecodeError::CompressedNotAccepted
            | DecodeError::EmptyFrame
            | DecodeError::RawLenNotZero { .. }
            | DecodeError::RawLenZero
            | DecodeError::Truncated { .. } => CloseCode::Protocol,
        }
    }
}

impl From<&DecodeError> for CloseCode {
    fn from(err: &DecodeError) -> CloseCode {
        err.close_code()
    }
}

impl From<Lz4Error> for DecodeError {
    fn from(source: Lz4Error) -> DecodeError {
        DecodeError::Decompress { source }
    }
}

/// What was wrong with a compressed payload's LZ4 frame (the source of
/// [`DecodeError::Decompress`]).
#[non_exhaustive]
#[derive(Debug, Error, PartialEq, Eq, Clone, Copy)]
pub enum Lz4Error {
    /// The LZ4 frame ends before its end mark (or inside its header or a block).
    #[error("lz4 frame is truncated")]
    Truncated,
    /// The payload does not start with the LZ4 frame magic number.
    #[error("bad lz4 frame magic {magic:#010x}")]
    BadMagic {
        /// The first four bytes, read little-endian.
        magic: u32,
    },
    /// The frame descriptor's version is not 01.
    #[error("unsupported lz4 frame version {version}")]
    UnsupportedVersion {
        /// The version field (bits 6-7 of FLG).
        version: u8,
    },
    /// A reserved bit of the frame descriptor (FLG or BD) is set.
    #[error("reserved bits set in lz4 frame descriptor (flg {flg:#04x}, bd {bd:#04x})")]
    ReservedBits {
        /// The FLG byte.
        flg: u8,
        /// The BD byte.
        bd: u8,
    },
    /// The frame needs a dictionary; sarlink never uses one.
    #[error("lz4 frame requires a dictionary")]
    DictionaryUnsupported,
    /// The block maximum size id is not one of 4-7.
    #[error("invalid lz4 block maximum size id {id}")]
    BadBlockSizeId {
        /// The id (bits 4-6 of BD).
        id: u8,
    },
    /// The frame descriptor's checksum byte does not match.
    #[error(
        "lz4 frame header checksum mismatch: header says {expected:#04x}, computed {actual:#04x}"
    )]
    HeaderChecksum {
        /// The HC byte carried in the descriptor.
        expected: u8,
        /// The checksum computed over the descriptor.
        actual: u8,
    },
    /// A block (stored or decompressed) is larger than the frame's block maximum size.
    #[error("lz4 block of at least {size} bytes exceeds the block maximum of {max}")]
    BlockTooLarge {
        /// The block's size (a lower bound when decompression was cut short).
        size: usize,
        /// The frame's block maximum size.
        max: usize,
    },
    /// A block checksum does not match.
    #[error("lz4 block checksum mismatch: block says {expected:#010x}, computed {actual:#010x}")]
    BlockChecksum {
        /// The checksum carried after the block.
        expected: u32,
        /// The checksum computed over the block data.
        actual: u32,
    },
    /// The content checksum does not match the decompressed data.
    #[error("lz4 content checksum mismatch: frame says {expected:#010x}, computed {actual:#010x}")]
    ContentChecksum {
        /// The checksum carried after the end mark.
        expected: u32,
        /// The checksum computed over the decompressed data.
        actual: u32,
    },
    /// A compressed block's data is invalid (bad offset, literal past its end...).
    #[error("corrupt lz4 block data")]
    CorruptBlock,
    /// Bytes follow the LZ4 frame inside the payload.
    #[error("{count} bytes follow the lz4 frame")]
    TrailingBytes {
        /// How many bytes follow the end of the LZ4 frame.
        count: usize,
    },
}

/// Why a payload could not be framed.
#[non_exhaustive]
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum EncodeError {
    /// The payload is empty; every frame carries at least one byte.
    #[error("empty payload")]
    EmptyPayload,
    /// The payload exceeds the peer's message limit.
    #[error("payload of {len} bytes exceeds the peer's limit of {max}")]
    MessageTooLarge {
        /// The payload length.
        len: usize,
        /// The peer's message limit.
        max: u32,
    },
}

impl EncodeError {
    /// The close code that describes this error, should a caller need to report it.
    ///
    /// # Examples
    ///
    /// ```
    /// use sarlink_wire::{CloseCode, EncodeError};
    ///
    /// assert_eq!(EncodeError::EmptyPayload.close_code(), CloseCode::Protocol);
    /// ```
    pub fn close_code(&self) -> CloseCode {
        match self {
            EncodeError::EmptyPayload => CloseCode::Protocol,
            EncodeError::MessageTooLarge { .. } => CloseCode::TooLarge,
        }
    }
}

impl From<&EncodeError> for CloseCode {
    fn from(err: &EncodeError) -> CloseCode {
        err.close_code()
    }
}
