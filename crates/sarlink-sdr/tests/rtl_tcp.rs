//! The rtl_tcp client against an rtl_tcp-speaking test server on loopback TCP.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sarlink_sdr::source::rtl_tcp::{ConnectError, RtlTcpConfig, RtlTcpSource};
use sarlink_sdr::source::sim::{SimConfig, Simulator};
use sarlink_sdr::{CU8_LUT, ControlError, Gain, IqBlock, IqSource, ReadStatus, SourceError};

/// What the server does on each accepted connection.
#[derive(Clone, Copy)]
enum Serve {
    /// Header, then this many bytes of the recording, then close.
    ThenClose(usize),
    /// Header, the whole recording, then keep the connection open (silent) until the client
    /// goes away.
    ThenIdle,
    /// A header that is not rtl_tcp's.
    BadMagic,
    /// Accept and say nothing.
    Mute,
}

struct TestServer {
    port: u16,
    /// Every byte the client sent, per connection.
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl TestServer {
    fn start(recording: Arc<Vec<u8>>, plan: Vec<Serve>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let rx = Arc::clone(&received);
        thread::spawn(move || {
            for serve in plan {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                stream
                    .set_write_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let index = {
                    let mut r = rx.lock().unwrap();
                    r.push(Vec::new());
                    r.len() - 1
                };
                let mut reader = stream.try_clone().unwrap();
                let rx2 = Arc::clone(&rx);
                let recorder = thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = reader.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        rx2.lock().unwrap()[index].extend_from_slice(&buf[..n]);
                    }
                });
                let header: &[u8] = match serve {
                    Serve::BadMagic => b"HTTP/1.1 200",
                    Serve::Mute => b"",
                    // R820T (5), 29 gain steps.
                    _ => &[b'R', b'T', b'L', b'0', 0, 0, 0, 5, 0, 0, 0, 29],
                };
                let _ = stream.write_all(header);
                match serve {
                    Serve::ThenClose(n) => {
                        let _ = stream.write_all(&recording[..n]);
                        // Let the client's initial commands (30 bytes) arrive first, so the
                        // close is a clean end of stream rather than a reset mid-handshake.
                        let deadline = Instant::now() + Duration::from_secs(5);
                        while rx.lock().unwrap()[index].len() < 30 && Instant::now() < deadline {
                            thread::sleep(Duration::from_millis(2));
                        }
                        let _ = stream.shutdown(Shutdown::Both);
                    }
                    Serve::ThenIdle => {
                        let _ = stream.write_all(&recording);
                    }
                    Serve::BadMagic | Serve::Mute => {}
                }
                // Wait for the client to hang up before serving the next connection.
                let _ = recorder.join();
            }
        });
        TestServer { port, received }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The bytes received on connection `index` once there are at least `len` (5 s limit).
    fn commands(&self, index: usize, len: usize) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = self
                .received
                .lock()
                .unwrap()
                .get(index)
                .cloned()
                .unwrap_or_default();
            if got.len() >= len || Instant::now() > deadline {
                return got;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

fn recording(samples: usize) -> Arc<Vec<u8>> {
    let mut sim = Simulator::new(SimConfig {
        distance_m: 300.0,
        ..SimConfig::default()
    });
    let mut bytes = vec![0u8; 2 * samples];
    sim.read_cu8(&mut bytes);
    Arc::new(bytes)
}

fn config() -> RtlTcpConfig {
    RtlTcpConfig {
        sample_rate_hz: 250_000,
        center_frequency_hz: 433_920_000,
        gain: Gain::Db(49.6),
        ppm: 12,
        rtl_agc: false,
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(300),
    }
}

fn assert_block_is(block: &IqBlock, bytes: &[u8]) {
    assert_eq!(block.len() * 2, bytes.len());
    for (s, b) in block.samples().iter().zip(bytes.chunks_exact(2)) {
        assert_eq!(
            (s.re, s.im),
            (CU8_LUT[usize::from(b[0])], CU8_LUT[usize::from(b[1])])
        );
    }
}

#[test]
fn client_sends_exact_commands_and_streams_the_recording() {
    let rec = recording(20_000);
    let server = TestServer::start(Arc::clone(&rec), vec![Serve::ThenIdle]);
    let mut src = RtlTcpSource::connect(server.addr(), config()).unwrap();
    assert_eq!(src.tuner().tuner_type, 5);
    assert_eq!(src.tuner().gain_count, 29);
    let mut block = IqBlock::with_capacity(4096);
    for i in 0..4 {
        assert_eq!(src.read_block(&mut block).unwrap(), ReadStatus::Data);
        assert_block_is(&block, &rec[i * 8192..(i + 1) * 8192]);
        assert_eq!(block.sample_rate_hz(), 250_000);
        assert_eq!(block.center_frequency_hz(), 433_920_000);
        assert_eq!(
            block.timestamp(),
            Duration::from_micros(4 * 4096 * i as u64)
        );
    }
    src.set_frequency(434_000_000).unwrap();
    src.set_gain(Gain::Auto).unwrap();
    src.set_sample_rate(1_024_000).unwrap();
    src.set_ppm(-2).unwrap();
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x02, 0x00, 0x03, 0xD0, 0x90, // sample rate 250 000
        0x01, 0x19, 0xDD, 0x18, 0x00, // frequency 433 920 000
        0x05, 0x00, 0x00, 0x00, 0x0C, // ppm 12
        0x08, 0x00, 0x00, 0x00, 0x00, // digital AGC off
        0x03, 0x00, 0x00, 0x00, 0x01, // manual gain
        0x04, 0x00, 0x00, 0x01, 0xF0, // 49.6 dB = 496 tenths
        0x01, 0x19, 0xDE, 0x50, 0x80, // frequency 434 000 000
        0x03, 0x00, 0x00, 0x00, 0x00, // automatic gain
        0x02, 0x00, 0x0F, 0xA0, 0x00, // sample rate 1 024 000
        0x05, 0xFF, 0xFF, 0xFF, 0xFE, // ppm -2
    ];
    assert_eq!(server.commands(0, expected.len()), expected);
    // 3616 samples remain, then the server goes quiet: a timeout, not a hang, and the
    // partial block is kept.
    assert!(matches!(
        src.read_block(&mut block),
        Err(SourceError::Timeout { .. })
    ));
    assert!(src.is_connected());
}

#[test]
fn server_going_away_is_an_error_then_reconnect_resumes() {
    let rec = recording(10_000);
    let server = TestServer::start(
        Arc::clone(&rec),
        vec![Serve::ThenClose(10_000), Serve::ThenIdle],
    );
    let mut src = RtlTcpSource::connect(server.addr(), config()).unwrap();
    let mut block = IqBlock::with_capacity(4096);
    assert_eq!(src.read_block(&mut block).unwrap(), ReadStatus::Data);
    assert_block_is(&block, &rec[..8192]);
    assert!(matches!(
        src.read_block(&mut block),
        Err(SourceError::Disconnected)
    ));
    assert!(!src.is_connected());
    assert!(matches!(
        src.read_block(&mut block),
        Err(SourceError::NotConnected)
    ));
    // Settings made while disconnected are kept for the reconnect.
    assert!(matches!(
        src.set_frequency(433_000_000),
        Err(ControlError::NotConnected)
    ));
    src.reconnect().unwrap();
    assert!(src.is_connected());
    assert_eq!(src.read_block(&mut block).unwrap(), ReadStatus::Data);
    assert_block_is(&block, &rec[..8192]);
    // Time continues from the samples delivered before the drop.
    assert_eq!(block.timestamp(), Duration::from_micros(4 * 4096));
    assert_eq!(block.center_frequency_hz(), 433_000_000);
    let second = server.commands(1, 30);
    assert_eq!(&second[5..10], &[0x01, 0x19, 0xCF, 0x0E, 0x40]); // 433 000 000
    assert_eq!(second.len(), 30);
}

#[test]
fn a_server_that_is_not_rtl_tcp_is_rejected() {
    let server = TestServer::start(recording(10), vec![Serve::BadMagic]);
    match RtlTcpSource::connect(server.addr(), config()) {
        Err(ConnectError::BadMagic { found, .. }) => assert_eq!(&found, b"HTTP"),
        other => panic!("expected BadMagic, got {other:?}"),
    }
}

#[test]
fn a_silent_server_times_out_instead_of_hanging() {
    let server = TestServer::start(recording(10), vec![Serve::Mute]);
    assert!(matches!(
        RtlTcpSource::connect(server.addr(), config()),
        Err(ConnectError::Timeout { .. })
    ));
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
