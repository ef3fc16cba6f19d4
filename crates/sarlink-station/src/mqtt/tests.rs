use std::sync::Arc;

use sarlink_schema::{
    Ack, AckCode, CmdOp, Dbm, Decision, FrequencyHz, NodeName, QualityScore, RssiRecord, RssiUnits,
    SourceId,
};

use super::*;
use crate::ground::{GroundEvent, GroundOutput};
use crate::output::{Entry, Format, Output};

fn topics(ground: &str) -> Topics {
    Topics::new(&NodeName::new(ground).unwrap())
}

fn msg(i: u32) -> MqttMessage {
    MqttMessage {
        topic: format!("t/{i}"),
        payload: i.to_string().into_bytes(),
        retain: false,
    }
}

fn record_entry(node: &str, seq: u64) -> Entry {
    Entry::Record {
        node: Arc::from(node),
        stream: 12_345_678_901_234_567_890,
        seq,
        units: RssiUnits::Dbm,
        record: RssiRecord {
            timestamp_ns: 1_764_000_000_123_456_789,
            rssi_dbm: Dbm::new(-71.5).unwrap(),
            frequency_hz: FrequencyHz::new(406_028_000).unwrap(),
            source_id: SourceId::DRONE,
            quality_score: QualityScore::new(80).unwrap(),
            snr_db: None,
            noise_dbm: None,
            beacon: sarlink_schema::BeaconFields::NONE,
        },
    }
}

/// What the JSON-lines output writes for `entry`, without the line break.
fn jsonl(entry: &Entry) -> Vec<u8> {
    #[derive(Clone)]
    struct Sink(Arc<parking_lot::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink(Arc::default());
    let mut out = Output::new(Format::Jsonl, Box::new(sink.clone()), true);
    out.write(entry);
    out.commit().unwrap();
    let mut line = sink.0.lock().clone();
    assert_eq!(line.pop(), Some(b'\n'));
    line
}

#[test]
fn urls_parse_with_defaults_credentials_and_ipv6() {
    let u = parse_url("mqtt://broker.local").unwrap();
    assert_eq!(
        u,
        MqttUrl {
            tls: false,
            host: "broker.local".into(),
            port: 1883,
            username: None,
            password: None,
        }
    );
    let u = parse_url("mqtts://10.0.0.2/").unwrap();
    assert_eq!((u.tls, u.port), (true, 8883));
    let u = parse_url("mqtt://ops%2Fa:p%3Aw%40rd@[::1]:1884").unwrap();
    assert_eq!(u.host, "::1");
    assert_eq!(u.port, 1884);
    assert_eq!(u.username.as_deref(), Some("ops/a"));
    assert_eq!(u.password, Some(Secret::new("p:w@rd")));
    assert_eq!(u.to_string(), "mqtt://ops%2Fa:***@[::1]:1884");
    let u = parse_url("mqtt://only-user@h:1").unwrap();
    assert_eq!(
        (u.username.as_deref(), u.password),
        (Some("only-user"), None)
    );
}

#[test]
fn url_errors_say_what_is_wrong() {
    assert_eq!(
        parse_url("http://h"),
        Err(UrlError::Scheme {
            scheme: "http".into()
        })
    );
    assert_eq!(
        parse_url("broker:1883"),
        Err(UrlError::Scheme {
            scheme: String::new()
        })
    );
    assert_eq!(parse_url("mqtt://"), Err(UrlError::MissingHost));
    assert_eq!(parse_url("mqtt://u:p@:1883"), Err(UrlError::MissingHost));
    assert_eq!(
        parse_url("mqtt://h:0"),
        Err(UrlError::BadPort { port: "0".into() })
    );
    assert_eq!(
        parse_url("mqtt://h:70000"),
        Err(UrlError::BadPort {
            port: "70000".into()
        })
    );
    assert_eq!(
        parse_url("mqtt://h:"),
        Err(UrlError::BadPort { port: "".into() })
    );
    assert_eq!(
        parse_url("mqtt://h/sarlink"),
        Err(UrlError::Trailing {
            rest: "/sarlink".into()
        })
    );
    assert_eq!(parse_url("mqtt://u:%zz@h"), Err(UrlError::BadEscape));
    assert_eq!(parse_url("mqtt://u:%ff@h"), Err(UrlError::BadEscape));
    assert_eq!(parse_url("mqtt://[::1"), Err(UrlError::UnclosedBracket));
}

#[test]
fn passwords_are_never_printed() {
    let u = parse_url("mqtts://ops:hunter2@h").unwrap();
    assert!(!format!("{u}").contains("hunter2"));
    assert!(!format!("{u:?}").contains("hunter2"));
    assert!(!format!("{u:#?}").contains("hunter2"));
}

#[test]
fn names_are_one_topic_level_and_come_back_unescaped() {
    for name in [
        "drone-1",
        "a/b",
        "+",
        "#",
        "%41",
        "x\ny\u{7f}",
        "ünïcode ok",
        "/+#%",
    ] {
        let level = escape_level(name);
        assert!(!level.is_empty());
        assert!(
            !level.contains(['/', '+', '#', '\n', '\u{7f}']),
            "{name:?} -> {level:?}"
        );
        assert_eq!(unescape_level(&level).as_deref(), Some(name), "{level}");
    }
    assert_eq!(escape_level("ünïcode ok"), "ünïcode ok", "kept as is");
    assert_eq!(unescape_level("a+b"), None);
    assert_eq!(unescape_level("a%2"), None);
}

#[test]
fn topics_follow_the_documented_layout() {
    let t = topics("ground/a");
    assert_eq!(t.topic("d1", Kind::Rssi), "sarlink/ground%2Fa/d1/rssi");
    assert_eq!(
        t.topic("d#", Kind::Decision),
        "sarlink/ground%2Fa/d%23/decision"
    );
    assert_eq!(t.topic("d1", Kind::Status), "sarlink/ground%2Fa/d1/status");
    assert_eq!(t.topic("d1", Kind::Alert), "sarlink/ground%2Fa/d1/alert");
    assert_eq!(t.topic("d1", Kind::Ack), "sarlink/ground%2Fa/d1/ack");
    assert_eq!(t.command_filter(), "sarlink/ground%2Fa/+/cmd");
    assert_eq!(
        t.command_target("sarlink/ground%2Fa/d%2B1/cmd").as_deref(),
        Some("d+1")
    );
    assert_eq!(t.command_target("sarlink/other/d1/cmd"), None);
    assert_eq!(t.command_target("sarlink/ground%2Fa/d1/ack"), None);
    assert_eq!(t.command_target("sarlink/ground%2Fa/a/b/cmd"), None);
}

#[test]
fn records_and_decisions_are_the_json_lines_objects() {
    let t = topics("g");
    let entry = record_entry("drone-1", 41);
    let m = map_output(&t, &GroundOutput::Write(entry.clone()), 0).unwrap();
    assert_eq!(m.topic, "sarlink/g/drone-1/rssi");
    assert!(!m.retain);
    assert_eq!(m.payload, jsonl(&entry), "byte for byte the output line");
    let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    // The dedup key.
    assert_eq!(v["node"], "drone-1");
    assert_eq!(v["stream"], "12345678901234567890");
    assert_eq!(v["seq"], 41);

    let decision = Entry::Decision {
        node: Arc::from("drone-1"),
        decision: Decision {
            t_ns: 5,
            source_id: SourceId::GROUND,
            fallback: true,
            reason: "drone \"link\" lost".into(),
            score_drone: None,
            score_ground: Some(3.5),
        },
    };
    let m = map_output(&t, &GroundOutput::Write(decision.clone()), 0).unwrap();
    assert_eq!(m.topic, "sarlink/g/drone-1/decision");
    assert!(m.retain, "the last decision is retained");
    assert_eq!(m.payload, jsonl(&decision));
}

#[test]
fn events_become_alerts_and_remote_acks_acks() {
    let t = topics("g");
    let m = map_output(
        &t,
        &GroundOutput::Event(GroundEvent::Output {
            ok: false,
            reason: Some("disk full".into()),
        }),
        1_000_000_000,
    )
    .unwrap();
    assert_eq!(m.topic, "sarlink/g/g/alert");
    let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(
        (&v["type"], &v["kind"], &v["reason"], &v["timestamp_ns"]),
        (
            &"alert".into(),
            &"output_failed".into(),
            &"disk full".into(),
            &1_000_000_000.into()
        )
    );
    let m = map_output(
        &t,
        &GroundOutput::Event(GroundEvent::Refused {
            node: Arc::from("d1"),
            ack: Ack::refuse(9, AckCode::Safety, "battery"),
        }),
        1,
    )
    .unwrap();
    assert_eq!(m.topic, "sarlink/g/d1/alert");
    let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(v["kind"], "command_refused");
    assert_eq!(v["id"], 9);
    assert_eq!(v["reason"], "safety: battery");

    let m = map_output(
        &t,
        &GroundOutput::RemoteAck {
            node: Arc::from("d1"),
            ack: Ack::ok(77),
        },
        1,
    )
    .unwrap();
    assert_eq!(m.topic, "sarlink/g/d1/ack");
    assert!(!m.retain);
    let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!((&v["id"], &v["ok"]), (&77.into(), &true.into()));
    assert!(v.get("code").is_none());

    // Sends and relays are not published.
    assert_eq!(
        map_output(
            &t,
            &GroundOutput::RelaySample {
                role: sarlink_schema::Role::Observer,
                record: match record_entry("d", 0) {
                    Entry::Record { record, .. } => record,
                    Entry::Decision { .. } => unreachable!(),
                },
            },
            0
        ),
        None
    );
}

#[test]
fn status_and_will_are_retained_on_the_grounds_status_topic() {
    let t = topics("g1");
    let will = GroundStatus::offline_message(&t);
    assert_eq!(will.topic, "sarlink/g1/g1/status");
    assert!(will.retain);
    let v: serde_json::Value = serde_json::from_slice(&will.payload).unwrap();
    assert_eq!(v["online"], false);
    let status = GroundStatus {
        timestamp_ns: 0,
        drones: 2,
        connections: 3,
        records: 10,
        output_ok: true,
        queue: QueueStats {
            queued: 4,
            in_flight: 1,
            published: 100,
            overflow: 7,
        },
    }
    .message(&t);
    assert_eq!(status.topic, will.topic);
    assert!(status.retain);
    let v: serde_json::Value = serde_json::from_slice(&status.payload).unwrap();
    assert_eq!(v["online"], true);
    assert_eq!(v["mqtt_overflow"], 7, "overflow is reported, never silent");
    assert_eq!(v["mqtt_queued"], 4);
}

#[test]
fn commands_parse_like_the_cmd_subcommand() {
    let c = parse_command(br#"{"id":1,"op":"tune","value":"406.028e6"}"#, "d1").unwrap();
    assert_eq!(c.id, 1);
    assert_eq!(c.target.as_ref().map(NodeName::as_str), Some("d1"));
    assert!(matches!(c.op, CmdOp::Tune { frequency_hz } if frequency_hz.get() == 406_028_000));
    let c = parse_command(br#"{"id":2,"op":"rate","value":5}"#, "d1").unwrap();
    assert_eq!(c.op, CmdOp::Rate { hz: 5.0 });
    let c = parse_command(br#"{"id":3,"op":"gain","value":"auto"}"#, "d1").unwrap();
    assert_eq!(c.op, CmdOp::GainAuto);
    assert!(matches!(
        parse_command(b"tune 406e6", "d1"),
        Err(CommandError::Json { .. })
    ));
    assert_eq!(
        parse_command(br#"{"op":"stream","value":"on"}"#, "d1"),
        Err(CommandError::Id)
    );
    assert_eq!(
        parse_command(br#"{"id":4294967296,"op":"stream","value":"on"}"#, "d1"),
        Err(CommandError::Id)
    );
    assert_eq!(parse_command(br#"{"id":5}"#, "d1"), Err(CommandError::Op));
    assert!(matches!(
        parse_command(br#"{"id":6,"op":"warp","value":"9"}"#, "d1"),
        Err(CommandError::Invalid { id: 6, .. })
    ));
    assert!(matches!(
        parse_command(br#"{"id":7,"op":"rate","value":[1]}"#, "d1"),
        Err(CommandError::Invalid { id: 7, .. })
    ));
}

#[test]
fn a_full_queue_drops_the_oldest_waiting_message_and_counts_it() {
    let mut q = PublishQueue::new(3);
    for i in 0..3 {
        assert_eq!(q.push(msg(i)), None);
    }
    // One in flight: it is never the one dropped.
    assert_eq!(q.next_waiting(), Some(&msg(0)));
    q.handed();
    assert_eq!(q.push(msg(3)), Some(msg(1)), "the oldest waiting goes");
    assert_eq!(q.stats().overflow, 1);
    assert_eq!(q.stats().queued, 3);
    // Everything in flight: the new message is the one dropped.
    q.handed();
    q.handed();
    assert_eq!(q.stats().in_flight, 3);
    assert_eq!(q.push(msg(4)), Some(msg(4)));
    assert_eq!(q.stats().overflow, 2);
    assert_eq!(
        q.stats(),
        QueueStats {
            queued: 3,
            in_flight: 3,
            published: 0,
            overflow: 2
        }
    );
}

#[test]
fn messages_leave_only_when_acknowledged_and_are_resent_in_order_after_a_reconnection() {
    let mut q = PublishQueue::new(100);
    for i in 0..5 {
        q.push(msg(i));
    }
    // Connected: 0..3 handed and written as packets 1..3; 1 acknowledged.
    for _ in 0..3 {
        q.next_waiting().unwrap();
        q.handed();
    }
    q.sent(1);
    q.sent(2);
    q.sent(3);
    assert!(q.acked(1));
    assert!(!q.acked(1), "a second PUBACK for the same id is ignored");
    assert!(!q.acked(9));
    assert_eq!(q.stats().published, 1);
    // The connection drops before 2 and 3 are acknowledged: they wait again, before 4 and 5.
    q.reconnected();
    let mut order = Vec::new();
    while let Some(m) = q.next_waiting() {
        order.push(m.clone());
        q.handed();
    }
    assert_eq!(order, (1..5).map(msg).collect::<Vec<_>>());
    for pkid in [1, 2, 3, 4] {
        q.sent(pkid);
    }
    // Acknowledgements out of order still find their messages.
    for pkid in [3, 1, 4, 2] {
        assert!(q.acked(pkid));
    }
    assert!(q.is_empty());
    assert_eq!(q.stats().published, 5);
    assert_eq!(q.stats().overflow, 0);
}

#[test]
fn sent_without_a_handed_message_changes_nothing() {
    let mut q = PublishQueue::new(2);
    q.push(msg(0));
    q.sent(1);
    assert!(!q.acked(1));
    assert_eq!(q.next_waiting(), Some(&msg(0)));
}

#[test]
fn the_grounds_threshold_alerts_and_degradation_go_to_its_alert_topic() {
    use sarlink_monitor::degradation::{Action, Cause, Event, FeatureSet, Readings};
    use sarlink_monitor::thresholds::{Alert as Raised, MetricKind, Severity};
    let t = topics("g");
    let raised = Raised {
        kind: MetricKind::Cpu,
        severity: Severity::Critical,
        value: 97.5,
        limit: 85.0,
        at: std::time::Duration::from_secs(3),
    };
    let m = map_output(&t, &GroundOutput::Event(GroundEvent::Alert(raised)), 7).unwrap();
    assert_eq!(m.topic, "sarlink/g/g/alert");
    assert!(!m.retain);
    let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(
        (&v["kind"], &v["metric"], &v["severity"]),
        (&"threshold".into(), &"cpu".into(), &"critical".into())
    );
    assert_eq!(v["reason"], "cpu critical: 97.5 % (limit 85.0 %)");
    let cleared = Raised {
        severity: Severity::Cleared,
        value: 20.0,
        limit: 70.0,
        ..raised
    };
    let m = map_output(&t, &GroundOutput::Event(GroundEvent::Alert(cleared)), 8).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(v["severity"], "cleared");

    let m = map_output(
        &t,
        &GroundOutput::Event(GroundEvent::Degradation {
            event: Event {
                at: std::time::Duration::from_secs(5),
                cause: Cause::HighPressure,
                action: Action::Disable(FeatureSet::EMPTY),
            },
            features: vec!["dashboard-rate", "status-line"],
            level: "shedding-5".into(),
            readings: Readings::default(),
        }),
        9,
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(
        (&v["kind"], &v["severity"]),
        (&"degradation".into(), &"warning".into())
    );
    assert_eq!(
        v["reason"],
        "shed dashboard-rate, status-line (shedding-5; cpu unknown, memory unknown, temperature unknown)"
    );
}

#[test]
fn a_drones_level_change_is_an_alert_on_its_topic() {
    let t = topics("g");
    let m = map_output(
        &t,
        &GroundOutput::Event(GroundEvent::DroneLevel {
            node: Arc::from("d1"),
            level: "shedding-4".into(),
            disabled: vec!["smoothing".into(), "status-line".into()],
        }),
        5,
    )
    .unwrap();
    assert_eq!(m.topic, "sarlink/g/d1/alert");
    let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(
        (&v["kind"], &v["severity"], &v["reason"]),
        (
            &"degradation".into(),
            &"warning".into(),
            &"shedding-4 (shed: smoothing, status-line)".into()
        )
    );
    let m = map_output(
        &t,
        &GroundOutput::Event(GroundEvent::DroneLevel {
            node: Arc::from("d1"),
            level: "normal".into(),
            disabled: vec![],
        }),
        6,
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(
        (&v["severity"], &v["reason"]),
        (&"cleared".into(), &"normal".into())
    );
}

#[test]
fn a_drones_own_alert_is_a_threshold_alert_on_its_topic() {
    let t = topics("g");
    let alert = |kind: &str, severity: &str| {
        let m = map_output(
            &t,
            &GroundOutput::Event(GroundEvent::DroneAlert {
                node: Arc::from("d1"),
                kind: kind.into(),
                severity: severity.into(),
            }),
            5,
        )
        .unwrap();
        assert_eq!(m.topic, "sarlink/g/d1/alert");
        serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap()
    };
    let v = alert("link_rtt", "critical");
    assert_eq!(
        (&v["kind"], &v["metric"], &v["severity"]),
        (&"threshold".into(), &"link_rtt".into(), &"critical".into())
    );
    let v = alert("link_rtt", "cleared");
    assert_eq!(v["severity"], "cleared");
    // A kind this ground does not know still reaches the broker, without a metric.
    let v = alert("radio_fault", "warning");
    assert_eq!(v["severity"], "warning");
    assert!(v.get("metric").is_none_or(|m| m.is_null()), "{v}");
    assert_eq!(v["reason"], "radio_fault warning on the drone");
}
