//! The sans-IO session state machine (spec sections 4 and 5).
//!
//! A [`Session`] is one end of one connection. It owns no socket and reads no clock: the
//! driver passes received bytes and the current time in, and takes bytes to send, events
//! and the next deadline out.
//!
//! # Call order
//!
//! 1. Create with [`Session::client`] or [`Session::server`].
//! 2. Loop:
//!    - bytes arrived: [`Session::handle_input`];
//!    - the deadline from [`Session::poll_timeout`] passed: [`Session::handle_timeout`];
//!    - drain [`Session::poll_event`] until `None`; on the server, answer
//!      [`Event::HelloReceived`] with [`Session::accept`] or [`Session::reject`];
//!    - when the socket can take more: [`Session::poll_transmit`] and write what it appended.
//! 3. Stop when [`Session::is_closed`] is true and everything transmitted has been written.
//!
//! A client that loses its connection keeps its unacknowledged samples: call
//! [`Session::reconnect`] on the new connection and it resumes from the server's
//! `welcome.resume_seq`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::rtt::{RttStats, RttWindow};
use bytes::{Bytes, BytesMut};
use sarlink_schema::{
    Ack, Auth, Bye, Challenge, Cmd, Decision, Hello, Mac, Message, MessageKind, NodeName, Nonce,
    Ping, Pong, ProtocolVersion, Reject, Role, Rssi, RssiRecord, RssiUnits, Rx, Status, Welcome,
    WireCode,
};
use sarlink_wire::{CloseCode, DecoderConfig, EncoderConfig, FrameDecoder, FrameEncoder};

use crate::auth::NONCE_LEN;
use crate::config::SessionConfig;
use crate::error::{MIN_MAX_MESSAGE, SessionError};
use crate::queue::{Priority, SendQueue};
use crate::rate::{CongestionAdvisor, LinkObservation, TokenBucket};
use crate::stream::{Receiver, SampleLog};

/// The only compression codec of protocol 1.0.
const LZ4: &str = "lz4";
/// The most bytes one RSSI record takes in canonical MessagePack (every optional key
/// present, every integer at its widest): keys 76 bytes, values at most 46, map header 1.
const MAX_RECORD_BYTES: usize = 128;
/// Most pings and pongs waiting to be sent.
const MAX_LIVENESS_PENDING: usize = 16;
/// `poll_transmit` stops appending once this many bytes are waiting.
const TRANSMIT_BUDGET: usize = 256 * 1024;
/// A round-trip measurement rides with other frames from `ping_interval` minus this
/// fraction of it (a tenth: a drone at 10 Hz measures about once a second).
const PING_EARLY: u32 = 10;

/// Health of an established link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// Frames arrive and RTT is low.
    Healthy,
    /// Silent for a while or slow (see [`SessionConfig::degraded_after`] and
    /// [`SessionConfig::rtt_degraded`]).
    Degraded,
    /// Silent for the liveness timeout; the session closes.
    Lost,
}

/// What the peer told us in `hello` (server side).
#[derive(Debug, Clone, PartialEq)]
pub struct PeerHello {
    /// The peer's node name.
    pub node: NodeName,
    /// The peer's role.
    pub role: Role,
    /// The peer's sample stream id.
    pub stream: u64,
    /// The version both will use.
    pub version: ProtocolVersion,
    /// Units of the peer's RSSI values.
    pub rssi_units: RssiUnits,
    /// Whether the peer proved the pre-shared key.
    pub authenticated: bool,
}

/// Why a session closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// We closed it (by [`Session::close`] or [`Session::reject`], a protocol error, or a
    /// timeout); `CloseCode::from(&error)` is the code sent in `bye` or `reject`.
    Local(SessionError),
    /// The peer sent `bye`.
    PeerBye {
        /// The peer's code (unknown codes are kept as text).
        code: WireCode,
        /// The peer's reason.
        reason: String,
    },
    /// The server sent `reject`.
    Rejected {
        /// The server's code.
        code: WireCode,
        /// The server's reason.
        reason: String,
    },
}

impl CloseReason {
    /// The close code involved: ours, the peer's or the server's (`None` for a peer code
    /// this version does not know).
    pub fn code(&self) -> Option<CloseCode> {
        match self {
            CloseReason::Local(e) => Some(CloseCode::from(e)),
            CloseReason::PeerBye { code, .. } | CloseReason::Rejected { code, .. } => {
                code.close_code()
            }
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Local(e) => write!(f, "{e}"),
            CloseReason::PeerBye { code, reason } => write!(f, "peer said bye ({code}): {reason}"),
            CloseReason::Rejected { code, reason } => write!(f, "rejected ({code}): {reason}"),
        }
    }
}

/// Something the application should know or act on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Server: a client said `hello` (and proved the key, if one is configured). Answer with
    /// [`Session::accept`] and the next sequence number expected for its stream, or
    /// [`Session::reject`].
    HelloReceived(PeerHello),
    /// The handshake completed.
    Connected {
        /// The peer's node name.
        peer: NodeName,
        /// The agreed version.
        version: ProtocolVersion,
        /// Whether LZ4 was agreed.
        compression: bool,
        /// Client: where the server asked us to resume our samples. Server: where we told
        /// the client to resume.
        resume_seq: u64,
    },
    /// Samples of the peer's stream, each delivered once, in order.
    Samples {
        /// Sequence number of the first record.
        seq: u64,
        /// The records.
        records: Vec<RssiRecord>,
        /// Sequence numbers skipped just before `seq` (the sender dropped them).
        gap: u64,
    },
    /// A command for us.
    Command(Cmd),
    /// The answer to one of our commands.
    Ack(Ack),
    /// The peer's health report.
    Status(Status),
    /// A coordinator decision.
    Decision(Decision),
    /// A round-trip time measured by one of our pings.
    Rtt(Duration),
    /// The link's health changed.
    LinkState(LinkState),
    /// Congestion advice: report RSSI at this rate.
    AdviseRate(f32),
    /// The session is closed; transmit what is pending and close the socket.
    Closed(CloseReason),
}

/// Messages the application may not send itself (the session does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The session is not established (or already closed).
    #[error("session is not established")]
    NotEstablished,
    /// The session sends this message type itself.
    #[error("{0} messages are sent by the session itself")]
    Reserved(MessageKind),
    /// The encoded message is larger than the peer accepts.
    #[error("message of {len} bytes exceeds the peer's limit of {max}")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// The peer's `max_message`.
        max: u32,
    },
}

/// Counters of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Messages received with a `type` we do not know (ignored).
    pub unknown_messages: u64,
    /// Messages sent.
    pub messages_out: u64,
    /// Messages received.
    pub messages_in: u64,
    /// `rssi` messages sent.
    pub rssi_messages_out: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

#[derive(Debug)]
enum State {
    /// Client: `hello` queued, waiting for `challenge`, `welcome` or `reject`.
    ClientAwaitWelcome {
        challenged: Option<Nonce>,
    },
    /// Server: waiting for `hello`.
    ServerAwaitHello,
    /// Server: `challenge` sent, waiting for `auth`.
    ServerAwaitAuth {
        hello: Box<Hello>,
        server_nonce: Nonce,
    },
    /// Server: waiting for the application's `accept`/`reject`.
    ServerAwaitAccept {
        hello: Box<Hello>,
        server_nonce: Option<Nonce>,
    },
    Established,
    /// Closing: the final frame is queued; nothing more is read or sent.
    Closed,
}

/// One end of one sarlink connection.
#[derive(Debug)]
pub struct Session {
    side: Side,
    config: SessionConfig,
    state: State,
    nonce: Nonce,
    epoch: Instant,
    started: Instant,
    encoder: FrameEncoder,
    decoder: FrameDecoder,
    /// The final frame payload (`bye` or `reject`), sent before anything else.
    final_frame: Option<Bytes>,
    /// Set once the session has closed (by either side); nothing is said after that.
    closing: bool,
    queue: SendQueue,
    scratch: BytesMut,
    events: VecDeque<Event>,
    /// Pings and pongs the session owes, encoded at transmit time (no allocation).
    liveness_out: VecDeque<Message>,
    samples: SampleLog<RssiRecord>,
    receiver: Option<Receiver>,
    rx_sent: u64,
    rx_due: Option<Instant>,
    /// When the last `rx` was written: confirmations keep to the `rx` cadence from there.
    rx_last: Option<Instant>,
    /// With `confirm_delivery`: every sample below this was confirmed by the application.
    confirmed: u64,
    peer_node: Option<NodeName>,
    /// Client: units of the samples the server streams (from `welcome`).
    peer_rssi_units: RssiUnits,
    last_recv: Instant,
    /// When a frame was last written once established (or when the session was
    /// established): a ping goes out alone only after `ping_interval` of silence.
    last_sent: Instant,
    /// When the next round-trip measurement is due: from `ping_interval` minus
    /// [`PING_EARLY`] of it, a ping rides with whatever else is written.
    next_ping: Instant,
    ping_seq: u32,
    ping_outstanding: Option<Ping>,
    last_rtt: Option<Duration>,
    rtt: RttWindow,
    /// Round trips of this connection only: what congestion advice compares.
    link_rtt: RttWindow,
    link_state: LinkState,
    bucket: Option<TokenBucket>,
    congestion: CongestionAdvisor,
    stats: SessionStats,
}

impl Session {
    /// A client session: `hello` is queued at once. `nonce` must be fresh random bytes.
    pub fn client(config: SessionConfig, now: Instant, nonce: [u8; NONCE_LEN]) -> Self {
        let mut s = Self::new(Side::Client, config, now, nonce);
        s.start_client();
        s
    }

    /// A server session for a freshly accepted connection. `nonce` must be fresh random
    /// bytes (used for the `challenge`).
    pub fn server(config: SessionConfig, now: Instant, nonce: [u8; NONCE_LEN]) -> Self {
        Self::new(Side::Server, config, now, nonce)
    }

    fn new(side: Side, config: SessionConfig, now: Instant, nonce: [u8; NONCE_LEN]) -> Self {
        let encoder = FrameEncoder::new(
            EncoderConfig::default()
                .compression(false)
                .compression_threshold(config.compression_threshold),
        );
        let decoder = FrameDecoder::new(
            DecoderConfig::default()
                .max_message(config.max_message)
                .accept_compressed(false),
        );
        let bucket = config
            .bandwidth_cap
            .map(|rate| TokenBucket::new(rate, rate.max(64 * 1024), now));
        Self {
            side,
            state: if side == Side::Client {
                State::ClientAwaitWelcome { challenged: None }
            } else {
                State::ServerAwaitHello
            },
            nonce: Nonce(nonce),
            epoch: now,
            started: now,
            encoder,
            decoder,
            final_frame: None,
            closing: false,
            queue: SendQueue::new(config.queue_bytes),
            // Grown on first use: a server holds a session per connection in the handshake,
            // which must stay small (the server driver's memory bound).
            scratch: BytesMut::new(),
            events: VecDeque::new(),
            liveness_out: VecDeque::new(),
            samples: SampleLog::new(config.sample_ring),
            receiver: None,
            rx_sent: 0,
            rx_due: None,
            rx_last: None,
            confirmed: 0,
            peer_node: None,
            peer_rssi_units: RssiUnits::Dbm,
            last_recv: now,
            last_sent: now,
            next_ping: now + config.ping_interval,
            ping_seq: 0,
            ping_outstanding: None,
            last_rtt: None,
            rtt: RttWindow::default(),
            link_rtt: RttWindow::default(),
            link_state: LinkState::Healthy,
            bucket,
            congestion: CongestionAdvisor::new(config.congestion.clone()),
            stats: SessionStats::default(),
            config,
        }
    }

    fn start_client(&mut self) {
        let hello = Hello {
            version: self.config.version,
            role: self.config.role,
            node: self.config.node.clone(),
            stream: self.config.stream,
            compression: if self.config.compression {
                vec![LZ4.to_owned()]
            } else {
                Vec::new()
            },
            max_message: self.config.max_message,
            nonce: self.nonce,
            rssi_units: self.config.rssi_units,
        };
        self.enqueue(Priority::Control, &Message::Hello(hello));
    }

    /// Client: starts over on a new connection, keeping the unacknowledged samples (they are
    /// resent from the server's `resume_seq`). `nonce` must be fresh random bytes.
    ///
    /// # Panics
    /// When called on a server session.
    pub fn reconnect(&mut self, now: Instant, nonce: [u8; NONCE_LEN]) {
        assert_eq!(self.side, Side::Client, "only a client reconnects");
        let samples = std::mem::replace(&mut self.samples, SampleLog::new(1));
        let stats = self.stats;
        let rtt = self.rtt.clone();
        let congestion = self.congestion.clone();
        *self = Self::new(Side::Client, self.config.clone(), now, nonce);
        self.samples = samples;
        self.stats = stats;
        self.rtt = rtt;
        self.congestion = congestion;
        self.start_client();
    }

    // ---------------------------------------------------------------- application API

    /// Appends a sample to our stream and returns its sequence number. It is sent as soon
    /// as the connection can take it, and kept until acknowledged.
    pub fn push_sample(&mut self, record: RssiRecord) -> u64 {
        self.samples.push(record)
    }

    /// Queues a message for the peer: `cmd`, `ack`, `status` or `decision`. Samples go through
    /// [`push_sample`](Self::push_sample) (relayed ones too), so every `rssi` the peer sees is
    /// numbered in our stream and acknowledged; handshake, liveness, `rx` and `bye` are the
    /// session's own.
    ///
    /// # Errors
    /// [`SendError`] when not established, for the session's own message types, or when the
    /// message is larger than the peer accepts.
    pub fn send(&mut self, message: &Message) -> Result<(), SendError> {
        if !matches!(self.state, State::Established) {
            return Err(SendError::NotEstablished);
        }
        let class = match message.kind() {
            MessageKind::Cmd | MessageKind::Ack => Priority::Control,
            MessageKind::Status | MessageKind::Decision => Priority::Telemetry,
            kind => return Err(SendError::Reserved(kind)),
        };
        self.scratch.clear();
        message.encode(&mut self.scratch);
        let max = self.encoder.config().max_message_bytes();
        if self.scratch.len() > max as usize {
            return Err(SendError::TooLarge {
                len: self.scratch.len(),
                max,
            });
        }
        let payload = self.scratch.split().freeze();
        self.queue.push(class, payload);
        Ok(())
    }

    /// Closes on purpose: `bye` with `code` is sent, then the session is closed.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        self.fail(SessionError::Application {
            code,
            reason: reason.to_owned(),
        });
    }

    /// Server: accepts the client announced by [`Event::HelloReceived`], telling it to
    /// resume its samples at `resume_seq`, for a stream that is new or was heard just now.
    /// Does nothing in any other state. See [`accept_resumed`](Self::accept_resumed).
    pub fn accept(&mut self, resume_seq: u64, now: Instant) {
        self.accept_resumed(resume_seq, now, now);
    }

    /// Server: like [`accept`](Self::accept), for a stream whose position last moved at
    /// `heard`. The longer it was silent, the further its sender's ring may have run past
    /// `resume_seq`: the sample window grows by
    /// [`SessionConfig::max_sample_rate`] for each second since `heard`.
    pub fn accept_resumed(&mut self, resume_seq: u64, heard: Instant, now: Instant) {
        let State::ServerAwaitAccept {
            hello,
            server_nonce,
        } = std::mem::replace(&mut self.state, State::Established)
        else {
            return;
        };
        let version = agreed_version(self.config.version, hello.version);
        let lz4 = self.config.compression && hello.compression.iter().any(|c| c == LZ4);
        let mac = server_nonce.map(|sn| {
            let key = self.config.key.as_ref().expect("challenge implies a key");
            Mac(key.server_mac(&hello.nonce.0, &sn.0))
        });
        let welcome = Welcome {
            version,
            node: self.config.node.clone(),
            compression: if lz4 {
                vec![LZ4.to_owned()]
            } else {
                Vec::new()
            },
            max_message: self.config.max_message,
            resume_seq,
            mac,
            rssi_units: self.config.rssi_units,
        };
        self.enqueue(Priority::Control, &Message::Welcome(welcome));
        self.establish(
            hello.node.clone(),
            version,
            lz4,
            hello.max_message,
            resume_seq,
            now,
        );
        self.receiver = Some(
            Receiver::starting_at(resume_seq)
                .with_max_ahead(self.config.max_seq_ahead)
                .with_growth(self.config.max_sample_rate, heard),
        );
        self.confirmed = resume_seq;
    }

    /// Receiver side, with [`SessionConfig::confirm_delivery`]: the application has made
    /// every received sample below `upto` safe (written it), so `rx` may acknowledge them.
    /// Values beyond what was received are capped there; smaller values than an earlier call
    /// change nothing.
    pub fn confirm(&mut self, upto: u64, now: Instant) {
        let received = self.receiver.map_or(0, |r| r.expected());
        let upto = upto.min(received);
        if upto > self.confirmed {
            self.confirmed = upto;
            if self.rx_due.is_none() {
                // At most one `rx` of its own per interval: a confirmation that follows an
                // `rx` (the application writes what that `rx` could not yet cover) waits for
                // the next turn of the cadence, or rides earlier with any other frame.
                let next = self
                    .rx_last
                    .map_or(now, |t| (t + self.config.rx_interval).max(now));
                self.rx_due = Some(next);
            }
        }
    }

    /// Server: refuses the client announced by [`Event::HelloReceived`] with `reject`.
    pub fn reject(&mut self, code: CloseCode, reason: &str) {
        if matches!(
            self.state,
            State::ServerAwaitAccept { .. } | State::ServerAwaitHello
        ) {
            self.send_reject(SessionError::Application {
                code,
                reason: reason.to_owned(),
            });
        }
    }

    fn establish(
        &mut self,
        peer: NodeName,
        version: ProtocolVersion,
        lz4: bool,
        peer_max: u32,
        resume_seq: u64,
        now: Instant,
    ) {
        self.encoder.set_compression(lz4);
        self.encoder.set_max_message(peer_max);
        self.decoder.set_accept_compressed(lz4);
        self.peer_node = Some(peer.clone());
        self.next_ping = now + self.config.ping_interval;
        self.last_sent = now;
        self.congestion.link_up();
        self.events.push_back(Event::Connected {
            peer,
            version,
            compression: lz4,
            resume_seq,
        });
    }

    // ---------------------------------------------------------------- driver API

    /// Feeds received bytes. Complete frames are taken off the front of `src`; a partial
    /// frame stays for the next call.
    pub fn handle_input(&mut self, now: Instant, src: &mut BytesMut) {
        while !self.is_closed() {
            match self.decoder.decode(src) {
                Ok(Some(payload)) => {
                    self.last_recv = now;
                    self.stats.messages_in += 1;
                    match Message::decode(&payload) {
                        Ok(message) => self.handle_message(now, message),
                        Err(e) => self.fail(e.into()),
                    }
                }
                Ok(None) => break,
                Err(e) => self.fail(e.into()),
            }
        }
        self.update_link_state(now);
    }

    fn handle_message(&mut self, now: Instant, message: Message) {
        if let Message::Unknown(_) = message {
            self.stats.unknown_messages += 1;
            return;
        }
        if let Message::Bye(Bye { code, reason }) = message {
            self.state = State::Closed;
            self.closing = true;
            self.events
                .push_back(Event::Closed(CloseReason::PeerBye { code, reason }));
            return;
        }
        match std::mem::replace(&mut self.state, State::Closed) {
            State::ClientAwaitWelcome { challenged } => {
                self.client_handshake(now, challenged, message)
            }
            State::ServerAwaitHello => self.server_hello(message),
            State::ServerAwaitAuth {
                hello,
                server_nonce,
            } => self.server_auth(hello, server_nonce, message),
            State::ServerAwaitAccept {
                hello,
                server_nonce,
            } => {
                self.state = State::ServerAwaitAccept {
                    hello,
                    server_nonce,
                };
                self.fail(SessionError::UnexpectedInHandshake(message.kind()));
            }
            State::Established => {
                self.state = State::Established;
                self.established_message(now, message);
            }
            State::Closed => {}
        }
    }

    fn client_handshake(&mut self, now: Instant, challenged: Option<Nonce>, message: Message) {
        self.state = State::ClientAwaitWelcome { challenged };
        match message {
            Message::Challenge(Challenge { nonce }) if challenged.is_none() => {
                let Some(key) = &self.config.key else {
                    return self.fail(SessionError::KeyRequired);
                };
                let mac = Mac(key.client_mac(&self.nonce.0, &nonce.0));
                self.state = State::ClientAwaitWelcome {
                    challenged: Some(nonce),
                };
                self.enqueue(Priority::Control, &Message::Auth(Auth { mac }));
            }
            Message::Welcome(welcome) => {
                if welcome.version.major != self.config.version.major
                    || welcome.version.minor > self.config.version.minor
                {
                    return self.fail(SessionError::Version {
                        ours: self.config.version,
                        theirs: welcome.version,
                    });
                }
                if welcome.max_message < MIN_MAX_MESSAGE {
                    return self.fail(SessionError::MaxMessageTooSmall {
                        max_message: welcome.max_message,
                        min: MIN_MAX_MESSAGE,
                    });
                }
                if let Some(key) = &self.config.key {
                    let proven = match (challenged, &welcome.mac) {
                        (Some(sn), Some(mac)) => key.verify_server(&self.nonce.0, &sn.0, &mac.0),
                        _ => false,
                    };
                    if !proven {
                        return self.fail(SessionError::ServerNotAuthenticated);
                    }
                }
                let offered = self.config.compression;
                if welcome.compression.iter().any(|c| c != LZ4 || !offered) {
                    return self.fail(SessionError::CodecNotOffered);
                }
                if let Err(e) = self.samples.resume(welcome.resume_seq) {
                    return self.fail(e.into());
                }
                self.state = State::Established;
                self.peer_rssi_units = welcome.rssi_units.unwrap_or_default();
                let lz4 = !welcome.compression.is_empty();
                self.establish(
                    welcome.node,
                    welcome.version,
                    lz4,
                    welcome.max_message,
                    welcome.resume_seq,
                    now,
                );
            }
            Message::Reject(Reject { code, reason }) => {
                self.state = State::Closed;
                self.closing = true;
                self.events
                    .push_back(Event::Closed(CloseReason::Rejected { code, reason }));
            }
            other => self.fail(SessionError::UnexpectedInHandshake(other.kind())),
        }
    }

    fn server_hello(&mut self, message: Message) {
        self.state = State::ServerAwaitHello;
        let Message::Hello(hello) = message else {
            return self.send_reject(SessionError::ExpectedHello(message.kind()));
        };
        if hello.version.major != self.config.version.major {
            return self.send_reject(SessionError::Version {
                ours: self.config.version,
                theirs: hello.version,
            });
        }
        if hello.max_message < MIN_MAX_MESSAGE {
            return self.send_reject(SessionError::MaxMessageTooSmall {
                max_message: hello.max_message,
                min: MIN_MAX_MESSAGE,
            });
        }
        if !self.config.accept_roles.contains(&hello.role) {
            return self.send_reject(SessionError::Role(hello.role));
        }
        let hello = Box::new(hello);
        if self.config.key.is_some() {
            let server_nonce = self.nonce;
            self.enqueue(
                Priority::Control,
                &Message::Challenge(Challenge {
                    nonce: server_nonce,
                }),
            );
            self.state = State::ServerAwaitAuth {
                hello,
                server_nonce,
            };
        } else {
            self.hello_received(hello, None);
        }
    }

    fn server_auth(&mut self, hello: Box<Hello>, server_nonce: Nonce, message: Message) {
        let Message::Auth(Auth { mac }) = message else {
            return self.send_reject(SessionError::ExpectedAuth(message.kind()));
        };
        let key = self.config.key.as_ref().expect("auth state implies a key");
        if key.verify_client(&hello.nonce.0, &server_nonce.0, &mac.0) {
            self.hello_received(hello, Some(server_nonce));
        } else {
            self.send_reject(SessionError::AuthFailed);
        }
    }

    fn hello_received(&mut self, hello: Box<Hello>, server_nonce: Option<Nonce>) {
        self.events.push_back(Event::HelloReceived(PeerHello {
            node: hello.node.clone(),
            role: hello.role,
            stream: hello.stream,
            version: agreed_version(self.config.version, hello.version),
            rssi_units: hello.effective_rssi_units(),
            authenticated: server_nonce.is_some(),
        }));
        self.state = State::ServerAwaitAccept {
            hello,
            server_nonce,
        };
    }

    fn established_message(&mut self, now: Instant, message: Message) {
        match message {
            Message::Rssi(rssi) => self.receive_samples(now, rssi),
            Message::Rx(Rx { seq }) => {
                if let Err(e) = self.samples.ack(seq) {
                    self.fail(e.into());
                }
            }
            Message::Ping(ping) => {
                // Bounded: a peer flooding pings gets its newest ones answered.
                if self.liveness_out.len() == MAX_LIVENESS_PENDING {
                    self.liveness_out.pop_front();
                }
                self.liveness_out.push_back(Message::Pong(ping.pong()));
            }
            Message::Pong(pong) => self.receive_pong(now, pong),
            Message::Cmd(cmd) => self.events.push_back(Event::Command(cmd)),
            Message::Ack(ack) => self.events.push_back(Event::Ack(ack)),
            Message::Status(status) => self.events.push_back(Event::Status(status)),
            Message::Decision(decision) => self.events.push_back(Event::Decision(decision)),
            other => self.fail(SessionError::UnexpectedAfterHandshake(other.kind())),
        }
    }

    fn receive_samples(&mut self, now: Instant, rssi: Rssi) {
        let seq = rssi.seq();
        let max_ahead = self.config.max_seq_ahead;
        let receiver = self
            .receiver
            .get_or_insert_with(|| Receiver::starting_at(seq).with_max_ahead(max_ahead));
        let accepted = match receiver.accept(seq, rssi.samples().len(), now) {
            Ok(a) => a,
            // Nothing was counted: the position stays, the samples reach no one.
            Err(e) => return self.fail(e.into()),
        };
        if accepted.count > 0 {
            let mut records = rssi.into_samples();
            records.truncate(accepted.skip + accepted.count);
            records.drain(..accepted.skip);
            self.events.push_back(Event::Samples {
                seq: accepted.seq,
                records,
                gap: accepted.gap,
            });
        }
        if self.rx_due.is_none() {
            self.rx_due = Some(now + self.config.rx_interval);
        }
    }

    fn receive_pong(&mut self, now: Instant, pong: Pong) {
        let Some(ping) = self.ping_outstanding else {
            return;
        };
        if pong.seq != ping.seq || pong.t_ns != ping.t_ns {
            return; // a stale or forged answer: ignore it
        }
        self.ping_outstanding = None;
        let sent = self.epoch + Duration::from_nanos(u64::try_from(ping.t_ns).unwrap_or(0));
        let rtt = now.saturating_duration_since(sent);
        self.last_rtt = Some(rtt);
        self.rtt.record(rtt);
        self.link_rtt.record(rtt);
        self.events.push_back(Event::Rtt(rtt));
    }

    /// Runs timers: handshake timeout, pings, liveness, `rx` progress, congestion advice.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        if !matches!(self.state, State::Established) {
            if now.saturating_duration_since(self.started) >= self.config.handshake_timeout {
                if self.side == Side::Server {
                    self.send_reject(SessionError::HandshakeTimeout);
                } else {
                    self.fail(SessionError::HandshakeTimeout);
                }
            }
            return;
        }
        if now.saturating_duration_since(self.last_recv) >= self.config.liveness_timeout {
            self.set_link_state(LinkState::Lost);
            return self.fail(SessionError::LivenessTimeout);
        }
        if now >= self.last_sent + self.config.ping_interval {
            // Nothing written for a whole interval: the ping goes alone (liveness).
            let ping = self.start_ping(now);
            if self.liveness_out.len() == MAX_LIVENESS_PENDING {
                self.liveness_out.pop_front();
            }
            self.liveness_out.push_back(Message::Ping(ping));
            self.last_sent = now;
        }
        self.update_link_state(now);
    }

    /// A new `ping` measuring the round trip from `now` (now the outstanding one); also
    /// re-evaluates the congestion advice (once per ping: percentiles are not free).
    fn start_ping(&mut self, now: Instant) -> Ping {
        self.ping_seq = self.ping_seq.wrapping_add(1);
        // ns since the session's epoch on our monotonic clock; fits i64 for 292 years.
        let t_ns =
            i64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(i64::MAX);
        let ping = Ping {
            seq: self.ping_seq,
            t_ns,
        };
        self.ping_outstanding = Some(ping);
        self.next_ping = now + self.config.ping_interval;
        // Only this connection's round trips: a ping never spans a reconnect, and the
        // baseline is this path's own fastest.
        let snapshot = self.link_rtt.stats();
        let link = LinkObservation {
            backlog: usize::try_from(self.samples.backlog()).unwrap_or(usize::MAX),
            queueing: (snapshot.count > 0).then(|| snapshot.p95.saturating_sub(snapshot.min)),
        };
        if let Some(rate) = self.congestion.observe(now, link) {
            self.events.push_back(Event::AdviseRate(rate));
        }
        ping
    }

    /// The `rx` to send now, if it would acknowledge anything new.
    fn rx_progress(&self) -> Option<u64> {
        let confirmed = self.confirmed;
        let confirm = self.config.confirm_delivery;
        self.receiver
            .map(|r| {
                if confirm {
                    r.expected().min(confirmed)
                } else {
                    r.expected()
                }
            })
            .filter(|e| *e > self.rx_sent)
    }

    /// Writes `rx` with `expected` and restarts the `rx` cadence.
    fn write_rx(&mut self, now: Instant, expected: u64, out: &mut BytesMut) {
        self.rx_due = None;
        self.rx_sent = expected;
        self.rx_last = Some(now);
        self.write_message(&Message::Rx(Rx { seq: expected }), out);
    }

    fn update_link_state(&mut self, now: Instant) {
        if !matches!(self.state, State::Established) {
            return;
        }
        let silent = now.saturating_duration_since(self.last_recv);
        let slow = self.last_rtt.is_some_and(|r| r > self.config.rtt_degraded);
        let state = if silent >= self.config.degraded_after || slow {
            LinkState::Degraded
        } else {
            LinkState::Healthy
        };
        self.set_link_state(state);
    }

    fn set_link_state(&mut self, state: LinkState) {
        if state != self.link_state {
            self.link_state = state;
            self.events.push_back(Event::LinkState(state));
        }
    }

    /// The earliest time [`handle_timeout`](Self::handle_timeout) has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        if !matches!(self.state, State::Established) {
            return Some(self.started + self.config.handshake_timeout);
        }
        let mut t = (self.last_sent + self.config.ping_interval)
            .min(self.last_recv + self.config.liveness_timeout);
        if self.link_state == LinkState::Healthy {
            t = t.min(self.last_recv + self.config.degraded_after);
        }
        if let Some(rx) = self.rx_due {
            t = t.min(rx);
        }
        if let Some(wait) = self.bucket_wait() {
            t = t.min(wait);
        }
        Some(t)
    }

    /// When the bandwidth cap holds back pending data, the time it lets data through again.
    fn bucket_wait(&self) -> Option<Instant> {
        let bucket = self.bucket.as_ref()?;
        let pending = self.samples.backlog() > 0 || !self.queue.is_empty();
        pending.then(|| bucket.ready_at())
    }

    /// Appends frames ready to send to `out`: the closing frame first, then control, data
    /// (our samples, coalesced into `rssi` batches, and `rx`), then telemetry. Returns the
    /// number of bytes appended.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut BytesMut) -> usize {
        let start = out.len();
        if let Some(payload) = self.final_frame.take() {
            self.write_frame(&payload, out);
            return out.len() - start;
        }
        if matches!(self.state, State::Closed) {
            return 0;
        }
        while out.len() - start < TRANSMIT_BUDGET {
            // Control first: never held back by the bandwidth cap.
            if matches!(self.state, State::Established) {
                if let Some(message) = self.liveness_out.pop_front() {
                    self.write_message(&message, out);
                    continue;
                }
            }
            if self.queue.peek_class() == Some(Priority::Control) {
                let (_, payload) = self.queue.pop().expect("peeked");
                self.write_frame(&payload, out);
                continue;
            }
            if !matches!(self.state, State::Established) {
                break;
            }
            if self.rx_due.is_some_and(|due| due <= now) {
                self.rx_due = None;
                if let Some(expected) = self.rx_progress() {
                    self.write_rx(now, expected, out);
                    continue;
                }
            }
            if self.bucket.as_mut().is_some_and(|b| !b.has_tokens(now)) {
                break;
            }
            let before = out.len();
            if self.samples.backlog() > 0 {
                self.write_sample_batch(out);
            } else if let Some((_, payload)) = self.queue.pop() {
                self.write_frame(&payload, out);
            } else {
                break;
            }
            if let Some(bucket) = &mut self.bucket {
                bucket.consume(out.len() - before);
            }
        }
        if out.len() > start && matches!(self.state, State::Established) {
            self.ride_along(now, out);
            self.last_sent = now;
        }
        out.len() - start
    }

    /// Something is being written anyway: a round-trip measurement that is (nearly) due and
    /// an `rx` with anything new ride with it, costing the connection no write of their own.
    fn ride_along(&mut self, now: Instant, out: &mut BytesMut) {
        if now + self.config.ping_interval / PING_EARLY >= self.next_ping {
            let ping = self.start_ping(now);
            self.write_message(&Message::Ping(ping), out);
        }
        if let Some(expected) = self.rx_progress() {
            self.write_rx(now, expected, out);
        }
    }

    fn write_sample_batch(&mut self, out: &mut BytesMut) {
        // Keep each batch under the peer's `max_message`: a record encodes to at most
        // MAX_RECORD_BYTES and the message head to under 32 bytes.
        let peer_max = self.encoder.config().max_message_bytes() as usize;
        let fits = peer_max.saturating_sub(32) / MAX_RECORD_BYTES;
        if fits == 0 {
            // Unreachable after a handshake (both sides refuse a max_message below 1 KiB),
            // kept so a batch can never be built for a limit it cannot fit.
            return self.fail(SessionError::MaxMessageTooSmall {
                max_message: self.encoder.config().max_message_bytes(),
                min: MIN_MAX_MESSAGE,
            });
        }
        let Some((seq, records)) = self.samples.take_batch(self.config.batch_max.min(fits)) else {
            return;
        };
        // Encoded straight from the ring into the frame: no copy, no allocation.
        let start = self.encoder.begin_frame(out);
        sarlink_schema::encode_rssi_batch(seq, records, out);
        match self.encoder.finish_frame(out, start) {
            Ok(_) => {
                self.stats.messages_out += 1;
                self.stats.rssi_messages_out += 1;
            }
            Err(e) => tracing::warn!(error = %e, "dropping an rssi batch"),
        }
    }

    /// Frames `message` straight into `out`.
    fn write_message(&mut self, message: &Message, out: &mut BytesMut) {
        match sarlink_schema::encode_frame(message, &mut self.encoder, out) {
            Ok(_) => self.stats.messages_out += 1,
            Err(e) => tracing::warn!(error = %e, "dropping an outgoing message"),
        }
    }

    fn write_frame(&mut self, payload: &[u8], out: &mut BytesMut) {
        match self.encoder.encode(payload, out) {
            Ok(_) => self.stats.messages_out += 1,
            // Our own messages are checked against the peer's limit before queueing; an rssi
            // batch that outgrew a tiny peer limit is dropped rather than sent.
            Err(e) => tracing::warn!(error = %e, "dropping an outgoing message"),
        }
    }

    fn enqueue(&mut self, class: Priority, message: &Message) {
        self.scratch.clear();
        message.encode(&mut self.scratch);
        let payload = self.scratch.split().freeze();
        self.queue.push(class, payload);
    }

    /// Closes with `bye`: the final frame, then nothing more.
    fn fail(&mut self, error: SessionError) {
        let bye = Message::Bye(Bye {
            code: CloseCode::from(&error).into(),
            reason: error.to_string(),
        });
        self.close_with(&bye, error);
    }

    /// Refuses a client with `reject` (server side, during the handshake).
    fn send_reject(&mut self, error: SessionError) {
        let reject = Message::Reject(Reject {
            code: CloseCode::from(&error).into(),
            reason: error.to_string(),
        });
        self.close_with(&reject, error);
    }

    fn close_with(&mut self, last: &Message, error: SessionError) {
        if std::mem::replace(&mut self.closing, true) {
            return;
        }
        self.scratch.clear();
        last.encode(&mut self.scratch);
        self.final_frame = Some(self.scratch.split().freeze());
        self.state = State::Closed;
        self.events
            .push_back(Event::Closed(CloseReason::Local(error)));
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether the session has closed (its final frame may still await
    /// [`poll_transmit`](Self::poll_transmit)).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether the handshake has completed and the session is open.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established)
    }

    /// Whether a closing frame still waits to be transmitted.
    pub fn has_final_frame(&self) -> bool {
        self.final_frame.is_some()
    }

    /// Client: units of the samples the server streams to us (its `welcome.rssi_units`;
    /// dBm when it did not say).
    pub fn peer_rssi_units(&self) -> RssiUnits {
        self.peer_rssi_units
    }

    /// The peer's node name, once the handshake completed.
    pub fn peer(&self) -> Option<&NodeName> {
        self.peer_node.as_ref()
    }

    /// The current link health.
    pub fn link_state(&self) -> LinkState {
        self.link_state
    }

    /// Round-trip times measured by our pings.
    pub fn rtt(&self) -> RttStats {
        self.rtt.stats()
    }

    /// Our sample stream's counters (produced, resent, dropped...).
    pub fn sender_stats(&self) -> &crate::stream::SenderStats {
        self.samples.stats()
    }

    /// The peer's sample stream as we received it (delivered, duplicates, gaps).
    pub fn receiver(&self) -> Option<&Receiver> {
        self.receiver.as_ref()
    }

    /// Our samples kept for resending: sent or not, not yet acknowledged by `rx`.
    pub fn unacked(&self) -> usize {
        self.samples.unacked()
    }

    /// Samples produced but not yet transmitted on this connection.
    pub fn backlog(&self) -> u64 {
        self.samples.backlog()
    }

    /// Send-queue drop counters.
    pub fn queue_stats(&self) -> &crate::queue::QueueStats {
        self.queue.stats()
    }

    /// Session counters.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }
}

fn agreed_version(ours: ProtocolVersion, theirs: ProtocolVersion) -> ProtocolVersion {
    ProtocolVersion {
        major: ours.major,
        minor: ours.minor.min(theirs.minor),
    }
}
