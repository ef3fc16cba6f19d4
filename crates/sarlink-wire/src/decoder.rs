//! The incremental frame decoder.

use bytes::{Buf, Bytes, BytesMut};
use xxhash_rust::xxh64::xxh64;

use crate::lz4f::{self, Fail};
use crate::{
    CHECKSUM_LEN, COMPRESSED_WIRE_SLACK, DecodeError, DecoderConfig, FLAG_COMPRESSED, FrameInfo,
    HEADER_LEN,
};

/// Bits 4-7 of the flags byte, reserved.
const FLAGS_RESERVED: u8 = 0xF0;
/// Bits 1-3 of the flags byte, the compression codec.
const FLAGS_CODEC_SHIFT: u32 = 1;
const FLAGS_CODEC_MASK: u8 = 0x07;

/// Takes frames off the front of a byte buffer, however the bytes were chunked, and yields
/// their payloads (spec section 2).
///
/// Call order: append received bytes to a `BytesMut`, then call [`decode`](Self::decode)
/// until it returns `Ok(None)` (more bytes needed); repeat. When the stream ends call
/// [`decode_eof`](Self::decode_eof) so a frame cut short is reported. After any error the
/// decoder is poisoned and refuses further input: send `bye` with the error's
/// [`close_code`](DecodeError::close_code) and close the connection.
///
/// The receiver's checks run in the specification's order: reserved bits and codec (as soon
/// as the flags byte arrives), `wire_len` against the limit (as soon as it arrives, before
/// any payload is buffered), the XXH64 checksum, `raw_len` against the limit, and finally
/// decompression into at most `raw_len` bytes, which must produce exactly `raw_len`.
///
/// Plain payloads are split off the input buffer without copying. Compressed payloads are
/// decompressed into a buffer the decoder reuses once the previous payload is dropped, so a
/// caller that reuses its input buffer and drops payloads allocates nothing per frame.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use sarlink_wire::{DecoderConfig, FrameDecoder};
///
/// // The spec's `ping` golden vector, arriving in two pieces.
/// let frame = hex::decode(
///     "000000001e0000000083a474797065a470696e67a373657107a4745f6e73cf17979cfe3d85cd15\
///      50bd8ca6a1a542df",
/// ).unwrap();
/// let mut decoder = FrameDecoder::new(DecoderConfig::default());
/// let mut buf = BytesMut::from(&frame[..20]);
/// assert_eq!(decoder.decode(&mut buf)?, None);
/// buf.extend_from_slice(&frame[20..]);
/// let payload = decoder.decode(&mut buf)?.expect("a whole frame");
/// assert_eq!(payload.len(), 30);
/// assert!(buf.is_empty());
/// # Ok::<(), sarlink_wire::DecodeError>(())
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    config: DecoderConfig,
    stats: DecoderStats,
    state: State,
    /// Decompression output; its allocation is reclaimed once the payloads split off it are
    /// dropped.
    out: BytesMut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for (the rest of) a header.
    Head,
    /// The header has been read and checked; waiting for the payload and checksum.
    Body(FrameInfo),
    /// An error happened; no more input is accepted.
    Poisoned,
}

/// Counters kept by a [`FrameDecoder`] since it was created.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecoderStats {
    /// Frames decoded successfully.
    pub frames: u64,
    /// Frame bytes taken in (headers, payloads and checksums of decoded frames).
    pub bytes_in: u64,
    /// Payload bytes delivered (after decompression).
    pub bytes_out: u64,
    /// Frames that arrived compressed.
    pub compressed_frames: u64,
    /// Payload bytes the sender saved by compressing (`raw_len - wire_len`, summed).
    pub bytes_saved: u64,
}

impl FrameDecoder {
    /// Creates a decoder.
    pub fn new(config: DecoderConfig) -> Self {
        FrameDecoder {
            config,
            stats: DecoderStats::default(),
            state: State::Head,
            out: BytesMut::new(),
        }
    }

    /// Takes one complete frame off the front of `src` and returns its (decompressed)
    /// payload; `Ok(None)` when more bytes are needed.
    ///
    /// Consumes exactly the frame's bytes on success and nothing otherwise. Once the header
    /// has arrived and passed its checks, `src` is given room for the whole frame.
    ///
    /// # Errors
    ///
    /// Any violation of the frame rules, as a [`DecodeError`]; from then on every call
    /// returns [`DecodeError::Poisoned`].
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, DecodeError> {
        let result = self.decode_frame(src);
        if result.is_err() {
            self.poison();
        }
        result
    }

    /// Like [`decode`](Self::decode), for when the stream has ended: bytes left over that do
    /// not make a whole frame are an error.
    ///
    /// # Errors
    ///
    /// As [`decode`](Self::decode), and [`DecodeError::Truncated`] when `src` holds part of
    /// a frame.
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, DecodeError> {
        match self.decode(src)? {
            Some(payload) => Ok(Some(payload)),
            None if src.is_empty() => Ok(None),
            None => {
                self.poison();
                Err(DecodeError::Truncated {
                    buffered: src.len(),
                })
            }
        }
    }

    /// Accepts or refuses compressed frames from now on (accept once the handshake has
    /// agreed on LZ4).
    pub fn set_accept_compressed(&mut self, accept: bool) {
        self.config = self.config.clone().accept_compressed(accept);
    }

    /// Sets our message limit, clamped to [`MAX_MESSAGE`](crate::MAX_MESSAGE). A frame whose
    /// header has already been accepted is finished under the limit it was checked against.
    pub fn set_max_message(&mut self, max: u32) {
        self.config = self.config.clone().max_message(max);
    }

    /// The configuration in effect.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// The counters since the decoder was created.
    pub fn stats(&self) -> &DecoderStats {
        &self.stats
    }

    /// Whether an error has made the decoder refuse further input.
    pub fn is_poisoned(&self) -> bool {
        self.state == State::Poisoned
    }

    /// The total length (header, payload, checksum) of the frame being assembled, once its
    /// header has arrived and passed its checks; `None` between frames. Never more than
    /// `HEADER_LEN + max_message + 65_536 + CHECKSUM_LEN`.
    pub fn pending_frame_len(&self) -> Option<usize> {
        match self.state {
            State::Body(info) => Some(info.frame_len()),
            State::Head | State::Poisoned => None,
        }
    }

    fn poison(&mut self) {
        self.state = State::Poisoned;
        self.out = BytesMut::new();
    }

    fn decode_frame(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, DecodeError> {
        let info = match self.state {
            State::Poisoned => return Err(DecodeError::Poisoned),
            State::Body(info) => info,
            State::Head => match self.decode_header(src)? {
                Some(info) => {
                    self.state = State::Body(info);
                    info
                }
                None => return Ok(None),
            },
        };
        let frame_len = info.frame_len();
        if src.len() < frame_len {
            // frame_len was checked against the limit in decode_header.
            src.reserve(frame_len - src.len());
            return Ok(None);
        }

        // Check 3: the checksum over header and payload as received.
        // u32 -> usize is lossless on every supported target.
        let body_end = HEADER_LEN + info.wire_len as usize;
        let mut trailer = [0; CHECKSUM_LEN];
        trailer.copy_from_slice(&src[body_end..frame_len]);
        let expected = u64::from_be_bytes(trailer);
        let actual = xxh64(&src[..body_end], 0);
        if expected != actual {
            return Err(DecodeError::ChecksumMismatch { expected, actual });
        }

        // Check 4: raw_len, before decompressing.
        let max = self.config.max_message_bytes();
        if !info.compressed {
            if info.raw_len != 0 {
                return Err(DecodeError::RawLenNotZero {
                    raw_len: info.raw_len,
                });
            }
            let mut frame = src.split_to(frame_len);
            frame.advance(HEADER_LEN);
            frame.truncate(frame.len() - CHECKSUM_LEN);
            self.finish(info);
            return Ok(Some(frame.freeze()));
        }
        if info.raw_len == 0 {
            return Err(DecodeError::RawLenZero);
        }
        if info.raw_len > max {
            return Err(DecodeError::MessageTooLarge {
                len: info.raw_len,
                max,
            });
        }

        // Check 5: decompress into exactly raw_len bytes (checked just above).
        let raw_len = info.raw_len as usize;
        self.out.clear();
        self.out.resize(raw_len, 0);
        lz4f::decompress_into(&src[HEADER_LEN..body_end], &mut self.out).map_err(
            |fail| match fail {
                Fail::Lz4(source) => DecodeError::Decompress { source },
                Fail::Exceeded => DecodeError::RawLenExceeded {
                    raw_len: info.raw_len,
                },
                Fail::Mismatch { actual } => DecodeError::RawLenMismatch {
                    raw_len: info.raw_len,
                    actual,
                },
            },
        )?;
        src.advance(frame_len);
        self.finish(info);
        Ok(Some(self.out.split().freeze()))
    }

    /// Checks 1 and 2, each as soon as its bytes are there; `Some` once the header is whole.
    fn decode_header(&self, src: &BytesMut) -> Result<Option<FrameInfo>, DecodeError> {
        let Some(&flags) = src.first() else {
            return Ok(None);
        };
        // Check 1: reserved bits and codec.
        if flags & FLAGS_RESERVED != 0 {
            return Err(DecodeError::ReservedBits { flags });
        }
        let codec = (flags >> FLAGS_CODEC_SHIFT) & FLAGS_CODEC_MASK;
        let compressed = flags & FLAG_COMPRESSED != 0;
        if compressed {
            if codec != 0 {
                return Err(DecodeError::UnknownCodec { codec });
            }
            if !self.config.accepts_compressed() {
                return Err(DecodeError::CompressedNotAccepted);
            }
        } else if codec != 0 {
            return Err(DecodeError::CodecWithoutCompression { flags });
        }

        // Check 2: wire_len against the limit, before any payload is buffered.
        let Some(wire_len) = src.get(1..5) else {
            return Ok(None);
        };
        let wire_len = u32::from_be_bytes([wire_len[0], wire_len[1], wire_len[2], wire_len[3]]);
        if wire_len == 0 {
            return Err(DecodeError::EmptyFrame);
        }
        let max_message = self.config.max_message_bytes();
        // max_message <= MAX_MESSAGE (16 MiB), so adding the slack cannot overflow a u32.
        let max = if compressed {
            max_message + COMPRESSED_WIRE_SLACK
        } else {
            max_message
        };
        if wire_len > max {
            return Err(DecodeError::FrameTooLarge { len: wire_len, max });
        }

        let Some(raw_len) = src.get(5..HEADER_LEN) else {
            return Ok(None);
        };
        let raw_len = u32::from_be_bytes([raw_len[0], raw_len[1], raw_len[2], raw_len[3]]);
        Ok(Some(FrameInfo {
            wire_len,
            raw_len,
            compressed,
        }))
    }

    /// Records a decoded frame and gets ready for the next header.
    fn finish(&mut self, info: FrameInfo) {
        self.state = State::Head;
        let stats = &mut self.stats;
        stats.frames += 1;
        stats.bytes_in += info.frame_len() as u64;
        stats.bytes_out += u64::from(info.payload_len());
        if info.compressed {
            stats.compressed_frames += 1;
            stats.bytes_saved += u64::from(info.raw_len.saturating_sub(info.wire_len));
        }
    }
}
