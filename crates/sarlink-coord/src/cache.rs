//! An optional LRU cache of scores with a time-to-live.
//!
//! The score is a handful of floating-point operations, and the benchmark in
//! `docs/BENCHMARKS.md` shows a cache lookup costs several times more than computing it, so
//! the [`Coordinator`](crate::Coordinator) computes directly unless
//! [`Config::score_cache`](crate::Config::score_cache) is set. The cache is kept for score
//! functions that become expensive (per-source calibration tables, for example) and
//! because it is exact: it is keyed on the same quantised [`ScoreKey`] the direct path
//! scores, so enabling it cannot change a decision.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Duration;

use crate::score::ScoreKey;

/// Size and lifetime of a [`ScoreCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries kept; the least recently used is evicted beyond it. Default 256.
    pub capacity: usize,
    /// An entry older than this is recomputed on its next lookup. Default 60 s.
    pub ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: 256,
            ttl: Duration::from_secs(60),
        }
    }
}

/// Counters of a [`ScoreCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that computed the score (absent or expired).
    pub misses: u64,
    /// Misses caused by an expired entry.
    pub expired: u64,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Times the whole cache was invalidated.
    pub invalidations: u64,
}

impl CacheStats {
    /// Hits over lookups, `0.0` before the first lookup.
    pub fn hit_rate(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }
}

/// Fibonacci hashing of an already packed 40-bit key: one multiply, good high bits.
#[derive(Debug, Default, Clone, Copy)]
struct PackedKeyHasher(u64);

impl Hasher for PackedKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: u64,
    score_db: f32,
    inserted_at: Duration,
    prev: u32,
    next: u32,
}

/// A bounded LRU map from [`ScoreKey`] to score, with a time-to-live.
///
/// Off by default in the [`Coordinator`](crate::Coordinator): the score is a handful of
/// floating-point operations and the benchmark (`docs/BENCHMARKS.md`) measured a warm
/// cache lookup slower than computing the score. It is kept for score functions that may
/// become expensive, and it is exact: keyed on the same quantised [`ScoreKey`] the direct
/// path scores, so enabling it cannot change a decision.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use sarlink_coord::{CacheConfig, QualityScore, ScoreCache, ScoreConfig, ScoreKey, SourceReading};
///
/// let cfg = ScoreConfig::default();
/// let mut cache = ScoreCache::new(CacheConfig::default());
/// let r = SourceReading::new(-70.0, Some(12.0), QualityScore::new(90).unwrap(), Duration::ZERO)?;
/// let key = ScoreKey::new(&r);
/// let a = cache.get_or_compute(key, Duration::ZERO, |k| k.score_db(&cfg));
/// let b = cache.get_or_compute(key, Duration::from_secs(1), |k| k.score_db(&cfg));
/// assert_eq!(a, b);
/// assert_eq!(cache.stats().hits, 1);
/// # Ok::<(), sarlink_coord::ReadingError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ScoreCache {
    config: CacheConfig,
    index: HashMap<u64, u32, BuildHasherDefault<PackedKeyHasher>>,
    slots: Vec<Slot>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
    stats: CacheStats,
}

impl ScoreCache {
    /// Largest supported capacity.
    pub const MAX_CAPACITY: usize = 1 << 20;

    /// An empty cache. A capacity of 0 is raised to 1 and one above
    /// [`ScoreCache::MAX_CAPACITY`] lowered to it ([`Config`](crate::Config) validation
    /// rejects both).
    pub fn new(config: CacheConfig) -> Self {
        let capacity = config.capacity.clamp(1, Self::MAX_CAPACITY);
        ScoreCache {
            config: CacheConfig { capacity, ..config },
            index: HashMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default()),
            slots: Vec::with_capacity(capacity),
            head: NIL,
            tail: NIL,
            stats: CacheStats::default(),
        }
    }

    /// The configuration in force (capacity after clamping).
    pub fn config(&self) -> CacheConfig {
        self.config
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Drops every entry (call when the score configuration changes).
    pub fn invalidate(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.head = NIL;
        self.tail = NIL;
        self.stats.invalidations += 1;
    }

    /// The cached score for `key`, computing and inserting it with `compute` when absent
    /// or older than the TTL at `now`.
    pub fn get_or_compute(
        &mut self,
        key: ScoreKey,
        now: Duration,
        compute: impl FnOnce(ScoreKey) -> f32,
    ) -> f32 {
        let packed = key.packed();
        if let Some(&i) = self.index.get(&packed) {
            let slot = self.slots[i as usize];
            self.unlink(i);
            self.push_front(i);
            if now.saturating_sub(slot.inserted_at) < self.config.ttl {
                self.stats.hits += 1;
                return slot.score_db;
            }
            self.stats.misses += 1;
            self.stats.expired += 1;
            let score_db = compute(key);
            let slot = &mut self.slots[i as usize];
            slot.score_db = score_db;
            slot.inserted_at = now;
            return score_db;
        }
        self.stats.misses += 1;
        let score_db = compute(key);
        let i = if self.slots.len() < self.config.capacity {
            // Cast invariant: len < capacity <= MAX_CAPACITY < u32::MAX.
            let i = self.slots.len() as u32;
            self.slots.push(Slot {
                key: packed,
                score_db,
                inserted_at: now,
                prev: NIL,
                next: NIL,
            });
            i
        } else {
            let i = self.tail;
            self.unlink(i);
            self.index.remove(&self.slots[i as usize].key);
            self.stats.evictions += 1;
            self.slots[i as usize] = Slot {
                key: packed,
                score_db,
                inserted_at: now,
                prev: NIL,
                next: NIL,
            };
            i
        };
        self.push_front(i);
        self.index.insert(packed, i);
        score_db
    }

    fn unlink(&mut self, i: u32) {
        let Slot { prev, next, .. } = self.slots[i as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
    }

    fn push_front(&mut self, i: u32) {
        let old_head = self.head;
        {
            let slot = &mut self.slots[i as usize];
            slot.prev = NIL;
            slot.next = old_head;
        }
        if old_head == NIL {
            self.tail = i;
        } else {
            self.slots[old_head as usize].prev = i;
        }
        self.head = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceReading;
    use sarlink_schema::QualityScore;

    fn key(snr: f32) -> ScoreKey {
        let r = SourceReading::new(-70.0, Some(snr), QualityScore::MAX, Duration::ZERO).unwrap();
        ScoreKey::new(&r)
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut c = ScoreCache::new(CacheConfig {
            capacity: 2,
            ttl: Duration::from_secs(10),
        });
        let t = Duration::ZERO;
        c.get_or_compute(key(1.0), t, |_| 1.0);
        c.get_or_compute(key(2.0), t, |_| 2.0);
        // Touch 1.0 so 2.0 becomes the LRU.
        c.get_or_compute(key(1.0), t, |_| unreachable!("cached"));
        c.get_or_compute(key(3.0), t, |_| 3.0);
        assert_eq!(c.len(), 2);
        assert_eq!(c.stats().evictions, 1);
        assert_eq!(c.get_or_compute(key(1.0), t, |_| -1.0), 1.0, "1.0 was kept");
        assert_eq!(
            c.get_or_compute(key(2.0), t, |_| -2.0),
            -2.0,
            "2.0 was evicted"
        );
    }

    #[test]
    fn ttl_expires_and_invalidate_clears() {
        let mut c = ScoreCache::new(CacheConfig {
            capacity: 4,
            ttl: Duration::from_secs(1),
        });
        c.get_or_compute(key(1.0), Duration::ZERO, |_| 1.0);
        let before_ttl = Duration::from_millis(999);
        assert_eq!(c.get_or_compute(key(1.0), before_ttl, |_| 9.0), 1.0);
        assert_eq!(
            c.get_or_compute(key(1.0), Duration::from_secs(1), |_| 9.0),
            9.0
        );
        assert_eq!(c.stats().expired, 1);
        c.invalidate();
        assert!(c.is_empty());
        assert_eq!(
            c.get_or_compute(key(1.0), Duration::from_secs(1), |_| 5.0),
            5.0
        );
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.invalidations), (1, 3, 1));
        assert!((s.hit_rate() - 0.25).abs() < 1e-12);
    }
}
