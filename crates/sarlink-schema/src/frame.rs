//! The join with `sarlink-wire`: a message straight into a frame, a frame straight into a
//! message.

use bytes::BytesMut;
use sarlink_wire::{EncodeError, FrameDecoder, FrameEncoder, FrameInfo};

use crate::{CloseCode, DecodeError, Message};

/// Why [`decode_frame`] could not produce a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The frame itself is bad (flags, length, checksum, decompression); the stream is
    /// untrustworthy and the decoder refuses further input.
    #[error("invalid frame")]
    Frame(#[from] sarlink_wire::DecodeError),
    /// The frame is sound but its payload is not a valid message. The stream is still in
    /// sync; the spec makes it a protocol error all the same.
    #[error("invalid message")]
    Message(#[from] DecodeError),
}

impl ReadError {
    /// The code to send in `bye` before closing.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ReadError::Frame(err) => err.close_code(),
            ReadError::Message(err) => err.close_code(),
        }
    }
}

impl From<&ReadError> for CloseCode {
    fn from(err: &ReadError) -> CloseCode {
        err.close_code()
    }
}

/// Appends one frame carrying `msg` to `dst`: the message is encoded straight after the
/// frame header [`FrameEncoder::begin_frame`] reserves, with no intermediate buffer, then
/// [`FrameEncoder::finish_frame`] checks the size, compresses when worthwhile and appends
/// the checksum.
///
/// # Errors
///
/// [`EncodeError::MessageTooLarge`] when the encoded message exceeds the peer's limit
/// configured in `encoder`; `dst` is then left as it was.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use sarlink_schema::{Message, Ping, decode_frame, encode_frame};
/// use sarlink_wire::{DecoderConfig, EncoderConfig, FrameDecoder, FrameEncoder};
///
/// let mut encoder = FrameEncoder::new(EncoderConfig::default());
/// let mut wire = BytesMut::new();
/// let ping = Message::Ping(Ping { seq: 7, t_ns: 1_700_000_000_123_456_789 });
/// let info = encode_frame(&ping, &mut encoder, &mut wire)?;
/// assert_eq!((info.wire_len, wire.len()), (30, 47));
///
/// let mut decoder = FrameDecoder::new(DecoderConfig::default());
/// assert_eq!(decode_frame(&mut decoder, &mut wire)?, Some(ping));
/// assert!(wire.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_frame(
    msg: &Message,
    encoder: &mut FrameEncoder,
    dst: &mut BytesMut,
) -> Result<FrameInfo, EncodeError> {
    let start = encoder.begin_frame(dst);
    msg.encode(dst);
    encoder.finish_frame(dst, start)
}

/// Takes one frame off the front of `src` and decodes its payload; `Ok(None)` when `src`
/// does not yet hold a whole frame.
///
/// # Errors
///
/// [`ReadError::Frame`] for a bad frame (the decoder is then poisoned),
/// [`ReadError::Message`] for a bad payload (the frame has been consumed). Both are
/// protocol errors: send `bye` with [`ReadError::close_code`] and close.
pub fn decode_frame(
    decoder: &mut FrameDecoder,
    src: &mut BytesMut,
) -> Result<Option<Message>, ReadError> {
    match decoder.decode(src)? {
        Some(payload) => Ok(Some(Message::decode(&payload)?)),
        None => Ok(None),
    }
}
