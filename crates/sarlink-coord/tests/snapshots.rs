//! State snapshots: round trips, robustness, and compression/deduplication on a
//! realistic steady mission trace.

mod util;

use std::time::Duration;

use proptest::prelude::*;
use sarlink_coord::{
    Config, CoordSnapshot, Coordinator, DecisionRecord, LinkHealth, LinkSnapshot, LinkVerdict,
    LossRatio, PushOutcome, QualityScore, Reason, SafetyLevel, SafetyState, SnapshotHistory,
    SnapshotStats, SourceId, SourceReading,
};
use util::{Rng, ms};

/// Which decision times the trace uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Clock {
    /// A fixed 100 ms tick (a timer-driven decision loop).
    Tick,
    /// 100 ms plus up to +-2 ms of nanosecond jitter (decisions on record arrival).
    Jittered,
}

struct MissionResult {
    per_decision: SnapshotStats,
    per_second: SnapshotStats,
    switches: u64,
    fallback_decisions: u64,
    last: Coordinator,
    history_per_second: SnapshotHistory,
}

/// 10 minutes at 10 Hz, two sources. The drone homes in (its SNR climbs from 6 to 26 dB
/// with a 45 s fading ripple and +-0.8 dB noise); the ground station's SNR wanders around
/// 16 dB (+-2 dB over 2 minutes, +-0.8 dB noise); quality follows SNR. The ground link
/// is healthy (RTT 60-100 ms) except for a 3 s loss at 4:00, and the battery reserve is
/// reached at 9:00. Snapshots are taken at every decision and, separately, every second.
fn mission(clock: Clock) -> MissionResult {
    let mut c = Coordinator::new(Config::default()).unwrap();
    let mut per_decision = SnapshotHistory::new(64);
    let mut per_second = SnapshotHistory::new(64);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut t = Duration::ZERO;
    for i in 0..6000u64 {
        t = match clock {
            Clock::Tick => ms(i * 100),
            Clock::Jittered => {
                let jitter = (rng.unit() * 2_000_000.0) as i64;
                Duration::from_nanos((i as i64 * 100_000_000 + 5_000_000 + jitter) as u64)
            }
        };
        let secs = t.as_secs_f32();
        let tau = std::f32::consts::TAU;
        let drone = 6.0 + 20.0 * secs / 600.0 + 1.5 * (tau * secs / 45.0).sin() + 0.8 * rng.unit();
        let ground = 16.0 + 2.0 * (tau * secs / 120.0).sin() + 0.8 * rng.unit();
        for (src, snr) in [(SourceId::DRONE, drone), (SourceId::GROUND, ground)] {
            let q = (40.0 + 2.0 * snr).clamp(0.0, 100.0) as u8;
            let rssi = -95.0 + snr + 0.5 * rng.unit();
            let r = SourceReading::new(rssi, Some(snr), QualityScore::new(q).unwrap(), t).unwrap();
            c.update_reading(src, r, t);
        }
        if i % 10 == 0 {
            let lost = (2400..2430).contains(&i);
            let health = if lost {
                LinkHealth::LOST
            } else {
                LinkHealth {
                    state: sarlink_coord::LinkState::Healthy,
                    rtt: Some(
                        ms(80)
                            + Duration::from_micros((20_000.0 * rng.unit()) as i64 as u64 % 20_000),
                    ),
                    loss: LossRatio::new(0.01 * (rng.unit() + 1.0)).unwrap(),
                }
            };
            c.update_link(SourceId::GROUND, health, t);
        }
        if i == 5400 {
            c.set_safety(SafetyState::NOMINAL.with(SafetyLevel::Battery), t);
        }
        c.decide(t);
        let snap = c.snapshot(t);
        per_decision.push(&snap).unwrap();
        if i % 10 == 0 {
            per_second.push(&snap).unwrap();
        }
    }
    // The newest stored entry is the content of the final state.
    let latest = per_decision.decode_latest().unwrap();
    assert_eq!(latest.content_hash(), c.snapshot(t).content_hash());
    assert_eq!(per_decision.decode(per_decision.len() - 1).unwrap(), latest);
    MissionResult {
        per_decision: per_decision.stats(),
        per_second: per_second.stats(),
        switches: c.stats().switches,
        fallback_decisions: c.stats().fallback_decisions,
        last: c,
        history_per_second: per_second,
    }
}

fn report(name: &str, s: &SnapshotStats) {
    println!(
        "{name}: taken {} stored {} deduplicated {} ({:.1} %), raw {} B compressed {} B (saving {:.1} %)",
        s.taken,
        s.stored,
        s.deduplicated,
        100.0 * s.dedup_ratio(),
        s.raw_bytes,
        s.compressed_bytes,
        100.0 * s.compression_saving(),
    );
}

#[test]
fn steady_mission_compresses_and_deduplicates_by_half_or_more() {
    let m = mission(Clock::Tick);
    report("tick, per decision", &m.per_decision);
    report("tick, per second", &m.per_second);
    println!(
        "switches {}, fallback decisions {}",
        m.switches, m.fallback_decisions
    );
    // The trace exercises the coordinator: a crossover, a link loss and a safety fallback.
    assert!(m.switches >= 1);
    assert!(m.fallback_decisions >= 600 + 80);
    for s in [m.per_decision, m.per_second] {
        assert!(
            s.compression_saving() >= 0.5,
            "compression saving {}",
            s.compression_saving()
        );
        assert!(s.dedup_ratio() >= 0.5, "dedup {}", s.dedup_ratio());
    }
    // Every stored entry still decodes, and time spans are consistent.
    assert!(
        m.history_per_second.stats().rebased > 0,
        "the history wrapped"
    );
    for (i, e) in m.history_per_second.iter().enumerate() {
        let s = m.history_per_second.decode(i).unwrap();
        assert_eq!(s.taken_at, e.first_taken_at());
        assert!(e.last_taken_at() >= e.first_taken_at());
    }
    assert_eq!(m.last.current(), Some(SourceId::DRONE));
}

#[test]
fn jittered_mission_figures() {
    // Jittered decision times carry ~3 incompressible bytes per decision, but consecutive
    // snapshots share their history, which the dictionary chain removes. Deduplication
    // ignores times, so it is unchanged.
    let m = mission(Clock::Jittered);
    report("jittered, per decision", &m.per_decision);
    report("jittered, per second", &m.per_second);
    for s in [m.per_decision, m.per_second] {
        assert!(s.dedup_ratio() >= 0.5, "dedup {}", s.dedup_ratio());
        assert!(
            s.compression_saving() >= 0.5,
            "compression saving {}",
            s.compression_saving()
        );
    }
}

#[test]
fn dedup_ignores_only_times() {
    let mut c = Coordinator::new(Config::default()).unwrap();
    let mut h = SnapshotHistory::new(4);
    c.decide(ms(0));
    let a = c.snapshot(ms(0));
    let mut b = a.clone();
    b.taken_at = ms(999);
    b.held_since = ms(5);
    b.decisions[0].at = ms(3);
    assert_eq!(a.content_hash(), b.content_hash());
    assert_eq!(h.push(&a), Ok(PushOutcome::Stored { evicted: false }));
    assert_eq!(h.push(&b), Ok(PushOutcome::Deduplicated));
    let latest = h.latest().unwrap();
    assert_eq!(
        (
            latest.first_taken_at(),
            latest.last_taken_at(),
            latest.repeats()
        ),
        (ms(0), ms(999), 1)
    );
    assert_eq!(
        h.decode(0).unwrap(),
        a,
        "the first snapshot is kept verbatim"
    );
    // Any non-time change is stored.
    let mut d = b.clone();
    d.decisions[0].reason = Reason::Hold;
    assert_ne!(d.content_hash(), b.content_hash());
    assert!(matches!(h.push(&d), Ok(PushOutcome::Stored { .. })));
    // Non-consecutive repeats are stored again (only consecutive ones are merged).
    assert!(matches!(h.push(&a), Ok(PushOutcome::Stored { .. })));
    assert_eq!(h.stats().stored, 3);
}

#[test]
fn history_is_bounded() {
    let mut h = SnapshotHistory::new(2);
    let mut c = Coordinator::new(Config::default()).unwrap();
    let mut evictions = 0;
    for i in 0..5 {
        c.decide(ms(i * 100));
        if let Ok(PushOutcome::Stored { evicted: true }) = h.push(&c.snapshot(ms(i * 100))) {
            evictions += 1;
        }
    }
    assert_eq!((h.len(), evictions), (2, 3));
}

#[test]
fn restore_resumes_without_flapping() {
    let mut c = Coordinator::new(Config::default()).unwrap();
    util::step(&mut c, ms(0), 10.0, 15.0); // ground
    c.update_link(SourceId::DRONE, LinkHealth::HEALTHY, ms(0));
    c.update_link(SourceId::GROUND, LinkHealth::LOST, ms(100));
    util::step(&mut c, ms(100), 10.0, 15.0); // fallback to drone
    c.update_link(SourceId::GROUND, LinkHealth::HEALTHY, ms(200));
    let snap = c.snapshot(ms(300));
    let (raw_len, block) = snap.compress().unwrap();
    let back = CoordSnapshot::decompress(&block, raw_len).unwrap();
    assert_eq!(back, snap);
    let mut r = Coordinator::restore(Config::default(), &back).unwrap();
    assert_eq!(r.current(), c.current());
    assert_eq!(r.held_since(), c.held_since());
    assert_eq!(r.history().count(), 2);
    assert_eq!(r.link_verdict(SourceId::GROUND), Some(LinkVerdict::Usable));
    // The hold-down survives the restore: both stay in fallback until 5.2 s.
    for t in [ms(400), ms(5199), ms(5200)] {
        let a = util::step(&mut c, t, 10.0, 15.0);
        let b = util::step(&mut r, t, 10.0, 15.0);
        assert_eq!(
            (a.source, a.reason, a.fallback),
            (b.source, b.reason, b.fallback)
        );
    }
    assert!(!r.last_decision().unwrap().fallback);
}

fn arb_time() -> impl Strategy<Value = Duration> {
    (0u64..=i64::MAX as u64).prop_map(Duration::from_nanos)
}

fn arb_reason() -> impl Strategy<Value = Reason> {
    prop_oneof![
        Just(Reason::Initial),
        Just(Reason::Hold),
        Just(Reason::Dwell),
        Just(Reason::BetterScore),
        Just(Reason::Stale),
        Just(Reason::NoData),
        Just(Reason::LinkLost),
        Just(Reason::LinkDegraded),
        Just(Reason::Recovering),
        (0usize..6).prop_map(|i| Reason::Safety(SafetyLevel::ALL[i])),
    ]
}

fn arb_snapshot() -> impl Strategy<Value = CoordSnapshot> {
    let link =
        (any::<u8>(), 0u8..3, prop::option::of(arb_time())).prop_map(|(s, v, rec)| LinkSnapshot {
            source: SourceId::new(s),
            verdict: [
                LinkVerdict::Usable,
                LinkVerdict::Degraded,
                LinkVerdict::Lost,
            ][usize::from(v)],
            recovered_at: rec,
        });
    let decision = (
        arb_time(),
        any::<u8>(),
        any::<bool>(),
        arb_reason(),
        prop::option::of(any::<u8>()),
    )
        .prop_map(|(at, s, fallback, reason, sw)| DecisionRecord {
            at,
            source: SourceId::new(s),
            fallback,
            reason,
            switched_from: sw.map(SourceId::new),
        });
    (
        arb_time(),
        0u8..64,
        prop::option::of(any::<u8>()),
        arb_time(),
        prop::collection::vec(link, 0..6),
        prop::collection::vec(decision, 0..40),
    )
        .prop_map(
            |(taken_at, bits, current, held_since, links, decisions)| CoordSnapshot {
                taken_at,
                safety: SafetyState::from_bits(bits).unwrap(),
                current: current.map(SourceId::new),
                held_since,
                links,
                decisions,
            },
        )
}

proptest! {
    #[test]
    fn snapshots_round_trip(s in arb_snapshot()) {
        let bytes = s.encode().unwrap();
        prop_assert_eq!(CoordSnapshot::decode(&bytes), Ok(s.clone()));
        let (raw_len, block) = s.compress().unwrap();
        prop_assert_eq!(raw_len, bytes.len());
        prop_assert_eq!(CoordSnapshot::decompress(&block, raw_len), Ok(s));
    }

    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = CoordSnapshot::decode(&bytes);
        let _ = CoordSnapshot::decompress(&bytes, bytes.len() * 3);
    }

    /// Corrupting any single byte of a valid encoding or block never panics.
    #[test]
    fn corrupted_snapshots_never_panic(s in arb_snapshot(), pos in any::<prop::sample::Index>(), x in 1u8..=255) {
        let mut bytes = s.encode().unwrap();
        let i = pos.index(bytes.len());
        bytes[i] ^= x;
        let _ = CoordSnapshot::decode(&bytes);
        let (raw_len, mut block) = s.compress().unwrap();
        let j = pos.index(block.len());
        block[j] ^= x;
        let _ = CoordSnapshot::decompress(&block, raw_len);
    }

    /// Every entry of a wrapped, chained history decodes to exactly what was pushed.
    #[test]
    fn history_entries_decode_to_what_was_pushed(
        snaps in prop::collection::vec(arb_snapshot(), 1..12),
        capacity in 1usize..5,
    ) {
        let mut h = SnapshotHistory::new(capacity);
        let mut stored = Vec::new();
        for s in &snaps {
            if let PushOutcome::Stored { .. } = h.push(s).unwrap() {
                stored.push(s.clone());
            }
        }
        let kept = &stored[stored.len() - h.len()..];
        for (i, want) in kept.iter().enumerate() {
            prop_assert_eq!(&h.decode(i).unwrap(), want);
        }
        prop_assert_eq!(&h.decode_latest().unwrap(), kept.last().unwrap());
        prop_assert!(!h.iter().next().unwrap().is_chained());
    }
}
