//! Behaviour of `BufferPool` that users rely on: recycling, bounds, caps, accounting.

use bytes::BufMut;
use sarlink_pool::{BufferPool, PoolStats};

/// A small deterministic generator, so workloads are varied but reproducible.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn pool(max_pooled: usize) -> BufferPool {
    BufferPool::builder()
        .max_pooled(max_pooled)
        .buffer_capacity(4 * 1024)
        .max_buffer_capacity(16 * 1024)
        .build()
        .expect("valid config")
}

/// A link-like workload: each cycle holds one to three buffers at once (encode,
/// compress, decode), writes frames of varied size into them, and now and then a large
/// message grows a buffer beyond the cap.
#[test]
fn steady_workload_recycles_at_least_85_percent() {
    let pool = pool(8);
    let mut rng = XorShift(0x5EED_1234_ABCD_0001);
    let mut checkouts = 0_u64;
    let mut oversized = 0_u64;
    for _cycle in 0..5_000 {
        let held = 1 + rng.below(3);
        let mut bufs = Vec::new();
        for _ in 0..held {
            let mut buf = pool.checkout();
            checkouts += 1;
            assert!(buf.is_empty(), "a checked-out buffer is cleared");
            assert!(buf.capacity() >= 4 * 1024);
            let len = if rng.below(100) == 0 {
                oversized += 1;
                32 * 1024
            } else {
                usize::try_from(16 + rng.below(4000)).unwrap()
            };
            buf.put_bytes(0xA5, len);
            bufs.push(buf);
        }
    }
    let stats = pool.stats();
    assert_eq!(stats.requests(), checkouts);
    assert_eq!(
        stats.rejected, oversized,
        "every oversized buffer was dropped"
    );
    assert!(
        stats.recycling_rate() >= 0.85,
        "recycling rate {:.3} below 0.85: {stats:?}",
        stats.recycling_rate()
    );
    // Each oversized buffer forces one later allocation, so the rate is not trivially 1.
    assert!(stats.misses >= oversized);
}

/// The recycling rate is a real measurement: a workload that keeps every buffer
/// recycles nothing.
#[test]
fn detaching_workload_recycles_nothing() {
    let pool = pool(8);
    let kept: Vec<_> = (0..50).map(|_| pool.checkout().into_inner()).collect();
    let stats = pool.stats();
    assert_eq!((stats.requests(), stats.hits, stats.detached), (50, 0, 50));
    assert_eq!(stats.recycling_rate(), 0.0);
    assert_eq!(kept.len(), 50);
}

#[test]
fn oversized_buffers_are_dropped_not_hoarded() {
    let pool = pool(8);
    let mut buf = pool.checkout();
    buf.reserve(64 * 1024);
    assert!(buf.capacity() > pool.max_buffer_capacity());
    drop(buf);
    assert_eq!(pool.idle(), 0, "the grown buffer was not kept");
    assert_eq!(pool.stats().rejected, 1);

    let buf = pool.checkout();
    assert!(
        buf.capacity() <= pool.max_buffer_capacity(),
        "a fresh, normal-sized buffer"
    );
    assert_eq!(pool.stats().misses, 2);
}

#[test]
fn buffer_at_the_cap_is_kept() {
    let pool = pool(8);
    let buf = pool.checkout_with_capacity(16 * 1024);
    assert_eq!(buf.capacity(), 16 * 1024);
    drop(buf);
    assert_eq!(pool.idle(), 1);
    assert_eq!(pool.stats().rejected, 0);
}

#[test]
fn pool_never_keeps_more_than_max_pooled() {
    let pool = pool(5);
    let held: Vec<_> = (0..20).map(|_| pool.checkout()).collect();
    drop(held);
    let stats = pool.stats();
    assert_eq!(pool.idle(), 5);
    assert_eq!(
        (stats.returns, stats.discarded_full, stats.idle),
        (5, 15, 5)
    );
    // Another burst reuses exactly the kept five.
    let held: Vec<_> = (0..20).map(|_| pool.checkout()).collect();
    assert_eq!(pool.stats().hits, 5);
    drop(held);
    assert_eq!(pool.idle(), 5);
}

#[test]
fn checkout_with_capacity_guarantees_the_capacity() {
    let pool = pool(8);
    let big = pool.checkout_with_capacity(10 * 1024);
    assert!(big.capacity() >= 10 * 1024);
    drop(big);
    // The idle 10 KiB buffer serves a default checkout...
    let buf = pool.checkout();
    assert!(buf.capacity() >= 10 * 1024);
    drop(buf);
    // ...and a request above the cap neither takes it nor is kept afterwards.
    let huge = pool.checkout_with_capacity(1024 * 1024);
    assert!(huge.capacity() >= 1024 * 1024);
    assert_eq!(
        pool.idle(),
        1,
        "the pooled buffer was left for requests it can serve"
    );
    drop(huge);
    let stats = pool.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.rejected, stats.idle),
        (1, 2, 1, 1)
    );
}

#[test]
fn too_small_idle_buffer_is_replaced_for_a_larger_request() {
    let pool = pool(8);
    drop(pool.checkout()); // one 4 KiB buffer idle
    let buf = pool.checkout_with_capacity(8 * 1024);
    assert!(buf.capacity() >= 8 * 1024);
    let stats = pool.stats();
    assert_eq!(
        (stats.hits, stats.misses),
        (0, 2),
        "growing counts as an allocation"
    );
}

#[test]
fn prefill_serves_the_first_checkouts_without_allocating() {
    let pool = BufferPool::builder()
        .max_pooled(4)
        .prefill(3)
        .build()
        .unwrap();
    assert_eq!(pool.idle(), 3);
    let held: Vec<_> = (0..4).map(|_| pool.checkout()).collect();
    let stats = pool.stats();
    assert_eq!((stats.hits, stats.misses), (3, 1));
    drop(held);
    assert_eq!(pool.idle(), 4);
}

#[test]
fn clones_share_buffers_and_guards_return_from_other_threads() {
    let pool = pool(4);
    let other = pool.clone();
    let mut buf = other.checkout().into_owned();
    drop(other);
    buf.extend_from_slice(b"from another handle");
    std::thread::spawn(move || drop(buf)).join().unwrap();
    assert_eq!(pool.idle(), 1);
    assert!(pool.checkout().is_empty());
    let stats = pool.stats();
    assert_eq!((stats.hits, stats.misses, stats.returns), (1, 1, 2));
}

#[test]
fn every_checkout_is_accounted_for() {
    let pool = pool(2);
    let a = pool.checkout();
    let b = pool.checkout();
    let c = pool.checkout();
    let _kept = a.into_inner();
    drop(b);
    drop(c);
    let mut d = pool.checkout();
    d.reserve(1024 * 1024);
    drop(d);
    let stats: PoolStats = pool.stats();
    assert_eq!(stats.requests(), 4);
    assert_eq!(
        stats.returns + stats.discarded() + stats.detached,
        stats.requests()
    );
    assert_eq!(
        (stats.returns, stats.rejected, stats.detached, stats.idle),
        (2, 1, 1, 1)
    );
}
