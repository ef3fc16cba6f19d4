//! TLS 1.3 with mutual authentication over loopback: a fleet CA made with rcgen, a ground
//! and drones holding certificates for their names, and the attacks TLS must stop.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sarlink_link::SessionConfig;
use sarlink_link::driver::{
    Backoff, Client, ClientConfig, ClientEvent, Disconnect, Server, ServerConfig, ServerEvent,
};
use sarlink_link::tls::{ClientTls, ServerTls, TlsError};
use sarlink_schema::{NodeName, Role};
use sarlink_testkit::fleet::{Fleet, Issued};
use sarlink_testkit::record;
use sarlink_wire::CloseCode;

fn node(name: &str) -> NodeName {
    NodeName::new(name).unwrap()
}

fn server(fleet: &mut Fleet, crl: &str) -> Server {
    let ground = fleet.issue("ground");
    let mut config = ServerConfig::new(SessionConfig::new(Role::Ground, node("ground"), 1));
    config.tls = Some(
        ServerTls::from_pem(
            fleet.ca_pem().as_bytes(),
            ground.cert_pem.as_bytes(),
            ground.key_pem.as_bytes(),
            crl.as_bytes(),
        )
        .unwrap(),
    );
    Server::bind("127.0.0.1:0", config).unwrap()
}

fn client(addr: SocketAddr, ca: &str, id: &Issued, name: &str, ground: &str) -> Client {
    let mut c = ClientConfig::new(
        SessionConfig::new(Role::Drone, node(name), 7),
        addr.to_string(),
    );
    c.backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
        jitter: 0.2,
    };
    c.tls = Some(
        ClientTls::from_pem(
            ca.as_bytes(),
            id.cert_pem.as_bytes(),
            id.key_pem.as_bytes(),
            ground,
        )
        .unwrap(),
    );
    Client::spawn(c).unwrap()
}

/// The first event that says connected or not.
fn verdict(c: &Client) -> ClientEvent {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("no verdict");
        match c.events().recv_timeout(left) {
            Ok(e @ (ClientEvent::Connected { .. } | ClientEvent::Disconnected { .. })) => {
                return e;
            }
            _ => continue,
        }
    }
}

fn samples_of(server: &Server, name: &str, n: usize) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seqs = Vec::new();
    while seqs.len() < n && Instant::now() < deadline {
        if let Ok(ServerEvent::Samples {
            node, seq, records, ..
        }) = server.events().recv_timeout(Duration::from_millis(50))
        {
            if node.as_str() == name {
                for (i, r) in records.iter().enumerate() {
                    assert_eq!(*r, record(seq + i as u64));
                    seqs.push(seq + i as u64);
                }
            }
        }
    }
    seqs
}

#[test]
fn a_drone_with_its_certificate_streams_over_tls() {
    let mut fleet = Fleet::new("fleet");
    let server = server(&mut fleet, "");
    let id = fleet.issue("drone-1");
    let drone = client(
        server.local_addr(),
        &fleet.ca_pem(),
        &id,
        "drone-1",
        "ground",
    );
    assert!(matches!(verdict(&drone), ClientEvent::Connected { .. }));
    for i in 0..500 {
        assert!(drone.push_sample_blocking(record(i)));
    }
    assert_eq!(
        samples_of(&server, "drone-1", 500),
        (0..500).collect::<Vec<_>>()
    );
    drone.close();
    server.shutdown();
}

/// A backlog larger than rustls's outgoing buffer (64 KiB) goes through in pieces: before,
/// handing rustls a 256 KiB transmit at once failed with "write zero" and reconnected for ever.
#[test]
fn a_large_backlog_goes_through_tls_without_reconnecting() {
    let mut fleet = Fleet::new("fleet");
    let server = server(&mut fleet, "");
    let id = fleet.issue("drone-1");
    let mut config = ClientConfig::new(
        {
            let mut s = SessionConfig::new(Role::Drone, node("drone-1"), 7);
            s.compression = false;
            s
        },
        server.local_addr().to_string(),
    );
    config.command_capacity = 40_000;
    config.tls = Some(
        ClientTls::from_pem(
            fleet.ca_pem().as_bytes(),
            id.cert_pem.as_bytes(),
            id.key_pem.as_bytes(),
            "ground",
        )
        .unwrap(),
    );
    let drone = Client::spawn(config).unwrap();
    // Produced before the link is up: the first transmit is the whole backlog.
    for i in 0..20_000 {
        assert!(drone.push_sample(record(i)));
    }
    assert!(matches!(verdict(&drone), ClientEvent::Connected { .. }));
    assert_eq!(
        samples_of(&server, "drone-1", 20_000),
        (0..20_000).collect::<Vec<_>>()
    );
    assert!(
        !drone
            .events()
            .try_iter()
            .any(|e| matches!(e, ClientEvent::Disconnected { .. })),
        "no reconnect"
    );
    drone.close();
    server.shutdown();
}

/// Impersonation with TLS: a fleet member's certificate names one node; a `hello` for
/// another is refused `auth`, and the real drone is untouched.
#[test]
fn a_certificate_for_another_node_cannot_claim_a_name() {
    let mut fleet = Fleet::new("fleet");
    let server = server(&mut fleet, "");
    let ca = fleet.ca_pem();
    let real = fleet.issue("drone-1");
    let drone = client(server.local_addr(), &ca, &real, "drone-1", "ground");
    assert!(matches!(verdict(&drone), ClientEvent::Connected { .. }));
    let stolen = fleet.issue("drone-2");
    let impostor = client(server.local_addr(), &ca, &stolen, "drone-1", "ground");
    match verdict(&impostor) {
        ClientEvent::Disconnected { cause, .. } => {
            assert_eq!(cause.code(), Some(CloseCode::Auth), "{cause}")
        }
        other => panic!("the impostor got in: {other:?}"),
    }
    impostor.close();
    assert!(
        !drone
            .events()
            .try_iter()
            .any(|e| matches!(e, ClientEvent::Disconnected { .. })),
        "the real drone was not cut off"
    );
    drone.close();
    server.shutdown();
}

/// With TLS only the same identity can replace a live session, and the newest wins (a drone
/// whose old connection is half-open gets back at once instead of waiting it out).
#[test]
fn the_same_identity_replaces_its_own_live_session() {
    let mut fleet = Fleet::new("fleet");
    let server = server(&mut fleet, "");
    let ca = fleet.ca_pem();
    let id = fleet.issue("drone-1");
    let old = client(server.local_addr(), &ca, &id, "drone-1", "ground");
    assert!(matches!(verdict(&old), ClientEvent::Connected { .. }));
    let new = client(server.local_addr(), &ca, &id, "drone-1", "ground");
    assert!(matches!(verdict(&new), ClientEvent::Connected { .. }));
    match verdict(&old) {
        ClientEvent::Disconnected { cause, .. } => {
            assert_eq!(cause.code(), Some(CloseCode::Protocol), "{cause}")
        }
        other => panic!("the old session stayed: {other:?}"),
    }
    old.close();
    new.close();
    server.shutdown();
}

#[test]
fn strangers_revoked_drones_and_a_false_ground_are_refused() {
    let mut fleet = Fleet::new("fleet");
    let mut other = Fleet::new("not the fleet");
    let revoked = fleet.issue("drone-r");
    let crl = fleet.revocation_list(&[revoked.serial]);
    let server = server(&mut fleet, &crl);
    let ca = fleet.ca_pem();
    let addr = server.local_addr();
    let refused = |c: Client| {
        let v = verdict(&c);
        c.close();
        match v {
            ClientEvent::Disconnected {
                cause: Disconnect::Tls(e),
                ..
            } => e,
            other => panic!("expected a TLS refusal, got {other:?}"),
        }
    };
    // A certificate from another CA.
    let stranger = other.issue("drone-s");
    refused(client(
        addr,
        &other.ca_pem(),
        &stranger,
        "drone-s",
        "ground",
    ));
    // A revoked certificate.
    refused(client(addr, &ca, &revoked, "drone-r", "ground"));
    // The drone expects a ground called "ground-2": the real ground's certificate is not it.
    let honest = fleet.issue("drone-h");
    refused(client(addr, &ca, &honest, "drone-h", "ground-2"));
    // A valid drone still gets in.
    let ok = client(addr, &ca, &honest, "drone-h", "ground");
    assert!(matches!(verdict(&ok), ClientEvent::Connected { .. }));
    ok.close();
    server.shutdown();
}

#[test]
fn bad_inputs_are_typed_errors() {
    let mut fleet = Fleet::new("fleet");
    let id = fleet.issue("drone-1");
    let err =
        ClientTls::from_pem(b"", id.cert_pem.as_bytes(), id.key_pem.as_bytes(), "g").unwrap_err();
    assert_eq!(
        err,
        TlsError::NoCertificate {
            what: "CA certificate"
        }
    );
    let err = ClientTls::from_pem(
        fleet.ca_pem().as_bytes(),
        id.cert_pem.as_bytes(),
        id.key_pem.as_bytes(),
        "not a name!",
    )
    .unwrap_err();
    assert_eq!(err, TlsError::InvalidName("not a name!".into()));
}

/// Integrity after the handshake. Without TLS, frames carry XXH64, which has no key: an
/// on-path proxy can rewrite a record and its checksum, and the ground writes the forgery.
/// With TLS every record is authenticated: a proxy that flips one bit of what the drone sends
/// makes the ground refuse that TLS record and drop the connection; the drone reconnects and
/// resends, and every record the ground delivers is the drone's own, exactly once.
#[test]
fn a_proxy_that_rewrites_traffic_gets_nothing_past_tls() {
    let mut fleet = Fleet::new("fleet");
    let server = server(&mut fleet, "");
    let proxy =
        sarlink_testkit::proxy::FaultProxy::start("127.0.0.1:0", server.local_addr()).unwrap();
    let id = fleet.issue("drone-1");
    let drone = client(
        proxy.local_addr(),
        &fleet.ca_pem(),
        &id,
        "drone-1",
        "ground",
    );
    assert!(matches!(verdict(&drone), ClientEvent::Connected { .. }));
    let mut seqs = Vec::new();
    let mut refused = 0;
    let mut collect = |until: Instant, want: usize, seqs: &mut Vec<u64>| {
        while seqs.len() < want && Instant::now() < until {
            match server.events().recv_timeout(Duration::from_millis(50)) {
                Ok(ServerEvent::Samples { seq, records, .. }) => {
                    for (i, r) in records.iter().enumerate() {
                        assert_eq!(*r, record(seq + i as u64), "a rewritten record got through");
                        seqs.push(seq + i as u64);
                    }
                }
                Ok(ServerEvent::Disconnected {
                    cause: Disconnect::Tls(_),
                    ..
                }) => refused += 1,
                _ => {}
            }
        }
    };
    for round in 0..4u64 {
        if round > 0 {
            proxy.corrupt_upstream(1);
        }
        for i in round * 100..(round + 1) * 100 {
            assert!(drone.push_sample_blocking(record(i)));
            std::thread::sleep(Duration::from_millis(1));
        }
        collect(
            Instant::now() + Duration::from_secs(15),
            (round as usize + 1) * 100,
            &mut seqs,
        );
    }
    // A last look for disconnects still queued.
    collect(
        Instant::now() + Duration::from_millis(300),
        usize::MAX,
        &mut seqs,
    );
    assert_eq!(
        seqs,
        (0..400).collect::<Vec<_>>(),
        "every record exactly once"
    );
    let corrupted = proxy
        .stats()
        .corrupted
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(corrupted, 3, "the proxy altered three chunks");
    assert!(
        refused >= 1,
        "the ground refused the altered TLS records ({refused} TLS disconnects)"
    );
    drone.close();
    server.shutdown();
}
