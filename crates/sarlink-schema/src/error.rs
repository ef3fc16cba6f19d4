//! Errors of [`Message::decode`](crate::Message::decode).

use std::fmt;

use crate::CloseCode;

/// Why a payload is not a valid message. Every variant is a protocol error (spec section 3):
/// the receiver closes the connection, with `bye` or `reject` carrying
/// [`DecodeError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload does not start with a MessagePack map.
    #[error("payload is not a map (starts with {found})")]
    NotAMap {
        /// The kind of value found instead.
        found: &'static str,
    },
    /// The input ends inside a value, or a length (of a string, binary, array or map)
    /// claims more than the remaining input can hold.
    #[error("value at offset {offset} needs at least {needed} bytes but {available} remain")]
    Truncated {
        /// Offset of the value's first byte in the payload.
        offset: usize,
        /// The bytes its header claims (at least).
        needed: u64,
        /// The bytes left after its header.
        available: usize,
    },
    /// Bytes follow the message map.
    #[error("{count} bytes follow the message map")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// Arrays and maps nest deeper than [`MAX_DEPTH`](crate::MAX_DEPTH).
    #[error("values nest deeper than {max} levels at offset {offset}")]
    TooDeep {
        /// The limit.
        max: usize,
        /// Offset of the first value too deep.
        offset: usize,
    },
    /// The byte 0xc1, which MessagePack never uses.
    #[error("reserved byte 0xc1 at offset {offset}")]
    ReservedByte {
        /// Where.
        offset: usize,
    },
    /// A map key that is not a string.
    #[error("map key at offset {offset} is {found}, not a string")]
    NonStringKey {
        /// Where.
        offset: usize,
        /// The kind of value found instead.
        found: &'static str,
    },
    /// A required key is absent.
    #[error("`{message}` lacks required key `{field}`")]
    MissingField {
        /// The message (or `"rssi.samples"` for a record, `"payload"` for `type`).
        message: &'static str,
        /// The key.
        field: &'static str,
    },
    /// A key's value is of the wrong type, out of range, or repeated.
    #[error("invalid `{field}` in `{message}`: {problem}")]
    InvalidField {
        /// The message (or `"rssi.samples"` for a record, `"payload"` for `type`).
        message: &'static str,
        /// The key.
        field: &'static str,
        /// What is wrong with it.
        problem: FieldProblem,
    },
}

/// What is wrong with a field, in [`DecodeError::InvalidField`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldProblem {
    /// A value of another MessagePack type.
    WrongType {
        /// What the field takes (`"integer"`, `"float"`, `"string"`, ...).
        expected: &'static str,
        /// What was found.
        found: &'static str,
    },
    /// A value of the right type outside the field's range.
    OutOfRange {
        /// The range, in words (`"0-100"`, `"finite"`, `"16 bytes"`, ...).
        expected: &'static str,
    },
    /// A string that is not UTF-8.
    NotUtf8,
    /// The key appears twice in one map.
    Duplicate,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldProblem::WrongType { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            FieldProblem::OutOfRange { expected } => {
                write!(f, "out of range (expected {expected})")
            }
            FieldProblem::NotUtf8 => f.write_str("not valid UTF-8"),
            FieldProblem::Duplicate => f.write_str("key appears twice"),
        }
    }
}

impl DecodeError {
    /// The code to close the connection with: [`CloseCode::Role`] for a `hello` whose `role`
    /// is not one of the spec's, [`CloseCode::Protocol`] for everything else.
    pub fn close_code(&self) -> CloseCode {
        match self {
            DecodeError::InvalidField {
                message: "hello",
                field: "role",
                ..
            } => CloseCode::Role,
            _ => CloseCode::Protocol,
        }
    }

    /// The key the error is about, if it is about one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            DecodeError::MissingField { field, .. } | DecodeError::InvalidField { field, .. } => {
                Some(field)
            }
            _ => None,
        }
    }
}

impl From<&DecodeError> for CloseCode {
    fn from(err: &DecodeError) -> CloseCode {
        err.close_code()
    }
}
