//! The attacks of issue 21, each tried against the driver over loopback TCP as an attacker
//! on the network would: raw sockets speaking the protocol by hand, next to honest clients.
//! Each test failed on the code before the fix (noted per test) and passes after.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sarlink_link::driver::{
    Backoff, Client, ClientConfig, ClientEvent, ResumePosition, Server, ServerConfig, ServerEvent,
};
use sarlink_link::{CloseReason, SessionConfig, SessionError};
use sarlink_schema::{Hello, Message, NodeName, Nonce, ProtocolVersion, Role, Rssi};
use sarlink_testkit::proxy::FaultProxy;
use sarlink_testkit::record;
use sarlink_wire::{CloseCode, DecoderConfig, FrameDecoder};

fn node(name: &str) -> NodeName {
    NodeName::new(name).unwrap()
}

fn server_config() -> ServerConfig {
    ServerConfig::new(SessionConfig::new(Role::Ground, node("ground"), 1))
}

fn client(addr: SocketAddr, name: &str, stream: u64) -> Client {
    let mut c = ClientConfig::new(
        SessionConfig::new(Role::Drone, node(name), stream),
        addr.to_string(),
    );
    c.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        jitter: 0.2,
    };
    Client::spawn(c).unwrap()
}

fn wait_connected(c: &Client, within: Duration) -> Vec<ClientEvent> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("client never connected: {seen:?}"));
        match c.events().recv_timeout(left) {
            Ok(ClientEvent::Connected { .. }) => return seen,
            Ok(other) => seen.push(other),
            Err(_) => {}
        }
    }
}

fn hello(name: &str, stream: u64, max_message: u32) -> Message {
    Message::Hello(Hello {
        version: ProtocolVersion::V1_0,
        role: Role::Drone,
        node: node(name),
        stream,
        compression: vec![],
        max_message,
        nonce: Nonce([5; 16]),
        rssi_units: None,
    })
}

/// Reads messages from a raw socket until `want` picks one or `within` passes.
fn read_until<T>(
    stream: &mut TcpStream,
    within: Duration,
    mut want: impl FnMut(Message) -> Option<T>,
) -> Option<T> {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut dec = FrameDecoder::new(DecoderConfig::default().accept_compressed(true));
    let mut buf = BytesMut::new();
    let deadline = Instant::now() + within;
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => continue,
        }
        while let Ok(Some(payload)) = dec.decode(&mut buf) {
            if let Some(t) = want(Message::decode(&payload).unwrap()) {
                return Some(t);
            }
        }
    }
    None
}

/// The code of the first `bye` or `reject` (None on silence or a bare close).
fn close_code(stream: &mut TcpStream, within: Duration) -> Option<String> {
    read_until(stream, within, |m| match m {
        Message::Bye(b) => Some(b.code.as_str().to_owned()),
        Message::Reject(r) => Some(r.code.as_str().to_owned()),
        _ => None,
    })
}

/// A raw connection that says `hello` and returns the `welcome`'s resume_seq, or the
/// `reject`'s code as an error.
fn raw_hello(addr: SocketAddr, name: &str, stream: u64) -> (TcpStream, Result<u64, String>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&sarlink_testkit::frame(&hello(name, stream, 1 << 20)))
        .unwrap();
    let verdict = read_until(&mut s, Duration::from_secs(5), |m| match m {
        Message::Welcome(w) => Some(Ok(w.resume_seq)),
        Message::Reject(r) => Some(Err(r.code.as_str().to_owned())),
        _ => None,
    })
    .expect("a verdict on the hello");
    (s, verdict)
}

/// Drains server events for `period`, per node: samples (seq, count) and connections.
#[derive(Debug, Default)]
struct Seen {
    samples: BTreeMap<String, Vec<u64>>,
    connected: Vec<String>,
    disconnected: Vec<(Option<String>, Option<CloseCode>)>,
}

fn drain(server: &Server, seen: &mut Seen, period: Duration) {
    let deadline = Instant::now() + period;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match server.events().recv_timeout(left) {
            Ok(ServerEvent::Samples {
                node, seq, records, ..
            }) => {
                let v = seen.samples.entry(node.as_str().to_owned()).or_default();
                v.extend((0..records.len() as u64).map(|i| seq + i));
            }
            Ok(ServerEvent::Connected { peer, .. }) => {
                seen.connected.push(peer.node.as_str().to_owned())
            }
            Ok(ServerEvent::Disconnected { node, cause, .. }) => seen
                .disconnected
                .push((node.map(|n| n.as_str().to_owned()), cause.code())),
            Ok(_) => {}
            Err(_) => {}
        }
    }
}

// ---------------------------------------------------------------- impersonation

/// Before: the impostor's `hello` superseded the drone ("superseded by a new connection"),
/// its records went out under the drone's name and `tune` went to it.
#[test]
fn impersonating_a_live_drone_is_refused_busy_and_the_drone_keeps_streaming() {
    let server = Server::bind("127.0.0.1:0", server_config()).unwrap();
    let addr = server.local_addr();
    let drone = client(addr, "drone-1", 7);
    wait_connected(&drone, Duration::from_secs(10));
    for i in 0..50 {
        assert!(drone.push_sample(record(i)));
    }
    let mut seen = Seen::default();
    drain(&server, &mut seen, Duration::from_millis(300));

    // Same name, same stream, and a different stream: both refused.
    for stream in [7, 8] {
        let (mut s, verdict) = raw_hello(addr, "drone-1", stream);
        assert_eq!(verdict, Err("busy".to_owned()), "stream {stream}");
        // Nothing it sends afterwards is read.
        let _ = s.write_all(&sarlink_testkit::frame(&Message::Rssi(Rssi::single(
            50,
            record(999),
        ))));
    }
    for i in 50..100 {
        assert!(drone.push_sample(record(i)));
    }
    drain(&server, &mut seen, Duration::from_millis(500));
    assert_eq!(seen.samples["drone-1"], (0..100).collect::<Vec<_>>());
    assert_eq!(seen.connected, ["drone-1"], "no impostor got in: {seen:?}");
    assert_eq!(
        seen.disconnected,
        [(None, Some(CloseCode::Busy)), (None, Some(CloseCode::Busy))],
        "the impostors were refused before holding any name"
    );
    assert!(
        !drone
            .events()
            .try_iter()
            .any(|e| matches!(e, ClientEvent::Disconnected { .. })),
        "the drone was never cut off"
    );
    // Commands for drone-1 still reach the one connection that holds the name.
    assert_eq!(server.connections().len(), 1);
    drone.close();
    server.shutdown();
}

/// Ownership is released by liveness: a connection silent for the liveness timeout closes,
/// and then the name is free again (a drone whose old connection went half-open gets back).
#[test]
fn a_name_held_by_a_silent_connection_is_free_after_the_liveness_timeout() {
    let mut config = server_config();
    config.session.liveness_timeout = Duration::from_millis(600);
    config.session.degraded_after = Duration::from_millis(300);
    let server = Server::bind("127.0.0.1:0", config).unwrap();
    let addr = server.local_addr();
    // The old connection: welcomed, then silent (never answers pings).
    let (_half_open, verdict) = raw_hello(addr, "drone-h", 3);
    assert_eq!(verdict, Ok(0));
    let (_, second) = raw_hello(addr, "drone-h", 3);
    assert_eq!(second, Err("busy".to_owned()), "live: refused");
    let drone = client(addr, "drone-h", 3);
    wait_connected(&drone, Duration::from_secs(10));
    drone.close();
    server.shutdown();
}

// ---------------------------------------------------------------- stream takeover

/// Before: `rssi` with seq 10^15 moved the stream's resume position to 10^15 + 1, and every
/// reconnect of the real drone failed for good.
#[test]
fn a_sample_number_beyond_the_window_moves_nothing_and_the_drone_resumes() {
    let server = Server::bind("127.0.0.1:0", server_config()).unwrap();
    let addr = server.local_addr();
    let proxy = FaultProxy::start("127.0.0.1:0", addr).unwrap();
    let drone = client(proxy.local_addr(), "drone-t", 9);
    wait_connected(&drone, Duration::from_secs(10));
    let mut seen = Seen::default();
    for i in 0..100 {
        assert!(drone.push_sample(record(i)));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.samples.get("drone-t").map_or(0, Vec::len) < 100 && Instant::now() < deadline {
        drain(&server, &mut seen, Duration::from_millis(100));
    }
    // The drone's link dies; an attacker takes its (node, stream) while it is away.
    proxy.set_down(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server
        .connections()
        .iter()
        .any(|(_, n, _)| n.as_str() == "drone-t")
    {
        assert!(
            Instant::now() < deadline,
            "the ground never saw the drone go"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut s, verdict) = raw_hello(addr, "drone-t", 9);
    assert_eq!(verdict, Ok(100));
    s.write_all(&sarlink_testkit::frame(&Message::Rssi(Rssi::single(
        1_000_000_000_000_000,
        record(1),
    ))))
    .unwrap();
    assert_eq!(
        close_code(&mut s, Duration::from_secs(5)).as_deref(),
        Some("protocol")
    );
    // So is a jump past what the stream can have produced since it was last heard: the
    // default window (65,536) plus 1,000 samples per second of silence. This one would
    // need over ten thousand seconds.
    let (mut s, verdict) = raw_hello(addr, "drone-t", 9);
    assert_eq!(verdict, Ok(100));
    s.write_all(&sarlink_testkit::frame(&Message::Rssi(Rssi::single(
        100 + 65_536 + 10_000_000,
        record(1),
    ))))
    .unwrap();
    assert_eq!(
        close_code(&mut s, Duration::from_secs(5)).as_deref(),
        Some("protocol")
    );
    drain(&server, &mut seen, Duration::from_millis(200));
    assert_eq!(
        server.resume_positions(),
        [ResumePosition {
            node: "drone-t".into(),
            stream: 9,
            next_seq: 100
        }],
        "the position did not move"
    );
    // The drone comes back and resumes where it was, nothing lost, nothing foreign.
    for i in 100..200 {
        assert!(drone.push_sample(record(i)));
    }
    proxy.set_down(false);
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.samples["drone-t"].len() < 200 && Instant::now() < deadline {
        drain(&server, &mut seen, Duration::from_millis(100));
    }
    assert_eq!(seen.samples["drone-t"], (0..200).collect::<Vec<_>>());
    assert!(
        seen.disconnected
            .iter()
            .filter(|(n, _)| n.as_deref() == Some("drone-t"))
            .filter(|(_, code)| *code == Some(CloseCode::Protocol))
            .count()
            >= 2,
        "both attempts were closed with protocol: {:?}",
        seen.disconnected
    );
    drone.close();
    server.shutdown();
}

// ---------------------------------------------------------------- slot exhaustion

/// Before: 64 connections that never said `hello` filled `max_clients`, and the honest drone
/// was refused `busy` until they timed out. Now idle connections wait in their own limits
/// (32 in all, 8 per address) and a drone from elsewhere connects and streams at once.
///
/// The idle connections come from `::1`, the drone from `127.0.0.1` (the server listens on
/// both through `[::]`).
#[test]
fn a_thousand_idle_connections_from_one_address_do_not_keep_a_drone_out() {
    let Ok(server) = Server::bind("[::]:0", server_config()) else {
        eprintln!("skipped: no IPv6 on this machine");
        return;
    };
    let port = server.local_addr().port();
    let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let v4: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut idle = Vec::with_capacity(1000);
    let mut refused_at_once = 0;
    for _ in 0..1000 {
        let s = TcpStream::connect(v6).unwrap();
        idle.push(s);
    }
    // The first 8 wait for their hello; every later one is told `busy` straight away.
    for s in idle.iter_mut().skip(8).take(20) {
        if close_code(s, Duration::from_secs(2)).as_deref() == Some("busy") {
            refused_at_once += 1;
        }
    }
    assert_eq!(refused_at_once, 20);

    let started = Instant::now();
    let drone = client(v4, "drone-x", 11);
    for i in 0..10 {
        assert!(drone.push_sample(record(i)));
    }
    let mut seen = Seen::default();
    while seen.samples.get("drone-x").map_or(0, Vec::len) < 10
        && started.elapsed() < Duration::from_secs(10)
    {
        drain(&server, &mut seen, Duration::from_millis(20));
    }
    let took = started.elapsed();
    assert_eq!(seen.samples["drone-x"], (0..10).collect::<Vec<_>>());
    eprintln!("drone connected and streamed in {took:?} beside 1000 idle connections");
    assert!(
        took < Duration::from_secs(1),
        "the drone took {took:?} to stream"
    );
    drop(idle);
    drone.close();
    server.shutdown();
}

// ---------------------------------------------------------------- max_message

/// Before: a `hello` with `max_message` 0 got neither `welcome` nor `reject`.
#[test]
fn a_hello_with_a_tiny_max_message_gets_reject_protocol() {
    let server = Server::bind("127.0.0.1:0", server_config()).unwrap();
    for max in [0, 1, 1023] {
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.write_all(&sarlink_testkit::frame(&hello("drone-m", 1, max)))
            .unwrap();
        assert_eq!(
            close_code(&mut s, Duration::from_secs(5)).as_deref(),
            Some("protocol"),
            "max_message {max}"
        );
    }
    let (_s, verdict) = raw_hello(server.local_addr(), "drone-m", 1);
    assert_eq!(verdict, Ok(0), "a normal hello still gets in");
    let closed = std::iter::from_fn(|| server.events().recv_timeout(Duration::from_secs(5)).ok())
        .find_map(|e| match e {
            ServerEvent::Disconnected { cause, .. } => Some(cause),
            _ => None,
        })
        .expect("the refusals were reported");
    assert_eq!(
        closed,
        sarlink_link::driver::Disconnect::Closed(CloseReason::Local(
            SessionError::MaxMessageTooSmall {
                max_message: 0,
                min: 1024
            }
        )),
        "typed, not a string"
    );
    server.shutdown();
}

// ---------------------------------------------------------------- rate collapse

/// Before: a drone at 50 Hz behind a proxy that cuts every connection every 2 s was advised
/// down to 2 Hz, then 1 Hz, and delivered between 186 and 1,151 records in 20 s. Now a
/// reconnect is not congestion: the drone keeps at least 90 % of its records.
///
/// The producer below behaves as the drone does: it reports at its configured 50 Hz unless
/// the link advises a lower rate.
#[test]
fn a_drone_at_50_hz_keeps_90_percent_through_a_proxy_that_cuts_every_2_s() {
    const HZ: f32 = 50.0;
    const RUN: Duration = Duration::from_secs(20);
    let server = Server::bind("127.0.0.1:0", server_config()).unwrap();
    let proxy = FaultProxy::start("127.0.0.1:0", server.local_addr()).unwrap();
    // A radio link: 30 ms each way, give or take 20.
    proxy.set_latency(Duration::from_millis(30), Duration::from_millis(20));
    let mut session = SessionConfig::new(Role::Drone, node("drone-50"), 50);
    session.congestion.full_rate_hz = HZ;
    let mut config = ClientConfig::new(session, proxy.local_addr().to_string());
    config.backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(5),
        jitter: 0.2,
    };
    let drone = Client::spawn(config).unwrap();
    let started = Instant::now();
    let mut advised = HZ;
    let mut lowest = HZ;
    let mut next_cut = started + Duration::from_secs(2);
    let mut next_sample = started;
    let mut produced = 0u64;
    let mut seen = Seen::default();
    while started.elapsed() < RUN {
        for e in drone.events().try_iter() {
            if let ClientEvent::AdviseRate(hz) = e {
                advised = hz.min(HZ);
                lowest = lowest.min(advised);
            }
        }
        let now = Instant::now();
        if now >= next_cut {
            proxy.drop_connections();
            next_cut += Duration::from_secs(2);
        }
        if now >= next_sample {
            assert!(drone.push_sample(record(produced)));
            produced += 1;
            next_sample += Duration::from_secs_f32(1.0 / advised);
        }
        drain(&server, &mut seen, Duration::from_millis(2));
    }
    // What was produced in time gets its chance to arrive.
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.samples.get("drone-50").map_or(0, Vec::len) < produced as usize
        && Instant::now() < deadline
    {
        drain(&server, &mut seen, Duration::from_millis(50));
    }
    let delivered = seen.samples.get("drone-50").map_or(0, Vec::len);
    let full = (HZ * RUN.as_secs_f32()) as usize;
    eprintln!(
        "produced {produced}, delivered {delivered} of {full}, lowest advice {lowest} Hz, {} cuts",
        proxy.stats().cut.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert!(
        delivered * 10 >= full * 9,
        "delivered {delivered} of {full} (lowest advice {lowest} Hz)"
    );
    drone.close();
    server.shutdown();
}
