//! The blocking server: accepts clients, one session thread (plus a reader thread) each.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::{Receiver, Sender, bounded};
use parking_lot::Mutex;
use sarlink_pool::BufferPool;
use sarlink_schema::{Ack, Cmd, Decision, Message, NodeName, Role, RssiRecord, Status};
use sarlink_wire::CloseCode;

use super::conn::{self, Command, Disconnect, SocketOptions};
use crate::SessionConfig;
use crate::session::{Event, LinkState, PeerHello, Session};
use crate::tls::{ServerTls, TlsError, check_name};

/// Identifies one accepted connection for the server's lifetime.
pub type ConnId = u64;

/// Configuration of a [`Server`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The template every connection's session starts from (node, key, limits, timers).
    pub session: SessionConfig,
    /// Most clients past the handshake at once; one more is sent `reject busy`. Connections
    /// still in the handshake do not count (see [`max_handshakes`](Self::max_handshakes)).
    /// Default 64.
    pub max_clients: usize,
    /// Most connections in the handshake (accepted, not yet past `hello`) at once; one more
    /// is sent `reject busy` and closed without a thread. Default 32.
    pub max_handshakes: usize,
    /// Most connections in the handshake from one IP address; one more is sent
    /// `reject busy`. Default 8.
    pub max_handshakes_per_addr: usize,
    /// A peer that does not take our bytes for this long is cut off. Default 5 s.
    pub write_timeout: Duration,
    /// Events that may wait for the application before connections block (the channel's
    /// slots are allocated up front). Default 16,384.
    pub event_capacity: usize,
    /// TLS 1.3 with mutual authentication: clients must present a certificate from the
    /// fleet CA that is valid for the node they name. Default: none (plaintext, or the
    /// pre-shared key of the session template).
    pub tls: Option<ServerTls>,
    /// Resume positions carried over from an earlier run. A ground station that persists
    /// [`Server::resume_positions`] and passes them back here after a restart keeps
    /// delivering each sample exactly once. Default empty.
    pub resume: Vec<ResumePosition>,
}

/// Where a (node, stream) resumes: every sample below `next_seq` was delivered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResumePosition {
    /// The sending node's name.
    pub node: String,
    /// The sender's stream id.
    pub stream: u64,
    /// The next sequence number expected from that stream.
    pub next_seq: u64,
}

impl ServerConfig {
    /// Defaults around a session template.
    pub fn new(session: SessionConfig) -> Self {
        Self {
            session,
            max_clients: 64,
            max_handshakes: 32,
            max_handshakes_per_addr: 8,
            write_timeout: Duration::from_secs(5),
            event_capacity: 16_384,
            tls: None,
            resume: Vec::new(),
        }
    }
}

/// What happens on a [`Server`], in order per connection.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A client completed the handshake.
    Connected {
        /// The connection.
        conn: ConnId,
        /// The client's address.
        addr: SocketAddr,
        /// What it announced.
        peer: PeerHello,
        /// Where it was told to resume its samples.
        resume_seq: u64,
    },
    /// Samples from a client's stream, each (node, stream, seq) delivered once.
    Samples {
        /// The connection.
        conn: ConnId,
        /// The client's node name.
        node: NodeName,
        /// The client's stream id.
        stream: u64,
        /// Sequence number of the first record.
        seq: u64,
        /// The records.
        records: Vec<RssiRecord>,
        /// Sequence numbers skipped just before `seq`.
        gap: u64,
    },
    /// A client sent a command (to be relayed or handled).
    Command {
        /// The connection.
        conn: ConnId,
        /// The command.
        cmd: Cmd,
    },
    /// A client answered a command.
    Ack {
        /// The connection.
        conn: ConnId,
        /// The answer.
        ack: Ack,
    },
    /// A client's health report.
    Status {
        /// The connection.
        conn: ConnId,
        /// The report.
        status: Status,
    },
    /// A client relayed a decision.
    Decision {
        /// The connection.
        conn: ConnId,
        /// The decision.
        decision: Decision,
    },
    /// A link's health changed.
    LinkState {
        /// The connection.
        conn: ConnId,
        /// The new state.
        state: LinkState,
    },
    /// A round-trip time measured on a connection.
    Rtt {
        /// The connection.
        conn: ConnId,
        /// The RTT.
        rtt: Duration,
    },
    /// A connection ended.
    Disconnected {
        /// The connection.
        conn: ConnId,
        /// The client's node name, if the handshake got that far.
        node: Option<NodeName>,
        /// Why (its `code()` is the close code, when the session closed with one).
        cause: Disconnect,
    },
}

#[derive(Debug)]
struct ConnEntry {
    tx: Sender<Command>,
    node: Option<NodeName>,
    role: Option<Role>,
}

#[derive(Debug)]
struct ResumeEntry {
    expected: u64,
    owner: ConnId,
    /// When samples last arrived on the stream (for a restored position: when the server
    /// started), from which its sample window grows (`SessionConfig::max_sample_rate`).
    heard: Instant,
}

#[derive(Debug)]
struct Shared {
    config: ServerConfig,
    conns: Mutex<HashMap<ConnId, ConnEntry>>,
    /// Next expected sequence number per (node, stream), and which connection owns it.
    resume: Mutex<HashMap<(String, u64), ResumeEntry>>,
    /// The TLS settings new connections get (replaced by [`Server::set_tls`]).
    tls: parking_lot::RwLock<Option<ServerTls>>,
    /// Connections in the handshake, per IP address (the total is their sum).
    pending: Mutex<HashMap<IpAddr, usize>>,
    stop: AtomicBool,
    next_id: AtomicU64,
    events: Sender<ServerEvent>,
    pool: BufferPool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A sarlink server on a TCP listener.
///
/// Each client gets its own threads, so one misbehaving client cannot stall the others.
/// Events arrive on [`Server::events`]; the channel is bounded, so an application that stops
/// reading eventually slows its clients down instead of growing without limit.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    events: Receiver<ServerEvent>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds and starts accepting.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn bind(addr: impl ToSocketAddrs, config: ServerConfig) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let (tx, rx) = bounded(config.event_capacity.max(1));
        let pool = BufferPool::builder()
            .max_pooled(256)
            .buffer_capacity(16 * 1024)
            .max_buffer_capacity(64 * 1024)
            .build()
            .expect("valid pool configuration");
        let started = Instant::now();
        let resume = config
            .resume
            .iter()
            .map(|p| {
                (
                    (p.node.clone(), p.stream),
                    ResumeEntry {
                        expected: p.next_seq,
                        owner: 0,
                        heard: started,
                    },
                )
            })
            .collect();
        let tls = config.tls.clone();
        let shared = Arc::new(Shared {
            config,
            conns: Mutex::new(HashMap::new()),
            resume: Mutex::new(resume),
            tls: parking_lot::RwLock::new(tls),
            pending: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            events: tx,
            pool,
            threads: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("sl-srv-accept".into())
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(Server {
            local_addr,
            shared,
            events: rx,
            acceptor: Some(acceptor),
        })
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The event stream.
    pub fn events(&self) -> &Receiver<ServerEvent> {
        &self.events
    }

    /// Queues `message` on connection `conn`; false when it is gone.
    pub fn send(&self, conn: ConnId, message: Message) -> bool {
        let conns = self.shared.conns.lock();
        conns
            .get(&conn)
            .is_some_and(|c| c.tx.send(Command::Send(Box::new(message))).is_ok())
    }

    /// Queues `message` on the connection of node `node`; false when none is connected.
    pub fn send_to_node(&self, node: &str, message: Message) -> bool {
        let conns = self.shared.conns.lock();
        let target = conns
            .values()
            .find(|c| c.node.as_ref().is_some_and(|n| n.as_str() == node));
        target.is_some_and(|c| c.tx.send(Command::Send(Box::new(message))).is_ok())
    }

    /// Queues `message` on every connection whose peer has `role`; returns how many.
    pub fn broadcast(&self, role: Role, message: &Message) -> usize {
        let conns = self.shared.conns.lock();
        conns
            .values()
            .filter(|c| c.role == Some(role))
            .filter(|c| c.tx.send(Command::Send(Box::new(message.clone()))).is_ok())
            .count()
    }

    /// Appends `record` to the sample stream of every connection whose peer has `role` (for
    /// relaying records to observers: each gets them numbered in its own stream, acknowledged
    /// and resent like any samples); returns how many.
    pub fn broadcast_sample(&self, role: Role, record: RssiRecord) -> usize {
        let conns = self.shared.conns.lock();
        conns
            .values()
            .filter(|c| c.role == Some(role))
            .filter(|c| c.tx.send(Command::Sample(record)).is_ok())
            .count()
    }

    /// With [`SessionConfig::confirm_delivery`](crate::SessionConfig::confirm_delivery):
    /// every sample of connection `conn`'s stream below `upto` is safe with the application
    /// (written), so the client may forget it. Moves the stream's resume position (what a
    /// reconnecting client is told) and lets the session acknowledge with `rx`. Returns
    /// false when `conn` is gone (its position still moves, if it owned the stream).
    pub fn confirm(&self, conn: ConnId, node: &str, stream: u64, upto: u64) -> bool {
        {
            let mut table = self.shared.resume.lock();
            if let Some(entry) = table.get_mut(&(node.to_owned(), stream)) {
                entry.expected = entry.expected.max(upto);
            }
        }
        let conns = self.shared.conns.lock();
        conns
            .get(&conn)
            .is_some_and(|c| c.tx.send(Command::Confirm(upto)).is_ok())
    }

    /// Closes connection `conn` with `bye`.
    pub fn disconnect(&self, conn: ConnId, code: CloseCode, reason: &str) -> bool {
        let conns = self.shared.conns.lock();
        conns
            .get(&conn)
            .is_some_and(|c| c.tx.send(Command::Close(code, reason.to_owned())).is_ok())
    }

    /// Connections that completed the handshake: id, node and role.
    pub fn connections(&self) -> Vec<(ConnId, NodeName, Role)> {
        let conns = self.shared.conns.lock();
        let mut v: Vec<_> = conns
            .iter()
            .filter_map(|(id, c)| Some((*id, c.node.clone()?, c.role?)))
            .collect();
        v.sort_by_key(|(id, _, _)| *id);
        v
    }

    /// The next expected sequence number of every (node, stream) seen, for persisting
    /// across restarts (see [`ServerConfig::resume`]).
    pub fn resume_positions(&self) -> Vec<ResumePosition> {
        let table = self.shared.resume.lock();
        let mut v: Vec<_> = table
            .iter()
            .map(|((n, s), e)| ResumePosition {
                node: n.clone(),
                stream: *s,
                next_seq: e.expected,
            })
            .collect();
        v.sort();
        v
    }

    /// Replaces the TLS settings for connections accepted from now on (e.g. with a new
    /// revocation list); open connections keep theirs. Ignored on a server started without
    /// TLS, which stays plaintext.
    pub fn set_tls(&self, tls: ServerTls) {
        let mut current = self.shared.tls.write();
        if current.is_some() {
            *current = Some(tls);
        }
    }

    /// Stops accepting, sends `bye shutdown` on every connection and waits for all threads.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        // Connection threads see the stop flag within their wait bound.
        let threads = std::mem::take(&mut *self.shared.threads.lock());
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, addr)) => {
                let Some(slot) = PendingSlot::take(shared, addr.ip()) else {
                    refuse_busy(stream, shared);
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = bounded(256);
                {
                    let mut conns = shared.conns.lock();
                    conns.insert(
                        id,
                        ConnEntry {
                            tx,
                            node: None,
                            role: None,
                        },
                    );
                }
                let shared2 = Arc::clone(shared);
                let spawned = thread::Builder::new()
                    .name(format!("sl-srv-{id}"))
                    .spawn(move || serve(stream, addr, id, &shared2, &rx, slot));
                match spawned {
                    Ok(handle) => {
                        let mut threads = shared.threads.lock();
                        threads.retain(|t| !t.is_finished());
                        threads.push(handle);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot spawn a connection thread");
                        shared.conns.lock().remove(&id);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Over a handshake limit: `reject busy` and close, without a thread and without waiting
/// (the socket is non-blocking: a peer whose buffer is full just gets closed).
fn refuse_busy(mut stream: TcpStream, shared: &Shared) {
    let mut session = Session::server(
        shared.config.session.clone(),
        Instant::now(),
        rand::random(),
    );
    session.reject(CloseCode::Busy, "too many connections in the handshake");
    let mut out = BytesMut::new();
    session.poll_transmit(Instant::now(), &mut out);
    let _ = stream.set_nonblocking(true);
    let _ = stream.write_all(&out);
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// The same host whether it reached us over IPv4 or as an IPv4-mapped IPv6 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A connection's place among those in the handshake; given back once, when the handshake
/// ends (either way) or the connection does.
struct PendingSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
    held: bool,
}

impl PendingSlot {
    /// A slot for a connection from `ip`, if both the total and the per-address limits allow.
    fn take(shared: &Arc<Shared>, ip: IpAddr) -> Option<PendingSlot> {
        let ip = canonical(ip);
        let mut pending = shared.pending.lock();
        let total: usize = pending.values().sum();
        let here = pending.get(&ip).copied().unwrap_or(0);
        if total >= shared.config.max_handshakes || here >= shared.config.max_handshakes_per_addr {
            return None;
        }
        *pending.entry(ip).or_insert(0) += 1;
        Some(PendingSlot {
            shared: Arc::clone(shared),
            ip,
            held: true,
        })
    }

    /// Gives the slot back (the handshake is over); later calls do nothing.
    fn release(&mut self) {
        if std::mem::replace(&mut self.held, false) {
            let mut pending = self.shared.pending.lock();
            if let Some(n) = pending.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    pending.remove(&self.ip);
                }
            }
        }
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.release();
    }
}

fn serve(
    stream: TcpStream,
    addr: SocketAddr,
    id: ConnId,
    shared: &Arc<Shared>,
    commands: &Receiver<Command>,
    mut slot: PendingSlot,
) {
    let mut session = Session::server(
        shared.config.session.clone(),
        Instant::now(),
        rand::random(),
    );
    let options = SocketOptions {
        write_timeout: shared.config.write_timeout,
        read_poll: Duration::from_millis(200),
        reader_name: "sl-srv-read",
    };
    let mut peer: Option<PeerHello> = None;
    let events = &shared.events;
    let tls_config = shared.tls.read().clone();
    let tls = match tls_config.as_ref().map(ServerTls::connection).transpose() {
        Ok(tls) => tls.map(rustls::Connection::Server),
        Err(e) => {
            shared.conns.lock().remove(&id);
            let _ = events.send(ServerEvent::Disconnected {
                conn: id,
                node: None,
                cause: Disconnect::Tls(e),
            });
            return;
        }
    };
    let ended = conn::run(
        &mut session,
        stream,
        tls,
        options,
        &shared.pool,
        commands,
        &shared.stop,
        |session, event, below| {
            match event {
                Event::HelloReceived(hello) => {
                    // The handshake is over either way: free the slot for the next one.
                    slot.release();
                    // With TLS the name is the certificate's, not a claim.
                    let identified = tls_config.is_some();
                    if identified {
                        let named = below.certificate.map_or(
                            Err(TlsError::NameMismatch(hello.node.as_str().to_owned())),
                            |cert| check_name(cert, hello.node.as_str()),
                        );
                        if let Err(e) = named {
                            session.reject(CloseCode::Auth, &e.to_string());
                            return;
                        }
                    }
                    if let Err(refusal) = claim_node(shared, id, &hello, identified) {
                        session.reject(CloseCode::Busy, &refusal);
                        return;
                    }
                    let key = (hello.node.as_str().to_owned(), hello.stream);
                    let now = Instant::now();
                    let (resume_seq, heard) = {
                        let mut table = shared.resume.lock();
                        let entry = table.entry(key).or_insert(ResumeEntry {
                            expected: 0,
                            owner: id,
                            heard: now,
                        });
                        // The node is ours (claim_node): whoever owned the stream before is
                        // gone, or was not live and is being closed.
                        entry.owner = id;
                        (entry.expected, entry.heard)
                    };
                    session.accept_resumed(resume_seq, heard, now);
                    let _ = events.send(ServerEvent::Connected {
                        conn: id,
                        addr,
                        peer: hello.clone(),
                        resume_seq,
                    });
                    peer = Some(hello);
                }
                Event::Samples { seq, records, gap } => {
                    let Some(p) = &peer else { return };
                    let owned = {
                        let mut table = shared.resume.lock();
                        match table.get_mut(&(p.node.as_str().to_owned(), p.stream)) {
                            Some(entry) if entry.owner == id => {
                                entry.heard = Instant::now();
                                // With confirmed delivery the position moves only when the
                                // application confirms (Server::confirm).
                                if !shared.config.session.confirm_delivery {
                                    entry.expected = entry.expected.max(seq + records.len() as u64);
                                }
                                true
                            }
                            _ => false,
                        }
                    };
                    if owned {
                        let _ = events.send(ServerEvent::Samples {
                            conn: id,
                            node: p.node.clone(),
                            stream: p.stream,
                            seq,
                            records,
                            gap,
                        });
                    }
                }
                Event::Command(cmd) => {
                    let _ = events.send(ServerEvent::Command { conn: id, cmd });
                }
                Event::Ack(ack) => {
                    let _ = events.send(ServerEvent::Ack { conn: id, ack });
                }
                Event::Status(status) => {
                    let _ = events.send(ServerEvent::Status { conn: id, status });
                }
                Event::Decision(decision) => {
                    let _ = events.send(ServerEvent::Decision { conn: id, decision });
                }
                Event::LinkState(state) => {
                    let _ = events.send(ServerEvent::LinkState { conn: id, state });
                }
                Event::Rtt(rtt) => {
                    let _ = events.send(ServerEvent::Rtt { conn: id, rtt });
                }
                Event::Connected { .. } | Event::AdviseRate(_) | Event::Closed(_) => {}
            }
        },
    );
    shared.conns.lock().remove(&id);
    drop(slot);
    let _ = events.send(ServerEvent::Disconnected {
        conn: id,
        node: peer.map(|p| p.node),
        cause: ended,
    });
}

/// Makes connection `id` the holder of `hello.node`, or says why not.
///
/// Without an identity proven below the session (no TLS), a name is only a claim: while a
/// connection holding the same name is live, a second `hello` for it is refused `busy`
/// instead of superseding it, so a stranger cannot cut a drone off or write under its
/// name. A connection is live until its session closes, and a session closes itself after
/// [`SessionConfig::liveness_timeout`](crate::SessionConfig::liveness_timeout) without a
/// frame; so a drone whose old connection went half-open gets back in once that passes.
///
/// With TLS (`identified`), the name was proven by a certificate: only the same identity
/// can hold it, so the newest connection wins and the old one is closed (a drone whose old
/// connection is half-open gets back at once).
fn claim_node(
    shared: &Shared,
    id: ConnId,
    hello: &PeerHello,
    identified: bool,
) -> Result<(), String> {
    let mut conns = shared.conns.lock();
    let mut established = 0;
    let mut holder = None;
    for (other, c) in conns.iter() {
        let Some(node) = &c.node else { continue };
        if *other == id {
            continue;
        }
        if *node == hello.node {
            holder = Some(*other);
        } else {
            established += 1;
        }
    }
    match holder {
        Some(_) if !identified => {
            return Err(format!("node {} is already connected", hello.node));
        }
        Some(old) => {
            if let Some(c) = conns.get_mut(&old) {
                let _ = c.tx.send(Command::Close(
                    CloseCode::Protocol,
                    "superseded by a newer connection of the same node".into(),
                ));
                // No longer the holder: commands for the node go to the new connection.
                c.node = None;
                c.role = None;
            }
        }
        None => {}
    }
    if established >= shared.config.max_clients {
        return Err("too many clients".to_owned());
    }
    if let Some(c) = conns.get_mut(&id) {
        c.node = Some(hello.node.clone());
        c.role = Some(hello.role);
    }
    Ok(())
}
