//! Client for an `rtl_tcp` server (the network front end of librtlsdr) that holds up when the
//! server closes, stalls or slows down.
//!
//! # Protocol
//!
//! On connect the server sends a 12-byte header: the magic `RTL0`, the tuner type (u32
//! big-endian) and the number of tuner gain steps (u32 big-endian). It then streams unsigned
//! 8-bit interleaved I/Q without framing. The client sends 5-byte commands: one command byte
//! and a u32 big-endian parameter:
//!
//! | byte | command | parameter |
//! |---|---|---|
//! | `0x01` | centre frequency | Hz |
//! | `0x02` | sample rate | Hz |
//! | `0x03` | gain mode | 0 automatic, 1 manual |
//! | `0x04` | tuner gain | tenths of dB (two's complement) |
//! | `0x05` | frequency correction | ppm (two's complement) |
//! | `0x08` | RTL2832 digital AGC | 0 off, 1 on |
//! | `0x0e` | bias tee | 0 off, 1 on |
//!
//! # Settings
//!
//! After every connection the client sends, in this order: sample rate, centre frequency,
//! frequency correction **only if one was given** ([`RtlTcpConfig::ppm`] or
//! [`IqSource::set_ppm`]; otherwise the server's `-P` stays in force), digital AGC only if
//! given, gain mode and, for a manual gain, the gain, and the bias tee only if given. A setting
//! changed later is sent at once and is part of what every reconnect re-sends.
//!
//! # Reconnecting and staleness
//!
//! A background thread owns the connection. When the server closes it, the connection fails,
//! or no byte arrives for [`RtlTcpConfig::reconnect_after`], the thread reconnects with
//! exponential backoff (100 ms doubling to 2 s, ±20 % jitter), so the source is back within
//! about 2.5 s of the server accepting again. Meanwhile [`IqSource::poll_block`] returns
//! within [`RtlTcpConfig::max_wait`] with [`BlockStatus::Stalled`] and
//! [`IqSource::health`] gives the age of the last samples, the rate really delivered and the
//! number of reconnects. Sample timestamps keep counting the samples delivered, so a gap in
//! wall-clock time shows only in `health` (and in the reconnect count).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::block::{Gain, IqBlock, samples_to_duration};
use crate::source::{
    BlockStatus, ControlError, IqSource, LinkState, RateMeter, ReadStatus, SourceError,
    SourceHealth, TunerRange,
};

/// Command byte: set centre frequency (Hz).
pub const CMD_SET_FREQUENCY: u8 = 0x01;
/// Command byte: set sample rate (Hz).
pub const CMD_SET_SAMPLE_RATE: u8 = 0x02;
/// Command byte: gain mode (0 automatic, 1 manual).
pub const CMD_SET_GAIN_MODE: u8 = 0x03;
/// Command byte: tuner gain (tenths of dB).
pub const CMD_SET_GAIN: u8 = 0x04;
/// Command byte: frequency correction (ppm).
pub const CMD_SET_FREQ_CORRECTION: u8 = 0x05;
/// Command byte: RTL2832 digital AGC (0 off, 1 on).
pub const CMD_SET_AGC_MODE: u8 = 0x08;
/// Command byte: bias tee (0 off, 1 on).
pub const CMD_SET_BIAS_TEE: u8 = 0x0e;

/// Bytes per chunk the connection thread reads (an even number: whole I/Q pairs).
const CHUNK: usize = 16 * 1024;
/// How often the connection thread looks for commands and shutdown while the socket is quiet.
const POLL: Duration = Duration::from_millis(25);
/// Longest [`RtlTcpConfig::max_wait`] honoured.
const MAX_WAIT_CAP: Duration = Duration::from_millis(200);
/// Commands queued while connected before the queue is replaced by a full resend.
const MAX_PENDING: usize = 64;

/// Encodes one command as the 5 bytes sent on the wire.
///
/// # Examples
///
/// ```
/// use sarlink_sdr::source::rtl_tcp::{CMD_SET_FREQUENCY, command};
/// assert_eq!(command(CMD_SET_FREQUENCY, 433_920_000), [0x01, 0x19, 0xDD, 0x18, 0x00]);
/// ```
#[must_use]
pub fn command(cmd: u8, param: u32) -> [u8; 5] {
    let p = param.to_be_bytes();
    [cmd, p[0], p[1], p[2], p[3]]
}

/// Tuner description from the server's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunerInfo {
    /// librtlsdr tuner type (1 E4000, 2 FC0012, 3 FC0013, 4 FC2580, 5 R820T, 6 R828D).
    pub tuner_type: u32,
    /// Number of gain steps the tuner offers.
    pub gain_count: u32,
}

/// Settings the client applies on every connect, and its timing; fields document their
/// defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RtlTcpConfig {
    /// Sample rate, Hz; default 250 000. Always sent.
    pub sample_rate_hz: u32,
    /// Centre frequency, Hz; default 433 920 000. Always sent; checked against the tuner's
    /// range (from the header) when connecting.
    pub center_frequency_hz: u64,
    /// Tuner gain; default [`Gain::Auto`]. Always sent (gain mode, and the gain if manual).
    pub gain: Gain,
    /// Frequency correction, ppm; default `None`: command `0x05` is never sent, so the
    /// server's own correction (`rtl_tcp -P`) stays in force.
    pub ppm: Option<i32>,
    /// RTL2832 digital AGC; default `None` (not sent).
    pub rtl_agc: Option<bool>,
    /// Bias tee; default `None` (not sent, the server's `-T` stays in force).
    pub bias_tee: Option<bool>,
    /// Longest wait for the TCP connection; default 5 s.
    pub connect_timeout: Duration,
    /// Longest wait for the 12-byte header after connecting; default 2 s.
    pub read_timeout: Duration,
    /// Longest time [`IqSource::poll_block`] waits for samples; default 100 ms, at most 200 ms
    /// (larger values are capped).
    pub max_wait: Duration,
    /// Silence after which the connection counts as [`LinkState::Stalled`]; default 500 ms.
    pub stall_after: Duration,
    /// Silence after which the connection is dropped and made again; default 3 s.
    pub reconnect_after: Duration,
    /// First reconnect delay; doubles after each failed attempt; default 100 ms.
    pub backoff_initial: Duration,
    /// Longest reconnect delay; default 2 s.
    pub backoff_max: Duration,
    /// Chunks of 16 KiB buffered between the connection and the reader; default 64 (1 MiB,
    /// 2 s at 250 kS/s). When the reader falls further behind, new chunks are dropped and
    /// counted in [`SourceHealth::dropped_samples`].
    pub buffers: usize,
}

impl Default for RtlTcpConfig {
    fn default() -> Self {
        RtlTcpConfig {
            sample_rate_hz: 250_000,
            center_frequency_hz: 433_920_000,
            gain: Gain::Auto,
            ppm: None,
            rtl_agc: None,
            bias_tee: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(2),
            max_wait: Duration::from_millis(100),
            stall_after: Duration::from_millis(500),
            reconnect_after: Duration::from_secs(3),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            buffers: 64,
        }
    }
}

/// Connecting to an rtl_tcp server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The address did not resolve.
    #[error("cannot resolve {addr}")]
    Resolve {
        /// The address given.
        addr: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Connecting or reading the header failed.
    #[error("cannot connect to {addr}")]
    Io {
        /// The server.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The header did not arrive in time.
    #[error("no rtl_tcp header from {addr} within {timeout:?}")]
    Timeout {
        /// The server.
        addr: SocketAddr,
        /// The configured read timeout.
        timeout: Duration,
    },
    /// The server closed the connection before sending the whole header.
    #[error("{addr} closed the connection before the rtl_tcp header")]
    Closed {
        /// The server.
        addr: SocketAddr,
    },
    /// The header does not start with `RTL0`.
    #[error("{addr} is not an rtl_tcp server (header starts {found:02x?})")]
    BadMagic {
        /// The server.
        addr: SocketAddr,
        /// The first four bytes received.
        found: [u8; 4],
    },
    /// A setting is not representable in the protocol.
    #[error("{what} {value} does not fit the rtl_tcp protocol")]
    OutOfRange {
        /// The setting.
        what: &'static str,
        /// Its value.
        value: f64,
    },
    /// The centre frequency is outside the range of the tuner the server reported.
    #[error(
        "{frequency_hz} Hz is outside the range of tuner type {tuner_type} ({min_hz}-{max_hz} Hz)"
    )]
    FrequencyOutOfRange {
        /// The frequency asked for, Hz.
        frequency_hz: u64,
        /// The tuner type from the header.
        tuner_type: u32,
        /// Lowest tunable frequency, Hz.
        min_hz: u64,
        /// Highest tunable frequency, Hz.
        max_hz: u64,
    },
    /// Sending the initial settings failed.
    #[error("failed to send command {command:#04x}")]
    Send {
        /// The command byte.
        command: u8,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The connection thread could not be started.
    #[error("cannot start the rtl_tcp connection thread")]
    Thread {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Reconnect delays: `initial` doubling up to `max`, each scaled by a jitter factor in
/// 0.8..=1.2 so a fleet does not reconnect in lockstep. Pure: the caller supplies the random
/// number.
#[derive(Debug, Clone)]
struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next attempt; `unit` in `0.0..=1.0` picks the jitter.
    fn delay(&mut self, unit: f64) -> Duration {
        let base = self.next.min(self.max);
        self.next = (base * 2).min(self.max);
        base.mul_f64(0.8 + 0.4 * unit.clamp(0.0, 1.0))
    }

    fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// State shared between the caller's [`RtlTcpSource`] and its connection thread.
#[derive(Debug)]
struct Shared {
    /// Every setting as commands, sent after each connect.
    settings: Vec<[u8; 5]>,
    /// Commands for changes made while connected, not yet written.
    pending: Vec<[u8; 5]>,
    connected: bool,
    /// Last time bytes arrived (or the connection was made).
    last_bytes_at: Instant,
    reconnects: u64,
    dropped_bytes: u64,
    tuner: TunerInfo,
    /// Why the latest reconnect attempt failed; cleared by a successful one.
    last_error: Option<Arc<ConnectError>>,
    shutdown: bool,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic in the other thread cannot leave Shared inconsistent (plain fields).
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An [`IqSource`] reading from an rtl_tcp server, reconnecting by itself.
///
/// Call order: [`connect`](Self::connect) once, then `poll_block` (or `read_block`) and the
/// `set_*` calls in any order. A setting changed while disconnected is kept and sent on
/// reconnect (the call returns `Ok`). Dropping the source tells its connection thread to
/// close; the thread ends within [`RtlTcpConfig::connect_timeout`] at worst.
#[derive(Debug)]
pub struct RtlTcpSource {
    addr: SocketAddr,
    config: RtlTcpConfig,
    shared: Arc<Mutex<Shared>>,
    full: Receiver<Vec<u8>>,
    empty: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    position: usize,
    delivered: u64,
    meter: RateMeter,
    last_samples_at: Option<Instant>,
    thread: Option<JoinHandle<()>>,
}

/// Every setting in `config` as the commands sent after connecting.
fn settings_commands(config: &RtlTcpConfig) -> Result<Vec<[u8; 5]>, (&'static str, f64)> {
    let mut commands = Vec::with_capacity(7);
    commands.push(command(CMD_SET_SAMPLE_RATE, config.sample_rate_hz));
    let freq = u32::try_from(config.center_frequency_hz)
        .map_err(|_| ("centre frequency (Hz)", config.center_frequency_hz as f64))?;
    commands.push(command(CMD_SET_FREQUENCY, freq));
    if let Some(ppm) = config.ppm {
        // Two's complement on the wire, as librtlsdr reads it back into an int.
        commands.push(command(CMD_SET_FREQ_CORRECTION, ppm as u32));
    }
    if let Some(agc) = config.rtl_agc {
        commands.push(command(CMD_SET_AGC_MODE, u32::from(agc)));
    }
    commands.extend(gain_commands(config.gain).map_err(|v| ("gain (dB)", v))?);
    if let Some(on) = config.bias_tee {
        commands.push(command(CMD_SET_BIAS_TEE, u32::from(on)));
    }
    Ok(commands)
}

/// Connects and reads the header (blocking, bounded by the config's timeouts).
fn open_stream(
    addr: SocketAddr,
    config: &RtlTcpConfig,
) -> Result<(TcpStream, TunerInfo), ConnectError> {
    let io_err = |source| ConnectError::Io { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, config.connect_timeout).map_err(io_err)?;
    stream
        .set_read_timeout(Some(config.read_timeout.max(Duration::from_millis(1))))
        .map_err(io_err)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(1)))
        .map_err(io_err)?;
    // Commands are tiny and latency matters more than batching.
    stream.set_nodelay(true).map_err(io_err)?;
    let mut header = [0u8; 12];
    stream.read_exact(&mut header).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ConnectError::Timeout {
            addr,
            timeout: config.read_timeout,
        },
        io::ErrorKind::UnexpectedEof => ConnectError::Closed { addr },
        _ => io_err(e),
    })?;
    if &header[..4] != b"RTL0" {
        return Err(ConnectError::BadMagic {
            addr,
            found: [header[0], header[1], header[2], header[3]],
        });
    }
    let tuner = TunerInfo {
        tuner_type: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
        gain_count: u32::from_be_bytes([header[8], header[9], header[10], header[11]]),
    };
    // From here on the connection thread polls.
    stream.set_read_timeout(Some(POLL)).map_err(io_err)?;
    Ok((stream, tuner))
}

fn write_all(stream: &mut TcpStream, commands: &[[u8; 5]]) -> Result<(), ConnectError> {
    for c in commands {
        stream.write_all(c).map_err(|source| ConnectError::Send {
            command: c[0],
            source,
        })?;
    }
    Ok(())
}

impl RtlTcpSource {
    /// Connects, reads the header, checks the centre frequency against the tuner's range,
    /// sends the settings in `config` and starts the connection thread. Later failures are
    /// handled by reconnecting; only this first connection reports errors.
    ///
    /// # Errors
    ///
    /// [`ConnectError`] if the address does not resolve, the connection or header fails or
    /// times out, the header is not rtl_tcp's, the frequency is outside the tuner's range
    /// ([`ConnectError::FrequencyOutOfRange`]) or a setting does not fit the protocol.
    pub fn connect(
        addr: impl ToSocketAddrs + ToString,
        config: RtlTcpConfig,
    ) -> Result<Self, ConnectError> {
        let resolved = addr
            .to_socket_addrs()
            .and_then(|mut a| {
                a.next()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
            })
            .map_err(|source| ConnectError::Resolve {
                addr: addr.to_string(),
                source,
            })?;
        let settings = settings_commands(&config)
            .map_err(|(what, value)| ConnectError::OutOfRange { what, value })?;
        if config.sample_rate_hz == 0 {
            return Err(ConnectError::OutOfRange {
                what: "sample rate (Hz)",
                value: 0.0,
            });
        }
        let (mut stream, tuner) = open_stream(resolved, &config)?;
        if let Some(range) = TunerRange::for_tuner_type(tuner.tuner_type) {
            if !range.contains(config.center_frequency_hz) {
                return Err(ConnectError::FrequencyOutOfRange {
                    frequency_hz: config.center_frequency_hz,
                    tuner_type: tuner.tuner_type,
                    min_hz: range.min_hz,
                    max_hz: range.max_hz,
                });
            }
        }
        write_all(&mut stream, &settings)?;
        let shared = Arc::new(Mutex::new(Shared {
            settings,
            pending: Vec::new(),
            connected: true,
            last_bytes_at: Instant::now(),
            reconnects: 0,
            dropped_bytes: 0,
            tuner,
            last_error: None,
            shutdown: false,
        }));
        let buffers = config.buffers.max(2);
        let (full_tx, full) = mpsc::sync_channel::<Vec<u8>>(buffers);
        let (empty, empty_rx) = mpsc::sync_channel::<Vec<u8>>(buffers + 1);
        for _ in 0..buffers {
            // Capacity buffers + 1 > buffers: cannot fail.
            let _ = empty.try_send(Vec::with_capacity(CHUNK));
        }
        let worker = Worker {
            addr: resolved,
            config: config.clone(),
            shared: Arc::clone(&shared),
            full: full_tx,
            empty: empty_rx,
        };
        let thread = std::thread::Builder::new()
            .name("rtl_tcp".into())
            .spawn(move || worker.run(stream))
            .map_err(|source| ConnectError::Thread { source })?;
        Ok(RtlTcpSource {
            addr: resolved,
            config,
            shared,
            full,
            empty,
            current: Vec::new(),
            position: 0,
            delivered: 0,
            meter: RateMeter::new(SourceHealth::RATE_WINDOW),
            last_samples_at: None,
            thread: Some(thread),
        })
    }

    /// The server's address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether a connection is up now.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        lock(&self.shared).connected
    }

    /// Connection state now (see [`LinkState`]).
    #[must_use]
    pub fn state(&self) -> LinkState {
        let shared = lock(&self.shared);
        if !shared.connected {
            LinkState::Reconnecting
        } else if shared.last_bytes_at.elapsed() > self.config.stall_after {
            LinkState::Stalled
        } else {
            LinkState::Streaming
        }
    }

    /// Connections re-established since [`connect`](Self::connect).
    #[must_use]
    pub fn reconnects(&self) -> u64 {
        lock(&self.shared).reconnects
    }

    /// Why the latest reconnect attempt failed (for logs while
    /// [`LinkState::Reconnecting`]); `None` once a reconnect succeeded, and before any failed.
    #[must_use]
    pub fn last_connect_error(&self) -> Option<Arc<ConnectError>> {
        lock(&self.shared).last_error.clone()
    }

    /// The tuner the server reported on the latest connection.
    #[must_use]
    pub fn tuner(&self) -> TunerInfo {
        lock(&self.shared).tuner
    }

    /// The current settings.
    #[must_use]
    pub fn config(&self) -> &RtlTcpConfig {
        &self.config
    }

    /// Makes `config` the settings re-sent on every connect and queues `changed` for the
    /// current connection.
    fn apply(&mut self, changed: &[[u8; 5]]) -> Result<(), ControlError> {
        let settings = settings_commands(&self.config)
            .map_err(|(what, value)| ControlError::OutOfRange { what, value })?;
        let mut shared = lock(&self.shared);
        shared.settings = settings;
        if shared.connected {
            if shared.pending.len() + changed.len() > MAX_PENDING {
                // Too many unsent changes: send every setting once instead.
                shared.pending = shared.settings.clone();
            } else {
                shared.pending.extend_from_slice(changed);
            }
        }
        Ok(())
    }
}

/// The commands for a gain setting; `Err(dB)` when it does not fit.
fn gain_commands(gain: Gain) -> Result<Vec<[u8; 5]>, f64> {
    Ok(match gain {
        Gain::Auto => vec![command(CMD_SET_GAIN_MODE, 0)],
        Gain::Db(db) => {
            let tenths = (f64::from(db) * 10.0).round();
            if !(-1000.0..=1000.0).contains(&tenths) {
                return Err(f64::from(db));
            }
            // In range, so the casts are exact; two's complement on the wire.
            vec![
                command(CMD_SET_GAIN_MODE, 1),
                command(CMD_SET_GAIN, tenths as i32 as u32),
            ]
        }
    })
}

/// The connection thread: reads the stream into pooled buffers, writes queued commands,
/// reconnects with backoff.
struct Worker {
    addr: SocketAddr,
    config: RtlTcpConfig,
    shared: Arc<Mutex<Shared>>,
    full: SyncSender<Vec<u8>>,
    empty: Receiver<Vec<u8>>,
}

impl Worker {
    fn run(self, stream: TcpStream) {
        let mut stream = Some(stream);
        let mut backoff = Backoff::new(self.config.backoff_initial, self.config.backoff_max);
        let mut next_attempt = Instant::now();
        // A byte of an I/Q pair split across reads.
        let mut carry: Option<u8> = None;
        let mut held: Option<Vec<u8>> = None;
        let mut spare = vec![0u8; CHUNK];
        loop {
            let pending = {
                let mut shared = lock(&self.shared);
                if shared.shutdown {
                    return;
                }
                std::mem::take(&mut shared.pending)
            };
            let Some(s) = stream.as_mut() else {
                let now = Instant::now();
                if now < next_attempt {
                    std::thread::sleep((next_attempt - now).min(POLL));
                    continue;
                }
                match self.reconnect() {
                    Some(s) => {
                        stream = Some(s);
                        backoff.reset();
                        carry = None;
                    }
                    None => next_attempt = Instant::now() + backoff.delay(rand::random()),
                }
                continue;
            };
            let mut alive = pending.iter().all(|c| s.write_all(c).is_ok());
            if alive {
                let (mut buf, pooled) = match held.take().or_else(|| self.empty.try_recv().ok()) {
                    Some(b) => (b, true),
                    // The pool is empty: the reader is behind; read into `spare` and drop.
                    None => (std::mem::take(&mut spare), false),
                };
                buf.resize(CHUNK, 0);
                let start = usize::from(carry.is_some());
                if let Some(b) = carry.take() {
                    buf[0] = b;
                }
                let result = s.read(&mut buf[start..]);
                match result {
                    Ok(0) => alive = false,
                    Ok(n) => {
                        let mut total = start + n;
                        if total % 2 == 1 {
                            total -= 1;
                            carry = Some(buf[total]);
                        }
                        buf.truncate(total);
                        let mut shared = lock(&self.shared);
                        shared.last_bytes_at = Instant::now();
                        if !pooled {
                            shared.dropped_bytes += total as u64;
                        } else if total > 0 {
                            match self.full.try_send(buf) {
                                Ok(()) => {}
                                // Full cannot happen (the channel holds the whole pool);
                                // Disconnected means the reader is gone and shutdown follows.
                                Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) => {
                                    held = Some(b);
                                }
                            }
                            continue;
                        }
                    }
                    Err(ref e) if e.kind() == io::ErrorKind::Interrupted => {
                        if start == 1 {
                            carry = Some(buf[0]);
                        }
                    }
                    Err(ref e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        if start == 1 {
                            carry = Some(buf[0]);
                        }
                        let silent = lock(&self.shared).last_bytes_at.elapsed();
                        alive = silent <= self.config.reconnect_after;
                    }
                    Err(_) => alive = false,
                }
                // The buffer was not handed over: keep it for the next read.
                if pooled {
                    held = Some(buf);
                } else {
                    spare = buf;
                }
            }
            if !alive {
                stream = None;
                lock(&self.shared).connected = false;
                next_attempt = Instant::now() + backoff.delay(rand::random());
            }
        }
    }

    /// One connection attempt: header, then every setting. `None` on any failure (kept in
    /// `Shared::last_error`).
    fn reconnect(&self) -> Option<TcpStream> {
        let (mut stream, tuner) = match open_stream(self.addr, &self.config) {
            Ok(s) => s,
            Err(e) => {
                lock(&self.shared).last_error = Some(Arc::new(e));
                return None;
            }
        };
        let settings = {
            let mut shared = lock(&self.shared);
            shared.last_error = None;
            // Taken together with `connected = true` so no change is lost or sent twice.
            shared.pending.clear();
            shared.connected = true;
            shared.last_bytes_at = Instant::now();
            shared.tuner = tuner;
            shared.reconnects += 1;
            shared.settings.clone()
        };
        if let Err(e) = write_all(&mut stream, &settings) {
            let mut shared = lock(&self.shared);
            shared.connected = false;
            shared.last_error = Some(Arc::new(e));
            return None;
        }
        Some(stream)
    }
}

impl Drop for RtlTcpSource {
    fn drop(&mut self) {
        lock(&self.shared).shutdown = true;
        // Not joined: the thread may be inside a connect attempt; it ends on its own.
        drop(self.thread.take());
    }
}

impl IqSource for RtlTcpSource {
    /// As [`poll_block`](IqSource::poll_block), with a stall reported as an error.
    ///
    /// # Errors
    ///
    /// [`SourceError::Timeout`] when no samples arrived within [`RtlTcpConfig::max_wait`]
    /// while connected, [`SourceError::NotConnected`] while reconnecting,
    /// [`SourceError::DeviceStopped`] if the connection thread is gone.
    fn read_block(&mut self, block: &mut IqBlock) -> Result<ReadStatus, SourceError> {
        match self.poll_block(block)? {
            BlockStatus::Stalled(LinkState::Reconnecting) => Err(SourceError::NotConnected),
            BlockStatus::Stalled(_) => Err(SourceError::Timeout {
                timeout: self.config.max_wait.min(MAX_WAIT_CAP),
            }),
            BlockStatus::End => Ok(ReadStatus::End),
            _ => Ok(ReadStatus::Data),
        }
    }

    /// Waits at most [`RtlTcpConfig::max_wait`] (capped at 200 ms) to fill `block`; returns
    /// [`BlockStatus::Data`] with whatever arrived (possibly a partial block), or
    /// [`BlockStatus::Stalled`] with the connection state when nothing did. Never
    /// [`BlockStatus::End`]: a live source does not end.
    ///
    /// # Errors
    ///
    /// [`SourceError::DeviceStopped`] if the connection thread is gone (it panicked).
    fn poll_block(&mut self, block: &mut IqBlock) -> Result<BlockStatus, SourceError> {
        let rate = self.config.sample_rate_hz;
        block.start(
            rate,
            self.config.center_frequency_hz,
            samples_to_duration(self.delivered, rate),
        );
        let deadline = Instant::now() + self.config.max_wait.min(MAX_WAIT_CAP);
        while block.remaining() > 0 {
            if self.position >= self.current.len() {
                let wait = deadline.saturating_duration_since(Instant::now());
                let next = if wait.is_zero() {
                    self.full.try_recv().map_err(|e| match e {
                        TryRecvError::Empty => RecvTimeoutError::Timeout,
                        TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                    })
                } else {
                    self.full.recv_timeout(wait)
                };
                match next {
                    Ok(buf) => {
                        let done = std::mem::replace(&mut self.current, buf);
                        // The pool has room for every buffer.
                        let _ = self.empty.try_send(done);
                        self.position = 0;
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        if block.is_empty() {
                            return Err(SourceError::DeviceStopped);
                        }
                        break;
                    }
                }
            }
            let n = block.extend_from_cu8(&self.current[self.position..]);
            self.position += 2 * n;
        }
        if block.is_empty() {
            return Ok(BlockStatus::Stalled(self.state()));
        }
        let now = Instant::now();
        self.delivered += block.len() as u64;
        self.meter.record(now, block.len() as u64);
        self.last_samples_at = Some(now);
        Ok(BlockStatus::Data)
    }

    fn health(&self) -> Option<SourceHealth> {
        let (reconnects, dropped_bytes) = {
            let shared = lock(&self.shared);
            (shared.reconnects, shared.dropped_bytes)
        };
        Some(SourceHealth {
            state: self.state(),
            last_samples_at: self.last_samples_at,
            delivered_rate_hz: self.meter.rate(Instant::now()),
            nominal_rate_hz: self.config.sample_rate_hz,
            reconnects,
            dropped_samples: dropped_bytes / 2,
        })
    }

    fn sample_rate_hz(&self) -> u32 {
        self.config.sample_rate_hz
    }

    fn center_frequency_hz(&self) -> u64 {
        self.config.center_frequency_hz
    }

    /// Retunes; the frequency must be within the range of the tuner the server reported.
    fn set_frequency(&mut self, frequency_hz: u64) -> Result<(), ControlError> {
        let hz = u32::try_from(frequency_hz).map_err(|_| ControlError::OutOfRange {
            what: "centre frequency (Hz)",
            value: frequency_hz as f64,
        })?;
        if let Some(range) = TunerRange::for_tuner_type(self.tuner().tuner_type) {
            range.check(frequency_hz)?;
        }
        self.config.center_frequency_hz = frequency_hz;
        self.apply(&[command(CMD_SET_FREQUENCY, hz)])
    }

    fn set_gain(&mut self, gain: Gain) -> Result<(), ControlError> {
        let cmds = gain_commands(gain).map_err(|value| ControlError::OutOfRange {
            what: "gain (dB)",
            value,
        })?;
        self.config.gain = gain;
        self.apply(&cmds)
    }

    fn set_sample_rate(&mut self, sample_rate_hz: u32) -> Result<(), ControlError> {
        if sample_rate_hz == 0 {
            return Err(ControlError::OutOfRange {
                what: "sample rate (Hz)",
                value: 0.0,
            });
        }
        // Keep time continuous across the change.
        let t = samples_to_duration(self.delivered, self.config.sample_rate_hz);
        self.delivered = (t.as_secs_f64() * f64::from(sample_rate_hz)).round() as u64;
        self.config.sample_rate_hz = sample_rate_hz;
        self.apply(&[command(CMD_SET_SAMPLE_RATE, sample_rate_hz)])
    }

    /// Sends `0x05` now and on every reconnect from now on.
    fn set_ppm(&mut self, ppm: i32) -> Result<(), ControlError> {
        self.config.ppm = Some(ppm);
        self.apply(&[command(CMD_SET_FREQ_CORRECTION, ppm as u32)])
    }

    /// Sends `0x0e` now and on every reconnect from now on.
    fn set_bias_tee(&mut self, on: bool) -> Result<(), ControlError> {
        self.config.bias_tee = Some(on);
        self.apply(&[command(CMD_SET_BIAS_TEE, u32::from(on))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gain_is_tenths_of_db_twos_complement() {
        assert_eq!(gain_commands(Gain::Auto).unwrap(), vec![[0x03, 0, 0, 0, 0]]);
        assert_eq!(
            gain_commands(Gain::Db(49.6)).unwrap(),
            vec![[0x03, 0, 0, 0, 1], [0x04, 0, 0, 0x01, 0xF0]]
        );
        assert_eq!(
            gain_commands(Gain::Db(-1.0)).unwrap()[1],
            [0x04, 0xFF, 0xFF, 0xFF, 0xF6]
        );
        assert!(gain_commands(Gain::Db(f32::NAN)).is_err());
        assert_eq!(gain_commands(Gain::Db(150.0)), Err(150.0));
    }

    #[test]
    fn settings_send_ppm_agc_and_bias_tee_only_when_given() {
        let plain = settings_commands(&RtlTcpConfig::default()).unwrap();
        assert!(
            plain.iter().all(|c| ![0x05, 0x08, 0x0e].contains(&c[0])),
            "{plain:?}"
        );
        let all = settings_commands(&RtlTcpConfig {
            ppm: Some(-3),
            rtl_agc: Some(false),
            bias_tee: Some(true),
            ..RtlTcpConfig::default()
        })
        .unwrap();
        let bytes: Vec<u8> = all.iter().flatten().copied().collect();
        #[rustfmt::skip]
        assert_eq!(bytes, [
            0x02, 0x00, 0x03, 0xD0, 0x90,
            0x01, 0x19, 0xDD, 0x18, 0x00,
            0x05, 0xFF, 0xFF, 0xFF, 0xFD,
            0x08, 0, 0, 0, 0,
            0x03, 0, 0, 0, 0,
            0x0e, 0, 0, 0, 1,
        ]);
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mid: Vec<u128> = (0..7).map(|_| b.delay(0.5).as_millis()).collect();
        assert_eq!(mid, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(b.delay(0.0), Duration::from_millis(1600));
        assert_eq!(b.delay(1.0), Duration::from_millis(2400));
        b.reset();
        assert_eq!(b.delay(0.5), Duration::from_millis(100));
    }
}
