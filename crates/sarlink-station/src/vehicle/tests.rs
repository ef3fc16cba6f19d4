use mavlink::dialects::ardupilotmega::{
    FENCE_STATUS_DATA, FenceBreach, GLOBAL_POSITION_INT_DATA, GPS_RAW_INT_DATA, SYS_STATUS_DATA,
};
use sarlink_schema::{Db, Dbm, FrequencyHz, QualityScore};

use super::*;

const S: Duration = Duration::from_secs(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn hb(autopilot: MavAutopilot, mavtype: MavType, custom_mode: u32, armed: bool) -> MavMessage {
    MavMessage::HEARTBEAT(HEARTBEAT_DATA {
        custom_mode,
        mavtype,
        autopilot,
        base_mode: if armed {
            MavModeFlag::MAV_MODE_FLAG_SAFETY_ARMED
        } else {
            MavModeFlag::empty()
        },
        system_status: MavState::MAV_STATE_ACTIVE,
        mavlink_version: 3,
    })
}

fn copter(mode: u32) -> MavMessage {
    hb(
        MavAutopilot::MAV_AUTOPILOT_ARDUPILOTMEGA,
        MavType::MAV_TYPE_QUADROTOR,
        mode,
        true,
    )
}

fn position(lat: i32, lon: i32) -> MavMessage {
    MavMessage::GLOBAL_POSITION_INT(GLOBAL_POSITION_INT_DATA {
        lat,
        lon,
        alt: 152_500,
        hdg: 27_125,
        ..GLOBAL_POSITION_INT_DATA::DEFAULT
    })
}

fn fix(fix_type: GpsFixType) -> MavMessage {
    MavMessage::GPS_RAW_INT(GPS_RAW_INT_DATA {
        fix_type,
        ..GPS_RAW_INT_DATA::DEFAULT
    })
}

fn battery(pct: i8) -> MavMessage {
    MavMessage::SYS_STATUS(SYS_STATUS_DATA {
        battery_remaining: pct,
        voltage_battery: 15_200,
        ..SYS_STATUS_DATA::DEFAULT
    })
}

fn fence(breached: bool) -> MavMessage {
    MavMessage::FENCE_STATUS(FENCE_STATUS_DATA {
        breach_status: u8::from(breached),
        breach_type: FenceBreach::FENCE_BREACH_BOUNDARY,
        ..FENCE_STATUS_DATA::DEFAULT
    })
}

fn record(rssi: f32) -> RssiRecord {
    RssiRecord {
        timestamp_ns: 1_764_000_000_000_000_000,
        rssi_dbm: Dbm::new(rssi).unwrap(),
        frequency_hz: FrequencyHz::new(406_028_000).unwrap(),
        source_id: SourceId::DRONE,
        quality_score: QualityScore::new(87).unwrap(),
        snr_db: Some(Db::new(18.25).unwrap()),
        noise_dbm: None,
        beacon: BeaconFields {
            last_pulse_dbm: Some(Dbm::new(-52.5).unwrap()),
            ..BeaconFields::NONE
        },
    }
}

fn levels(s: SafetyState) -> Vec<SafetyLevel> {
    s.iter().collect()
}

#[test]
fn every_value_name_fits_named_value_float() {
    for name in VALUE_NAMES {
        let checked = ValueName::new(name).unwrap();
        assert!(checked.as_str().len() <= 10, "{name}");
    }
    assert_eq!(
        ValueName::new("SAR_PULSE_DBM"),
        Err(ValueNameError::Length {
            name: "SAR_PULSE_DBM",
            len: 13
        })
    );
    assert!(ValueName::new("").is_err());
    assert_eq!(
        ValueName::new("SAR RSSI"),
        Err(ValueNameError::NotAscii("SAR RSSI"))
    );
}

#[test]
fn record_values_go_out_under_their_names_with_time_since_start() {
    let mut t = Telemetry::new(100_000);
    t.record(ms(12_345), &record(-71.5), Some(SourceId::GROUND), true);
    let mut got = Vec::new();
    while let Some(m) = t.poll() {
        if let MavMessage::NAMED_VALUE_FLOAT(v) = m {
            let name = v.name.to_str().unwrap().trim_end_matches('\0').to_owned();
            got.push((name, v.value, v.time_boot_ms));
        }
    }
    let want = [
        ("SAR_RSSI", -71.5),
        ("SAR_SNR", 18.25),
        ("SAR_QUAL", 87.0),
        ("SAR_SRC", 1.0),
        ("SAR_DET", 1.0),
        ("SAR_PULSE", -52.5),
    ];
    assert_eq!(got.len(), want.len());
    for ((name, value, boot), (wname, wvalue)) in got.iter().zip(want) {
        assert_eq!((name.as_str(), *value, *boot), (wname, wvalue, 12_345));
    }
}

#[test]
fn the_byte_budget_thins_record_values_but_not_heartbeats() {
    // 10 records a second for 20 s at the default 1,000 B/s.
    let mut t = Telemetry::new(DEFAULT_BYTE_BUDGET);
    let (mut bytes, mut heartbeats) = (0u32, 0);
    for i in 0..200u64 {
        let now = ms(i * 100);
        t.tick(now);
        t.record(now, &record(-70.0), Some(SourceId::DRONE), false);
        while let Some(m) = t.poll() {
            bytes += frame_len(&m);
            heartbeats += u32::from(matches!(m, MavMessage::HEARTBEAT(_)));
        }
    }
    let stats = t.stats();
    assert_eq!(heartbeats, 20);
    assert!(stats.records_thinned > 0, "{stats:?}");
    assert!(stats.records_sent > 50, "{stats:?}");
    // 20 s of budget plus the initial second's allowance.
    assert!(bytes <= 21 * DEFAULT_BYTE_BUDGET, "{bytes} bytes");
    // With room for everything, nothing is thinned.
    let mut wide = Telemetry::new(100_000);
    for i in 0..200u64 {
        wide.record(ms(i * 100), &record(-70.0), None, false);
    }
    assert_eq!(wide.stats().records_thinned, 0);
}

fn texts(t: &mut Telemetry) -> Vec<String> {
    let mut v = Vec::new();
    while let Some(m) = t.poll() {
        if let MavMessage::STATUSTEXT(s) = m {
            v.push(s.text.to_str().unwrap().trim_end_matches('\0').to_owned());
        }
    }
    v
}

#[test]
fn a_second_event_within_the_second_is_delayed_not_dropped() {
    let mut t = Telemetry::new(DEFAULT_BYTE_BUDGET);
    let warn = MavSeverity::MAV_SEVERITY_WARNING;
    t.text(S, TextKind::Refused, warn, "SAR: tune 5 refused: geofence");
    t.text(
        ms(1_200),
        TextKind::Refused,
        warn,
        "SAR: tune 6 refused: geofence",
    );
    // The same event again while it waits is not queued twice.
    t.text(
        ms(1_300),
        TextKind::Refused,
        warn,
        "SAR: tune 6 refused: geofence",
    );
    // Another kind is not held back by this one.
    t.text(
        ms(1_400),
        TextKind::Fallback,
        warn,
        "SAR: fallback to drone",
    );
    assert_eq!(
        texts(&mut t),
        ["SAR: tune 5 refused: geofence", "SAR: fallback to drone"]
    );
    t.tick(ms(1_900));
    assert!(texts(&mut t).is_empty(), "one per second per kind");
    t.tick(ms(2_000));
    assert_eq!(texts(&mut t), ["SAR: tune 6 refused: geofence"]);
    t.tick(ms(5_000));
    assert!(texts(&mut t).is_empty());
}

#[test]
fn texts_are_cut_to_fifty_bytes_on_a_character_boundary() {
    let mut t = Telemetry::new(DEFAULT_BYTE_BUDGET);
    let long = format!("{}é", "x".repeat(49));
    t.text(
        S,
        TextKind::Detection,
        MavSeverity::MAV_SEVERITY_INFO,
        &long,
    );
    assert_eq!(texts(&mut t), ["x".repeat(49)]);
}

#[test]
fn the_vehicle_is_the_first_autopilot_heard_and_its_modes_have_names() {
    let mut v = VehicleTracker::new(Duration::ZERO, DEFAULT_COMPONENT_ID);
    let gcs = hb(
        MavAutopilot::MAV_AUTOPILOT_INVALID,
        MavType::MAV_TYPE_GCS,
        0,
        false,
    );
    assert!(!v.handle(S, 255, 190, &gcs).found);
    // Another onboard computer on the vehicle, or our own heartbeat echoed back.
    assert!(!v.handle(S, 7, DEFAULT_COMPONENT_ID, &copter(4)).found);
    assert_eq!(v.state().system_id, None);
    assert!(v.handle(S, 7, 1, &copter(4)).found);
    assert_eq!(v.state().system_id, Some(7));
    assert!(v.state().armed);
    assert_eq!(v.state().mode.as_ref().unwrap().as_str(), "GUIDED");
    // Another vehicle's heartbeat and messages do not count.
    v.handle(S, 8, 1, &copter(6));
    v.handle(S, 8, 1, &fence(true));
    assert_eq!(v.state().mode.as_ref().unwrap().as_str(), "GUIDED");
    assert!(!v.state().fence_breached);
    assert!(v.handle(ms(1_500), 7, 1, &copter(6)).rules);
    assert_eq!(v.state().mode.as_ref().unwrap().as_str(), "RTL");

    let px4 = |main: u32, sub: u32| {
        FlightMode::decode(MavAutopilot::MAV_AUTOPILOT_PX4, (main << 16) | (sub << 24))
    };
    assert_eq!(px4(4, 4).as_str(), "AUTO.MISSION");
    assert_eq!(px4(3, 0).as_str(), "POSCTL");
    assert_eq!(px4(6, 0).as_str(), "OFFBOARD");
    assert_eq!(px4(4, 5).as_str(), "AUTO.RTL");
    assert_eq!(
        FlightMode::decode(MavAutopilot::MAV_AUTOPILOT_GENERIC, 42).as_str(),
        "MODE(42)"
    );
}

#[test]
fn vehicle_rules_map_state_to_safety_levels() {
    let rules = VehicleRules::default();
    let mut v = VehicleTracker::new(Duration::ZERO, DEFAULT_COMPONENT_ID);
    v.handle(S, 1, 1, &copter(4));
    v.handle(S, 1, 1, &battery(80));
    assert_eq!(levels(vehicle_safety(v.state(), &rules, S)), []);

    v.handle(ms(1_100), 1, 1, &fence(true));
    assert_eq!(
        levels(vehicle_safety(v.state(), &rules, ms(1_100))),
        [SafetyLevel::Geofence]
    );
    v.handle(ms(1_200), 1, 1, &fence(false));
    v.handle(ms(1_200), 1, 1, &battery(24));
    assert_eq!(
        levels(vehicle_safety(v.state(), &rules, ms(1_200))),
        [SafetyLevel::Battery]
    );
    v.handle(ms(1_300), 1, 1, &battery(25));
    v.handle(ms(1_300), 1, 1, &copter(9)); // LAND
    assert_eq!(
        levels(vehicle_safety(v.state(), &rules, ms(1_300))),
        [SafetyLevel::FlightMode]
    );
    // A mode allowed by configuration, in any case.
    let land_ok = VehicleRules {
        allowed_modes: vec!["land".into()],
        ..VehicleRules::default()
    };
    assert_eq!(levels(vehicle_safety(v.state(), &land_ok, ms(1_300))), []);

    // Silence: lost 3 s after the last heartbeat, not before.
    let quiet = ms(1_300) + LOST_AFTER;
    assert_eq!(
        levels(vehicle_safety(v.state(), &land_ok, quiet - ms(1))),
        []
    );
    assert_eq!(
        levels(vehicle_safety(v.state(), &land_ok, quiet)),
        [SafetyLevel::FlightMode]
    );
    // Heard again: judged on what it says.
    let back = v.handle(quiet + S, 1, 1, &copter(4));
    assert!(back.rules);
    assert_eq!(levels(vehicle_safety(v.state(), &rules, quiet + S)), []);
}

#[test]
fn a_vehicle_never_heard_is_lost_after_three_seconds() {
    let rules = VehicleRules::default();
    let state = VehicleState::new(S);
    assert_eq!(
        levels(vehicle_safety(&state, &rules, S + LOST_AFTER - ms(1))),
        [SafetyLevel::FlightMode],
        "no mode yet: not on the allow-list"
    );
    assert!(!state.is_lost(S + LOST_AFTER - ms(1)));
    assert!(state.is_lost(S + LOST_AFTER));
}

#[test]
fn records_are_geotagged_only_with_a_fresh_3d_fix() {
    let mut v = VehicleTracker::new(Duration::ZERO, DEFAULT_COMPONENT_ID);
    v.handle(S, 1, 1, &copter(4));
    v.handle(S, 1, 1, &position(-338_651_234, 1_512_099_876));
    let tag = |v: &VehicleTracker, at| {
        let mut b = BeaconFields::NONE;
        geotag(&mut b, v.state(), at);
        b
    };
    assert_eq!(tag(&v, S), BeaconFields::NONE, "no fix reported yet");
    v.handle(S, 1, 1, &fix(GpsFixType::GPS_FIX_TYPE_2D_FIX));
    assert_eq!(tag(&v, S), BeaconFields::NONE, "2D fix");
    v.handle(S, 1, 1, &fix(GpsFixType::GPS_FIX_TYPE_RTK_FIXED));
    let b = tag(&v, ms(1_999));
    assert_eq!(
        (b.lat_e7, b.lon_e7, b.alt_m, b.heading_deg),
        (
            Some(-338_651_234),
            Some(1_512_099_876),
            Some(152.5),
            Some(271.25)
        )
    );
    assert_eq!(tag(&v, ms(2_000)), BeaconFields::NONE, "1 s old");
    // Heading unknown (u16::MAX): the other keys stay.
    v.handle(
        ms(2_000),
        1,
        1,
        &MavMessage::GLOBAL_POSITION_INT(GLOBAL_POSITION_INT_DATA {
            hdg: u16::MAX,
            ..GLOBAL_POSITION_INT_DATA::DEFAULT
        }),
    );
    v.handle(ms(2_000), 1, 1, &fix(GpsFixType::GPS_FIX_TYPE_3D_FIX));
    let b = tag(&v, ms(2_000));
    assert_eq!((b.lat_e7, b.heading_deg), (Some(0), None));
}

#[test]
fn the_drones_heartbeat_is_an_onboard_controller() {
    let MavMessage::HEARTBEAT(h) = heartbeat() else {
        panic!("not a heartbeat")
    };
    assert_eq!(h.mavtype, MavType::MAV_TYPE_ONBOARD_CONTROLLER);
    assert_eq!(h.autopilot, MavAutopilot::MAV_AUTOPILOT_INVALID);
}

#[test]
fn mavlink_urls_parse_and_bad_ones_say_why() {
    let ok = [
        "serial:/dev/ttyACM0:115200",
        "udpin:0.0.0.0:14550",
        "udpout:192.168.1.5:14550",
        "tcpout:localhost:5760",
        "sim",
    ];
    for url in ok {
        let parsed: MavlinkUrl = url.parse().unwrap();
        assert_eq!(parsed.to_string(), url);
    }
    assert_eq!(
        "serial:/dev/ttyACM0:115200".parse(),
        Ok(MavlinkUrl::Serial {
            path: "/dev/ttyACM0".into(),
            baud: 115_200
        })
    );
    let bad = |s: &str| s.parse::<MavlinkUrl>().unwrap_err();
    assert_eq!(
        bad("udp:1.2.3.4:5"),
        MavlinkUrlError::Scheme("udp:1.2.3.4:5".into())
    );
    assert_eq!(
        bad("/dev/ttyACM0"),
        MavlinkUrlError::Scheme("/dev/ttyACM0".into())
    );
    assert_eq!(
        bad("udpin:0.0.0.0"),
        MavlinkUrlError::Address("udpin:0.0.0.0".into())
    );
    assert_eq!(
        bad("tcpout::5760"),
        MavlinkUrlError::Address("tcpout::5760".into())
    );
    assert_eq!(
        bad("udpout:h:70000"),
        MavlinkUrlError::Address("udpout:h:70000".into())
    );
    assert_eq!(
        bad("serial:/dev/ttyACM0:fast"),
        MavlinkUrlError::Serial("serial:/dev/ttyACM0:fast".into())
    );
    assert_eq!(
        bad("serial:/dev/ttyACM0"),
        MavlinkUrlError::Serial("serial:/dev/ttyACM0".into())
    );
}
