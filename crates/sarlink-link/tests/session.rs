//! Deterministic two-endpoint tests of the session state machine: injected time, a network
//! that can split, drop and delay bytes, and no sleeps (the harness is
//! `sarlink_testkit::pair::Pair`).

use std::time::{Duration, Instant};

use bytes::BytesMut;
use sarlink_link::stream::SequenceError;
use sarlink_link::{
    CloseReason, Event, LinkState, MIN_MAX_MESSAGE, PreSharedKey, Session, SessionConfig,
    SessionError,
};
use sarlink_schema::{
    Ack, AckCode, Challenge, Cmd, CmdOp, Mac, Message, NodeName, Nonce, ProtocolVersion, Role,
    Status, Welcome, WireCode,
};
use sarlink_testkit::pair::{Chunking, Pair};
use sarlink_testkit::record;
use sarlink_wire::{CloseCode, DecoderConfig, EncoderConfig, FrameDecoder, FrameEncoder};

const MS: Duration = Duration::from_millis(1);

fn node(name: &str) -> NodeName {
    NodeName::new(name).unwrap()
}

fn client_config() -> SessionConfig {
    SessionConfig::new(Role::Drone, node("drone-1"), 0xD20E)
}

fn server_config() -> SessionConfig {
    SessionConfig::new(Role::Ground, node("ground"), 0x6A0D)
}

fn key(byte: u8) -> PreSharedKey {
    PreSharedKey::new(vec![byte; 32]).unwrap()
}

fn connected() -> Pair {
    Pair::connected(client_config(), server_config())
}

fn closed(events: &[Event]) -> Option<&CloseReason> {
    events.iter().find_map(|e| match e {
        Event::Closed(r) => Some(r),
        _ => None,
    })
}

/// Decodes every frame in `bytes` (compressed ones too) into messages.
fn messages(bytes: &[u8]) -> Vec<(bool, Message)> {
    let mut dec = FrameDecoder::new(DecoderConfig::default().accept_compressed(true));
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while !buf.is_empty() {
        let compressed = buf[0] & 1 == 1;
        let payload = dec.decode(&mut buf).unwrap().expect("whole frames");
        out.push((compressed, Message::decode(&payload).unwrap()));
    }
    out
}

// ------------------------------------------------------------------------- handshake

#[test]
fn handshake_without_key_connects_both_sides() {
    for chunking in [Chunking::Whole, Chunking::Bytes(1), Chunking::Bytes(7)] {
        let mut p = Pair::new(client_config(), server_config());
        p.chunking = chunking;
        p.drive();
        assert!(p.client.is_established());
        assert!(p.server.is_established());
        assert!(
            matches!(&p.server_events[0], Event::HelloReceived(h) if h.node.as_str() == "drone-1" && h.stream == 0xD20E && !h.authenticated)
        );
        assert!(p.client_events.iter().any(|e| matches!(e, Event::Connected { peer, resume_seq: 0, compression: true, .. } if peer.as_str() == "ground")));
        let sent = messages(&p.c2s_log);
        assert!(
            matches!(&sent[0], (false, Message::Hello(_))),
            "hello goes first, uncompressed"
        );
    }
}

#[test]
fn handshake_with_matching_keys_is_mutually_authenticated() {
    let mut p = Pair::new(
        client_config().with_key(key(7)),
        server_config().with_key(key(7)),
    );
    p.drive();
    assert!(p.client.is_established());
    assert!(matches!(&p.server_events[0], Event::HelloReceived(h) if h.authenticated));
    let from_server = messages(&p.s2c_log);
    assert!(matches!(&from_server[0].1, Message::Challenge(_)));
    assert!(matches!(&from_server[1].1, Message::Welcome(w) if w.mac.is_some()));
}

#[test]
fn wrong_key_is_rejected_with_auth_and_gets_nothing_else() {
    let mut p = Pair::new(
        client_config().with_key(key(1)),
        server_config().with_key(key(2)),
    );
    p.drive();
    assert!(!p.client.is_established());
    assert!(
        matches!(closed(&p.client_events), Some(CloseReason::Rejected { code, .. }) if code.close_code() == Some(CloseCode::Auth)),
        "{:?}",
        p.client_events
    );
    let kinds: Vec<_> = messages(&p.s2c_log)
        .into_iter()
        .map(|(_, m)| m.kind())
        .collect();
    assert_eq!(
        kinds,
        [
            sarlink_schema::MessageKind::Challenge,
            sarlink_schema::MessageKind::Reject
        ]
    );
    assert!(
        !p.server_events
            .iter()
            .any(|e| matches!(e, Event::HelloReceived(_))),
        "the application never sees an unauthenticated peer"
    );
}

#[test]
fn client_without_key_cannot_join_a_keyed_server() {
    let mut p = Pair::new(client_config(), server_config().with_key(key(2)));
    p.drive();
    assert!(matches!(
        closed(&p.client_events),
        Some(CloseReason::Local(SessionError::KeyRequired))
    ));
    assert!(!p.server.is_established());
}

#[test]
fn client_with_key_refuses_a_server_that_does_not_prove_it() {
    // A server with no key welcomes anyone without a MAC.
    let mut p = Pair::new(client_config().with_key(key(1)), server_config());
    p.drive();
    assert!(!p.client.is_established());
    assert!(matches!(
        closed(&p.client_events),
        Some(CloseReason::Local(SessionError::ServerNotAuthenticated))
    ));
}

/// Frames messages by hand, as a hostile or foreign peer would.
fn frame(messages: &[Message]) -> BytesMut {
    let mut enc = FrameEncoder::new(EncoderConfig::default().compression(false));
    let mut out = BytesMut::new();
    for m in messages {
        let mut payload = BytesMut::new();
        m.encode(&mut payload);
        enc.encode(&payload, &mut out).unwrap();
    }
    out
}

#[test]
fn client_refuses_a_forged_server_mac() {
    let now = Instant::now();
    let mut client = Session::client(client_config().with_key(key(1)), now, [1; 16]);
    let mut out = BytesMut::new();
    client.poll_transmit(now, &mut out); // hello
    let welcome = |mac| {
        Message::Welcome(Welcome {
            version: ProtocolVersion::V1_0,
            node: node("evil"),
            compression: vec![],
            max_message: 1 << 20,
            resume_seq: 0,
            mac: Some(Mac(mac)),
            rssi_units: None,
        })
    };
    let mut input = frame(&[
        Message::Challenge(Challenge {
            nonce: Nonce([9; 16]),
        }),
        welcome([0; 32]),
    ]);
    client.handle_input(now, &mut input);
    assert!(!client.is_established());
    let events: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
    assert!(matches!(
        closed(&events),
        Some(CloseReason::Local(SessionError::ServerNotAuthenticated))
    ));

    // The same exchange with the right MAC succeeds, so the check above is the MAC's.
    let mut client = Session::client(client_config().with_key(key(1)), now, [1; 16]);
    client.poll_transmit(now, &mut out);
    let good = key(1).server_mac(&[1; 16], &[9; 16]);
    let mut input = frame(&[
        Message::Challenge(Challenge {
            nonce: Nonce([9; 16]),
        }),
        welcome(good),
    ]);
    client.handle_input(now, &mut input);
    assert!(client.is_established());
}

#[test]
fn different_major_version_is_rejected_and_lower_minor_is_agreed() {
    let mut c = client_config();
    c.version = ProtocolVersion { major: 2, minor: 0 };
    let mut p = Pair::new(c, server_config());
    p.drive();
    assert!(
        matches!(closed(&p.client_events), Some(CloseReason::Rejected { code, .. }) if code.close_code() == Some(CloseCode::Version))
    );

    let mut c = client_config();
    c.version = ProtocolVersion { major: 1, minor: 4 };
    let mut p = Pair::new(c, server_config());
    p.drive();
    assert!(p.client.is_established());
    assert!(p.client_events.iter().any(
        |e| matches!(e, Event::Connected { version, .. } if *version == ProtocolVersion::V1_1)
    ));
}

#[test]
fn a_role_the_server_does_not_accept_is_rejected() {
    let c = SessionConfig::new(Role::Ground, node("other-ground"), 1);
    let mut p = Pair::new(c, server_config());
    p.drive();
    assert!(
        matches!(closed(&p.client_events), Some(CloseReason::Rejected { code, .. }) if code.close_code() == Some(CloseCode::Role))
    );
}

#[test]
fn compression_is_used_only_when_agreed_and_only_after_the_handshake() {
    let mut c = client_config();
    c.compression = false;
    let mut p = Pair::new(c, server_config());
    p.drive();
    assert!(p.client_events.iter().any(|e| matches!(
        e,
        Event::Connected {
            compression: false,
            ..
        }
    )));
    for i in 0..500 {
        p.client.push_sample(record(i));
    }
    p.drive();
    assert!(
        messages(&p.c2s_log)
            .iter()
            .all(|(compressed, _)| !compressed)
    );

    let mut p = connected();
    for i in 0..500 {
        p.client.push_sample(record(i));
    }
    p.drive();
    let sent = messages(&p.c2s_log);
    assert!(!sent[0].0, "hello is never compressed");
    assert!(
        sent.iter()
            .any(|(compressed, m)| *compressed && matches!(m, Message::Rssi(_)))
    );
    assert_eq!(p.delivered().len(), 500);
}

#[test]
fn handshake_times_out_on_both_sides() {
    let mut p = Pair::new(client_config(), server_config());
    p.c2s_up = false; // the server never hears hello
    p.advance(4_990 * MS);
    assert!(closed(&p.client_events).is_none() && closed(&p.server_events).is_none());
    p.advance(20 * MS);
    assert!(matches!(
        closed(&p.client_events),
        Some(CloseReason::Local(SessionError::HandshakeTimeout))
    ));
    assert!(matches!(
        closed(&p.server_events),
        Some(CloseReason::Local(SessionError::HandshakeTimeout))
    ));
}

#[test]
fn garbage_and_frame_errors_close_with_the_right_code() {
    let cases: [(&[u8], CloseCode); 3] = [
        (&[0x80, 0, 0, 0, 1, 0, 0, 0, 0, 0], CloseCode::Protocol), // reserved flag bit
        (
            &[0x00, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0],
            CloseCode::TooLarge,
        ),
        (
            &[0x00, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0, 1, 2, 3, 4, 5, 6, 7, 8],
            CloseCode::Checksum,
        ),
    ];
    for (bytes, code) in cases {
        let mut p = connected();
        let mut input = BytesMut::from(bytes);
        p.server.handle_input(p.now, &mut input);
        p.drive();
        assert!(
            matches!(closed(&p.server_events), Some(CloseReason::Local(e)) if CloseCode::from(e) == code),
            "{code:?}: {:?}",
            p.server_events
        );
        // The client was told why.
        assert!(
            matches!(closed(&p.client_events), Some(CloseReason::PeerBye { code: c, .. }) if c.close_code() == Some(code))
        );
    }
}

// ------------------------------------------------------------------------- liveness

#[test]
fn idle_links_ping_every_second_and_measure_rtt() {
    let mut p = connected();
    p.advance(3_500 * MS);
    let pings = messages(&p.c2s_log)
        .iter()
        .filter(|(_, m)| matches!(m, Message::Ping(_)))
        .count();
    assert_eq!(pings, 3, "one ping per second");
    assert!(p.client.is_established(), "pings keep an idle link alive");
    assert_eq!(p.client.link_state(), LinkState::Healthy);
    // Zero network delay in this harness: every RTT is below the 10 ms clock step.
    let rtts: Vec<_> = p
        .client_events
        .iter()
        .filter_map(|e| {
            if let Event::Rtt(r) = e {
                Some(*r)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(rtts.len(), 3);
    assert!(rtts.iter().all(|r| *r < 10 * MS));
    assert_eq!(p.client.rtt().count, 3);
}

/// The messages of each transmission (one socket write in a driver).
fn transmissions(log: &[u8], writes: &[(Instant, usize)]) -> Vec<(Instant, Vec<Message>)> {
    let mut at = 0;
    writes
        .iter()
        .map(|(t, len)| {
            let msgs = messages(&log[at..at + len]).into_iter().map(|(_, m)| m);
            at += len;
            (*t, msgs.collect())
        })
        .collect()
}

#[test]
fn pings_and_rx_ride_with_other_frames_on_a_busy_link() {
    // A drone at 10 Hz and a ground acknowledging at most once a second, for 10 s.
    let mut server = server_config();
    server.rx_interval = 1_000 * MS;
    let mut p = Pair::connected(client_config(), server);
    let (c_start, s_start) = (p.c2s_writes.len(), p.s2c_writes.len());
    let start = p.now;
    for i in 0..100 {
        p.client.push_sample(record(i));
        p.advance(100 * MS);
    }
    let from_client = transmissions(&p.c2s_log, &p.c2s_writes)[c_start..].to_vec();
    let from_server = transmissions(&p.s2c_log, &p.s2c_writes)[s_start..].to_vec();

    // The drone writes once per record, and otherwise only to answer the ground's pings at
    // once; never for a ping or an rx of its own. It still measures the round trip about
    // once a second.
    let with_record = from_client
        .iter()
        .filter(|(_, m)| m.iter().any(|m| matches!(m, Message::Rssi(_))))
        .count();
    assert_eq!(with_record, 100, "one write per record");
    for (_, msgs) in &from_client {
        let answer = matches!(msgs[..], [Message::Pong(_)]);
        assert!(matches!(msgs[0], Message::Rssi(_)) || answer, "{msgs:?}");
    }
    let client_pings = from_client
        .iter()
        .flat_map(|(_, m)| m)
        .filter(|m| matches!(m, Message::Ping(_)))
        .count();
    assert!(
        (9..=12).contains(&client_pings),
        "{client_pings} pings in 10 s"
    );
    assert!(p.client.rtt().count >= 9, "{:?}", p.client.rtt());

    // The ground answers each ping at once; its own ping and its rx ride with the pong, so
    // it writes about once a second instead of at every rx and ping.
    assert!(
        from_server.len() <= 12,
        "{} server writes in 10 s: {from_server:?}",
        from_server.len()
    );
    let server_pings = from_server
        .iter()
        .flat_map(|(_, m)| m)
        .filter(|m| matches!(m, Message::Ping(_)))
        .count();
    assert!(
        server_pings >= 4,
        "the ground still measures: {server_pings}"
    );
    assert!(p.server.rtt().count >= 4);
    let rx: Vec<u64> = from_server
        .iter()
        .flat_map(|(_, m)| m)
        .filter_map(|m| {
            if let Message::Rx(r) = m {
                Some(r.seq)
            } else {
                None
            }
        })
        .collect();
    assert!(rx.len() >= 9, "{rx:?}");
    assert!(rx.windows(2).all(|w| w[0] < w[1]), "{rx:?}");
    // Nothing is ever left unacknowledged for longer than the ground's interval.
    assert!(p.client.unacked() <= 11, "{}", p.client.unacked());
    // Neither side is silent for longer than the ping interval.
    for writes in [&from_client, &from_server] {
        let mut last = start;
        for (t, _) in writes.iter() {
            assert!(
                *t - last <= 1_000 * MS + 10 * MS,
                "silent from {last:?} to {t:?}"
            );
            last = *t;
        }
    }
    assert_eq!(p.delivered().len(), 100);
}

#[test]
fn rtt_reflects_network_delay() {
    let mut p = connected();
    // Hold the server's answers back for 40 ms.
    p.advance(990 * MS);
    p.s2c_up = false;
    p.advance(20 * MS); // ping sent at 1 s, pong lost in "transit"
    let mut out = BytesMut::new();
    // Re-deliver the pong 40 ms after it was sent.
    let pongs = frame(
        &messages(&p.s2c_log)
            .into_iter()
            .filter(|(_, m)| matches!(m, Message::Pong(_)))
            .map(|(_, m)| m)
            .collect::<Vec<_>>(),
    );
    p.now += 40 * MS;
    out.extend_from_slice(&pongs);
    p.client.handle_input(p.now, &mut out);
    let rtt = std::iter::from_fn(|| p.client.poll_event())
        .find_map(|e| if let Event::Rtt(r) = e { Some(r) } else { None })
        .unwrap();
    assert!(rtt >= 40 * MS && rtt <= 70 * MS, "{rtt:?}");
}

#[test]
fn silence_degrades_then_loses_the_link() {
    let mut p = connected();
    p.s2c_up = false;
    p.c2s_up = false;
    p.advance(1_490 * MS);
    assert_eq!(p.client.link_state(), LinkState::Healthy);
    p.advance(20 * MS);
    assert_eq!(p.client.link_state(), LinkState::Degraded);
    p.advance(1_480 * MS);
    assert!(p.client.is_established());
    p.advance(20 * MS);
    assert!(p.client.is_closed());
    assert!(p.client_events.contains(&Event::LinkState(LinkState::Lost)));
    assert!(matches!(
        closed(&p.client_events),
        Some(CloseReason::Local(SessionError::LivenessTimeout))
    ));
}

// ------------------------------------------------------------------------- samples

#[test]
fn samples_at_10_hz_go_out_one_per_message_without_delay() {
    let mut p = connected();
    for i in 0..20 {
        p.client.push_sample(record(i));
        p.drive(); // the socket can take more right away
        assert_eq!(
            p.delivered().len() as u64,
            i + 1,
            "sample {i} was not delayed"
        );
        p.advance(100 * MS);
    }
    let rssi: Vec<_> = messages(&p.c2s_log)
        .into_iter()
        .filter_map(|(_, m)| {
            if let Message::Rssi(r) = m {
                Some(r)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(rssi.len(), 20);
    assert!(rssi.iter().all(|r| r.samples().len() == 1));
    // rx progress flows back at least every 250 ms while data flows.
    let rx = messages(&p.s2c_log)
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::Rx(_)))
        .count();
    assert!(rx >= 8, "{rx} rx messages in 2 s");
}

#[test]
fn backlog_is_coalesced_into_batches() {
    let mut c = client_config();
    c.batch_max = 64;
    let mut p = Pair::new(c, server_config());
    p.drive();
    for i in 0..1000 {
        p.client.push_sample(record(i));
    }
    p.drive();
    let rssi: Vec<_> = messages(&p.c2s_log)
        .into_iter()
        .filter_map(|(_, m)| {
            if let Message::Rssi(r) = m {
                Some(r)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(rssi.len(), 16, "1000 samples in batches of at most 64");
    assert!(rssi.iter().all(|r| r.samples().len() <= 64));
    let delivered = p.delivered();
    assert_eq!(delivered.len(), 1000);
    assert!(
        delivered
            .iter()
            .enumerate()
            .all(|(i, (seq, r))| *seq == i as u64 && *r == record(i as u64))
    );
}

#[test]
fn nothing_is_lost_across_a_reconnect_within_ring_capacity() {
    for chunking in [Chunking::Whole, Chunking::Bytes(5)] {
        let mut p = connected();
        p.chunking = chunking;
        for i in 0..50 {
            p.client.push_sample(record(i));
        }
        p.drive();
        // The link dies: what the client sends now is lost.
        p.c2s_up = false;
        for i in 50..120 {
            p.client.push_sample(record(i));
        }
        p.drive();
        assert_eq!(p.delivered().len(), 50);
        p.reconnect();
        assert!(
            p.client_events
                .iter()
                .any(|e| matches!(e, Event::Connected { resume_seq: 50, .. }))
        );
        let delivered = p.delivered();
        let seqs: Vec<u64> = delivered.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            seqs,
            (0..120).collect::<Vec<_>>(),
            "every sample exactly once"
        );
        assert!(delivered.iter().all(|(s, r)| *r == record(*s)));
        assert_eq!(p.client.sender_stats().resent, 70);
        assert_eq!(p.server.receiver().unwrap().gaps, 0);
    }
}

#[test]
fn ring_overflow_while_disconnected_is_counted_as_gaps() {
    let mut c = client_config();
    c.sample_ring = 32;
    let mut p = Pair::new(c, server_config());
    p.drive();
    for i in 0..10 {
        p.client.push_sample(record(i));
    }
    p.drive();
    p.advance(200 * MS); // rx acknowledges the first 10
    p.c2s_up = false;
    p.s2c_up = false;
    for i in 10..100 {
        p.client.push_sample(record(i));
    }
    p.drive();
    p.reconnect();
    let seqs: Vec<u64> = p.delivered().iter().map(|(s, _)| *s).collect();
    // The ring kept the newest 32: 68..100. 10..68 were evicted unsent or unacked.
    let expected: Vec<u64> = (0..10).chain(68..100).collect();
    assert_eq!(seqs, expected);
    assert_eq!(p.server.receiver().unwrap().gaps, 58);
    assert!(p.server_events.iter().any(|e| matches!(
        e,
        Event::Samples {
            seq: 68,
            gap: 58,
            ..
        }
    )));
}

#[test]
fn a_peer_acknowledging_unsent_samples_is_a_protocol_error() {
    let mut p = connected();
    p.client.push_sample(record(0));
    p.drive();
    let mut input = frame(&[Message::Rx(sarlink_schema::Rx { seq: 5 })]);
    p.client.handle_input(p.now, &mut input);
    p.drive();
    assert!(matches!(
        closed(&p.client_events),
        Some(CloseReason::Local(SessionError::Sequence(
            SequenceError::AckBeyondSent {
                claimed: 5,
                sent: 1
            }
        )))
    ));
}

// ------------------------------------------------------------------------- priorities

fn status(i: u32) -> Message {
    Message::Status(Status {
        t_ns: 1,
        cpu_pct: 10.0,
        mem_bytes: 1 << 20,
        temp_c: None,
        level: "normal".into(),
        disabled: vec![],
        dropped: 0,
        queued: i,
        rate_hz: 10.0,
        source: None,
        data_age_ms: None,
        alerts: vec![],
    })
}

#[test]
fn control_goes_before_data_before_telemetry() {
    let mut p = connected();
    let before = messages(&p.s2c_log).len();
    p.server.send(&status(1)).unwrap();
    p.server
        .send(&Message::Cmd(Cmd {
            id: 9,
            target: None,
            op: CmdOp::Stream { on: true },
        }))
        .unwrap();
    p.server.send(&status(2)).unwrap();
    p.server
        .send(&Message::Ack(Ack::refuse(3, AckCode::Busy, "busy")))
        .unwrap();
    p.drive();
    let kinds: Vec<_> = messages(&p.s2c_log)[before..]
        .iter()
        .map(|(_, m)| m.kind().to_string())
        .collect();
    assert_eq!(kinds, ["cmd", "ack", "status", "status"]);
    assert!(
        p.client_events
            .iter()
            .any(|e| matches!(e, Event::Command(Cmd { id: 9, .. })))
    );
}

#[test]
fn the_application_cannot_send_session_messages() {
    let mut p = connected();
    assert!(
        p.client
            .send(&Message::Rx(sarlink_schema::Rx { seq: 1 }))
            .is_err()
    );
    let rssi = sarlink_schema::Rssi::single(7, record(0));
    assert!(
        p.client.send(&Message::Rssi(rssi)).is_err(),
        "samples go through push_sample"
    );
    let mut fresh = Session::client(client_config(), p.now, [0; 16]);
    assert!(fresh.send(&status(0)).is_err(), "not established yet");
}

#[test]
fn a_full_send_queue_drops_oldest_telemetry_and_counts_it() {
    let mut s = server_config();
    s.queue_bytes = 1000;
    let mut p = Pair::new(client_config(), s);
    p.drive();
    for i in 0..100 {
        p.server.send(&status(i)).unwrap();
    }
    assert!(p.server.queue_stats().dropped[2] > 0);
    p.drive();
    let queued: Vec<u32> = p
        .client_events
        .iter()
        .filter_map(|e| {
            if let Event::Status(s) = e {
                Some(s.queued)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(*queued.last().unwrap(), 99, "the newest status survives");
    assert_eq!(queued.len() as u64 + p.server.queue_stats().dropped[2], 100);
}

#[test]
fn wire_codes_of_peer_bye_are_reported() {
    let mut p = connected();
    p.client.close(CloseCode::Shutdown, "landing");
    p.drive();
    assert!(
        matches!(closed(&p.server_events), Some(CloseReason::PeerBye { code, reason }) if *code == WireCode::from(CloseCode::Shutdown) && reason == "landing")
    );
}

// ------------------------------------------------------------------------- rate control

#[test]
fn bandwidth_cap_limits_bytes_and_backlog_triggers_rate_advice() {
    let mut c = client_config();
    c.bandwidth_cap = Some(20_000); // bytes per second; the burst is 64 KiB
    c.compression = false;
    let mut p = Pair::new(c, server_config());
    p.drive();
    let after_handshake = p.c2s_log.len();
    // Produce far more than the cap allows: 20,000 samples of ~90 bytes, 1.8 MB.
    for i in 0..20_000 {
        p.client.push_sample(record(i));
    }
    p.advance(Duration::from_secs(5));
    let sent = p.c2s_log.len() - after_handshake;
    // At most burst + rate * t (plus one frame of overshoot), and the cap is actually used.
    let limit = 64 * 1024 + 20_000 * 5 + 30_000;
    assert!(sent <= limit, "{sent} bytes sent in 5 s, limit {limit}");
    assert!(
        sent >= 100_000,
        "{sent} bytes: the cap should still let traffic through"
    );
    assert!(p.client.backlog() > 10_000);
    let advice: Vec<f32> = p
        .client_events
        .iter()
        .filter_map(|e| {
            if let Event::AdviseRate(r) = e {
                Some(*r)
            } else {
                None
            }
        })
        .collect();
    // Observed once per ping (1 s): the first observation of a connection is its baseline,
    // then a backlog that does not drain steps down at most every 2 s: at 2 s and 4 s, each a
    // fraction of the configured rate (10 Hz by default).
    assert_eq!(
        advice,
        [5.0, 2.5],
        "one step down per 2 s while the backlog persists"
    );
    // Nothing was lost, only delayed: what arrived is in order with no gaps.
    let delivered = p.delivered();
    assert!(
        delivered
            .iter()
            .enumerate()
            .all(|(i, (s, _))| *s == i as u64)
    );
    assert_eq!(p.server.receiver().unwrap().gaps, 0);
}

#[test]
fn batches_respect_the_peers_max_message() {
    let mut s = server_config();
    s.max_message = 4096;
    let mut p = Pair::new(client_config(), s);
    p.drive();
    for i in 0..1000 {
        p.client.push_sample(record(i));
    }
    p.drive();
    // The server's decoder enforces its limit: had a batch exceeded it, the session would
    // have closed with too_large. Everything arrived instead, in batches that fit.
    assert!(p.server.is_established());
    assert_eq!(p.delivered().len(), 1000);
    let mut dec = FrameDecoder::new(DecoderConfig::default().accept_compressed(true));
    let mut buf = BytesMut::from(&p.c2s_log[..]);
    while let Some(payload) = dec.decode(&mut buf).unwrap() {
        assert!(payload.len() <= 4096, "{}", payload.len());
    }

    // A peer limit too small to be useful is refused at the handshake, by the client
    // (from the welcome) as by the server (from the hello).
    let mut s = server_config();
    s.max_message = 140;
    let mut p = Pair::new(client_config(), s);
    p.drive();
    assert!(!p.client.is_established());
    assert_eq!(
        closed(&p.client_events),
        Some(&CloseReason::Local(SessionError::MaxMessageTooSmall {
            max_message: 140,
            min: MIN_MAX_MESSAGE
        })),
        "{:?}",
        p.client_events
    );
}

#[test]
fn with_confirmed_delivery_rx_acknowledges_only_what_the_application_confirmed() {
    let mut server = server_config();
    server.confirm_delivery = true;
    let mut p = Pair::connected(client_config(), server);
    for i in 0..10 {
        p.client.push_sample(sarlink_testkit::record(i));
    }
    p.advance(Duration::from_millis(300));
    assert_eq!(
        p.delivered().len(),
        10,
        "received and handed to the application"
    );
    assert_eq!(
        p.client.unacked(),
        10,
        "nothing confirmed, nothing acknowledged"
    );
    let now = p.now;
    p.server.confirm(6, now);
    p.advance(Duration::from_millis(10));
    assert_eq!(p.client.unacked(), 4);
    // Confirming beyond what arrived acknowledges only what arrived, at the next turn of
    // the `rx` cadence: one `rx` per interval, not one per confirmation.
    let now = p.now;
    p.server.confirm(1_000, now);
    p.advance(Duration::from_millis(10));
    assert_eq!(p.client.unacked(), 4, "the previous rx was 10 ms ago");
    p.advance(server_config().rx_interval);
    assert_eq!(p.client.unacked(), 0);
    let rx_sent = messages(&p.s2c_log)
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::Rx(_)))
        .count();
    assert_eq!(rx_sent, 2, "one rx for each confirmation, a cadence apart");
}

#[test]
fn without_confirmed_delivery_everything_received_is_acknowledged() {
    let mut p = Pair::connected(client_config(), server_config());
    for i in 0..10 {
        p.client.push_sample(sarlink_testkit::record(i));
    }
    p.advance(Duration::from_millis(300));
    assert_eq!(p.client.unacked(), 0);
}

/// A drone out of range for an hour at 10 Hz overflows its ring: it comes back with its
/// oldest sample far beyond the ground's resume position. The sample window grows with the
/// time the stream was silent, so the ground takes it back (counting the gap) instead of
/// closing with `protocol` on every reconnect for ever.
#[test]
fn a_drone_whose_ring_overflowed_during_a_long_outage_is_taken_back() {
    let mut client = client_config();
    client.sample_ring = 100;
    let mut server = server_config();
    server.max_seq_ahead = 100;
    let mut p = Pair::connected(client, server);
    for i in 0..10 {
        p.client.push_sample(record(i));
    }
    p.drive();
    p.c2s_up = false;
    p.s2c_up = false;
    for i in 10..36_010 {
        p.client.push_sample(record(i));
    }
    p.now += Duration::from_secs(3600);
    p.reconnect();
    assert!(
        closed(&p.server_events).is_none(),
        "{:?}",
        closed(&p.server_events)
    );
    let seqs: Vec<u64> = p.delivered().iter().map(|(seq, _)| *seq).collect();
    let expected: Vec<u64> = (0..10).chain(35_910..36_010).collect();
    assert_eq!(seqs, expected);
    let gaps: u64 = p
        .server_events
        .iter()
        .filter_map(|e| match e {
            Event::Samples { gap, .. } => Some(*gap),
            _ => None,
        })
        .sum();
    assert_eq!(gaps, 35_900, "the evicted samples are counted as a gap");
}
