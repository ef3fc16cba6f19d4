//! The server's event loop and a peer that stops reading: the loop keeps serving everyone
//! else, and cuts the peer off once it has taken nothing for the write timeout.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sarlink_link::SessionConfig;
use sarlink_link::driver::{
    Backoff, Client, ClientConfig, ClientEvent, Disconnect, IoOp, Server, ServerConfig, ServerEvent,
};
use sarlink_schema::{Hello, Message, NodeName, Nonce, ProtocolVersion, Role};
use sarlink_testkit::record;

fn node(name: &str) -> NodeName {
    NodeName::new(name).unwrap()
}

/// A `hello` from an observer that will never read what it is sent.
fn observer_hello() -> BytesMut {
    let hello = Message::Hello(Hello {
        version: ProtocolVersion::V1_1,
        role: Role::Observer,
        node: node("slow"),
        stream: 7,
        compression: vec![],
        max_message: 1 << 20,
        nonce: Nonce([9; 16]),
        rssi_units: None,
    });
    sarlink_testkit::frame(&hello)
}

#[test]
fn a_peer_that_stops_reading_is_cut_off_and_blocks_nobody() {
    let mut config = ServerConfig::new(SessionConfig::new(Role::Ground, node("ground"), 1));
    config.write_timeout = Duration::from_secs(1);
    let server = Server::bind("127.0.0.1:0", config).unwrap();
    let addr = server.local_addr();

    // The observer says hello, then never reads again.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(&observer_hello()).unwrap();
    let slow_conn = loop {
        match server.events().recv_timeout(Duration::from_secs(10)) {
            Ok(ServerEvent::Connected { conn, peer, .. }) if peer.node == node("slow") => {
                break conn;
            }
            Ok(_) => {}
            Err(e) => panic!("the observer never connected: {e}"),
        }
    };
    // A drone that streams meanwhile.
    let mut c = ClientConfig::new(
        SessionConfig::new(Role::Drone, node("drone"), 42),
        addr.to_string(),
    );
    c.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        jitter: 0.2,
    };
    let drone = Client::spawn(c).unwrap();

    // Relay records to the observers (the slow one) until it is cut off, taking the drone's
    // samples as they come.
    let start = Instant::now();
    let mut relayed = 0u64;
    let mut pushed = 0u64;
    let mut received = Vec::new();
    let mut cut = None;
    while cut.is_none() && start.elapsed() < Duration::from_secs(60) {
        for _ in 0..2_000 {
            server.broadcast_sample(Role::Observer, record(relayed));
            relayed += 1;
        }
        if drone.push_sample(record(pushed)) {
            pushed += 1;
        }
        while let Ok(event) = server.events().try_recv() {
            match event {
                ServerEvent::Samples { seq, records, .. } => {
                    received.extend((0..records.len() as u64).map(|i| seq + i));
                }
                ServerEvent::Disconnected { conn, cause, .. } if conn == slow_conn => {
                    cut = Some((cause, start.elapsed()));
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let (cause, after) = cut.expect("the peer that stopped reading was never cut off");
    assert_eq!(
        cause,
        Disconnect::Io {
            op: IoOp::Write,
            kind: std::io::ErrorKind::TimedOut
        }
    );
    // The drone kept streaming the whole time, and still does.
    let deadline = Instant::now() + Duration::from_secs(10);
    while (received.len() as u64) < pushed && Instant::now() < deadline {
        if let Ok(ServerEvent::Samples { seq, records, .. }) =
            server.events().recv_timeout(Duration::from_millis(100))
        {
            received.extend((0..records.len() as u64).map(|i| seq + i));
        }
    }
    assert_eq!(
        received,
        (0..pushed).collect::<Vec<_>>(),
        "the drone's samples, once each and in order, while the observer was stuck ({after:?})"
    );
    assert!(
        !drone
            .events()
            .try_iter()
            .any(|e| matches!(e, ClientEvent::Disconnected { .. })),
        "the drone was disconnected"
    );
    drop(slow);
    drone.close();
    server.shutdown();
}
