//! Drone safety authority over ground commands and concurrent frequency requests.

use std::time::Duration;

use sarlink_coord::{
    CommandOp, Config, Coordinator, FrequencyRequest, Origin, Refusal, SafetyLevel, SafetyState,
    resolve_frequency,
};
use sarlink_schema::{AckCode, Cmd, CmdOp, FrequencyHz};

const OPS: [CommandOp; 5] = [
    CommandOp::Tune,
    CommandOp::Gain,
    CommandOp::GainAuto,
    CommandOp::Rate,
    CommandOp::Stream,
];

/// The documented conflict table, row by level, columns in `OPS` order.
const TABLE: [(SafetyLevel, [bool; 5]); 7] = [
    (SafetyLevel::EmergencyStop, [true, true, true, true, true]),
    (SafetyLevel::FlightMode, [true, true, true, false, true]),
    (SafetyLevel::Geofence, [true, false, false, false, false]),
    (SafetyLevel::Battery, [true, false, false, true, false]),
    (SafetyLevel::Communication, [true, false, false, true, true]),
    (SafetyLevel::Signal, [true, true, true, false, false]),
    (SafetyLevel::Resources, [false, false, false, true, false]),
];

#[test]
fn each_level_refuses_exactly_its_conflicting_commands_with_safety() {
    for (level, row) in TABLE {
        let state = SafetyState::NOMINAL.with(level);
        for (op, refused) in OPS.into_iter().zip(row) {
            let got = state.authorize(op);
            if refused {
                let refusal = got.unwrap_err();
                assert_eq!(refusal, Refusal::Safety { level, op });
                assert_eq!(refusal.code(), "safety");
            } else {
                assert_eq!(got, Ok(()), "{level} must allow {}", op.as_str());
            }
        }
    }
}

#[test]
fn nominal_state_allows_every_command() {
    for op in OPS {
        assert_eq!(SafetyState::NOMINAL.authorize(op), Ok(()));
    }
}

#[test]
fn refusal_names_the_highest_conflicting_level() {
    let state = SafetyState::NOMINAL
        .with(SafetyLevel::Geofence)
        .with(SafetyLevel::Signal);
    // Geofence outranks signal but does not conflict with gain; signal does.
    assert_eq!(
        state.authorize(CommandOp::Gain),
        Err(Refusal::Safety {
            level: SafetyLevel::Signal,
            op: CommandOp::Gain
        })
    );
    assert_eq!(
        state.authorize(CommandOp::Tune),
        Err(Refusal::Safety {
            level: SafetyLevel::Geofence,
            op: CommandOp::Tune
        })
    );
    let text = state.authorize(CommandOp::Tune).unwrap_err().to_string();
    assert_eq!(text, "tune refused: drone safety level geofence is active");
}

#[test]
fn coordinator_applies_its_safety_state() {
    let mut c = Coordinator::new(Config::default()).unwrap();
    assert!(c.authorize(CommandOp::Stream).is_ok());
    c.set_safety(
        SafetyState::NOMINAL.with(SafetyLevel::Communication),
        Duration::ZERO,
    );
    assert_eq!(c.authorize(CommandOp::Stream).unwrap_err().code(), "safety");
}

fn req(hz: u64, at_ms: u64) -> FrequencyRequest {
    FrequencyRequest {
        frequency_hz: FrequencyHz::new(hz).unwrap(),
        issued_at: Duration::from_millis(at_ms),
    }
}

#[test]
fn in_a_safety_state_the_drone_frequency_wins_even_if_older() {
    let safety = SafetyState::NOMINAL.with(SafetyLevel::Battery);
    let r = resolve_frequency(safety, req(406_025_000, 100), req(406_040_000, 900));
    assert_eq!(r.winner, Origin::Drone);
    assert_eq!(r.frequency_hz.get(), 406_025_000);
    assert_eq!(
        r.ground_refusal,
        Some(Refusal::Safety {
            level: SafetyLevel::Battery,
            op: CommandOp::Tune
        })
    );
    assert_eq!(r.ground_refusal.map(|x| x.code()), Some("safety"));
}

#[test]
fn otherwise_the_newest_frequency_wins() {
    let nominal = SafetyState::NOMINAL;
    let ground_newer = resolve_frequency(nominal, req(406_025_000, 100), req(406_040_000, 101));
    assert_eq!(
        (ground_newer.winner, ground_newer.frequency_hz.get()),
        (Origin::Ground, 406_040_000)
    );
    assert_eq!(ground_newer.ground_refusal, None);

    let drone_newer = resolve_frequency(nominal, req(406_025_000, 101), req(406_040_000, 100));
    assert_eq!(
        (drone_newer.winner, drone_newer.frequency_hz.get()),
        (Origin::Drone, 406_025_000)
    );
    assert_eq!(drone_newer.ground_refusal.map(|x| x.code()), Some("busy"));
}

#[test]
fn frequency_ties_go_to_the_drone() {
    let c = Coordinator::new(Config::default()).unwrap();
    let r = c.resolve_frequency(req(406_025_000, 500), req(406_040_000, 500));
    assert_eq!(
        (r.winner, r.frequency_hz.get()),
        (Origin::Drone, 406_025_000)
    );
    assert_eq!(
        r.ground_refusal,
        Some(Refusal::Superseded {
            op: CommandOp::Tune
        })
    );
}

#[test]
fn conflicting_ground_cmd_becomes_a_safety_ack() {
    let mut c = Coordinator::new(Config::default()).unwrap();
    c.set_safety(
        SafetyState::NOMINAL.with(SafetyLevel::EmergencyStop),
        Duration::ZERO,
    );
    let cmd = Cmd {
        id: 42,
        target: None,
        op: CmdOp::Stream { on: false },
    };
    let ack = c.safety().authorize_cmd(&cmd).unwrap_err().to_ack(cmd.id);
    assert_eq!(
        (ack.id, ack.ok, ack.code),
        (42, false, Some(AckCode::Safety))
    );
    assert_eq!(
        ack.reason.as_deref(),
        Some("stream refused: drone safety level emergency_stop is active")
    );
}
