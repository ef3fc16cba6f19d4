//! Properties: every message type round-trips; the canonical form is a fixed point; key order,
//! integer and float widths and extra keys do not change what decodes; arbitrary or mutated
//! bytes never panic.

mod common;

use common::*;
use proptest::prelude::*;
use sarlink_schema::*;

fn check_round_trip(msg: &Message) -> Result<(), TestCaseError> {
    let bytes = msg.encode_to_vec();
    let back = Message::decode(&bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(&back, msg);
    prop_assert_eq!(
        back.encode_to_vec(),
        bytes,
        "canonical bytes are a fixed point"
    );
    Ok(())
}

proptest! {
    #[test]
    fn hello_round_trips(msg in any_hello()) { check_round_trip(&msg)?; }

    #[test]
    fn welcome_round_trips(msg in any_welcome()) { check_round_trip(&msg)?; }

    #[test]
    fn rssi_round_trips(msg in any_rssi()) { check_round_trip(&msg)?; }

    #[test]
    fn cmd_round_trips_for_every_op(msg in any_cmd()) { check_round_trip(&msg)?; }

    #[test]
    fn ack_round_trips(msg in any_ack()) { check_round_trip(&msg)?; }

    #[test]
    fn status_round_trips(msg in any_status()) { check_round_trip(&msg)?; }

    #[test]
    fn decision_round_trips(msg in any_decision()) { check_round_trip(&msg)?; }

    #[test]
    fn challenge_auth_reject_bye_rx_ping_pong_unknown_round_trip(msg in any_small()) {
        check_round_trip(&msg)?;
    }

    #[test]
    fn key_order_does_not_matter(msg in any_message(), seed in any::<u64>()) {
        let mut entries = split_map(&msg.encode_to_vec());
        // A deterministic shuffle driven by the seed (`type` may land anywhere).
        let mut state = seed | 1;
        for i in (1..entries.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            entries.swap(i, (state % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(Message::decode(&join_map(&entries)).unwrap(), msg);
    }

    #[test]
    fn widest_integer_string_and_float_forms_decode_the_same(msg in any_message()) {
        let wide = widen(&msg.encode_to_vec());
        prop_assert_eq!(Message::decode(&wide).unwrap(), msg);
    }

    #[test]
    fn unknown_keys_are_ignored_wherever_they_are(
        msg in any_message(),
        at in any::<prop::sample::Index>(),
    ) {
        let mut entries = split_map(&msg.encode_to_vec());
        let extra = [
            s("x_future"),
            map(&[("nested", V::Arr(vec![V::Nil, V::F64(1.5), map(&[("k", V::Bin(vec![1; 40]))])])),
                  ("ext", V::Raw(vec![0xd4, 1, 2]))]),
        ];
        let mut entry = extra[0].bytes();
        entry.extend(extra[1].bytes());
        entries.insert(at.index(entries.len() + 1), entry);
        prop_assert_eq!(Message::decode(&join_map(&entries)).unwrap(), msg);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(msg) = Message::decode(&bytes) {
            // Whatever decodes re-encodes to something that decodes to the same bytes.
            let canonical = msg.encode_to_vec();
            let again = Message::decode(&canonical).unwrap();
            prop_assert_eq!(again.encode_to_vec(), canonical);
        }
    }

    #[test]
    fn mutated_messages_never_panic(
        msg in any_message(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = msg.encode_to_vec();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        for input in [&bytes[..], &bytes[..cut.index(bytes.len() + 1)]] {
            if let Ok(decoded) = Message::decode(input) {
                let canonical = decoded.encode_to_vec();
                let again = Message::decode(&canonical).unwrap();
                prop_assert_eq!(again.encode_to_vec(), canonical);
            }
        }
    }
}

#[test]
fn one_of_each_kind_and_op_round_trips() {
    let all = one_of_each();
    let kinds: std::collections::HashSet<_> = all.iter().map(Message::kind).collect();
    for kind in MessageKind::KNOWN {
        assert!(kinds.contains(&kind), "fixture lacks {kind}");
    }
    for msg in &all {
        let bytes = msg.encode_to_vec();
        assert_eq!(&Message::decode(&bytes).unwrap(), msg);
        assert_eq!(msg.type_name(), msg.kind().as_str());
    }
}

#[test]
fn nan_in_floats_that_allow_it_survives_bit_for_bit() {
    let nan = f32::from_bits(0x7fc0_1234);
    let msgs = [
        Message::Status(Status {
            t_ns: 0,
            cpu_pct: nan,
            mem_bytes: 0,
            temp_c: Some(f32::INFINITY),
            level: String::new(),
            disabled: vec![],
            dropped: 0,
            queued: 0,
            rate_hz: f32::NEG_INFINITY,
            source: None,
            data_age_ms: None,
            alerts: vec![],
        }),
        Message::Decision(Decision {
            t_ns: 0,
            source_id: SourceId::DRONE,
            fallback: false,
            reason: String::new(),
            score_drone: Some(nan),
            score_ground: None,
        }),
        Message::Cmd(Cmd {
            id: 0,
            target: None,
            op: CmdOp::Gain { gain_db: nan },
        }),
    ];
    for msg in msgs {
        let bytes = msg.encode_to_vec();
        let back = Message::decode(&bytes).unwrap();
        assert_eq!(back.encode_to_vec(), bytes);
    }
}
