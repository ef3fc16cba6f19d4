//! The close/reject codes of the protocol (spec section 3).

use std::fmt;

/// A `code` carried by a `reject` or `bye` message: why a connection is being closed.
///
/// Every frame-level error maps to one of these (see [`DecodeError::close_code`]); the
/// session layer sends it in `bye` before closing the connection.
///
/// [`DecodeError::close_code`]: crate::DecodeError::close_code
///
/// # Examples
///
/// ```
/// use sarlink_wire::CloseCode;
///
/// assert_eq!(CloseCode::TooLarge.as_str(), "too_large");
/// assert_eq!(CloseCode::from_wire("checksum"), Some(CloseCode::Checksum));
/// assert_eq!(CloseCode::from_wire("no_such_code"), None);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// `version`: the peer speaks a different major version.
    Version,
    /// `auth`: authentication failed or was required and missing.
    Auth,
    /// `role`: the announced role is not acceptable here.
    Role,
    /// `busy`: the endpoint cannot take another connection.
    Busy,
    /// `protocol`: a message or frame broke the protocol (bad flags, wrong message order...).
    Protocol,
    /// `too_large`: a frame or message exceeded the agreed limit.
    TooLarge,
    /// `checksum`: a frame's XXH64 checksum did not match.
    Checksum,
    /// `decompress`: a compressed payload failed to decompress to exactly `raw_len` bytes.
    Decompress,
    /// `timeout`: the peer did not answer in time.
    Timeout,
    /// `overload`: the endpoint is shedding load.
    Overload,
    /// `shutdown`: the endpoint is shutting down.
    Shutdown,
}

impl CloseCode {
    /// Every code, in the order the specification lists them.
    pub const ALL: [CloseCode; 11] = [
        CloseCode::Version,
        CloseCode::Auth,
        CloseCode::Role,
        CloseCode::Busy,
        CloseCode::Protocol,
        CloseCode::TooLarge,
        CloseCode::Checksum,
        CloseCode::Decompress,
        CloseCode::Timeout,
        CloseCode::Overload,
        CloseCode::Shutdown,
    ];

    /// The code as it is written on the wire, e.g. `"too_large"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CloseCode::Version => "version",
            CloseCode::Auth => "auth",
            CloseCode::Role => "role",
            CloseCode::Busy => "busy",
            CloseCode::Protocol => "protocol",
            CloseCode::TooLarge => "too_large",
            CloseCode::Checksum => "checksum",
            CloseCode::Decompress => "decompress",
            CloseCode::Timeout => "timeout",
            CloseCode::Overload => "overload",
            CloseCode::Shutdown => "shutdown",
        }
    }

    /// Parses a wire code; `None` for a code this version does not know (the specification
    /// says receivers treat an unknown code as a generic error).
    pub fn from_wire(s: &str) -> Option<CloseCode> {
        CloseCode::ALL.into_iter().find(|code| code.as_str() == s)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_round_trip_and_are_the_spec_list() {
        let wire: Vec<&str> = CloseCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            wire,
            [
                "version",
                "auth",
                "role",
                "busy",
                "protocol",
                "too_large",
                "checksum",
                "decompress",
                "timeout",
                "overload",
                "shutdown"
            ]
        );
        for code in CloseCode::ALL {
            assert_eq!(CloseCode::from_wire(code.as_str()), Some(code));
            assert_eq!(code.to_string(), code.as_str());
        }
        assert_eq!(CloseCode::from_wire("TOO_LARGE"), None);
        assert_eq!(CloseCode::from_wire(""), None);
    }
}
