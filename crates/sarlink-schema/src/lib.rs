#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod decode;
mod encode;
mod error;
mod frame;
mod message;
mod types;

pub use decode::MAX_DEPTH;
pub use encode::encode_rssi_batch;
pub use error::{DecodeError, FieldProblem};
pub use frame::{ReadError, decode_frame, encode_frame};
pub use message::{
    Ack, Auth, Bye, Challenge, Cmd, CmdOp, Decision, Hello, Message, MessageKind, Ping, Pong,
    Reject, Rssi, Rx, Status, UnknownMessage, Welcome,
};
/// The spec's close and reject codes, from `sarlink-wire`; see [`WireCode`] for the `code`
/// of a received `bye` or `reject`, which may also be unknown.
pub use sarlink_wire::CloseCode;
pub use types::{
    AckCode, BeaconFields, ClipFraction, Db, Dbm, FrequencyHz, Mac, NodeName, Nonce, OffsetHz,
    ProtocolVersion, QualityScore, Role, RssiRecord, RssiUnits, SourceId, ValueError, WireCode,
};
