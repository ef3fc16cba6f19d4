//! The Rust side of `interop/messages.py`, which checks this crate against an independent
//! Python implementation (msgpack, lz4.frame, xxhash).
//!
//! - `interop write`: prints one line `LABEL HEX` per frame, a frame of every message type
//!   and every `cmd` op (the large `rssi` batch compressed), built from fixed values the
//!   Python script knows too.
//! - `interop read`: reads lines `LABEL HEX` (one frame each) from stdin and prints, per
//!   line, `LABEL ok KIND HEX` with the message re-encoded canonically, `LABEL unknown TYPE`,
//!   or `LABEL error FIELD MESSAGE` (`FIELD` is `-` when the error names none).
//!
//! Run from the repository root: `cargo run -q -p sarlink-schema --example interop -- write`.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use bytes::BytesMut;
use sarlink_schema::*;
use sarlink_wire::{DecoderConfig, EncoderConfig, FrameDecoder, FrameEncoder};

/// Record `i` of the 64-record batch; the Python script computes the same values.
fn batch_record(i: u32) -> RssiRecord {
    RssiRecord {
        timestamp_ns: 1_764_000_000_000_000_000
            + i64::from(i) * 100_000_000
            + i64::from(i * 7919 % 1000),
        rssi_dbm: Dbm::new(-80.0 + (i % 37) as f32 * 0.125).unwrap(),
        frequency_hz: FrequencyHz::new(406_025_000).unwrap(),
        source_id: SourceId::new((i % 3) as u8),
        quality_score: QualityScore::new((i * 13 % 101) as u8).unwrap(),
        snr_db: (i % 4 != 3).then(|| Db::new(10.0 + (i % 11) as f32 * 0.5).unwrap()),
        noise_dbm: (i % 5 != 4).then(|| Dbm::new(-90.0 - (i % 5) as f32 * 0.25).unwrap()),
        beacon: BeaconFields::NONE,
    }
}

/// Three protocol 1.1 records: every beacon key (a pulse ended in the window), the held keys
/// only, and a smoothed record from stale data; the Python script expects the same values.
fn beacon_records() -> Vec<RssiRecord> {
    let base = RssiRecord {
        timestamp_ns: 1_764_000_000_100_000_000,
        rssi_dbm: Dbm::new(-60.25).unwrap(),
        frequency_hz: FrequencyHz::new(148_525_000).unwrap(),
        source_id: SourceId::DRONE,
        quality_score: QualityScore::new(40).unwrap(),
        snr_db: Some(Db::new(4.5).unwrap()),
        noise_dbm: Some(Dbm::new(-66.0).unwrap()),
        beacon: BeaconFields {
            detected: Some(true),
            pulses: Some(1),
            pulse_dbm: Some(Dbm::new(-52.5).unwrap()),
            pulse_width_us: Some(20_125),
            pulse_start_ns: Some(1_764_000_000_042_000_000),
            pulse_interval_ms: Some(1_003),
            last_pulse_dbm: Some(Dbm::new(-52.5).unwrap()),
            last_pulse_age_ms: Some(38),
            burst: Some(false),
            offset_hz: Some(OffsetHz::new(-6_875.5).unwrap()),
            clip_fraction: Some(ClipFraction::new(0.0).unwrap()),
            smoothing: None,
            stale: None,
            lat_e7: Some(-338_651_234),
            lon_e7: Some(1_512_099_876),
            alt_m: Some(152.5),
            heading_deg: Some(271.25),
        },
    };
    let held = RssiRecord {
        timestamp_ns: 1_764_000_000_200_000_000,
        snr_db: None,
        beacon: BeaconFields {
            detected: Some(true),
            pulses: Some(0),
            last_pulse_dbm: Some(Dbm::new(-52.5).unwrap()),
            last_pulse_age_ms: Some(138),
            clip_fraction: Some(ClipFraction::new(0.25).unwrap()),
            ..BeaconFields::NONE
        },
        ..base
    };
    let made = RssiRecord {
        timestamp_ns: 1_764_000_000_300_000_000,
        rssi_dbm: Dbm::new(-61.0).unwrap(),
        snr_db: None,
        beacon: BeaconFields {
            smoothing: Some(0.25),
            stale: Some(true),
            ..BeaconFields::NONE
        },
        ..base
    };
    vec![base, held, made]
}

fn fixtures() -> Vec<(&'static str, Message)> {
    let record = RssiRecord {
        timestamp_ns: 1_764_000_000_000_000_000,
        rssi_dbm: Dbm::new(-71.5).unwrap(),
        frequency_hz: FrequencyHz::new(406_025_000).unwrap(),
        source_id: SourceId::DRONE,
        quality_score: QualityScore::new(87).unwrap(),
        snr_db: Some(Db::new(18.25).unwrap()),
        noise_dbm: Some(Dbm::new(-89.75).unwrap()),
        beacon: BeaconFields::NONE,
    };
    let node = |n: &str| NodeName::new(n).unwrap();
    vec![
        (
            "hello",
            Message::Hello(Hello {
                version: ProtocolVersion::V1_0,
                role: Role::Drone,
                node: node("drone-1"),
                stream: 0x1234_5678_9abc_def0,
                compression: vec!["lz4".into()],
                max_message: 16_777_216,
                nonce: Nonce(*b"0123456789abcdef"),
                rssi_units: Some(RssiUnits::Dbfs),
            }),
        ),
        (
            "challenge",
            Message::Challenge(Challenge {
                nonce: Nonce([0xa5; 16]),
            }),
        ),
        (
            "auth",
            Message::Auth(Auth {
                mac: Mac([0x3c; 32]),
            }),
        ),
        (
            "welcome",
            Message::Welcome(Welcome {
                version: ProtocolVersion::V1_0,
                node: node("ground-station"),
                compression: vec!["lz4".into()],
                max_message: 1_048_576,
                resume_seq: 1000,
                mac: Some(Mac([0x7e; 32])),
                rssi_units: Some(RssiUnits::Dbfs),
            }),
        ),
        (
            "reject",
            Message::Reject(Reject {
                code: CloseCode::Auth.into(),
                reason: "bad mac".into(),
            }),
        ),
        ("rssi", Message::Rssi(Rssi::single(42, record))),
        (
            "rssi_batch",
            Message::Rssi(Rssi::new(1000, (0..64).map(batch_record).collect()).unwrap()),
        ),
        (
            "rssi_beacon",
            Message::Rssi(Rssi::new(7, beacon_records()).unwrap()),
        ),
        ("rx", Message::Rx(Rx { seq: 1064 })),
        (
            "ping",
            Message::Ping(Ping {
                seq: 7,
                t_ns: 1_700_000_000_123_456_789,
            }),
        ),
        (
            "pong",
            Message::Pong(Pong {
                seq: 7,
                t_ns: 1_700_000_000_123_456_789,
            }),
        ),
        (
            "cmd_tune",
            Message::Cmd(Cmd {
                id: 1,
                target: Some(node("drone-1")),
                op: CmdOp::Tune {
                    frequency_hz: FrequencyHz::new(121_500_000).unwrap(),
                },
            }),
        ),
        (
            "cmd_gain",
            Message::Cmd(Cmd {
                id: 2,
                target: None,
                op: CmdOp::Gain { gain_db: 28.5 },
            }),
        ),
        (
            "cmd_gain_auto",
            Message::Cmd(Cmd {
                id: 3,
                target: None,
                op: CmdOp::GainAuto,
            }),
        ),
        (
            "cmd_rate",
            Message::Cmd(Cmd {
                id: 4,
                target: None,
                op: CmdOp::Rate { hz: 2.5 },
            }),
        ),
        (
            "cmd_stream",
            Message::Cmd(Cmd {
                id: 70_000,
                target: None,
                op: CmdOp::Stream { on: true },
            }),
        ),
        ("ack_ok", Message::Ack(Ack::ok(1))),
        (
            "ack_refused",
            Message::Ack(Ack::refuse(2, AckCode::Range, "gain above 49.6 dB")),
        ),
        (
            "status",
            Message::Status(Status {
                t_ns: -5,
                cpu_pct: 37.5,
                mem_bytes: 5_000_000_000,
                temp_c: Some(61.25),
                level: "degraded".into(),
                disabled: vec!["spectrum".into(), "raw_iq".into()],
                dropped: 3,
                queued: 300,
                rate_hz: 10.0,
                source: Some("stale".into()),
                data_age_ms: Some(1_500),
                alerts: vec!["link_rtt:critical".into(), "cpu:warning".into()],
            }),
        ),
        (
            "decision",
            Message::Decision(Decision {
                t_ns: 1_764_000_000_600_000_000,
                source_id: SourceId::GROUND,
                fallback: true,
                reason: "drone link lost".into(),
                score_drone: None,
                score_ground: Some(0.75),
            }),
        ),
        (
            "bye",
            Message::Bye(Bye {
                code: CloseCode::Shutdown.into(),
                reason: "operator".into(),
            }),
        ),
    ]
}

fn write() -> io::Result<()> {
    // Compression on (as after a handshake that agreed on LZ4): only the large batch exceeds
    // the 1,024-byte threshold.
    let mut encoder = FrameEncoder::new(EncoderConfig::default());
    let mut out = io::stdout().lock();
    for (label, msg) in fixtures() {
        let mut frame = BytesMut::new();
        encode_frame(&msg, &mut encoder, &mut frame).map_err(io::Error::other)?;
        writeln!(out, "{label} {}", hex::encode(&frame))?;
    }
    Ok(())
}

fn read() -> io::Result<()> {
    let mut out = io::stdout().lock();
    for line in io::stdin().lock().lines() {
        let line = line?;
        let Some((label, frame_hex)) = line.split_once(' ') else {
            continue;
        };
        let frame = hex::decode(frame_hex.trim()).map_err(io::Error::other)?;
        // A fresh decoder per frame: one bad frame must not poison the next line.
        let mut decoder = FrameDecoder::new(DecoderConfig::default().accept_compressed(true));
        let mut src = BytesMut::from(&frame[..]);
        match decode_frame(&mut decoder, &mut src) {
            Ok(Some(Message::Unknown(u))) => writeln!(out, "{label} unknown {}", u.type_name)?,
            Ok(Some(msg)) => {
                writeln!(
                    out,
                    "{label} ok {} {}",
                    msg.kind(),
                    hex::encode(msg.encode_to_vec())
                )?;
            }
            Ok(None) => writeln!(out, "{label} error - incomplete frame")?,
            Err(ReadError::Message(err)) => {
                writeln!(out, "{label} error {} {err}", err.field().unwrap_or("-"))?;
            }
            Err(err) => writeln!(out, "{label} error - {err}")?,
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let result = match std::env::args().nth(1).as_deref() {
        Some("write") => write(),
        Some("read") => read(),
        _ => {
            eprintln!("usage: interop write | interop read < frames");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("interop: {err}");
            ExitCode::FAILURE
        }
    }
}
