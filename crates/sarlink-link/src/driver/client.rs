//! The blocking client: connects, reconnects with exponential backoff, resumes its samples.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use sarlink_pool::BufferPool;
use sarlink_schema::{
    Ack, Cmd, Decision, Message, NodeName, ProtocolVersion, RssiRecord, RssiUnits, Status,
};

use super::conn::{self, Command, Disconnect, IoOp, SocketOptions};
use crate::SessionConfig;
use crate::session::{Event, LinkState, Session};
use crate::tls::ClientTls;

/// Reconnection delays: `initial`, doubling up to `max`, each scaled by a random factor in
/// `1 - jitter ..= 1 + jitter` so a fleet does not reconnect in lockstep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// First delay. Default 100 ms.
    pub initial: Duration,
    /// Largest delay. Default 5 s.
    pub max: Duration,
    /// Relative jitter, 0 to 1. Default 0.2.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay before attempt `failures + 1`, given a uniform random `u` in 0..1.
    pub fn delay(&self, failures: u32, u: f64) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << failures.min(20))
            .min(self.max);
        let factor = 1.0 + self.jitter.clamp(0.0, 1.0) * (2.0 * u.clamp(0.0, 1.0) - 1.0);
        base.mul_f64(factor)
    }
}

/// Configuration of a [`Client`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The session (role, node, stream, key, limits, timers).
    pub session: SessionConfig,
    /// Where the server is, `host:port`.
    pub server: String,
    /// Give up one connection attempt after this. Default 2 s.
    pub connect_timeout: Duration,
    /// Reconnection delays.
    pub backoff: Backoff,
    /// A server that does not take our bytes for this long is dropped. Default 5 s.
    pub write_timeout: Duration,
    /// Samples and messages that may wait for the client thread (the channel's slots are
    /// allocated up front). Default 1024: 100 s of samples at 10 Hz.
    pub command_capacity: usize,
    /// TLS 1.3 with our fleet certificate, checking the server's certificate and name.
    /// Default: none (the session's bytes go over TCP as they are).
    pub tls: Option<ClientTls>,
}

impl ClientConfig {
    /// Defaults for a session and a server address.
    pub fn new(session: SessionConfig, server: impl Into<String>) -> Self {
        Self {
            session,
            server: server.into(),
            connect_timeout: Duration::from_secs(2),
            backoff: Backoff::default(),
            write_timeout: Duration::from_secs(5),
            command_capacity: 1024,
            tls: None,
        }
    }
}

/// What happens to a [`Client`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The handshake completed.
    Connected {
        /// The server's node name.
        peer: NodeName,
        /// The agreed version.
        version: ProtocolVersion,
        /// Where the server asked us to resume; samples from there on are (re)sent.
        resume_seq: u64,
        /// Units of the samples the server streams to us ([`ClientEvent::Samples`]).
        rssi_units: RssiUnits,
    },
    /// The connection ended (or could not be made); the next attempt is in `retry_in`.
    Disconnected {
        /// Why (its `code()` is the close code involved, if any).
        cause: Disconnect,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
    /// The link's health changed.
    LinkState(LinkState),
    /// A round-trip time measured by our pings.
    Rtt(Duration),
    /// A command for us (answer with [`Client::send`] of an `ack`).
    Command(Cmd),
    /// The answer to a command we sent.
    Ack(Ack),
    /// A health report from the server.
    Status(Status),
    /// A coordinator decision from the server.
    Decision(Decision),
    /// Samples the server relayed to us.
    Samples {
        /// Sequence number of the first record.
        seq: u64,
        /// The records.
        records: Vec<RssiRecord>,
    },
    /// Congestion advice: report RSSI at this rate.
    AdviseRate(f32),
}

impl ClientEvent {
    /// What a session event of a client's connection tells the application; `None` for
    /// the events a client driver handles itself (`Closed`, which becomes
    /// [`ClientEvent::Disconnected`] with the driver's retry delay) or never sees
    /// (`HelloReceived`). For drivers of one's own over [`Session`].
    pub fn from_session(event: Event, session: &Session) -> Option<ClientEvent> {
        Some(match event {
            Event::Connected {
                peer,
                version,
                resume_seq,
                ..
            } => ClientEvent::Connected {
                peer,
                version,
                resume_seq,
                rssi_units: session.peer_rssi_units(),
            },
            Event::LinkState(s) => ClientEvent::LinkState(s),
            Event::Rtt(r) => ClientEvent::Rtt(r),
            Event::Command(c) => ClientEvent::Command(c),
            Event::Ack(a) => ClientEvent::Ack(a),
            Event::Status(s) => ClientEvent::Status(s),
            Event::Decision(d) => ClientEvent::Decision(d),
            Event::Samples { seq, records, .. } => ClientEvent::Samples { seq, records },
            Event::AdviseRate(r) => ClientEvent::AdviseRate(r),
            Event::HelloReceived(_) | Event::Closed(_) => return None,
        })
    }
}

/// Counters of a [`Client`], updated by its thread while it runs; read them with
/// [`ClientCounters::snapshot`].
#[derive(Debug, Default)]
pub struct ClientCounters {
    samples_produced: AtomicU64,
    samples_refused: AtomicU64,
    samples_resent: AtomicU64,
    samples_dropped: AtomicU64,
    backlog: AtomicU64,
    connections: AtomicU64,
}

/// The counters of a [`Client`] at one moment (see [`ClientCounters::snapshot`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Samples produced (pushed into the session).
    pub samples_produced: u64,
    /// Samples the application pushed while the command channel was full (lost).
    pub samples_refused: u64,
    /// Samples sent again after reconnecting.
    pub samples_resent: u64,
    /// Samples lost to ring overflow before they were sent.
    pub samples_dropped: u64,
    /// Samples waiting to be sent.
    pub backlog: u64,
    /// Successful handshakes.
    pub connections: u64,
}

impl ClientCounters {
    /// Every counter as of now. Each is read on its own (they are not one atomic unit), so
    /// two that move together may be a sample apart.
    pub fn snapshot(&self) -> ClientStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStats {
            samples_produced: get(&self.samples_produced),
            samples_refused: get(&self.samples_refused),
            samples_resent: get(&self.samples_resent),
            samples_dropped: get(&self.samples_dropped),
            backlog: get(&self.backlog),
            connections: get(&self.connections),
        }
    }
}

/// A sarlink client running on its own thread.
///
/// It keeps measuring while disconnected: pushed samples wait in the session's bounded
/// ring and are sent, from the server's `resume_seq`, once a connection is back.
#[derive(Debug)]
pub struct Client {
    commands: Sender<Command>,
    events: Receiver<ClientEvent>,
    stop: Arc<AtomicBool>,
    counters: Arc<ClientCounters>,
    thread: Option<JoinHandle<()>>,
}

impl Client {
    /// Starts the client thread; it connects at once.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn spawn(config: ClientConfig) -> std::io::Result<Client> {
        let (cmd_tx, cmd_rx) = bounded(config.command_capacity.max(1));
        // Crossbeam's bounded channels allocate every slot up front: keep them small.
        let (ev_tx, ev_rx) = bounded(1024);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(ClientCounters::default());
        let thread = {
            let stop = Arc::clone(&stop);
            let counters = Arc::clone(&counters);
            thread::Builder::new()
                .name("sl-cli".into())
                .spawn(move || client_loop(&config, &cmd_rx, &ev_tx, &stop, &counters))?
        };
        Ok(Client {
            commands: cmd_tx,
            events: ev_rx,
            stop,
            counters,
            thread: Some(thread),
        })
    }

    /// Hands a sample to the client. False (and counted) when the client thread is so far
    /// behind that its channel is full.
    pub fn push_sample(&self, record: RssiRecord) -> bool {
        match self.commands.try_send(Command::Sample(record)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters
                    .samples_refused
                    .fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Hands a sample to the client, waiting while its channel is full (for producers that
    /// would rather slow down than lose samples, e.g. replaying a recording). False when the
    /// client has stopped.
    pub fn push_sample_blocking(&self, record: RssiRecord) -> bool {
        self.commands.send(Command::Sample(record)).is_ok()
    }

    /// Queues a message (`cmd`, `ack`, `status`, ...) for the server. It is dropped if no
    /// connection is established when the client thread gets to it.
    pub fn send(&self, message: Message) -> bool {
        self.commands.send(Command::Send(Box::new(message))).is_ok()
    }

    /// The event stream.
    pub fn events(&self) -> &Receiver<ClientEvent> {
        &self.events
    }

    /// Live counters.
    pub fn counters(&self) -> &ClientCounters {
        &self.counters
    }

    /// Sends `bye shutdown` if connected and stops the thread.
    pub fn close(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn resolve(server: &str) -> Option<SocketAddr> {
    server.to_socket_addrs().ok()?.next()
}

fn client_loop(
    config: &ClientConfig,
    commands: &Receiver<Command>,
    events: &Sender<ClientEvent>,
    stop: &AtomicBool,
    counters: &ClientCounters,
) {
    let pool = BufferPool::builder()
        .max_pooled(32)
        .buffer_capacity(16 * 1024)
        .build()
        .expect("valid pool");
    let mut session = Session::client(config.session.clone(), Instant::now(), rand::random());
    let mut first = true;
    let mut failures: u32 = 0;
    let options = SocketOptions {
        write_timeout: config.write_timeout,
        read_poll: Duration::from_millis(200),
        reader_name: "sl-cli-read",
    };
    let publish = |session: &Session| {
        let s = session.sender_stats();
        counters
            .samples_produced
            .store(s.produced, Ordering::Relaxed);
        counters.samples_resent.store(s.resent, Ordering::Relaxed);
        counters
            .samples_dropped
            .store(s.dropped_unsent, Ordering::Relaxed);
        counters.backlog.store(session.backlog(), Ordering::Relaxed);
    };
    while !stop.load(Ordering::Relaxed) {
        if !first {
            session.reconnect(Instant::now(), rand::random());
        }
        first = false;
        let attempt = resolve(&config.server)
            .ok_or(Disconnect::Io {
                op: IoOp::Resolve,
                kind: std::io::ErrorKind::NotFound,
            })
            .and_then(|addr| {
                TcpStream::connect_timeout(&addr, config.connect_timeout)
                    .map_err(|e| Disconnect::io(IoOp::Connect, &e))
            })
            .and_then(|stream| {
                let tls = config
                    .tls
                    .as_ref()
                    .map(|t| t.connection().map(rustls::Connection::Client))
                    .transpose()
                    .map_err(Disconnect::Tls)?;
                Ok((stream, tls))
            });
        let cause = match attempt {
            Err(cause) => cause,
            Ok((stream, tls)) => {
                let mut connected = false;
                let ended = conn::run(
                    &mut session,
                    stream,
                    tls,
                    options,
                    &pool,
                    commands,
                    stop,
                    |session, event| {
                        publish(session);
                        if matches!(event, Event::Connected { .. }) {
                            connected = true;
                            counters.connections.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Some(out) = ClientEvent::from_session(event, session) {
                            let _ = events.try_send(out);
                        }
                    },
                );
                if connected {
                    failures = 0;
                }
                ended
            }
        };
        publish(&session);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let retry_in = config.backoff.delay(failures, rand::random::<f64>());
        failures = failures.saturating_add(1);
        let _ = events.try_send(ClientEvent::Disconnected { cause, retry_in });
        // Keep taking samples (into the ring) while waiting to reconnect.
        let until = Instant::now() + retry_in;
        loop {
            let now = Instant::now();
            if now >= until || stop.load(Ordering::Relaxed) {
                break;
            }
            match commands.recv_timeout((until - now).min(Duration::from_millis(100))) {
                Ok(Command::Sample(record)) => {
                    session.push_sample(record);
                    publish(&session);
                }
                Ok(Command::Send(_)) => {} // not connected: dropped, as documented
                Ok(Command::Close(..) | Command::Confirm(_)) => {}
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}
