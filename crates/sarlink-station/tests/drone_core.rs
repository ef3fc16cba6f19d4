//! The drone core driven deterministically: injected time, no sockets, no receiver.

use std::time::Duration;

use sarlink_coord::{SafetyLevel, SafetyState};
use sarlink_link::LinkState;
use sarlink_monitor::degradation::Readings;
use sarlink_monitor::thresholds::{Level, MetricKind, Severity};
use sarlink_schema::{
    AckCode, Cmd, CmdOp, Db, Dbm, FrequencyHz, Message, NodeName, QualityScore, RssiRecord,
    RssiUnits, SourceId,
};
use sarlink_station::drone::{
    Control, ControlOutcome, DroneConfig, DroneCore, DroneInput, DroneOutput, HELD_DECISIONS,
    ResourceSample,
};
use sarlink_station::output::Entry;

const T0: Duration = Duration::from_secs(1_764_000_000);
const STEP: Duration = Duration::from_millis(100);

fn rec(source: SourceId, at: Duration, rssi: f32) -> RssiRecord {
    RssiRecord {
        timestamp_ns: at.as_nanos() as i64,
        rssi_dbm: Dbm::new(rssi).unwrap(),
        frequency_hz: FrequencyHz::new(406_028_000).unwrap(),
        source_id: source,
        quality_score: QualityScore::new(80).unwrap(),
        // Scores are SNR-based: a 20 dB stronger record here is 20 dB better.
        snr_db: Some(Db::new(rssi + 95.0).unwrap()),
        noise_dbm: None,
        beacon: sarlink_schema::BeaconFields::NONE,
    }
}

/// A drone core and its clock, with helpers that run it as the driver would.
struct Drone {
    core: DroneCore,
    now: Duration,
    outputs: Vec<DroneOutput>,
    /// The ground's clock minus ours.
    ground_skew: i64,
}

impl Drone {
    fn new() -> Drone {
        Drone::with(DroneConfig::new(NodeName::new("drone-1").unwrap()))
    }

    fn with(config: DroneConfig) -> Drone {
        Drone {
            core: DroneCore::new(config).unwrap(),
            now: T0,
            outputs: Vec::new(),
            ground_skew: 0,
        }
    }

    fn input(&mut self, input: DroneInput<'_>) {
        self.core.handle(self.now, input);
        while let Some(o) = self.core.poll_output() {
            self.outputs.push(o);
        }
    }

    /// One report period: an own record (`own` dB) and, when the link is up and `ground` is
    /// given, a ground record stamped on the ground's clock.
    fn period(&mut self, own: f32, ground: Option<f32>) {
        self.now += STEP;
        let r = rec(SourceId::DRONE, self.now, own);
        self.input(DroneInput::Measured {
            record: r,
            detected: true,
        });
        if let Some(g) = ground {
            let at = Duration::from_nanos((self.now.as_nanos() as i64 + self.ground_skew) as u64);
            let records = [rec(SourceId::GROUND, at, g)];
            self.input(DroneInput::GroundRecords {
                seq: 0,
                records: &records,
            });
        }
        self.input(DroneInput::Tick);
    }

    fn link_up(&mut self) {
        self.input(DroneInput::LinkUp {
            ground: NodeName::new("ground").unwrap(),
            units: RssiUnits::Dbfs,
        });
    }

    fn take(&mut self) -> Vec<DroneOutput> {
        std::mem::take(&mut self.outputs)
    }

    fn active(&self) -> (SourceId, bool, String) {
        let d = self.core.decision().expect("decided");
        (d.source_id, d.fallback, d.reason.clone())
    }

    fn command(&mut self, id: u32, op: CmdOp) -> Vec<DroneOutput> {
        self.take();
        self.input(DroneInput::Command(Cmd {
            id,
            target: None,
            op,
        }));
        self.take()
    }
}

fn acks(outputs: &[DroneOutput]) -> Vec<(u32, bool, Option<AckCode>, String)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            DroneOutput::Send(Message::Ack(a)) => Some((
                a.id,
                a.ok,
                a.code.clone(),
                a.reason.clone().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect()
}

fn sent_decisions(outputs: &[DroneOutput]) -> Vec<(SourceId, bool, String)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            DroneOutput::Send(Message::Decision(d)) => {
                Some((d.source_id, d.fallback, d.reason.clone()))
            }
            _ => None,
        })
        .collect()
}

fn tune(hz: u64) -> CmdOp {
    CmdOp::Tune {
        frequency_hz: FrequencyHz::new(hz).unwrap(),
    }
}

#[test]
fn without_a_ground_the_drone_homes_on_its_own_receiver_and_streams_every_record() {
    let mut d = Drone::new();
    for _ in 0..20 {
        d.period(-60.0, None);
    }
    let out = d.take();
    let samples = out
        .iter()
        .filter(|o| matches!(o, DroneOutput::Sample(_)))
        .count();
    assert_eq!(samples, 20);
    assert_eq!(d.active().0, SourceId::DRONE);
    // Nothing is sent while the link is down; decisions are held for the ground.
    assert!(sent_decisions(&out).is_empty());
    d.link_up();
    let sent = sent_decisions(&d.take());
    assert!(
        !sent.is_empty(),
        "held decisions go to the ground on connection"
    );
    assert_eq!(sent.last().unwrap().0, SourceId::DRONE);
}

#[test]
fn a_stronger_ground_receiver_wins_after_the_dwell_and_each_change_is_sent_and_recorded() {
    let mut d = Drone::new();
    d.link_up();
    for _ in 0..30 {
        d.period(-80.0, Some(-60.0));
    }
    assert_eq!(d.active().0, SourceId::GROUND);
    let out = d.take();
    let sent = sent_decisions(&out);
    assert_eq!(sent.last().unwrap().0, SourceId::GROUND, "{sent:?}");
    let written: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            DroneOutput::Write(Entry::Decision { node, decision }) => {
                Some((node.to_string(), decision.source_id))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        written.last(),
        Some(&("drone-1".to_owned(), SourceId::GROUND))
    );
    // Ground records go to the flight recorder under the ground's node.
    assert!(out.iter().any(|o| matches!(
        o,
        DroneOutput::Write(Entry::Record { node, .. }) if &**node == "ground"
    )));
    assert_eq!(d.core.stats().switches, 1);
}

#[test]
fn the_ground_clock_may_differ_from_ours_without_making_its_records_stale() {
    for skew_s in [-30i64, 45] {
        let mut d = Drone::new();
        d.ground_skew = skew_s * 1_000_000_000;
        d.link_up();
        for _ in 0..30 {
            d.period(-80.0, Some(-60.0));
        }
        assert_eq!(d.active().0, SourceId::GROUND, "skew {skew_s} s");
    }
}

#[test]
fn losing_the_link_falls_back_in_one_step_and_recovery_waits_for_the_hold_down() {
    let mut d = Drone::new();
    d.link_up();
    for _ in 0..30 {
        d.period(-80.0, Some(-60.0));
    }
    assert_eq!(d.active().0, SourceId::GROUND);
    let lost_at = d.now;
    d.input(DroneInput::LinkState(LinkState::Lost));
    d.input(DroneInput::LinkDown);
    d.period(-80.0, None);
    assert_eq!(
        d.active(),
        (SourceId::DRONE, true, "link_lost".to_owned()),
        "fallback within one decision step"
    );
    assert!(d.now - lost_at <= STEP);
    assert_eq!(d.core.stats().fallbacks, 1);
    for _ in 0..20 {
        d.period(-80.0, None);
    }
    // Decisions taken while down are sent on reconnection.
    d.take();
    d.link_up();
    let up_at = d.now;
    let sent = sent_decisions(&d.take());
    assert!(
        sent.contains(&(SourceId::DRONE, true, "link_lost".to_owned())),
        "{sent:?}"
    );
    let mut recovered_at = None;
    for _ in 0..80 {
        d.period(-80.0, Some(-60.0));
        if !d.active().1 && recovered_at.is_none() {
            recovered_at = Some(d.now);
        }
    }
    let recovered_at = recovered_at.expect("recovers");
    let after = recovered_at - up_at;
    assert!(
        after >= Duration::from_secs(5) && after <= Duration::from_millis(5_300),
        "recovered {after:?} after the link came back"
    );
    assert_eq!(d.active().0, SourceId::GROUND);
    assert_eq!(d.core.stats().recoveries, 1);
    assert_eq!(d.core.fallback_delays().count(), 1);
}

#[test]
fn decisions_held_while_down_are_bounded() {
    let mut d = Drone::new();
    d.link_up();
    d.input(DroneInput::LinkDown);
    // Alternate strengths so the decision keeps changing while nobody can hear it.
    for i in 0..2_000 {
        let own = if (i / 12) % 2 == 0 { -50.0 } else { -90.0 };
        d.period(own, None);
    }
    d.take();
    d.link_up();
    let sent = sent_decisions(&d.take());
    assert!(sent.len() <= HELD_DECISIONS + 1, "{}", sent.len());
}

#[test]
fn commands_out_of_range_are_refused_with_range() {
    let mut d = Drone::new();
    d.link_up();
    d.period(-60.0, None);
    let a = acks(&d.command(1, tune(3_000_000_000)));
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].0, a[0].1, a[0].2.clone()),
        (1, false, Some(AckCode::Range))
    );
    let a = acks(&d.command(2, CmdOp::Rate { hz: 80.0 }));
    assert_eq!(a[0].2, Some(AckCode::Range));
    let a = acks(&d.command(3, CmdOp::Gain { gain_db: 500.0 }));
    assert_eq!(a[0].2, Some(AckCode::Range));
}

#[test]
fn a_tune_is_acknowledged_only_once_the_receiver_applied_it() {
    let mut d = Drone::with({
        let mut c = DroneConfig::new(NodeName::new("drone-1").unwrap());
        c.channel_offset_hz = 100_000.0;
        c
    });
    d.link_up();
    d.period(-60.0, None);
    let out = d.command(7, tune(121_500_000));
    assert!(acks(&out).is_empty(), "no ack before the receiver answers");
    assert!(out.contains(&DroneOutput::Control(Control::Tune {
        cmd_id: 7,
        beacon_hz: 121_500_000,
        center_hz: 121_400_000,
    })));
    d.input(DroneInput::ControlDone {
        cmd_id: 7,
        outcome: ControlOutcome::Applied,
    });
    assert_eq!(acks(&d.take()), vec![(7, true, None, String::new())]);
    // A recording cannot retune: the drone says so.
    d.command(8, tune(121_500_000));
    d.input(DroneInput::ControlDone {
        cmd_id: 8,
        outcome: ControlOutcome::Unsupported("a recording cannot retune".into()),
    });
    let a = acks(&d.take());
    assert_eq!(a[0].2, Some(AckCode::Unsupported));
    assert!(a[0].3.contains("recording"));
}

#[test]
fn a_degraded_link_makes_the_drone_refuse_tune_with_safety_and_the_rule() {
    let mut d = Drone::new();
    d.link_up();
    d.period(-60.0, None);
    d.input(DroneInput::LinkState(LinkState::Degraded));
    let a = acks(&d.command(4, tune(406_028_000)));
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].1, a[0].2.clone()), (false, Some(AckCode::Safety)));
    assert!(a[0].3.contains("communication"), "{}", a[0].3);
    // Gain does not conflict with a poor link.
    let out = d.command(5, CmdOp::Gain { gain_db: 20.0 });
    assert!(acks(&out).is_empty());
    assert!(
        out.iter()
            .any(|o| matches!(o, DroneOutput::Control(Control::Gain { cmd_id: 5, .. })))
    );
    // Healthy again: tune passes to the receiver.
    d.input(DroneInput::LinkState(LinkState::Healthy));
    let out = d.command(6, tune(406_028_000));
    assert!(
        out.iter()
            .any(|o| matches!(o, DroneOutput::Control(Control::Tune { cmd_id: 6, .. })))
    );
}

#[test]
fn after_losing_its_lock_the_drone_refuses_retuning_while_it_reacquires() {
    let mut d = Drone::new();
    d.link_up();
    d.period(-60.0, None); // detected
    d.now += STEP;
    let r = rec(SourceId::DRONE, d.now, -95.0);
    d.input(DroneInput::Measured {
        record: r,
        detected: false,
    });
    let a = acks(&d.command(9, tune(406_028_000)));
    assert_eq!(a[0].2, Some(AckCode::Safety));
    assert!(a[0].3.contains("signal"), "{}", a[0].3);
    // Rate does not conflict with re-acquisition.
    assert_eq!(
        acks(&d.command(10, CmdOp::Rate { hz: 5.0 })),
        vec![(10, true, None, String::new())]
    );
    // After the re-acquisition window the operator may retune.
    d.now += Duration::from_secs(11);
    d.input(DroneInput::Tick);
    let out = d.command(11, tune(406_028_000));
    assert!(acks(&out).is_empty());
    assert!(
        out.iter()
            .any(|o| matches!(o, DroneOutput::Control(Control::Tune { cmd_id: 11, .. })))
    );
}

#[test]
fn a_vehicle_safety_level_refuses_commands_and_forces_fallback() {
    let mut d = Drone::new();
    d.link_up();
    for _ in 0..30 {
        d.period(-80.0, Some(-60.0));
    }
    assert_eq!(d.active().0, SourceId::GROUND);
    d.core
        .set_vehicle_safety(d.now, SafetyState::NOMINAL.with(SafetyLevel::Geofence));
    d.period(-80.0, Some(-60.0));
    assert_eq!(
        d.active(),
        (SourceId::DRONE, true, "safety_geofence".to_owned())
    );
    let a = acks(&d.command(12, tune(406_028_000)));
    assert_eq!(a[0].2, Some(AckCode::Safety));
    assert!(a[0].3.contains("geofence"), "{}", a[0].3);
}

#[test]
fn stream_off_stops_streaming_but_not_measuring_or_recording() {
    let mut d = Drone::new();
    d.link_up();
    assert_eq!(
        acks(&d.command(13, CmdOp::Stream { on: false })),
        vec![(13, true, None, String::new())]
    );
    d.period(-60.0, None);
    let out = d.take();
    assert!(!out.iter().any(|o| matches!(o, DroneOutput::Sample(_))));
    assert!(
        out.iter()
            .any(|o| matches!(o, DroneOutput::Write(Entry::Record { .. })))
    );
    assert_eq!(d.core.stats().measured, 1);
}

#[test]
fn rate_commands_and_congestion_advice_set_the_report_rate_to_the_lowest() {
    let mut d = Drone::new();
    d.link_up();
    let out = d.command(14, CmdOp::Rate { hz: 20.0 });
    assert!(out.contains(&DroneOutput::Control(Control::ReportRate { hz: 20.0 })));
    d.input(DroneInput::AdviseRate(5.0));
    assert!(
        d.take()
            .contains(&DroneOutput::Control(Control::ReportRate { hz: 5.0 }))
    );
    assert_eq!(d.core.current_rate_hz(), 5.0);
}

#[test]
fn unknown_ops_are_unsupported() {
    let mut d = Drone::new();
    let a = acks(&d.command(15, CmdOp::Unknown { op: "warp".into() }));
    assert_eq!(a[0].2, Some(AckCode::Unsupported));
}

#[test]
fn a_cycle_time_far_off_its_baseline_is_reported_and_over_its_limit_alerts() {
    use sarlink_station::drone::DroneEvent;
    let mut d = Drone::new();
    for i in 0..60 {
        d.now += STEP;
        d.input(DroneInput::CycleTime(Duration::from_micros(
            900 + (i % 5) * 20,
        )));
    }
    assert!(!d.take().iter().any(|o| matches!(
        o,
        DroneOutput::Event(DroneEvent::Deviation { .. } | DroneEvent::Alert(_))
    )));
    d.now += STEP;
    d.input(DroneInput::CycleTime(Duration::from_millis(8)));
    let out = d.take();
    assert!(
        out.iter().any(|o| matches!(
            o,
            DroneOutput::Event(DroneEvent::Deviation {
                metric: MetricKind::CycleProcessing,
                ..
            })
        )),
        "{out:?}"
    );
    // 150 ms a cycle at 10 Hz is 150 % of the 100 ms report period (reported capped at
    // 100 %), held: a critical cycle-load alert after the 3-sample debounce.
    let mut alerts = Vec::new();
    for _ in 0..5 {
        d.now += STEP;
        d.input(DroneInput::CycleTime(Duration::from_millis(150)));
        alerts.extend(d.take().into_iter().filter_map(|o| match o {
            DroneOutput::Event(DroneEvent::Alert(a)) => Some((a.kind, a.severity, a.value)),
            _ => None,
        }));
    }
    assert_eq!(
        alerts,
        [(MetricKind::CycleLoad, Severity::Critical, 100.0)],
        "{alerts:?}"
    );
    assert!(
        d.core
            .active_alerts()
            .any(|(k, l)| k == MetricKind::CycleLoad && l == Level::Critical)
    );
}

#[test]
fn cycle_load_is_judged_against_the_report_period_in_force() {
    // 60 ms: 60 % of 100 ms at 10 Hz (warning), 12 % of 500 ms at 2 Hz (nothing).
    let mut d = Drone::new();
    let mut kinds = Vec::new();
    for _ in 0..4 {
        d.now += STEP;
        d.input(DroneInput::CycleTime(Duration::from_millis(60)));
    }
    kinds.extend(alerts(&d.take()));
    assert_eq!(kinds, [(MetricKind::CycleLoad, Severity::Warning)]);
    let mut slow = DroneConfig::new(NodeName::new("drone-1").unwrap());
    slow.report_rate_hz = 2.0;
    let mut d = Drone::with(slow);
    for _ in 0..10 {
        d.now += STEP;
        d.input(DroneInput::CycleTime(Duration::from_millis(60)));
    }
    assert_eq!(alerts(&d.take()), []);
}

fn alerts(outputs: &[DroneOutput]) -> Vec<(sarlink_monitor::thresholds::MetricKind, Severity)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            DroneOutput::Event(sarlink_station::drone::DroneEvent::Alert(a)) => {
                Some((a.kind, a.severity))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_link_rtt_alert_is_on_the_p95_of_a_window_and_clears_once_it_is_fast_again() {
    let mut d = Drone::new();
    d.input(DroneInput::LinkUp {
        ground: NodeName::new("ground").unwrap(),
        units: RssiUnits::Dbfs,
    });
    let ms = Duration::from_millis;
    let mut log = Vec::new();
    // One ping a second: 20 fast, 15 slow (125 ms, as 60 ms of latency each way gives),
    // then fast again.
    let rtts = std::iter::repeat_n(5, 20)
        .chain(std::iter::repeat_n(125, 15))
        .chain(std::iter::repeat_n(5, 20));
    for (i, rtt) in rtts.enumerate() {
        d.now += Duration::from_secs(1);
        d.input(DroneInput::Rtt(ms(rtt)));
        for a in alerts(&d.take()) {
            if a.0 == MetricKind::LinkRtt {
                log.push((i, a.1));
            }
        }
        // The once-a-second status carries the active alerts to the ground.
        d.input(busy(10.0));
        let sent: Vec<Vec<String>> = d
            .take()
            .into_iter()
            .filter_map(|o| match o {
                DroneOutput::Send(Message::Status(s)) => Some(s.alerts),
                _ => None,
            })
            .collect();
        let expected: &[&str] = if (22..42).contains(&i) {
            &["link_rtt:critical"]
        } else {
            &[]
        };
        assert_eq!(sent, [expected], "status alerts at {i}");
    }
    // Raised on the third slow ping (debounce 3). The last slow ping (34) has left the
    // 5 s window at 40; 3 fast p95s later (42), 8 s after the latency ended, it clears.
    assert_eq!(log, [(22, Severity::Critical), (42, Severity::Cleared)]);
    assert_eq!(d.core.active_alerts().count(), 0);
}

#[test]
fn backlog_and_output_errors_alert_and_clear() {
    let mut d = Drone::new();
    let mut log = Vec::new();
    let backlog = [10u64, 600, 600, 600, 950, 950, 950, 0, 0, 0];
    for (i, held) in backlog.into_iter().enumerate() {
        d.now += Duration::from_secs(20);
        d.input(DroneInput::Backlog {
            held,
            capacity: 1000,
        });
        log.extend(alerts(&d.take()).into_iter().map(|a| (i, a.0, a.1)));
    }
    assert_eq!(
        log,
        [
            (3, MetricKind::Backlog, Severity::Warning),
            (6, MetricKind::Backlog, Severity::Critical),
            (9, MetricKind::Backlog, Severity::Cleared),
        ]
    );
    d.input(DroneInput::OutputErrors(1));
    assert_eq!(
        alerts(&d.take()),
        [(MetricKind::OutputErrors, Severity::Critical)]
    );
    d.now += Duration::from_secs(20);
    d.input(DroneInput::OutputErrors(0));
    assert_eq!(
        alerts(&d.take()),
        [(MetricKind::OutputErrors, Severity::Cleared)]
    );
}

fn busy(cpu: f64) -> DroneInput<'static> {
    use sarlink_monitor::Percent;
    DroneInput::Resources(ResourceSample {
        readings: Readings {
            cpu: Some(Percent::new(cpu).unwrap()),
            memory: Some(Percent::new(40.0).unwrap()),
            temperature: None,
        },
        rss_bytes: Some(20 << 20),
    })
}

#[test]
fn high_cpu_sheds_the_drone_matrix_reports_it_in_status_and_restores_one_class_at_a_time() {
    use sarlink_station::drone::{DroneEvent, DroneFeature};
    let mut config = DroneConfig::new(NodeName::new("drone-1").unwrap());
    config.smoothing = Some(0.3);
    let mut d = Drone::with(config);
    d.input(DroneInput::LinkUp {
        ground: NodeName::new("ground").unwrap(),
        units: RssiUnits::Dbfs,
    });
    d.input(DroneInput::Source {
        state: "streaming".into(),
        data_age: Some(Duration::from_millis(30)),
    });
    let mut changes = Vec::new();
    let mut statuses = Vec::new();
    let mut controls = Vec::new();
    let cpu = std::iter::repeat_n(97.0, 6).chain(std::iter::repeat_n(20.0, 20));
    for (i, c) in cpu.enumerate() {
        d.now += Duration::from_secs(1);
        d.input(busy(c));
        for o in d.take() {
            match o {
                DroneOutput::Event(DroneEvent::Degradation {
                    features,
                    level,
                    readings,
                    ..
                }) => changes.push((i, features, level, readings.cpu.unwrap().value())),
                DroneOutput::Send(Message::Status(s)) => statuses.push(s),
                DroneOutput::Control(c) => controls.push((i, c)),
                _ => {}
            }
        }
    }
    let shed = vec![
        "status-detail",
        "mavlink-extras",
        "smoothing",
        "dashboard-rate",
        "status-line",
    ];
    let owned = |v: &[&'static str]| v.to_vec();
    assert_eq!(
        changes,
        [
            (4, shed, "shedding-4".to_owned(), 97.0),
            (
                15,
                owned(&["status-detail", "mavlink-extras"]),
                "shedding-5".to_owned(),
                20.0
            ),
            (
                18,
                owned(&["smoothing", "dashboard-rate"]),
                "shedding-6".to_owned(),
                20.0
            ),
            (21, owned(&["status-line"]), "normal".to_owned(), 20.0),
        ]
    );
    // Status once a second, with the level and the shed features; the delivery detail is
    // left out while status-detail is shed.
    assert_eq!(statuses.len(), 26);
    assert_eq!(statuses[3].level, "normal");
    assert_eq!(statuses[3].source.as_deref(), Some("streaming"));
    assert_eq!(statuses[4].level, "shedding-4");
    assert_eq!(statuses[4].disabled.len(), 5);
    assert_eq!(statuses[4].source, None);
    assert_eq!(statuses[4].cpu_pct, 97.0);
    assert_eq!(statuses[25].level, "normal");
    assert!(statuses[25].disabled.is_empty());
    // High pressure keeps the full report rate (class 3); smoothing goes off and on.
    assert!(statuses.iter().all(|s| s.rate_hz == 10.0));
    assert_eq!(
        controls,
        [
            (4, Control::Smoothing { alpha: None }),
            (18, Control::Smoothing { alpha: Some(0.3) }),
        ]
    );
    assert!(DroneFeature::ALL.iter().all(|f| d.core.is_enabled(*f)));
}

#[test]
fn extreme_pressure_halves_the_rate_and_thermal_steps_are_relative_to_the_configured_rate() {
    use sarlink_monitor::{Celsius, Percent};
    let mut config = DroneConfig::new(NodeName::new("drone-1").unwrap());
    config.report_rate_hz = 20.0;
    let mut d = Drone::with(config);
    let hot = |t: f64| {
        DroneInput::Resources(ResourceSample {
            readings: Readings {
                cpu: Some(Percent::new(95.0).unwrap()),
                memory: Some(Percent::new(90.0).unwrap()),
                temperature: Some(Celsius::new(t).unwrap()),
            },
            rss_bytes: None,
        })
    };
    d.now += Duration::from_secs(1);
    d.input(hot(75.0));
    // Warm: 20 Hz configured, stepped down to half.
    assert_eq!(d.core.current_rate_hz(), 10.0);
    d.now += Duration::from_secs(1);
    d.input(hot(86.0));
    // Critical: a tenth (2 Hz), and extreme pressure sheds class 3: halved again.
    assert!(
        !d.core
            .is_enabled(sarlink_station::drone::DroneFeature::FullReportRate)
    );
    assert_eq!(d.core.current_rate_hz(), 1.0);
    let rates: Vec<f32> = d
        .take()
        .into_iter()
        .filter_map(|o| match o {
            DroneOutput::Control(Control::ReportRate { hz }) => Some(hz),
            _ => None,
        })
        .collect();
    assert_eq!(rates, [10.0, 1.0]);
}
