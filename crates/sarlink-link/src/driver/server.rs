//! The server: one event loop (mio readiness, no async runtime) owns every connection.
//!
//! One thread, `sl-srv-loop`, owns the listener and, per connection, the socket, the TLS
//! state and the [`Session`]. It drives them through the session's sans-IO API:
//! readiness in, `handle_input`/`handle_timeout`, then `poll_event`/`poll_transmit` out.
//! Deadlines (handshake timeout, liveness, pings, `rx` cadence, write timeouts) live in one
//! binary heap. Events reach the application through one bounded channel; the application's
//! calls reach the loop through one channel and a [`mio::Waker`] rung at most once per
//! drain of that channel, so a burst of `confirm`s costs one wakeup.
//!
//! Memory per connection is bounded: a connection holds a read buffer only while a frame is
//! partly received and a write buffer only while the socket refuses bytes, both from the
//! server's [`BufferPool`] and given back as soon as they empty.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, unbounded};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::Mutex;
use sarlink_pool::{BufferPool, PooledBuf};
use sarlink_schema::{Ack, Cmd, Decision, Message, NodeName, Role, RssiRecord, Status};
use sarlink_wire::CloseCode;

use super::conn::{Command, Disconnect, IoOp, apply};
use crate::SessionConfig;
use crate::session::{CloseReason, Event, LinkState, PeerHello, Session};
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
    /// is sent `reject busy` and closed at once. Default 32.
    pub max_handshakes: usize,
    /// Most connections in the handshake from one IP address; one more is sent
    /// `reject busy`. Default 8.
    pub max_handshakes_per_addr: usize,
    /// A peer that does not take our bytes for this long is cut off. Default 5 s.
    pub write_timeout: Duration,
    /// Events that may wait for the application (the channel's slots are allocated up
    /// front). While it is full the server stops reading from its sockets, so an
    /// application that falls behind slows its clients down instead of growing memory.
    /// Default 16,384.
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

/// The listener's token; connections use their [`ConnId`] (never 0 or `usize::MAX`).
const LISTENER: Token = Token(0);
/// The waker's token.
const WAKER: Token = Token(usize::MAX);
/// Bytes read from one connection before the others get their turn.
const READ_BUDGET: usize = 256 * 1024;
/// The socket read size (one loop-wide buffer).
const READ_CHUNK: usize = 64 * 1024;
/// The loop-wide receive buffer is given back to the allocator when a large frame grew it
/// past this.
const RX_KEEP: usize = 1 << 20;
/// How long the loop waits before retrying `accept` after it failed (e.g. out of file
/// descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
/// While the event channel is full: how often the loop looks at it again.
const FULL_RETRY: Duration = Duration::from_millis(1);
/// On shutdown: how long `bye` may take to leave.
const SHUTDOWN_LINGER: Duration = Duration::from_secs(2);
/// Under load, the loop looks at its sockets at most once per tick (see [`Coalescing`]).
const TICK: Duration = Duration::from_millis(2);
/// How often the loop decides whether it is under load: ten ticks, so that a coalescing loop
/// (at most one wakeup per tick) can still count [`LOAD_WAKES`] and stay coalescing.
const LOAD_WINDOW: Duration = Duration::from_millis(20);
/// Wakeups with socket I/O per window, from more than one connection, that count as load.
const LOAD_WAKES: u32 = 5;

/// Interrupt coalescing. Many drones each sending a small message now and then would wake
/// the loop (and through it the application) once per message: a thread switch each way per
/// record, which costs more than the record. Under load (over a window, at least
/// [`LOAD_WAKES`] wakeups with socket I/O from more than one connection) the loop therefore
/// waits out the rest of a [`TICK`] before polling again, so each wakeup takes every socket
/// that became ready meanwhile (at most 2 ms more latency), and the application's calls stop
/// ringing the waker (the loop looks at them every tick anyway). One busy connection (a
/// ping-pong, a backlog) and light load never coalesce, so their latency is untouched.
#[derive(Debug)]
struct Coalescing {
    window_start: Instant,
    wakes: u32,
    first: Option<ConnId>,
    several: bool,
    last_wake: Instant,
}

impl Coalescing {
    fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            wakes: 0,
            first: None,
            several: false,
            last_wake: now,
        }
    }

    /// Counts one wakeup that had I/O on `conn`.
    fn saw(&mut self, conn: ConnId) {
        match self.first {
            None => self.first = Some(conn),
            Some(first) => self.several |= first != conn,
        }
    }
}

/// What the application asks of the loop.
#[derive(Debug)]
enum LoopCommand {
    To(ConnId, Command),
    /// `(connection, upto)` confirmations, in order: one command for a whole batch written.
    Confirm(Vec<(ConnId, u64)>),
}

/// What the application's side knows of a connection.
#[derive(Debug, Clone, Default)]
struct ConnInfo {
    node: Option<NodeName>,
    role: Option<Role>,
}

/// Every open connection, indexed by the name it holds and by its peer's role, so that
/// sending to a node, relaying a record to the observers and admitting a `hello` cost the
/// same with ten thousand connections as with ten.
#[derive(Debug, Default)]
struct ConnTable {
    info: HashMap<ConnId, ConnInfo>,
    by_node: HashMap<NodeName, ConnId>,
    by_role: HashMap<Role, BTreeSet<ConnId>>,
}

impl ConnTable {
    fn insert(&mut self, id: ConnId) {
        self.info.insert(id, ConnInfo::default());
    }

    fn contains(&self, id: ConnId) -> bool {
        self.info.contains_key(&id)
    }

    /// Connection `id` now holds `node` (with `role`).
    fn set_holder(&mut self, id: ConnId, node: NodeName, role: Role) {
        self.clear_holder(id);
        if let Some(c) = self.info.get_mut(&id) {
            self.by_node.insert(node.clone(), id);
            self.by_role.entry(role).or_default().insert(id);
            c.node = Some(node);
            c.role = Some(role);
        }
    }

    /// Connection `id` no longer holds a name.
    fn clear_holder(&mut self, id: ConnId) {
        let Some(c) = self.info.get_mut(&id) else {
            return;
        };
        if let Some(node) = c.node.take() {
            if self.by_node.get(&node) == Some(&id) {
                self.by_node.remove(&node);
            }
        }
        if let Some(role) = c.role.take() {
            if let Some(set) = self.by_role.get_mut(&role) {
                set.remove(&id);
            }
        }
    }

    fn remove(&mut self, id: ConnId) {
        self.clear_holder(id);
        self.info.remove(&id);
    }
}

/// Resume entries by node, then stream: nested so that a lookup borrows the node's name
/// (`&str`) instead of building an owned `(String, u64)` key for every record and every
/// confirmation.
type ResumeTable = HashMap<String, HashMap<u64, ResumeSlot>>;

/// One (node, stream)'s entry: the table holds it, and so does the connection that owns the
/// stream, which updates it per record without searching the table (or taking its lock).
type ResumeSlot = Arc<Mutex<ResumeEntry>>;

/// Moves the resume position of `slot` up to `upto` (never back).
fn raise_position(slot: &ResumeSlot, upto: u64) {
    let mut entry = slot.lock();
    entry.expected = entry.expected.max(upto);
}

/// The entry of (`node`, `stream`), if any.
fn resume_entry<'t>(table: &'t ResumeTable, node: &str, stream: u64) -> Option<&'t ResumeSlot> {
    table.get(node).and_then(|streams| streams.get(&stream))
}

#[derive(Debug)]
struct ResumeEntry {
    expected: u64,
    owner: ConnId,
    /// When samples last arrived on the stream (for a restored position: when the server
    /// started), from which its sample window grows (`SessionConfig::max_sample_rate`).
    heard: Instant,
}

/// State shared between the application's [`Server`] handle and the loop.
#[derive(Debug)]
struct Shared {
    config: ServerConfig,
    /// Every open connection; node and role once it holds a name.
    conns: Mutex<ConnTable>,
    /// Next expected sequence number per (node, stream), and which connection owns it.
    resume: Mutex<ResumeTable>,
    /// The resume entry each connection was last confirmed for ([`Server::confirm_all`]),
    /// with its node and stream, so that the next confirmation (one per batch written)
    /// needs no search of the table.
    confirmed: Mutex<super::ids::IdMap<(Box<str>, u64, ResumeSlot)>>,
    /// The TLS settings new connections get (replaced by [`Server::set_tls`]).
    tls: parking_lot::RwLock<Option<ServerTls>>,
    stop: AtomicBool,
    /// The loop is coalescing (under load): it looks at its commands every tick, so nobody
    /// needs to ring the waker.
    coalescing: AtomicBool,
    /// Set by whoever rang the waker, cleared by the loop before it drains its commands:
    /// the waker rings once per drain however many commands arrive.
    woken: AtomicBool,
    waker: Waker,
    commands: Sender<LoopCommand>,
}

impl Shared {
    fn command(&self, command: LoopCommand) -> bool {
        if self.commands.send(command).is_err() {
            return false;
        }
        if !self.coalescing.load(Ordering::SeqCst) && !self.woken.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.waker.wake() {
                tracing::warn!(error = %e, "cannot wake the server loop");
            }
        }
        true
    }
}

/// A sarlink server on a TCP listener.
///
/// One thread runs an event loop over every connection, so a connection costs memory, not
/// threads, and one misbehaving client cannot stall the others: a client that stops reading
/// is cut off after [`ServerConfig::write_timeout`]. Events arrive on [`Server::events`];
/// the channel is bounded, and while it is full the loop stops reading from its sockets, so
/// an application that stops reading slows its clients down instead of growing memory.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    events: Receiver<ServerEvent>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds and starts accepting.
    ///
    /// # Errors
    /// When the address cannot be bound, or the loop cannot be set up (poll instance,
    /// thread).
    pub fn bind(addr: impl ToSocketAddrs, config: ServerConfig) -> io::Result<Server> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let limit = config.event_capacity.max(1);
        let (events_tx, events_rx) = bounded(limit);
        let (commands_tx, commands_rx) = unbounded();
        let started = Instant::now();
        let mut resume = ResumeTable::new();
        for p in &config.resume {
            resume.entry(p.node.clone()).or_default().insert(
                p.stream,
                Arc::new(Mutex::new(ResumeEntry {
                    expected: p.next_seq,
                    owner: 0,
                    heard: started,
                })),
            );
        }
        let tls = config.tls.clone();
        let shared = Arc::new(Shared {
            config,
            conns: Mutex::new(ConnTable::default()),
            resume: Mutex::new(resume),
            confirmed: Mutex::new(super::ids::IdMap::default()),
            tls: parking_lot::RwLock::new(tls),
            stop: AtomicBool::new(false),
            coalescing: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            waker,
            commands: commands_tx,
        });
        let pool = BufferPool::builder()
            .max_pooled(64)
            .buffer_capacity(4 * 1024)
            .max_buffer_capacity(64 * 1024)
            .build()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut event_loop = EventLoop {
            poll,
            listener: Some(listener),
            shared: Arc::clone(&shared),
            commands: commands_rx,
            out: Outbox {
                tx: events_tx,
                queue: VecDeque::new(),
                full: false,
                limit,
            },
            conns: super::ids::IdMap::default(),
            pending: HashMap::new(),
            timers: BinaryHeap::new(),
            ready: VecDeque::new(),
            dirty: Vec::new(),
            superseded: Vec::new(),
            pool,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            rx: BytesMut::with_capacity(READ_CHUNK),
            tx: BytesMut::with_capacity(READ_CHUNK),
            next_id: 1,
            accept_retry: None,
        };
        let thread = thread::Builder::new()
            .name("sl-srv-loop".into())
            .spawn(move || event_loop.run())?;
        Ok(Server {
            local_addr,
            shared,
            events: events_rx,
            thread: Some(thread),
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

    fn to(&self, conn: ConnId, command: Command) -> bool {
        self.shared.conns.lock().contains(conn)
            && self.shared.command(LoopCommand::To(conn, command))
    }

    /// Queues `message` on connection `conn`; false when it is gone.
    pub fn send(&self, conn: ConnId, message: Message) -> bool {
        self.to(conn, Command::Send(Box::new(message)))
    }

    /// Queues `message` on the connection of node `node`; false when none is connected.
    pub fn send_to_node(&self, node: &str, message: Message) -> bool {
        let Ok(node) = NodeName::new(node) else {
            return false;
        };
        let target = self.shared.conns.lock().by_node.get(&node).copied();
        target.is_some_and(|id| {
            self.shared
                .command(LoopCommand::To(id, Command::Send(Box::new(message))))
        })
    }

    fn with_role(&self, role: Role) -> Vec<ConnId> {
        let conns = self.shared.conns.lock();
        conns
            .by_role
            .get(&role)
            .map_or_else(Vec::new, |ids| ids.iter().copied().collect())
    }

    /// Queues `message` on every connection whose peer has `role`; returns how many.
    pub fn broadcast(&self, role: Role, message: &Message) -> usize {
        self.with_role(role)
            .into_iter()
            .filter(|id| {
                self.shared.command(LoopCommand::To(
                    *id,
                    Command::Send(Box::new(message.clone())),
                ))
            })
            .count()
    }

    /// Appends `record` to the sample stream of every connection whose peer has `role` (for
    /// relaying records to observers: each gets them numbered in its own stream, acknowledged
    /// and resent like any samples); returns how many.
    pub fn broadcast_sample(&self, role: Role, record: RssiRecord) -> usize {
        self.broadcast_samples(role, &[record])
    }

    /// [`Server::broadcast_sample`] for each of `records`, in order, looking up the
    /// connections of `role` once for all of them; returns how many connections got them.
    pub fn broadcast_samples(&self, role: Role, records: &[RssiRecord]) -> usize {
        if records.is_empty() {
            return 0;
        }
        self.with_role(role)
            .into_iter()
            .filter(|id| {
                records.iter().all(|record| {
                    self.shared
                        .command(LoopCommand::To(*id, Command::Sample(*record)))
                })
            })
            .count()
    }

    /// With [`SessionConfig::confirm_delivery`](crate::SessionConfig::confirm_delivery):
    /// every sample of connection `conn`'s stream below `upto` is safe with the application
    /// (written), so the client may forget it. Moves the stream's resume position (what a
    /// reconnecting client is told) and lets the session acknowledge with `rx`. Returns
    /// false when `conn` is gone (its position still moves, if it owned the stream).
    ///
    /// Cheap to call per batch: confirmations queue for the loop, which is woken at most once
    /// however many arrive before it next looks.
    pub fn confirm(&self, conn: ConnId, node: &str, stream: u64, upto: u64) -> bool {
        {
            let table = self.shared.resume.lock();
            if let Some(slot) = resume_entry(&table, node, stream) {
                raise_position(slot, upto);
            }
        }
        self.to(conn, Command::Confirm(upto))
    }

    /// [`Server::confirm`] for each `(conn, node, stream, upto)` of `confirmations`, in
    /// order. The resume entry of a connection confirmed for before is found by the
    /// connection's id, without searching the resume table by name. Unlike
    /// [`Server::confirm`] it does not look up (under the connection table's lock, which the
    /// loop holds often) whether each connection is still open: the loop drops what is meant
    /// for a connection that has closed, and connection ids are never reused.
    pub fn confirm_all<N: AsRef<str>>(&self, confirmations: &[(ConnId, N, u64, u64)]) {
        if confirmations.is_empty() {
            return;
        }
        {
            let mut known = self.shared.confirmed.lock();
            let mut table = None;
            for (conn, node, stream, upto) in confirmations {
                let (node, stream) = (node.as_ref(), *stream);
                match known.get(conn) {
                    Some((n, s, slot)) if *s == stream && n.as_ref() == node => {
                        raise_position(slot, *upto)
                    }
                    _ => {
                        let table = table.get_or_insert_with(|| self.shared.resume.lock());
                        if let Some(slot) = resume_entry(table, node, stream) {
                            raise_position(slot, *upto);
                            // Entries of closed connections pile up: start over now and then.
                            if known.len() >= 2 * self.shared.config.max_clients.max(1) {
                                known.clear();
                            }
                            known.insert(*conn, (Box::from(node), stream, Arc::clone(slot)));
                        }
                    }
                }
            }
        }
        let confirmations = confirmations
            .iter()
            .map(|(conn, _, _, upto)| (*conn, *upto))
            .collect();
        self.shared.command(LoopCommand::Confirm(confirmations));
    }

    /// Closes connection `conn` with `bye`.
    pub fn disconnect(&self, conn: ConnId, code: CloseCode, reason: &str) -> bool {
        self.to(conn, Command::Close(code, reason.to_owned()))
    }

    /// Connections that completed the handshake: id, node and role.
    pub fn connections(&self) -> Vec<(ConnId, NodeName, Role)> {
        let conns = self.shared.conns.lock();
        let mut v: Vec<_> = conns
            .info
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
            .flat_map(|(n, streams)| {
                streams.iter().map(|(s, e)| ResumePosition {
                    node: n.clone(),
                    stream: *s,
                    next_seq: e.lock().expected,
                })
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

    /// Stops accepting, sends `bye shutdown` on every connection and waits for the loop.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.shared.waker.wake() {
            tracing::warn!(error = %e, "cannot wake the server loop");
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// The same host whether it reached us over IPv4 or as an IPv4-mapped IPv6 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Events on their way to the application, in order. They collect here during a turn of
/// the loop and go into the channel together at its end, so the application wakes once per
/// turn for everything, not once per record. While the channel is full they stay here and
/// the loop stops reading sockets, which bounds this queue (at most one read budget of
/// events per connection serviced in the turn that filled the channel).
#[derive(Debug)]
struct Outbox {
    tx: Sender<ServerEvent>,
    queue: VecDeque<ServerEvent>,
    /// The channel refused an event at the last flush.
    full: bool,
    /// Events a turn may collect before the loop stops reading (the channel's capacity).
    limit: usize,
}

impl Outbox {
    fn deliver(&mut self, event: ServerEvent) {
        self.queue.push_back(event);
    }

    /// Moves what it can into the channel.
    fn flush(&mut self) {
        self.full = false;
        while let Some(event) = self.queue.pop_front() {
            match self.tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Disconnected(_)) => self.queue.clear(),
                Err(TrySendError::Full(event)) => {
                    self.queue.push_front(event);
                    self.full = true;
                    return;
                }
            }
        }
    }

    /// The application is behind (or this turn collected a channel's worth): stop reading.
    fn is_full(&self) -> bool {
        self.full || self.queue.len() >= self.limit
    }
}

/// A connection's TLS side.
#[derive(Debug)]
enum Tls {
    /// Accepted, nothing received yet: rustls's state (several KiB) is made when the
    /// client's first bytes arrive, so a connection that never speaks costs no more than a
    /// plaintext one. Nothing can be sent before the client's hello.
    Waiting(ServerTls),
    /// The rustls connection (boxed: a plaintext connection does not carry its size).
    Active(Box<rustls::ServerConnection>),
}

/// One accepted connection, owned by the loop.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    session: Session,
    /// With TLS: the connection the session's bytes travel in.
    tls: Option<Tls>,
    /// A partly received frame (plaintext), only while there is one.
    partial: Option<PooledBuf<'static>>,
    /// Bytes the session produced that the socket (or rustls) has not taken yet.
    out: Option<PooledBuf<'static>>,
    peer: Option<PeerHello>,
    /// The resume entry of the peer's (node, stream), once the handshake named them.
    resume: Option<ResumeSlot>,
    /// The address whose handshake slot this connection holds, until the handshake ends.
    slot: Option<IpAddr>,
    /// Readiness not yet consumed (the connection is in the loop's ready queue).
    readable: bool,
    /// The peer's FIN (or an error) was reported: read until EOF.
    read_closed: bool,
    /// Queued for servicing at the end of this loop turn.
    dirty: bool,
    /// Since when bytes have been waiting for the socket without any being taken.
    stalled_since: Option<Instant>,
    /// The deadline this connection has in the timer heap (the earliest one pushed).
    deadline: Option<Instant>,
    /// The session closed; its final frame is on its way out.
    closed: Option<CloseReason>,
    /// The loop is shutting down: close by this time whatever is still unsent.
    linger_until: Option<Instant>,
}

impl Conn {
    fn next_deadline(&self, write_timeout: Duration) -> Option<Instant> {
        let stall = self.stalled_since.map(|t| t + write_timeout);
        [self.session.poll_timeout(), stall, self.linger_until]
            .into_iter()
            .flatten()
            .min()
    }

    /// Writes what it can of `data` without blocking; returns how many bytes were taken.
    fn push_bytes(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let total = data.len();
        match &mut self.tls {
            None => {
                while !data.is_empty() {
                    match self.stream.write(data) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => data = &data[n..],
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            // Only a timeout's `reject` can come before the client spoke, and TLS has no
            // way to carry it: it is dropped with the connection.
            Some(Tls::Waiting(_)) => data = &[],
            Some(Tls::Active(tls)) => {
                // rustls buffers a bounded amount of outgoing TLS and takes only what fits:
                // the data goes in pieces, each written to the socket before the next.
                while !data.is_empty() {
                    let n = tls.writer().write(data)?;
                    data = &data[n..];
                    let flushed = flush_tls(tls, &mut self.stream)?;
                    if n == 0 && (flushed || !tls.wants_write()) && !data.is_empty() {
                        if flushed {
                            // Nothing taken and nothing to flush: rustls will not take more.
                            return Err(io::ErrorKind::WriteZero.into());
                        }
                        break;
                    }
                    if !flushed {
                        break;
                    }
                }
            }
        }
        Ok(total - data.len())
    }

    /// Pushes out what waits; true when nothing is left waiting (for the socket or in
    /// rustls).
    fn drain(&mut self, now: Instant) -> io::Result<bool> {
        let mut progressed = false;
        if let Some(mut out) = self.out.take() {
            let n = self.push_bytes(&out)?;
            progressed |= n > 0;
            out.advance(n);
            if !out.is_empty() {
                self.out = Some(out);
            }
        }
        let mut drained = self.out.is_none();
        if let Some(Tls::Active(tls)) = &mut self.tls {
            let before = tls.wants_write();
            drained &= flush_tls(tls, &mut self.stream)?;
            progressed |= before && drained;
        }
        if drained || progressed {
            self.stalled_since = None;
        }
        if !drained && self.stalled_since.is_none() {
            self.stalled_since = Some(now);
        }
        Ok(drained)
    }

    /// Everything the session has to say, as far as the socket takes it. True when all of
    /// it left.
    fn transmit(&mut self, now: Instant, tx: &mut BytesMut, pool: &BufferPool) -> io::Result<bool> {
        loop {
            if !self.drain(now)? {
                return Ok(false);
            }
            tx.clear();
            if self.session.poll_transmit(now, tx) == 0 {
                return Ok(true);
            }
            let n = self.push_bytes(tx)?;
            if n < tx.len() {
                let mut out = pool.checkout().into_owned();
                out.extend_from_slice(&tx[n..]);
                self.out = Some(out);
            }
        }
    }
}

/// Writes the TLS records rustls has ready; true when none is left.
fn flush_tls(tls: &mut rustls::ServerConnection, stream: &mut TcpStream) -> io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// What one read turn on a connection ended with.
enum ReadEnd {
    /// Nothing more to read now.
    Drained,
    /// The read budget ran out (or the event channel filled): more waits.
    More,
    /// The peer closed its side (EOF or TLS close_notify).
    Eof,
    /// The connection failed.
    Failed(Disconnect),
}

/// The loop-side view the session event handler works with.
struct Ctx<'a> {
    shared: &'a Shared,
    out: &'a mut Outbox,
    pending: &'a mut HashMap<IpAddr, usize>,
    /// Connections to close because a newer one of the same identity took their name.
    superseded: &'a mut Vec<ConnId>,
}

impl Ctx<'_> {
    fn release_slot(&mut self, conn: &mut Conn) {
        if let Some(ip) = conn.slot.take() {
            if let Some(n) = self.pending.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.pending.remove(&ip);
                }
            }
        }
    }

    /// Handles every event the session of connection `id` has.
    fn deliver_all(&mut self, id: ConnId, conn: &mut Conn) {
        while let Some(event) = conn.session.poll_event() {
            self.on_event(id, conn, event);
        }
    }

    fn on_event(&mut self, id: ConnId, conn: &mut Conn, event: Event) {
        match event {
            Event::HelloReceived(hello) => {
                // The handshake is over either way: free the slot for the next one.
                self.release_slot(conn);
                // With TLS the name is the certificate's, not a claim.
                let identified = conn.tls.is_some();
                if let Some(tls) = &conn.tls {
                    let certs = match tls {
                        Tls::Active(tls) => tls.peer_certificates(),
                        Tls::Waiting(_) => None,
                    };
                    let named = certs.and_then(|c| c.first()).map_or(
                        Err(TlsError::NameMismatch(hello.node.as_str().to_owned())),
                        |cert| check_name(cert, hello.node.as_str()),
                    );
                    if let Err(e) = named {
                        conn.session.reject(CloseCode::Auth, &e.to_string());
                        return;
                    }
                }
                if let Err(refusal) =
                    claim_node(self.shared, id, &hello, identified, self.superseded)
                {
                    conn.session.reject(CloseCode::Busy, &refusal);
                    return;
                }
                let now = Instant::now();
                let (resume_seq, heard) = {
                    let mut table = self.shared.resume.lock();
                    // Once per connection: the owned name is no per-record cost.
                    let streams = table.entry(hello.node.as_str().to_owned()).or_default();
                    let slot = streams.entry(hello.stream).or_insert_with(|| {
                        Arc::new(Mutex::new(ResumeEntry {
                            expected: 0,
                            owner: id,
                            heard: now,
                        }))
                    });
                    let mut entry = slot.lock();
                    // The node is ours (claim_node): whoever owned the stream before is
                    // gone, or was not live and is being closed.
                    entry.owner = id;
                    let found = (entry.expected, entry.heard);
                    drop(entry);
                    conn.resume = Some(Arc::clone(slot));
                    found
                };
                conn.session.accept_resumed(resume_seq, heard, now);
                self.out.deliver(ServerEvent::Connected {
                    conn: id,
                    addr: conn.addr,
                    peer: hello.clone(),
                    resume_seq,
                });
                conn.peer = Some(hello);
            }
            Event::Samples { seq, records, gap } => {
                let (Some(p), Some(slot)) = (&conn.peer, &conn.resume) else {
                    return;
                };
                let owned = {
                    let mut entry = slot.lock();
                    // Not owned: a newer connection of the same identity took the stream over.
                    let owned = entry.owner == id;
                    if owned {
                        entry.heard = Instant::now();
                        // With confirmed delivery the position moves only when the
                        // application confirms (Server::confirm).
                        if !self.shared.config.session.confirm_delivery {
                            entry.expected = entry.expected.max(seq + records.len() as u64);
                        }
                    }
                    owned
                };
                if owned {
                    self.out.deliver(ServerEvent::Samples {
                        conn: id,
                        node: p.node.clone(),
                        stream: p.stream,
                        seq,
                        records,
                        gap,
                    });
                }
            }
            Event::Command(cmd) => self.out.deliver(ServerEvent::Command { conn: id, cmd }),
            Event::Ack(ack) => self.out.deliver(ServerEvent::Ack { conn: id, ack }),
            Event::Status(status) => self.out.deliver(ServerEvent::Status { conn: id, status }),
            Event::Decision(decision) => self
                .out
                .deliver(ServerEvent::Decision { conn: id, decision }),
            Event::LinkState(state) => self.out.deliver(ServerEvent::LinkState { conn: id, state }),
            Event::Rtt(rtt) => self.out.deliver(ServerEvent::Rtt { conn: id, rtt }),
            Event::Closed(reason) => conn.closed = Some(reason),
            Event::Connected { .. } | Event::AdviseRate(_) => {}
        }
    }
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
    superseded: &mut Vec<ConnId>,
) -> Result<(), String> {
    let mut conns = shared.conns.lock();
    // Connections holding a name, other than this one and the name's holder.
    let holder = conns.by_node.get(&hello.node).copied().filter(|h| *h != id);
    let mine = conns.info.get(&id).is_some_and(|c| c.node.is_some());
    let established = conns.by_node.len() - usize::from(holder.is_some()) - usize::from(mine);
    match holder {
        Some(_) if !identified => {
            return Err(format!("node {} is already connected", hello.node));
        }
        Some(old) => {
            superseded.push(old);
            // No longer the holder: commands for the node go to the new connection.
            conns.clear_holder(old);
        }
        None => {}
    }
    if established >= shared.config.max_clients {
        return Err("too many clients".to_owned());
    }
    conns.set_holder(id, hello.node.clone(), hello.role);
    Ok(())
}

/// The loop: owns the listener, every connection and the timers.
#[derive(Debug)]
struct EventLoop {
    poll: Poll,
    /// None once shutting down.
    listener: Option<TcpListener>,
    shared: Arc<Shared>,
    commands: Receiver<LoopCommand>,
    out: Outbox,
    conns: super::ids::IdMap<Box<Conn>>,
    /// Connections in the handshake, per IP address (the total is their sum).
    pending: HashMap<IpAddr, usize>,
    /// (deadline, connection); an entry is current when the connection's `deadline` is it.
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Connections with unread input.
    ready: VecDeque<ConnId>,
    /// Connections to service at the end of this turn.
    dirty: Vec<ConnId>,
    /// Connections to close: a newer connection of the same identity took their name.
    superseded: Vec<ConnId>,
    pool: BufferPool,
    /// Socket reads land here (one buffer for every connection).
    scratch: Box<[u8]>,
    /// A connection's plaintext input while the session takes it.
    rx: BytesMut,
    /// A connection's output while the socket takes it.
    tx: BytesMut,
    next_id: ConnId,
    accept_retry: Option<Instant>,
}

impl EventLoop {
    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut shutdown_by: Option<Instant> = None;
        let mut load = Coalescing::new(Instant::now());
        loop {
            let now = Instant::now();
            if shutdown_by.is_none() && self.shared.stop.load(Ordering::SeqCst) {
                shutdown_by = Some(now + SHUTDOWN_LINGER);
                self.begin_shutdown(now);
            }
            if let Some(by) = shutdown_by {
                if self.conns.is_empty() || now >= by {
                    let ids: Vec<_> = self.conns.keys().copied().collect();
                    for id in ids {
                        let cause = self
                            .conns
                            .get_mut(&id)
                            .and_then(|c| c.closed.take())
                            .map_or(
                                Disconnect::Io {
                                    op: IoOp::Write,
                                    kind: io::ErrorKind::TimedOut,
                                },
                                Disconnect::Closed,
                            );
                        self.finish(id, cause);
                    }
                    self.out.flush();
                    return;
                }
            }
            let coalescing = self.shared.coalescing.load(Ordering::Relaxed);
            let mut timeout = self.poll_timeout(now);
            if coalescing {
                let since = now.saturating_duration_since(load.last_wake);
                if since < TICK {
                    thread::sleep(TICK - since);
                }
                // Commands arrive without the waker meanwhile.
                timeout = Some(timeout.map_or(TICK, |t| t.min(TICK)));
            }
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "server poll failed");
                    thread::sleep(FULL_RETRY);
                }
                continue;
            }
            let now = Instant::now();
            load.last_wake = now;
            let mut io = false;
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(now),
                    WAKER => {}
                    Token(t) => {
                        let id = t as ConnId;
                        io = true;
                        load.saw(id);
                        let Some(conn) = self.conns.get_mut(&id) else {
                            continue;
                        };
                        conn.read_closed |= event.is_read_closed() || event.is_error();
                        if (event.is_readable() || event.is_read_closed() || event.is_error())
                            && !conn.readable
                        {
                            conn.readable = true;
                            self.ready.push_back(id);
                        }
                        if (event.is_writable() || event.is_error())
                            && (conn.out.is_some() || conn.stalled_since.is_some())
                        {
                            self.mark_dirty(id);
                        }
                    }
                }
            }
            load.wakes += u32::from(io);
            if now.duration_since(load.window_start) >= LOAD_WINDOW {
                let busy = load.wakes >= LOAD_WAKES && load.several;
                // Before this turn's drain: a command sent while the flag was still set is
                // drained below; one sent after it rings the waker.
                self.shared.coalescing.store(busy, Ordering::SeqCst);
                load = Coalescing {
                    last_wake: now,
                    ..Coalescing::new(now)
                };
            }
            if self.accept_retry.is_some_and(|t| t <= now) {
                self.accept_retry = None;
                self.accept_all(now);
            }
            self.drain_commands();
            self.out.flush();
            self.read_ready(now);
            self.fire_timers(now);
            self.service_dirty(now);
            self.out.flush();
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.ready.is_empty() && !self.out.is_full() {
            return Some(Duration::ZERO);
        }
        let mut t = self.timers.peek().map(|Reverse((t, _))| *t);
        if let Some(retry) = self.accept_retry {
            t = Some(t.map_or(retry, |t| t.min(retry)));
        }
        let mut wait = t.map(|t| t.saturating_duration_since(now));
        if self.out.is_full() || self.shared.stop.load(Ordering::Relaxed) {
            wait = Some(wait.map_or(FULL_RETRY, |w| w.min(FULL_RETRY)));
        }
        wait
    }

    fn mark_dirty(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(&id) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    fn accept_all(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, addr)) => self.accept(stream, addr, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // E.g. out of file descriptors: the pending connections stay in the
                    // backlog and readiness will not be reported again, so look later.
                    tracing::warn!(error = %e, "accept failed");
                    self.accept_retry = Some(now + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    fn accept(&mut self, mut stream: TcpStream, addr: SocketAddr, now: Instant) {
        let config = &self.shared.config;
        let ip = canonical(addr.ip());
        let total: usize = self.pending.values().sum();
        let here = self.pending.get(&ip).copied().unwrap_or(0);
        if total >= config.max_handshakes || here >= config.max_handshakes_per_addr {
            refuse_busy(&mut stream, &config.session, now);
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        // The settings in force now, even if reloaded before the client speaks.
        let tls = self.shared.tls.read().clone().map(Tls::Waiting);
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(id as usize),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.out.deliver(ServerEvent::Disconnected {
                conn: id,
                node: None,
                cause: Disconnect::io(IoOp::Setup, &e),
            });
            return;
        }
        *self.pending.entry(ip).or_insert(0) += 1;
        let session = Session::server(config.session.clone(), now, rand::random());
        self.shared.conns.lock().insert(id);
        self.conns.insert(
            id,
            Box::new(Conn {
                stream,
                addr,
                session,
                tls,
                partial: None,
                out: None,
                peer: None,
                resume: None,
                slot: Some(ip),
                readable: false,
                read_closed: false,
                dirty: false,
                stalled_since: None,
                deadline: None,
                closed: None,
                linger_until: None,
            }),
        );
        self.schedule(id);
    }

    /// Puts the connection's next deadline in the heap, unless an earlier one is there.
    fn schedule(&mut self, id: ConnId) {
        let write_timeout = self.shared.config.write_timeout;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if let Some(next) = conn.next_deadline(write_timeout) {
            if conn.deadline.is_none_or(|d| next < d) {
                conn.deadline = Some(next);
                self.timers.push(Reverse((next, id)));
            }
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        let write_timeout = self.shared.config.write_timeout;
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            if conn.deadline != Some(t) {
                continue; // superseded by an earlier deadline that already fired
            }
            conn.deadline = None;
            let timed_out = Disconnect::Io {
                op: IoOp::Write,
                kind: io::ErrorKind::TimedOut,
            };
            if conn.stalled_since.is_some_and(|s| s + write_timeout <= now) {
                // A reader that does not drain within the write timeout is cut off.
                self.finish(id, timed_out);
                continue;
            }
            if conn.linger_until.is_some_and(|l| l <= now) {
                let cause = conn.closed.take().map_or(timed_out, Disconnect::Closed);
                self.finish(id, cause);
                continue;
            }
            conn.session.handle_timeout(now);
            self.mark_dirty(id);
        }
    }

    fn drain_commands(&mut self) {
        self.shared.woken.store(false, Ordering::SeqCst);
        // One reading of the clock for the whole drain: it takes microseconds.
        let now = Instant::now();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                LoopCommand::To(id, Command::Confirm(upto)) => self.confirm(id, upto, now),
                LoopCommand::To(id, command) => {
                    let Some(conn) = self.conns.get_mut(&id) else {
                        continue;
                    };
                    apply(&mut conn.session, command);
                    self.mark_dirty(id);
                }
                LoopCommand::Confirm(confirmations) => {
                    for (id, upto) in confirmations {
                        self.confirm(id, upto, now);
                    }
                }
            }
        }
    }

    /// The application confirmed the records below `upto` of connection `id`.
    fn confirm(&mut self, id: ConnId, upto: u64, now: Instant) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.session.confirm(upto, now);
        // A confirmation (about one per record) only sets when the next `rx` is due. Unless
        // that, or anything else, is due now, the session has nothing to write: the timer
        // is enough, no service.
        if conn.session.poll_timeout().is_some_and(|t| t > now) {
            self.schedule(id);
        } else {
            self.mark_dirty(id);
        }
    }

    fn read_ready(&mut self, now: Instant) {
        for _ in 0..self.ready.len() {
            if self.out.is_full() {
                return;
            }
            let Some(id) = self.ready.pop_front() else {
                return;
            };
            match self.read_conn(id, now) {
                ReadEnd::Drained => {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.readable = false;
                    }
                    self.service(id, now);
                }
                ReadEnd::More => {
                    self.ready.push_back(id);
                    self.service(id, now);
                }
                ReadEnd::Eof => {
                    // Whatever the session made of the last bytes, then the end.
                    self.drain_events(id);
                    let cause = self
                        .conns
                        .get_mut(&id)
                        .and_then(|c| c.closed.take())
                        .map_or(Disconnect::PeerHungUp, Disconnect::Closed);
                    self.finish(id, cause);
                }
                ReadEnd::Failed(cause) => {
                    self.drain_events(id);
                    self.finish(id, cause);
                }
            }
        }
    }

    /// Reads what the connection has (up to the read budget) and feeds it to its session.
    fn read_conn(&mut self, id: ConnId, now: Instant) -> ReadEnd {
        let Some(conn) = self.conns.get_mut(&id) else {
            return ReadEnd::Drained;
        };
        let rx = &mut self.rx;
        rx.clear();
        if let Some(partial) = conn.partial.take() {
            rx.extend_from_slice(&partial);
        }
        let mut budget = READ_BUDGET;
        let end = loop {
            if conn.session.is_closed() {
                break ReadEnd::Drained;
            }
            if budget == 0 || self.out.is_full() {
                break ReadEnd::More;
            }
            let mut short = false;
            let n = match &mut conn.tls {
                None => match conn.stream.read(&mut self.scratch) {
                    Ok(0) => break ReadEnd::Eof,
                    Ok(n) => {
                        rx.extend_from_slice(&self.scratch[..n]);
                        // A read that did not fill the buffer took everything the socket
                        // had: later bytes raise readiness again (edge-triggered), so the
                        // read that would say WouldBlock is saved. Not when the peer's FIN
                        // was already reported: it raises nothing more and must be read.
                        short = n < self.scratch.len() && !conn.read_closed;
                        n
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break ReadEnd::Drained,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => break ReadEnd::Failed(Disconnect::io(IoOp::Read, &e)),
                },
                Some(Tls::Waiting(settings)) => match settings.connection() {
                    Ok(tls) => {
                        conn.tls = Some(Tls::Active(Box::new(tls)));
                        continue;
                    }
                    Err(e) => break ReadEnd::Failed(Disconnect::Tls(e)),
                },
                Some(Tls::Active(tls)) => match tls_read(tls, &mut conn.stream, rx) {
                    Ok(TlsRead::Data(n)) => n,
                    Ok(TlsRead::WouldBlock) => break ReadEnd::Drained,
                    Ok(TlsRead::Closed) => {
                        conn.session.handle_input(now, rx);
                        break ReadEnd::Eof;
                    }
                    Err(cause) => {
                        // The alert explaining a failure.
                        let _ = flush_tls(tls, &mut conn.stream);
                        break ReadEnd::Failed(cause);
                    }
                },
            };
            budget = budget.saturating_sub(n);
            conn.session.handle_input(now, rx);
            // Deliver as we go, so the outbox sees how full the application is.
            Ctx {
                shared: &self.shared,
                out: &mut self.out,
                pending: &mut self.pending,
                superseded: &mut self.superseded,
            }
            .deliver_all(id, conn);
            if short {
                break ReadEnd::Drained;
            }
        };
        if !rx.is_empty() && !matches!(end, ReadEnd::Eof | ReadEnd::Failed(_)) {
            let mut partial = self.pool.checkout().into_owned();
            partial.extend_from_slice(rx);
            conn.partial = Some(partial);
        }
        rx.clear();
        if rx.capacity() > RX_KEEP {
            *rx = BytesMut::with_capacity(READ_CHUNK);
        }
        self.close_superseded();
        end
    }

    /// Closes the connections whose name a newer connection of the same identity took.
    fn close_superseded(&mut self) {
        while let Some(id) = self.superseded.pop() {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.session.close(
                    CloseCode::Protocol,
                    "superseded by a newer connection of the same node",
                );
            }
            self.mark_dirty(id);
        }
    }

    fn drain_events(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        Ctx {
            shared: &self.shared,
            out: &mut self.out,
            pending: &mut self.pending,
            superseded: &mut self.superseded,
        }
        .deliver_all(id, conn);
        self.close_superseded();
    }

    fn service_dirty(&mut self, now: Instant) {
        while let Some(id) = self.dirty.pop() {
            self.service(id, now);
        }
    }

    /// Reports the session's events, writes what it has to say, ends it when it closed.
    fn service(&mut self, id: ConnId, now: Instant) {
        self.drain_events(id);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.dirty = false;
        let sent = conn.transmit(now, &mut self.tx, &self.pool);
        self.tx.clear();
        if self.tx.capacity() > RX_KEEP {
            self.tx = BytesMut::with_capacity(READ_CHUNK);
        }
        match sent {
            Err(e) => {
                self.finish(id, Disconnect::io(IoOp::Write, &e));
                return;
            }
            Ok(true) if conn.closed.is_some() => {
                if let Some(Tls::Active(tls)) = &mut conn.tls {
                    tls.send_close_notify();
                    let _ = flush_tls(tls, &mut conn.stream);
                }
                let reason = conn.closed.take();
                self.finish(
                    id,
                    reason.map_or(Disconnect::PeerHungUp, Disconnect::Closed),
                );
                return;
            }
            Ok(_) => {}
        }
        self.schedule(id);
    }

    /// Removes the connection and tells the application.
    fn finish(&mut self, id: ConnId, cause: Disconnect) {
        let Some(mut conn) = self.conns.remove(&id) else {
            return;
        };
        if let Some(ip) = conn.slot.take() {
            if let Some(n) = self.pending.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.pending.remove(&ip);
                }
            }
        }
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let _ = conn.stream.shutdown(Shutdown::Both);
        self.shared.conns.lock().remove(id);
        self.out.deliver(ServerEvent::Disconnected {
            conn: id,
            node: conn.peer.map(|p| p.node),
            cause,
        });
    }

    /// Stops accepting and closes every session with `bye shutdown`.
    fn begin_shutdown(&mut self, now: Instant) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let ids: Vec<_> = self.conns.keys().copied().collect();
        for id in ids {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.session.close(CloseCode::Shutdown, "shutting down");
                conn.linger_until = Some(now + SHUTDOWN_LINGER);
            }
            self.mark_dirty(id);
        }
        self.service_dirty(now);
    }
}

/// What one TLS read gave.
enum TlsRead {
    Data(usize),
    WouldBlock,
    Closed,
}

/// One read of TLS records from the socket, processed, the plaintext appended to `rx`.
fn tls_read(
    tls: &mut rustls::ServerConnection,
    stream: &mut TcpStream,
    rx: &mut BytesMut,
) -> Result<TlsRead, Disconnect> {
    let n = match tls.read_tls(stream) {
        Ok(0) => return Ok(TlsRead::Closed),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(TlsRead::WouldBlock),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
        Err(e) => return Err(Disconnect::io(IoOp::Read, &e)),
    };
    let state = tls.process_new_packets().map_err(Disconnect::Tls)?;
    let len = state.plaintext_bytes_to_read();
    if len > 0 {
        let start = rx.len();
        rx.resize(start + len, 0);
        tls.reader()
            .read_exact(&mut rx[start..])
            .map_err(|e| Disconnect::io(IoOp::Read, &e))?;
    }
    // Handshake answers go out with the next service of the connection.
    if state.peer_has_closed() {
        return Ok(TlsRead::Closed);
    }
    Ok(TlsRead::Data(n.max(1)))
}

/// Over a handshake limit: `reject busy` and close at once (the socket is non-blocking: a
/// peer whose buffer is full just gets closed).
fn refuse_busy(stream: &mut TcpStream, template: &SessionConfig, now: Instant) {
    let mut session = Session::server(template.clone(), now, rand::random());
    session.reject(CloseCode::Busy, "too many connections in the handshake");
    let mut out = BytesMut::new();
    session.poll_transmit(now, &mut out);
    let _ = stream.write(&out);
    let _ = stream.shutdown(Shutdown::Both);
}
