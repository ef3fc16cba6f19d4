//! Why a session closes: one typed error per cause, mapped to the wire close code.

use sarlink_schema::{MessageKind, ProtocolVersion, Role};
use sarlink_wire::CloseCode;

use crate::stream::SequenceError;

/// The smallest `max_message` a peer may announce: 1 KiB. A smaller limit cannot carry a
/// `welcome`, a `status` or one `rssi` batch, so such a `hello` is refused with `protocol`.
pub const MIN_MAX_MESSAGE: u32 = 1024;

/// Why we closed a session (carried by [`CloseReason::Local`](crate::CloseReason::Local)).
///
/// Each variant maps to the close code sent in `bye` or `reject` through
/// `CloseCode::from(&error)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A frame could not be decoded (length, flags, checksum, decompression).
    #[error("bad frame: {0}")]
    Frame(#[from] sarlink_wire::DecodeError),
    /// A frame's payload is not a valid message.
    #[error("undecodable message: {0}")]
    Message(#[from] sarlink_schema::DecodeError),
    /// The server's first message was not `hello`.
    #[error("expected hello, got {0}")]
    ExpectedHello(MessageKind),
    /// After `challenge`, the client's next message was not `auth`.
    #[error("expected auth, got {0}")]
    ExpectedAuth(MessageKind),
    /// A message that has no place in the handshake.
    #[error("unexpected {0} during handshake")]
    UnexpectedInHandshake(MessageKind),
    /// A handshake message after the handshake.
    #[error("unexpected {0} after the handshake")]
    UnexpectedAfterHandshake(MessageKind),
    /// The peer speaks a major version we do not, or agreed a minor version above ours.
    #[error("version {theirs} is not supported (we speak {ours})")]
    Version {
        /// Our version.
        ours: ProtocolVersion,
        /// The peer's.
        theirs: ProtocolVersion,
    },
    /// The client announced a role this server does not accept.
    #[error("role {0} is not accepted here")]
    Role(Role),
    /// The peer's `max_message` is below [`MIN_MAX_MESSAGE`].
    #[error("max_message of {max_message} bytes is below the minimum of {min}")]
    MaxMessageTooSmall {
        /// What the peer announced.
        max_message: u32,
        /// The minimum.
        min: u32,
    },
    /// The server challenged us and we have no key.
    #[error("server requires a key and none is configured")]
    KeyRequired,
    /// The client's `auth` did not prove the pre-shared key.
    #[error("authentication failed")]
    AuthFailed,
    /// The server's `welcome` did not prove the pre-shared key.
    #[error("server did not prove the pre-shared key")]
    ServerNotAuthenticated,
    /// The server agreed a compression codec we did not offer.
    #[error("server agreed a codec we did not offer")]
    CodecNotOffered,
    /// A sequence number the peer cannot truthfully claim (see [`SequenceError`]).
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    /// The handshake did not complete within the handshake timeout.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// No frame arrived within the liveness timeout.
    #[error("no frame received within the liveness timeout")]
    LivenessTimeout,
    /// The application closed or refused the session with this code.
    #[error("{reason}")]
    Application {
        /// The code sent.
        code: CloseCode,
        /// The application's reason.
        reason: String,
    },
}

impl From<&SessionError> for CloseCode {
    fn from(e: &SessionError) -> CloseCode {
        match e {
            SessionError::Frame(e) => e.close_code(),
            SessionError::Message(e) => e.close_code(),
            SessionError::ExpectedHello(_)
            | SessionError::UnexpectedInHandshake(_)
            | SessionError::UnexpectedAfterHandshake(_)
            | SessionError::MaxMessageTooSmall { .. }
            | SessionError::CodecNotOffered
            | SessionError::Sequence(_) => CloseCode::Protocol,
            SessionError::ExpectedAuth(_)
            | SessionError::KeyRequired
            | SessionError::AuthFailed
            | SessionError::ServerNotAuthenticated => CloseCode::Auth,
            SessionError::Version { .. } => CloseCode::Version,
            SessionError::Role(_) => CloseCode::Role,
            SessionError::HandshakeTimeout | SessionError::LivenessTimeout => CloseCode::Timeout,
            SessionError::Application { code, .. } => *code,
        }
    }
}

impl SessionError {
    /// The close code this error is sent with (the same as `CloseCode::from(self)`).
    pub fn code(&self) -> CloseCode {
        CloseCode::from(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_wire_code() {
        let cases = [
            (
                SessionError::ExpectedHello(MessageKind::Ping),
                CloseCode::Protocol,
            ),
            (
                SessionError::ExpectedAuth(MessageKind::Ping),
                CloseCode::Auth,
            ),
            (SessionError::AuthFailed, CloseCode::Auth),
            (SessionError::Role(Role::Ground), CloseCode::Role),
            (
                SessionError::MaxMessageTooSmall {
                    max_message: 0,
                    min: MIN_MAX_MESSAGE,
                },
                CloseCode::Protocol,
            ),
            (
                SessionError::Sequence(SequenceError::TooFarAhead {
                    seq: 1_000_000_000_000_000,
                    expected: 0,
                    max_ahead: 65_536,
                }),
                CloseCode::Protocol,
            ),
            (SessionError::HandshakeTimeout, CloseCode::Timeout),
            (
                SessionError::Application {
                    code: CloseCode::Busy,
                    reason: "x".into(),
                },
                CloseCode::Busy,
            ),
            (
                SessionError::Frame(sarlink_wire::DecodeError::FrameTooLarge { len: 9, max: 1 }),
                CloseCode::TooLarge,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(CloseCode::from(&error), code, "{error}");
        }
    }
}
