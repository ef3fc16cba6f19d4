//! Selection, hysteresis, freshness, fallback and recovery.

mod util;

use std::time::Duration;

use proptest::prelude::*;
use sarlink_coord::{
    Config, Coordinator, LinkHealth, LinkState, LossRatio, Reason, SafetyLevel, SafetyState,
    SourceId,
};
use util::{ms, reading, step};

fn coord() -> Coordinator {
    Coordinator::new(Config::default()).unwrap()
}

/// Starts on the ground source (ground better) and returns the coordinator at t = 0.
fn on_ground() -> Coordinator {
    let mut c = coord();
    let d = step(&mut c, ms(0), 10.0, 15.0);
    assert_eq!((d.source, d.reason), (SourceId::GROUND, Reason::Initial));
    c
}

#[test]
fn challenger_needs_the_full_margin() {
    let mut c = on_ground();
    // Drone leads by 2.8 dB for a long time: never switches.
    for i in 1..50 {
        let d = step(&mut c, ms(i * 100), 17.8, 15.0);
        assert_eq!((d.source, d.reason), (SourceId::GROUND, Reason::Hold));
    }
    // Exactly 3 dB (the default margin) after the dwell: switches.
    let d = step(&mut c, ms(5000), 18.0, 15.0);
    assert_eq!((d.source, d.reason), (SourceId::DRONE, Reason::BetterScore));
    assert_eq!(d.switched_from, Some(SourceId::GROUND));
    assert_eq!(c.stats().switches, 1);
}

#[test]
fn challenger_waits_for_the_dwell() {
    let mut c = on_ground();
    for t in [100, 500, 999] {
        let d = step(&mut c, ms(t), 25.0, 15.0);
        assert_eq!(
            (d.source, d.reason),
            (SourceId::GROUND, Reason::Dwell),
            "at {t} ms"
        );
    }
    let d = step(&mut c, ms(1000), 25.0, 15.0);
    assert_eq!((d.source, d.reason), (SourceId::DRONE, Reason::BetterScore));
}

#[test]
fn oscillation_around_the_margin_switches_at_most_once_per_dwell() {
    // The lead flips between +3.2 dB for one source and +3.2 dB for the other every
    // decision (10 Hz): without hysteresis that would be a switch per decision.
    let mut c = on_ground();
    let mut switches = Vec::new();
    for i in 1..=200u64 {
        let (drone, ground) = if i % 2 == 0 {
            (18.2, 15.0)
        } else {
            (15.0, 18.2)
        };
        let d = step(&mut c, ms(i * 100), drone, ground);
        if d.is_switch() {
            switches.push(d.at);
        }
    }
    assert!(
        !switches.is_empty(),
        "a sustained lead must eventually switch"
    );
    for pair in switches.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(1),
            "switches {pair:?} too close"
        );
    }
    // 20 s of input: at most one switch per second (plus none at the start).
    assert!(switches.len() <= 20, "{} switches", switches.len());
}

proptest! {
    /// Any sequence of fresh inputs (arbitrary scores, arbitrary steps) produces
    /// score-driven switches at least one dwell apart.
    #[test]
    fn switches_are_at_least_one_dwell_apart(
        steps in prop::collection::vec((1u64..400, -5.0f32..30.0, -5.0f32..30.0), 1..300)
    ) {
        let mut c = coord();
        let mut t = Duration::ZERO;
        let mut last_switch: Option<Duration> = None;
        for (dt_ms, drone, ground) in steps {
            t += ms(dt_ms);
            let d = step(&mut c, t, drone, ground);
            prop_assert!(matches!(d.reason, Reason::Initial | Reason::Hold | Reason::Dwell | Reason::BetterScore));
            if d.is_switch() {
                prop_assert_eq!(d.reason, Reason::BetterScore);
                if let Some(prev) = last_switch {
                    prop_assert!(t - prev >= Duration::from_secs(1));
                }
                last_switch = Some(t);
            }
        }
    }
}

#[test]
fn stale_source_is_not_eligible_after_500_ms() {
    let mut c = on_ground();
    // Only the drone keeps reporting (and is worse).
    c.update_reading(SourceId::DRONE, reading(5.0, 100, ms(500)), ms(500));
    let d = *c.decide(ms(500));
    assert_eq!(
        (d.source, d.reason),
        (SourceId::GROUND, Reason::Hold),
        "500 ms old is fresh"
    );
    assert!(d.score_ground_db.is_some());
    c.update_reading(SourceId::DRONE, reading(5.0, 100, ms(501)), ms(501));
    let d = *c.decide(ms(501));
    assert_eq!((d.source, d.reason), (SourceId::DRONE, Reason::Stale));
    assert_eq!(d.score_ground_db, None);
    assert!(!d.fallback);
}

#[test]
fn nothing_fresh_keeps_the_current_source() {
    let mut c = coord();
    let d = *c.decide(ms(0));
    assert_eq!((d.source, d.reason), (SourceId::DRONE, Reason::NoData));
    assert_eq!(c.current(), None, "no-data does not select");
    let mut c = on_ground();
    let d = *c.decide(ms(2000));
    assert_eq!((d.source, d.reason), (SourceId::GROUND, Reason::NoData));
}

#[test]
fn future_stamped_records_do_not_stay_fresh() {
    let mut c = coord();
    // Stamped 10 s ahead of the receiver's clock.
    c.update_reading(SourceId::GROUND, reading(15.0, 100, ms(10_000)), ms(0));
    assert_eq!(c.decide(ms(0)).source, SourceId::GROUND);
    assert_eq!(c.decide(ms(501)).reason, Reason::NoData);
}

#[test]
fn out_of_order_records_are_ignored() {
    let mut c = coord();
    assert!(c.update_reading(SourceId::GROUND, reading(15.0, 100, ms(200)), ms(200)));
    assert!(!c.update_reading(SourceId::GROUND, reading(30.0, 100, ms(100)), ms(210)));
    assert_eq!(
        c.reading(SourceId::GROUND).map(|r| r.snr_db()),
        Some(Some(15.0))
    );
    assert_eq!(c.stats().out_of_order_readings, 1);
}

fn assert_fallback(c: &mut Coordinator, t: Duration, reason: Reason) {
    let d = step(c, t, 10.0, 20.0);
    assert_eq!(
        (d.source, d.fallback, d.reason),
        (SourceId::DRONE, true, reason)
    );
}

#[test]
fn lost_ground_link_falls_back_within_one_step() {
    let mut c = on_ground();
    // Still within the dwell: fallback does not wait for it.
    c.update_link(SourceId::GROUND, LinkHealth::LOST, ms(100));
    assert_fallback(&mut c, ms(100), Reason::LinkLost);
    assert_eq!(c.decide(ms(100)).switched_from, None, "already switched");
}

#[test]
fn degraded_link_past_rtt_or_loss_threshold_falls_back() {
    let slow = LinkHealth {
        state: LinkState::Degraded,
        rtt: Some(ms(501)),
        loss: LossRatio::ZERO,
    };
    let lossy = LinkHealth {
        state: LinkState::Healthy,
        rtt: Some(ms(50)),
        loss: LossRatio::new(0.25).unwrap(),
    };
    for health in [slow, lossy] {
        let mut c = on_ground();
        c.update_link(SourceId::GROUND, health, ms(100));
        assert_fallback(&mut c, ms(100), Reason::LinkDegraded);
    }
    // Labelled degraded but within both thresholds: no fallback.
    let mut c = on_ground();
    let mild = LinkHealth {
        state: LinkState::Degraded,
        rtt: Some(ms(400)),
        loss: LossRatio::ZERO,
    };
    c.update_link(SourceId::GROUND, mild, ms(100));
    let d = step(&mut c, ms(100), 10.0, 20.0);
    assert_eq!((d.source, d.fallback), (SourceId::GROUND, false));
}

#[test]
fn every_safety_level_falls_back_within_one_step() {
    for level in SafetyLevel::ALL {
        let mut c = on_ground();
        c.set_safety(SafetyState::NOMINAL.with(level), ms(100));
        assert_fallback(&mut c, ms(100), Reason::Safety(level));
    }
}

#[test]
fn safety_reason_names_the_highest_level() {
    let mut c = on_ground();
    let s = SafetyState::NOMINAL
        .with(SafetyLevel::Signal)
        .with(SafetyLevel::Battery);
    c.set_safety(s, ms(100));
    c.update_link(SourceId::GROUND, LinkHealth::LOST, ms(100));
    let d = step(&mut c, ms(100), 10.0, 20.0);
    assert_eq!(d.reason, Reason::Safety(SafetyLevel::Battery));
    assert_eq!(d.reason.as_str(), "safety_battery");
}

#[test]
fn recovery_waits_exactly_for_the_hold_down() {
    let mut c = on_ground();
    c.update_link(SourceId::GROUND, LinkHealth::LOST, ms(100));
    assert_fallback(&mut c, ms(100), Reason::LinkLost);
    c.update_link(SourceId::GROUND, LinkHealth::HEALTHY, ms(2000));
    assert_fallback(&mut c, ms(2000), Reason::Recovering);
    assert_fallback(&mut c, ms(6999), Reason::Recovering);
    // 5 s after the link became healthy: normal selection again (the ground leads by
    // 10 dB and the drone has been held for far more than the dwell).
    let d = step(&mut c, ms(7000), 10.0, 20.0);
    assert_eq!(
        (d.source, d.fallback, d.reason),
        (SourceId::GROUND, false, Reason::BetterScore)
    );
}

#[test]
fn a_relapse_restarts_the_hold_down() {
    let mut c = on_ground();
    c.update_link(SourceId::GROUND, LinkHealth::LOST, ms(0));
    c.update_link(SourceId::GROUND, LinkHealth::HEALTHY, ms(1000));
    c.update_link(SourceId::GROUND, LinkHealth::LOST, ms(4000));
    c.update_link(SourceId::GROUND, LinkHealth::HEALTHY, ms(4500));
    // 5 s after the first recovery, but only 1.5 s after the second.
    assert_fallback(&mut c, ms(6000), Reason::Recovering);
    assert_fallback(&mut c, ms(9499), Reason::Recovering);
    assert!(!step(&mut c, ms(9500), 10.0, 20.0).fallback);
}

#[test]
fn safety_fallback_ends_when_nominal_and_then_respects_the_dwell() {
    let mut c = coord();
    step(&mut c, ms(0), 20.0, 10.0); // drone selected
    c.set_safety(SafetyState::NOMINAL.with(SafetyLevel::Geofence), ms(100));
    assert_fallback(&mut c, ms(100), Reason::Safety(SafetyLevel::Geofence));
    c.set_safety(SafetyState::NOMINAL, ms(200));
    assert_eq!(c.safety_since(), ms(200));
    let d = step(&mut c, ms(200), 10.0, 20.0);
    assert_eq!(
        (d.fallback, d.reason),
        (false, Reason::Dwell),
        "drone held since 0 ms"
    );
    let d = step(&mut c, ms(1000), 10.0, 20.0);
    assert_eq!(
        (d.source, d.reason),
        (SourceId::GROUND, Reason::BetterScore)
    );
}

#[test]
fn drone_link_reports_never_trigger_fallback() {
    let mut c = on_ground();
    c.update_link(SourceId::DRONE, LinkHealth::LOST, ms(100));
    let d = step(&mut c, ms(100), 10.0, 20.0);
    assert!(!d.fallback);
    assert_eq!(
        c.link_verdict(SourceId::DRONE),
        Some(sarlink_coord::LinkVerdict::Lost)
    );
}

#[test]
fn history_is_a_bounded_ring() {
    let mut cfg = Config::default();
    cfg.history_capacity = 8;
    let mut c = Coordinator::new(cfg).unwrap();
    for i in 0..20 {
        step(&mut c, ms(i * 100), 10.0, 20.0);
    }
    let times: Vec<_> = c.history().map(|d| d.at).collect();
    assert_eq!(times, (12..20).map(|i| ms(i * 100)).collect::<Vec<_>>());
    assert_eq!(c.last_decision().map(|d| d.at), Some(ms(1900)));
    assert_eq!(c.stats().decisions, 20);
}

#[test]
fn invalid_config_is_rejected() {
    let mut cfg = Config::default();
    cfg.margin_db = f32::NAN;
    assert!(matches!(
        Coordinator::new(cfg),
        Err(sarlink_coord::ConfigError::InvalidMargin { .. })
    ));
    let mut cfg = Config::default();
    cfg.history_capacity = 0;
    assert!(Coordinator::new(cfg).is_err());
    let mut cfg = Config::default();
    cfg.score.snr_floor_db = 50.0;
    assert_eq!(
        Coordinator::new(cfg).unwrap_err(),
        sarlink_coord::ConfigError::InvalidScoreParameter {
            name: "snr_floor_db",
            value: 50.0
        }
    );
}

#[test]
fn wire_records_in_decisions_out() {
    use sarlink_schema::{Db, Dbm, FrequencyHz, QualityScore, RssiRecord};
    let epoch = Duration::from_nanos(1_764_000_000_000_000_000);
    let record = |source: SourceId, snr: f32| RssiRecord {
        timestamp_ns: 1_764_000_000_000_000_000,
        rssi_dbm: Dbm::new(-71.5).unwrap(),
        frequency_hz: FrequencyHz::new(406_025_000).unwrap(),
        source_id: source,
        quality_score: QualityScore::new(100).unwrap(),
        snr_db: Some(Db::new(snr).unwrap()),
        noise_dbm: None,
        beacon: sarlink_schema::BeaconFields::NONE,
    };
    let mut c = coord();
    c.update_record(&record(SourceId::DRONE, 9.0), epoch + ms(20));
    c.update_record(&record(SourceId::GROUND, 14.0), epoch + ms(20));
    let msg = sarlink_schema::Decision::from(c.decide(epoch + ms(20)));
    assert_eq!(msg.t_ns, 1_764_000_000_020_000_000);
    assert_eq!(
        (msg.source_id, msg.fallback, msg.reason.as_str()),
        (SourceId::GROUND, false, "initial")
    );
    assert_eq!((msg.score_drone, msg.score_ground), (Some(9.0), Some(14.0)));
}
