//! A deterministic two-endpoint harness for [`sarlink_link::Session`] (after quinn-proto's
//! `Pair`): a client and a server session joined by an in-memory network, driven with an
//! injected clock, whose transmissions can be split into small chunks or lost in either
//! direction. No sockets, no threads, no sleeps: a test runs the same way every time.
//!
//! # Call order
//! 1. [`Pair::new`] (or [`Pair::connected`], which also runs the handshake and asserts it
//!    succeeded). Adjust [`Pair::chunking`], [`Pair::c2s_up`] / [`Pair::s2c_up`] at any time.
//! 2. Act on either session through the public fields ([`Pair::client`],
//!    [`Pair::server`]): push samples, send messages, close.
//! 3. [`Pair::drive`] to exchange bytes at the current instant until both sides are
//!    quiet, or [`Pair::advance`] to move the clock on (running timers) and drive.
//! 4. Inspect what happened: [`Pair::client_events`], [`Pair::server_events`],
//!    [`Pair::delivered`], and the raw bytes each side wrote ([`Pair::c2s_log`],
//!    [`Pair::s2c_log`]).
//!
//! The harness plays the server's application: it accepts every `hello` at the resume
//! position it has recorded for that node and stream, so [`Pair::reconnect`] shows what a
//! drone resends after a lost connection.
//!
//! # Examples
//! ```
//! use std::time::Duration;
//! use sarlink_link::SessionConfig;
//! use sarlink_schema::{NodeName, Role};
//! use sarlink_testkit::pair::{Chunking, Pair};
//!
//! let client = SessionConfig::new(Role::Drone, NodeName::new("drone-1").unwrap(), 7);
//! let server = SessionConfig::new(Role::Ground, NodeName::new("ground").unwrap(), 8);
//! let mut p = Pair::connected(client, server);
//! p.chunking = Chunking::Bytes(3); // deliver everything 3 bytes at a time
//! for i in 0..10 {
//!     p.client.push_sample(sarlink_testkit::record(i));
//! }
//! p.drive();
//! // The link dies: what the client sends meanwhile is lost, then it reconnects.
//! p.c2s_up = false;
//! for i in 10..20 {
//!     p.client.push_sample(sarlink_testkit::record(i));
//! }
//! p.advance(Duration::from_millis(100));
//! p.reconnect();
//! let seqs: Vec<u64> = p.delivered().iter().map(|(seq, _)| *seq).collect();
//! assert_eq!(seqs, (0..20).collect::<Vec<_>>(), "every sample exactly once");
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sarlink_link::{Event, Session, SessionConfig};
use sarlink_schema::RssiRecord;

/// The largest step [`Pair::advance`] moves the clock by before running timers and traffic.
pub const CLOCK_STEP: Duration = Duration::from_millis(10);

/// How the network hands a transmission to the receiving session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chunking {
    /// Each transmission in one piece.
    #[default]
    Whole,
    /// Each transmission split into pieces of this many bytes (the last may be shorter),
    /// each handed over separately, as a TCP receiver may see them. Must not be 0.
    Bytes(usize),
}

/// A client and a server [`Session`] joined by an in-memory network with a shared, injected
/// clock; see the [module documentation](self) for the call order.
///
/// The client is created with nonce `[1; 16]` and the server with `[2; 16]`; a
/// [`reconnect`](Pair::reconnect) uses `[3; 16]` and `[4; 16]`.
#[derive(Debug)]
pub struct Pair {
    /// The client (drone) end.
    pub client: Session,
    /// The server (ground) end.
    pub server: Session,
    /// The shared clock: every input to either session is stamped with it. Only
    /// [`advance`](Pair::advance) or the test moves it.
    pub now: Instant,
    /// Every event the client emitted, oldest first.
    pub client_events: Vec<Event>,
    /// Every event the server emitted, oldest first (across reconnections).
    pub server_events: Vec<Event>,
    /// How transmissions are handed over. Default [`Chunking::Whole`].
    pub chunking: Chunking,
    /// While false, what the client transmits is lost (still logged in `c2s_log`).
    pub c2s_up: bool,
    /// While false, what the server transmits is lost (still logged in `s2c_log`).
    pub s2c_up: bool,
    /// Every byte the client transmitted, delivered or not.
    pub c2s_log: Vec<u8>,
    /// Every byte the server transmitted, delivered or not.
    pub s2c_log: Vec<u8>,
    /// When each client transmission (one `poll_transmit` that wrote bytes: one socket
    /// write in a driver) happened and its length, in `c2s_log` order.
    pub c2s_writes: Vec<(Instant, usize)>,
    /// The same for the server's transmissions.
    pub s2c_writes: Vec<(Instant, usize)>,
    /// The configuration of the server session, reused by [`reconnect`](Pair::reconnect).
    server_config: SessionConfig,
    /// Next expected seq per (node, stream) and when it last moved, as a server
    /// application keeps them across connections.
    resume: HashMap<(String, u64), (u64, Instant)>,
    /// The (node, stream) the current server session accepted.
    accepted: Option<(String, u64)>,
    c2s_in: BytesMut,
    s2c_in: BytesMut,
}

impl Pair {
    /// A pair at the start of its handshake: nothing has been sent yet.
    pub fn new(client: SessionConfig, server: SessionConfig) -> Self {
        let now = Instant::now();
        Pair {
            client: Session::client(client, now, [1; 16]),
            server: Session::server(server.clone(), now, [2; 16]),
            now,
            client_events: Vec::new(),
            server_events: Vec::new(),
            chunking: Chunking::Whole,
            c2s_up: true,
            s2c_up: true,
            c2s_log: Vec::new(),
            s2c_log: Vec::new(),
            c2s_writes: Vec::new(),
            s2c_writes: Vec::new(),
            server_config: server,
            resume: HashMap::new(),
            accepted: None,
            c2s_in: BytesMut::new(),
            s2c_in: BytesMut::new(),
        }
    }

    /// A pair that has completed its handshake (driven at the initial instant).
    ///
    /// # Panics
    /// If either side is not established afterwards (e.g. the configurations' keys,
    /// versions or roles do not fit).
    pub fn connected(client: SessionConfig, server: SessionConfig) -> Self {
        let mut p = Self::new(client, server);
        p.drive();
        assert!(
            p.client.is_established() && p.server.is_established(),
            "handshake failed: client {:?}, server {:?}",
            p.client_events,
            p.server_events
        );
        p
    }

    fn deliver(
        chunking: Chunking,
        bytes: &[u8],
        inbuf: &mut BytesMut,
        to: &mut Session,
        now: Instant,
    ) {
        match chunking {
            Chunking::Whole => {
                inbuf.extend_from_slice(bytes);
                to.handle_input(now, inbuf);
            }
            Chunking::Bytes(n) => {
                for chunk in bytes.chunks(n) {
                    inbuf.extend_from_slice(chunk);
                    to.handle_input(now, inbuf);
                }
            }
        }
    }

    /// Exchanges bytes and events at [`now`](Pair::now) until neither side has anything
    /// more to transmit or report. Accepts every `hello` the server reports.
    ///
    /// # Panics
    /// If the sessions are still talking after 10,000 rounds (a livelock).
    pub fn drive(&mut self) {
        for _ in 0..10_000 {
            let mut progressed = false;
            let mut out = BytesMut::new();
            if self.client.poll_transmit(self.now, &mut out) > 0 {
                progressed = true;
                self.c2s_log.extend_from_slice(&out);
                self.c2s_writes.push((self.now, out.len()));
                if self.c2s_up {
                    Self::deliver(
                        self.chunking,
                        &out,
                        &mut self.c2s_in,
                        &mut self.server,
                        self.now,
                    );
                }
            }
            out.clear();
            if self.server.poll_transmit(self.now, &mut out) > 0 {
                progressed = true;
                self.s2c_log.extend_from_slice(&out);
                self.s2c_writes.push((self.now, out.len()));
                if self.s2c_up {
                    Self::deliver(
                        self.chunking,
                        &out,
                        &mut self.s2c_in,
                        &mut self.client,
                        self.now,
                    );
                }
            }
            while let Some(e) = self.server.poll_event() {
                progressed = true;
                if let Event::HelloReceived(hello) = &e {
                    let key = (hello.node.as_str().to_owned(), hello.stream);
                    let (seq, heard) = self.resume.get(&key).copied().unwrap_or((0, self.now));
                    self.accepted = Some(key);
                    self.server.accept_resumed(seq, heard, self.now);
                }
                if let (Event::Samples { seq, records, .. }, Some(key)) = (&e, &self.accepted) {
                    self.resume
                        .insert(key.clone(), (seq + records.len() as u64, self.now));
                }
                self.server_events.push(e);
            }
            while let Some(e) = self.client.poll_event() {
                progressed = true;
                self.client_events.push(e);
            }
            if !progressed {
                return;
            }
        }
        panic!("sessions never went quiet");
    }

    /// Moves the clock forward by `by` in steps of at most [`CLOCK_STEP`], running both
    /// sessions' timers and [`drive`](Pair::drive) after each step.
    pub fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while self.now < end {
            self.now = (self.now + CLOCK_STEP).min(end);
            self.client.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
            self.drive();
        }
    }

    /// A new connection for the same client (same stream, same unacknowledged samples) to
    /// a fresh server session with the original configuration, which resumes from the
    /// position recorded for the client's node and stream. Both directions are up again
    /// and bytes in flight are discarded; then [`drive`](Pair::drive).
    pub fn reconnect(&mut self) {
        self.client.reconnect(self.now, [3; 16]);
        self.server = Session::server(self.server_config.clone(), self.now, [4; 16]);
        self.accepted = None;
        self.c2s_in.clear();
        self.s2c_in.clear();
        self.c2s_up = true;
        self.s2c_up = true;
        self.drive();
    }

    /// Every sample the server has delivered so far (across reconnections), with its
    /// sequence number, in delivery order.
    pub fn delivered(&self) -> Vec<(u64, RssiRecord)> {
        let mut v = Vec::new();
        for e in &self.server_events {
            if let Event::Samples { seq, records, .. } = e {
                v.extend(
                    records
                        .iter()
                        .enumerate()
                        .map(|(i, r)| (seq + i as u64, *r)),
                );
            }
        }
        v
    }
}
