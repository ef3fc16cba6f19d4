//! The protocol's messages (spec section 3.2).

use std::fmt;

use crate::types::{
    AckCode, FrequencyHz, Mac, NodeName, Nonce, ProtocolVersion, Role, RssiRecord, RssiUnits,
    SourceId, ValueError, WireCode,
};

/// `hello`: the client's first frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    /// The client's protocol version.
    pub version: ProtocolVersion,
    /// What the client is.
    pub role: Role,
    /// The client's node name.
    pub node: NodeName,
    /// Random per sender process; identifies a sample numbering (resumption).
    pub stream: u64,
    /// Compression codecs the client accepts, e.g. `["lz4"]`.
    pub compression: Vec<String>,
    /// Largest message the client accepts, in bytes (uncompressed).
    pub max_message: u32,
    /// The client's random nonce for authentication.
    pub nonce: Nonce,
    /// Units of the client's RSSI values; `None` (absent) means dBm.
    pub rssi_units: Option<RssiUnits>,
}

impl Hello {
    /// The units in force: `rssi_units`, or dBm when absent.
    pub fn effective_rssi_units(&self) -> RssiUnits {
        self.rssi_units.unwrap_or_default()
    }
}

/// `challenge`: the server's nonce, sent when it requires authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    /// The server's random nonce.
    pub nonce: Nonce,
}

/// `auth`: the client's proof of the pre-shared key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth {
    /// `HMAC-SHA256(key, "sarlink/1 client" || client_nonce || server_nonce)`.
    pub mac: Mac,
}

/// `welcome`: the server accepts the client; the handshake is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The agreed version.
    pub version: ProtocolVersion,
    /// The server's node name.
    pub node: NodeName,
    /// The agreed compression codecs.
    pub compression: Vec<String>,
    /// Largest message the server accepts, in bytes (uncompressed).
    pub max_message: u32,
    /// The next sample sequence number the server expects for the client's stream.
    pub resume_seq: u64,
    /// The server's proof of the key; present iff the client authenticated.
    pub mac: Option<Mac>,
    /// Units of the records the server streams to the client (`rssi_units`, protocol 1.1;
    /// absent: `dbm`, as in `hello`).
    pub rssi_units: Option<RssiUnits>,
}

/// `reject`: the server refuses the client, then closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Why, as a code.
    pub code: WireCode,
    /// Why, for humans.
    pub reason: String,
}

/// `rssi`: a batch of samples, numbered from `seq`.
///
/// Invariant: at least one sample (checked by [`Rssi::new`] and by the decoder).
#[derive(Debug, Clone, PartialEq)]
pub struct Rssi {
    seq: u64,
    samples: Vec<RssiRecord>,
}

impl Rssi {
    /// A batch whose first sample has sequence number `seq`.
    ///
    /// # Errors
    ///
    /// [`ValueError::NoSamples`] when `samples` is empty.
    pub fn new(seq: u64, samples: Vec<RssiRecord>) -> Result<Rssi, ValueError> {
        if samples.is_empty() {
            Err(ValueError::NoSamples)
        } else {
            Ok(Rssi { seq, samples })
        }
    }

    /// A batch of one sample.
    pub fn single(seq: u64, sample: RssiRecord) -> Rssi {
        Rssi {
            seq,
            samples: vec![sample],
        }
    }

    /// Sequence number of the first sample; sample `i` has `seq + i`.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The samples (never empty).
    pub fn samples(&self) -> &[RssiRecord] {
        &self.samples
    }

    /// The samples, by value (never empty).
    pub fn into_samples(self) -> Vec<RssiRecord> {
        self.samples
    }
}

/// `rx`: every sample below `seq` has been received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rx {
    /// First sequence number not yet received.
    pub seq: u64,
}

/// `ping`: liveness probe; answered with a [`Pong`] echoing both fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// The pinger's probe number.
    pub seq: u32,
    /// The pinger's clock, ns.
    pub t_ns: i64,
}

/// `pong`: the answer to a [`Ping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    /// Echoed from the ping.
    pub seq: u32,
    /// Echoed from the ping.
    pub t_ns: i64,
}

impl Ping {
    /// The matching answer.
    pub fn pong(self) -> Pong {
        Pong {
            seq: self.seq,
            t_ns: self.t_ns,
        }
    }
}

/// What a [`Cmd`] asks the drone to do, with the op's own keys.
#[derive(Debug, Clone, PartialEq)]
pub enum CmdOp {
    /// `tune`: move the receiver to `frequency_hz`.
    Tune {
        /// The new centre frequency.
        frequency_hz: FrequencyHz,
    },
    /// `gain`: set a fixed tuner gain.
    Gain {
        /// The gain, dB.
        gain_db: f32,
    },
    /// `gain_auto`: let the tuner choose its gain.
    GainAuto,
    /// `rate`: set the RSSI report rate.
    Rate {
        /// Reports per second.
        hz: f32,
    },
    /// `stream`: start or stop streaming samples.
    Stream {
        /// `true` to stream.
        on: bool,
    },
    /// An op this version does not know. Decoding keeps it (with the command's `id`) so the
    /// drone can answer `ack` with `ok: false` and [`AckCode::Unsupported`]; its own keys are
    /// not kept. Encoding writes only the op name.
    Unknown {
        /// The op's name as received.
        op: String,
    },
}

impl CmdOp {
    /// The op's wire name (`"tune"`, `"gain_auto"`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            CmdOp::Tune { .. } => "tune",
            CmdOp::Gain { .. } => "gain",
            CmdOp::GainAuto => "gain_auto",
            CmdOp::Rate { .. } => "rate",
            CmdOp::Stream { .. } => "stream",
            CmdOp::Unknown { op } => op,
        }
    }
}

/// `cmd`: a command for a drone, answered by an [`Ack`] with the same `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cmd {
    /// Correlates the [`Ack`].
    pub id: u32,
    /// The drone the command is for, when relayed by a ground station.
    pub target: Option<NodeName>,
    /// What to do.
    pub op: CmdOp,
}

/// `ack`: the answer to a [`Cmd`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The command's `id`.
    pub id: u32,
    /// Whether the command was carried out.
    pub ok: bool,
    /// Why not, as a code (`range`, `safety`, `busy`, `unsupported`, ...).
    pub code: Option<AckCode>,
    /// Why not, for humans.
    pub reason: Option<String>,
}

impl Ack {
    /// A successful answer to command `id`.
    pub fn ok(id: u32) -> Ack {
        Ack {
            id,
            ok: true,
            code: None,
            reason: None,
        }
    }

    /// A refusal of command `id`.
    pub fn refuse(id: u32, code: AckCode, reason: impl Into<String>) -> Ack {
        Ack {
            id,
            ok: false,
            code: Some(code),
            reason: Some(reason.into()),
        }
    }
}

/// `status`: the drone's health, about once a second.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// The drone's clock, ns since the Unix epoch.
    pub t_ns: i64,
    /// CPU use, percent.
    pub cpu_pct: f32,
    /// Memory in use, bytes.
    pub mem_bytes: u64,
    /// SoC temperature, degrees Celsius, if known.
    pub temp_c: Option<f32>,
    /// Degradation level, e.g. `"normal"`.
    pub level: String,
    /// Features switched off to shed load.
    pub disabled: Vec<String>,
    /// Samples dropped so far.
    pub dropped: u64,
    /// Samples waiting to be sent.
    pub queued: u32,
    /// Current RSSI report rate, Hz.
    pub rate_hz: f32,
    /// How the drone's receiver delivers (`source`, protocol 1.1): `streaming`, `stalled`,
    /// `reconnecting` (a network receiver), or `stale` (samples arrive late or slowly).
    pub source: Option<String>,
    /// Age of the newest samples the receiver delivered, ms (`data_age_ms`, protocol 1.1).
    pub data_age_ms: Option<u32>,
    /// The sender's active alerts (`alerts`, protocol 1.1), each `KIND:SEVERITY`, e.g.
    /// `link_rtt:critical`; empty when none is active (then the key is not sent).
    pub alerts: Vec<String>,
}

/// `decision`: which source the ground station's coordinator trusts, for observers.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The coordinator's clock, ns since the Unix epoch.
    pub t_ns: i64,
    /// The chosen source.
    pub source_id: SourceId,
    /// Whether this is a fallback (the preferred source is unavailable).
    pub fallback: bool,
    /// Why, for humans.
    pub reason: String,
    /// The drone source's score, if computed.
    pub score_drone: Option<f32>,
    /// The ground source's score, if computed.
    pub score_ground: Option<f32>,
}

/// `bye`: the sender is about to close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bye {
    /// Why, as a code.
    pub code: WireCode,
    /// Why, for humans.
    pub reason: String,
}

/// A message whose `type` this version does not know: receivers ignore and count it.
///
/// Only the type name is kept; encoding one writes a map holding just its `type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMessage {
    /// The `type` as received.
    pub type_name: String,
}

/// One protocol message: the payload of one frame.
///
/// Encode with [`Message::encode`], decode with [`Message::decode`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message {
    /// `hello`
    Hello(Hello),
    /// `challenge`
    Challenge(Challenge),
    /// `auth`
    Auth(Auth),
    /// `welcome`
    Welcome(Welcome),
    /// `reject`
    Reject(Reject),
    /// `rssi`
    Rssi(Rssi),
    /// `rx`
    Rx(Rx),
    /// `ping`
    Ping(Ping),
    /// `pong`
    Pong(Pong),
    /// `cmd`
    Cmd(Cmd),
    /// `ack`
    Ack(Ack),
    /// `status`
    Status(Status),
    /// `decision`
    Decision(Decision),
    /// `bye`
    Bye(Bye),
    /// A `type` this version does not know.
    Unknown(UnknownMessage),
}

/// The type of a [`Message`], without its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// `hello`
    Hello,
    /// `challenge`
    Challenge,
    /// `auth`
    Auth,
    /// `welcome`
    Welcome,
    /// `reject`
    Reject,
    /// `rssi`
    Rssi,
    /// `rx`
    Rx,
    /// `ping`
    Ping,
    /// `pong`
    Pong,
    /// `cmd`
    Cmd,
    /// `ack`
    Ack,
    /// `status`
    Status,
    /// `decision`
    Decision,
    /// `bye`
    Bye,
    /// A type this version does not know.
    Unknown,
}

impl MessageKind {
    /// Every known kind, in the spec's order (without `Unknown`).
    pub const KNOWN: [MessageKind; 14] = [
        MessageKind::Hello,
        MessageKind::Challenge,
        MessageKind::Auth,
        MessageKind::Welcome,
        MessageKind::Reject,
        MessageKind::Rssi,
        MessageKind::Rx,
        MessageKind::Ping,
        MessageKind::Pong,
        MessageKind::Cmd,
        MessageKind::Ack,
        MessageKind::Status,
        MessageKind::Decision,
        MessageKind::Bye,
    ];

    /// The wire `type` string; `"unknown"` for [`MessageKind::Unknown`].
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageKind::Hello => "hello",
            MessageKind::Challenge => "challenge",
            MessageKind::Auth => "auth",
            MessageKind::Welcome => "welcome",
            MessageKind::Reject => "reject",
            MessageKind::Rssi => "rssi",
            MessageKind::Rx => "rx",
            MessageKind::Ping => "ping",
            MessageKind::Pong => "pong",
            MessageKind::Cmd => "cmd",
            MessageKind::Ack => "ack",
            MessageKind::Status => "status",
            MessageKind::Decision => "decision",
            MessageKind::Bye => "bye",
            MessageKind::Unknown => "unknown",
        }
    }

    /// The kind for a wire `type` string; `None` for a type this version does not know.
    pub fn from_wire(type_name: &str) -> Option<MessageKind> {
        Some(match type_name {
            "hello" => MessageKind::Hello,
            "challenge" => MessageKind::Challenge,
            "auth" => MessageKind::Auth,
            "welcome" => MessageKind::Welcome,
            "reject" => MessageKind::Reject,
            "rssi" => MessageKind::Rssi,
            "rx" => MessageKind::Rx,
            "ping" => MessageKind::Ping,
            "pong" => MessageKind::Pong,
            "cmd" => MessageKind::Cmd,
            "ack" => MessageKind::Ack,
            "status" => MessageKind::Status,
            "decision" => MessageKind::Decision,
            "bye" => MessageKind::Bye,
            _ => return None,
        })
    }

    /// Whether the kind may travel before the handshake completes (spec section 4:
    /// `hello`, `challenge`, `auth`, `welcome`, `reject`, `bye`).
    pub const fn is_handshake(self) -> bool {
        matches!(
            self,
            MessageKind::Hello
                | MessageKind::Challenge
                | MessageKind::Auth
                | MessageKind::Welcome
                | MessageKind::Reject
                | MessageKind::Bye
        )
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Message {
    /// The message's kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Hello(_) => MessageKind::Hello,
            Message::Challenge(_) => MessageKind::Challenge,
            Message::Auth(_) => MessageKind::Auth,
            Message::Welcome(_) => MessageKind::Welcome,
            Message::Reject(_) => MessageKind::Reject,
            Message::Rssi(_) => MessageKind::Rssi,
            Message::Rx(_) => MessageKind::Rx,
            Message::Ping(_) => MessageKind::Ping,
            Message::Pong(_) => MessageKind::Pong,
            Message::Cmd(_) => MessageKind::Cmd,
            Message::Ack(_) => MessageKind::Ack,
            Message::Status(_) => MessageKind::Status,
            Message::Decision(_) => MessageKind::Decision,
            Message::Bye(_) => MessageKind::Bye,
            Message::Unknown(_) => MessageKind::Unknown,
        }
    }

    /// The wire `type` string; for an unknown message, the type as received.
    pub fn type_name(&self) -> &str {
        match self {
            Message::Unknown(u) => &u.type_name,
            other => other.kind().as_str(),
        }
    }
}

macro_rules! impl_from {
    ($($variant:ident),* $(,)?) => {
        $(
            impl From<$variant> for Message {
                fn from(m: $variant) -> Message {
                    Message::$variant(m)
                }
            }
        )*
    };
}

impl_from!(
    Hello, Challenge, Auth, Welcome, Reject, Rssi, Rx, Ping, Pong, Cmd, Ack, Status, Decision, Bye
);

impl From<UnknownMessage> for Message {
    fn from(m: UnknownMessage) -> Message {
        Message::Unknown(m)
    }
}
