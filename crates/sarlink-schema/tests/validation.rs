//! Every validation rule: the error it gives and the field it names. Also the tolerant
//! side: what decoders must accept.

mod common;

use common::*;
use sarlink_schema::*;

type Entries = Vec<(&'static str, V)>;

fn record() -> Entries {
    vec![
        ("timestamp_ns", V::UInt(1_764_000_000_000_000_000)),
        ("rssi_dbm", V::F32(-71.5)),
        ("frequency_hz", V::UInt(406_025_000)),
        ("source_id", V::UInt(0)),
        ("quality_score", V::UInt(87)),
        ("snr_db", V::F32(18.25)),
        ("noise_dbm", V::F32(-89.75)),
    ]
}

fn rssi_with_record(rec: &[(&str, V)]) -> Vec<u8> {
    payload(&[
        ("type", s("rssi")),
        ("seq", V::UInt(42)),
        ("samples", V::Arr(vec![map(rec)])),
    ])
}

fn hello() -> Entries {
    vec![
        ("type", s("hello")),
        ("proto", s("sarlink")),
        ("version", V::Arr(vec![V::UInt(1), V::UInt(0)])),
        ("role", s("drone")),
        ("node", s("drone-1")),
        ("stream", V::UInt(99)),
        ("compression", V::Arr(vec![s("lz4")])),
        ("max_message", V::UInt(1 << 24)),
        ("nonce", V::Bin(vec![7; 16])),
    ]
}

fn welcome() -> Entries {
    vec![
        ("type", s("welcome")),
        ("version", V::Arr(vec![V::UInt(1), V::UInt(0)])),
        ("node", s("ground")),
        ("compression", V::Arr(vec![])),
        ("max_message", V::UInt(1 << 20)),
        ("resume_seq", V::UInt(0)),
        ("mac", V::Bin(vec![1; 32])),
    ]
}

fn status() -> Entries {
    vec![
        ("type", s("status")),
        ("t_ns", V::Int(5)),
        ("cpu_pct", V::F32(12.5)),
        ("mem_bytes", V::UInt(1000)),
        ("temp_c", V::F32(50.0)),
        ("level", s("normal")),
        ("disabled", V::Arr(vec![])),
        ("dropped", V::UInt(0)),
        ("queued", V::UInt(0)),
        ("rate_hz", V::F32(10.0)),
    ]
}

fn decision() -> Entries {
    vec![
        ("type", s("decision")),
        ("t_ns", V::Int(5)),
        ("source_id", V::UInt(1)),
        ("fallback", V::Bool(false)),
        ("reason", s("better snr")),
        ("score_drone", V::F32(0.5)),
    ]
}

fn cmd(op: &str, extra: &[(&'static str, V)]) -> Entries {
    let mut e = vec![("type", s("cmd")), ("id", V::UInt(9)), ("op", s(op))];
    e.extend_from_slice(extra);
    e
}

fn ack() -> Entries {
    vec![
        ("type", s("ack")),
        ("id", V::UInt(9)),
        ("ok", V::Bool(false)),
        ("code", s("busy")),
    ]
}

#[track_caller]
fn missing(bytes: &[u8], message: &str, field: &str) {
    match Message::decode(bytes) {
        Err(DecodeError::MissingField {
            message: m,
            field: f,
        }) => {
            assert_eq!((m, f), (message, field));
        }
        other => panic!("expected `{message}.{field}` missing, got {other:?}"),
    }
}

#[track_caller]
fn out_of_range(bytes: &[u8], message: &str, field: &str) {
    match Message::decode(bytes) {
        Err(
            err @ DecodeError::InvalidField {
                problem: FieldProblem::OutOfRange { .. },
                ..
            },
        ) => {
            let DecodeError::InvalidField {
                message: m,
                field: f,
                ..
            } = err
            else {
                unreachable!()
            };
            assert_eq!((m, f), (message, field), "{err}");
        }
        other => panic!("expected `{message}.{field}` out of range, got {other:?}"),
    }
}

#[track_caller]
fn wrong_type(bytes: &[u8], message: &str, field: &str, expected: &str) {
    match Message::decode(bytes) {
        Err(DecodeError::InvalidField {
            message: m,
            field: f,
            problem: FieldProblem::WrongType { expected: e, .. },
        }) => assert_eq!((m, f, e), (message, field, expected)),
        other => panic!("expected `{message}.{field}` of the wrong type, got {other:?}"),
    }
}

#[track_caller]
fn duplicate(bytes: &[u8], message: &str, field: &str) {
    match Message::decode(bytes) {
        Err(DecodeError::InvalidField {
            message: m,
            field: f,
            problem: FieldProblem::Duplicate,
        }) => {
            assert_eq!((m, f), (message, field));
        }
        other => panic!("expected a duplicate `{message}.{field}`, got {other:?}"),
    }
}

// ----- the RSSI record -----

#[test]
fn the_base_fixtures_are_valid() {
    for p in [
        rssi_with_record(&record()),
        payload(&hello()),
        payload(&welcome()),
        payload(&status()),
        payload(&decision()),
        payload(&cmd("tune", &[("frequency_hz", V::UInt(1))])),
        payload(&ack()),
    ] {
        Message::decode(&p).unwrap();
    }
}

#[test]
fn record_requires_its_five_keys() {
    for key in [
        "timestamp_ns",
        "rssi_dbm",
        "frequency_hz",
        "source_id",
        "quality_score",
    ] {
        missing(
            &rssi_with_record(&without(&record(), key)),
            "rssi.samples",
            key,
        );
    }
    // The two optional keys may be absent.
    let msg = Message::decode(&rssi_with_record(&without(
        &without(&record(), "snr_db"),
        "noise_dbm",
    )));
    let Ok(Message::Rssi(batch)) = msg else {
        panic!("{msg:?}")
    };
    assert_eq!(
        (batch.samples()[0].snr_db, batch.samples()[0].noise_dbm),
        (None, None)
    );
}

#[test]
fn quality_score_above_100_is_out_of_range() {
    out_of_range(
        &rssi_with_record(&with(&record(), "quality_score", V::UInt(101))),
        "rssi.samples",
        "quality_score",
    );
    out_of_range(
        &rssi_with_record(&with(&record(), "quality_score", V::UInt(256))),
        "rssi.samples",
        "quality_score",
    );
    out_of_range(
        &rssi_with_record(&with(&record(), "quality_score", V::Int(-1))),
        "rssi.samples",
        "quality_score",
    );
    // 100 itself is fine, in any integer width.
    Message::decode(&rssi_with_record(&with(
        &record(),
        "quality_score",
        V::WideUInt(100),
    )))
    .unwrap();
}

#[test]
fn non_finite_levels_are_out_of_range() {
    for bad in [
        V::F32(f32::NAN),
        V::F32(f32::INFINITY),
        V::F64(f64::NEG_INFINITY),
        V::F64(1e300),
    ] {
        for key in ["rssi_dbm", "snr_db", "noise_dbm"] {
            out_of_range(
                &rssi_with_record(&with(&record(), key, bad.clone())),
                "rssi.samples",
                key,
            );
        }
    }
}

#[test]
fn levels_must_be_floats() {
    wrong_type(
        &rssi_with_record(&with(&record(), "rssi_dbm", V::Int(-70))),
        "rssi.samples",
        "rssi_dbm",
        "float",
    );
    wrong_type(
        &rssi_with_record(&with(&record(), "snr_db", s("18"))),
        "rssi.samples",
        "snr_db",
        "float",
    );
}

#[test]
fn zero_or_negative_frequency_is_out_of_range() {
    out_of_range(
        &rssi_with_record(&with(&record(), "frequency_hz", V::UInt(0))),
        "rssi.samples",
        "frequency_hz",
    );
    out_of_range(
        &rssi_with_record(&with(&record(), "frequency_hz", V::Int(-5))),
        "rssi.samples",
        "frequency_hz",
    );
    wrong_type(
        &rssi_with_record(&with(&record(), "frequency_hz", V::F64(4e8))),
        "rssi.samples",
        "frequency_hz",
        "integer",
    );
}

#[test]
fn source_id_above_255_is_out_of_range() {
    out_of_range(
        &rssi_with_record(&with(&record(), "source_id", V::UInt(256))),
        "rssi.samples",
        "source_id",
    );
    let ok = Message::decode(&rssi_with_record(&with(
        &record(),
        "source_id",
        V::UInt(255),
    )))
    .unwrap();
    let Message::Rssi(batch) = ok else { panic!() };
    assert_eq!(batch.samples()[0].source_id.get(), 255);
}

#[test]
fn timestamp_beyond_int64_is_out_of_range() {
    out_of_range(
        &rssi_with_record(&with(&record(), "timestamp_ns", V::UInt(1 << 63))),
        "rssi.samples",
        "timestamp_ns",
    );
    wrong_type(
        &rssi_with_record(&with(&record(), "timestamp_ns", V::Nil)),
        "rssi.samples",
        "timestamp_ns",
        "integer",
    );
    // Negative timestamps (before 1970) fit int64.
    Message::decode(&rssi_with_record(&with(
        &record(),
        "timestamp_ns",
        V::Int(-1),
    )))
    .unwrap();
}

#[test]
fn rssi_needs_a_nonempty_list_of_maps() {
    let base = [
        ("type", s("rssi")),
        ("seq", V::UInt(0)),
        ("samples", V::Arr(vec![])),
    ];
    out_of_range(&payload(&base), "rssi", "samples");
    wrong_type(
        &payload(&with(&base, "samples", V::Arr(vec![V::UInt(1)]))),
        "rssi",
        "samples",
        "map",
    );
    wrong_type(
        &payload(&with(&base, "samples", map(&record()))),
        "rssi",
        "samples",
        "array",
    );
    missing(&payload(&without(&base, "samples")), "rssi", "samples");
    let one = with(&base, "samples", V::Arr(vec![map(&record())]));
    missing(&payload(&without(&one, "seq")), "rssi", "seq");
    out_of_range(&payload(&with(&one, "seq", V::Int(-1))), "rssi", "seq");
}

#[test]
fn duplicate_record_key_is_refused() {
    let mut rec = record();
    rec.push(("quality_score", V::UInt(50)));
    duplicate(&rssi_with_record(&rec), "rssi.samples", "quality_score");
}

// ----- handshake -----

#[test]
fn hello_requires_every_key_but_rssi_units() {
    for key in [
        "proto",
        "version",
        "role",
        "node",
        "stream",
        "compression",
        "max_message",
        "nonce",
    ] {
        missing(&payload(&without(&hello(), key)), "hello", key);
    }
    let Message::Hello(h) = Message::decode(&payload(&hello())).unwrap() else {
        panic!()
    };
    assert_eq!(
        (h.rssi_units, h.effective_rssi_units()),
        (None, RssiUnits::Dbm)
    );
}

#[test]
fn hello_proto_must_be_sarlink() {
    out_of_range(
        &payload(&with(&hello(), "proto", s("other"))),
        "hello",
        "proto",
    );
}

#[test]
fn version_is_two_small_integers() {
    for bad in [
        V::Arr(vec![V::UInt(1)]),
        V::Arr(vec![V::UInt(1), V::UInt(0), V::UInt(0)]),
        V::Arr(vec![V::UInt(70_000), V::UInt(0)]),
        V::Arr(vec![V::UInt(1), V::Int(-1)]),
    ] {
        out_of_range(
            &payload(&with(&hello(), "version", bad.clone())),
            "hello",
            "version",
        );
        out_of_range(
            &payload(&with(&welcome(), "version", bad)),
            "welcome",
            "version",
        );
    }
    wrong_type(
        &payload(&with(&hello(), "version", s("1.0"))),
        "hello",
        "version",
        "array",
    );
}

#[test]
fn unknown_role_is_refused_with_the_role_close_code() {
    let err = Message::decode(&payload(&with(&hello(), "role", s("pilot")))).unwrap_err();
    assert_eq!(err.field(), Some("role"));
    assert_eq!(err.close_code(), CloseCode::Role);
    out_of_range(
        &payload(&with(&hello(), "role", s("Drone"))),
        "hello",
        "role",
    );
}

#[test]
fn node_is_1_to_64_bytes() {
    for (entries, message) in [(hello(), "hello"), (welcome(), "welcome")] {
        out_of_range(&payload(&with(&entries, "node", s(""))), message, "node");
        out_of_range(
            &payload(&with(&entries, "node", V::Str("n".repeat(65)))),
            message,
            "node",
        );
        Message::decode(&payload(&with(&entries, "node", V::Str("n".repeat(64))))).unwrap();
    }
    let tune = cmd("tune", &[("frequency_hz", V::UInt(1)), ("target", s(""))]);
    out_of_range(&payload(&tune), "cmd", "target");
}

#[test]
fn nonce_is_bin_16() {
    for len in [0, 15, 17] {
        out_of_range(
            &payload(&with(&hello(), "nonce", V::Bin(vec![0; len]))),
            "hello",
            "nonce",
        );
        let ch = [("type", s("challenge")), ("nonce", V::Bin(vec![0; len]))];
        out_of_range(&payload(&ch), "challenge", "nonce");
    }
    // A 16-byte string is not a binary.
    wrong_type(
        &payload(&with(&hello(), "nonce", V::Str("a".repeat(16)))),
        "hello",
        "nonce",
        "binary",
    );
    missing(&payload(&[("type", s("challenge"))]), "challenge", "nonce");
}

#[test]
fn mac_is_bin_32() {
    for len in [0, 31, 33] {
        out_of_range(
            &payload(&[("type", s("auth")), ("mac", V::Bin(vec![0; len]))]),
            "auth",
            "mac",
        );
        out_of_range(
            &payload(&with(&welcome(), "mac", V::Bin(vec![0; len]))),
            "welcome",
            "mac",
        );
    }
    missing(&payload(&[("type", s("auth"))]), "auth", "mac");
    // welcome.mac is optional.
    let Message::Welcome(w) = Message::decode(&payload(&without(&welcome(), "mac"))).unwrap()
    else {
        panic!()
    };
    assert_eq!(w.mac, None);
}

#[test]
fn max_message_is_uint32() {
    out_of_range(
        &payload(&with(&hello(), "max_message", V::UInt(1 << 32))),
        "hello",
        "max_message",
    );
    out_of_range(
        &payload(&with(&welcome(), "max_message", V::Int(-1))),
        "welcome",
        "max_message",
    );
}

#[test]
fn compression_is_a_list_of_strings() {
    wrong_type(
        &payload(&with(&hello(), "compression", s("lz4"))),
        "hello",
        "compression",
        "array",
    );
    wrong_type(
        &payload(&with(&hello(), "compression", V::Arr(vec![V::UInt(4)]))),
        "hello",
        "compression",
        "string",
    );
}

#[test]
fn rssi_units_is_dbm_or_dbfs() {
    let mut e = hello();
    e.push(("rssi_units", s("watts")));
    out_of_range(&payload(&e), "hello", "rssi_units");
    e.pop();
    e.push(("rssi_units", s("dbfs")));
    let Message::Hello(h) = Message::decode(&payload(&e)).unwrap() else {
        panic!()
    };
    assert_eq!(h.effective_rssi_units(), RssiUnits::Dbfs);
}

#[test]
fn welcome_requires_its_keys() {
    for key in [
        "version",
        "node",
        "compression",
        "max_message",
        "resume_seq",
    ] {
        missing(&payload(&without(&welcome(), key)), "welcome", key);
    }
}

#[test]
fn reject_and_bye_require_code_and_reason_and_keep_unknown_codes() {
    for ty in ["reject", "bye"] {
        let base = [("type", s(ty)), ("code", s("busy")), ("reason", s("full"))];
        missing(&payload(&without(&base, "code")), ty, "code");
        missing(&payload(&without(&base, "reason")), ty, "reason");
        wrong_type(
            &payload(&with(&base, "code", V::UInt(3))),
            ty,
            "code",
            "string",
        );
        let msg = Message::decode(&payload(&with(&base, "code", s("solar_flare")))).unwrap();
        let code = match msg {
            Message::Reject(r) => r.code,
            Message::Bye(b) => b.code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code, WireCode::Unknown("solar_flare".into()));
        assert_eq!(
            code.close_code(),
            None,
            "an unknown code is a generic error"
        );
    }
}

// ----- liveness, acks, commands -----

#[test]
fn rx_ping_pong_keys() {
    missing(&payload(&[("type", s("rx"))]), "rx", "seq");
    for ty in ["ping", "pong"] {
        let base = [("type", s(ty)), ("seq", V::UInt(1)), ("t_ns", V::Int(-5))];
        missing(&payload(&without(&base, "seq")), ty, "seq");
        missing(&payload(&without(&base, "t_ns")), ty, "t_ns");
        out_of_range(&payload(&with(&base, "seq", V::UInt(1 << 32))), ty, "seq");
        wrong_type(
            &payload(&with(&base, "t_ns", V::F64(1.0))),
            ty,
            "t_ns",
            "integer",
        );
    }
}

#[test]
fn cmd_requires_id_and_op() {
    let tune = cmd("tune", &[("frequency_hz", V::UInt(1))]);
    missing(&payload(&without(&tune, "id")), "cmd", "id");
    missing(&payload(&without(&tune, "op")), "cmd", "op");
    wrong_type(
        &payload(&with(&tune, "op", V::UInt(1))),
        "cmd",
        "op",
        "string",
    );
    out_of_range(&payload(&with(&tune, "id", V::UInt(1 << 32))), "cmd", "id");
}

#[test]
fn each_op_requires_its_own_key_with_its_type() {
    missing(&payload(&cmd("tune", &[])), "cmd", "frequency_hz");
    out_of_range(
        &payload(&cmd("tune", &[("frequency_hz", V::UInt(0))])),
        "cmd",
        "frequency_hz",
    );
    missing(&payload(&cmd("gain", &[])), "cmd", "gain_db");
    wrong_type(
        &payload(&cmd("gain", &[("gain_db", V::Int(20))])),
        "cmd",
        "gain_db",
        "float",
    );
    missing(&payload(&cmd("rate", &[])), "cmd", "hz");
    wrong_type(
        &payload(&cmd("rate", &[("hz", s("10"))])),
        "cmd",
        "hz",
        "float",
    );
    missing(&payload(&cmd("stream", &[])), "cmd", "on");
    wrong_type(
        &payload(&cmd("stream", &[("on", V::UInt(1))])),
        "cmd",
        "on",
        "boolean",
    );
    assert_eq!(
        Message::decode(&payload(&cmd("gain_auto", &[]))).unwrap(),
        Message::Cmd(Cmd {
            id: 9,
            target: None,
            op: CmdOp::GainAuto
        })
    );
}

#[test]
fn keys_of_other_ops_are_ignored() {
    // `on` belongs to `stream`; for `tune` it is just an unknown key, whatever it holds.
    let p = payload(&cmd(
        "tune",
        &[
            ("on", V::UInt(5)),
            ("frequency_hz", V::F32(1.0)),
            ("frequency_hz", V::UInt(7)),
        ],
    ));
    // ...but a known key given twice is still a duplicate.
    duplicate(&p, "cmd", "frequency_hz");
    let p = payload(&cmd(
        "tune",
        &[
            ("on", V::UInt(5)),
            ("hz", s("x")),
            ("frequency_hz", V::UInt(7)),
        ],
    ));
    let Message::Cmd(c) = Message::decode(&p).unwrap() else {
        panic!()
    };
    assert_eq!(
        c.op,
        CmdOp::Tune {
            frequency_hz: FrequencyHz::new(7).unwrap()
        }
    );
}

#[test]
fn an_unknown_op_decodes_so_the_drone_can_answer_unsupported() {
    let p = payload(&cmd("self_destruct", &[("when", s("now"))]));
    let Message::Cmd(c) = Message::decode(&p).unwrap() else {
        panic!()
    };
    assert_eq!((c.id, c.op.as_str()), (9, "self_destruct"));
    assert!(matches!(c.op, CmdOp::Unknown { .. }));
    let answer = Message::Ack(Ack::refuse(c.id, AckCode::Unsupported, "unknown op"));
    let Message::Ack(a) = Message::decode(&answer.encode_to_vec()).unwrap() else {
        panic!()
    };
    assert_eq!((a.id, a.ok, a.code), (9, false, Some(AckCode::Unsupported)));
}

#[test]
fn ack_requires_id_and_ok() {
    missing(&payload(&without(&ack(), "id")), "ack", "id");
    missing(&payload(&without(&ack(), "ok")), "ack", "ok");
    wrong_type(
        &payload(&with(&ack(), "ok", V::UInt(0))),
        "ack",
        "ok",
        "boolean",
    );
    wrong_type(
        &payload(&with(&ack(), "code", V::Nil)),
        "ack",
        "code",
        "string",
    );
    let Message::Ack(a) = Message::decode(&payload(&without(&ack(), "code"))).unwrap() else {
        panic!()
    };
    assert_eq!((a.code, a.reason), (None, None));
}

// ----- telemetry -----

#[test]
fn status_requires_every_key_but_temp_c() {
    for key in [
        "t_ns",
        "cpu_pct",
        "mem_bytes",
        "level",
        "disabled",
        "dropped",
        "queued",
        "rate_hz",
    ] {
        missing(&payload(&without(&status(), key)), "status", key);
    }
    Message::decode(&payload(&without(&status(), "temp_c"))).unwrap();
    out_of_range(
        &payload(&with(&status(), "queued", V::UInt(1 << 32))),
        "status",
        "queued",
    );
    wrong_type(
        &payload(&with(&status(), "level", V::UInt(1))),
        "status",
        "level",
        "string",
    );
    wrong_type(
        &payload(&with(&status(), "disabled", V::Arr(vec![V::Nil]))),
        "status",
        "disabled",
        "string",
    );
    wrong_type(
        &payload(&with(&status(), "cpu_pct", V::UInt(3))),
        "status",
        "cpu_pct",
        "float",
    );
}

#[test]
fn decision_requires_its_keys() {
    for key in ["t_ns", "source_id", "fallback", "reason"] {
        missing(&payload(&without(&decision(), key)), "decision", key);
    }
    out_of_range(
        &payload(&with(&decision(), "source_id", V::UInt(300))),
        "decision",
        "source_id",
    );
    wrong_type(
        &payload(&with(&decision(), "fallback", s("no"))),
        "decision",
        "fallback",
        "boolean",
    );
    wrong_type(
        &payload(&with(&decision(), "score_drone", V::Nil)),
        "decision",
        "score_drone",
        "float",
    );
}

// ----- the payload as a whole -----

#[test]
fn payload_must_be_one_map_with_string_keys_and_a_string_type() {
    assert_eq!(
        Message::decode(&[0x93, 1, 2, 3]),
        Err(DecodeError::NotAMap { found: "array" })
    );
    assert_eq!(
        Message::decode(&[]),
        Err(DecodeError::NotAMap { found: "nothing" })
    );
    missing(&payload(&[("seq", V::UInt(1))]), "payload", "type");
    wrong_type(
        &payload(&[("type", V::UInt(1))]),
        "payload",
        "type",
        "string",
    );
    // {1: 2, "type": "rx", "seq": 1}
    let p = V::Map(vec![
        (V::UInt(1), V::UInt(2)),
        (s("type"), s("rx")),
        (s("seq"), V::UInt(1)),
    ])
    .bytes();
    assert_eq!(
        Message::decode(&p),
        Err(DecodeError::NonStringKey {
            offset: 1,
            found: "integer"
        })
    );
}

#[test]
fn trailing_bytes_are_refused() {
    let mut p = payload(&[("type", s("rx")), ("seq", V::UInt(1))]);
    p.push(0xc0);
    assert_eq!(
        Message::decode(&p),
        Err(DecodeError::TrailingBytes { count: 1 })
    );
}

#[test]
fn duplicate_known_keys_are_refused_unknown_ones_ignored() {
    duplicate(
        &payload(&[("type", s("rx")), ("seq", V::UInt(1)), ("seq", V::UInt(2))]),
        "rx",
        "seq",
    );
    duplicate(
        &payload(&[("type", s("rx")), ("type", s("rx")), ("seq", V::UInt(1))]),
        "payload",
        "type",
    );
    duplicate(
        &payload(&[("type", s("zzz")), ("type", s("zzz"))]),
        "payload",
        "type",
    );
    let mut h = hello();
    h.push(("proto", s("sarlink")));
    duplicate(&payload(&h), "hello", "proto");
    let p = payload(&[
        ("type", s("rx")),
        ("seq", V::UInt(1)),
        ("x", V::Nil),
        ("x", V::Nil),
    ]);
    assert_eq!(Message::decode(&p).unwrap(), Message::Rx(Rx { seq: 1 }));
}

#[test]
fn strings_must_be_utf8() {
    let mut p = payload(&[("type", s("bye")), ("code", s("busy")), ("reason", s("ab"))]);
    let n = p.len();
    p[n - 1] = 0xff;
    match Message::decode(&p) {
        Err(DecodeError::InvalidField {
            field: "reason",
            problem: FieldProblem::NotUtf8,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_type_is_returned_for_counting() {
    let p = payload(&[
        ("seq", V::UInt(1)),
        ("type", s("telemetry_v2")),
        (
            "blob",
            V::Arr(vec![map(&[("deep", V::Arr(vec![V::F64(1.0)]))])]),
        ),
    ]);
    let msg = Message::decode(&p).unwrap();
    assert_eq!(msg.kind(), MessageKind::Unknown);
    assert_eq!(msg.type_name(), "telemetry_v2");
    // Still well-formed MessagePack throughout.
    let mut bad = payload(&[("type", s("telemetry_v2")), ("blob", V::Raw(vec![0xc1]))]);
    assert!(matches!(
        Message::decode(&bad),
        Err(DecodeError::ReservedByte { .. })
    ));
    bad.truncate(bad.len() - 1);
    assert!(matches!(
        Message::decode(&bad),
        Err(DecodeError::Truncated { .. })
    ));
}

#[test]
fn tolerant_forms_are_accepted() {
    // Type last, integers in wide and signed forms, float 64, extra keys of every kind,
    // including an extension value and nil.
    let p = payload(&[
        (
            "samples",
            V::Arr(vec![map(&[
                ("quality_score", V::WideInt(87)),
                ("x", V::Raw(vec![0xd4, 0x01, 0x02])),
                ("noise_dbm", V::F64(-89.75)),
                ("snr_db", V::F64(18.25)),
                ("source_id", V::WideUInt(0)),
                ("frequency_hz", V::WideInt(406_025_000)),
                ("rssi_dbm", V::F64(-71.5)),
                ("timestamp_ns", V::WideInt(1_764_000_000_000_000_000)),
            ])]),
        ),
        ("extra", V::Nil),
        ("seq", V::Raw(vec![0xd0, 42])), // int 8
        ("type", s("rssi")),
    ]);
    assert_eq!(
        Message::decode(&p).unwrap(),
        Message::Rssi(Rssi::single(42, golden_record()))
    );
}

#[test]
fn float64_values_are_rounded_to_f32() {
    let p = rssi_with_record(&with(&record(), "rssi_dbm", V::F64(-70.1)));
    let Message::Rssi(batch) = Message::decode(&p).unwrap() else {
        panic!()
    };
    assert_eq!(batch.samples()[0].rssi_dbm.get(), -70.1f64 as f32);
}

#[test]
fn errors_display_lowercase_with_the_field() {
    let err = Message::decode(&rssi_with_record(&with(
        &record(),
        "quality_score",
        V::UInt(101),
    )))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid `quality_score` in `rssi.samples`: out of range (expected 0-100)"
    );
    let err = Message::decode(&payload(&[("type", s("rx"))])).unwrap_err();
    assert_eq!(err.to_string(), "`rx` lacks required key `seq`");
}

#[test]
fn an_unknown_type_must_be_utf8() {
    let p = V::Map(vec![(s("type"), V::Raw(vec![0xa2, 0xff, 0xfe]))]).bytes();
    match Message::decode(&p) {
        Err(DecodeError::InvalidField {
            field: "type",
            problem: FieldProblem::NotUtf8,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

// ----- protocol 1.1 beacon keys of the record -----

fn beacon_record() -> Entries {
    let mut rec = record();
    rec.extend([
        ("detected", V::Bool(true)),
        ("pulses", V::UInt(2)),
        ("pulse_dbm", V::F32(-60.0)),
        ("pulse_width_us", V::UInt(20_000)),
        ("pulse_start_ns", V::Int(-5)),
        ("pulse_interval_ms", V::UInt(1000)),
        ("last_pulse_dbm", V::F32(-60.0)),
        ("last_pulse_age_ms", V::UInt(12)),
        ("burst", V::Bool(false)),
        ("offset_hz", V::F32(-7000.0)),
        ("clip_fraction", V::F32(1.0)),
    ]);
    rec
}

#[test]
fn beacon_keys_decode_and_each_may_be_absent() {
    let Ok(Message::Rssi(batch)) = Message::decode(&rssi_with_record(&beacon_record())) else {
        panic!("beacon record refused")
    };
    let b = batch.samples()[0].beacon;
    assert_eq!(b.len(), 11);
    assert_eq!(
        (b.detected, b.pulses, b.pulse_width_us, b.pulse_start_ns),
        (Some(true), Some(2), Some(20_000), Some(-5))
    );
    assert_eq!(b.offset_hz.map(OffsetHz::get), Some(-7000.0));
    assert_eq!(b.clip_fraction.map(ClipFraction::get), Some(1.0));
    for (key, _) in &beacon_record()[7..] {
        let Ok(Message::Rssi(batch)) =
            Message::decode(&rssi_with_record(&without(&beacon_record(), key)))
        else {
            panic!("without {key}")
        };
        assert_eq!(batch.samples()[0].beacon.len(), 10, "{key}");
    }
}

#[test]
fn beacon_values_out_of_range_are_refused() {
    let bad: [(&str, V); 12] = [
        ("clip_fraction", V::F32(1.0001)),
        ("clip_fraction", V::F32(-0.5)),
        ("clip_fraction", V::F32(f32::NAN)),
        ("pulse_dbm", V::F32(f32::NAN)),
        ("last_pulse_dbm", V::F64(f64::INFINITY)),
        ("offset_hz", V::F32(f32::NEG_INFINITY)),
        ("offset_hz", V::F64(1e300)),
        ("pulses", V::Int(-1)),
        ("pulses", V::UInt(1 << 32)),
        ("pulse_width_us", V::UInt(1 << 32)),
        ("pulse_interval_ms", V::Int(-3)),
        ("pulse_start_ns", V::UInt(1 << 63)),
    ];
    for (key, value) in bad {
        out_of_range(
            &rssi_with_record(&with(&beacon_record(), key, value)),
            "rssi.samples",
            key,
        );
    }
}

#[test]
fn beacon_values_of_the_wrong_type_are_refused() {
    for (key, value, expected) in [
        ("detected", V::UInt(1), "boolean"),
        ("burst", s("yes"), "boolean"),
        ("pulses", V::F32(1.0), "integer"),
        ("pulse_dbm", V::Int(-60), "float"),
        ("clip_fraction", V::UInt(0), "float"),
        ("last_pulse_age_ms", V::Nil, "integer"),
    ] {
        wrong_type(
            &rssi_with_record(&with(&beacon_record(), key, value)),
            "rssi.samples",
            key,
            expected,
        );
    }
}

#[test]
fn a_beacon_key_given_twice_is_refused() {
    let mut rec = beacon_record();
    rec.push(("burst", V::Bool(true)));
    duplicate(&rssi_with_record(&rec), "rssi.samples", "burst");
}
