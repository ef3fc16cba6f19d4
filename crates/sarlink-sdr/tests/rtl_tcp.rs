//! The rtl_tcp client against an independent rtl_tcp server on loopback TCP.
//!
//! The server follows osmocom's `rtl_tcp.c`: one client at a time; on accept a 12-byte header
//! (`RTL0`, tuner type u32 BE, gain count u32 BE); then cu8 I/Q streamed at the sample rate
//! the client set; commands read as 5 bytes each (1 command byte, u32 BE parameter), a short
//! read completed before the command is applied. Every byte a client sends is logged per
//! connection, so tests assert the exact command bytes. Tests can close the connection, take
//! the server down (refusing connections) and bring it back on the same port, stall it, or slow
//! it to a fraction of real time.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sarlink_sdr::source::rtl_tcp::{ConnectError, RtlTcpConfig, RtlTcpSource};
use sarlink_sdr::{
    BlockStatus, ControlError, Gain, IqBlock, IqSource, LinkState, ReadStatus, SourceError,
};

/// How the server streams.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pace {
    /// Real time at the client's sample rate, times this factor (1.0 real time, 0.05 slow).
    Speed(f64),
    /// Connected but sending nothing.
    Stalled,
}

struct Control {
    pace: Pace,
    /// Every byte each client sent, one entry per accepted connection.
    received: Vec<Vec<u8>>,
    /// Close the current connection.
    kick: bool,
    /// Not listening (connections refused) while set.
    down: bool,
    /// Sent instead of the real header on the next connections while set (a hostile or
    /// confused server).
    header: Option<Vec<u8>>,
}

struct RtlTcpServer {
    addr: SocketAddr,
    control: Arc<Mutex<Control>>,
    stop: Arc<AtomicBool>,
}

impl RtlTcpServer {
    fn start(header: [u8; 12]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let control = Arc::new(Mutex::new(Control {
            pace: Pace::Speed(1.0),
            received: Vec::new(),
            kick: false,
            down: false,
            header: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (Arc::clone(&control), Arc::clone(&stop));
        thread::spawn(move || serve(Some(listener), addr, header, &c, &s));
        RtlTcpServer {
            addr,
            control,
            stop,
        }
    }

    fn r820t() -> Self {
        // rtl_tcp.c: "RTL0", tuner type 5 (R820T), 29 gain steps.
        Self::start(*b"RTL0\0\0\0\x05\0\0\0\x1d")
    }

    fn set(&self, f: impl FnOnce(&mut Control)) {
        f(&mut self.control.lock().unwrap());
    }

    fn connections(&self) -> usize {
        self.control.lock().unwrap().received.len()
    }

    /// The bytes received on connection `index` once there are at least `len` (5 s limit).
    fn received(&self, index: usize, len: usize) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.control.lock().unwrap().received.get(index).cloned();
            let got = got.unwrap_or_default();
            if got.len() >= len || Instant::now() > deadline {
                return got;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for RtlTcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    mut listener: Option<TcpListener>,
    addr: SocketAddr,
    header: [u8; 12],
    control: &Mutex<Control>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let down = control.lock().unwrap().down;
        if down {
            listener = None;
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        // Back up on the same port (std sets SO_REUSEADDR).
        let l = match &listener {
            Some(l) => l,
            None => match TcpListener::bind(addr) {
                Ok(l) => listener.insert(l),
                Err(_) => {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                }
            },
        };
        l.set_nonblocking(true).unwrap();
        match l.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                serve_client(stream, header, control, stop);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(2)),
            Err(_) => thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// One client, as rtl_tcp.c's `tcp_worker` and `command_worker` serve it.
fn serve_client(
    mut stream: TcpStream,
    header: [u8; 12],
    control: &Mutex<Control>,
    stop: &AtomicBool,
) {
    let index = {
        let mut c = control.lock().unwrap();
        c.received.push(Vec::new());
        c.kick = false;
        c.received.len() - 1
    };
    // rtl_tcp.c starts at 2.048 MS/s until told otherwise.
    let rate = Arc::new(Mutex::new(2_048_000u32));
    let gone = Arc::new(AtomicBool::new(false));
    let mut commands = stream.try_clone().unwrap();
    let (rate2, gone2) = (Arc::clone(&rate), Arc::clone(&gone));
    thread::scope(|scope| {
        scope.spawn(|| {
            // Reads whole 5-byte commands; applies the sample rate so streaming follows it.
            let mut cmd = [0u8; 5];
            let mut have = 0;
            let mut buf = [0u8; 64];
            loop {
                let n = match commands.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                control.lock().unwrap().received[index].extend_from_slice(&buf[..n]);
                for &b in &buf[..n] {
                    cmd[have] = b;
                    have += 1;
                    if have == 5 {
                        have = 0;
                        let param = u32::from_be_bytes([cmd[1], cmd[2], cmd[3], cmd[4]]);
                        if cmd[0] == 0x02 && param > 0 {
                            *rate2.lock().unwrap() = param;
                        }
                    }
                }
            }
            gone2.store(true, Ordering::Relaxed);
        });
        // tcp_worker: the header, then samples paced to the sample rate.
        stream
            .set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let hostile = control.lock().unwrap().header.clone();
        if let Some(bytes) = hostile {
            // Garbage instead of a header, then hang up as a confused server would.
            let _ = stream.write_all(&bytes);
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        if stream.write_all(&header).is_err() {
            return;
        }
        let mut sample: u64 = 0;
        let mut owed = 0.0f64;
        let mut last = Instant::now();
        let mut pending: Vec<u8> = Vec::new();
        while !gone.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
            let (pace, kick, down) = {
                let c = control.lock().unwrap();
                (c.pace, c.kick, c.down)
            };
            if kick || down {
                break;
            }
            thread::sleep(Duration::from_millis(5));
            let now = Instant::now();
            let dt = now - last;
            last = now;
            let Pace::Speed(speed) = pace else { continue };
            owed += dt.as_secs_f64() * f64::from(*rate.lock().unwrap()) * speed;
            let n = owed.floor();
            owed -= n;
            for _ in 0..n as u64 {
                // I + Q = 255 in every pair: a client that splits pairs wrongly sees it.
                let i = (sample % 256) as u8;
                pending.extend_from_slice(&[i, 255 - i]);
                sample += 1;
            }
            // Odd-sized writes, so I/Q pairs arrive split across the client's reads.
            let mut broken = false;
            while !pending.is_empty() {
                match stream.write(&pending[..pending.len().min(999)]) {
                    Ok(w) => {
                        pending.drain(..w);
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break;
                    }
                    Err(_) => {
                        broken = true;
                        break;
                    }
                }
            }
            if broken {
                break;
            }
            // A client that does not read: do not grow without bound.
            pending.truncate(1 << 20);
        }
        let _ = stream.shutdown(Shutdown::Both);
    });
}

fn config() -> RtlTcpConfig {
    RtlTcpConfig {
        sample_rate_hz: 250_000,
        center_frequency_hz: 433_920_000,
        gain: Gain::Db(49.6),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(500),
        ..RtlTcpConfig::default()
    }
}

/// The settings for `config()` with ppm 12, as rtl_tcp receives them.
#[rustfmt::skip]
const SETTINGS_WITH_PPM: [u8; 25] = [
    0x02, 0x00, 0x03, 0xD0, 0x90, // sample rate 250 000
    0x01, 0x19, 0xDD, 0x18, 0x00, // frequency 433 920 000
    0x05, 0x00, 0x00, 0x00, 0x0C, // ppm 12
    0x03, 0x00, 0x00, 0x00, 0x01, // manual gain
    0x04, 0x00, 0x00, 0x01, 0xF0, // 49.6 dB = 496 tenths
];

/// Splits a client's bytes into 5-byte commands (a multiple of 5 long).
fn commands(bytes: &[u8]) -> Vec<[u8; 5]> {
    assert_eq!(bytes.len() % 5, 0, "{bytes:02x?}");
    bytes
        .chunks_exact(5)
        .map(|c| c.try_into().unwrap())
        .collect()
}

/// Every sample is a pair with I + Q = 255, so re == -im exactly.
fn assert_pairs_aligned(block: &IqBlock) {
    for s in block.samples() {
        assert_eq!(s.re, -s.im, "an I/Q pair was split");
    }
}

/// Polls until `want(status)` or `limit`; checks every call returns promptly. Returns the
/// time taken and the statuses seen.
fn poll_until(
    src: &mut RtlTcpSource,
    block: &mut IqBlock,
    limit: Duration,
    mut want: impl FnMut(BlockStatus, &RtlTcpSource) -> bool,
) -> (Duration, Vec<BlockStatus>) {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < limit {
        let t = Instant::now();
        let status = src.poll_block(block).expect("poll_block does not fail");
        // Bounded wait (200 ms by contract; 1 s allows for a loaded machine).
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "poll_block blocked {:?}",
            t.elapsed()
        );
        if status == BlockStatus::Data {
            assert_pairs_aligned(block);
        }
        seen.push(status);
        if want(status, src) {
            return (start.elapsed(), seen);
        }
    }
    panic!(
        "not reached within {limit:?}; saw {:?}",
        &seen[seen.len().saturating_sub(10)..]
    );
}

#[test]
fn sends_exact_commands_and_streams_aligned_samples() {
    let server = RtlTcpServer::r820t();
    let cfg = RtlTcpConfig {
        ppm: Some(12),
        ..config()
    };
    let mut src = RtlTcpSource::connect(server.addr, cfg).unwrap();
    assert_eq!(src.tuner().tuner_type, 5);
    assert_eq!(src.tuner().gain_count, 29);
    let mut block = IqBlock::with_capacity(4096);
    let mut samples = 0;
    let mut expected_ts = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(10);
    while samples < 100_000 {
        assert!(Instant::now() < deadline, "only {samples} samples in 10 s");
        // A loaded machine may starve the server for a moment: wait, do not fail.
        if src.poll_block(&mut block).unwrap() != BlockStatus::Data {
            continue;
        }
        assert_pairs_aligned(&block);
        assert_eq!(block.sample_rate_hz(), 250_000);
        assert_eq!(block.center_frequency_hz(), 433_920_000);
        assert_eq!(block.timestamp(), expected_ts);
        samples += block.len();
        expected_ts = Duration::from_micros(4 * samples as u64);
    }
    src.set_frequency(434_000_000).unwrap();
    src.set_gain(Gain::Auto).unwrap();
    src.set_sample_rate(1_024_000).unwrap();
    src.set_ppm(-2).unwrap();
    src.set_bias_tee(true).unwrap();
    let mut expected = SETTINGS_WITH_PPM.to_vec();
    #[rustfmt::skip]
    expected.extend_from_slice(&[
        0x01, 0x19, 0xDE, 0x50, 0x80, // frequency 434 000 000
        0x03, 0x00, 0x00, 0x00, 0x00, // automatic gain
        0x02, 0x00, 0x0F, 0xA0, 0x00, // sample rate 1 024 000
        0x05, 0xFF, 0xFF, 0xFF, 0xFE, // ppm -2
        0x0E, 0x00, 0x00, 0x00, 0x01, // bias tee on
    ]);
    assert_eq!(server.received(0, expected.len()), expected);
    let health = src.health().unwrap();
    assert_eq!(health.state, LinkState::Streaming);
    assert_eq!(health.reconnects, 0);
    assert!(health.age(Instant::now()).unwrap() < Duration::from_secs(2));
}

#[test]
fn server_closes_and_returns_source_reconnects_and_resends_settings() {
    let server = RtlTcpServer::r820t();
    let cfg = RtlTcpConfig {
        ppm: Some(12),
        ..config()
    };
    let mut src = RtlTcpSource::connect(server.addr, cfg).unwrap();
    let mut block = IqBlock::with_capacity(4096);
    poll_until(&mut src, &mut block, Duration::from_secs(5), |s, _| {
        s == BlockStatus::Data
    });
    // The server goes away for 1.5 s: connection closed, then refused.
    server.set(|c| c.down = true);
    let (_, seen) = poll_until(&mut src, &mut block, Duration::from_secs(5), |s, _| {
        s == BlockStatus::Stalled(LinkState::Reconnecting)
    });
    assert!(!seen.contains(&BlockStatus::End));
    // A retune while down is kept for the reconnect.
    src.set_frequency(433_000_000).unwrap();
    thread::sleep(Duration::from_millis(1500));
    let health = src.health().unwrap();
    assert_eq!(health.state, LinkState::Reconnecting);
    match src.last_connect_error().as_deref() {
        Some(ConnectError::Io { source, .. }) => {
            assert_eq!(source.kind(), ErrorKind::ConnectionRefused)
        }
        other => panic!("expected a refused connection, got {other:?}"),
    }
    assert!(health.is_stale(Instant::now(), Duration::from_secs(1), 0.5));
    assert!(health.age(Instant::now()).unwrap() >= Duration::from_millis(1500));
    server.set(|c| c.down = false);
    let (took, _) = poll_until(&mut src, &mut block, Duration::from_secs(8), |s, _| {
        s == BlockStatus::Data
    });
    eprintln!("data again {took:?} after the server returned");
    assert!(took < Duration::from_secs(5), "back after {took:?}");
    assert_eq!(block.center_frequency_hz(), 433_000_000);
    assert_eq!(src.reconnects(), 1);
    assert!(src.last_connect_error().is_none());
    assert_eq!(src.health().unwrap().state, LinkState::Streaming);
    // Exactly the settings again, with the new frequency: rate, frequency, ppm, gain.
    let mut expected = SETTINGS_WITH_PPM.to_vec();
    expected[5..10].copy_from_slice(&[0x01, 0x19, 0xCF, 0x0E, 0x40]); // 433 000 000
    assert_eq!(server.received(1, expected.len()), expected);
}

#[test]
fn no_frequency_correction_is_sent_unless_given() {
    let server = RtlTcpServer::r820t();
    let mut src = RtlTcpSource::connect(server.addr, config()).unwrap();
    let mut block = IqBlock::with_capacity(4096);
    poll_until(&mut src, &mut block, Duration::from_secs(5), |s, _| {
        s == BlockStatus::Data
    });
    src.set_frequency(434_000_000).unwrap();
    src.set_gain(Gain::Db(20.7)).unwrap();
    #[rustfmt::skip]
    let first: &[u8] = &[
        0x02, 0x00, 0x03, 0xD0, 0x90, // sample rate 250 000
        0x01, 0x19, 0xDD, 0x18, 0x00, // frequency 433 920 000
        0x03, 0x00, 0x00, 0x00, 0x01, // manual gain
        0x04, 0x00, 0x00, 0x01, 0xF0, // 49.6 dB
        0x01, 0x19, 0xDE, 0x50, 0x80, // frequency 434 000 000
        0x03, 0x00, 0x00, 0x00, 0x01, // manual gain
        0x04, 0x00, 0x00, 0x00, 0xCF, // 20.7 dB
    ];
    #[rustfmt::skip]
    let second: &[u8] = &[
        0x02, 0x00, 0x03, 0xD0, 0x90,
        0x01, 0x19, 0xDE, 0x50, 0x80,
        0x03, 0x00, 0x00, 0x00, 0x01,
        0x04, 0x00, 0x00, 0x00, 0xCF,
    ];
    assert_eq!(server.received(0, first.len()), first);
    server.set(|c| c.kick = true);
    poll_until(&mut src, &mut block, Duration::from_secs(8), |s, src| {
        s == BlockStatus::Data && src.reconnects() == 1
    });
    assert_eq!(server.received(1, second.len()), second);
    for conn in 0..server.connections() {
        let got = server.received(conn, 0);
        assert!(
            commands(&got).iter().all(|c| c[0] != 0x05),
            "0x05 sent: {got:02x?}"
        );
    }
}

#[test]
fn a_six_second_stall_is_reported_promptly_and_recovered_from() {
    let server = RtlTcpServer::r820t();
    let mut src = RtlTcpSource::connect(server.addr, config()).unwrap();
    let mut block = IqBlock::with_capacity(4096);
    poll_until(&mut src, &mut block, Duration::from_secs(5), |s, _| {
        s == BlockStatus::Data
    });
    server.set(|c| c.pace = Pace::Stalled);
    let stall_start = Instant::now();
    // Reported within 2 s (stall_after is 500 ms), by a status, not an error.
    let (took, _) = poll_until(&mut src, &mut block, Duration::from_secs(5), |s, _| {
        matches!(s, BlockStatus::Stalled(_))
    });
    eprintln!("stall reported {took:?} after it began");
    assert!(took < Duration::from_secs(2), "stall seen after {took:?}");
    let (_, seen) = poll_until(&mut src, &mut block, Duration::from_secs(5), |_, src| {
        src.health().unwrap().state == LinkState::Stalled
    });
    assert!(seen.iter().any(|s| matches!(s, BlockStatus::Stalled(_))));
    let mut stale_seen = false;
    while stall_start.elapsed() < Duration::from_secs(6) {
        let status = src.poll_block(&mut block).unwrap();
        assert_ne!(status, BlockStatus::Data, "data during the stall");
        let h = src.health().unwrap();
        stale_seen |= h.is_stale(Instant::now(), Duration::from_secs(1), 0.5);
    }
    assert!(stale_seen);
    server.set(|c| c.pace = Pace::Speed(1.0));
    let (took, _) = poll_until(&mut src, &mut block, Duration::from_secs(8), |s, _| {
        s == BlockStatus::Data
    });
    eprintln!("data again {took:?} after the stall ended");
    assert!(took < Duration::from_secs(5), "recovered after {took:?}");
    // The client dropped the silent connection after 3 s and made a new one.
    assert!(src.reconnects() >= 1);
    let h = src.health().unwrap();
    assert!(!h.is_stale(Instant::now(), Duration::from_secs(1), 0.0));
}

#[test]
fn a_server_at_five_percent_of_real_time_shows_in_the_delivered_rate() {
    let server = RtlTcpServer::r820t();
    let mut src = RtlTcpSource::connect(server.addr, config()).unwrap();
    let mut block = IqBlock::with_capacity(4096);
    // Drain what was buffered at full speed, then slow down.
    poll_until(&mut src, &mut block, Duration::from_secs(5), |s, _| {
        s == BlockStatus::Data
    });
    server.set(|c| c.pace = Pace::Speed(0.05));
    let slow_start = Instant::now();
    let mut data_blocks = 0;
    while slow_start.elapsed() < Duration::from_secs(5) {
        if src.poll_block(&mut block).unwrap() == BlockStatus::Data {
            assert_pairs_aligned(&block);
            data_blocks += 1;
        }
    }
    let h = src.health().unwrap();
    let ratio = h.rate_ratio();
    eprintln!(
        "at 5 %: delivered {:.0} S/s of {} nominal (ratio {ratio:.3}), {data_blocks} data blocks in 5 s",
        h.delivered_rate_hz, h.nominal_rate_hz
    );
    // 12.5 kS/s of 250 kS/s nominal.
    assert!((0.01..0.2).contains(&ratio), "ratio {ratio}");
    assert!(h.is_stale(Instant::now(), Duration::from_secs(1), 0.5));
    assert!(data_blocks > 0, "a slow server still delivers");
    server.set(|c| c.pace = Pace::Speed(1.0));
    poll_until(&mut src, &mut block, Duration::from_secs(8), |_, src| {
        src.health().unwrap().rate_ratio() > 0.5
    });
}

#[test]
fn a_frequency_outside_the_tuner_range_is_refused_at_connect_and_retune() {
    let server = RtlTcpServer::r820t();
    let cfg = RtlTcpConfig {
        center_frequency_hz: 3_000_000_000,
        ..config()
    };
    match RtlTcpSource::connect(server.addr, cfg) {
        Err(ConnectError::FrequencyOutOfRange {
            frequency_hz: 3_000_000_000,
            tuner_type: 5,
            min_hz: 24_000_000,
            max_hz: 1_766_000_000,
        }) => {}
        other => panic!("expected FrequencyOutOfRange, got {other:?}"),
    }
    let mut src = RtlTcpSource::connect(server.addr, config()).unwrap();
    assert!(matches!(
        src.set_frequency(10_000_000),
        Err(ControlError::FrequencyOutOfRange { .. })
    ));
    assert_eq!(src.center_frequency_hz(), 433_920_000);
}

#[test]
fn a_server_that_is_not_rtl_tcp_is_rejected() {
    let server = RtlTcpServer::start(*b"HTTP/1.1 200");
    match RtlTcpSource::connect(server.addr, config()) {
        Err(ConnectError::BadMagic { found, .. }) => assert_eq!(&found, b"HTTP"),
        other => panic!("expected BadMagic, got {other:?}"),
    }
}

#[test]
fn a_silent_server_times_out_instead_of_hanging() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts (in the backlog) and says nothing.
    assert!(matches!(
        RtlTcpSource::connect(addr, config()),
        Err(ConnectError::Timeout { .. })
    ));
    drop(listener);
}

#[test]
fn nobody_listening_is_a_connect_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The listener is dropped: the port refuses connections.
    let err = RtlTcpSource::connect(format!("127.0.0.1:{port}"), config()).unwrap_err();
    assert!(matches!(err, ConnectError::Io { .. }), "{err:?}");
}

#[test]
fn read_block_reports_a_stall_as_a_typed_error_not_a_hang() {
    let server = RtlTcpServer::r820t();
    let mut src = RtlTcpSource::connect(server.addr, config()).unwrap();
    let mut block = IqBlock::with_capacity(4096);
    poll_until(&mut src, &mut block, Duration::from_secs(5), |s, _| {
        s == BlockStatus::Data
    });
    server.set(|c| c.pace = Pace::Stalled);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match src.read_block(&mut block) {
            Err(SourceError::Timeout { timeout }) => {
                assert!(timeout <= Duration::from_millis(200));
                break;
            }
            Ok(ReadStatus::Data) => assert!(Instant::now() < deadline, "no stall seen"),
            other => panic!("expected Timeout, got {other:?}"),
        }
    }
}

#[test]
fn hostile_bytes_on_reconnect_keep_the_source_reconnecting_without_errors() {
    let server = RtlTcpServer::r820t();
    let mut src = RtlTcpSource::connect(server.addr, config()).unwrap();
    let mut block = IqBlock::with_capacity(4096);
    poll_until(&mut src, &mut block, Duration::from_secs(5), |s, _| {
        s == BlockStatus::Data
    });
    // Wrong magic, a short header, then random-looking bytes.
    let mut noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    noise[..4].copy_from_slice(b"RTL1");
    for garbage in [b"HTTP/1.1 200 OK\r\n".to_vec(), b"RTL0\0\0".to_vec(), noise] {
        server.set(|c| {
            c.header = Some(garbage.clone());
            c.kick = true;
        });
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(1) {
            // Never an error, never data from the garbage.
            let status = src.poll_block(&mut block).unwrap();
            assert_ne!(status, BlockStatus::End);
        }
    }
    assert_eq!(
        src.reconnects(),
        0,
        "no garbage connection counts as a reconnect"
    );
    server.set(|c| c.header = None);
    let (took, _) = poll_until(&mut src, &mut block, Duration::from_secs(8), |s, src| {
        s == BlockStatus::Data && src.reconnects() == 1
    });
    assert!(took < Duration::from_secs(5), "back after {took:?}");
}
