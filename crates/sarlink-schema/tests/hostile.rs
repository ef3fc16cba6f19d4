//! Hostile input: claimed lengths beyond the input, deep nesting. Nothing is allocated by a
//! claim, and nothing recurses without bound.

mod common;

use common::*;
use sarlink_schema::*;

#[global_allocator]
static ALLOC: sarlink_testkit::CountingAlloc = sarlink_testkit::CountingAlloc;

fn decode_counting(bytes: &[u8]) -> (u64, Result<Message, DecodeError>) {
    sarlink_testkit::allocations_during(|| Message::decode(bytes))
}

#[test]
fn an_array_claiming_2_pow_32_elements_allocates_nothing() {
    // {"type": "rssi", "seq": 0, "samples": array32(0xffffffff) + one byte}
    let p = payload(&[
        ("type", s("rssi")),
        ("seq", V::UInt(0)),
        ("samples", V::Raw(vec![0xdd, 0xff, 0xff, 0xff, 0xff, 0x80])),
    ]);
    let (allocs, result) = decode_counting(&p);
    assert_eq!(allocs, 0);
    assert!(
        matches!(
            result,
            Err(DecodeError::Truncated {
                needed: 0xffff_ffff,
                available: 1,
                ..
            })
        ),
        "{result:?}"
    );
    // The same claim in an unknown key, and for the message map itself.
    let p = payload(&[
        ("type", s("rx")),
        ("seq", V::UInt(0)),
        ("x", V::Raw(vec![0xdd, 0xff, 0xff, 0xff, 0xff])),
    ]);
    assert!(matches!(
        decode_counting(&p),
        (0, Err(DecodeError::Truncated { .. }))
    ));
    let (allocs, result) = decode_counting(&[0xdf, 0xff, 0xff, 0xff, 0xff, 0xa4]);
    assert_eq!(allocs, 0);
    assert_eq!(
        result,
        Err(DecodeError::Truncated {
            offset: 0,
            needed: 0x1_ffff_fffe,
            available: 1
        })
    );
}

#[test]
fn a_16_mib_string_claim_allocates_nothing() {
    let mut claim = vec![0xdb];
    claim.extend_from_slice(&(16u32 << 20).to_be_bytes());
    claim.extend_from_slice(b"short");
    for key in ["reason", "code"] {
        let mut entries = vec![("type", s("bye")), ("code", s("busy")), ("reason", s("r"))];
        entries.iter_mut().find(|(k, _)| *k == key).unwrap().1 = V::Raw(claim.clone());
        let (allocs, result) = decode_counting(&payload(&entries));
        assert_eq!(allocs, 0, "{key}");
        assert!(
            matches!(
                result,
                Err(DecodeError::Truncated {
                    needed: 16_777_216,
                    ..
                })
            ),
            "{result:?}"
        );
    }
    // Same for a binary (bin 32).
    let mut claim = vec![0xc6];
    claim.extend_from_slice(&u32::MAX.to_be_bytes());
    let (allocs, result) =
        decode_counting(&payload(&[("type", s("auth")), ("mac", V::Raw(claim))]));
    assert_eq!(allocs, 0);
    assert!(matches!(result, Err(DecodeError::Truncated { .. })));
}

#[test]
fn deep_nesting_stops_at_max_depth_without_recursing_further() {
    // 100,000 nested one-element arrays in an unknown key.
    let mut deep = vec![0x91; 100_000];
    deep.push(0xc0);
    let p = payload(&[("type", s("rx")), ("seq", V::UInt(0)), ("x", V::Raw(deep))]);
    let (allocs, result) = decode_counting(&p);
    assert_eq!(allocs, 0);
    assert!(
        matches!(result, Err(DecodeError::TooDeep { max: MAX_DEPTH, .. })),
        "{result:?}"
    );
    // The same with maps, and inside a record.
    let mut deep = Vec::new();
    for _ in 0..10_000 {
        deep.extend_from_slice(&[0x81, 0xa1, b'k']);
    }
    deep.push(0xc0);
    let mut rec = vec![("x", V::Raw(deep))];
    rec.extend([
        ("timestamp_ns", V::UInt(1)),
        ("rssi_dbm", V::F32(-1.0)),
        ("frequency_hz", V::UInt(1)),
        ("source_id", V::UInt(0)),
        ("quality_score", V::UInt(0)),
    ]);
    let p = payload(&[
        ("type", s("rssi")),
        ("seq", V::UInt(0)),
        ("samples", V::Arr(vec![map(&rec)])),
    ]);
    assert!(matches!(
        Message::decode(&p),
        Err(DecodeError::TooDeep { .. })
    ));
}

#[test]
fn nesting_up_to_max_depth_is_accepted() {
    // The message map is level 1, so an unknown value may open MAX_DEPTH - 1 levels.
    let nested = |levels: usize| {
        let mut v = vec![0x91; levels];
        v.push(0xc0);
        payload(&[("type", s("rx")), ("seq", V::UInt(0)), ("x", V::Raw(v))])
    };
    assert_eq!(
        Message::decode(&nested(MAX_DEPTH - 1)),
        Ok(Message::Rx(Rx { seq: 0 }))
    );
    assert!(matches!(
        Message::decode(&nested(MAX_DEPTH)),
        Err(DecodeError::TooDeep { .. })
    ));
}

#[test]
fn a_claim_beyond_the_content_fails_at_the_first_missing_record() {
    // A claim of 1,000 records followed by one real record and garbage: decoding fails at
    // the second record after one allocation (the list, sized by the input: see
    // `samples_capacity` in src/decode.rs).
    let mut samples = vec![0xdc, 0x03, 0xe8];
    samples.extend(
        map(&[
            ("timestamp_ns", V::UInt(1)),
            ("rssi_dbm", V::F32(-1.0)),
            ("frequency_hz", V::UInt(1)),
            ("source_id", V::UInt(0)),
            ("quality_score", V::UInt(0)),
        ])
        .bytes(),
    );
    samples.extend(vec![0x00; 1000]);
    let p = payload(&[
        ("type", s("rssi")),
        ("seq", V::UInt(0)),
        ("samples", V::Raw(samples)),
    ]);
    let (allocs, result) = decode_counting(&p);
    assert!(
        matches!(
            result,
            Err(DecodeError::InvalidField {
                field: "samples",
                ..
            })
        ),
        "{result:?}"
    );
    assert!(allocs <= 1, "{allocs} allocations");
}
