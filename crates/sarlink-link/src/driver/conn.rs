//! The client's connection: runs one [`Session`] over one `TcpStream`. A reader thread turns
//! socket reads into pooled buffers on a bounded channel; the calling thread owns the
//! session, waits on that channel, the application's command channel and the session's next
//! deadline, and writes what the session transmits. (The server runs every connection on
//! one event loop instead: see `server.rs`.)

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::{Receiver, Sender, bounded, select};
use sarlink_pool::{BufferPool, PooledBuf};
use sarlink_schema::Message;
use sarlink_wire::CloseCode;

use crate::session::{CloseReason, Event, Session};

/// Read chunks a connection may have in flight to its session thread.
const INPUT_CHANNEL: usize = 16;
/// The longest the session thread sleeps without looking at the clock.
const MAX_WAIT: Duration = Duration::from_millis(250);

/// What the application asks of a running connection.
#[derive(Debug)]
pub(crate) enum Command {
    Send(Box<Message>),
    Sample(sarlink_schema::RssiRecord),
    Close(CloseCode, String),
    Confirm(u64),
}

enum Input {
    Data(PooledBuf<'static>),
    Eof(Option<io::Error>),
}

/// A socket operation of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IoOp {
    /// Resolving the server's address.
    Resolve,
    /// Connecting to the server.
    Connect,
    /// Setting socket options or cloning the socket.
    Setup,
    /// Reading.
    Read,
    /// Writing.
    Write,
}

impl std::fmt::Display for IoOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoOp::Resolve => "resolve",
            IoOp::Connect => "connect",
            IoOp::Setup => "socket setup",
            IoOp::Read => "read",
            IoOp::Write => "write",
        })
    }
}

/// Why a connection ended (or could not be made).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Disconnect {
    /// The session closed: by us (with a [`SessionError`](crate::SessionError)), by the
    /// peer's `bye` or by the server's `reject`. Its final frame was written.
    #[error("{0}")]
    Closed(CloseReason),
    /// The peer closed the connection without `bye`.
    #[error("peer closed the connection")]
    PeerHungUp,
    /// TLS failed: the handshake (certificate refused, wrong name, revoked...) or a record
    /// that did not authenticate.
    #[error("TLS: {0}")]
    Tls(rustls::Error),
    /// A socket operation failed.
    #[error("{op} failed: {kind}")]
    Io {
        /// What the driver was doing.
        op: IoOp,
        /// How it failed.
        kind: io::ErrorKind,
    },
}

impl Disconnect {
    /// The close code involved, if the session closed with a known one.
    pub fn code(&self) -> Option<CloseCode> {
        match self {
            Disconnect::Closed(reason) => reason.code(),
            _ => None,
        }
    }

    pub(crate) fn io(op: IoOp, e: &io::Error) -> Self {
        Disconnect::Io { op, kind: e.kind() }
    }
}

/// Socket options applied to every connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SocketOptions {
    pub(crate) write_timeout: Duration,
    pub(crate) read_poll: Duration,
    /// Name of the reader thread (see the thread names in the driver's docs).
    pub(crate) reader_name: &'static str,
}

/// Runs the connection until it ends. `on_event` sees every session event (it may act on
/// the session, e.g. accept a hello); `stop` asks for a clean close with `bye shutdown`.
/// With `tls`, the session's bytes travel inside that TLS connection.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    session: &mut Session,
    stream: TcpStream,
    tls: Option<rustls::Connection>,
    options: SocketOptions,
    pool: &BufferPool,
    commands: &Receiver<Command>,
    stop: &AtomicBool,
    mut on_event: impl FnMut(&mut Session, Event),
) -> Disconnect {
    if let Err(e) = configure(&stream, options) {
        return Disconnect::io(IoOp::Setup, &e);
    }
    let reader = match stream.try_clone() {
        Ok(r) => r,
        Err(e) => return Disconnect::io(IoOp::Setup, &e),
    };
    let (input_tx, input_rx) = bounded(INPUT_CHANNEL);
    let reader_done = Arc::new(AtomicBool::new(false));
    let reader_thread = {
        let pool = pool.clone();
        let done = Arc::clone(&reader_done);
        thread::Builder::new()
            .name(options.reader_name.into())
            .spawn(move || read_loop(reader, &pool, &input_tx, &done))
            .expect("spawn reader thread")
    };
    let mut tls = tls;
    let ended = pump(
        session,
        &stream,
        &mut tls,
        &input_rx,
        commands,
        stop,
        &mut on_event,
    );
    reader_done.store(true, Ordering::Relaxed);
    let _ = stream.shutdown(Shutdown::Both);
    drop(input_rx);
    let _ = reader_thread.join();
    ended
}

fn configure(stream: &TcpStream, options: SocketOptions) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(options.write_timeout))?;
    // Reads wake up this often so the reader notices when the connection is done.
    stream.set_read_timeout(Some(options.read_poll))
}

fn read_loop(mut stream: TcpStream, pool: &BufferPool, tx: &Sender<Input>, done: &AtomicBool) {
    loop {
        let mut buf = pool.checkout().into_owned();
        let cap = buf.capacity();
        buf.resize(cap, 0);
        let n = loop {
            match stream.read(&mut buf[..]) {
                Ok(n) => break Ok(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if done.load(Ordering::Relaxed) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        match n {
            Ok(0) => {
                let _ = tx.send(Input::Eof(None));
                return;
            }
            Ok(n) => {
                buf.truncate(n);
                if tx.send(Input::Data(buf)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Input::Eof(Some(e)));
                return;
            }
        }
    }
}

/// Writes every TLS record rustls has ready.
fn flush_tls(tls: &mut rustls::Connection, mut stream: &TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        tls.write_tls(&mut stream)?;
    }
    Ok(())
}

/// Encrypts and writes `data`. rustls buffers a bounded amount of outgoing TLS (64 KiB by
/// default) and takes only what fits, so the data goes in pieces, each written to the socket
/// before the next: memory stays bounded whatever the session hands over.
fn write_tls_all(
    tls: &mut rustls::Connection,
    stream: &TcpStream,
    mut data: &[u8],
) -> io::Result<()> {
    while !data.is_empty() {
        let n = tls.writer().write(data)?;
        data = &data[n..];
        if n == 0 && !tls.wants_write() {
            // Nothing taken and nothing to flush: rustls will not take more.
            return Err(io::ErrorKind::WriteZero.into());
        }
        flush_tls(tls, stream)?;
    }
    Ok(())
}

/// Feeds received TLS records to rustls and appends the plaintext to `inbuf`. Returns
/// whether the peer closed its side (close_notify).
fn tls_input(
    tls: &mut rustls::Connection,
    mut data: &[u8],
    inbuf: &mut BytesMut,
) -> Result<bool, Disconnect> {
    let mut peer_closed = false;
    while !data.is_empty() {
        tls.read_tls(&mut data)
            .map_err(|e| Disconnect::io(IoOp::Read, &e))?;
        let state = tls.process_new_packets().map_err(Disconnect::Tls)?;
        let n = state.plaintext_bytes_to_read();
        if n > 0 {
            let start = inbuf.len();
            inbuf.resize(start + n, 0);
            tls.reader()
                .read_exact(&mut inbuf[start..])
                .map_err(|e| Disconnect::io(IoOp::Read, &e))?;
        }
        peer_closed |= state.peer_has_closed();
    }
    Ok(peer_closed)
}

/// Takes one received chunk in: as is, or through TLS.
fn take_input(
    tls: &mut Option<rustls::Connection>,
    stream: &TcpStream,
    chunk: &[u8],
    inbuf: &mut BytesMut,
) -> Result<bool, Disconnect> {
    let Some(tls) = tls else {
        inbuf.extend_from_slice(chunk);
        return Ok(false);
    };
    let result = tls_input(tls, chunk, inbuf);
    // Handshake answers, or the alert explaining a failure.
    let flushed = flush_tls(tls, stream);
    let peer_closed = result?;
    flushed.map_err(|e| Disconnect::io(IoOp::Write, &e))?;
    Ok(peer_closed)
}

fn pump(
    session: &mut Session,
    mut stream: &TcpStream,
    tls: &mut Option<rustls::Connection>,
    input: &Receiver<Input>,
    commands: &Receiver<Command>,
    stop: &AtomicBool,
    on_event: &mut impl FnMut(&mut Session, Event),
) -> Disconnect {
    // A TLS client speaks first.
    if let Some(t) = tls.as_mut() {
        if let Err(e) = flush_tls(t, stream) {
            return Disconnect::io(IoOp::Write, &e);
        }
    }
    let mut inbuf = BytesMut::with_capacity(64 * 1024);
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut closed: Option<CloseReason> = None;
    let mut stopping = false;
    loop {
        // Let the session act on the clock, then report what happened.
        let now = Instant::now();
        session.handle_timeout(now);
        while let Some(event) = session.poll_event() {
            if let Event::Closed(reason) = &event {
                closed = Some(reason.clone());
            }
            on_event(session, event);
        }
        // Write everything the session has to say.
        loop {
            out.clear();
            if session.poll_transmit(Instant::now(), &mut out) == 0 {
                break;
            }
            let written = match tls.as_mut() {
                None => stream.write_all(&out),
                Some(t) => write_tls_all(t, stream, &out),
            };
            if let Err(e) = written {
                return Disconnect::io(IoOp::Write, &e);
            }
        }
        if let Some(reason) = closed.take() {
            if let Some(t) = tls.as_mut() {
                t.send_close_notify();
                let _ = flush_tls(t, stream);
            }
            return Disconnect::Closed(reason);
        }
        if !stopping && stop.load(Ordering::Relaxed) {
            stopping = true;
            session.close(CloseCode::Shutdown, "shutting down");
            continue;
        }
        // Wait for bytes, a command, or the session's next deadline.
        let now = Instant::now();
        let wait = session
            .poll_timeout()
            .map_or(MAX_WAIT, |t| t.saturating_duration_since(now))
            .min(MAX_WAIT);
        select! {
            recv(input) -> msg => match msg {
                Ok(Input::Data(chunk)) => {
                    let mut peer_closed = match take_input(tls, stream, &chunk, &mut inbuf) {
                        Ok(c) => c,
                        Err(d) => return d,
                    };
                    drop(chunk);
                    // Take whatever else already arrived before decoding.
                    while let Ok(Input::Data(more)) = input.try_recv() {
                        match take_input(tls, stream, &more, &mut inbuf) {
                            Ok(c) => peer_closed |= c,
                            Err(d) => return d,
                        }
                    }
                    session.handle_input(Instant::now(), &mut inbuf);
                    if peer_closed {
                        while let Some(event) = session.poll_event() {
                            if let Event::Closed(reason) = &event {
                                closed = Some(reason.clone());
                            }
                            on_event(session, event);
                        }
                        return closed.take().map_or(Disconnect::PeerHungUp, Disconnect::Closed);
                    }
                }
                Ok(Input::Eof(err)) => {
                    session.handle_input(Instant::now(), &mut inbuf);
                    while let Some(event) = session.poll_event() {
                        if let Event::Closed(reason) = &event {
                            closed = Some(reason.clone());
                        }
                        on_event(session, event);
                    }
                    if let Some(reason) = closed.take() {
                        return Disconnect::Closed(reason);
                    }
                    return match err {
                        None => Disconnect::PeerHungUp,
                        Some(e) => Disconnect::io(IoOp::Read, &e),
                    };
                }
                Err(_) => {
                    return Disconnect::Io {
                        op: IoOp::Read,
                        kind: io::ErrorKind::BrokenPipe,
                    };
                }
            },
            recv(commands) -> cmd => match cmd {
                Ok(cmd) => apply(session, cmd),
                Err(_) => {
                    // The application is gone: close cleanly.
                    if !stopping {
                        stopping = true;
                        session.close(CloseCode::Shutdown, "shutting down");
                    }
                }
            },
            default(wait) => {}
        }
        // Apply every queued command before the next transmit so they batch.
        while let Ok(cmd) = commands.try_recv() {
            apply(session, cmd);
        }
    }
}

pub(crate) fn apply(session: &mut Session, cmd: Command) {
    match cmd {
        Command::Send(message) => {
            if let Err(e) = session.send(&message) {
                tracing::debug!(error = %e, "message not sent");
            }
        }
        Command::Sample(record) => {
            session.push_sample(record);
        }
        Command::Close(code, reason) => session.close(code, &reason),
        Command::Confirm(upto) => session.confirm(upto, Instant::now()),
    }
}
