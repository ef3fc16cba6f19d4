//! The counters of a [`BufferPool`](crate::BufferPool).

use std::sync::atomic::{AtomicU64, Ordering};

/// A point-in-time copy of a pool's counters.
///
/// Every checkout is either a hit or a miss, so `requests() == hits + misses` by
/// construction. Every value handed out ends in one of three ways: it comes back and is
/// kept (`returns`), it comes back and is dropped (`discarded_full` or `rejected`), or
/// the holder takes it out of the pool (`detached`). Values given to the pool with
/// `put` are counted like values coming back from a guard. Values enter the pool only
/// by prefill, misses and `put`, and leave it only by being dropped or detached, so with
/// no guard outstanding and no `put` calls, `prefill + misses == idle + discarded() +
/// detached`: nothing is lost or duplicated.
///
/// Counters are updated with relaxed atomics: a snapshot taken while other threads are
/// using the pool is a consistent-enough view for monitoring, not a linearisable one.
/// Once every guard has been dropped and no thread is using the pool, the counters are
/// exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolStats {
    /// Checkouts served from the pool without allocating.
    pub hits: u64,
    /// Checkouts that had to allocate: the pool was empty, or the pooled buffer was too
    /// small for the requested capacity and had to grow.
    pub misses: u64,
    /// Values that came back and were kept for reuse.
    pub returns: u64,
    /// Values that came back while the pool already held its maximum and were dropped.
    pub discarded_full: u64,
    /// Values refused by the pool's policy and dropped: buffers whose allocation is
    /// above the capacity cap (found on return, or at checkout), idle buffers too small
    /// for a checkout that could not be reclaimed in place (found at checkout).
    pub rejected: u64,
    /// Values the holder took out of the pool for good (`into_inner`).
    pub detached: u64,
    /// Values idle in the pool when the snapshot was taken.
    pub idle: usize,
}

impl PoolStats {
    /// Total checkouts: `hits + misses`.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.hits.saturating_add(self.misses)
    }

    /// Values that came back and were dropped: `discarded_full + rejected`.
    #[must_use]
    pub fn discarded(&self) -> u64 {
        self.discarded_full.saturating_add(self.rejected)
    }

    /// Fraction of checkouts served without allocating, `hits / requests`, in `0.0..=1.0`.
    ///
    /// Returns `0.0` when there have been no requests yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = sarlink_pool::BufferPool::builder().build()?;
    /// drop(pool.checkout()); // miss: the pool starts empty
    /// drop(pool.checkout()); // hit: the first buffer came back
    /// assert_eq!(pool.stats().recycling_rate(), 0.5);
    /// # Ok::<(), sarlink_pool::BufferPoolConfigError>(())
    /// ```
    #[must_use]
    pub fn recycling_rate(&self) -> f64 {
        let requests = self.requests();
        if requests == 0 {
            return 0.0;
        }
        // Precision loss above 2^53 requests is irrelevant for a ratio.
        #[allow(clippy::cast_precision_loss)]
        let rate = self.hits as f64 / requests as f64;
        rate
    }
}

/// The live atomic counters behind [`PoolStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    returns: AtomicU64,
    discarded_full: AtomicU64,
    rejected: AtomicU64,
    detached: AtomicU64,
}

impl Counters {
    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn returned(&self) {
        self.returns.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn discarded_full(&self) {
        self.discarded_full.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn detached(&self) {
        self.detached.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, idle: usize) -> PoolStats {
        PoolStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            returns: self.returns.load(Ordering::Relaxed),
            discarded_full: self.discarded_full.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            detached: self.detached.load(Ordering::Relaxed),
            idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_figures_follow_the_counters() {
        let counters = Counters::default();
        for _ in 0..3 {
            counters.hit();
        }
        counters.miss();
        counters.discarded_full();
        counters.rejected();
        counters.rejected();
        let stats = counters.snapshot(7);
        assert_eq!(stats.requests(), 4);
        assert_eq!(stats.discarded(), 3);
        assert_eq!(stats.idle, 7);
        assert!((stats.recycling_rate() - 0.75).abs() < f64::EPSILON);
    }

    #[test]
    fn recycling_rate_is_zero_without_requests() {
        assert_eq!(PoolStats::default().recycling_rate(), 0.0);
    }
}
