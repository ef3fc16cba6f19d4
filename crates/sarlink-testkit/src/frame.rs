//! Bytes as a peer puts them on the wire, for tests that speak to a server by hand.

use bytes::BytesMut;
use sarlink_schema::Message;
use sarlink_wire::{EncoderConfig, FrameEncoder};

/// `message` encoded and framed as a sender would (default encoder: compressed when large).
///
/// # Panics
/// If the message does not fit a frame (tests build small ones).
pub fn frame(message: &Message) -> BytesMut {
    let mut payload = BytesMut::new();
    message.encode(&mut payload);
    let mut out = BytesMut::new();
    FrameEncoder::new(EncoderConfig::default())
        .encode(&payload, &mut out)
        .expect("a test message fits a frame");
    out
}
