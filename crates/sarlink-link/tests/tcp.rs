//! The blocking driver over real loopback TCP with real threads.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sarlink_link::driver::{
    Backoff, Client, ClientConfig, ClientEvent, ResumePosition, Server, ServerConfig, ServerEvent,
};
use sarlink_link::{PreSharedKey, SessionConfig};
use sarlink_schema::{Hello, Message, NodeName, Nonce, ProtocolVersion, Role};
use sarlink_testkit::record;
use sarlink_wire::{CloseCode, DecoderConfig, FrameDecoder};

fn node(name: &str) -> NodeName {
    NodeName::new(name).unwrap()
}

/// This process's resident memory, from /proc (None off Linux).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    sarlink_monitor::resources::parse_status_rss(&status).ok()?
}

fn server_config() -> ServerConfig {
    ServerConfig::new(SessionConfig::new(Role::Ground, node("ground"), 1))
}

fn start(config: ServerConfig) -> Server {
    Server::bind("127.0.0.1:0", config).unwrap()
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

fn wait_connected(c: &Client) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("client never connected");
        if let Ok(ClientEvent::Connected { .. }) = c.events().recv_timeout(left) {
            return;
        }
    }
}

/// Collects samples per node from server events until `done` says stop or time runs out.
fn collect(
    server: &Server,
    seqs: &mut BTreeMap<String, Vec<u64>>,
    timeout: Duration,
    done: impl Fn(&BTreeMap<String, Vec<u64>>) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done(seqs) {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return;
        };
        if let Ok(ServerEvent::Samples {
            node, seq, records, ..
        }) = server.events().recv_timeout(left)
        {
            let v = seqs.entry(node.as_str().to_owned()).or_default();
            for (i, r) in records.iter().enumerate() {
                assert_eq!(
                    *r,
                    record(seq + i as u64),
                    "record content survives the trip"
                );
                v.push(seq + i as u64);
            }
        }
    }
}

#[test]
fn a_client_streams_to_a_server_exactly_once_in_order() {
    let server = start(server_config());
    let c = client(server.local_addr(), "drone-1", 11);
    wait_connected(&c);
    for i in 0..2000 {
        assert!(c.push_sample_blocking(record(i)));
    }
    let mut seqs = BTreeMap::new();
    collect(&server, &mut seqs, Duration::from_secs(10), |s| {
        s.get("drone-1").is_some_and(|v| v.len() >= 2000)
    });
    assert_eq!(seqs["drone-1"], (0..2000).collect::<Vec<_>>());
    c.close();
    server.shutdown();
}

#[test]
fn a_server_restart_mid_stream_loses_nothing_and_duplicates_nothing() {
    let server = start(server_config());
    let addr = server.local_addr();
    let c = client(addr, "drone-r", 22);
    wait_connected(&c);
    let mut seqs = BTreeMap::new();
    for i in 0..500 {
        assert!(c.push_sample_blocking(record(i)));
    }
    collect(&server, &mut seqs, Duration::from_secs(10), |s| {
        s.get("drone-r").is_some_and(|v| v.len() >= 500)
    });
    // The ground goes away; the drone keeps measuring into its ring.
    let carried = server.resume_positions();
    assert_eq!(
        carried,
        [ResumePosition {
            node: "drone-r".to_owned(),
            stream: 22,
            next_seq: 500
        }]
    );
    server.shutdown();
    // A clean shutdown says so with `bye shutdown`.
    let code = loop {
        match c
            .events()
            .recv_timeout(Duration::from_secs(5))
            .expect("the client hears of the shutdown")
        {
            ClientEvent::Disconnected { cause, .. } => break cause.code(),
            _ => continue,
        }
    };
    assert_eq!(code, Some(CloseCode::Shutdown));
    for i in 500..1500 {
        assert!(c.push_sample_blocking(record(i)));
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // The ground comes back on the same port with its resume state.
    let mut config = server_config();
    config.resume = carried;
    let server = Server::bind(addr, config).unwrap();
    collect(&server, &mut seqs, Duration::from_secs(15), |s| {
        s.get("drone-r").is_some_and(|v| v.len() >= 1500)
    });
    assert_eq!(
        seqs["drone-r"],
        (0..1500).collect::<Vec<_>>(),
        "every sample once, across the restart"
    );
    assert!(c.counters().snapshot().samples_resent <= 1000);
    c.close();
    server.shutdown();
}

#[test]
fn confirm_all_moves_each_confirmed_position_forward_only() {
    let mut config = server_config();
    config.session.confirm_delivery = true;
    let server = start(config);
    let a = client(server.local_addr(), "drone-a", 31);
    let b = client(server.local_addr(), "drone-b", 32);
    wait_connected(&a);
    wait_connected(&b);
    for i in 0..50 {
        assert!(a.push_sample_blocking(record(i)));
        assert!(b.push_sample_blocking(record(i)));
    }
    let mut conns = BTreeMap::new();
    let mut seen = BTreeMap::<String, u64>::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.values().sum::<u64>() < 100 {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("every sample arrives");
        if let Ok(ServerEvent::Samples {
            conn,
            node,
            records,
            ..
        }) = server.events().recv_timeout(left)
        {
            conns.insert(node.as_str().to_owned(), conn);
            *seen.entry(node.as_str().to_owned()).or_default() += records.len() as u64;
        }
    }
    let position = |server: &Server, name: &str| {
        server
            .resume_positions()
            .into_iter()
            .find(|p| p.node == name)
            .map(|p| p.next_seq)
    };
    // Nothing is confirmed yet: the positions have not moved.
    assert_eq!(position(&server, "drone-a"), Some(0));
    let gone = conns.values().max().unwrap() + 1_000;
    // One of them for a connection that does not exist: ignored.
    server.confirm_all(&[
        (conns["drone-a"], "drone-a", 31, 40),
        (conns["drone-b"], "drone-b", 32, 50),
        (gone, "drone-x", 9, 5),
    ]);
    assert_eq!(position(&server, "drone-a"), Some(40));
    assert_eq!(position(&server, "drone-b"), Some(50));
    // A position never moves back.
    server.confirm_all(&[(conns["drone-a"], "drone-a", 31, 10)]);
    assert_eq!(position(&server, "drone-a"), Some(40));
    // Found again by its connection (no search of the table), and moved.
    server.confirm_all(&[(conns["drone-a"], "drone-a", 31, 45)]);
    assert_eq!(position(&server, "drone-a"), Some(45));
    // The node and stream named decide which position moves, not the connection: one
    // confirmed for before under another name does not move its own.
    server.confirm_all(&[(conns["drone-a"], "drone-b", 32, 60)]);
    assert_eq!(position(&server, "drone-b"), Some(60));
    assert_eq!(position(&server, "drone-a"), Some(45));
    server.confirm_all(&[(conns["drone-a"], "drone-a", 31, 48)]);
    assert_eq!(position(&server, "drone-a"), Some(48));
    assert_eq!(position(&server, "drone-b"), Some(60));
    a.close();
    b.close();
    server.shutdown();
}

#[test]
fn a_client_over_the_limit_is_rejected_busy() {
    let mut config = server_config();
    config.max_clients = 1;
    let server = start(config);
    let first = client(server.local_addr(), "first", 1);
    wait_connected(&first);
    let second = client(server.local_addr(), "second", 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    let code = loop {
        match second
            .events()
            .recv_deadline(deadline)
            .expect("no verdict for the second client")
        {
            ClientEvent::Disconnected { cause, .. } if cause.code().is_some() => break cause,
            _ => continue,
        }
    };
    assert_eq!(code.code(), Some(CloseCode::Busy), "{code}");
    second.close();
    first.close();
}

#[test]
fn reconnect_backoff_doubles_with_jitter_up_to_the_cap() {
    // Nothing listens on this port: bind one, then drop it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = ClientConfig::new(
        SessionConfig::new(Role::Drone, node("lonely"), 3),
        addr.to_string(),
    );
    config.backoff = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(80),
        jitter: 0.2,
    };
    let c = Client::spawn(config).unwrap();
    let mut delays = Vec::new();
    while delays.len() < 6 {
        if let Ok(ClientEvent::Disconnected { retry_in, .. }) =
            c.events().recv_timeout(Duration::from_secs(5))
        {
            delays.push(retry_in.as_secs_f64() * 1000.0);
        }
    }
    let bases = [10.0, 20.0, 40.0, 80.0, 80.0, 80.0];
    for (d, base) in delays.iter().zip(bases) {
        assert!(
            *d >= base * 0.8 - 1e-9 && *d <= base * 1.2 + 1e-9,
            "{delays:?}"
        );
    }
    c.close();
}

#[test]
fn backoff_delay_is_pure_and_bounded() {
    let b = Backoff::default();
    assert_eq!(b.delay(0, 0.5), Duration::from_millis(100));
    assert_eq!(b.delay(3, 0.5), Duration::from_millis(800));
    assert_eq!(b.delay(30, 0.5), Duration::from_secs(5));
    assert_eq!(b.delay(30, 1.0), Duration::from_secs(6));
    assert_eq!(b.delay(0, 0.0), Duration::from_millis(80));
}

#[test]
fn authenticated_clients_connect_and_wrong_keys_are_refused() {
    let key = PreSharedKey::new(b"correct horse battery staple".to_vec()).unwrap();
    let mut config = server_config();
    config.session = config.session.with_key(key.clone());
    let server = start(config);
    let mk = |k: Option<PreSharedKey>, name: &str| {
        let mut s = SessionConfig::new(Role::Drone, node(name), 5);
        s.key = k;
        let mut c = ClientConfig::new(s, server.local_addr().to_string());
        c.backoff = Backoff {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(5),
            jitter: 0.0,
        };
        Client::spawn(c).unwrap()
    };
    let good = mk(Some(key), "good");
    wait_connected(&good);
    for (k, name) in [
        (Some(PreSharedKey::new(vec![0u8; 16]).unwrap()), "bad"),
        (None, "keyless"),
    ] {
        let c = mk(k, name);
        let ev = c.events().recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            matches!(&ev, ClientEvent::Disconnected { cause, .. } if cause.code() == Some(CloseCode::Auth)),
            "{name}: {ev:?}"
        );
        c.close();
    }
    good.close();
}

// ---------------------------------------------------------------- hostile clients

/// Reads frames from a raw socket until a `bye` or `reject` arrives; returns its code.
fn read_close_code(stream: &mut TcpStream, within: Duration) -> Option<String> {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
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
            match Message::decode(&payload).unwrap() {
                Message::Bye(b) => return Some(b.code.as_str().to_owned()),
                Message::Reject(r) => return Some(r.code.as_str().to_owned()),
                _ => {}
            }
        }
    }
    None
}

fn hello_frame() -> BytesMut {
    let hello = Message::Hello(Hello {
        version: ProtocolVersion::V1_0,
        role: Role::Drone,
        node: node("raw"),
        stream: 99,
        compression: vec![],
        max_message: 1 << 20,
        nonce: Nonce([5; 16]),
        rssi_units: None,
    });
    sarlink_testkit::frame(&hello)
}

#[test]
fn hostile_clients_are_cut_off_while_100_good_clients_keep_streaming() {
    let mut config = server_config();
    config.max_clients = 200;
    // Every client here comes from 127.0.0.1: let them all shake hands at once.
    config.max_handshakes = 200;
    config.max_handshakes_per_addr = 200;
    config.session.handshake_timeout = Duration::from_secs(1);
    let server = start(config);
    let addr = server.local_addr();
    let rss_before = rss_bytes();

    let good: Vec<Client> = (0..100)
        .map(|i| client(addr, &format!("good-{i}"), 1000 + i))
        .collect();
    for c in &good {
        wait_connected(c);
    }
    // Hostile peers, each on its own raw socket.
    let hostile = std::thread::spawn(move || {
        let mut results = Vec::new();
        // Garbage after a valid handshake start.
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        results.push(("garbage", read_close_code(&mut s, Duration::from_secs(3))));
        // A length over the limit, from the header alone.
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&[0, 0x7f, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        results.push(("too large", read_close_code(&mut s, Duration::from_secs(3))));
        // A valid hello with its checksum broken.
        let mut s = TcpStream::connect(addr).unwrap();
        let mut f = hello_frame();
        let last = f.len() - 1;
        f[last] ^= 0xff;
        s.write_all(&f).unwrap();
        results.push((
            "bad checksum",
            read_close_code(&mut s, Duration::from_secs(3)),
        ));
        // Slowloris: a valid hello, one byte every 300 ms.
        let mut s = TcpStream::connect(addr).unwrap();
        let f = hello_frame();
        let mut code = None;
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        for b in f.iter() {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            code = read_close_code(&mut s, Duration::from_millis(300));
            if code.is_some() {
                break;
            }
        }
        results.push(("slowloris", code));
        results
    });
    // Meanwhile every good client streams at ~100 Hz.
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        for c in &good {
            assert!(c.push_sample(record(sent)));
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    let results = hostile.join().unwrap();
    assert_eq!(
        results,
        [
            ("garbage", Some("protocol".to_owned())),
            ("too large", Some("too_large".to_owned())),
            ("bad checksum", Some("checksum".to_owned())),
            ("slowloris", Some("timeout".to_owned())),
        ]
    );
    let mut seqs = BTreeMap::new();
    collect(&server, &mut seqs, Duration::from_secs(20), |s| {
        s.len() == 100 && s.values().all(|v| v.len() as u64 >= sent)
    });
    assert_eq!(seqs.len(), 100);
    for (name, v) in &seqs {
        assert_eq!(
            *v,
            (0..sent).collect::<Vec<_>>(),
            "{name} lost or duplicated samples"
        );
    }
    for c in &good {
        let drops: Vec<_> = c
            .events()
            .try_iter()
            .filter(|e| matches!(e, ClientEvent::Disconnected { .. }))
            .collect();
        assert!(
            drops.is_empty(),
            "a good client was disconnected: {drops:?}"
        );
    }
    // Hostile connections are gone; memory did not run away (loose bound: 100 clients).
    assert_eq!(server.connections().len(), 100);
    if let (Some(before), Some(after)) = (rss_before, rss_bytes()) {
        assert!(
            after < before + 256 * 1024 * 1024,
            "RSS grew from {before} to {after}"
        );
    }
    for c in good {
        c.close();
    }
    server.shutdown();
}

#[test]
fn an_outage_through_a_faulty_network_loses_nothing() {
    use sarlink_testkit::proxy::FaultProxy;
    let server = start(server_config());
    let proxy = FaultProxy::start("127.0.0.1:0", server.local_addr()).unwrap();
    proxy.set_latency(Duration::from_millis(20), Duration::from_millis(10));
    let c = client(proxy.local_addr(), "drone-p", 44);
    wait_connected(&c);
    let mut seqs = BTreeMap::new();
    for i in 0..300u64 {
        assert!(c.push_sample_blocking(record(i)));
        if i == 100 {
            proxy.set_down(true); // the link dies; the drone keeps measuring
        }
        if i == 250 {
            proxy.set_down(false);
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    collect(&server, &mut seqs, Duration::from_secs(20), |s| {
        s.get("drone-p").is_some_and(|v| v.len() >= 300)
    });
    assert_eq!(seqs["drone-p"], (0..300).collect::<Vec<_>>());
    assert!(c.counters().snapshot().connections >= 2, "it reconnected");
    c.close();
}
