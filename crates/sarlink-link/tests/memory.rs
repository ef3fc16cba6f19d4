//! What a connection costs the server in heap: at most 4 KiB for one in the handshake and
//! 16 KiB for an idle authenticated session, counted by the allocator over the whole
//! process (the server's loop thread included) while 200 of each are held open.
//! (Its own test binary, because it installs a counting global allocator.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sarlink_link::driver::{Server, ServerConfig, ServerEvent};
use sarlink_schema::{Hello, Message, NodeName, Nonce, ProtocolVersion, Role, Rssi};
use sarlink_testkit::record;

#[global_allocator]
static ALLOC: sarlink_testkit::CountingAlloc = sarlink_testkit::CountingAlloc;

const HELD: usize = 200;
const HANDSHAKE_BUDGET: i64 = 4 * 1024;
const SESSION_BUDGET: i64 = 16 * 1024;
/// Samples each idle session sends before it is measured again.
const SAMPLES: u64 = 10;

fn node(name: &str) -> NodeName {
    NodeName::new(name).unwrap()
}

fn hello_frame(name: &str, stream: u64) -> BytesMut {
    let hello = Message::Hello(Hello {
        version: ProtocolVersion::V1_1,
        role: Role::Drone,
        node: node(name),
        stream,
        compression: vec![],
        max_message: 1 << 20,
        nonce: Nonce([5; 16]),
        rssi_units: None,
    });
    sarlink_testkit::frame(&hello)
}

/// A server whose sessions neither time out nor ping while the test holds them (the
/// timers are not what is measured), with room for exactly `HELD` handshakes.
fn server() -> Server {
    let session = sarlink_testkit::patient_session(Role::Ground, "ground", 1);
    let mut config = ServerConfig::new(session);
    config.max_clients = 2 * HELD;
    config.max_handshakes = HELD;
    config.max_handshakes_per_addr = HELD;
    // A small event channel: its slots are allocated up front, before the baseline.
    config.event_capacity = 4 * HELD;
    Server::bind("127.0.0.1:0", config).unwrap()
}

/// Live heap bytes once they have stopped moving (the loop thread finishes its turn).
fn settled() -> i64 {
    sarlink_testkit::settled_live_bytes(Duration::from_millis(100))
}

/// Connects once more and reads the `reject busy` that proves every handshake slot is
/// taken (so all `HELD` connections before it were accepted and hold a session).
fn refused_busy(addr: SocketAddr) -> bool {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while let Ok(n) = s.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.windows(4).any(|w| w == b"busy")
}

#[test]
fn a_pending_handshake_costs_at_most_4_kib_and_an_idle_session_16_kib() {
    let server = server();
    let addr = server.local_addr();
    // Warm up: one connection through the whole cycle, so lazily built parts of the
    // server (tables, the loop's own buffers) are not charged to the connections.
    {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&hello_frame("warm", 1)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(
            server.events().recv_timeout(Duration::from_millis(100)),
            Ok(ServerEvent::Connected { .. })
        ) {
            assert!(
                Instant::now() < deadline,
                "the warm-up client never connected"
            );
        }
        drop(s);
        while !matches!(
            server.events().recv_timeout(Duration::from_millis(100)),
            Ok(ServerEvent::Disconnected { .. })
        ) {
            assert!(Instant::now() < deadline, "the warm-up client never left");
        }
    }
    let mut sockets = Vec::with_capacity(3 * HELD);
    let base = settled();

    // 200 connections that never say anything: each waits in the handshake.
    for _ in 0..HELD {
        sockets.push(TcpStream::connect(addr).unwrap());
    }
    assert!(refused_busy(addr), "the 201st handshake was not refused");
    let pending = settled() - base;
    let per_handshake = pending / HELD as i64;
    eprintln!("pending handshake: {per_handshake} bytes each ({pending} for {HELD})");
    assert!(
        per_handshake <= HANDSHAKE_BUDGET,
        "a pending handshake holds {per_handshake} bytes"
    );
    // Free the handshake slots, then authenticate 200 sessions that then stay idle.
    sockets.clear();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut gone = 0;
    while gone < HELD {
        if let Ok(ServerEvent::Disconnected { .. }) =
            server.events().recv_timeout(Duration::from_millis(100))
        {
            gone += 1;
        }
        assert!(Instant::now() < deadline, "only {gone} handshakes ended");
    }
    let base = settled();
    for i in 0..HELD {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&hello_frame(&format!("idle-{i}"), i as u64))
            .unwrap();
        sockets.push(s);
    }
    let mut connected = 0;
    while connected < HELD {
        match server.events().recv_timeout(Duration::from_millis(100)) {
            Ok(ServerEvent::Connected { .. }) => connected += 1,
            Ok(other) => panic!("unexpected event {other:?}"),
            Err(_) => assert!(Instant::now() < deadline, "only {connected} connected"),
        }
    }
    assert_eq!(server.connections().len(), HELD);
    let idle = settled() - base;
    let per_session = idle / HELD as i64;
    eprintln!("idle session: {per_session} bytes each ({idle} for {HELD})");
    assert!(
        per_session <= SESSION_BUDGET,
        "an idle authenticated session holds {per_session} bytes"
    );
    // Each session streams a few samples, one message at a time, then goes idle again: the
    // read buffers it used are back in the pool, and its receive state is small.
    for (i, s) in sockets.iter_mut().enumerate() {
        for seq in 0..SAMPLES {
            s.write_all(&sarlink_testkit::frame(&Message::Rssi(Rssi::single(
                seq,
                record(seq + i as u64),
            ))))
            .unwrap();
        }
    }
    let mut delivered = 0;
    while delivered < HELD as u64 * SAMPLES {
        match server.events().recv_timeout(Duration::from_millis(100)) {
            Ok(ServerEvent::Samples { records, .. }) => delivered += records.len() as u64,
            Ok(other) => panic!("unexpected event {other:?}"),
            Err(_) => assert!(
                Instant::now() < deadline,
                "only {delivered} samples arrived"
            ),
        }
    }
    let streamed = settled() - base;
    let per_streamed = streamed / HELD as i64;
    eprintln!("idle session after streaming: {per_streamed} bytes each ({streamed} for {HELD})");
    assert!(
        per_streamed <= SESSION_BUDGET,
        "an idle session that has streamed holds {per_streamed} bytes"
    );
    // The counter is live: the sessions' memory comes back when they end.
    sockets.clear();
    server.shutdown();
    assert!(
        settled() < base + streamed / 2,
        "closing the sessions gave back less than half of their memory"
    );
}
