//! Many simulated drones on one event loop: a client [`Session`] per drone, all driven by
//! one thread over mio (readiness, no async runtime), so `sarlink-ground load` can hold
//! 10,000 connections without 20,000 client threads. Plaintext, or TLS through rustls's
//! sans-IO connection when a drone is given [`ClientTls`]; each drone reconnects with the
//! client's backoff and resumes its stream like a [`Client`](sarlink_link::driver::Client),
//! and reports the same [`ClientEvent`]s.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use sarlink_link::driver::{Backoff, ClientEvent, Disconnect, IoOp};
use sarlink_link::tls::ClientTls;
use sarlink_link::{Event, Session, SessionConfig};
use sarlink_schema::RssiRecord;
use sarlink_wire::CloseCode;

const WAKER: Token = Token(usize::MAX);
/// Events that may wait for the application; more are dropped (like a `Client`'s).
const EVENT_CAPACITY: usize = 65_536;
/// On close, how long the drones may take to have their samples acknowledged.
const DRAIN: Duration = Duration::from_secs(5);
/// How often, meanwhile, the loop looks whether they are.
const DRAIN_CHECK: Duration = Duration::from_millis(20);

/// Counters of one simulated drone.
#[derive(Debug, Default)]
pub struct DroneCounters {
    /// Samples produced (pushed into the session).
    pub samples_produced: AtomicU64,
    /// Samples sent again after reconnecting.
    pub samples_resent: AtomicU64,
    /// Samples lost to ring overflow before they were sent.
    pub samples_dropped: AtomicU64,
    /// Successful handshakes.
    pub connections: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    samples: Sender<(usize, RssiRecord)>,
    waker: Waker,
    woken: AtomicBool,
    stop: AtomicBool,
}

/// The drones, running on their loop thread until [`Swarm::close`].
#[derive(Debug)]
pub struct Swarm {
    shared: Arc<Shared>,
    events: Receiver<(usize, ClientEvent)>,
    counters: Arc<Vec<DroneCounters>>,
    thread: Option<JoinHandle<()>>,
}

impl Swarm {
    /// Starts one drone per session configuration, all connecting to `server`; a drone
    /// with [`ClientTls`] speaks TLS.
    ///
    /// # Errors
    /// When the poll instance or the thread cannot be made.
    pub fn spawn(
        sessions: Vec<(SessionConfig, Option<ClientTls>)>,
        server: SocketAddr,
        backoff: Backoff,
    ) -> io::Result<Swarm> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let (samples_tx, samples_rx) = unbounded();
        let (events_tx, events_rx) = bounded(EVENT_CAPACITY);
        let counters: Arc<Vec<DroneCounters>> =
            Arc::new(sessions.iter().map(|_| DroneCounters::default()).collect());
        let shared = Arc::new(Shared {
            samples: samples_tx,
            waker,
            woken: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let now = Instant::now();
        let drones = sessions
            .into_iter()
            .map(|(config, tls_config)| Drone {
                session: Session::client(config, now, rand::random()),
                tls_config,
                tls: None,
                stream: None,
                connecting: false,
                partial: BytesMut::new(),
                out: BytesMut::new(),
                retry_at: Some(now),
                failures: 0,
                connected: false,
                attempted: false,
                deadline: None,
                dirty: false,
            })
            .collect();
        let mut swarm_loop = SwarmLoop {
            poll,
            server,
            backoff,
            shared: Arc::clone(&shared),
            samples: samples_rx,
            events: events_tx,
            counters: Arc::clone(&counters),
            drones,
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            scratch: vec![0; 64 * 1024].into_boxed_slice(),
            tx: BytesMut::with_capacity(64 * 1024),
        };
        let thread = thread::Builder::new()
            .name("sl-swarm".into())
            .spawn(move || swarm_loop.run())?;
        Ok(Swarm {
            shared,
            events: events_rx,
            counters,
            thread: Some(thread),
        })
    }

    /// Hands a sample to drone `drone` (it waits in the drone's ring while disconnected).
    /// False once the swarm has stopped.
    pub fn push_sample(&self, drone: usize, record: RssiRecord) -> bool {
        if self.shared.samples.send((drone, record)).is_err() {
            return false;
        }
        if !self.shared.woken.swap(true, Ordering::SeqCst) {
            let _ = self.shared.waker.wake();
        }
        true
    }

    /// Every drone's events, tagged with the drone's index.
    pub fn events(&self) -> &Receiver<(usize, ClientEvent)> {
        &self.events
    }

    /// Drone `drone`'s counters.
    pub fn counters(&self, drone: usize) -> &DroneCounters {
        &self.counters[drone]
    }

    /// How many drones.
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// Waits (at most 5 s) until every connected drone's samples are acknowledged, then sends
    /// `bye shutdown` on every connection and stops the loop.
    pub fn close(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.shared.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

#[derive(Debug)]
struct Drone {
    session: Session,
    /// The drone's TLS settings; plaintext without.
    tls_config: Option<ClientTls>,
    /// The current connection's TLS state.
    tls: Option<Box<rustls::ClientConnection>>,
    stream: Option<TcpStream>,
    /// The connect has not completed yet.
    connecting: bool,
    /// A partly received frame.
    partial: BytesMut,
    /// Bytes the socket has not taken yet.
    out: BytesMut,
    retry_at: Option<Instant>,
    failures: u32,
    /// The current connection completed its handshake.
    connected: bool,
    /// A connection was tried before (the session's first `hello` is queued at start).
    attempted: bool,
    deadline: Option<Instant>,
    dirty: bool,
}

impl Drone {
    fn next_deadline(&self) -> Option<Instant> {
        if self.stream.is_none() {
            return self.retry_at;
        }
        self.session.poll_timeout()
    }
}

#[derive(Debug)]
struct SwarmLoop {
    poll: Poll,
    server: SocketAddr,
    backoff: Backoff,
    shared: Arc<Shared>,
    samples: Receiver<(usize, RssiRecord)>,
    events: Sender<(usize, ClientEvent)>,
    counters: Arc<Vec<DroneCounters>>,
    drones: Vec<Drone>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    dirty: Vec<usize>,
    scratch: Box<[u8]>,
    tx: BytesMut,
}

impl SwarmLoop {
    fn run(&mut self) {
        for i in 0..self.drones.len() {
            self.schedule(i);
        }
        let mut events = Events::with_capacity(1024);
        // On close: keep running until every connected drone's samples are acknowledged
        // (at most DRAIN), so that a run's "lost" counts only what the ground lost.
        let mut drain_until: Option<Instant> = None;
        let mut next_check = Instant::now();
        loop {
            let now = Instant::now();
            if self.shared.stop.load(Ordering::SeqCst) {
                let until = *drain_until.get_or_insert(now + DRAIN);
                if now >= until || (now >= next_check && self.all_acknowledged()) {
                    self.shutdown();
                    return;
                }
                next_check = now + DRAIN_CHECK;
            }
            let mut timeout = self
                .timers
                .peek()
                .map(|Reverse((t, _))| t.saturating_duration_since(now));
            if drain_until.is_some() {
                timeout = Some(timeout.map_or(DRAIN_CHECK, |t| t.min(DRAIN_CHECK)));
            }
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "swarm poll failed");
                    return;
                }
                continue;
            }
            let now = Instant::now();
            for event in events.iter() {
                let Token(i) = event.token();
                if i == WAKER.0 || i >= self.drones.len() {
                    continue;
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read(i, now);
                }
                if event.is_writable() {
                    let d = &mut self.drones[i];
                    if d.connecting {
                        match d.stream.as_ref().map(|s| (s.take_error(), s.peer_addr())) {
                            Some((Ok(None), Ok(_))) => d.connecting = false,
                            Some((Ok(Some(e)) | Err(e), _)) => {
                                self.end(i, io_cause(IoOp::Connect, &e), now);
                                continue;
                            }
                            _ => {} // still connecting
                        }
                    }
                    self.mark_dirty(i);
                }
            }
            self.shared.woken.store(false, Ordering::SeqCst);
            while let Ok((i, record)) = self.samples.try_recv() {
                if let Some(d) = self.drones.get_mut(i) {
                    d.session.push_sample(record);
                    self.mark_dirty(i);
                }
            }
            while let Some(Reverse((t, i))) = self.timers.peek().copied() {
                if t > now {
                    break;
                }
                self.timers.pop();
                let d = &mut self.drones[i];
                if d.deadline != Some(t) {
                    continue;
                }
                d.deadline = None;
                if d.stream.is_none() {
                    if d.retry_at.is_some_and(|r| r <= now) {
                        self.connect(i, now);
                    }
                } else {
                    d.session.handle_timeout(now);
                }
                self.mark_dirty(i);
            }
            while let Some(i) = self.dirty.pop() {
                self.service(i, now);
            }
        }
    }

    /// Every drone with a connection has no sample waiting for acknowledgement.
    fn all_acknowledged(&self) -> bool {
        self.drones
            .iter()
            .all(|d| !d.connected || (d.session.unacked() == 0 && d.session.backlog() == 0))
    }

    fn mark_dirty(&mut self, i: usize) {
        let d = &mut self.drones[i];
        if !d.dirty {
            d.dirty = true;
            self.dirty.push(i);
        }
    }

    fn schedule(&mut self, i: usize) {
        let d = &mut self.drones[i];
        if let Some(next) = d.next_deadline() {
            if d.deadline.is_none_or(|t| next < t) {
                d.deadline = Some(next);
                self.timers.push(Reverse((next, i)));
            }
        }
    }

    fn connect(&mut self, i: usize, now: Instant) {
        let d = &mut self.drones[i];
        d.retry_at = None;
        d.tls = match d.tls_config.as_ref().map(ClientTls::connection) {
            None => None,
            Some(Ok(c)) => Some(Box::new(c)),
            Some(Err(e)) => return self.end(i, Disconnect::Tls(e), now),
        };
        let d = &mut self.drones[i];
        match TcpStream::connect(self.server) {
            Ok(mut stream) => {
                let _ = stream.set_nodelay(true);
                if let Err(e) = self.poll.registry().register(
                    &mut stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    self.end(i, io_cause(IoOp::Setup, &e), now);
                    return;
                }
                if std::mem::replace(&mut d.attempted, true) {
                    d.session.reconnect(now, rand::random());
                }
                d.stream = Some(stream);
                d.connecting = true;
                d.connected = false;
                d.partial.clear();
                d.out.clear();
            }
            Err(e) => self.end(i, io_cause(IoOp::Connect, &e), now),
        }
    }

    fn read(&mut self, i: usize, now: Instant) {
        let d = &mut self.drones[i];
        let Some(stream) = d.stream.as_mut() else {
            return;
        };
        let mut ended = None;
        loop {
            let read = match d.tls.as_mut() {
                None => stream.read(&mut self.scratch),
                Some(tls) => tls.read_tls(stream),
            };
            match read {
                Ok(0) => {
                    ended = Some(Disconnect::PeerHungUp);
                    break;
                }
                Ok(n) => match d.tls.as_mut() {
                    None => d.partial.extend_from_slice(&self.scratch[..n]),
                    Some(tls) => {
                        if let Err(e) = tls_plaintext(tls, &mut self.scratch, &mut d.partial) {
                            ended = Some(e);
                            break;
                        }
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    ended = Some(io_cause(IoOp::Read, &e));
                    break;
                }
            }
        }
        d.session.handle_input(now, &mut d.partial);
        if d.partial.is_empty() && d.partial.capacity() > 4096 {
            d.partial = BytesMut::new();
        }
        // The handshake's answers (and rustls's alerts) go out at once.
        if d.tls.as_ref().is_some_and(|t| t.wants_write()) {
            self.mark_dirty(i);
        }
        let closed = self.events_of(i);
        match (closed, ended) {
            (Some(cause), _) => {
                // The final frame, if the session has one, then the end.
                let _ = transmit(&mut self.drones[i], now, &mut self.tx);
                self.end(i, cause, now);
            }
            (None, Some(cause)) => self.end(i, cause, now),
            (None, None) => self.mark_dirty(i),
        }
    }

    /// Reports the session's events; a closed session ends the connection.
    fn events_of(&mut self, i: usize) -> Option<Disconnect> {
        let d = &mut self.drones[i];
        let mut closed = None;
        while let Some(event) = d.session.poll_event() {
            match &event {
                Event::Connected { .. } => {
                    d.connected = true;
                    d.failures = 0;
                    self.counters[i].connections.fetch_add(1, Ordering::Relaxed);
                }
                Event::Closed(reason) => closed = Some(Disconnect::Closed(reason.clone())),
                _ => {}
            }
            if let Some(out) = ClientEvent::from_session(event, &d.session) {
                let _ = self.events.try_send((i, out));
            }
        }
        closed
    }

    fn service(&mut self, i: usize, now: Instant) {
        self.drones[i].dirty = false;
        let closed = self.events_of(i);
        let d = &mut self.drones[i];
        if d.stream.is_some() && !d.connecting {
            if let Err(e) = transmit(d, now, &mut self.tx) {
                self.end(i, io_cause(IoOp::Write, &e), now);
                return;
            }
        }
        if let Some(cause) = closed {
            self.end(i, cause, now);
            return;
        }
        let d = &self.drones[i];
        let c = &self.counters[i];
        let s = d.session.sender_stats();
        c.samples_produced.store(s.produced, Ordering::Relaxed);
        c.samples_resent.store(s.resent, Ordering::Relaxed);
        c.samples_dropped.store(s.dropped_unsent, Ordering::Relaxed);
        self.schedule(i);
    }

    /// The connection ended: tell the application, retry after the backoff delay.
    fn end(&mut self, i: usize, cause: Disconnect, now: Instant) {
        let d = &mut self.drones[i];
        d.tls = None;
        if let Some(mut stream) = d.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
            let _ = stream.shutdown(Shutdown::Both);
        }
        let retry_in = self.backoff.delay(d.failures, rand::random::<f64>());
        d.failures = d.failures.saturating_add(1);
        d.connecting = false;
        d.connected = false;
        d.retry_at = Some(now + retry_in);
        d.deadline = None;
        let _ = self
            .events
            .try_send((i, ClientEvent::Disconnected { cause, retry_in }));
        self.schedule(i);
    }

    fn shutdown(&mut self) {
        let now = Instant::now();
        for d in &mut self.drones {
            if d.stream.is_some() && !d.connecting {
                d.session.close(CloseCode::Shutdown, "shutting down");
                let _ = transmit(d, now, &mut self.tx);
            }
            if let Some(stream) = d.stream.take() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

fn io_cause(op: IoOp, e: &io::Error) -> Disconnect {
    Disconnect::Io { op, kind: e.kind() }
}

/// Decrypts what rustls has read into `partial`.
fn tls_plaintext(
    tls: &mut rustls::ClientConnection,
    scratch: &mut [u8],
    partial: &mut BytesMut,
) -> Result<(), Disconnect> {
    tls.process_new_packets().map_err(Disconnect::Tls)?;
    loop {
        match tls.reader().read(scratch) {
            Ok(0) => return Err(Disconnect::PeerHungUp),
            Ok(n) => partial.extend_from_slice(&scratch[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(io_cause(IoOp::Read, &e)),
        }
    }
}

/// Writes what waits and what the session has to say, as far as the socket takes it.
fn transmit(d: &mut Drone, now: Instant, tx: &mut BytesMut) -> io::Result<()> {
    let Some(stream) = d.stream.as_mut() else {
        return Ok(());
    };
    if let Some(tls) = d.tls.as_mut() {
        return transmit_tls(&mut d.session, tls, stream, &mut d.out, now, tx);
    }
    loop {
        while !d.out.is_empty() {
            match stream.write(&d.out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => d.out.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if d.out.capacity() > 4096 {
            d.out = BytesMut::new();
        }
        tx.clear();
        if d.session.poll_transmit(now, tx) == 0 {
            return Ok(());
        }
        d.out.extend_from_slice(tx);
    }
}

/// [`transmit`] through TLS: the session's bytes go into rustls (which holds a bounded
/// amount, and everything until its handshake is done), its records into the socket.
fn transmit_tls(
    session: &mut Session,
    tls: &mut rustls::ClientConnection,
    stream: &mut TcpStream,
    out: &mut BytesMut,
    now: Instant,
    tx: &mut BytesMut,
) -> io::Result<()> {
    loop {
        let mut took = 0;
        while !out.is_empty() {
            let n = tls.writer().write(out)?;
            if n == 0 {
                break;
            }
            out.advance(n);
            took += n;
        }
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if !out.is_empty() {
            if took == 0 {
                // rustls is full (or still shaking hands): wait for the socket.
                return Ok(());
            }
            continue;
        }
        if out.capacity() > 4096 {
            *out = BytesMut::new();
        }
        tx.clear();
        if session.poll_transmit(now, tx) == 0 {
            return Ok(());
        }
        out.extend_from_slice(tx);
    }
}
