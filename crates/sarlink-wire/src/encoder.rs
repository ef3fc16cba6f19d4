//! The frame encoder: payload bytes in, frames appended to a caller's buffer.

use bytes::{BufMut, BytesMut};
use xxhash_rust::xxh64::xxh64;

use crate::{EncodeError, EncoderConfig, FLAG_COMPRESSED, HEADER_LEN, lz4f};

/// Turns payloads into frames (spec section 2), appending them to a caller's `BytesMut`.
///
/// Sans-IO: it never touches a socket; write the buffer wherever the frames should go.
/// Reusing the destination buffer (and the encoder) makes plain frames allocation-free.
/// Compression keeps a scratch buffer inside the encoder that is reused across frames.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use sarlink_wire::{EncoderConfig, FrameEncoder};
///
/// let mut encoder = FrameEncoder::new(EncoderConfig::default());
/// let mut out = BytesMut::new();
/// let info = encoder.encode(b"hello", &mut out)?;
/// assert_eq!(info.wire_len, 5);
/// assert!(!info.compressed);
/// assert_eq!(out.len(), 9 + 5 + 8);
/// # Ok::<(), sarlink_wire::EncodeError>(())
/// ```
#[derive(Debug)]
pub struct FrameEncoder {
    config: EncoderConfig,
    stats: EncoderStats,
    /// Compression output, grown to the largest frame seen and reused.
    scratch: Vec<u8>,
}

/// Marks where [`FrameEncoder::begin_frame`] reserved a header; hand it to
/// [`FrameEncoder::finish_frame`].
#[derive(Debug)]
#[must_use = "pass the marker to FrameEncoder::finish_frame"]
pub struct FrameStart {
    offset: usize,
}

/// What a frame carries in its header, as written by the encoder or read by the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Payload bytes on the wire (after compression).
    pub wire_len: u32,
    /// The header's `raw_len`: the decompressed length of a compressed payload, 0 for a
    /// plain frame.
    pub raw_len: u32,
    /// Whether the payload was compressed.
    pub compressed: bool,
}

impl FrameInfo {
    /// The payload's length before compression (`raw_len` when compressed, else `wire_len`).
    pub fn payload_len(&self) -> u32 {
        if self.compressed {
            self.raw_len
        } else {
            self.wire_len
        }
    }

    /// The whole frame's length on the wire: header, payload and checksum.
    pub fn frame_len(&self) -> usize {
        // u32 -> usize is lossless on every supported (32/64-bit) target.
        crate::HEADER_LEN + self.wire_len as usize + crate::CHECKSUM_LEN
    }
}

/// Counters kept by a [`FrameEncoder`] since it was created.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EncoderStats {
    /// Frames encoded.
    pub frames: u64,
    /// Payload bytes taken in (before compression).
    pub bytes_in: u64,
    /// Frame bytes written out (headers, payloads and checksums).
    pub bytes_out: u64,
    /// Frames sent compressed.
    pub compressed_frames: u64,
    /// Payload bytes saved by compression (`raw_len - wire_len`, summed).
    pub bytes_saved: u64,
}

impl FrameEncoder {
    /// Creates an encoder.
    pub fn new(config: EncoderConfig) -> Self {
        FrameEncoder {
            config,
            stats: EncoderStats::default(),
            scratch: Vec::new(),
        }
    }

    /// Appends one frame carrying `payload` to `dst`.
    ///
    /// The payload is compressed when compression is enabled, it is longer than the
    /// threshold, and the compressed form is smaller.
    ///
    /// # Errors
    ///
    /// [`EncodeError::EmptyPayload`] for an empty payload and
    /// [`EncodeError::MessageTooLarge`] when it exceeds the peer's limit; `dst` is then left
    /// unchanged.
    pub fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<FrameInfo, EncodeError> {
        self.check(payload.len())?;
        let start = self.begin_frame(dst);
        dst.extend_from_slice(payload);
        self.finish_frame(dst, start)
    }

    /// Zero-copy path: reserves a header at the end of `dst`; append the payload to `dst`,
    /// then call [`finish_frame`](Self::finish_frame) with the returned marker.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::{BufMut, BytesMut};
    /// use sarlink_wire::{EncoderConfig, FrameEncoder};
    ///
    /// let mut encoder = FrameEncoder::new(EncoderConfig::default());
    /// let mut out = BytesMut::new();
    /// let start = encoder.begin_frame(&mut out);
    /// out.put_slice(b"serialized in place");
    /// let info = encoder.finish_frame(&mut out, start)?;
    /// assert_eq!(info.wire_len, 19);
    /// # Ok::<(), sarlink_wire::EncodeError>(())
    /// ```
    pub fn begin_frame(&self, dst: &mut BytesMut) -> FrameStart {
        let offset = dst.len();
        dst.put_bytes(0, HEADER_LEN);
        FrameStart { offset }
    }

    /// Fills in the header of the frame begun at `start`, compresses the payload (everything
    /// after the header) in place when worthwhile, and appends the checksum.
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode); `dst` is then truncated back to its length before
    /// [`begin_frame`](Self::begin_frame).
    ///
    /// # Panics
    ///
    /// If `dst` was shortened so that it no longer holds the header reserved at `start`.
    pub fn finish_frame(
        &mut self,
        dst: &mut BytesMut,
        start: FrameStart,
    ) -> Result<FrameInfo, EncodeError> {
        let offset = start.offset;
        let payload_start = offset + HEADER_LEN;
        assert!(
            dst.len() >= payload_start,
            "finish_frame: the buffer no longer holds the header reserved by begin_frame"
        );
        let len = dst.len() - payload_start;
        if let Err(err) = self.check(len) {
            dst.truncate(offset);
            return Err(err);
        }
        // check() bounds len by max_message <= MAX_MESSAGE (16 MiB): the u32 casts are lossless.
        let mut info = FrameInfo {
            wire_len: len as u32,
            raw_len: 0,
            compressed: false,
        };
        if self.config.is_compression_enabled() && len > self.config.compression_threshold_bytes() {
            if let Some(compressed_len) = lz4f::compress(&dst[payload_start..], &mut self.scratch) {
                dst.truncate(payload_start);
                dst.extend_from_slice(&self.scratch[..compressed_len]);
                // compress() only returns lengths below len: lossless as above.
                info = FrameInfo {
                    wire_len: compressed_len as u32,
                    raw_len: len as u32,
                    compressed: true,
                };
            }
        }
        let header = &mut dst[offset..payload_start];
        header[0] = if info.compressed { FLAG_COMPRESSED } else { 0 };
        header[1..5].copy_from_slice(&info.wire_len.to_be_bytes());
        header[5..9].copy_from_slice(&info.raw_len.to_be_bytes());
        let checksum = xxh64(&dst[offset..], 0);
        dst.put_u64(checksum);

        let stats = &mut self.stats;
        stats.frames += 1;
        stats.bytes_in += len as u64;
        stats.bytes_out += info.frame_len() as u64;
        if info.compressed {
            stats.compressed_frames += 1;
            stats.bytes_saved += u64::from(info.raw_len - info.wire_len);
        }
        Ok(info)
    }

    /// Enables or disables compression for the frames that follow (for example once the
    /// handshake has agreed on LZ4).
    pub fn set_compression(&mut self, enabled: bool) {
        self.config = self.config.clone().compression(enabled);
    }

    /// Sets the peer's message limit (from its handshake), clamped to [`MAX_MESSAGE`].
    ///
    /// [`MAX_MESSAGE`]: crate::MAX_MESSAGE
    pub fn set_max_message(&mut self, peer_max: u32) {
        self.config = self.config.clone().max_message(peer_max);
    }

    /// The configuration in effect.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// The counters since the encoder was created.
    pub fn stats(&self) -> &EncoderStats {
        &self.stats
    }

    fn check(&self, len: usize) -> Result<(), EncodeError> {
        let max = self.config.max_message_bytes();
        if len == 0 {
            Err(EncodeError::EmptyPayload)
        } else if u32::try_from(len).map_or(true, |len| len > max) {
            Err(EncodeError::MessageTooLarge { len, max })
        } else {
            Ok(())
        }
    }
}
