//! Encoder and decoder configuration.

use crate::{DEFAULT_COMPRESSION_THRESHOLD, MAX_MESSAGE};

/// How a [`FrameEncoder`](crate::FrameEncoder) builds frames. Applies to encoding only.
///
/// # Examples
///
/// ```
/// use sarlink_wire::EncoderConfig;
///
/// let config = EncoderConfig::default().compression_threshold(4096).max_message(65_536);
/// assert_eq!(config.compression_threshold_bytes(), 4096);
/// assert_eq!(config.max_message_bytes(), 65_536);
/// assert!(config.is_compression_enabled());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderConfig {
    compression_threshold: usize,
    compression: bool,
    max_message: u32,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            compression_threshold: DEFAULT_COMPRESSION_THRESHOLD,
            compression: true,
            max_message: MAX_MESSAGE,
        }
    }
}

impl EncoderConfig {
    /// Payloads longer than this many bytes are compressed (when compression is enabled and
    /// the compressed form is smaller). Default: [`DEFAULT_COMPRESSION_THRESHOLD`] (1024).
    pub fn compression_threshold(mut self, bytes: usize) -> Self {
        self.compression_threshold = bytes;
        self
    }

    /// Whether payloads may be compressed at all. Default: `true`.
    ///
    /// The specification forbids compression before the handshake completes and unless the
    /// peer announced LZ4; the session layer switches it with
    /// [`FrameEncoder::set_compression`](crate::FrameEncoder::set_compression).
    pub fn compression(mut self, enabled: bool) -> Self {
        self.compression = enabled;
        self
    }

    /// The *peer's* message limit: longer payloads are refused with
    /// [`EncodeError::MessageTooLarge`](crate::EncodeError::MessageTooLarge). Default and
    /// ceiling: [`MAX_MESSAGE`] (16 MiB); larger values are clamped to it.
    pub fn max_message(mut self, peer_max: u32) -> Self {
        self.max_message = peer_max.min(MAX_MESSAGE);
        self
    }

    /// The compression threshold in bytes.
    pub fn compression_threshold_bytes(&self) -> usize {
        self.compression_threshold
    }

    /// Whether compression is enabled.
    pub fn is_compression_enabled(&self) -> bool {
        self.compression
    }

    /// The peer's message limit in bytes.
    pub fn max_message_bytes(&self) -> u32 {
        self.max_message
    }
}

/// What a [`FrameDecoder`](crate::FrameDecoder) accepts. Applies to decoding only.
///
/// # Examples
///
/// ```
/// use sarlink_wire::DecoderConfig;
///
/// let config = DecoderConfig::default();
/// assert!(!config.accepts_compressed(), "not before the handshake");
/// let config = config.accept_compressed(true).max_message(1 << 20);
/// assert!(config.accepts_compressed());
/// assert_eq!(config.max_message_bytes(), 1 << 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoderConfig {
    max_message: u32,
    accept_compressed: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            max_message: MAX_MESSAGE,
            accept_compressed: false,
        }
    }
}

impl DecoderConfig {
    /// Our message limit: a plain frame's `wire_len` and a compressed frame's `raw_len` may
    /// not exceed it, and a compressed frame's `wire_len` may exceed it by at most 65,536.
    /// Default and ceiling: [`MAX_MESSAGE`] (16 MiB); larger values are clamped to it.
    pub fn max_message(mut self, max: u32) -> Self {
        self.max_message = max.min(MAX_MESSAGE);
        self
    }

    /// Whether compressed frames are accepted. Default: `false`, because the specification
    /// allows them only after the handshake has agreed on LZ4; the session layer switches it
    /// with [`FrameDecoder::set_accept_compressed`](crate::FrameDecoder::set_accept_compressed).
    pub fn accept_compressed(mut self, accept: bool) -> Self {
        self.accept_compressed = accept;
        self
    }

    /// Our message limit in bytes.
    pub fn max_message_bytes(&self) -> u32 {
        self.max_message
    }

    /// Whether compressed frames are accepted.
    pub fn accepts_compressed(&self) -> bool {
        self.accept_compressed
    }
}
