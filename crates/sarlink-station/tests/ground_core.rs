//! The ground core driven deterministically: link events in, writes and relays out.

use std::time::Duration;

use sarlink_link::PeerHello;
use sarlink_link::driver::{Disconnect, ServerEvent};
use sarlink_schema::{
    Ack, AckCode, Cmd, CmdOp, Dbm, Decision, FrequencyHz, Message, NodeName, ProtocolVersion,
    QualityScore, Role, RssiRecord, RssiUnits, SourceId,
};
use sarlink_station::ground::{GroundCore, GroundEvent, GroundInput, GroundOutput};
use sarlink_station::output::Entry;

const T0: Duration = Duration::from_secs(1_764_000_000);

fn rec(source: SourceId, i: u64) -> RssiRecord {
    RssiRecord {
        timestamp_ns: 1_764_000_000_000_000_000 + i as i64 * 100_000_000,
        rssi_dbm: Dbm::new(-70.0).unwrap(),
        frequency_hz: FrequencyHz::new(406_028_000).unwrap(),
        source_id: source,
        quality_score: QualityScore::new(80).unwrap(),
        snr_db: None,
        noise_dbm: None,
        beacon: sarlink_schema::BeaconFields::NONE,
    }
}

fn connected(conn: u64, node: &str, role: Role) -> GroundInput {
    GroundInput::Link(ServerEvent::Connected {
        conn,
        addr: "127.0.0.1:5000".parse().unwrap(),
        peer: PeerHello {
            node: NodeName::new(node).unwrap(),
            role,
            stream: 99,
            version: ProtocolVersion { major: 1, minor: 0 },
            rssi_units: RssiUnits::Dbfs,
            authenticated: false,
        },
        resume_seq: 0,
    })
}

/// The peer on `conn`, named `node`, hung up.
fn hung_up(conn: u64, node: &str) -> GroundInput {
    GroundInput::Link(ServerEvent::Disconnected {
        conn,
        node: Some(NodeName::new(node).unwrap()),
        cause: Disconnect::PeerHungUp,
    })
}

fn run(core: &mut GroundCore, input: GroundInput) -> Vec<GroundOutput> {
    core.handle(T0, input);
    std::iter::from_fn(|| core.poll_output()).collect()
}

fn decision(source: SourceId, fallback: bool, reason: &str) -> Decision {
    Decision {
        t_ns: 1,
        source_id: source,
        fallback,
        reason: reason.into(),
        score_drone: Some(10.0),
        score_ground: None,
    }
}

#[test]
fn own_records_are_written_under_the_ground_and_relayed_to_drones_and_observers() {
    let mut g = GroundCore::new(NodeName::new("ground").unwrap(), 7);
    let relayed = |out: &[GroundOutput]| -> Vec<Role> {
        out.iter()
            .filter_map(|o| match o {
                GroundOutput::RelaySample { role, .. } => Some(*role),
                _ => None,
            })
            .collect()
    };
    // Nobody to relay to: written only.
    let out = run(&mut g, GroundInput::OwnRecord(rec(SourceId::GROUND, 9)));
    assert!(matches!(
        &out[0],
        GroundOutput::Write(Entry::Record { seq: 0, .. })
    ));
    assert_eq!(relayed(&out), vec![]);
    run(&mut g, connected(1, "drone-1", Role::Drone));
    let out = run(&mut g, GroundInput::OwnRecord(rec(SourceId::GROUND, 9)));
    assert_eq!(relayed(&out), vec![Role::Drone]);
    run(&mut g, connected(2, "viewer", Role::Observer));
    let out = run(&mut g, GroundInput::OwnRecord(rec(SourceId::GROUND, 0)));
    assert_eq!(
        out[0],
        GroundOutput::Write(Entry::Record {
            node: "ground".into(),
            stream: 7,
            seq: 2,
            units: RssiUnits::Dbfs,
            record: rec(SourceId::GROUND, 0)
        })
    );
    assert_eq!(relayed(&out), vec![Role::Drone, Role::Observer]);
    // The drone left: its role no longer gets the records.
    run(&mut g, hung_up(1, "drone-1"));
    let out = run(&mut g, GroundInput::OwnRecord(rec(SourceId::GROUND, 1)));
    assert!(matches!(
        &out[0],
        GroundOutput::Write(Entry::Record { seq: 3, .. })
    ));
    assert_eq!(relayed(&out), vec![Role::Observer]);
}

#[test]
fn drone_records_are_written_once_with_their_key_and_relayed_to_observers() {
    let mut g = GroundCore::new(NodeName::new("ground").unwrap(), 7);
    run(&mut g, connected(1, "drone-1", Role::Drone));
    // No observer yet: the first record is written, not relayed.
    let out = run(
        &mut g,
        drone_1_samples(1, 42, 9, vec![rec(SourceId::DRONE, 9)], 0),
    );
    assert!(matches!(
        &out[0],
        GroundOutput::Write(Entry::Record { seq: 9, .. })
    ));
    assert!(
        !out.iter()
            .any(|o| matches!(o, GroundOutput::RelaySample { .. }))
    );
    run(&mut g, connected(2, "viewer", Role::Observer));
    let records: Vec<RssiRecord> = (0..3).map(|i| rec(SourceId::DRONE, i)).collect();
    let out = run(&mut g, drone_1_samples(1, 42, 10, records, 2));
    let keys: Vec<(String, u64, u64)> = out
        .iter()
        .filter_map(|o| match o {
            GroundOutput::Write(Entry::Record {
                node, stream, seq, ..
            }) => Some((node.to_string(), *stream, *seq)),
            _ => None,
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            ("drone-1".into(), 42, 10),
            ("drone-1".into(), 42, 11),
            ("drone-1".into(), 42, 12)
        ]
    );
    assert_eq!(
        out.iter()
            .filter(|o| matches!(
                o,
                GroundOutput::RelaySample {
                    role: Role::Observer,
                    ..
                }
            ))
            .count(),
        3
    );
    let t = &g.drones()["drone-1"];
    assert_eq!((t.received, t.gaps, t.duplicates), (4, 2, 0));
    // The same sequence numbers again (resent after a reconnection, written but not yet
    // confirmed) are not written twice.
    let out = run(
        &mut g,
        drone_1_samples(1, 42, 11, vec![rec(SourceId::DRONE, 1)], 0),
    );
    assert_eq!(g.drones()["drone-1"].duplicates, 1);
    assert!(!out.iter().any(|o| matches!(o, GroundOutput::Write(_))));
}

fn samples(conn: u64, seq: u64, n: u64) -> GroundInput {
    let records = (seq..seq + n).map(|i| rec(SourceId::DRONE, i)).collect();
    drone_1_samples(conn, 99, seq, records, 0)
}

/// `records` from `drone-1` on connection `conn`, stream `stream`, from `seq`.
fn drone_1_samples(
    conn: u64,
    stream: u64,
    seq: u64,
    records: Vec<RssiRecord>,
    gap: u64,
) -> GroundInput {
    GroundInput::Link(ServerEvent::Samples {
        conn,
        node: NodeName::new("drone-1").unwrap(),
        stream,
        seq,
        records,
        gap,
    })
}

fn confirms(out: &[GroundOutput]) -> Vec<(u64, u64, u64)> {
    out.iter()
        .filter_map(|o| match o {
            GroundOutput::Confirm {
                conn, stream, upto, ..
            } => Some((*conn, *stream, *upto)),
            _ => None,
        })
        .collect()
}

#[test]
fn records_are_confirmed_to_the_drone_only_once_written() {
    let mut g = GroundCore::new(NodeName::new("ground").unwrap(), 7);
    run(&mut g, connected(1, "drone-1", Role::Drone));
    let out = run(&mut g, samples(1, 0, 5));
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, GroundOutput::Write(_)))
            .count(),
        5
    );
    assert!(
        confirms(&out).is_empty(),
        "nothing confirmed before it is written"
    );
    let out = run(&mut g, GroundInput::Written);
    assert_eq!(confirms(&out), vec![(1, 99, 5)]);
    // Nothing new written: nothing new confirmed.
    assert!(confirms(&run(&mut g, GroundInput::Written)).is_empty());
}

/// `n` records from `node` on connection `conn` (stream 99), from `seq`.
fn samples_of(conn: u64, node: &str, seq: u64, n: u64) -> GroundInput {
    GroundInput::Link(ServerEvent::Samples {
        conn,
        node: NodeName::new(node).unwrap(),
        stream: 99,
        seq,
        records: (seq..seq + n).map(|i| rec(SourceId::DRONE, i)).collect(),
        gap: 0,
    })
}

#[test]
fn interleaved_drones_are_each_counted_and_confirmed_and_a_reconnection_keeps_the_track() {
    let mut g = GroundCore::new(NodeName::new("ground").unwrap(), 7);
    let names = ["drone-c", "drone-a", "drone-b"];
    for (i, name) in names.iter().enumerate() {
        run(&mut g, connected(10 + i as u64, name, Role::Drone));
    }
    // Records arrive interleaved: 1, 2 and 3 from the three drones.
    for round in 0..3u64 {
        for (i, name) in names.iter().enumerate() {
            if round <= i as u64 {
                run(&mut g, samples_of(10 + i as u64, name, round, 1));
            }
        }
    }
    let out = run(&mut g, GroundInput::Written);
    let mut got = confirms(&out);
    got.sort_unstable();
    assert_eq!(got, vec![(10, 99, 1), (11, 99, 2), (12, 99, 3)]);
    // Listed in name order, each with its own count.
    let listed: Vec<(String, u64)> = g
        .drones()
        .values()
        .map(|t| (t.node.to_string(), t.received))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("drone-a".to_owned(), 2),
            ("drone-b".to_owned(), 3),
            ("drone-c".to_owned(), 1)
        ]
    );
    // drone-a comes back on a new connection: the same track, confirmed there.
    run(&mut g, hung_up(11, "drone-a"));
    run(&mut g, connected(20, "drone-a", Role::Drone));
    run(&mut g, samples_of(20, "drone-a", 2, 2));
    assert_eq!(
        confirms(&run(&mut g, GroundInput::Written)),
        vec![(20, 99, 4)]
    );
    assert_eq!(g.drones().len(), 3);
    assert_eq!(g.drones()["drone-a"].received, 4);
    assert_eq!(g.drones()["drone-a"].conn, Some(20));
    assert!(g.drones().get("drone-d").is_none());
}

#[test]
fn a_failed_write_confirms_nothing_closes_the_drone_and_takes_the_resent_records() {
    let mut g = GroundCore::new(NodeName::new("ground").unwrap(), 7);
    run(&mut g, connected(1, "drone-1", Role::Drone));
    run(&mut g, samples(1, 0, 5));
    run(&mut g, GroundInput::Written);
    run(&mut g, samples(1, 5, 5));
    let out = run(
        &mut g,
        GroundInput::WriteFailed {
            reason: "No space left on device".into(),
        },
    );
    assert!(confirms(&out).is_empty());
    assert!(out.iter().any(|o| matches!(
        o,
        GroundOutput::Close {
            conn: 1,
            code: sarlink_schema::CloseCode::Overload,
            ..
        }
    )));
    assert!(out.contains(&GroundOutput::Event(GroundEvent::Output {
        ok: false,
        reason: Some("No space left on device".into())
    })));
    assert!(!g.output_ok());
    // The drone reconnects and resends from the confirmed position (5): written again.
    run(&mut g, hung_up(1, "drone-1"));
    run(&mut g, connected(2, "drone-1", Role::Drone));
    let out = run(&mut g, samples(2, 5, 5));
    let seqs: Vec<u64> = out
        .iter()
        .filter_map(|o| match o {
            GroundOutput::Write(Entry::Record { seq, .. }) => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, vec![5, 6, 7, 8, 9]);
    let out = run(&mut g, GroundInput::Written);
    assert_eq!(confirms(&out), vec![(2, 99, 10)]);
    assert!(g.output_ok());
}

#[test]
fn positions_recovered_from_the_output_are_not_written_again() {
    let mut g = GroundCore::new(NodeName::new("ground").unwrap(), 7);
    g.resume_from(&[("drone-1".to_owned(), 99, 3)]);
    run(&mut g, connected(1, "drone-1", Role::Drone));
    let out = run(&mut g, samples(1, 0, 5));
    let seqs: Vec<u64> = out
        .iter()
        .filter_map(|o| match o {
            GroundOutput::Write(Entry::Record { seq, .. }) => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, vec![3, 4]);
}

#[test]
fn a_drones_decisions_are_written_under_its_name_relayed_and_counted() {
    let mut g = GroundCore::new(NodeName::new("ground").unwrap(), 7);
    run(&mut g, connected(1, "drone-1", Role::Drone));
    run(&mut g, connected(2, "ops", Role::Observer));
    let out = run(
        &mut g,
        GroundInput::Link(ServerEvent::Decision {
            conn: 1,
            decision: decision(SourceId::DRONE, true, "link_lost"),
        }),
    );
    assert!(out.contains(&GroundOutput::Write(Entry::Decision {
        node: "drone-1".into(),
        decision: decision(SourceId::DRONE, true, "link_lost"),
    })));
    assert!(out.contains(&GroundOutput::Broadcast {
        role: Role::Observer,
        message: Message::Decision(decision(SourceId::DRONE, true, "link_lost")),
    }));
    run(
        &mut g,
        GroundInput::Link(ServerEvent::Decision {
            conn: 1,
            decision: decision(SourceId::GROUND, false, "hold"),
        }),
    );
    let t = &g.drones()["drone-1"];
    assert_eq!((t.decisions, t.fallbacks, t.recoveries), (2, 1, 1));
    // A decision from an observer is nobody's decision.
    let out = run(
        &mut g,
        GroundInput::Link(ServerEvent::Decision {
            conn: 2,
            decision: decision(SourceId::DRONE, true, "link_lost"),
        }),
    );
    assert!(out.is_empty());
}

#[test]
fn commands_are_relayed_under_a_fresh_id_and_answered_under_the_operators() {
    let mut g = GroundCore::new(NodeName::new("ground").unwrap(), 7);
    run(&mut g, connected(1, "drone-1", Role::Drone));
    run(&mut g, connected(2, "ops", Role::Observer));
    let cmd = Cmd {
        id: 500,
        target: Some(NodeName::new("drone-1").unwrap()),
        op: CmdOp::Rate { hz: 5.0 },
    };
    let out = run(
        &mut g,
        GroundInput::Link(ServerEvent::Command { conn: 2, cmd }),
    );
    let relayed = match &out[..] {
        [
            GroundOutput::Send {
                conn: 1,
                message: Message::Cmd(c),
            },
        ] => c.clone(),
        other => panic!("{other:?}"),
    };
    assert_ne!(relayed.id, 500);
    let refusal = Ack::refuse(relayed.id, AckCode::Safety, "rate conflicts with battery");
    let out = run(
        &mut g,
        GroundInput::Link(ServerEvent::Ack {
            conn: 1,
            ack: refusal,
        }),
    );
    assert!(out.contains(&GroundOutput::Send {
        conn: 2,
        message: Message::Ack(Ack::refuse(
            500,
            AckCode::Safety,
            "rate conflicts with battery"
        )),
    }));
    assert!(
        out.iter()
            .any(|o| matches!(o, GroundOutput::Event(GroundEvent::Refused { .. })))
    );
    // To a drone that is not connected: refused at once.
    let cmd = Cmd {
        id: 501,
        target: Some(NodeName::new("drone-9").unwrap()),
        op: CmdOp::Stream { on: false },
    };
    let out = run(
        &mut g,
        GroundInput::Link(ServerEvent::Command { conn: 2, cmd }),
    );
    match &out[..] {
        [
            GroundOutput::Send {
                conn: 2,
                message: Message::Ack(a),
            },
        ] => {
            assert_eq!((a.id, a.ok), (501, false));
            assert!(a.reason.as_deref().unwrap_or("").contains("drone-9"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_disconnected_drone_is_kept_as_lost() {
    let mut g = GroundCore::new(NodeName::new("ground").unwrap(), 7);
    run(&mut g, connected(1, "drone-1", Role::Drone));
    assert_eq!(g.connections(), 1);
    run(&mut g, hung_up(1, "drone-1"));
    let t = &g.drones()["drone-1"];
    assert_eq!((t.conn, t.link), (None, sarlink_link::LinkState::Lost));
    assert_eq!(g.connections(), 0);
}

#[test]
fn remote_commands_take_the_observers_path_and_are_answered_as_remote_acks() {
    let mut g = GroundCore::new(NodeName::new("ground").unwrap(), 7);
    run(&mut g, connected(1, "drone-1", Role::Drone));
    let cmd = |id, target: &str| Cmd {
        id,
        target: Some(NodeName::new(target).unwrap()),
        op: CmdOp::Rate { hz: 5.0 },
    };
    // Relayed to the drone under a fresh id, the drone's answer returned under the remote id.
    let out = run(&mut g, GroundInput::RemoteCommand(cmd(42, "drone-1")));
    let relayed = match &out[..] {
        [
            GroundOutput::Send {
                conn: 1,
                message: Message::Cmd(c),
            },
        ] => c.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(g.stats().commands, 1, "counted like an observer's");
    let out = run(
        &mut g,
        GroundInput::Link(ServerEvent::Ack {
            conn: 1,
            ack: Ack::refuse(relayed.id, AckCode::Safety, "no"),
        }),
    );
    assert!(out.contains(&GroundOutput::RemoteAck {
        node: "drone-1".into(),
        ack: Ack::refuse(42, AckCode::Safety, "no"),
    }));
    assert!(
        out.iter()
            .any(|o| matches!(o, GroundOutput::Event(GroundEvent::Refused { .. }))),
        "a refusal is an event (an alert on MQTT)"
    );
    // A drone that is not connected: refused at once, under the remote id.
    let out = run(&mut g, GroundInput::RemoteCommand(cmd(43, "drone-9")));
    match &out[..] {
        [GroundOutput::RemoteAck { node, ack }] => {
            assert_eq!(&**node, "drone-9");
            assert_eq!((ack.id, ack.ok), (43, false));
            assert_eq!(ack.code, Some(AckCode::from_wire("offline")));
        }
        other => panic!("{other:?}"),
    }
    // The drone leaves before answering: the remote asker hears so.
    let out = run(&mut g, GroundInput::RemoteCommand(cmd(44, "drone-1")));
    assert!(matches!(&out[..], [GroundOutput::Send { conn: 1, .. }]));
    let out = run(&mut g, hung_up(1, "drone-1"));
    match &out[..] {
        [GroundOutput::RemoteAck { node, ack }] => {
            assert_eq!(&**node, "drone-1");
            assert_eq!((ack.id, ack.ok), (44, false));
        }
        other => panic!("{other:?}"),
    }
}

fn machine(cpu: f64, temp: Option<f64>) -> GroundInput {
    use sarlink_monitor::{Celsius, Percent};
    GroundInput::Resources(sarlink_monitor::degradation::Readings {
        cpu: Some(Percent::new(cpu).unwrap()),
        memory: Some(Percent::new(30.0).unwrap()),
        temperature: temp.map(|t| Celsius::new(t).unwrap()),
    })
}

#[test]
fn the_ground_sheds_its_own_matrix_under_load_and_restores_one_class_at_a_time() {
    use sarlink_monitor::thresholds::{MetricKind, Severity};
    use sarlink_station::ground::GroundFeature;
    let mut g = GroundCore::new(NodeName::new("ground").unwrap(), 7);
    run(&mut g, connected(1, "drone-1", Role::Drone));
    let mut changes = Vec::new();
    let mut alerts = Vec::new();
    let cpu = std::iter::repeat_n(96.0, 5).chain(std::iter::repeat_n(15.0, 20));
    for (i, c) in cpu.enumerate() {
        let now = T0 + Duration::from_secs(i as u64);
        g.handle(now, machine(c, None));
        // Records keep being written and relayed while the ground sheds.
        g.handle(now, samples(1, i as u64, 1));
        g.handle(now, GroundInput::Written);
        while let Some(o) = g.poll_output() {
            match o {
                GroundOutput::Event(GroundEvent::Degradation {
                    features, level, ..
                }) => changes.push((i, features.join(","), level)),
                GroundOutput::Event(GroundEvent::Alert(a)) => {
                    alerts.push((i, a.kind, a.severity));
                }
                _ => {}
            }
        }
    }
    assert_eq!(
        changes,
        [
            (
                4,
                "fsync-interval,mqtt-status-rate,dashboard-clients,dashboard-rate,status-line"
                    .to_owned(),
                "shedding-4".to_owned()
            ),
            (
                14,
                "fsync-interval,mqtt-status-rate".to_owned(),
                "shedding-5".to_owned()
            ),
            (
                17,
                "dashboard-clients,dashboard-rate".to_owned(),
                "shedding-6".to_owned()
            ),
            (20, "status-line".to_owned(), "normal".to_owned()),
        ]
    );
    // CPU over the critical 85 % for 3 samples: alert; cleared after 3 calm samples once
    // 10 s have passed since.
    assert_eq!(
        alerts,
        [
            (2, MetricKind::Cpu, Severity::Critical),
            (12, MetricKind::Cpu, Severity::Cleared)
        ]
    );
    assert!(GroundFeature::ALL.iter().all(|f| g.is_enabled(*f)));
    assert_eq!(g.stats().records, 25, "nothing shed from the records");
}

#[test]
fn failed_writes_raise_an_output_alert_that_clears_when_writing_works() {
    use sarlink_monitor::thresholds::{MetricKind, Severity};
    let mut g = GroundCore::new(NodeName::new("ground").unwrap(), 7);
    let alerts = |out: &[GroundOutput]| -> Vec<(MetricKind, Severity)> {
        out.iter()
            .filter_map(|o| match o {
                GroundOutput::Event(GroundEvent::Alert(a)) => Some((a.kind, a.severity)),
                _ => None,
            })
            .collect()
    };
    let out = run(
        &mut g,
        GroundInput::WriteFailed {
            reason: "No space left on device".into(),
        },
    );
    assert_eq!(
        alerts(&out),
        [(MetricKind::OutputErrors, Severity::Critical)]
    );
    assert_eq!(g.active_alerts().count(), 1);
    // Rate limited: the clear waits 10 s after the raise.
    g.handle(T0 + Duration::from_secs(11), GroundInput::Written);
    let out: Vec<GroundOutput> = std::iter::from_fn(|| g.poll_output()).collect();
    assert_eq!(
        alerts(&out),
        [(MetricKind::OutputErrors, Severity::Cleared)]
    );
    assert_eq!(g.active_alerts().count(), 0);
}

fn status(level: &str, disabled: &[&str]) -> GroundInput {
    status_with_alerts(level, disabled, &[])
}

fn status_with_alerts(level: &str, disabled: &[&str], alerts: &[&str]) -> GroundInput {
    GroundInput::Link(ServerEvent::Status {
        conn: 1,
        status: sarlink_schema::Status {
            t_ns: 1,
            cpu_pct: 97.0,
            mem_bytes: 1 << 20,
            temp_c: None,
            level: level.into(),
            disabled: disabled.iter().map(|d| (*d).to_owned()).collect(),
            dropped: 0,
            queued: 12,
            rate_hz: 10.0,
            source: None,
            data_age_ms: None,
            alerts: alerts.iter().map(|a| (*a).to_owned()).collect(),
        },
    })
}

#[test]
fn a_drone_changing_its_degradation_level_is_an_event_once_per_change() {
    let mut g = GroundCore::new(NodeName::new("ground").unwrap(), 7);
    run(&mut g, connected(1, "drone-1", Role::Drone));
    let levels = |out: Vec<GroundOutput>| -> Vec<(String, Vec<String>)> {
        out.into_iter()
            .filter_map(|o| match o {
                GroundOutput::Event(GroundEvent::DroneLevel {
                    node,
                    level,
                    disabled,
                }) => {
                    assert_eq!(&*node, "drone-1");
                    Some((level, disabled))
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(levels(run(&mut g, status("normal", &[]))), []);
    assert_eq!(
        levels(run(&mut g, status("shedding-4", &["status-line"]))),
        [("shedding-4".to_owned(), vec!["status-line".to_owned()])]
    );
    assert_eq!(
        levels(run(&mut g, status("shedding-4", &["status-line"]))),
        []
    );
    assert_eq!(
        levels(run(&mut g, status("normal", &[]))),
        [("normal".to_owned(), vec![])]
    );
}

#[test]
fn a_drones_alerts_in_its_status_are_events_when_raised_changed_and_cleared() {
    let mut g = GroundCore::new(NodeName::new("ground").unwrap(), 7);
    run(&mut g, connected(1, "drone-1", Role::Drone));
    let mut changes = |alerts: &[&str]| -> Vec<(String, String)> {
        run(&mut g, status_with_alerts("normal", &[], alerts))
            .into_iter()
            .filter_map(|o| match o {
                GroundOutput::Event(GroundEvent::DroneAlert {
                    node,
                    kind,
                    severity,
                }) => {
                    assert_eq!(&*node, "drone-1");
                    Some((kind, severity))
                }
                _ => None,
            })
            .collect()
    };
    let pair = |k: &str, s: &str| (k.to_owned(), s.to_owned());
    assert_eq!(changes(&[]), []);
    assert_eq!(
        changes(&["link_rtt:warning"]),
        [pair("link_rtt", "warning")]
    );
    assert_eq!(changes(&["link_rtt:warning"]), [], "once per change");
    assert_eq!(
        changes(&["link_rtt:critical", "cpu:warning"]),
        [pair("link_rtt", "critical"), pair("cpu", "warning")]
    );
    assert_eq!(changes(&["cpu:warning"]), [pair("link_rtt", "cleared")]);
    assert_eq!(changes(&[]), [pair("cpu", "cleared")]);
}
