//! A hasher for maps keyed by connection id: ids are counters the loop hands out, never
//! chosen by a peer, so SipHash's protection against chosen keys buys nothing and costs a
//! measurable share of the per-record work (two or three lookups per record).

use std::hash::{BuildHasherDefault, Hasher};

/// Spreads a `u64` key over the table with one multiplication (Fibonacci hashing).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only for keys that are not a plain u64: fold the bytes in.
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map from connection id.
pub(crate) type IdMap<V> = std::collections::HashMap<u64, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_spread_over_the_high_bits() {
        // hashbrown takes its bucket index from the low bits and its tag from the top 7:
        // consecutive ids must differ in both.
        let hash = |n: u64| {
            let mut h = IdHasher::default();
            h.write_u64(n);
            h.finish()
        };
        let tops: std::collections::HashSet<u64> = (0..64).map(|n| hash(n) >> 57).collect();
        assert!(tops.len() > 32, "{} distinct tags of 64", tops.len());
        let lows: std::collections::HashSet<u64> = (0..64).map(|n| hash(n) & 63).collect();
        assert!(lows.len() > 32, "{} distinct buckets of 64", lows.len());
        let mut map: IdMap<u64> = IdMap::default();
        for n in 0..10_000 {
            map.insert(n, n * 2);
        }
        assert!((0..10_000).all(|n| map[&n] == n * 2));
    }
}
