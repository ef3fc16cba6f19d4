//! Shared helpers for the integration tests: a MessagePack builder written with `rmp`'s
//! writer functions (independent of the crate's encoder), proptest strategies for every
//! message, and payload rewriters (split, widen).
#![allow(dead_code, unreachable_pub)]

use proptest::prelude::*;
use rmp::Marker;
use sarlink_schema::*;

/// A MessagePack value to build test payloads from.
#[derive(Debug, Clone)]
pub enum V {
    Nil,
    Bool(bool),
    /// Written in the most compact form by `rmp`.
    UInt(u64),
    /// Written in the most compact form by `rmp`.
    Int(i64),
    /// Always the 9-byte uint 64 form.
    WideUInt(u64),
    /// Always the 9-byte int 64 form.
    WideInt(i64),
    F32(f32),
    F64(f64),
    Str(String),
    Bin(Vec<u8>),
    Arr(Vec<V>),
    Map(Vec<(V, V)>),
    /// Bytes written as they are.
    Raw(Vec<u8>),
}

pub fn s(text: &str) -> V {
    V::Str(text.to_owned())
}

impl V {
    pub fn write(&self, out: &mut Vec<u8>) {
        use rmp::encode::*;
        match self {
            V::Nil => write_nil(out).unwrap(),
            V::Bool(b) => write_bool(out, *b).unwrap(),
            V::UInt(v) => {
                write_uint(out, *v).unwrap();
            }
            V::Int(v) => {
                write_sint(out, *v).unwrap();
            }
            V::WideUInt(v) => write_u64(out, *v).unwrap(),
            V::WideInt(v) => write_i64(out, *v).unwrap(),
            V::F32(v) => write_f32(out, *v).unwrap(),
            V::F64(v) => write_f64(out, *v).unwrap(),
            V::Str(v) => write_str(out, v).unwrap(),
            V::Bin(v) => write_bin(out, v).unwrap(),
            V::Arr(items) => {
                write_array_len(out, items.len() as u32).unwrap();
                for item in items {
                    item.write(out);
                }
            }
            V::Map(entries) => {
                write_map_len(out, entries.len() as u32).unwrap();
                for (k, v) in entries {
                    k.write(out);
                    v.write(out);
                }
            }
            V::Raw(bytes) => out.extend_from_slice(bytes),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }
}

/// A map with string keys, in the order given.
pub fn map(entries: &[(&str, V)]) -> V {
    V::Map(entries.iter().map(|(k, v)| (s(k), v.clone())).collect())
}

/// Encodes a map with string keys.
pub fn payload(entries: &[(&str, V)]) -> Vec<u8> {
    map(entries).bytes()
}

/// Replaces the value of `key` (which must be present).
pub fn with(entries: &[(&'static str, V)], key: &str, value: V) -> Vec<(&'static str, V)> {
    let mut out = entries.to_vec();
    let slot = out
        .iter_mut()
        .find(|(k, _)| *k == key)
        .expect("key present");
    slot.1 = value;
    out
}

/// Removes `key` (which must be present).
pub fn without(entries: &[(&'static str, V)], key: &str) -> Vec<(&'static str, V)> {
    assert!(entries.iter().any(|(k, _)| *k == key), "key present");
    entries.iter().filter(|(k, _)| *k != key).cloned().collect()
}

// ---------------------------------------------------------------------------------------
// Rewriting payloads: a minimal walker over MessagePack values, written for the tests.

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

/// Length of the value starting at `buf[pos]`, in bytes. Panics on malformed input.
pub fn value_len(buf: &[u8], pos: usize) -> usize {
    let m = Marker::from_u8(buf[pos]);
    let at = pos + 1;
    let (header, data, children) = match m {
        Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
            (0, 0, 0)
        }
        Marker::U8 | Marker::I8 => (0, 1, 0),
        Marker::U16 | Marker::I16 => (0, 2, 0),
        Marker::U32 | Marker::I32 | Marker::F32 => (0, 4, 0),
        Marker::U64 | Marker::I64 | Marker::F64 => (0, 8, 0),
        Marker::FixStr(n) => (0, n as usize, 0),
        Marker::Str8 | Marker::Bin8 => (1, be(&buf[at..at + 1]) as usize, 0),
        Marker::Str16 | Marker::Bin16 => (2, be(&buf[at..at + 2]) as usize, 0),
        Marker::Str32 | Marker::Bin32 => (4, be(&buf[at..at + 4]) as usize, 0),
        Marker::FixArray(n) => (0, 0, n as usize),
        Marker::Array16 => (2, 0, be(&buf[at..at + 2]) as usize),
        Marker::Array32 => (4, 0, be(&buf[at..at + 4]) as usize),
        Marker::FixMap(n) => (0, 0, 2 * n as usize),
        Marker::Map16 => (2, 0, 2 * be(&buf[at..at + 2]) as usize),
        Marker::Map32 => (4, 0, 2 * be(&buf[at..at + 4]) as usize),
        other => panic!("unexpected marker {other:?} in a test payload"),
    };
    let mut end = at + header + data;
    for _ in 0..children {
        end += value_len(buf, end);
    }
    end - pos
}

/// The entries of the top-level map of `payload`, each as its raw key+value bytes.
pub fn split_map(payload: &[u8]) -> Vec<Vec<u8>> {
    let (count, mut pos) = match Marker::from_u8(payload[0]) {
        Marker::FixMap(n) => (n as usize, 1),
        Marker::Map16 => (be(&payload[1..3]) as usize, 3),
        Marker::Map32 => (be(&payload[1..5]) as usize, 5),
        other => panic!("not a map: {other:?}"),
    };
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let key_len = value_len(payload, pos);
        let len = key_len + value_len(payload, pos + key_len);
        entries.push(payload[pos..pos + len].to_vec());
        pos += len;
    }
    assert_eq!(pos, payload.len());
    entries
}

/// A map made of raw entries (as from [`split_map`]), with a map 32 header.
pub fn join_map(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![0xdf];
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        out.extend_from_slice(e);
    }
    out
}

/// Rewrites a payload with every value in its widest form: integers as uint 64 / int 64,
/// float 32 as float 64 (exact), strings as str 32, binaries as bin 32, arrays and maps with
/// 32-bit headers. Decoders must read it as the same message.
pub fn widen(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let end = widen_value(payload, 0, &mut out);
    assert_eq!(end, payload.len());
    out
}

fn widen_value(buf: &[u8], pos: usize, out: &mut Vec<u8>) -> usize {
    let m = Marker::from_u8(buf[pos]);
    let at = pos + 1;
    let uint = |out: &mut Vec<u8>, v: u64| {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    };
    let sint = |out: &mut Vec<u8>, v: i64| {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    };
    let bytes = |out: &mut Vec<u8>, marker: u8, data: &[u8]| {
        out.push(marker);
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
    };
    match m {
        Marker::FixPos(v) => {
            uint(out, u64::from(v));
            at
        }
        Marker::U8 | Marker::U16 | Marker::U32 | Marker::U64 => {
            let n = match m {
                Marker::U8 => 1,
                Marker::U16 => 2,
                Marker::U32 => 4,
                _ => 8,
            };
            uint(out, be(&buf[at..at + n]));
            at + n
        }
        Marker::FixNeg(v) => {
            sint(out, i64::from(v));
            at
        }
        Marker::I8 => {
            sint(out, i64::from(buf[at] as i8));
            at + 1
        }
        Marker::I16 => {
            sint(out, i64::from(be(&buf[at..at + 2]) as u16 as i16));
            at + 2
        }
        Marker::I32 => {
            sint(out, i64::from(be(&buf[at..at + 4]) as u32 as i32));
            at + 4
        }
        Marker::I64 => {
            sint(out, be(&buf[at..at + 8]) as i64);
            at + 8
        }
        Marker::F32 => {
            let v = f32::from_bits(be(&buf[at..at + 4]) as u32);
            out.push(0xcb);
            out.extend_from_slice(&f64::from(v).to_bits().to_be_bytes());
            at + 4
        }
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
            let len = value_len(buf, pos);
            let header = match m {
                Marker::FixStr(_) => 1,
                Marker::Str8 => 2,
                Marker::Str16 => 3,
                _ => 5,
            };
            bytes(out, 0xdb, &buf[pos + header..pos + len]);
            pos + len
        }
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
            let len = value_len(buf, pos);
            let header = match m {
                Marker::Bin8 => 2,
                Marker::Bin16 => 3,
                _ => 5,
            };
            bytes(out, 0xc6, &buf[pos + header..pos + len]);
            pos + len
        }
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
            let (n, mut p) = match m {
                Marker::FixArray(n) => (n as usize, at),
                Marker::Array16 => (be(&buf[at..at + 2]) as usize, at + 2),
                _ => (be(&buf[at..at + 4]) as usize, at + 4),
            };
            out.push(0xdd);
            out.extend_from_slice(&(n as u32).to_be_bytes());
            for _ in 0..n {
                p = widen_value(buf, p, out);
            }
            p
        }
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
            let (n, mut p) = match m {
                Marker::FixMap(n) => (n as usize, at),
                Marker::Map16 => (be(&buf[at..at + 2]) as usize, at + 2),
                _ => (be(&buf[at..at + 4]) as usize, at + 4),
            };
            out.push(0xdf);
            out.extend_from_slice(&(n as u32).to_be_bytes());
            for _ in 0..2 * n {
                p = widen_value(buf, p, out);
            }
            p
        }
        Marker::Null | Marker::True | Marker::False => {
            out.push(buf[pos]);
            at
        }
        other => panic!("unexpected marker {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Fixtures.

/// The spec's one-record golden `rssi` record.
pub fn golden_record() -> RssiRecord {
    RssiRecord {
        timestamp_ns: 1_764_000_000_000_000_000,
        rssi_dbm: Dbm::new(-71.5).unwrap(),
        frequency_hz: FrequencyHz::new(406_025_000).unwrap(),
        source_id: SourceId::DRONE,
        quality_score: QualityScore::new(87).unwrap(),
        snr_db: Some(Db::new(18.25).unwrap()),
        noise_dbm: Some(Dbm::new(-89.75).unwrap()),
        beacon: BeaconFields::NONE,
    }
}

/// One message of every kind (and every cmd op).
pub fn one_of_each() -> Vec<Message> {
    let node = NodeName::new("drone-1").unwrap();
    vec![
        Message::Hello(Hello {
            version: ProtocolVersion::V1_0,
            role: Role::Drone,
            node: node.clone(),
            stream: 0x1234_5678_9abc_def0,
            compression: vec!["lz4".into()],
            max_message: 16 * 1024 * 1024,
            nonce: Nonce([7; 16]),
            rssi_units: Some(RssiUnits::Dbfs),
        }),
        Message::Challenge(Challenge {
            nonce: Nonce([9; 16]),
        }),
        Message::Auth(Auth { mac: Mac([1; 32]) }),
        Message::Welcome(Welcome {
            version: ProtocolVersion::V1_0,
            node: NodeName::new("ground").unwrap(),
            compression: vec!["lz4".into()],
            max_message: 1 << 20,
            resume_seq: 1000,
            mac: Some(Mac([2; 32])),
            rssi_units: None,
        }),
        Message::Reject(Reject {
            code: CloseCode::Auth.into(),
            reason: "bad mac".into(),
        }),
        Message::Rssi(Rssi::single(42, golden_record())),
        Message::Rx(Rx { seq: 43 }),
        Message::Ping(Ping {
            seq: 7,
            t_ns: 1_700_000_000_123_456_789,
        }),
        Message::Pong(Pong {
            seq: 7,
            t_ns: 1_700_000_000_123_456_789,
        }),
        Message::Cmd(Cmd {
            id: 1,
            target: Some(node.clone()),
            op: CmdOp::Tune {
                frequency_hz: FrequencyHz::new(121_500_000).unwrap(),
            },
        }),
        Message::Cmd(Cmd {
            id: 2,
            target: None,
            op: CmdOp::Gain { gain_db: 28.0 },
        }),
        Message::Cmd(Cmd {
            id: 3,
            target: None,
            op: CmdOp::GainAuto,
        }),
        Message::Cmd(Cmd {
            id: 4,
            target: None,
            op: CmdOp::Rate { hz: 10.0 },
        }),
        Message::Cmd(Cmd {
            id: 5,
            target: None,
            op: CmdOp::Stream { on: false },
        }),
        Message::Ack(Ack::refuse(1, AckCode::Range, "out of tuner range")),
        Message::Status(Status {
            t_ns: 1_764_000_000_500_000_000,
            cpu_pct: 37.5,
            mem_bytes: 123_456_789,
            temp_c: Some(61.25),
            level: "normal".into(),
            disabled: vec!["spectrum".into()],
            dropped: 3,
            queued: 12,
            rate_hz: 10.0,
            source: None,
            data_age_ms: None,
            alerts: vec![],
        }),
        Message::Decision(Decision {
            t_ns: 1_764_000_000_600_000_000,
            source_id: SourceId::GROUND,
            fallback: true,
            reason: "drone link lost".into(),
            score_drone: None,
            score_ground: Some(0.75),
        }),
        Message::Bye(Bye {
            code: CloseCode::Shutdown.into(),
            reason: "operator".into(),
        }),
    ]
}

// ---------------------------------------------------------------------------------------
// Strategies. Floats are finite here (NaN breaks `==`); NaN in the fields that allow it is
// covered by byte comparisons in the tests.

pub fn any_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        -200.0f32..200.0,
        Just(0.0f32),
        Just(-0.0f32),
        Just(f32::MAX),
        Just(f32::MIN_POSITIVE),
        prop::num::f32::NORMAL,
        prop::num::f32::SUBNORMAL,
    ]
}

pub fn any_text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z_]{0,12}", ".{0,40}", "[a-z]{250,300}"]
}

pub fn any_node() -> impl Strategy<Value = NodeName> {
    "[a-z0-9-]{1,64}".prop_map(|n| NodeName::new(n).unwrap())
}

pub fn any_version() -> impl Strategy<Value = ProtocolVersion> {
    (any::<u16>(), any::<u16>()).prop_map(|(major, minor)| ProtocolVersion { major, minor })
}

pub fn any_int() -> impl Strategy<Value = i64> {
    prop_oneof![any::<i64>(), -200i64..200, Just(i64::MIN), Just(i64::MAX)]
}

pub fn any_u64() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), 0u64..300, Just(u64::MAX)]
}

/// Protocol 1.1 record keys (beacon, smoothing, staleness), each present or not, with values anywhere in their ranges.
pub fn any_beacon() -> BoxedStrategy<BeaconFields> {
    use proptest::option::of;
    (
        (
            of(any::<bool>()),
            of(any::<u32>()),
            of(any_f32()),
            of(any::<u32>()),
        ),
        (
            of(any_int()),
            of(any::<u32>()),
            of(any_f32()),
            of(any::<u32>()),
        ),
        (
            of(any::<bool>()),
            of(any_f32()),
            of(0.0f32..=1.0),
            of(0.001f32..=1.0),
            of(any::<bool>()),
        ),
        (
            of(-900_000_000i32..=900_000_000),
            of(-1_800_000_000i32..=1_800_000_000),
            of(-500.0f32..9000.0),
            of(0.0f32..360.0),
        ),
    )
        .prop_map(|(a, b, c, g)| BeaconFields {
            detected: a.0,
            pulses: a.1,
            pulse_dbm: a.2.map(|v| Dbm::new(v).unwrap()),
            pulse_width_us: a.3,
            pulse_start_ns: b.0,
            pulse_interval_ms: b.1,
            last_pulse_dbm: b.2.map(|v| Dbm::new(v).unwrap()),
            last_pulse_age_ms: b.3,
            burst: c.0,
            offset_hz: c.1.map(|v| OffsetHz::new(v).unwrap()),
            clip_fraction: c.2.map(|v| ClipFraction::new(v).unwrap()),
            smoothing: c.3,
            stale: c.4,
            lat_e7: g.0,
            lon_e7: g.1,
            alt_m: g.2,
            heading_deg: g.3,
        })
        // Boxed: the nested tuple types otherwise overflow the stack of a debug build.
        .boxed()
}

pub fn any_record() -> BoxedStrategy<RssiRecord> {
    (
        any_int(),
        any_f32(),
        1u64..=u64::MAX,
        any::<u8>(),
        0u8..=100,
        proptest::option::of(any_f32()),
        proptest::option::of(any_f32()),
        prop_oneof![Just(BeaconFields::NONE), any_beacon()],
    )
        .prop_map(
            |(ts, rssi, hz, source, quality, snr, noise, beacon)| RssiRecord {
                timestamp_ns: ts,
                rssi_dbm: Dbm::new(rssi).unwrap(),
                frequency_hz: FrequencyHz::new(hz).unwrap(),
                source_id: SourceId::new(source),
                quality_score: QualityScore::new(quality).unwrap(),
                snr_db: snr.map(|v| Db::new(v).unwrap()),
                noise_dbm: noise.map(|v| Dbm::new(v).unwrap()),
                beacon,
            },
        )
        .boxed()
}

fn any_wire_code() -> impl Strategy<Value = WireCode> {
    prop_oneof![
        (0..CloseCode::ALL.len()).prop_map(|i| WireCode::Known(CloseCode::ALL[i])),
        "[a-z_]{0,12}".prop_map(|s| WireCode::from_wire(&s)),
    ]
}

fn any_op() -> impl Strategy<Value = CmdOp> {
    prop_oneof![
        (1u64..=u64::MAX).prop_map(|hz| CmdOp::Tune {
            frequency_hz: FrequencyHz::new(hz).unwrap()
        }),
        any_f32().prop_map(|gain_db| CmdOp::Gain { gain_db }),
        Just(CmdOp::GainAuto),
        any_f32().prop_map(|hz| CmdOp::Rate { hz }),
        any::<bool>().prop_map(|on| CmdOp::Stream { on }),
        "[a-z_]{0,12}"
            .prop_filter("not a known op", |op| {
                !["tune", "gain", "gain_auto", "rate", "stream"].contains(&op.as_str())
            })
            .prop_map(|op| CmdOp::Unknown { op }),
    ]
}

pub fn any_hello() -> impl Strategy<Value = Message> {
    (
        any_version(),
        prop_oneof![Just(Role::Drone), Just(Role::Ground), Just(Role::Observer)],
        any_node(),
        any_u64(),
        prop::collection::vec(any_text(), 0..4),
        any::<u32>(),
        any::<[u8; 16]>(),
        proptest::option::of(prop_oneof![Just(RssiUnits::Dbm), Just(RssiUnits::Dbfs)]),
    )
        .prop_map(
            |(version, role, node, stream, compression, max_message, nonce, rssi_units)| {
                Message::Hello(Hello {
                    version,
                    role,
                    node,
                    stream,
                    compression,
                    max_message,
                    nonce: Nonce(nonce),
                    rssi_units,
                })
            },
        )
}

pub fn any_welcome() -> impl Strategy<Value = Message> {
    (
        any_version(),
        any_node(),
        prop::collection::vec(any_text(), 0..4),
        any::<u32>(),
        any_u64(),
        proptest::option::of(any::<[u8; 32]>()),
    )
        .prop_map(
            |(version, node, compression, max_message, resume_seq, mac)| {
                Message::Welcome(Welcome {
                    version,
                    node,
                    compression,
                    max_message,
                    resume_seq,
                    mac: mac.map(Mac),
                    rssi_units: None,
                })
            },
        )
}

pub fn any_rssi() -> impl Strategy<Value = Message> {
    (any_u64(), prop::collection::vec(any_record(), 1..40))
        .prop_map(|(seq, samples)| Message::Rssi(Rssi::new(seq, samples).unwrap()))
}

pub fn any_cmd() -> impl Strategy<Value = Message> {
    (any::<u32>(), proptest::option::of(any_node()), any_op())
        .prop_map(|(id, target, op)| Message::Cmd(Cmd { id, target, op }))
}

pub fn any_ack() -> impl Strategy<Value = Message> {
    (
        any::<u32>(),
        any::<bool>(),
        proptest::option::of("[a-z_]{0,12}".prop_map(|s| AckCode::from_wire(&s))),
        proptest::option::of(any_text()),
    )
        .prop_map(|(id, ok, code, reason)| {
            Message::Ack(Ack {
                id,
                ok,
                code,
                reason,
            })
        })
}

pub fn any_status() -> impl Strategy<Value = Message> {
    (
        (
            any_int(),
            any_f32(),
            any_u64(),
            proptest::option::of(any_f32()),
        ),
        (
            any_text(),
            prop::collection::vec(any_text(), 0..5),
            any_u64(),
            any::<u32>(),
            any_f32(),
        ),
    )
        .prop_map(
            |((t_ns, cpu_pct, mem_bytes, temp_c), (level, disabled, dropped, queued, rate_hz))| {
                Message::Status(Status {
                    t_ns,
                    cpu_pct,
                    mem_bytes,
                    temp_c,
                    level,
                    dropped,
                    queued,
                    rate_hz,
                    source: (queued % 3 == 1).then(|| "reconnecting".to_owned()),
                    data_age_ms: (queued % 2 == 1).then_some(queued / 2),
                    alerts: if queued % 4 == 3 {
                        disabled.clone()
                    } else {
                        Vec::new()
                    },
                    disabled,
                })
            },
        )
}

pub fn any_decision() -> impl Strategy<Value = Message> {
    (
        any_int(),
        any::<u8>(),
        any::<bool>(),
        any_text(),
        proptest::option::of(any_f32()),
        proptest::option::of(any_f32()),
    )
        .prop_map(
            |(t_ns, source, fallback, reason, score_drone, score_ground)| {
                Message::Decision(Decision {
                    t_ns,
                    source_id: SourceId::new(source),
                    fallback,
                    reason,
                    score_drone,
                    score_ground,
                })
            },
        )
}

pub fn any_small() -> impl Strategy<Value = Message> {
    prop_oneof![
        any::<[u8; 16]>().prop_map(|n| Message::Challenge(Challenge { nonce: Nonce(n) })),
        any::<[u8; 32]>().prop_map(|m| Message::Auth(Auth { mac: Mac(m) })),
        (any_wire_code(), any_text())
            .prop_map(|(code, reason)| Message::Reject(Reject { code, reason })),
        (any_wire_code(), any_text()).prop_map(|(code, reason)| Message::Bye(Bye { code, reason })),
        any_u64().prop_map(|seq| Message::Rx(Rx { seq })),
        (any::<u32>(), any_int()).prop_map(|(seq, t_ns)| Message::Ping(Ping { seq, t_ns })),
        (any::<u32>(), any_int()).prop_map(|(seq, t_ns)| Message::Pong(Pong { seq, t_ns })),
        "[a-z_]{0,12}"
            .prop_filter("not a known type", |t| {
                sarlink_schema::MessageKind::from_wire(t).is_none()
            })
            .prop_map(|type_name| Message::Unknown(UnknownMessage { type_name })),
    ]
}

/// Any message of any kind.
pub fn any_message() -> impl Strategy<Value = Message> {
    // Boxed arms: their value trees inline would overflow the stack of a debug build.
    prop_oneof![
        any_hello().boxed(),
        any_welcome().boxed(),
        any_rssi().boxed(),
        any_cmd().boxed(),
        any_ack().boxed(),
        any_status().boxed(),
        any_decision().boxed(),
        any_small().boxed(),
    ]
}
