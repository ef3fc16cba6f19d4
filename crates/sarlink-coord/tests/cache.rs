//! The score cache: exact (never changes a decision), bounded, invalidated on config change.

mod util;

use std::time::Duration;

use proptest::prelude::*;
use sarlink_coord::{
    CacheConfig, Config, Coordinator, QualityScore, ScoreKey, SourceId, SourceReading, score_db,
};
use util::{Rng, ms, step};

fn cached_config(capacity: usize, ttl: Duration) -> Config {
    let mut cfg = Config::default();
    cfg.score_cache = Some(CacheConfig { capacity, ttl });
    cfg
}

proptest! {
    /// The same inputs through a coordinator with a (tiny, short-lived) cache and one
    /// without give identical decisions, scores included.
    #[test]
    fn quantised_cache_never_changes_a_decision(
        steps in prop::collection::vec(
            (1u64..300, -90.0f32..-30.0, prop::option::of(-5.0f32..35.0), 0u8..=100, 0u8..=2),
            1..200,
        ),
        capacity in 1usize..8,
    ) {
        let mut direct = Coordinator::new(Config::default()).unwrap();
        let mut cached = Coordinator::new(cached_config(capacity, ms(700))).unwrap();
        let mut t = Duration::ZERO;
        for (dt, rssi, snr, q, src) in steps {
            t += ms(dt);
            let r = SourceReading::new(rssi, snr, QualityScore::new(q).unwrap(), t).unwrap();
            let src = SourceId::new(src);
            direct.update_reading(src, r, t);
            cached.update_reading(src, r, t);
            prop_assert_eq!(direct.decide(t), cached.decide(t));
        }
        let stats = cached.cache_stats().unwrap();
        prop_assert!(stats.hits + stats.misses > 0);
    }

    /// The score depends on the reading only through its quantised key.
    #[test]
    fn score_is_a_function_of_the_key(rssi in -120.0f32..0.0, snr in -10.0f32..40.0, q in 0u8..=100) {
        let r = SourceReading::new(rssi, Some(snr), QualityScore::new(q).unwrap(), Duration::ZERO).unwrap();
        let cfg = sarlink_coord::ScoreConfig::default();
        prop_assert_eq!(score_db(&r, &cfg).to_bits(), ScoreKey::new(&r).score_db(&cfg).to_bits());
    }
}

#[test]
fn steady_trace_hits_the_cache() {
    let mut c = Coordinator::new(cached_config(256, Duration::from_secs(60))).unwrap();
    let mut rng = Rng(7);
    for i in 0..600u64 {
        let t = ms(i * 100);
        step(&mut c, t, 12.0 + 0.5 * rng.unit(), 15.0 + 0.5 * rng.unit());
    }
    let s = c.cache_stats().unwrap();
    assert_eq!(s.hits + s.misses, 1200);
    // +-0.5 dB of noise spans ~6 SNR cells per source: nearly everything hits.
    assert!(s.hit_rate() > 0.9, "hit rate {}", s.hit_rate());
}

#[test]
fn config_change_invalidates_the_cache() {
    let mut c = Coordinator::new(cached_config(16, Duration::from_secs(60))).unwrap();
    let d = step(&mut c, ms(0), 10.0, 20.0);
    assert_eq!(d.score_ground_db, Some(20.0));
    let mut cfg = c.config().clone();
    cfg.score.snr_cap_db = 15.0;
    c.set_config(cfg).unwrap();
    assert_eq!(c.cache_stats().unwrap().invalidations, 1);
    // The new cap applies at once: no stale cached score survives.
    let d = step(&mut c, ms(100), 10.0, 20.0);
    assert_eq!(d.score_ground_db, Some(15.0));
    // Turning the cache off drops it.
    let mut cfg = c.config().clone();
    cfg.score_cache = None;
    c.set_config(cfg).unwrap();
    assert_eq!(c.cache_stats(), None);
}
